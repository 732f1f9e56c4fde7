import * as fs from 'node:fs'
import * as path from 'node:path'
import {VeloError} from '../lib/errors'
import {writeFileAtomic} from '../lib/fsutil'
import {packageRoot} from '../lib/native'
import type {Limits} from '../sandbox/cgroup'

/**
 * A sandbox profile (profiles/*.json): what a tenant gets. Validated field by field; every error names the
 * field (`limits.memory: ...`). Flags on `velo sandbox create` override the profile's values.
 */
export interface Profile {
  name: string
  description?: string
  namespaces: string[] // always mnt, pid, uts, ipc, net, cgroup; a user namespace is `userns`
  network: 'loopback' | 'none' // own network namespace: loopback up, or nothing at all
  hostname?: string
  limits: Limits // bytes, tasks, CPUs, bytes/s, bytes
  env: Record<string, string>
  mounts: MountSpec[]
  capabilities: string[] // the whole kept set, names without CAP_
  seccomp: 'default' | 'unconfined'
  userns: boolean // the tenant's own user namespace (default true): its root is an unprivileged host uid; false only as root (docs/sandbox.md)
  user?: string
  workdir?: string
}

export interface MountSpec {
  source: string
  target: string
  readonly: boolean
  /** a named volume (source is its data dir): idmapped into a tenant with a user namespace (src/volume/volumes.ts) */
  volume?: string
  /** one of that volume's snapshots, read-only at TARGET/.snapshots/SNAP (source: its layer's farm) */
  snapshot?: string
  /** that volume's vault, at TARGET/.vault while it was unlocked at the tenant's start (src/volume/vault.ts) */
  vault?: true
}

/** A mount that comes with a volume's own (its snapshots, its vault): made again at every start, never given by the user. */
export const isVolumeExtra = (m: MountSpec): boolean => m.snapshot !== undefined || m.vault === true

/** Linux capability numbers (include/uapi/linux/capability.h). */
export const CAPS: Record<string, number> = {
  CHOWN: 0, DAC_OVERRIDE: 1, DAC_READ_SEARCH: 2, FOWNER: 3, FSETID: 4, KILL: 5, SETGID: 6, SETUID: 7, SETPCAP: 8,
  LINUX_IMMUTABLE: 9, NET_BIND_SERVICE: 10, NET_BROADCAST: 11, NET_ADMIN: 12, NET_RAW: 13, IPC_LOCK: 14,
  IPC_OWNER: 15, SYS_MODULE: 16, SYS_RAWIO: 17, SYS_CHROOT: 18, SYS_PTRACE: 19, SYS_PACCT: 20, SYS_ADMIN: 21,
  SYS_BOOT: 22, SYS_NICE: 23, SYS_RESOURCE: 24, SYS_TIME: 25, SYS_TTY_CONFIG: 26, MKNOD: 27, LEASE: 28,
  AUDIT_WRITE: 29, AUDIT_CONTROL: 30, SETFCAP: 31, MAC_OVERRIDE: 32, MAC_ADMIN: 33, SYSLOG: 34, WAKE_ALARM: 35,
  BLOCK_SUSPEND: 36, AUDIT_READ: 37, PERFMON: 38, BPF: 39, CHECKPOINT_RESTORE: 40,
}

/** Never grantable through a profile: each one is a way out of the sandbox or into the host kernel. */
export const FORBIDDEN_CAPS = ['SYS_ADMIN', 'SYS_MODULE', 'SYS_RAWIO', 'SYS_PTRACE', 'SYS_BOOT', 'SYS_TIME', 'MKNOD', 'MAC_ADMIN', 'MAC_OVERRIDE', 'BPF', 'PERFMON', 'DAC_READ_SEARCH', 'SYSLOG', 'NET_ADMIN', 'LINUX_IMMUTABLE']

export const REQUIRED_NAMESPACES = ['mnt', 'pid', 'uts', 'ipc', 'net', 'cgroup']

export function capMask(caps: string[]): string {
  let m = 0n
  for (const c of caps) m |= 1n << BigInt(CAPS[c])
  return m.toString(16)
}

const bad = (field: string, msg: string, file?: string) =>
  new VeloError('BAD_INPUT', `profile${file ? ` ${file}` : ''}: ${field}: ${msg}`, {suggestion: 'see docs/sandbox.md (profile schema) and profiles/default.json'})

