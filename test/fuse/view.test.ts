import {execFileSync, spawnSync} from 'node:child_process'
import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {afterAll, afterEach, beforeAll, beforeEach, describe, expect, it} from 'vitest'
import {rmrf, sh, tmpDir, veloJson} from '../helpers'
import {makeAwkwardTree} from '../store/tree'
import {readXattrTree} from '../../src/store/xattr-io'
import {MountGuard, buildImage, mount, mountFixture, mtree, sha256All} from './fixtures'

// One image (ingested and checked out once), mounted afresh for each test and unmounted after it, whatever happened.
describe('velo mount: the mounted image equals its checkout', () => {
  const guard = new MountGuard()
  const dirs: string[] = []
  let home: string, src: string, out: string, mnt: string

  beforeAll(() => {
    home = tmpDir('velo-fuse-home-')
    dirs.push(home)
    const work = tmpDir('velo-fuse-work-')
    dirs.push(work)
    src = path.join(work, 'src')
    fs.mkdirSync(src)
    makeAwkwardTree(src)
    // more than one read's worth of data, identical files with different metadata, a device node, owners
    fs.writeFileSync(path.join(src, 'big.bin'), crypto.randomBytes(3 * 1024 * 1024 + 123))
    fs.writeFileSync(path.join(src, 'same-exec'), 'identical content\n', {mode: 0o755})
    fs.chmodSync(path.join(src, 'same-exec'), 0o755)
    execFileSync('mknod', [path.join(src, 'null-dev'), 'c', '1', '3'])
    fs.mkdirSync(path.join(src, 'owned'), {mode: 0o750})
    fs.chownSync(path.join(src, 'owned'), 1000, 1000)
    fs.writeFileSync(path.join(src, 'owned', 'g'), 'setgid\n')
    fs.chmodSync(path.join(src, 'owned', 'g'), 0o2711)
    // extended attributes, served by the daemon from the manifest (binary value, a dir, a privileged namespace)
    const setx = `import os,sys; r=sys.argv[1]; os.setxattr(r+'/same-exec','user.a',b'\\x00\\xff'); os.setxattr(r+'/same-exec','user.b',b'bee'); ` +
      `os.setxattr(r+'/owned','trusted.t',b't'); os.setxattr(r+'/owned/g','security.capability',bytes.fromhex('0100000200200000000000000000000000000000'))`
    execFileSync('python3', ['-c', setx, src])
    veloJson(home, ['ingest', src, '--name', 'awk'])
    out = path.join(work, 'checkout')
    veloJson(home, ['image', 'checkout', 'awk', out])
    mnt = path.join(work, 'mnt')
  })
  beforeEach(() => {
    mount(guard, home, 'awk', mnt)
  })
  afterEach(() => {
    guard.cleanup()
    MountGuard.killAll(home)
  })
  afterAll(() => dirs.forEach(rmrf))

  it('gives the same bsdtar mtree listing (type, mode incl. setuid/setgid/sticky, owner, size, ns mtime, link target, nlink, device, sha256)', () => {
    const m = mtree(mnt)
    expect(m.split('\n').length).toBeGreaterThan(80)
    expect(m).toBe(mtree(out))
    expect(m).toBe(mtree(src))
  })

  it('gives the same sha256sum of every file', () => {
    const s = sha256All(mnt)
    expect(s.split('\n').length).toBeGreaterThan(12)
    expect(s).toBe(sha256All(out))
  })

  it('gives each path its own inode; only real hard links share one', () => {
    const ino = (p: string) => fs.lstatSync(path.join(mnt, p)).ino
    // same-a, same-b and same-exec hold identical bytes (one CAS content) but are different files
    expect(new Set([ino('same-a'), ino('same-b'), ino('same-exec'), ino('empty'), ino('empty2')]).size).toBe(5)
    expect(ino('hard1')).toBe(ino('hard2'))
    expect(fs.lstatSync(path.join(mnt, 'hard1')).nlink).toBe(2)
    // inode numbers are stable: looking a path up again gives the same number
    const all = sh(`find '${mnt}' -printf '%i %p\\n' | sort`).stdout
    sh(`echo 2 > /proc/sys/vm/drop_caches`) // drop dentries/inodes: forces forget + fresh lookups
    expect(sh(`find '${mnt}' -printf '%i %p\\n' | sort`).stdout).toBe(all)
  })

  it('works with ls, find, du, tar and cp -a out of the mount', () => {
    expect(sh(`ls -laR '${mnt}'`).status).toBe(0)
    const find = (d: string) => sh(`cd '${d}' && find . | LC_ALL=C sort`).stdout
    expect(find(mnt)).toBe(find(out))
    const du = sh(`du -sb --apparent-size '${mnt}/big.bin' '${mnt}/dir with spaces'`)
    expect(du.status).toBe(0)
    expect(du.stdout).toMatch(/^3145851\t/)
    const work = tmpDir('velo-fuse-tools-')
    dirs.push(work)
    const tar = sh(`tar --format=posix -C '${mnt}' -cf - . | tar -C '${work}' -xpf - && echo ok`)
    expect(tar.stdout.trim()).toBe('ok')
    expect(mtree(work)).toBe(mtree(out))
    const cp = path.join(work, '..', path.basename(work) + '-cp')
    dirs.push(cp)
    expect(sh(`cp -a '${mnt}' '${cp}'`).status).toBe(0)
    expect(mtree(cp)).toBe(mtree(out))
    // symlinks are served as links, never followed into the host
    expect(fs.readlinkSync(path.join(mnt, 'link-dangling'))).toBe('/nonexistent/absolute')
    expect(fs.readFileSync(path.join(mnt, 'link-rel'), 'utf8')).toBe('spaces\n')
  })

  it('refuses writes of every kind with EROFS', () => {
    const p = (r: string) => path.join(mnt, r)
    const attempts: Array<[string, () => unknown]> = [
      ['overwrite', () => fs.writeFileSync(p('same-a'), 'x')],
      ['open r+', () => fs.openSync(p('same-a'), 'r+')],
      ['append', () => fs.appendFileSync(p('big.bin'), 'x')],
      ['create', () => fs.writeFileSync(p('new-file'), 'x')],
      ['exclusive create', () => fs.openSync(p('new-file'), 'wx')],
      ['truncate', () => fs.truncateSync(p('big.bin'), 0)],
      ['mkdir', () => fs.mkdirSync(p('new-dir'))],
      ['rmdir', () => fs.rmdirSync(p('sticky'))],
      ['unlink', () => fs.unlinkSync(p('same-a'))],
      ['rename', () => fs.renameSync(p('same-a'), p('renamed'))],
      ['symlink', () => fs.symlinkSync('x', p('new-link'))],
      ['hard link', () => fs.linkSync(p('same-a'), p('new-hard'))],
      ['chmod', () => fs.chmodSync(p('same-a'), 0o777)],
      ['chown', () => fs.chownSync(p('same-a'), 1, 1)],
      ['utimes', () => fs.utimesSync(p('same-a'), 1, 1)],
      ['copy into', () => fs.copyFileSync('/etc/hostname', p('copied'))],
    ]
    for (const [what, fn] of attempts) expect(`${what}: ${errnoOf(fn)}`).toBe(`${what}: EROFS`)
    const tools = [
      `mkfifo '${p('new-fifo')}'`,
      `mknod '${p('new-dev')}' c 1 3`,
      `fallocate -l 4096 '${p('big.bin')}'`,
      `touch '${p('empty')}'`,
      `python3 -c 'import os; os.setxattr("${p('same-a')}", "user.x", b"1")'`,
      `python3 -c 'import os; os.removexattr("${p('same-a')}", "user.x")'`,
    ]
    for (const cmd of tools) {
      const r = sh(cmd)
      expect(r.status, cmd).not.toBe(0)
      expect(r.stderr, cmd).toMatch(/Read-only file system|EROFS|Errno 30/)
    }
    // nothing changed, and the store's objects are untouched
    expect(mtree(mnt)).toBe(mtree(out))
    expect(spawnSync('node', [path.join(__dirname, '../../bin/velo.js'), 'fsck', '--json'], {env: {...process.env, VELO_HOME: home}}).status).toBe(0)
  })

  it('refuses writes in the daemon itself (EROFS) even when the mount is remounted read-write', () => {
    // the kernel's ro flag normally stops writes before they reach velo-fuse; take it away to test the daemon
    const r = sh(`mount -i -o remount,rw '${mnt}'`)
    expect(r.status, r.stderr).toBe(0)
    try {
      const p = (x: string) => path.join(mnt, x)
      for (const [what, fn] of [
        ['create', () => fs.writeFileSync(p('new-file'), 'x')],
        ['open r+', () => fs.openSync(p('same-a'), 'r+')],
        ['truncate', () => fs.truncateSync(p('big.bin'), 0)],
        ['mkdir', () => fs.mkdirSync(p('new-dir'))],
        ['unlink', () => fs.unlinkSync(p('same-a'))],
        ['rename', () => fs.renameSync(p('same-a'), p('renamed'))],
        ['chmod', () => fs.chmodSync(p('same-a'), 0o777)],
        ['symlink', () => fs.symlinkSync('x', p('new-link'))],
        ['link', () => fs.linkSync(p('same-a'), p('new-hard'))],
      ] as Array<[string, () => unknown]>) {
        expect(`${what}: ${errnoOf(fn)}`).toBe(`${what}: EROFS`)
      }
    } finally {
      sh(`mount -i -o remount,ro '${mnt}'`)
    }
    expect(mtree(mnt)).toBe(mtree(out))
  })

  it('serves the extended attributes of the image (getxattr, listxattr), and none where there are none', () => {
    const fmt = (m: Map<string, Array<{name: Buffer; value: Buffer}>>) => [...m].map(([p, xs]) => `${p} ${xs.map((a) => `${a.name}=${a.value.toString('hex')}`).join(',')}`).sort()
    const served = fmt(readXattrTree(mnt))
    expect(served).toEqual(fmt(readXattrTree(src)))
    expect(served).toContain(`same-exec user.a=00ff,user.b=${Buffer.from('bee').toString('hex')}`)
    const r = sh(`python3 -c 'import os,sys; print(os.getxattr(sys.argv[1], "user.b")); print(sorted(os.listxattr(sys.argv[1])))' '${path.join(mnt, 'same-exec')}'`)
    expect(r.stdout).toBe("b'bee'\n['user.a', 'user.b']\n")
  })

  it('reports no extended attributes, and statfs says read-only with nothing free', () => {
    const r = sh(`python3 -c 'import os,sys; print(os.listxattr(sys.argv[1])); os.getxattr(sys.argv[1], "user.x")' '${path.join(mnt, 'same-a')}'`)
    expect(r.stdout.trim()).toBe('[]')
    expect(r.stderr).toMatch(/No data available|Errno 61/)
    const st = sh(`stat -f -c '%a %d' '${mnt}'`).stdout.trim()
    expect(st).toBe('0 0')
  })
})

