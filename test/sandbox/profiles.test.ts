import * as fs from 'node:fs'
import * as path from 'node:path'
import {afterAll, describe, expect, it} from 'vitest'
import {loadProfile, validateProfile} from '../../src/profiles/profile'
import {SandboxHome, uniq} from './fixture'

const base = () => JSON.parse(fs.readFileSync(path.join(__dirname, '../../profiles/default.json'), 'utf8'))

describe('profiles', () => {
  it('the shipped profiles are valid', () => {
    for (const f of fs.readdirSync(path.join(__dirname, '../../profiles'))) {
      const p = loadProfile(f.replace(/\.json$/, ''))
      expect(p.name).toBe(f.replace(/\.json$/, ''))
      expect(p.capabilities).not.toContain('SYS_ADMIN')
    }
  })

  it.each([
    [{limits: {memory: 'lots'}}, /limits\.memory: cannot read "lots"/],
    [{limits: {pids: 3}}, /limits\.pids: must be an integer between 8/],
    [{limits: {swap: 1}}, /limits\.swap: unknown limit/],
    [{capabilities: ['SYS_ADMIN']}, /capabilities: CAP_SYS_ADMIN cannot be granted/],
    [{capabilities: ['FLY']}, /capabilities: unknown capability "FLY"/],
    [{network: 'host'}, /network: must be "loopback".*"host"/],
    [{namespaces: ['mnt', 'pid']}, /namespaces: uts is required/],
    [{namespaces: ['mnt', 'pid', 'uts', 'ipc', 'net', 'cgroup', 'user']}, /namespaces: 'user' namespaces are not supported/],
    [{mounts: [{source: 'rel', target: '/x'}]}, /mounts\[0\].*absolute path/],
    [{mounts: [{source: '/tmp', target: '/x/../../etc'}]}, /mounts\[0\].*'\.\.'/],
    [{env: {'BAD-KEY': 'x'}}, /env\.BAD-KEY: invalid environment variable name/],
    [{seccomp: 'off'}, /seccomp: must be "default" or "unconfined"/],
    [{colour: 'blue'}, /colour: unknown field/],
  ])('rejects %j naming the field', (patch, re) => {
    expect(() => validateProfile({...base(), ...patch}, 'x.json')).toThrow(re)
  })

  describe('through the CLI', () => {
    const sb = new SandboxHome()
    afterAll(() => {
      expect(sb.cleanup()).toEqual({mounts: [], cgroups: [], tenants: []})
    })

    it('a bad profile file is a clear error and creates nothing', () => {
      const f = path.join(sb.home, 'bad.json')
      fs.writeFileSync(f, JSON.stringify({...base(), limits: {memory: '1x'}}))
      const r = sb.velo(['sandbox', 'create', uniq('bad'), '--profile', f])
      expect(r.status).toBe(1)
      expect(r.stderr).toMatch(/BAD_INPUT.*limits\.memory/)
      const u = sb.velo(['sandbox', 'create', uniq('bad'), '--profile', 'nope'])
      expect(u.stderr).toMatch(/NOT_FOUND[^]*known profiles: .*ci-runner/)
      expect(fs.existsSync(path.join(sb.home, 'tenants')) ? fs.readdirSync(path.join(sb.home, 'tenants')) : []).toEqual([])
    })

    it('ci-runner: no network at all, CI=true, its limits; --mount binds read-only', () => {
      const N = uniq('ci')
      const src = path.join(sb.home, 'src')
      fs.mkdirSync(src)
      fs.writeFileSync(path.join(src, 'job.sh'), 'echo job ran\n')
      sb.create(N, ['--profile', 'ci-runner', '--mount', `${src}:/src:ro`, '--env', 'EXTRA=1'])
      const r = sb.sh(N, 'cat /sys/class/net/lo/operstate; echo $CI $EXTRA; sh /src/job.sh; touch /src/x 2>&1 | grep -c Read-only')
      expect(r.stdout).toBe('down\ntrue 1\njob ran\n1\n')
      const info = sb.json(['sandbox', 'inspect', N])
      expect(info.limits).toEqual({memory: 2 * 1024 ** 3, pids: 2048, cpus: 2})
      expect(info.profile).toBe('ci-runner')
    })
  })
})
