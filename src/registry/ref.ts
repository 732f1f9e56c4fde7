import {VeloError} from '../lib/errors'

/**
 * A registry reference: `HOST[:PORT]/REPO[:TAG|@sha256:DIGEST]`. velo never guesses a default registry
 * (Docker's "docker.io" is implicit; here the first component must name the host), so a reference always says
 * where its bytes go — the host is the part up to the first '/', and it must contain '.' or ':' or be
 * `localhost`, as Docker decides whether a first component is a host.
 */
export interface RegistryRef {
  /** host[:port] as written */
  registry: string
  /** repository path (lower case components, '/'-separated) */
  repo: string
  tag?: string
  digest?: string
}

const REPO = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/
const DIGEST = /^sha256:[0-9a-f]{64}$/

export function parseRef(s: string): RegistryRef {
  const bad = (why: string) =>
    new VeloError('USAGE', `invalid registry reference ${JSON.stringify(s)}: ${why}`, {
      suggestion: 'write HOST[:PORT]/REPO[:TAG], e.g. 127.0.0.1:5000/team/app:1 (the registry host is never implied)',
    })
  const slash = s.indexOf('/')
  if (slash <= 0) throw bad('no registry host')
  const registry = s.slice(0, slash)
  if (!/[.:]/.test(registry) && registry !== 'localhost') throw bad(`${JSON.stringify(registry)} is not a host (it needs a '.' or a ':port', or is localhost)`)
  let rest = s.slice(slash + 1)
  let digest: string | undefined
  const at = rest.indexOf('@')
  if (at >= 0) {
    digest = rest.slice(at + 1)
    rest = rest.slice(0, at)
    if (!DIGEST.test(digest)) throw bad('the digest is not sha256:<64 hex>')
  }
  let tag: string | undefined
  const colon = rest.lastIndexOf(':')
  if (colon >= 0) {
    tag = rest.slice(colon + 1)
    rest = rest.slice(0, colon)
    if (!TAG.test(tag)) throw bad(`invalid tag ${JSON.stringify(tag)}`)
  }
  if (!REPO.test(rest)) throw bad(`invalid repository ${JSON.stringify(rest)} (lower-case letters, digits, '.', '_', '-', '/' between components)`)
  if (!tag && !digest) tag = 'latest'
  return {registry, repo: rest, tag, digest}
}

export function formatRef(r: RegistryRef): string {
  return `${r.registry}/${r.repo}${r.tag ? `:${r.tag}` : ''}${r.digest ? `@${r.digest}` : ''}`
}

/** The host part without the port, for the loopback rule of --insecure. */
export function hostOf(registry: string): string {
  if (registry.startsWith('[')) return registry.slice(1, registry.indexOf(']'))
  const i = registry.lastIndexOf(':')
  return i > 0 ? registry.slice(0, i) : registry
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127(\.\d{1,3}){3}$/.test(host)
}
