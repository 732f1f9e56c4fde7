/**
 * The native front-end (native/cli): `sandbox create/exec/rm/run` served in C must behave exactly as the Node
 * CLI does (VELO_NATIVE=0), and everything it does not serve must reach Node.
 *
 * How a test knows which side served a call: NODE_OPTIONS=--require=<missing file> makes every Node start fail,
 * while a fast path never starts Node (it runs velo-runtime; Node itself reaches the container steps through the
 * native binary's `velo __sandbox`). So with
 * NO_NODE a call that succeeds was served natively, and one that is handed to Node fails with Node's
 * "Cannot find module" — a fallback test can fail.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import {spawn} from 'node:child_process'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {ManifestDb} from '../../src/manifest/db'
import {RunResult, tmpDir, rmrf, velo, VELO} from '../helpers'
import {leftovers, SandboxHome, tenantCgroup, uniq} from '../sandbox/fixture'

const NO_NODE = {NODE_OPTIONS: '--require=/nonexistent/velo-front-test.js'}
const NODE_ONLY = {VELO_NATIVE: '0'}

/** state.json with what differs between two tenants of the same options blanked: names, times, pids */
function normState(home: string, name: string): any {
  const s = JSON.parse(fs.readFileSync(path.join(home, 'tenants', name, 'state.json'), 'utf8'))
  const text = JSON.stringify({...s, createdAt: 'T', startedAt: 'T', pid: 0, pidStart: '0'}).split(name).join('NAME')
  return JSON.parse(text)
}

function asyncVelo(home: string, args: string[], env: Record<string, string> = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const c = spawn(VELO, args, {env: {...process.env, VELO_HOME: home, ...env}})
    let stdout = ''
    let stderr = ''
    c.stdout.on('data', (d) => (stdout += d))
    c.stderr.on('data', (d) => (stderr += d))
    c.on('close', (code, sig) => resolve({status: code ?? 128 + (sig === 'SIGKILL' ? 9 : 15), stdout, stderr}))
  })
}

