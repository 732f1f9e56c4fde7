import {spawn, spawnSync} from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {rmrf, tmpDir, velo, VELO} from '../helpers'
import {ManifestDb} from '../../src/manifest/db'
import {ingest} from '../run/fixture'

// The native `velo run` (native/cli/run.c) against the Node one (VELO_NATIVE=0): same output, exit codes,
// signals, errors and environment; and proof that the native path served the call (the program runs in
// velo's own process: its PID is the one the test spawned) or handed it to Node (a child of node).
const NO_NODE = {NODE_OPTIONS: '--require=/nonexistent/velo-run-test.js'}
let dir: string, home: string, proj: string, cache: string

beforeAll(() => {
  dir = tmpDir('velo-cli-run-')
  home = path.join(dir, 'home')
  cache = path.join(dir, 'cache')
  fs.mkdirSync(cache)
  const src = path.join(dir, 'src', 'lib')
  fs.mkdirSync(path.join(src, 'sub'), {recursive: true})
  fs.writeFileSync(path.join(src, 'a.txt'), 'hello from the image\n')
  fs.writeFileSync(path.join(src, 'sub', 'b.txt'), 'b'.repeat(10000))
  fs.writeFileSync(path.join(src, 'tool.sh'), '#!/bin/sh\necho "tool $*"\nexit 7\n', {mode: 0o755})
  fs.copyFileSync('/bin/busybox', path.join(src, 'static')) // a static program that lives in the image
  ingest(home, src, 'img')
  ingest(home, path.join(dir, 'src'), 'other')
  proj = path.join(dir, 'proj')
  fs.mkdirSync(proj)
})
afterAll(() => rmrf(dir))

