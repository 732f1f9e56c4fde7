import * as fs from 'node:fs'
import * as path from 'node:path'
import * as zlib from 'node:zlib'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {ListingRow} from '../../src/image/view'
import {rmrf, tmpDir, tmpDirs, velo, veloJson} from '../helpers'
import {dockerSaveLegacy, dockerSaveOci, mkTar, ociDir, ociTar, sha256, TEntry} from './fixtures'
import {imageRows, withDb} from './listing'

const mk = tmpDirs('velo-img-')

const row = (rows: ListingRow[], p: string) => rows.find((r) => r.path === p)
const paths = (rows: ListingRow[]) => rows.map((r) => r.path)

function put(dir: string, name: string, data: Buffer): string {
  const f = path.join(dir, name)
  fs.writeFileSync(f, data)
  return f
}

// A small base layer and an upper layer that deletes, replaces and makes a directory opaque.
const BASE: TEntry[] = [
  {name: 'bin/', type: 'directory'},
  {name: 'bin/tool', content: 'tool v1\n', mode: 0o4755},
  {name: 'bin/alias', type: 'link', linkname: 'bin/tool'},
  {name: 'bin/sh', type: 'symlink', linkname: '/bin/tool'},
  {name: 'etc/', type: 'directory'},
  {name: 'etc/keep', content: 'keep\n', uid: 1000, gid: 1001, mode: 0o600},
  {name: 'etc/gone', content: 'gone\n'},
  {name: 'etc/dir/', type: 'directory'},
  {name: 'etc/dir/nested', content: 'nested\n'},
  {name: 'opt/', type: 'directory', mode: 0o700},
  {name: 'opt/old1', content: 'old1\n'},
  {name: 'opt/sub/', type: 'directory'},
  {name: 'opt/sub/old2', content: 'old2\n'},
  {name: 'lib', type: 'symlink', linkname: 'usr/lib'},
  {name: 'dev/', type: 'directory'},
  {name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666},
  {name: 'dev/fifo', type: 'fifo'},
]
const UPPER: TEntry[] = [
  {name: 'etc/', type: 'directory'},
  {name: 'etc/.wh.gone', content: ''},
  {name: 'etc/.wh.dir', content: ''},
  {name: 'etc/keep', content: 'changed\n', uid: 1000, gid: 1001, mode: 0o640},
  {name: 'opt/', type: 'directory', mode: 0o750},
  {name: 'opt/.wh..wh..opq', content: ''},
  {name: 'opt/new', content: 'new\n'},
  {name: 'lib/', type: 'directory'},
  {name: 'lib/libx.so', content: 'ELF\n'},
]

function checkMerged(rows: ListingRow[]) {
  const p = paths(rows)
  expect(p).not.toContain('etc/gone')
  expect(p).not.toContain('etc/dir')
  expect(p).not.toContain('etc/dir/nested')
  expect(p).not.toContain('opt/old1')
  expect(p).not.toContain('opt/sub')
  expect(p).toContain('opt/new')
  expect(row(rows, 'opt')!.mode).toBe('750')
  expect(row(rows, 'etc/keep')).toMatchObject({type: 'file', mode: '640', uid: 1000, gid: 1001, size: 8})
  expect(row(rows, 'lib')).toMatchObject({type: 'dir'})
  expect(row(rows, 'lib/libx.so')).toMatchObject({type: 'file', size: 4})
  expect(row(rows, 'bin/tool')).toMatchObject({type: 'file', mode: '4755'})
  expect(row(rows, 'bin/alias')!.hash).toBe(row(rows, 'bin/tool')!.hash)
  expect(row(rows, 'bin/sh')).toMatchObject({type: 'symlink', target: '/bin/tool'})
  expect(row(rows, 'dev/null')).toMatchObject({type: 'char', rdev: String((1 << 8) | 3)})
  expect(row(rows, 'dev/fifo')).toMatchObject({type: 'fifo'})
}

