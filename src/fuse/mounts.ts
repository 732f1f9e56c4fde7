import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import {spawn, spawnSync} from 'node:child_process'
import {VeloError, fromSystemError} from '../lib/errors'
import {isRoot} from '../lib/home'
import {StoreLock} from '../lib/lock'
import {procStat, writeFileAtomic} from '../lib/fsutil'
import {nativeBin, packageRoot} from '../lib/native'
import {readLazyRecord} from '../registry/lazy'
import {isReadOnlyStore} from '../lib/store-access'
import {ManifestDb} from '../manifest/db'
import {dropUserHold, putUserHold} from '../store/holds'
import {holdThawed, mayHoldCold} from '../store/cold'
import {sleepSync} from '../lib/sleep'

/**
 * FUSE mounts of images: `velo-fuse` daemons and their records in `$VELO_HOME/mounts/<id>.json` (id = hash of
 * the mount point), so any later velo process can find, check and end them. A record names the daemon by
 * pid AND its start time (/proc/PID/stat), so a reused pid is never mistaken for our daemon. Each mount also
 * holds its layers for gc (`holds` entry "mount:<id>").
 *
 * A mount is *stale* when the kernel still has it but its daemon is gone (killed, crashed): every access
 * then fails with ENOTCONN ("Transport endpoint is not connected") or, once the kernel has
 * aborted the connection, ECONNABORTED ("Software caused connection abort"). Stale mounts are detached lazily
 * (`umount -l`, or `fusermount3 -uz` without root) after aborting the dead connection.
 */
export interface MountRecord {
  id: string
  dir: string
  image: string
  layers: string[] // bottom first, as in the image record
  pid: number
  pidStart: string
  startedAt: string
  log: string
  /** made by ensureImageMount: one daemon per image shared by every holder in `users` */
  shared: boolean
  users: string[]
  /** the daemon negotiated FUSE_ALLOW_IDMAP (Linux 6.12+): the mount can be idmapped for a tenant's user namespace */
  idmap?: boolean
}

export interface MountStatus {
  dir: string
  image?: string
  pid?: number
  /** active: mounted and served; stale: mounted, daemon gone; unmounted: record only, nothing mounted */
  state: 'active' | 'stale' | 'unmounted'
  shared: boolean
  users: string[]
}

export interface UnmountResult {
  dir: string
  image?: string
  wasStale: boolean
  daemonKilled: boolean
}

const FSTYPE = 'fuse.velo'

/**
 * Where a store's mount records live: in the store (mounts/), or, for a user who may only read the store (a
 * shared one), in that user's cache: its mounts are its own, and the store is not this user's to write.
 */
export const mountsDir = (home: string): string => (isReadOnlyStore(home) ? readerMountsDir(home) : path.join(home, 'mounts'))

function readerMountsDir(home: string): string {
  const cache = process.env.VELO_CACHE_HOME
    ? path.resolve(process.env.VELO_CACHE_HOME)
    : process.env.XDG_CACHE_HOME
      ? path.join(path.resolve(process.env.XDG_CACHE_HOME), 'velo')
      : path.join(os.homedir(), '.cache', 'velo')
  return path.join(cache, 'mounts', crypto.createHash('sha256').update(path.resolve(home)).digest('hex').slice(0, 16))
}
export const mountId = (dir: string): string => crypto.createHash('sha256').update(dir).digest('hex').slice(0, 16)
const recordFile = (home: string, id: string) => path.join(mountsDir(home), `${id}.json`)
const holdName = (id: string) => `mount:${id}`

/** Absolute path of DIR without touching DIR itself (a stale mount point cannot even be stat'ed). */
export function resolveMountDir(dir: string): string {
  const abs = path.resolve(dir)
  if (abs === '/') return abs
  try {
    return path.join(fs.realpathSync(path.dirname(abs)), path.basename(abs))
  } catch {
    return abs
  }
}

// ---- records -------------------------------------------------------------------------------------------

