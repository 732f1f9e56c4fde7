import {execFileSync, spawnSync} from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import {afterEach, describe, expect, it} from 'vitest'
import {rmrf, tmpDir, velo, veloJson, VELO} from '../helpers'

describe('bad input gets a clear error and leaves the store consistent', () => {
  const dirs: string[] = []
  const mounts: string[] = []
  const mk = () => {
    const d = tmpDir()
    dirs.push(d)
    return d
  }
  afterEach(() => {
    for (const m of mounts.splice(0)) spawnSync('umount', ['-l', m])
    dirs.splice(0).forEach(rmrf)
  })

  it.each(['../x', 'a/b', '.hidden', '', 'x'.repeat(200), 'bad name', '-rf'])('rejects image name %j', (name) => {
    const home = mk()
    const src = mk()
    fs.writeFileSync(path.join(src, 'f'), 'x')
    const r = velo(home, ['ingest', src, '--name', name])
    expect(r.status).toBe(2)
    expect(r.stderr).toMatch(/INVALID_NAME|USAGE/)
    expect(fs.existsSync(path.join(home, 'cas', 'blake3')) ? fs.readdirSync(path.join(home, 'cas', 'blake3')) : []).toEqual([])
  })

  it('a file path instead of a directory is a clear error', () => {
    const home = mk()
    const f = path.join(mk(), 'file')
    fs.writeFileSync(f, 'x')
    const r = velo(home, ['ingest', f])
    expect(r.status).toBe(1)
    expect(r.stderr).toMatch(/NOT_A_DIRECTORY/)
    expect(r.stderr).toMatch(/suggestion/)
  })

  it('an unreadable file fails the ingest (run as an unprivileged user) and leaves no image', () => {
    const home = mk()
    const src = mk()
    fs.writeFileSync(path.join(src, 'ok'), 'fine')
    fs.writeFileSync(path.join(src, 'secret'), 'root only')
    fs.chmodSync(path.join(src, 'secret'), 0o600)
    fs.chmodSync(src, 0o755)
    fs.chmodSync(home, 0o777)
    // (their parent is os.tmpdir(), searchable by everyone: never chmod it — that would change the host's /tmp)
    const userHome = path.join(home, 'store')
    const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', VELO, 'ingest', src, '--name', 'x'], {
      env: {...process.env, VELO_HOME: userHome, HOME: '/nonexistent'},
      encoding: 'utf8',
    })
    expect(r.status).toBe(1)
    expect(r.stderr).toMatch(/PERMISSION_DENIED.*secret/)
    expect(velo(userHome, ['image', 'ls', '--json']).stdout.trim()).toBe('[]')
  })

  it('a full disk (small tmpfs store) is a clear NO_SPACE error; gc then fsck pass; nothing half-made', () => {
    const home = path.join(mk(), 'store')
    fs.mkdirSync(home)
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=3m', 'velo-test-full', home])
    mounts.push(home)
    const src = mk()
    for (let i = 0; i < 8; i++) fs.writeFileSync(path.join(src, `f${i}`), Buffer.alloc(512 * 1024, i + 1))
    const r = velo(home, ['ingest', src, '--name', 'toobig'])
    expect(r.status).toBe(1)
    expect(r.stderr).toMatch(/NO_SPACE/)
    expect(r.stderr).toMatch(/suggestion/)
    expect(velo(home, ['image', 'inspect', 'toobig']).status).toBe(1)
    expect(velo(home, ['gc']).status).toBe(0)
    const f = velo(home, ['fsck'])
    expect(f.status, f.stderr).toBe(0)
    // a smaller tree still fits afterwards
    const small = mk()
    fs.writeFileSync(path.join(small, 'f'), 'small')
    expect(veloJson(home, ['ingest', small, '--name', 'small']).files).toBe(1)
  })

  it('unknown images and bad flags are clear errors with exit codes', () => {
    const home = mk()
    expect(velo(home, ['image', 'rm', 'nope']).status).toBe(1)
    expect(velo(home, ['image', 'inspect', 'nope']).stderr).toMatch(/NOT_FOUND/)
    const r = velo(home, ['ingest', '--no-such-flag', os.tmpdir()])
    expect(r.status).toBe(2)
  })

  it('image rm takes a flag\'s value for the flag, not for an image name (`--home DIR` after the names)', () => {
    const home = mk()
    const src = mk()
    fs.writeFileSync(path.join(src, 'f'), 'x')
    for (const n of ['a', 'b']) veloJson(home, ['ingest', src, '--name', n])
    const other = mk()
    const r = velo(other, ['image', 'rm', 'a', 'b', '--home', home, '--json'])
    expect(r.status, r.stderr).toBe(0)
    expect(JSON.parse(r.stdout)).toEqual({removed: ['a', 'b']})
  })
})
