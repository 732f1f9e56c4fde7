import {execFileSync, spawn} from 'node:child_process'
import * as fs from 'node:fs'
import * as net from 'node:net'
import * as path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {rmrf, tmpDir, velo, VELO, veloJson} from '../helpers'
import {checkoutListing, makeTree} from './fixture'
import {Registry, startRegistry} from './registry'

/** Run the CLI without blocking this process (two pulls at once; a pull to kill). */
function veloAsync(home: string, args: string[]): {done: Promise<{status: number | null; stdout: string; stderr: string}>; pid: number; kill: () => void} {
  const p = spawn(VELO, args, {env: {...process.env, VELO_HOME: home}, stdio: ['ignore', 'pipe', 'pipe']})
  let stdout = ''
  let stderr = ''
  p.stdout.on('data', (c) => (stdout += c))
  p.stderr.on('data', (c) => (stderr += c))
  const done = new Promise<{status: number | null; stdout: string; stderr: string}>((resolve) => p.on('close', (status) => resolve({status, stdout, stderr})))
  return {done, pid: p.pid!, kill: () => p.kill('SIGKILL')}
}

function countObjects(home: string): number {
  const cas = path.join(home, 'cas', 'blake3')
  if (!fs.existsSync(cas)) return 0
  let n = 0
  for (const d of fs.readdirSync(cas)) n += fs.readdirSync(path.join(cas, d)).length
  return n
}

/**
 * Many hosts, one registry (plain HTTP on loopback): stores pulling at once, a pull killed and resumed, a
 * repository that mounts the packs another one has, and the registry's garbage collection after `velo registry
 * rm` keeping every image another tag still names.
 */
