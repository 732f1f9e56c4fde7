import * as fs from 'node:fs'
import * as path from 'node:path'
import {VeloError} from './errors'

/**
 * A store this user may read but not write (a shared one, e.g. root's on a CI host, or one on a read-only
 * mount): reads work from it, every write says so before anything changes, and what a reader must record
 * (gc holds, mount records) goes where this user may write (docs/format.md, "A store shared for reading").
 *
 * The test is the manifest database file: everything velo writes ends in a commit to it, and its owner is the
 * store's owner. A store that does not exist yet is not read-only (writers create it).
 */
export const DB_FILE = 'db/velo.lmdb'

function denied(p: string, mode: number): boolean {
  try {
    fs.accessSync(p, mode)
    return false
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    return code === 'EACCES' || code === 'EROFS' || code === 'EPERM'
  }
}

export function isReadOnlyStore(home: string): boolean {
  const db = path.join(home, DB_FILE)
  if (fs.existsSync(db)) return denied(db, fs.constants.W_OK)
  // no database yet: read-only when the store dir exists (or cannot even be looked at) and cannot be written
  return denied(home, fs.constants.W_OK)
}

/** The error for a write to a store this user may only read (or not reach at all); WHAT: the command, e.g. `gc`. */
export function readOnlyStoreError(home: string, what: string): VeloError {
  const readable = !denied(path.join(home, DB_FILE), fs.constants.R_OK)
  let rofs = false
  try {
    fs.accessSync(fs.existsSync(path.join(home, DB_FILE)) ? path.join(home, DB_FILE) : home, fs.constants.W_OK)
  } catch (err) {
    rofs = (err as NodeJS.ErrnoException).code === 'EROFS'
  }
  const state = rofs ? 'on a read-only file system' : readable ? 'read-only for this user' : 'not accessible to this user (another user owns it)'
  return new VeloError('PERMISSION_DENIED', `the store at ${home} is ${state}; ${what} needs to write to it`, {
    suggestion: `use a store of your own (--home DIR or VELO_HOME; without either, a non-root user gets ~/.local/share/velo), or ask the store's owner for write access${
      readable ? '; reads (image ls/inspect/checkout/export, status, fsck, run, mount) work from it as it is' : ''
    }`,
  })
}

/** Before a command writes to the store: say so if this user may not (nothing has been changed yet). */
export function requireWritableStore(home: string, what: string): void {
  if (isReadOnlyStore(home)) throw readOnlyStoreError(home, what)
}
