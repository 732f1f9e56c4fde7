import * as fs from 'node:fs'
import * as path from 'node:path'
import {afterEach, describe, expect, it} from 'vitest'
import {dockerSaveLegacy, mkTar, TEntry} from '../image/fixtures'
import {velo} from '../helpers'
import {Registry, startRegistry} from '../registry/registry'
import {Env, startEnv} from './harness'

/**
 * The pull path (issue 15): an image in a real registry (docker-registry on loopback, pushed there by containerd
 * itself, as `docker push` would), pulled with `ctr image pull --plain-http --snapshotter velo` and run, against
 * the same pull onto containerd's overlayfs snapshotter; a corrupt layer blob in the registry is refused and
 * stores nothing.
 */
const root = process.getuid?.() === 0
const BUSYBOX = fs.readFileSync('/bin/busybox')
const LIST = `cd / && /bin/busybox find . -xdev ! -path ./dev ! -path ./proc ! -path ./sys | /bin/busybox sort | while read f; do
  s=$(/bin/busybox stat -c '%F %a %u:%g %s' "$f"); m=''; [ -f "$f" ] && ! [ -L "$f" ] && m=$(/bin/busybox md5sum < "$f"); echo "$f $s $m"; done`

async function image(tag: string): Promise<Buffer> {
  const base: TEntry[] = [
    {name: 'bin/', type: 'directory'},
    {name: 'bin/busybox', content: BUSYBOX, mode: 0o755},
    {name: 'bin/sh', type: 'symlink', linkname: 'busybox'},
    {name: 'srv/', type: 'directory', uid: 1000, gid: 1000, mode: 0o750},
    {name: 'srv/data', content: 'private\n', uid: 1000, gid: 1000, mode: 0o600},
    {name: 'opt/', type: 'directory'},
    {name: 'opt/gone', content: 'deleted above\n'},
  ]
  const top: TEntry[] = [
    {name: 'opt/', type: 'directory'},
    {name: 'opt/.wh.gone', content: ''},
    {name: 'etc/', type: 'directory'},
    {name: 'etc/motd', content: `pulled ${tag}\n`, uid: 5, gid: 6, mode: 0o400},
  ]
  return dockerSaveLegacy([{tag, layers: [await mkTar(base), await mkTar(top)], config: {User: '0:0', Cmd: ['/bin/sh'], Env: ['PATH=/bin']}}])
}

describe.skipIf(!root)('ctr image pull from a registry onto velo snapshotter', () => {
  let env: Env | undefined
  let reg: Registry | undefined
  afterEach(async () => {
    await env?.stop()
    await reg?.stop()
    env = reg = undefined
  })

  /** import into containerd (overlayfs), push to the registry, forget it locally: the registry has the only copy */
  const publish = async (e: Env, r: Registry, name: string) => {
    const tar = path.join(e.dir, `${name}.tar`)
    fs.writeFileSync(tar, await image(`velo-test/${name}:1`))
    e.ctrOk(['image', 'import', '--snapshotter', 'overlayfs', tar])
    const local = e.ctrOk(['image', 'ls', '-q']).split('\n').find((i) => i.includes(`velo-test/${name}`))!
    const ref = `${r.host}/velo-test/${name}:1`
    e.ctrOk(['image', 'tag', local, ref])
    e.ctrOk(['image', 'push', '--plain-http', ref])
    e.ctrOk(['image', 'rm', local, ref])
    // containerd's own gc runs after `image rm` too: a prune that lists a blob it has just removed says "not
    // found" for it; the prune is done again until it finds nothing of the kind
    for (let i = 0; ; i++) {
      const p = e.ctr(['content', 'prune', 'references'])
      if (p.status === 0) break
      if (i === 4 || !/not found/.test(p.stderr)) throw new Error(`ctr content prune references exited ${p.status}: ${p.stderr}`)
    }
    return ref
  }

  it('pulled onto velo: the same files as on overlayfs; the layers are velo layers', async () => {
    env = await startEnv()
    reg = await startRegistry()
    const ref = await publish(env, reg, 'p')
    env.ctrOk(['image', 'pull', '--plain-http', '--snapshotter', 'velo', ref])
    const onVelo = env.ctrOk(['run', '--snapshotter', 'velo', '--rm', ref, 'pv', '/bin/sh', '-c', LIST])
    env.ctrOk(['image', 'pull', '--plain-http', '--snapshotter', 'overlayfs', ref])
    const onOverlay = env.ctrOk(['run', '--snapshotter', 'overlayfs', '--rm', ref, 'po', '/bin/sh', '-c', LIST])
    expect(onVelo).toBe(onOverlay)
    expect(onVelo).toContain('./etc/motd regular file 400 5:6')
    expect(onVelo).not.toContain('./opt/gone')
    expect(onVelo).toContain('./srv/data regular file 600 1000:1000')
    const meta = JSON.parse(fs.readFileSync(path.join(env.home, 'snapshotter', 'metadata.json'), 'utf8'))
    expect(Object.values(meta.snapshots as Record<string, {kind: string}>).filter((s) => s.kind === 'committed').length).toBe(2)
    expect(velo(env.home, ['fsck']).status).toBe(0)
  })

  it('a corrupt layer blob in the registry: the pull fails on its digest and velo stores no layer of it', async () => {
    env = await startEnv()
    reg = await startRegistry()
    const ref = await publish(env, reg, 'c')
    // flip bytes in the middle of the largest blob (the busybox layer) where the registry keeps it
    const [, data] = [...reg.blobFiles()].sort((a, b) => fs.statSync(b[1]).size - fs.statSync(a[1]).size)[0]
    const fd = fs.openSync(data, 'r+')
    fs.writeSync(fd, Buffer.from('CORRUPT!'), 0, 8, Math.floor(fs.statSync(data).size / 2))
    fs.closeSync(fd)
    const layersBefore = velo(env.home, ['status', '--json']).stdout
    const r = env.ctr(['image', 'pull', '--plain-http', '--snapshotter', 'velo', ref])
    expect(r.status).not.toBe(0)
    expect(r.stderr).toMatch(/digest|unexpected commit digest|failed commit/i)
    expect(velo(env.home, ['status', '--json']).stdout).toBe(layersBefore)
    const meta = path.join(env.home, 'snapshotter', 'metadata.json')
    const snaps = fs.existsSync(meta) ? Object.values(JSON.parse(fs.readFileSync(meta, 'utf8')).snapshots ?? {}) : []
    expect((snaps as Array<{kind: string}>).filter((s) => s.kind === 'committed')).toEqual([])
  })
})
