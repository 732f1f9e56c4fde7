import * as fs from 'node:fs'
import * as path from 'node:path'
import {VeloError, fromSystemError} from '../lib/errors'
import {writeFileAtomic} from '../lib/fsutil'
import {mountinfoEverywhere} from '../lib/mountinfo'
import {StoreLock} from '../lib/lock'
import {ManifestDb} from '../manifest/db'
import {storeUpperLayer} from '../image/commit'
import {ensureFarm, farmPath} from '../sandbox/farm'

/**
 * The snapshots of velo's containerd snapshotter: containerd's model (keys, parents, kinds, labels) kept in
 * `$VELO_HOME/snapshotter/metadata.json` (replaced atomically after every change, so a kill -9 leaves the state
 * before or after a request), and on disk:
 *  - an active snapshot or a view: `snapshotter/snapshots/ID/{fs,work}`: the overlay upper (or, with no parent,
 *    the bind-mounted root) containerd writes into;
 *  - a committed snapshot: a velo layer in the store (its upper ingested: whiteouts and opaque dirs as velo stores
 *    them, file content deduplicated against everything in the store), served as the layer's farm
 *    (`farms/LAYER`), the lowerdir of its children. The layers of all committed snapshots are one LMDB hold
 *    (`containerd-snapshotter`), so velo gc keeps them.
 * Order of writes: a new dir before the metadata naming it, the metadata before a dir goes; the store layer and
 * the hold in one transaction before the metadata names the layer. What a crash leaves over (a dir nobody
 * names, a held layer nobody names) is swept when the service starts (and by Cleanup).
 */

export type Kind = 'view' | 'active' | 'committed'
export const KIND_NUM: Record<Kind, number> = {view: 1, active: 2, committed: 3}

export interface Snapshot {
  id: string
  kind: Kind
  parent: string
  labels: Record<string, string>
  createdAt: string
  updatedAt: string
  /** committed: the velo layer */
  layer?: string
}

interface Metadata {
  version: 1
  nextId: number
  snapshots: Record<string, Snapshot>
}

export interface Mount {
  type: string
  source: string
  target: string
  options: string[]
}

export const HOLDER = 'containerd-snapshotter'

/** containerd's unpack names its snapshots "extract-<unique> <chain id>" (snapshots.UnpackKeyFormat), under its
 * namespace prefix "NS/N/" in a proxy snapshotter's keys. */
export const isUnpackKey = (key: string): boolean => /^[^/]+\/\d+\/extract-\S+ \S+$/.test(key)

/**
 * Whether the dir `upper` (snapshot `id`'s fs/) is mounted in any mount namespace of this host: as the upper dir
 * of an overlay (its mount options name it) or bound (a mount whose root, field 4 of mountinfo, is that dir); true
 * as well when some namespace could not be read.
 */
export function mountedAnywhere(upper: string, id: string): boolean {
  const suffix = `/snapshotter/snapshots/${id}/fs`
  const m = mountinfoEverywhere()
  if (!m.complete) return true // some namespace could not be read: it might be mounted there
  for (const line of m.lines) {
    if (line.includes(`upperdir=${upper},`) || line.endsWith(`upperdir=${upper}`)) return true
    const root = line.split(' ')[3]
    if (root && (root === upper || root.endsWith(suffix))) return true
  }
  return false
}

/** Errors containerd understands: the gRPC status it maps back to its errdefs (not found, already exists, ...). */
export class SnapshotError extends VeloError {
  constructor(
    readonly grpcCode: number,
    code: ConstructorParameters<typeof VeloError>[0],
    message: string,
  ) {
    super(code, message)
  }
}
export const GRPC = {INVALID_ARGUMENT: 3, NOT_FOUND: 5, ALREADY_EXISTS: 6, FAILED_PRECONDITION: 9, INTERNAL: 13}
const notFound = (key: string) => new SnapshotError(GRPC.NOT_FOUND, 'NOT_FOUND', `snapshot ${JSON.stringify(key)} does not exist`)
const exists = (key: string) => new SnapshotError(GRPC.ALREADY_EXISTS, 'ALREADY_EXISTS', `snapshot ${JSON.stringify(key)} already exists`)

