import * as fs from 'node:fs'
import * as path from 'node:path'
import type {RootDatabase, Database} from 'lmdb'
import {lmdb} from './lmdb'
import {fromSystemError, isPermissionMessage, PERMISSION_SUGGESTION, VeloError} from '../lib/errors'
import {StoreLock} from '../lib/lock'
import {DB_FILE, isReadOnlyStore, readOnlyStoreError} from '../lib/store-access'
import {decodeEntry, Entry, entryKey, KEY_PREFIX, ROOT_INO, S_IFDIR, S_IFMT, FLAG_WHITEOUT, FLAG_OPAQUE} from './entry'

/** What a layer record says about itself (JSON in the `layers` DB, keyed by the raw 32-byte layer id). */
export interface LayerInfo {
  id: string // hex BLAKE3 over the layer's sorted (key, value) pairs
  createdAt: string
  source: string // what it came from: a directory, a tar member, a tenant upper dir
  entries: number
  files: number
  dirs: number
  symlinks: number
  others: number
  whiteouts: number
  logicalBytes: number // sum of regular file sizes (hard links counted once)
  diffId?: string // sha256 of the uncompressed layer tar, when it came from an image tarball
}

export interface ImageConfig {
  env?: string[]
  cmd?: string[]
  entrypoint?: string[]
  workingDir?: string
  user?: string
  [k: string]: unknown
}

/** Named, ordered list of layers, bottom first (JSON in the `images` DB, keyed by name). */
export interface ImageRecord {
  name: string
  layers: string[]
  createdAt: string
  source: string
  config?: ImageConfig
  /** a volume snapshot stored as a delta: what its whole tree holds (its top layer counts only what changed) */
  files?: number
  logicalBytes?: number
}

/** Something other than an image that keeps layers alive for gc, e.g. a sandbox ("tenant:NAME"). */
export interface HoldRecord {
  holder: string
  layers: string[]
  createdAt: string
}

export {DB_FILE}

/** Write transactions in progress in this process, per database file: a nested write takes no second lock. */
const writing = new Map<string, number>()

/**
 * The manifest database: one LMDB environment (file `$VELO_HOME/db/velo.lmdb`, LMDB "no subdir" layout)
 * with named DBs `entries` (binary, read by C), `layers`, `images`, `holds` (JSON).
 *
 * A store this user may not write (a shared one) is opened read-only. LMDB readers register in the lock file
 * (`velo.lmdb-lock`) so that a writer never reuses a page a reader still sees; a reader that may not write
 * that file reads unregistered (LMDB skips the lock file then), so it takes a shared flock on the database
 * file itself for as long as it reads, and every write transaction holds the exclusive flock on that file
 * (LMDB has one writer at a time anyway, so writers lose no concurrency). The C reader does the same
 * (native/common/manifest.c). docs/format.md, "A store shared for reading".
 */
export class ManifestDb {
  readonly env: RootDatabase
  readonly entries: Database<Buffer, Buffer>
  readonly layers: Database<LayerInfo, Buffer>
  readonly images: Database<ImageRecord, string>
  readonly holds: Database<HoldRecord, string>

  private constructor(
    readonly home: string,
    readonly file: string,
    readonly readOnly: boolean,
    private readLock: StoreLock | undefined,
  ) {
    // overlappingSync off: a commit returns only once it is on disk, so "committed" means durable.
    this.env = lmdb().open({path: file, maxDbs: 16, mapSize: 1 << 30, overlappingSync: false, noSync: false, compression: false, readOnly} as never)
    this.entries = this.env.openDB({name: 'entries', keyEncoding: 'binary', encoding: 'binary'}) as never
    this.layers = this.env.openDB({name: 'layers', keyEncoding: 'binary', encoding: 'json'}) as never
    this.images = this.env.openDB({name: 'images', keyEncoding: 'ordered-binary', encoding: 'json'}) as never
    this.holds = this.env.openDB({name: 'holds', keyEncoding: 'ordered-binary', encoding: 'json'}) as never
  }

  /** Whether this reader is unregistered (cannot write the LMDB lock file) and holds the database's shared flock. */
  get unregistered(): boolean {
    return this.readLock !== undefined
  }

