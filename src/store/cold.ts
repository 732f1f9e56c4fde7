import {spawnSync} from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {VeloError, fromSystemError} from '../lib/errors'
import {isRoot} from '../lib/home'
import {StoreLock} from '../lib/lock'
import {callerEnv, optionalNativeBin} from '../lib/native'
import {isReadOnlyStore} from '../lib/store-access'
import type {ManifestDb} from '../manifest/db'
import {S_IFMT, S_IFREG} from '../manifest/entry'
import {entryObjectName, Store} from './cas'

/**
 * Cold objects (docs/volumes.md, "Cold objects"): an object that only volume snapshots name, that no farm links,
 * is kept by `velo gc` in a pack with other small ones (under 64 KiB: cas/packs, zstd frames of several objects),
 * as one zstd frame, `<name>.zst` beside where the plain file was, or — 8 MiB and more — as a recipe of
 * content-defined chunks, `<name>.cdc`, its chunks stored once each in cas/chunks (native/ingest/cold-cdc.c).
 * Everything that reads objects through a layer — a farm, a checkout, a restore, a FUSE mount, a projection, an
 * export or a push — first makes that layer's objects hot again (thawLayers), under the store's lock, so gc cannot
 * freeze them in between; nothing else in velo (C or Node) ever opens a `.zst`.
 */

/** the two cold forms of an object: a zstd frame, or a recipe of chunks (both 4 characters: list() relies on it) */
export const COLD_SUFFIXES = ['.zst', '.cdc'] as const
/** the cold copy of the object at p, if one is there */
export const coldCopy = (p: string): string | undefined => COLD_SUFFIXES.map((s) => p + s).find((c) => fs.existsSync(c))
/** where chunks of chunked cold objects live */
export const chunksDir = (home: string) => path.join(home, 'cas', 'chunks')
/** where packs of small cold objects live (docs/format.md, "Packs") */
export const packsDir = (home: string) => path.join(home, 'cas', 'packs')
/** gc rewrites a pack once this share of its bytes (objects nothing names, second copies) is dead */
export const DEFAULT_COMPACT_THRESHOLD = 0.5
/** $VELO_HOME/cold: this store may hold cold objects (made by gc before it freezes any, removed when none is left) */
const MARK = 'cold'

export const mayHoldCold = (home: string): boolean => fs.existsSync(path.join(home, MARK))
export function markCold(home: string, on: boolean): void {
  if (on) fs.writeFileSync(path.join(home, MARK), 'this store may hold cold objects (<name>.zst, <name>.cdc): docs/volumes.md\n')
  else fs.rmSync(path.join(home, MARK), {force: true})
}

/** velo-cold, or undefined when it is not built (no libzstd-dev at install: gc then compresses nothing) */
export const coldTool = (): string | undefined => optionalNativeBin('velo-cold')

/** `<h0h1>/<name>`: what velo-cold reads on stdin */
const rel = (name: string) => `${name.slice(0, 2)}/${name}`

/** lockFd: the caller's store lock, handed to velo-cold so that the lock lasts as long as it runs (a freeze must not
 * outlive gc's exclusive lock, even for the moment between gc's death and its own) */
function run(verb: 'freeze' | 'thaw' | 'verify' | 'sweep-chunks' | 'packed' | 'compact', store: Store, names: string[], lockFd?: number, extra: string[] = []): string[] {
  const bin = coldTool()
  if (!bin)
    throw new VeloError('UNSUPPORTED', 'this store holds compressed (cold) objects, and velo-cold is not built', {
      suggestion: 'install libzstd-dev, then run `npm run build` (or scripts/setup.sh)',
    })
  const stdio: Array<'pipe' | number> = lockFd === undefined ? ['pipe', 'pipe', 'pipe'] : ['pipe', 'pipe', 'pipe', lockFd]
  const r = spawnSync(bin, [verb, store.casDir, store.tmpDir, isRoot() ? 'ROOT' : 'NOROOT', chunksDir(store.home), packsDir(store.home), ...extra], {input: names.length ? names.map((n) => (n.startsWith('pack:') ? n : rel(n))).join('\n') + '\n' : '', maxBuffer: 1 << 30, encoding: 'utf8', stdio, env: callerEnv()})
  if (r.error) throw new VeloError('NATIVE', `cannot run velo-cold: ${r.error.message}`)
  if (r.status !== 0) {
    const msg = (r.stderr || `velo-cold exited ${r.status ?? r.signal}`).trim()
    if (/: damaged: /.test(msg))
      throw new VeloError('INTEGRITY', msg.replace(/^velo-cold: /, 'compressed object '), {suggestion: 'run velo fsck: it names the images and paths the object belongs to'})
    const errno = [['ENOSPC', /No space left/], ['EDQUOT', /Disk quota/], ['EACCES', /Permission denied/], ['EPERM', /Operation not permitted/], ['EROFS', /Read-only file system/], ['EIO', /Input\/output error/]].find(([, re]) => (re as RegExp).test(msg))
    if (errno) throw fromSystemError(Object.assign(new Error(msg), {code: errno[0] as string}), `cold objects (${verb})`)
    throw new VeloError('NATIVE', msg.replace(/^velo-cold: /, `cold objects (${verb}): `))
  }
  return r.stdout.split('\n').filter(Boolean)
}

