import {VeloError} from '../lib/errors'
import {hashBuffer} from '../store/cas'
import {getRange} from './blobs'
import {RegistryClient, readAll} from './client'
import {PackIndex, unpackObject} from './packs'

/**
 * One object of a velo image straight from its pack: the primitive lazy images (FUSE reading through the
 * registry) are built on. A binary search of the index by BLAKE3, ONE Range GET of (pack digest, offset,
 * length), inflate when flagged, and the bytes are checked against the name before anyone sees them.
 */
export function findObject(idx: PackIndex, hash: string): PackIndex['entries'][number] | undefined {
  let lo = 0
  let hi = idx.entries.length - 1
  while (lo <= hi) {
    const mid = (lo + hi) >> 1
    const h = idx.entries[mid].hash
    if (h === hash) return idx.entries[mid]
    if (h < hash) lo = mid + 1
    else hi = mid - 1
  }
  return undefined
}

export async function readObject(client: RegistryClient, repo: string, idx: PackIndex, hash: string, size: number): Promise<Buffer> {
  const e = findObject(idx, hash)
  if (!e) throw new VeloError('NOT_FOUND', `object ${hash} is not in the image's pack index`)
  const pack = idx.packs[e.pack].digest
  const what = `object ${hash} (pack ${pack.slice(7, 19)} bytes ${e.offset}-${e.offset + e.length - 1})`
  const r = await getRange(client, repo, pack, e.offset, e.length, what)
  let stored = await readAll(r.body, r.status === 206 ? e.length : idx.packs[e.pack].size, what)
  client.received += stored.length
  if (r.status === 200) stored = stored.subarray(e.offset, e.offset + e.length) // a registry that ignores Range
  if (stored.length !== e.length) throw new VeloError('UNREACHABLE', `${what}: ${stored.length} bytes arrived, ${e.length} asked for`)
  const b = unpackObject(stored, e.flags, size, what)
  const got = b.length === size ? hashBuffer(b) : `(${b.length} bytes, not ${size})`
  if (got !== hash) throw new VeloError('INTEGRITY', `${what}: digest mismatch: the bytes received hash to ${got}`)
  return b
}
