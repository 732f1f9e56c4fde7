/**
 * Idmapped mounts (native/runtime/mounts.c): a container in a new user namespace whose "/" overlay (velo's
 * extension) or bind mount carries its own uidMappings/gidMappings. The tenant sees the image's owners as they are
 * (root's files are root's), what it writes lands on the host under its mapped ids, and a bind mount's host files
 * keep their owners both ways. runc 1.1 has no idmapped mounts, so these check velo-runtime against the kernel's
 * own answers (stat on the host).
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import {describe, expect, it} from 'vitest'
import {bundles, busyboxRootfs, runBundle, shArgs, VELO_RUNTIME} from './fixture'

const BASE = 231072 // a host range no user of this machine owns (subuid ranges start at 100000 in 65536 steps)
const MAP = [{containerID: 0, hostID: BASE, size: 65536}]

/** A new user namespace mapping container 0..65535 to BASE..; the default config's other namespaces. The
 * container's root is an unprivileged host uid, so the bundle and rootfs dirs must be searchable by others (as
 * for runc with a user namespace). */
const userns = (c: any) => {
  fs.chmodSync(busyboxRootfs(), 0o755)
  c.linux.namespaces.push({type: 'user'})
  c.linux.uidMappings = MAP
  c.linux.gidMappings = MAP
  c.root.readonly = false
}

