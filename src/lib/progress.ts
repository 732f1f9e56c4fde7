import type {Progress} from '../store/ingest'
import {fmtBytes} from './command'
import {logJson} from './log'

/**
 * A files/bytes progress bar on stderr, drawn only when stderr is a terminal (CI logs stay clean) and
 * never with --json or VELO_LOG=json (stderr is then one JSON object per line). Redraws at most 10 times a second.
 */
export function stderrProgress(label: string, enabled: boolean): Progress | undefined {
  if (!enabled || !process.stderr.isTTY || logJson()) return undefined
  let totalFiles = 0
  let totalBytes = 0
  let last = 0
  const draw = (files: number, bytes: number, force = false) => {
    const now = Date.now()
    if (!force && now - last < 100) return
    last = now
    const frac = totalBytes > 0 ? bytes / totalBytes : totalFiles > 0 ? files / totalFiles : 1
    const width = 30
    const fill = Math.round(frac * width)
    process.stderr.write(
      `\r${label} [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${files}/${totalFiles} files, ${fmtBytes(bytes)}/${fmtBytes(totalBytes)}\x1b[K`,
    )
  }
  return {
    start(f, b) {
      totalFiles = f
      totalBytes = b
      draw(0, 0, true)
    },
    update(f, b) {
      draw(f, b)
    },
    stop() {
      draw(totalFiles, totalBytes, true)
      process.stderr.write('\n')
    },
  }
}

/** A one-line byte counter on stderr, only on a terminal (CI logs stay clean) and not with VELO_LOG=json, at most 10 redraws a second. */
export function progressLine(enabled: boolean, label = 'import'): ((n: number, total: number) => void) | undefined {
  if (!enabled || !process.stderr.isTTY || logJson()) return undefined
  let last = 0
  return (n, total) => {
    const now = Date.now()
    if (now - last < 100) return
    last = now
    const pct = total > 0 ? ` ${Math.min(100, Math.floor((n / total) * 100))}%` : ''
    process.stderr.write(`\r${label}${pct} ${fmtBytes(n)}${total > 0 ? ` / ${fmtBytes(total)}` : ''}\x1b[K`)
  }
}
