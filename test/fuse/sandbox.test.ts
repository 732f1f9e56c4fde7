import * as fs from 'node:fs'
import * as path from 'node:path'
import {afterAll, describe, expect, it} from 'vitest'
import {listRecords} from '../../src/fuse/mounts'
import {isolationSuite} from '../sandbox/isolation.suite'
import {SandboxHome, uniq} from '../sandbox/fixture'
import {fuseIdmapMissing, isMounted} from './fixtures'

const IDMAP_MISSING = fuseIdmapMissing()

// The same isolation tests as on link farms, with the image's lower layer served by velo-fuse: in the tenant's
// user namespace (the mount idmapped, as a farm is), and with root's opt-out.
isolationSuite('fuse', IDMAP_MISSING)
isolationSuite('fuse-host')

describe('sandbox --backend fuse', () => {
  const sb = new SandboxHome(['--backend', 'fuse', '--userns', 'host'])
  afterAll(() => {
    const left = sb.cleanup()
    expect(left).toEqual({mounts: [], cgroups: [], tenants: []})
  })

  it('shares one daemon per image between tenants, survives stop/start and a killed daemon, and unmounts with the last rm', () => {
    const A = uniq('fa')
    const B = uniq('fb')
    sb.create(A)
    sb.create(B)
    const [rec] = listRecords(sb.home)
    expect(rec).toMatchObject({shared: true, image: 'default'})
    expect(rec.users.sort()).toEqual([`tenant:${A}`, `tenant:${B}`].sort())
    expect(sb.json(['sandbox', 'inspect', A])).toMatchObject({backend: 'fuse', lowers: [rec.dir]})
    expect(sb.exec(A, ['node', '-e', 'console.log(6*7)']).stdout).toBe('42\n')
    expect(sb.sh(B, 'echo b > /etc/b && cat /etc/b').stdout).toBe('b\n')
    expect(fs.existsSync(path.join(rec.dir, 'etc', 'b'))).toBe(false)

    // the daemon dies: running tenants lose their lower layer; a stop/start mounts the image afresh
    process.kill(rec.pid, 'SIGKILL')
    sb.json(['sandbox', 'stop', A])
    sb.json(['sandbox', 'start', A])
    const [fresh] = listRecords(sb.home)
    expect(fresh.pid).not.toBe(rec.pid)
    expect(fresh.users.sort()).toEqual([`tenant:${A}`, `tenant:${B}`].sort())
    expect(sb.exec(A, ['node', '-e', 'console.log(7*6)']).stdout).toBe('42\n')

    sb.json(['sandbox', 'rm', '-f', A])
    expect(isMounted(fresh.dir)).toBe(true) // B still holds it
    sb.json(['sandbox', 'rm', '-f', B])
    expect(isMounted(fresh.dir)).toBe(false)
    expect(listRecords(sb.home)).toEqual([])
  })

  it.skipIf(!!IDMAP_MISSING)('in a user namespace: image owners as the image says, writes owned by the tenant\'s range on the host, commit gives the image\'s ids back', () => {
    const [A, B] = [uniq('fu-a'), uniq('fu-b')]
    for (const n of [A, B]) {
      sb.track(n)
      sb.json(['sandbox', 'create', n, '--backend', 'fuse']) // the default: a user namespace of its own
    }
    const [rec] = listRecords(sb.home)
    expect(rec).toMatchObject({shared: true, idmap: true})
    expect(rec.users.sort()).toEqual([`tenant:${A}`, `tenant:${B}`].sort())
    const hostIds = (n: string) => sb.json(['sandbox', 'inspect', n]).hostIds
    const [ha, hb] = [hostIds(A), hostIds(B)]
    expect(ha.uid[0].hostID).not.toBe(hb.uid[0].hostID) // one daemon, two ranges
    const r = sb.sh(A, 'cat /proc/self/uid_map; stat -c "%u:%g %n" /etc/passwd /home/node; chown 1000:1000 /tmp && echo w > /etc/fu-w && stat -c "%u:%g %n" /etc/fu-w')
    expect(r.stderr).toBe('')
    expect(r.stdout.split('\n')[0].trim().split(/\s+/)).toEqual(['0', String(ha.uid[0].hostID), '65536'])
    expect(r.stdout).toContain('0:0 /etc/passwd\n1000:1000 /home/node\n0:0 /etc/fu-w')
    const upper = path.join(sb.home, 'tenants', A, 'upper')
    expect(fs.statSync(path.join(upper, 'etc', 'fu-w')).uid).toBe(ha.uid[0].hostID)
    expect(fs.statSync(path.join(upper, 'tmp')).uid).toBe(ha.uid[0].hostID + 1000)
    // B sees neither A's file nor anything written into the shared mount
    expect(sb.sh(B, 'cat /etc/fu-w 2>&1').stdout).toMatch(/No such file/)
    expect(fs.existsSync(path.join(rec.dir, 'etc', 'fu-w'))).toBe(false)
    sb.json(['sandbox', 'stop', A])
    sb.json(['sandbox', 'commit', A, 'fu-img'])
    const co = path.join(sb.home, 'fu-co')
    sb.json(['image', 'checkout', 'fu-img', co])
    expect(fs.statSync(path.join(co, 'etc', 'fu-w')).uid).toBe(0)
    expect(fs.statSync(path.join(co, 'tmp'))).toMatchObject({uid: 1000, gid: 1000})
    fs.rmSync(co, {recursive: true, force: true})
    for (const n of [A, B]) sb.json(['sandbox', 'rm', '-f', n])
    expect(isMounted(rec.dir)).toBe(false)
  })

  it.skipIf(!IDMAP_MISSING)('in a user namespace on a kernel that cannot idmap a FUSE mount: UNSUPPORTED naming --userns host, nothing left', () => {
    const A = uniq('fu-no')
    sb.track(A)
    const r = sb.velo(['sandbox', 'create', A, '--backend', 'fuse'])
    expect(r.status).not.toBe(0)
    expect(r.stderr).toMatch(/UNSUPPORTED[\s\S]*FUSE_ALLOW_IDMAP[\s\S]*--userns host/)
    expect(fs.existsSync(path.join(sb.home, 'tenants', A))).toBe(false)
    expect(listRecords(sb.home)).toEqual([])
  })

  it('rejects an unknown backend', () => {
    const r = sb.velo(['sandbox', 'create', uniq('bad'), '--backend', 'nfs'])
    expect(r.status).toBe(2)
    expect(r.stderr).toMatch(/backend/)
  })
})
