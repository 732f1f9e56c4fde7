import * as fs from 'node:fs'
import * as path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {ManifestDb} from '../../src/manifest/db'
import {listImage, ListingRow} from '../../src/image/view'
import {rmrf, sh, tmpDir, velo, veloJson} from '../helpers'
import {Dockerd, startDockerd} from './dockerd'
import {fmtRows, listDir, listTarStream} from './listing'

/**
 * Proof against the real thing: images built by a real dockerd (docker import of a busybox rootfs, then two
 * `docker commit`s whose diffs hold whiteouts, opaque dirs, replaced types, hard links), saved with
 * `docker save`, imported into velo. Docker's view (`docker export` of a created container) must equal velo's
 * (a `velo image checkout` on disk, and the merged view computed from the manifests): path, type, mode,
 * uid, gid, size, content hash, link target, device number.
 */

// Paths dockerd's init layer adds or rewrites in every container; they are not part of the image.
const INIT = new Set(['.', '.dockerenv', 'dev', 'dev/console', 'dev/pts', 'dev/shm', 'etc', 'etc/hostname', 'etc/hosts', 'etc/mtab', 'etc/resolv.conf', 'proc', 'sys'])
const imageOnly = (rows: ListingRow[]) => rows.filter((r) => !INIT.has(r.path))

let d: Dockerd
let w: string
let home: string

const ok = (r: {status: number; stdout: string; stderr: string}, what: string) => {
  if (r.status !== 0) throw new Error(`${what} failed (${r.status}): ${r.stderr}`)
  return r.stdout.trim()
}

/**
 * A container of IMAGE started with testcontainers (Ryuk off: no registry here; our own daemon), its root
 * filesystem read with `docker export` (dockerode): what a running container of the image sees.
 */
async function dockerListing(image: string): Promise<ListingRow[]> {
  const env = {DOCKER_HOST: d.host, TESTCONTAINERS_HOST_OVERRIDE: 'localhost', TESTCONTAINERS_RYUK_DISABLED: 'true'}
  Object.assign(process.env, env)
  const {GenericContainer} = await import('testcontainers')
  const {default: Docker} = await import('dockerode')
  const c = await new GenericContainer(image).withNetworkMode('none').withCommand(['/bin/sh', '-c', 'sleep 60']).start()
  try {
    const exp = await new Docker({socketPath: d.socket}).getContainer(c.getId()).export()
    return imageOnly(await listTarStream(exp as AsyncIterable<Buffer>))
  } finally {
    await c.stop({timeout: 0, remove: true} as never)
  }
}

function veloListings(h: string, name: string): {view: ListingRow[]; checkout: ListingRow[]} {
  const db = ManifestDb.open(h)
  let view: ListingRow[]
  try {
    view = imageOnly(listImage(db, name))
  } finally {
    db.close()
  }
  const dir = path.join(w, `co-${name.replace(/[^a-z0-9]/gi, '_')}-${Math.random().toString(36).slice(2)}`)
  veloJson(h, ['image', 'checkout', name, dir])
  const checkout = imageOnly(listDir(dir))
  rmrf(dir)
  return {view, checkout}
}