  static open(home: string): ManifestDb {
    const file = path.join(home, DB_FILE)
    // a store this user may read but not write (a shared one): read-only, so reads work and any write says why
    const readOnly = isReadOnlyStore(home)
    if (!readOnly) {
      try {
        fs.mkdirSync(path.dirname(file), {recursive: true, mode: 0o700})
      } catch (err) {
        throw fromSystemError(err, `cannot create the store's manifest database in ${path.dirname(file)}`)
      }
    }
    let readLock: StoreLock | undefined
    if (readOnly && !writable(`${file}-lock`)) {
      readLock = new StoreLock(file, {create: false})
      try {
        readLock.acquire('shared', {
          timeoutSec: 300,
          busy: {message: `waited 300 s for a write to the store's manifest database ${file} to end`, suggestion: "retry; look for a hung velo process of the store's owner"},
        })
      } catch (err) {
        if (err instanceof VeloError) throw err
        throw fromSystemError(err, `cannot read the store's manifest database ${file}`)
      }
    }
    try {
      return new ManifestDb(home, file, readOnly, readLock)
    } catch (err) {
      readLock?.release()
      const msg = `cannot open manifest database ${file}: ${(err as Error).message}`
      if (isPermissionMessage((err as Error).message)) throw new VeloError('PERMISSION_DENIED', msg, {cause: err, suggestion: PERMISSION_SUGGESTION})
      throw new VeloError('INTERNAL', msg, {cause: err})
    }
  }

  close(): void {
    this.env.close()
    this.readLock?.release()
    this.readLock = undefined
  }

  /** Before any write: a store opened read-only (this user may not write it) says so, and nothing changes. */
  requireWritable(what = 'this command'): void {
    if (this.readOnly) throw readOnlyStoreError(this.home, what)
  }

  /**
   * One write transaction, under the exclusive flock on the database file that keeps unregistered readers out
   * (see the class comment). A write inside another in this process joins it: no second lock, no second txn.
   */
  writeSync<T>(fn: () => T, what?: string): T {
    this.requireWritable(what)
    const depth = writing.get(this.file) ?? 0
    if (depth > 0) {
      writing.set(this.file, depth + 1)
      try {
        return fn()
      } finally {
        writing.set(this.file, depth)
      }
    }
    const lock = new StoreLock(this.file, {create: false}).acquire('exclusive', {
      timeoutSec: 300,
      busy: {
        message: `waited 300 s for the readers of the store's manifest database ${this.file} to finish`,
        suggestion: 'readers of a shared store without write access hold it while they read (e.g. a long `velo image export`); retry when they are done',
      },
    })
    writing.set(this.file, 1)
    try {
      return this.env.transactionSync(fn) as T
    } finally {
      writing.delete(this.file)
      lock.release()
    }
  }

  // ---- layers -------------------------------------------------------------------------------------------

  getLayer(id: string): LayerInfo | undefined {
    return this.layers.get(Buffer.from(id, 'hex'))
  }

  hasLayer(id: string): boolean {
    return this.layers.doesExist(Buffer.from(id, 'hex'))
  }

  listLayers(): LayerInfo[] {
    return [...this.layers.getRange({}).map(({value}) => value)]
  }

  /** Every (key, value) of a layer in key order: a directory always comes before its children. */
  *layerEntries(id: string): Generator<{parentIno: number; name: Buffer; entry: Entry}> {
    const lid = Buffer.from(id, 'hex')
    const end = Buffer.alloc(KEY_PREFIX, 0xff)
    lid.copy(end)
    for (const {key, value} of this.entries.getRange({start: lid, end})) {
      const k = key as Buffer
      yield {parentIno: k.readUInt32BE(32), name: Buffer.from(k.subarray(KEY_PREFIX)), entry: decodeEntry(value)}
    }
  }

  /** Children of directory `ino` in a layer, in name order. */
  *children(id: string, ino: number): Generator<{name: Buffer; entry: Entry}> {
    const lid = Buffer.from(id, 'hex')
    const start = entryKey(lid, ino, Buffer.alloc(0))
    const end = entryKey(lid, ino + 1, Buffer.alloc(0))
    for (const {key, value} of this.entries.getRange({start, end})) {
      yield {name: Buffer.from((key as Buffer).subarray(KEY_PREFIX)), entry: decodeEntry(value)}
    }
  }

