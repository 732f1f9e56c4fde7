import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import {VeloError, fromSystemError} from '../lib/errors'

/**
 * Packs and their index (docs/registry.md). A pack blob is the plain concatenation of object contents — no
 * header, no compression, no padding — so the bytes of one object are exactly the range (offset, length) of
 * its pack, and a lazy reader fetches one object with one Range GET and checks it against its BLAKE3 name.
 * The index says where each object is: it is sorted by BLAKE3 so a reader may binary-search it, and it names
 * its packs by sha256 digest (the registry's blob names) with their sizes, so it is self-contained.
 *
 *   offset  size       field
 *   0       8          magic "VELOPIX1"
 *   8       4          u32le P: packs
 *   12      4          u32le N: objects
 *   16      P × 40     per pack: sha256 (32 raw bytes) ‖ u64le size
 *   16+40P  N × 56     per object, sorted by hash, unique: BLAKE3 (32) ‖ u64le offset ‖ u64le length ‖ u32le pack ‖ u32le flags (0)
 *
 * An object is content only: the same bytes in two modes/owners are one entry (the layer manifests carry
 * mode, owner and xattrs, as in the store). flags is 0 (reserved: a compressed object would set a bit).
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
  length: number
}

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
    b.writeUInt32LE(0, o + 52)
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
    const e = {hash: b.toString('hex', o, o + 32), offset: Number(b.readBigUInt64LE(o + 32)), length: Number(b.readBigUInt64LE(o + 40)), pack: b.readUInt32LE(o + 48)}
    if (b.readUInt32LE(o + 52) !== 0) throw bad(`object ${e.hash}: unknown flags ${b.readUInt32LE(o + 52)}`)
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

export interface PlannedPack {
  objects: Array<PackObject & {offset: number}>
  size: number
}

/** Cut objects, in the order given (the image's walk order: a directory's files lie together), into packs. */
export function planPacks(objects: PackObject[], target = PACK_TARGET): PlannedPack[] {
  const packs: PlannedPack[] = []
  let cur: PlannedPack | undefined
  for (const o of objects) {
    if (!cur || (cur.size > 0 && cur.size + o.size > target)) {
      cur = {objects: [], size: 0}
      packs.push(cur)
    }
    cur.objects.push({...o, offset: cur.size})
    cur.size += o.size
  }
  return packs
}

const CHUNK = 1 << 20

/** The bytes of a pack from `from` on, read from the objects' files (each must still be `size` bytes long). */
export async function* packBytes(pack: PlannedPack, from = 0): AsyncGenerator<Buffer> {
  const buf = Buffer.allocUnsafe(CHUNK)
  for (const o of pack.objects) {
    if (o.offset + o.size <= from) continue
    let fd: number
    try {
      fd = fs.openSync(o.file, 'r')
    } catch (err) {
      throw fromSystemError(err, `cannot read object ${o.hash}`)
    }
    try {
      let pos = Math.max(0, from - o.offset)
      while (pos < o.size) {
        const n = fs.readSync(fd, buf, 0, Math.min(CHUNK, o.size - pos), pos)
        if (n === 0) throw new VeloError('INTEGRITY', `object ${o.hash} is shorter than its name says`, {suggestion: 'run `velo fsck`'})
        pos += n
        yield Buffer.from(buf.subarray(0, n))
      }
    } finally {
      fs.closeSync(fd)
    }
  }
}

/** sha256 digest ("sha256:<hex>") of a planned pack: its registry name, known before any upload. */
export async function packDigest(pack: PlannedPack): Promise<string> {
  const h = crypto.createHash('sha256')
  for await (const c of packBytes(pack)) h.update(c)
  return 'sha256:' + h.digest('hex')
}

export const sha256 = (b: Buffer): string => 'sha256:' + crypto.createHash('sha256').update(b).digest('hex')
