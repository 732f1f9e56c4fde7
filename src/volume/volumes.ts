import * as fs from 'node:fs'
import * as path from 'node:path'
import {VeloError, fromSystemError} from '../lib/errors'
import {mkdirsNoFollow, rmdirNoFollow, writeFileAtomic} from '../lib/fsutil'
import {isRoot} from '../lib/home'
import {nativeBin} from '../lib/native'
import {StoreLock} from '../lib/lock'
import {newHasher} from '../lib/blake3'
import {emitEvent} from '../lib/events'
import {validateName} from '../lib/names'
import {DISK_MIN, isVolumeExtra, parseBytes} from '../profiles/profile'
import {listTenantNames, readState} from '../sandbox/state'
import {convergeTool, convergeToLayer} from './restore'
import {refuseUnlockedVault, VAULT_DIR, vaultMounts, vaultState} from './vault'
import type {VaultState} from './vault'

/**
 * Named volumes: tenant data that outlives its tenants (`velo volume create`, `-v NAME:/path`).
 *
 * A volume is a directory of the store, $VELO_HOME/volumes/NAME/data, whose files carry the ids a tenant sees
 * (its root is uid 0 on disk). A tenant with a user namespace of its own gets it as an idmapped bind (velo-runtime,
 * the tenant's own id map), so two tenants with different host id ranges share one volume and each sees its files
 * as its own root's; `--userns host` tenants get a plain bind of the same files. Not an overlay: overlayfs refuses
 * to be idmapped as a whole (only its lower layers can be), so an overlay volume could be shared by tenants of one
 * id range only (docs/volumes.md).
 */
export interface VolumeRecord {
  version: 1
  name: string
  createdAt: string
  /** what it was filled from at create (an image's files, checked out as copies) */
  from?: string
  /** --size: bytes its files may take (a project quota on the data dir; a write past it fails with EDQUOT) */
  size?: number
}

/** A snapshot: the volume's files ingested into the store as one layer, kept as the image volume:NAME:SNAP (so gc
 * keeps it, it deduplicates against every image and volume, and `volume create --from volume:NAME:SNAP` works). */
export interface SnapshotInfo {
  name: string
  image: string
  /** its top layer; `layers`: all of them, bottom first (a snapshot stored as a delta is its base's and its own) */
  layer: string
  layers: string[]
  createdAt: string
  files: number
  logicalBytes: number
  newBytes: number // what this snapshot added to the store
}

export interface VolumeInfo extends VolumeRecord {
  dir: string // the data dir (the host's view of the files)
  usedBy: string[] // sandboxes whose state names it (running or not)
  /** its vault, if it has one: unlocked (at .vault in its mounts) or locked (absent) */
  vault?: VaultState
}

export const volumesDir = (home: string) => path.join(home, 'volumes')
export const volumeDir = (home: string, name: string) => path.join(volumesDir(home), name)
export const volumeDataDir = (home: string, name: string) => path.join(volumeDir(home, name), 'data')
/**
 * What a volume's index is named by: the stack of layers (bottom first) it describes — its one layer, or for a snapshot
 * stored as a delta the BLAKE3 of its layers' ids. A layer may top two different stacks (layers are named by their
 * content), so an index is only ever read against the very stack it was written for.
 */
export const stackId = (layers: string[]): string => (layers.length === 1 ? layers[0] : newHasher().update(`velo-stack\n${layers.join('\n')}`).digest('hex'))

/**
 * The fingerprint index of the data dir (native/ingest/fpindex.h), a cache the snapshot and restore passes keep, named
 * after the stack it describes: `stack-<stackId>` (the snapshot it was written with, or the one a restore made the
 * files equal to). `index.new` while a pass writes one; it takes the name when the snapshot is committed or the
 * restore applied. An `index-<layer>` of an older velo named only the stack's top layer, which may top another stack
 * too: it is read for its fingerprints (`stack` undefined: its hits are looked up, and the snapshot is stored whole).
 */
export function volumeIndex(home: string, name: string): {path?: string; stack?: string; next: string} {
  const dir = volumeDir(home, name)
  const next = path.join(dir, 'index.new')
  let best: {path: string; stack?: string; mtime: number} | undefined
  try {
    for (const n of fs.readdirSync(dir)) {
      const m = /^(stack|index)-([0-9a-f]{64})$/.exec(n)
      if (!m) continue
      const mtime = fs.statSync(path.join(dir, n)).mtimeMs
      if (!best || mtime > best.mtime) best = {path: path.join(dir, n), stack: m[1] === 'stack' ? m[2] : undefined, mtime}
    }
  } catch {}
  return best ? {path: best.path, ...(best.stack ? {stack: best.stack} : {}), next} : {next}
}

/** index.new becomes the index of the stack STACK (stackId); older ones go (a kill in between leaves two: the newest
 * is read). */
function adoptIndex(home: string, name: string, stack: string): void {
  const dir = volumeDir(home, name)
  const keep = `stack-${stack}`
  try {
    fs.renameSync(path.join(dir, 'index.new'), path.join(dir, keep))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return // no native pass wrote one
    throw fromSystemError(err, `cannot keep the index of volume ${name}`)
  }
  for (const n of fs.readdirSync(dir)) if ((n === 'index' || n.startsWith('index-') || n.startsWith('stack-')) && n !== keep) fs.rmSync(path.join(dir, n), {force: true})
}

/** Docker's rule for `-v SRC:DST`: a SRC that is a bare name (no `/`, not starting with `.` or `~`) is a volume. */
export function isVolumeName(src: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(src) && !src.includes('/')
}