describe('velo push / pull: a fleet on one registry', () => {
  let reg: Registry
  let w: string
  let A: string
  const listings = new Map<string, string>()

  beforeAll(async () => {
    reg = await startRegistry()
    w = tmpDir('velo-fleet-')
    A = path.join(w, 'A')
    makeTree(path.join(w, 'base'), {files: 1200})
    makeTree(path.join(w, 'app'), {files: 1200, changed: new Set(Array.from({length: 60}, (_, i) => i * 20 + 1)), tag: 'app'})
    for (const n of ['base', 'app']) {
      veloJson(A, ['ingest', path.join(w, n), '--name', n])
      listings.set(n, checkoutListing(A, n, path.join(w, `co-A-${n}`)))
    }
    veloJson(A, ['push', 'base', `${reg.host}/fleet/base:1`, '--insecure'])
    veloJson(A, ['push', 'app', `${reg.host}/fleet/app:1`, '--insecure'])
  })
  afterAll(async () => {
    await reg?.stop()
    if (w) rmrf(w)
  })

  it('a second repository mounts the packs the first one has instead of uploading them', () => {
    const before = reg.blobBytes()
    const r = veloJson(A, ['push', 'app', `${reg.host}/other/app:1`, '--insecure'])
    expect(r.blobs.mounted).toBeGreaterThan(0)
    expect(r.packs.new).toBe(0)
    // nothing but the small documents of the new repository's own (identical) image: the layer blob is the same blob
    expect(reg.blobBytes() - before).toBe(0)
    expect(r.bytesSent).toBeLessThan(64 << 10)
  })

  it('a store that never talked to the registry reuses the packs under the repository\'s tags', () => {
    const F = path.join(w, 'F')
    veloJson(F, ['ingest', path.join(w, 'app'), '--name', 'app'])
    const before = reg.blobBytes()
    const r = veloJson(F, ['push', 'app', `${reg.host}/fleet/app:2`, '--insecure'])
    expect(r.packs.new).toBe(0)
    expect(r.packs.reused).toBe(r.packs.total)
    expect(reg.blobBytes() - before).toBeLessThan(8 << 10) // only the image's own config (createdAt differs)
  })

  it('an OCI image index: velo pull takes the linux/<this arch> image', async () => {
    const {RegistryClient} = await import('../../src/registry/client')
    const {getManifest} = await import('../../src/registry/pull')
    const {putManifest} = await import('../../src/registry/push')
    const {parseRef} = await import('../../src/registry/ref')
    const {hostGoArch} = await import('../../src/image/config')
    veloJson(A, ['push', 'base', `${reg.host}/fleet/plain:1`, '--oci', '--insecure'])
    veloJson(A, ['push', 'app', `${reg.host}/fleet/plain:other`, '--oci', '--insecure'])
    const client = new RegistryClient(reg.host, {insecure: true})
    try {
      const m = await getManifest(client, parseRef(`${reg.host}/fleet/plain:1`))
      const other = await getManifest(client, parseRef(`${reg.host}/fleet/plain:other`))
      const index = {
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: [
          {mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: other.digest, size: other.raw.length, platform: {os: 'linux', architecture: 'no-such-arch'}},
          {mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: m.digest, size: m.raw.length, platform: {os: 'linux', architecture: hostGoArch()}},
        ],
      }
      await putManifest(client, parseRef(`${reg.host}/fleet/plain:multi`), Buffer.from(JSON.stringify(index)), index.mediaType)
    } finally {
      client.close()
    }
    const G = path.join(w, 'G')
    const r = veloJson(G, ['pull', `${reg.host}/fleet/plain:multi`, '--insecure', '--name', 'base'])
    expect(r.format).toBe('oci')
    expect(checkoutListing(G, 'base', path.join(w, 'co-G'))).toBe(listings.get('base'))
  })

  it('one object of an image is one Range GET (what lazy images will do)', async () => {
    const {RegistryClient} = await import('../../src/registry/client')
    const {getManifest} = await import('../../src/registry/pull')
    const {getBlob} = await import('../../src/registry/blobs')
    const {decodeIndex} = await import('../../src/registry/packs')
    const {readObject} = await import('../../src/registry/lazy')
    const {parseRef} = await import('../../src/registry/ref')
    const {hashBuffer} = await import('../../src/store/cas')
    const client = new RegistryClient(reg.host, {insecure: true})
    try {
      const m = await getManifest(client, parseRef(`${reg.host}/fleet/app:1`))
      const d = m.value.layers.find((l: any) => l.mediaType === 'application/vnd.velo.pack-index.v1')
      const idx = decodeIndex(await getBlob(client, 'fleet/app', d.digest, 'index'))
      for (const f of ['d0/e0/f0.bin', 'd5/e2/f5.bin', 'd0/e1/f49.bin', 'same-a']) {
        const want = fs.readFileSync(path.join(w, 'app', f))
        const before = client.requests
        const got = await readObject(client, 'fleet/app', idx, hashBuffer(want), want.length)
        expect(client.requests - before).toBe(1)
        expect(got.equals(want)).toBe(true)
      }
      // the lazy fetcher's way: streamed into a store (received, inflated, hashed, written at once), linked only
      // when the bytes hash to the name; an object claimed at a size it does not have is refused and leaves nothing
      const {Store} = await import('../../src/store/cas')
      const {openObject} = await import('../../src/registry/lazy')
      const home = path.join(w, 'stream-home')
      const store = new Store(home).init()
      const meta = {mode: 0o644, uid: 0, gid: 0}
      const objects = () => execFileSync('find', [path.join(home, 'cas'), '-type', 'f'], {encoding: 'utf8'}).split('\n').filter(Boolean)
      for (const f of ['d0/e0/f0.bin', 'd5/e2/f5.bin', 'same-a']) {
        const want = fs.readFileSync(path.join(w, 'app', f))
        const before = client.requests
        await (await openObject(client, 'fleet/app', idx, hashBuffer(want), want.length)).store(store, meta)
        expect(client.requests - before).toBe(1)
        const file = objects().find((o) => path.basename(o).startsWith(`${hashBuffer(want)}_${want.length}_644_`))
        expect(file && fs.readFileSync(file).equals(want)).toBe(true)
      }
      const want = fs.readFileSync(path.join(w, 'app', 'd0/e1/f49.bin'))
      const n = objects().length
      await expect((await openObject(client, 'fleet/app', idx, hashBuffer(want), want.length - 1)).store(store, meta)).rejects.toThrow(/digest mismatch/)
      expect(objects().length).toBe(n)
      expect(fs.readdirSync(path.join(home, 'tmp'))).toEqual([])
    } finally {
      client.close()
    }
  })

  it('two hosts (two stores) pull from the registry at the same time', async () => {
    const B = path.join(w, 'B')
    const C = path.join(w, 'C')
    const [b, c] = await Promise.all([
      veloAsync(B, ['pull', `${reg.host}/fleet/app:1`, '--insecure', '--name', 'app', '--json']).done,
      veloAsync(C, ['pull', `${reg.host}/fleet/app:1`, '--insecure', '--name', 'app', '--json']).done,
    ])
    expect(b.status, b.stderr).toBe(0)
    expect(c.status, c.stderr).toBe(0)
    expect(checkoutListing(B, 'app', path.join(w, 'co-B'))).toBe(listings.get('app'))
    expect(checkoutListing(C, 'app', path.join(w, 'co-C'))).toBe(listings.get('app'))
  })

  it('a pull killed mid-way leaves a consistent store, and the rerun fetches only what is missing', async () => {
    const D = path.join(w, 'D')
    const p = veloAsync(D, ['pull', `${reg.host}/fleet/base:1`, '--insecure', '--name', 'base', '--json'])
    let killedAt = -1
    for (let i = 0; i < 3000; i++) {
      const n = countObjects(D)
      if (n > 50) {
        p.kill()
        killedAt = n
        break
      }
      await new Promise((r) => setTimeout(r, 5))
    }
    const first = await p.done
    expect(killedAt, `the pull ended before it could be killed: ${first.stderr}`).toBeGreaterThan(0)
    expect(first.status).toBe(null) // killed
    expect(veloJson(D, ['image', 'ls'])).toEqual([])
    expect(veloJson(D, ['fsck']).problems).toEqual([])
    const again = veloJson(D, ['pull', `${reg.host}/fleet/base:1`, '--insecure', '--name', 'base'])
    expect(again.objects.fetched).toBeLessThan(again.objects.total)
    expect(again.objects.fetched).toBeGreaterThan(0)
    expect(checkoutListing(D, 'base', path.join(w, 'co-D'))).toBe(listings.get('base'))
    expect(veloJson(D, ['fsck']).problems).toEqual([])
  })

  it('a connection cut in the middle of a range: the range is asked for once more and the pull completes', async () => {
    // a loopback proxy in front of the registry that cuts the first connection to carry more than 2 MiB
    let cut = 0
    const proxy = net.createServer((down) => {
      const up = net.connect(Number(reg.host.split(':')[1]), '127.0.0.1')
      let relayed = 0
      down.pipe(up)
      up.on('data', (c: Buffer) => {
        relayed += c.length
        if (cut === 0 && relayed > 2 << 20) {
          cut++
          down.destroy()
          up.destroy()
          return
        }
        down.write(c)
      })
      up.on('end', () => down.end())
      up.on('error', () => down.destroy())
      down.on('error', () => up.destroy())
    })
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', () => r()))
    try {
      const port = (proxy.address() as net.AddressInfo).port
      const H = path.join(w, 'H')
      const r = await veloAsync(H, ['pull', `127.0.0.1:${port}/fleet/app:1`, '--insecure', '--name', 'app', '--json']).done
      expect(r.status, r.stdout + r.stderr).toBe(0)
      expect(cut).toBe(1)
      const j = JSON.parse(r.stdout)
      expect(j.objects.fetched).toBe(j.objects.total)
      expect(checkoutListing(H, 'app', path.join(w, 'co-H'))).toBe(listings.get('app'))
    } finally {
      proxy.close()
    }
  })

  it("the registry's gc after velo registry rm keeps every other image whole", async () => {
    const before = reg.blobBytes()
    const rm = veloJson(A, ['registry', 'rm', `${reg.host}/fleet/base:1`, '--insecure'])
    expect(rm.digest).toMatch(/^sha256:/)
    await reg.gc()
    // base's own layer blob, index and config went; its packs stay (app's manifest lists them: app reuses them)
    expect(reg.blobBytes()).toBeLessThan(before)
    const gone = velo(A, ['pull', `${reg.host}/fleet/base:1`, '--insecure', '--json'])
    expect(JSON.parse(gone.stdout).error.code).toBe('NOT_FOUND')
    for (const repo of ['fleet/app:1', 'other/app:1']) {
      const E = path.join(w, `E-${repo.replace(/\W/g, '_')}`)
      veloJson(E, ['pull', `${reg.host}/${repo}`, '--insecure', '--name', 'app'])
      expect(checkoutListing(E, 'app', path.join(E, '..', `co-${path.basename(E)}`))).toBe(listings.get('app'))
    }
  })
})
