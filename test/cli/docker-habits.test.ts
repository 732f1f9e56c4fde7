import * as fs from 'node:fs'
import * as path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {dockerArgv} from '../../src/lib/docker-argv'
import {rmrf, tmpDir, velo} from '../helpers'
import {SandboxHome, uniq} from '../sandbox/fixture'

// What people who come from Docker type: flags end at the command, short forms, combined short flags,
// top-level ps/logs/exec. Both front doors (the native one and Node's, VELO_NATIVE=0) read them alike.
const NODE_ONLY = {VELO_NATIVE: '0'}

describe('docker argv shape (src/lib/docker-argv.ts)', () => {
  const defs = {
    home: {type: 'option'},
    env: {type: 'option', char: 'e'},
    tty: {type: 'boolean', char: 't'},
    interactive: {type: 'boolean', char: 'i'},
    user: {type: 'option', char: 'u'},
    mount: {type: 'option', char: 'v', aliases: ['volume']},
  }
  it.each([
    [['a', 'sh', '-c', 'x'], 'name', ['a', '--', 'sh', '-c', 'x']],
    [['-e', 'A=1', 'a', 'ls', '-t'], 'name', ['-e', 'A=1', 'a', '--', 'ls', '-t']],
    [['a', '-e', 'A=1', 'ls', '-t'], 'name', ['a', '-e', 'A=1', '--', 'ls', '-t']],
    [['-it', 'a', 'sh'], 'name', ['-it', 'a', '--', 'sh']],
    [['-ueve', 'a', 'id'], 'name', ['-ueve', 'a', '--', 'id']],
    [['-u', 'node', '--volume', '/x:/y', 'a', 'id', '-u'], 'name', ['-u', 'node', '--volume', '/x:/y', 'a', '--', 'id', '-u']],
    [['a', '--home=/h', '--json'], 'name', ['a', '--home=/h', '--json']],
    [['a', '--', 'ls'], 'name', ['a', '--', 'ls']],
    [['--', 'a', 'ls'], 'name', ['--', 'a', 'ls']],
    [['--rm', 'img', 'sh', '-c', 'x'], 'image', ['--rm', '--image', 'img', '--', 'sh', '-c', 'x']],
    [['--rm', 'img', '-e', 'A=1', 'env'], 'image', ['--rm', '--image', 'img', '-e', 'A=1', '--', 'env']],
    [['--rm', '--', 'true'], 'image', ['--rm', '--', 'true']],
    [['-t', 'img'], 'image', ['-t', '--image', 'img']],
    [['img', '--', 'true'], 'image', ['--image', 'img', '--', 'true']],
  ] as Array<[string[], 'name' | 'image', string[]]>)('%j (%s) → %j', (argv, shape, want) => {
    expect(dockerArgv(argv, defs, shape)).toEqual(want)
  })
})

