import {spawn, spawnSync} from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {afterAll, describe, expect, it} from 'vitest'
import {VELO} from '../helpers'
import {SandboxHome, uniq} from './fixture'

// Workloads: a tenant's main command (sandbox create NAME -- CMD, sandbox run -d), run by its monitor
// (native/cli/monitor.c) with logs, exit code and restart policy. Real tenants, real processes.
describe('sandbox workloads', () => {
  const sb = new SandboxHome()
  afterAll(() => {
    expect(sb.cleanup()).toEqual({mounts: [], cgroups: [], tenants: []})
    expect(monitors(sb.home)).toEqual([])
  })

  /** monitors of this store still alive: `velo __monitor HOME NAME`, whichever front door booted the tenant */
  function monitors(home: string, name?: string): number[] {
    return fs
      .readdirSync('/proc')
      .filter((p) => /^\d+$/.test(p))
      .filter((p) => {
        try {
          const argv = fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0')
          return argv[1] === '__monitor' && argv[2] === home && (!name || argv[3] === name)
        } catch {
          return false
        }
      })
      .map(Number)
  }
  const runD = (args: string[]) => {
    const r = sb.velo(['sandbox', 'run', '-d', ...args])
    expect(r.status, r.stderr).toBe(0)
    const name = r.stdout.trim()
    sb.track(name)
    return name
  }
  const wait = (name: string) => sb.velo(['sandbox', 'wait', name])

  it('run -d: the name on stdout; logs keep stdout and stderr apart; wait gives the exit code; the tenant stops and its monitor leaves', () => {
    const N = runD(['--name', uniq('wl'), '--', 'sh', '-c', 'echo hello; echo oops >&2; printf "no newline"; exit 3'])
    const w = wait(N)
    expect(w.status).toBe(0)
    expect(w.stdout).toBe('3\n')
    const logs = sb.velo(['sandbox', 'logs', N])
    expect(logs.stdout).toBe('hello\nno newline\n')
    expect(logs.stderr).toBe('oops\n')
    const t = sb.velo(['sandbox', 'logs', '-t', N]).stdout.split('\n')[0]
    expect(t).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z hello$/)
    expect(sb.velo(['sandbox', 'logs', '--tail', '1', N]).stdout).toBe('no newline\n')
    expect(sb.velo(['sandbox', 'logs', '--since', '2099-01-01T00:00:00Z', N]).stdout).toBe('')
    expect(sb.velo(['sandbox', 'logs', '--since', '10m', N]).stdout).toBe('hello\nno newline\n')
    const info = sb.json(['sandbox', 'inspect', N])
    expect(info).toMatchObject({status: 'stopped', pid: null, main: {argv: ['sh', '-c', expect.any(String)], uid: 0, gid: 0}, workload: {exitCode: 3, restartCount: 0, running: false}, monitor: false})
    expect(sb.json(['sandbox', 'ls']).find((s: any) => s.name === N)).toMatchObject({status: 'stopped', exitCode: 3})
    expect(sb.velo(['sandbox', 'ls']).stdout).toMatch(new RegExp(`${N}\\s+exited \\(3\\)`))
    expect(monitors(sb.home, N)).toEqual([])
    expect(fs.existsSync(path.join(sb.home, 'tenants', N, 'monitor.pid'))).toBe(false)
  })

  it('create NAME -- CMD runs as the image user given, in the workdir given; long lines come back whole', () => {
    const N = uniq('wl-create')
    sb.track(N)
    const r = sb.velo(['sandbox', 'create', N, '--user', 'node', '--workdir', '/tmp', '--', 'sh', '-c', 'id -u; pwd; head -c 40000 /dev/zero | tr "\\0" x; echo'])
    expect(r.status, r.stderr).toBe(0)
    expect(wait(N).stdout).toBe('0\n')
    const out = sb.velo(['sandbox', 'logs', N]).stdout.split('\n')
    expect(out.slice(0, 2)).toEqual(['1000', '/tmp'])
    expect(out[2]).toBe('x'.repeat(40000))
  })

  it('--restart on-failure:2 runs it three times; a restart ends what the last run left; a clean exit is not restarted', () => {
    const N = runD(['--restart', 'on-failure:2', '--', 'sh', '-c', 'sleep 1000 & sleep 0.3; echo "run $(ps -o comm | grep -c ^sleep)"; exit 1'])
    expect(wait(N).stdout).toBe('1\n')
    expect(sb.velo(['sandbox', 'logs', N]).stdout).toBe('run 1\nrun 1\nrun 1\n')
    expect(sb.json(['sandbox', 'inspect', N]).workload).toMatchObject({restartCount: 2, exitCode: 1, running: false})
    const ok = runD(['--restart', 'on-failure', '--', 'true'])
    expect(wait(ok).stdout).toBe('0\n')
    expect(sb.json(['sandbox', 'inspect', ok]).workload.restartCount).toBe(0)
  })

  it('--restart always, then stop: TERM reaches the command, its exit is recorded, no restart; start runs it again and the logs go on', () => {
    const N = runD(['--restart', 'always', '--', 'sh', '-c', 'trap "echo got-term; exit 7" TERM; echo up; while :; do sleep 0.1; done'])
    for (let i = 0; i < 100 && !sb.velo(['sandbox', 'logs', N]).stdout.includes('up'); i++) spawnSyncSleep(50)
    expect(sb.velo(['sandbox', 'stop', N]).status).toBe(0)
    // stop returns once the monitor has recorded the exit and left
    expect(sb.json(['sandbox', 'inspect', N])).toMatchObject({status: 'stopped', workload: {exitCode: 7, running: false, restartCount: 0}, monitor: false})
    expect(sb.velo(['sandbox', 'logs', N]).stdout).toBe('up\ngot-term\n')
    spawnSyncSleep(300)
    expect(sb.json(['sandbox', 'inspect', N]).status).toBe('stopped') // not restarted
    expect(sb.velo(['sandbox', 'start', N]).status).toBe(0)
    for (let i = 0; i < 100 && sb.velo(['sandbox', 'logs', N]).stdout !== 'up\ngot-term\nup\n'; i++) spawnSyncSleep(50)
    expect(sb.velo(['sandbox', 'logs', N]).stdout).toBe('up\ngot-term\nup\n')
    expect(sb.json(['sandbox', 'inspect', N]).workload).toMatchObject({running: true, mainPid: expect.any(Number)})
    expect(sb.velo(['sandbox', 'restart', '-t', '5', N]).status).toBe(0)
    for (let i = 0; i < 100 && !sb.velo(['sandbox', 'logs', N]).stdout.endsWith('got-term\nup\n'); i++) spawnSyncSleep(50)
    expect(sb.velo(['sandbox', 'logs', N]).stdout).toBe('up\ngot-term\nup\ngot-term\nup\n')
    // rm -f of a running workload: the monitor leaves with it, nothing is left
    expect(sb.velo(['sandbox', 'rm', '-f', N]).status).toBe(0)
    expect(monitors(sb.home, N)).toEqual([])
    expect(fs.existsSync(path.join(sb.home, 'tenants', N))).toBe(false)
  })

  it('logs -f prints lines as they come and ends with the workload', async () => {
    // the workload writes its later lines only once the follower has printed the first (the test then lets it go on,
    // through an exec), so they can only reach the follower as they come: no timing assumed (a follower that starts
    // late on a slow host, a TCG guest, would otherwise read every line at once)
    const N = runD(['--', 'sh', '-c', 'echo line1; while [ ! -e /tmp/go ]; do sleep 0.05; done; echo line2; sleep 0.3; echo line3'])
    const c = spawn(VELO, ['sandbox', 'logs', '-f', N], {env: {...process.env, VELO_HOME: sb.home}})
    // (a follower that printed only at the end would never show line1 alone: the workload would wait, and the test
    // time out)
    let seen = ''
    let released = false
    c.stdout.on('data', (d) => {
      seen += String(d)
      if (!released && seen === 'line1\n') released = sb.velo(['sandbox', 'exec', N, '--', 'touch', '/tmp/go']).status === 0
    })
    const code = await new Promise<number | null>((r) => c.on('exit', r))
    expect(code).toBe(0)
    expect(released).toBe(true)
    expect(seen).toBe('line1\nline2\nline3\n')
  })

  it('--log-opt max-size/max-file: the log is rotated and bounded, the newest lines kept in order', () => {
    const N = runD(['--log-opt', 'max-size=4k', '--log-opt', 'max-file=2', '--', 'sh', '-c', 'i=0; while [ $i -lt 1000 ]; do echo "line $i"; i=$((i+1)); done'])
    expect(wait(N).stdout).toBe('0\n')
    const dir = path.join(sb.home, 'tenants', N, 'logs')
    expect(fs.readdirSync(dir).sort()).toEqual(['container.log', 'container.log.1'])
    for (const f of fs.readdirSync(dir)) expect(fs.statSync(path.join(dir, f)).size).toBeLessThanOrEqual(4096)
    const lines = sb.velo(['sandbox', 'logs', N]).stdout.trim().split('\n')
    expect(lines.at(-1)).toBe('line 999')
    const first = Number(lines[0].split(' ')[1])
    expect(first).toBeGreaterThan(800)
    expect(lines).toEqual(Array.from({length: 1000 - first}, (_, i) => `line ${first + i}`))
  })

  it('processes an exec leaves in the background live on until the tenant stops (as docker exec)', () => {
    const N = uniq('wl-bg')
    sb.create(N)
    expect(sb.sh(N, 'sleep 1000 >/dev/null 2>&1 & echo started').stdout).toBe('started\n')
    expect(sb.sh(N, 'ps -o comm | grep -c ^sleep').stdout).toBe('1\n')
    const pid = sleepHostPid(sb.home, N)
    expect(pid).toBeGreaterThan(0)
    sb.json(['sandbox', 'stop', '-t', '2', N])
    expect(alive(pid)).toBe(false)
  })

  it('run -d --rm: the monitor removes the tenant when its command ends; wait still gets the exit code; stop removes it too', async () => {
    // ended by itself, with a waiter registered: the exit code reaches it, then the tenant is gone. The command ends
    // when told, once the wait is registered (a wait begun after an --rm tenant is gone finds nothing, as in docker)
    const A = runD(['--rm', '--name', uniq('arm'), '--', 'sh', '-c', 'while [ ! -e /tmp/go ]; do sleep 0.05; done; exit 7'])
    const w = sb.veloAsync(['sandbox', 'wait', A])
    const waiters = path.join(sb.home, 'tenants', A, 'waiters')
    for (let i = 0; i < 1500 && !(fs.existsSync(waiters) && fs.readdirSync(waiters).some((n) => /^\d+$/.test(n))); i++) await new Promise((r) => setTimeout(r, 20))
    expect(sb.velo(['sandbox', 'exec', A, '--', 'touch', '/tmp/go']).status).toBe(0)
    expect((await w).stdout).toBe('7\n')
    for (let i = 0; i < 250 && fs.existsSync(path.join(sb.home, 'tenants', A)); i++) await new Promise((r) => setTimeout(r, 20))
    expect(fs.existsSync(path.join(sb.home, 'tenants', A))).toBe(false)
    expect(monitors(sb.home, A)).toEqual([])
    // stopped from outside: stop says it removed it, on both doors (the native one hands it to Node)
    const B = runD(['--rm', '--name', uniq('arm'), '--', 'sleep', '1000'])
    const st = sb.velo(['sandbox', 'stop', '-t', '1', B])
    expect(st.status, st.stderr).toBe(0)
    expect(st.stderr).toMatch(/removed .* \(--rm\)/)
    expect(fs.existsSync(path.join(sb.home, 'tenants', B))).toBe(false)
    // restart keeps it (a restart is not an end)
    const C = runD(['--rm', '--name', uniq('arm'), '--', 'sleep', '1000'])
    expect(sb.velo(['sandbox', 'restart', '-t', '1', C]).status).toBe(0)
    expect(sb.json(['sandbox', 'inspect', C]).status).toBe('running')
    expect(sb.velo(['sandbox', 'rm', '-f', C]).status).toBe(0)
    // --rm and --restart conflict, as in docker
    const r = sb.velo(['sandbox', 'run', '-d', '--rm', '--restart', 'always', '--', 'true'])
    expect(r.status).toBe(2)
    expect(r.stderr).toMatch(/--rm and --restart/)
  })

  it("the monitor's own stop (its command ended) waits for a lifecycle call that holds the sandbox", async () => {
    const N = runD(['--name', uniq('wlk'), '--', 'sh', '-c', 'while [ ! -e /tmp/go ]; do sleep 0.05; done; exit 5'])
    // another velo call on the sandbox (a start, stop, rm) holds its lock: flock(1) on tenants/NAME/lock, as lockSandbox takes it
    const lock = path.join(sb.home, 'tenants', N, 'lock')
    const holder = spawn('flock', ['-x', '--no-fork', lock, 'sleep', '60'], {stdio: 'ignore'})
    try {
      for (let i = 0; i < 250 && spawnSync('flock', ['-n', lock, 'true']).status === 0; i++) await sleep(20)
      expect(spawnSync('flock', ['-n', lock, 'true']).status).not.toBe(0)
      expect(sb.velo(['sandbox', 'exec', N, '--', 'touch', '/tmp/go']).status).toBe(0)
      // the exit is recorded at once (`velo sandbox wait` would wait for the stop, as docker wait does)
      const exited = () => sb.json(['sandbox', 'inspect', N]).workload?.exitCode === 5
      for (let i = 0; i < 250 && !exited(); i++) await sleep(20)
      expect(exited()).toBe(true)
      await sleep(1500)
      // not stopped while the other call holds the sandbox
      expect(sb.json(['sandbox', 'inspect', N]).status).toBe('running')
      expect(monitors(sb.home, N).length).toBe(1)
    } finally {
      holder.kill('SIGKILL')
    }
    // let go: the monitor stops it and leaves
    for (let i = 0; i < 500 && sb.json(['sandbox', 'inspect', N]).status !== 'stopped'; i++) await sleep(20)
    expect(sb.json(['sandbox', 'inspect', N]).status).toBe('stopped')
    for (let i = 0; i < 250 && monitors(sb.home, N).length; i++) await sleep(20)
    expect(monitors(sb.home, N)).toEqual([])
    expect(sb.velo(['sandbox', 'rm', N]).status).toBe(0)
  })

  it('the monitor is a process of its own: only its own files open, not the memory of the call that started it', () => {
    for (const front of ['1', '0']) {
      const N = uniq('mon')
      const r = sb.velo(['sandbox', 'create', N, '--', 'sh', '-c', 'echo up; while :; do sleep 3600; done'], {env: {VELO_NATIVE: front}})
      expect(r.status, r.stderr).toBe(0)
      sb.track(N)
      const [pid] = monitors(sb.home, N)
      expect(pid, `front ${front}: a monitor for ${N}`).toBeGreaterThan(0)
      const dir = path.join(sb.home, 'tenants', N)
      const open = fs.readdirSync(`/proc/${pid}/fd`).map((fd) => fs.readlinkSync(`/proc/${pid}/fd/${fd}`))
      // stdio on /dev/null; then the tenant dir, its logs, the pidfd of the main command and its two pipes: nothing
      // of the caller's (its store database, locks, terminal, the runtime's files)
      for (const f of open) expect(f, `front ${front}`).toMatch(new RegExp(`^(/dev/null|${dir}(/logs(/container\\.log)?)?|anon_inode:\\[pidfd\\]|pipe:\\[\\d+\\])$`))
      // exec'd afresh: the boot's heap and stack are not kept (they were ~0.5 MiB a tenant when it was a fork)
      const anon = Number(/Anonymous:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))![1])
      expect(anon, `front ${front}: anonymous memory of the monitor, KiB`).toBeLessThan(400)
      expect(sb.velo(['sandbox', 'rm', '-f', N]).status).toBe(0)
      expect(monitors(sb.home, N)).toEqual([])
    }
  })

  it('bad input: clear usage errors, nothing made', () => {
    const N = uniq('wl-bad')
    for (const [args, re] of [
      [['sandbox', 'run', '-d', '--name', N, '--restart', 'sometimes', '--', 'true'], /--restart/],
      [['sandbox', 'run', '-d', '--name', N, '--log-opt', 'max-size=huge', '--', 'true'], /max-size/],
      [['sandbox', 'run', '-d', '--name', N, '--log-opt', 'colour=red', '--', 'true'], /unknown --log-opt/],
      [['sandbox', 'run', '-d', '--name', N], /no command/],
      [['sandbox', 'create', N, '--restart', 'always'], /main command/],
    ] as Array<[string[], RegExp]>) {
      const r = sb.velo(args)
      expect(r.status, args.join(' ')).toBe(2)
      expect(r.stderr).toMatch(re)
    }
    expect(fs.existsSync(path.join(sb.home, 'tenants', N))).toBe(false)
    const plain = uniq('wl-plain')
    sb.create(plain)
    for (const verb of ['logs', 'wait']) {
      const r = sb.velo(['sandbox', verb, plain])
      expect(r.status).not.toBe(0)
      expect(r.stderr).toMatch(/STATE.*no main command/)
    }
    expect(sb.velo(['sandbox', 'logs', uniq('nope')]).stderr).toMatch(/NOT_FOUND/)
  })
})

/** the host pid of the tenant's `sleep 1000` (a process in its init's pid namespace) */
function sleepHostPid(home: string, name: string): number {
  const init = JSON.parse(fs.readFileSync(path.join(home, 'tenants', name, 'state.json'), 'utf8')).pid
  const ns = fs.readlinkSync(`/proc/${init}/ns/pid`)
  for (const p of fs.readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      if (Number(p) !== init && fs.readlinkSync(`/proc/${p}/ns/pid`) === ns && fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').startsWith('sleep\0' + '1000')) return Number(p)
    } catch {}
  }
  return 0
}

/** alive and not a zombie (what host init has not reaped yet is gone for this purpose) */
function alive(pid: number): boolean {
  try {
    const st = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    return st.slice(st.lastIndexOf(')') + 2)[0] !== 'Z'
  } catch {
    return false
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

function spawnSyncSleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
}