describe('velo image import: formats', () => {
  it('imports a legacy docker save (manifest.json last) with whiteouts and opaque dirs kept in the layer', async () => {
    const home = mk()
    const base = await mkTar(BASE)
    const upper = await mkTar(UPPER)
    const f = put(mk(), 'img.tar', await dockerSaveLegacy([{tag: 'app:1', layers: [base, upper]}]))
    const r = veloJson(home, ['image', 'import', f])
    expect(r.format).toBe('docker-save')
    expect(r.images).toEqual([{name: 'app:1', layers: expect.any(Array), replaced: false}])
    expect(r.layers).toHaveLength(2)
    expect(r.layers[0].diffId).toBe(`sha256:${sha256(base)}`)
    expect(r.layers[1].whiteouts).toBe(2)
    checkMerged(imageRows(home, 'app:1'))
    withDb(home, (db) => {
      const img = db.requireImage('app:1')
      expect(img.config).toMatchObject({env: ['PATH=/usr/bin:/bin', 'HELLO=world'], cmd: ['/bin/sh'], workingDir: '/srv', user: '1000:1000'})
      // Whiteouts stay in the layer as entries; the opaque flag sits on the directory.
      const up = img.layers[1]
      expect(db.lookup(up, 'etc/gone')!.flags & 2).toBe(2)
      expect(db.lookup(up, 'opt')!.flags & 1).toBe(1)
      expect(db.getLayer(up)!.diffId).toBe(`sha256:${sha256(upper)}`)
    })
  })

  it('imports docker save with manifest.json first, the Docker ≥ 25 OCI form, an OCI tar and an OCI dir alike', async () => {
    const base = await mkTar(BASE)
    const upper = await mkTar(UPPER)
    const w = mk()
    const images = [{tag: 'app:1', layers: [base, upper]}]
    const legacy = veloJson(mk(), ['image', 'import', put(w, 'a.tar', await dockerSaveLegacy(images, {manifestFirst: true}))])
    const home = mk()
    const oci = veloJson(home, ['image', 'import', put(w, 'b.tar', await dockerSaveOci(images))])
    expect(oci.format).toBe('docker-save')
    expect(oci.images[0].layers).toEqual(legacy.images[0].layers)
    checkMerged(imageRows(home, 'app:1'))
    const home2 = mk()
    const t = veloJson(home2, ['image', 'import', put(w, 'c.tar', await ociTar(images)), '--name', 'viaoci'])
    expect(t.format).toBe('oci')
    expect(t.images[0].layers).toEqual(legacy.images[0].layers)
    const od = path.join(w, 'layout')
    ociDir(od, images)
    const d = veloJson(mk(), ['image', 'import', od])
    expect(d.format).toBe('oci')
    expect(d.images[0].name).toBe('app:1')
    expect(d.images[0].layers).toEqual(legacy.images[0].layers)
  })

  it('follows legacy docker save symlinks between identical layer dirs (<id>/layer.tar -> ../<other>/layer.tar)', async () => {
    const base = await mkTar(BASE)
    const members = await listTar(await dockerSaveLegacy([{tag: 'app:1', layers: [base, await mkTar(UPPER)]}]))
    const man = JSON.parse(members.get('manifest.json')!.toString())
    const [first, second] = man[0].Layers as string[]
    // A third layer path that is a symlink to the first layer's tar (how Docker < 25 wrote duplicate layers).
    const alias = `${'a'.repeat(64)}/layer.tar`
    man[0].Layers = [first, second, alias]
    const cfgName = man[0].Config as string
    const cfg = JSON.parse(members.get(cfgName)!.toString())
    cfg.rootfs.diff_ids.push(cfg.rootfs.diff_ids[0])
    const cfgBuf = Buffer.from(JSON.stringify(cfg))
    man[0].Config = `${sha256(cfgBuf)}.json`
    members.delete(cfgName)
    members.delete('manifest.json')
    const entries: TEntry[] = [...members.entries()].map(([name, content]) => ({name, content}))
    entries.push({name: `${'a'.repeat(64)}/`, type: 'directory'}, {name: alias, type: 'symlink', linkname: `../${first}`})
    entries.push({name: man[0].Config, content: cfgBuf}, {name: 'manifest.json', content: JSON.stringify(man)})
    const home = mk()
    const r = veloJson(home, ['image', 'import', put(mk(), 'sym.tar', await mkTar(entries))])
    expect(r.images[0].layers).toHaveLength(3)
    expect(r.images[0].layers[2]).toBe(r.images[0].layers[0])
    expect(r.layers).toHaveLength(2)
  })

  it('takes gzip layers, a nested multi-platform index, a gzipped archive and stdin', async () => {
    const base = zlib.gzipSync(await mkTar(BASE))
    const upper = zlib.gzipSync(await mkTar(UPPER))
    const w = mk()
    const od = path.join(w, 'layout')
    ociDir(od, [{tag: 'gz:1', layers: [base, upper]}], {nestedIndex: true})
    const home = mk()
    const r = veloJson(home, ['image', 'import', od])
    expect(r.images[0].name).toBe('gz:1')
    checkMerged(imageRows(home, 'gz:1'))
    // diffId is the sha256 of the uncompressed tar, not of the gzip blob.
    expect(r.layers[0].diffId).toBe(`sha256:${sha256(zlib.gunzipSync(base))}`)
    const gz = zlib.gzipSync(await ociTar([{tag: 'gz:1', layers: [base, upper]}], {nestedIndex: true}))
    const s = veloJson(home, ['image', 'import', '-', '--name', 'fromstdin'], {input: gz})
    expect(s.images[0].layers).toEqual(r.images[0].layers)
    expect(s.newObjects).toBe(0)
  })

  it('imports a plain rootfs tarball (PAX long names, UTF-8 names, owners, hard links, devices)', async () => {
    const long = `d/${'x'.repeat(120)}/${'y'.repeat(150)}`
    const tarb = await mkTar([
      {name: './', type: 'directory', mode: 0o755},
      {name: './usr/', type: 'directory'},
      {name: './usr/bin/', type: 'directory'},
      {name: './usr/bin/prog', content: 'prog\n', mode: 0o755, uid: 0, gid: 0},
      {name: './usr/bin/prog2', type: 'link', linkname: './usr/bin/prog'},
      {name: `./${long}`, content: 'long\n'},
      {name: './home/ünï/', type: 'directory', uid: 1000, gid: 1000, mode: 0o700},
      {name: './home/ünï/naïve.txt', content: 'n\n', uid: 1000, gid: 1000},
      {name: './big-uid', content: 'u\n', uid: 3000000, gid: 3000001, pax: {uid: '3000000', gid: '3000001'}},
      {name: './dev/sda', type: 'block-device', devmajor: 8, devminor: 0},
      {name: './usr/bin/ping', content: 'ping\n', mode: 0o755, pax: {'SCHILY.xattr.security.capability': '\u0001\u0000\u0000\u0002\u0000 ' + '\u0000'.repeat(14)}},
    ])
    const w = mk()
    const home = mk()
    const r = veloJson(home, ['image', 'import', put(w, 'root.tar', tarb)])
    expect(r.format).toBe('rootfs')
    expect(r.images[0].name).toBe('root')
    // Extended attributes are kept (test/image/xattrs.test.ts has the details); nothing to warn about here.
    expect(r.warnings).toEqual([])
    const rows = imageRows(home, 'root')
    expect(row(rows, long)).toMatchObject({type: 'file', size: 5})
    expect(row(rows, 'home/ünï/naïve.txt')).toMatchObject({uid: 1000, gid: 1000})
    expect(row(rows, 'home/ünï')).toMatchObject({mode: '700', uid: 1000})
    expect(row(rows, 'big-uid')).toMatchObject({uid: 3000000, gid: 3000001})
    expect(row(rows, 'usr/bin/ping')!.xattrs).toBe('security.capability=0100000200200000000000000000000000000000')
    expect(row(rows, 'usr/bin/prog2')!.hash).toBe(row(rows, 'usr/bin/prog')!.hash)
    expect(row(rows, 'dev/sda')).toMatchObject({type: 'block', rdev: String(8 << 8)})
    withDb(home, (db) => {
      const l = db.requireImage('root').layers[0]
      expect(db.lookup(l, 'usr/bin/prog')!.nlink).toBe(2)
      expect(db.lookup(l, 'usr/bin/prog')!.ino).toBe(db.lookup(l, 'usr/bin/prog2')!.ino)
    })
    // A rootfs tar from stdin needs a name.
    const e = velo(home, ['image', 'import', '-'], {input: tarb})
    expect(e.status).toBe(2)
    expect(e.stderr).toMatch(/needs --name/)
  })

  it('imports every image of a multi-image docker save by its tags; --name then is a usage error', async () => {
    const base = await mkTar([{name: 'base', content: 'base'}])
    const f = put(mk(), 'multi.tar', await dockerSaveLegacy([
      {tag: 'org/one:1', layers: [base, await mkTar([{name: 'one', content: '1'}])]},
      {tag: 'two:latest', layers: [base]},
    ]))
    const home = mk()
    const r = veloJson(home, ['image', 'import', f])
    expect(r.images.map((i: {name: string}) => i.name)).toEqual(['org_one:1', 'two:latest'])
    expect(r.images[1].layers[0]).toBe(r.images[0].layers[0])
    const e = velo(home, ['image', 'import', f, '--name', 'x'])
    expect(e.status).toBe(2)
    expect(e.stderr).toMatch(/USAGE.*holds 2 images/)
  })

  it('stores a second image that shares base layers once: same layer ids, only new content written', async () => {
    const base = await mkTar([
      {name: 'big', content: Buffer.alloc(300_000, 7)},
      {name: 'etc/', type: 'directory'},
      {name: 'etc/os', content: 'base\n'},
    ])
    const one = await mkTar([{name: 'app1', content: 'one\n'}])
    const two = await mkTar([{name: 'app2', content: 'second app\n'}])
    const w = mk()
    const home = mk()
    const a = veloJson(home, ['image', 'import', put(w, 'a.tar', await dockerSaveLegacy([{tag: 'a:1', layers: [base, one]}]))])
    const b = veloJson(home, ['image', 'import', put(w, 'b.tar', await dockerSaveLegacy([{tag: 'b:1', layers: [base, two]}]))])
    expect(b.images[0].layers[0]).toBe(a.images[0].layers[0])
    expect(b.layers[0].existed).toBe(true)
    expect(b.newBytes).toBe(11)
    expect(b.newObjects).toBe(1)
  })
})

