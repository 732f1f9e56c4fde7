import {spawn, spawnSync} from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {afterAll, describe, expect, it} from 'vitest'
import {VELO, velo} from '../helpers'
import {SandboxHome, uniq} from '../sandbox/fixture'

// The event journal: native/cli/events.c writes it (for both front doors), `velo events` reads it.
const NATIVE_BIN = path.join(__dirname, '../../native/build/velo')

describe('velo events', () => {
  const sb = new SandboxHome()
  afterAll(() => {
    expect(sb.cleanup()).toEqual({mounts: [], cgroups: [], tenants: []})
  })
  const events = (args: string[] = []) =>
    sb
      .velo(['events', '--json', ...args])
      .stdout.split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l))

  it('a sandbox\'s life on both front doors, in order; filters, --since/--until, the human form', () => {
    const [A, B] = [uniq('ev'), uniq('evn')]
    const t0 = new Date().toISOString()
    expect(sb.velo(['sandbox', 'run', '-d', '--name', A, '--', 'sh', '-c', 'exit 4']).status).toBe(0)
    expect(sb.velo(['sandbox', 'wait', A]).stdout).toBe('4\n')
    expect(velo(sb.home, ['sandbox', 'create', B], {env: {VELO_NATIVE: '0'}}).status).toBe(0)
    expect(velo(sb.home, ['sandbox', 'stop', '-t', '1', B], {env: {VELO_NATIVE: '0'}}).status).toBe(0)
    expect(sb.velo(['sandbox', 'rm', '-f', A, B]).status).toBe(0)
    const of = (n: string) => events(['--since', t0, '--filter', `name=${n}`]).map((e) => e.action)
    expect(of(A)).toEqual(['create', 'start', 'die', 'stop', 'rm'])
    expect(of(B)).toEqual(['create', 'start', 'stop', 'rm'])
    const die = events(['--filter', 'action=die', '--filter', `name=${A}`])
    expect(die).toHaveLength(1)
    expect(die[0]).toMatchObject({type: 'sandbox', action: 'die', name: A, attrs: {exitCode: '4'}})
    expect(die[0].time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/)
    // one key twice: either value
    expect(events(['--since', t0, '--filter', `name=${A}`, '--filter', `name=${B}`, '--filter', 'action=rm'])).toHaveLength(2)
    expect(events(['--until', '2000-01-01T00:00:00Z'])).toEqual([])
    expect(sb.velo(['events', '--filter', `name=${A}`, '--filter', 'action=die']).stdout).toMatch(new RegExp(`Z sandbox die ${A} \\(exitCode=4\\)\\n$`))
    const bad = sb.velo(['events', '--filter', 'oops'])
    expect(bad.status).toBe(2)
    expect(bad.stderr).toMatch(/expected KEY=VALUE/)
  })

  it('a memory limit that kills a process of the tenant: "oom" before "die", and oomKilled in the record', () => {
    // the main command survives and exits 3: the kill is counted by the tenant's memory cgroup, not read off a signal
    const N = uniq('evo')
    const t0 = new Date().toISOString()
    const hog = 'node -e "const a=[];for(;;)a.push(Buffer.alloc(1<<20,1))"; exit 3'
    expect(sb.velo(['sandbox', 'run', '-d', '--name', N, '--memory', '48m', '--', 'sh', '-c', hog]).status).toBe(0)
    expect(sb.velo(['sandbox', 'wait', N]).stdout).toBe('3\n')
    const evs = events(['--since', t0, '--filter', `name=${N}`])
    expect(evs.map((e) => e.action)).toEqual(['create', 'start', 'oom', 'die', 'stop'])
    expect(evs[3].attrs).toEqual({exitCode: '3', oomKilled: 'true'})
    const w = JSON.parse(sb.velo(['sandbox', 'inspect', N, '--json']).stdout).workload
    expect(w).toMatchObject({exitCode: 3, oomKilled: true, running: false})
    expect(sb.velo(['sandbox', 'rm', '-f', N]).status).toBe(0)
  })

  it('networks and commits are in the journal: network create/rm, image commit', () => {
    const [net, N, img] = [uniq('evnet'), uniq('evc'), uniq('evimg')]
    const t0 = new Date().toISOString()
    try {
      expect(sb.velo(['network', 'create', net, '--internal']).status).toBe(0)
      sb.create(N)
      expect(sb.velo(['sandbox', 'exec', N, '--', 'sh', '-c', 'echo x > /tmp/x']).status).toBe(0)
      expect(sb.velo(['sandbox', 'stop', '-t', '1', N]).status).toBe(0)
      expect(sb.velo(['sandbox', 'commit', N, img]).status).toBe(0)
    } finally {
      sb.velo(['sandbox', 'rm', '-f', N])
      sb.velo(['image', 'rm', img])
      sb.velo(['network', 'rm', net])
    }
    const evs = events(['--since', t0]).filter((e) => e.type !== 'sandbox')
    expect(evs.map((e) => [e.type, e.action, e.name])).toEqual([
      ['network', 'create', net],
      ['image', 'commit', img],
      ['image', 'rm', img],
      ['network', 'rm', net],
    ])
    expect(evs[0].attrs).toMatchObject({internal: 'true', subnet: expect.stringMatching(/^10\.89\.\d+\.0\/24$/)})
    expect(evs[1].attrs).toMatchObject({sandbox: N, layer: expect.stringMatching(/\S/)})
  })

  it('-f prints events as they happen', async () => {
    const N = uniq('evf')
    const c = spawn(VELO, ['events', '-f', '--json', '--filter', `name=${N}`], {env: {...process.env, VELO_HOME: sb.home}})
    let out = ''
    c.stdout.on('data', (d) => (out += d))
    try {
      await new Promise((r) => setTimeout(r, 1000))
      sb.create(N)
      expect(sb.velo(['sandbox', 'rm', '-f', N]).status).toBe(0)
      for (let i = 0; i < 100 && !out.includes('"rm"'); i++) await new Promise((r) => setTimeout(r, 50))
      expect(out.trim().split('\n').map((l) => JSON.parse(l).action)).toEqual(['create', 'start', 'rm'])
    } finally {
      c.kill('SIGTERM')
      await new Promise((r) => (c.exitCode !== null ? r(null) : c.on('close', r)))
    }
  })

  it('writers killed with SIGKILL mid-call leave only whole lines; the journal stays bounded (about 2 MiB) and readable', async () => {
    const home = path.join(sb.home, 'journal-test')
    fs.mkdirSync(home)
    // 120 concurrent appends of 10 KiB lines, every third killed at once
    const big = 'x'.repeat(10 * 1024)
    const procs = Array.from({length: 120}, (_, i) => spawn(NATIVE_BIN, ['__event', '--home', home, 'store', 'test', `n${i}`, `pad=${big}`, `i=${i}`], {stdio: 'ignore'}))
    procs.forEach((p, i) => i % 3 === 0 && p.kill('SIGKILL'))
    await Promise.all(procs.map((p) => new Promise((r) => (p.exitCode !== null || p.signalCode !== null ? r(null) : p.on('close', r)))))
    const lines = ['events.log.1', 'events.log'].flatMap((f) => (fs.existsSync(path.join(home, f)) ? fs.readFileSync(path.join(home, f), 'utf8').split('\n').filter(Boolean) : []))
    for (const l of lines) expect(() => JSON.parse(l)).not.toThrow()
    expect(lines.length).toBeGreaterThanOrEqual(80) // the 80 not killed, and maybe some killed after their write
    // past 1 MiB the journal rotates: events.log.1 exists and the two stay under twice the bound plus a line
    for (let i = 0; i < 120; i++) spawnSync(NATIVE_BIN, ['__event', '--home', home, 'store', 'test', `m${i}`, `pad=${big}`])
    const size = (f: string) => (fs.existsSync(path.join(home, f)) ? fs.statSync(path.join(home, f)).size : 0)
    expect(size('events.log.1')).toBeGreaterThan(0)
    expect(size('events.log') + size('events.log.1')).toBeLessThan(2 * 1024 * 1024 + 2 * 11 * 1024)
    const last = velo(home, ['events', '--json', '--filter', 'name=m119']).stdout.trim().split('\n')
    expect(last).toHaveLength(1)
    expect(JSON.parse(last[0]).attrs.pad).toHaveLength(big.length)
  })
})
