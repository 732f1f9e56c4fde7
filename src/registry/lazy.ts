import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import * as path from 'node:path'
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
  let stored: Buffer
  try {
    stored = await readAll(r.body, r.status === 206 ? e.length : idx.packs[e.pack].size, what)
  } catch (err) {
    throw err instanceof VeloError ? err : client.netError(err, what)
  }
  client.received += stored.length
  if (r.status === 200) stored = stored.subarray(e.offset, e.offset + e.length) // a registry that ignores Range
  if (stored.length !== e.length) throw new VeloError('UNREACHABLE', `${what}: ${stored.length} bytes arrived, ${e.length} asked for`)
  const b = unpackObject(stored, e.flags, size, what)
  const got = b.length === size ? hashBuffer(b) : `(${b.length} bytes, not ${size})`
  if (got !== hash) throw new VeloError('INTEGRITY', `${what}: digest mismatch: the bytes received hash to ${got}`)
  return b
}

/**
 * A lazy image (docs/registry.md "Lazy images"): pulled with its layers (all metadata) and its pack index
 * only; its objects stay in the registry until a FUSE mount of it opens them. The record says where they are:
 * `$VELO_HOME/remote/lazy/<image>.json`. No credentials here: the fetcher finds them as every registry
 * command does (VELO_REGISTRY_USERNAME/_PASSWORD, Docker's config.json).
 */
export interface LazyRecord {
  velo: 1
  image: string
  /** HOST/REPO@DIGEST */
  ref: string
  registry: string
  repo: string
  /** the manifest's sha256 digest */
  digest: string
  /** the pack index's sha256 digest (its bytes in remote/indexes/) */
  index: string
  /** the image's layers, bottom first */
  layers: string[]
  insecure?: boolean
  ca?: string
  pulledAt: string
}

const lazyDir = (home: string) => path.join(home, 'remote', 'lazy')
const lazyFile = (home: string, image: string) => path.join(lazyDir(home), `${image}.json`)

export function writeLazyRecord(home: string, rec: LazyRecord): void {
  const f = lazyFile(home, rec.image)
  fs.mkdirSync(path.dirname(f), {recursive: true, mode: 0o700})
  const tmp = `${f}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`
  fs.writeFileSync(tmp, JSON.stringify(rec, null, 1) + '\n', {mode: 0o600})
  fs.renameSync(tmp, f)
}

export function readLazyRecord(home: string, image: string): LazyRecord | undefined {
  let text: string
  try {
    text = fs.readFileSync(lazyFile(home, image), 'utf8')
  } catch {
    return undefined
  }
  try {
    const r = JSON.parse(text) as LazyRecord
    if (r.velo !== 1 || r.image !== image || !Array.isArray(r.layers)) throw new Error('not a lazy record')
    return r
  } catch (err) {
    throw new VeloError('STATE', `${lazyFile(home, image)} is damaged: ${(err as Error).message}`, {suggestion: `pull the image again: velo pull --lazy ${image}`})
  }
}

export function removeLazyRecord(home: string, image: string): void {
  fs.rmSync(lazyFile(home, image), {force: true})
}

export function listLazyRecords(home: string): LazyRecord[] {
  let names: string[]
  try {
    names = fs.readdirSync(lazyDir(home))
  } catch {
    return []
  }
  const out: LazyRecord[] = []
  for (const n of names) {
    if (!n.endsWith('.json')) continue
    try {
      const r = readLazyRecord(home, n.slice(0, -5))
      if (r) out.push(r)
    } catch {
      /* a damaged record names nothing */
    }
  }
  return out
}

/**
 * `velo pull --all-objects IMAGE`: a local lazy image's name stands for the reference it was pulled from
 * (by digest: the same image), with its --insecure/--ca unless given again.
 */
export function lazySource<F extends {insecure?: boolean; ca?: string; name?: string}>(home: string, arg: string, flags: F): {ref: string; flags: F; name?: string} {
  const rec = /^[^/]+$/.test(arg) ? readLazyRecord(home, arg) : undefined
  if (!rec) return {ref: arg, flags, name: flags.name}
  return {ref: rec.ref, flags: {...flags, insecure: flags.insecure ?? rec.insecure, ca: flags.ca ?? rec.ca}, name: flags.name ?? rec.image}
}

/** The cap on lazily fetched objects (store/maintenance.ts trimLazyCache): VELO_LAZY_CACHE_MAX (e.g. 2g), default 10 GiB. */
export function lazyCacheMax(): number {
  const v = process.env.VELO_LAZY_CACHE_MAX
  if (!v) return 10 * 1024 ** 3
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?$/i.exec(v.trim())
  if (!m) throw new VeloError('USAGE', `VELO_LAZY_CACHE_MAX=${JSON.stringify(v)}: not a size (e.g. 512m, 2g)`)
  return Math.floor(parseFloat(m[1]) * {'': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4}[m[2].toLowerCase() as '' | 'k' | 'm' | 'g' | 't'])
}
