import * as fs from 'node:fs'
import * as path from 'node:path'
import * as crypto from 'node:crypto'
import {spawnSync} from 'node:child_process'
import {newHasher} from '../lib/blake3'
import {VeloError, fromSystemError} from '../lib/errors'
import {isRoot} from '../lib/home'
import {requireWritableStore} from '../lib/store-access'
import {ensureHoldsDir} from './holds'
import {optionalNativeBin} from '../lib/native'
import {encodeXattrs, xattrDigest, Xattrs} from '../manifest/xattrs'
import {readXattrs, setXattrs} from './xattr-io'

/**
 * An object is one immutable file in the store: content named by BLAKE3, in the metadata variant a link
 * farm needs (hard links share an inode, so mode/uid/gid must be part of the object identity, as in ostree's
 * "bare" repos). Content dedup stays on the hash: the same bytes with the same metadata are stored once.
 *
 *   $VELO_HOME/cas/blake3/<h0h1>/<hash>_<size>_<mode octal>_<uid>_<gid>
 *
 * One level of 256 fan-out directories, all made when the store is created (as git and ostree do): a million
 * objects is ~4,000 entries per directory, which ext4's hashed directories handle well, and an ingest never
 * pays a mkdir per object (a second level made the first ingest of a node_modules tree 15% slower).
 */
export interface ObjectId {
  hash: string // 64 lowercase hex
  size: number
  mode: number // permission bits incl. setuid/setgid/sticky (07777)
  uid: number
  gid: number
  /** 32 hex: digest of the canonical xattr block the inode carries (src/manifest/xattrs.ts); absent = none */
  xattrs?: string
}

/** Metadata of an object variant to write: the inode gets exactly this mode/owner and these xattrs. */
export interface VariantMeta {
  mode: number
  uid: number
  gid: number
  xattrs?: Xattrs
}

/** The object a manifest entry (regular file, size > 0) names. */
export function objectOf(e: {hash: Buffer; size: bigint; mode: number; uid: number; gid: number; xattrDigest?: string}): ObjectId {
  const o: ObjectId = {hash: e.hash.toString('hex'), size: Number(e.size), mode: e.mode & 0o7777, uid: e.uid, gid: e.gid}
  if (e.xattrDigest) o.xattrs = e.xattrDigest
  return o
}

export interface WriteResult extends ObjectId {
  isNew: boolean
}

const OBJECT_NAME = /^([0-9a-f]{64})_(\d+)_([0-7]{1,6})_(\d+)_(\d+)(?:_x([0-9a-f]{32}))?$/
/** Files up to this size are read in one call; larger ones are streamed in CHUNK pieces. */
const SMALL = 4 << 20
const CHUNK = 1 << 20
/** hasMany lists a shard once it is asked about this many objects (a readdir costs about as much as a few lstats) */
const HAS_MANY_LIST_MIN = 8

export function objectName(o: ObjectId): string {
  return nameOf(o.hash, o.size, o.mode, o.uid, o.gid, o.xattrs)
}

/** objectName(objectOf(e)), without the ObjectId: for loops over every entry of a large layer. */
export function entryObjectName(e: {hash: Buffer; size: bigint; mode: number; uid: number; gid: number; xattrDigest?: string}): string {
  return nameOf(e.hash.toString('hex'), e.size, e.mode, e.uid, e.gid, e.xattrDigest)
}

/** The one spelling of an object's file name (docs/format.md, "Objects"): HASH_SIZE_MODE(octal)_UID_GID[_xDIGEST]. */
function nameOf(hash: string, size: number | bigint, mode: number, uid: number, gid: number, xattrs?: string): string {
  const base = `${hash}_${size}_${(mode & 0o7777).toString(8)}_${uid}_${gid}`
  return xattrs ? `${base}_x${xattrs}` : base
}

export function parseObjectName(name: string): ObjectId | undefined {
  const m = OBJECT_NAME.exec(name)
  if (!m) return undefined
  const o: ObjectId = {hash: m[1], size: Number(m[2]), mode: parseInt(m[3], 8), uid: Number(m[4]), gid: Number(m[5])}
  if (m[6]) o.xattrs = m[6]
  return o
}

