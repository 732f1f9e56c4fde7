import * as fs from 'node:fs'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {SandboxHome, tenantCgroup, uniq} from './fixture'

const V1 = !fs.existsSync('/sys/fs/cgroup/cgroup.controllers')

describe(`sandbox limits (cgroup ${V1 ? 'v1 / hybrid' : 'v2'})`, () => {
  const sb = new SandboxHome()
  const cg = (ctrl: string, name: string, file: string) => fs.readFileSync(`${tenantCgroup(sb.home, name, ctrl)}/${file}`, 'utf8').trim()
  const MEM = uniq('mem')
  const BOMB = uniq('bomb')
  const OTHER = uniq('other')

  beforeAll(() => {
    sb.create(MEM, ['--memory', '64m', '--cpus', '0.5'])
    sb.create(BOMB, ['--pids', '40'])
    sb.create(OTHER)
  })
  afterAll(() => {
    expect(sb.cleanup()).toEqual({mounts: [], cgroups: [], tenants: []})
  })

  it('writes the limits into the tenant cgroups', () => {
    if (V1) {
      expect(cg('memory', MEM, 'memory.limit_in_bytes')).toBe(String(64 * 1024 * 1024))
      expect(cg('cpu', MEM, 'cpu.cfs_quota_us')).toBe('50000')
      expect(cg('pids', BOMB, 'pids.max')).toBe('40')
    } else {
      expect(cg('', MEM, 'memory.max')).toBe(String(64 * 1024 * 1024))
      expect(cg('', MEM, 'cpu.max')).toBe('50000 100000')
      expect(cg('', BOMB, 'pids.max')).toBe('40')
    }
    // the tenant's processes are in its own cgroups (and see themselves at the root of their cgroup namespace)
    const r = sb.sh(MEM, 'cat /proc/self/cgroup')
    expect(r.stdout).toMatch(/memory:\/$|0::\/$/m)
  })

  it('a workload sees its own limits, as under Docker: Node sizes its heap from the memory limit, not the host', () => {
    // the tenant's cgroups are mounted read-only at /sys/fs/cgroup (its cgroup namespace makes them the root)
    const r = sb.exec(MEM, ['node', '-e', 'console.log(process.constrainedMemory(), require("v8").getHeapStatistics().heap_size_limit < 1024 * 1024 * 1024)'])
    expect(r.stdout).toBe(`${64 * 1024 * 1024} true\n`)
    expect(sb.sh(MEM, V1 ? 'touch /sys/fs/cgroup/memory/x 2>&1; cat /sys/fs/cgroup/pids/pids.max' : 'touch /sys/fs/cgroup/x 2>&1; cat /sys/fs/cgroup/pids.max').stdout).toMatch(/Read-only file system\n(max|\d+)\n$/)
  })

  it('a memory hog is killed (137) and only it: the sandbox and its neighbours keep running', () => {
    const hog = sb.exec(MEM, ['node', '-e', 'const a=[]; for(;;) a.push(Buffer.alloc(1<<20, 1))'])
    expect(hog.status).toBe(137)
    const oom = sb.json(['sandbox', 'inspect', MEM]).usage.oomKills
    expect(oom).toBeGreaterThanOrEqual(1)
    expect(sb.json(['sandbox', 'inspect', MEM]).status).toBe('running')
    expect(sb.exec(MEM, ['echo', 'alive']).stdout).toBe('alive\n')
    expect(sb.exec(OTHER, ['echo', 'neighbour']).stdout).toBe('neighbour\n')
  })

  it('a fork bomb hits its pids limit while another tenant keeps running', async () => {
    // 200 sleepers against a limit of 40 tasks: forks start failing, the shell reports it
    const bomb = sb.veloAsync(['sandbox', 'exec', BOMB, '--', 'sh', '-c', 'i=0; while [ $i -lt 200 ]; do sleep 3 & i=$((i+1)); done 2>&1 | tail -n1; wait'])
    // meanwhile the neighbour forks freely
    const other = sb.sh(OTHER, 'for i in 1 2 3 4 5 6 7 8 9 10; do sh -c "true" & done; wait; echo ok')
    expect(other.stdout).toBe('ok\n')
    const r = await bomb
    expect(r.stdout + r.stderr).toMatch(/can't fork|Resource temporarily unavailable|fork/i)
    if (V1) expect(Number(cg('pids', BOMB, 'pids.events').split(' ')[1] ?? cg('pids', BOMB, 'pids.events').match(/max (\d+)/)?.[1])).toBeGreaterThan(0)
    // the bombed tenant recovers once its sleepers end
    expect(sb.exec(BOMB, ['echo', 'recovered']).stdout).toBe('recovered\n')
  })
})
