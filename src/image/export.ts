import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import * as path from 'node:path'
import * as tar from 'tar-stream'
import {VeloError, fromSystemError} from '../lib/errors'
import {StoreLock} from '../lib/lock'
import {ImageRecord, ManifestDb} from '../manifest/db'
import {FLAG_OPAQUE, FLAG_WHITEOUT, kindOf, ZERO_HASH} from '../manifest/entry'
import {objectOf, Store} from '../store/cas'
import {configToDocker, hostGoArch} from './config'
import {majorMinor} from './layer'
import {encodeTarHeader, TAR_END, tarPadding} from './tar-write'
import {thawLayers} from '../store/cold'
export {fmtPaxTime} from './tar-write'

/**
 * `velo image export NAME -o FILE`: a `docker save` archive in the legacy layout that every `docker load`
 * accepts — `<diff id>/layer.tar` per layer, `<config digest>.json` with rootfs.diff_ids, `manifest.json`,
 * `repositories`. Each velo layer is written back as one layer tar with its whiteouts (`.wh.NAME`) and opaque
 * markers (`.wh..wh..opq`) as Docker writes them, so `docker run` of the loaded image sees the velo image's tree.
 *
 * A tar member needs its size in its header and the layer's directory is named by its digest, so each layer tar
 * is generated once into a temp file beside the output (hashed while written) and then copied into the
 * archive; the archive itself is written to FILE.tmp and renamed into place, so a failed export leaves nothing.
 */

export interface ExportResult {
  image: string
  file: string
  tag: string
  layers: Array<{id: string; diffId: string; bytes: number}>
  bytes: number
  seconds: number
}

/** A Docker reference for the image: lower-case repository, ":latest" unless the name has a tag. */
export function dockerTag(name: string): string {
  const i = name.lastIndexOf(':')
  const repo = (i > 0 ? name.slice(0, i) : name).toLowerCase().replace(/[^a-z0-9._-]/g, '_')
  const tag = i > 0 ? name.slice(i + 1).replace(/[^A-Za-z0-9_.-]/g, '_') : 'latest'
  return `${repo}:${tag || 'latest'}`
}

/** Write everything `src` yields into fd, hashing it. */
async function drainTo(src: AsyncIterable<Buffer>, fd: number, hash?: crypto.Hash): Promise<number> {
  let n = 0
  for await (const c of src) {
    hash?.update(c)
    let off = 0
    while (off < c.length) off += fs.writeSync(fd, c, off, c.length - off)
    n += c.length
  }
  return n
}

function waitDrain(s: {once(ev: string, f: () => void): unknown}): Promise<void> {
  return new Promise((r) => s.once('drain', r))
}

/** Add one entry to a pack, streaming `content` (a file) if given. */
function packBuf(pack: tar.Pack, name: string, data: string | Buffer): Promise<void> {
  return new Promise<void>((res, rej) => pack.entry({name, mode: 0o644, mtime: new Date(0)}, data, (e) => (e ? rej(e) : res())))
}

async function packEntry(pack: tar.Pack, header: Record<string, unknown>, content?: string): Promise<void> {
  // Open first: a missing object fails here, before a half-written entry exists.
  let fd: number | undefined
  if (content !== undefined) {
    try {
      fd = fs.openSync(content, 'r')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT')
        throw new VeloError('INTEGRITY', `${String(header.name)}: its object ${path.basename(content)} is missing from the store`, {suggestion: 'run `velo fsck`'})
      throw fromSystemError(err, `cannot read ${content}`)
    }
  }
  await new Promise<void>((resolve, reject) => {
    const sink = pack.entry(header as never, (err) => (err ? reject(err) : resolve()))
    sink.on('error', () => undefined) // reported through the callback / rejection
    if (fd === undefined) {
      sink.end(undefined as never)
      return
    }
    ;(async () => {
      for await (const c of fs.createReadStream('', {fd, highWaterMark: 1 << 20})) if (!sink.write(c as Buffer)) await waitDrain(sink as never)
      sink.end(undefined as never)
    })().catch((err) => {
      reject(fromSystemError(err, `cannot read ${content}`))
      sink.destroy(err)
    })
  })
}

/** Writes a tar into an fd while hashing it (sha256: the diff id). */
class LayerSink {
  readonly hash = crypto.createHash('sha256')
  bytes = 0
  constructor(private readonly fd: number) {}
  write(b: Buffer): void {
    this.hash.update(b)
    let off = 0
    while (off < b.length) off += fs.writeSync(this.fd, b, off, b.length - off)
    this.bytes += b.length
  }
}

const CHUNK = 1 << 20

