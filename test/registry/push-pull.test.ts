import * as fs from 'node:fs'
import * as path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {decodeIndex, FLAG_DEFLATE} from '../../src/registry/packs'
import {rmrf, tmpDir, velo, veloJson} from '../helpers'
import {dockerSaveLegacy, mkTar} from '../image/fixtures'
import {imageRows} from '../image/listing'
import {checkoutListing, makeTree} from './fixture'
import {Registry, startRegistry} from './registry'

/**
 * velo push / velo pull against a real registry on loopback, with TLS (a CA of the test's own) and htpasswd
 * basic auth: store A pushes, empty stores pull, every image checks out identical; a second image that shares
 * 95% of its files adds only its new objects to the registry's storage.
 */
describe('velo push / pull (TLS, basic auth)', () => {
  let reg: Registry
  let w: string
  let A: string
  let env: Record<string, string>
  const listings = new Map<string, string>()

  beforeAll(async () => {
    reg = await startRegistry({tls: true, auth: 'basic'})
    w = tmpDir('velo-reg-w-')
    A = path.join(w, 'A')
    env = {VELO_REGISTRY_USERNAME: reg.user!.username, VELO_REGISTRY_PASSWORD: reg.user!.password}
    makeTree(path.join(w, 'base'), {files: 400, big: true})
    // 5% of the files changed (20 of 400)
    makeTree(path.join(w, 'app'), {files: 400, big: true, changed: new Set(Array.from({length: 20}, (_, i) => i * 20 + 3)), tag: 'app'})
    for (const n of ['base', 'app']) {
      veloJson(A, ['ingest', path.join(w, n), '--name', n])
      listings.set(n, checkoutListing(A, n, path.join(w, `co-A-${n}`)))
    }
  })
  afterAll(async () => {
    await reg?.stop()
    if (w) rmrf(w)
  })

  const pushJson = (home: string, image: string, ref: string) => veloJson(home, ['push', image, `${reg.host}/${ref}`, ...reg.flags], {env})
  const pullJson = (home: string, ref: string, extra: string[] = []) => veloJson(home, ['pull', `${reg.host}/${ref}`, ...reg.flags, ...extra], {env})

  it('pushes, then an empty store pulls every image identical; the second image uploads only its new objects', () => {
    const p1 = pushJson(A, 'base', 'team/base:1')
    expect(p1.format).toBe('velo')
    expect(p1.packs.reused).toBe(0)
    // text objects are stored deflated in the packs, random ones as they are
    const idxDir = path.join(A, 'remote', 'indexes')
    const idx = decodeIndex(fs.readFileSync(path.join(idxDir, fs.readdirSync(idxDir)[0])))
    expect(idx.entries.some((e) => e.flags === FLAG_DEFLATE)).toBe(true)
    expect(idx.entries.some((e) => e.flags === 0)).toBe(true)
    const after1 = reg.blobBytes()
    // the 20 changed files' bytes: all the second push should add, besides its layer blob, index and config
    const changed = Array.from({length: 20}, (_, i) => i * 20 + 3)
    let newBytes = 0
    for (const i of changed) newBytes += fs.statSync(path.join(w, 'app', `d${i % 7}`, `e${i % 3}`, `f${i}.bin`)).size
    const p2 = pushJson(A, 'app', 'team/app:1')
    const grown = reg.blobBytes() - after1
    expect(p2.packs.reused).toBeGreaterThan(0)
    // only the new objects in new packs, plus metadata (a layer blob of ~410 entries, index, config: < 100 KiB)
    expect(grown).toBeGreaterThanOrEqual(newBytes)
    expect(grown).toBeLessThan(newBytes + (100 << 10))
    expect(grown).toBeLessThan(0.1 * after1)

    // pushing the same image again sends no blob
    const p3 = pushJson(A, 'app', 'team/app:1')
    expect(p3.blobs.uploaded).toBe(0)
    expect(p3.digest).toBe(p2.digest)

    const B = path.join(w, 'B')
    const r1 = pullJson(B, 'team/base:1')
    expect(r1.image).toBe('team_base:1')
    expect(r1.objects.fetched).toBe(r1.objects.total)
    const r2 = pullJson(B, 'team/app:1', ['--name', 'app'])
    // the second pull fetches only the objects the first one did not bring (the 20 changed files)
    expect(r2.objects.fetched).toBe(20)
    expect(checkoutListing(B, 'team_base:1', path.join(w, 'co-B-base'))).toBe(listings.get('base'))
    expect(checkoutListing(B, 'app', path.join(w, 'co-B-app'))).toBe(listings.get('app'))
    expect(imageRows(B, 'app')).toEqual(imageRows(A, 'app'))
    expect(veloJson(B, ['image', 'inspect', 'app']).layers).toEqual(veloJson(A, ['image', 'inspect', 'app']).layers)
    expect(veloJson(B, ['fsck']).problems).toEqual([])
    // each push and pull is in its store's event journal, with the reference and the manifest's digest
    const journal = (home: string) => fs.readFileSync(path.join(home, 'events.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((e) => e.action === 'push' || e.action === 'pull')
    expect(journal(A).map((e) => [e.action, e.name, e.attrs.ref, e.attrs.digest])).toEqual([
      ['push', 'base', `${reg.host}/team/base:1`, p1.digest],
      ['push', 'app', `${reg.host}/team/app:1`, p2.digest],
      ['push', 'app', `${reg.host}/team/app:1`, p3.digest],
    ])
    expect(journal(B).map((e) => [e.action, e.name, e.attrs.ref, e.attrs.digest])).toEqual([
      ['pull', 'team_base:1', r1.ref, r1.digest],
      ['pull', 'app', r2.ref, r2.digest],
    ])
  })

  it('extended attributes travel (v2 entries, _x object variants): an image imported with xattrs', async () => {
    // velo ingest keeps no xattrs; an image import does (PAX SCHILY.xattr records)
    const layer = await mkTar([
      {name: './', type: 'directory'},
      {name: './x', content: 'with xattrs\n', pax: {'SCHILY.xattr.user.app': 'registry', 'SCHILY.xattr.user.other': 'two'}},
      {name: './plain', content: 'with xattrs\n'}, // the same content without: another variant of one object
      {name: './d/', type: 'directory', pax: {'SCHILY.xattr.user.dir': 'yes'}},
    ])
    fs.writeFileSync(path.join(w, 'x.tar'), await dockerSaveLegacy([{tag: 'xattrs:1', layers: [layer]}]))
    veloJson(A, ['image', 'import', path.join(w, 'x.tar')])
    const want = JSON.stringify(imageRows(A, 'xattrs:1'))
    expect(want).toMatch(/user\.app=/)
    pushJson(A, 'xattrs:1', 'team/xattrs:1')
    const X = path.join(w, 'X')
    pullJson(X, 'team/xattrs:1', ['--name', 'xattrs:1'])
    expect(JSON.stringify(imageRows(X, 'xattrs:1'))).toBe(want)
    expect(veloJson(X, ['image', 'inspect', 'xattrs:1']).layers).toEqual(veloJson(A, ['image', 'inspect', 'xattrs:1']).layers)
    expect(veloJson(X, ['fsck']).problems).toEqual([])
  })

  it('says what is wrong: no credentials, wrong password, unknown tag, no CA, nothing listening', () => {
    const C = path.join(w, 'C')
    const noCred = velo(C, ['pull', `${reg.host}/team/base:1`, ...reg.flags, '--json'], {env: {VELO_REGISTRY_USERNAME: '', VELO_REGISTRY_PASSWORD: ''}})
    // empty env vars still count as given: use a clean environment instead
    const clean = velo(C, ['pull', `${reg.host}/team/base:1`, ...reg.flags, '--json'], {env: {DOCKER_CONFIG: path.join(w, 'no-docker-config')}})
    expect(clean.status).toBe(1)
    expect(JSON.parse(clean.stdout).error.code).toBe('AUTH')
    expect(JSON.parse(clean.stdout).error.suggestion).toMatch(/--username/)
    expect(noCred.status).toBe(1)
    const wrong = velo(C, ['pull', `${reg.host}/team/base:1`, ...reg.flags, '--username', 'velo', '--password-stdin', '--json'], {input: 'nope\n'})
    expect(JSON.parse(wrong.stdout).error.code).toBe('AUTH')
    // the password on stdin, and Docker's config.json (auths[HOST].auth, as `docker login` writes it)
    const stdin = veloJson(C, ['pull', `${reg.host}/team/base:1`, ...reg.flags, '--name', 'b1', '--username', reg.user!.username, '--password-stdin'], {input: reg.user!.password + '\n'})
    expect(stdin.image).toBe('b1')
    const dockerConfig = path.join(w, 'docker-config')
    fs.mkdirSync(dockerConfig, {recursive: true})
    fs.writeFileSync(path.join(dockerConfig, 'config.json'), JSON.stringify({auths: {[reg.host]: {auth: Buffer.from(`${reg.user!.username}:${reg.user!.password}`).toString('base64')}}}))
    expect(veloJson(C, ['pull', `${reg.host}/team/base:1`, ...reg.flags, '--name', 'b2'], {env: {DOCKER_CONFIG: dockerConfig}}).image).toBe('b2')
    fs.rmSync(C, {recursive: true, force: true})
    const unknown = velo(C, ['pull', `${reg.host}/team/base:nope`, ...reg.flags, '--json'], {env})
    expect(unknown.status).toBe(1)
    expect(JSON.parse(unknown.stdout).error.code).toBe('NOT_FOUND')
    const noCa = velo(C, ['pull', `${reg.host}/team/base:1`, '--json'], {env})
    expect(JSON.parse(noCa.stdout).error.code).toBe('UNREACHABLE')
    expect(JSON.parse(noCa.stdout).error.suggestion).toMatch(/--ca/)
    const plain = velo(C, ['pull', `${reg.host}/team/base:1`, '--insecure', '--json'], {env})
    expect(JSON.parse(plain.stdout).error.code).toBe('UNREACHABLE')
    const nobody = velo(C, ['pull', '127.0.0.1:9/team/base:1', '--insecure', '--json'], {env})
    expect(JSON.parse(nobody.stdout).error).toMatchObject({code: 'UNREACHABLE'})
    const notLoopback = velo(C, ['pull', '10.0.0.1:5000/team/base:1', '--insecure', '--json'], {env})
    expect(JSON.parse(notLoopback.stdout).error.code).toBe('USAGE')
    const noHost = velo(C, ['pull', 'team/base:1', '--json'], {env})
    expect(JSON.parse(noHost.stdout).error.code).toBe('USAGE')
    expect(fs.existsSync(path.join(C, 'db'))).toBe(false)
  })

  it('a tampered pack in the registry: INTEGRITY, no image, no unverified object, fsck clean', () => {
    const T = path.join(w, 'T')
    const m = veloJson(A, ['push', 'base', `${reg.host}/team/tamper:1`, ...reg.flags], {env})
    expect(m.blobs.uploaded + m.blobs.existed + m.blobs.mounted).toBeGreaterThan(0)
    // corrupt the middle of every pack the registry holds (all images in this registry are damaged now)
    const packs = [...reg.blobFiles().values()].filter((f) => fs.statSync(f).size > 4 << 20)
    expect(packs.length).toBeGreaterThan(0)
    const saved = packs.map((f) => [f, fs.readFileSync(f)] as const)
    try {
      for (const f of packs) {
        const fd = fs.openSync(f, 'r+')
        const size = fs.fstatSync(fd).size
        fs.writeSync(fd, Buffer.from('garbage!'), 0, 8, Math.floor(size / 2))
        fs.closeSync(fd)
      }
      const r = velo(T, ['pull', `${reg.host}/team/tamper:1`, ...reg.flags, '--json'], {env})
      expect(r.status).toBe(3)
      const e = JSON.parse(r.stdout).error
      expect(e.code).toBe('INTEGRITY')
      expect(e.message).toMatch(/digest mismatch/)
      expect(veloJson(T, ['image', 'ls'])).toEqual([])
      const f = veloJson(T, ['fsck'])
      expect(f.problems).toEqual([])
      // nothing in the store holds the garbage
      const tmp = fs.readdirSync(path.join(T, 'tmp'))
      expect(tmp).toEqual([])
    } finally {
      for (const [f, b] of saved) fs.writeFileSync(f, b)
    }
  })
})
