import {randomBytes} from 'node:crypto'

/**
 * Structured logs (VELO_LOG=json), Node's side of native/common/vlog.h: the same line shape
 * ({"time","level","component","trace","pid","msg",...fields}) and the same trace id, which the first velo
 * process of a call picks and exports (VELO_TRACE_ID) to every process the call starts.
 */
export const logJson = (): boolean => process.env.VELO_LOG === 'json'

export function traceId(): string {
  if (!process.env.VELO_TRACE_ID) process.env.VELO_TRACE_ID = randomBytes(8).toString('hex')
  return process.env.VELO_TRACE_ID
}

/** RFC 3339 with ns (Node's clock has ms: the rest are zeros), as vlog.h writes it */
const now = () => new Date().toISOString().replace(/\.(\d{3})Z$/, '.$1000000Z')

/** One human line for stderr: as it is, or (VELO_LOG=json) one JSON object on one line. */
export function logLine(level: 'info' | 'warning' | 'error', msg: string, fields: Record<string, unknown> = {}): void {
  if (!logJson()) {
    process.stderr.write(msg + '\n')
    return
  }
  const o: Record<string, unknown> = {time: now(), level, component: 'velo', trace: traceId(), pid: process.pid, msg}
  for (const [k, v] of Object.entries(fields)) if (v !== undefined) o[k] = v
  process.stderr.write(JSON.stringify(o) + '\n')
}
