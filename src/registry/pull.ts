import * as path from 'node:path'
import {emitEvent} from '../lib/events'
import {VeloError} from '../lib/errors'
import {StoreLock} from '../lib/lock'
import {validateName} from '../lib/names'
import {ImageRecord, LayerInfo, ManifestDb} from '../manifest/db'
import {Entry} from '../manifest/entry'
import {entryObjectName, hashBuffer, ObjectId, objectOf, Store, VariantMeta} from '../store/cas'
import {hostGoArch} from '../image/config'
import {nameFromRef} from '../image/import'
import {decodeLayerBlob, hasObject, parseArtifactConfig} from './artifact'
import {getBlob, getRange} from './blobs'
import {RemoteCache} from './cache'
import {ClientOptions, RegistryClient} from './client'
import {decodeIndex, FLAG_DEFLATE, IndexEntry, MEDIA, sha256, unpackObject} from './packs'
import {pool} from './pool'
import {MANIFEST_ACCEPT, PARALLEL, TransferProgress} from './push'
import {readLazyRecord, removeLazyRecord, writeLazyRecord} from './lazy'
import {formatRef, parseRef, RegistryRef} from './ref'

export interface PullResult {
  ref: string
  /** metadata only: the objects stay in the registry until read through a mount */
  lazy?: boolean
  digest: string
  format: 'velo' | 'oci' | 'docker'
  image: string
  layers: Array<{id: string; existed: boolean}>
  /** objects the image names / fetched from the registry / already in the store; fetchedBytes: their sizes (velo images) */
  objects: {total: number; fetched: number; present: number; fetchedBytes?: number}
  /** bytes of response bodies received from the registry */
  bytesReceived: number
  requests: number
  replaced: boolean
  seconds: number
  warnings: string[]
}

export interface PullOptions extends ClientOptions {
  name?: string
  onProgress?: TransferProgress
  /** metadata only: layers and the pack index; objects stay remote until a mount reads them (docs/registry.md "Lazy images") */
  lazy?: boolean
  /** every object of every layer of the image, also of layers already stored (completes a lazy image) */
  allObjects?: boolean
}

const INDEX_TYPES = new Set(['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json'])

/** Ranges of one pack closer than this are fetched as one request (the gap is read and dropped). */
const COALESCE_GAP = 256 << 10
/** ... up to this many bytes per request, so several requests run side by side. */
const RANGE_MAX = 16 << 20
/** Objects up to this size are verified in memory before any write; larger ones while streamed to a temp file. */
const IN_MEMORY = 8 << 20

/** The manifest a reference names, verified: by digest when it has one, else against the registry's digest header. */
export async function getManifest(client: RegistryClient, ref: RegistryRef, reference = ref.digest ?? ref.tag!): Promise<{value: any; raw: Buffer; digest: string}> {
  const what = `manifest ${formatRef(ref)}`
  const m = await client.json('GET', `/v2/${ref.repo}/manifests/${reference}`, {what, headers: {accept: MANIFEST_ACCEPT}, scopes: [`repository:${ref.repo}:pull`]})
  const digest = sha256(m.raw)
  const want = reference.startsWith('sha256:') ? reference : (m.headers['docker-content-digest'] as string | undefined)
  if (want && want !== digest)
    throw new VeloError('INTEGRITY', `${what}: digest mismatch: the manifest sent hashes to ${digest}, the registry says ${want}`, {suggestion: 'the registry holds a damaged manifest; push the image again'})
  return {value: m.value, raw: m.raw, digest}
}

export async function pullImage(home: string, source: string, opts: PullOptions = {}): Promise<PullResult> {
  const t0 = process.hrtime.bigint()
  const ref = parseRef(source)
  const name = validateName('image', opts.name ?? nameFromRef(`${ref.repo}${ref.tag ? `:${ref.tag}` : ''}`))
  const client = new RegistryClient(ref.registry, opts)
  try {
    let m = await getManifest(client, ref)
    if (INDEX_TYPES.has(m.value?.mediaType) || (Array.isArray(m.value?.manifests) && !m.value?.layers)) {
      const arch = hostGoArch()
      const d = (m.value.manifests as any[]).find((x) => x?.platform?.os === 'linux' && x?.platform?.architecture === arch) ?? (m.value.manifests as any[]).find((x) => !x?.platform)
      if (!d) throw new VeloError('UNSUPPORTED', `${formatRef(ref)}: no image for linux/${arch} in its index`)
      m = await getManifest(client, ref, d.digest)
    }
    const done = (r: Omit<PullResult, 'ref' | 'digest' | 'bytesReceived' | 'requests' | 'seconds'>): PullResult => {
      emitEvent(home, 'image', 'pull', r.image, {ref: formatRef(ref), digest: m.digest, ...(r.lazy ? {lazy: 'true'} : {})})
      return {ref: formatRef(ref), digest: m.digest, ...r, bytesReceived: client.received, requests: client.requests, seconds: Number(process.hrtime.bigint() - t0) / 1e9}
    }
    if (m.value?.artifactType === MEDIA.artifact || m.value?.config?.mediaType === MEDIA.config) return done(await pullVelo(home, client, ref, m.value, name, opts, m.digest))
    if (opts.lazy || opts.allObjects)
      throw new VeloError('UNSUPPORTED', `${formatRef(ref)} is a plain Docker/OCI image: --lazy and --all-objects are for velo images`, {suggestion: 'pull it without them (its layers are fetched whole), or push a velo image with velo push'})
    const {pullPlain} = await import('./plain')
    return done(await pullPlain(home, client, ref, m, name, opts))
  } finally {
    client.close()
  }
}

