/**
 * A tenant's disk: --disk (a project quota on its upper and work dirs, native/cli/disk.c) and --io-read-bps /
 * --io-write-bps (the cgroup's throttle on the disk under the store). Project quotas need a filesystem made with
 * them and a kernel with quota formats: the quota test makes a loop ext4 with project quotas and runs there; a
 * kernel without quota support (this host's 6.18 has no QFMT_V2 and no XFS_QUOTA) skips it with the reason, and
 * the Debian kernels of `npm run test:hosts` run it.
 */
import {spawnSync} from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {afterAll, describe, expect, it} from 'vitest'
import {rmrf, tmpDir} from '../helpers'
import {SandboxHome, tenantCgroup, uniq} from './fixture'

const V1 = !fs.existsSync('/sys/fs/cgroup/cgroup.controllers')

/** The whole disk under path, as "major:minor" (a partition's parent) */
function diskOf(p: string): string {
  const dev = fs.statSync(p).dev
  const sys = `/sys/dev/block/${Math.floor(dev / 256) & 0xfff}:${(dev & 0xff) | ((dev >> 12) & 0xfff00)}`
  return fs.existsSync(`${sys}/partition`) ? fs.readFileSync(path.join(fs.realpathSync(sys), '..', 'dev'), 'utf8').trim() : path.basename(sys)
}

/** A loop-mounted ext4 of `size` with project quotas enforced, or why this kernel cannot have one. */
function quotaFs(size: string): {dir: string; img: string} | {why: string} {
  const base = tmpDir('velo-quota-')
  fs.chmodSync(base, 0o711) // the store is below it: tenants' roots (user namespaces) must be able to search it
  const img = path.join(base, 'fs.img')
  const dir = path.join(base, 'mnt')
  fs.mkdirSync(dir)
  spawnSync('truncate', ['-s', size, img])
  const mk = spawnSync('mkfs.ext4', ['-q', '-O', 'quota,project', '-E', 'quotatype=prjquota', img], {encoding: 'utf8'})
  const m = mk.status === 0 ? spawnSync('mount', ['-o', 'loop,prjquota', img, dir], {encoding: 'utf8'}) : mk
  if (m.status !== 0) {
    const dmesg = spawnSync('dmesg', {encoding: 'utf8'}).stdout.trim().split('\n').slice(-2).join(' / ')
    rmrf(base)
    return {why: `no project quotas on this kernel: ${String(m.stderr).trim().split('\n')[0]} (${dmesg})`}
  }
  return {dir, img}
}

describe('tenant disk quota (--disk)', () => {
  const q = quotaFs('2G')
  const why = 'why' in q ? q.why : undefined
  if (why) console.warn(`skipping the --disk quota test: ${why}`)
  const sb = 'dir' in q ? new SandboxHome([], path.join(q.dir, 'home')) : undefined
  afterAll(() => {
    if (!sb || !('dir' in q)) return
    expect(sb.cleanup()).toEqual({mounts: [], cgroups: [], tenants: []})
    spawnSync('umount', [q.dir])
    rmrf(path.dirname(q.dir))
  })

  it.skipIf(!!why)('a tenant cannot write more than its quota into its own files; its neighbour can', () => {
    const A = uniq('quota')
    const B = uniq('free')
    sb!.create(A, ['--disk', '16m'])
    sb!.create(B)
    const r = sb!.sh(A, 'dd if=/dev/zero of=/fill bs=1M count=64 2>&1; sync; du -m /fill | cut -f1')
    expect(r.stdout).toMatch(/Disk quota exceeded|No space left/)
    const used = Number(r.stdout.trim().split('\n').pop())
    expect(used).toBeLessThanOrEqual(16)
    // the neighbour, on the same filesystem, is not limited
    expect(sb!.sh(B, 'dd if=/dev/zero of=/fill bs=1M count=64 2>/dev/null && du -m /fill | cut -f1').stdout.trim()).toBe('64')
    // space comes back when the tenant deletes: the quota counts what is there, not what was written
    expect(sb!.sh(A, 'rm /fill && dd if=/dev/zero of=/again bs=1M count=8 2>/dev/null && echo ok').stdout.trim()).toBe('ok')
  })

  it.skipIf(!!why)('a volume with --size: a tenant writing into it stops at the size (velo volume create --size)', () => {
    const V = uniq('qv')
    expect(sb!.velo(['volume', 'create', V, '--size', '8m']).status).toBe(0)
    const r = sb!.velo(['sandbox', 'run', '--rm', '-v', `${V}:/q`, '--', 'sh', '-c', 'dd if=/dev/zero of=/q/fill bs=1M count=32 2>&1; sync; du -m /q/fill | cut -f1'])
    expect(r.stdout).toMatch(/Disk quota exceeded|No space left/)
    expect(Number(r.stdout.trim().split('\n').pop())).toBeLessThanOrEqual(8)
    expect(sb!.velo(['volume', 'rm', V]).status).toBe(0)
  })
})

