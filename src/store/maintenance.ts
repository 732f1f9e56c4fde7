import * as fs from 'node:fs'
import * as path from 'node:path'
import {StoreLock} from '../lib/lock'
import {emitEvent} from '../lib/events'
import {VeloError} from '../lib/errors'
import {ManifestDb, LayerInfo} from '../manifest/db'
import {kindOf, S_IFMT, S_IFREG} from '../manifest/entry'
import {ObjectId, objectName, objectOf, parseObjectName, Store} from './cas'
import {readXattrs} from './xattr-io'
import {listUserHolds} from './holds'
import {listLazyRecords} from '../registry/lazy'
import {requireWritableStore} from '../lib/store-access'
import {mountinfoEverywhere} from '../lib/mountinfo'
import {chunksDir, chunkStoreSize, coldTool, compactPacks, CompactResult, DEFAULT_COMPACT_THRESHOLD, freezeObjects, FreezeResult, listPacked, markCold, mayHoldCold, noFreeze, packsDir, sweepChunks, verifyCold} from './cold'


/** Every (path, object) of a layer's regular files with content, paths rebuilt from the ino → dir map. */
function* layerObjects(db: ManifestDb, layer: string): Generator<{path: string; object: ObjectId}> {
  const dirs = new Map<number, string>()
  for (const {parentIno, name, entry} of db.layerEntries(layer)) {
    const parent = parentIno === 0 ? '' : dirs.get(parentIno) ?? `?${parentIno}`
    const p = parentIno === 0 ? '/' : (parent === '/' ? '' : parent) + '/' + name.toString()
    if (kindOf(entry) === 'dir') dirs.set(entry.ino, p)
    else if ((entry.mode & S_IFMT) === S_IFREG && entry.size > 0n) yield {path: p, object: objectOf(entry)}
  }
}

function dirCount(p: string): number {
  try {
    return fs.readdirSync(p).length
  } catch {
    return 0
  }
}

// ---- status ----------------------------------------------------------------------------------------

export interface StatusReport {
  home: string
  objects: number
  physicalBytes: number
  logicalBytes: number
  dedupRatio: number | null
  layers: number
  images: Array<{name: string; layers: number; files: number; logicalBytes: number; createdAt: string}>
  tenants: number
  farms: number
  tempFiles: number
  /** cold objects (only volume snapshots name them; src/store/cold.ts): how many, their bytes, the bytes their .zst
   * files and recipes take (not their chunks: see chunkStore) */
  compressed: {objects: number; logicalBytes: number; storedBytes: number}
  /** of those, the ones kept as content-defined chunks (8 MiB and more) */
  chunked: {objects: number; logicalBytes: number}
  /** the chunks of chunked objects, each stored once (compressed) however many objects share it */
  chunkStore: {chunks: number; storedBytes: number}
  /** of the cold objects, the small ones kept in packs; the packs and their bytes (dead objects included until gc
   * compacts a pack: rawBytes counts every object a pack holds) */
  packed: {objects: number; logicalBytes: number; packs: number; storedBytes: number; rawBytes: number}
  /** what the objects take as stored: the plain ones' bytes, the cold ones' .zst and recipe bytes, and the chunks */
  storedBytes: number
}

/** Images with their sizes, from the manifest database alone (no walk of the object store). */
export function listImages(home: string): StatusReport['images'] {
  const db = ManifestDb.open(home)
  try {
    return imageRows(db, new Map<string, LayerInfo>(db.listLayers().map((l) => [l.id, l])))
  } finally {
    db.close()
  }
}

function imageRows(db: ManifestDb, layers: Map<string, LayerInfo>): StatusReport['images'] {
  return db.listImages().map((img) => {
    const ls = img.layers.map((l) => layers.get(l))
    return {
      name: img.name,
      layers: img.layers.length,
      files: ls.reduce((n, l) => n + (l?.files ?? 0), 0),
      logicalBytes: ls.reduce((n, l) => n + (l?.logicalBytes ?? 0), 0),
      createdAt: img.createdAt,
    }
  })
}

