import * as fs from 'node:fs'
import * as path from 'node:path'
import {afterEach, describe, expect, it} from 'vitest'
import {commitUpper} from '../../src/image/commit'
import {listImage} from '../../src/image/view'
import {ManifestDb} from '../../src/manifest/db'
import {rmrf, sh, tmpDir, veloJson} from '../helpers'
import {dockerSaveLegacy, mkTar} from './fixtures'
import {fmtRows, listDir} from './listing'

/**
 * An overlayfs upper dir → a layer (the core of `velo sandbox commit`), proven against the kernel: a real
 * overlay mount over a checkout of an image, changed through the mount (deletions, an opaque dir, copy-ups,
 * chmod/chown, hard links, a fifo, a symlink replacing a dir), must list exactly like velo's merged view of
 * image layers + the committed layer.
 */
const dirs: string[] = []
const mounts: string[] = []
afterEach(() => {
  for (const m of mounts.splice(0).reverse()) sh(`umount -l ${m} 2>/dev/null`)
  dirs.splice(0).forEach(rmrf)
})

const ok = (r: {status: number; stderr: string; stdout: string}, what: string) => {
  if (r.status !== 0) throw new Error(`${what}: ${r.stderr}`)
  return r.stdout
}

describe('commit of an overlay upper dir', () => {
  it('gives an image whose merged view equals what the overlay mount showed', async () => {
    const w = tmpDir('velo-commit-')
    dirs.push(w)
    const home = path.join(w, 'home')
    const base = await mkTar([
      {name: 'bin/', type: 'directory'},
      {name: 'bin/tool', content: 'tool\n', mode: 0o4755},
      {name: 'etc/', type: 'directory'},
      {name: 'etc/keep', content: 'keep\n', uid: 1000, gid: 1000},
      {name: 'etc/gone', content: 'gone\n'},
      {name: 'etc/dir/', type: 'directory'},
      {name: 'etc/dir/nested', content: 'nested\n'},
      {name: 'opt/', type: 'directory'},
      {name: 'opt/old', content: 'old\n'},
      {name: 'var/', type: 'directory'},
      {name: 'var/lib/', type: 'directory'},
      {name: 'var/lib/x', content: 'x\n'},
    ])
    fs.writeFileSync(path.join(w, 'base.tar'), await dockerSaveLegacy([{tag: 'base:1', layers: [base]}]))
    const imp = veloJson(home, ['image', 'import', path.join(w, 'base.tar')])
    const lower = path.join(w, 'lower')
    veloJson(home, ['image', 'checkout', 'base:1', lower])
    for (const d of ['upper', 'work', 'merged']) fs.mkdirSync(path.join(w, d))
    const merged = path.join(w, 'merged')
    ok(sh(`mount -t overlay overlay -o lowerdir=${lower},upperdir=${w}/upper,workdir=${w}/work,redirect_dir=off,metacopy=off ${merged}`), 'mount overlay')
    mounts.push(merged)
    ok(
      sh(
        [
          `cd ${merged}`,
          'rm etc/gone',
          'rm -rf etc/dir',
          'rm -rf opt && mkdir opt && echo new > opt/new',
          'echo changed > etc/keep',
          'chmod 0700 bin/tool',
          'chown 7:8 var/lib/x',
          'ln var/lib/x var/lib/x-hard',
          'mkfifo var/fifo',
          'rm -rf var/lib && ln -s /opt var/lib',
          'mkdir -p new/deep && echo deep > new/deep/f && ln -s ../etc/keep new/ln',
          'mv etc/keep etc/keep2',
        ].join(' && '),
      ),
      'changes',
    )
    const expected = listDir(merged)
    ok(sh(`umount ${merged}`), 'umount')
    mounts.pop()
    const db0 = ManifestDb.open(home)
    const baseLayers = db0.requireImage('base:1').layers
    db0.close()
    const r = commitUpper(home, {name: 'committed', baseLayers, upperDir: path.join(w, 'upper'), source: 'test'})
    expect(r.layers.slice(0, -1)).toEqual(imp.images[0].layers)
    expect(r.whiteouts).toBeGreaterThanOrEqual(3) // etc/gone, etc/dir, var/lib replaced... and etc/keep moved away
    expect(r.opaqueDirs).toBe(1)
    const db = ManifestDb.open(home)
    let got
    try {
      got = listImage(db, 'committed')
    } finally {
      db.close()
    }
    // The merged root's metadata comes from the upper dir in both; compare everything.
    expect(fmtRows(got)).toEqual(fmtRows(expected))
    // And the checkout of the committed image is that tree on disk.
    const co = path.join(w, 'co')
    veloJson(home, ['image', 'checkout', 'committed', co])
    expect(fmtRows(listDir(co)).slice(1)).toEqual(fmtRows(expected).slice(1))
  })

  it('refuses a redirected directory (renamed lower dir) instead of committing something wrong', async () => {
    const w = tmpDir('velo-commit-')
    dirs.push(w)
    const home = path.join(w, 'home')
    // A real redirect: rename a lower directory through an overlay mounted with redirect_dir=on.
    fs.mkdirSync(path.join(w, 'lower', 'orig'), {recursive: true})
    fs.writeFileSync(path.join(w, 'lower', 'orig', 'f'), 'f')
    for (const d of ['upper', 'work', 'merged']) fs.mkdirSync(path.join(w, d))
    const merged = path.join(w, 'merged')
    ok(sh(`mount -t overlay overlay -o lowerdir=${w}/lower,upperdir=${w}/upper,workdir=${w}/work,redirect_dir=on ${merged}`), 'mount')
    mounts.push(merged)
    ok(sh(`mv ${merged}/orig ${merged}/moved`), 'mv')
    ok(sh(`umount ${merged}`), 'umount')
    mounts.pop()
    veloJson(home, ['ingest', path.join(w, 'lower'), '--name', 'seed'])
    const db = ManifestDb.open(home)
    const baseLayers = db.requireImage('seed').layers
    db.close()
    expect(() => commitUpper(home, {name: 'bad', baseLayers, upperDir: path.join(w, 'upper'), source: 'test'})).toThrow(/"moved" is a redirected/)
  })
})
