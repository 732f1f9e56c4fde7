import {spawnSync} from 'node:child_process'
import {PERMISSION_SUGGESTION, VeloError} from '../lib/errors'
import {nativeBin} from '../lib/native'

export const shimPath = () => nativeBin('libvelo-shim.so')

/**
 * The environment for velo's own native tools: without a velo shim in LD_PRELOAD (a shell with the
 * inception hook has one), which would hide the marks they read and write. The native front-end does the
 * same for the whole CLI; this covers a Node CLI started without it.
 */
function toolEnv(): NodeJS.ProcessEnv {
  const pre = process.env.LD_PRELOAD
  if (!pre || !pre.includes('libvelo-shim.so')) return process.env
  const kept = pre.split(/[: ]/).filter((x) => x && !x.endsWith('/libvelo-shim.so') && x !== 'libvelo-shim.so')
  const env = {...process.env}
  if (kept.length) env.LD_PRELOAD = kept.join(':')
  else delete env.LD_PRELOAD
  return env
}

export interface BuildResult {
  state: 'fresh' | 'built'
  files?: number
  placeholders?: number
  dirs?: number
  symlinks?: number
  others?: number
  skipped?: number
}

/** Run velo-project (the C skeleton builder, reading the manifests from LMDB). Exit 3 = the directory holds something else. */
export function buildSkeleton(home: string, root: string, layersTopFirst: string[]): BuildResult {
  const bin = nativeBin('velo-project')
  const r = spawnSync(bin, ['build', home, root, ...layersTopFirst], {encoding: 'utf8', env: toolEnv()})
  if (r.error) throw new VeloError('NATIVE', `cannot run ${bin}: ${r.error.message}`)
  const err = (r.stderr || '').trim().replace(/^velo-project: /, '')
  if (r.status === 3)
    throw new VeloError('STATE', err || `${root} is not a projection of this image`, {
      suggestion: `choose another place with --at, or remove ${root} (or run \`velo wake\` there to keep it as plain files)`,
    })
  if (r.status === 4) throw new VeloError('PERMISSION_DENIED', err, {suggestion: PERMISSION_SUGGESTION}) // the errno was a permission's
  if (r.status !== 0) throw new VeloError('NATIVE', err || `velo-project exited ${r.status}`)
  return JSON.parse(r.stdout.trim().split('\n').pop()!)
}

export function wakeSkeleton(home: string, root: string): {materialized: number} {
  const bin = nativeBin('velo-project')
  const r = spawnSync(bin, ['wake', home, root], {encoding: 'utf8', env: toolEnv()})
  if (r.error) throw new VeloError('NATIVE', `cannot run ${bin}: ${r.error.message}`)
  if (r.status !== 0)
    throw new VeloError('NATIVE', (r.stderr || '').trim().replace(/^velo-project: /, '') || `velo-project wake exited ${r.status}`, {
      suggestion: 'the projection may be partly woken: fix the cause above and run `velo wake` again',
    })
  return JSON.parse(r.stdout.trim().split('\n').pop()!)
}

/**
 * Which of FILES are solid-projection placeholders, and which store object holds each one's content?
 * (Without the shim a placeholder reads as zeros; `velo ingest` of a projected tree must read the object.)
 */
export function probePlaceholders(home: string, files: Buffer[]): Map<string, string> {
  const out = new Map<string, string>()
  if (files.length === 0) return out
  const bin = nativeBin('velo-project')
  const input = Buffer.concat(files.flatMap((f) => [f, Buffer.alloc(1)]))
  const r = spawnSync(bin, ['probe', home], {input, maxBuffer: 1 << 30, env: toolEnv()})
  if (r.error || r.status !== 0) throw new VeloError('NATIVE', `cannot probe for placeholders: ${r.error?.message ?? r.stderr.toString().trim()}`)
  const parts = r.stdout.toString('latin1').split('\0')
  for (let i = 0; i + 1 < parts.length; i += 2) out.set(parts[i], parts[i + 1])
  return out
}

/**
 * Make FILE (about to be exec'd by `velo run` itself, not through the shim) and the shared libraries ld.so
 * will load for it real, where they are placeholders: the kernel and ld.so read them without any shim.
 * Best effort: what cannot be prepared fails at exec with the loader's own message.
 */
export function prepareExec(home: string, file: string): void {
  spawnSync(nativeBin('velo-project'), ['prepare', home, file], {stdio: 'ignore', env: toolEnv()})
}