/** the smallest I/O rate (bytes/s) and disk quota a tenant may be given: below them nothing useful runs */
export const RATE_MIN = 1024
export const DISK_MIN = 1024 * 1024
const MEMORY_MIN = 4 * 1024 * 1024
const minText = (n: number) => (n >= 1024 * 1024 ? `${n / 1024 / 1024} MiB` : `${n / 1024} KiB`)

/** "512m", "1g", "1.5G", "1048576" → bytes, at least min (the memory minimum unless given). */
export function parseBytes(v: string | number, field: string, min = MEMORY_MIN): number {
  if (typeof v === 'number') {
    if (!Number.isInteger(v) || v <= 0) throw bad(field, `must be a positive number of bytes, got ${v}`)
    if (v < min) throw bad(field, `${v} is below the ${minText(min)} minimum`)
    return v
  }
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?$/i.exec(String(v).trim())
  if (!m) throw bad(field, `cannot read ${JSON.stringify(v)} as a size (e.g. 512m, 2g)`)
  const mult = {'': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4}[m[2].toLowerCase() as '' | 'k' | 'm' | 'g' | 't']
  const n = Math.floor(parseFloat(m[1]) * mult)
  if (n < min) throw bad(field, `${v} is below the ${minText(min)} minimum`)
  return n
}

export function parsePids(v: unknown, field: string): number {
  const n = typeof v === 'string' ? Number(v) : v
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 8 || n > 4194304) throw bad(field, `must be an integer between 8 and 4194304, got ${JSON.stringify(v)}`)
  return n
}

export function parseCpus(v: unknown, field: string): number {
  const n = typeof v === 'string' ? Number(v) : v
  if (typeof n !== 'number' || !Number.isFinite(n) || n < 0.01 || n > 1024) throw bad(field, `must be a number of CPUs between 0.01 and 1024, got ${JSON.stringify(v)}`)
  return n
}

const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/
const NO_CTL = /^[^\0\n\t]*$/

export function checkEnvKey(k: string, field: string): void {
  if (!ENV_KEY.test(k)) throw bad(field, `invalid environment variable name ${JSON.stringify(k)}`)
}

export function checkPathValue(v: unknown, field: string, mustBeAbsolute = true): string {
  if (typeof v !== 'string' || v === '') throw bad(field, 'must be a non-empty string')
  if (!NO_CTL.test(v)) throw bad(field, 'must not contain NUL, newline or tab')
  if (mustBeAbsolute && !v.startsWith('/')) throw bad(field, `must be an absolute path, got ${JSON.stringify(v)}`)
  if (v.split('/').includes('..')) throw bad(field, `must not contain '..', got ${JSON.stringify(v)}`)
  return v
}

const KEYS = ['name', 'description', 'namespaces', 'network', 'hostname', 'limits', 'env', 'mounts', 'capabilities', 'seccomp', 'userns', 'user', 'workdir', '$schema']