/** Disk usage as containerd counts it: each inode once, allocated blocks. */
export function diskUsage(dir: string): {size: number; inodes: number} {
  const seen = new Set<string>()
  let size = 0
  const walk = (p: string) => {
    let st: fs.Stats
    try {
      st = fs.lstatSync(p)
    } catch {
      return
    }
    const k = `${st.dev}:${st.ino}`
    if (!seen.has(k)) {
      seen.add(k)
      size += st.blocks * 512
    }
    if (st.isDirectory()) {
      let names: string[] = []
      try {
        names = fs.readdirSync(p)
      } catch {
        return
      }
      for (const n of names) walk(path.join(p, n))
    }
  }
  walk(dir)
  return {size, inodes: seen.size}
}

export class Snapshots {
  readonly root: string
  private meta: Metadata
  private lock?: StoreLock

  constructor(readonly home: string) {
    this.root = path.join(home, 'snapshotter')
    this.meta = {version: 1, nextId: 1, snapshots: {}}
  }

  private get metaFile() {
    return path.join(this.root, 'metadata.json')
  }
  private get snapsDir() {
    return path.join(this.root, 'snapshots')
  }
  dirOf(s: Snapshot): string {
    return path.join(this.snapsDir, s.id)
  }

  /** Load the metadata (one service per store: an exclusive lock), sweep what a crash left, reset the gc hold. */
  open(): this {
    fs.mkdirSync(this.snapsDir, {recursive: true, mode: 0o700})
    this.lock = new StoreLock(path.join(this.root, 'lock')).acquire('exclusive', {
      wait: false,
      busy: {message: `another velo snapshotter serves ${this.root}`, suggestion: 'stop it first, or use another --home'},
    })
    try {
      const text = fs.readFileSync(this.metaFile, 'utf8')
      const m = JSON.parse(text) as Metadata
      if (m.version !== 1 || typeof m.snapshots !== 'object') throw new VeloError('INTEGRITY', `${this.metaFile}: unknown format`)
      this.meta = m
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err instanceof VeloError ? err : fromSystemError(err, `cannot read ${this.metaFile}`)
    }
    this.cleanup()
    return this
  }

  close(): void {
    this.lock?.release()
    this.lock = undefined
  }

  private save(): void {
    try {
      writeFileAtomic(this.metaFile, JSON.stringify(this.meta) + '\n')
    } catch (err) {
      throw fromSystemError(err, `cannot write ${this.metaFile}`)
    }
  }

  /** The hold = the layers of the committed snapshots (in the same transaction as a new layer, or alone). */
  private committedLayers(extra?: string): string[] {
    const s = new Set<string>()
    for (const v of Object.values(this.meta.snapshots)) if (v.kind === 'committed' && v.layer) s.add(v.layer)
    if (extra) s.add(extra)
    return [...s].sort()
  }
  private putHold(db: ManifestDb, extra?: string): void {
    db.holds.putSync(HOLDER, {holder: HOLDER, layers: this.committedLayers(extra), createdAt: new Date().toISOString()})
  }
  private syncHold(): void {
    const db = ManifestDb.open(this.home)
    try {
      db.writeSync(() => this.putHold(db))
    } finally {
      db.close()
    }
  }

  get(key: string): Snapshot {
    const s = this.meta.snapshots[key]
    if (!s) throw notFound(key)
    return s
  }

  list(): Array<[string, Snapshot]> {
    return Object.entries(this.meta.snapshots)
  }

  private create(kind: 'active' | 'view', key: string, parent: string, labels: Record<string, string>): Mount[] {
    if (!key) throw new SnapshotError(GRPC.INVALID_ARGUMENT, 'USAGE', 'a snapshot needs a key')
    if (this.meta.snapshots[key]) throw exists(key)
    if (parent) {
      const p = this.meta.snapshots[parent]
      if (!p) throw new SnapshotError(GRPC.NOT_FOUND, 'NOT_FOUND', `parent snapshot ${JSON.stringify(parent)} does not exist`)
      if (p.kind !== 'committed') throw new SnapshotError(GRPC.INVALID_ARGUMENT, 'STATE', `parent ${JSON.stringify(parent)} is not a committed snapshot`)
    }
    const now = new Date().toISOString()
    const s: Snapshot = {id: String(this.meta.nextId++), kind, parent, labels: {...labels}, createdAt: now, updatedAt: now}
    const dir = this.dirOf(s)
    try {
      fs.rmSync(dir, {recursive: true, force: true})
      fs.mkdirSync(dir, {mode: 0o700})
      fs.mkdirSync(path.join(dir, 'fs'), {mode: 0o755})
      if (kind === 'active' && parent) fs.mkdirSync(path.join(dir, 'work'), {mode: 0o700})
    } catch (err) {
      throw fromSystemError(err, `cannot create ${dir}`)
    }
    this.meta.snapshots[key] = s
    this.save()
    return this.mounts(key)
  }