/** One variant of an object to write: its name, and the metadata its inode gets. */
interface Variant {
  id: ObjectId
  meta: VariantMeta
}

/** One range request: consecutive objects of one pack. */
interface Fetch {
  pack: string
  start: number
  end: number
  objects: Array<IndexEntry & {variants: Variant[]; done?: boolean}>
}

function planFetches(needed: Array<IndexEntry & {variants: Variant[]}>, packs: Array<{digest: string}>): Fetch[] {
  const byPack = new Map<number, Array<IndexEntry & {variants: Variant[]}>>()
  for (const e of needed) {
    const l = byPack.get(e.pack) ?? []
    l.push(e)
    byPack.set(e.pack, l)
  }
  const out: Fetch[] = []
  for (const [p, list] of byPack) {
    list.sort((a, b) => a.offset - b.offset)
    let cur: Fetch | undefined
    for (const e of list) {
      if (cur && e.offset - cur.end <= COALESCE_GAP && e.offset + e.length - cur.start <= RANGE_MAX && e.offset >= cur.end) {
        cur.objects.push(e)
        cur.end = e.offset + e.length
        continue
      }
      cur = {pack: packs[p].digest, start: e.offset, end: e.offset + e.length, objects: [e]}
      out.push(cur)
    }
  }
  // large requests first: the tail of the transfer is many small ones running side by side
  return out.sort((a, b) => b.end - b.start - (a.end - a.start))
}

/** Reads exact byte counts from a response body. */
class Reader {
  private buf: Buffer = Buffer.alloc(0)
  private readonly it: AsyncIterator<Buffer>
  constructor(src: AsyncIterable<Buffer>, private readonly what: string) {
    this.it = src[Symbol.asyncIterator]()
  }
  private async more(): Promise<void> {
    const r = await this.it.next()
    if (r.done) throw new VeloError('UNREACHABLE', `${this.what}: the connection ended before every byte asked for arrived`, {suggestion: 'retry the pull; it resumes where it stopped'})
    this.buf = this.buf.length ? Buffer.concat([this.buf, r.value]) : r.value
  }
  async skip(n: number): Promise<void> {
    while (n > 0) {
      if (this.buf.length === 0) await this.more()
      const k = Math.min(n, this.buf.length)
      this.buf = this.buf.subarray(k)
      n -= k
    }
  }
  async exact(n: number): Promise<Buffer> {
    while (this.buf.length < n) await this.more()
    const out = this.buf.subarray(0, n)
    this.buf = this.buf.subarray(n)
    return out
  }
  async *stream(n: number): AsyncGenerator<Buffer> {
    while (n > 0) {
      if (this.buf.length === 0) await this.more()
      const k = Math.min(n, this.buf.length)
      yield this.buf.subarray(0, k)
      this.buf = this.buf.subarray(k)
      n -= k
    }
  }
}