describe('velo mount: a multi-layer image (whiteouts, opaque dirs, replacements) equals its checkout', () => {
  const {guard, tmp} = mountFixture()

  it('applies each layer over the ones below exactly as the checkout does', () => {
    const home = tmp('velo-fuse-home-')
    const work = tmp('velo-fuse-work-')
    buildImage(home, 'layered', [
      {
        'etc/passwd': 'root:x:0:0\n',
        'etc/hosts': 'lower hosts\n',
        'etc/gone': 'whited out above\n',
        'opaque/a': 'lower a\n',
        'opaque/sub/b': 'lower b\n',
        'merged/low': 'from layer 0\n',
        'merged/both': 'layer 0 version\n',
        'file-becomes-dir': 'was a file\n',
        'dir-becomes-file/x': 'was in a dir\n',
        'link-becomes-file': {symlink: 'etc/passwd'},
        'deep/er/est/f': {data: 'deep\n', mode: 0o600, uid: 42, gid: 43},
        'bin/su': {data: 'setuid\n', mode: 0o4755},
        'hl/one': 'hard linked in layer 0\n',
        'hl/two': {hardlink: 'hl/one'},
      },
      {
        'etc/gone': {whiteout: true},
        'etc/hosts': 'middle hosts\n',
        'merged/mid': 'from layer 1\n',
        'merged/both': 'layer 1 version\n',
        'opaque': {dir: true, opaque: true, mode: 0o700},
        'opaque/c': 'upper c\n',
        'file-becomes-dir': {dir: true},
        'file-becomes-dir/inside': 'now a dir\n',
        'dir-becomes-file': 'now a file\n',
        'fifo': {fifo: true},
      },
      {
        'etc/hosts': {data: 'top hosts\n', mode: 0o640, uid: 0, gid: 4},
        'merged/top': 'from layer 2\n',
        'merged/low': {whiteout: true},
        'link-becomes-file': 'plain now\n',
        'deep': {dir: true, mode: 0o711},
        'newlink': {symlink: '../outside/../../etc/shadow'},
      },
    ])
    const out = path.join(work, 'checkout')
    veloJson(home, ['image', 'checkout', 'layered', out])
    const mnt = path.join(work, 'mnt')
    mount(guard, home, 'layered', mnt)
    expect(mtree(mnt)).toBe(mtree(out))
    expect(sha256All(mnt)).toBe(sha256All(out))
    // and the specific rules, spelled out
    const has = (p: string) => fs.existsSync(path.join(mnt, p))
    const read = (p: string) => fs.readFileSync(path.join(mnt, p), 'utf8')
    expect(has('etc/gone')).toBe(false)
    expect(read('etc/hosts')).toBe('top hosts\n')
    expect(fs.readdirSync(path.join(mnt, 'opaque')).sort()).toEqual(['c'])
    expect(fs.readdirSync(path.join(mnt, 'merged')).sort()).toEqual(['both', 'mid', 'top'])
    expect(read('merged/both')).toBe('layer 1 version\n')
    expect(read('file-becomes-dir/inside')).toBe('now a dir\n')
    expect(read('dir-becomes-file')).toBe('now a file\n')
    expect(fs.lstatSync(path.join(mnt, 'link-becomes-file')).isFile()).toBe(true)
    expect(fs.statSync(path.join(mnt, 'deep')).mode & 0o7777).toBe(0o711)
    expect(read('deep/er/est/f')).toBe('deep\n')
    expect(fs.statSync(path.join(mnt, 'bin/su')).mode & 0o7777).toBe(0o4755)
    expect(fs.statSync(path.join(mnt, 'hl/one')).ino).toBe(fs.statSync(path.join(mnt, 'hl/two')).ino)
    // lookups of names that were whited out or hidden by an opaque dir fail, also by direct path
    expect(has('opaque/a')).toBe(false)
    expect(has('opaque/sub/b')).toBe(false)
    expect(has('merged/low')).toBe(false)
    expect(has('dir-becomes-file/x')).toBe(false)
  })
})