describe('velo image import: hostile input', () => {
  // One store for every case: an image imported first must survive each refused import untouched.
  let home = ''
  let w = ''
  let jsonChecked = false
  beforeAll(async () => {
    home = tmpDir('velo-img-hostile-')
    w = tmpDir('velo-img-hostile-w-')
    veloJson(home, ['image', 'import', put(w, 'ok.tar', await dockerSaveLegacy([{tag: 'ok:1', layers: [await mkTar([{name: 'f', content: 'fine\n'}])]}]))])
  })
  afterAll(() => [home, w].forEach(rmrf))

  /** Import must fail with `code`, name the entry in the message, and leave no image or layer behind. */
  async function refuse(archive: Buffer, re: RegExp, opts: {code?: string; exit?: number; args?: string[]} = {}) {
    const before = withDb(home, (db) => ({images: db.listImages().map((i) => i.name), layers: db.listLayers().length}))
    const f = put(w, 'bad.tar', archive)
    const r = velo(home, ['image', 'import', f, '--name', 'bad', ...(opts.args ?? [])])
    expect(r.status, r.stderr).toBe(opts.exit ?? 1)
    expect(r.stderr).toMatch(new RegExp(`error \\[${opts.code ?? 'BAD_INPUT'}\\]`))
    expect(r.stderr).toMatch(re)
    withDb(home, (db) => {
      expect(db.listImages().map((i) => i.name)).toEqual(before.images)
      expect(db.listLayers().length).toBe(before.layers)
    })
    expect(imageRows(home, 'ok:1').map((x) => x.path)).toEqual(['.', 'f'])
    expect(fs.readdirSync(path.join(home, 'tmp'))).toEqual([])
    if (!jsonChecked) {
      jsonChecked = true
      const j = velo(home, ['image', 'import', f, '--name', 'bad', '--json', ...(opts.args ?? [])])
      expect(j.status).toBe(opts.exit ?? 1)
      expect(JSON.parse(j.stdout).error.code).toBe(opts.code ?? 'BAD_INPUT')
    }
    return r
  }
  const inImage = async (entries: TEntry[]) => dockerSaveLegacy([{tag: 'x:1', layers: [await mkTar([{name: 'ok', content: 'ok'}]), await mkTar(entries)]}])

  it("refuses '..' entries", async () => {
    await refuse(await mkTar([{name: 'a', content: 'a'}, {name: '../evil', content: 'x'}]), /entry "\.\.\/evil".*'\.\.'/)
    await refuse(await inImage([{name: 'a/../../evil', content: 'x'}]), /layer [0-9a-f]{64}\/layer\.tar: entry "a\/\.\.\/\.\.\/evil"/)
  })

  it('refuses absolute paths', async () => {
    await refuse(await inImage([{name: '/etc/evil', content: 'x'}]), /entry "\/etc\/evil": absolute path/)
  })

  it('refuses an entry written through a symlink of the same layer', async () => {
    await refuse(
      await inImage([
        {name: 'lnk', type: 'symlink', linkname: '/etc'},
        {name: 'lnk/passwd', content: 'root::0:0::/:/bin/sh\n'},
      ]),
      /entry "lnk\/passwd": parent "lnk" is a symlink/,
    )
  })

  it('refuses relative symlinks that climb above the layer root (as Docker does)', async () => {
    await refuse(await inImage([{name: 'a/b/l', type: 'symlink', linkname: '../../../etc/shadow'}]), /entry "a\/b\/l": symlink target "\.\.\/\.\.\/\.\.\/etc\/shadow" climbs above the layer root/)
  })

  it('refuses hard links that point outside the layer', async () => {
    await refuse(await inImage([{name: 'shadow', type: 'link', linkname: '../../../etc/shadow'}]), /hard link "shadow" → "\.\.\/\.\.\/\.\.\/etc\/shadow".*'\.\.'/)
    await refuse(await inImage([{name: 'shadow', type: 'link', linkname: '/etc/shadow'}]), /hard link "shadow".*absolute path/)
    // "ok" exists in the layer below, not in this one.
    await refuse(await inImage([{name: 'x', type: 'link', linkname: 'ok'}]), /entry "x": hard link target "ok" is not in this layer/)
  })

  it("refuses whiteouts aimed at '..' or '.'", async () => {
    await refuse(await inImage([{name: 'etc/.wh...', content: ''}]), /entry "etc\/\.wh\.\.\.": whiteout aimed at "\.\."/)
    await refuse(await inImage([{name: '.wh..', content: ''}]), /entry "\.wh\.\.": whiteout aimed at "\."/)
  })

  it('refuses duplicate entries', async () => {
    await refuse(await inImage([{name: 'f', content: 'one'}, {name: 'f', content: 'two'}]), /entry "f": duplicate entry/)
    await refuse(await inImage([{name: 'd/', type: 'directory'}, {name: 'd/', type: 'directory'}]), /entry "d\/": duplicate entry/)
    await refuse(await inImage([{name: 'f', content: 'one'}, {name: '.wh.f', content: ''}]), /entry "\.wh\.f": both "f" and its whiteout/)
  })

  it('refuses symlinked blobs in an OCI layout directory', async () => {
    const od = path.join(w, 'layout-sym')
    ociDir(od, [{tag: 'x:1', layers: [await mkTar([{name: 'a', content: 'a'}])]}])
    const idx = JSON.parse(fs.readFileSync(path.join(od, 'index.json'), 'utf8'))
    const man = path.join(od, 'blobs', idx.manifests[0].digest.replace(':', '/'))
    const layer = JSON.parse(fs.readFileSync(man, 'utf8')).layers[0].digest.replace('sha256:', '')
    fs.renameSync(path.join(od, 'blobs', 'sha256', layer), path.join(w, 'outside-layer'))
    fs.symlinkSync(path.join(w, 'outside-layer'), path.join(od, 'blobs', 'sha256', layer))
    const r = velo(home, ['image', 'import', od])
    expect(r.status).toBe(1)
    expect(r.stderr).toMatch(new RegExp(`blobs/sha256/${layer}" is not a regular file in the layout \\(symlinks are refused\\)`))
  })

  it('refuses truncated and corrupt tars', async () => {
    const good = await mkTar([{name: 'a', content: Buffer.alloc(5000, 1)}, {name: 'b', content: 'b'}])
    await refuse(good.subarray(0, 3000), /truncated/)
    await refuse(good.subarray(0, 512 + 5120), /truncated \(no end-of-archive block/) // cut exactly at an entry boundary
    const corrupt = Buffer.from(good)
    corrupt[512 + 5120 + 10] ^= 0xff // inside the second header: checksum fails
    await refuse(corrupt, /corrupt/)
    // The same inside a docker-save layer names the layer.
    const img = await dockerSaveLegacy([{tag: 'x:1', layers: [good.subarray(0, 3000)]}])
    await refuse(img, /layer [0-9a-f]{64}\/layer\.tar: the tar is truncated/)
  })

  it('refuses gzip garbage, as the archive and as a layer', async () => {
    const garbage = Buffer.concat([Buffer.from([0x1f, 0x8b, 8, 0]), Buffer.alloc(4000, 0x55)])
    await refuse(garbage, /gzip data is corrupt/)
    await refuse(await dockerSaveLegacy([{tag: 'x:1', layers: [garbage], diffIds: [`sha256:${'1'.repeat(64)}`]}]), /layer [0-9a-f]{64}\/layer\.tar: gzip data is corrupt/)
  })

  it('refuses manifests that name missing blobs', async () => {
    const l = await mkTar([{name: 'a', content: 'a'}])
    const ok = await dockerSaveLegacy([{tag: 'x:1', layers: [l]}])
    // Rewrite manifest.json to name a layer that is not there.
    const members = await listTar(ok)
    const man = JSON.parse(members.get('manifest.json')!.toString())
    man[0].Layers.push('0000000000000000000000000000000000000000000000000000000000000000/layer.tar')
    await refuse(await rebuild(members, {'manifest.json': JSON.stringify(man)}), /"0{64}\/layer\.tar" is not in the archive/)
    // OCI: an index naming a manifest blob that is missing.
    const oci = await listTar(await ociTar([{tag: 'x:1', layers: [l]}]))
    const idx = JSON.parse(oci.get('index.json')!.toString())
    idx.manifests[0].digest = `sha256:${'ab'.repeat(32)}`
    await refuse(await rebuild(oci, {'index.json': JSON.stringify(idx)}), /"blobs\/sha256\/(ab){32}" is not in the archive/)
  })

  it('refuses a layer whose digest does not match (config diff_ids, OCI blob name)', async () => {
    const l = await mkTar([{name: 'a', content: 'a'}])
    await refuse(await dockerSaveLegacy([{tag: 'x:1', layers: [l], diffIds: [`sha256:${'0'.repeat(64)}`]}]), /layer [0-9a-f]{64}\/layer\.tar: digest mismatch/, {code: 'INTEGRITY', exit: 3})
    // OCI: a layer blob whose bytes were swapped for another valid tar.
    const oci = await listTar(await ociTar([{tag: 'x:1', layers: [l]}]))
    const layerName = [...oci.keys()].find((k) => oci.get(k)!.equals(l))!
    await refuse(await rebuild(oci, {[layerName]: await mkTar([{name: 'a', content: 'evil'}])}), new RegExp(`${layerName}: digest mismatch`), {code: 'INTEGRITY', exit: 3})
  })
})

async function listTar(b: Buffer): Promise<Map<string, Buffer>> {
  const tar = await import('tar-stream')
  const ex = tar.extract()
  const out = new Map<string, Buffer>()
  const done = (async () => {
    for await (const e of ex as AsyncIterable<any>) {
      const chunks: Buffer[] = []
      for await (const c of e) chunks.push(c)
      if (e.header.type === 'file') out.set(e.header.name, Buffer.concat(chunks))
    }
  })()
  ex.end(b)
  await done
  return out
}

async function rebuild(members: Map<string, Buffer>, replace: Record<string, string | Buffer>): Promise<Buffer> {
  return mkTar([...members.entries()].map(([name, content]) => ({name, content: replace[name] !== undefined ? Buffer.from(replace[name]) : content})))
}
