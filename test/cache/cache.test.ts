import * as fs from 'node:fs'
import * as path from 'node:path'
import {spawn} from 'node:child_process'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {decodeKey, encodeKey, MAX_TAG, tagFor, tagMayMatch} from '../../src/cache/keys'
import {newHasher} from '../../src/lib/blake3'
import {ManifestDb} from '../../src/manifest/db'
import {KEY_PREFIX} from '../../src/manifest/entry'
import {rmrf, tmpDir, velo, veloJson, VELO} from '../helpers'
import {listDir} from '../image/listing'
import {makeTree} from '../registry/fixture'
import {Registry, startRegistry} from '../registry/registry'

/**
 * velo cache save / restore / summary: in the local store (no registry) and through a real Distribution registry
 * on loopback; hits, misses, fallback prefixes, several directories, a crafted entry that tries to write outside
 * its directory, a restore killed in the middle, and the job's summary.
 */
const listing = (d: string) => JSON.stringify(listDir(d))

/** A small project: node_modules-like tree, a cache dir, a ~/.npm-like dir (abs path). */
function project(w: string, seed = 'p'): {nm: string; cache: string} {
  const nm = path.join(w, 'proj', 'node_modules')
  makeTree(nm, {files: 120, tag: seed})
  fs.mkdirSync(path.join(nm, '.bin'), {recursive: true})
  fs.symlinkSync('../d0/e0/f0.bin', path.join(nm, '.bin', 'tool'))
  const cache = path.join(w, 'home', '.npm')
  fs.mkdirSync(path.join(cache, '_cacache'), {recursive: true})
  fs.writeFileSync(path.join(cache, '_cacache', 'index'), `index ${seed}\n`)
  return {nm, cache}
}

describe('cache keys → tags', () => {
  it('keeps safe keys readable, escapes the rest per byte, and hashes keys too long for a tag', () => {
    expect(tagFor('npm-linux-abc123')).toBe('k_npm-2dlinux-2dabc123')
    for (const k of ['v1/deps@x', 'ünïcode key', '..', '-lead', 'a'.repeat(500), 'x'.repeat(118)]) {
      const t = tagFor(k)
      expect(t).toMatch(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/)
      expect(t.length).toBeLessThanOrEqual(MAX_TAG)
      expect(tagFor(k)).toBe(t) // deterministic
      if (t.startsWith('k_')) expect(decodeKey(t.slice(2))).toBe(k)
    }
    expect(tagFor('a'.repeat(500))).not.toBe(tagFor('a'.repeat(501)))
    expect(tagFor('a'.repeat(500)).startsWith('h_')).toBe(true)
    // a key's prefix is the tag's prefix
    expect(tagMayMatch(tagFor('npm-linux-abc'), 'npm-linux-')).toBe('yes')
    expect(tagMayMatch(tagFor('npm-mac-abc'), 'npm-linux-')).toBe('no')
    expect(tagMayMatch(tagFor('p'.repeat(300)), 'ppp')).toBe('maybe')
    expect(tagMayMatch(tagFor('q'.repeat(300)), 'ppp')).toBe('no')
    expect(encodeKey('a/b')).toBe('a-2fb')
    expect(() => tagFor('')).toThrow()
    expect(() => tagFor('a\nb')).toThrow()
  })
})