/** Copy an object's bytes into the tar; exactly `size` bytes or an INTEGRITY error. */
function copyObject(sink: LayerSink, obj: string, size: number, where: string): void {
  let fd: number
  try {
    fd = fs.openSync(obj, 'r')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT')
      throw new VeloError('INTEGRITY', `${where}: its object ${path.basename(obj)} is missing from the store`, {suggestion: 'run `velo fsck`'})
    throw fromSystemError(err, `cannot read ${obj}`)
  }
  try {
    const buf = Buffer.allocUnsafe(Math.min(CHUNK, Math.max(size, 1)))
    let done = 0
    while (done < size) {
      const n = fs.readSync(fd, buf, 0, Math.min(buf.length, size - done), done)
      if (n === 0) throw new VeloError('INTEGRITY', `${where}: its object ${path.basename(obj)} is shorter than its name says`, {suggestion: 'run `velo fsck`'})
      sink.write(n === buf.length ? buf : buf.subarray(0, n))
      done += n
    }
  } finally {
    fs.closeSync(fd)
  }
  sink.write(tarPadding(size))
}

const SLASH = Buffer.from('/')
const WH = Buffer.from('.wh.')
const OPQ = Buffer.from('.wh..wh..opq')

/**
 * Generate one velo layer as an OCI/Docker layer tar into `fd`; returns its sha256 (the diff id) and size.
 * Names, link targets and xattr values are written as the bytes the manifest holds (src/image/tar-write.ts).
 */
export async function writeLayerTar(db: ManifestDb, store: Store, layer: string, fd: number): Promise<{diffId: string; bytes: number}> {
  const sink = new LayerSink(fd)
  const marker = (name: Buffer, where: string) =>
    sink.write(encodeTarHeader({name, type: 'file', mode: 0, uid: 0, gid: 0, mtimeSec: 0n, mtimeNsec: 0, size: 0}, where))
  try {
    const dirs = new Map<number, Buffer>() // dir ino → path with trailing '/' ('' for the root)
    const firstPath = new Map<number, Buffer>() // hard-link groups: ino → path written first
    for (const {parentIno, name, entry: e} of db.layerEntries(layer)) {
      const base = {mode: e.mode & 0o7777, uid: e.uid, gid: e.gid, mtimeSec: e.mtimeSec, mtimeNsec: e.mtimeNsec, xattrs: e.xattrs}
      if (parentIno === 0) {
        dirs.set(e.ino, Buffer.alloc(0))
        // The root as "./" (as docker import layers have it), so its metadata round-trips.
        sink.write(encodeTarHeader({...base, name: Buffer.from('./'), type: 'directory'}, 'layer root'))
        if (e.flags & FLAG_OPAQUE) marker(OPQ, 'layer root')
        continue
      }
      const parent = dirs.get(parentIno)
      if (parent === undefined) throw new VeloError('INTEGRITY', `layer ${layer}: entry ${name.toString()} has no parent directory`, {suggestion: 'run `velo fsck`'})
      const p = Buffer.concat([parent, name])
      const where = JSON.stringify(p.toString('utf8'))
      const kind = kindOf(e)
      if (kind === 'whiteout' || e.flags & FLAG_WHITEOUT) {
        marker(Buffer.concat([parent, WH, name]), where)
        continue
      }
      switch (kind) {
        case 'dir': {
          const d = Buffer.concat([p, SLASH])
          dirs.set(e.ino, d)
          sink.write(encodeTarHeader({...base, name: d, type: 'directory'}, where))
          if (e.flags & FLAG_OPAQUE) marker(Buffer.concat([d, OPQ]), where)
          break
        }
        case 'file': {
          if (e.nlink > 1) {
            const first = firstPath.get(e.ino)
            if (first !== undefined) {
              // Docker repeats the inode's attributes on link entries too; they are the same inode's
              sink.write(encodeTarHeader({...base, name: p, type: 'link', linkname: first, size: 0}, where))
              break
            }
            firstPath.set(e.ino, p)
          }
          const size = Number(e.size)
          if (size === 0 || e.hash.equals(ZERO_HASH)) {
            sink.write(encodeTarHeader({...base, name: p, type: 'file', size: 0}, where))
            break
          }
          const obj = store.path(objectOf(e))
          if (!fs.existsSync(obj)) throw new VeloError('INTEGRITY', `${where}: its object ${path.basename(obj)} is missing from the store`, {suggestion: 'run `velo fsck`'})
          sink.write(encodeTarHeader({...base, name: p, type: 'file', size}, where))
          copyObject(sink, obj, size, where)
          break
        }
        case 'symlink':
          sink.write(encodeTarHeader({...base, name: p, type: 'symlink', linkname: e.target ?? Buffer.alloc(0)}, where))
          break
        case 'fifo':
          sink.write(encodeTarHeader({...base, name: p, type: 'fifo'}, where))
          break
        case 'char':
        case 'block': {
          const {major, minor} = majorMinor(e.rdev)
          sink.write(encodeTarHeader({...base, name: p, type: kind, devmajor: major, devminor: minor}, where))
          break
        }
        default:
          // sockets are not content (tar cannot hold them either)
          break
      }
    }
    sink.write(TAR_END)
  } catch (err) {
    if (err instanceof VeloError) throw new VeloError(err.code, `layer ${layer}: ${err.message}`, {suggestion: err.suggestion})
    throw err
  }
  return {diffId: sink.hash.digest('hex'), bytes: sink.bytes}
}

