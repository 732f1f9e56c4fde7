import {newHasher} from '../lib/blake3'
import {VeloError} from '../lib/errors'
import type {ImageConfig, LayerInfo, ManifestDb} from '../manifest/db'
import {decodeEntry, Entry, KEY_PREFIX, S_IFMT, S_IFREG, ZERO_HASH} from '../manifest/entry'
import {MEDIA} from './packs'

/**
 * velo's image as a registry artifact (docs/registry.md). One OCI image manifest, `artifactType`
 * application/vnd.velo.image.v1, whose config is the image record and whose `layers` list EVERY blob the image
 * needs — its layer blobs, its pack index, and every pack the index names (reused packs of earlier pushes
 * included) — so a tag keeps all of them reachable and the registry's garbage collection never deletes a
 * live object.
 *
 * A layer blob is the exact byte string velo's layer id is the BLAKE3 of (src/manifest/builder.ts): the
 * header `velo-layer-v1\n`, then per entry in key order `u32le key length ‖ u32le value length ‖ key ‖ value`,
 * the key without the 32-byte layer id (parent ino big-endian ‖ name), the value the 88+-byte entry. So the
 * blob's BLAKE3 IS the layer id: a pulled layer is verified by hashing it, and the store gets exactly the
 * (key, value) pairs the pushing store had.
 */

const LAYER_HEADER = Buffer.from('velo-layer-v1\n')

export interface ArtifactLayer {
  id: string
  digest: string
  size: number
  info: Omit<LayerInfo, 'id' | 'createdAt' | 'source'>
}

export interface ArtifactConfig {
  velo: 1
  name: string
  createdAt: string
  config?: ImageConfig
  layers: ArtifactLayer[]
  index: {digest: string; size: number}
  /** objects a start-up reads (velo image profile), first open first: packed first, fetched by a lazy pull */
  prefetch?: string[]
}

export function encodeLayerBlob(db: ManifestDb, id: string): Buffer {
  const lid = Buffer.from(id, 'hex')
  const end = Buffer.alloc(KEY_PREFIX, 0xff)
  lid.copy(end)
  const parts: Buffer[] = [LAYER_HEADER]
  for (const {key, value} of db.entries.getRange({start: lid, end})) {
    const k = (key as Buffer).subarray(32)
    const v = value as Buffer
    const len = Buffer.alloc(8)
    len.writeUInt32LE(k.length, 0)
    len.writeUInt32LE(v.length, 4)
    parts.push(len, Buffer.from(k), Buffer.from(v))
  }
  const blob = Buffer.concat(parts)
  const got = newHasher().update(blob).digest('hex')
  if (got !== id)
    throw new VeloError('INTEGRITY', `layer ${id}: its entries hash to ${got}, not to its id`, {suggestion: 'run `velo fsck`; re-import the image that holds this layer'})
  return blob
}

/** A layer blob back into LMDB (key, value) pairs, after checking that its BLAKE3 is the id it is pulled as. */
export function decodeLayerBlob(blob: Buffer, id: string): Array<{key: Buffer; value: Buffer; entry: Entry}> {
  const got = newHasher().update(blob).digest('hex')
  if (got !== id)
    throw new VeloError('INTEGRITY', `layer ${id}: digest mismatch: the registry sent a layer that hashes to ${got}`, {
      suggestion: 'the image in the registry is damaged or was tampered with; push it again (nothing was stored)',
    })
  const bad = (why: string) => new VeloError('BAD_INPUT', `layer ${id}: ${why}`)
  if (!blob.subarray(0, LAYER_HEADER.length).equals(LAYER_HEADER)) throw bad('not a velo layer blob')
  const lid = Buffer.from(id, 'hex')
  // two passes: the records' bounds, then every key (this layer's id + the blob's key) in one buffer. Values and
  // the entries' buffers are views of the blob (verified above, not changed after): a 42k-entry layer is decoded
  // without 100k small allocations.
  const recs: number[] = []
  let keyBytes = 0
  for (let o = LAYER_HEADER.length; o < blob.length; ) {
    if (o + 8 > blob.length) throw bad('truncated')
    const kl = blob.readUInt32LE(o)
    const vl = blob.readUInt32LE(o + 4)
    if (kl < 4 || o + 8 + kl + vl > blob.length) throw bad('truncated')
    recs.push(o + 8, kl, vl)
    keyBytes += lid.length + kl
    o += 8 + kl + vl
  }
  const keys = Buffer.allocUnsafe(keyBytes)
  const out: Array<{key: Buffer; value: Buffer; entry: Entry}> = []
  for (let i = 0, k = 0; i < recs.length; i += 3) {
    const [o, kl, vl] = [recs[i], recs[i + 1], recs[i + 2]]
    const key = keys.subarray(k, k + lid.length + kl)
    lid.copy(key, 0)
    blob.copy(key, lid.length, o, o + kl)
    k += lid.length + kl
    const value = blob.subarray(o + kl, o + kl + vl)
    let entry: Entry
    try {
      entry = decodeEntry(value, false)
    } catch (err) {
      throw bad((err as Error).message)
    }
    out.push({key, value, entry})
  }
  if (out.length === 0) throw bad('no entries')
  return out
}

/** Whether an entry names an object (a regular file with content). */
export const hasObject = (e: Entry): boolean => (e.mode & S_IFMT) === S_IFREG && e.size > 0n && !e.hash.equals(ZERO_HASH)

export function parseArtifactConfig(buf: Buffer, what: string): ArtifactConfig {
  let c: any
  try {
    c = JSON.parse(buf.toString('utf8'))
  } catch (err) {
    throw new VeloError('BAD_INPUT', `${what}: not JSON (${(err as Error).message})`)
  }
  const digestOk = (d: unknown) => typeof d === 'string' && /^sha256:[0-9a-f]{64}$/.test(d)
  if (
    c?.velo !== 1 ||
    !Array.isArray(c.layers) ||
    c.layers.some((l: any) => typeof l?.id !== 'string' || !/^[0-9a-f]{64}$/.test(l.id) || !digestOk(l.digest) || typeof l.size !== 'number') ||
    !digestOk(c.index?.digest) ||
    (c.prefetch !== undefined && (!Array.isArray(c.prefetch) || c.prefetch.some((h: unknown) => typeof h !== 'string' || !/^[0-9a-f]{64}$/.test(h))))
  )
    throw new VeloError('BAD_INPUT', `${what}: not a velo image config (version ${JSON.stringify(c?.velo)})`, {suggestion: 'a newer velo may have pushed it'})
  return c as ArtifactConfig
}

export function artifactManifest(configBlob: Buffer, configDigest: string, layers: ArtifactLayer[], index: {digest: string; size: number}, packs: Array<{digest: string; size: number}>, name: string, createdAt: string) {
  return {
    schemaVersion: 2,
    mediaType: MEDIA.manifest,
    artifactType: MEDIA.artifact,
    config: {mediaType: MEDIA.config, digest: configDigest, size: configBlob.length},
    layers: [
      ...layers.map((l) => ({mediaType: MEDIA.layer, digest: l.digest, size: l.size, annotations: {'dev.velo.layer.id': l.id}})),
      {mediaType: MEDIA.index, digest: index.digest, size: index.size},
      ...packs.map((p) => ({mediaType: MEDIA.pack, digest: p.digest, size: p.size})),
    ],
    annotations: {'org.opencontainers.image.created': createdAt, 'dev.velo.image.name': name},
  }
}
