import * as fs from 'node:fs'
import * as path from 'node:path'
import {describe, expect, it} from 'vitest'
import {ManifestDb} from '../../src/manifest/db'
import {sh, velo, veloJson, tmpDirs} from '../helpers'
import {dockerSaveLegacy, mkTar} from './fixtures'
import {imageRows} from './listing'

const mk = tmpDirs('velo-exp-')


describe('velo image export', () => {
  it('velo → tar → velo keeps every layer id (ns mtimes, big uids, hard links, devices, whiteouts, opaque dirs)', async () => {
    const w = mk()
    const home = mk()
    const base = await mkTar([
      {name: './', type: 'directory', mode: 0o711, uid: 5, gid: 6},
      {name: 'a', content: 'aaa', pax: {mtime: '1700000000.123456789'}},
      {name: 'b', type: 'link', linkname: 'a'},
      {name: 'big', content: 'u', uid: 4000000, gid: 4000001, pax: {uid: '4000000', gid: '4000001'}},
      {name: 'old', content: 'x', pax: {mtime: '-1.5'}},
      {name: 'dev/', type: 'directory'},
      {name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3},
      {name: 'dev/wide', type: 'block-device', devmajor: 259, devminor: 300},
      {name: 'fifo', type: 'fifo'},
      {name: 'd/', type: 'directory'},
      {name: 'd/x', content: 'x'},
      {name: 'd/l', type: 'symlink', linkname: '../etc/passwd'},
      {name: `long/${'n'.repeat(200)}`, content: 'long'},
    ])
    const upper = await mkTar([{name: '.wh.a', content: ''}, {name: 'd/', type: 'directory'}, {name: 'd/.wh..wh..opq', content: ''}, {name: 'd/y', content: 'y'}])
    fs.writeFileSync(path.join(w, 'in.tar'), await dockerSaveLegacy([{tag: 'src:1', layers: [base, upper]}]))
    const a = veloJson(home, ['image', 'import', path.join(w, 'in.tar')])
    const e = veloJson(home, ['image', 'export', 'src:1', '-o', path.join(w, 'out.tar')])
    expect(e.tag).toBe('src:1')
    const b = veloJson(home, ['image', 'import', path.join(w, 'out.tar'), '--name', 'back'])
    expect(b.images[0].layers).toEqual(a.images[0].layers)
    expect(b.newObjects).toBe(0)
    const db = ManifestDb.open(home)
    try {
      expect(db.requireImage('back').config).toEqual(db.requireImage('src:1').config)
      const old = db.lookup(a.images[0].layers[0], 'old')!
      expect([old.mtimeSec, old.mtimeNsec]).toEqual([-2n, 500_000_000])
    } finally {
      db.close()
    }
    // GNU tar reads it too, and sees the whiteout and opaque markers Docker expects.
    const t = sh(`tar -xOf ${w}/out.tar ${e.layers[1].diffId.slice(7)}/layer.tar | tar -tvf -`)
    expect(t.status).toBe(0)
    expect(t.stdout).toMatch(/\.wh\.a\n/)
    expect(t.stdout).toMatch(/d\/\.wh\.\.wh\.\.opq\n/)
  })

  it('exports an ingested directory that docker-style tools read back identically', () => {
    const w = mk()
    const home = mk()
    const src = path.join(w, 'src')
    fs.mkdirSync(path.join(src, 'sub'), {recursive: true})
    fs.writeFileSync(path.join(src, 'sub', 'f'), 'hello\n')
    fs.symlinkSync('sub/f', path.join(src, 'ln'))
    veloJson(home, ['ingest', src, '--name', 'ing'])
    veloJson(home, ['image', 'export', 'ing', '-o', path.join(w, 'ing.tar')])
    veloJson(home, ['image', 'import', path.join(w, 'ing.tar'), '--name', 'ing2'])
    expect(imageRows(home, 'ing2')).toEqual(imageRows(home, 'ing'))
  })

  it('fails cleanly when an object is missing from the store, leaving no output', async () => {
    const w = mk()
    const home = mk()
    fs.writeFileSync(path.join(w, 'in.tar'), await dockerSaveLegacy([{tag: 'x:1', layers: [await mkTar([{name: 'f', content: 'content that goes missing'}])]}]))
    veloJson(home, ['image', 'import', path.join(w, 'in.tar')])
    sh(`find ${home}/cas -type f -delete`)
    const r = velo(home, ['image', 'export', 'x:1', '-o', path.join(w, 'out.tar')])
    expect(r.status).toBe(3)
    expect(r.stderr).toMatch(/INTEGRITY.*missing/)
    expect(fs.readdirSync(w)).toEqual(['in.tar'])
  })
})