describe('native front-end: sandbox fast paths', () => {
  const sb = new SandboxHome()
  const v = (args: string[], env: Record<string, string> = {}, input?: string) => velo(sb.home, args, {env, input})
  const N = uniq('nat')
  const M = uniq('node')

  beforeAll(() => {
    // the first create goes through Node: it builds the default image and the compiled profile cache
    const r = v(['sandbox', 'create', uniq('warm'), '--json'])
    expect(r.status).toBe(0)
    sb.track(JSON.parse(r.stdout).name)
    expect(fs.existsSync(path.join(sb.home, 'cache', 'profiles', 'default.json'))).toBe(true)
  })
  afterAll(() => {
    const left = sb.cleanup()
    expect(left.mounts).toEqual([])
    expect(left.cgroups).toEqual([])
  })

  it('create: same state file, output shape and limits natively as through Node', () => {
    const flags = ['--env', 'A=1', '--env', 'B=x y', '--memory', '256m', '--pids', '64', '--cpus', '0.5', '--hostname', 'h-1']
    sb.track(N)
    sb.track(M)
    const a = v(['sandbox', 'create', N, ...flags, '--json'], NO_NODE)
    expect(a.status, a.stderr).toBe(0)
    const b = v(['sandbox', 'create', M, ...flags, '--json'], NODE_ONLY)
    expect(b.status, b.stderr).toBe(0)
    const ja = JSON.parse(a.stdout)
    const jb = JSON.parse(b.stdout)
    expect(Object.keys(ja)).toEqual(Object.keys(jb))
    expect(Object.keys(ja.timings)).toEqual(Object.keys(jb.timings))
    expect({...ja, name: 0, pid: 0, timings: 0}).toEqual({...jb, name: 0, pid: 0, timings: 0})
    expect(normState(sb.home, N)).toEqual(normState(sb.home, M))
    const st = fs.statSync(path.join(sb.home, 'tenants', N, 'state.json'))
    expect(st.mode & 0o777).toBe(0o600)
    expect(fs.statSync(path.join(sb.home, 'tenants')).mode & 0o777).toBe(0o711) // searchable, no listing: tenant roots reach their own dirs only
    expect(fs.readFileSync(`${tenantCgroup(sb.home, N, 'pids')}/pids.max`, 'utf8').trim()).toBe('64')
    expect(fs.readFileSync(`${tenantCgroup(sb.home, N, 'cpu')}/cpu.cfs_quota_us`, 'utf8').trim()).toBe('50000')
    // human output: one line on stderr, nothing on stdout
    const H = uniq('hum')
    sb.track(H)
    const h = v(['sandbox', 'create', H], NO_NODE)
    expect(h.status).toBe(0)
    expect(h.stdout).toBe('')
    expect(h.stderr).toMatch(new RegExp(`^created sandbox ${H} \\(image default, profile default, init pid \\d+\\)\\n$`))
  })

  it('a memory limit of 1e15 bytes or more is written out in full, as Node writes it (not as 1.1e+15)', () => {
    const A = uniq('big')
    const B = uniq('bign')
    sb.track(A)
    sb.track(B)
    const a = v(['sandbox', 'create', A, '--memory', '1000t'], NO_NODE)
    expect(a.status, a.stderr).toBe(0)
    expect(v(['sandbox', 'create', B, '--memory', '1000t'], NODE_ONLY).status).toBe(0)
    expect(normState(sb.home, A)).toEqual(normState(sb.home, B))
    expect(fs.readFileSync(path.join(sb.home, 'tenants', A, 'state.json'), 'utf8')).toMatch(/"memory": 1099511627776000\b/)
    expect(fs.readFileSync(`${tenantCgroup(sb.home, A)}/memory.limit_in_bytes`, 'utf8')).toBe(fs.readFileSync(`${tenantCgroup(sb.home, B)}/memory.limit_in_bytes`, 'utf8'))
    for (const n of [A, B]) expect(v(['sandbox', 'rm', '-f', n]).status).toBe(0)
  })

  it('rm -f NAME NAME: removes it once and then fails on the second, as Node does', () => {
    const D = uniq('dup')
    sb.track(D)
    for (const env of [NO_NODE, NODE_ONLY]) {
      expect(v(['sandbox', 'create', D]).status).toBe(0)
      const r = v(['sandbox', 'rm', '-f', D, D], env === NO_NODE ? {} : env)
      expect(r.status).toBe(1)
      expect(r.stderr).toBe(
        `removed ${D}\nvelo: error [NOT_FOUND]: no sandbox named "${D}"\n  suggestion: list sandboxes with \`velo sandbox ls\`; create one with \`velo sandbox create NAME\`\n`,
      )
      expect(fs.existsSync(path.join(sb.home, 'tenants', D))).toBe(false)
    }
  })

  it('exec: output, stdin, env, workdir and exit codes 0/1/137 match Node', () => {
    const cases: Array<[string[], string?]> = [
      [['sandbox', 'exec', N, '--', 'sh', '-c', 'echo $A:$B:$HOSTNAME:$HOME; pwd; echo err >&2']],
      [['sandbox', 'exec', '-e', 'C=3', '--workdir', '/tmp', N, '--', 'sh', '-c', 'echo $C; pwd']],
      [['sandbox', 'exec', N, '--', 'false']],
      [['sandbox', 'exec', N, '--', 'sh', '-c', 'kill -9 $$']],
      [['sandbox', 'exec', N, '--', 'tr', 'a-z', 'A-Z'], 'hello\n'],
      [['sandbox', 'exec', N, '--', '/no/such/binary']],
    ]
    const want = [0, 0, 1, 137, 0, 127]
    cases.forEach(([args, input], i) => {
      const a = v(args, NO_NODE, input)
      const b = v(args, NODE_ONLY, input)
      expect(a.status).toBe(want[i])
      expect(a).toEqual(b)
    })
  })

  it('errors: unknown, stopped, bad name, running without -f — same text and exit code both ways', () => {
    const S = uniq('stop')
    sb.track(S)
    const c = JSON.parse(v(['sandbox', 'create', S, '--json'], NO_NODE).stdout)
    process.kill(c.pid, 'SIGKILL')
    for (let i = 0; i < 200 && fs.existsSync(`/proc/${c.pid}`) && !/\) [ZX] /.test(fs.readFileSync(`/proc/${c.pid}/stat`, 'utf8')); i++)
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10)
    const calls: string[][] = [
      ['sandbox', 'exec', 'no-such-sandbox', '--', 'true'],
      ['sandbox', 'exec', S, '--', 'true'],
      ['sandbox', 'rm', 'no-such-sandbox'],
      ['sandbox', 'rm', 'no-such-sandbox', '--json'],
      ['sandbox', 'rm', N],
      ['sandbox', 'rm', N, '--json'],
    ]
    for (const args of calls) {
      const a = v(args, NO_NODE)
      const b = v(args, NODE_ONLY)
      expect(a.status).toBe(1)
      expect(a).toEqual(b)
    }
    // a bad name is Node's to render: the fast path hands it over before touching anything
    for (const args of [
      ['sandbox', 'exec', '../x', '--', 'true'],
      ['sandbox', 'create', '-bad'],
      ['sandbox', 'create', 'a/b'],
    ]) {
      expect(v(args, NO_NODE).stderr).toMatch(/Cannot find module|nonexistent/)
      const b = v(args)
      expect(b.status).not.toBe(0)
      expect(v(args, NODE_ONLY)).toEqual(b)
    }
  })

  it('hands --help, -t, unknown flags, --backend fuse, --user NAME and --mount with a relative path to Node', () => {
    const fallbacks = [
      ['sandbox', 'exec', N, '--help'],
      ['sandbox', 'create', '--help'],
      ['sandbox', 'exec', '-t', N, '--', 'true'],
      ['sandbox', 'exec', '--user', 'node', N, '--', 'true'],
      ['sandbox', 'exec', '--bogus', N, '--', 'true'],
      ['sandbox', 'create', uniq('x'), '--backend', 'fuse'],
      ['sandbox', 'create', uniq('x'), '--mount', './src:/src:ro'],
      ['sandbox', 'create', uniq('x'), '--profile', './profiles/default.json'],
      ['sandbox', 'rm', '--bogus', N],
      ['sandbox', 'run', '--json', '--', 'true'],
    ]
    for (const args of fallbacks) {
      const r = v(args, NO_NODE)
      expect(r.status, args.join(' ')).not.toBe(0)
      expect(r.stderr, args.join(' ')).toMatch(/Cannot find module/)
    }
    expect(v(['sandbox', 'exec', N, '--help']).stdout).toMatch(/USAGE/)
    expect(fs.readdirSync(path.join(sb.home, 'tenants')).filter((n) => n.startsWith('x-'))).toEqual([])
  })

  it('never reads or writes through a symlink planted in a tenant dir; an empty store goes to Node', () => {
    const P = uniq('plant')
    sb.track(P)
    expect(v(['sandbox', 'create', P], NO_NODE).status).toBe(0)
    const f = path.join(sb.home, 'tenants', P, 'state.json')
    const real = fs.readFileSync(f, 'utf8')
    const decoy = path.join(sb.home, 'decoy.json')
    fs.writeFileSync(decoy, real)
    fs.rmSync(f)
    fs.symlinkSync(decoy, f)
    for (const args of [
      ['sandbox', 'exec', P, '--', 'true'],
      ['sandbox', 'rm', '-f', P],
      ['sandbox', 'stop', P],
    ])
      expect(v(args, NO_NODE).stderr, args.join(' ')).toMatch(/Cannot find module/)
    fs.rmSync(f)
    fs.writeFileSync(f, real, {mode: 0o600})
    expect(v(['sandbox', 'rm', '-f', P], NO_NODE).status).toBe(0)
    expect(fs.readFileSync(decoy, 'utf8')).toBe(real)
    fs.rmSync(decoy)
    // a store without the default image (nothing built yet): Node builds it, so the fast path must not act
    const empty = tmpDir('velo-front-empty-')
    try {
      const r = velo(empty, ['sandbox', 'create', 'x1'], {env: NO_NODE})
      expect(r.stderr).toMatch(/Cannot find module/)
      expect(fs.existsSync(path.join(empty, 'tenants'))).toBe(false)
    } finally {
      rmrf(empty)
    }
  })

  it('an edited profile is not served from the stale compiled copy', () => {
    const cache = path.join(sb.home, 'cache', 'profiles', 'default.json')
    const c = JSON.parse(fs.readFileSync(cache, 'utf8'))
    fs.writeFileSync(cache, JSON.stringify({...c, mtimeNs: '1'}))
    const r = v(['sandbox', 'create', uniq('x')], NO_NODE)
    expect(r.stderr).toMatch(/Cannot find module/)
    fs.writeFileSync(cache, JSON.stringify(c))
  })

  it('the compiled profile in the store grants nothing the profile could not: a tampered copy goes to Node', () => {
    // Node validates profiles/NAME.json (in the package) on every create; the store's compiled copy must not be a
    // way around that for whoever can write to the store
    const cache = path.join(sb.home, 'cache', 'profiles', 'default.json')
    const text = fs.readFileSync(cache, 'utf8')
    const c = JSON.parse(text)
    const tampered: Array<Record<string, unknown>> = [
      {capabilities: [...c.profile.capabilities, 'SYS_ADMIN']},
      {capabilities: [...c.profile.capabilities, 'CHOWN']},
      {mounts: [{source: '/etc/../etc', target: '/host', readonly: false}]},
      {mounts: [{source: '/etc', target: '/x/..', readonly: true}]},
      {env: {'A=B': 'x'}},
      {limits: {pids: 8.5}},
      {limits: {memory: 100}},
      {hostname: '-h'},
      {user: 'a b'},
      {workdir: 'rel'},
    ]
    try {
      for (const t of tampered) {
        fs.writeFileSync(cache, JSON.stringify({...c, profile: {...c.profile, ...t}}), {mode: 0o600})
        const r = v(['sandbox', 'run', '--rm', '--', 'true'], NO_NODE)
        expect(r.stderr, JSON.stringify(t)).toMatch(/Cannot find module/)
      }
      // an untampered copy that someone else could have written: not trusted either
      fs.writeFileSync(cache, text)
      fs.chmodSync(cache, 0o620)
      expect(v(['sandbox', 'run', '--rm', '--', 'true'], NO_NODE).stderr).toMatch(/Cannot find module/)
      fs.chmodSync(cache, 0o600)
      // and the real copy is served
      const ok = v(['sandbox', 'run', '--rm', '--', 'true'], NO_NODE)
      expect(ok.status, ok.stderr).toBe(0)
    } finally {
      fs.writeFileSync(cache, text)
      fs.chmodSync(cache, 0o600)
    }
  })

  it("a newline in an image's config env, a state file, a flag or an argument is data, never a capability or seccomp change", () => {
    // (velo-helper's line plans, before velo-runtime, let a later caps/seccomp line win: the values now travel in JSON,
    // and this stays as the attacker's test) — before `env`/`arg` values
    // were escaped, an imported image with Env ["X=1\ncaps 1fffffffff"] got every capability and no seccomp
    const capEff = (r: RunResult) => /CapEff:\s*([0-9a-f]+)/.exec(r.stdout)?.[1]
    const probe = ['sh', '-c', 'grep CapEff /proc/self/status; grep -c . /proc/self/status >/dev/null; printf "[%s]" "$X"']
    const base = v(['sandbox', 'run', '--rm', '--', ...probe])
    expect(base.status, base.stderr).toBe(0)
    expect(capEff(base)).toMatch(/^0+[0-9a-f]+$/)
    const db = ManifestDb.open(sb.home)
    try {
      const img = db.requireImage('default')
      db.putImageSync({...img, name: 'evil-env', config: {...img.config, env: ['X=1\ncaps 1fffffffff\nseccomp unconfined']}})
    } finally {
      db.close()
    }
    for (const env of [{}, NODE_ONLY]) {
      const r = v(['sandbox', 'run', '--rm', '--image', 'evil-env', '--', ...probe], env)
      expect(r.status, r.stderr).toBe(0)
      expect(capEff(r)).toBe(capEff(base))
      expect(r.stdout).toContain('[1\ncaps 1fffffffff\nseccomp unconfined]')
    }
    // a state file whose env carries what was once a plan line (the store is not the authority on capabilities either)
    const T = uniq('inj')
    sb.track(T)
    expect(v(['sandbox', 'create', T], NO_NODE).status).toBe(0)
    const f = path.join(sb.home, 'tenants', T, 'state.json')
    const st = JSON.parse(fs.readFileSync(f, 'utf8'))
    fs.writeFileSync(f, JSON.stringify({...st, env: [...st.env, 'X=1\ncaps 1fffffffff']}), {mode: 0o600})
    const a = v(['sandbox', 'exec', T, '--', ...probe])
    expect(a.status, a.stderr).toBe(0)
    expect(capEff(a)).toBe(capEff(base))
    expect(a.stdout).toContain('[1\ncaps 1fffffffff]')
    expect(v(['sandbox', 'exec', T, '--', ...probe], NODE_ONLY)).toEqual(a)
    // arguments and --env values with newlines and backslashes arrive exactly as given, both ways
    const script = `printf "%s|" "$Y" 'a\\nb'; echo\necho second line; exit 3`
    const want = 'p\nq\\r|a\\nb|\nsecond line\n'
    for (const env of [{}, NODE_ONLY]) {
      const r = v(['sandbox', 'exec', T, '--env', 'Y=p\nq\\r', '--', 'sh', '-c', script], env)
      expect(r).toEqual({status: 3, stdout: want, stderr: ''})
    }
    expect(v(['sandbox', 'rm', '-f', T]).status).toBe(0)
  })

  it('a state file with invalid UTF-8 is read as Node reads it, both ways (the tenant gets U+FFFD, not the raw byte)', () => {
    const U = uniq('utf')
    sb.track(U)
    expect(v(['sandbox', 'create', U, '--env', 'Z=a-b'], NO_NODE).status).toBe(0)
    const f = path.join(sb.home, 'tenants', U, 'state.json')
    const text = fs.readFileSync(f)
    const i = text.indexOf('Z=a-b')
    fs.writeFileSync(f, Buffer.concat([text.subarray(0, i + 3), Buffer.from([0xff]), text.subarray(i + 4)]), {mode: 0o600})
    const args = ['sandbox', 'exec', U, '--', 'sh', '-c', 'printf %s "$Z" | od -An -tx1']
    const a = v(args, NO_NODE)
    expect(a.stdout.trim()).toBe('61 ef bf bd 62')
    expect(v(args, NODE_ONLY)).toEqual(a)
    expect(v(['sandbox', 'rm', '-f', U]).status).toBe(0)
  })

  it('a sandbox named after a cgroup control file (tasks, cgroup.procs) gets a cgroup of its own, both ways', () => {
    // its cgroup is velo/NAME.STORE, never velo's parent cgroup's control file of that name
    for (const n of ['tasks', 'cgroup.procs']) {
      for (const [door, env] of [['native', NO_NODE], ['node', NODE_ONLY]] as const) {
        const a = v(['sandbox', 'create', n, '--json'], env)
        expect(a.status, `${door}: ${a.stderr}`).toBe(0)
        expect(fs.statSync(tenantCgroup(sb.home, n)).isDirectory()).toBe(true)
        expect(v(['sandbox', 'rm', '-f', n]).status).toBe(0)
        expect(fs.existsSync(tenantCgroup(sb.home, n))).toBe(false)
      }
    }
  })


  it('a $VELO_CGROUP_ROOT with a newline goes to Node before anything is created', () => {
    const base = tmpDir('velo-front-cg-')
    const root = base + '/cg\nbind /etc\t/hostetc\trw\nx'
    try {
      for (const c of ['memory', 'pids', 'cpu']) {
        fs.mkdirSync(path.join(root, c), {recursive: true})
        fs.writeFileSync(path.join(root, c, 'cgroup.procs'), '')
      }
      const before = fs.readdirSync(path.join(sb.home, 'tenants')).sort()
      const r = v(['sandbox', 'run', '--rm', '--', 'true'], {...NO_NODE, VELO_CGROUP_ROOT: root})
      expect(r.stderr).toMatch(/Cannot find module/)
      expect(fs.readdirSync(path.join(sb.home, 'tenants')).sort()).toEqual(before)
      expect(fs.readdirSync(path.join(root, 'memory'))).toEqual(['cgroup.procs'])
    } finally {
      rmrf(base)
    }
  })

  it('two creates of one name race: one wins, the other gets ALREADY_EXISTS; rm -f --json matches Node', async () => {
    const R = uniq('race')
    sb.track(R)
    const rs = await Promise.all([asyncVelo(sb.home, ['sandbox', 'create', R], NO_NODE), asyncVelo(sb.home, ['sandbox', 'create', R], NO_NODE)])
    expect(rs.map((r) => r.status).sort()).toEqual([0, 1])
    expect(rs.find((r) => r.status === 1)!.stderr).toBe(
      `velo: error [ALREADY_EXISTS]: a sandbox named ${R} already exists\n  suggestion: pick another name, or remove it first: velo sandbox rm -f ${R}\n`,
    )
    const a = v(['sandbox', 'rm', '-f', R, '--json'], NO_NODE)
    expect(a.status).toBe(0)
    const ja = JSON.parse(a.stdout)
    const R2 = uniq('race2')
    sb.track(R2)
    v(['sandbox', 'create', R2])
    const jb = JSON.parse(v(['sandbox', 'rm', '-f', R2, '--json'], NODE_ONLY).stdout)
    expect(ja.map((x: any) => Object.keys(x))).toEqual(jb.map((x: any) => Object.keys(x)))
    expect(Object.keys(ja[0].timings)).toEqual(Object.keys(jb[0].timings))
    expect(ja[0]).toMatchObject({name: R, killed: true})
    expect(leftovers(sb.home, [R, R2]).cgroups).toEqual([])
    expect(fs.existsSync(path.join(sb.home, 'tenants', R))).toBe(false)
  })

  it('stop: same output and exit codes natively as through Node', () => {
    const S = uniq('stp')
    sb.track(S)
    expect(v(['sandbox', 'create', S], NO_NODE).status).toBe(0)
    const a = v(['sandbox', 'stop', S, '--json'], NO_NODE)
    expect(a.status, a.stderr).toBe(0)
    expect(JSON.parse(a.stdout)).toEqual({name: S, wasRunning: true, forced: false})
    expect(v(['sandbox', 'ls', '--json']).stdout).toMatch(new RegExp(`"name": "${S}",\\s*"status": "stopped"`))
    for (const args of [
      ['sandbox', 'stop', S],
      ['sandbox', 'stop', S, '--json'],
      ['sandbox', 'stop', '-t', '1', 'no-such-sandbox'],
    ]) {
      const x = v(args, NO_NODE)
      expect(x).toEqual(v(args, NODE_ONLY))
    }
    expect(v(['sandbox', 'start', S]).status).toBe(0)
    const h = v(['sandbox', 'stop', '-t', '5', S], NO_NODE)
    expect(h).toEqual({status: 0, stdout: '', stderr: `stopped ${S}\n`})
  })

  it('ls / ps: the same table and JSON natively as through Node, real tenants running, stopped and exited', () => {
    const R = uniq('lsr'), X = uniq('lsx')
    sb.track(R), sb.track(X)
    expect(v(['sandbox', 'create', R, '--', 'sh', '-c', `echo "it's \\"quoted\\""; while :; do sleep 3600; done # a long command cut at 40`]).status).toBe(0)
    expect(v(['sandbox', 'create', X, '--', 'sh', '-c', 'exit 7']).status).toBe(0)
    expect(v(['sandbox', 'wait', X]).stdout).toBe('7\n')
    for (const args of [['sandbox', 'ls'], ['sandbox', 'ls', '--json'], ['ps'], ['sandbox', 'list', '--json']]) {
      const a = v(args, NO_NODE)
      expect(a.status, a.stderr).toBe(0)
      expect(a).toEqual(v(args, NODE_ONLY))
    }
    expect(v(['ps'], NO_NODE).stdout).toMatch(new RegExp(`${X}\\s+exited \\(7\\)`))
    expect(v(['sandbox', 'ls', 'extra'], NO_NODE).stderr).toMatch(/Cannot find module/) // a usage error is Node's
  })

  it('ls: crafted states (an address, published ports, damaged files, odd types) are rendered or handed to Node as Node would', () => {
    // tenants made of files only, in a store of their own: "running" ones name this test process as their init
    const home = tmpDir('velo-ls-')
    try {
      const [, rest] = /^\d+ \(.*\) (.*)$/s.exec(fs.readFileSync(`/proc/${process.pid}/stat`, 'latin1'))!
      const pidStart = rest.split(' ')[19]
      const base = {version: 1, image: 'img', profile: 'default', network: 'loopback', createdAt: '2026-01-01T00:00:00.000Z'}
      const put = (name: string, state: unknown, files: Record<string, string> = {}) => {
        fs.mkdirSync(path.join(home, 'tenants', name), {recursive: true})
        fs.writeFileSync(path.join(home, 'tenants', name, 'state.json'), typeof state === 'string' ? state : JSON.stringify(state))
        for (const [f, t] of Object.entries(files)) fs.writeFileSync(path.join(home, 'tenants', name, f), t)
      }
      const same = () => {
        for (const args of [['sandbox', 'ls', '--home', home], ['sandbox', 'ls', '--home', home, '--json']]) {
          const a = velo(home, args, {env: NO_NODE})
          expect(a.status, a.stderr).toBe(0)
          expect(a).toEqual(velo(home, args, {env: NODE_ONLY}))
        }
      }
      expect(velo(home, ['ps'], {env: NO_NODE})).toEqual({status: 0, stdout: 'NAME  STATUS  IMAGE  COMMAND  NETWORK  PORTS  PID  CREATED\n', stderr: ''})
      put('net-up', {...base, network: 'blue', pid: process.pid, pidStart, startedAt: '2026-01-01T00:00:01.000Z', ports: [{hostIP: '127.0.0.1', hostPort: 8080, containerPort: 80, protocol: 'tcp'}, {hostPort: 53, containerPort: 53, protocol: 'udp'}]}, {'network.json': JSON.stringify({network: 'blue', ip: '10.88.0.5', attached: true})})
      put('net-detached', {...base, network: 'blue', pid: process.pid, pidStart}, {'network.json': JSON.stringify({network: 'blue', ip: '10.88.0.6', attached: false})})
      put('stale-pid', {...base, pid: process.pid, pidStart: '1', main: {argv: ['node', 'server.js']}}, {'workload.json': '{"exitCode": 137}'})
      put('no-exit-yet', {...base, main: {argv: ['true']}}, {'workload.json': 'not json'})
      put('damaged', '{"image": ')
      put('empty', '')
      fs.mkdirSync(path.join(home, 'tenants', 'half-made'))
      fs.mkdirSync(path.join(home, 'tenants', '.trash-x'))
      same()
      const rows = JSON.parse(velo(home, ['sandbox', 'ls', '--json'], {env: NO_NODE}).stdout)
      expect(rows.map((r: any) => r.name)).toEqual(['net-detached', 'net-up', 'no-exit-yet', 'stale-pid'])
      expect(rows[1]).toMatchObject({status: 'running', pid: process.pid, ip: '10.88.0.5', ports: ['127.0.0.1:8080->80/tcp', '53->53/udp']})
      expect(rows[3]).toMatchObject({status: 'stopped', pid: null, exitCode: 137})
      // what Node would render its own way goes to Node, whole: non-ASCII text, a number where a string goes
      for (const odd of [{...base, image: 'ïmg'}, {...base, createdAt: 5}, {...base, pid: '12'}, {...base, main: {argv: ['a', 1]}}]) {
        put('odd', odd)
        expect(velo(home, ['sandbox', 'ls', '--json'], {env: NO_NODE}).stderr, JSON.stringify(odd)).toMatch(/Cannot find module/)
        fs.rmSync(path.join(home, 'tenants', 'odd'), {recursive: true})
      }
      same()
      // a long listing (read by two threads): the same rows in the same order, damaged ones left out in both halves,
      // and an odd state in the second half still hands the whole call to Node
      for (let i = 0; i < 150; i++)
        put(`many-${String(i).padStart(3, '0')}`, i % 7 === 3 ? '{"image": ' : {...base, ...(i % 5 === 0 ? {pid: process.pid, pidStart} : {}), ...(i % 11 === 0 ? {main: {argv: ['sleep', String(i)]}} : {})})
      same()
      expect(JSON.parse(velo(home, ['sandbox', 'ls', '--json'], {env: NO_NODE}).stdout)).toHaveLength(4 + 150 - 21)
      put('many-140', {...base, image: 'ïmg'})
      expect(velo(home, ['sandbox', 'ls', '--json'], {env: NO_NODE}).stderr).toMatch(/Cannot find module/)
    } finally {
      rmrf(home)
    }
  })

  it('run --rm: output and exit codes as Node, nothing left behind', () => {
    const before = fs.readdirSync(path.join(sb.home, 'tenants')).sort()
    for (const [cmd, code] of [
      [['true'], 0],
      [['sh', '-c', 'echo out; echo err >&2; exit 3'], 3],
      [['sh', '-c', 'kill -9 $$'], 137],
    ] as Array<[string[], number]>) {
      const a = v(['sandbox', 'run', '--rm', '--env', 'Q=1', '--', ...cmd], NO_NODE)
      const b = v(['sandbox', 'run', '--rm', '--env', 'Q=1', '--', ...cmd], NODE_ONLY)
      expect(a.status).toBe(code)
      expect(a).toEqual(b)
    }
    expect(fs.readdirSync(path.join(sb.home, 'tenants')).sort()).toEqual(before)
  })

  it('run -d and create NAME -- CMD: the same state file (main, logs, --rm) natively as through Node, key order included; the workload runs', async () => {
    const keys = (name: string) => {
      const o = normState(sb.home, name)
      return [Object.keys(o), Object.keys(o.main), Object.keys(o.logs)]
    }
    const cases: Array<[string[], (n: string) => string[]]> = [
      [['-w', '/tmp', '--rm'], (n) => ['sandbox', 'run', '-d', '--name', n, '-w', '/tmp', '--rm', '--', 'sh', '-c', 'echo hi; sleep 100']],
      [[], (n) => ['sandbox', 'create', n, '--memory', '64m', '--', 'sh', '-c', 'echo hi; sleep 100']],
    ]
    for (const [, argv] of cases) {
      const [A, B] = [uniq('dn'), uniq('dj')]
      sb.track(A)
      sb.track(B)
      const a = v(argv(A), NO_NODE)
      expect(a.status, a.stderr).toBe(0)
      const b = v(argv(B), NODE_ONLY)
      expect(b.status, b.stderr).toBe(0)
      expect(a.stdout.replace(A, 'N')).toBe(b.stdout.replace(B, 'N'))
      expect(a.stderr.replaceAll(A, 'N').replace(/pid \d+/, 'pid P')).toBe(b.stderr.replaceAll(B, 'N').replace(/pid \d+/, 'pid P'))
      expect(normState(sb.home, A)).toEqual(normState(sb.home, B))
      expect(keys(A)).toEqual(keys(B))
      for (const n of [A, B]) {
        let out = ''
        for (let i = 0; i < 200 && !out.includes('hi'); i++) {
          out = v(['sandbox', 'logs', n]).stdout
          if (!out.includes('hi')) await new Promise((r) => setTimeout(r, 20))
        }
        expect(out).toBe('hi\n')
        expect(v(['sandbox', 'rm', '-f', n]).status).toBe(0)
      }
    }
    // the log defaults the native create writes are the ones Node decides (src/sandbox/workload.ts LOG_DEFAULTS)
    const {LOG_DEFAULTS} = await import('../../src/sandbox/workload')
    const h = fs.readFileSync(path.join(__dirname, '../../native/cli/monitor.h'), 'utf8')
    expect(Number(/WORKLOAD_LOG_MAX_SIZE (\d+)LL/.exec(h)?.[1])).toBe(LOG_DEFAULTS.maxSize)
    expect(Number(/WORKLOAD_LOG_MAX_FILES (\d+)/.exec(h)?.[1])).toBe(LOG_DEFAULTS.maxFiles)
    // what only Node knows goes to Node: a named user, --restart, --log-opt, no command (the image's CMD)
    for (const extra of [['-u', 'nobody'], ['--restart', 'always'], ['--log-opt', 'max-file=2']]) {
      const r = v(['sandbox', 'run', '-d', '--name', uniq('fb'), ...extra, '--', 'true'], NO_NODE)
      expect(r.status).not.toBe(0)
      expect(r.stderr).toMatch(/Cannot find module/)
    }
    expect(v(['sandbox', 'run', '-d', '--name', uniq('fb')], NO_NODE).stderr).toMatch(/Cannot find module/)
  })

  it('a tenant state file is its gc hold: gc racing creates keeps every created tenant\'s layers', async () => {
    const src = tmpDir('velo-front-img-')
    try {
      fs.writeFileSync(path.join(src, 'hello.txt'), `layer for ${uniq('x')}\n`)
      expect(v(['ingest', src, '--name', 'gcimg', '--json']).status).toBe(0)
      // the farm is built by the first (Node) create; the racing ones are native
      const W = uniq('gcw')
      sb.track(W)
      expect(v(['sandbox', 'create', W, '--image', 'gcimg']).status).toBe(0)
      const layers: string[] = JSON.parse(fs.readFileSync(path.join(sb.home, 'tenants', W, 'state.json'), 'utf8')).layers
      expect(v(['sandbox', 'rm', '-f', W]).status).toBe(0)
      const names = [0, 1, 2, 3].map(() => uniq('gcr'))
      names.forEach((n) => sb.track(n))
      const racers = names.map((n) => asyncVelo(sb.home, ['sandbox', 'create', n, '--image', 'gcimg'], NO_NODE))
      const rmGc = (async () => {
        await asyncVelo(sb.home, ['image', 'rm', 'gcimg', '--json'])
        return asyncVelo(sb.home, ['gc', '--json'])
      })()
      const [gc1, ...rs] = await Promise.all([rmGc, ...racers])
      expect(gc1.status, gc1.stderr + gc1.stdout).toBe(0)
      const won = names.filter((_, i) => rs[i].status === 0)
      for (const n of won) for (const l of layers) expect(fs.existsSync(path.join(sb.home, 'farms', l))).toBe(true)
      // with a tenant alive, the image's layer survives every gc; once the last one is gone, gc sweeps it
      if (won.length) {
        const g = JSON.parse(v(['gc', '--json']).stdout)
        expect(g.removedLayers).toBe(0)
        expect(g.removedFarms).toBe(0)
        expect(g.removedObjects).toBe(0)
        expect(fs.readFileSync(path.join(sb.home, 'farms', layers[0], 'hello.txt'), 'utf8')).toMatch(/^layer for /)
      }
      for (const n of won) expect(v(['sandbox', 'rm', '-f', n], NO_NODE).status).toBe(0)
      const g2 = JSON.parse(v(['gc', '--json']).stdout)
      expect(fs.existsSync(path.join(sb.home, 'farms', layers[0]))).toBe(false)
      expect(g2.removedLayers + (JSON.parse(gc1.stdout).removedLayers ?? 0)).toBeGreaterThanOrEqual(1)
      const db = ManifestDb.open(sb.home)
      try {
        expect(db.listHolds().filter((h) => h.holder.startsWith('tenant:'))).toEqual([])
      } finally {
        db.close()
      }
    } finally {
      rmrf(src)
    }
  })
})
