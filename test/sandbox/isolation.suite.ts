import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {SandboxHome, uniq} from './fixture'

// Real namespaces, overlay mounts and cgroups: two tenants on the default image, attacked from inside.
// Run for each kind of tenant: isolation.test.ts (link farms, in a user namespace of its own: the default; and
// link farms with --userns host, root's opt-out), test/fuse/sandbox.test.ts (FUSE, in a user namespace: the
// image's mount idmapped; and FUSE with --userns host). SKIP: why this kind cannot run on this host (printed).
const CREATE_ARGS = {farm: [], host: ['--userns', 'host'], fuse: ['--backend', 'fuse'], 'fuse-host': ['--backend', 'fuse', '--userns', 'host']}
export function isolationSuite(backend: keyof typeof CREATE_ARGS, skip?: string): void {
if (skip) console.warn(`skipping sandbox isolation (${backend}): ${skip}`)
describe.skipIf(!!skip)(`sandbox isolation (${backend})`, () => {
  const sb = new SandboxHome(CREATE_ARGS[backend])
  const A = uniq('iso-a')
  const B = uniq('iso-b')
  const hostMarker = path.join(os.tmpdir(), uniq('velo-host-marker'))

  beforeAll(() => {
    fs.writeFileSync(hostMarker, 'host secret\n')
    sb.create(A)
    sb.create(B)
  })
  afterAll(() => {
    fs.rmSync(hostMarker, {force: true})
    const left = sb.cleanup()
    expect(left).toEqual({mounts: [], cgroups: [], tenants: []})
  })

  it("keeps tenant A's writes from B and from the image (its shared farm)", () => {
    let r = sb.sh(A, 'echo from-a > /etc/a-marker && echo "intruder:x:0:0::/:/bin/sh" >> /etc/passwd && rm /bin/ls && cat /etc/a-marker')
    expect(r.stderr).toBe('')
    expect(r.stdout).toBe('from-a\n')
    r = sb.sh(B, 'cat /etc/a-marker; grep -c intruder /etc/passwd; ls / >/dev/null && echo ls-ok')
    expect(r.stdout).toContain('ls-ok')
    expect(r.stdout).toContain('0\n')
    expect(r.stderr).toMatch(/a-marker.*No such file/)
    // the farm (shared lower layer) is untouched
    const layer = sb.json(['sandbox', 'inspect', A]).lowers[0]
    expect(fs.existsSync(path.join(layer, 'etc', 'a-marker'))).toBe(false)
    expect(fs.readFileSync(path.join(layer, 'etc', 'passwd'), 'utf8')).not.toContain('intruder')
    expect(fs.lstatSync(path.join(layer, 'usr', 'bin', 'ls')).isSymbolicLink()).toBe(true)
  })

  it('sees none of the host: no host files, no store, no host processes, only lo', () => {
    const r = sb.sh(
      A,
      `cat ${hostMarker} 2>&1; ls ${sb.home} 2>&1; ls /proc/1/root${sb.home} 2>&1; ` +
        'echo PS; ps -o pid,comm | tail -n +2; echo NET; ls /sys/class/net; cat /proc/net/dev | tail -n +3 | cut -d: -f1',
    )
    expect(r.stdout).not.toContain('host secret')
    expect(r.stdout).toMatch(/No such file/)
    const ps = r.stdout.split('PS\n')[1].split('NET\n')[0].trim().split('\n')
    // init (pid 1), sh, ps — and nothing else: the host's processes (vitest, this test's node) are invisible
    expect(ps.length).toBeLessThanOrEqual(4)
    expect(ps[0].trim()).toMatch(/^1 /)
    expect(r.stdout).not.toMatch(/vitest|node /)
    const net = r.stdout.split('NET\n')[1].trim().split(/\s+/)
    expect(net).toEqual(['lo', 'lo'])
  })

  it('cannot mount, unshare, load modules, change the hostname or write /proc/sys', () => {
    const before = os.hostname()
    const r = sb.sh(
      A,
      'mount -t tmpfs none /mnt 2>&1 && echo MOUNTED; ' +
        'unshare -m true 2>&1 && echo UNSHARED; ' +
        'insmod /bin/busybox 2>&1 && echo LOADED; ' +
        'hostname evil-host 2>&1 && echo RENAMED; ' +
        'echo 3 > /proc/sys/vm/drop_caches 2>&1 && echo SYSCTL; ' +
        'echo evil > /proc/sys/kernel/hostname 2>&1 && echo SYSCTL2; ' +
        'echo b > /proc/sysrq-trigger 2>&1 && echo SYSRQ; ' +
        'mknod /tmp/sda b 8 0 2>&1 && echo MKNOD; ' +
        'cat /proc/kcore 2>&1 | head -c 10 | wc -c; grep CapBnd /proc/self/status; hostname',
    )
    for (const bad of ['MOUNTED', 'UNSHARED', 'LOADED', 'RENAMED', 'SYSCTL', 'SYSRQ', 'MKNOD']) expect(r.stdout).not.toContain(bad)
    expect(r.stdout).toMatch(/Operation not permitted|Permission denied/)
    expect(r.stdout + r.stderr).toMatch(/Read-only file system/)
    expect(os.hostname()).toBe(before)
    expect(r.stdout.trim().split('\n').pop()).toBe(A.slice(0, 63))
    // the capability bounding set: no SYS_ADMIN (21), SYS_MODULE (16), MKNOD (27), NET_ADMIN (12)
    const bnd = BigInt('0x' + /CapBnd:\s*([0-9a-f]+)/.exec(r.stdout)![1])
    for (const cap of [21n, 16n, 27n, 12n, 19n, 17n]) expect((bnd >> cap) & 1n).toBe(0n)
  })

  it('cannot reach the host root through /proc/1/root, .., symlinks or a chroot trick', () => {
    const r = sb.sh(
      A,
      'stat -L -c %i / /.. /../../.. /proc/self/root /proc/self/root/.. /proc/self/root/../.. | sort -u | wc -l; ' +
        'ln -s / /tmp/up && ls /tmp/up/../../../ | tr "\\n" " "; echo; ' +
        'mkdir -p /jail/bin && cp /bin/busybox /jail/bin/ && ' +
        'chroot /jail /bin/busybox sh -c "cd /../../..; /bin/busybox ls /" 2>&1; ' +
        `ls /proc/1/root/ 2>&1; ls /proc/1/root${hostMarker} /proc/self/root${hostMarker} 2>&1`,
    )
    const lines = r.stdout.split('\n')
    expect(lines[0]).toBe('1') // /, /.., /proc/self/root and its parents are all the same inode
    expect(r.stdout).toMatch(/\/proc\/1\/root.*Permission denied/) // init is not dumpable: its root is off limits
    expect(lines[1]).toContain('usr')
    expect(lines[1]).not.toContain('tenants')
    expect(lines[2]).toBe('bin') // inside the jail only its own dir
    expect(r.stdout).not.toContain('host secret')
    expect(r.stdout).toMatch(/No such file/)
  })

  it('a bind target behind a symlink planted in the image resolves inside the root, never on the host', () => {
    // an image whose /link points at a host directory by absolute path, and whose /tmpl points at /tmp
    const hostDir = fs.mkdtempSync(path.join(os.tmpdir(), 'velo-host-dir-'))
    const img = fs.mkdtempSync(path.join(os.tmpdir(), 'velo-evil-img-'))
    const src = fs.mkdtempSync(path.join(os.tmpdir(), 'velo-bind-src-'))
    const E = uniq('evil')
    const F = uniq('evil2')
    const sub = path.basename(hostDir) + '-sub'
    try {
      for (const d of ['proc', 'sys', 'dev', 'tmp']) fs.mkdirSync(path.join(img, d))
      fs.symlinkSync(hostDir, path.join(img, 'link'))
      fs.symlinkSync('/tmp', path.join(img, 'tmpl'))
      fs.writeFileSync(path.join(src, 'payload'), 'bound\n')
      sb.json(['ingest', img, '--name', `evil-${E}`])
      // 1. the symlink names a directory that exists only on the host: the bind's mount point is made where the
      //    link leads *inside* the root (as runc does), never on the host
      sb.create(E, ['--image', `evil-${E}`, '--mount', `${src}:/link/sub`])
      const pid = sb.json(['sandbox', 'inspect', E]).pid
      expect(fs.readFileSync(`/proc/${pid}/mountinfo`, 'utf8')).toContain(` ${hostDir}/sub `)
      expect(fs.readdirSync(hostDir)).toEqual([])
      expect(fs.readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(hostDir)
      expect(fs.existsSync(path.join(sb.home, 'tenants', E, 'upper', hostDir.slice(1), 'sub'))).toBe(true)
      // 2. the symlink names /tmp, which exists in both: the bind lands in the sandbox's /tmp, not the host's
      sb.create(F, ['--image', `evil-${E}`, '--mount', `${src}:/tmpl/${sub}`])
      expect(fs.existsSync(path.join('/tmp', sub))).toBe(false)
      expect(fs.readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(hostDir)
      expect(fs.existsSync(path.join(sb.home, 'tenants', F, 'upper', 'tmp', sub))).toBe(true)
    } finally {
      sb.velo(['sandbox', 'rm', '-f', E])
      sb.velo(['sandbox', 'rm', '-f', F])
      for (const d of [hostDir, img, src, path.join('/tmp', sub)]) fs.rmSync(d, {recursive: true, force: true})
    }
  })

  it('rewriting and deleting image files in a tenant leaves every CAS object hashing to its name', () => {
    const r = sb.sh(
      B,
      'echo garbage > /usr/bin/node; chmod 777 /usr/bin/busybox; chown 1000 /etc/passwd; echo x >> /etc/group; ' +
        'rm -rf /usr/lib/node_modules/npm; truncate -s 0 /usr/lib/x86_64-linux-gnu/libc.so.6 2>/dev/null || : > /usr/lib/x86_64-linux-gnu/libc.so.6; ' +
        'cat /usr/bin/node',
    )
    expect(r.stdout).toBe('garbage\n')
    const fsck = sb.json(['fsck'])
    expect(fsck.problems).toEqual([])
    expect(fsck.objectsChecked).toBeGreaterThan(1000)
    // and the other tenant still runs node from the untouched farm
    const a = sb.exec(A, ['node', '-e', 'console.log(6*7)'])
    expect(a.stdout).toBe('42\n')
  })
})
}