function readRecord(home: string, id: string): MountRecord | undefined {
  try {
    return JSON.parse(fs.readFileSync(recordFile(home, id), 'utf8')) as MountRecord
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new VeloError('STATE', `mount record ${recordFile(home, id)} is unreadable: ${(err as Error).message}`, {
      suggestion: 'remove the file; `velo umount DIR` still finds the mount in /proc/self/mountinfo',
    })
  }
}

function writeRecord(home: string, rec: MountRecord): void {
  const f = recordFile(home, rec.id)
  try {
    writeFileAtomic(f, JSON.stringify(rec, null, 2) + '\n')
  } catch (err) {
    throw fromSystemError(err, `cannot write the mount record ${f}`)
  }
}

function removeRecord(home: string, id: string): void {
  try {
    fs.rmSync(recordFile(home, id), {force: true})
  } catch (err) {
    throw fromSystemError(err, `cannot remove the mount record ${recordFile(home, id)}`)
  }
}

export function listRecords(home: string): MountRecord[] {
  let names: string[]
  try {
    names = fs.readdirSync(mountsDir(home))
  } catch {
    return []
  }
  return names
    .filter((n) => /^[0-9a-f]{16}\.json$/.test(n))
    .map((n) => readRecord(home, n.slice(0, 16)))
    .filter((r): r is MountRecord => r !== undefined)
}

/** Serialises mount/unmount/refcount changes of one store across processes (flock on mounts/lock). */
function withMountLock<T>(home: string, fn: () => T): T {
  try {
    fs.mkdirSync(mountsDir(home), {recursive: true, mode: 0o700})
  } catch (err) {
    const e = fromSystemError(err, `cannot create the mount records dir ${mountsDir(home)}`)
    if (!isReadOnlyStore(home)) throw e
    throw new VeloError(e.code, e.message, {
      cause: err,
      suggestion: 'a user who may only read the store keeps its mount records in its own cache: set VELO_CACHE_HOME (or XDG_CACHE_HOME, or HOME) to a directory of your own',
    })
  }
  const lock = new StoreLock(path.join(mountsDir(home), 'lock'))
  try {
    lock.acquire('exclusive', {timeoutSec: 60})
  } catch (err) {
    if (err instanceof VeloError && err.code === 'BUSY')
      throw new VeloError('BUSY', 'another velo process has been mounting or unmounting for 60 s', {suggestion: 'retry; look for hung `velo mount` processes'})
    throw err
  }
  try {
    return fn()
  } finally {
    lock.release()
  }
}

// ---- the kernel's view and the daemon's ------------------------------------------------------------

export interface KernelMount {
  dir: string
  fstype: string
  source: string
  dev: string // major:minor
}

const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)))

/** velo FUSE mounts in this mount namespace, by mount point. */
export function kernelMounts(): Map<string, KernelMount> {
  const out = new Map<string, KernelMount>()
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const sep = line.indexOf(' - ')
    if (sep < 0) continue
    const a = line.slice(0, sep).split(' ')
    const b = line.slice(sep + 3).split(' ')
    if (b[0] !== FSTYPE) continue
    const dir = unescape(a[4])
    out.set(dir, {dir, fstype: b[0], source: unescape(b[1]), dev: a[2]})
  }
  return out
}

/** Start time of PID in clock ticks since boot (field 22 of /proc/PID/stat), or undefined if it is gone. */
export function pidStartTime(pid: number): string | undefined {
  const st = procStat(pid)
  if (!st || st.state === 'Z' || st.state === 'X') return undefined // a zombie serves nothing
  return st.start
}

const daemonAlive = (rec: MountRecord): boolean => rec.pid > 0 && pidStartTime(rec.pid) === rec.pidStart

function waitGone(rec: MountRecord, ms: number): boolean {
  const end = Date.now() + ms
  while (daemonAlive(rec)) {
    if (Date.now() > end) return false
    sleepSync(20)
  }
  return true
}

/** End a daemon that outlived its mount: SIGTERM, then SIGKILL. True when a signal had to be sent. */
function stopDaemon(rec: MountRecord): boolean {
  if (!daemonAlive(rec)) return false
  try {
    process.kill(rec.pid, 'SIGTERM')
  } catch {
    return false
  }
  if (!waitGone(rec, 3000)) {
    try {
      process.kill(rec.pid, 'SIGKILL')
    } catch {
      /* gone meanwhile */
    }
    waitGone(rec, 3000)
  }
  return true
}