interface Out {
  status: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

function run(args: string[], native: boolean, opts: {cwd?: string; env?: NodeJS.ProcessEnv} = {}): Out {
  const r = spawnSync(VELO, ['run', ...args], {
    cwd: opts.cwd ?? proj,
    encoding: 'utf8',
    env: {...process.env, VELO_HOME: home, VELO_CACHE_HOME: cache, ...opts.env, VELO_NATIVE: native ? '1' : '0'},
  })
  if (r.error) throw r.error
  return {status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr}
}

/** Both paths, same everything. */
function same(args: string[], opts: {cwd?: string; env?: NodeJS.ProcessEnv} = {}): Out {
  const a = run(args, false, opts)
  const b = run(args, true, opts)
  expect(b).toEqual(a)
  return b
}

/** Did the native front-end run the program itself (no Node in between)? */
async function servedNatively(args: string[], opts: {cwd?: string} = {}): Promise<boolean> {
  const child = spawn(VELO, ['run', ...args, '--', 'sh', '-c', 'echo $$'], {
    cwd: opts.cwd ?? proj,
    env: {...process.env, VELO_HOME: home, VELO_CACHE_HOME: cache},
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  let out = ''
  child.stdout.on('data', (d) => (out += d))
  const code = await new Promise((resolve) => child.on('close', resolve))
  expect(code).toBe(0)
  return Number(out.trim()) === child.pid
}

describe('velo run: the native path', () => {
  it('a first run goes to Node (it builds the skeleton and the gc hold); later runs are served natively', async () => {
    expect(await servedNatively(['--image', 'img'])).toBe(false)
    expect(fs.statSync(path.join(proj, 'lib', 'a.txt')).blocks).toBe(0) // the placeholder skeleton exists
    expect(await servedNatively(['--image', 'img'])).toBe(true)
    expect(await servedNatively(['--image=img', '--phantom'])).toBe(false) // first phantom run: Node
    expect(await servedNatively(['--image=img', '--phantom'])).toBe(true)
  })

  it('program output, exit codes and a signal death are the same both ways', async () => {
    await servedNatively(['--image', 'img'])
    expect(same(['--image', 'img', '--', 'cat', 'lib/a.txt']).stdout).toBe('hello from the image\n')
    expect(same(['--image', 'img', '--', 'sha256sum', 'lib/sub/b.txt']).status).toBe(0)
    const t = same(['--image', 'img', '--', 'lib/tool.sh', 'x', 'y z'])
    expect(t).toMatchObject({status: 7, stdout: 'tool x y z\n'})
    const k = same(['--image', 'img', '--', 'sh', '-c', 'echo before; kill -TERM $$; echo after'])
    expect(k).toMatchObject({status: null, signal: 'SIGTERM', stdout: 'before\n'})
    expect(same(['--image', 'img', '--', 'sh', '-c', 'kill -USR1 $$']).signal).toBe('SIGUSR1')
    // the program's stdin, and the flags in their other accepted forms
    const c = spawnSync(VELO, ['run', '--json', '--image=img', '--at', 'lib', '--', 'sh', '-c', 'cat; cat lib/a.txt'], {
      cwd: proj,
      input: 'from stdin\n',
      encoding: 'utf8',
      env: {...process.env, VELO_HOME: home},
    })
    expect(c.stdout).toBe('from stdin\nhello from the image\n')
  })

  it('the environment of the program is the same both ways (solid and phantom, LD_PRELOAD and UV_USE_IO_URING kept)', async () => {
    await servedNatively(['--image', 'img'])
    await servedNatively(['--image', 'img', '--phantom'])
    const noFlag = (o: Out) => ({...o, stdout: o.stdout.replace(/^VELO_NATIVE=.*\n/m, '')})
    const env = {LD_PRELOAD: '/lib/x86_64-linux-gnu/libm.so.6 /lib/x86_64-linux-gnu/libm.so.6:', UV_USE_IO_URING: '', VELO_SHIM_PHANTOM_ROOT: '/nowhere'}
    // a store named through a symlink keeps that name (path.resolve, not realpath), as the Node CLI does
    const link = path.join(dir, 'home-link')
    if (!fs.existsSync(link)) fs.symlinkSync(home, link)
    for (const extra of [[], ['--phantom']]) {
      for (const e of [{}, env, {VELO_HOME: link + '/./'}]) {
        const a = noFlag(run(['--image', 'img', ...extra, '--', 'env'], false, {env: e}))
        const b = noFlag(run(['--image', 'img', ...extra, '--', 'env'], true, {env: e}))
        expect(a.status).toBe(0)
        expect(b).toEqual(a)
        expect(b.stdout).toContain(`VELO_SHIM_CAS=${'VELO_HOME' in e ? link : home}/cas/blake3\n`)
        expect(b.stdout.includes('VELO_SHIM_PHANTOM_SKEL=')).toBe(extra.length > 0)
      }
    }
  })

  it("velo's own errors are the same both ways, in text and JSON", async () => {
    const cases: [string[], string, number][] = [
      [['--image', 'nope', '--', 'true'], 'NOT_FOUND', 1],
      [['--image', 'img', '--', 'no-such-command-xyz'], 'NOT_FOUND', 1],
      [['--image', 'img', '--', './no/such/file'], 'NOT_FOUND', 1],
      [['--image', 'img', '--', '/bin/busybox', 'true'], 'UNSUPPORTED', 1],
      [['--image', 'img', '--'], 'USAGE', 2],
      [['--', 'true'], 'USAGE', 2], // no --image and no inception here
    ]
    for (const [args, code, exit] of cases) {
      const t = same(args)
      expect(t.status, t.stderr).toBe(exit)
      expect(t.stderr).toContain(`velo: error [${code}]`)
      expect(t.stdout).toBe('')
      const j = same(['--json', ...args])
      expect(j.status).toBe(exit)
      expect(JSON.parse(j.stdout).error.code).toBe(code)
    }
    // a projected static program is judged by its content, not by its placeholder's zeros, and left as it is
    await servedNatively(['--image', 'img'])
    const st = same(['--image', 'img', '--', 'lib/static', 'true'])
    expect(st.stderr).toContain(`${fs.realpathSync(proj)}/lib/static is statically linked`)
    expect(fs.statSync(path.join(proj, 'lib', 'static')).blocks).toBe(0)
    // a script whose #! interpreter is static is judged by the interpreter
    const s = path.join(dir, 'via-busybox')
    fs.writeFileSync(s, '#!/bin/busybox sh\necho hi\n', {mode: 0o755})
    expect(same(['--image', 'img', '--', s]).stderr).toContain('/bin/busybox is statically linked')
  })

  it('what it does not serve goes to Node unchanged: another image at the same place, a missing hold, odd flags', async () => {
    await servedNatively(['--image', 'img'])
    // the skeleton at ./lib is img's: Node refuses to project another image over it
    const o = same(['--image', 'other', '--at', 'lib', '--', 'true'])
    expect(o.status).toBe(1)
    expect(o.stderr).toContain('[STATE]')
    // a hold that gc would not honour (removed behind velo's back): Node puts it back, then native again
    const db = ManifestDb.open(home)
    try {
      expect(db.holds.get(`projection:${fs.realpathSync(proj)}/lib`)).toBeTruthy()
      db.deleteHoldSync(`projection:${fs.realpathSync(proj)}/lib`)
    } finally {
      db.close()
    }
    expect(await servedNatively(['--image', 'img'])).toBe(false)
    expect(await servedNatively(['--image', 'img'])).toBe(true)
    // forms the front-end leaves to oclif
    same(['--image', 'img', 'echo', 'no-dashdash'])
    same(['--image', 'img', '--image', 'img', '--', 'true'])
    same(['--bogus', '--', 'true'])
  })

  it('a held projection whose skeleton is gone is rebuilt in-process (velo-project\'s code); one that holds something else is refused as Node does', async () => {
    const p = path.join(dir, 'rebuild')
    fs.mkdirSync(p)
    expect(await servedNatively(['--image', 'img'], {cwd: p})).toBe(false) // first run: Node writes the hold and builds
    const lib = path.join(p, 'lib')
    for (const phantom of [false, true]) {
      const extra = phantom ? ['--phantom'] : []
      if (phantom) expect(await servedNatively(['--image', 'img', ...extra], {cwd: p})).toBe(false)
      const skel = phantom ? path.join(cache, 'phantom', fs.readdirSync(path.join(cache, 'phantom'))[0]) : lib
      if (phantom) expect(fs.readdirSync(path.join(cache, 'phantom'))).toHaveLength(1)
      rmrf(skel)
      expect(await servedNatively(['--image', 'img', ...extra], {cwd: p})).toBe(true)
      expect(fs.statSync(path.join(skel, 'a.txt')).blocks).toBe(0)
      expect(run(['--image', 'img', ...extra, '--', 'cat', 'lib/a.txt'], true, {cwd: p}).stdout).toBe('hello from the image\n')
      rmrf(path.join(cache, 'phantom'))
      fs.mkdirSync(path.join(cache, 'phantom'))
    }
    // the place holds something else: the same STATE error both ways, and it is left as it was
    rmrf(lib)
    fs.mkdirSync(lib)
    fs.writeFileSync(path.join(lib, 'mine'), 'x')
    const o = same(['--image', 'img', '--', 'true'], {cwd: p})
    expect(o.status).toBe(1)
    expect(o.stderr).toContain('[STATE]')
    expect(o.stderr).toContain('is not empty and is not a velo projection')
    expect(fs.readdirSync(lib)).toEqual(['mine'])
    const j = same(['--json', '--image', 'img', '--', 'true'], {cwd: p})
    expect(JSON.parse(j.stdout).error.code).toBe('STATE')
  })

  it('without --image, in an inception directory, it runs natively with the inception state', async () => {
    const p = path.join(dir, 'incepted')
    fs.mkdirSync(p)
    const r = velo(home, ['inception', '--image', 'img', '--json'], {cwd: p})
    expect(r.status, r.stderr).toBe(0)
    const sub = path.join(p, 'deeper')
    fs.mkdirSync(sub)
    expect(await servedNatively([], {cwd: sub})).toBe(true)
    expect(same(['--', 'cat', '../lib/a.txt'], {cwd: sub}).stdout).toBe('hello from the image\n')
    expect(velo(home, ['wake'], {cwd: p}).status).toBe(0)
  })

  it("a user's store found through $XDG_DATA_HOME is named as path.join names it (/x/ gives /x/velo); an empty $HOME goes to Node", () => {
    // not root: the store is $XDG_DATA_HOME/velo (or ~/.local/share/velo), which Node builds with path.join
    const d = tmpDir('velo-cli-run-xdg-')
    try {
      fs.chmodSync(d, 0o755)
      fs.mkdirSync(path.join(d, 'src', 'lib'), {recursive: true})
      fs.writeFileSync(path.join(d, 'src', 'lib', 'a.txt'), 'xdg\n')
      fs.mkdirSync(path.join(d, 'proj'))
      spawnSync('chown', ['-R', 'nobody', d])
      const as = (args: string[], env: NodeJS.ProcessEnv) =>
        spawnSync('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', VELO, ...args], {
          cwd: path.join(d, 'proj'),
          encoding: 'utf8',
          env: {...process.env, VELO_HOME: '', VELO_CACHE_HOME: '', HOME: d, XDG_DATA_HOME: `${d}/data/`, XDG_CACHE_HOME: `${d}/cache`, ...env},
        })
      expect(as(['ingest', path.join(d, 'src', 'lib'), '--name', 'x'], {}).status).toBe(0)
      expect(as(['run', '--image', 'x', '--', 'true'], {VELO_NATIVE: '0'}).status).toBe(0) // builds the skeleton
      const a = as(['run', '--image', 'x', '--', 'env'], {VELO_NATIVE: '0'})
      const b = as(['run', '--image', 'x', '--', 'env'], NO_NODE) // served natively, or it fails
      expect(b.status, b.stderr).toBe(0)
      const cas = (o: {stdout: string}) => /^VELO_SHIM_CAS=.*$/m.exec(o.stdout)?.[0]
      expect(cas(a)).toBe(`VELO_SHIM_CAS=${d}/data/velo/cas/blake3`)
      expect(cas(b)).toBe(cas(a))
      // HOME set but empty: os.homedir() gives '', so Node's store path is relative; not the native path's to guess
      expect(as(['run', '--image', 'x', '--', 'true'], {...NO_NODE, HOME: '', XDG_DATA_HOME: ''}).stderr).toMatch(/Cannot find module/)
    } finally {
      rmrf(d)
    }
  })

  it('an inception state file with invalid UTF-8 is read as Node reads it (U+FFFD): the native path leaves it to Node', () => {
    const p = path.join(dir, 'incepted-bad-utf8')
    fs.mkdirSync(path.join(p, '.velo'), {recursive: true})
    fs.writeFileSync(path.join(p, '.velo', 'state.json'), Buffer.concat([Buffer.from('{"image":"r'), Buffer.from([0xff]), Buffer.from(`x","root":"${p}/lib","mode":"solid"}`)]))
    expect(run(['--', 'true'], true, {cwd: p, env: NO_NODE}).stderr).toMatch(/Cannot find module/)
    const o = same(['--', 'true'], {cwd: p})
    expect(o.status).toBe(1)
    expect(o.stderr).toContain('no image named "r\ufffdx"')
  })
})