export function readRecord(home: string, name: string): VolumeRecord {
  validateName('volume', name)
  let text: string
  try {
    text = fs.readFileSync(path.join(volumeDir(home, name), 'volume.json'), 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT')
      throw new VeloError('NOT_FOUND', `no volume named ${JSON.stringify(name)}`, {suggestion: 'list volumes with `velo volume ls`; create one with `velo volume create NAME`'})
    throw fromSystemError(err, `cannot read volume ${name}`)
  }
  try {
    return JSON.parse(text) as VolumeRecord
  } catch {
    throw new VeloError('STATE', `the record of volume ${name} is damaged`, {suggestion: `remove it with \`velo volume rm ${name}\` (its files go with it)`})
  }
}

/** Sandboxes whose state mounts the volume (a half-made tenant without a state file names none). */
export function volumeUsers(home: string, name: string): string[] {
  const users: string[] = []
  for (const t of listTenantNames(home)) {
    try {
      if (readState(home, t).mounts.some((m) => m.volume === name)) users.push(t)
    } catch {}
  }
  return users
}

/** One volume command at a time changes a volume's files through velo (snapshot, restore, finishing a restore). */
export function lockVolume(home: string, name: string, wait = true): StoreLock {
  const file = path.join(volumeDir(home, name), 'lock')
  return new StoreLock(file).acquire('exclusive', {
    wait,
    busy: {message: `volume ${name} is busy (a snapshot, a restore, or a sandbox starting on it holds it)`, suggestion: 'retry when it ends'},
    waitingSays: `volume ${name}: waiting for a snapshot, a restore or a sandbox starting on it`,
  })
}

/**
 * For gc's cold step (src/store/maintenance.ts): the volume's lock, taken exclusive without waiting, when no sandbox
 * names the volume (running or stopped: a start binds its snapshots' farms) and it is not mounted on the host; while
 * gc holds it no create, start or mount can come between its check and its bind. Undefined when the volume is in use
 * or busy: its snapshots' farms and objects stay as they are.
 */
export function lockUnusedVolume(home: string, name: string): StoreLock | undefined {
  let lock: StoreLock
  try {
    lock = lockVolume(home, name, false)
  } catch (err) {
    if ((err as VeloError).code === 'BUSY') return undefined
    throw err
  }
  // checked under the lock: a start or mount that held it has bound what it binds, or written its state
  if (volumeUsers(home, name).length || mountedAt(home, name).length) {
    lock.release()
    return undefined
  }
  return lock
}

/**
 * Hold volumes for a sandbox about to start on them (or a host mount of one): each volume's lock shared, after any
 * unfinished restore or snapshot it had was finished. Snapshot and restore take that lock exclusive, so between the
 * check and the moment the caller's tenant runs (release() then) no restore can begin and find it not yet running,
 * nor a snapshot that would not pause it; a start waits for a live snapshot or restore to end.
 */
export function holdVolumes(home: string, names: string[]): {release: () => void} {
  const held: StoreLock[] = []
  const release = () => {
    for (const l of held.splice(0)) l.release()
  }
  try {
    for (const n of [...new Set(names)].sort()) {
      for (;;) {
        recoverRestore(home, n)
        const file = path.join(volumeDir(home, n), 'lock')
        const lock = new StoreLock(file).acquire('shared', {waitingSays: `volume ${n}: waiting for its snapshot or restore to end`})
        // a restore or snapshot killed since the check left its marker: finish it (we cannot while holding this)
        if (!fs.existsSync(path.join(volumeDir(home, n), RESTORING)) && !fs.existsSync(path.join(volumeDir(home, n), PAUSED_FOR_SNAPSHOT))) {
          held.push(lock)
          break
        }
        lock.release()
      }
    }
  } catch (err) {
    release()
    throw err
  }
  return {release}
}

/** Marker of a restore in place under way: {snapshot, layer}; the next command on the volume finishes it. */
const RESTORING = 'restoring'
/** A restore's plan between velo-converge's two passes (removed after; the next restore writes it again). */
const RESTORE_PLAN = 'restore.plan'

function withStoreLock<T>(home: string, mode: 'shared' | 'exclusive', fn: () => T): T {
  fs.mkdirSync(home, {recursive: true, mode: 0o711})
  const lock = new StoreLock(path.join(home, 'lock')).acquire(mode)
  try {
    return fn()
  } finally {
    lock.release()
  }
}

export interface CreateVolumeOptions {
  /** fill it with an image's files (copies: the volume's files are its own to change) */
  from?: string
  /** an existing volume is fine (what `-v NAME:/path` does, as docker creates a volume on first use) */
  existOk?: boolean
  /** --size, e.g. 1g */
  size?: string
}

/** Where a volume's snapshots show, read-only, inside its mounts: TARGET/.snapshots/SNAP (a reserved name). */
export const SNAPSHOTS_DIR = '.snapshots'

/**
 * The read-only mounts of a volume's snapshots under a mount of it at `target` (their layers' farms, built if
 * missing): what a tenant with `-v NAME:TARGET` and `velo volume mount NAME DIR` show at TARGET/.snapshots/SNAP.
 */
export async function snapshotMounts(home: string, name: string, target: string): Promise<Array<{source: string; target: string; readonly: true; volume: string; snapshot: string}>> {
  recoverRestore(home, name) // a start never binds a half-restored volume
  const snaps = await listSnapshots(home, name)
  if (!snaps.length) return []
  const {ManifestDb} = await import('../manifest/db')
  const {ensureFarm, farmPath} = await import('../sandbox/farm')
  const db = ManifestDb.open(home)
  try {
    return snaps.flatMap((s) => {
      // a view is one farm: a snapshot stored as a delta is made one layer first (once: its image then names it)
      const layer = s.layers.length > 1 ? squashSnapshot(home, db, name, s) : s.layer
      if (!layer) return [] // removed meanwhile (velo volume snapshot rm)
      ensureFarm(home, db, layer)
      // the mount point, made from the host (a read-only mount of the volume could not get it made inside); its
      // tenants write there, so never through a symlink one of them put in place of .snapshots
      try {
        mkdirsNoFollow(volumeDataDir(home, name), [SNAPSHOTS_DIR, s.name])
      } catch (err) {
        throw fromSystemError(err, `cannot make the mount point of snapshot ${s.name} in volume ${name} (is ${SNAPSHOTS_DIR} a real directory?)`)
      }
      return {source: farmPath(home, layer), target: path.posix.join(target, SNAPSHOTS_DIR, s.name), readonly: true as const, volume: name, snapshot: s.name}
    })
  } finally {
    db.close()
  }
}

/** The image that holds snapshot SNAP of volume NAME. */
export const snapshotImage = (volume: string, snap: string) => `volume:${volume}:${snap}`

function validateSnapshotName(snap: string): string {
  if (!isVolumeName(snap) || snap.length > 64)
    throw new VeloError('INVALID_NAME', `invalid snapshot name ${JSON.stringify(snap)}`, {suggestion: "letters, digits, '.', '_' and '-', starting with a letter or digit, at most 64 characters (no '/')"})
  return snap
}

async function hasImage(home: string, image: string): Promise<boolean> {
  const {ManifestDb} = await import('../manifest/db')
  const db = ManifestDb.open(home)
  try {
    return !!db.getImage(image)
  } finally {
    db.close()
  }
}

/** `velo volume snapshot NAME SNAP`: the files as they are now, stored once in the store (deduplicated). */
/**
 * `velo volume snapshot NAME SNAP`. The running sandboxes that may write the volume are paused for the pass (their
 * cgroups frozen, as `docker commit` pauses the container), so the snapshot is one instant of what they wrote: a
 * database's log and data files agree. Sandboxes with it read-only are not paused (their reads never wait), nor
 * with `pause: false` (each file is then still one state of it: velo-ingest reads a file that changes meanwhile
 * again). A snapshot killed while they are paused leaves `volumes/NAME/paused-for-snapshot`, and the next command
 * on the volume thaws them.
 */
export async function snapshotVolume(home: string, name: string, snap: string, o: {pause?: boolean} = {}): Promise<SnapshotInfo & {paused: string[]}> {
  readRecord(home, name)
  validateSnapshotName(snap)
  const lock = lockVolume(home, name)
  try {
    recoverRestore(home, name, 'locked')
    refuseMountsInside(home, name, 'a snapshot')
    const image = snapshotImage(name, snap)
    if (await hasImage(home, image)) throw new VeloError('ALREADY_EXISTS', `volume ${name} has a snapshot named ${snap}`, {suggestion: `pick another name, or remove it: velo volume snapshot rm ${name} ${snap}`})
    const {ingestDirectory} = await import('../store/ingest')
    let guard: ReturnType<typeof pauseWriters> | undefined
    try {
      // the fingerprint index: files unchanged since the last snapshot or restore are not read again; a pass
      // that fails leaves no index.new for a later one to adopt
      const ix = volumeIndex(home, name)
      fs.rmSync(ix.next, {force: true})
      const r = await ingestDirectory(home, volumeDataDir(home, name), image, undefined, undefined, {
        // a delta over the snapshot the index describes, while its stack is short enough
        index: {in: ix.path, out: ix.next, held: (db) => (ix.stack ? heldStack(db, name, ix.stack) : undefined)},
        // never the vault: its files are secrets, and the store's objects are shared and unencrypted (only its
        // mount point is in the data dir, but a snapshot restored while it is locked must not make it appear)
        omitRootNames: [VAULT_DIR],
        // the writers paused once the store lock is held: never frozen while a gc holds the store
        onLocked: () => {
          if (o.pause !== false) guard = pauseWriters(home, name)
        },
      })
      adoptIndex(home, name, stackId(r.layers))
      const paused = guard?.paused ?? []
      emitEvent(home, 'volume', 'snapshot', name, {snapshot: snap, layer: r.layer, paused: paused.length})
      return {name: snap, image, layer: r.layer, layers: r.layers, createdAt: new Date().toISOString(), files: r.files, logicalBytes: r.logicalBytes, newBytes: r.newBytes, paused}
    } finally {
      if (guard) thawWriters(home, name, guard)
    }
  } finally {
    lock.release()
  }
}

/** At most this many layers in a snapshot's stack: a snapshot over a longer one is stored whole (views, restores and
 * checkouts read every layer of the stack). */
export const MAX_SNAPSHOT_LAYERS = 8

/** The layers (bottom first) of a snapshot of volume NAME that holds exactly the stack STACK (stackId) — what the
 * volume's index describes — and whether a delta may go on them (shorter than MAX_SNAPSHOT_LAYERS); undefined: no
 * snapshot holds it (the index's hits are looked up, and the snapshot is stored whole). */
function heldStack(db: import('../manifest/db').ManifestDb, name: string, stack: string): {layers: string[]; delta: boolean} | undefined {
  const prefix = snapshotImage(name, '')
  const img = db.listImages().find((i) => i.name.startsWith(prefix) && i.layers.length > 0 && stackId(i.layers) === stack)
  return img ? {layers: img.layers, delta: img.layers.length < MAX_SNAPSHOT_LAYERS} : undefined
}

/**
 * A snapshot stored as a delta made one layer (src/image/view.ts squashLayers: the layer a full snapshot of the same
 * files has), its image then naming that layer alone; the volume's index follows it when it described the old stack.
 * Under the store's shared lock, as an ingest; two at once write the same layer. Returns the layer, or undefined when
 * the snapshot was removed meanwhile.
 */
function squashSnapshot(home: string, db: import('../manifest/db').ManifestDb, name: string, s: SnapshotInfo): string | undefined {
  const {squashLayers} = require('../image/view') as typeof import('../image/view')
  const lock = new StoreLock(path.join(home, 'lock')).acquire('shared')
  try {
    // squashed by another call meanwhile: its one layer; removed meanwhile: no view
    const settled = () => {
      const now = db.getImage(s.image)
      return now?.layers.length === 1 ? now.layers[0] : undefined
    }
    const img = db.getImage(s.image)
    if (!img || img.layers.join('/') !== s.layers.join('/')) return settled()
    const squashed = squashLayers(db, img.layers, img.source)
    // the image as it is now, in the write's own transaction: one removed (snapshot rm) or squashed meanwhile stays so
    let replaced = false
    db.writeSync(() => {
      const now = db.getImage(s.image)
      if (!now || now.layers.join('/') !== s.layers.join('/')) return
      db.putLayerInTxn(squashed.info, squashed.entries)
      const {files: _f, logicalBytes: _b, ...rest} = now
      db.images.putSync(now.name, {...rest, layers: [squashed.info.id]})
      replaced = true
    }, 'squash')
    if (!replaced) return settled()
    try {
      // the index of exactly this stack now describes the squashed layer (the same tree)
      fs.renameSync(path.join(volumeDir(home, name), `stack-${stackId(s.layers)}`), path.join(volumeDir(home, name), `stack-${squashed.info.id}`))
    } catch {} // it describes another stack, or another squash moved it
    return squashed.info.id
  } finally {
    lock.release()
  }
}

const PAUSED_FOR_SNAPSHOT = 'paused-for-snapshot'

/** Hold the running sandboxes that mount the volume writable paused (src/sandbox/pause.ts pauseFor: let go on
 * SIGINT/SIGTERM/SIGHUP too; ones the user paused are held as well, so an unpause waits for the snapshot), their
 * names and this snapshot's hold recorded first in volumes/NAME/paused-for-snapshot (a SIGKILL midway leaves them
 * for the next command on the volume to let go). */
function pauseWriters(home: string, name: string): {paused: string[]; release: () => string[]} {
  const {isRunning, readState} = require('../sandbox/state') as typeof import('../sandbox/state')
  const {pauseFor, selfHolder} = require('../sandbox/pause') as typeof import('../sandbox/pause')
  const writers = volumeUsers(home, name).filter((t) => {
    try {
      const s = readState(home, t)
      return isRunning(s) && s.mounts.some((m) => m.volume === name && !isVolumeExtra(m) && !m.readonly)
    } catch {
      return false
    }
  })
  if (!writers.length) return {paused: [], release: () => []}
  const holder = selfHolder('snapshot', name)
  const record = path.join(volumeDir(home, name), PAUSED_FOR_SNAPSHOT)
  writeFileAtomic(record, JSON.stringify({sandboxes: writers, holder}) + '\n')
  try {
    return pauseFor(home, writers, holder)
  } catch (err) {
    fs.rmSync(record, {force: true}) // pauseFor let go of what it held
    throw err
  }
}

/** Let go of what pauseWriters held, then drop its record. */
function thawWriters(home: string, name: string, guard: {release: () => string[]}): void {
  const failed = guard.release()
  if (failed.length)
    throw new VeloError('STATE', `volume ${name}: sandboxes paused for the snapshot could not be thawed: ${failed.join('; ')}`, {suggestion: 'unpause them: velo sandbox unpause NAME'})
  fs.rmSync(path.join(volumeDir(home, name), PAUSED_FOR_SNAPSHOT), {force: true})
}

const isSandboxName = (t: string) => {
  try {
    validateName('sandbox', t)
    return true
  } catch {
    return false
  }
}

/** What a killed snapshot held paused (its record): its holds let go now, which thaws those nobody else holds. */
function thawLeftFrozen(home: string, name: string): void {
  const {releaseHolds} = require('../sandbox/pause') as typeof import('../sandbox/pause')
  let left: {sandboxes?: unknown; holder?: import('../sandbox/pause').PauseHolder} | unknown[] = {}
  try {
    left = JSON.parse(fs.readFileSync(path.join(volumeDir(home, name), PAUSED_FOR_SNAPSHOT), 'utf8'))
  } catch {}
  // a record from before holds were kept is a list of names, their pauses recorded as nobody's (the user's)
  const [names, holder] = Array.isArray(left) ? [left, {by: 'user' as const}] : [left.sandboxes, left.holder]
  const valid = Array.isArray(names) && holder && (holder.by === 'user' || holder.by === 'snapshot') ? names.filter((t): t is string => typeof t === 'string' && isSandboxName(t)) : []
  const failed = valid.length ? releaseHolds(home, valid, holder!) : []
  if (failed.length)
    throw new VeloError('STATE', `volume ${name}: sandboxes a killed snapshot paused could not be thawed: ${failed.join('; ')}`, {suggestion: 'unpause them: velo sandbox unpause NAME'})
  fs.rmSync(path.join(volumeDir(home, name), PAUSED_FOR_SNAPSHOT), {force: true})
}

/** `velo volume snapshots NAME`, oldest first. */
export async function listSnapshots(home: string, name: string): Promise<SnapshotInfo[]> {
  readRecord(home, name)
  const {ManifestDb} = await import('../manifest/db')
  const db = ManifestDb.open(home)
  try {
    const prefix = snapshotImage(name, '')
    return db
      .listImages()
      .filter((i) => i.name.startsWith(prefix) && i.layers.length > 0)
      .map((i) => {
        const top = i.layers[i.layers.length - 1]
        const l = db.getLayer(top)
        // a delta's layer counts what changed; its image, the whole tree
        return {name: i.name.slice(prefix.length), image: i.name, layer: top, layers: i.layers, createdAt: i.createdAt, files: i.files ?? l?.files ?? 0, logicalBytes: i.logicalBytes ?? l?.logicalBytes ?? 0, newBytes: 0}
      })
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt))
  } finally {
    db.close()
  }
}