export function status(home: string): StatusReport {
  const store = new Store(home)
  let objects = 0
  let physicalBytes = 0
  const plain = new Set<string>()
  const cold = new Map<string, {size: number; stored: number; chunked: boolean; packed?: boolean}>()
  for (const o of store.list()) {
    if (!o.id) continue
    if (o.cold) {
      let stored = 0
      try {
        stored = fs.lstatSync(o.path).size
      } catch {}
      cold.set(o.name, {size: o.id.size, stored, chunked: o.path.endsWith('.cdc')})
      continue
    }
    plain.add(o.name)
    objects++
    physicalBytes += o.id.size
  }
  const packs = listPacked(home)
  for (const o of packs.objects) {
    const id = parseObjectName(o.name)
    if (id && !cold.has(o.name)) cold.set(o.name, {size: id.size, stored: o.stored, chunked: false, packed: true})
  }
  const packed = {objects: 0, logicalBytes: 0, packs: packs.packs.length, storedBytes: 0, rawBytes: 0}
  for (const k of packs.packs) (packed.storedBytes += k.bytes), (packed.rawBytes += k.rawBytes)
  let storedBytes = physicalBytes
  const compressed = {objects: 0, logicalBytes: 0, storedBytes: 0}
  const chunked = {objects: 0, logicalBytes: 0}
  for (const [name, c] of cold) {
    if (plain.has(name)) continue // a .zst left beside its hot object (gc drops it): counted once, as the plain file
    objects++
    physicalBytes += c.size
    compressed.objects++
    compressed.logicalBytes += c.size
    if (!c.packed) (storedBytes += c.stored), (compressed.storedBytes += c.stored) // packs: counted whole, below
    if (c.chunked) (chunked.objects++, (chunked.logicalBytes += c.size))
    if (c.packed) (packed.objects++, (packed.logicalBytes += c.size))
  }
  storedBytes += packed.storedBytes
  compressed.storedBytes += packed.storedBytes
  const cs = chunkStoreSize(home)
  const chunkStore = {chunks: cs.chunks, storedBytes: cs.bytes}
  storedBytes += cs.bytes
  const db = ManifestDb.open(home)
  try {
    const layers = new Map<string, LayerInfo>(db.listLayers().map((l) => [l.id, l]))
    const images = imageRows(db, layers)
    const logicalBytes = images.reduce((n, i) => n + i.logicalBytes, 0)
    return {
      home,
      objects,
      physicalBytes,
      logicalBytes,
      dedupRatio: physicalBytes > 0 ? logicalBytes / physicalBytes : null,
      layers: layers.size,
      images,
      tenants: dirCount(path.join(home, 'tenants')),
      farms: dirCount(path.join(home, 'farms')),
      tempFiles: dirCount(store.tmpDir),
      compressed,
      chunked,
      chunkStore,
      packed,
      storedBytes,
    }
  } finally {
    db.close()
  }
}

// ---- fsck ------------------------------------------------------------------------------------------

export interface FsckProblem {
  kind: 'bad-object' | 'stray-file' | 'missing-object' | 'missing-layer' | 'damaged-pack' | 'unreadable-pack'
  object?: string
  problem: string
  /** a bad object: the copy found bad — the plain file, its compressed copy (.zst), its chunk recipe (.cdc) or one
   * chunk of it (`chunk`: its BLAKE3), or its packed copies; what --repair removes */
  copy?: 'plain' | 'zst' | 'cdc' | 'chunk' | 'packed'
  chunk?: string
  image?: string
  layer?: string
  paths?: string[]
}

export interface FsckReport {
  objectsChecked: number
  layersChecked: number
  imagesChecked: number
  problems: FsckProblem[]
  affectedImages: string[]
  tempFiles: number
  /** objects this user may not read (a store shared for reading): not checked */
  unreadable: number
  /** objects of lazy images still in the registry (fetched on first read): not problems */
  remoteObjects: number
  repaired: {removedObjects: number; removedStray: number} | null
}

/**
 * Re-hash every object, check every manifest entry resolves to a good object, map problems to the images
 * and paths they hit. With repair, bad objects and stray files are removed (the images that named them
 * then need re-ingesting: they are listed). Runs under the shared lock: ingests may run alongside.
 */