/** Every object the layers name (regular files with content), once. */
function objectsOf(db: ManifestDb, layers: Iterable<string>): Set<string> {
  const out = new Set<string>()
  for (const l of layers)
    for (const {entry} of db.layerEntries(l)) if ((entry.mode & S_IFMT) === S_IFREG && entry.size > 0n) out.add(entryObjectName(entry))
  return out
}

/**
 * Make the objects of these layers hot (plain files) where they are cold. The caller holds the store's lock (shared
 * is enough: a thaw writes objects as an ingest does; gc, which freezes, takes it exclusive) and keeps holding it
 * while it reads them. Returns how many were thawed. A store that never held a cold object costs one stat.
 */
export function thawLayers(home: string, db: ManifestDb, layers: Iterable<string>): number {
  if (!mayHoldCold(home)) return 0
  const store = new Store(home)
  const need: string[] = []
  for (const name of objectsOf(db, layers)) if (!fs.existsSync(path.join(store.casDir, rel(name)))) need.push(name)
  // a lazy image's objects not fetched yet are in its registry (docs/registry.md): velo-cold says "absent" for them
  const lazyObjects = () => {
    const {listLazyRecords} = require('../registry/lazy') as typeof import('../registry/lazy')
    const live = listLazyRecords(home).filter((r) => db.getImage(r.image)?.layers.join('/') === r.layers.join('/'))
    return objectsOf(db, new Set(live.flatMap((r) => r.layers)))
  }
  return thawNames(home, store, need, lazyObjects)
}

/** Make these objects (paths in the store, as velo-converge prints them) hot where they are cold. Lock: as thawLayers. */
export function thawObjectPaths(home: string, paths: string[]): number {
  if (!mayHoldCold(home) || paths.length === 0) return 0
  const store = new Store(home)
  const need = paths.filter((p) => !fs.existsSync(p)).map((p) => path.basename(p))
  return thawNames(home, store, [...new Set(need)])
}

/** need: objects with no plain file; velo-cold finds their cold copies (a .zst, a .cdc, a pack), and says "absent"
 * for the ones that have none (not in this store: a lazy image's, fetched when read) */
function thawNames(home: string, store: Store, need: string[], lazyObjects?: () => Set<string>): number {
  if (need.length === 0) return 0
  if (isReadOnlyStore(home)) {
    const packs = listPacked(home)
    const packed = new Set(packs.objects.map((o) => o.name))
    // a pack this user may not read (packs are the owner's, 0600) may hold any of them, but a lazy image's
    const unreadable = packs.unreadable.some((d) => d.denied)
    const lazy = unreadable && lazyObjects ? lazyObjects() : new Set<string>()
    const cold = need.filter((n) => (unreadable && !lazy.has(n)) || packed.has(n) || coldCopy(path.join(store.casDir, rel(n))))
    if (cold.length === 0) return 0
    throw new VeloError('PERMISSION_DENIED', `${cold.length} object(s) of this image are compressed (cold, docs/volumes.md), and only the store's owner can decompress them`, {
      suggestion: `run the same command once as the owner of ${home}; it decompresses them for everyone`,
    })
  }
  return run('thaw', store, need).filter((l) => l.startsWith('thawed ')).length
}

