import * as fs from 'node:fs'
import * as path from 'node:path'
import {afterAll, describe, expect, it} from 'vitest'
import {listRecords} from '../../src/fuse/mounts'
import {isolationSuite} from '../sandbox/isolation.suite'
import {SandboxHome, uniq} from '../sandbox/fixture'
import {isMounted} from './fixtures'

// The same isolation tests as on link farms, with the image's lower layer served by velo-fuse.
isolationSuite('fuse')

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

  it('rejects an unknown backend', () => {
    const r = sb.velo(['sandbox', 'create', uniq('bad'), '--backend', 'nfs'])
    expect(r.status).toBe(2)
    expect(r.stderr).toMatch(/backend/)
  })
})
