import * as fs from 'node:fs'
import * as path from 'node:path'
import {VeloError} from '../lib/errors'
import {procStat} from '../lib/fsutil'
import {parseBytes} from '../profiles/profile'
import {isRunning, readState, tenantDir, type TenantState} from './state'

/**
 * Workloads: a tenant's main command, its logs, its exit and its restart policy. Node resolves the plan once at
 * create (state.json "main", "restart", "logs"); the per-tenant monitor (native/cli/monitor.c, forked by the
 * boot that both front doors share) runs it, writes tenants/NAME/logs/container.log* (CRI log format) and
 * tenants/NAME/workload.json. This module reads them.
 */

/** The main command as the monitor runs it: the exec plan of `velo sandbox exec`, fixed at create. */
export interface MainCommand {
  argv: string[]
  uid: number
  gid: number
  home?: string
  workdir?: string
  env: string[]
}

export interface RestartPolicy {
  policy: 'no' | 'on-failure' | 'always'
  /** on-failure:N — at most N restarts (absent: no limit) */
  max?: number
}

export interface LogOptions {
  maxSize: number
  maxFiles: number
}

/** tenants/NAME/workload.json, as the monitor writes it */
export interface WorkloadStatus {
  startedAt: string
  restartCount: number
  running: boolean
  mainPid?: number
  exitCode?: number
  finishedAt?: string
  /** the memory limit killed a process of the tenant during the last run (Docker's State.OOMKilled) */
  oomKilled?: boolean
}

/** --restart no | on-failure[:N] | always | unless-stopped (Docker's names; without a daemon that restarts
 * workloads when the host boots, unless-stopped behaves as always) */
export function parseRestart(v: string | undefined): RestartPolicy | undefined {
  if (v === undefined || v === 'no') return undefined
  if (v === 'always' || v === 'unless-stopped') return {policy: 'always'}
  const m = /^on-failure(?::(\d{1,6}))?$/.exec(v)
  if (m) return m[1] !== undefined && Number(m[1]) > 0 ? {policy: 'on-failure', max: Number(m[1])} : {policy: 'on-failure'}
  throw new VeloError('USAGE', `invalid --restart ${JSON.stringify(v)}`, {suggestion: 'use no, on-failure, on-failure:N (at most N restarts), always or unless-stopped'})
}

/** --log-opt max-size=10m --log-opt max-file=3 (Docker's json-file options); defaults 10 MiB × 3. Always the
 * whole of it: the monitor (native/cli/monitor.c) takes state.json "logs" as it is, with no defaults of its own. */
export const LOG_DEFAULTS: Readonly<LogOptions> = {maxSize: 10 * 1024 * 1024, maxFiles: 3}

export function parseLogOpts(list: string[] | undefined): LogOptions {
  const o: LogOptions = {...LOG_DEFAULTS}
  for (const kv of list ?? []) {
    const i = kv.indexOf('=')
    const k = i < 0 ? kv : kv.slice(0, i)
    const v = i < 0 ? '' : kv.slice(i + 1)
    if (k === 'max-size') {
      try {
        o.maxSize = parseBytes(v, 'max-size', 1024)
      } catch {
        throw new VeloError('USAGE', `invalid --log-opt max-size=${v}`, {suggestion: 'a size of at least 1k, e.g. 10m'})
      }
    }
    else if (k === 'max-file') {
      if (!/^\d{1,3}$/.test(v) || Number(v) < 1 || Number(v) > 100) throw new VeloError('USAGE', `invalid --log-opt max-file=${v}`, {suggestion: 'a number of files from 1 to 100'})
      o.maxFiles = Number(v)
    } else throw new VeloError('USAGE', `unknown --log-opt ${JSON.stringify(kv)}`, {suggestion: 'use max-size=SIZE (e.g. 10m) and max-file=N'})
  }
  return o
}

export function readWorkload(home: string, name: string): WorkloadStatus | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(tenantDir(home, name), 'workload.json'), 'utf8'))
  } catch {
    return undefined
  }
}