/** The object id of content {hash,size} in variant `meta` (with the xattr digest when it has xattrs). */
function variantId(got: {hash: string; size: number}, meta: VariantMeta): ObjectId {
  const o: ObjectId = {hash: got.hash, size: got.size, mode: meta.mode & 0o7777, uid: meta.uid, gid: meta.gid}
  if (meta.xattrs?.length) o.xattrs = xattrDigest(encodeXattrs(meta.xattrs))
  return o
}

export function hashBuffer(b: Buffer): string {
  return newHasher().update(b).digest('hex')
}

/** Files at least this large are hashed by native/build/velo-b3 when it is built (here, and by velo-ingest, which
 * is given this size: src/store/ingest.ts nativeArgs). */
export const NATIVE_HASH_MIN = 32 << 20

/**
 * BLAKE3 of a large file with velo-b3 (Rust, Debian's blake3 crate): the file is memory-mapped and its
 * BLAKE3 tree hashed on all cores, as b3sum does; the Node binding hashes on one thread through a copy
 * buffer, at about a third of that here. undefined when the tool is not built or the path is not UTF-8.
 */
function nativeHash(file: string | Buffer): {hash: string; size: number} | undefined {
  const b3 = optionalNativeBin('velo-b3')
  if (!b3) return undefined
  const p = typeof file === 'string' ? file : file.toString()
  if (typeof file !== 'string' && !Buffer.from(p).equals(file)) return undefined
  const r = spawnSync(b3, ['--', p], {encoding: 'utf8'})
  if (r.status !== 0) {
    const msg = (r.stderr || r.error?.message || '').trim()
    const e = Object.assign(new Error(msg), {code: /No such file/.test(msg) ? 'ENOENT' : /Permission denied/.test(msg) ? 'EACCES' : 'EIO'})
    throw fromSystemError(e, `cannot hash ${p}`)
  }
  const [hash, size] = r.stdout.trim().split(' ')
  return {hash, size: Number(size)}
}

/** Hash a file: natively when large (see nativeHash), else streamed through a fixed buffer. Memory stays flat. */
export function hashFile(file: string | Buffer, size = -1): {hash: string; size: number} {
  if (size < 0) size = fs.statSync(file).size
  if (size >= NATIVE_HASH_MIN) {
    const n = nativeHash(file)
    if (n) return n
  }
  const fd = fs.openSync(file, 'r')
  try {
    return hashFd(fd)
  } finally {
    fs.closeSync(fd)
  }
}

function hashFd(fd: number, copyTo?: number): {hash: string; size: number} {
  const h = newHasher()
  const buf = Buffer.allocUnsafe(CHUNK)
  let size = 0
  for (;;) {
    // explicit offsets: a second pass over the same fd starts at 0, not where the first one ended
    const n = fs.readSync(fd, buf, 0, CHUNK, size)
    if (n === 0) break
    const chunk = n === CHUNK ? buf : buf.subarray(0, n)
    h.update(chunk)
    if (copyTo !== undefined) writeAll(copyTo, chunk)
    size += n
  }
  return {hash: h.digest('hex'), size}
}

function unlinkQuiet(p: string): void {
  try {
    fs.unlinkSync(p)
  } catch {}
}

function writeAll(fd: number, b: Buffer): void {
  let off = 0
  while (off < b.length) off += fs.writeSync(fd, b, off, b.length - off)
}

export class Store {
  readonly casDir: string
  readonly tmpDir: string
  private readonly root = isRoot()

  constructor(readonly home: string) {
    this.casDir = path.join(home, 'cas', 'blake3')
    this.tmpDir = path.join(home, 'tmp')
  }

