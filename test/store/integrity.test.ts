import {spawn, execFileSync} from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {describe, expect, it} from 'vitest'
import {tmpDirs, velo, veloJson, VELO} from '../helpers'
import {listing} from './tree'

const objects = (home: string) =>
  execFileSync('find', [path.join(home, 'cas'), '-type', 'f']).toString().trim().split('\n').filter(Boolean)

/** Every object's content hashes (b3sum, an outside tool) to the hash and size in its name. */
function expectObjectsMatchNames(home: string) {
  const files = objects(home)
  if (files.length === 0) return
  const sums = execFileSync('b3sum', files, {maxBuffer: 1 << 28}).toString().trim().split('\n')
  for (const line of sums) {
    const [hash, file] = [line.slice(0, 64), line.slice(66)]
    const [nameHash, size] = path.basename(file).split('_')
    expect(hash, file).toBe(nameHash)
    expect(fs.statSync(file).size, file).toBe(Number(size))
  }
}

describe('store integrity', () => {
  const mk = tmpDirs()

  it('fsck finds a flipped byte, names the image and path, and --repair says what to re-ingest', () => {
    const home = mk()
    const src = mk()
    fs.mkdirSync(path.join(src, 'lib'))
    fs.writeFileSync(path.join(src, 'lib', 'victim.js'), 'module.exports = 42\n')
    fs.writeFileSync(path.join(src, 'other.txt'), 'fine\n')
    veloJson(home, ['ingest', src, '--name', 'app'])
    expect(velo(home, ['fsck']).status).toBe(0)
    const victim = objects(home).find((f) => fs.readFileSync(f, 'utf8').includes('42'))!
    const b = fs.readFileSync(victim)
    b[3] ^= 0x01
    fs.writeFileSync(victim, b)
    const r = velo(home, ['fsck'])
    expect(r.status).toBe(3)
    expect(r.stderr).toMatch(/bad-object/)
    expect(r.stderr).toMatch(/images: app/)
    expect(r.stderr).toMatch(/path: \/lib\/victim\.js/)
    const j = velo(home, ['fsck', '--json'])
    expect(j.status).toBe(3)
    expect(JSON.parse(j.stdout).affectedImages).toEqual(['app'])
    const rep = velo(home, ['fsck', '--repair'])
    expect(rep.status).toBe(3)
    expect(rep.stderr).toMatch(/removed 1 bad object/)
    expect(rep.stderr).toMatch(/re-ingest.*app/)
    expect(fs.existsSync(victim)).toBe(false)
    // re-ingesting the source restores the object; the store is whole again
    veloJson(home, ['ingest', src, '--name', 'app'])
    expect(velo(home, ['fsck']).status).toBe(0)
  })

  it('kill -9 in the middle of an ingest leaves only valid objects and temp files; gc + fsck pass', async () => {
    const home = mk()
    const src = mk()
    for (let d = 0; d < 20; d++) {
      fs.mkdirSync(path.join(src, `d${d}`))
      for (let f = 0; f < 100; f++) fs.writeFileSync(path.join(src, `d${d}`, `f${f}`), `content ${d}/${f}\n`.repeat(50 + f))
    }
    // a large file so that the kill lands while an object is being written
    execFileSync('dd', ['if=/dev/urandom', `of=${path.join(src, 'big')}`, 'bs=1M', 'count=200', 'status=none'])
    const child = spawn(VELO, ['ingest', src, '--name', 'partial'], {env: {...process.env, VELO_HOME: home}, stdio: 'ignore'})
    // wait until it has stored some objects, then kill it hard
    const casDir = path.join(home, 'cas', 'blake3')
    const stored = () => (fs.existsSync(casDir) ? fs.readdirSync(casDir).reduce((n, d) => n + fs.readdirSync(path.join(casDir, d)).length, 0) : 0)
    for (let i = 0; i < 1000 && stored() < 200; i++) await new Promise((r) => setTimeout(r, 10))
    expect(stored()).toBeGreaterThanOrEqual(200)
    child.kill('SIGKILL')
    await new Promise((r) => child.on('exit', r))
    expectObjectsMatchNames(home)
    expect(velo(home, ['image', 'inspect', 'partial']).status).toBe(1) // no half image
    const g = veloJson(home, ['gc'])
    expect(g.removedTempFiles).toBeGreaterThanOrEqual(0)
    expect(fs.readdirSync(path.join(home, 'tmp'))).toEqual([])
    expect(velo(home, ['image', 'ls', '--json']).stdout.trim()).toBe('[]')
    expect(velo(home, ['fsck']).status).toBe(0)
    // and the same ingest then completes and checks out correctly
    veloJson(home, ['ingest', src, '--name', 'partial'])
    const out = path.join(mk(), 'out')
    veloJson(home, ['image', 'checkout', 'partial', out])
    expect(listing(out)).toBe(listing(src))
  })

  it('gc killed (-9) while it sweeps: every live image intact, fsck passes, the rerun finishes the sweep', async () => {
    const home = mk()
    const [keep, gone] = [mk(), mk()]
    for (let f = 0; f < 300; f++) fs.writeFileSync(path.join(keep, `k${f}`), `kept ${f}\n`.repeat(20))
    for (let f = 0; f < 12000; f++) fs.writeFileSync(path.join(gone, `g${f}`), `gone ${f}\n`.repeat(20))
    veloJson(home, ['ingest', keep, '--name', 'keep'])
    veloJson(home, ['ingest', gone, '--name', 'gone'])
    expect(velo(home, ['image', 'rm', 'gone']).status).toBe(0)
    const casDir = path.join(home, 'cas', 'blake3')
    const count = () => fs.readdirSync(casDir).reduce((n, d) => n + fs.readdirSync(path.join(casDir, d)).length, 0)
    const total = count()
    expect(total).toBe(12300)
    const child = spawn(VELO, ['gc'], {env: {...process.env, VELO_HOME: home}, stdio: 'ignore'})
    const closed = new Promise((r) => child.on('close', r))
    // killed once it has swept some of the dead objects, not all
    for (let i = 0; i < 20000 && count() > total - 500; i++) await new Promise((r) => setTimeout(r, 1))
    child.kill('SIGKILL')
    await closed
    const left = count()
    expect(left).toBeLessThan(total)
    expect(left).toBeGreaterThan(300) // cut short: some dead objects remain
    expect(velo(home, ['fsck']).status).toBe(0)
    const out = path.join(mk(), 'out')
    veloJson(home, ['image', 'checkout', 'keep', out])
    expect(listing(out)).toBe(listing(keep))
    const g = veloJson(home, ['gc'])
    expect(g.removedObjects).toBe(left - 300)
    expect(count()).toBe(300)
    expect(velo(home, ['fsck']).status).toBe(0)
  })
})
