import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {emitEvent} from '../lib/events'
import {VeloError, fromSystemError} from '../lib/errors'
import {StoreLock} from '../lib/lock'
import {validateName} from '../lib/names'
import {ImageConfig, ImageRecord, ManifestDb} from '../manifest/db'
import {Store} from '../store/cas'
import {configFromDocker, hostGoArch} from './config'
import {importLayerStream, LayerApplier, LayerResult} from './layer'
import {xattrWarning} from '../manifest/xattrs'
import {decompress, HashTap, looksLikeTar, peek, sniffCompression, TarEntry, tarEntries} from './stream'

/**
 * `velo image import`: docker save (legacy `manifest.json` + `<id>/layer.tar`, and the OCI-layout form Docker
 * ≥ 25 writes), OCI image layouts (directory or tar), or a plain rootfs tarball; any of them gzip-compressed.
 *
 * One pass, nothing unpacked to a temp dir, nothing spooled: a docker-save tar may put manifest.json after the
 * layer blobs, so every member that looks like a layer (a tar, or gzip) is imported as it streams by — content
 * into the store, tree into memory — and small JSON members are kept in memory. When the archive ends, the
 * manifest decides which parsed layers form which image, in which order; every digest is checked (blob sha256
 * against its name/descriptor, uncompressed sha256 against the config's rootfs.diff_ids). Only then: one
 * syncfs, and ONE LMDB transaction with all layers and image records. Anything wrong before that leaves no
 * image and no layer (only unreferenced objects, which gc removes).
 */

export type ImportFormat = 'auto' | 'image' | 'rootfs'

export interface ImportOptions {
  name?: string
  format?: ImportFormat
  /** for pull: choose the image whose tag matches this reference when the archive holds several */
  ref?: string
  /** label recorded as the layers'/image's source */
  source?: string
  onProgress?: (bytesRead: number, totalBytes: number) => void
}

export interface ImportedLayer {
  id: string
  diffId: string
  existed: boolean
  files: number
  entries: number
  whiteouts: number
  logicalBytes: number
  newObjects: number
  newBytes: number
}

export interface ImportResult {
  format: 'docker-save' | 'oci' | 'rootfs'
  images: Array<{name: string; layers: string[]; replaced: boolean}>
  layers: ImportedLayer[]
  inputBytes: number
  logicalBytes: number
  newObjects: number
  newBytes: number
  seconds: number
  /** Things the import could not keep, said out loud (e.g. extended attributes: no manifest field yet). */
  warnings: string[]
}

type Member = {kind: 'layer'; layer: LayerResult} | {kind: 'data'; sha256: string; size: number; buf?: Buffer}

const JSON_MAX = 64 << 20
const KEEP_MAX = 16 << 20

const IMAGE_MEMBER = /^(manifest\.json|index\.json|oci-layout|repositories|blobs(\/.*)?|[0-9a-f]{64}(\.json|\/.*)?)$/

const INDEX_TYPES = new Set(['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json'])

/** Normalise a member or manifest path: no leading "./", no trailing "/", no "." components. */
export function normMember(p: string): string {
  const n = path.posix.normalize(p.replace(/^(\.\/)+/, ''))
  return n.replace(/\/+$/, '').replace(/^\.\/?$/, '')
}

