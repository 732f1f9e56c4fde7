/**
 * Tenants in user namespaces of their own (the default; native/cli/userns.c, oci.c, and velo-runtime's idmapped
 * "/" overlay): tenant root is an unprivileged host uid from velo's range in /etc/subuid, two live tenants never
 * share one, image files keep their owners without a copy; root alone may opt a tenant out (--userns host, a
 * profile's "userns": false). The isolation suite runs both ways (isolation.test.ts).
 */
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {velo} from '../helpers'
import {SandboxHome, uniq} from './fixture'

/** velo's range from /etc/subuid (scripts/setup.sh adds it) */
function veloRange(): {start: number; count: number} {
  const line = fs.readFileSync('/etc/subuid', 'utf8').split('\n').find((l) => l.startsWith('velo:'))
  if (!line) throw new Error('no velo entry in /etc/subuid: scripts/setup.sh adds it')
  const [, start, count] = line.split(':').map(Number)
  return {start, count}
}

describe('sandbox user namespaces', () => {
  const sb = new SandboxHome([])
  const A = uniq('un-a')
  const B = uniq('un-b')
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'velo-userns-'))
  const hostOf = (name: string) => Number(sb.sh(name, 'cat /proc/self/uid_map').stdout.trim().split(/\s+/)[1])
  const hostGidOf = (name: string) => Number(sb.sh(name, 'cat /proc/self/gid_map').stdout.trim().split(/\s+/)[1])

  beforeAll(() => {
    fs.chmodSync(dir, 0o777)
    fs.writeFileSync(path.join(dir, 'secret'), 'host root only\n', {mode: 0o600})
    sb.create(A, ['--mount', `${dir}:/data`])
    sb.create(B)
  })
  afterAll(() => {
    fs.rmSync(dir, {recursive: true, force: true})
    expect(sb.cleanup()).toEqual({mounts: [], cgroups: [], tenants: []})
  })

  it('tenant root is an unprivileged host uid from velo\'s range, a different one per live tenant', () => {
    const {start, count} = veloRange()
    const a = sb.sh(A, 'cat /proc/self/uid_map /proc/self/gid_map; id -u').stdout.trim().split('\n')
    expect(a[0].trim().split(/\s+/)).toEqual(['0', String(hostOf(A)), '65536']) // not the identity
    expect(a[2]).toBe('0')
    for (const n of [A, B]) {
      expect(hostOf(n)).toBeGreaterThanOrEqual(start)
      expect(hostOf(n) + 65536).toBeLessThanOrEqual(start + count)
    }
    expect(Math.abs(hostOf(A) - hostOf(B))).toBeGreaterThanOrEqual(65536) // ranges never overlap
    expect(sb.json(['sandbox', 'inspect', A]).hostIds).toEqual({uid: [{containerID: 0, hostID: hostOf(A), size: 65536}], gid: [{containerID: 0, hostID: hostGidOf(A), size: 65536}]})
  })

  it('image files keep their owners inside; what the tenant writes is its own range on the host', () => {
    const r = sb.sh(A, 'stat -c "%u:%g %n" /etc/passwd /usr/bin; echo mine > /root/mine; stat -c "%u %g" /root/mine')
    expect(r.stderr).toBe('')
    expect(r.stdout).toBe('0:0 /etc/passwd\n0:0 /usr/bin\n0 0\n')
    const st = fs.statSync(path.join(sb.home, 'tenants', A, 'upper', 'root', 'mine'))
    expect([st.uid, st.gid]).toEqual([hostOf(A), hostGidOf(A)])
    // the shared farm (the image) is untouched and still root's
    const lower = JSON.parse(fs.readFileSync(path.join(sb.home, 'tenants', A, 'state.json'), 'utf8')).lowers[0]
    expect(fs.statSync(path.join(lower, 'etc', 'passwd')).uid).toBe(0)
  })

  it('the same through the route older kernels take (idmapped layers by path in a private mount namespace)', () => {
    const G = uniq('un-g')
    sb.track(G)
    const r = velo(sb.home, ['sandbox', 'create', G], {env: {VELO_RUNTIME_LAYERS_BY_PATH: '1'}})
    expect(r.status, r.stderr).toBe(0)
    expect(sb.sh(G, 'stat -c "%u:%g" /etc/passwd; echo x > /root/x').stdout).toBe('0:0\n')
    expect(fs.statSync(path.join(sb.home, 'tenants', G, 'upper', 'root', 'x')).uid).toBe(hostOf(G))
    expect(sb.velo(['sandbox', 'rm', '-f', G]).status).toBe(0)
  })

  it('a bind mount: what tenant root writes is owned by its host uid; a host root 0600 file stays unreadable', () => {
    const r = sb.sh(A, 'echo from-tenant > /data/written; cat /data/secret')
    expect(r.stderr).toMatch(/Permission denied/)
    const st = fs.statSync(path.join(dir, 'written'))
    expect(st.uid).toBe(hostOf(A))
  })

  it('tenant root cannot reach its own or another tenant\'s files through the host paths', () => {
    // the tenant dirs are 0700 and owned by each tenant's range: B's root is not A's
    const st = fs.statSync(path.join(sb.home, 'tenants', B))
    expect(st.mode & 0o777).toBe(0o700)
    expect(st.uid).toBe(hostOf(B))
  })

  it('commit gives the image owners as the tenant saw them, not its host range', () => {
    const E = uniq('un-e')
    const F = uniq('un-f')
    const img = uniq('un-img')
    sb.create(E)
    expect(sb.sh(E, 'echo a > /root/by-root; echo b > /root/by-1000; chown 1000:1000 /root/by-1000').stderr).toBe('')
    expect(sb.velo(['sandbox', 'stop', E]).status).toBe(0)
    expect(sb.velo(['sandbox', 'commit', E, img]).status).toBe(0)
    sb.track(F)
    sb.json(['sandbox', 'create', F, '--image', img, '--userns', 'host']) // no user namespace: host ids as stored
    expect(sb.sh(F, 'stat -c "%u:%g %n" /root/by-root /root/by-1000').stdout).toBe('0:0 /root/by-root\n1000:1000 /root/by-1000\n')
  })

  it('rm frees the range: a new tenant may take it, never while its holder lives', () => {
    const slotOf = (n: string) => Number(fs.readFileSync(path.join(sb.home, 'tenants', n, 'userns'), 'utf8'))
    const next = path.join(sb.home, 'userns', 'next')
    const C = uniq('un-c')
    sb.create(C)
    const c = hostOf(C)
    expect([hostOf(A), hostOf(B)]).not.toContain(c)
    // ranges are given in turn: the next tenant gets the slot after C's, not a freed one
    expect(Number(fs.readFileSync(next, 'utf8'))).toBe(slotOf(C) + 1)
    expect(sb.velo(['sandbox', 'rm', '-f', C]).status).toBe(0)
    // the turn comes round to C's slot (the hint pointed there): free again, so D takes it
    fs.writeFileSync(next, `${Math.round((c - veloRange().start) / 65536)}\n`)
    const D = uniq('un-d')
    sb.create(D)
    expect(hostOf(D)).toBe(c)
    // pointed at a live tenant's slot, the allocator goes past it
    fs.writeFileSync(next, `${slotOf(A)}\n`)
    const E = uniq('un-e2')
    sb.create(E)
    expect([hostOf(A), hostOf(B), hostOf(D)]).not.toContain(hostOf(E))
    // a damaged hint is only a start: the create still works and never shares a range
    fs.writeFileSync(next, 'garbage')
    const F = uniq('un-f2')
    sb.create(F)
    expect([hostOf(A), hostOf(B), hostOf(D), hostOf(E)]).not.toContain(hostOf(F))
  })

  it('on by default on both front doors and in every profile; root alone may opt out (--userns host, "userns": false)', () => {
    const {start} = veloRange()
    const H = uniq('un-h')
    const P = uniq('un-p')
    for (const [n, args] of [[H, ['--userns', 'host']], [P, ['--profile', path.join(dir, 'no-userns.json')]]] as const) {
      if (n === P) fs.writeFileSync(path.join(dir, 'no-userns.json'), JSON.stringify({...JSON.parse(fs.readFileSync('profiles/default.json', 'utf8')), name: 'no-userns', userns: false}))
      sb.track(n)
      const r = sb.velo(['sandbox', 'create', n, ...args])
      expect(r.status, r.stderr).toBe(0)
      expect(sb.sh(n, 'cat /proc/self/uid_map').stdout.trim().split(/\s+/)).toEqual(['0', '0', '4294967295'])
      expect(sb.json(['sandbox', 'inspect', n]).userns).toBeUndefined()
    }
    // the native front-end (create without Node) and Node agree: the default is a user namespace
    expect(hostOf(A)).toBeGreaterThanOrEqual(start)
    expect(sb.json(['sandbox', 'inspect', A]).userns).toBe(true)
    // (the FUSE backend in a user namespace: test/fuse/sandbox.test.ts)
    const X = uniq('un-x')
    const bad = sb.velo(['sandbox', 'create', X, '--userns', 'bogus'])
    expect(bad.status).not.toBe(0)
    expect(bad.stderr).toMatch(/private|host/)
    expect(fs.readdirSync(path.join(sb.home, 'tenants')).filter((n) => n === X)).toEqual([])
    for (const n of [H, P]) expect(sb.velo(['sandbox', 'rm', '-f', n]).status).toBe(0)
  })

  it('a store below a dir other users cannot search: a permission error naming it, on both doors, nothing made', () => {
    const top = fs.mkdtempSync(path.join(os.tmpdir(), 'velo-userns-closed-')) // mode 0700, as mktemp makes it
    const home = path.join(top, 'store')
    try {
      for (const env of [{}, {VELO_NATIVE: '0'}]) {
        const r = velo(home, ['sandbox', 'create', 'c1'], {env})
        expect(r.status).toBe(1)
        expect(r.stderr).toContain(`error [PERMISSION_DENIED]: cannot start sandbox: the tenant's root (host uid`)
        expect(r.stderr).toContain(`${top} (mode 0700) is not searchable by other users`)
        expect(r.stderr).toMatch(/suggestion: chmod o\+x /)
        expect(fs.readdirSync(path.join(home, 'tenants'))).toEqual([])
      }
      fs.chmodSync(top, 0o711)
      expect(velo(home, ['sandbox', 'create', 'c1']).status).toBe(0)
      expect(velo(home, ['sandbox', 'rm', '-f', 'c1']).status).toBe(0)
    } finally {
      fs.rmSync(top, {recursive: true, force: true})
    }
  })

  it('a user namespace inside a tenant: refused by the default seccomp policy (as Docker), allowed by a profile that lifts it', () => {
    const r = sb.sh(A, 'unshare -U -r id -u')
    expect(r.status).not.toBe(0)
    expect(r.stderr).toMatch(/Operation not permitted/)
    const U = uniq('un-nest')
    const prof = path.join(dir, 'unconfined.json')
    fs.writeFileSync(prof, JSON.stringify({...JSON.parse(fs.readFileSync('profiles/default.json', 'utf8')), name: 'unconfined', seccomp: 'unconfined'}))
    sb.track(U)
    sb.create(U, ['--profile', prof])
    // nested inside the tenant's own namespace: its root there is the tenant's root, still the tenant's host range
    const n = sb.sh(U, 'unshare -U -r sh -c "id -u; cat /proc/self/uid_map"')
    expect(n.stderr).toBe('')
    expect(n.stdout.trim().split(/\s+/)).toEqual(['0', '0', '0', '1'])
    expect(sb.velo(['sandbox', 'rm', '-f', U]).status).toBe(0)
  })

  it('--mount of a host dir below a 0700 dir (a checkout under /root): tenant root reads it, as with Docker', () => {
    const top = fs.mkdtempSync(path.join(os.tmpdir(), 'velo-userns-src-')) // 0700, root's
    fs.mkdirSync(path.join(top, 'app'))
    fs.writeFileSync(path.join(top, 'app', 'index.js'), 'console.log(6 * 7)\n')
    try {
      const r = sb.velo(['sandbox', 'run', '--rm', '--mount', `${path.join(top, 'app')}:/app:ro`, '--', 'node', '/app/index.js'])
      expect(r.stderr).toBe('')
      expect(r.stdout).toBe('42\n')
    } finally {
      fs.rmSync(top, {recursive: true, force: true})
    }
  })
})