/** `velo volume snapshot rm NAME SNAP`: its image goes; gc frees the objects no one else holds. */
export async function removeSnapshot(home: string, name: string, snap: string): Promise<{volume: string; snapshot: string}> {
  validateName('volume', name)
  validateSnapshotName(snap)
  // a restore to it left unfinished is finished first (it needs the snapshot's layer)
  recoverRestore(home, name)
  const {ManifestDb} = await import('../manifest/db')
  const db = ManifestDb.open(home)
  try {
    if (!db.deleteImageSync(snapshotImage(name, snap))) throw new VeloError('NOT_FOUND', `volume ${name} has no snapshot named ${snap}`, {suggestion: `list them: velo volume snapshots ${name}`})
  } finally {
    db.close()
  }
  // its mount point, if empty (a tenant may have put files there: those stay), never through a symlink a tenant
  // put in place of .snapshots
  try {
    rmdirNoFollow(volumeDataDir(home, name), [SNAPSHOTS_DIR, snap])
  } catch {}
  return {volume: name, snapshot: snap}
}

/**
 * `velo volume restore NAME SNAP`: the files become the snapshot's again. In place when velo-converge is built:
 * only the paths that differ from the snapshot are rewritten (src/volume/restore.ts), under a marker that makes
 * the next command on the volume finish a restore that was killed, so no sandbox ever starts on a half-restored
 * volume. Without it: a checkout beside the data dir, then a swap of the two by rename. Refused while a running
 * sandbox has it mounted (its bind holds the old files) or it is mounted on the host; stopped ones see the
 * restored files at their next start.
 */
