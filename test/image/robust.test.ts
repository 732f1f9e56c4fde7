import {spawn} from 'node:child_process'
import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {describe, expect, it} from 'vitest'
import {ManifestDb} from '../../src/manifest/db'
import {listImage} from '../../src/image/view'
import {velo, VELO, veloJson, tmpDirs} from '../helpers'
import {dockerSaveLegacy, mkTar, TEntry} from './fixtures'

const mk = tmpDirs('velo-img-rob-')

function countFiles(dir: string): number {
  let n = 0
  const walk = (d: string) => {
    let names: fs.Dirent[]
    try {
      names = fs.readdirSync(d, {withFileTypes: true})
    } catch {
      return
    }
    for (const e of names) e.isDirectory() ? walk(path.join(d, e.name)) : n++
  }
  walk(dir)
  return n
}

/** A base layer of `n` distinct random files of `size` bytes. */
async function bigLayer(n: number, size: number, seed: string): Promise<Buffer> {
  const entries: TEntry[] = [{name: 'data/', type: 'directory'}]
  for (let i = 0; i < n; i++) entries.push({name: `data/f${i}`, content: Buffer.concat([Buffer.from(`${seed}${i}`), crypto.randomBytes(size)])})
  return mkTar(entries)
}

describe('velo image import under kill -9 and concurrency', () => {
  it('kill -9 mid-import leaves no image; gc cleans up, fsck is clean, a retry imports the image', async () => {
    const w = mk()
    const home = mk()
    const tar = path.join(w, 'big.tar')
    fs.writeFileSync(tar, await dockerSaveLegacy([{tag: 'big:1', layers: [await bigLayer(3000, 16 << 10, 'k'), await mkTar([{name: 'top', content: 'top'}])]}]))
    veloJson(home, ['image', 'import', path.join(w, 'big.tar'), '--name', 'warm', '--format', 'image']) // the store exists, lock file too
    veloJson(home, ['image', 'rm', 'warm'])
    veloJson(home, ['gc'])
    const before = countFiles(path.join(home, 'cas'))
    const child = spawn(VELO, ['image', 'import', tar], {env: {...process.env, VELO_HOME: home}, stdio: 'ignore'})
    // Kill it once it has written some objects, well before it could finish.
    for (let i = 0; i < 600 && countFiles(path.join(home, 'cas')) < before + 50; i++) await new Promise((r) => setTimeout(r, 10))
    child.kill('SIGKILL')
    const code = await new Promise<number | null>((r) => child.on('exit', (c, s) => r(s === 'SIGKILL' ? null : c)))
    expect(code).toBeNull() // really killed mid-way, not finished
    const db = ManifestDb.open(home)
    try {
      expect(db.getImage('big:1')).toBeUndefined()
      expect(db.listLayers()).toEqual([])
    } finally {
      db.close()
    }
    veloJson(home, ['gc'])
    const f = velo(home, ['fsck'])
    expect(f.status, f.stderr + f.stdout).toBe(0)
    const r = veloJson(home, ['image', 'import', tar])
    expect(r.images[0].name).toBe('big:1')
    const db2 = ManifestDb.open(home)
    try {
      expect(listImage(db2, 'big:1').filter((x) => x.type === 'file')).toHaveLength(3001)
    } finally {
      db2.close()
    }
  })

  it('two imports of images sharing a base, at the same time: both land, the base layer is one layer', async () => {
    const w = mk()
    const home = mk()
    const base = await bigLayer(400, 4 << 10, 'c')
    fs.writeFileSync(path.join(w, 'a.tar'), await dockerSaveLegacy([{tag: 'a:1', layers: [base, await mkTar([{name: 'a', content: 'a'}])]}]))
    fs.writeFileSync(path.join(w, 'b.tar'), await dockerSaveLegacy([{tag: 'b:1', layers: [base, await mkTar([{name: 'b', content: 'b'}])]}]))
    const run = (f: string) =>
      new Promise<{code: number | null; out: string}>((resolve) => {
        const c = spawn(VELO, ['image', 'import', f, '--json'], {env: {...process.env, VELO_HOME: home}, stdio: ['ignore', 'pipe', 'pipe']})
        let out = ''
        c.stdout.on('data', (d) => (out += d))
        c.on('close', (code) => resolve({code, out})) // after stdout is drained
      })
    const [a, b] = await Promise.all([run(path.join(w, 'a.tar')), run(path.join(w, 'b.tar'))])
    expect(a.code).toBe(0)
    expect(b.code).toBe(0)
    const ja = JSON.parse(a.out)
    const jb = JSON.parse(b.out)
    expect(ja.images[0].layers[0]).toBe(jb.images[0].layers[0])
    const db = ManifestDb.open(home)
    try {
      expect(db.listImages().map((i) => i.name).sort()).toEqual(['a:1', 'b:1'])
      expect(db.listLayers()).toHaveLength(3)
    } finally {
      db.close()
    }
    expect(velo(home, ['fsck']).status).toBe(0)
  })
})
