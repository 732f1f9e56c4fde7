import {spawn, spawnSync} from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {afterAll, describe, expect, it} from 'vitest'
import {VELO} from '../helpers'
import {SandboxHome, tenantCgroup, uniq} from '../sandbox/fixture'

// `velo metrics` (src/ops/metrics.ts): the exposition is checked by Prometheus's own parser (promtool, Debian's
// prometheus package) and its values against what the kernel and the filesystem say.
const V1 = !fs.existsSync('/sys/fs/cgroup/cgroup.controllers')

/** name{labels} value → value, from an exposition promtool accepted */
function samples(text: string): Map<string, number> {
  const m = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue
    const i = line.lastIndexOf(' ')
    m.set(line.slice(0, i), Number(line.slice(i + 1)))
  }
  return m
}

function promtool(text: string): void {
  const r = spawnSync('timeout', ['30', 'promtool', 'check', 'metrics'], {input: text, encoding: 'utf8'})
  expect(r.status, r.stdout + r.stderr).toBe(0)
}

describe('velo metrics', () => {
  const sb = new SandboxHome()
  afterAll(() => {
    expect(sb.cleanup()).toEqual({mounts: [], cgroups: [], tenants: []})
  })

  it('the store and each sandbox, valid for Prometheus, matching du and the cgroup files', () => {
    const [A, B] = [uniq('ma'), uniq('mb')]
    sb.create(A, ['--memory', '96m', '--pids', '50'])
    sb.create(B)
    expect(sb.velo(['sandbox', 'stop', '-t', '1', B]).status).toBe(0)
    const r = sb.velo(['metrics'])
    expect(r.status, r.stderr).toBe(0)
    promtool(r.stdout)
    const m = samples(r.stdout)
    // the store's bytes: every object file's size under cas/
    const sizes = spawnSync('find', [path.join(sb.home, 'cas'), '-type', 'f', '-printf', '%s\\n'], {encoding: 'utf8'}).stdout.trim().split('\n').map(Number)
    expect(m.get('velo_store_objects')).toBe(sizes.length)
    expect(m.get('velo_store_physical_bytes')).toBe(sizes.reduce((a, b) => a + b, 0))
    // nothing cold here (no volume snapshot): stored = deduplicated, nothing compressed
    expect(m.get('velo_store_stored_bytes')).toBe(m.get('velo_store_physical_bytes'))
    expect(m.get('velo_store_compressed_objects')).toBe(0)
    // the running tenant: its limit and tasks as its cgroup files say; the stopped one is 0 and has no usage
    expect(m.get(`velo_sandbox_running{sandbox="${A}"}`)).toBe(1)
    expect(m.get(`velo_sandbox_running{sandbox="${B}"}`)).toBe(0)
    expect(m.has(`velo_sandbox_memory_bytes{sandbox="${B}"}`)).toBe(false)
    const cg = (ctrl: string, file: string) => fs.readFileSync(`${tenantCgroup(sb.home, A, ctrl)}/${file}`, 'utf8').trim()
    expect(m.get(`velo_sandbox_memory_limit_bytes{sandbox="${A}"}`)).toBe(Number(cg('memory', V1 ? 'memory.limit_in_bytes' : 'memory.max')))
    expect(m.get(`velo_sandbox_pids{sandbox="${A}"}`)).toBe(Number(cg('pids', 'pids.current')))
    expect(m.get(`velo_sandbox_memory_bytes{sandbox="${A}"}`)).toBeGreaterThan(0)
    expect(m.get('velo_sandboxes{state="running"}')).toBe(1)
    expect(m.get('velo_sandboxes{state="stopped"}')).toBe(1)
    // CPU time only grows: work in the tenant shows in the next scrape
    const before = m.get(`velo_sandbox_cpu_seconds_total{sandbox="${A}"}`)!
    sb.sh(A, 'i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done')
    const after = samples(sb.velo(['metrics']).stdout).get(`velo_sandbox_cpu_seconds_total{sandbox="${A}"}`)!
    expect(after).toBeGreaterThan(before)
  })

  it('CI cache hits and misses, volumes and networks: counted from the store\'s own records', () => {
    const dir = fs.mkdtempSync('/tmp/velo-metrics-cache-')
    const [vol, net, key] = [uniq('mv'), uniq('mn'), uniq('mk')]
    try {
      fs.mkdirSync(path.join(dir, 'deps'))
      fs.writeFileSync(path.join(dir, 'deps', 'a.txt'), 'x'.repeat(5000))
      const cache = (args: string[]) => {
        const r = sb.velo(['cache', ...args, '--job', 'metrics-test'])
        expect(r.status, r.stderr).toBe(0)
      }
      cache(['restore', key, path.join(dir, 'deps')]) // miss
      cache(['save', key, path.join(dir, 'deps')])
      cache(['restore', key, path.join(dir, 'deps')]) // hit
      cache(['restore', `${key}-2`, path.join(dir, 'deps'), '--fallback-prefix', key]) // fallback hit
      expect(sb.velo(['volume', 'create', vol]).status).toBe(0)
      expect(sb.velo(['network', 'create', net, '--internal']).status).toBe(0)
      const text = sb.velo(['metrics']).stdout
      promtool(text)
      const m = samples(text)
      expect(m.get('velo_cache_restores_total{result="miss",source="local"}')).toBe(1)
      expect(m.get('velo_cache_restores_total{result="hit",source="local"}')).toBe(1)
      expect(m.get('velo_cache_restores_total{result="fallback",source="local"}')).toBe(1)
      expect(m.get('velo_cache_saves_total')).toBe(1)
      expect(m.get('velo_cache_reused_bytes_total')).toBeGreaterThanOrEqual(2 * 5000)
      expect(m.get('velo_volumes')).toBe(fs.readdirSync(path.join(sb.home, 'volumes')).length)
      expect(m.get('velo_networks')).toBe(fs.readdirSync(path.join(sb.home, 'networks')).filter((f) => f.endsWith('.json')).length)
      // a cleared journal: the counters fall back (a counter reset)
      expect(sb.velo(['cache', 'summary', '--job', 'metrics-test', '--clear']).status).toBe(0)
      expect(samples(sb.velo(['metrics']).stdout).get('velo_cache_saves_total')).toBe(0)
    } finally {
      sb.velo(['volume', 'rm', vol])
      sb.velo(['network', 'rm', net])
      fs.rmSync(dir, {recursive: true, force: true})
    }
  })

  it('--listen serves GET /metrics on loopback, a fresh reading per scrape; bad addresses are usage errors', async () => {
    const c = spawn(VELO, ['metrics', '--listen', '127.0.0.1:0'], {env: {...process.env, VELO_HOME: sb.home}, stdio: ['ignore', 'ignore', 'pipe']})
    try {
      let err = ''
      const addr = await new Promise<string>((resolve, reject) => {
        c.stderr.on('data', (d) => {
          err += d
          const m = /http:\/\/(127\.0\.0\.1:\d+)\/metrics/.exec(err)
          if (m) resolve(m[1])
        })
        c.on('close', () => reject(new Error(`metrics --listen exited: ${err}`)))
      })
      const get = async (p: string) => {
        const res = await fetch(`http://${addr}${p}`)
        return {status: res.status, type: res.headers.get('content-type') ?? '', text: await res.text()}
      }
      const one = await get('/metrics')
      expect(one.status).toBe(200)
      expect(one.type).toMatch(/^text\/plain; version=0\.0\.4/)
      promtool(one.text)
      const N = uniq('ml')
      sb.create(N)
      expect(samples((await get('/metrics')).text).get(`velo_sandbox_running{sandbox="${N}"}`)).toBe(1)
      expect((await get('/other')).status).toBe(404)
      expect(sb.velo(['sandbox', 'rm', '-f', N]).status).toBe(0)
    } finally {
      c.kill('SIGTERM')
      await new Promise((r) => (c.exitCode !== null ? r(null) : c.on('close', r)))
    }
    for (const bad of ['9464', 'host:port', '127.0.0.1:99999']) {
      const r = sb.velo(['metrics', '--listen', bad])
      expect(r.status, bad).toBe(2)
      expect(r.stderr).toMatch(/expected HOST:PORT/)
    }
  })
})