describe('velo cache, local store', () => {
  let w: string
  let H: string
  const env = {VELO_CACHE_JOB: 'job-local'}
  beforeAll(() => {
    w = tmpDir('velo-cache-')
    H = path.join(w, 'store')
  })
  afterAll(() => rmrf(w))

  it('misses (exit 0, "cache miss"), saves several dirs, restores them whole over existing trees', () => {
    const {nm, cache} = project(w)
    const want = [listing(nm), listing(cache)]
    const cwd = path.join(w, 'proj')
    const miss = velo(H, ['cache', 'restore', 'deps-1', 'node_modules', cache], {cwd, env})
    expect(miss.status).toBe(0)
    expect(miss.stderr).toContain('cache miss')
    expect(JSON.parse(velo(H, ['cache', 'restore', 'deps-1', 'node_modules', cache, '--json'], {cwd, env}).stdout).hit).toBe(false)
    const failing = velo(H, ['cache', 'restore', 'deps-1', 'node_modules', cache, '--fail-on-miss'], {cwd, env})
    expect(failing.status).toBe(1)
    expect(failing.stderr).toContain('NOT_FOUND')

    const s = veloJson(H, ['cache', 'save', 'deps-1', 'node_modules', cache], {cwd, env})
    expect(s.dirs).toEqual(['node_modules', cache])
    expect(s.files).toBeGreaterThan(120)
    expect(typeof s.coldSeconds).toBe('number') // a miss of the key came before in this job

    // the trees change (a file added, one removed), then the restore brings back exactly what was saved
    fs.writeFileSync(path.join(nm, 'stray'), 'x')
    fs.rmSync(path.join(nm, 'd1'), {recursive: true})
    rmrf(cache)
    const r = veloJson(H, ['cache', 'restore', 'deps-1', 'node_modules', cache], {cwd, env})
    expect(r.hit).toBe(true)
    expect(r.source).toBe('local')
    expect(r.dirs).toEqual([
      {path: 'node_modules', replaced: true},
      {path: cache, replaced: false},
    ])
    expect(r.bytesFetched).toBe(0)
    expect(r.bytesReused).toBeGreaterThan(0)
    expect([listing(nm), listing(cache)]).toEqual(want)
    // nothing left beside the directories
    expect(fs.readdirSync(cwd).sort()).toEqual(['node_modules'])

    // restored into other paths (another checkout of the project): positional
    const other = path.join(w, 'other')
    veloJson(H, ['cache', 'restore', 'deps-1', path.join(other, 'nm'), path.join(other, 'npm')], {env})
    expect(listing(path.join(other, 'nm'))).toBe(want[0])
    // the number of directories must match what was saved
    const wrong = velo(H, ['cache', 'restore', 'deps-1', path.join(other, 'nm')], {env})
    expect(wrong.status).toBe(2)
    expect(wrong.stderr).toContain('holds 2 directories')
    // overlapping directories are refused
    expect(velo(H, ['cache', 'save', 'x', nm, path.join(nm, 'd0')], {env}).status).toBe(2)
  })

  it('--fallback-prefix restores the newest entry whose key starts with the prefix', async () => {
    const a = path.join(w, 'fa')
    const b = path.join(w, 'fb')
    fs.mkdirSync(a)
    fs.writeFileSync(path.join(a, 'v'), 'one\n')
    fs.mkdirSync(b)
    fs.writeFileSync(path.join(b, 'v'), 'two\n')
    veloJson(H, ['cache', 'save', 'npm-linux-1', a], {env})
    await new Promise((r) => setTimeout(r, 20))
    veloJson(H, ['cache', 'save', 'npm-linux-2', b], {env})
    veloJson(H, ['cache', 'save', 'npm-mac-9', a], {env}) // newer, but another prefix
    const dest = path.join(w, 'fdest')
    const r = veloJson(H, ['cache', 'restore', 'npm-linux-3', '--fallback-prefix', 'npm-linux-', dest], {env})
    expect(r.hit).toBe(true)
    expect(r.matchedKey).toBe('npm-linux-2')
    expect(fs.readFileSync(path.join(dest, 'v'), 'utf8')).toBe('two\n')
    expect(veloJson(H, ['cache', 'restore', 'npm-linux-3', '--fallback-prefix', 'yarn-', dest], {env}).hit).toBe(false)
  })

  it('the summary reports what was measured, and "not measured" for the rest', () => {
    const s = veloJson(H, ['cache', 'summary'], {env})
    expect(s.job).toBe('job-local')
    const hits = s.rows.filter((r: any) => r.result === 'hit')
    const exact = hits.find((r: any) => r.key === 'deps-1')
    expect(exact.timeSavedSeconds).toBeCloseTo(exact.coldSeconds - exact.seconds, 6)
    expect(exact.files).toBeGreaterThan(120)
    expect(exact.bytesNotDownloaded).toBeGreaterThan(0)
    // the fallback hit restored an entry saved without a measured cold run
    const fb = hits.find((r: any) => r.matchedKey === 'npm-linux-2')
    expect(fb.timeSavedSeconds).toBeNull()
    expect(s.totals.misses).toBe(4)
    expect(s.totals.hitsMeasured).toBeGreaterThanOrEqual(1)
    const text = velo(H, ['cache', 'summary'], {env}).stderr
    expect(text).toContain('TIME SAVED')
    expect(text).toContain('not measured')
    // another job has its own journal
    expect(veloJson(H, ['cache', 'summary', '--job', 'other-job']).rows).toEqual([])
  })

  it('refuses a crafted entry whose names step outside its directory, writing nothing', () => {
    const src = path.join(w, 'evil-src')
    fs.mkdirSync(src)
    fs.writeFileSync(path.join(src, 'x'), 'payload\n')
    veloJson(H, ['cache', 'save', 'evil', src], {env})
    // rewrite the layer: the file's name becomes "../escaped", with a layer id that matches the new entries
    craftEscape(H, 'cache:k_evil', 'x', '../escaped')
    const dest = path.join(w, 'evil-dest', 'dir')
    fs.mkdirSync(dest, {recursive: true})
    fs.writeFileSync(path.join(dest, 'keep'), 'mine\n')
    const r = velo(H, ['cache', 'restore', 'evil', dest], {env})
    expect(r.status).toBe(1)
    expect(r.stderr).toContain('BAD_INPUT')
    expect(r.stderr).toContain('invalid path component')
    expect(fs.existsSync(path.join(w, 'evil-dest', 'escaped'))).toBe(false)
    expect(fs.readdirSync(path.join(w, 'evil-dest'))).toEqual(['dir'])
    expect(fs.readdirSync(dest)).toEqual(['keep'])
  })

  it('a restore killed while it writes leaves the old tree (or none), never part of the new one; the next one completes', async () => {
    const big = path.join(w, 'bigsrc')
    makeTree(big, {files: 3000, tag: 'big'})
    veloJson(H, ['cache', 'save', 'big', big], {env})
    const want = listing(big)
    const parent = path.join(w, 'kill')
    const dest = path.join(parent, 'node_modules')
    fs.mkdirSync(dest, {recursive: true})
    fs.writeFileSync(path.join(dest, 'old-marker'), 'old\n')
    const oldListing = listing(dest)
    const child = spawn(VELO, ['cache', 'restore', 'big', dest], {env: {...process.env, ...env, VELO_HOME: H}, stdio: 'ignore'})
    const exited = new Promise<void>((r) => child.on('exit', () => r()))
    // wait until the checkout has started writing its temp tree, then SIGKILL
    let seen = false
    for (let i = 0; i < 2000 && !seen; i++) {
      const tmp = fs.readdirSync(parent).find((n) => n.includes('.velo-restore-'))
      if (tmp && fs.readdirSync(path.join(parent, tmp)).length > 0) seen = true
      else await new Promise((r) => setTimeout(r, 2))
    }
    child.kill('SIGKILL')
    await exited
    expect(seen).toBe(true)
    // dest is the old tree, or absent (killed between the two renames), or the complete new tree
    if (fs.existsSync(dest)) expect([oldListing, want]).toContain(listing(dest))
    const again = veloJson(H, ['cache', 'restore', 'big', dest], {env})
    expect(again.hit).toBe(true)
    expect(listing(dest)).toBe(want)
    expect(fs.readdirSync(parent)).toEqual(['node_modules']) // the killed restore's temp dir is gone
  })
})

