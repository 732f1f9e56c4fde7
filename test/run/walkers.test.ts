import * as fs from 'node:fs'
import * as path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {rmrf, sh, tmpDir} from '../helpers'
import {expectStoreIntact, ingest, ok, vrun} from './fixture'

// glibc's nftw/ftw and fts stat through internal aliases no preload sees; the shim wraps the walkers
// themselves (native/shim/walk.c). Same answers (paths, types, sizes, st_blocks, FTW base/level) on a real
// copy and on a projection, solid and phantom.
let dir: string, home: string, bin: string, real: string

beforeAll(() => {
  dir = tmpDir('velo-walk-')
  home = path.join(dir, 'home')
  bin = path.join(dir, 'walkers')
  const cc = sh(`gcc -O2 -Wall -o ${bin} ${path.join(__dirname, 'walkers.c')}`)
  if (cc.status !== 0) throw new Error(cc.stderr)
  const src = path.join(dir, 'src', 'tree')
  fs.mkdirSync(path.join(src, 'sub', 'deeper'), {recursive: true})
  fs.writeFileSync(path.join(src, 'a'), 'a'.repeat(5000))
  fs.writeFileSync(path.join(src, 'sub', 'b'), 'b'.repeat(100000))
  fs.writeFileSync(path.join(src, 'sub', 'deeper', 'c'), 'c')
  fs.writeFileSync(path.join(src, 'empty'), '')
  fs.symlinkSync('sub/b', path.join(src, 'link'))
  ingest(home, src, 'tree')
  real = path.join(dir, 'real')
  fs.mkdirSync(real)
  ok(sh(`cp -a ${src} ${real}/`))
})
afterAll(() => rmrf(dir))

const sorted = (s: string) => s.split('\n').filter(Boolean).sort().join('\n')

describe('nftw, ftw and fts on a projection', () => {
  it('solid: the same entries and stats as on a real copy (st_blocks of placeholders included)', () => {
    const want = sorted(ok(sh(`${bin} tree fts`, {cwd: real})))
    expect(want).toMatch(/nftw tree\/sub\/b base=b t=0 size=100000 blocks=[1-9]/)
    const proj = path.join(dir, 'solid')
    fs.mkdirSync(proj)
    expect(sorted(ok(vrun(home, 'tree', proj, `${bin} tree fts`)))).toBe(want)
    // relative to the walk's own chdir (FTW_CHDIR) and by an absolute path too
    expect(sorted(ok(vrun(home, 'tree', proj, `${bin} ${proj}/tree fts | sed "s#${proj}/##g"`)))).toBe(want)
  })

  it('phantom: nftw/ftw walk the projection root that is not on disk, with the names the program gave', () => {
    const want = sorted(ok(sh(`${bin} tree`, {cwd: real})))
    const proj = path.join(dir, 'phantom')
    fs.mkdirSync(proj)
    const env = {VELO_CACHE_HOME: path.join(dir, 'cache')}
    expect(sorted(ok(vrun(home, 'tree', proj, `${bin} tree`, ['--phantom'], env)))).toBe(want)
    expect(sorted(ok(vrun(home, 'tree', proj, `${bin} ${proj}/tree | sed "s#${proj}/##g"`, ['--phantom'], env)))).toBe(want)
    expect(fs.readdirSync(proj)).toEqual([])
  })

  it('the store is untouched', () => {
    expectStoreIntact(home)
  })
})
