import * as fs from 'node:fs'
import * as path from 'node:path'
import {execFileSync} from 'node:child_process'
import {afterAll, describe, expect, it} from 'vitest'
import {rmrf, tmpDir} from '../helpers'

const CODE_CACHE = path.resolve(__dirname, '../../bin/code-cache.js')

/** bin/code-cache.js: V8's code cache for dist/fast.js, used only for the exact source it was made from. */
describe('code cache', () => {
  const dir = tmpDir('velo-code-cache-')
  afterAll(() => rmrf(dir))
  const write = (file: string) => execFileSync(process.execPath, [CODE_CACHE, file], {encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe']})
  /** load(file) in a fresh node: its exports' v */
  const load = (file: string): string => loadProbed(file).v
  /** the same, and what reached V8: whether load() compiled with cached data, and whether V8 rejected it */
  const loadProbed = (file: string): {v: string; cached: boolean; rejected: boolean | undefined} =>
    JSON.parse(
      execFileSync(
        process.execPath,
        [
          '-e',
          `const vm = require('vm'); const S = vm.Script; let cached = false, rejected
           vm.Script = function (src, o) { const s = new S(src, o); if (o && o.cachedData) { cached = true; rejected = s.cachedDataRejected }; return s }
           const v = String(require(${JSON.stringify(CODE_CACHE)}).load(${JSON.stringify(file)}).v)
           process.stdout.write(JSON.stringify({v, cached, rejected}))`,
        ],
        {encoding: 'utf8'},
      ),
    )

  it('runs a module from its cache, and the module is what require() would give', () => {
    const f = path.join(dir, 'a.js')
    fs.writeFileSync(f, "exports.v = require('node:path').basename(__filename) + ':' + (module.id === __filename)\n")
    write(f)
    expect(fs.statSync(`${f}.cache`).size).toBeGreaterThan(64)
    // compiled from the cache, and V8 took it
    expect(loadProbed(f)).toEqual({v: 'a.js:true', cached: true, rejected: false})
  })

  it('never runs a stale cache: a changed source of the same length (which V8 alone would accept) is compiled afresh', () => {
    const f = path.join(dir, 'b.js')
    fs.writeFileSync(f, "exports.v = 'A'\n")
    write(f)
    fs.writeFileSync(f, "exports.v = 'B'\n")
    expect(loadProbed(f)).toMatchObject({v: 'B', cached: false})
  })

  it('a damaged or missing cache falls back to a plain compile, and damage never reaches V8', () => {
    const f = path.join(dir, 'c.js')
    fs.writeFileSync(f, "exports.v = 'C'\n")
    write(f)
    const good = fs.readFileSync(`${f}.cache`)
    // one byte of V8's data flipped: its header still passes V8's own check, so only the cache's hash can catch it
    const c = Buffer.from(good)
    c[c.length - 1] ^= 0xff
    fs.writeFileSync(`${f}.cache`, c)
    expect(loadProbed(f)).toMatchObject({v: 'C', cached: false})
    fs.writeFileSync(`${f}.cache`, c.subarray(0, 10))
    expect(load(f)).toBe('C')
    fs.rmSync(`${f}.cache`)
    expect(load(f)).toBe('C')
  })

  it('a module with import() gets no cache (a vm script has no loader for it), and the build left none in dist/fast.js', () => {
    const f = path.join(dir, 'd.js')
    fs.writeFileSync(`${f}.cache`, 'old')
    fs.writeFileSync(f, "exports.v = 'D'; exports.later = () => import('node:os')\n")
    expect(() => write(f)).not.toThrow()
    expect(fs.existsSync(`${f}.cache`)).toBe(false)
    expect(load(f)).toBe('D')
    expect(fs.readFileSync(path.resolve(__dirname, '../../dist/fast.js'), 'utf8')).not.toMatch(/\bimport\(/)
    expect(fs.existsSync(path.resolve(__dirname, '../../dist/fast.js.cache'))).toBe(true)
  })
})