describe('velo mount: a damaged manifest', () => {
  const {guard, tmp} = mountFixture()

  it('never lists names a layer cannot hold (".", "..", with "/" or NUL), and the rest stays served', async () => {
    const {ManifestDb} = await import('../../src/manifest/db')
    const {entryKey, decodeEntry} = await import('../../src/manifest/entry')
    const home = tmp('velo-fuse-home-')
    const work = tmp('velo-fuse-work-')
    const [layer] = buildImage(home, 'damaged', [{good: 'fine\n', 'sub/x': 'x\n'}])
    const db = ManifestDb.open(home)
    try {
      const lid = Buffer.from(layer, 'hex')
      const good = db.entries.get(entryKey(lid, 1, Buffer.from('good')))!
      decodeEntry(good) // a valid entry value, put under names the writer would never accept
      for (const bad of ['..', '.', 'a/b', 'nul\0byte']) db.entries.putSync(entryKey(lid, 1, Buffer.from(bad)), good)
    } finally {
      db.close()
    }
    const mnt = path.join(work, 'mnt')
    mount(guard, home, 'damaged', mnt)
    expect(fs.readdirSync(mnt).sort()).toEqual(['good', 'sub'])
    expect(sh(`ls -a '${mnt}'`).stdout.split('\n').filter(Boolean)).toEqual(['.', '..', 'good', 'sub'])
    expect(fs.readFileSync(path.join(mnt, 'good'), 'utf8')).toBe('fine\n')
    expect(fs.readFileSync(path.join(mnt, '..', 'mnt', 'sub', 'x'), 'utf8')).toBe('x\n')
  })
})

/** The errno code a call fails with, or 'no error'. */
function errnoOf(fn: () => unknown): string {
  try {
    fn()
    return 'no error'
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? String(err)
  }
}
