/**
 * The "/" overlay (velo's extension, native/runtime/mounts.c) on both routes the runtime has: lowerdir+= one
 * layer at a time (Linux 6.8+, this host) and the classic single lowerdir= option that older kernels need
 * (VELO_RUNTIME_OVERLAY_CLASSIC=1 takes it here; on a 6.1 guest it is the only one, see npm run test:hosts).
 * Same result either way: layer order, writes in the upper dir, and many layers with long paths that would not
 * fit in one option page as full paths.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import {describe, expect, it} from 'vitest'
import {bundles, busyboxRootfs, runBundle, shArgs, VELO_RUNTIME} from './fixture'

const ROUTES: Array<[string, string]> = [
  ['lowerdir+', '0'],
  ['classic lowerdir=', '1'],
]

describe('velo-runtime "/" overlay', () => {
  const make = bundles()

  /** n layer dirs under dir, each holding /layers/<i> and its own version of /layers/top; names padded to nameLen */
  const layerDirs = (dir: string, n: number, nameLen: number) => {
    const out: string[] = []
    for (let i = 0; i < n; i++) {
      const l = path.join(dir, 'layers', String(i).padStart(nameLen, '0'))
      fs.mkdirSync(path.join(l, 'layers'), {recursive: true})
      fs.writeFileSync(path.join(l, 'layers', String(i)), '')
      fs.writeFileSync(path.join(l, 'layers', 'top'), `${i}\n`)
      out.push(l)
    }
    return out
  }

  /** A bundle whose "/" is an overlay of n layers (top first) over the busybox rootfs, with its own upper/work. */
  const overlayBundle = (script: string, n: number, nameLen = 8) => {
    const b = make(VELO_RUNTIME, (c) => {
      shArgs(script)(c)
      c.root.readonly = false
    })
    for (const d of ['upper', 'work', 'rootfs']) fs.mkdirSync(path.join(b.dir, d))
    const layers = layerDirs(b.dir, n, nameLen)
    b.config.root.path = path.join(b.dir, 'rootfs')
    b.config.mounts.unshift({
      destination: '/',
      type: 'overlay',
      source: 'overlay',
      options: [...[...layers, busyboxRootfs()].map((l) => `lowerdir+=${l}`), `upperdir=${b.dir}/upper`, `workdir=${b.dir}/work`, 'nodev'],
    })
    fs.writeFileSync(path.join(b.dir, 'config.json'), JSON.stringify(b.config))
    return {...b, layers}
  }

  const leftovers = () => fs.readdirSync('/tmp').filter((n) => n.startsWith('velo-runtime-overlay-') || n.startsWith('velo-runtime-layers-'))

  it.each(ROUTES)('%s: the top layer wins, every layer shows, writes land in the upper dir', (_, classic) => {
    const b = overlayBundle('cat /layers/top; ls /layers | wc -l; echo new > /layers/new; grep " / " /proc/mounts', 3)
    const before = leftovers()
    const r = runBundle(VELO_RUNTIME, b, {env: {...process.env, VELO_RUNTIME_OVERLAY_CLASSIC: classic}})
    expect(r.stderr).toBe('')
    expect(r.status).toBe(0)
    const [top, count, mountLine] = r.stdout.trim().split('\n')
    expect(top).toBe('0') // the first lowerdir+= is the top layer on both routes
    expect(count.trim()).toBe('4') // 0, 1, 2 and top
    // without the override a kernel before 6.8 takes the classic route too (the probe): only the forced route is known
    expect(mountLine).toMatch(classic === '1' ? /lowerdir=\d+:\d+:\d+:\d+,/ : /lowerdir(\+=|=\d+:)/)
    expect(fs.readFileSync(path.join(b.dir, 'upper', 'layers', 'new'), 'utf8')).toBe('new\n')
    for (const l of b.layers) expect(fs.existsSync(path.join(l, 'layers', 'new'))).toBe(false)
    // the private mount namespace and its temporary mount point are gone
    expect(leftovers().filter((d) => !before.includes(d))).toEqual([]) // none of ours (other files' may come and go)
    expect(fs.readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain('velo-runtime-overlay-')
  })

  it.each(ROUTES)('%s: 300 layers with paths over 150 bytes (45 kB as full paths, more than an option page)', (_, classic) => {
    const b = overlayBundle('cat /layers/top; ls /layers | wc -l', 300, 120)
    expect(b.layers[0].length).toBeGreaterThan(150)
    const r = runBundle(VELO_RUNTIME, b, {env: {...process.env, VELO_RUNTIME_OVERLAY_CLASSIC: classic}})
    expect(r.stderr).toBe('')
    expect(r.stdout.trim().split('\n').map((s) => s.trim())).toEqual(['0', '301'])
  })

  it('classic: a missing layer is a clear error and nothing is left behind', () => {
    const b = overlayBundle('true', 1)
    b.config.mounts[0].options.unshift(`lowerdir+=${b.dir}/no-such-layer`)
    fs.writeFileSync(path.join(b.dir, 'config.json'), JSON.stringify(b.config))
    const before = leftovers()
    const r = runBundle(VELO_RUNTIME, b, {env: {...process.env, VELO_RUNTIME_OVERLAY_CLASSIC: '1'}})
    expect(r.status).not.toBe(0)
    expect(r.stderr).toMatch(/lower layer .*no-such-layer.*No such file/)
    expect(leftovers().filter((d) => !before.includes(d))).toEqual([]) // none of ours (other files' may come and go)
    expect(fs.existsSync(path.join(b.root, b.id))).toBe(false)
  })
})
