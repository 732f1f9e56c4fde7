import * as fs from 'node:fs'
import * as path from 'node:path'
import {VeloError} from '../lib/errors'

export interface Limits {
  memory?: number // bytes
  pids?: number
  cpus?: number
  ioReadBps?: number // bytes per second on the store's disk
  ioWriteBps?: number
  disk?: number // bytes the tenant may write into its upper dir (a project quota)
}

export const CGROUP_ROOT = process.env.VELO_CGROUP_ROOT || '/sys/fs/cgroup'
const V1_CONTROLLERS = ['memory', 'pids', 'cpu'] as const

export type Layout = {kind: 'v2'; root: string} | {kind: 'v1'; roots: Record<(typeof V1_CONTROLLERS)[number], string>}

let cached: Layout | undefined

/**
 * Pure v2 (cgroup2 mounted at /sys/fs/cgroup) or v1/hybrid (each controller its own hierarchy at
 * /sys/fs/cgroup/<controller>; the empty v2 tree of a hybrid host carries no controllers, so it is unused).
 */
export function layout(): Layout {
  if (cached) return cached
  if (fs.existsSync(path.join(CGROUP_ROOT, 'cgroup.controllers'))) return (cached = {kind: 'v2', root: CGROUP_ROOT})
  const roots = {} as Record<(typeof V1_CONTROLLERS)[number], string>
  for (const c of V1_CONTROLLERS) {
    const d = path.join(CGROUP_ROOT, c)
    if (!fs.existsSync(path.join(d, 'cgroup.procs')))
      throw new VeloError('UNSUPPORTED', `cgroup v1 controller ${c} is not mounted at ${d}`, {suggestion: 'mount the memory, pids and cpu controllers (or use a cgroup v2 host)'})
    roots[c] = d
  }
  return (cached = {kind: 'v1', roots})
}

/**
 * A tenant's cgroup in another hierarchy (v1: cpuacct, blkio) than the dirs its state names (memory, pids, cpu; one
 * dir on v2). The boot decides where its cgroups are (native/cli/oci.h, oci_sandbox_cgroups_path: velo/NAME.STORE)
 * and records them in state.json; this only moves the first of them to another controller's root.
 */
export function cgroupDirIn(stateDirs: string[], controller: string): string | undefined {
  if (!stateDirs.length) return undefined // a rootless tenant on a host that delegates it no cgroup
  const l = layout()
  if (l.kind === 'v2') return stateDirs[0]
  const rel = path.relative(l.roots.memory, stateDirs[0])
  if (rel.startsWith('..') || path.isAbsolute(rel)) return undefined
  return path.join(CGROUP_ROOT, controller, rel)
}

/** Memory stats for inspect: current usage, peak, and how often the limit was hit. */
export function cgroupStats(dirs: string[]): {memoryBytes?: number; pids?: number; oomKills?: number} {
  if (!dirs.length) return {} // a rootless tenant on a host that delegates it no cgroup
  const l = layout()
  const read = (f: string) => {
    try {
      return fs.readFileSync(f, 'utf8').trim()
    } catch {
      return undefined
    }
  }
  if (l.kind === 'v2') {
    const ev = read(path.join(dirs[0], 'memory.events'))
    return {
      memoryBytes: Number(read(path.join(dirs[0], 'memory.current')) ?? NaN) || undefined,
      pids: Number(read(path.join(dirs[0], 'pids.current')) ?? NaN),
      oomKills: ev ? Number(/oom_kill (\d+)/.exec(ev)?.[1] ?? 0) : undefined,
    }
  }
  const oc = read(path.join(dirs[0], 'memory.oom_control'))
  return {
    memoryBytes: Number(read(path.join(dirs[0], 'memory.usage_in_bytes')) ?? NaN) || undefined,
    pids: Number(read(path.join(dirs[1], 'pids.current')) ?? NaN),
    oomKills: oc ? Number(/oom_kill (\d+)/.exec(oc)?.[1] ?? 0) : undefined,
  }
}
