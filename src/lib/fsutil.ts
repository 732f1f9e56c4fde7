import * as fs from 'node:fs'
import * as path from 'node:path'

/**
 * Replace `file` with `text` atomically: a temp file in the same directory, then rename(2), so a reader (or a
 * crash) sees the old content or the new one, never half of it. The temp file is removed if anything fails;
 * the error is thrown as it came (callers name what they were writing).
 */
export function writeFileAtomic(file: string, text: string, mode = 0o600): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`)
  try {
    // O_EXCL: never write through whatever sits at the temp name (a leftover of a crashed process with this
    // pid, or a planted symlink): it is removed first (rm unlinks a symlink itself, not its target)
    fs.rmSync(tmp, {force: true})
    fs.writeFileSync(tmp, text, {mode, flag: 'wx'})
    fs.renameSync(tmp, file)
  } catch (err) {
    fs.rmSync(tmp, {force: true})
    throw err
  }
}

/** /proc/PID/stat: state letter (field 3) and start time in clock ticks since boot (field 22); undefined when gone. */
export function procStat(pid: number): {state: string; start: string} | undefined {
  let s: string
  try {
    s = fs.readFileSync(`/proc/${pid}/stat`, 'latin1')
  } catch {
    return undefined
  }
  // the command name (field 2) may hold spaces and parentheses: fields after it start past the last ')'
  const rest = s.slice(s.lastIndexOf(')') + 2).split(' ')
  return {state: rest[0], start: rest[19]}
}