/** Validate a parsed profile document. */
export function validateProfile(doc: unknown, file?: string): Profile {
  const f = (field: string, msg: string) => bad(field, msg, file)
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw f('(root)', 'must be a JSON object')
  const d = doc as Record<string, unknown>
  for (const k of Object.keys(d)) if (!KEYS.includes(k)) throw f(k, `unknown field (allowed: ${KEYS.filter((x) => x !== '$schema').join(', ')})`)
  if (typeof d.name !== 'string' || !/^[a-z0-9][a-z0-9_-]{0,63}$/.test(d.name)) throw f('name', 'must be a lowercase name ([a-z0-9_-], at most 64)')
  if (d.description !== undefined && typeof d.description !== 'string') throw f('description', 'must be a string')
  const namespaces = d.namespaces === undefined ? REQUIRED_NAMESPACES : d.namespaces
  if (!Array.isArray(namespaces) || namespaces.some((n) => typeof n !== 'string')) throw f('namespaces', 'must be an array of namespace names')
  for (const n of namespaces as string[]) {
    if (n === 'user') throw f('namespaces', "'user' namespaces are not supported yet (tenants run as root with a reduced capability set)")
    if (!REQUIRED_NAMESPACES.includes(n)) throw f('namespaces', `unknown namespace ${JSON.stringify(n)} (known: ${REQUIRED_NAMESPACES.join(', ')})`)
  }
  for (const n of REQUIRED_NAMESPACES) if (!(namespaces as string[]).includes(n)) throw f('namespaces', `${n} is required: velo always isolates ${REQUIRED_NAMESPACES.join(', ')}`)
  const network = d.network ?? 'loopback'
  if (network !== 'loopback' && network !== 'none') throw f('network', `must be "loopback" (own namespace, lo up) or "none", got ${JSON.stringify(network)}`)
  if (d.hostname !== undefined && (typeof d.hostname !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9.-]{0,63}$/.test(d.hostname))) throw f('hostname', 'must be a valid host name (letters, digits, . and -, at most 64)')
  const limits: Profile['limits'] = {}
  if (d.limits !== undefined) {
    if (typeof d.limits !== 'object' || d.limits === null || Array.isArray(d.limits)) throw f('limits', 'must be an object')
    const l = d.limits as Record<string, unknown>
    const known = ['memory', 'pids', 'cpus', 'ioReadBps', 'ioWriteBps', 'disk']
    for (const k of Object.keys(l)) if (!known.includes(k)) throw f(`limits.${k}`, `unknown limit (allowed: ${known.join(', ')})`)
    try {
      if (l.memory !== undefined) limits.memory = parseBytes(l.memory as string, 'limits.memory')
      if (l.pids !== undefined) limits.pids = parsePids(l.pids, 'limits.pids')
      if (l.cpus !== undefined) limits.cpus = parseCpus(l.cpus, 'limits.cpus')
      if (l.ioReadBps !== undefined) limits.ioReadBps = parseBytes(l.ioReadBps as string, 'limits.ioReadBps', RATE_MIN)
      if (l.ioWriteBps !== undefined) limits.ioWriteBps = parseBytes(l.ioWriteBps as string, 'limits.ioWriteBps', RATE_MIN)
      if (l.disk !== undefined) limits.disk = parseBytes(l.disk as string, 'limits.disk', DISK_MIN)
    } catch (err) {
      throw new VeloError('BAD_INPUT', (err as Error).message.replace(/^profile: /, `profile${file ? ` ${file}` : ''}: `), {suggestion: (err as VeloError).suggestion})
    }
  }
  const env: Record<string, string> = {}
  if (d.env !== undefined) {
    if (typeof d.env !== 'object' || d.env === null || Array.isArray(d.env)) throw f('env', 'must be an object of strings')
    for (const [k, v] of Object.entries(d.env as Record<string, unknown>)) {
      if (!ENV_KEY.test(k)) throw f(`env.${k}`, 'invalid environment variable name')
      if (typeof v !== 'string' || !NO_CTL.test(v)) throw f(`env.${k}`, 'must be a string without NUL, newline or tab')
      env[k] = v
    }
  }
  const mounts: MountSpec[] = []
  if (d.mounts !== undefined) {
    if (!Array.isArray(d.mounts)) throw f('mounts', 'must be an array')
    ;(d.mounts as unknown[]).forEach((m, i) => {
      if (typeof m !== 'object' || m === null) throw f(`mounts[${i}]`, 'must be an object {source, target, readonly}')
      const mm = m as Record<string, unknown>
      for (const k of Object.keys(mm)) if (!['source', 'target', 'readonly'].includes(k)) throw f(`mounts[${i}].${k}`, 'unknown field')
      try {
        mounts.push({source: checkPathValue(mm.source, `mounts[${i}].source`), target: checkPathValue(mm.target, `mounts[${i}].target`), readonly: mm.readonly === undefined ? true : mm.readonly === true})
      } catch (err) {
        throw f(`mounts[${i}]`, (err as Error).message.replace(/^profile: /, ''))
      }
      if (mm.readonly !== undefined && typeof mm.readonly !== 'boolean') throw f(`mounts[${i}].readonly`, 'must be true or false')
    })
  }
  if (!Array.isArray(d.capabilities) || d.capabilities.some((c) => typeof c !== 'string')) throw f('capabilities', 'must be an array of capability names (e.g. ["CHOWN", "KILL"])')
  const capabilities: string[] = []
  for (const c0 of d.capabilities as string[]) {
    const c = c0.toUpperCase().replace(/^CAP_/, '')
    if (!(c in CAPS)) throw f('capabilities', `unknown capability ${JSON.stringify(c0)}`)
    if (FORBIDDEN_CAPS.includes(c)) throw f('capabilities', `CAP_${c} cannot be granted to a tenant (it reaches outside the sandbox)`)
    if (!capabilities.includes(c)) capabilities.push(c)
  }
  const seccomp = d.seccomp ?? 'default'
  if (seccomp !== 'default' && seccomp !== 'unconfined') throw f('seccomp', `must be "default" or "unconfined", got ${JSON.stringify(seccomp)}`)
  if (d.userns !== undefined && typeof d.userns !== 'boolean') throw f('userns', `must be true or false, got ${JSON.stringify(d.userns)}`)
  if (d.user !== undefined && (typeof d.user !== 'string' || !/^[A-Za-z0-9_][A-Za-z0-9_.-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?$/.test(d.user))) throw f('user', 'must be USER or UID[:GID]')
  const workdir = d.workdir === undefined ? undefined : checkPathValueField(d.workdir, 'workdir', f)
  return {
    name: d.name,
    description: d.description as string | undefined,
    namespaces: REQUIRED_NAMESPACES,
    network,
    hostname: d.hostname as string | undefined,
    limits,
    env,
    mounts,
    capabilities,
    seccomp,
    userns: d.userns ?? true,
    user: d.user as string | undefined,
    workdir,
  }
}