  prepare(key: string, parent: string, labels: Record<string, string>): Mount[] {
    return this.create('active', key, parent, labels)
  }
  view(key: string, parent: string, labels: Record<string, string>): Mount[] {
    return this.create('view', key, parent, labels)
  }

  private get linksDir() {
    return path.join(this.root, 'l')
  }

  /**
   * The short name of a committed snapshot's farm: `snapshotter/l/ID`, a symlink to `farms/LAYER` (as Docker's
   * overlay2 does). Mount options are one page; containerd names the lowers relative to their common parent when
   * they do not fit, so a lower costs a few bytes instead of a 64-hex farm name: hundreds of layers fit.
   */
  private link(s: Snapshot): string {
    const link = path.join(this.linksDir, s.id)
    const target = farmPath(this.home, s.layer!)
    let cur: string | undefined
    try {
      cur = fs.readlinkSync(link)
    } catch {
      cur = undefined
    }
    if (cur !== target) {
      try {
        fs.mkdirSync(this.linksDir, {recursive: true, mode: 0o700})
        const tmp = `${link}.${process.pid}.tmp`
        fs.rmSync(tmp, {force: true})
        fs.symlinkSync(target, tmp)
        fs.renameSync(tmp, link)
      } catch (err) {
        throw fromSystemError(err, `cannot link ${link} to ${target}`)
      }
    }
    return link
  }

  /** The lower dirs of a snapshot whose parent is `parent`: the farms of the committed chain, top first. */
  private lowers(parent: string): string[] {
    const out: string[] = []
    for (let k = parent; k; ) {
      const p = this.get(k)
      if (!p.layer) throw new SnapshotError(GRPC.INTERNAL, 'INTEGRITY', `committed snapshot ${JSON.stringify(k)} has no layer`)
      out.push(farmPath(this.home, p.layer))
      k = p.parent
    }
    // a farm is a cache of its layer: rebuilt when it is gone
    const missing = out.filter((f) => !fs.existsSync(f))
    if (missing.length) {
      const db = ManifestDb.open(this.home)
      try {
        for (const f of missing) ensureFarm(this.home, db, path.basename(f))
      } finally {
        db.close()
      }
    }
    return out
  }

  /** What containerd mounts, as its overlayfs snapshotter returns it. */
  mounts(key: string): Mount[] {
    const s = this.get(key)
    if (s.kind === 'committed') throw new SnapshotError(GRPC.FAILED_PRECONDITION, 'STATE', `snapshot ${JSON.stringify(key)} is committed: only active snapshots and views have mounts`)
    const dir = this.dirOf(s)
    const lowers = this.lowers(s.parent)
    const short: string[] = []
    for (let k = s.parent; k; k = this.get(k).parent) short.push(this.link(this.get(k)))
    const ro = s.kind === 'view'
    if (lowers.length === 0) return [{type: 'bind', source: path.join(dir, 'fs'), target: '', options: [ro ? 'ro' : 'rw', 'rbind']}]
    if (ro) {
      if (lowers.length === 1) return [{type: 'bind', source: lowers[0], target: '', options: ['ro', 'rbind']}]
      return [{type: 'overlay', source: 'overlay', target: '', options: [`lowerdir=${short.join(':')}`]}]
    }
    return [{type: 'overlay', source: 'overlay', target: '', options: ['index=off', `workdir=${path.join(dir, 'work')}`, `upperdir=${path.join(dir, 'fs')}`, `lowerdir=${short.join(':')}`]}]
  }

