import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import * as path from 'node:path'
import * as zlib from 'node:zlib'
import {VeloError, fromSystemError} from '../lib/errors'

/**
 * Packs and their index (docs/registry.md). A pack blob is the plain concatenation of objects, each as is or
 * deflated on its own — no header, no padding — so the bytes of one object are exactly the range (offset,
 * length) of its pack, and a lazy reader fetches one object with one Range GET and checks it against its BLAKE3 name.
 * The index says where each object is: it is sorted by BLAKE3 so a reader may binary-search it, and it names
 * its packs by sha256 digest (the registry's blob names) with their sizes, so it is self-contained.
 *
 *   offset  size       field
 *   0       8          magic "VELOPIX1"
 *   8       4          u32le P: packs
 *   12      4          u32le N: objects
 *   16      P × 40     per pack: sha256 (32 raw bytes) ‖ u64le size
 *   16+40P  N × 56     per object, sorted by hash, unique: BLAKE3 (32) ‖ u64le offset ‖ u64le length ‖ u32le pack ‖ u32le flags
 *
 * An object is content only: the same bytes in two modes/owners are one entry (the layer manifests carry
 * mode, owner and xattrs, as in the store). flags bit 0 (FLAG_DEFLATE): the range holds the object raw-deflated
 * (objects up to 16 MiB, when that saves a tenth); other bits are refused. Either way one Range GET fetches it.
 */

export const MEDIA = {
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  artifact: 'application/vnd.velo.image.v1',
  config: 'application/vnd.velo.image.config.v1+json',
  layer: 'application/vnd.velo.layer.v1',
  index: 'application/vnd.velo.pack-index.v1',
  pack: 'application/vnd.velo.pack.v1',
} as const

const MAGIC = Buffer.from('VELOPIX1')
const PACK_REC = 40
const OBJ_REC = 56

/** Objects go into packs of about this size; an object larger than it gets a pack of its own. */
export const PACK_TARGET = 32 << 20

export interface IndexEntry {
  hash: string // BLAKE3 hex
  pack: number
  offset: number
  /** bytes in the pack (deflated size when flags has FLAG_DEFLATE) */
  length: number
  flags: number
}

/** flags bit 0: the object is stored raw-deflated (RFC 1951); inflate, then check BLAKE3. */
export const FLAG_DEFLATE = 1

export interface PackIndex {
  packs: Array<{digest: string; size: number}> // digest = "sha256:<hex>"
  entries: IndexEntry[]
}

/**
 * The canonical bytes of an index: packs sorted by digest, objects by hash. The same objects in the same
 * places always give the same index (and so the same config and manifest): a repository that gets an image
 * another one has needs no new blob at all, only mounts.
 */
export function encodeIndex(idx: PackIndex): Buffer {
  const order = idx.packs.map((p, i) => ({p, i})).sort((a, b) => (a.p.digest < b.p.digest ? -1 : a.p.digest > b.p.digest ? 1 : 0))
  const renum = new Map(order.map((o, n) => [o.i, n]))
  idx = {packs: order.map((o) => o.p), entries: idx.entries.map((e) => ({...e, pack: renum.get(e.pack)!}))}
  const entries = [...idx.entries].sort((a, b) => (a.hash < b.hash ? -1 : a.hash > b.hash ? 1 : 0))
  const b = Buffer.alloc(16 + idx.packs.length * PACK_REC + entries.length * OBJ_REC)
  MAGIC.copy(b, 0)
  b.writeUInt32LE(idx.packs.length, 8)
  b.writeUInt32LE(entries.length, 12)
  let o = 16
  for (const p of idx.packs) {
    Buffer.from(p.digest.slice(7), 'hex').copy(b, o)
    b.writeBigUInt64LE(BigInt(p.size), o + 32)
    o += PACK_REC
  }
  for (const e of entries) {
    Buffer.from(e.hash, 'hex').copy(b, o)
    b.writeBigUInt64LE(BigInt(e.offset), o + 32)
    b.writeBigUInt64LE(BigInt(e.length), o + 40)
    b.writeUInt32LE(e.pack, o + 48)
    b.writeUInt32LE(e.flags, o + 52)
    o += OBJ_REC
  }
  return b
}

/** Decode and check an index: sizes add up, hashes sorted and unique, every range inside its pack. */
export function decodeIndex(b: Buffer, what = 'pack index'): PackIndex {
  const bad = (why: string) => new VeloError('BAD_INPUT', `${what}: ${why}`, {suggestion: 'the image in the registry is damaged; push it again'})
  if (b.length < 16 || !b.subarray(0, 8).equals(MAGIC)) throw bad('not a velo pack index (bad magic)')
  const P = b.readUInt32LE(8)
  const N = b.readUInt32LE(12)
  if (b.length !== 16 + P * PACK_REC + N * OBJ_REC) throw bad(`${b.length} bytes for ${P} packs and ${N} objects`)
  const packs: PackIndex['packs'] = []
  let o = 16
  for (let i = 0; i < P; i++, o += PACK_REC) packs.push({digest: 'sha256:' + b.toString('hex', o, o + 32), size: Number(b.readBigUInt64LE(o + 32))})
  const entries: IndexEntry[] = []
  let prev = ''
  for (let i = 0; i < N; i++, o += OBJ_REC) {
    const e = {hash: b.toString('hex', o, o + 32), offset: Number(b.readBigUInt64LE(o + 32)), length: Number(b.readBigUInt64LE(o + 40)), pack: b.readUInt32LE(o + 48), flags: b.readUInt32LE(o + 52)}
    if (e.flags & ~FLAG_DEFLATE) throw bad(`object ${e.hash}: unknown flags ${e.flags}`)
    if (e.hash <= prev) throw bad('objects not sorted by hash or listed twice')
    if (e.pack >= P) throw bad(`object ${e.hash} names pack ${e.pack} of ${P}`)
    if (e.length <= 0 || e.offset + e.length > packs[e.pack].size) throw bad(`object ${e.hash} lies outside its pack`)
    prev = e.hash
    entries.push(e)
  }
  return {packs, entries}
}