/** Does an access to DIR fail with ENOTCONN? Probed in a child with a time limit: a hung daemon must not hang us. */
function probeStale(dir: string): boolean {
  const r = spawnSync('stat', ['-c', '%i', '--', dir], {encoding: 'utf8', timeout: 3000, killSignal: 'SIGKILL'})
  return r.status !== 0 && /not connected|Transport endpoint|connection abort/i.test(String(r.stderr))
}

/** Abort the kernel side of a FUSE connection (unblocks anything waiting on a dead or hung daemon). */
function abortConnection(km: KernelMount | undefined): void {
  if (!km) return
  const [major, minor] = km.dev.split(':')
  if (major !== '0') return
  try {
    fs.writeFileSync(`/sys/fs/fuse/connections/${minor}/abort`, '1')
  } catch {
    /* no fusectl mounted, or not root: the lazy unmount below still detaches it */
  }
}

function lazyUnmount(dir: string): void {
  const r = isRoot() ? spawnSync('umount', ['-l', '--', dir], {encoding: 'utf8'}) : spawnSync('fusermount3', ['-u', '-z', '--', dir], {encoding: 'utf8'})
  if (r.status !== 0 && kernelMounts().has(dir))
    throw new VeloError('BUSY', `cannot detach ${dir}: ${String(r.stderr).trim() || r.error?.message}`, {suggestion: `try: umount -l ${dir}`})
}

/** Unmount DIR normally: fails (BUSY) while files on it are open or processes have their cwd in it. */
function plainUnmount(dir: string): {ok: boolean; message: string} {
  const r = isRoot() ? spawnSync('umount', ['--', dir], {encoding: 'utf8'}) : spawnSync('fusermount3', ['-u', '--', dir], {encoding: 'utf8'})
  return {ok: r.status === 0 || !kernelMounts().has(dir), message: String(r.stderr).trim() || String(r.error?.message ?? '')}
}

// ---- public API ---------------------------------------------------------------------------------------

export interface MountOptions {
  /** stay attached: run the daemon as a child, return when it ends (SIGINT/SIGTERM unmount cleanly) */
  foreground?: boolean
  debug?: boolean
}

/**
 * The manifest DB: the caller's handle when it passed one (a process that keeps one lmdb handle open, as the
 * sandbox code does, must not have a second one opened and closed under it), else one opened for the call.
 */
let callerDb: ManifestDb | undefined
function withDb<T>(home: string, fn: (db: ManifestDb) => T): T {
  if (callerDb) return fn(callerDb)
  const db = ManifestDb.open(home)
  try {
    return fn(db)
  } finally {
    db.close()
  }
}
function usingDb<T>(db: ManifestDb | undefined, fn: () => T): T {
  const prev = callerDb
  callerDb = db ?? prev
  try {
    return fn()
  } finally {
    callerDb = prev
  }
}

const imageLayers = (home: string, image: string): string[] => withDb(home, (db) => db.requireImage(image).layers)
/** The mount's gc hold: in LMDB, or, on a store this user may only read, this user's file in holds/ (src/store/holds.ts). */
function putHold(home: string, id: string, layers: string[]): void {
  if (!callerDb && isReadOnlyStore(home)) {
    const lock = new StoreLock(path.join(home, 'lock')).acquire('shared')
    try {
      putUserHold(home, holdName(id), layers)
    } finally {
      lock.release()
    }
    thawHeld(home, layers)
    return
  }
  withDb(home, (db) => db.putHoldSync({holder: holdName(id), layers, createdAt: new Date().toISOString()}))
  thawHeld(home, layers)
}
/** Held layers never go cold again (gc keeps their objects hot): what is cold now is thawed once, before the daemon
 * opens anything (velo-fuse reads plain objects only; src/store/cold.ts). */
