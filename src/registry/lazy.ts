import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {Readable} from 'node:stream'
import * as zlib from 'node:zlib'
import {VeloError} from '../lib/errors'
import {hashBuffer, Store, VariantMeta} from '../store/cas'
import {getRange} from './blobs'
import {RegistryClient} from './client'
import {FLAG_DEFLATE, PackIndex, unpackObject} from './packs'

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

/** One object's stored bytes (deflated when its entry says so), exactly the entry's length of them, as they arrive;
 * destroy(err) ends the response (the bytes then reject with err). */
async function storedBytes(
  client: RegistryClient,
  repo: string,
  idx: PackIndex,
  hash: string,
): Promise<{e: PackIndex['entries'][number]; what: string; bytes: AsyncIterable<Buffer>; destroy: (err?: Error) => void}> {
  const e = findObject(idx, hash)
  if (!e) throw new VeloError('NOT_FOUND', `object ${hash} is not in the image's pack index`)
  const pack = idx.packs[e.pack].digest
  const what = `object ${hash} (pack ${pack.slice(7, 19)} bytes ${e.offset}-${e.offset + e.length - 1})`
  const r = await getRange(client, repo, pack, e.offset, e.length, what)
  // a registry that ignores Range sends the whole pack (200): the object's bytes are skipped to and cut out of it
  const whole = r.status === 200
  async function* bytes(): AsyncGenerator<Buffer> {
    let skip = whole ? e!.offset : 0
    let got = 0
    try {
      for await (const chunk of r.body as AsyncIterable<Buffer>) {
        client.received += chunk.length
        let c = chunk
        if (skip) {
          if (c.length <= skip) {
            skip -= c.length
            continue
          }
          c = c.subarray(skip)
          skip = 0
        }
        if (got + c.length > e!.length) {
          if (!whole) throw new VeloError('BAD_INPUT', `${what}: the registry sent more than ${e!.length} bytes`)
          c = c.subarray(0, e!.length - got)
        }
        got += c.length
        if (c.length) yield c
        // the whole pack: the rest is not ours (the response is dropped); a ranged answer is read to its end, so
        // its connection is kept for the next object
        if (whole && got === e!.length) break
      }
    } catch (err) {
      throw err instanceof VeloError ? err : client.netError(err, what)
    }
    if (got !== e!.length) throw new VeloError('UNREACHABLE', `${what}: ${got} bytes arrived, ${e!.length} asked for`)
  }
  const body = r.body as unknown as {destroy: (err?: Error) => void; on: (ev: string, f: () => void) => void}
  body.on('error', () => {}) // an abort while nothing reads it must not be an uncaught error (a reader still gets it)
  return {e, what, bytes: bytes(), destroy: (err?: Error) => body.destroy(err)}
}

export async function readObject(client: RegistryClient, repo: string, idx: PackIndex, hash: string, size: number): Promise<Buffer> {
  const {e, what, bytes} = await storedBytes(client, repo, idx, hash)
  const parts: Buffer[] = []
  for await (const c of bytes) parts.push(c)
  const b = unpackObject(Buffer.concat(parts), e.flags, size, what)
  const got = b.length === size ? hashBuffer(b) : `(${b.length} bytes, not ${size})`
  if (got !== hash) throw new VeloError('INTEGRITY', `${what}: digest mismatch: the bytes received hash to ${got}`)
  return b
}

/**
 * readObject, streamed into the store, in two steps so that a caller can bound each: open() asks for the object
 * (until the registry answers: nothing written yet), then store() receives, inflates, hashes and writes it at once
 * (a large object costs the slowest of those, not their sum, and no more memory than a chunk) and links it under
 * its name only when its bytes hash to it (Store.writeStream: never a wrong object under a good name); the caller
 * holds the store's shared lock for store(). abort(err) ends the transfer: store() then rejects with err and leaves
 * no temp file.
 */
export async function openObject(
  client: RegistryClient,
  repo: string,
  idx: PackIndex,
  hash: string,
  size: number,
): Promise<{store: (store: Store, meta: VariantMeta) => Promise<void>; abort: (err?: Error) => void}> {
  const {e, what, bytes, destroy} = await storedBytes(client, repo, idx, hash)
  return {
    abort: destroy,
    store: async (store, meta) => {
      const content = e.flags & FLAG_DEFLATE ? inflated(bytes, size, what) : bytes
      try {
        await store.writeStream(content, meta, {hash, size, what})
      } catch (err) {
        if ((err as VeloError).code === 'INTEGRITY' && !/digest mismatch/.test((err as Error).message))
          throw new VeloError('INTEGRITY', `${what}: digest mismatch: ${(err as Error).message.replace(`${what}: `, '')}`)
        throw err
      } finally {
        destroy() // read to its end already, or given up: never a response left pinning its socket
      }
    },
  }
}

/** Raw-inflate a stream; bytes that do not inflate, or inflate past the object's size, are a damaged pack. */
async function* inflated(src: AsyncIterable<Buffer>, size: number, what: string): AsyncGenerator<Buffer> {
  const input = Readable.from(src)
  const z = zlib.createInflateRaw()
  input.on('error', (err) => z.destroy(err)) // a network error arrives through the inflater, as it was
  input.pipe(z)
  let n = 0
  try {
    for await (const c of z as AsyncIterable<Buffer>) {
      n += c.length
      if (n > size) throw new VeloError('INTEGRITY', `${what}: digest mismatch: its deflated bytes inflate past its ${size} bytes`)
      yield c
    }
  } catch (err) {
    if (err instanceof VeloError) throw err
    if (/^Z_/.test(String((err as NodeJS.ErrnoException).code)))
      throw new VeloError('INTEGRITY', `${what}: digest mismatch: its deflated bytes do not inflate (${(err as Error).message})`, {
        suggestion: 'the registry holds a damaged pack; push the image again (nothing unverified was stored)',
      })
    throw err
  } finally {
    input.destroy()
    z.destroy()
  }
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