export function fsck(home: string, opts: {repair?: boolean; onProgress?: (done: number) => void} = {}): FsckReport {
  if (opts.repair) requireWritableStore(home, 'fsck --repair')
  const store = new Store(home)
  const lock = new StoreLock(path.join(home, 'lock'))
  if (fs.existsSync(home)) lock.acquire('shared')
  let db: ManifestDb | undefined
  try {
    const problems: FsckProblem[] = []
    const bad = new Map<string, string>() // object name → problem
    const present = new Set<string>()
    let checked = 0
    let unreadable = 0
    const all = [...store.list()]
    // Every object's xattrs in one native pass (a process per object would dominate fsck)
    const inodeXattrs = readXattrs(all.filter((o) => o.id && !o.cold).map((o) => o.path))
    const hot = new Set(all.filter((o) => o.id && !o.cold).map((o) => o.name))
    const cold: string[] = []
    for (const o of all) {
      if (!o.id) {
        problems.push({kind: 'stray-file', object: o.path, problem: 'not a valid object name'})
        continue
      }
      if (o.cold) {
        // checked below, all at once (a .zst beside its hot object is a leftover the next gc drops: not read)
        if (!hot.has(o.name)) cold.push(o.name)
        continue
      }
      let v: {ok: boolean; problem?: string}
      try {
        v = store.verify(o.id, inodeXattrs.get(o.path) ?? [])
      } catch (err) {
        // a store shared for reading keeps its objects' own modes: one this user may not read is not checked
        // (and not a problem of the store); the report says how many
        const code = (err as VeloError).code === 'PERMISSION_DENIED' ? 'EACCES' : (err as NodeJS.ErrnoException).code
        if (code !== 'EACCES' && code !== 'EPERM') throw err
        unreadable++
        present.add(o.name)
        continue
      }
      checked++
      opts.onProgress?.(checked)
      if (!v.ok) {
        bad.set(o.name, v.problem!)
        problems.push({kind: 'bad-object', object: o.name, problem: v.problem!, copy: 'plain'})
      } else present.add(o.name)
    }
    // small cold objects in packs (one copy each: the first pack that has it); a pack whose index cannot be read is a
    // problem of its own, and its objects read as missing below
    const packs = listPacked(home)
    const coldNames = new Set(cold)
    for (const o of packs.objects) if (!hot.has(o.name) && !coldNames.has(o.name)) cold.push(o.name)
    // a pack whose format is broken is removed by --repair; one that an I/O error keeps from being read is named and
    // left (it may be whole); one this user may not read (a store shared for reading) hides its objects, counted as
    // unreadable below rather than missing
    for (const d of packs.damaged) problems.push({kind: 'damaged-pack', object: path.join(packsDir(home), d.pack), problem: `a pack whose index cannot be read whole: ${d.why}`})
    const packsHidden = packs.unreadable.some((d) => d.denied)
    for (const d of packs.unreadable)
      if (!d.denied) problems.push({kind: 'unreadable-pack', object: path.join(packsDir(home), d.pack), problem: d.why})
    // cold objects: decompressed and hashed by velo-cold (src/store/cold.ts)
    for (const [name, check] of verifyCold(home, cold)) {
      if (check === 'unreadable') {
        unreadable++
        present.add(name)
        continue
      }
      let found: FsckProblem | undefined
      if (check === 'hot') {
        // made plain meanwhile (a checkout's thaw): the plain file is the object now
        const v = store.verify(parseObjectName(name)!)
        if (!v.ok) found = {kind: 'bad-object', object: name, problem: v.problem!, copy: 'plain'}
      } else if (check !== 'ok') {
        // a name that is not an object's, or a cold copy that could not be opened: the object is not usable as it is
        const copy = check.copy === 'name' || check.copy === 'open' ? undefined : check.copy
        found = {kind: 'bad-object', object: name, problem: check.problem, ...(copy ? {copy} : {}), ...(check.chunk ? {chunk: check.chunk} : {})}
      }
      checked++
      opts.onProgress?.(checked)
      if (found) {
        bad.set(name, found.problem)
        problems.push(found)
      } else present.add(name)
    }
    // the manifest database only now: a reader of a shared store holds it against the owner's writes while open
    db = ManifestDb.open(home)
    // One pass over every layer: each entry whose object is bad or absent is a hit on that layer and path.
    const layers = db.listLayers()
    const hitsByObject = new Map<string, Array<{layer: string; path: string}>>()
    const hitLayers = new Set<string>()
    // lazy images (docs/registry.md): their objects not fetched yet are in the registry, not missing
    const lazy = new Set<string>()
    for (const r of listLazyRecords(home)) if (db.getImage(r.image)?.layers.join('/') === r.layers.join('/')) r.layers.forEach((l) => lazy.add(l))
    const remote = new Set<string>()
    const hidden = new Set<string>()
    for (const l of layers) {
      for (const {path: p, object} of layerObjects(db, l.id)) {
        const name = objectName(object)
        if (present.has(name)) continue
        if (lazy.has(l.id) && !bad.has(name)) {
          remote.add(name)
          continue
        }
        if (packsHidden && !bad.has(name)) {
          hidden.add(name) // maybe in a pack this user may not read
          continue
        }
        hitLayers.add(l.id)
        const hits = hitsByObject.get(name) ?? []
        hits.push({layer: l.id, path: p})
        hitsByObject.set(name, hits)
      }
    }
    const images = db.listImages()
    const imagesOf = (layer: string) => images.filter((img) => img.layers.includes(layer)).map((img) => img.name)
    for (const [name, hits] of hitsByObject) {
      if (bad.has(name)) continue
      for (const h of hits)
        problems.push({kind: 'missing-object', object: name, layer: h.layer, image: imagesOf(h.layer).join(', ') || undefined, paths: [h.path], problem: 'named by the manifest, absent from the store'})
    }
    // Attach the images and paths to each bad object, so the report says what a flipped byte breaks.
    for (const p of problems) {
      if (p.kind !== 'bad-object') continue
      const hits = hitsByObject.get(p.object!) ?? []
      p.paths = hits.map((h) => h.path)
      p.image = [...new Set(hits.flatMap((h) => imagesOf(h.layer)))].join(', ') || undefined
    }
    const affected = new Set<string>()
    for (const img of images) {
      for (const l of img.layers) {
        if (!db.hasLayer(l)) {
          problems.push({kind: 'missing-layer', image: img.name, layer: l, problem: 'image names a layer that does not exist'})
          affected.add(img.name)
        } else if (hitLayers.has(l)) affected.add(img.name)
      }
    }
    let repaired: FsckReport['repaired'] = null
    if (opts.repair) {
      let removedObjects = 0
      let removedStray = 0
      const badPacked: string[] = []
      for (const p of problems) {
        if (p.kind === 'damaged-pack' && p.object) {
          badPacked.push(`pack:${path.basename(p.object)}`) // rewritten below with whatever of it reads back right
          removedStray++
          continue
        }
        if (p.kind === 'bad-object' && p.object && p.copy === 'packed') {
          badPacked.push(p.object) // its damaged copies dropped below: their packs rewritten without them
        } else if (p.kind === 'bad-object' && p.object && p.copy) {
          // only the copy found bad: a good cold copy beside a bad plain file stays the object; a damaged chunk goes
          // and the recipes naming it stay (a later freeze of those bytes writes the chunk again: the object heals)
          const id = parseObjectName(p.object)!
          if (p.copy === 'chunk' && p.chunk) fs.rmSync(path.join(chunksDir(home), p.chunk.slice(0, 2), p.chunk), {force: true})
          else if (p.copy === 'zst' || p.copy === 'cdc') fs.rmSync(store.path(id) + `.${p.copy}`, {force: true})
          else if (p.copy === 'plain') store.delete(id)
          removedObjects++
        } else if (p.kind === 'stray-file' && p.object) {
          fs.rmSync(p.object, {recursive: true, force: true})
          removedStray++
        }
      }
      if (badPacked.length) {
        // (a damaged pack's objects that read back right go into a new pack; the others are dropped)
        // a pack is rewritten and the old one removed: under the exclusive lock, as gc's compaction (a thaw reading it
        // holds the shared one)
        lock.release()
        lock.acquire('exclusive', {timeoutSec: 300})
        // "NAME bad": only the copies that do not read back right, checked again under this lock
        removedObjects += compactPacks(home, badPacked.map((n) => (n.startsWith('pack:') ? n : `${n} bad`)), 0, lock.heldFd).droppedNames.length
      }
      repaired = {removedObjects, removedStray}
    }
    return {
      objectsChecked: checked,
      layersChecked: layers.length,
      imagesChecked: images.length,
      problems,
      affectedImages: [...affected].sort(),
      tempFiles: dirCount(store.tmpDir),
      unreadable: unreadable + hidden.size,
      remoteObjects: remote.size,
      repaired,
    }
  } finally {
    db?.close()
    lock.release()
  }
}