function thawHeld(home: string, layers: string[]): void {
  if (mayHoldCold(home)) withDb(home, (db) => holdThawed(home, db, layers)())
}
function dropHold(home: string, id: string): void {
  if (!callerDb && isReadOnlyStore(home)) return dropUserHold(home, holdName(id))
  withDb(home, (db) => db.deleteHoldSync(holdName(id)))
}

function checkMountPoint(dir: string): void {
  let st: fs.Stats
  try {
    st = fs.statSync(dir)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOTCONN' || code === 'ECONNABORTED')
      throw new VeloError('STATE', `${dir} is a stale mount (its daemon is gone)`, {suggestion: `velo umount ${dir}`})
    throw fromSystemError(err, `cannot mount on ${dir}`)
  }
  if (!st.isDirectory()) throw new VeloError('NOT_A_DIRECTORY', `cannot mount on ${dir}: not a directory`)
}

/** How long an open of a lazy image's file waits for its object before EIO: VELO_LAZY_TIMEOUT seconds, default 30. */
export function lazyTimeoutMs(): number {
  const v = Number(process.env.VELO_LAZY_TIMEOUT)
  return Number.isFinite(v) && v > 0 ? Math.round(v * 1000) : 30_000
}

/**
 * A lazy image (src/registry/lazy.ts) is served with a fetcher: velo-fuse starts it as its child and asks it
 * for every object the store lacks (native/fuse/lazy.c). Its socket sits beside the mount's record.
 */
function lazyArgs(home: string, image: string, layers: string[], dir: string): string[] {
  const rec = readLazyRecord(home, image)
  if (!rec || rec.layers.join('/') !== layers.join('/')) return []
  let sock = path.join(mountsDir(home), `${mountId(dir)}.fetch`)
  if (Buffer.byteLength(sock) > 100) sock = path.join(os.tmpdir(), `velo-fetch-${mountId(dir)}-${crypto.createHash('sha256').update(path.resolve(home)).digest('hex').slice(0, 12)}`)
  const fetcher = [process.execPath, path.join(packageRoot(), 'dist', 'lazy-fetcher.js'), path.resolve(home), image, String(lazyTimeoutMs())]
  return ['--fetch-socket', sock, '--fetch-timeout', String(lazyTimeoutMs()), ...fetcher.flatMap((a) => ['--fetcher', a])]
}

function daemonArgs(home: string, image: string, layers: string[], dir: string, debug?: boolean, trace?: string): string[] {
  const args = ['--name', image]
  if (isRoot()) args.push('--allow-other')
  if (debug) args.push('--debug')
  if (trace) args.push('--trace', trace)
  args.push(...lazyArgs(home, image, layers, dir))
  // the C view wants the layers top first
  return [...args, '--', path.resolve(home), dir, ...[...layers].reverse()]
}

/**
 * FUSE mounts get the kernel's default 128 KiB readahead, so a sequential read the daemon serves is a chain of
 * 128 KiB requests; 1 MiB requests (the negotiated maximum) measured ~25% faster here. Passthrough reads use
 * the backing file's readahead and are not affected. Best effort (root only).
 */
function raiseReadahead(dir: string): void {
  const km = kernelMounts().get(dir)
  if (!km || !isRoot()) return
  try {
    fs.statSync(dir) // waits for the FUSE_INIT exchange, which would reset the value to the kernel's offer
    fs.writeFileSync(`/sys/class/bdi/${km.dev}/read_ahead_kb`, '1024')
  } catch {
    /* no such bdi entry: keep the default */
  }
}