  /**
   * Create the store's directories, before a write. A new store's home is 0700: objects keep their image's
   * modes (setuid included), so only the owner may reach them (an existing empty dir given as a new store's
   * home too); an existing store's home keeps the modes its owner gave it (a store shared for reading,
   * docs/format.md). `holds/` (1733: anyone who can reach the store may add a file, only its owner may remove
   * it, only the store's owner may list) takes the gc holds of users who may only read the store
   * (src/store/holds.ts). WHAT names the command in the error for a store this user may not write.
   */
  init(what = 'this command'): this {
    requireWritableStore(this.home, what)
    try {
      const fresh = !fs.existsSync(path.join(this.casDir, 'ff'))
      if (fresh) {
        fs.mkdirSync(this.home, {recursive: true, mode: 0o700})
        fs.chmodSync(this.home, 0o700)
      }
      ensureHoldsDir(this.home)
      if (fresh) {
        fs.mkdirSync(this.casDir, {recursive: true, mode: 0o700})
        for (let i = 0; i < 256; i++) fs.mkdirSync(path.join(this.casDir, i.toString(16).padStart(2, '0')), {recursive: true, mode: 0o700})
      }
      fs.mkdirSync(this.tmpDir, {recursive: true, mode: 0o700})
    } catch (err) {
      throw fromSystemError(err, `cannot create store at ${this.home}`)
    }
    return this
  }

  path(o: ObjectId): string {
    return path.join(this.casDir, o.hash.slice(0, 2), objectName(o))
  }

  has(o: ObjectId): boolean {
    try {
      fs.lstatSync(this.path(o))
      return true
    } catch {
      return false
    }
  }

  /**
   * has() for many objects at once, by objectName: a shard asked about often enough is listed once (one readdir instead of an
   * lstat per object: a pull of 20k objects into a young store spent a quarter of its time in lstat), the
   * others are lstat'ed. Call it under the store's lock (shared is enough: only gc removes objects); an object
   * written after its shard was listed reads as absent, and writing it again is a dedup hit.
   */
  hasMany(names: string[]): (name: string) => boolean {
    const byShard = new Map<string, number>()
    for (const n of names) byShard.set(n.slice(0, 2), (byShard.get(n.slice(0, 2)) ?? 0) + 1)
    const listed = new Map<string, Set<string>>()
    for (const [shard, n] of byShard) {
      if (n < HAS_MANY_LIST_MIN) continue
      try {
        listed.set(shard, new Set(fs.readdirSync(path.join(this.casDir, shard))))
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw fromSystemError(err, `cannot list ${path.join(this.casDir, shard)}`)
        listed.set(shard, new Set())
      }
    }
    return (name) => {
      const shard = listed.get(name.slice(0, 2))
      if (shard) return shard.has(name)
      try {
        fs.lstatSync(path.join(this.casDir, name.slice(0, 2), name))
        return true
      } catch {
        return false
      }
    }
  }

  read(o: ObjectId): fs.ReadStream {
    return fs.createReadStream(this.path(o))
  }

  /** Ingest one file from disk. Small files are read once; large ones hashed first (a dedup hit then costs no write), and hashed again while copied so the object is always named by the bytes it holds. */
  writeFile(src: string | Buffer, meta: VariantMeta & {size: number}): WriteResult {
    if (meta.size <= SMALL) {
      let buf: Buffer
      try {
        buf = fs.readFileSync(src)
      } catch (err) {
        throw fromSystemError(err, `cannot read ${String(src)}`)
      }
      return this.writeBuffer(buf, meta)
    }
    if (meta.size >= NATIVE_HASH_MIN) {
      const first = nativeHash(src)
      if (first) {
        const want = variantId(first, meta)
        if (this.has(want)) return {...want, isNew: false}
        // New content: kernel copy into the temp file, then hash what was written (the name must match
        // the object's own bytes even if the source changed meanwhile).
        const {fd, tmp} = this.openTemp()
        try {
          fs.copyFileSync(src, tmp)
          const got = nativeHash(tmp)!
          return this.finishTemp(fd, tmp, got, meta)
        } catch (err) {
          try {
            fs.closeSync(fd)
          } catch {}
          unlinkQuiet(tmp)
          throw fromSystemError(err, `cannot store ${String(src)}`)
        }
      }
    }
    let fd: number
    try {
      fd = fs.openSync(src, 'r')
    } catch (err) {
      throw fromSystemError(err, `cannot read ${String(src)}`)
    }
    try {
      const first = hashFd(fd)
      const want = variantId(first, meta)
      if (this.has(want)) return {...want, isNew: false}
      return this.writeTemp(meta, (tfd) => hashFd(fd, tfd))
    } catch (err) {
      throw fromSystemError(err, `cannot read ${String(src)}`)
    } finally {
      fs.closeSync(fd)
    }
  }

