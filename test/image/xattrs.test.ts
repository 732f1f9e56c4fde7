import * as fs from 'node:fs'
import * as path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {ListingRow} from '../../src/image/view'
import {objectOf, Store} from '../../src/store/cas'
import {readXattrs} from '../../src/store/xattr-io'
import {readState} from '../../src/sandbox/state'
import {rmrf, sh, tmpDir, velo, veloJson, VELO as VELO_BIN} from '../helpers'
import {SandboxHome, uniq} from '../sandbox/fixture'
import {mkTar} from './fixtures'
import {fmtRows, imageRows, listDir, listTarStream, withDb} from './listing'

/**
 * Extended attributes end to end: a tree whose xattrs are set with os.setxattr and archived by GNU tar
 * --xattrs (PAX SCHILY.xattr, binary values) → velo image import → manifest, CAS objects, checkout, a
 * sandbox's root, commit and export all show the same attributes; overlayfs' own attributes are refused.
 */

const CAP_NET_RAW = '0100000200200000000000000000000000000000' // setcap cap_net_raw+ep (VFS_CAP_REVISION_2)

const ok = (r: {status: number; stdout: string; stderr: string}, what: string) => {
  if (r.status !== 0) throw new Error(`${what} failed (${r.status}): ${r.stderr}`)
  return r.stdout
}

/** Set xattrs with python3 (the host has no setfattr): [path, name, hex value][] */
function setX(list: Array<[string, string, string]>): void {
  const prog = 'import os,sys,json\nfor p,n,v in json.loads(sys.argv[1]): os.setxattr(p, n, bytes.fromhex(v), follow_symlinks=False)'
  ok(sh(`python3 -c '${prog}' '${JSON.stringify(list)}'`), 'setxattr')
}

const rowsOf = imageRows
const under = (rows: ListingRow[], prefix: string) => rows.filter((r) => r.path === prefix || r.path.startsWith(prefix + '/'))
const hex = (s: string) => Buffer.from(s).toString('hex')

const sb = new SandboxHome()
const home = sb.home
let w: string
let src: string

