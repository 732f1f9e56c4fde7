import * as fs from 'node:fs'
import * as path from 'node:path'
import {emitEvent} from '../lib/events'
import {VeloError} from '../lib/errors'
import {StoreLock} from '../lib/lock'
import {ManifestDb} from '../manifest/db'
import {decodeEntry, KEY_PREFIX} from '../manifest/entry'
import {objectOf, Store} from '../store/cas'
import {ArtifactConfig, ArtifactLayer, artifactManifest, encodeLayerBlob, hasObject, parseArtifactConfig} from './artifact'
import {blobExists, bufferSource, getBlob, mountBlob, uploadBlob, UploadOutcome} from './blobs'
import {pushTempDir, RemoteCache} from './cache'
import {ClientOptions, RegistryClient} from './client'
import {readPrefetch} from '../image/profile'
import {buildPacks, decodeIndex, encodeIndex, IndexEntry, MEDIA, PackIndex, PackObject, sha256} from './packs'
import {formatRef, parseRef, RegistryRef} from './ref'
import {pool} from './pool'
import {thawLayers} from '../store/cold'

export interface TransferProgress {
  (done: number, total: number, what: string): void
}

export interface PushResult {
  image: string
  ref: string
  digest: string
  format: 'velo' | 'oci'
  layers: number
  objects: number
  packs: {total: number; reused: number; new: number}
  /** objects of the image's start-up profile, packed first (velo image profile) */
  prefetch?: number
  /** resumed: uploads that continued a session an interrupted push left (counted in uploaded too) */
  blobs: {uploaded: number; existed: number; mounted: number; resumed: number}
  /** bytes of blob content sent to the registry (request bodies) */
  bytesSent: number
  requests: number
  seconds: number
}

export interface PushOptions extends ClientOptions {
  onProgress?: TransferProgress
}

/** How many blob transfers run at once. */
export const PARALLEL = 4
/** At most this many tags of the target repository are read to find packs to reuse. */
const SCAN_TAGS = 32