/** Start a detached daemon for LAYERS on DIR and record it. Call under the mount lock. */
function startDaemon(home: string, image: string, layers: string[], dir: string, shared: boolean, users: string[], debug?: boolean, trace?: string): MountRecord {
  const id = mountId(dir)
  const log = path.join(mountsDir(home), `${id}.log`)
  putHold(home, id, layers)
  const bin = nativeBin('velo-fuse')
  const args = daemonArgs(home, image, layers, dir, debug, trace)
  const r = spawnSync(bin, ['--daemon', '--log', log, ...args], {encoding: 'utf8', timeout: 60_000})
  // "PID[ idmap]"
  const [pidText, ...features] = String(r.stdout).trim().split(/\s+/)
  const pid = Number(pidText)
  if (r.status !== 0 || !Number.isInteger(pid) || pid <= 0) {
    dropHold(home, id)
    const why = String(r.stderr).trim() || r.error?.message || `exit ${r.status}`
    const suggestion = /\/dev\/fuse: Permission denied|fusermount3?: .*(permission|not permitted)/i.test(why)
      ? 'mounting without root needs read-write access to /dev/fuse and the setuid fusermount3; or run as root'
      : /device not found|No such file or directory.*\/dev\/fuse|\/dev\/fuse.*No such/i.test(why)
        ? 'load the fuse module (modprobe fuse)'
        : 'see the message above'
    throw new VeloError(/Permission denied|not permitted/i.test(why) ? 'PERMISSION_DENIED' : 'NATIVE', `cannot mount image ${image} on ${dir}: ${why}`, {suggestion})
  }
  raiseReadahead(dir)
  const rec: MountRecord = {
    id,
    dir,
    image,
    layers,
    pid,
    pidStart: pidStartTime(pid) ?? '',
    startedAt: new Date().toISOString(),
    log,
    shared,
    users,
    idmap: features.includes('idmap'),
  }
  writeRecord(home, rec)
  return rec
}

/** Clean whatever is at DIR (a stale mount and/or its record). Call under the mount lock. */
function cleanLocked(home: string, dir: string, opts: {lazy?: boolean; force?: boolean} = {}): UnmountResult {
  const id = mountId(dir)
  const rec = readRecord(home, id)
  const km = kernelMounts().get(dir)
  if (!rec && !km) throw new VeloError('NOT_FOUND', `${dir} is not a velo mount`, {suggestion: 'list mounts with `velo mount`'})
  if (rec?.shared && rec.users.length > 0 && !opts.force && daemonAlive(rec))
    throw new VeloError('BUSY', `${dir} is the shared mount of image ${rec.image}, used by ${rec.users.join(', ')}`, {
      suggestion: 'remove those sandboxes first, or pass --force',
    })
  const alive = rec ? daemonAlive(rec) : false
  const stale = !!km && (rec ? !alive : probeStale(dir))
  if (km) {
    if (stale) {
      abortConnection(km)
      lazyUnmount(dir)
    } else {
      const u = plainUnmount(dir)
      if (!u.ok) {
        if (!opts.lazy)
          throw new VeloError('BUSY', `cannot unmount ${dir}: ${u.message || 'busy'}`, {
            suggestion: `close files and leave the directory (see: fuser -vm ${dir}), or detach it anyway with --lazy`,
          })
        lazyUnmount(dir)
      }
    }
  }
  let daemonKilled = false
  if (rec && alive) {
    // a lazy detach lets the daemon serve open files until they close; only a plain unmount ends it now
    if (!opts.lazy && !waitGone(rec, 5000)) daemonKilled = stopDaemon(rec)
  }
  removeRecord(home, id)
  dropHold(home, id)
  return {dir, image: rec?.image ?? km?.source.replace(/^velo:/, ''), wasStale: stale || (!!rec && !alive), daemonKilled}
}

/** `velo mount IMAGE DIR`: serve IMAGE read-only on DIR. Detached by default; see MountOptions.foreground. */
export async function mountImage(home: string, image: string, dirArg: string, opts: MountOptions = {}): Promise<MountRecord & {exitCode?: number}> {
  const dir = resolveMountDir(dirArg)
  const layers = imageLayers(home, image)
  if (kernelMounts().has(dir)) {
    const rec = readRecord(home, mountId(dir))
    if (!rec || daemonAlive(rec))
      throw new VeloError('ALREADY_EXISTS', `${dir} is already a velo mount${rec ? ` (image ${rec.image})` : ''}`, {suggestion: `velo umount ${dir}`})
    withMountLock(home, () => cleanLocked(home, dir)) // stale: clean it, then mount afresh
  }
  checkMountPoint(dir)
  if (!opts.foreground) return withMountLock(home, () => startDaemon(home, image, layers, dir, false, [], opts.debug))
  return runForeground(home, image, layers, dir, opts.debug)
}