async function pullVelo(home: string, client: RegistryClient, ref: RegistryRef, manifest: any, name: string, opts: PullOptions, digest: string) {
  const where = formatRef(ref)
  const cfgBlob = await getBlob(client, ref.repo, manifest.config.digest, `config of ${where}`, 64 << 20)
  const cfg = parseArtifactConfig(cfgBlob, `config of ${where}`)
  const listed = new Set((manifest.layers as any[]).map((l) => l?.digest))
  for (const d of [cfg.index.digest, ...cfg.layers.map((l) => l.digest)])
    if (!listed.has(d)) throw new VeloError('BAD_INPUT', `${where}: blob ${d} is not listed in the manifest (the registry's gc could delete it)`)

  const store = new Store(home).init('pull')
  // shared for the whole pull: gc cannot sweep objects between their write and the commit that names them
  const lock = new StoreLock(path.join(home, 'lock')).acquire('shared')
  const db = ManifestDb.open(home)
  try {
    db.requireWritable('pull')
    // 1. Layers this store lacks: fetched whole, each checked against its id (its BLAKE3).
    const fresh = new Map<string, Array<{key: Buffer; value: Buffer; entry: Entry}>>()
    await pool(
      cfg.layers.filter((l) => !db.hasLayer(l.id)),
      PARALLEL,
      async (l) => {
        if (fresh.has(l.id)) return
        const blob = await getBlob(client, ref.repo, l.digest, `layer ${l.id.slice(0, 12)} of ${where}`, 1 << 30)
        fresh.set(l.id, decodeLayerBlob(blob, l.id))
      },
    )
    // 2. Objects the new layers name that the store lacks (every variant: mode, owner, xattrs). A lazy image
    // being completed (or --all-objects): those of its stored layers too.
    const wasLazy = readLazyRecord(home, name)
    const all = opts.allObjects || (!!wasLazy && !opts.lazy)
    const variants = new Map<string, Variant[]>()
    let total = 0
    const seen = new Set<string>()
    const layerRows = (id: string) => fresh.get(id) ?? (all || opts.lazy ? db.layerEntries(id) : [])
    const names: string[] = []
    const entries: Entry[] = []
    for (const id of new Set(cfg.layers.map((l) => l.id)))
      for (const {entry} of layerRows(id)) {
        if (!hasObject(entry)) continue
        const key = entryObjectName(entry)
        if (seen.has(key)) continue
        seen.add(key)
        total++
        names.push(key)
        entries.push(entry)
      }
    const present = store.hasMany(names)
    // a lazy pull fetches the image's start-up profile now; what else is missing stays remote (counted only)
    const prefetch = opts.lazy ? new Set(cfg.prefetch ?? []) : undefined
    const remote: number[] = []
    for (let i = 0; i < names.length; i++) {
      if (present(names[i])) continue
      if (prefetch && !prefetch.has(names[i].slice(0, 64))) {
        remote.push(i)
        continue
      }
      const entry = entries[i]
      const o = objectOf(entry)
      const l = variants.get(o.hash) ?? []
      l.push({id: o, meta: {mode: o.mode, uid: o.uid, gid: o.gid, xattrs: entry.xattrs}})
      variants.set(o.hash, l)
    }
    let fetched = 0
    let fetchedBytes = 0
    if (variants.size > 0 || opts.lazy) {
      const idxBlob = await getBlob(client, ref.repo, cfg.index.digest, `pack index of ${where}`, 1 << 30)
      const idx = decodeIndex(idxBlob, `pack index of ${where}`)
      new RemoteCache(home).remember(client.registry, ref.repo, cfg.index.digest, idxBlob)
      const byHash = new Map(idx.entries.map((e) => [e.hash, e]))
      const needed: Array<IndexEntry & {variants: Variant[]}> = []
      for (const [h, vs] of variants) {
        const e = byHash.get(h)
        if (!e) throw new VeloError('BAD_INPUT', `${where}: its pack index does not list object ${h}`, {suggestion: 'the image in the registry is incomplete; push it again'})
        if (!(e.flags & FLAG_DEFLATE) && e.length !== vs[0].id.size) throw new VeloError('INTEGRITY', `${where}: object ${h} is ${e.length} bytes in the pack index, ${vs[0].id.size} in the layer`)
        for (const p of [idx.packs[e.pack].digest]) if (!listed.has(p)) throw new VeloError('BAD_INPUT', `${where}: pack ${p} is not listed in the manifest`)
        needed.push({...e, variants: vs})
      }
      // lazy: every object the store lacks is where the index says (checked now, as for the objects fetched); a
      // mount fetches it when it is opened. Only the start-up profile (cfg.prefetch, packed first by the push) is
      // in `needed`: fetched now, in as few ranges as it takes.
      for (const i of remote) {
        const h = names[i].slice(0, 64)
        const e = byHash.get(h)
        if (!e) throw new VeloError('BAD_INPUT', `${where}: its pack index does not list object ${h}`, {suggestion: 'the image in the registry is incomplete; push it again'})
        if (!(e.flags & FLAG_DEFLATE) && e.length !== Number(entries[i].size)) throw new VeloError('INTEGRITY', `${where}: object ${h} is ${e.length} bytes in the pack index, ${entries[i].size} in the layer`)
        if (!listed.has(idx.packs[e.pack].digest)) throw new VeloError('BAD_INPUT', `${where}: pack ${idx.packs[e.pack].digest} is not listed in the manifest`)
      }
      const fetches = planFetches(needed, idx.packs)
      const bytes = fetches.reduce((a, f) => a + f.end - f.start, 0)
      let got = 0
      // 3. Range GETs into the packs; each object verified against its BLAKE3 name before it is linked.
      // A range cut short (a connection reset) is asked for once more: its objects already stored are
      // written again as dedup hits, nothing else changes.
      const withRetry = async (f: Fetch) => {
        try {
          await fetchRange(f)
        } catch (err) {
          if (!(err instanceof VeloError) || err.code !== 'UNREACHABLE') throw err
          await fetchRange(f)
        }
      }
      const fetchRange = async (f: Fetch) => {
        const what = `pack ${f.pack.slice(7, 19)} bytes ${f.start}-${f.end - 1} of ${where}`
        const r = await getRange(client, ref.repo, f.pack, f.start, f.end - f.start, what)
        let pos = 0
        if (r.status === 200) pos = 0 // the registry ignored Range: the whole pack follows
        else {
          const m = /^bytes (\d+)-(\d+)\//.exec(String(r.headers['content-range'] ?? ''))
          if (!m || Number(m[1]) !== f.start) throw new VeloError('STATE', `${what}: the registry answered another range (${r.headers['content-range']})`)
          pos = f.start
        }
        const counted = (async function* () {
          try {
            for await (const c of r.body) {
              client.received += c.length
              yield c as Buffer
            }
          } catch (err) {
            throw client.netError(err, what) // a reset or aborted body is the connection's fault: UNREACHABLE
          }
        })()
        const rd = new Reader(counted, what)
        try {
          for (const o of f.objects) {
            await rd.skip(o.offset - pos)
            pos = o.offset + o.length
            if (o.done) {
              // written by the first try of this range
              await rd.skip(o.length)
              continue
            }
            const [first, ...others] = o.variants
            const owhat = `object ${o.hash} (${what})`
            const size = first.id.size
            if (o.length <= IN_MEMORY || o.flags & FLAG_DEFLATE) {
              const b = unpackObject(await rd.exact(o.length), o.flags, size, owhat)
              const h = b.length === size ? hashBuffer(b) : `(${b.length} bytes, not ${size})`
              if (h !== o.hash)
                throw new VeloError('INTEGRITY', `${owhat}: digest mismatch: the bytes received hash to ${h}`, {
                  suggestion: 'the registry holds a damaged pack; push the image again (nothing unverified was stored)',
                })
              store.writeBuffer(b, first.meta)
              for (const v of others) store.writeBuffer(b, v.meta)
            } else {
              await store.writeStream(rd.stream(o.length), first.meta, {hash: o.hash, size, what: owhat})
              for (const v of others) store.writeFile(store.path(first.id), {...v.meta, size})
            }
            o.done = true
            fetched += o.variants.length
            fetchedBytes += size * o.variants.length
            got += o.length
            opts.onProgress?.(got, bytes, 'objects')
          }
        } finally {
          r.body.destroy()
        }
      }
      await pool(fetches, PARALLEL, withRetry)
    }
    new RemoteCache(home).rememberBlobs(client.registry, ref.repo, [manifest.config.digest, cfg.index.digest, ...cfg.layers.map((l) => l.digest)])
    // 4. Durable objects, then one transaction with the new layers and the image record. A lazy image's record
    // (where its objects are) first: a record whose image never came names nothing (mounts check the layers).
    // (a lazy pull of an image whose objects are all here already makes a complete image: no record)
    const missing = [...variants.values()].reduce((a, vs) => a + vs.length, 0) + remote.length
    if (opts.lazy && missing > fetched)
      writeLazyRecord(home, {
        velo: 1,
        image: name,
        ref: `${ref.registry}/${ref.repo}@${digest}`,
        registry: ref.registry,
        repo: ref.repo,
        digest: digest,
        index: cfg.index.digest,
        layers: cfg.layers.map((l) => l.id),
        insecure: opts.insecure || undefined,
        ca: opts.ca ? path.resolve(opts.ca) : undefined,
        pulledAt: new Date().toISOString(),
      })
    store.sync()
    const now = new Date().toISOString()
    let replaced = false
    db.writeSync(() => {
      for (const l of cfg.layers) {
        const rows = fresh.get(l.id)
        if (!rows) continue
        const info: LayerInfo = {...l.info, id: l.id, createdAt: now, source: `registry:${where}`}
        db.putLayerInTxn(info, rows.map(({key, value}) => ({key, value})))
      }
      const rec: ImageRecord = {name, layers: cfg.layers.map((l) => l.id), createdAt: now, source: `registry:${where}`}
      if (cfg.config && Object.keys(cfg.config).length) rec.config = cfg.config
      replaced = db.images.doesExist(name)
      db.putImageSync(rec)
    })
    if (wasLazy && (!opts.lazy || missing <= fetched)) removeLazyRecord(home, name)
    return {
      format: 'velo' as const,
      lazy: opts.lazy || undefined,
      image: name,
      layers: cfg.layers.map((l) => ({id: l.id, existed: !fresh.has(l.id)})),
      objects: {total, fetched, present: total - fetched, fetchedBytes},
      replaced,
      warnings: [],
    }
  } finally {
    db.close()
    lock.release()
  }
}