/**
 * Every sandbox's state file is a gc hold on its image's layers (creates claim under the shared store lock,
 * so none is half-written while gc holds the exclusive one). A tenant dir whose state file is missing or
 * unreadable stops gc (fail closed: its layers are unknown) until it is removed.
 */
/** The layers unfinished restores of volumes are making their data dirs equal to (volumes/NAME/restoring, a marker
 * the next command on the volume acts on: its layer must outlive its snapshot's image). */
function restoringLayers(home: string): string[] {
  const dir = path.join(home, 'volumes')
  const out: string[] = []
  for (const n of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
    let text: string
    try {
      text = fs.readFileSync(path.join(dir, n, 'restoring'), 'utf8')
    } catch {
      continue // none (or not a volume dir)
    }
    let layers: unknown
    try {
      // {layer} of a one-layer snapshot (and of older markers), {layers} of a stack (a snapshot stored as a delta)
      const m = JSON.parse(text) as {layer?: unknown; layers?: unknown}
      layers = m.layers ?? [m.layer]
    } catch {}
    if (!Array.isArray(layers) || !layers.length || !layers.every((l) => typeof l === 'string' && /^[0-9a-f]{64}$/.test(l)))
      throw new VeloError('STATE', `cannot tell which layers volume ${n}'s unfinished restore needs (volumes/${n}/restoring is damaged); gc keeps everything`, {
        suggestion: `restore a snapshot of it again (velo volume restore ${n} SNAP), then run gc again`,
      })
    out.push(...(layers as string[]))
  }
  return out
}