  /** The active snapshot `key` → committed snapshot `name`: its upper ingested as a velo layer, served as a farm. */
  commit(name: string, key: string, labels: Record<string, string>): Snapshot {
    const s = this.get(key)
    if (s.kind !== 'active') throw new SnapshotError(GRPC.FAILED_PRECONDITION, 'STATE', `snapshot ${JSON.stringify(key)} is a ${s.kind} snapshot; only an active one can be committed`)
    if (!name) throw new SnapshotError(GRPC.INVALID_ARGUMENT, 'USAGE', 'a committed snapshot needs a name')
    if (this.meta.snapshots[name]) throw exists(name)
    const dir = this.dirOf(s)
    const upperDir = path.join(dir, 'fs')
    // containerd's unpack writes a layer into a snapshot of its own, mounted only while it writes, and commits it
    // once unmounted: its files can become the store's objects as they are (no copy); any other snapshot may be a
    // container's rootfs, which could still be written through an open file after a commit, so it is copied
    const adopt = isUnpackKey(key) && !mountedAnywhere(upperDir, s.id)
    const r = storeUpperLayer(this.home, {upperDir, source: `containerd:${name}`, inTxn: (db, layer) => this.putHold(db, layer), adopt})
    const db = ManifestDb.open(this.home)
    try {
      ensureFarm(this.home, db, r.layer)
    } finally {
      db.close()
    }
    const now = new Date().toISOString()
    const c: Snapshot = {id: s.id, kind: 'committed', parent: s.parent, labels: {...labels}, createdAt: now, updatedAt: now, layer: r.layer}
    delete this.meta.snapshots[key]
    this.meta.snapshots[name] = c
    this.save()
    fs.rmSync(dir, {recursive: true, force: true})
    return c
  }

  remove(key: string): void {
    const s = this.get(key)
    const child = Object.entries(this.meta.snapshots).find(([, v]) => v.parent === key)
    if (child) throw new SnapshotError(GRPC.FAILED_PRECONDITION, 'STATE', `snapshot ${JSON.stringify(key)} is the parent of ${JSON.stringify(child[0])}`)
    delete this.meta.snapshots[key]
    this.save()
    if (s.kind === 'committed') {
      fs.rmSync(path.join(this.linksDir, s.id), {force: true})
      this.syncHold()
    } else fs.rmSync(this.dirOf(s), {recursive: true, force: true})
  }

  update(key: string, labels: Record<string, string>, paths: string[]): Snapshot {
    const s = this.get(key)
    if (paths.length === 0) s.labels = {...labels}
    for (const p of paths) {
      if (p === 'labels') s.labels = {...labels}
      else if (p.startsWith('labels.')) {
        const k = p.slice('labels.'.length)
        if (k in labels) s.labels[k] = labels[k]
        else delete s.labels[k]
      } else throw new SnapshotError(GRPC.INVALID_ARGUMENT, 'USAGE', `cannot update field ${JSON.stringify(p)} of snapshot ${JSON.stringify(key)}`)
    }
    s.updatedAt = new Date().toISOString()
    this.save()
    return s
  }

  usage(key: string): {size: number; inodes: number} {
    const s = this.get(key)
    if (s.kind === 'committed') return diskUsage(farmPath(this.home, s.layer!))
    return diskUsage(path.join(this.dirOf(s), 'fs'))
  }

  /** Dirs no snapshot names (a crash between mkdir and the metadata, or a Remove between metadata and rm). */
  cleanup(): {removed: string[]} {
    const live = new Set(Object.values(this.meta.snapshots).filter((s) => s.kind !== 'committed').map((s) => s.id))
    const removed: string[] = []
    for (const n of fs.readdirSync(this.snapsDir)) {
      if (live.has(n)) continue
      fs.rmSync(path.join(this.snapsDir, n), {recursive: true, force: true})
      removed.push(n)
    }
    for (const n of fs.readdirSync(this.root)) if (n.startsWith('.') && n.endsWith('.tmp')) fs.rmSync(path.join(this.root, n), {force: true})
    // short links of committed snapshots that are gone (a link is made again when a mount needs it)
    const committed = new Set(Object.values(this.meta.snapshots).filter((s) => s.kind === 'committed').map((s) => s.id))
    if (fs.existsSync(this.linksDir)) for (const n of fs.readdirSync(this.linksDir)) if (!committed.has(n)) fs.rmSync(path.join(this.linksDir, n), {force: true})
    this.syncHold()
    return {removed}
  }
}
