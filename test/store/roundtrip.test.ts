import {execFileSync, spawnSync} from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {describe, expect, it} from 'vitest'
import {tmpDirs, velo, veloJson, VELO} from '../helpers'
import {listing, makeAwkwardTree} from './tree'

describe('ingest → checkout round trip', () => {
  const mk = tmpDirs()

  it('gives back an identical tree: content, modes, owners, ns mtimes, links, names, fifos', () => {
    const home = mk()
    const src = path.join(mk(), 'src')
    fs.mkdirSync(src)
    makeAwkwardTree(src)
    const r = veloJson(home, ['ingest', src, '--name', 'awkward'])
    expect(r.files).toBeGreaterThan(8)
    const out = path.join(mk(), 'out')
    veloJson(home, ['image', 'checkout', 'awkward', out])
    expect(listing(out)).toBe(listing(src))
    // a checkout is a copy: no file shares an inode with the store
    const storeInodes = new Set(execFileSync('find', [path.join(home, 'cas'), '-type', 'f', '-printf', '%i\\n']).toString().split('\n'))
    const outInodes = execFileSync('find', [out, '-type', 'f', '-printf', '%i\\n']).toString().split('\n').filter(Boolean)
    expect(outInodes.filter((i) => storeInodes.has(i))).toEqual([])
  })

  it('the C manifest reader (velo-ls) sees exactly what was ingested', () => {
    const home = mk()
    const src = path.join(mk(), 'src')
    fs.mkdirSync(src)
    makeAwkwardTree(src)
    const {layer} = veloJson(home, ['ingest', src, '--name', 'awk'])
    const ls = spawnSync(path.join(path.dirname(VELO), '..', 'native', 'build', 'velo-ls'), [home, layer])
    expect(ls.status).toBe(0)
    const fromC = ls.stdout.toString('latin1').trim().split('\n')
    const fromFind = execFileSync('find', ['.', '-printf', '%p\\t%y\\t%m\\t%U\\t%G\\n'], {cwd: src}).toString('latin1').trim().split('\n')
    const norm = (rows: string[]) => rows.map((r) => r.split('\t').slice(0, 5).join('\t')).sort()
    expect(norm(fromC)).toEqual(norm(fromFind))
  })

  it('streams a >1 GiB file with flat memory and checks it out intact', () => {
    const home = mk()
    const src = mk()
    const big = path.join(src, 'big.bin')
    // 1.1 GiB: sparse zeros with random blocks sprinkled through, so the content is not trivial.
    const fd = fs.openSync(big, 'w')
    fs.ftruncateSync(fd, 1100 * 1024 * 1024)
    for (let i = 0; i < 64; i++) fs.writeSync(fd, Buffer.from(execFileSync('head', ['-c', '65536', '/dev/urandom'])), 0, 65536, i * 17 * 1024 * 1024)
    fs.closeSync(fd)
    // peak RSS of the whole velo process, from GNU time's %M (KiB)
    const t = spawnSync('/usr/bin/time', ['-f', '%M', VELO, 'ingest', src, '--name', 'big', '--json'], {
      env: {...process.env, VELO_HOME: home},
      encoding: 'utf8',
    })
    expect(t.status).toBe(0)
    const peakKiB = Number(t.stderr.trim().split('\n').pop())
    console.log(`ingest of a 1.1 GiB file: peak RSS ${(peakKiB / 1024).toFixed(0)} MiB`)
    expect(peakKiB).toBeLessThan(300 * 1024) // a buffered file would need > 1100 MiB
    const out = path.join(mk(), 'out')
    veloJson(home, ['image', 'checkout', 'big', out])
    const sum = (f: string) => execFileSync('b3sum', ['--no-names', f]).toString().trim()
    expect(sum(path.join(out, 'big.bin'))).toBe(sum(big))
    // the object is named by the bytes it holds (b3sum agrees with velo's hash)
    const obj = execFileSync('find', [path.join(home, 'cas'), '-type', 'f']).toString().trim()
    expect(path.basename(obj).split('_')[0]).toBe(sum(big))
  })

  it('refuses to check out into a non-empty directory and names a missing image', () => {
    const home = mk()
    const src = mk()
    fs.writeFileSync(path.join(src, 'f'), 'x')
    veloJson(home, ['ingest', src, '--name', 'one'])
    const r1 = velo(home, ['image', 'checkout', 'one', src])
    expect(r1.status).toBe(1)
    expect(r1.stderr).toMatch(/not empty/)
    const r2 = velo(home, ['image', 'checkout', 'nope', path.join(mk(), 'x')])
    expect(r2.status).toBe(1)
    expect(r2.stderr).toMatch(/NOT_FOUND.*nope/)
  })
})