function buildRootfs(dir: string): void {
  const r = (p: string) => path.join(dir, p)
  for (const p of ['bin', 'etc/dir', 'opt/sub', 'srv', 'usr/bin', 'usr/lib', 'var', 'dev', 'home/ünï', 'replace-dir/child', 'deep/' + 'd'.repeat(90) + '/' + 'e'.repeat(90)])
    fs.mkdirSync(r(p), {recursive: true})
  fs.copyFileSync('/bin/busybox', r('bin/busybox'))
  fs.chmodSync(r('bin/busybox'), 0o755)
  for (const a of ['sh', 'ls', 'rm', 'mkdir', 'chmod', 'chown', 'ln', 'echo', 'cat', 'true', 'mknod', 'touch']) fs.symlinkSync('busybox', r(`bin/${a}`))
  fs.writeFileSync(r('etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n')
  fs.writeFileSync(r('etc/group'), 'root:x:0:\nuser:x:1000:\n')
  fs.writeFileSync(r('etc/keep'), 'keep\n')
  fs.chownSync(r('etc/keep'), 1000, 1000)
  fs.writeFileSync(r('etc/gone'), 'gone\n')
  fs.writeFileSync(r('etc/dir/nested'), 'nested\n')
  fs.writeFileSync(r('opt/old1'), 'old1\n')
  fs.writeFileSync(r('opt/sub/old2'), 'old2\n')
  fs.chmodSync(r('opt'), 0o700)
  fs.writeFileSync(r('srv/hard1'), 'shared inode\n')
  fs.linkSync(r('srv/hard1'), r('srv/hard2'))
  fs.writeFileSync(r('usr/bin/suid'), '#!/bin/sh\n')
  fs.chmodSync(r('usr/bin/suid'), 0o4755)
  fs.writeFileSync(r('usr/lib/libold.so'), 'old lib\n')
  fs.symlinkSync('usr/lib', r('lib'))
  sh(`mkfifo ${r('var/fifo')} && mknod ${r('dev/null2')} c 1 3 && chmod 666 ${r('dev/null2')}`)
  fs.writeFileSync(r('home/ünï/naïve.txt'), 'unicode\n')
  fs.chownSync(r('home/ünï'), 1000, 1000)
  fs.writeFileSync(r('deep/' + 'd'.repeat(90) + '/' + 'e'.repeat(90) + '/long-name-' + 'f'.repeat(80)), 'long path\n')
  fs.writeFileSync(r('empty'), '')
  fs.writeFileSync(r('replace-dir/child/x'), 'x\n')
  fs.writeFileSync(r('replace-file'), 'file\n')
  fs.writeFileSync(r('big'), Buffer.alloc(3 << 20, 0x61))
  // File capabilities (what ping carries): the one xattr Docker's own tar writer (docker export, docker
  // commit) keeps, so this listing comparison covers it end to end. Other namespaces: see the xattr tests below.
  fs.copyFileSync('/bin/busybox', r('usr/bin/ping'))
  fs.chmodSync(r('usr/bin/ping'), 0o755)
  setXattr(r('usr/bin/ping'), 'security.capability', CAP_NET_RAW)
}

/** VFS_CAP_REVISION_2, effective, permitted = CAP_NET_RAW (bit 13): `setcap cap_net_raw+ep`. */
const CAP_NET_RAW = '0100000200200000000000000000000000000000'

function setXattr(p: string, name: string, hex: string): void {
  ok(sh(`python3 -c 'import os,sys; os.setxattr(sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3]), follow_symlinks=False)' '${p}' '${name}' '${hex}'`), `setxattr ${name}`)
}

beforeAll(async () => {
  w = tmpDir('velo-docker-')
  fs.chmodSync(w, 0o711) // the store is below it: tenants' roots (user namespaces) must be able to search it
  home = path.join(w, 'home')
  d = await startDockerd()
  const root = path.join(w, 'rootfs')
  buildRootfs(root)
  ok(sh(`tar --xattrs --xattrs-include=security.capability -C ${root} -cf ${w}/base.tar .`), 'tar')
  ok(d.docker(['import', `${w}/base.tar`, 'base:1']), 'docker import')
  // Layer 2 (docker's own overlay2 diff): deletions, an opaque dir, type changes, chmod/chown, a new hard link.
  const step1 = [
    'rm /etc/gone',
    'rm -rf /etc/dir',
    'rm -rf /opt && mkdir -m 750 /opt && echo new > /opt/new',
    'echo changed > /etc/keep && chmod 640 /etc/keep',
    'chown 123:456 /srv/hard1',
    'ln /srv/hard1 /srv/hard3',
    'rm -rf /replace-dir && echo now-a-file > /replace-dir',
    'rm /replace-file && mkdir /replace-file && echo in > /replace-file/in',
    'ln -s /etc/keep /lib2',
    'echo new lib > /lib/libnew.so',
    'mknod /dev/zero2 c 1 5',
    'touch /empty2',
  ].join(' && ')
  ok(d.docker(['run', '--network', 'none', '--name', 's1', 'base:1', '/bin/sh', '-c', step1]), 'docker run step1')
  ok(d.docker(['commit', '--change', 'ENV HELLO=world', '--change', 'WORKDIR /srv', '--change', 'CMD ["/bin/sh","-c","echo hi"]', 's1', 'child:1']), 'docker commit')
  // Layer 3: whiteouts of things layer 2 added, re-creating a deleted path, an opaque dir over an opaque dir.
  const step2 = ['rm /opt/new', 'echo back > /etc/gone', 'rm /srv/hard3', 'rm -rf /replace-file', 'rm -rf /opt && mkdir /opt && echo newer > /opt/newer'].join(' && ')
  ok(d.docker(['run', '--network', 'none', '--name', 's2', 'child:1', '/bin/sh', '-c', step2]), 'docker run step2')
  ok(d.docker(['commit', 's2', 'child:2']), 'docker commit 2')
  ok(d.docker(['rm', 's1', 's2']), 'docker rm')
  ok(d.docker(['save', '-o', `${w}/child.tar`, 'child:2']), 'docker save')
}, 120_000)

afterAll(async () => {
  await d?.stop()
  if (w) rmrf(w)
})

describe('velo image import vs a real dockerd', () => {
  it('a docker save of a 3-layer image shows exactly the tree Docker shows', async () => {
    const r = veloJson(home, ['image', 'import', `${w}/child.tar`])
    expect(r.format).toBe('docker-save')
    expect(r.images[0].name).toBe('child:2')
    expect(r.images[0].layers).toHaveLength(3)
    const docker = await dockerListing('child:2')
    expect(docker.length).toBeGreaterThan(20)
    const {view, checkout} = veloListings(home, 'child:2')
    expect(fmtRows(view)).toEqual(fmtRows(docker))
    expect(fmtRows(checkout)).toEqual(fmtRows(docker))
    // Sanity: the listing really holds the interesting cases.
    const p = docker.map((x) => x.path)
    expect(p).toContain('etc/gone')
    expect(p).not.toContain('etc/dir')
    expect(p).toContain('opt/newer')
    expect(p).not.toContain('opt/new')
    expect(p).not.toContain('replace-file')
    expect(docker.find((x) => x.path === 'replace-dir')!.type).toBe('file')
    expect(docker.find((x) => x.path === 'usr/bin/ping')!.xattrs).toBe(`security.capability=${CAP_NET_RAW}`)
    const db = ManifestDb.open(home)
    try {
      expect(db.requireImage('child:2').config).toMatchObject({env: expect.arrayContaining(['HELLO=world']), workingDir: '/srv'})
    } finally {
      db.close()
    }
  })

  it('the base image shares its layer with the child image', async () => {
    ok(d.docker(['save', '-o', `${w}/base.save.tar`, 'base:1']), 'docker save base')
    const r = veloJson(home, ['image', 'import', `${w}/base.save.tar`])
    const child = veloJson(home, ['image', 'inspect', 'child:2'])
    expect(r.layers[0].existed).toBe(true)
    expect(r.newBytes).toBe(0)
    expect(JSON.stringify(child)).toContain(r.images[0].layers[0])
    const docker = await dockerListing('base:1')
    const {view} = veloListings(home, 'base:1')
    expect(fmtRows(view)).toEqual(fmtRows(docker))
  })
})

describe('velo image export → docker load', () => {
  it('docker run of the loaded image sees the velo image tree; re-importing gives the same layers', async () => {
    // child:2 was imported by the first test of this file (same store); make sure of it here too.
    veloJson(home, ['image', 'import', `${w}/child.tar`])
    const e = veloJson(home, ['image', 'export', 'child:2', '-o', `${w}/exported.tar`, '--tag', 'roundtrip:1'])
    expect(e.layers).toHaveLength(3)
    expect(fs.readdirSync(w).filter((n) => n.startsWith('.exported'))).toEqual([]) // no temp files left
    ok(d.docker(['load', '-i', `${w}/exported.tar`]), 'docker load')
    const docker = await dockerListing('roundtrip:1')
    const {view} = veloListings(home, 'child:2')
    expect(fmtRows(docker)).toEqual(fmtRows(view))
    // The config survives: docker sees the image's Env / WorkingDir / Cmd.
    const inspect = JSON.parse(ok(d.docker(['image', 'inspect', 'roundtrip:1']), 'inspect'))[0]
    expect(inspect.Config.Env).toContain('HELLO=world')
    expect(inspect.Config.WorkingDir).toBe('/srv')
    const original = JSON.parse(ok(d.docker(['image', 'inspect', 'child:2']), 'inspect'))[0]
    expect(inspect.Config.Cmd).toEqual(original.Config.Cmd)
    expect(inspect.Config.Env).toEqual(original.Config.Env)
    // A container of it really runs (through the exported layers) and sees the same files.
    const out = ok(d.docker(['run', '--rm', '--network', 'none', 'roundtrip:1', '/bin/cat', '/etc/keep', '/etc/gone', '/opt/newer']), 'docker run')
    expect(out).toBe('changed\nback\nnewer')
    // velo → docker → velo: the same layer ids (content, metadata and whiteouts all survived).
    ok(d.docker(['save', '-o', `${w}/again.tar`, 'roundtrip:1']), 'docker save')
    const again = veloJson(home, ['image', 'import', `${w}/again.tar`, '--name', 'again'])
    const orig = veloJson(home, ['image', 'inspect', 'child:2'])
    for (const l of again.images[0].layers) expect(JSON.stringify(orig)).toContain(l)
    expect(again.newBytes).toBe(0)
  })

  it('refuses an unknown image and leaves no output file', () => {
    const r = velo(home, ['image', 'export', 'nope', '-o', `${w}/nope.tar`])
    expect(r.status).toBe(1)
    expect(r.stderr).toMatch(/NOT_FOUND.*nope/)
    expect(fs.existsSync(`${w}/nope.tar`)).toBe(false)
  })
})

describe('velo image pull', () => {
  it('streams the image out of the daemon: same layers as importing its docker save', () => {
    const h = path.join(w, 'pullhome')
    const r = veloJson(h, ['image', 'pull', 'child:2'], {env: {DOCKER_HOST: d.host}})
    expect(r.images[0].name).toBe('child:2')
    const imported = veloJson(home, ['image', 'inspect', 'child:2'])
    for (const l of r.images[0].layers) expect(JSON.stringify(imported)).toContain(l)
    expect(r.images[0].layers).toHaveLength(3)
    // --name, and a second pull of an image sharing the base stores nothing new.
    const again = veloJson(h, ['image', 'pull', 'base:1', '--name', 'mybase'], {env: {DOCKER_HOST: d.host}})
    expect(again.images[0].name).toBe('mybase')
    expect(again.layers[0].existed).toBe(true)
    expect(again.newBytes).toBe(0)
  })

  it('says clearly when the image or the daemon is missing', () => {
    const h = path.join(w, 'pullhome2')
    const r = velo(h, ['image', 'pull', 'no-such-image:1'], {env: {DOCKER_HOST: d.host}})
    expect(r.status).toBe(1)
    expect(r.stderr).toMatch(/NOT_FOUND.*no image "no-such-image:1"/)
    const n = velo(h, ['image', 'pull', 'child:2'], {env: {DOCKER_HOST: `unix://${w}/no-daemon.sock`}})
    expect(n.status).toBe(1)
    expect(n.stderr).toMatch(/STATE.*cannot reach a Docker daemon at unix:\/\/.*no-daemon\.sock \(ENOENT\)/)
    // A path that is not a socket at all (connect fails with ECONNREFUSED).
    fs.writeFileSync(path.join(w, 'x'), '')
    const c = velo(h, ['image', 'pull', 'child:2'], {env: {DOCKER_HOST: `unix://${path.join(w, 'x')}`}})
    expect(c.status).toBe(1)
    expect(c.stderr).toMatch(/STATE.*cannot reach a Docker daemon/)
    const db = ManifestDb.open(h)
    try {
      expect(db.listImages()).toEqual([])
    } finally {
      db.close()
    }
  })
})

describe('a velo sandbox of the imported image vs a docker container of it', () => {
  // The same listing taken from inside both (busybox find/stat/sha256sum on the root filesystem only).
  const SCRIPT =
    '/bin/busybox find / -xdev -exec /bin/busybox stat -c "%n|%f|%u|%g|%s|%N" {} + | /bin/busybox sort; echo ==; ' +
    '/bin/busybox find / -xdev -type f -exec /bin/busybox sha256sum {} + | /bin/busybox sort'
  const SKIP = /^\/(proc|sys|dev|tmp|run|\.dockerenv|etc\/(hostname|hosts|resolv\.conf|mtab))(\/|\||  |$)|^\/\|/
  const clean = (out: string) =>
    out
      .split('\n')
      .filter((l) => l && !SKIP.test(l) && !SKIP.test(l.replace(/^[0-9a-f]{64}  /, '')))
      .join('\n')

  it('both see the same tree (paths, types, modes, owners, sizes, link targets, content)', () => {
    veloJson(home, ['image', 'import', `${w}/child.tar`])
    const dk = ok(d.docker(['run', '--rm', '--network', 'none', 'child:2', '/bin/sh', '-c', SCRIPT]), 'docker run')
    const name = `cmp-${process.pid}`
    const v = velo(home, ['sandbox', 'run', '--rm', '--name', name, '--image', 'child:2', '--', '/bin/sh', '-c', SCRIPT])
    expect(v.status, v.stderr).toBe(0)
    expect(clean(dk).split('\n').length).toBeGreaterThan(40)
    expect(clean(v.stdout)).toBe(clean(dk))
  })
})

describe('extended attributes: velo and a real dockerd show the same', () => {
  // Docker's own tar writer (docker export, docker commit) keeps only security.capability, while docker
  // import/load apply every SCHILY.xattr and docker save re-emits an imported layer's original tar. So this
  // comparison reads a running container's root filesystem on the host (its overlay2 merged dir), which shows
  // every attribute the container sees; `docker export` is compared for security.capability alone.
  async function containerRoot(image: string): Promise<{merged: ListingRow[]; exported: ListingRow[]}> {
    const env = {DOCKER_HOST: d.host, TESTCONTAINERS_HOST_OVERRIDE: 'localhost', TESTCONTAINERS_RYUK_DISABLED: 'true'}
    Object.assign(process.env, env)
    const {GenericContainer} = await import('testcontainers')
    const {default: Docker} = await import('dockerode')
    const c = await new GenericContainer(image).withNetworkMode('none').withCommand(['/bin/sh', '-c', 'sleep 60']).start()
    try {
      const info = JSON.parse(ok(d.docker(['inspect', c.getId()]), 'inspect'))[0]
      const merged = imageOnly(listDir(info.GraphDriver.Data.MergedDir))
      const exp = await new Docker({socketPath: d.socket}).getContainer(c.getId()).export()
      return {merged, exported: imageOnly(await listTarStream(exp as AsyncIterable<Buffer>))}
    } finally {
      await c.stop({timeout: 0, remove: true} as never)
    }
  }
  const capsOnly = (rows: ListingRow[]) => rows.map((r) => ({...r, xattrs: r.xattrs.split(',').filter((a) => a.startsWith('security.capability=')).join(',')}))

  beforeAll(() => {
    const r = (p: string) => path.join(w, 'xroot', p)
    for (const p of ['bin', 'etc', 'data/dir', 'usr/bin']) fs.mkdirSync(r(p), {recursive: true})
    fs.copyFileSync('/bin/busybox', r('bin/busybox'))
    fs.chmodSync(r('bin/busybox'), 0o755)
    for (const a of ['sh', 'sleep', 'cat']) fs.symlinkSync('busybox', r(`bin/${a}`))
    for (const f of ['a', 'b']) fs.writeFileSync(r(`data/${f}`), 'same bytes\n')
    fs.writeFileSync(r('data/bin'), 'binary value\n')
    fs.symlinkSync('a', r('data/link'))
    fs.copyFileSync('/bin/busybox', r('usr/bin/ping'))
    fs.chmodSync(r('usr/bin/ping'), 0o755)
    setXattr(r('data/a'), 'user.color', Buffer.from('red').toString('hex'))
    setXattr(r('data/bin'), 'user.bin', '00ff0102')
    setXattr(r('data/dir'), 'user.dir', '31')
    setXattr(r('data/link'), 'trusted.sym', '76')
    setXattr(r('data'), 'trusted.t', '74')
    setXattr(r('usr/bin/ping'), 'security.capability', CAP_NET_RAW)
    ok(sh(`tar --xattrs --xattrs-include='*' -C ${path.join(w, 'xroot')} -cf ${w}/xa.tar .`), 'tar')
    ok(d.docker(['import', `${w}/xa.tar`, 'xa:1']), 'docker import')
    ok(d.docker(['save', '-o', `${w}/xa.save.tar`, 'xa:1']), 'docker save')
  })

  it('an image Docker imported: the container, velo’s view, a checkout and a sandbox show the same xattrs', async () => {
    veloJson(home, ['image', 'import', `${w}/xa.save.tar`])
    const {merged, exported} = await containerRoot('xa:1')
    const {view, checkout} = veloListings(home, 'xa:1')
    expect(merged.find((x) => x.path === 'data/a')!.xattrs).toBe(`user.color=${Buffer.from('red').toString('hex')}`)
    expect(merged.find((x) => x.path === 'usr/bin/ping')!.xattrs).toBe(`security.capability=${CAP_NET_RAW}`)
    expect(fmtRows(view)).toEqual(fmtRows(merged))
    expect(fmtRows(checkout)).toEqual(fmtRows(merged))
    expect(fmtRows(capsOnly(view))).toEqual(fmtRows(exported))
    const name = `xattr-${process.pid}`
    // like for like with Docker's container (no user namespace): read from the host through a user namespace's
    // idmapped layers, owners are its host ids and file capabilities come back as v3 with its root id
    ok(velo(home, ['sandbox', 'create', name, '--image', 'xa:1', '--userns', 'host']), 'sandbox create')
    try {
      const {readState} = await import('../../src/sandbox/state')
      // the image's own top-level trees, read through the tenant's root (proc, sys, dev are mounts there)
      const tops = ['bin', 'data', 'usr']
      const root = `/proc/${readState(home, name).pid}/root`
      const inside = tops.flatMap((t) => listDir(`${root}/${t}`).map((x) => ({...x, path: x.path === '.' ? t : `${t}/${x.path}`})))
      const wanted = merged.filter((x) => tops.some((t) => x.path === t || x.path.startsWith(`${t}/`)))
      expect(inside.length).toBeGreaterThan(8)
      expect(fmtRows(inside)).toEqual(fmtRows(wanted))
    } finally {
      velo(home, ['sandbox', 'rm', '-f', name])
    }
  })

  it('velo image export → docker load: the container shows the xattrs velo has', async () => {
    veloJson(home, ['image', 'import', `${w}/xa.save.tar`])
    veloJson(home, ['image', 'export', 'xa:1', '-o', `${w}/xa.velo.tar`, '--tag', 'xrt:1'])
    ok(d.docker(['load', '-i', `${w}/xa.velo.tar`]), 'docker load')
    const {merged, exported} = await containerRoot('xrt:1')
    const {view} = veloListings(home, 'xa:1')
    expect(fmtRows(merged)).toEqual(fmtRows(view))
    expect(fmtRows(exported)).toEqual(fmtRows(capsOnly(view)))
    expect(merged.find((x) => x.path === 'data/bin')!.xattrs).toBe('user.bin=00ff0102')
  })
})