function tenantLayers(home: string): string[] {
  const dir = path.join(home, 'tenants')
  const out: string[] = []
  for (const n of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
    if (n.startsWith('.')) continue // .rm-NAME-PID: a removal in progress
    const f = path.join(dir, n, 'state.json')
    let layers: unknown
    try {
      layers = (JSON.parse(fs.readFileSync(f, 'utf8')) as {layers?: unknown}).layers
    } catch {
      layers = undefined
    }
    if (!Array.isArray(layers) || layers.some((l) => typeof l !== 'string'))
      throw new VeloError('STATE', `cannot tell which layers sandbox ${n} uses (${f} is missing or damaged); gc keeps everything`, {
        suggestion: `remove it with \`velo sandbox rm -f ${n}\`, then run gc again`,
      })
    out.push(...(layers as string[]))
  }
  return out
}

// ---- gc --------------------------------------------------------------------------------------------

export interface GcReport {
  removedLayers: number
  removedObjects: number
  removedBytes: number
  removedTempFiles: number
  removedFarms: number
  keptObjects: number
  /** cold objects (only volume snapshots name them, no farm links them) compressed by this gc (src/store/cold.ts) */
  frozenObjects: number
  frozenBytes: number
  frozenStoredBytes: number
  /** of those, the ones kept as content-defined chunks (8 MiB and more), and the chunks they added to the store */
  chunkedObjects: number
  newChunks: number
  /** chunks no recipe names any more, removed */
  removedChunks: number
  removedChunkBytes: number
  /** farms of snapshot layers that nothing mounted, dropped so their objects could go cold (rebuilt when used) */
  coldFarms: number
  /** of the frozen objects, the small ones put into packs, and the new packs */
  packedObjects: number
  newPacks: number
  /** packs of small cold objects: dead ones (nothing names them, or they are plain again) dropped where a pack's dead
   * share reached the threshold — those packs rewritten with their live objects; bytes the packs took before/after */
  compaction: {threshold: number; deadObjects: number; rewrittenPacks: number; droppedObjects: number; droppedBytes: number; movedObjects: number; bytesBefore: number; bytesAfter: number; damagedPacks: string[]}
  /** files in holds/ that are not valid holds (wrong owner, not a regular file, unparsable): they keep nothing */
  ignoredHolds: string[]
  dryRun: boolean
}

/**
 * Mark (layers named by images, holds, tenants and unfinished volume restores, then every object those layers name) and sweep (objects, temp
 * files, farms of dead layers), all under the EXCLUSIVE store lock: a writer holds the shared lock from its
 * first object to its manifest commit, so nothing it links can be swept between its dedup hit and commit.
 */