export async function restoreVolume(home: string, name: string, snap: string): Promise<{volume: string; snapshot: string; files: number; written?: number; removed?: number; metaOnly?: number}> {
  readRecord(home, name)
  validateSnapshotName(snap)
  const lock = lockVolume(home, name)
  try {
    // the vault's mount point is not a snapshot's to remove, and its files are in no snapshot
    refuseUnlockedVault(home, name, 'a restore')
    refuseMountsInside(home, name, 'a restore')
    return await restoreLocked(home, name, snap)
  } finally {
    lock.release()
  }
}

async function restoreLocked(home: string, name: string, snap: string): Promise<{volume: string; snapshot: string; files: number; written?: number; removed?: number; metaOnly?: number}> {
  // an unfinished restore is not finished first: this one makes the files equal to SNAP from whatever state they
  // are in (planning converges from any), and replaces its marker (so a restore whose snapshot is gone never
  // blocks the volume)
  recoverRestore(home, name, 'locked', {restoring: false})
  const image = snapshotImage(name, snap)
  const {ManifestDb} = await import('../manifest/db')
  const db = ManifestDb.open(home)
  let layers: string[] = []
  let files = 0
  try {
    const img = db.getImage(image)
    if (!img) throw new VeloError('NOT_FOUND', `volume ${name} has no snapshot named ${snap}`, {suggestion: `list them: velo volume snapshots ${name}`})
    layers = img.layers
    files = img.files ?? db.getLayer(layers[layers.length - 1])?.files ?? 0
  } finally {
    db.close()
  }
  const {isRunning, readState} = await import('../sandbox/state')
  const running = volumeUsers(home, name).filter((t) => {
    try {
      return isRunning(readState(home, t))
    } catch {
      return false
    }
  })
  if (running.length) throw new VeloError('BUSY', `volume ${name} is in use by running sandboxes: ${running.join(', ')}`, {suggestion: `stop them first (velo sandbox stop ${running.join(' ')})`})
  if (mountedAt(home, name).length) throw new VeloError('BUSY', `volume ${name} is mounted at ${mountedAt(home, name).join(', ')}`, {suggestion: `unmount it first: velo volume umount ${mountedAt(home, name)[0]}`})
  if (layers.length && convergeTool()) {
    const r = finishRestore(home, name, layers, {snapshot: snap, layer: layers[layers.length - 1], layers})
    emitEvent(home, 'volume', 'restore', name, {snapshot: snap})
    return {volume: name, snapshot: snap, files, ...r}
  }
  const dir = volumeDir(home, name)
  const fresh = path.join(dir, `.restore-${process.pid}`)
  const old = path.join(dir, `.old-${process.pid}`)
  fs.rmSync(fresh, {recursive: true, force: true})
  const {checkoutImage} = await import('../store/checkout')
  try {
    files = checkoutImage(home, image, fresh).files
    fs.mkdirSync(path.join(fresh, SNAPSHOTS_DIR), {recursive: true, mode: 0o755})
    fs.renameSync(volumeDataDir(home, name), old)
    fs.renameSync(fresh, volumeDataDir(home, name))
  } catch (err) {
    fs.rmSync(fresh, {recursive: true, force: true})
    if (!fs.existsSync(volumeDataDir(home, name)) && fs.existsSync(old)) fs.renameSync(old, volumeDataDir(home, name))
    throw err instanceof VeloError ? err : fromSystemError(err, `cannot restore volume ${name}`)
  }
  fs.rmSync(old, {recursive: true, force: true})
  emitEvent(home, 'volume', 'restore', name, {snapshot: snap})
  return {volume: name, snapshot: snap, files}
}