export interface PackListing {
  /** every packed object once (the first pack that has it), with its share of its pack's bytes */
  objects: Array<{name: string; pack: string; stored: number}>
  packs: Array<{pack: string; bytes: number; rawBytes: number; objects: number}>
  /** packs whose trailer or index is broken (fsck names them, --repair removes them; their objects read as missing) */
  damaged: Array<{pack: string; why: string}>
  /** packs an I/O error or a permission keeps from being read (they may be whole): readers of an object found in no
   * other pack fail closed */
  unreadable: Array<{pack: string; why: string; denied: boolean}>
}

/** What the packs hold, from their indexes (velo-cold packed). */
export function listPacked(home: string): PackListing {
  const out: PackListing = {objects: [], packs: [], damaged: [], unreadable: []}
  if (!fs.existsSync(packsDir(home)) || !coldTool()) return out
  for (const line of run('packed', new Store(home), [])) {
    const [what, a, b, c, d] = line.split(' ')
    if (what === 'packed') out.objects.push({name: a.slice(3), pack: b, stored: Number(c)})
    else if (what === 'pack') out.packs.push({pack: a, bytes: Number(b), rawBytes: Number(c), objects: Number(d)})
    else if (what === 'damaged') out.damaged.push({pack: a, why: line.slice(`damaged ${a} `.length)})
    else if (what === 'unreadable') {
      const why = line.slice(`unreadable ${a} `.length)
      // this user may not read it (packs are the owner's, 0600): not a problem of the store
      out.unreadable.push({pack: a, why, denied: /Permission denied|Operation not permitted/.test(why)})
    }
  }
  return out
}

export interface CompactResult {
  /** packs rewritten (their live objects into new packs) and removed */
  rewritten: number
  removed: number
  /** objects moved into new packs; dropped (dead, or second copies) and the bytes of the dead ones */
  moved: number
  dropped: number
  droppedBytes: number
  bytesBefore: number
  bytesAfter: number
  /** packs left as they were because a live object in them would not read back right (fsck names it) */
  damaged: string[]
  /** the objects dropped (of the ones named: each once, when its pack was rewritten) */
  droppedNames: string[]
}

/** Drop these objects from the packs and rewrite every pack whose dead share reaches threshold (gc under its exclusive
 * lock, lockFd; fsck --repair with threshold 0 for the damaged ones). */
export function compactPacks(home: string, drop: string[], threshold: number, lockFd?: number): CompactResult {
  const out: CompactResult = {rewritten: 0, removed: 0, moved: 0, dropped: 0, droppedBytes: 0, bytesBefore: 0, bytesAfter: 0, damaged: [], droppedNames: []}
  if (!fs.existsSync(packsDir(home)) || !coldTool()) return out
  for (const line of run('compact', new Store(home), drop, lockFd, [String(threshold)])) {
    const f = line.split(' ')
    if (f[0] === 'compacted') [out.rewritten, out.removed, out.moved, out.dropped, out.droppedBytes, out.bytesBefore, out.bytesAfter] = f.slice(1).map(Number)
    else if (f[0] === 'damaged') out.damaged.push(line.slice('damaged '.length))
    else if (f[0] === 'dropped') out.droppedNames.push(f[1].slice(3))
  }
  return out
}

/**
 * thawLayers under the store's shared lock, taken here, and kept until the returned function is called: for readers
 * (a checkout) that did not hold the lock before. A user who may not lock the store (it is shared with them
 * read-only) reads as before, without it.
 */
export function holdThawed(home: string, db: ManifestDb, layers: Iterable<string>): () => void {
  if (isReadOnlyStore(home)) {
    thawLayers(home, db, layers) // says who can, if anything is cold
    return () => {}
  }
  const lock = new StoreLock(path.join(home, 'lock')).acquire('shared')
  try {
    thawLayers(home, db, layers)
  } catch (err) {
    lock.release()
    throw err
  }
  return () => lock.release()
}

export const noFreeze = (): FreezeResult => ({frozen: 0, logicalBytes: 0, storedBytes: 0, chunked: 0, chunks: 0, newChunks: 0, packed: 0, packs: 0})

