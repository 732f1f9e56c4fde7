import {spawn, spawnSync} from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {rmrf, tmpDir, VELO} from '../helpers'
import {leftovers, SandboxHome, uniq} from './fixture'

// velo sandbox cp between the host and a running tenant, both ways, and a tenant that lies about what it sends.
describe('sandbox cp', () => {
  const sb = new SandboxHome()
  const A = uniq('cp')
  let work: string
  beforeAll(() => {
    sb.create(A)
    work = tmpDir('velo-cp-')
  })
  afterAll(() => {
    rmrf(work)
    expect(sb.cleanup()).toEqual({mounts: [], cgroups: [], tenants: []})
  })

  it('host → tenant: a dir into an existing dir, a file under a new name; tenant → host likewise; owners are the copier\'s', () => {
    fs.mkdirSync(path.join(work, 'in', 'sub'), {recursive: true})
    fs.writeFileSync(path.join(work, 'in', 'sub', 'f'), 'hello\n')
    fs.chownSync(path.join(work, 'in', 'sub', 'f'), 4321, 4321)
    expect(sb.velo(['sandbox', 'cp', path.join(work, 'in'), `${A}:/tmp/`]).status).toBe(0)
    expect(sb.sh(A, 'cat /tmp/in/sub/f; stat -c %u /tmp/in/sub/f').stdout).toBe('hello\n0\n')
    expect(sb.velo(['sandbox', 'cp', path.join(work, 'in', 'sub', 'f'), `${A}:/tmp/g`]).status).toBe(0)
    expect(sb.sh(A, 'cat /tmp/g').stdout).toBe('hello\n')
    sb.sh(A, 'mkdir -p /data/d && echo from-tenant > /data/d/x && chown 1000:1000 /data/d/x')
    const out = path.join(work, 'out')
    fs.mkdirSync(out)
    expect(sb.velo(['sandbox', 'cp', `${A}:/data/d`, out]).status).toBe(0)
    expect(fs.readFileSync(path.join(out, 'd', 'x'), 'utf8')).toBe('from-tenant\n')
    expect(fs.statSync(path.join(out, 'd', 'x')).uid).toBe(process.getuid!())
    expect(sb.velo(['sandbox', 'cp', `${A}:/data/d/x`, path.join(out, 'renamed')]).status).toBe(0)
    expect(fs.readFileSync(path.join(out, 'renamed'), 'utf8')).toBe('from-tenant\n')
    expect(fs.readdirSync(out).sort()).toEqual(['d', 'renamed']) // no temp dir left
  })

  it('a tenant that sends a crafted archive (a symlink to /etc, then a file through it; ../ names) writes nothing outside the destination', () => {
    // the archive a hostile tenant's "tar" would print, made here with python's tarfile
    const evil = path.join(work, 'evil.tar')
    spawnSync('python3', ['-c', `
import tarfile, io
t = tarfile.open(${JSON.stringify(evil)}, 'w')
s = tarfile.TarInfo('payload/link'); s.type = tarfile.SYMTYPE; s.linkname = ${JSON.stringify(work)} + '/victim'; t.addfile(s)
for name in ['payload/link/owned', '../escaped', 'payload/../../escaped2']:
    d = b'pwned\\n'; i = tarfile.TarInfo(name); i.size = len(d); t.addfile(i, io.BytesIO(d))
t.close()
`])
    fs.mkdirSync(path.join(work, 'victim'))
    expect(sb.velo(['sandbox', 'cp', evil, `${A}:/tmp/evil.tar`]).status).toBe(0)
    // the tenant puts an "sh" first in its PATH that prints the crafted archive whatever it is asked (busybox's sh
    // would run its own tar applet, so the shell itself is what a hostile tenant replaces)
    sb.sh(A, 'printf "#!/bin/busybox sh\\ncat /tmp/evil.tar\\n" > /usr/local/bin/sh && chmod +x /usr/local/bin/sh')
    const dest = path.join(work, 'dest')
    fs.mkdirSync(dest)
    const r = sb.velo(['sandbox', 'cp', `${A}:/payload`, dest])
    expect(r.status).not.toBe(0) // bsdtar refuses the entries it will not write
    expect(r.stderr).toMatch(/bsdtar/)
    expect(fs.lstatSync(path.join(dest, 'payload', 'link')).isSymbolicLink()).toBe(true) // the archive was read
    expect(fs.readdirSync(path.join(work, 'victim'))).toEqual([])
    expect(fs.existsSync(path.join(work, 'escaped'))).toBe(false)
    expect(fs.existsSync(path.join(path.dirname(work), 'escaped2'))).toBe(false)
    expect(sb.exec(A, ['/bin/busybox', 'rm', '/usr/local/bin/sh']).status).toBe(0)
  })

  it('bad input: both sides or neither a sandbox, a missing source, an unknown sandbox: clear errors', () => {
    expect(sb.velo(['sandbox', 'cp', '/etc/hostname', '/tmp/x']).stderr).toMatch(/USAGE.*exactly one side/)
    expect(sb.velo(['sandbox', 'cp', `${A}:/a`, `${A}:/b`]).stderr).toMatch(/USAGE/)
    expect(sb.velo(['sandbox', 'cp', path.join(work, 'nope'), `${A}:/tmp/`]).stderr).toMatch(/NOT_FOUND/)
    expect(sb.velo(['sandbox', 'cp', `${uniq('cp-none')}:/etc/hostname`, work]).stderr).toMatch(/NOT_FOUND/)
  })

  it('a stopped sandbox (as docker cp): files in and out, its main command not run, no events, its state as it was', () => {
    // the main command counts its runs: a copy must not run it
    const S = uniq('cp-stopped')
    expect(sb.velo(['sandbox', 'create', S, '--', 'sh', '-c', 'echo ran >> /runs; exec sleep 1000']).status).toBe(0)
    for (let i = 0; i < 100 && sb.exec(S, ['cat', '/runs']).stdout !== 'ran\n'; i++) spawnSync('sleep', ['0.05'])
    sb.json(['sandbox', 'stop', S])
    const state = () => fs.readFileSync(path.join(sb.home, 'tenants', S, 'state.json'), 'utf8')
    const before = state()
    // the stop's own event is older than t0 (events carry ns, t0 ms: leave a few ms between them)
    spawnSync('sleep', ['0.02'])
    const t0 = new Date().toISOString()
    fs.writeFileSync(path.join(work, 'into-stopped.txt'), 'copied into a stopped sandbox\n')
    const cin = sb.velo(['sandbox', 'cp', path.join(work, 'into-stopped.txt'), `${S}:/root/`])
    expect(cin.status, cin.stderr).toBe(0)
    const out = path.join(work, 'runs-out')
    const cout = sb.velo(['sandbox', 'cp', `${S}:/runs`, out])
    expect(cout.status, cout.stderr).toBe(0)
    expect(fs.readFileSync(out, 'utf8')).toBe('ran\n')
    // still stopped, state file as it was, nothing in the event journal, no process or cgroup left of the copies
    expect(JSON.parse(sb.velo(['sandbox', 'inspect', S, '--json']).stdout).status).toBe('stopped')
    expect(state()).toBe(before)
    expect(sb.velo(['events', '--since', t0, '--filter', `name=${S}`, '--json']).stdout).toBe('')
    expect(leftovers(sb.home, [S]).cgroups).toEqual([])
    // what went in is there at the next start (its upper dir), and the main command ran once more, not three times
    sb.json(['sandbox', 'start', S])
    expect(sb.exec(S, ['cat', '/root/into-stopped.txt']).stdout).toBe('copied into a stopped sandbox\n')
    for (let i = 0; i < 100 && sb.exec(S, ['cat', '/runs']).stdout !== 'ran\nran\n'; i++) spawnSync('sleep', ['0.05'])
    expect(sb.exec(S, ['cat', '/runs']).stdout).toBe('ran\nran\n')
    expect(sb.velo(['sandbox', 'rm', '-f', S]).status).toBe(0)
  })

  it('a copy of a stopped sandbox interrupted with SIGTERM still ends the boot it made', async () => {
    const S = uniq('cp-int')
    sb.create(S)
    // enough bytes that the copy is still running when the signal comes
    expect(sb.sh(S, 'head -c 400000000 /dev/zero > /big').status).toBe(0)
    sb.json(['sandbox', 'stop', S])
    const before = fs.readFileSync(path.join(sb.home, 'tenants', S, 'state.json'), 'utf8')
    const c = spawn(VELO, ['sandbox', 'cp', `${S}:/big`, path.join(work, 'big-out')], {env: {...process.env, VELO_HOME: sb.home}, stdio: 'ignore'})
    const running = () => JSON.parse(sb.velo(['sandbox', 'inspect', S, '--json']).stdout).status === 'running'
    for (let i = 0; i < 200 && !running(); i++) await new Promise((r) => setTimeout(r, 10))
    expect(running()).toBe(true)
    c.kill('SIGTERM')
    const code = await new Promise<number | null>((r) => c.on('exit', (code) => r(code)))
    expect(code).toBe(143)
    expect(running()).toBe(false)
    expect(fs.readFileSync(path.join(sb.home, 'tenants', S, 'state.json'), 'utf8')).toBe(before)
    expect(leftovers(sb.home, [S]).cgroups).toEqual([])
    expect(sb.velo(['sandbox', 'rm', '-f', S]).status).toBe(0)
  })
})
