import * as fs from 'node:fs'
import * as path from 'node:path'
import {afterEach, describe, expect, it} from 'vitest'
import {dockerSaveLegacy, mkTar, TEntry} from '../image/fixtures'
import {velo} from '../helpers'
import {Env, startEnv} from './harness'

/**
 * Images through containerd onto velo's snapshotter: `ctr image import --snapshotter velo` (containerd unpacks
 * each layer into an active snapshot and commits it: velo ingests it) and `ctr run --snapshotter velo`, compared
 * with the same image under containerd's own overlayfs snapshotter in the same containerd.
 */

const root = process.getuid?.() === 0
const BUSYBOX = fs.readFileSync('/bin/busybox')

const config = {User: '0:0', WorkingDir: '/', Cmd: ['/bin/sh'], Env: ['PATH=/bin']}

async function imageA(): Promise<Buffer> {
  const base: TEntry[] = [
    {name: 'bin/', type: 'directory'},
    {name: 'bin/busybox', content: BUSYBOX, mode: 0o755},
    {name: 'bin/sh', type: 'symlink', linkname: 'busybox'},
    {name: 'etc/', type: 'directory'},
    {name: 'etc/passwd', content: 'root:x:0:0:root:/root:/bin/sh\n'},
    {name: 'srv/', type: 'directory', uid: 1000, gid: 1000, mode: 0o750},
    {name: 'srv/data', content: 'private\n', uid: 1000, gid: 1000, mode: 0o600},
    {name: 'srv/data.hard', type: 'link', linkname: 'srv/data', uid: 1000, gid: 1000, mode: 0o600},
    {name: 'opt/', type: 'directory'},
    {name: 'opt/del', content: 'to be deleted\n'},
    {name: 'opt/dir/', type: 'directory'},
    {name: 'opt/dir/old1', content: 'old 1\n'},
    {name: 'opt/dir/old2', content: 'old 2\n'},
    {name: 'tmp/', type: 'directory', mode: 0o1777},
    {name: 'usr/', type: 'directory'},
    {name: 'usr/sbin/', type: 'directory', mode: 0o700},
    {name: 'usr/sbin/setuid', content: '#!/bin/sh\n', mode: 0o4755, uid: 0, gid: 42},
  ]
  const top: TEntry[] = [
    {name: 'opt/', type: 'directory'},
    {name: 'opt/.wh.del', content: ''},
    {name: 'opt/dir/', type: 'directory', mode: 0o711},
    {name: 'opt/dir/.wh..wh..opq', content: ''},
    {name: 'opt/dir/new', content: 'new\n', uid: 7, gid: 8, mode: 0o444},
    {name: 'etc/', type: 'directory'},
    {name: 'etc/motd', content: 'hello from layer 2\n', uid: 5, gid: 6, mode: 0o400},
  ]
  return dockerSaveLegacy([{tag: 'velo-test/a:1', layers: [await mkTar(base), await mkTar(top)], config}])
}

/** Shares busybox and etc/passwd with A, but no layer. */
async function imageB(): Promise<Buffer> {
  const only: TEntry[] = [
    {name: 'bin/', type: 'directory'},
    {name: 'bin/busybox', content: BUSYBOX, mode: 0o755},
    {name: 'bin/sh', type: 'symlink', linkname: 'busybox'},
    {name: 'etc/', type: 'directory'},
    {name: 'etc/passwd', content: 'root:x:0:0:root:/root:/bin/sh\n'},
    {name: 'b-only', content: 'b\n'},
  ]
  return dockerSaveLegacy([{tag: 'velo-test/b:1', layers: [await mkTar(only)], config}])
}

// every path of the root file system, with type, mode, owner, size, inode and an md5 of file content
const LIST = `cd / && /bin/busybox find . -xdev ! -path ./dev ! -path ./proc ! -path ./sys | /bin/busybox sort | while read f; do
  s=$(/bin/busybox stat -c '%F %a %u:%g %s %i' "$f"); m=''; [ -f "$f" ] && ! [ -L "$f" ] && m=$(/bin/busybox md5sum < "$f"); echo "$f $s $m"; done`

