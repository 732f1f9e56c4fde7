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

  it("holds: a user's unpause cannot free a writer a snapshot is reading, a user's pause outlives the snapshot (and a killed one), a stop waits for the read", async () => {
    const V = uniq('ph')
    const W = uniq('phw')
    sb.track(W)
    ok(['sandbox', 'run', '-d', '--name', W, '-v', `${V}:/v`, '--', 'sh', '-c', 'i=0; while :; do i=$((i+1)); echo $i > /v/a.t && mv /v/a.t /v/a; sleep 0.01; done'])
    const data = sb.json(['volume', 'inspect', V]).dir
    const holdsFile = path.join(sb.home, 'tenants', W, 'pause-holds')
    const holders = () => (fs.existsSync(holdsFile) ? JSON.parse(fs.readFileSync(holdsFile, 'utf8')).map((h: any) => h.by).sort() : [])
    // a snapshot caught while it holds W: new files to read make its pass long enough to stop it in
    let round = 0
    const caughtSnapshot = async () => {
      // a pass short enough to end before the loop below looks (a fast run) is tried again with a new snapshot
      for (let attempt = 1; ; attempt++) {
        const r = startSnapshot()
        if (r.caught || attempt === 5) {
          expect(r.caught, 'the snapshot was seen holding the writer').toBe(true)
          r.c.kill('SIGSTOP')
          return {c: r.c, closed: r.closed}
        }
        await r.closed
      }
    }
    const startSnapshot = () => {
      const dir = path.join(data, `new${round++}`)
      fs.mkdirSync(dir)
      for (let i = 0; i < 3000; i++) fs.writeFileSync(path.join(dir, `f${i}`), `${round} ${i}\n`)
      const c = spawn(VELO, ['volume', 'snapshot', V, `s${round}`], {env: {...process.env, VELO_HOME: sb.home}, stdio: 'ignore'})
      const closed = new Promise((r) => c.on('close', r))
      // caught once its hold is recorded and it has let go of the holds' lock (stopped inside, it would block us)
      const lockFree = () => {
        const lock = path.join(sb.home, 'tenants', W, 'pause-lock')
        return fs.existsSync(lock) && !fs.readFileSync('/proc/locks', 'utf8').includes(`:${fs.statSync(lock).ino} `)
      }
      let caught = false
      for (let i = 0; i < 200_000 && c.exitCode === null && !caught; i++) caught = holders().includes('snapshot') && lockFree()
      return {c, closed, caught}
    }
    try {
      // 1. held by a snapshot: the user's unpause is refused; the user's pause is added to it and outlives it
      let snap = await caughtSnapshot()
      expect(statusOf(W)).toBe('paused')
      const refused = sb.velo(['sandbox', 'unpause', W])
      expect(refused.status).not.toBe(0)
      expect(refused.stderr).toMatch(new RegExp(`BUSY.*paused by a snapshot of volume ${V} \\(pid ${snap.c.pid}\\)`))
      ok(['sandbox', 'pause', W])
      expect(holders()).toEqual(['snapshot', 'user'])
      snap.c.kill('SIGCONT')
      await snap.closed
      expect(snap.c.exitCode).toBe(0)
      expect(statusOf(W)).toBe('paused')
      expect(holders()).toEqual(['user'])
      // 2. paused by the user first, then a snapshot: the user's unpause lets go of theirs only; killed, the
      // snapshot's hold is let go by the next volume command, and W runs again
      snap = await caughtSnapshot()
      expect(holders()).toEqual(['snapshot', 'user'])
      ok(['sandbox', 'unpause', W])
      expect(statusOf(W)).toBe('paused')
      snap.c.kill('SIGKILL')
      await snap.closed
      sb.json(['volume', 'inspect', V])
      expect(statusOf(W)).toBe('running')
      expect(holders()).toEqual([])
      // 3. paused by the user, then a snapshot killed: the user's pause stays after its recovery
      ok(['sandbox', 'pause', W])
      snap = await caughtSnapshot()
      snap.c.kill('SIGKILL')
      await snap.closed
      sb.json(['volume', 'inspect', V])
      expect(statusOf(W)).toBe('paused')
      ok(['sandbox', 'unpause', W])
      expect(statusOf(W)).toBe('running')
      // 4. a stop waits for the snapshot reading the writer (both front doors: the native one hands it to Node)
      snap = await caughtSnapshot()
      const stop = spawn(VELO, ['sandbox', 'stop', '-t', '5', W], {env: {...process.env, VELO_HOME: sb.home}, stdio: ['ignore', 'ignore', 'pipe']})
      let err = ''
      stop.stderr.on('data', (d) => (err += d))
      const stopped = new Promise((r) => stop.on('close', r))
      for (let i = 0; i < 200 && !err.includes('waiting'); i++) await sleep(20)
      expect(err).toMatch(new RegExp(`sandbox ${W}: waiting for the snapshot of volume ${V} \\(pid ${snap.c.pid}\\) that holds it paused`))
      expect(stop.exitCode).toBe(null)
      snap.c.kill('SIGCONT')
      await snap.closed
      await stopped
      expect(stop.exitCode).toBe(0)
      expect(statusOf(W)).toBe('stopped')
      expect(fs.existsSync(holdsFile)).toBe(false)
    } finally {
      for (const n of ['SIGCONT', 'SIGKILL'] as const) spawn('pkill', [`-${n.slice(3)}`, '-f', `volume snapshot ${V} `]).on('error', () => {})
    }
    ok(['sandbox', 'rm', '-f', W])
    ok(['volume', 'rm', V])
  })
})
