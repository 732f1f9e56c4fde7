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
 * rmdir base/parts[0]/.../parts[n-1], never through a symlink: each directory on the way is opened O_NOFOLLOW
 * through its parent's fd, and rmdir(2) of the last does not follow one (a symlink there is ENOTDIR). For paths a
 * tenant can rewrite (a volume's root): one of them swapping a component for a link to a host dir removes nothing
 * there. Errors are thrown as they came (ENOENT, ENOTEMPTY, EBUSY for a mount point, ENOTDIR, ELOOP).
 */
export function rmdirNoFollow(base: string, parts: string[]): void {
  const flags = fs.constants.O_RDONLY | fs.constants.O_DIRECTORY | fs.constants.O_NOFOLLOW
  let fd = fs.openSync(base, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY)
  try {
    for (const [i, p] of parts.entries()) {
      if (!p || p === '.' || p === '..' || p.includes('/')) throw new Error(`bad path component ${JSON.stringify(p)}`)
      const at = `/proc/self/fd/${fd}/${p}`
      if (i === parts.length - 1) return fs.rmdirSync(at)
      const next = fs.openSync(at, flags)
      fs.closeSync(fd)
      fd = next
    }
  } finally {
    fs.closeSync(fd)
  }
}

/**
 * Make BASE/parts[0]/parts[1]/... as directories (each missing one with `mode`), never through a symlink below BASE:
 * each component is opened O_NOFOLLOW | O_DIRECTORY through the fd of the one above it (/proc/self/fd), so a tenant
 * that writes under BASE (a volume's data dir) cannot swap a component for a symlink and have root make directories
 * elsewhere. BASE itself is velo's. Throws ELOOP/ENOTDIR when a component is not a real directory.
 */
export function mkdirsNoFollow(base: string, parts: string[], mode = 0o755): void {
  const flags = fs.constants.O_RDONLY | fs.constants.O_DIRECTORY | fs.constants.O_NOFOLLOW
  let fd = fs.openSync(base, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY)
  try {
    for (const p of parts) {
      if (!p || p === '.' || p === '..' || p.includes('/')) throw new Error(`bad path component ${JSON.stringify(p)}`)
      const at = `/proc/self/fd/${fd}/${p}`
      try {
        fs.mkdirSync(at, {mode})
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      }
      const next = fs.openSync(at, flags)
      fs.closeSync(fd)
      fd = next
    }
  } finally {
    fs.closeSync(fd)
  }
}
