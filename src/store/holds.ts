import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {VeloError, fromSystemError} from '../lib/errors'
import {writeFileAtomic} from '../lib/fsutil'
import type {HoldRecord} from '../manifest/db'

/**
 * gc holds of users who may read the store but not write it (a shared store): one file each in
 * `$VELO_HOME/holds/`, a directory the store's owner makes with mode 1733 — anyone who can reach the store may
 * create a file there, the sticky bit lets only a file's owner (and the store's owner) remove or replace it,
 * and only the store's owner may list it. The holder writes `<uid>-<first 32 hex of sha256(holder)>.json`
 * (a temp file, then rename) under the store's shared lock; gc reads every such file under its exclusive
 * lock and keeps the layers it names, exactly as it keeps those of the `holds` table in LMDB, which is where
 * a user who may write the store keeps them (src/run/projection.ts, src/fuse/mounts.ts).
 *
 * A file counts only if it is a regular file owned by the uid its name gives, at most MAX_BYTES, and parses
 * as a hold: anything else in there is ignored (and reported by gc), so no user can stop gc or make it read
 * what is not a hold. The same rules are in C for the native `velo run` (native/cli/projection.c).
 */
export const HOLDS_DIR = 'holds'
const MAX_BYTES = 1 << 20
const NAME = /^(\d+)-([0-9a-f]{32})\.json$/
const LAYER = /^[0-9a-f]{64}$/

export const holdsDir = (home: string): string => path.join(home, HOLDS_DIR)

/** The hold file of HOLDER for this user (uid). */
export function userHoldFile(home: string, holder: string, uid = process.getuid?.() ?? 0): string {
  const h = crypto.createHash('sha256').update(holder).digest('hex').slice(0, 32)
  return path.join(holdsDir(home), `${uid}-${h}.json`)
}

/** The store owner's part, when it creates or writes the store: holds/ with mode 1733 (umask aside). */
export function ensureHoldsDir(home: string): void {
  const d = holdsDir(home)
  try {
    fs.mkdirSync(d, {mode: 0o1733})
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    return
  }
  fs.chmodSync(d, 0o1733)
}

function parse(text: string): HoldRecord | undefined {
  let v: unknown
  try {
    v = JSON.parse(text)
  } catch {
    return undefined
  }
  const h = v as HoldRecord
  if (!h || typeof h !== 'object' || typeof h.holder !== 'string' || typeof h.createdAt !== 'string') return undefined
  if (!Array.isArray(h.layers) || !h.layers.every((l) => typeof l === 'string' && LAYER.test(l))) return undefined
  return {holder: h.holder, layers: h.layers, createdAt: h.createdAt}
}

/** Read one hold file as gc trusts it: no symlink followed, no fifo opened for long, owner checked. */
function readHoldFile(file: string, uid: number): HoldRecord | undefined {
  let fd: number
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK)
  } catch {
    return undefined
  }
  try {
    const st = fs.fstatSync(fd)
    if (!st.isFile() || st.uid !== uid || st.size > MAX_BYTES) return undefined
    const buf = Buffer.alloc(st.size)
    let off = 0
    while (off < buf.length) {
      const n = fs.readSync(fd, buf, off, buf.length - off, off)
      if (n === 0) break
      off += n
    }
    return parse(buf.subarray(0, off).toString('utf8'))
  } catch {
    return undefined
  } finally {
    fs.closeSync(fd)
  }
}

/** This user's hold HOLDER, when it exists and is valid. */
export function getUserHold(home: string, holder: string): HoldRecord | undefined {
  const uid = process.getuid?.() ?? 0
  const h = readHoldFile(userHoldFile(home, holder, uid), uid)
  return h && h.holder === holder ? h : undefined
}

function noHoldsDir(home: string, err?: unknown): VeloError {
  if ((err as NodeJS.ErrnoException)?.code === 'EROFS')
    return new VeloError('PERMISSION_DENIED', `the store at ${home} is on a read-only file system: no gc hold can be recorded in ${holdsDir(home)}, and without one its gc could remove what this projection or mount uses`, {
      suggestion: `use the store through a writable mount (its holds/ is the one thing a reader writes), or a store of your own (--home DIR or VELO_HOME)`,
    })
  return new VeloError(
    'PERMISSION_DENIED',
    `the store at ${home} is read-only for this user and has no place for its readers' gc holds (${holdsDir(home)}${
      err ? `: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` : ''
    }): without one, its gc could remove what this projection or mount uses`,
    {
      suggestion: `ask the store's owner to run \`mkdir -m 1733 ${holdsDir(home)}\` (velo makes it in every store it creates or writes); or use a store of your own (--home DIR or VELO_HOME)`,
    },
  )
}

/** Record this user's hold (replacing an older one of the same holder). Call under the store's shared lock. */
export function putUserHold(home: string, holder: string, layers: string[]): void {
  const file = userHoldFile(home, holder)
  try {
    writeFileAtomic(file, JSON.stringify({holder, layers, createdAt: new Date().toISOString()}) + '\n', 0o644)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'EACCES' || code === 'EPERM' || code === 'EROFS') throw noHoldsDir(home, err)
    throw fromSystemError(err, `cannot write the gc hold ${file}`)
  }
}

/** Drop this user's hold HOLDER (nothing to do when there is none). */
export function dropUserHold(home: string, holder: string): void {
  const file = userHoldFile(home, holder)
  try {
    fs.rmSync(file, {force: true})
  } catch (err) {
    throw fromSystemError(err, `cannot remove the gc hold ${file}`)
  }
}

/**
 * Every valid hold in holds/ (gc, under the exclusive store lock), the names of files that are not holds, and
 * the temp files of writers that died between write and rename (no writer is running under the exclusive lock).
 */
export function listUserHolds(home: string): {holds: HoldRecord[]; ignored: string[]; temps: string[]} {
  const d = holdsDir(home)
  const out = {holds: [] as HoldRecord[], ignored: [] as string[], temps: [] as string[]}
  let names: string[]
  try {
    names = fs.readdirSync(d)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return out
    throw fromSystemError(err, `cannot list the gc holds in ${d}`)
  }
  for (const n of names.sort()) {
    if (n.startsWith('.') && n.endsWith('.tmp')) {
      out.temps.push(path.join(d, n))
      continue
    }
    const m = NAME.exec(n)
    const h = m ? readHoldFile(path.join(d, n), Number(m[1])) : undefined
    if (h) out.holds.push(h)
    else out.ignored.push(path.join(d, n))
  }
  return out
}