describe.skipIf(!root)('images on velo snapshotter: ctr image import + ctr run', () => {
  let env: Env | undefined
  afterEach(async () => {
    await env?.stop()
    env = undefined
  })

  // inode numbers differ between snapshotters (and link counts: a farm's files are links to the store's
  // objects): each becomes the first path that has it, so hard links show as the same name
  const run = (e: Env, snapshotter: string, image: string, id: string) => {
    const first = new Map<string, string>()
    return e
      .ctrOk(['run', '--snapshotter', snapshotter, '--rm', image, id, '/bin/sh', '-c', LIST])
      .trim()
      .split('\n')
      .map((l) => {
        const f = l.split(' ')
        const i = f.findIndex((x, n) => n > 0 && /^\d+$/.test(x) && /^\d+$/.test(f[n - 1]) && f[n - 2].includes(':'))
        if (i < 0) return l.trimEnd()
        if (!first.has(f[i])) first.set(f[i], f[0])
        f[i] = `=${first.get(f[i])}`
        return f.join(' ').trimEnd()
      })
      .join('\n')
  }

  it('the same files, owners, modes and whiteouts as overlayfs; files shared across images stored once', async () => {
    env = await startEnv()
    const a = path.join(env.dir, 'a.tar')
    const b = path.join(env.dir, 'b.tar')
    fs.writeFileSync(a, await imageA())
    fs.writeFileSync(b, await imageB())
    env.ctrOk(['image', 'import', '--snapshotter', 'velo', a])
    env.ctrOk(['image', 'import', '--snapshotter', 'velo', b])
    env.ctrOk(['image', 'import', '--snapshotter', 'overlayfs', a])
    const images = env.ctrOk(['image', 'ls', '-q']).trim().split('\n')
    const A = images.find((i) => i.includes('velo-test/a'))!
    const B = images.find((i) => i.includes('velo-test/b'))!
    expect(A && B).toBeTruthy()

    // containerd unpacked every layer into velo: two for A, one for B, all committed, each a velo layer
    const meta = JSON.parse(fs.readFileSync(path.join(env.home, 'snapshotter', 'metadata.json'), 'utf8'))
    const committed = Object.values(meta.snapshots as Record<string, {kind: string; layer: string}>).filter((s) => s.kind === 'committed')
    expect(committed.length).toBe(3)

    const onVelo = run(env, 'velo', A, 'on-velo')
    const onOverlay = run(env, 'overlayfs', A, 'on-overlay')
    expect(onVelo).toBe(onOverlay)
    const lines = onVelo.split('\n')
    expect(lines.length).toBeGreaterThan(15)
    // the whiteout and the opaque dir of layer 2 worked; owners and modes as the layers say
    expect(lines.some((l) => l.startsWith('./opt/del '))).toBe(false)
    expect(lines.some((l) => l.startsWith('./opt/dir/old'))).toBe(false)
    expect(lines).toContain('./opt/dir directory 711 0:0 4096 =./opt/dir')
    expect(lines.find((l) => l.startsWith('./opt/dir/new '))).toMatch(/^\.\/opt\/dir\/new regular file 444 7:8 4 =\.\/opt\/dir\/new /)
    expect(lines.find((l) => l.startsWith('./etc/motd '))).toMatch(/^\.\/etc\/motd regular file 400 5:6 19 =/)
    expect(lines.find((l) => l.startsWith('./srv/data '))).toMatch(/^\.\/srv\/data regular file 600 1000:1000 8 =\.\/srv\/data /)
    expect(lines.find((l) => l.startsWith('./srv/data.hard '))).toMatch(/^\.\/srv\/data\.hard regular file 600 1000:1000 8 =\.\/srv\/data /) // one inode
    expect(lines.find((l) => l.startsWith('./usr/sbin/setuid '))).toMatch(/^\.\/usr\/sbin\/setuid regular file 4755 0:42 /)
    expect(lines).toContain('./tmp directory 1777 0:0 4096 =./tmp')

    // B runs too
    expect(run(env, 'velo', B, 'b-on-velo')).toContain('./b-only regular file 644 0:0 2 =./b-only')

    // busybox and etc/passwd, in two layers of two images, are one object: one inode in every farm
    const farms = path.join(env.home, 'farms')
    const inodes = (rel: string) =>
      new Set(
        fs
          .readdirSync(farms)
          .map((l) => path.join(farms, l, rel))
          .filter((p) => fs.existsSync(p))
          .map((p) => fs.statSync(p).ino),
      )
    const bb = fs.readdirSync(farms).filter((l) => fs.existsSync(path.join(farms, l, 'bin/busybox')))
    expect(bb.length).toBe(2)
    expect(inodes('bin/busybox').size).toBe(1)
    expect(inodes('etc/passwd').size).toBe(1)

    // velo gc keeps what the images' committed snapshots use: the container runs the same afterwards
    expect(velo(env.home, ['gc']).status).toBe(0)
    expect(run(env, 'velo', A, 'after-gc')).toBe(onOverlay)
  })

  it('an image of 120 layers: mount options fit a page (short links to the farms, containerd names them relative)', async () => {
    env = await startEnv()
    const layers = [await mkTar([{name: 'bin/', type: 'directory'}, {name: 'bin/busybox', content: BUSYBOX, mode: 0o755}, {name: 'bin/sh', type: 'symlink', linkname: 'busybox'}])]
    for (let i = 1; i < 120; i++) layers.push(await mkTar([{name: 'l/', type: 'directory'}, {name: `l/${i}`, content: `${i}\n`}]))
    const tar = path.join(env.dir, 'deep.tar')
    fs.writeFileSync(tar, await dockerSaveLegacy([{tag: 'velo-test/deep:1', layers, config}]))
    env.ctrOk(['image', 'import', '--snapshotter', 'velo', tar])
    const img = env.ctrOk(['image', 'ls', '-q']).trim().split('\n').find((i) => i.includes('velo-test/deep'))!
    const out = env.ctrOk(['run', '--snapshotter', 'velo', '--rm', img, 'deep', '/bin/sh', '-c', 'cd /l && /bin/busybox ls | /bin/busybox wc -l && /bin/busybox cat 1 119'])
    expect(out.trim().split('\n')).toEqual(['119', '1', '119'])
  })
})
