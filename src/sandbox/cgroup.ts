import * as fs from 'node:fs'
import * as path from 'node:path'
import {VeloError, fromSystemError} from '../lib/errors'

export interface Limits {
  memory?: number // bytes
  pids?: number
  cpus?: number
}

const ROOT = process.env.VELO_CGROUP_ROOT || '/sys/fs/cgroup'
const V1_CONTROLLERS = ['memory', 'pids', 'cpu'] as const
const PERIOD = 100_000

export type Layout = {kind: 'v2'; root: string} | {kind: 'v1'; roots: Record<(typeof V1_CONTROLLERS)[number], string>}

let cached: Layout | undefined

/**
 * Pure v2 (cgroup2 mounted at /sys/fs/cgroup) or v1/hybrid (each controller its own hierarchy at
 * /sys/fs/cgroup/<controller>; the empty v2 tree of a hybrid host carries no controllers, so it is unused).
 */
export function layout(): Layout {
  if (cached) return cached
  if (fs.existsSync(path.join(ROOT, 'cgroup.controllers'))) return (cached = {kind: 'v2', root: ROOT})
  const roots = {} as Record<(typeof V1_CONTROLLERS)[number], string>
  for (const c of V1_CONTROLLERS) {
    const d = path.join(ROOT, c)
    if (!fs.existsSync(path.join(d, 'cgroup.procs')))
      throw new VeloError('UNSUPPORTED', `cgroup v1 controller ${c} is not mounted at ${d}`, {suggestion: 'mount the memory, pids and cpu controllers (or use a cgroup v2 host)'})
    roots[c] = d
  }
  return (cached = {kind: 'v1', roots})
}

/** The tenant's cgroup directories (v1: one per controller; v2: one). */
export function cgroupDirs(name: string): string[] {
  const l = layout()
  if (l.kind === 'v2') return [path.join(l.root, 'velo', name)]
  return V1_CONTROLLERS.map((c) => path.join(l.roots[c], 'velo', name))
}

function write(file: string, value: string): void {
  try {
    fs.writeFileSync(file, value)
  } catch (err) {
    throw fromSystemError(err, `cannot write ${value} to ${file}`)
  }
}

function enableV2Controllers(dir: string): void {
  const want = ['memory', 'pids', 'cpu']
  const avail = fs.readFileSync(path.join(dir, 'cgroup.controllers'), 'utf8').trim().split(/\s+/)
  const on = fs.readFileSync(path.join(dir, 'cgroup.subtree_control'), 'utf8').trim().split(/\s+/)
  const add = want.filter((c) => avail.includes(c) && !on.includes(c))
  if (add.length) write(path.join(dir, 'cgroup.subtree_control'), add.map((c) => '+' + c).join(' '))
}

/** Create (or reuse) the tenant's cgroups and write its limits; unset limits are written as "no limit". */
export function ensureCgroups(name: string, limits: Limits): string[] {
  const l = layout()
  const dirs = cgroupDirs(name)
  try {
    if (l.kind === 'v2') {
      enableV2Controllers(l.root)
      fs.mkdirSync(path.join(l.root, 'velo'), {recursive: true})
      enableV2Controllers(path.join(l.root, 'velo'))
      fs.mkdirSync(dirs[0], {recursive: true})
      const d = dirs[0]
      write(path.join(d, 'memory.max'), limits.memory ? String(limits.memory) : 'max')
      if (fs.existsSync(path.join(d, 'memory.swap.max'))) write(path.join(d, 'memory.swap.max'), limits.memory ? '0' : 'max')
      write(path.join(d, 'pids.max'), limits.pids ? String(limits.pids) : 'max')
      write(path.join(d, 'cpu.max'), limits.cpus ? `${Math.round(limits.cpus * PERIOD)} ${PERIOD}` : `max ${PERIOD}`)
    } else {
      for (const d of dirs) fs.mkdirSync(d, {recursive: true})
      const [mem, pids, cpu] = dirs
      // memsw must stay ≥ limit: lower it after raising, raise it before lowering (write order matters)
      const memsw = path.join(mem, 'memory.memsw.limit_in_bytes')
      const v = limits.memory ? String(limits.memory) : '-1'
      if (fs.existsSync(memsw)) {
        if (limits.memory) {
          try {
            write(path.join(mem, 'memory.limit_in_bytes'), v)
            write(memsw, v)
          } catch {
            write(memsw, v)
            write(path.join(mem, 'memory.limit_in_bytes'), v)
          }
        } else {
          write(memsw, '-1')
          write(path.join(mem, 'memory.limit_in_bytes'), '-1')
        }
      } else write(path.join(mem, 'memory.limit_in_bytes'), v)
      write(path.join(pids, 'pids.max'), limits.pids ? String(limits.pids) : 'max')
      write(path.join(cpu, 'cpu.cfs_period_us'), String(PERIOD))
      write(path.join(cpu, 'cpu.cfs_quota_us'), limits.cpus ? String(Math.round(limits.cpus * PERIOD)) : '-1')
    }
  } catch (err) {
    throw err instanceof VeloError ? err : fromSystemError(err, `cannot set up cgroups for ${name}`)
  }
  return dirs
}

/** Pids still in a tenant's cgroups. */
export function cgroupPids(dirs: string[]): number[] {
  const out = new Set<number>()
  for (const d of dirs) {
    try {
      for (const l of fs.readFileSync(path.join(d, 'cgroup.procs'), 'utf8').split('\n')) if (l) out.add(Number(l))
    } catch {}
  }
  return [...out]
}

/** Kill whatever is left in the cgroups and remove them; retries while the kernel finishes exits. */
export async function removeCgroups(dirs: string[], timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (const d of dirs) {
    for (;;) {
      try {
        fs.rmdirSync(d)
        break
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code
        // ENOTDIR: not a cgroup (a control file of velo's parent cgroup, for a sandbox named after one)
        if (code === 'ENOENT' || code === 'ENOTDIR') break
        if (code !== 'EBUSY' || Date.now() > deadline) throw fromSystemError(err, `cannot remove cgroup ${d}`)
        for (const pid of cgroupPids([d])) {
          try {
            process.kill(pid, 'SIGKILL')
          } catch {}
        }
        await new Promise((r) => setTimeout(r, 5))
      }
    }
  }
}

/** Memory stats for inspect: current usage, peak, and how often the limit was hit. */
export function cgroupStats(dirs: string[]): {memoryBytes?: number; pids?: number; oomKills?: number} {
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