export async function createVolume(home: string, name: string, o: CreateVolumeOptions = {}): Promise<VolumeInfo> {
  validateName('volume', name)
  const size = o.size === undefined ? undefined : parseBytes(o.size, '--size', DISK_MIN)
  if (size !== undefined && !isRoot())
    throw new VeloError('PERMISSION_DENIED', '--size needs root (a project quota is set with quotactl)', {suggestion: 'create the volume without --size'})
  if (!isVolumeName(name)) throw new VeloError('INVALID_NAME', `invalid volume name ${JSON.stringify(name)}`, {suggestion: "letters, digits, '.', '_' and '-', starting with a letter or digit (no ':' or '/')"})
  fs.mkdirSync(volumesDir(home), {recursive: true, mode: 0o711})
  const dir = volumeDir(home, name)
  // claim the name: mkdir is atomic; the record is written last, so a dir without one is a create in progress
  // (or one killed: `velo volume rm` removes it)
  try {
    fs.mkdirSync(dir, {mode: 0o711})
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      if (o.existOk && !o.from) return inspectVolume(home, name)
      throw new VeloError('ALREADY_EXISTS', `a volume named ${name} already exists`, {suggestion: `pick another name, or remove it first: velo volume rm ${name}`})
    }
    throw fromSystemError(err, `cannot create volume ${name}`)
  }
  try {
    const data = volumeDataDir(home, name)
    // the tenant's root owns its root dir (uid 0 on disk: the ids a tenant sees; rootless: the user, its root)
    fs.mkdirSync(data, {mode: 0o755})
    // the quota first: files made in the dir from then on are counted (the project id is inherited)
    if (size !== undefined) (await import('../sandbox/container')).volumeQuota(home, name, size)
    if (o.from) {
      // real copies with the image's owners, modes and times (never links into the store)
      const {checkoutImage} = await import('../store/checkout')
      checkoutImage(home, o.from, data)
    }
    fs.mkdirSync(path.join(data, SNAPSHOTS_DIR), {recursive: true, mode: 0o755})
    const rec: VolumeRecord = {version: 1, name, createdAt: new Date().toISOString(), ...(o.from ? {from: o.from} : {}), ...(size !== undefined ? {size} : {})}
    writeFileAtomic(path.join(dir, 'volume.json'), JSON.stringify(rec, null, 2) + '\n')
    emitEvent(home, 'volume', 'create', name, o.from ? {from: o.from} : {})
    return {...rec, dir: data, usedBy: []}
  } catch (err) {
    fs.rmSync(dir, {recursive: true, force: true})
    throw err
  }
}

