import * as fs from 'node:fs'
import * as path from 'node:path'
import {spawnSync} from 'node:child_process'
import {describe, expect, it} from 'vitest'
import {LayerBuilder} from '../../src/manifest/builder'
import {ManifestDb} from '../../src/manifest/db'
import {decodeEntry, encodeEntry, Entry, ENTRY_SIZE} from '../../src/manifest/entry'
import {decodeXattrs, encodeXattrs} from '../../src/manifest/xattrs'
import {objectName, objectOf, parseObjectName, Store} from '../../src/store/cas'
import {readXattrs, readXattrTree} from '../../src/store/xattr-io'
import {sh, tmpDirs, velo, veloJson, VELO} from '../helpers'

/** Set xattrs with python3 (the host has no setfattr): [path, name, value][] */
function setX(list: Array<[string, string, string]>): void {
  const prog = 'import os,sys,json\nfor p,n,v in json.loads(sys.argv[1]): os.setxattr(p, n, v.encode(), follow_symlinks=False)'
  const r = sh(`python3 -c '${prog}' '${JSON.stringify(list)}'`)
  if (r.status !== 0) throw new Error(r.stderr)
}

const x = (name: string, value: string | Buffer) => ({name: Buffer.from(name), value: Buffer.from(value)})

const entry = (over: Partial<Entry> = {}): Entry => ({
  hash: Buffer.alloc(32, 1),
  size: 4n,
  mtimeSec: 1n,
  mtimeNsec: 2,
  rdev: 0n,
  mode: 0o100644,
  uid: 0,
  gid: 0,
  ino: 2,
  nlink: 1,
  flags: 0,
  ...over,
})

describe('manifest format with xattrs', () => {
  it('entries without xattrs stay 88-byte version 1; with xattrs they are version 2 and round-trip', () => {
    const v1 = encodeEntry(entry())
    expect(v1.length).toBe(ENTRY_SIZE)
    expect(v1.readUInt32LE(84)).toBe(1)
    const link = encodeEntry(entry({mode: 0o120777, target: Buffer.from('t\xff', 'latin1'), size: 2n}))
    expect(link.readUInt32LE(84)).toBe(1)
    expect(decodeEntry(link).target!.toString('latin1')).toBe('t\xff')
    const xs = [x('user.b', Buffer.from([0, 255])), x('security.capability', 'c'), x('user.a', '')]
    const v2 = encodeEntry(entry({mode: 0o120777, target: Buffer.from('tgt'), size: 3n, xattrs: xs}))
    expect(v2.readUInt32LE(84)).toBe(2)
    const d = decodeEntry(v2)
    expect(d.target!.toString()).toBe('tgt')
    expect(d.xattrs!.map((a) => a.name.toString())).toEqual(['security.capability', 'user.a', 'user.b']) // sorted
    expect(d.xattrs![2].value).toEqual(Buffer.from([0, 255]))
    expect(d.xattrDigest).toMatch(/^[0-9a-f]{32}$/)
    // the same set in another order is the same bytes (layer ids and object names depend on it)
    expect(encodeEntry(entry({mode: 0o120777, target: Buffer.from('tgt'), size: 3n, xattrs: [...xs].reverse()}))).toEqual(v2)
  })

  it('refuses a tampered block or digest', () => {
    const v2 = encodeEntry(entry({xattrs: [x('user.a', 'v')]}))
    const bad = Buffer.from(v2)
    bad[bad.length - 1] ^= 1 // value byte: digest no longer matches
    expect(() => decodeEntry(bad)).toThrow(/digest/)
    const short = v2.subarray(0, v2.length - 1)
    expect(() => decodeEntry(short)).toThrow(/lengths/)
    expect(() => decodeXattrs(Buffer.from('0200000001000000000000007561', 'hex'))).toThrow(/malformed/)
  })

  it('layers without xattrs keep the ids the previous format gave them', () => {
    // Computed with the code before xattrs existed (same tree): an old store's layers stay valid and shared.
    const b = new LayerBuilder({mode: 0o40755, uid: 0, gid: 0, mtimeSec: 1700000000n, mtimeNsec: 5})
    const d = b.put(b.root, Buffer.from('etc'), {mode: 0o40755, uid: 0, gid: 0, mtimeSec: 1700000001n, mtimeNsec: 0}, 'x')
    const f = b.put(d, Buffer.from('passwd'), {mode: 0o100644, uid: 0, gid: 0, mtimeSec: 1700000002n, mtimeNsec: 7, size: 5n, hash: Buffer.alloc(32, 0xab)}, 'x')
    b.link(b.root, Buffer.from('hl'), f, 'x')
    b.put(b.root, Buffer.from('sym'), {mode: 0o120777, uid: 1, gid: 2, mtimeSec: 3n, mtimeNsec: 0, target: Buffer.from('etc/passwd')}, 'x')
    expect(b.finish('t').info.id).toBe('27b77b61d790c08fa47d8caccc082a0b0195c61672f072fa55f805a4dd39a9ff')
    // ... and xattrs change the id
    f.meta.xattrs = [x('user.a', 'v')]
    expect(b.finish('t').info.id).not.toBe('27b77b61d790c08fa47d8caccc082a0b0195c61672f072fa55f805a4dd39a9ff')
  })

  it('object names: old names parse as before; xattrs add a digest suffix', () => {
    const old = `${'ab'.repeat(32)}_5_4755_0_0`
    expect(parseObjectName(old)).toEqual({hash: 'ab'.repeat(32), size: 5, mode: 0o4755, uid: 0, gid: 0})
    const e = decodeEntry(encodeEntry(entry({xattrs: [x('user.a', 'v')]})))
    const name = objectName(objectOf(e))
    expect(name).toMatch(/^(01){32}_4_644_0_0_x[0-9a-f]{32}$/)
    expect(parseObjectName(name)).toEqual(objectOf(e))
  })
})

