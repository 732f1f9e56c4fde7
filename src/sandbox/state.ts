import * as fs from 'node:fs'
import * as path from 'node:path'
import {VeloError, fromSystemError} from '../lib/errors'
import {validateName} from '../lib/names'
import {procStat, writeFileAtomic} from '../lib/fsutil'
import {StoreLock} from '../lib/lock'
import type {Limits} from './cgroup'
import type {MountSpec} from '../profiles/profile'
import type {LogOptions, MainCommand, RestartPolicy} from './workload'
import type {Bandwidth, PortMapping} from '../network/networks'

/** Everything a fresh velo process needs to run, start, exec into or remove a sandbox. */
export interface TenantState {
  version: 1
  name: string
  image: string
  layers: string[] // bottom first
  lowers: string[] // farm dirs, top first (overlay lowerdir order); backend fuse: the image's FUSE mount
  backend?: 'farm' | 'fuse' // absent: farm
  profile: string
  hostname: string
  network: string // 'loopback' (own namespace, lo up), 'none' (lo down), or a velo network's name (src/network/networks.ts)
  ports?: PortMapping[] // published ports (-p), on a velo network
  bandwidth?: Bandwidth // --ingress-rate/--egress-rate: the CNI bandwidth plugin's runtimeConfig
  env: string[] // K=V, image config + profile + --env
  mounts: MountSpec[]
  tmpfs?: TmpfsSpec[] // --tmpfs: a fresh tmpfs per start at each target
  readonlyRoot?: true // --read-only: the root filesystem is mounted read-only (binds and tmpfs keep their own mode)
  limits: Limits
  capabilities: string[]
  seccomp: 'default' | 'unconfined'
  userns?: true // a user namespace of its own: the range is in tenants/NAME/userns (native/cli/userns.c)
  user?: string
  workdir: string
  cgroups: string[]
  createdAt: string
  pid?: number
  pidStart?: string // /proc/PID/stat field 22: guards against pid reuse
  startedAt?: string
  autoRemove?: true // --rm with -d: removed when its main command ends by itself (by its monitor) or on stop
  /** a workload's main command, run by the tenant's monitor (src/sandbox/workload.ts, native/cli/monitor.c) */
  main?: MainCommand
  restart?: RestartPolicy // absent: no
  logs?: LogOptions // absent: 10 MiB × 3
}

/** A --tmpfs mount: a tmpfs at target with these mount options (validated: src/sandbox/tenant.ts parseTmpfs). */
export interface TmpfsSpec {
  target: string
  options: string[]
}

/** One range of a user namespace's map (as linux.uidMappings in config.json): container ids
 * containerID..containerID+size-1 are host ids hostID..hostID+size-1. */
export interface IdRange {
  containerID: number
  hostID: number
  size: number
}

/**
 * Where a tenant's user namespace puts its ids on the host, as its bundle says (native/cli/oci.c writes
 * linux.uidMappings/gidMappings into tenants/NAME/config.json at every boot; the ranges themselves are
 * native/cli/userns.c's: one of 65,536 ids with root, the user's own id and its subordinate range rootless):
 * undefined for a tenant without one, or never booted.
 */
export function tenantIdRanges(home: string, name: string): {uid: IdRange[]; gid: IdRange[]} | undefined {
  let linux: {uidMappings?: IdRange[]; gidMappings?: IdRange[]}
  try {
    linux = JSON.parse(fs.readFileSync(path.join(tenantDir(home, name), 'config.json'), 'utf8')).linux ?? {}
  } catch {
    return undefined
  }
  const ok = (m?: IdRange[]) => Array.isArray(m) && m.length > 0 && m.every((r) => [r.containerID, r.hostID, r.size].every(Number.isSafeInteger))
  const {uidMappings: uid, gidMappings: gid} = linux
  return ok(uid) && ok(gid) ? {uid: uid!, gid: gid!} : undefined
}

export const tenantsDir = (home: string) => path.join(home, 'tenants')
export const tenantDir = (home: string, name: string) => path.join(tenantsDir(home), name)

const noSuchSandbox = (name: string) =>
  new VeloError('NOT_FOUND', `no sandbox named ${JSON.stringify(name)}`, {suggestion: 'list sandboxes with `velo sandbox ls`; create one with `velo sandbox create NAME`'})

export function readState(home: string, name: string): TenantState {
  validateName('sandbox', name)
  const f = path.join(tenantDir(home, name), 'state.json')
  let text: string
  try {
    text = fs.readFileSync(f, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      const exists = fs.existsSync(tenantDir(home, name))
      if (!exists) throw noSuchSandbox(name)
      throw new VeloError('STATE', `sandbox ${name} is being created or was left half-made`, {suggestion: `wait, or remove it with \`velo sandbox rm -f ${name}\``})
    }
    throw fromSystemError(err, `cannot read state of sandbox ${name}`)
  }
  try {
    return JSON.parse(text) as TenantState
  } catch {
    throw new VeloError('STATE', `state of sandbox ${name} is damaged (${f})`, {suggestion: `remove it with \`velo sandbox rm -f ${name}\``})
  }
}

export function writeState(home: string, s: TenantState): void {
  try {
    writeFileAtomic(path.join(tenantDir(home, s.name), 'state.json'), JSON.stringify(s, null, 2) + '\n')
  } catch (err) {
    throw fromSystemError(err, `cannot write state of sandbox ${s.name}`)
  }
}


/** Running = its init is alive and is the same process (start time) that velo started. */
export function isRunning(s: TenantState): boolean {
  if (!s.pid || !s.pidStart) return false
  const st = procStat(s.pid)
  return !!st && st.start === s.pidStart && st.state !== 'Z' && st.state !== 'X'
}

/**
 * tenants/NAME/lock, exclusive: one lifecycle call on a sandbox at a time — a create's boot, start, stop, rm, a copy's
 * boot — so two starts never boot it twice and an rm never works from a state a start is changing (the native front
 * door takes the same lock: native/cli/sandbox.c sb_lock). Re-entrant within this process; a lock file removed while
 * we waited (the sandbox removed) is NOT_FOUND. Returns the release.
 */
const heldSandboxLocks = new Map<string, {lock: StoreLock; depth: number}>()
export function lockSandbox(home: string, name: string): () => void {
  validateName('sandbox', name)
  const file = path.join(tenantDir(home, name), 'lock')
  const held = heldSandboxLocks.get(file)
  if (held) held.depth++
  else {
    for (;;) {
      let lock: StoreLock
      try {
        lock = new StoreLock(file).acquire('exclusive', {waitingSays: `sandbox ${name}: waiting for another velo call on it to end`})
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT' || !fs.existsSync(tenantDir(home, name))) throw noSuchSandbox(name)
        throw err
      }
      if (lock.isCurrent()) {
        heldSandboxLocks.set(file, {lock, depth: 1})
        break
      }
      lock.release()
      if (!fs.existsSync(tenantDir(home, name))) throw noSuchSandbox(name)
    }
  }
  let done = false
  return () => {
    if (done) return
    done = true
    const h = heldSandboxLocks.get(file)
    if (h && --h.depth === 0) {
      heldSandboxLocks.delete(file)
      h.lock.release()
    }
  }
}

export function listTenantNames(home: string): string[] {
  try {
    return fs
      .readdirSync(tenantsDir(home))
      .filter((n) => !n.startsWith('.'))
      .sort()
  } catch (err) {
    // no tenants dir yet: no sandboxes; one this user may not read is an error, not an empty list
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw fromSystemError(err, `cannot list ${tenantsDir(home)}`)
  }
}