/** The data dir made equal to LAYERS (bottom first) in place, then the marker removed: what a restore runs, and what
 * the next command runs again after a restore was killed (planning again converges on the same tree). Volume lock
 * held. */
function finishRestore(home: string, name: string, layers: string[], marker?: {snapshot: string; layer: string; layers: string[]}): {written: number; removed: number; metaOnly: number} {
  const data = volumeDataDir(home, name)
  const ix = volumeIndex(home, name)
  fs.rmSync(ix.next, {force: true})
  // the store's shared lock while the layer's objects are copied: gc (exclusive) waits; it keeps the marker's layer
  const store = new StoreLock(path.join(home, 'lock')).acquire('shared')
  let r: {written: number; removed: number; metaOnly: number}
  try {
    // after planning, before the first change: the cold objects the plan copies made plain (a damaged one fails
    // the restore here, the volume untouched), then the marker (a new restore's; one being finished has it)
    const {thawObjectPaths} = require('../store/cold') as typeof import('../store/cold')
    r = convergeToLayer(home, data, layers, ix.path ?? '', ix.next, path.join(volumeDir(home, name), RESTORE_PLAN), (objects) => {
      thawObjectPaths(home, objects)
      if (marker) writeFileAtomic(path.join(volumeDir(home, name), RESTORING), JSON.stringify(marker) + '\n')
    })
  } finally {
    store.release()
  }
  fs.mkdirSync(path.join(data, SNAPSHOTS_DIR), {recursive: true, mode: 0o755})
  adoptIndex(home, name, stackId(layers))
  fs.rmSync(path.join(volumeDir(home, name), RESTORING), {force: true})
  return r
}

/**
 * What a snapshot or restore killed midway left. A restore in place (a marker): finished now. Writers a snapshot
 * paused: thawed. A swap: the data dir renamed aside and the new one not yet in place → the old one back; leftovers
 * of either kind removed (the swap is two renames: between them the data dir is missing). `mode`: 'locked', the
 * caller holds the volume lock; 'wait' for it (a sandbox about to use the volume); 'try': a volume busy with a
 * live snapshot or restore is left to it (a listing never waits for one).
 */