/** The daemon as our child: stdio shared, SIGINT/SIGTERM forwarded; it unmounts and exits, we clean up. */
async function runForeground(home: string, image: string, layers: string[], dir: string, debug?: boolean): Promise<MountRecord & {exitCode?: number}> {
  const id = mountId(dir)
  withMountLock(home, () => putHold(home, id, layers))
  const child = spawn(nativeBin('velo-fuse'), ['--ready-fd', '3', ...daemonArgs(home, image, layers, dir, debug)], {
    stdio: ['inherit', 'inherit', 'inherit', 'pipe'],
  })
  const forward = (sig: NodeJS.Signals) => () => child.kill(sig)
  const onInt = forward('SIGINT')
  const onTerm = forward('SIGTERM')
  process.on('SIGINT', onInt)
  process.on('SIGTERM', onTerm)
  let rec: MountRecord | undefined
  const ready = new Promise<void>((resolve) => {
    let buf = ''
    const pipe = child.stdio[3] as NodeJS.ReadableStream
    pipe.on('data', (d: Buffer) => {
      buf += d.toString()
      const m = /^ready \d+( idmap)?\n/.exec(buf)
      if (m && !rec) {
        rec = {id, dir, image, layers, pid: child.pid!, pidStart: pidStartTime(child.pid!) ?? '', startedAt: new Date().toISOString(), log: '-', shared: false, users: [], idmap: Boolean(m[1])}
        withMountLock(home, () => writeRecord(home, rec!))
        process.stderr.write(`velo: serving ${image} on ${dir} (pid ${child.pid}); Ctrl-C or \`velo umount ${dir}\` to stop\n`)
        resolve()
      }
    })
    pipe.on('end', () => resolve())
  })
  const exited = new Promise<number>((resolve) => child.on('exit', (code, sig) => resolve(code ?? (sig ? 128 : 1))))
  await ready
  const code = await exited
  process.off('SIGINT', onInt)
  process.off('SIGTERM', onTerm)
  withMountLock(home, () => {
    const km = kernelMounts().get(dir)
    if (km) {
      abortConnection(km)
      lazyUnmount(dir)
    }
    removeRecord(home, id)
    dropHold(home, id)
  })
  if (!rec) throw new VeloError('NATIVE', `cannot mount image ${image} on ${dir} (velo-fuse exited ${code})`)
  return {...rec, exitCode: code}
}

/** `velo umount DIR`: unmount, end the daemon, drop the record; a stale mount is detached lazily. */
export function unmount(home: string, dirArg: string, opts: {lazy?: boolean; force?: boolean} = {}): UnmountResult {
  const dir = resolveMountDir(dirArg)
  return withMountLock(home, () => cleanLocked(home, dir, opts))
}

/** Every mount recorded in this store (and unrecorded velo mounts under its mounts dir) with its state. */
export function listMounts(home: string): MountStatus[] {
  const km = kernelMounts()
  const out: MountStatus[] = []
  for (const r of listRecords(home)) {
    const mounted = km.has(r.dir)
    km.delete(r.dir)
    out.push({dir: r.dir, image: r.image, pid: r.pid, state: !mounted ? 'unmounted' : daemonAlive(r) ? 'active' : 'stale', shared: r.shared, users: r.users})
  }
  // velo mounts without a record can belong to any store; only those inside this store's mounts dir are ours
  for (const k of km.values())
    if (k.dir.startsWith(mountsDir(home) + '/'))
      out.push({dir: k.dir, image: k.source.replace(/^velo:/, ''), state: probeStale(k.dir) ? 'stale' : 'active', shared: false, users: []})
  return out.sort((a, b) => a.dir.localeCompare(b.dir))
}

/**
 * Detect and clean stale mounts of this store: records whose daemon is gone (mount detached lazily, record
 * and gc hold dropped). A shared image mount that still has holders keeps its record (and hold): the next
 * ensureImageMount mounts the image afresh for all of them; sandboxes whose overlay sat on the dead mount
 * must be restarted (`velo sandbox stop` + `start` does that). Returns what was cleaned.
 */
