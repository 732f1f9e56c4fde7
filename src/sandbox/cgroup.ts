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

/** The tenant's cgroup directories (v1: one per controller; v2: one). velo-runtime makes and removes them (the
 * sandbox's cgroupsPath is /velo/NAME, native/cli/oci.c); velo reads usage from them. */
export function cgroupDirs(name: string): string[] {
  const l = layout()
  if (l.kind === 'v2') return [path.join(l.root, 'velo', name)]
  return V1_CONTROLLERS.map((c) => path.join(l.roots[c], 'velo', name))
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