describe('docker habits on the command line', () => {
  const sb = new SandboxHome()
  const A = uniq('dh')
  let work: string
  beforeAll(() => {
    sb.create(A)
    work = tmpDir('velo-dh-')
    fs.chmodSync(work, 0o755)
  })
  afterAll(() => {
    rmrf(work)
    expect(sb.cleanup()).toEqual({mounts: [], cgroups: [], tenants: []})
  })
  // the native door and Node's (VELO_NATIVE=0) give the same result
  const both = (args: string[]) => [sb.velo(args), velo(sb.home, args, {env: NODE_ONLY})]

  it('exec: flags end at the command, on both doors; -e and -it before NAME; velo exec is the same command', () => {
    for (const r of both(['sandbox', 'exec', A, 'sh', '-c', 'echo "$0 $1"', 'x', '-t'])) {
      expect(r.stderr).toBe('')
      expect(r.stdout).toBe('x -t\n')
    }
    for (const r of both(['sandbox', 'exec', '-e', 'A=1', '-e', 'B=2', A, 'sh', '-c', 'echo $A$B'])) expect(r.stdout).toBe('12\n')
    for (const r of both(['exec', '-u', 'node', A, 'id', '-u'])) expect(r.stdout).toBe('1000\n')
    // -i is docker's "keep stdin": velo always passes stdin through; -it without a terminal runs like -i
    for (const r of both(['exec', '-i', A, 'cat'])) expect(r.status).toBe(0)
    const it = sb.velo(['sandbox', 'exec', '-it', A, 'sh', '-c', 'exit 3'])
    expect(it.status).toBe(3)
    // the old form still works
    expect(sb.velo(['sandbox', 'exec', A, '--', 'sh', '-c', 'echo ok']).stdout).toBe('ok\n')
  })

  it('run: IMAGE CMD as docker run (IMAGE becomes --image), --rm, -v, -e, -w; the -- form still works', () => {
    const src = path.join(work, 'data')
    fs.mkdirSync(src)
    fs.writeFileSync(path.join(src, 'f'), 'from the host\n')
    for (const r of both(['sandbox', 'run', '--rm', '-v', `${src}:/data:ro`, '-e', 'X=y', '-w', '/data', 'default', 'sh', '-c', 'cat f; echo $X; pwd'])) {
      expect(r.stderr).toBe('')
      expect(r.stdout).toBe('from the host\ny\n/data\n')
    }
    expect(sb.velo(['sandbox', 'run', '--rm', '--', 'sh', '-c', 'echo plain']).stdout).toBe('plain\n')
    const twice = sb.velo(['sandbox', 'run', '--rm', '--image', 'default', 'default', 'true'])
    expect(twice.status).toBe(2)
    expect(twice.stderr).toMatch(/image/)
    const none = sb.velo(['sandbox', 'run', '--rm', 'no-such-image', 'true'])
    expect(none.status).not.toBe(0)
    expect(none.stderr).toMatch(/no-such-image/)
    expect(fs.readdirSync(path.join(sb.home, 'tenants')).filter((n) => n.startsWith('run-'))).toEqual([])
  })

  it('--env-file, --cap-add, --cap-drop; what velo never grants is refused with the reason', () => {
    const envFile = path.join(work, 'env')
    fs.writeFileSync(envFile, '# settings\nFROM_FILE=1\n\nSPACED=a b\n')
    const r = sb.velo(['sandbox', 'run', '--rm', '--env-file', envFile, '--cap-drop', 'ALL', '--cap-add', 'cap_chown', 'default', 'sh', '-c', 'echo "$FROM_FILE/$SPACED"; grep CapBnd /proc/self/status'])
    expect(r.status, r.stderr).toBe(0)
    expect(r.stdout.split('\n')[0]).toBe('1/a b')
    expect(BigInt('0x' + /CapBnd:\s*([0-9a-f]+)/.exec(r.stdout)![1])).toBe(1n) // CAP_CHOWN (0) alone
    const bad = sb.velo(['sandbox', 'run', '--rm', '--cap-add', 'SYS_ADMIN', 'default', 'true'])
    expect(bad.status).toBe(1)
    expect(bad.stderr).toMatch(/BAD_INPUT.*SYS_ADMIN.*cannot be granted/)
    const unknown = sb.velo(['sandbox', 'run', '--rm', '--cap-drop', 'FLY', 'default', 'true'])
    expect(unknown.status).toBe(2)
    expect(unknown.stderr).toMatch(/unknown capability/)
  })

  it('--entrypoint and the image\'s ENTRYPOINT/CMD as docker combines them, on both doors', async () => {
    const {ManifestDb} = await import('../../src/manifest/db')
    const db = ManifestDb.open(sb.home)
    const base = db.requireImage('default')
    const EP = uniq('ep-img')
    db.putImageSync({...base, name: EP, source: 'test', config: {...base.config, entrypoint: ['/bin/echo', 'ep'], cmd: ['dflt']}})
    db.close()
    const run = (args: string[]) => both(['sandbox', 'run', '--rm', ...args]).map((r) => [r.status, r.stdout])
    expect(run([EP])).toEqual([[0, 'ep dflt\n'], [0, 'ep dflt\n']]) // ENTRYPOINT + CMD
    expect(run([EP, 'a', 'b'])).toEqual([[0, 'ep a b\n'], [0, 'ep a b\n']]) // args replace CMD
    expect(run(['--entrypoint', '/bin/printf', EP, '%s-', 'x'])).toEqual([[0, 'x-'], [0, 'x-']]) // --entrypoint drops CMD
    expect(run(['--entrypoint', '', EP, 'echo', 'plain'])).toEqual([[0, 'plain\n'], [0, 'plain\n']]) // "" clears it
    const D = uniq('epd')
    sb.track(D)
    const d = sb.velo(['sandbox', 'run', '-d', '--name', D, EP])
    expect(d.status, d.stderr).toBe(0)
    expect(sb.velo(['sandbox', 'wait', D]).stdout).toBe('0\n')
    expect(sb.velo(['sandbox', 'logs', D]).stdout).toBe('ep dflt\n')
    expect(sb.velo(['sandbox', 'rm', D]).status).toBe(0)
    // no command anywhere: a usage error, nothing made
    const none = sb.velo(['sandbox', 'run', '--rm'])
    expect(none.status).toBe(2)
    expect(none.stderr).toMatch(/no command given, and image default names none/)
    sb.velo(['image', 'rm', EP])
  })

  it('--read-only and --tmpfs: a read-only root with writable tmpfs dirs, docker\'s default options; bad specs refused', () => {
    for (const r of both(['sandbox', 'run', '--rm', '--read-only', '--tmpfs', '/run:size=1m,mode=1777', '--tmpfs', '/scratch:exec', '--', 'sh', '-c',
      'touch /x 2>/dev/null && echo root-writable; touch /run/a /scratch/b && echo tmpfs-ok; grep -E " /(run|scratch) " /proc/mounts | cut -d" " -f2-4; stat -c %a /run'])) {
      expect(r.status, r.stderr).toBe(0)
      const [ok, run, scratch, mode] = r.stdout.trim().split('\n')
      expect(ok).toBe('tmpfs-ok')
      expect(run).toMatch(/^\/run tmpfs rw,nosuid,nodev,noexec,.*size=1024k/)
      expect(scratch).toMatch(/^\/scratch tmpfs rw,nosuid,nodev,relatime/)
      expect(scratch).not.toMatch(/noexec/)
      expect(mode).toBe('1777')
    }
    // the root stays writable without --read-only; a tmpfs is fresh at every start
    const T = uniq('tmpfs')
    sb.track(T)
    expect(sb.velo(['sandbox', 'create', T, '--tmpfs', '/run']).status).toBe(0)
    expect(sb.velo(['sandbox', 'exec', T, '--', 'sh', '-c', 'touch /x && touch /run/a']).status).toBe(0)
    expect(sb.velo(['sandbox', 'stop', '-t', '1', T]).status).toBe(0)
    expect(sb.velo(['sandbox', 'start', T]).status).toBe(0)
    expect(sb.velo(['sandbox', 'exec', T, '--', 'sh', '-c', 'ls /x /run']).stdout).toBe('/x\n\n/run:\n')
    expect(sb.velo(['sandbox', 'rm', '-f', T]).status).toBe(0)
    for (const [spec, re] of [
      ['/run:suid', /suid is refused/],
      ['/proc/x', /cannot go at \/proc\/x/],
      ['/', /cannot go at \//],
      ['run', /absolute path/],
      ['/a/../b', /'\.\.'/],
      ['/run:size=lots', /invalid size=lots/],
      ['/run:weird', /unknown option "weird"/],
    ] as Array<[string, RegExp]>) {
      const r = sb.velo(['sandbox', 'run', '--rm', '--tmpfs', spec, '--', 'true'])
      expect(r.status, spec).toBe(2)
      expect(r.stderr).toMatch(re)
    }
  })

  it('velo ps and velo logs are sandbox ls and sandbox logs', () => {
    expect(sb.velo(['ps']).stdout).toMatch(new RegExp(`^${A}\\s+running`, 'm'))
    expect(JSON.parse(sb.velo(['ps', '--json']).stdout).map((s: any) => s.name)).toContain(A)
    const W = uniq('dh-wl')
    sb.track(W)
    expect(sb.velo(['sandbox', 'run', '-d', '--name', W, 'default', 'echo', 'from the main command']).status).toBe(0)
    expect(sb.velo(['sandbox', 'wait', W]).stdout).toBe('0\n')
    expect(sb.velo(['logs', W]).stdout).toBe('from the main command\n')
  })
})
