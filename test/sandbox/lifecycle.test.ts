import * as fs from 'node:fs'
import * as path from 'node:path'
import {spawn, spawnSync} from 'node:child_process'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {ManifestDb} from '../../src/manifest/db'
import {rmrf, velo, VELO} from '../helpers'
import {leftovers, SandboxHome, tenantCgroup, uniq} from './fixture'

function holders(home: string): string[] {
  const db = ManifestDb.open(home)
  try {
    return db.listHolds().map((h) => h.holder)
  } finally {
    db.close()
  }
}

describe('sandbox lifecycle', () => {
  const sb = new SandboxHome()
  const S = uniq('life')

  beforeAll(() => {
    sb.create(S)
  })
  afterAll(() => {
    expect(sb.cleanup()).toEqual({mounts: [], cgroups: [], tenants: []})
  })

  it('passes exit codes 0, 1 and 137 (SIGKILL) back, and stdin through', () => {
    expect(sb.exec(S, ['true']).status).toBe(0)
    expect(sb.exec(S, ['false']).status).toBe(1)
    expect(sb.sh(S, 'exit 42').status).toBe(42)
    expect(sb.sh(S, 'kill -9 $$').status).toBe(137)
    const r = sb.sh(S, 'tr a-z A-Z', {input: 'hello stdin\n'})
    expect(r.stdout).toBe('HELLO STDIN\n')
    const nf = sb.exec(S, ['/no/such/binary'])
    expect(nf.status).toBe(127)
  })

  it('runs as another user with --user, with no capabilities left', () => {
    const r = sb.sh(S, 'id -u; id -g; grep CapEff /proc/self/status; echo $HOME', {extra: ['--user', 'node']})
    expect(r.stdout).toBe('1000\n1000\nCapEff:\t0000000000000000\n/home/node\n')
    expect(sb.sh(S, 'id -u', {extra: ['--user', '1234:55']}).stdout).toBe('1234\n')
  })

  it('-t gives a real terminal that follows window-size changes', async () => {
    const pty = await import('node-pty')
    const p = pty.spawn(VELO, ['sandbox', 'exec', '-t', S, '--', 'sh', '-c', 'tty; stty size; read x; stty size; exit 7'], {
      cols: 100,
      rows: 30,
      env: {...process.env, VELO_HOME: sb.home} as Record<string, string>,
    })
    let out = ''
    p.onData((d) => (out += d))
    const exited = new Promise<number>((r) => p.onExit((e) => r(e.exitCode)))
    for (let i = 0; i < 500 && !/30 100/.test(out); i++) await new Promise((r) => setTimeout(r, 20))
    p.resize(120, 40)
    await new Promise((r) => setTimeout(r, 200))
    p.write('go\r')
    expect(await exited).toBe(7)
    expect(out).toMatch(/^\/dev\/pts\/0\r*$/m) // a pty of the sandbox's own devpts
    expect(out).toMatch(/30 100/)
    expect(out).toMatch(/40 120/)
  })

  it('exec into an unknown or stopped sandbox is a clear error', () => {
    const r = sb.exec('no-such-sandbox', ['true'])
    expect(r.status).toBe(1)
    expect(r.stderr).toMatch(/NOT_FOUND.*no-such-sandbox/)
    const T = uniq('stopped')
    sb.create(T)
    expect(sb.json(['sandbox', 'stop', T]).wasRunning).toBe(true)
    const s = sb.exec(T, ['true'])
    expect(s.status).toBe(1)
    expect(s.stderr).toMatch(/STATE.*stopped/)
    expect(s.stderr).toMatch(/velo sandbox start/)
    expect(sb.velo(['sandbox', 'rm', T]).status).toBe(0)
  })

  it('rejects bad names before touching anything', () => {
    for (const bad of ['../evil', 'a/b', '.hidden', '-x', 'x'.repeat(200)]) {
      const r = sb.velo(['sandbox', 'create', '--', bad])
      expect(r.status).toBe(2)
      expect(r.stderr).toMatch(/INVALID_NAME/)
    }
    expect(fs.readdirSync(path.join(sb.home, 'tenants')).filter((n) => !n.startsWith('.')).sort()).toEqual([S])
  })

  it('two concurrent creates of one name: one wins, the other errors', async () => {
    const N = uniq('race')
    sb.track(N)
    const [a, b] = await Promise.all([sb.veloAsync(['sandbox', 'create', N, '--json']), sb.veloAsync(['sandbox', 'create', N, '--json'])])
    const codes = [a.status, b.status].sort()
    expect(codes).toEqual([0, 1])
    const loser = a.status === 1 ? a : b
    expect(JSON.parse(loser.stdout).error.code).toBe('ALREADY_EXISTS')
    // the winner is intact and usable
    expect(sb.exec(N, ['true']).status).toBe(0)
    expect(sb.velo(['sandbox', 'rm', '-f', N]).status).toBe(0)
  })

  it('the init holds none of create\'s locks once create is done, even when it is slow to go on after saying it is ready', async () => {
    // strace holds every send of the create (and of the init it clones) 1.5 s after it is made: the init's "ready"
    // reaches create at once, the init then sleeps. Create ends meanwhile; its sandbox lock must be free then (an
    // init that still had create's fd of it made the next call on the sandbox wait, as `run --rm` did in CI).
    const N = uniq('held')
    sb.track(N)
    const c = spawn('strace', ['-f', '-qq', '-I', '1', '-o', '/dev/null', '-e', 'trace=sendto', '-e', 'inject=sendto:delay_exit=1500000', VELO, 'sandbox', 'create', N], {
      env: {...process.env, VELO_HOME: sb.home},
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    const exited = new Promise((resolve) => c.on('close', resolve))
    try {
      let stderr = ''
      await new Promise<void>((resolve, reject) => {
        c.stderr!.on('data', (d) => {
          stderr += d
          if (/created sandbox/.test(stderr)) resolve()
        })
        c.on('close', () => reject(new Error(`create ended without creating: ${stderr}`)))
      })
      const free = spawnSync('flock', ['-n', path.join(sb.home, 'tenants', N, 'lock'), 'true'])
      expect(free.status, 'the sandbox lock is free once create has said it is done').toBe(0)
    } finally {
      c.kill('SIGTERM') // strace follows the init for good; told to end (-I 1: it may be), it lets go of it
      await exited
    }
    expect(sb.exec(N, ['true']).status).toBe(0)
    expect(sb.velo(['sandbox', 'rm', '-f', N]).status).toBe(0)
  })

  it('concurrent lifecycle calls on one sandbox take turns: two starts boot it once, stop and start leave the state naming the live init, an rm racing a start leaves nothing', async () => {
    const N = uniq('turns')
    sb.track(N)
    sb.create(N)
    expect(sb.velo(['sandbox', 'stop', '-t', '1', N]).status).toBe(0)
    // the tenant's processes, from its pids cgroup (init only: no workload was given); v1's pids hierarchy, or v2's tree
    const procs = () => {
      const base = fs.existsSync('/sys/fs/cgroup/pids/velo') ? '/sys/fs/cgroup/pids/velo' : '/sys/fs/cgroup/velo'
      const d = fs.readdirSync(base).find((x) => x.startsWith(`${N}.`))
      return d ? fs.readFileSync(path.join(base, d, 'cgroup.procs'), 'utf8').trim().split('\n').filter(Boolean).map(Number) : []
    }
    const alive = (pid: number) => fs.existsSync(`/proc/${pid}`) && !/\) [ZX] /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'))
    // both calls made to overlap: the test holds the sandbox's lock until both are blocked on it (/proc/locks lists a
    // waiter as "->"), however long they take to get there (a TCG guest's Node takes seconds), then lets go (without
    // the lock in velo they would not wait for it, and would race as they did)
    const lockFile = path.join(sb.home, 'tenants', N, 'lock')
    const locks = (waiting: boolean) => {
      const ino = fs.statSync(lockFile).ino
      return fs.readFileSync('/proc/locks', 'utf8').split('\n').filter((l) => l.includes(`:${ino} `) && l.includes('->') === waiting).length
    }
    const together = async (calls: string[][]) => {
      const holder = spawn('flock', ['-x', lockFile, 'cat'], {stdio: ['pipe', 'ignore', 'ignore']})
      const held = new Promise((r) => holder.on('close', r))
      for (let i = 0; i < 2000 && locks(false) === 0; i++) await new Promise((r) => setTimeout(r, 5))
      const results = Promise.all(calls.map((c) => sb.veloAsync(c)))
      for (let i = 0; i < 1200 && locks(true) < calls.length; i++) await new Promise((r) => setTimeout(r, 50))
      holder.stdin!.end()
      await held
      return results
    }
    for (let round = 0; round < 4; round++) {
      // both front doors: the native one (create, stop, rm) and Node (start) take the same lock
      const [a, b] = await together([['sandbox', 'start', N], ['sandbox', 'start', N]])
      for (const x of [a, b]) expect(x.stderr).toMatch(/waiting for another velo call on it/)
      expect([a.status, b.status].sort(), a.stderr + b.stderr).toEqual([0, 1])
      expect((a.status ? a : b).stderr).toMatch(/STATE.*already running/)
      const s = sb.json(['sandbox', 'inspect', N])
      expect(s.status).toBe('running')
      expect(procs()).toEqual([s.pid])
      const [stop, start] = await together([['sandbox', 'stop', '-t', '1', N], ['sandbox', 'start', N]])
      expect(stop.status, stop.stderr).toBe(0)
      const t = sb.json(['sandbox', 'inspect', N])
      if (t.status === 'running') {
        expect(start.status, start.stderr).toBe(0) // the stop went first
        expect(alive(t.pid)).toBe(true)
        expect(procs()).toEqual([t.pid])
        expect(sb.velo(['sandbox', 'stop', '-t', '1', N]).status).toBe(0)
      } else {
        expect(start.stderr).toMatch(/STATE.*already running/) // the start went first, then the stop
        expect(procs()).toEqual([])
      }
    }
    const [rm, start] = await together([['sandbox', 'rm', '-f', N], ['sandbox', 'start', N]])
    expect(rm.status, rm.stderr).toBe(0)
    if (start.status !== 0) expect(start.stderr).toMatch(/NOT_FOUND/)
    expect(fs.existsSync(path.join(sb.home, 'tenants', N))).toBe(false)
    expect(leftovers(sb.home, [N])).toEqual({mounts: [], cgroups: [], tenants: [S]})
  })

  it('stop/start keeps the upper dir; a fresh velo process sees the state', () => {
    sb.sh(S, 'echo kept > /root/file')
    expect(sb.json(['sandbox', 'stop', S]).wasRunning).toBe(true)
    expect(sb.json(['sandbox', 'ls']).find((x: any) => x.name === S).status).toBe('stopped')
    sb.json(['sandbox', 'start', S])
    expect(sb.json(['sandbox', 'ls']).find((x: any) => x.name === S).status).toBe('running')
    expect(sb.sh(S, 'cat /root/file').stdout).toBe('kept\n')
  })

  it('after its processes die (kill -9 of init, as a reboot would) it shows stopped and starts again intact', () => {
    sb.sh(S, 'echo survives > /root/after-crash; sleep 1000 >/dev/null 2>&1 &')
    const pid = sb.json(['sandbox', 'inspect', S]).pid
    process.kill(pid, 'SIGKILL')
    // the kernel kills the whole pid namespace with its init; the overlay lived only in its mount namespace
    for (let i = 0; i < 200 && sb.json(['sandbox', 'ls']).find((x: any) => x.name === S).status !== 'stopped'; i++) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10)
    expect(sb.json(['sandbox', 'ls']).find((x: any) => x.name === S).status).toBe('stopped')
    expect(fs.readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(path.join(sb.home, 'tenants', S))
    const ex = sb.exec(S, ['true'])
    expect(ex.stderr).toMatch(/stopped/)
    sb.json(['sandbox', 'start', S])
    expect(sb.sh(S, 'cat /root/after-crash /root/file; ps -o comm | grep -c "^sleep$"').stdout).toBe('survives\nkept\n0\n') // the old processes are gone
  })

  it('diff lists what the tenant added, changed and deleted', () => {
    sb.sh(S, 'echo new > /added.txt; echo x >> /etc/hosts; rm /etc/os-release')
    const d = sb.json(['sandbox', 'diff', S]) as Array<{kind: string; path: string}>
    expect(d).toContainEqual({kind: 'A', path: '/added.txt'})
    expect(d).toContainEqual({kind: 'C', path: '/etc/hosts'})
    expect(d).toContainEqual({kind: 'D', path: '/etc/os-release'})
  })

  it('rm leaves no mount, process, cgroup, hold or directory behind', () => {
    const R = uniq('rm')
    const c = sb.create(R)
    // the tenant's state file is its gc hold (no LMDB hold any more): it names the image's layers
    const st = JSON.parse(fs.readFileSync(path.join(sb.home, 'tenants', R, 'state.json'), 'utf8'))
    expect(st.layers.length).toBeGreaterThan(0)
    expect(holders(sb.home)).not.toContain(`tenant:${R}`)
    sb.sh(R, 'sleep 1000 >/dev/null 2>&1 & sleep 1000 >/dev/null 2>&1 & echo started')
    const running = sb.velo(['sandbox', 'rm', R])
    expect(running.status).toBe(1)
    expect(running.stderr).toMatch(/STATE.*running/)
    expect(sb.velo(['sandbox', 'rm', '-f', R]).status).toBe(0)
    expect(fs.existsSync(`/proc/${c.pid}`) && !/\) [ZX] /.test(fs.readFileSync(`/proc/${c.pid}/stat`, 'utf8'))).toBe(false)
    expect(leftovers(sb.home, [R])).toEqual({mounts: [], cgroups: [], tenants: [S]})
    expect(holders(sb.home)).not.toContain(`tenant:${R}`)
    expect(sb.velo(['sandbox', 'inspect', R]).status).toBe(1)
  })

  it('rm -f of a sandbox the runtime has no record of (velo-helper made it, or the record was lost) still ends its init and cgroups', () => {
    for (const env of [{}, {VELO_NATIVE: '0'}]) {
      const L = uniq('lost')
      const c = sb.create(L)
      sb.sh(L, 'sleep 1000 >/dev/null 2>&1 & echo started')
      rmrf(path.join(sb.home, 'runtime', L))
      expect(leftovers(sb.home, [L]).cgroups.length).toBeGreaterThan(0)
      const r = velo(sb.home, ['sandbox', 'rm', '-f', L], {env})
      expect(r.status).toBe(0)
      const alive = fs.existsSync(`/proc/${c.pid}`) && !/\) [ZX] /.test(fs.readFileSync(`/proc/${c.pid}/stat`, 'utf8'))
      expect(alive).toBe(false)
      expect(leftovers(sb.home, [L])).toEqual({mounts: [], cgroups: [], tenants: [S]})
    }
  })

  it('two stores on one host, a tenant of the same name in each: separate cgroups, limits and lives, both front doors', () => {
    // a VELO_HOME per CI job with a tenant called "build" in each: one store's rm or limits never reach the other's
    const other = new SandboxHome()
    try {
      for (const env of [{}, {VELO_NATIVE: '0'}]) {
        const N = uniq('twin')
        const a = velo(sb.home, ['sandbox', 'create', N, '--memory', '64m', '--json'], {env})
        const b = velo(other.home, ['sandbox', 'create', N, '--memory', '96m', '--json'], {env})
        expect(a.status, a.stderr).toBe(0)
        expect(b.status, b.stderr).toBe(0)
        const [pa, pb] = [JSON.parse(a.stdout).pid, JSON.parse(b.stdout).pid]
        const [ca, cb] = [tenantCgroup(sb.home, N), tenantCgroup(other.home, N)]
        expect(ca).not.toBe(cb)
        const procs = (d: string) => fs.readFileSync(`${d}/cgroup.procs`, 'utf8').trim().split('\n').map(Number)
        expect(procs(ca)).toContain(pa)
        expect(procs(ca)).not.toContain(pb)
        expect(procs(cb)).toContain(pb)
        const limit = (d: string) => fs.readFileSync(`${d}/${fs.existsSync(`${d}/memory.max`) ? 'memory.max' : 'memory.limit_in_bytes'}`, 'utf8').trim()
        expect(limit(ca)).toBe(String(64 << 20))
        expect(limit(cb)).toBe(String(96 << 20))
        // the state names the same dirs (the boot's rule), so stats read the tenant's own
        expect(JSON.parse(fs.readFileSync(path.join(sb.home, 'tenants', N, 'state.json'), 'utf8')).cgroups).toContain(ca)
        expect(velo(other.home, ['sandbox', 'rm', '-f', N], {env}).status).toBe(0)
        expect(fs.existsSync(cb)).toBe(false)
        expect(sb.exec(N, ['echo', 'alive']).stdout).toBe('alive\n')
        expect(limit(ca)).toBe(String(64 << 20))
        expect(velo(sb.home, ['sandbox', 'rm', '-f', N], {env}).status).toBe(0)
        expect(fs.existsSync(ca)).toBe(false)
      }
    } finally {
      expect(other.cleanup()).toEqual({mounts: [], cgroups: [], tenants: []})
    }
  })
})