/**
 * Rename one entry of the first layer of a local image to NEW (bytes, may contain '/'), recomputing the layer id as
 * velo does (BLAKE3 over the entries in key order), and point the image and its cache path map at the new layer.
 */
function craftEscape(home: string, image: string, oldName: string, newName: string): string {
  const db = ManifestDb.open(home)
  try {
    const img = db.getImage(image)!
    const lid = Buffer.from(img.layers[0], 'hex')
    const end = Buffer.alloc(KEY_PREFIX, 0xff)
    lid.copy(end)
    const rows: Array<{k: Buffer; v: Buffer}> = []
    for (const {key, value} of db.entries.getRange({start: lid, end})) {
      let k = Buffer.from((key as Buffer).subarray(32))
      if (k.subarray(4).toString() === oldName) k = Buffer.concat([k.subarray(0, 4), Buffer.from(newName)])
      rows.push({k, v: Buffer.from(value as Buffer)})
    }
    rows.sort((a, b) => Buffer.compare(a.k, b.k))
    const h = newHasher().update(Buffer.from('velo-layer-v1\n'))
    for (const r of rows) {
      const len = Buffer.alloc(8)
      len.writeUInt32LE(r.k.length, 0)
      len.writeUInt32LE(r.v.length, 4)
      h.update(len).update(r.k).update(r.v)
    }
    const id = h.digest('hex')
    const info = {...db.getLayer(img.layers[0])!, id}
    const nid = Buffer.from(id, 'hex')
    const cache = {...(img.config!.cache as any), dirs: [{...(img.config!.cache as any).dirs[0], layer: id}]}
    db.writeSync(() => {
      db.putLayerInTxn(info, rows.map((r) => ({key: Buffer.concat([nid, r.k]), value: r.v})))
      db.images.putSync(image, {...img, layers: [id], config: {...img.config, cache}})
    })
    return id
  } finally {
    db.close()
  }
}

