import * as fs from 'node:fs'
import * as path from 'node:path'
import * as tar from 'tar-stream'
import {emitEvent} from '../lib/events'
import {VeloError, fromSystemError} from '../lib/errors'
import {StoreLock} from '../lib/lock'
import {ManifestDb} from '../manifest/db'
import {Store} from '../store/cas'
import {dockerConfig, writeLayerTar} from '../image/export'
import {importImage} from '../image/import'
import {getBlob, uploadBlob, UploadOutcome} from './blobs'
import {pushTempDir, RemoteCache} from './cache'
import {RegistryClient} from './client'
import {MEDIA, sha256} from './packs'
import type {PullOptions, PullResult} from './pull'
import {pool} from './pool'
import {PARALLEL, PushOptions, PushResult, putManifest} from './push'
import {formatRef, parseRef, RegistryRef} from './ref'

/**
 * Plain Docker/OCI images in a registry — what `docker push` writes and `docker pull` reads.
 *
 * Pull: the manifest, config and layer blobs are streamed as an OCI image layout tar straight into
 * `velo image import` (src/image/import.ts) — no file in between — so a registry image goes through exactly
 * the checks of an imported one: every blob against its sha256 digest and descriptor size, every uncompressed
 * layer against the config's diff_ids, then one transaction.
 *
 * Push (`velo push --oci`): each velo layer as an uncompressed OCI layer tar (the tars `velo image export`
 * writes), the Docker-style config, an OCI image manifest; what `docker pull` and every OCI tool read.
 */

const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json'
const OCI_LAYER_TAR = 'application/vnd.oci.image.layer.v1.tar'

const hexOf = (d: string, what: string): string => {
  const m = /^sha256:([0-9a-f]{64})$/.exec(String(d))
  if (!m) throw new VeloError('UNSUPPORTED', `${what}: digest ${JSON.stringify(d)} is not a sha256 digest`)
  return m[1]
}

function addEntry(pack: tar.Pack, name: string, size: number, body: Buffer | AsyncIterable<Buffer>): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const sink = pack.entry({name, size, mode: 0o644, mtime: new Date(0)}, (err) => (err ? reject(err) : resolve()))
    if (Buffer.isBuffer(body)) {
      sink.end(body)
      return
    }
    ;(async () => {
      for await (const c of body) if (!sink.write(c)) await new Promise<void>((r) => sink.once('drain', () => r()))
      sink.end(undefined as never)
    })().catch((err) => {
      sink.destroy(err)
      reject(err)
    })
  })
}

export async function pullPlain(
  home: string,
  client: RegistryClient,
  ref: RegistryRef,
  m: {value: any; raw: Buffer; digest: string},
  name: string,
  opts: PullOptions,
): Promise<Omit<PullResult, 'ref' | 'digest' | 'bytesReceived' | 'requests' | 'seconds'>> {
  const where = formatRef(ref)
  const man = m.value
  if (!man?.config?.digest || !Array.isArray(man.layers))
    throw new VeloError('UNSUPPORTED', `${where}: neither a velo image nor an image manifest (mediaType ${JSON.stringify(man?.mediaType)})`, {
      suggestion: 'velo pulls velo images and Docker/OCI image manifests (schema 2)',
    })
  const cfg = await getBlob(client, ref.repo, man.config.digest, `config of ${where}`, 64 << 20)
  const layers: Array<{digest: string; size: number}> = []
  const seen = new Set<string>()
  for (const l of man.layers) {
    hexOf(l?.digest, `layer of ${where}`)
    if (typeof l.size !== 'number') throw new VeloError('BAD_INPUT', `${where}: layer ${l.digest} has no size`)
    if (!seen.has(l.digest)) layers.push({digest: l.digest, size: l.size})
    seen.add(l.digest)
  }
  const total = layers.reduce((a, l) => a + l.size, 0)
  const pack = tar.pack()
  let producerError: unknown
  const producer = (async () => {
    const layout = Buffer.from(JSON.stringify({imageLayoutVersion: '1.0.0'}))
    await addEntry(pack, 'oci-layout', layout.length, layout)
    let got = 0
    for (const l of layers) {
      const r = await client.request('GET', `/v2/${ref.repo}/blobs/${l.digest}`, {what: `layer ${l.digest.slice(0, 19)} of ${where}`, scopes: [`repository:${ref.repo}:pull`]})
      const body = (async function* () {
        for await (const c of r.body) {
          client.received += c.length
          got += c.length
          opts.onProgress?.(got, total, 'layers')
          yield c as Buffer
        }
      })()
      await addEntry(pack, `blobs/sha256/${hexOf(l.digest, where)}`, l.size, body)
    }
    await addEntry(pack, `blobs/sha256/${hexOf(man.config.digest, where)}`, cfg.length, cfg)
    await addEntry(pack, `blobs/sha256/${m.digest.slice(7)}`, m.raw.length, m.raw)
    const index = Buffer.from(JSON.stringify({schemaVersion: 2, manifests: [{mediaType: man.mediaType ?? MEDIA.manifest, digest: m.digest, size: m.raw.length}]}))
    await addEntry(pack, 'index.json', index.length, index)
    pack.finalize()
  })().catch((err) => {
    producerError = err
    pack.destroy(err)
  })
  let r
  try {
    r = await importImage(home, pack as unknown as NodeJS.ReadableStream, {name, format: 'image', source: `registry:${where}`})
  } catch (err) {
    await producer
    // the registry's error (unreachable, a short body) says more than the importer's view of a broken tar
    throw producerError instanceof VeloError ? producerError : err
  }
  await producer
  return {
    format: man.mediaType === 'application/vnd.docker.distribution.manifest.v2+json' ? 'docker' : 'oci',
    image: name,
    layers: r.layers.map((l) => ({id: l.id, existed: l.existed})),
    objects: {total: r.layers.reduce((a, l) => a + l.files, 0), fetched: r.newObjects, present: 0},
    replaced: r.images[0]?.replaced ?? false,
    warnings: r.warnings,
  }
}