function checkPathValueField(v: unknown, field: string, f: (field: string, msg: string) => VeloError): string {
  try {
    return checkPathValue(v, field)
  } catch (err) {
    throw f(field, (err as Error).message.replace(/^profile: [^:]*: /, ''))
  }
}

export function profilesDir(): string {
  return path.join(packageRoot(), 'profiles')
}

/** A profile by name (profiles/NAME.json) or by path to a JSON file. */
export function loadProfile(ref = 'default'): Profile {
  const isPath = ref.includes('/') || ref.endsWith('.json')
  if (!isPath && !/^[a-z0-9][a-z0-9_-]{0,63}$/.test(ref)) throw new VeloError('INVALID_NAME', `invalid profile name ${JSON.stringify(ref)}`, {suggestion: `use one of the profiles in ${profilesDir()} or a path to a .json file`})
  const file = isPath ? path.resolve(ref) : path.join(profilesDir(), `${ref}.json`)
  let text: string
  try {
    text = fs.readFileSync(file, 'utf8')
  } catch {
    const known = fs.existsSync(profilesDir()) ? fs.readdirSync(profilesDir()).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -5)) : []
    throw new VeloError('NOT_FOUND', `no profile ${JSON.stringify(ref)} (${file})`, {suggestion: `known profiles: ${known.join(', ')}; or give a path to a .json file`})
  }
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch (err) {
    throw new VeloError('BAD_INPUT', `profile ${file}: not valid JSON: ${(err as Error).message}`, {suggestion: 'fix the JSON: profiles/default.json shows the shape, docs/sandbox.md the schema'})
  }
  return validateProfile(doc, file)
}

/**
 * loadProfile, and for a profile given by name, a compiled copy for the native front-end
 * (<home>/cache/profiles/NAME.json: the validated profile plus the source file's dev, ino, size, mtime and
 * ctime in ns). native/cli/profile.c uses that copy only while the source file's stat still matches, so the
 * schema is validated in one place (here). The cache is only an optimisation: failing to write it is ignored.
 */
export function loadProfileCached(home: string, ref = 'default'): Profile {
  if (!/^[a-z0-9][a-z0-9_-]{0,63}$/.test(ref)) return loadProfile(ref)
  const file = path.join(profilesDir(), `${ref}.json`)
  let before: fs.BigIntStats
  try {
    before = fs.statSync(file, {bigint: true})
  } catch {
    return loadProfile(ref)
  }
  const p = loadProfile(ref)
  try {
    const after = fs.statSync(file, {bigint: true})
    const stamp = (st: fs.BigIntStats) => ({dev: String(st.dev), ino: String(st.ino), size: String(st.size), mtimeNs: String(st.mtimeNs), ctimeNs: String(st.ctimeNs)})
    const s0 = stamp(before)
    const s1 = stamp(after)
    // changed while we read it: no cache (the next call validates again)
    if (JSON.stringify(s0) !== JSON.stringify(s1) || !after.isFile()) return p
    const text = JSON.stringify({source: file, ...s1, profile: p}) + '\n'
    const dir = path.join(home, 'cache', 'profiles')
    const dest = path.join(dir, `${ref}.json`)
    let old: string | undefined
    try {
      old = fs.readFileSync(dest, 'utf8')
    } catch {}
    if (old !== text) {
      fs.mkdirSync(dir, {recursive: true, mode: 0o700})
      writeFileAtomic(dest, text)
    }
  } catch {}
  return p
}