/** One object to pack: its content hash and size, and a local file holding those bytes. */
export interface PackObject {
  hash: string
  size: number
  file: string
}

/** A pack written to a local file, ready to upload: its digest, size and what it holds. */
export interface BuiltPack {
  file: string
  digest: string
  size: number
  entries: Array<Omit<IndexEntry, 'pack'>>
}

/** Objects up to this size are deflated (in memory); larger ones are stored as they are, streamed. */
export const DEFLATE_MAX = 16 << 20
/** A deflated object is kept only if it saves at least a tenth of its size. */
const DEFLATE_GAIN = 0.9

const CHUNK = 1 << 20

/**
 * Write objects, in the order given (the image's walk order: a directory's files lie together, so a lazy
 * reader's neighbouring reads coalesce), into pack files of about `target` bytes in `dir`, each object deflated
 * when that pays (flags bit 0). Deterministic: the same objects give the same packs, so a rerun of an
 * interrupted push finds the packs it uploaded already (HEAD by digest).
 */
export function buildPacks(objects: PackObject[], dir: string, target = PACK_TARGET): BuiltPack[] {
  const packs: BuiltPack[] = []
  let cur: {fd: number; file: string; hash: crypto.Hash; size: number; entries: BuiltPack['entries']} | undefined
  const close = () => {
    if (!cur) return
    fs.closeSync(cur.fd)
    packs.push({file: cur.file, digest: 'sha256:' + cur.hash.digest('hex'), size: cur.size, entries: cur.entries})
    cur = undefined
  }
  const write = (b: Buffer) => {
    let off = 0
    while (off < b.length) off += fs.writeSync(cur!.fd, b, off, b.length - off)
    cur!.hash.update(b)
    cur!.size += b.length
  }
  const buf = Buffer.allocUnsafe(CHUNK)
  try {
    for (const o of objects) {
      if (cur && cur.size > 0 && cur.size + Math.min(o.size, DEFLATE_MAX) > target) close()
      if (!cur) {
        const file = path.join(dir, `pack-${packs.length}`)
        cur = {fd: fs.openSync(file, 'wx', 0o600), file, hash: crypto.createHash('sha256'), size: 0, entries: []}
      }
      const offset = cur.size
      if (o.size <= DEFLATE_MAX) {
        let raw: Buffer
        try {
          raw = fs.readFileSync(o.file)
        } catch (err) {
          throw fromSystemError(err, `cannot read object ${o.hash}`)
        }
        if (raw.length !== o.size) throw new VeloError('INTEGRITY', `object ${o.hash} is ${raw.length} bytes, its name says ${o.size}`, {suggestion: 'run `velo fsck`'})
        const z = zlib.deflateRawSync(raw)
        const deflated = z.length <= raw.length * DEFLATE_GAIN
        write(deflated ? z : raw)
        cur.entries.push({hash: o.hash, offset, length: cur.size - offset, flags: deflated ? FLAG_DEFLATE : 0})
        continue
      }
      let fd: number
      try {
        fd = fs.openSync(o.file, 'r')
      } catch (err) {
        throw fromSystemError(err, `cannot read object ${o.hash}`)
      }
      try {
        let pos = 0
        while (pos < o.size) {
          const n = fs.readSync(fd, buf, 0, Math.min(CHUNK, o.size - pos), pos)
          if (n === 0) throw new VeloError('INTEGRITY', `object ${o.hash} is shorter than its name says`, {suggestion: 'run `velo fsck`'})
          write(buf.subarray(0, n))
          pos += n
        }
      } finally {
        fs.closeSync(fd)
      }
      cur.entries.push({hash: o.hash, offset, length: o.size, flags: 0})
    }
    close()
  } catch (err) {
    if (cur) fs.closeSync(cur.fd)
    throw err
  }
  return packs
}

/** The bytes of an object as stored in its pack, back to its content (a deflated object inflated, at most `size` bytes). */
export function unpackObject(stored: Buffer, flags: number, size: number, what: string): Buffer {
  if (!(flags & FLAG_DEFLATE)) return stored
  try {
    return zlib.inflateRawSync(stored, {maxOutputLength: Math.max(size, 1)})
  } catch (err) {
    throw new VeloError('INTEGRITY', `${what}: digest mismatch: its deflated bytes do not inflate (${(err as Error).message})`, {
      suggestion: 'the registry holds a damaged pack; push the image again (nothing unverified was stored)',
    })
  }
}

export const sha256 = (b: Buffer): string => 'sha256:' + crypto.createHash('sha256').update(b).digest('hex')