beforeAll(() => {
  w = tmpDir('velo-xattr-')
  src = path.join(w, 'src')
  const r = (p: string) => path.join(src, p)
  for (const d of ['bin', 'etc', 'data/dir', 'usr/bin', 'tmp']) fs.mkdirSync(r(d), {recursive: true})
  fs.copyFileSync('/bin/busybox', r('bin/busybox'))
  fs.chmodSync(r('bin/busybox'), 0o755)
  for (const a of ['sh', 'cat', 'sleep', 'chmod', 'ls']) fs.symlinkSync('busybox', r(`bin/${a}`))
  fs.writeFileSync(r('etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n')
  fs.writeFileSync(r('etc/group'), 'root:x:0:\n')
  fs.chmodSync(r('tmp'), 0o1777)
  // a, b, c: the same bytes; a and c carry different xattrs, b none → three objects
  for (const f of ['a', 'b', 'c']) fs.writeFileSync(r(`data/${f}`), 'same bytes\n')
  fs.writeFileSync(r('data/empty'), '')
  fs.writeFileSync(r('data/hard1'), 'hard\n')
  fs.linkSync(r('data/hard1'), r('data/hard2'))
  fs.symlinkSync('a', r('data/link'))
  fs.writeFileSync(r('usr/bin/ping'), 'not really ping\n')
  fs.chmodSync(r('usr/bin/ping'), 0o755)
  sh(`mkfifo ${r('data/fifo')}`)
  setX([
    [r('data/a'), 'user.color', hex('red')],
    [r('data/a'), 'user.bin', '00ff01'],
    [r('data/c'), 'user.color', hex('blue')],
    [r('data/dir'), 'user.dir', hex('1')],
    [r('data/empty'), 'user.e', ''],
    [r('data/hard1'), 'user.h', hex('h')],
    [r('data/link'), 'trusted.sym', hex('v')],
    [r('data/fifo'), 'trusted.f', hex('f')],
    [r('usr/bin/ping'), 'security.capability', CAP_NET_RAW],
    [r('data'), 'trusted.t', hex('t')],
  ])
  ok(sh(`tar --xattrs --xattrs-include='*' -C ${src} -cf ${w}/x.tar .`), 'tar')
  veloJson(home, ['image', 'import', `${w}/x.tar`, '--name', 'xi'])
})

afterAll(() => {
  // (no tenants/ dir when a filtered run created no sandbox)
  if (fs.existsSync(path.join(home, 'tenants'))) expect(sb.cleanup()).toEqual({mounts: [], cgroups: [], tenants: []})
  else rmrf(home)
  rmrf(w)
})

describe('velo image import of a layer with xattrs', () => {
  it('keeps every attribute GNU tar wrote, on the right entries, with binary values intact', () => {
    const rows = rowsOf(home, 'xi')
    const disk = listDir(src)
    expect(fmtRows(rows)).toEqual(fmtRows(disk))
    const x = (p: string) => rows.find((r) => r.path === p)!.xattrs
    expect(x('data/a')).toBe(`user.bin=00ff01,user.color=${hex('red')}`)
    expect(x('data/b')).toBe('')
    expect(x('usr/bin/ping')).toBe(`security.capability=${CAP_NET_RAW}`)
    expect(x('data/link')).toBe(`trusted.sym=${hex('v')}`)
    expect(x('data/hard2')).toBe(`user.h=${hex('h')}`)
  })

  it('equal bytes with different xattrs are different objects; objects carry exactly their xattrs', () => {
    const store = new Store(home)
    const objs = withDb(home, (db) => {
      const l = db.requireImage('xi').layers[0]
      return Object.fromEntries(['data/a', 'data/b', 'data/c', 'data/hard1', 'usr/bin/ping'].map((p) => [p, store.path(objectOf(db.lookup(l, p)!))]))
    })
    expect(new Set([objs['data/a'], objs['data/b'], objs['data/c']]).size).toBe(3)
    expect(fs.statSync(objs['data/a']).ino).not.toBe(fs.statSync(objs['data/b']).ino)
    expect(path.basename(objs['data/b'])).toMatch(/^[0-9a-f]{64}_11_644_0_0$/) // no xattrs: the old name
    expect(path.basename(objs['data/a'])).toMatch(/^[0-9a-f]{64}_11_644_0_0_x[0-9a-f]{32}$/)
    const onDisk = readXattrs(Object.values(objs))
    const fmt = (p: string) => (onDisk.get(p) ?? []).map((a) => `${a.name}=${a.value.toString('hex')}`).join(',')
    expect(fmt(objs['data/a'])).toBe(`user.bin=00ff01,user.color=${hex('red')}`)
    expect(fmt(objs['data/b'])).toBe('')
    expect(fmt(objs['data/c'])).toBe(`user.color=${hex('blue')}`)
    expect(fmt(objs['usr/bin/ping'])).toBe(`security.capability=${CAP_NET_RAW}`)
    // and fsck agrees that every object's inode matches its name
    expect(veloJson(home, ['fsck']).problems).toEqual([])
  })

  it('a checkout restores them', () => {
    const co = path.join(w, 'co')
    veloJson(home, ['image', 'checkout', 'xi', co])
    expect(fmtRows(listDir(co)).slice(1)).toEqual(fmtRows(rowsOf(home, 'xi')).slice(1))
    rmrf(co)
  })

  it('a sandbox sees them (read from the host through the tenant root); commit keeps them, minus overlay’s own', () => {
    const T = uniq('xattr')
    sb.create(T, ['--image', 'xi'])
    const pid = readState(home, T).pid!
    const inside = listDir(`/proc/${pid}/root/data`)
    // read from the host, the tenant's files have its host ids (its user namespace): root's are its range's first
    const {uid, gid} = sb.json(['sandbox', 'inspect', T]).hostIds
    const asTenant = (rows: string[]) => rows.map((r) => r.replace(` ${uid[0].hostID}:${gid[0].hostID} `, ' 0:0 '))
    expect(asTenant(fmtRows(inside).slice(1))).toEqual(fmtRows(listDir(path.join(src, 'data'))).slice(1))
    expect(inside.find((r) => r.path === 'a')!.xattrs).toBe(`user.bin=00ff01,user.color=${hex('red')}`)
    expect(ok(sb.sh(T, 'cat /data/a && chmod 600 /data/a && chmod 700 /data/dir'), 'exec')).toBe('same bytes\n')
    ok(sb.velo(['sandbox', 'stop', T]), 'stop')
    // what setfattr in the sandbox would leave in the upper dir
    const upper = path.join(home, 'tenants', T, 'upper')
    fs.writeFileSync(path.join(upper, 'data/new'), 'new\n')
    setX([[path.join(upper, 'data/new'), 'user.added', hex('yes')]])
    const c = veloJson(home, ['sandbox', 'commit', T, 'xi2'])
    expect(c.warnings).toEqual([])
    const rows = rowsOf(home, 'xi2')
    const x = (p: string) => rows.find((r) => r.path === p)!.xattrs
    expect(x('data/a')).toBe(`user.bin=00ff01,user.color=${hex('red')}`) // copied up with its xattrs
    expect(rows.find((r) => r.path === 'data/a')!.mode).toBe('600')
    expect(x('data/dir')).toBe(`user.dir=${hex('1')}`)
    expect(x('data/new')).toBe(`user.added=${hex('yes')}`)
    // the committed layer holds no overlayfs attribute (origin, impure, opaque...)
    const top = withDb(home, (db) => [...db.layerEntries(db.requireImage('xi2').layers[1])])
    for (const e of top) for (const a of e.entry.xattrs ?? []) expect(a.name.toString()).not.toMatch(/overlay\./)
    ok(sb.velo(['sandbox', 'rm', '-f', T]), 'rm')
  })

  it('a sandbox on the FUSE backend sees them too (velo-fuse serves them as the overlay lower)', () => {
    const T = uniq('xattr-fuse')
    sb.create(T, ['--image', 'xi', '--backend', 'fuse', '--userns', 'host'])
    try {
      const inside = listDir(`/proc/${readState(home, T).pid}/root/data`)
      expect(fmtRows(inside).slice(1)).toEqual(fmtRows(listDir(path.join(src, 'data'))).slice(1))
    } finally {
      ok(sb.velo(['sandbox', 'rm', '-f', T]), 'rm')
    }
  })

  it.each([[[]], [['--phantom']]])('velo run %j (the shim projection) shows them', (extra) => {
    const cwd = path.join(w, `run${extra.length}`)
    fs.mkdirSync(cwd)
    const prog = 'import os\nfor p in ["img/data/a","img/data/b","img/data/dir","img/usr/bin/ping"]: print(p, open(p).read() if os.path.isfile(p) else "-", sorted((n, os.getxattr(p, n).hex()) for n in os.listxattr(p)))'
    // the phantom skeleton in the test's own dir, not in ~/.cache (removed with it)
    const r = velo(home, ['run', '--image', 'xi', '--at', './img', ...extra, '--', 'python3', '-c', prog], {cwd, env: {VELO_CACHE_HOME: path.join(w, 'cache')}})
    expect(r.status, r.stderr).toBe(0)
    expect(r.stdout).toBe(
      `img/data/a same bytes\n [('user.bin', '00ff01'), ('user.color', '${hex('red')}')]\n` +
        `img/data/b same bytes\n []\n` +
        `img/data/dir - [('user.dir', '${hex('1')}')]\n` +
        `img/usr/bin/ping not really ping\n [('security.capability', '${CAP_NET_RAW}')]\n`,
    )
  })

  it('velo image export writes them as PAX SCHILY.xattr; importing the export gives the same layer', async () => {
    const out = path.join(w, 'xi-export.tar')
    veloJson(home, ['image', 'export', 'xi', '-o', out])
    const ex = path.join(w, 'ex')
    fs.mkdirSync(ex)
    ok(sh(`tar -C ${ex} -xf ${out}`), 'untar')
    const layerTar = fs.readdirSync(ex).find((n) => fs.existsSync(path.join(ex, n, 'layer.tar')))!
    const rows = await listTarStream(fs.createReadStream(path.join(ex, layerTar, 'layer.tar')) as AsyncIterable<Buffer>)
    expect(fmtRows(rows.filter((r) => r.path !== '.'))).toEqual(fmtRows(rowsOf(home, 'xi').filter((r) => r.path !== '.')))
    const again = veloJson(home, ['image', 'import', out, '--name', 'xi-again'])
    expect(again.images[0].layers).toEqual(withDb(home, (db) => db.requireImage('xi').layers))
    expect(again.newObjects).toBe(0)
    rmrf(ex)
  })
})

describe('xattr policy for image layers', () => {
  const err = (r: {status: number; stderr: string}) => ({status: r.status, stderr: r.stderr})

  it.each([
    ['trusted.overlay.opaque', 'y'],
    ['user.overlay.opaque', 'y'],
    ['trusted.overlay.redirect', '/etc'],
  ])('refuses a forged overlayfs attribute %s, names the entry, leaves the store untouched', async (name, value) => {
    const h = tmpDir('velo-xattr-bad-')
    try {
      veloJson(h, ['image', 'import', `${w}/x.tar`, '--name', 'good'])
      const t = await mkTar([
        {name: './', type: 'directory'},
        {name: './etc/', type: 'directory', pax: {[`SCHILY.xattr.${name}`]: value}},
        {name: './etc/x', content: 'x\n'},
      ])
      fs.writeFileSync(path.join(h, 'bad.tar'), t)
      const r = velo(h, ['image', 'import', path.join(h, 'bad.tar'), '--name', 'bad'])
      expect(err(r)).toMatchObject({status: 1})
      expect(r.stderr).toMatch(new RegExp(`BAD_INPUT.*entry "\\./etc/".*overlayfs' own attribute "${name.replace(/\./g, '\\.')}"`))
      const images = withDb(h, (db) => db.listImages().map((i) => i.name))
      expect(images).toEqual(['good'])
      expect(fs.readdirSync(path.join(h, 'tmp'))).toEqual([])
      // no object anywhere carries an overlay attribute
      const objs = [...new Store(h).list()].map((o) => o.path)
      for (const [, xs] of readXattrs(objs)) for (const a of xs) expect(a.name.toString()).not.toMatch(/overlay\./)
    } finally {
      rmrf(h)
    }
  })

  it('reads LIBARCHIVE.xattr (bsdtar), drops velo’s own marks silently and other namespaces with a warning', async () => {
    const h = tmpDir('velo-xattr-pol-')
    try {
      const t = await mkTar([
        {name: './', type: 'directory'},
        {name: './lib', content: 'l\n', pax: {'LIBARCHIVE.xattr.user.a%3Db': Buffer.from([0, 1, 2]).toString('base64')}},
        {name: './both', content: 'b\n', pax: {'LIBARCHIVE.xattr.user.k': Buffer.from('from-libarchive').toString('base64'), 'SCHILY.xattr.user.k': 'from-schily'}},
        {name: './mark', content: 'm\n', pax: {'SCHILY.xattr.user.velo.obj': 'v1'}},
        {name: './acl', content: 'a\n', pax: {'SCHILY.xattr.system.posix_acl_access': 'xx'}},
        {name: './sym', type: 'symlink', linkname: 'lib', pax: {'SCHILY.xattr.user.on-symlink': 'no'}},
      ])
      fs.writeFileSync(path.join(h, 'p.tar'), t)
      const r = veloJson(h, ['image', 'import', path.join(h, 'p.tar'), '--name', 'p'])
      expect(r.warnings).toEqual([expect.stringMatching(/extended attributes dropped on 2 entries, e\.g\. "\.\/acl" \(system\.posix_acl_access\); "\.\/sym" \(user\.on-symlink\)/)])
      const rows = rowsOf(h, 'p')
      const x = (p: string) => rows.find((q) => q.path === p)!.xattrs
      expect(x('lib')).toBe('user.a=b=000102')
      expect(x('both')).toBe(`user.k=${hex('from-schily')}`)
      expect(x('mark')).toBe('')
      expect(x('acl')).toBe('')
      expect(x('sym')).toBe('')
    } finally {
      rmrf(h)
    }
  })

  it('refuses a security.capability the kernel would not accept, naming the entry', async () => {
    const h = tmpDir('velo-xattr-cap-')
    try {
      fs.writeFileSync(path.join(h, 'c.tar'), await mkTar([{name: './ping', content: 'p\n', pax: {'SCHILY.xattr.security.capability': 'x'}}]))
      const r = velo(h, ['image', 'import', path.join(h, 'c.tar'), '--name', 'c'])
      expect(r.status).toBe(1)
      expect(r.stderr).toMatch(/BAD_INPUT.*entry "\.\/ping": security\.capability is not a valid file capability \(1 bytes\)/)
      expect(fs.readdirSync(path.join(h, 'tmp'))).toEqual([])
    } finally {
      rmrf(h)
    }
  })

  it('refuses a hard link whose xattrs differ from its target’s', async () => {
    const h = tmpDir('velo-xattr-hl-')
    try {
      const t = await mkTar([
        {name: './f', content: 'f\n', pax: {'SCHILY.xattr.user.a': '1'}},
        {name: './g', type: 'link', linkname: './f', pax: {'SCHILY.xattr.user.a': '1'}}, // same: fine
        {name: './h', type: 'link', linkname: './f', pax: {'SCHILY.xattr.user.a': '2'}},
      ])
      fs.writeFileSync(path.join(h, 'hl.tar'), t)
      const r = velo(h, ['image', 'import', path.join(h, 'hl.tar'), '--name', 'hl'])
      expect(r.status).toBe(1)
      expect(r.stderr).toMatch(/BAD_INPUT.*entry "\.\/h": hard link carries extended attributes different from its target/)
    } finally {
      rmrf(h)
    }
  })
})

describe('an unprivileged store', () => {
  it('keeps user.* and drops trusted.*/security.* with a warning (its objects cannot carry them)', () => {
    const NOBODY = 65534
    const d = tmpDir('velo-xattr-nobody-')
    try {
      fs.copyFileSync(`${w}/x.tar`, path.join(d, 'x.tar'))
      ok(sh(`chmod 755 ${d} && chown -R ${NOBODY}:${NOBODY} ${d}`), 'chown')
      const env = `env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=${d} VELO_HOME=${d}/home`
      const r = sh(`setpriv --reuid=${NOBODY} --regid=${NOBODY} --clear-groups --inh-caps=-all ${env} ${VELO_BIN} image import ${d}/x.tar --name xn --json`)
      expect(r.status, r.stderr).toBe(0)
      const out = JSON.parse(r.stdout)
      expect(out.warnings).toEqual([expect.stringMatching(/extended attributes dropped on 4 entries, e\.g\. .*"\.\/data\/" \(trusted\.t\)/)])
      const rows = rowsOf(path.join(d, 'home'), 'xn')
      const x = (p: string) => rows.find((q) => q.path === p)!.xattrs
      expect(x('data/a')).toBe(`user.bin=00ff01,user.color=${hex('red')}`)
      expect(x('usr/bin/ping')).toBe('')
      expect(x('data/link')).toBe('')
    } finally {
      rmrf(d)
    }
  })
})

describe('names that are not UTF-8', () => {
  it('export writes them as raw bytes; checkout and re-import give back the same bytes and layer', () => {
    const h = tmpDir('velo-raw-')
    try {
      const t = path.join(h, 'tree')
      ok(
        sh(
          `python3 -c 'import os,sys; r=sys.argv[1].encode(); os.makedirs(r+b"/d\\xff/" + b"x"*120 + b"\\xfe", exist_ok=True); ` +
            `open(r+b"/d\\xff/f\\xfe","w").write("x"); os.symlink(b"d\\xff/f\\xfe", r+b"/l\\xfd"); open(r+b"/caf\\xc3\\xa9","w").write("utf8")' ${t}`,
        ),
        'mk',
      )
      ok(sh(`tar -C ${t} -cf ${h}/raw.tar .`), 'tar')
      const a = veloJson(h, ['image', 'import', `${h}/raw.tar`, '--name', 'raw'])
      veloJson(h, ['image', 'export', 'raw', '-o', `${h}/raw-out.tar`])
      const b = veloJson(h, ['image', 'import', `${h}/raw-out.tar`, '--name', 'raw2'])
      expect(b.images[0].layers).toEqual(a.images[0].layers)
      const co = path.join(h, 'co')
      veloJson(h, ['image', 'checkout', 'raw2', co])
      const names = (fs.readdirSync(co, {encoding: 'buffer'}) as Buffer[]).map((n) => n.toString('hex')).sort()
      expect(names).toEqual([Buffer.from('café').toString('hex'), '64ff', '6cfd'].sort())
      const link = fs.readlinkSync(Buffer.concat([Buffer.from(co + '/'), Buffer.from([0x6c, 0xfd])]) as unknown as string, {encoding: 'buffer'}) as Buffer
      expect(link.toString('hex')).toBe(Buffer.concat([Buffer.from('d'), Buffer.from([0xff]), Buffer.from('/f'), Buffer.from([0xfe])]).toString('hex'))
      // GNU tar reads the export's names as the same bytes
      const ex = path.join(h, 'ex')
      fs.mkdirSync(ex)
      ok(sh(`tar -C ${ex} -xf ${h}/raw-out.tar`), 'untar')
      const layer = fs.readdirSync(ex).find((n) => fs.existsSync(path.join(ex, n, 'layer.tar')))!
      const listed = sh(`tar --quoting-style=literal -tf ${path.join(ex, layer, 'layer.tar')} | od -v -An -tx1 | tr -d ' \\n'`).stdout
      expect(listed).toContain(Buffer.from('d\xff/f\xfe', 'latin1').toString('hex'))
      expect(listed).toContain(Buffer.concat([Buffer.from('x'.repeat(120)), Buffer.from([0xfe])]).toString('hex'))
    } finally {
      rmrf(h)
    }
  })
})