export async function pushOci(home: string, image: string, target: string, opts: PushOptions = {}): Promise<PushResult> {
  const t0 = process.hrtime.bigint()
  const ref = parseRef(target)
  if (ref.digest) throw new VeloError('USAGE', 'push to a tag, not a digest')
  const store = new Store(home)
  const lock = new StoreLock(path.join(home, 'lock')).acquire('shared')
  const db = ManifestDb.open(home)
  const client = new RegistryClient(ref.registry, opts)
  const tmp = pushTempDir(home)
  const counts = {uploaded: 0, existed: 0, mounted: 0, resumed: 0}
  const count = (o: UploadOutcome) => (o === 'uploaded' ? counts.uploaded++ : o === 'exists' ? counts.existed++ : o === 'resumed' ? (counts.uploaded++, counts.resumed++) : counts.mounted++)
  try {
    const img = db.requireImage(image)
    const tars = new Map<string, {digest: string; size: number; file: string}>()
    for (const l of img.layers) {
      if (tars.has(l)) continue
      const file = path.join(tmp, l)
      let fd: number
      try {
        fd = fs.openSync(file, 'wx', 0o600)
      } catch (err) {
        throw fromSystemError(err, `cannot write a layer tar in ${tmp}`)
      }
      try {
        const t = await writeLayerTar(db, store, l, fd)
        tars.set(l, {digest: `sha256:${t.diffId}`, size: t.bytes, file})
      } finally {
        fs.closeSync(fd)
      }
    }
    const config = dockerConfig(img, img.layers.map((l) => tars.get(l)!.digest.slice(7)))
    const cfgDigest = sha256(config)
    const session = {sessionDir: new RemoteCache(home).uploadsDir}
    await pool([...tars.values()], PARALLEL, async (t) => {
      count(await uploadBlob(client, ref.repo, t.digest, t.size, (from, to) => fs.createReadStream(t.file, {start: from, end: to - 1, highWaterMark: 1 << 20}), session))
    })
    count(await uploadBlob(client, ref.repo, cfgDigest, config.length, async function* () {
      yield config
    }))
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MEDIA.manifest,
        config: {mediaType: OCI_CONFIG, digest: cfgDigest, size: config.length},
        layers: img.layers.map((l) => ({mediaType: OCI_LAYER_TAR, digest: tars.get(l)!.digest, size: tars.get(l)!.size})),
      }),
    )
    const digest = await putManifest(client, ref, manifest, MEDIA.manifest)
    emitEvent(home, 'image', 'push', image, {ref: formatRef(ref), digest})
    return {
      image,
      ref: formatRef(ref),
      digest,
      format: 'oci',
      layers: tars.size,
      objects: 0,
      packs: {total: 0, reused: 0, new: 0},
      blobs: counts,
      bytesSent: client.sent,
      requests: client.requests,
      seconds: Number(process.hrtime.bigint() - t0) / 1e9,
    }
  } finally {
    client.close()
    fs.rmSync(tmp, {recursive: true, force: true})
    db.close()
    lock.release()
  }
}

/** `velo registry rm REF`: delete the manifest a tag names (the registry drops every tag on it); its blobs go at the registry's next gc unless another manifest lists them. */
export async function deleteRemote(target: string, opts: PushOptions = {}): Promise<{ref: string; digest: string}> {
  const ref = parseRef(target)
  const client = new RegistryClient(ref.registry, opts)
  try {
    const {getManifest} = await import('./pull')
    const m = await getManifest(client, ref)
    const r = await client.request('DELETE', `/v2/${ref.repo}/manifests/${m.digest}`, {what: `delete of ${formatRef(ref)}`, expect: [202, 200], scopes: [`repository:${ref.repo}:pull,push,delete`]})
    r.body.resume()
    return {ref: formatRef(ref), digest: m.digest}
  } finally {
    client.close()
  }
}
