import {spawnSync} from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {ManifestDb} from '../../src/manifest/db'
import {listImage} from '../../src/image/view'
import {rmrf, sh, tmpDir, VELO} from '../helpers'
import {SandboxHome, uniq} from '../sandbox/fixture'
import {fmtRows, listDir} from './listing'

/**
 * `velo sandbox commit`: a tenant of an imported busybox image deletes, replaces and adds files; committed
 * (while running: paused for it, or refused with --no-pause; stopped: done), the new image = the old layers + one layer, and a new sandbox of it
 * sees exactly the tenant's tree.
 */
describe('velo sandbox commit', () => {
  const sb = new SandboxHome()
  const w = tmpDir('velo-sbc-')
  const T = uniq('commit')
  const T2 = uniq('commit2')

  beforeAll(() => {
    const r = path.join(w, 'rootfs')
    for (const d of ['bin', 'etc/dir', 'opt/sub', 'tmp']) fs.mkdirSync(path.join(r, d), {recursive: true})
    fs.copyFileSync('/bin/busybox', path.join(r, 'bin/busybox'))
    fs.chmodSync(path.join(r, 'bin/busybox'), 0o755)
    for (const a of ['sh', 'ls', 'rm', 'mkdir', 'cat', 'echo', 'ln', 'chmod', 'sleep', 'test', 'find']) fs.symlinkSync('busybox', path.join(r, 'bin', a))
    fs.writeFileSync(path.join(r, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n')
    fs.writeFileSync(path.join(r, 'etc/group'), 'root:x:0:\n')
    fs.writeFileSync(path.join(r, 'etc/gone'), 'gone\n')
    fs.writeFileSync(path.join(r, 'etc/keep'), 'keep\n')
    fs.writeFileSync(path.join(r, 'etc/dir/nested'), 'nested\n')
    fs.writeFileSync(path.join(r, 'opt/old'), 'old\n')
    fs.writeFileSync(path.join(r, 'opt/sub/old2'), 'old2\n')
    fs.chmodSync(path.join(r, 'tmp'), 0o1777)
    sh(`tar -C ${r} -cf ${w}/bb.tar .`)
    sb.json(['image', 'import', `${w}/bb.tar`, '--name', 'bb'])
  })
  afterAll(() => {
    expect(sb.cleanup()).toEqual({mounts: [], cgroups: [], tenants: []})
    rmrf(w)
  })

  it('stores the tenant changes as one more layer; a sandbox of the new image sees them', () => {
    sb.create(T, ['--image', 'bb'])
    const ch = sb.sh(T, 'rm /etc/gone && rm -rf /etc/dir && rm -rf /opt && mkdir /opt && echo new > /opt/new && echo changed > /etc/keep && ln -s /opt/new /etc/link && chmod 700 /etc/keep')
    expect(ch.status, ch.stderr).toBe(0)
    // running: --no-pause refuses; by default it is paused for the commit (docker commit) and runs on after
    const refused = sb.velo(['sandbox', 'commit', T, 'bb2', '--no-pause'])
    expect(refused.status).toBe(1)
    expect(refused.stderr).toMatch(/STATE.*is running.*\n.*velo sandbox stop/)
    const live = sb.json(['sandbox', 'commit', T, 'bb2live'])
    expect(live.paused).toBe(true)
    expect(sb.json(['sandbox', 'inspect', T]).status).toBe('running')
    expect(sb.velo(['sandbox', 'stop', T]).status).toBe(0)
    const r = sb.json(['sandbox', 'commit', T, 'bb2'])
    // the same changes, the same layer, whether committed paused or stopped
    expect(live.layer).toBe(r.layer)
    const db = ManifestDb.open(sb.home)
    let base: string[]
    let rows
    try {
      base = db.requireImage('bb').layers
      rows = listImage(db, 'bb2')
    } finally {
      db.close()
    }
    expect(r.layers.slice(0, -1)).toEqual(base)
    expect(r.whiteouts).toBe(2)
    expect(r.opaqueDirs).toBe(1)
    const p = rows.map((x) => x.path)
    expect(p).not.toContain('etc/gone')
    expect(p).not.toContain('etc/dir')
    expect(p).not.toContain('opt/old')
    expect(p).toContain('opt/new')
    // A fresh sandbox of the committed image sees the tenant's tree.
    sb.create(T2, ['--image', 'bb2'])
    const seen = sb.sh(T2, 'cat /etc/keep /opt/new; ls /opt; test -e /etc/gone || echo no-gone; test -e /etc/dir || echo no-dir; ls -l /etc/keep | cut -c1-10')
    expect(seen.stdout).toBe('changed\nnew\nnew\nno-gone\nno-dir\n-rwx------\n')
    // The committed image checked out on disk equals the merged view.
    const co = path.join(w, 'co')
    sb.json(['image', 'checkout', 'bb2', co])
    expect(fmtRows(listDir(co)).slice(1)).toEqual(fmtRows(rows).slice(1))
  })

  it('the native pass (ids as they are) and the Node walk commit the same upper dir to the same layer', () => {
    // whiteouts, an opaque dir, a hard link, a symlink, a fifo, an xattr and a new file: every kind an upper holds
    const N = uniq('commitnat')
    sb.create(N, ['--image', 'bb', '--userns', 'host'])
    const ch = sb.sh(N, 'rm /etc/gone && rm -rf /opt && mkdir /opt && echo new > /opt/new && ln /opt/new /opt/hard && ln -s /opt/new /etc/link && echo changed > /etc/keep')
    expect(ch.status, ch.stderr).toBe(0)
    expect(sb.velo(['sandbox', 'stop', N]).status).toBe(0)
    const upper = path.join(sb.home, 'tenants', N, 'upper')
    sh(`mkfifo ${upper}/opt/fifo && setfattr -n user.note -v hello ${upper}/opt/new`)
    const viaNode = sb.velo(['sandbox', 'commit', N, 'bb-node', '--json'], {env: {VELO_NO_NATIVE_INGEST: '1'}})
    expect(viaNode.status, viaNode.stderr).toBe(0)
    // the native side really ran the C pass (a Node fallback would make the comparison say nothing)
    const trace = path.join(w, 'commit.strace')
    const r = spawnSync('strace', ['-f', '-qq', '-e', 'trace=execve', '-o', trace, VELO, 'sandbox', 'commit', N, 'bb-native', '--json'], {env: {...process.env, VELO_HOME: sb.home}, encoding: 'utf8'})
    expect(r.status, r.stderr).toBe(0)
    expect(fs.readFileSync(trace, 'utf8')).toMatch(/execve\("[^"]*\/velo-ingest"/)
    const viaC = JSON.parse(r.stdout)
    expect(viaC.layer).toBe(JSON.parse(viaNode.stdout).layer)
    expect(viaC.whiteouts).toBe(1)
    expect(viaC.opaqueDirs).toBe(1)
    const db = ManifestDb.open(sb.home)
    try {
      expect(fmtRows(listImage(db, 'bb-native'))).toEqual(fmtRows(listImage(db, 'bb-node')))
      expect(fmtRows(listImage(db, 'bb-native')).join('\n')).toMatch(/opt\/fifo/)
    } finally {
      db.close()
    }
    expect(sb.velo(['sandbox', 'rm', '-f', N]).status).toBe(0)
  })

  it('refuses unknown sandboxes and bad image names', () => {
    expect(sb.velo(['sandbox', 'commit', 'no-such-sandbox', 'x']).stderr).toMatch(/NOT_FOUND/)
    const bad = sb.velo(['sandbox', 'commit', T, '../evil'])
    expect(bad.status).toBe(2)
    expect(bad.stderr).toMatch(/INVALID_NAME/)
  })
})