export function gc(home: string, opts: {dryRun?: boolean; waitSec?: number; compactThreshold?: number} = {}): GcReport {
  const threshold = opts.compactThreshold ?? DEFAULT_COMPACT_THRESHOLD
  if (!(threshold >= 0 && threshold <= 1)) throw new VeloError('USAGE', `compaction threshold ${threshold} is not between 0 and 1`, {suggestion: 'give the dead share of a pack that makes gc rewrite it, e.g. 0.5'})
  if (!fs.existsSync(home)) throw new VeloError('NOT_FOUND', `no store at ${home}`)
  // even a dry run: its exclusive lock would stop every reader and writer of a store this user may not change
  requireWritableStore(home, 'gc')
  const store = new Store(home)
  const lock = new StoreLock(path.join(home, 'lock')).acquire('exclusive', {timeoutSec: opts.waitSec ?? 300})
  const db = ManifestDb.open(home)
  try {
    const live = new Set<string>()
    // layers only volume snapshots name may go cold (below); every other live layer is hot
    const hotLayers = new Set<string>()
    const snapshotLayers = new Map<string, Set<string>>() // layer → the volumes whose snapshots name it
    for (const img of db.listImages()) {
      const volume = snapshotVolume(home, img.name)
      for (const l of img.layers) {
        live.add(l)
        if (volume === undefined) hotLayers.add(l)
        else snapshotLayers.set(l, (snapshotLayers.get(l) ?? new Set()).add(volume))
      }
    }
    for (const h of db.listHolds()) h.layers.forEach((l) => (live.add(l), hotLayers.add(l)))
    // the holds of users who may only read this store (velo run, velo mount): files in holds/
    const user = listUserHolds(home)
    for (const h of user.holds) h.layers.forEach((l) => (live.add(l), hotLayers.add(l)))
    for (const l of tenantLayers(home)) live.add(l), hotLayers.add(l)
    for (const l of restoringLayers(home)) live.add(l), hotLayers.add(l)
    let removedLayers = 0
    for (const l of db.listLayers()) {
      if (live.has(l.id)) continue
      removedLayers++
      if (!opts.dryRun) db.deleteLayerSync(l.id)
    }
    const keep = new Set<string>()
    for (const l of live) for (const {object} of layerObjects(db, l)) keep.add(objectName(object))
    let removedObjects = 0
    let removedBytes = 0
    const listing = [...store.list()]
    const hotObjects = new Set(listing.filter((o) => o.id && !o.cold).map((o) => o.name))
    let coldLeft = 0
    const redundant: string[] = []
    const countedDead = new Set<string>()
    const packListing = listPacked(home)
    const packed = packListing.objects
    const packedNames = new Set(packed.map((o) => o.name))
    // the xattrs of plain files that have a cold copy too (checked below), in one native pass: verify would read them a
    // process per object
    const both = opts.dryRun ? [] : [...listing.filter((o) => o.cold && o.id).map((o) => o.name), ...packed.map((o) => o.name)].filter((n) => hotObjects.has(n))
    const plainXattrs = readXattrs(both.map((n) => store.path(parseObjectName(n)!)))
    const plainGood = (id: ObjectId) => store.verify(id, plainXattrs.get(store.path(id)) ?? []).ok
    for (const o of listing) {
      const kept = !!o.id && keep.has(o.name)
      if (kept && o.cold && hotObjects.has(o.name) && !opts.dryRun) {
        // a thaw or freeze cut short left both: the plain file is the object if it reads as its name says; else it
        // goes and the .zst stays the object
        if (plainGood(o.id!)) redundant.push(o.path)
        else {
          fs.rmSync(store.path(o.id!), {force: true})
          coldLeft++
        }
        continue
      }
      if (kept && !(o.cold && hotObjects.has(o.name))) {
        if (o.cold) coldLeft++
        continue
      }
      // dead, or not an object at all
      // a dead object a pack still holds is counted when no pack does any more (the compaction below, or a later one)
      if (!kept && !(o.id && (countedDead.has(o.name) || packedNames.has(o.name)))) {
        removedObjects++
        removedBytes += o.id?.size ?? 0
        if (o.id) countedDead.add(o.name) // a plain file and its cold copy: one object
      }
      if (!opts.dryRun) fs.rmSync(o.path, {force: true, recursive: true})
    }
    // small cold objects in packs: a dead one (or one plain again, the plain file good) is dropped from its pack by
    // the compaction below, when its pack's dead share reaches the threshold
    const dropPacked: string[] = []
    const deadPacked = new Set<string>()
    for (const o of packed) {
      const id = parseObjectName(o.name)
      const kept = !!id && keep.has(o.name)
      if (kept && hotObjects.has(o.name)) {
        if (opts.dryRun) continue
        if (plainGood(id!)) dropPacked.push(o.name)
        else {
          fs.rmSync(store.path(id!), {force: true})
          coldLeft++
        }
      } else if (kept) coldLeft++
      else dropPacked.push(o.name), deadPacked.add(o.name)
    }
    // the plain files durable before their compressed copies go
    if (redundant.length || dropPacked.length) store.sync()
    for (const p of redundant) fs.rmSync(p, {force: true})
    // before the freeze: it may pack again an object dropped here (plain again, and cold)
    const compaction = opts.dryRun ? undefined : compactPacks(home, dropPacked, threshold, lock.heldFd)
    // a dead packed object counts as removed once no pack holds it any more (until then it is still stored; a dry
    // run does not know which packs the threshold would rewrite: compaction.deadObjects says how many are dead)
    for (const n of (compaction?.droppedNames ?? []).filter((n) => deadPacked.has(n) && !countedDead.has(n))) {
      removedObjects++
      removedBytes += parseObjectName(n)?.size ?? 0
    }
    // a pack that cannot be read may hold cold objects: readers keep looking for them
    if (packListing.damaged.length || packListing.unreadable.length) coldLeft++
    let removedTempFiles = 0
    for (const t of fs.existsSync(store.tmpDir) ? fs.readdirSync(store.tmpDir) : []) {
      removedTempFiles++
      if (!opts.dryRun) fs.rmSync(path.join(store.tmpDir, t), {force: true, recursive: true})
    }
    for (const t of user.temps) {
      removedTempFiles++
      if (!opts.dryRun) fs.rmSync(t, {force: true})
    }
    let removedFarms = 0
    const farms = path.join(home, 'farms')
    for (const f of fs.existsSync(farms) ? fs.readdirSync(farms) : []) {
      if (live.has(f)) continue
      removedFarms++
      if (!opts.dryRun) fs.rmSync(path.join(farms, f), {force: true, recursive: true})
    }
    const cold = opts.dryRun ? {frozen: noFreeze(), farms: 0} : freezeCold(home, db, hotLayers, snapshotLayers, lock.heldFd)
    // chunks no recipe names any more (their objects thawed, or dead and swept above)
    const chunks = opts.dryRun ? {swept: 0, sweptBytes: 0, chunks: 0, chunkBytes: 0} : sweepChunks(home, lock.heldFd)
    if (!opts.dryRun && coldLeft + cold.frozen.frozen === 0 && mayHoldCold(home)) markCold(home, false)
    if (!opts.dryRun) emitEvent(home, 'store', 'gc', path.basename(home), {removedObjects, removedBytes, removedLayers, frozenObjects: cold.frozen.frozen})
    return {
      removedLayers,
      removedObjects,
      removedBytes,
      removedTempFiles,
      removedFarms,
      keptObjects: keep.size,
      frozenObjects: cold.frozen.frozen,
      frozenBytes: cold.frozen.logicalBytes,
      frozenStoredBytes: cold.frozen.storedBytes,
      chunkedObjects: cold.frozen.chunked,
      newChunks: cold.frozen.newChunks,
      removedChunks: chunks.swept,
      removedChunkBytes: chunks.sweptBytes,
      coldFarms: cold.farms,
      packedObjects: cold.frozen.packed,
      newPacks: cold.frozen.packs,
      compaction: {
        threshold,
        deadObjects: deadPacked.size,
        rewrittenPacks: compaction?.rewritten ?? 0,
        droppedObjects: compaction?.dropped ?? 0,
        droppedBytes: compaction?.droppedBytes ?? 0,
        movedObjects: compaction?.moved ?? 0,
        bytesBefore: compaction?.bytesBefore ?? 0,
        bytesAfter: compaction?.bytesAfter ?? 0,
        damagedPacks: compaction?.damaged ?? [],
      },
      ignoredHolds: user.ignored,
      dryRun: !!opts.dryRun,
    }
  } finally {
    db.close()
    lock.release()
  }
}

