import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import {VeloError} from '../lib/errors'

/** What to log in with, if anything. */
export interface Credentials {
  username: string
  password: string
  /** where they came from, for messages (never the secret itself) */
  source: string
}

/**
 * Credentials for a registry, in this order: the command line (`--username` with the password on stdin),
 * `VELO_REGISTRY_USERNAME`/`VELO_REGISTRY_PASSWORD`, then Docker's own `config.json` (`$DOCKER_CONFIG/config.json`
 * or `~/.docker/config.json`, key `auths[HOST].auth` = base64 "user:password", as `docker login` writes it
 * without a credential helper). velo only reads that file; it never writes credentials anywhere.
 */
export function findCredentials(registry: string, given?: {username?: string; password?: string}): Credentials | undefined {
  if (given?.username !== undefined) {
    if (given.password === undefined) throw new VeloError('USAGE', '--username needs a password: pipe it to --password-stdin', {suggestion: 'echo "$PASSWORD" | velo push ... --username U --password-stdin'})
    return {username: given.username, password: given.password, source: 'the command line'}
  }
  const u = process.env.VELO_REGISTRY_USERNAME
  const p = process.env.VELO_REGISTRY_PASSWORD
  if (u !== undefined && p !== undefined) return {username: u, password: p, source: 'VELO_REGISTRY_USERNAME/VELO_REGISTRY_PASSWORD'}
  const file = path.join(process.env.DOCKER_CONFIG || path.join(os.homedir(), '.docker'), 'config.json')
  let cfg: any
  try {
    cfg = JSON.parse(fs.readFileSync(file, 'utf8'))
  } catch {
    return undefined
  }
  const auths = cfg?.auths ?? {}
  for (const key of [registry, `https://${registry}`, `http://${registry}`, `https://${registry}/v2/`, `https://${registry}/v1/`]) {
    const a = auths[key]
    if (typeof a?.auth === 'string') {
      const dec = Buffer.from(a.auth, 'base64').toString('utf8')
      const i = dec.indexOf(':')
      if (i > 0) return {username: dec.slice(0, i), password: dec.slice(i + 1), source: file}
    }
    if (typeof a?.username === 'string' && typeof a?.password === 'string') return {username: a.username, password: a.password, source: file}
  }
  return undefined
}

export interface Challenge {
  scheme: string
  params: Record<string, string>
}

/** Parse a WWW-Authenticate header: `Bearer realm="…",service="…",scope="…"` or `Basic realm="…"`. */
export function parseChallenge(h: string | undefined): Challenge | undefined {
  if (!h) return undefined
  const m = /^\s*(\w+)\s*(.*)$/.exec(h)
  if (!m) return undefined
  const params: Record<string, string> = {}
  const re = /(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))/g
  let p: RegExpExecArray | null
  while ((p = re.exec(m[2]))) params[p[1].toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3]
  return {scheme: m[1].toLowerCase(), params}
}