  writeBuffer(buf: Buffer, meta: VariantMeta): WriteResult {
    const o = variantId({hash: hashBuffer(buf), size: buf.length}, meta)
    if (this.has(o)) return {...o, isNew: false}
    return this.writeTemp(meta, (tfd) => {
      writeAll(tfd, buf)
      return {hash: o.hash, size: o.size}
    })
  }

  /**
   * Stream (e.g. a tar member) into the store: hashed while written, never buffered whole. With `expect`
   * (bytes from a registry, named by the sender), content that does not hash to that name is refused with
   * INTEGRITY and nothing is linked: the temp file goes.
   */
  async writeStream(src: AsyncIterable<Buffer>, meta: VariantMeta, expect?: {hash: string; size: number; what: string}): Promise<WriteResult> {
    const {fd, tmp} = this.openTemp()
    const h = newHasher()
    let size = 0
    try {
      for await (const chunk of src) {
        h.update(chunk)
        try {
          writeAll(fd, chunk)
        } catch (err) {
          throw fromSystemError(err, 'cannot write object') // the disk's (ENOSPC, EIO) as writeTemp says them
        }
        size += chunk.length
      }
    } catch (err) {
      fs.closeSync(fd)
      unlinkQuiet(tmp)
      throw err
    }
    const got = {hash: h.digest('hex'), size}
    if (expect && (got.hash !== expect.hash || got.size !== expect.size)) {
      fs.closeSync(fd)
      unlinkQuiet(tmp)
      throw new VeloError('INTEGRITY', `${expect.what}: the bytes received hash to ${got.hash} (${got.size} bytes), not to their name ${expect.hash} (${expect.size} bytes)`, {
        suggestion: 'the source is damaged or was tampered with; nothing was stored under that name',
      })
    }
    return this.finishTemp(fd, tmp, got, meta)
  }

  private tmpSeq = 0
  private readonly tmpPrefix = `obj-${process.pid}-${crypto.randomBytes(4).toString('hex')}-`
  private readonly uid = process.getuid?.() ?? -1
  private readonly gid = process.getgid?.() ?? -1