export function dockerConfig(img: ImageRecord, diffIds: string[]): Buffer {
  const c = img.config ?? {}
  const config = configToDocker(c)
  const arch = typeof c.architecture === 'string' ? c.architecture : hostGoArch()
  return Buffer.from(
    JSON.stringify({
      architecture: arch,
      os: 'linux',
      created: img.createdAt,
      config,
      rootfs: {type: 'layers', diff_ids: diffIds.map((d) => `sha256:${d}`)},
      history: img.layers.map((l) => ({created: img.createdAt, created_by: `velo layer ${l}`})),
    }),
  )
}

export async function exportImage(home: string, name: string, file: string, opts: {tag?: string} = {}): Promise<ExportResult> {
  const t0 = process.hrtime.bigint()
  const out = path.resolve(file)
  const store = new Store(home)
  const lock = new StoreLock(path.join(home, 'lock')).acquire('shared')
  const db = ManifestDb.open(home)
  try {
    thawLayers(home, db, db.getImage(name)?.layers ?? []) // reads plain objects only (src/store/cold.ts)
  } catch (err) {
    db.close()
    lock.release()
    throw err
  }
  const temps: string[] = []
  const tmpName = (what: string) => {
    const t = path.join(path.dirname(out), `.${path.basename(out)}.${what}.${process.pid}.${crypto.randomBytes(4).toString('hex')}`)
    temps.push(t)
    return t
  }
  let outFd: number | undefined
  try {
    const img = db.requireImage(name)
    if (fs.existsSync(out) && fs.statSync(out).isDirectory())
      throw new VeloError('USAGE', `${file} is a directory`, {suggestion: 'give a file name, e.g. -o image.tar'})
    const tag = opts.tag ?? dockerTag(name)
    // 1. Each distinct layer as a tar, hashed while written.
    const layerTars = new Map<string, {diffId: string; bytes: number; file: string}>()
    for (const l of img.layers) {
      if (layerTars.has(l)) continue
      const f = tmpName('layer')
      let fd: number
      try {
        fd = fs.openSync(f, 'wx', 0o600)
      } catch (err) {
        throw fromSystemError(err, `cannot write next to ${file}`)
      }
      try {
        layerTars.set(l, {...(await writeLayerTar(db, store, l, fd)), file: f})
      } finally {
        fs.closeSync(fd)
      }
    }
    const diffIds = img.layers.map((l) => layerTars.get(l)!.diffId)
    const config = dockerConfig(img, diffIds)
    const configName = `${crypto.createHash('sha256').update(config).digest('hex')}.json`

    // 2. The archive: layers, config, manifest.json, repositories.
    const tmpOut = tmpName('tmp')
    try {
      outFd = fs.openSync(tmpOut, 'wx', 0o644)
    } catch (err) {
      throw fromSystemError(err, `cannot write ${file}`)
    }
    const pack = tar.pack()
    const consumer = drainTo(pack as AsyncIterable<Buffer>, outFd)
    const epoch = new Date(0)
    const written = new Set<string>()
    for (const l of img.layers) {
      const t = layerTars.get(l)!
      if (written.has(t.diffId)) continue
      written.add(t.diffId)
      await packEntry(pack, {name: `${t.diffId}/`, type: 'directory', mode: 0o755, mtime: epoch})
      await packBuf(pack, `${t.diffId}/VERSION`, '1.0')
      await packEntry(pack, {name: `${t.diffId}/layer.tar`, type: 'file', mode: 0o644, mtime: epoch, size: t.bytes}, t.file)
    }
    await packBuf(pack, configName, config)
    const manifest = JSON.stringify([{Config: configName, RepoTags: [tag], Layers: img.layers.map((l) => `${layerTars.get(l)!.diffId}/layer.tar`)}])
    await packBuf(pack, 'manifest.json', manifest)
    const ci = tag.lastIndexOf(':')
    const repositories = JSON.stringify({[tag.slice(0, ci)]: {[tag.slice(ci + 1)]: configName.slice(0, -5)}})
    await packBuf(pack, 'repositories', repositories)
    pack.finalize()
    const bytes = await consumer
    fs.fsyncSync(outFd)
    fs.closeSync(outFd)
    outFd = undefined
    try {
      fs.renameSync(tmpOut, out)
    } catch (err) {
      throw fromSystemError(err, `cannot write ${file}`)
    }
    temps.splice(temps.indexOf(tmpOut), 1)
    return {
      image: name,
      file: out,
      tag,
      layers: img.layers.map((l) => ({id: l, diffId: `sha256:${layerTars.get(l)!.diffId}`, bytes: layerTars.get(l)!.bytes})),
      bytes,
      seconds: Number(process.hrtime.bigint() - t0) / 1e9,
    }
  } finally {
    if (outFd !== undefined) fs.closeSync(outFd)
    for (const t of temps) fs.rmSync(t, {force: true})
    db.close()
    lock.release()
  }
}