/** NAME of a volume snapshot's image, `volume:NAME:SNAP` (src/volume/volumes.ts snapshotImage) of a volume that
 * exists; undefined for any other image (an image a user named `volume:x` is not one). */
function snapshotVolume(home: string, image: string): string | undefined {
  const m = /^volume:([A-Za-z0-9][A-Za-z0-9_.-]*):([^:/]+)$/.exec(image)
  return m && fs.existsSync(path.join(home, 'volumes', m[1], 'volume.json')) ? m[1] : undefined
}

/**
 * gc's last step, under its exclusive lock (lockFd): the objects only volume snapshots name go cold (docs/volumes.md,
 * "Cold objects"). Snapshots of a volume in use stay as they are: one a sandbox names (running or stopped), one
 * mounted on the host, one whose lock a command holds (a create, start or mount between its check and its bind);
 * the others' volume locks are held to the end. A farm of the others' layers that no mount in any namespace uses
 * is a cache (a farm, a checkout or a restore of the layer makes plain what it needs and builds it anew): it is
 * dropped, so that its objects have one link — unless some namespace's mounts could not be read. Then every object
 * of those layers that no hot layer names and has no xattrs is frozen by velo-cold: packed with other small ones,
 * compressed alone, or chunked (it keeps an object plain if it is linked anywhere after all, or would not get smaller).
 */
function freezeCold(home: string, db: ManifestDb, hotLayers: Set<string>, snapshotLayers: Map<string, Set<string>>, lockFd?: number): {frozen: FreezeResult; farms: number} {
  const out = {frozen: noFreeze(), farms: 0}
  if (![...snapshotLayers.keys()].some((l) => !hotLayers.has(l)) || !coldTool()) return out
  const {lockUnusedVolume} = require('../volume/volumes') as typeof import('../volume/volumes')
  const volumeLocks: StoreLock[] = []
  const busy = new Set<string>()
  try {
    for (const v of new Set([...snapshotLayers.values()].flatMap((s) => [...s]))) {
      const l = lockUnusedVolume(home, v)
      if (l) volumeLocks.push(l)
      else busy.add(v)
    }
    const mounts = mountinfoEverywhere()
    const bound = new Set<string>()
    for (const line of mounts.lines) for (const m of line.matchAll(/\/farms\/([0-9a-f]{64})(?=[/ ,:]|$)/g)) bound.add(m[1])
    const cold: string[] = []
    for (const [l, volumes] of snapshotLayers) {
      if (hotLayers.has(l)) continue
      if (bound.has(l) || [...volumes].some((v) => busy.has(v))) {
        hotLayers.add(l)
        continue
      }
      const farm = path.join(home, 'farms', l)
      if (fs.existsSync(farm)) {
        if (!mounts.complete) {
          hotLayers.add(l)
          continue
        }
        // renamed away first: a farm is either whole at its name or not there (ensureFarm builds it again)
        const drop = path.join(home, 'farms', `.drop-${l.slice(0, 16)}-${process.pid}`)
        fs.renameSync(farm, drop)
        fs.rmSync(drop, {recursive: true, force: true})
        out.farms++
      }
      cold.push(l)
    }
    const hot = new Set<string>()
    for (const l of hotLayers) for (const {object} of layerObjects(db, l)) hot.add(objectName(object))
    const names = new Set<string>()
    for (const l of cold)
      for (const {object} of layerObjects(db, l)) {
        const name = objectName(object)
        if (!hot.has(name) && !object.xattrs && object.size > 0) names.add(name)
      }
    if (names.size === 0) return out
    markCold(home, true) // before the first .zst exists: readers look for cold objects only where it is
    out.frozen = freezeObjects(home, [...names], lockFd)
    return out
  } finally {
    for (const l of volumeLocks) l.release()
  }
}