export function cleanupStaleMounts(home: string, opts: {db?: ManifestDb} = {}): UnmountResult[] {
  if (!fs.existsSync(mountsDir(home))) return []
  return usingDb(opts.db, () => withMountLock(home, () => {
    const out: UnmountResult[] = []
    for (const r of listRecords(home)) {
      if (daemonAlive(r)) continue
      if (r.shared && r.users.length > 0) {
        // detach the dead mount but keep the record: its holders are carried over when ensureImageMount
        // mounts the image afresh, and releaseImageMount still finds them
        const km = kernelMounts().get(r.dir)
        if (km) {
          abortConnection(km)
          lazyUnmount(r.dir)
          out.push({dir: r.dir, image: r.image, wasStale: true, daemonKilled: false})
        }
        continue
      }
      out.push(cleanLocked(home, r.dir, {force: true}))
    }
    return out
  }))
}

export interface ImageMount {
  /** the read-only merged image: use it as an overlay lowerdir */
  dir: string
  image: string
  layers: string[]
  pid: number
  /** the mount can be idmapped (FUSE_ALLOW_IDMAP): it can be the lower layer of a tenant in a user namespace */
  idmap: boolean
  /** drop this holder's reference; the last one unmounts */
  release(): void
}

/**
 * One daemon per image (per exact layer list) serves every holder: the first call mounts the image at
 * `$VELO_HOME/mounts/images/<key>`, later calls add HOLDER to the record's users (idempotent). A stale
 * shared mount (daemon killed) is cleaned and mounted afresh. Safe across processes (flock).
 * opts.db: the caller's open ManifestDb, used instead of opening (and closing) another handle; the returned
 * release() uses it too, so keep it open until then (or call releaseImageMount with a handle of your own).
 */
export function ensureImageMount(home: string, image: string, holder: string, opts: {db?: ManifestDb; trace?: string} = {}): ImageMount {
  return usingDb(opts.db, () => ensureLocked(home, image, holder, opts))
}

/** trace: a mount of its own (not shared) whose daemon writes each file's first open to that file (velo image profile). */
function ensureLocked(home: string, image: string, holder: string, opts: {db?: ManifestDb; trace?: string}): ImageMount {
  const layers = imageLayers(home, image)
  const key = crypto.createHash('sha256').update(layers.join('\n') + (opts.trace ? `\ntrace:${opts.trace}` : '')).digest('hex').slice(0, 16)
  const dir = path.join(mountsDir(home), 'images', key)
  const rec = withMountLock(home, () => {
    const id = mountId(dir)
    let r = readRecord(home, id)
    const km = kernelMounts().get(dir)
    if (r && km && daemonAlive(r)) {
      if (!r.users.includes(holder)) r.users.push(holder)
      writeRecord(home, r)
      return r
    }
    const users = r ? r.users.filter((u) => u !== holder) : []
    if (r || km) cleanLocked(home, dir, {force: true, lazy: true})
    fs.mkdirSync(dir, {recursive: true, mode: 0o755})
    r = startDaemon(home, image, layers, dir, true, [...users, holder], false, opts.trace)
    return r
  })
  return {dir, image, layers, pid: rec.pid, idmap: rec.idmap === true, release: () => releaseImageMount(home, holder, dir, opts)}
}

/** Drop HOLDER from the shared image mount(s) it uses (all of them when DIR is not given); unmount unused ones. */
export function releaseImageMount(home: string, holder: string, dir?: string, opts: {db?: ManifestDb} = {}): void {
  if (!fs.existsSync(mountsDir(home))) return
  usingDb(opts.db, () => withMountLock(home, () => {
    for (const r of listRecords(home)) {
      if (!r.shared || (dir && r.dir !== dir) || !r.users.includes(holder)) continue
      r.users = r.users.filter((u) => u !== holder)
      if (r.users.length > 0) {
        writeRecord(home, r)
        continue
      }
      // last user: detach lazily (an overlay that still sits on it keeps it alive until it goes)
      cleanLocked(home, r.dir, {force: true, lazy: true})
      try {
        fs.rmdirSync(r.dir)
      } catch {
        /* still busy or already gone */
      }
    }
  }))
}