export function recoverRestore(home: string, name: string, mode: 'locked' | 'wait' | 'try' = 'wait', o: {restoring?: boolean} = {}): void {
  const dir = volumeDir(home, name)
  let names: string[]
  try {
    names = fs.readdirSync(dir)
  } catch {
    return
  }
  const leftover = (n: string) => n.startsWith('.old-') || n.startsWith('.restore-')
  if (o.restoring === false) names = names.filter((n) => n !== RESTORING)
  if (!names.some(leftover) && !names.includes(RESTORING) && !names.includes(PAUSED_FOR_SNAPSHOT)) return
  // everything below under the volume's lock: a live swap's .restore-PID or .old-PID is not a leftover
  let lock: StoreLock | undefined
  try {
    lock = mode === 'locked' ? undefined : lockVolume(home, name, mode === 'wait')
  } catch (err) {
    if (mode === 'try' && (err as VeloError).code === 'BUSY') return // a live snapshot or restore: its own business
    throw err
  }
  try {
    names = fs.readdirSync(dir)
    if (o.restoring === false) names = names.filter((n) => n !== RESTORING)
    const olds = names.filter((n) => n.startsWith('.old-'))
    if (!names.includes('data') && olds.length) fs.renameSync(path.join(dir, olds[0]), volumeDataDir(home, name))
    for (const n of fs.readdirSync(dir)) if (leftover(n)) fs.rmSync(path.join(dir, n), {recursive: true, force: true})
  } catch (err) {
    lock?.release()
    throw err
  }
  if (names.includes(PAUSED_FOR_SNAPSHOT))
    try {
      // a snapshot killed while it held writers frozen: thawed now (the lock says that snapshot is gone)
      thawLeftFrozen(home, name)
    } catch (err) {
      lock?.release()
      throw err
    }
  if (!names.includes(RESTORING)) {
    lock?.release()
    return
  }
  try {
    let pending: {snapshot: string; layer: string; layers?: string[]}
    try {
      pending = JSON.parse(fs.readFileSync(path.join(dir, RESTORING), 'utf8'))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return // finished meanwhile by another command
      throw new VeloError('STATE', `volume ${name}: the marker of an unfinished restore is damaged`, {suggestion: `restore a snapshot again: velo volume restore ${name} SNAP`})
    }
    finishRestore(home, name, pending.layers ?? [pending.layer])
    emitEvent(home, 'volume', 'restore', name, {snapshot: pending.snapshot, resumed: 1})
  } finally {
    lock?.release()
  }
}

export function inspectVolume(home: string, name: string): VolumeInfo {
  const rec = readRecord(home, name)
  recoverRestore(home, name, 'try')
  const vault = vaultState(home, name)
  return {...rec, dir: volumeDataDir(home, name), usedBy: volumeUsers(home, name), ...(vault ? {vault} : {})}
}

export function listVolumes(home: string): VolumeInfo[] {
  let names: string[]
  try {
    names = fs.readdirSync(volumesDir(home)).filter((n) => !n.startsWith('.')).sort()
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw fromSystemError(err, `cannot list ${volumesDir(home)}`)
  }
  const out: VolumeInfo[] = []
  for (const n of names) {
    try {
      out.push(inspectVolume(home, n))
    } catch {} // a create in progress, or a damaged record: rm removes it
  }
  return out
}

/** `velo volume rm NAME`: refused while a sandbox names it (running or stopped, as docker refuses). */
export function removeVolume(home: string, name: string): {name: string} {
  validateName('volume', name)
  const dir = volumeDir(home, name)
  if (!fs.existsSync(dir)) throw new VeloError('NOT_FOUND', `no volume named ${JSON.stringify(name)}`, {suggestion: 'list volumes with `velo volume ls`'})
  // under the store's exclusive lock: a sandbox create claims its name (and re-checks its volumes) under the shared one
  return withStoreLock(home, 'exclusive', () => {
    const users = volumeUsers(home, name)
    if (users.length)
      throw new VeloError('BUSY', `volume ${name} is in use by ${users.join(', ')}`, {suggestion: `remove those sandboxes first (velo sandbox rm -f ${users.join(' ')})`})
    refuseUnlockedVault(home, name, 'removing the volume')
    if (mountedAt(home, name).length)
      throw new VeloError('BUSY', `volume ${name} is mounted at ${mountedAt(home, name).join(', ')}`, {suggestion: `unmount it first: velo volume umount ${mountedAt(home, name)[0]}`})
    const trash = path.join(volumesDir(home), `.rm-${name}-${process.pid}`)
    try {
      fs.renameSync(dir, trash)
    } catch (err) {
      throw fromSystemError(err, `cannot remove volume ${name}`)
    }
    fs.rmSync(trash, {recursive: true, force: true})
    emitEvent(home, 'volume', 'rm', name)
    return {name}
  })
}

/** The snapshots' images of a removed volume go with it (gc then frees what no one else holds). */
export async function removeVolumeSnapshots(home: string, name: string): Promise<string[]> {
  const {ManifestDb} = await import('../manifest/db')
  const db = ManifestDb.open(home)
  try {
    const gone = db.listImages().filter((i) => i.name.startsWith(snapshotImage(name, '')))
    for (const i of gone) db.deleteImageSync(i.name)
    return gone.map((i) => i.name.slice(snapshotImage(name, '').length))
  } finally {
    db.close()
  }
}

/**
 * Snapshot and restore walk the data dir on the host, where nothing is ever mounted by velo (its binds of snapshots
 * and the vault are private mounts elsewhere): a mount found inside it (propagated there by a host's shared mount,
 * or made by hand) would have its files read into the store, or rewritten, so the pass is refused.
 */
