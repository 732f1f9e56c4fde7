import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import * as path from 'node:path'
import * as tar from 'tar-stream'
import {VeloError, fromSystemError} from '../lib/errors'
import {StoreLock} from '../lib/lock'
import {ImageRecord, ManifestDb} from '../manifest/db'
import {FLAG_OPAQUE, FLAG_WHITEOUT, kindOf, ZERO_HASH} from '../manifest/entry'
import {objectOf, Store} from '../store/cas'
import {majorMinor} from './layer'

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

/** PAX time: seconds with a 9-digit fraction (negative times as the PAX spec writes them: -1.5 = 1.5 s before the epoch). */
export function fmtPaxTime(sec: bigint, nsec: number): string {
  if (sec < 0n && nsec > 0) return `-${-sec - 1n}.${String(1_000_000_000 - nsec).padStart(9, '0')}`
  return `${sec}.${String(nsec).padStart(9, '0')}`
}

/** Generate one velo layer as an OCI/Docker layer tar into `fd`; returns its sha256 (the diff id) and size. */
async function writeLayerTar(db: ManifestDb, store: Store, layer: string, fd: number): Promise<{diffId: string; bytes: number}> {
  const pack = tar.pack()
  pack.on('error', () => undefined) // surfaced through the consumer
  const hash = crypto.createHash('sha256')
  const consumer = drainTo(pack as AsyncIterable<Buffer>, fd, hash)
  try {
    const dirs = new Map<number, string>() // dir ino → path ('' for the root)
    const firstPath = new Map<number, string>() // hard-link groups: ino → path written first
    for (const {parentIno, name, entry: e} of db.layerEntries(layer)) {
      if (parentIno === 0) {
        dirs.set(e.ino, '')
        // The root as "./" (as docker import layers have it), so its metadata round-trips.
        const big = e.uid > 0o777777 || e.gid > 0o777777
        await packEntry(pack, {name: './', type: 'directory', mode: e.mode & 0o7777, uid: e.uid, gid: e.gid, mtime: new Date(Number(e.mtimeSec) * 1000), ...(big ? {pax: {uid: String(e.uid), gid: String(e.gid)}} : {})})
        if (e.flags & FLAG_OPAQUE) await packEntry(pack, {name: '.wh..wh..opq', type: 'file', mode: 0, size: 0, mtime: new Date(0)})
        continue
      }
      const parent = dirs.get(parentIno)
      if (parent === undefined) throw new VeloError('INTEGRITY', `layer ${layer}: entry ${name.toString()} has no parent directory`, {suggestion: 'run `velo fsck`'})
      const p = parent === '' ? name.toString('utf8') : `${parent}/${name.toString('utf8')}`
      const kind = kindOf(e)
      const mtime = new Date(Number(e.mtimeSec) * 1000 + Math.floor(e.mtimeNsec / 1e6))
      const pax: Record<string, string> = {}
      if (e.uid > 0o777777 || e.gid > 0o777777) Object.assign(pax, {uid: String(e.uid), gid: String(e.gid)})
      if (e.mtimeNsec !== 0 || e.mtimeSec < 0n || e.mtimeSec > 0o77777777777n) pax.mtime = fmtPaxTime(e.mtimeSec, e.mtimeNsec)
      const base = {mode: e.mode & 0o7777, uid: e.uid, gid: e.gid, mtime, ...(Object.keys(pax).length ? {pax} : {})}
      if (kind === 'whiteout' || e.flags & FLAG_WHITEOUT) {
        const wp = parent === '' ? `.wh.${name.toString('utf8')}` : `${parent}/.wh.${name.toString('utf8')}`
        await packEntry(pack, {name: wp, type: 'file', mode: 0, size: 0, mtime: new Date(0)})
        continue
      }
      switch (kind) {
        case 'dir':
          dirs.set(e.ino, p)
          await packEntry(pack, {...base, name: `${p}/`, type: 'directory'})
          if (e.flags & FLAG_OPAQUE) await packEntry(pack, {name: `${p}/.wh..wh..opq`, type: 'file', mode: 0, size: 0, mtime: new Date(0)})
          break
        case 'file': {
          if (e.nlink > 1) {
            const first = firstPath.get(e.ino)
            if (first !== undefined) {
              await packEntry(pack, {...base, name: p, type: 'link', linkname: first, size: 0})
              break
            }
            firstPath.set(e.ino, p)
          }
          const size = Number(e.size)
          if (size === 0 || e.hash.equals(ZERO_HASH)) {
            await packEntry(pack, {...base, name: p, type: 'file', size: 0})
            break
          }
          const obj = store.path(objectOf(e))
          await packEntry(pack, {...base, name: p, type: 'file', size}, obj)
          break
        }
        case 'symlink':
          await packEntry(pack, {...base, name: p, type: 'symlink', linkname: (e.target ?? Buffer.alloc(0)).toString('utf8')})
          break
        case 'fifo':
          await packEntry(pack, {...base, name: p, type: 'fifo'})
          break
        case 'char':
        case 'block': {
          const {major, minor} = majorMinor(e.rdev)
          await packEntry(pack, {...base, name: p, type: kind === 'char' ? 'character-device' : 'block-device', devmajor: major, devminor: minor})
          break
        }
        default:
          // sockets are not content (tar cannot hold them either)
          break
      }
    }
    pack.finalize()
  } catch (err) {
    pack.destroy(err as Error)
    await consumer.catch(() => undefined)
    if (err instanceof VeloError) throw new VeloError(err.code, `layer ${layer}: ${err.message}`, {suggestion: err.suggestion})
    throw err
  }
  const bytes = await consumer
  return {diffId: hash.digest('hex'), bytes}
}

function dockerConfig(img: ImageRecord, diffIds: string[]): Buffer {
  const c = img.config ?? {}
  const config: Record<string, unknown> = {}
  if (c.env) config.Env = c.env
  if (c.cmd) config.Cmd = c.cmd
  if (c.entrypoint) config.Entrypoint = c.entrypoint
  if (c.workingDir) config.WorkingDir = c.workingDir
  if (c.user) config.User = c.user
  if (c.labels) config.Labels = c.labels
  if (c.exposedPorts) config.ExposedPorts = c.exposedPorts
  if (c.volumes) config.Volumes = c.volumes
  if (c.stopSignal) config.StopSignal = c.stopSignal
  const arch = typeof c.architecture === 'string' ? c.architecture : ({x64: 'amd64', arm64: 'arm64'} as Record<string, string>)[process.arch] ?? process.arch
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