/** The monitor of NAME is alive (its pid file names a live process with the same start time). */
export function monitorAlive(home: string, name: string): boolean {
  let text: string
  try {
    text = fs.readFileSync(path.join(tenantDir(home, name), 'monitor.pid'), 'utf8')
  } catch {
    return false
  }
  const [pid, start] = text.trim().split(' ')
  const st = procStat(Number(pid))
  return !!st && st.start === start && st.state !== 'Z'
}

/** `velo sandbox wait NAME`: block until the workload has ended (the tenant stopped, its monitor gone); its code. */
export async function waitWorkload(home: string, name: string): Promise<number> {
  const s = readState(home, name)
  if (!s.main) throw new VeloError('STATE', `sandbox ${name} has no main command to wait for`, {suggestion: `create it with one: velo sandbox create ${name} -- CMD, or velo sandbox run -d -- CMD`})
  // --rm: the monitor removes the tenant once the command ends, but first lets every registered waiter read the
  // exit (tenants/NAME/waiters/PID, native/cli/monitor.c)
  const waiter = s.autoRemove ? path.join(tenantDir(home, name), 'waiters', String(process.pid)) : undefined
  if (waiter) {
    fs.mkdirSync(path.dirname(waiter), {recursive: true, mode: 0o700})
    fs.writeFileSync(waiter, '')
  }
  try {
    for (;;) {
      const st = readState(home, name)
      if (!isRunning(st) && !monitorAlive(home, name)) {
        const w = readWorkload(home, name)
        if (w?.exitCode === undefined) throw new VeloError('STATE', `sandbox ${name} stopped without a recorded exit of its main command`, {suggestion: 'its monitor was killed, or the host rebooted; velo sandbox start runs it again'})
        return w.exitCode
      }
      await new Promise((r) => setTimeout(r, waiter ? 20 : 100))
    }
  } finally {
    if (waiter) fs.rmSync(waiter, {force: true})
  }
}

export interface LogRecord {
  time: string
  stream: 'stdout' | 'stderr'
  partial: boolean
  text: Buffer
}

/** The log files of NAME, oldest first (container.log.N ... container.log.1, container.log). */
function logFiles(home: string, name: string): string[] {
  const dir = path.join(tenantDir(home, name), 'logs')
  let names: string[]
  try {
    names = fs.readdirSync(dir)
  } catch {
    return []
  }
  const rotated = names
    .map((n) => /^container\.log\.(\d+)$/.exec(n))
    .filter((m): m is RegExpExecArray => !!m)
    .map((m) => Number(m[1]))
    .sort((a, b) => b - a)
    .map((i) => path.join(dir, `container.log.${i}`))
  return [...rotated, ...(names.includes('container.log') ? [path.join(dir, 'container.log')] : [])]
}

/** CRI log lines: "TIME STREAM F|P TEXT" */
export function parseLogLines(buf: Buffer): {records: LogRecord[]; rest: Buffer} {
  const records: LogRecord[] = []
  let at = 0
  for (;;) {
    const nl = buf.indexOf(10, at)
    if (nl < 0) break
    const line = buf.subarray(at, nl)
    at = nl + 1
    const s1 = line.indexOf(32)
    const s2 = s1 < 0 ? -1 : line.indexOf(32, s1 + 1)
    const s3 = s2 < 0 ? -1 : line.indexOf(32, s2 + 1)
    if (s3 < 0) continue
    const stream = line.subarray(s1 + 1, s2).toString()
    const tag = line.subarray(s2 + 1, s3).toString()
    if ((stream !== 'stdout' && stream !== 'stderr') || (tag !== 'F' && tag !== 'P')) continue
    records.push({time: line.subarray(0, s1).toString(), stream, partial: tag === 'P', text: line.subarray(s3 + 1)})
  }
  return {records, rest: buf.subarray(at)}
}

export interface LogsOptions {
  follow?: boolean
  /** only records at or after this time (RFC 3339, or a duration back from now: 10s, 5m, 2h) */
  since?: string
  /** only the last N lines */
  tail?: number
  timestamps?: boolean
}