function refuseMountsInside(home: string, name: string, what: string): void {
  const data = fs.realpathSync(volumeDataDir(home, name)) + '/'
  const inside: string[] = []
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const point = (line.split(' ')[4] ?? '').replace(/\\(\d{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)))
    if (point.startsWith(data)) inside.push(point)
  }
  if (inside.length)
    throw new VeloError('BUSY', `${what} of volume ${name} would read what is mounted inside its data dir: ${inside.join(', ')}`, {
      suggestion: `unmount it (umount ${inside[0]}); velo never mounts there itself`,
    })
}

/** Mount points on this host whose source is the volume's data dir (`velo volume mount`). */
export function mountedAt(home: string, name: string): string[] {
  const data = volumeDataDir(home, name)
  let real: string
  try {
    real = fs.realpathSync(data)
  } catch {
    return []
  }
  const out: string[] = []
  // /proc/self/mountinfo: field 4 is the root of the mount within its filesystem, field 5 the mount point
  const st = fs.statSync(real)
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ')
    if (f.length < 5) continue
    const point = f[4].replace(/\\(\d{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)))
    try {
      const p = fs.statSync(point)
      if (p.ino === st.ino && p.dev === st.dev && point !== real) out.push(point)
    } catch {}
  }
  return out
}

/** `velo volume mount NAME DIR`: the volume's files at DIR on the host (a bind; root only). */
export async function mountVolume(home: string, name: string, target: string): Promise<{name: string; dir: string; snapshots: string[]}> {
  readRecord(home, name)
  if (!isRoot()) throw new VeloError('PERMISSION_DENIED', 'mounting a volume on the host needs root', {suggestion: `read its files where they are: ${volumeDataDir(home, name)}`})
  const dir = path.resolve(target)
  let st: fs.Stats
  try {
    st = fs.statSync(dir)
  } catch {
    throw new VeloError('NOT_FOUND', `no such directory: ${dir}`, {suggestion: `create it first: mkdir -p ${dir}`})
  }
  if (!st.isDirectory()) throw new VeloError('USAGE', `${dir} is not a directory`)
  // never a half-restored volume on the host, nor a restore starting before the mount shows in mountinfo
  const hold = holdVolumes(home, [name])
  try {
    return await mountHeld(home, name, dir)
  } finally {
    hold.release()
  }
}

async function mountHeld(home: string, name: string, dir: string): Promise<{name: string; dir: string; snapshots: string[]}> {
  const {execFileSync} = require('node:child_process') as typeof import('node:child_process')
  // its snapshots, read-only below .snapshots/, and its vault while unlocked: their mount points are in the data dir,
  // made first (a volume whose tenant broke them is refused before anything is mounted); tenants write that dir, so
  // the binds never reach a mount point through a symlink (velo-bind)
  const snaps = await snapshotMounts(home, name, dir)
  const extra = [...snaps, ...vaultMounts(home, name, dir, false)]
  try {
    // private (velo-bind): the snapshots and vault mounted below it must not propagate back into the data dir, as
    // they would from a host whose / is shared (systemd's default) through a plain `mount --bind`
    execFileSync(nativeBin('velo-bind'), [volumeDataDir(home, name), fs.realpathSync(dir)], {stdio: ['ignore', 'ignore', 'pipe']})
  } catch (err) {
    throw new VeloError('NATIVE', `cannot mount volume ${name} at ${dir}: ${String((err as {stderr?: Buffer}).stderr ?? err).trim()}`)
  }
  try {
    for (const m of extra) execFileSync(nativeBin('velo-bind'), [m.source, m.target, '--nosuid', ...(m.readonly ? ['--ro'] : [])], {stdio: ['ignore', 'ignore', 'pipe']})
  } catch (err) {
    execFileSync('umount', ['-R', dir], {stdio: 'ignore'})
    throw new VeloError('NATIVE', `cannot mount the snapshots or the vault of volume ${name} at ${dir}: ${String((err as {stderr?: Buffer}).stderr ?? err).trim()}`)
  }
  return {name, dir, snapshots: snaps.map((m) => m.snapshot)}
}

/** `velo volume umount DIR`: only a mount of a volume of this store. */
export function umountVolume(home: string, target: string): {dir: string} {
  const dir = path.resolve(target)
  const ours = listVolumes(home).some((v) => mountedAt(home, v.name).includes(dir))
  if (!ours) throw new VeloError('NOT_FOUND', `no volume of this store is mounted at ${dir}`, {suggestion: 'see where with `velo volume ls`'})
  const {execFileSync} = require('node:child_process') as typeof import('node:child_process')
  try {
    execFileSync('umount', ['-R', dir], {stdio: ['ignore', 'ignore', 'pipe']})
  } catch (err) {
    const msg = String((err as {stderr?: Buffer}).stderr ?? err).trim()
    throw new VeloError(/busy/i.test(msg) ? 'BUSY' : 'NATIVE', `cannot unmount ${dir}: ${msg}`, {suggestion: /busy/i.test(msg) ? 'a process still uses it (fuser -m DIR)' : undefined})
  }
  return {dir}
}

/** The volumes of a create's `-v NAME:/path`: made when missing (docker's habit); checked again under the store lock. */
export async function ensureVolumes(home: string, names: string[]): Promise<void> {
  for (const n of new Set(names)) await createVolume(home, n, {existOk: true})
}

/** Under the store's shared lock (a create's claim): every named volume still exists. */
export function requireVolumes(home: string, names: string[]): void {
  for (const n of names) {
    readRecord(home, n)
    recoverRestore(home, n) // never a tenant on a half-restored volume
  }
}
