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

/**
 * Walk BASE/parts[0]/parts[1]/... never through a symlink below BASE (BASE itself is velo's): each component is
 * reached through the fd of the one above it (/proc/self/fd) and opened O_NOFOLLOW | O_DIRECTORY, so a tenant that
 * writes under BASE (a volume's data dir) cannot swap a component for a symlink and have root act elsewhere.
 * `each(at)` runs on every component's path before it is opened; `last(at)`, when given, takes the last component
 * instead of opening it.
 */
function walkNoFollow(base: string, parts: string[], each: (at: string) => void, last?: (at: string) => void): void {
  const flags = fs.constants.O_RDONLY | fs.constants.O_DIRECTORY | fs.constants.O_NOFOLLOW
  let fd = fs.openSync(base, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY)
  try {
    for (const [i, p] of parts.entries()) {
      if (!p || p === '.' || p === '..' || p.includes('/')) throw new Error(`bad path component ${JSON.stringify(p)}`)
      const at = `/proc/self/fd/${fd}/${p}`
      if (last && i === parts.length - 1) return last(at)
      each(at)
      const next = fs.openSync(at, flags)
      fs.closeSync(fd)
      fd = next
    }
  } finally {
    fs.closeSync(fd)
  }
}

/**
 * rmdir BASE/parts[0]/.../parts[n-1], never through a symlink (walkNoFollow; rmdir(2) of the last does not follow
 * one either: a symlink there is ENOTDIR). A tenant swapping a component for a link to a host dir removes nothing
 * there. Errors are thrown as they came (ENOENT, ENOTEMPTY, EBUSY for a mount point, ENOTDIR, ELOOP).
 */
export function rmdirNoFollow(base: string, parts: string[]): void {
  walkNoFollow(base, parts, () => {}, (at) => fs.rmdirSync(at))
}

/**
 * Make BASE/parts[0]/parts[1]/... as directories (each missing one with `mode`), never through a symlink below BASE
 * (walkNoFollow). Throws ELOOP/ENOTDIR when a component is not a real directory.
 */
export function mkdirsNoFollow(base: string, parts: string[], mode = 0o755): void {
  walkNoFollow(base, parts, (at) => {
    try {
      fs.mkdirSync(at, {mode})
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
  })
}