/** A --since value as an RFC 3339 string comparable with the records' times. */
export function sinceTime(v: string, now = Date.now()): string {
  const d = /^(\d+(?:\.\d+)?)(s|m|h)$/.exec(v)
  if (d) return new Date(now - Number(d[1]) * {s: 1e3, m: 60e3, h: 3600e3}[d[2] as 's' | 'm' | 'h']).toISOString()
  const t = Date.parse(v)
  if (Number.isNaN(t)) throw new VeloError('USAGE', `invalid --since ${JSON.stringify(v)}`, {suggestion: 'a time (2026-12-06T10:00:00Z) or a duration back from now (30s, 5m, 2h)'})
  return new Date(t).toISOString()
}

/** Compare an RFC 3339 record time (ns) with an ISO time (ms): both UTC, so the strings compare in order up to
 * the fraction; pad the shorter fraction. */
export const timeKey = (t: string) => {
  const m = /^(.*?)(?:\.(\d+))?Z$/.exec(t)
  return m ? `${m[1]}.${(m[2] ?? '').padEnd(9, '0')}Z` : t
}

/** `velo sandbox logs NAME`: write the records to out/err (stdout's to out, stderr's to err, as Docker does). */
export async function streamLogs(home: string, name: string, o: LogsOptions, out: (b: Buffer) => void, err: (b: Buffer) => void): Promise<void> {
  const s: TenantState = readState(home, name)
  if (!s.main) throw new VeloError('STATE', `sandbox ${name} has no main command, so no logs`, {suggestion: 'logs are the output of a main command: velo sandbox create NAME -- CMD, or velo sandbox run -d -- CMD'})
  const since = o.since ? timeKey(sinceTime(o.since)) : undefined
  const emit = (r: LogRecord) => {
    const prefix = o.timestamps ? Buffer.from(`${r.time} `) : undefined
    const line = Buffer.concat([...(prefix ? [prefix] : []), r.text, ...(r.partial ? [] : [Buffer.from('\n')])])
    ;(r.stream === 'stdout' ? out : err)(line)
  }
  let all: LogRecord[] = []
  for (const f of logFiles(home, name)) all.push(...parseLogLines(fs.readFileSync(f)).records)
  if (since) all = all.filter((r) => timeKey(r.time) >= since)
  if (o.tail !== undefined) {
    // the last N lines: a partial record belongs to the line that ends in the next full one
    let lines = 0
    let i = all.length
    while (i > 0 && lines < o.tail) {
      i--
      if (!all[i].partial) lines++
      while (i > 0 && all[i - 1].partial) i--
    }
    all = o.tail === 0 ? [] : all.slice(i)
  }
  for (const r of all) emit(r)
  if (!o.follow) return
  // follow container.log from its current end; a rotation (new inode) is read from its start
  const file = path.join(tenantDir(home, name), 'logs', 'container.log')
  let ino = -1
  let pos = 0
  try {
    const st = fs.statSync(file)
    ino = st.ino
    pos = st.size
  } catch {}
  let rest: Buffer = Buffer.alloc(0)
  let lastChance = false
  for (;;) {
    let st: fs.Stats | undefined
    try {
      st = fs.statSync(file)
    } catch {}
    if (st && st.ino !== ino) {
      ino = st.ino
      pos = 0
      rest = Buffer.alloc(0)
    }
    if (st && st.size > pos) {
      const fd = fs.openSync(file, 'r')
      try {
        const b = Buffer.alloc(st.size - pos)
        const n = fs.readSync(fd, b, 0, b.length, pos)
        pos += n
        const parsed = parseLogLines(Buffer.concat([rest, b.subarray(0, n)]))
        rest = parsed.rest
        for (const r of parsed.records) if (!since || timeKey(r.time) >= since) emit(r)
      } finally {
        fs.closeSync(fd)
      }
      continue
    }
    // the workload has ended (tenant stopped, monitor gone): one more read, then done, as docker logs -f ends
    if (lastChance) return
    if (!isRunning(readState(home, name)) && !monitorAlive(home, name)) lastChance = true
    else await new Promise((r) => setTimeout(r, 100))
  }
}