export const MANIFEST_ACCEPT = [
  MEDIA.manifest,
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ')

/** Where every object of the image is in the registry, as far as anything known says (verified before use). */
interface KnownObject {
  pack: string
  packSize: number
  offset: number
  length: number
  flags: number
  repo: string
}

/**
 * The pack indexes of velo images already in the target repository (its tags, read once per push) and those
 * this store pushed or pulled elsewhere on the same registry: the objects they hold need no upload.
 */
async function knownObjects(client: RegistryClient, ref: RegistryRef, cache: RemoteCache): Promise<Map<string, KnownObject>> {
  const out = new Map<string, KnownObject>()
  const add = (idx: PackIndex, repo: string) => {
    for (const e of idx.entries) {
      const cur = out.get(e.hash)
      // the target repository's own packs first (no mount needed)
      if (cur && (cur.repo === ref.repo || repo !== ref.repo)) continue
      const p = idx.packs[e.pack]
      out.set(e.hash, {pack: p.digest, packSize: p.size, offset: e.offset, length: e.length, flags: e.flags, repo})
    }
  }
  for (const k of cache.known(client.registry)) {
    const idx = cache.index(k.digest)
    if (idx) add(idx, k.repo)
  }
  const tags = await client.json('GET', `/v2/${ref.repo}/tags/list?n=1000`, {what: `tags of ${ref.repo}`, scopes: [`repository:${ref.repo}:pull,push`]}).catch((err) => {
    if (err instanceof VeloError && err.code === 'NOT_FOUND') return undefined // a new repository
    throw err
  })
  const names: string[] = Array.isArray(tags?.value?.tags) ? tags!.value.tags.slice(0, SCAN_TAGS) : []
  for (const t of names) {
    try {
      const m = await client.json('GET', `/v2/${ref.repo}/manifests/${t}`, {what: `manifest ${ref.repo}:${t}`, headers: {accept: MANIFEST_ACCEPT}})
      if (m.value?.artifactType !== MEDIA.artifact) continue
      const d = (m.value.layers as any[]).find((l) => l?.mediaType === MEDIA.index)
      if (!d) continue
      let idx = cache.index(d.digest)
      if (!idx) {
        const b = await getBlob(client, ref.repo, d.digest, `pack index of ${ref.repo}:${t}`, 512 << 20)
        cache.remember(client.registry, ref.repo, d.digest, b)
        idx = cache.index(d.digest)
      }
      if (idx) add(idx, ref.repo)
    } catch (err) {
      // another tag that is not what we expect (deleted meanwhile, not ours) only means less reuse
      if (!(err instanceof VeloError) || err.code === 'UNREACHABLE' || err.code === 'AUTH') throw err
    }
  }
  return out
}

export async function pushImage(home: string, image: string, target: string, opts: PushOptions = {}): Promise<PushResult> {
  const t0 = process.hrtime.bigint()
  const ref = parseRef(target)
  if (ref.digest) throw new VeloError('USAGE', 'push to a tag, not a digest', {suggestion: 'e.g. velo push app 127.0.0.1:5000/team/app:1'})
  const store = new Store(home)
  if (!fs.existsSync(home)) throw new VeloError('NOT_FOUND', `no store at ${home}`, {suggestion: 'create an image first (velo ingest, velo image import)'})
  // shared: gc may not sweep the objects while we read them
  const lock = new StoreLock(path.join(home, 'lock')).acquire('shared')
  const db = ManifestDb.open(home)
  const client = new RegistryClient(ref.registry, opts)
  const cache = new RemoteCache(home)
  const counts = {uploaded: 0, existed: 0, mounted: 0, resumed: 0}
  let tmp: string | undefined
  const count = (o: UploadOutcome) => (o === 'uploaded' ? counts.uploaded++ : o === 'exists' ? counts.existed++ : o === 'resumed' ? (counts.uploaded++, counts.resumed++) : counts.mounted++)
  try {
    const img = db.requireImage(image)
    thawLayers(home, db, img.layers) // objects are read plain (src/store/cold.ts)
    // 1. Layer blobs, and every object in walk order (first appearance; a directory's files lie together).
    const layers: Array<ArtifactLayer & {blob: Buffer}> = []
    const objects = new Map<string, PackObject>()
    for (const id of [...new Set(img.layers)]) {
      const info = db.getLayer(id)
      if (!info) throw new VeloError('INTEGRITY', `image ${image} names layer ${id}, which is not in the store`, {suggestion: 'run `velo fsck`'})
      const blob = encodeLayerBlob(db, id)
      const {id: _i, createdAt: _c, source: _s, ...rest} = info
      layers.push({id, digest: sha256(blob), size: blob.length, info: rest, blob})
      const lid = Buffer.from(id, 'hex')
      const end = Buffer.alloc(KEY_PREFIX, 0xff)
      lid.copy(end)
      for (const {value} of db.entries.getRange({start: lid, end})) {
        const e = decodeEntry(value as Buffer)
        if (!hasObject(e)) continue
        const o = objectOf(e)
        if (objects.has(o.hash)) continue
        const file = store.path(o)
        if (!fs.existsSync(file)) throw new VeloError('INTEGRITY', `layer ${id}: object ${o.hash} is missing from the store`, {suggestion: 'run `velo fsck`'})
        objects.set(o.hash, {hash: o.hash, size: o.size, file})
      }
    }
    // A start-up profile (velo image profile): those objects first, in packs of their own (never reused from
    // elsewhere), so a lazy pull fetches them in one range request per 16 MiB.
    const prefetch = (readPrefetch(home, image, img.layers)?.objects ?? []).filter((h) => objects.has(h))
    const prefetchSet = new Set(prefetch)
    // 2. Packs the registry has: reuse each one (HEAD in the target, else a mount from where it is) or drop it.
    const known = await knownObjects(client, ref, cache)
    const candidate = new Map<string, {size: number; repo: string}>()
    for (const h of objects.keys()) {
      const k = known.get(h)
      if (k && !candidate.has(k.pack)) candidate.set(k.pack, {size: k.packSize, repo: k.repo})
    }
    const usable = new Set<string>()
    await pool([...candidate], PARALLEL, async ([digest, c]) => {
      if (await blobExists(client, ref.repo, digest)) {
        counts.existed++
        usable.add(digest)
      } else if (c.repo !== ref.repo && (await mountBlob(client, ref.repo, digest, c.repo)) === true) {
        counts.mounted++
        usable.add(digest)
      }
    })
    const entries: IndexEntry[] = []
    const packList: Array<{digest: string; size: number}> = []
    const packNo = new Map<string, number>()
    const packOf = (digest: string, size: number) => {
      let n = packNo.get(digest)
      if (n === undefined) {
        n = packList.length
        packNo.set(digest, n)
        packList.push({digest, size})
      }
      return n
    }
    const fresh: PackObject[] = []
    for (const o of objects.values()) {
      if (prefetchSet.has(o.hash)) continue
      const k = known.get(o.hash)
      if (k && usable.has(k.pack) && (k.flags !== 0 || k.length === o.size)) entries.push({hash: o.hash, pack: packOf(k.pack, k.packSize), offset: k.offset, length: k.length, flags: k.flags})
      else fresh.push(o)
    }
    const reusedPacks = packList.length
    // 3. New packs for the rest, written to temp files first: a HEAD needs their digests, and a rerun of an
    //    interrupted push builds the same packs and finds them there.
    tmp = pushTempDir(home)
    const built = prefetch.length ? [...buildPacks(prefetch.map((h) => objects.get(h)!), fs.mkdtempSync(path.join(tmp, 'prefetch-'))), ...buildPacks(fresh, tmp)] : buildPacks(fresh, tmp)
    const digests = built.map((p) => p.digest)
    for (const p of built) {
      const n = packOf(p.digest, p.size)
      for (const e of p.entries) entries.push({...e, pack: n})
    }
    const index = encodeIndex({packs: packList, entries})
    const indexDigest = sha256(index)
    const cfg: ArtifactConfig = {
      velo: 1,
      name: img.name,
      createdAt: img.createdAt,
      ...(img.config ? {config: img.config} : {}),
      layers: layers.map(({blob: _b, ...l}) => l),
      index: {digest: indexDigest, size: index.length},
      ...(prefetch.length ? {prefetch} : {}),
    }
    const cfgBlob = Buffer.from(JSON.stringify(cfg))
    parseArtifactConfig(cfgBlob, 'config') // what we push, a pull must accept
    const cfgDigest = sha256(cfgBlob)
    // 4. Upload what the registry lacks: packs, layer blobs, the index, the config; the manifest last.
    const total = built.reduce((a, p) => a + p.size, 0) + layers.reduce((a, l) => a + l.size, 0) + index.length + cfgBlob.length
    let done = 0
    const tick = (n: number, what: string) => {
      done += n
      opts.onProgress?.(done, total, what)
    }
    // Another repository of this registry that holds packs of this image likely holds its other blobs too
    // (the same image pushed there before): try a mount from it first; a failed mount opens the upload session.
    const sibling = [...candidate.values()].find((c) => c.repo !== ref.repo)?.repo
    const session = {sessionDir: cache.uploadsDir, mountFrom: sibling}
    const from = (digest: string) => ({...session, mountFrom: cache.blobRepo(client.registry, digest) ?? sibling})
    await pool(built, PARALLEL, async (p) => {
      count(await uploadBlob(client, ref.repo, p.digest, p.size, (start, end) => fs.createReadStream(p.file, {start, end: end - 1, highWaterMark: 1 << 20}), from(p.digest)))
      tick(p.size, 'packs')
    })
    await pool(layers, PARALLEL, async (l) => {
      count(await uploadBlob(client, ref.repo, l.digest, l.size, bufferSource(l.blob), from(l.digest)))
      tick(l.size, 'layers')
    })
    count(await uploadBlob(client, ref.repo, indexDigest, index.length, bufferSource(index), from(indexDigest)))
    count(await uploadBlob(client, ref.repo, cfgDigest, cfgBlob.length, bufferSource(cfgBlob), from(cfgDigest)))
    tick(index.length + cfgBlob.length, 'index')
    // the packs in the index's (canonical) order
    const manifest = Buffer.from(JSON.stringify(artifactManifest(cfgBlob, cfgDigest, cfg.layers, cfg.index, decodeIndex(index).packs, img.name, img.createdAt)))
    const digest = await putManifest(client, ref, manifest, MEDIA.manifest)
    cache.remember(client.registry, ref.repo, indexDigest, index)
    cache.rememberBlobs(client.registry, ref.repo, [cfgDigest, indexDigest, ...layers.map((l) => l.digest), ...digests])
    emitEvent(home, 'image', 'push', image, {ref: formatRef(ref), digest})
    return {
      image,
      ref: formatRef(ref),
      digest,
      format: 'velo',
      layers: layers.length,
      objects: objects.size,
      packs: {total: packList.length, reused: reusedPacks, new: built.length},
      prefetch: prefetch.length,
      blobs: counts,
      bytesSent: client.sent,
      requests: client.requests,
      seconds: Number(process.hrtime.bigint() - t0) / 1e9,
    }
  } finally {
    client.close()
    if (tmp) fs.rmSync(tmp, {recursive: true, force: true})
    db.close()
    lock.release()
  }
}

/** PUT a manifest under the reference's tag; the registry's digest must be the one of the bytes sent. */
export async function putManifest(client: RegistryClient, ref: RegistryRef, manifest: Buffer, mediaType: string): Promise<string> {
  const digest = sha256(manifest)
  const r = await client.request('PUT', `/v2/${ref.repo}/manifests/${ref.tag}`, {
    what: `manifest ${formatRef(ref)}`,
    headers: {'content-type': mediaType},
    body: manifest,
    expect: [201],
    scopes: [`repository:${ref.repo}:pull,push`],
  })
  r.body.resume()
  const said = r.headers['docker-content-digest']
  if (said && said !== digest) throw new VeloError('INTEGRITY', `manifest ${formatRef(ref)}: the registry stored it as ${said}, velo sent ${digest}`)
  return digest
}