  private openTemp(): {fd: number; tmp: string} {
    const tmp = path.join(this.tmpDir, this.tmpPrefix + (this.tmpSeq++).toString(36))
    try {
      // 0600 until finishTemp gives it the final mode: nobody reads a half-written object.
      return {fd: fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600), tmp}
    } catch (err) {
      throw fromSystemError(err, `cannot create a temp file in ${this.tmpDir}`)
    }
  }

  private writeTemp(meta: VariantMeta, fill: (fd: number) => {hash: string; size: number}): WriteResult {
    const {fd, tmp} = this.openTemp()
    let got: {hash: string; size: number}
    try {
      got = fill(fd)
    } catch (err) {
      fs.closeSync(fd)
      unlinkQuiet(tmp)
      throw fromSystemError(err, 'cannot write object')
    }
    return this.finishTemp(fd, tmp, got, meta)
  }

  /** Give the temp file its final metadata and link it into place. EEXIST is a dedup hit, not an error. */
  private finishTemp(fd: number, tmp: string, got: {hash: string; size: number}, meta: VariantMeta): WriteResult {
    const o = variantId(got, meta)
    try {
      // chown before chmod: chown clears setuid/setgid bits. Skip the chown when we already own it as wanted.
      if (this.root && (o.uid !== this.uid || o.gid !== this.gid)) fs.fchownSync(fd, o.uid, o.gid)
      fs.fchmodSync(fd, o.mode)
      fs.closeSync(fd)
      // xattrs last: chown clears security.capability. Set before the link, so the name never exists
      // without the attributes it promises.
      if (o.xattrs) setXattrs(tmp, meta.xattrs!)
    } catch (err) {
      try {
        fs.closeSync(fd)
      } catch {}
      unlinkQuiet(tmp)
      throw fromSystemError(err, 'cannot finish object')
    }
    const dest = this.path(o)
    try {
      fs.linkSync(tmp, dest)
      return {...o, isNew: true}
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return {...o, isNew: false}
      throw fromSystemError(err, `cannot link object ${objectName(o)}`)
    } finally {
      unlinkQuiet(tmp)
    }
  }

  /** Every object in the store (parsed from its name), plus anything in cas/ that is not a valid object name. A cold
   * object (`<name>.zst` or `<name>.cdc`, src/store/cold.ts) comes with cold: true and its object's name. */
  *list(): Generator<{id?: ObjectId; path: string; name: string; cold?: boolean}> {
    let l1: string[]
    try {
      l1 = fs.readdirSync(this.casDir)
    } catch {
      return
    }
    for (const a of l1.sort()) {
      const da = path.join(this.casDir, a)
      let names: string[]
      try {
        names = fs.readdirSync(da)
      } catch {
        yield {id: undefined, path: da, name: a} // not a fan-out directory
        continue
      }
      for (const file of names) {
        const cold = file.endsWith('.zst') || file.endsWith('.cdc')
        const name = cold ? file.slice(0, -4) : file
        const id = parseObjectName(name)
        const ok = id && id.hash.startsWith(a) && !(cold && id.xattrs)
        yield cold && ok ? {id, path: path.join(da, file), name, cold} : {id: ok ? id : undefined, path: path.join(da, file), name: ok ? name : file}
      }
    }
  }

  delete(o: ObjectId): void {
    fs.rmSync(this.path(o), {force: true})
  }

  /** Re-hash an object: does its content still match its name (hash, size) and its inode the variant? */
  verify(o: ObjectId, inodeXattrs?: Xattrs): {ok: boolean; problem?: string} {
    const p = this.path(o)
    let st: fs.Stats
    try {
      st = fs.lstatSync(p)
    } catch {
      return {ok: false, problem: 'missing'}
    }
    if (!st.isFile()) return {ok: false, problem: 'not a regular file'}
    if (st.size !== o.size) return {ok: false, problem: `size ${st.size}, name says ${o.size}`}
    const {hash} = hashFile(p, st.size)
    if (hash !== o.hash) return {ok: false, problem: `content hashes to ${hash}`}
    if ((st.mode & 0o7777) !== o.mode) return {ok: false, problem: `mode ${(st.mode & 0o7777).toString(8)}, name says ${o.mode.toString(8)}`}
    if (this.root && (st.uid !== o.uid || st.gid !== o.gid)) return {ok: false, problem: `owner ${st.uid}:${st.gid}, name says ${o.uid}:${o.gid}`}
    // The inode's xattrs (those velo manages; the kernel may add e.g. security.selinux) must match the name.
    const x = (inodeXattrs ?? readXattrs([p]).get(p) ?? []).filter((a) => !a.name.toString('latin1').startsWith('security.selinux'))
    const have = x.length ? xattrDigest(encodeXattrs(x)) : undefined
    if (have !== o.xattrs) return {ok: false, problem: `xattrs ${have ?? 'none'}, name says ${o.xattrs ?? 'none'}`}
    return {ok: true}
  }

  /** Make everything written so far durable with one syncfs(2) (via coreutils `sync -f`), not an fsync per file. */
  sync(): void {
    const r = spawnSync('sync', ['-f', this.casDir], {stdio: ['ignore', 'ignore', 'pipe']})
    if (r.status !== 0) throw new VeloError('INTERNAL', `syncfs of ${this.casDir} failed: ${r.stderr?.toString().trim() || r.error?.message}`)
  }
}