describe('velo cache through a registry', () => {
  let reg: Registry
  let w: string
  beforeAll(async () => {
    reg = await startRegistry()
    w = tmpDir('velo-cache-reg-')
  })
  afterAll(async () => {
    await reg?.stop()
    if (w) rmrf(w)
  })

  it('saves on one host, restores on another (hit, fallback prefix, miss), fetching only what the store lacks', () => {
    const A = path.join(w, 'A')
    const B = path.join(w, 'B')
    const {nm, cache} = project(w)
    const want = [listing(nm), listing(cache)]
    const envA = {VELO_CACHE_JOB: 'job-a', VELO_CACHE_REGISTRY: `${reg.host}/ci/cache`}
    const envB = {VELO_CACHE_JOB: 'job-b'}
    const regFlags = ['--registry', `${reg.host}/ci/cache`, ...reg.flags]
    const s = veloJson(A, ['cache', 'save', 'npm-linux-aaa', nm, cache, ...reg.flags], {env: envA})
    expect(s.pushed.ref).toBe(`${reg.host}/ci/cache:k_npm-2dlinux-2daaa`)

    // B: an empty store; a miss first
    const d1 = path.join(w, 'B-nm')
    const d2 = path.join(w, 'B-npm')
    expect(veloJson(B, ['cache', 'restore', 'npm-linux-zzz', d1, d2, ...regFlags], {env: envB}).hit).toBe(false)
    const r = veloJson(B, ['cache', 'restore', 'npm-linux-aaa', d1, d2, ...regFlags], {env: envB})
    expect(r.hit).toBe(true)
    expect(r.source).toBe('registry')
    expect(r.objectsFetched).toBe(r.objects)
    expect(r.bytesReused).toBe(0)
    expect(r.bytesReceived).toBeGreaterThan(0)
    expect([listing(d1), listing(d2)]).toEqual(want)

    // a second save with one changed file; B restores it by prefix and fetches only the new object
    fs.writeFileSync(path.join(nm, 'd0', 'e0', 'f0.bin'), 'changed\n')
    veloJson(A, ['cache', 'save', 'npm-linux-bbb', nm, cache, ...reg.flags], {env: envA})
    const want2 = listing(nm)
    const f = veloJson(B, ['cache', 'restore', 'npm-linux-ccc', '--fallback-prefix', 'npm-linux-', d1, d2, ...regFlags], {env: envB})
    expect(f.hit).toBe(true)
    expect(f.matchedKey).toBe('npm-linux-bbb')
    expect(f.objectsFetched).toBe(1)
    expect(f.bytesFetched).toBe('changed\n'.length)
    expect(f.bytesReused).toBeGreaterThan(100_000)
    expect(listing(d1)).toBe(want2)

    const sum = veloJson(B, ['cache', 'summary'], {env: envB})
    expect(sum.totals).toMatchObject({restores: 3, hits: 2, misses: 1, saves: 0})
    expect(sum.totals.bytesNotDownloaded).toBe(f.bytesReused)
  })

  it('a crafted entry pulled from the registry is refused at restore, nothing written outside', () => {
    const A = path.join(w, 'A2')
    const B = path.join(w, 'B2')
    const src = path.join(w, 'evil')
    fs.mkdirSync(src)
    fs.writeFileSync(path.join(src, 'x'), 'payload\n')
    veloJson(A, ['cache', 'save', 'evil', src])
    craftEscape(A, 'cache:k_evil', 'x', '../../escaped')
    veloJson(A, ['push', 'cache:k_evil', `${reg.host}/ci/cache:k_evil`, ...reg.flags])
    const dest = path.join(w, 'victim', 'a', 'dir')
    const r = velo(B, ['cache', 'restore', 'evil', dest, '--registry', `${reg.host}/ci/cache`, ...reg.flags])
    expect(r.status).toBe(1)
    expect(r.stderr).toContain('invalid path component')
    expect(fs.readdirSync(path.join(w, 'victim'))).toEqual(['a'])
    expect(fs.readdirSync(path.join(w, 'victim', 'a'))).toEqual([])
  })
})
