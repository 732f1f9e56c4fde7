import {spawn} from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {afterAll, describe, expect, it} from 'vitest'
import {VELO} from '../helpers'
import {SandboxHome, uniq} from './fixture'

// `velo sandbox pause/unpause` (docker pause): the tenant's cgroup frozen through velo-runtime; and volume snapshots,
// which pause the sandboxes that may write the volume for one instant of their writes. Real tenants, real freezer.
describe('pause', () => {
  const sb = new SandboxHome()
  afterAll(() => {
    expect(sb.cleanup()).toEqual({mounts: [], cgroups: [], tenants: []})
  })
  const ok = (args: string[], env?: Record<string, string>) => {
    const r = sb.velo(args, {env})
    expect(r.status, `${args.join(' ')}: ${r.stderr}`).toBe(0)
    return r
  }
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
  // the loop renames its count into place, so a read never meets the file truncated by its next write
  const counter = (name: string) => {
    const r = sb.exec(name, ['cat', '/tmp/n'])
    expect(r.status, r.stderr).toBe(0)
    return Number(r.stdout.trim())
  }
  const statusOf = (name: string, env?: Record<string, string>) => JSON.parse(ok(['sandbox', 'ls', '--json'], env).stdout).find((s: any) => s.name === name)?.status

  it('pause freezes every process until unpause; both front doors list it as paused; exec is refused; stop thaws it first', async () => {
    const N = uniq('pz')
    sb.track(N)
    ok(['sandbox', 'run', '-d', '--name', N, '--', 'sh', '-c', 'i=0; while :; do i=$((i+1)); echo $i > /tmp/n.t && mv /tmp/n.t /tmp/n; sleep 0.02; done'])
    await sleep(300)
    ok(['pause', N]) // docker's top-level habit
    expect(statusOf(N)).toBe('paused')
    expect(statusOf(N, {VELO_NATIVE: '0'})).toBe('paused')
    expect(sb.json(['sandbox', 'inspect', N]).status).toBe('paused')
    // frozen: the counter does not move (read from the host: an exec would be refused)
    const data = path.join(sb.home, 'tenants', N, 'upper', 'tmp', 'n')
    const at = fs.readFileSync(data, 'utf8')
    await sleep(400)
    expect(fs.readFileSync(data, 'utf8')).toBe(at)
    const x = sb.velo(['sandbox', 'exec', N, '--', 'true'])
    expect(x.status).not.toBe(0)
    expect(x.stderr).toMatch(/paused/)
    for (const [args, re] of [
      [['sandbox', 'pause', N], /STATE.*already paused/],
      [['sandbox', 'pause', 'no-such-sandbox'], /NOT_FOUND/],
    ] as Array<[string[], RegExp]>) {
      const r = sb.velo(args)
      expect(r.status, args.join(' ')).not.toBe(0)
      expect(r.stderr).toMatch(re)
    }
    ok(['unpause', N])
    expect(statusOf(N)).toBe('running')
    const before = counter(N)
    await sleep(400)
    expect(counter(N)).toBeGreaterThan(before)
    const r = sb.velo(['sandbox', 'unpause', N])
    expect(r.stderr).toMatch(/STATE.*not paused/)
    // events as docker's
    const actions = ok(['events', '--json', '--filter', `name=${N}`]).stdout.trim().split('\n').map((l) => JSON.parse(l).action)
    expect(actions).toEqual(expect.arrayContaining(['pause', 'unpause']))
    // a paused sandbox stops gracefully (thawed first, so its init gets the SIGTERM rather than the grace period's end)
    ok(['sandbox', 'pause', N])
    expect(sb.json(['sandbox', 'stop', '-t', '20', N]).forced).toBe(false)
    expect(statusOf(N)).toBe('stopped')
    const stopped = sb.velo(['sandbox', 'pause', N])
    expect(stopped.stderr).toMatch(/STATE.*not running/)
    // a start after a stop while paused runs free; rm -f of a paused one leaves nothing (afterAll checks)
    ok(['sandbox', 'start', N])
    expect(statusOf(N)).toBe('running')
    ok(['sandbox', 'pause', N])
    ok(['sandbox', 'rm', '-f', N])
  })

  it('a volume snapshot pauses the sandboxes that may write it: every snapshot is one instant of a write loop; read-only users run on', async () => {
    const V = uniq('pv')
    const [W, R] = [uniq('pw'), uniq('pr')]
    sb.track(W)
    sb.track(R)
    // the writer renames a then b into place, one after the other, forever: at any instant a = b or a = b + 1
    ok(['sandbox', 'run', '-d', '--name', W, '-v', `${V}:/v`, '--', 'sh', '-c', 'i=0; while :; do i=$((i+1)); echo $i > /v/a.t && mv /v/a.t /v/a; echo $i > /v/b.t && mv /v/b.t /v/b; done'])
    ok(['sandbox', 'run', '-d', '--name', R, '-v', `${V}:/v:ro`, '--', 'sh', '-c', 'while :; do cat /v/a >/dev/null 2>&1; sleep 0.01; done'])
    await sleep(300)
    for (let i = 0; i < 8; i++) {
      const s = sb.json(['volume', 'snapshot', V, `s${i}`])
      expect(s.paused).toEqual([W])
      ok(['volume', 'create', `${V}c${i}`, '--from', `volume:${V}:s${i}`])
      const d = sb.json(['volume', 'inspect', `${V}c${i}`]).dir
      const [a, b] = ['a', 'b'].map((f) => Number(fs.readFileSync(path.join(d, f), 'utf8')))
      expect(a - b, `snapshot s${i}: a=${a} b=${b}`).toBeGreaterThanOrEqual(0)
      expect(a - b, `snapshot s${i}: a=${a} b=${b}`).toBeLessThanOrEqual(1)
      ok(['volume', 'rm', `${V}c${i}`])
    }
    // thawed after each: the loop goes on
    expect(statusOf(W)).toBe('running')
    const n0 = Number(fs.readFileSync(path.join(sb.json(['volume', 'inspect', V]).dir, 'b'), 'utf8'))
    await sleep(300)
    expect(Number(fs.readFileSync(path.join(sb.json(['volume', 'inspect', V]).dir, 'b'), 'utf8'))).toBeGreaterThan(n0)
    // --no-pause leaves them running
    expect(sb.json(['volume', 'snapshot', V, 'np', '--no-pause']).paused).toEqual([])
    // a snapshot killed while its writers are frozen: the next command on the volume thaws them
    const c = spawn(VELO, ['volume', 'snapshot', V, 'killed'], {env: {...process.env, VELO_HOME: sb.home}, stdio: 'ignore'})
    const marker = path.join(sb.home, 'volumes', V, 'paused-for-snapshot')
    for (let i = 0; i < 1000 && !fs.existsSync(marker); i++) await sleep(2)
    // held there (the freeze it started completes), then killed while it holds them
    c.kill('SIGSTOP')
    for (let i = 0; i < 100 && statusOf(W) !== 'paused' && fs.existsSync(marker); i++) await sleep(20)
    c.kill('SIGKILL')
    await new Promise((r) => c.on('close', r))
    if (statusOf(W) !== 'paused') console.log('the kill came before the freeze or after the thaw: nothing was left paused')
    sb.json(['volume', 'inspect', V]) // the next command on the volume
    expect(statusOf(W)).toBe('running')
    expect(fs.existsSync(marker)).toBe(false)
    ok(['sandbox', 'rm', '-f', W, R])
    ok(['volume', 'rm', V])
  })
})
