import * as fs from 'node:fs'
import {spawnSync} from 'node:child_process'
import {VeloError} from './errors'

/**
 * Store-wide reader/writer lock on `$VELO_HOME/lock` with flock(2): writers (ingest, import, farm builds)
 * take it shared, gc takes it exclusive over mark *and* sweep. Node has no flock binding, so the lock is
 * taken by util-linux flock(1) on an fd we pass it: flock locks belong to the open file description, which
 * the child shares with us, so the lock stays held by our fd after the child exits and the kernel drops it
 * when this process closes the fd or dies, however it dies.
 */
/** The lock file, created when missing; read-only when this user may not write it (a shared store): flock works
 * on any open file, so readers of a store they cannot write still exclude its gc. libuv adds O_CLOEXEC. */
function openLockFile(file: string, create: boolean): number {
  if (!create) return fs.openSync(file, fs.constants.O_RDONLY)
  try {
    return fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EACCES' && (err as NodeJS.ErrnoException).code !== 'EROFS') throw err
    try {
      return fs.openSync(file, fs.constants.O_RDONLY)
    } catch {
      throw err // not there to read either: the permission is what stops us
    }
  }
}

export interface LockOptions {
  wait?: boolean
  timeoutSec?: number
  /** what BUSY says when the lock is not granted (default: the store lock's wording) */
  busy?: {message: string; suggestion: string}
  /** when it must wait (held elsewhere): this line on stderr first, so a waiting call never looks hung */
  waitingSays?: string
}

export class StoreLock {
  private fd: number | undefined

  /** create: false locks an existing file opened read-only (e.g. the manifest database itself), never creating it */
  constructor(
    private readonly file: string,
    private readonly opts: {create?: boolean} = {},
  ) {}

  acquire(mode: 'shared' | 'exclusive', opts: LockOptions = {}): this {
    if (this.fd !== undefined) throw new VeloError('INTERNAL', 'lock already held')
    if (opts.waitingSays && opts.wait !== false) {
      try {
        return this.acquire(mode, {...opts, wait: false, waitingSays: undefined})
      } catch (err) {
        if ((err as VeloError).code !== 'BUSY') throw err
      }
      process.stderr.write(`${opts.waitingSays}\n`)
      return this.acquire(mode, {...opts, waitingSays: undefined})
    }
    const fd = openLockFile(this.file, this.opts.create !== false)
    const args = [mode === 'shared' ? '-s' : '-x']
    if (opts.wait === false) args.push('-n')
    else if (opts.timeoutSec !== undefined) args.push('-w', String(opts.timeoutSec))
    args.push('3')
    const r = spawnSync('flock', args, {stdio: ['ignore', 'ignore', 'pipe', fd]})
    if (r.status !== 0) {
      fs.closeSync(fd)
      if (r.error) throw new VeloError('INTERNAL', `cannot run flock(1): ${r.error.message}`, {suggestion: 'install util-linux'})
      const busy = opts.busy ?? {
        message: `the store is busy (${mode} lock on ${this.file} not granted)`,
        suggestion: mode === 'exclusive' ? 'wait for running ingests/imports to finish, then retry' : 'a gc is running; retry when it ends',
      }
      throw new VeloError('BUSY', busy.message, {suggestion: busy.suggestion})
    }
    this.fd = fd
    return this
  }

  /** The open file the lock is on, while held: a child given it (an extra stdio fd) holds the lock as long as it runs. */
  get heldFd(): number | undefined {
    return this.fd
  }

  /** Whether the file this lock holds is still the one at its path (not removed or replaced while we waited). */
  isCurrent(): boolean {
    if (this.fd === undefined) return false
    try {
      const a = fs.fstatSync(this.fd)
      const b = fs.statSync(this.file)
      return a.ino === b.ino && a.dev === b.dev
    } catch {
      return false
    }
  }

  release(): void {
    if (this.fd !== undefined) {
      fs.closeSync(this.fd)
      this.fd = undefined
    }
  }
}