describe('velo-runtime idmapped mounts', () => {
  const make = bundles()

  /** The "/" overlay with the busybox rootfs as its lower layer, upper/work owned by the tenant's range. */
  const overlayBundle = (script: string, patch?: (c: any) => void) => {
    const b = make(VELO_RUNTIME, (c) => {
      userns(c)
      shArgs(script)(c)
      patch?.(c)
    })
    fs.chmodSync(b.dir, 0o755)
    for (const d of ['upper', 'work', 'rootfs']) fs.mkdirSync(path.join(b.dir, d))
    fs.chownSync(path.join(b.dir, 'upper'), BASE, BASE)
    fs.chownSync(path.join(b.dir, 'work'), BASE, BASE)
    b.config.root.path = path.join(b.dir, 'rootfs')
    b.config.mounts.unshift({
      destination: '/',
      type: 'overlay',
      source: 'overlay',
      options: [`lowerdir+=${busyboxRootfs()}`, `upperdir=${b.dir}/upper`, `workdir=${b.dir}/work`, 'nodev'],
      uidMappings: MAP,
      gidMappings: MAP,
    })
    fs.writeFileSync(path.join(b.dir, 'config.json'), JSON.stringify(b.config))
    return b
  }

  // layers by file descriptor (Linux 6.13+), by path in a private mount namespace (6.8-6.12), and in one classic
  // lowerdir= option (before 6.8)
  it.each([
    ['by fd', {}],
    ['by path', {VELO_RUNTIME_LAYERS_BY_PATH: '1'}],
    ['in a classic lowerdir=', {VELO_RUNTIME_OVERLAY_CLASSIC: '1'}],
  ])('the "/" overlay (layers %s): image files keep their owners inside, writes land under the tenant\'s host ids', (_, env) => {
    const b = overlayBundle('cat /proc/self/uid_map; stat -c "%u:%g" /bin/busybox /etc/passwd; echo new > /new; echo more >> /etc/passwd; mkdir /d; id -u')
    const ours = () => fs.readdirSync('/tmp').filter((n) => n.startsWith('velo-runtime-layers-') || n.startsWith('velo-runtime-overlay-'))
    const before = ours()
    const r = runBundle(VELO_RUNTIME, b, {env: {...process.env, ...env}})
    // the private mount namespaces and their mount points are gone again
    expect(ours().filter((d) => !before.includes(d))).toEqual([]) // none of ours (other files' may come and go)
    expect(fs.readFileSync('/proc/self/mountinfo', 'utf8')).not.toMatch(/velo-runtime-(layers|overlay)-/)
    expect(r.stderr).toBe('')
    expect(r.status).toBe(0)
    const lines = r.stdout.trim().split('\n')
    expect(lines[0].trim().split(/\s+/)).toEqual(['0', String(BASE), '65536']) // not the identity
    expect(lines.slice(1, 3)).toEqual(['0:0', '0:0']) // root's files are root's, not nobody's
    expect(lines[3]).toBe('0')
    for (const f of ['new', 'etc/passwd', 'd']) {
      const st = fs.statSync(path.join(b.dir, 'upper', f))
      expect([f, st.uid, st.gid]).toEqual([f, BASE, BASE])
    }
    // the lower layer (the shared image) is untouched
    expect(fs.readFileSync(path.join(busyboxRootfs(), 'etc', 'passwd'), 'utf8')).not.toContain('more')
    expect(fs.statSync(path.join(busyboxRootfs(), 'etc', 'passwd')).uid).toBe(0)
  })

  it('an idmapped bind: host files keep their owners inside and what the tenant writes is owned as it sees it', () => {
    const b = make(VELO_RUNTIME, (c) => {
      userns(c)
      shArgs('stat -c "%u:%g" /tmp/root-file; echo t > /tmp/by-tenant')(c)
    })
    fs.chmodSync(b.dir, 0o755)
    const data = path.join(b.dir, 'data')
    fs.mkdirSync(data)
    fs.writeFileSync(path.join(data, 'root-file'), 'x')
    b.config.mounts.push({destination: '/tmp', type: 'bind', source: data, options: ['rbind', 'rw'], uidMappings: MAP, gidMappings: MAP})
    b.config.root.readonly = true
    fs.writeFileSync(path.join(b.dir, 'config.json'), JSON.stringify(b.config))
    const r = runBundle(VELO_RUNTIME, b)
    expect(r.stderr).toBe('')
    expect(r.stdout.trim().split('\n')[0]).toBe('0:0')
    // tenant root through the idmapped mount is host root (without the idmap it would be host uid BASE)
    const st = fs.statSync(path.join(data, 'by-tenant'))
    expect([st.uid, st.gid]).toEqual([0, 0])
  })

  it('plain binds whose host paths the container\'s root cannot reach (below a 0700 dir) are cloned by the runtime, as runc does', () => {
    const b = make(VELO_RUNTIME, (c) => {
      userns(c)
      shArgs('cat /tmp/f /etc/group; echo t > /tmp/by-tenant; echo rc=$?; (echo x > /root/x) 2>/dev/null || echo ro-refused')(c)
    })
    fs.chmodSync(b.dir, 0o755)
    const closed = path.join(b.dir, 'closed') // mode 0700, root's: host uid BASE cannot search it
    fs.mkdirSync(path.join(closed, 'data'), {recursive: true, mode: 0o700})
    fs.chmodSync(closed, 0o700)
    fs.chmodSync(path.join(closed, 'data'), 0o777)
    fs.writeFileSync(path.join(closed, 'data', 'f'), 'in a dir\n', {mode: 0o644})
    fs.writeFileSync(path.join(closed, 'file'), 'a file\n', {mode: 0o644})
    // onto what the shared busybox rootfs has (its dirs are root's: the container's root could not make new ones)
    b.config.mounts.push(
      {destination: '/tmp', type: 'bind', source: path.join(closed, 'data'), options: ['rbind', 'rw']},
      {destination: '/etc/group', type: 'bind', source: path.join(closed, 'file'), options: ['bind', 'ro']},
      {destination: '/root', type: 'bind', source: path.join(closed, 'data'), options: ['bind', 'ro']},
    )
    b.config.root.readonly = false
    fs.writeFileSync(path.join(b.dir, 'config.json'), JSON.stringify(b.config))
    const r = runBundle(VELO_RUNTIME, b)
    expect(r.stderr).toBe('')
    expect(r.stdout).toBe('in a dir\na file\nrc=0\nro-refused\n')
    // not idmapped: what tenant root writes is its host uid's
    expect(fs.statSync(path.join(closed, 'data', 'by-tenant')).uid).toBe(BASE)
  })

  it('refuses mappings that are not the container\'s own, or without a new user namespace, naming the field', () => {
    const other = [{containerID: 0, hostID: BASE + 65536, size: 65536}]
    const cases: Array<[string, (c: any) => void, RegExp]> = [
      ['other mappings', (c) => (c.mounts[0].uidMappings = c.mounts[0].gidMappings = other), /mounts\[0\]\.uidMappings.*container's own/],
      ['no user namespace', (c) => {
        c.linux.namespaces = c.linux.namespaces.filter((n: any) => n.type !== 'user')
        delete c.linux.uidMappings
        delete c.linux.gidMappings
      }, /mounts\[0\]\.uidMappings.*new user namespace/],
      ['only uidMappings', (c) => delete c.mounts[0].gidMappings, /mounts\[0\]\.gidMappings.*both/],
      ['a tmpfs', (c) => (c.mounts[0].type = 'tmpfs'), /mounts\[0\]\.uidMappings.*bind mounts and the "\/" overlay only/],
    ]
    for (const [what, patch, msg] of cases) {
      const b = overlayBundle('true')
      patch(b.config)
      fs.writeFileSync(path.join(b.dir, 'config.json'), JSON.stringify(b.config))
      const r = runBundle(VELO_RUNTIME, b)
      expect([what, r.status]).toEqual([what, 1])
      expect(r.stderr, what).toMatch(msg)
      expect(fs.readdirSync(path.join(b.dir, 'upper')), what).toEqual([]) // nothing was started
      expect(fs.existsSync(path.join(b.root, b.id)), what).toBe(false)
    }
  })
})