/** Turn a docker reference into a velo image name: drop docker.io/library/, then map characters velo names don't allow. */
export function nameFromRef(ref: string): string {
  let r = ref.replace(/^docker\.io\//, '').replace(/^library\//, '')
  r = r.replace(/[^A-Za-z0-9_.:-]/g, '_').replace(/\.\.+/g, '.')
  r = r.replace(/^[^A-Za-z0-9]+/, '')
  return r.slice(0, 128)
}

interface ImagePlan {
  tags: string[]
  configPath: string
  configDigest?: string
  layerPaths: string[]
  layerDigests: Array<string | undefined>
}

/** Where the bytes of an archive live: a tar read once (members collected), or an OCI layout directory (read on demand). */
interface Blobs {
  has(p: string): boolean
  json(p: string, what: string, digest?: string, size?: number): Promise<any>
  layer(p: string, what: string, digest?: string, size?: number): Promise<LayerResult>
}

function badJson(what: string, err: unknown): VeloError {
  return new VeloError('BAD_INPUT', `${what} is not valid JSON (${(err as Error).message})`)
}

function checkDigest(what: string, want: string | undefined, gotHex: string, wantSize?: number, gotSize?: number): void {
  if (want !== undefined) {
    const m = /^sha256:([0-9a-f]{64})$/.exec(want)
    if (!m) throw new VeloError('UNSUPPORTED', `${what}: digest ${JSON.stringify(want)} is not a sha256 digest`)
    if (m[1] !== gotHex)
      throw new VeloError('INTEGRITY', `${what}: digest mismatch: the content hashes to sha256:${gotHex}, the manifest says ${want}`, {
        suggestion: 'the archive is corrupt or was tampered with; save or pull the image again',
      })
  }
  if (wantSize !== undefined && gotSize !== undefined && wantSize !== gotSize)
    throw new VeloError('INTEGRITY', `${what}: size mismatch: ${gotSize} bytes, the manifest says ${wantSize}`)
}

/** A blob stored under blobs/sha256/<hex> must hash to <hex>. */
function digestFromPath(p: string): string | undefined {
  const m = /^blobs\/sha256\/([0-9a-f]{64})$/.exec(p)
  return m ? `sha256:${m[1]}` : undefined
}

class TarBlobs implements Blobs {
  readonly members = new Map<string, Member>()
  readonly aliases = new Map<string, string>()

  resolve(p: string): string {
    let n = normMember(p)
    for (let i = 0; i < 32 && this.aliases.has(n); i++) n = this.aliases.get(n)!
    return n
  }

  has(p: string): boolean {
    return this.members.has(this.resolve(p))
  }

  private get(p: string, what: string): Member {
    const m = this.members.get(this.resolve(p))
    if (!m) throw new VeloError('BAD_INPUT', `${what}: ${JSON.stringify(p)} is not in the archive`, {suggestion: 'the archive is incomplete; save the image again'})
    return m
  }

  async json(p: string, what: string, digest?: string, size?: number): Promise<any> {
    const m = this.get(p, what)
    if (m.kind !== 'data' || !m.buf) throw new VeloError('BAD_INPUT', `${what}: ${JSON.stringify(p)} is not a JSON document`)
    checkDigest(`${what} ${p}`, digest ?? digestFromPath(this.resolve(p)), m.sha256, size, m.size)
    try {
      return JSON.parse(m.buf.toString('utf8'))
    } catch (err) {
      throw badJson(`${what} ${p}`, err)
    }
  }

  async layer(p: string, what: string, digest?: string, size?: number): Promise<LayerResult> {
    const m = this.get(p, what)
    if (m.kind !== 'layer') throw new VeloError('BAD_INPUT', `${what}: ${JSON.stringify(p)} is not a layer tar (neither tar nor gzip data)`)
    checkDigest(`${what} ${p}`, digest ?? digestFromPath(this.resolve(p)), m.layer.blobDigest, size, m.layer.blobSize)
    return m.layer
  }
}

class DirBlobs implements Blobs {
  private readonly layers = new Map<string, LayerResult>()
  constructor(private readonly dir: string, private readonly store: Store, private readonly source: string) {}

  /** A blob's file: inside the layout, a regular file (a symlink could point anywhere on the host). */
  private file(p: string, what: string): string {
    const n = normMember(p)
    if (n.startsWith('..') || path.isAbsolute(n)) throw new VeloError('BAD_INPUT', `${what}: path ${JSON.stringify(p)} leaves the layout`)
    const f = path.join(this.dir, n)
    let st: fs.Stats | undefined
    try {
      st = fs.lstatSync(f)
    } catch {
      st = undefined // missing: reported by the caller
    }
    if (st && !st.isFile()) throw new VeloError('BAD_INPUT', `${what}: ${JSON.stringify(p)} is not a regular file in the layout (symlinks are refused)`)
    return f
  }

  has(p: string): boolean {
    return fs.existsSync(this.file(p, 'blob'))
  }


  async json(p: string, what: string, digest?: string, size?: number): Promise<any> {
    const f = this.file(p, what)
    let buf: Buffer
    try {
      const st = fs.statSync(f)
      if (st.size > JSON_MAX) throw new VeloError('BAD_INPUT', `${what} ${p}: too large for a JSON document`)
      buf = fs.readFileSync(f)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new VeloError('BAD_INPUT', `${what}: ${JSON.stringify(p)} is not in the layout`, {suggestion: 'the layout is incomplete'})
      throw fromSystemError(err, `cannot read ${f}`)
    }
    checkDigest(`${what} ${p}`, digest ?? digestFromPath(normMember(p)), crypto.createHash('sha256').update(buf).digest('hex'), size, buf.length)
    try {
      return JSON.parse(buf.toString('utf8'))
    } catch (err) {
      throw badJson(`${what} ${p}`, err)
    }
  }

  async layer(p: string, what: string, digest?: string, size?: number): Promise<LayerResult> {
    const n = normMember(p)
    let r = this.layers.get(n)
    if (!r) {
      const f = this.file(p, what)
      if (!fs.existsSync(f)) throw new VeloError('BAD_INPUT', `${what}: ${JSON.stringify(p)} is not in the layout`, {suggestion: 'the layout is incomplete'})
      r = await importLayerStream(this.store, fs.createReadStream(f, {highWaterMark: 1 << 20}), `layer ${n}`, `${this.source}#${n}`)
      this.layers.set(n, r)
    }
    checkDigest(`${what} ${p}`, digest ?? digestFromPath(n), r.blobDigest, size, r.blobSize)
    return r
  }
}

/** docker save: manifest.json lists images (Config, RepoTags, Layers as archive paths). */
async function plansFromDockerManifest(blobs: Blobs): Promise<ImagePlan[]> {
  const m = await blobs.json('manifest.json', 'manifest.json')
  if (!Array.isArray(m) || m.length === 0) throw new VeloError('BAD_INPUT', 'manifest.json: expected a non-empty array of images')
  return m.map((e: any, i: number) => {
    if (typeof e?.Config !== 'string' || !Array.isArray(e?.Layers) || e.Layers.some((l: unknown) => typeof l !== 'string'))
      throw new VeloError('BAD_INPUT', `manifest.json: image ${i} has no Config or no Layers list`)
    const cfg = normMember(e.Config)
    const legacyId = /^([0-9a-f]{64})\.json$/.exec(cfg)
    return {
      tags: Array.isArray(e.RepoTags) ? e.RepoTags.filter((t: unknown) => typeof t === 'string') : [],
      configPath: e.Config,
      configDigest: legacyId ? `sha256:${legacyId[1]}` : undefined,
      layerPaths: e.Layers,
      layerDigests: e.Layers.map(() => undefined),
    }
  })
}

const blobPath = (digest: unknown, what: string): string => {
  const m = typeof digest === 'string' ? /^sha256:([0-9a-f]{64})$/.exec(digest) : null
  if (!m) throw new VeloError('UNSUPPORTED', `${what}: digest ${JSON.stringify(digest)} is not a sha256 digest`)
  return `blobs/sha256/${m[1]}`
}

/** OCI image layout: index.json → (nested indexes) → manifests → config + layers. */
async function plansFromOciIndex(blobs: Blobs, depth = 0, p = 'index.json', digest?: string, inheritedName?: string): Promise<ImagePlan[]> {
  if (depth > 4) throw new VeloError('BAD_INPUT', `${p}: image indexes nested too deep`)
  const idx = await blobs.json(p, depth === 0 ? 'index.json' : 'image index', digest)
  if (!Array.isArray(idx?.manifests)) throw new VeloError('BAD_INPUT', `${p}: no manifests list`)
  const out: ImagePlan[] = []
  const arch = hostGoArch()
  const candidates = idx.manifests as any[]
  const nested = candidates.filter((d) => INDEX_TYPES.has(d?.mediaType))
  const direct = candidates.filter((d) => !INDEX_TYPES.has(d?.mediaType))
  // Platform choice: a descriptor whose platform is linux/<this arch>, else one without a platform.
  const withPlatform = direct.filter((d) => d?.platform)
  let chosen = direct
  if (depth > 0 && withPlatform.length > 0) {
    chosen = direct.filter((d) => d.platform?.os === 'linux' && d.platform?.architecture === arch)
    if (chosen.length === 0) throw new VeloError('UNSUPPORTED', `${p}: no image for linux/${arch} in the index`)
    chosen = chosen.slice(0, 1)
  }
  for (const d of chosen) {
    if (d?.platform?.architecture === 'unknown') continue // BuildKit attestation manifests
    const name = d?.annotations?.['io.containerd.image.name'] ?? d?.annotations?.['org.opencontainers.image.ref.name'] ?? inheritedName
    const mp = blobPath(d?.digest, p)
    const man = await blobs.json(mp, 'image manifest', d.digest, d.size)
    if (man?.mediaType && INDEX_TYPES.has(man.mediaType)) {
      out.push(...(await plansFromOciIndex(blobs, depth + 1, mp, d.digest, name)))
      continue
    }
    if (!man?.config || !Array.isArray(man.layers)) throw new VeloError('BAD_INPUT', `image manifest ${mp}: no config or no layers`)
    out.push({
      tags: name ? [name] : [],
      configPath: blobPath(man.config.digest, mp),
      configDigest: man.config.digest,
      layerPaths: man.layers.map((l: any) => blobPath(l?.digest, mp)),
      layerDigests: man.layers.map((l: any) => l.digest),
    })
  }
  for (const d of nested) {
    const name = d?.annotations?.['io.containerd.image.name'] ?? d?.annotations?.['org.opencontainers.image.ref.name'] ?? inheritedName
    out.push(...(await plansFromOciIndex(blobs, depth + 1, blobPath(d?.digest, p), d.digest, name)))
  }
  if (out.length === 0) throw new VeloError('BAD_INPUT', `${p}: lists no image`)
  return out
}


function inputLabel(input: string): string {
  return input === '-' ? 'stdin' : path.resolve(input)
}

/** Open the input: a file, '-' (stdin), a directory (OCI layout) or a ready stream (pull). */
function openInput(input: string | NodeJS.ReadableStream): {stream?: AsyncIterable<Buffer>; dir?: string; size: number} {
  if (typeof input !== 'string') return {stream: input as AsyncIterable<Buffer>, size: 0}
  // stdin through fs (no socket machinery); 64 KiB reads = a pipe's buffer, so no oversized read buffers to collect.
  if (input === '-') return {stream: fs.createReadStream('', {fd: 0, highWaterMark: 1 << 16, autoClose: false}) as AsyncIterable<Buffer>, size: 0}
  let st: fs.Stats
  try {
    st = fs.statSync(input)
  } catch (err) {
    throw fromSystemError(err, `cannot import ${input}`)
  }
  if (st.isDirectory()) return {dir: input, size: 0}
  return {stream: fs.createReadStream(input, {highWaterMark: 1 << 20}), size: st.size}
}

export async function importImage(home: string, input: string | NodeJS.ReadableStream, opts: ImportOptions = {}): Promise<ImportResult> {
  const t0 = process.hrtime.bigint()
  const label = opts.source ?? (typeof input === 'string' ? inputLabel(input) : 'stream')
  if (opts.name !== undefined) validateName('image', opts.name)
  const opened = openInput(input)
  const store = new Store(home).init('image import')
  const lock = new StoreLock(path.join(home, 'lock')).acquire('shared')
  const db = ManifestDb.open(home)
  try {
    let format: ImportResult['format']
    let plans: ImagePlan[]
    let blobs: Blobs
    let rootfsLayer: LayerResult | undefined
    let inputBytes = 0

    if (opened.dir) {
      if (!fs.existsSync(path.join(opened.dir, 'index.json')))
        throw new VeloError('BAD_INPUT', `${opened.dir}: not an OCI image layout (no index.json)`, {suggestion: 'import a directory tree with `velo ingest DIR` instead'})
      blobs = new DirBlobs(opened.dir, store, label)
      format = 'oci'
      plans = await plansFromOciIndex(blobs)
    } else {
      const tap = new HashTap()
      let read = 0
      const counted = (async function* (src: AsyncIterable<Buffer>) {
        for await (const c of src) {
          read += c.length
          opts.onProgress?.(read, opened.size)
          yield c as Buffer
        }
      })(opened.stream!)
      const {stream} = await decompress(counted, label)
      const tb = new TarBlobs()
      blobs = tb
      let mode: 'image' | 'rootfs' | undefined = opts.format === 'image' ? 'image' : opts.format === 'rootfs' ? 'rootfs' : undefined
      let applier: LayerApplier | undefined
      let count = 0
      for await (const e of tarEntries(tap.wrap(stream), label)) {
        count++
        const raw = e.header.name ?? ''
        if (mode === undefined) mode = IMAGE_MEMBER.test(normMember(Buffer.from(raw, 'latin1').toString('utf8'))) ? 'image' : 'rootfs'
        // The archive's own digest is the diff id of a rootfs tarball; an image archive's is not needed.
        if (mode === 'image') tap.hashing = false
        if (mode === 'rootfs') {
          applier ??= new LayerApplier(store, label)
          await applier.add(e)
          continue
        }
        await collectMember(tb, store, e, label)
      }
      inputBytes = read
      if (count === 0) throw new VeloError('BAD_INPUT', `${label}: the tar is empty`)
      if (!tap.endsWithZeroBlock()) throw new VeloError('BAD_INPUT', `${label}: the tar is truncated (no end-of-archive block after ${count} entries)`)
      if (mode === 'rootfs') {
        format = 'rootfs'
        const diffId = tap.digest()
        const {info, entries} = applier!.finish(label, {diffId: `sha256:${diffId}`})
        rootfsLayer = {info, entries, diffId, blobDigest: diffId, blobSize: tap.bytes, compression: 'none', newObjects: applier!.newObjects, newBytes: applier!.newBytes, skipped: applier!.skipped, xattrEntries: applier!.xattrEntries, xattrDropped: applier!.xattrDropped}
        plans = []
      } else if (tb.has('manifest.json')) {
        format = 'docker-save'
        plans = await plansFromDockerManifest(blobs)
      } else if (tb.has('index.json')) {
        format = 'oci'
        plans = await plansFromOciIndex(blobs)
      } else {
        throw new VeloError('BAD_INPUT', `${label}: neither manifest.json (docker save) nor index.json (OCI layout) in the archive`, {
          suggestion: 'for a plain rootfs tarball use --format rootfs',
        })
      }
    }

    // Resolve images: configs, ordered layers, digests.
    const images: Array<{name: string; layers: LayerResult[]; config?: ImageConfig}> = []
    if (rootfsLayer) {
      const name = opts.name ?? (typeof input === 'string' && input !== '-' ? nameFromRef(path.basename(input).replace(/\.(tar|tgz|tar\.gz)$/, '')) : undefined)
      if (!name) throw new VeloError('USAGE', 'a rootfs tarball from stdin needs --name', {suggestion: 'velo image import - --name NAME'})
      images.push({name: validateName('image', name), layers: [rootfsLayer]})
    } else {
      let chosen = plans!
      if (opts.ref && plans!.length > 1) {
        const want = new Set([opts.ref, `${opts.ref}:latest`, `docker.io/library/${opts.ref}`, `docker.io/library/${opts.ref}:latest`])
        const hit = plans!.filter((p) => p.tags.some((t) => want.has(t)))
        if (hit.length) chosen = hit.slice(0, 1)
      }
      if (opts.name && chosen.length > 1)
        throw new VeloError('USAGE', `the archive holds ${chosen.length} images; --name can name only one`, {suggestion: 'import without --name (images are named by their tags)'})
      for (const [i, plan] of chosen.entries()) {
        const cfg = await blobs!.json(plan.configPath, 'image config', plan.configDigest)
        const diffIds: unknown = cfg?.rootfs?.diff_ids
        if (!Array.isArray(diffIds)) throw new VeloError('BAD_INPUT', `image config ${plan.configPath}: no rootfs.diff_ids`)
        const found: LayerResult[] = []
        for (const [j, lp] of plan.layerPaths.entries()) found.push(await blobs!.layer(lp, `layer ${j + 1}/${plan.layerPaths.length}`, plan.layerDigests[j]))
        if (diffIds.length !== plan.layerPaths.length)
          throw new VeloError('BAD_INPUT', `image config ${plan.configPath}: ${diffIds.length} diff_ids for ${plan.layerPaths.length} layers`)
        const layers: LayerResult[] = []
        for (const [j, lp] of plan.layerPaths.entries()) {
          const l = found[j]
          if (diffIds[j] !== `sha256:${l.diffId}`)
            throw new VeloError('INTEGRITY', `layer ${lp}: digest mismatch: its uncompressed tar hashes to sha256:${l.diffId}, the image config says ${String(diffIds[j])}`, {
              suggestion: 'the archive is corrupt or was tampered with; save or pull the image again',
            })
          layers.push(l)
        }
        let name = opts.name
        if (!name) {
          const tag = plan.tags[0]
          if (!tag) throw new VeloError('USAGE', `image ${i + 1} in the archive has no tag`, {suggestion: 'give --name NAME'})
          name = nameFromRef(tag)
        }
        images.push({name: validateName('image', name), layers, config: configFromDocker(cfg)})
        // Extra tags of the same image become extra names for the same layers.
        if (!opts.name)
          for (const t of plan.tags.slice(1)) images.push({name: validateName('image', nameFromRef(t)), layers, config: configFromDocker(cfg)})
      }
    }

    // Durable objects, then one transaction with every layer and every image record.
    store.sync()
    const now = new Date().toISOString()
    const seen = new Map<string, ImportedLayer>()
    const out: ImportResult['images'] = []
    db.writeSync(() => {
      for (const img of images) {
        for (const l of img.layers) {
          if (seen.has(l.info.id)) continue
          const existed = db.putLayerInTxn(l.info, l.entries)
          seen.set(l.info.id, {
            id: l.info.id,
            diffId: `sha256:${l.diffId}`,
            existed,
            files: l.info.files,
            entries: l.info.entries,
            whiteouts: l.info.whiteouts,
            logicalBytes: l.info.logicalBytes,
            newObjects: l.newObjects,
            newBytes: l.newBytes,
          })
        }
        const rec: ImageRecord = {name: img.name, layers: img.layers.map((l) => l.info.id), createdAt: now, source: label}
        if (img.config && Object.keys(img.config).length) rec.config = img.config
        const replaced = db.images.doesExist(img.name)
        db.putImageSync(rec)
        out.push({name: img.name, layers: rec.layers, replaced})
        emitEvent(home, 'image', 'import', img.name, {layers: rec.layers.length, source: label})
      }
    })
    const layers = [...seen.values()]
    const warnings: string[] = []
    const used = new Set<LayerResult>(images.flatMap((i) => i.layers))
    const withDropped = [...used].filter((l) => l.xattrDropped.droppedCount > 0)
    if (withDropped.length) warnings.push(xattrWarning(withDropped.map((l) => l.xattrDropped)))
    return {
      warnings,
      format: format!,
      images: out,
      layers,
      inputBytes,
      logicalBytes: layers.reduce((a, l) => a + l.logicalBytes, 0),
      newObjects: layers.reduce((a, l) => a + l.newObjects, 0),
      newBytes: layers.reduce((a, l) => a + l.newBytes, 0),
      seconds: Number(process.hrtime.bigint() - t0) / 1e9,
    }
  } finally {
    db.close()
    lock.release()
  }
}

/** One member of a docker-save / OCI tar: layers are imported as they stream by, small documents kept. */
async function collectMember(tb: TarBlobs, store: Store, e: TarEntry, label: string): Promise<void> {
  const h = e.header
  const name = normMember(Buffer.from(h.name ?? '', 'latin1').toString('utf8'))
  switch (h.type) {
    case 'directory':
      for await (const _ of e.stream) {
        // nothing
      }
      return
    case 'symlink':
      // Legacy docker save links duplicate layers: <id>/layer.tar -> ../<other>/layer.tar
      tb.aliases.set(name, normMember(path.posix.join(path.posix.dirname(name), h.linkname ?? '')))
      for await (const _ of e.stream) {
        // nothing
      }
      return
    case 'link':
      tb.aliases.set(name, normMember(h.linkname ?? ''))
      for await (const _ of e.stream) {
        // nothing
      }
      return
    case 'file':
    case 'contiguous-file':
      break
    default:
      throw new VeloError('BAD_INPUT', `${label}: member ${JSON.stringify(name)} has unexpected type ${String(h.type)}`)
  }
  if (tb.members.has(name) || tb.aliases.has(name)) throw new VeloError('BAD_INPUT', `${label}: member ${JSON.stringify(name)} appears twice`)
  const {head, stream} = await peek(e.stream, 512)
  if (sniffCompression(head) !== 'none' || looksLikeTar(head)) {
    const layer = await importLayerStream(store, stream, `layer ${name}`, `${label}#${name}`)
    tb.members.set(name, {kind: 'layer', layer})
    return
  }
  const hash = crypto.createHash('sha256')
  let size = 0
  const keep: Buffer[] = []
  for await (const c of stream) {
    hash.update(c)
    size += c.length
    if (size <= KEEP_MAX) keep.push(c)
  }
  tb.members.set(name, {kind: 'data', sha256: hash.digest('hex'), size, buf: size <= KEEP_MAX ? Buffer.concat(keep) : undefined})
}