describe('velo ingest of a directory with xattrs', () => {
  const mk = tmpDirs('velo-xi-')

  function tree(): string {
    const src = path.join(mk(), 'src')
    fs.mkdirSync(path.join(src, 'd/e'), {recursive: true})
    for (const f of ['a', 'b', 'c']) fs.writeFileSync(path.join(src, f), 'same\n')
    fs.writeFileSync(path.join(src, 'empty'), '')
    fs.symlinkSync('a', path.join(src, 'l'))
    setX([
      [path.join(src, 'a'), 'user.one', '1'],
      [path.join(src, 'c'), 'user.one', '2'],
      [path.join(src, 'empty'), 'user.e', 'e'],
      [path.join(src, 'd'), 'user.dir', 'd'],
      [path.join(src, 'd/e'), 'trusted.deep', 'x'],
      [path.join(src, 'l'), 'trusted.link', 'l'],
      [src, 'user.root', 'r'],
    ])
    return src
  }

  it('round-trips through checkout; equal bytes with different xattrs never share an object', () => {
    const home = mk()
    const src = tree()
    const r = veloJson(home, ['ingest', src, '--name', 'xi'])
    expect(r.warnings).toEqual([])
    expect(r.newObjects).toBe(3) // a, b, c: one content, three variants
    const out = path.join(mk(), 'out')
    veloJson(home, ['image', 'checkout', 'xi', out])
    const fmt = (m: Map<string, Array<{name: Buffer; value: Buffer}>>) =>
      [...m].map(([p, xs]) => `${p} ${xs.map((a) => `${a.name}=${a.value}`).join(',')}`).sort()
    expect(fmt(readXattrTree(out))).toEqual(fmt(readXattrTree(src)))
    expect(fmt(readXattrTree(out))).toContain('. user.root=r')
    const db = ManifestDb.open(home)
    let objs: string[]
    try {
      const l = db.requireImage('xi').layers[0]
      objs = ['a', 'b', 'c'].map((p) => new Store(home).path(objectOf(db.lookup(l, p)!)))
    } finally {
      db.close()
    }
    expect(new Set(objs.map((o) => fs.statSync(o).ino)).size).toBe(3)
    const onDisk = readXattrs(objs)
    expect(objs.map((o) => (onDisk.get(o) ?? []).map((a) => `${a.name}=${a.value}`).join(','))).toEqual(['user.one=1', '', 'user.one=2'])
    // C reads the v2 entries too (velo-ls prints every entry of the layer)
    const ls = spawnSync(path.join(path.dirname(VELO), '..', 'native', 'build', 'velo-ls'), [home, r.layer])
    expect(ls.status, ls.stderr.toString()).toBe(0)
    expect(ls.stdout.toString()).toMatch(/^\.\/l\tl\t777\t.*\ta$/m) // a v2 symlink entry: target intact
  })

  it('fsck finds an object whose xattrs no longer match its name', () => {
    const home = mk()
    const src = tree()
    veloJson(home, ['ingest', src, '--name', 'xi'])
    expect(veloJson(home, ['fsck']).problems).toEqual([])
    const db = ManifestDb.open(home)
    let obj: string
    try {
      obj = new Store(home).path(objectOf(db.lookup(db.requireImage('xi').layers[0], 'a')!))
    } finally {
      db.close()
    }
    expect(sh(`python3 -c 'import os,sys; os.removexattr(sys.argv[1], "user.one")' ${obj}`).status).toBe(0)
    const r = velo(home, ['fsck', '--json'])
    expect(r.status).toBe(3)
    const probs = JSON.parse(r.stdout).problems ?? JSON.parse(r.stdout).error?.details?.problems
    expect(JSON.stringify(probs)).toMatch(/bad-object.*xattrs none, name says [0-9a-f]{32}.*\/a/)
  })

  it('ingesting the same tree again stores nothing new; the tar of it imports to the same layer', () => {
    const home = mk()
    const src = tree()
    const a = veloJson(home, ['ingest', src, '--name', 'xi'])
    const b = veloJson(home, ['ingest', src, '--name', 'xi2'])
    expect(b.layer).toBe(a.layer)
    expect(b.newObjects).toBe(0)
    const t = path.join(mk(), 'x.tar')
    const r = sh(`tar --xattrs --xattrs-include='*' -C ${src} -cf ${t} .`)
    expect(r.status, r.stderr).toBe(0)
    expect(veloJson(home, ['image', 'import', t, '--name', 'xt']).images[0].layers).toEqual([a.layer])
  })

  it("refuses overlayfs' own attributes in the input; ignores velo's own placeholder marks", () => {
    const home = mk()
    const src = tree()
    setX([
      [path.join(src, 'b'), 'user.velo', 'a placeholder mark'],
      [path.join(src, 'c'), 'user.velo.image', 'a projection stamp'],
    ])
    const ok = veloJson(home, ['ingest', src, '--name', 'marks'])
    expect(sh(`python3 -c 'import os,sys; os.removexattr(sys.argv[1], "user.velo"); os.removexattr(sys.argv[2], "user.velo.image")' ${path.join(src, 'b')} ${path.join(src, 'c')}`).status).toBe(0)
    const again = veloJson(home, ['ingest', src, '--name', 'plain'])
    expect(ok.layer).toBe(again.layer) // the mark is not part of the layer
    setX([[path.join(src, 'd'), 'trusted.overlay.opaque', 'y']])
    const r = velo(home, ['ingest', src, '--name', 'forged'])
    expect(r.status).toBe(1)
    expect(r.stderr).toMatch(/BAD_INPUT.*entry .*\/src\/d: carries overlayfs' own attribute "trusted\.overlay\.opaque"/)
    const db = ManifestDb.open(home)
    try {
      expect(db.getImage('forged')).toBeUndefined()
    } finally {
      db.close()
    }
  })
})