describe('tenant disk limits that the host cannot honour, and I/O rates', () => {
  const sb = new SandboxHome()
  afterAll(() => {
    expect(sb.cleanup()).toEqual({mounts: [], cgroups: [], tenants: []})
  })

  it('--disk on a store without project quotas is UNSUPPORTED with what to do, and leaves nothing', () => {
    const ext = spawnSync('findmnt', ['-no', 'OPTIONS', '-T', sb.home], {encoding: 'utf8'}).stdout
    if (/prjquota/.test(ext)) return // this store has them: the quota test above covers it
    const N = uniq('noquota')
    const r = sb.velo(['sandbox', 'create', N, '--disk', '64m', '--json'])
    expect(r.status).toBe(1)
    const e = JSON.parse(r.stdout).error
    expect(e.code).toBe('UNSUPPORTED')
    expect(e.message).toMatch(/--disk: the filesystem of .* (has no project quotas|does not enforce)/)
    expect(e.suggestion).toMatch(/prjquota/)
    expect(fs.existsSync(path.join(sb.home, 'tenants', N))).toBe(false)
  })

  it('a tenant cannot set project ids (FS_IOC_FSSETXATTR): the seccomp policy refuses it, reading them works', () => {
    const prog = path.join(sb.home, 'fsxattr')
    const cc = spawnSync('gcc', ['-static', '-O2', '-o', prog, path.join(__dirname, 'progs', 'fsxattr.c')], {encoding: 'utf8'})
    expect(cc.stderr).toBe('')
    const N = uniq('fsx')
    sb.create(N, ['--mount', `${prog}:/fsxattr:ro`])
    const r = sb.sh(N, 'touch /f && /fsxattr /f')
    expect(r.stdout).toBe('get ok\nset Operation not permitted\n')
    // the same no-op on the host succeeds: the refusal is the policy's, not the filesystem's
    fs.writeFileSync(path.join(sb.home, 'f'), '')
    expect(spawnSync(prog, [path.join(sb.home, 'f')], {encoding: 'utf8'}).stdout).toBe('get ok\nset ok\n')
  })

  it('bad sizes are BAD_INPUT naming the flag', () => {
    for (const [flag, v, msg] of [['--io-write-bps', '10', /1 KiB minimum/], ['--io-read-bps', 'fast', /cannot read/], ['--disk', '100k', /1 MiB minimum/]] as const) {
      const r = sb.velo(['sandbox', 'create', uniq('bad'), flag, v])
      expect([flag, r.status]).toEqual([flag, 1])
      expect(r.stderr).toMatch(new RegExp(`BAD_INPUT.*${flag}`))
      expect(r.stderr).toMatch(msg)
    }
  })

  it('--io-read-bps/--io-write-bps throttle the disk under the store (direct I/O)', () => {
    const N = uniq('io')
    sb.create(N, ['--io-read-bps', '8m', '--io-write-bps', '4m'])
    const disk = diskOf(sb.home)
    if (V1) {
      expect(fs.readFileSync(`${tenantCgroup(sb.home, N, 'blkio')}/blkio.throttle.write_bps_device`, 'utf8').trim()).toBe(`${disk} 4194304`)
      expect(fs.readFileSync(`${tenantCgroup(sb.home, N, 'blkio')}/blkio.throttle.read_bps_device`, 'utf8').trim()).toBe(`${disk} 8388608`)
    } else {
      expect(fs.readFileSync(`${tenantCgroup(sb.home, N)}/io.max`, 'utf8')).toMatch(new RegExp(`^${disk} rbps=8388608 wbps=4194304`, 'm'))
    }
    // 8 MiB written at 4 MiB/s cannot take less than ~2 s; read back at 8 MiB/s not less than ~1 s (a lower bound:
    // a slow machine only makes it longer)
    const t0 = Date.now()
    const w = sb.sh(N, 'dd if=/dev/zero of=/big bs=1M count=8 oflag=direct 2>&1')
    const t1 = Date.now()
    const rd = sb.sh(N, 'dd if=/big of=/dev/null bs=1M iflag=direct 2>&1')
    const t2 = Date.now()
    expect(w.status).toBe(0)
    expect(rd.status).toBe(0)
    expect(t1 - t0).toBeGreaterThan(1500)
    expect(t2 - t1).toBeGreaterThan(700)
  })

  it('I/O rates on a store that is not on a block device are UNSUPPORTED, and leave nothing', () => {
    const base = tmpDir('velo-tmpfs-store-')
    expect(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1g', 'tmpfs', base]).status).toBe(0)
    try {
      const home = path.join(base, 'home')
      const r = spawnSync(path.join(__dirname, '..', '..', 'bin', 'velo'), ['sandbox', 'create', 'io', '--io-write-bps', '1m', '--json'], {env: {...process.env, VELO_HOME: home}, encoding: 'utf8'})
      expect(r.status).toBe(1)
      const e = JSON.parse(r.stdout).error
      expect(e.code).toBe('UNSUPPORTED')
      expect(e.message).toMatch(/not on a block device/)
      expect(fs.existsSync(path.join(home, 'tenants', 'io'))).toBe(false)
    } finally {
      spawnSync('umount', ['-l', base])
      rmrf(base)
    }
  })
})
