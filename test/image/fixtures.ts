import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import * as path from 'node:path'
import * as zlib from 'node:zlib'
import * as tar from 'tar-stream'

/** Hand-built archives for import tests: layer tars, docker-save (both layouts) and OCI layouts. */

export interface TEntry {
  name: string
  type?: 'file' | 'directory' | 'symlink' | 'link' | 'fifo' | 'character-device' | 'block-device'
  content?: string | Buffer
  linkname?: string
  mode?: number
  uid?: number
  gid?: number
  devmajor?: number
  devminor?: number
  mtime?: Date
  pax?: Record<string, string>
}

const MTIME = new Date('2024-01-02T03:04:05Z')

export async function mkTar(entries: TEntry[]): Promise<Buffer> {
  const p = tar.pack()
  const chunks: Buffer[] = []
  const done = new Promise<void>((resolve, reject) => {
    p.on('data', (c: unknown) => chunks.push(c as Buffer))
    p.on('end', () => resolve())
    p.on('error', reject)
  })
  for (const e of entries) {
    const type = e.type ?? 'file'
    const content = e.content === undefined ? Buffer.alloc(0) : Buffer.from(e.content)
    const mode = e.mode ?? (type === 'directory' ? 0o755 : 0o644)
    await new Promise<void>((resolve, reject) =>
      p.entry(
        {name: e.name, type, mode, uid: e.uid ?? 0, gid: e.gid ?? 0, mtime: e.mtime ?? MTIME, linkname: e.linkname, devmajor: e.devmajor, devminor: e.devminor, pax: e.pax, size: type === 'file' ? content.length : 0} as never,
        (type === 'file' ? content : undefined) as never,
        (err) => (err ? reject(err) : resolve()),
      ),
    )
  }
  p.finalize()
  await done
  return Buffer.concat(chunks)
}

export const sha256 = (b: Buffer | string) => crypto.createHash('sha256').update(b).digest('hex')

export interface FixtureImage {
  tag?: string
  layers: Buffer[] // layer blobs as stored (tar, or gzip of a tar)
  diffIds?: string[] // override (for digest-mismatch tests)
  config?: Record<string, unknown>
}

function configFor(img: FixtureImage, diffIds: string[]): Buffer {
  return Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: {Env: ['PATH=/usr/bin:/bin', 'HELLO=world'], Cmd: ['/bin/sh'], WorkingDir: '/srv', User: '1000:1000', ...(img.config ?? {})},
      rootfs: {type: 'layers', diff_ids: diffIds},
      history: diffIds.map(() => ({created_by: 'test'})),
    }),
  )
}

const uncompressed = (b: Buffer) => (b[0] === 0x1f && b[1] === 0x8b ? zlib.gunzipSync(b) : b)

/** docker save, legacy layout (Docker < 25): <id>/layer.tar, <config id>.json, manifest.json, repositories. */
export async function dockerSaveLegacy(images: FixtureImage[], opts: {manifestFirst?: boolean} = {}): Promise<Buffer> {
  const members: TEntry[] = []
  const manifest: unknown[] = []
  const seen = new Set<string>()
  for (const img of images) {
    const diffIds = img.diffIds ?? img.layers.map((l) => `sha256:${sha256(uncompressed(l))}`)
    const cfg = configFor(img, diffIds)
    const cfgName = `${sha256(cfg)}.json`
    const layerPaths: string[] = []
    for (const [i, l] of img.layers.entries()) {
      const id = sha256(`${diffIds.slice(0, i + 1).join(',')}`)
      layerPaths.push(`${id}/layer.tar`)
      if (seen.has(id)) continue
      seen.add(id)
      members.push({name: `${id}/`, type: 'directory'}, {name: `${id}/VERSION`, content: '1.0'}, {name: `${id}/json`, content: JSON.stringify({id})}, {name: `${id}/layer.tar`, content: l})
    }
    if (!seen.has(cfgName)) members.push({name: cfgName, content: cfg})
    seen.add(cfgName)
    manifest.push({Config: cfgName, RepoTags: img.tag ? [img.tag] : null, Layers: layerPaths})
  }
  const man: TEntry = {name: 'manifest.json', content: JSON.stringify(manifest)}
  return mkTar(opts.manifestFirst ? [man, ...members] : [...members, man, {name: 'repositories', content: '{}'}])
}

interface Blob {
  digest: string
  size: number
  data: Buffer
}

const blob = (data: Buffer): Blob => ({digest: `sha256:${sha256(data)}`, size: data.length, data})