  /** Look a path up in one layer, one B-tree lookup per component. `rel` is relative to the layer root. */
  lookup(id: string, rel: Buffer | string): Entry | undefined {
    const lid = Buffer.from(id, 'hex')
    const root = this.entries.get(entryKey(lid, 0, Buffer.alloc(0)))
    if (!root) return undefined
    let cur = decodeEntry(root)
    const parts = (typeof rel === 'string' ? Buffer.from(rel) : rel)
      .toString('latin1')
      .split('/')
      .filter((p) => p !== '' && p !== '.')
    for (const p of parts) {
      if ((cur.mode & S_IFMT) !== S_IFDIR) return undefined
      const v = this.entries.get(entryKey(lid, cur.ino, Buffer.from(p, 'latin1')))
      if (!v) return undefined
      cur = decodeEntry(v)
    }
    return cur
  }

  /**
   * Write a whole layer in one transaction: its entries and its record. Idempotent: a layer id that exists
   * already is left as it is (identical content has an identical id). Call only after the objects the
   * entries name are durable (Store.sync()).
   */
  putLayerSync(info: LayerInfo, entries: Array<{key: Buffer; value: Buffer}>, after?: () => void): void {
    this.writeSync(() => {
      this.putLayerInTxn(info, entries)
      after?.()
    })
  }

  /** The body of putLayerSync, for callers that write several layers in one transaction of their own.
   *  Returns whether the layer existed already (then nothing is written). */
  putLayerInTxn(info: LayerInfo, entries: Array<{key: Buffer; value: Buffer}>): boolean {
    const lid = Buffer.from(info.id, 'hex')
    if (this.layers.doesExist(lid)) return true
    for (const {key, value} of entries) this.entries.putSync(key, value)
    this.layers.putSync(lid, info)
    return false
  }

  /** Delete a layer's entries and record (gc only, under the exclusive store lock). */
  deleteLayerSync(id: string): void {
    const lid = Buffer.from(id, 'hex')
    const end = Buffer.alloc(KEY_PREFIX, 0xff)
    lid.copy(end)
    this.writeSync(() => {
      for (const key of this.entries.getKeys({start: lid, end})) this.entries.removeSync(key as Buffer)
      this.layers.removeSync(lid)
    })
  }

  // ---- images ------------------------------------------------------------------------------------------

  getImage(name: string): ImageRecord | undefined {
    return this.images.get(name)
  }

  requireImage(name: string): ImageRecord {
    const img = this.getImage(name)
    if (!img)
      throw new VeloError('NOT_FOUND', `no image named ${JSON.stringify(name)}`, {
        suggestion: 'list images with `velo image ls`; create one with `velo ingest DIR --name NAME` or `velo image import`',
      })
    return img
  }

  listImages(): ImageRecord[] {
    return [...this.images.getRange({}).map(({value}) => value)]
  }

  putImageSync(img: ImageRecord): void {
    this.requireWritable()
    for (const l of img.layers) if (!this.hasLayer(l)) throw new VeloError('INTERNAL', `image ${img.name} names missing layer ${l}`)
    this.writeSync(() => this.images.putSync(img.name, img))
  }

  deleteImageSync(name: string): boolean {
    return this.writeSync(() => this.images.removeSync(name), 'image rm')
  }

  // ---- holds (gc roots other than images) -----------------------------------------------------------

  putHoldSync(h: HoldRecord): void {
    this.writeSync(() => this.holds.putSync(h.holder, h))
  }

  deleteHoldSync(holder: string): void {
    this.writeSync(() => this.holds.removeSync(holder))
  }

  listHolds(): HoldRecord[] {
    return [...this.holds.getRange({}).map(({value}) => value)]
  }
}

function writable(p: string): boolean {
  try {
    fs.accessSync(p, fs.constants.W_OK)
    return true
  } catch {
    return false
  }
}

export {ROOT_INO, FLAG_WHITEOUT, FLAG_OPAQUE}