// ---- the lazy-image cache -----------------------------------------------------------------------------

export interface LazyTrimReport {
  /** bytes of lazily fetched objects (objects only lazy images name) before / after */
  cachedBytes: number
  keptBytes: number
  evicted: number
  evictedBytes: number
  /** the store was busy (a writer or gc): nothing done, the next trim will */
  skipped?: boolean
}

/**
 * Objects fetched for lazy images (docs/registry.md "Lazy images") are a cache: they can be fetched again.
 * When those of them that no complete image names exceed MAXBYTES, the least recently used (the later of the
 * file's atime and ctime: fetched, or read with the store's atime granularity) are deleted — but never one an
 * image in use needs (layers under a hold: mounts, sandboxes) nor one a complete image names. Under the
 * exclusive store lock, without waiting: a busy store is trimmed next time.
 */
export function trimLazyCache(home: string, maxBytes: number): LazyTrimReport {
  const out: LazyTrimReport = {cachedBytes: 0, keptBytes: 0, evicted: 0, evictedBytes: 0}
  const records = listLazyRecords(home)
  if (records.length === 0) return out
  const lock = new StoreLock(path.join(home, 'lock'))
  try {
    lock.acquire('exclusive', {wait: false})
  } catch (err) {
    if (err instanceof VeloError && err.code === 'BUSY') return {...out, skipped: true}
    throw err
  }
  const db = ManifestDb.open(home)
  try {
    const store = new Store(home)
    const lazyLayers = new Set<string>()
    const lazyImages = new Set<string>()
    for (const r of records)
      if (db.getImage(r.image)?.layers.join('/') === r.layers.join('/')) {
        lazyImages.add(r.image)
        r.layers.forEach((l) => lazyLayers.add(l))
      }
    const inUse = new Set<string>()
    for (const h of db.listHolds()) h.layers.forEach((l) => inUse.add(l))
    for (const h of listUserHolds(home).holds) h.layers.forEach((l) => inUse.add(l))
    for (const l of tenantLayers(home)) inUse.add(l)
    const complete = new Set<string>()
    for (const img of db.listImages()) if (!lazyImages.has(img.name)) img.layers.forEach((l) => complete.add(l))
    const pinned = new Set<string>() // named by a complete image: not cache
    for (const l of complete) for (const {object} of layerObjects(db, l)) pinned.add(objectName(object))
    const busy = new Set<string>() // needed by an image in use
    for (const l of inUse) if (!complete.has(l)) for (const {object} of layerObjects(db, l)) busy.add(objectName(object))
    const seen = new Set<string>()
    const candidates: Array<{id: ObjectId; size: number; t: number}> = []
    for (const l of lazyLayers) {
      if (complete.has(l)) continue
      for (const {object} of layerObjects(db, l)) {
        const name = objectName(object)
        if (seen.has(name) || pinned.has(name)) continue
        seen.add(name)
        let st: fs.Stats
        try {
          st = fs.statSync(store.path(object))
        } catch {
          continue // not fetched
        }
        out.cachedBytes += st.size
        if (!busy.has(name)) candidates.push({id: object, size: st.size, t: Math.max(st.atimeMs, st.ctimeMs)})
      }
    }
    let total = out.cachedBytes
    candidates.sort((a, b) => a.t - b.t)
    for (const c of candidates) {
      if (total <= maxBytes) break
      store.delete(c.id)
      total -= c.size
      out.evicted++
      out.evictedBytes += c.size
    }
    out.keptBytes = total
    return out
  } finally {
    db.close()
    lock.release()
  }
}