/** The blobs and index of an OCI image layout for some images. */
function ociParts(images: FixtureImage[], opts: {nestedIndex?: boolean} = {}): {blobs: Blob[]; index: Buffer; manifests: Array<{config: Blob; layers: Blob[]; tag?: string}>} {
  const blobs = new Map<string, Blob>()
  const add = (b: Blob) => (blobs.set(b.digest, b), b)
  const descs: unknown[] = []
  const manifests: Array<{config: Blob; layers: Blob[]; tag?: string}> = []
  for (const img of images) {
    const diffIds = img.diffIds ?? img.layers.map((l) => `sha256:${sha256(uncompressed(l))}`)
    const config = add(blob(configFor(img, diffIds)))
    const layers = img.layers.map((l) => add(blob(l)))
    const man = add(
      blob(
        Buffer.from(
          JSON.stringify({
            schemaVersion: 2,
            mediaType: 'application/vnd.oci.image.manifest.v1+json',
            config: {mediaType: 'application/vnd.oci.image.config.v1+json', digest: config.digest, size: config.size},
            layers: layers.map((l) => ({
              mediaType: l.data[0] === 0x1f ? 'application/vnd.oci.image.layer.v1.tar+gzip' : 'application/vnd.oci.image.layer.v1.tar',
              digest: l.digest,
              size: l.size,
            })),
          }),
        ),
      ),
    )
    manifests.push({config, layers, tag: img.tag})
    let desc: Record<string, unknown> = {
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: man.digest,
      size: man.size,
      platform: opts.nestedIndex ? {architecture: 'amd64', os: 'linux'} : undefined,
      annotations: img.tag ? {'io.containerd.image.name': `docker.io/library/${img.tag}`, 'org.opencontainers.image.ref.name': img.tag.split(':')[1] ?? 'latest'} : undefined,
    }
    if (opts.nestedIndex) {
      // A multi-platform index (with a foreign arch that must be skipped) inside the top index.
      const other = add(blob(Buffer.from(JSON.stringify({schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: desc, layers: []}))))
      const idx = add(
        blob(
          Buffer.from(
            JSON.stringify({
              schemaVersion: 2,
              mediaType: 'application/vnd.oci.image.index.v1+json',
              manifests: [{mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: other.digest, size: other.size, platform: {architecture: 's390x', os: 'linux'}}, desc],
            }),
          ),
        ),
      )
      desc = {mediaType: 'application/vnd.oci.image.index.v1+json', digest: idx.digest, size: idx.size, annotations: (desc as {annotations?: unknown}).annotations}
    }
    descs.push(desc)
  }
  const index = Buffer.from(JSON.stringify({schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: descs}))
  return {blobs: [...blobs.values()], index, manifests}
}

/** docker save as Docker ≥ 25 writes it: an OCI layout plus manifest.json whose paths point into blobs/. */
export async function dockerSaveOci(images: FixtureImage[]): Promise<Buffer> {
  const {blobs, index, manifests} = ociParts(images)
  const members: TEntry[] = [{name: 'blobs/', type: 'directory'}, {name: 'blobs/sha256/', type: 'directory'}]
  for (const b of blobs) members.push({name: `blobs/sha256/${b.digest.slice(7)}`, content: b.data})
  members.push({name: 'index.json', content: index})
  members.push({
    name: 'manifest.json',
    content: JSON.stringify(
      manifests.map((m) => ({Config: `blobs/sha256/${m.config.digest.slice(7)}`, RepoTags: m.tag ? [m.tag] : null, Layers: m.layers.map((l) => `blobs/sha256/${l.digest.slice(7)}`)})),
    ),
  })
  members.push({name: 'oci-layout', content: '{"imageLayoutVersion": "1.0.0"}'}, {name: 'repositories', content: '{}'})
  return mkTar(members)
}

/** A pure OCI image layout (no manifest.json), as a tar. */
export async function ociTar(images: FixtureImage[], opts: {nestedIndex?: boolean} = {}): Promise<Buffer> {
  const {blobs, index} = ociParts(images, opts)
  const members: TEntry[] = [{name: 'oci-layout', content: '{"imageLayoutVersion": "1.0.0"}'}, {name: 'index.json', content: index}]
  for (const b of blobs) members.push({name: `blobs/sha256/${b.digest.slice(7)}`, content: b.data})
  return mkTar(members)
}

/** A pure OCI image layout written as a directory. */
export function ociDir(dir: string, images: FixtureImage[], opts: {nestedIndex?: boolean} = {}): void {
  const {blobs, index} = ociParts(images, opts)
  fs.mkdirSync(path.join(dir, 'blobs', 'sha256'), {recursive: true})
  fs.writeFileSync(path.join(dir, 'oci-layout'), '{"imageLayoutVersion": "1.0.0"}')
  fs.writeFileSync(path.join(dir, 'index.json'), index)
  for (const b of blobs) fs.writeFileSync(path.join(dir, 'blobs', 'sha256', b.digest.slice(7)), b.data)
}
