import {spawnSync} from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {VeloError} from '../lib/errors'
import {cgroupDirIn, cgroupStats, layout} from './cgroup'
import {isRunning, readState, type TenantState} from './state'

/**
 * What `velo sandbox stats` and `velo sandbox top` show, from the kernel's own counters: the tenant's cgroups
 * (CPU time, memory, pids, block I/O) and its network namespace (/proc/<init>/net/dev, every interface but lo),
 * and its processes (those in its init's pid namespace).
 */
export interface SandboxStats {
  name: string
  cpuPercent: number // of one CPU, over the sampling interval (can pass 100 with several CPUs, as docker stats)
  memoryBytes?: number
  memoryLimit?: number
  pids?: number
  netRxBytes: number
  netTxBytes: number
  blockReadBytes?: number
  blockWriteBytes?: number
}

const read = (f: string) => {
  try {
    return fs.readFileSync(f, 'utf8')
  } catch {
    return undefined
  }
}


/** CPU time of the tenant's cgroup in ns */
function cpuNs(dirs: string[]): number | undefined {
  if (layout().kind === 'v2') {
    const d = cgroupDirIn(dirs, '')
    const m = /usage_usec (\d+)/.exec((d && read(path.join(d, 'cpu.stat'))) ?? '')
    return m ? Number(m[1]) * 1000 : undefined
  }
  for (const c of ['cpuacct', 'cpu,cpuacct', 'cpu']) {
    const d = cgroupDirIn(dirs, c)
    const v = d && read(path.join(d, 'cpuacct.usage'))
    if (v) return Number(v.trim())
  }
  return undefined
}

function memoryLimit(dirs: string[]): number | undefined {
  const d = cgroupDirIn(dirs, 'memory')
  const v = d && read(path.join(d, layout().kind === 'v2' ? 'memory.max' : 'memory.limit_in_bytes'))
  const n = Number(v?.trim())
  return Number.isFinite(n) && n > 0 && n < 2 ** 60 ? n : undefined
}

function blockIo(dirs: string[]): {read?: number; write?: number} {
  const v2 = layout().kind === 'v2'
  const d = cgroupDirIn(dirs, 'blkio')
  const text = d && read(path.join(d, v2 ? 'io.stat' : 'blkio.throttle.io_service_bytes'))
  if (!text) return {}
  let r = 0
  let w = 0
  if (v2) for (const m of text.matchAll(/rbytes=(\d+) wbytes=(\d+)/g)) (r += Number(m[1])), (w += Number(m[2]))
  else for (const m of text.matchAll(/^\S+ (Read|Write) (\d+)$/gm)) m[1] === 'Read' ? (r += Number(m[2])) : (w += Number(m[2]))
  return {read: r, write: w}
}

/** bytes received and sent on the tenant's interfaces (not lo), as its own network namespace counts them */
function netIo(pid: number): {rx: number; tx: number} {
  let rx = 0
  let tx = 0
  for (const line of (read(`/proc/${pid}/net/dev`) ?? '').split('\n').slice(2)) {
    const [ifname, rest] = line.split(':')
    if (!rest || ifname.trim() === 'lo') continue
    const f = rest.trim().split(/\s+/).map(Number)
    rx += f[0]
    tx += f[8]
  }
  return {rx, tx}
}

function running(home: string, name: string): TenantState {
  const s = readState(home, name)
  if (!isRunning(s)) throw new VeloError('STATE', `sandbox ${name} is stopped`, {suggestion: `start it with \`velo sandbox start ${name}\``})
  return s
}

/** A running tenant's counters as the kernel keeps them (what `velo metrics` exports): no sampling interval. */
export interface SandboxCounters {
  cpuSeconds?: number
  memoryBytes?: number
  memoryLimit?: number
  pids?: number
  oomKills?: number
  netRxBytes: number
  netTxBytes: number
  blockReadBytes?: number
  blockWriteBytes?: number
}

export function sandboxCounters(s: TenantState): SandboxCounters {
  const cpu = cpuNs(s.cgroups)
  const usage = cgroupStats(s.cgroups)
  const net = netIo(s.pid!)
  const blk = blockIo(s.cgroups)
  const limit = memoryLimit(s.cgroups)
  return {
    ...(cpu !== undefined ? {cpuSeconds: cpu / 1e9} : {}),
    ...(usage.memoryBytes !== undefined ? {memoryBytes: usage.memoryBytes} : {}),
    ...(limit !== undefined ? {memoryLimit: limit} : {}),
    ...(usage.pids !== undefined && Number.isFinite(usage.pids) ? {pids: usage.pids} : {}),
    ...(usage.oomKills !== undefined ? {oomKills: usage.oomKills} : {}),
    netRxBytes: net.rx,
    netTxBytes: net.tx,
    ...(blk.read !== undefined ? {blockReadBytes: blk.read, blockWriteBytes: blk.write} : {}),
  }
}

/** One sample per tenant: counters read twice, intervalMs apart (the CPU share needs two readings). */
export async function sampleStats(home: string, names: string[], intervalMs = 500): Promise<SandboxStats[]> {
  const states = names.map((n) => running(home, n))
  const t0 = process.hrtime.bigint()
  const c0 = states.map((s) => cpuNs(s.cgroups))
  await new Promise((r) => setTimeout(r, intervalMs))
  const wall = Number(process.hrtime.bigint() - t0)
  return states.map((s, i) => {
    const c1 = cpuNs(s.cgroups)
    const {cpuSeconds, oomKills, ...rest} = sandboxCounters(s)
    return {
      name: s.name,
      cpuPercent: c0[i] !== undefined && c1 !== undefined ? Math.round(((c1 - c0[i]!) / wall) * 10000) / 100 : 0,
      ...rest,
    }
  })
}

export interface TopProcess {
  pid: number // on the host
  user: string
  time: string
  command: string
}

/** `velo sandbox top NAME`: the processes of the tenant's pid namespace (host pids), as `ps` shows them */
export function topProcesses(home: string, name: string): TopProcess[] {
  const s = running(home, name)
  const ns = fs.readlinkSync(`/proc/${s.pid}/ns/pid`)
  const pids: number[] = []
  for (const p of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue
    try {
      if (fs.readlinkSync(`/proc/${p}/ns/pid`) === ns) pids.push(Number(p))
    } catch {}
  }
  if (!pids.length) return []
  const r = spawnSync('ps', ['-o', 'pid=,user=,time=,args=', '-p', pids.join(',')], {encoding: 'utf8'})
  return r.stdout
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => {
      const m = /^\s*(\d+)\s+(\S+)\s+(\S+)\s+(.*)$/.exec(l)!
      return {pid: Number(m[1]), user: m[2], time: m[3], command: m[4]}
    })
}