export interface FreezeResult {
  frozen: number
  /** bytes of the objects frozen, and what their .zst files (and the new chunks and recipes of chunked ones) hold */
  logicalBytes: number
  storedBytes: number
  /** of those, the ones kept as chunks; their chunks, and how many of them were new */
  chunked: number
  chunks: number
  newChunks: number
  /** of those, the ones put into packs (under 64 KiB), and the new packs */
  packed: number
  packs: number
}

/** Freeze these (plain) objects; gc only, under the exclusive store lock (its fd: lockFd). */
export function freezeObjects(home: string, names: string[], lockFd?: number): FreezeResult {
  const out = noFreeze()
  if (names.length === 0 || !coldTool()) return out
  for (const line of run('freeze', new Store(home), names, lockFd)) {
    const [what, , plain, stored, chunks, fresh] = line.split(' ')
    if (what === 'pack') {
      out.packs++
      out.storedBytes += Number(plain) // "pack HEX BYTES"
      continue
    }
    if (what === 'packed') {
      out.frozen++
      out.packed++
      out.logicalBytes += Number(plain)
      continue
    }
    if (what !== 'frozen' && what !== 'chunked') continue
    out.frozen++
    out.logicalBytes += Number(plain)
    out.storedBytes += Number(stored)
    if (what === 'chunked') {
      out.chunked++
      out.chunks += Number(chunks)
      out.newChunks += Number(fresh)
    }
  }
  return out
}

/** Remove the chunks no recipe names (gc, after its sweep and its freeze, under its exclusive lock: lockFd). */
export function sweepChunks(home: string, lockFd?: number): {swept: number; sweptBytes: number; chunks: number; chunkBytes: number} {
  const out = {swept: 0, sweptBytes: 0, chunks: 0, chunkBytes: 0}
  if (!coldTool() || !fs.existsSync(chunksDir(home))) return out
  for (const line of run('sweep-chunks', new Store(home), [], lockFd)) {
    const [what, n, bytes] = line.split(' ')
    if (what === 'swept') (out.swept = Number(n)), (out.sweptBytes = Number(bytes))
    if (what === 'kept') (out.chunks = Number(n)), (out.chunkBytes = Number(bytes))
  }
  return out
}

/** The chunk store as it is: how many chunks, and the bytes their files take (status). */
export function chunkStoreSize(home: string): {chunks: number; bytes: number} {
  const out = {chunks: 0, bytes: 0}
  let fan: string[]
  try {
    fan = fs.readdirSync(chunksDir(home))
  } catch {
    return out
  }
  for (const a of fan) {
    let names: string[]
    try {
      names = fs.readdirSync(path.join(chunksDir(home), a))
    } catch {
      continue
    }
    for (const n of names) {
      try {
        out.bytes += fs.lstatSync(path.join(chunksDir(home), a, n)).size
        out.chunks++
      } catch {}
    }
  }
  return out
}

/** What velo-cold verify found of one cold object: 'ok'; 'hot' (made plain meanwhile: check the plain file);
 * 'unreadable' (this user may not read it); or bad, with the copy at fault (what a repair removes) and the problem in
 * words. */
export type ColdCheck = 'ok' | 'hot' | 'unreadable' | {copy: 'zst' | 'cdc' | 'chunk' | 'packed' | 'name' | 'open'; chunk?: string; problem: string}

/** Decompress and hash each cold object (native/ingest/velo-cold.c verify). */
export function verifyCold(home: string, names: string[]): Map<string, ColdCheck> {
  const out = new Map<string, ColdCheck>()
  if (names.length === 0) return out
  for (const line of run('verify', new Store(home), names)) {
    const m = /^(ok|hot|unreadable) (\S+)$/.exec(line)
    if (m) {
      out.set(m[2].slice(3), m[1] as 'ok' | 'hot' | 'unreadable')
      continue
    }
    const b = /^bad (\S+) (zst|cdc|packed|name|open|chunk:([0-9a-f]{64})) (.*)$/.exec(line)
    if (!b) throw new VeloError('NATIVE', `velo-cold verify: unexpected line ${JSON.stringify(line)}`)
    const copy = b[3] ? 'chunk' : (b[2] as 'zst' | 'cdc' | 'packed' | 'name' | 'open')
    out.set(b[1].slice(3), {copy, ...(b[3] ? {chunk: b[3]} : {}), problem: `compressed copy: ${b[4]}`})
  }
  return out
}
