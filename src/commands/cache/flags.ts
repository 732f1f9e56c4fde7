import {Flags} from '@oclif/core'
import {registryFlags} from '../../registry/flags'

/** Flags every `velo cache` command that reaches the cache's registry takes. */
export const cacheFlags = {
  ...registryFlags,
  registry: Flags.string({
    description: 'HOST[:PORT]/REPO that keeps the cache entries (tags); default $VELO_CACHE_REGISTRY; without either, the local store only',
    env: 'VELO_CACHE_REGISTRY',
  }),
  job: Flags.string({description: "the job whose journal records this call (default $VELO_CACHE_JOB, else the CI's run/job id, else local)"}),
}

/** The options of src/cache/cache.ts from the parsed flags (the password read from stdin once). */
export async function cacheOptions(f: {registry?: string; job?: string; insecure?: boolean; ca?: string; username?: string; 'password-stdin'?: boolean}) {
  const {parseCacheRegistry} = await import('../../cache/cache')
  const {jobId} = await import('../../cache/journal')
  const registry = f.registry ? parseCacheRegistry(f.registry) : undefined
  let client
  if (registry) {
    const {clientOptions} = await import('../../registry/flags')
    client = clientOptions(`${registry}:x`, f)
  }
  return {registry, client, job: jobId(f.job)}
}

/** The positional words after the flags (oclif's parsed argv, not raw argv: a flag's value is not a word). */
export const words = (argv: unknown[]): string[] => (argv as string[]).filter((a) => !a.startsWith('-'))
