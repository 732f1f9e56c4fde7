import {spawn, spawnSync} from 'node:child_process'
import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {rmrf, tmpDir, velo, veloJson} from '../helpers'
import {makeTree} from '../registry/fixture'
import {Registry, startRegistry} from '../registry/registry'

/** CAS objects (files) in a store. */
function casObjects(home: string): Set<string> {
  const cas = path.join(home, 'cas', 'blake3')
  const out = new Set<string>()
  if (!fs.existsSync(cas)) return out
  for (const d of fs.readdirSync(cas)) for (const n of fs.readdirSync(path.join(cas, d))) out.add(n)
  return out
}

/** Every regular file under DIR: relative path → sha256 of its bytes. */
function contents(dir: string): Map<string, string> {
  const out = new Map<string, string>()
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, {withFileTypes: true})) {
      const p = path.join(d, e.name)
      if (e.isDirectory()) walk(p)
      else if (e.isFile()) out.set(path.relative(dir, p), crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex'))
    }
  }
  walk(dir)
  return out
}

/** test/lazy/proxy.mjs as a child process (see there); gone after close(). */
async function startProxy(target: number): Promise<{port: number; mode(m: 'pass' | 'stall' | 'cut' | 'down' | 'whole'): Promise<void>; close(): void}> {
  const p = spawn(process.execPath, [path.join(__dirname, 'proxy.mjs'), String(target)], {stdio: ['pipe', 'pipe', 'inherit']})
  const lines: string[] = []
  const waiters: Array<() => void> = []
  let buf = ''
  p.stdout!.on('data', (d) => {
    buf += d
    let i
    while ((i = buf.indexOf('\n')) >= 0) {
      lines.push(buf.slice(0, i))
      buf = buf.slice(i + 1)
      waiters.splice(0).forEach((f) => f())
    }
  })
  const next = async (): Promise<string> => {
    while (lines.length === 0) await new Promise<void>((r) => waiters.push(r))
    return lines.shift()!
  }
  const port = Number((await next()).split(' ')[1])
  return {
    port,
    async mode(m) {
      p.stdin!.write(`${m}\n`)
      expect(await next()).toBe(`ok ${m}`)
    },
    close() {
      p.kill('SIGKILL')
    },
  }
}

describe('lazy images: metadata first, file contents on first read through FUSE', () => {
  let reg: Registry
  let w: string
  const mounts: Array<{home: string; dir: string}> = []
  const tree = () => path.join(w, 'tree')
  let ref: string

  beforeAll(async () => {
    reg = await startRegistry()
    w = tmpDir('velo-lazy-')
    makeTree(tree(), {files: 400})
    const A = path.join(w, 'A')
    veloJson(A, ['ingest', tree(), '--name', 'app'])
    ref = `${reg.host}/lazy/app:1`
    veloJson(A, ['push', 'app', ref, '--insecure'])
    makeTree(path.join(w, 'tree2'), {files: 40, changed: new Set(Array.from({length: 40}, (_, i) => i)), tag: 'other'})
    veloJson(A, ['ingest', path.join(w, 'tree2'), '--name', 'other'])
    veloJson(A, ['push', 'other', `${reg.host}/lazy/other:1`, '--insecure'])
  })
  afterAll(async () => {
    for (const m of mounts) velo(m.home, ['umount', m.dir, '--lazy'])
    await reg?.stop()
    if (w) rmrf(w)
  })

  function mount(home: string, image: string, env: Record<string, string> = {}): string {
    const dir = fs.mkdtempSync(path.join(w, 'mnt-'))
    veloJson(home, ['mount', image, dir], {env})
    mounts.push({home, dir})
    return dir
  }

  it('pull --lazy fetches the metadata only; find, ls -lR and stat fetch no object; fsck is clean', () => {
    const B = path.join(w, 'B')
    const p = veloJson(B, ['pull', ref, '--insecure', '--lazy'])
    expect(p.lazy).toBe(true)
    expect(p.objects.fetched).toBe(0)
    expect(p.objects.total).toBeGreaterThan(400)
    expect(casObjects(B).size).toBe(0)
    const f = veloJson(B, ['fsck'])
    expect(f.problems).toEqual([])
    expect(f.remoteObjects).toBe(p.objects.total)

    const dir = mount(B, 'lazy_app:1')
    const find = spawnSync('find', [dir], {encoding: 'utf8'})
    expect(find.status).toBe(0)
    expect(find.stdout.trim().split('\n').length).toBe(spawnSync('find', [tree()], {encoding: 'utf8'}).stdout.trim().split('\n').length)
    expect(spawnSync('ls', ['-lR', dir]).status).toBe(0)
    expect(spawnSync('sh', ['-c', `find "${dir}" -exec stat {} + >/dev/null`]).status).toBe(0)
    expect(fs.statSync(path.join(dir, 'd3/e1/f10.bin')).size).toBe(fs.statSync(path.join(tree(), 'd3/e1/f10.bin')).size)
    expect(casObjects(B).size).toBe(0)

    // one read fetches exactly that file's object, and the bytes are the pushed ones
    const one = 'd3/e1/f10.bin'
    expect(fs.readFileSync(path.join(dir, one)).equals(fs.readFileSync(path.join(tree(), one)))).toBe(true)
    expect(casObjects(B).size).toBe(1)
    // read again: served from the store (still one object)
    expect(fs.readFileSync(path.join(dir, one)).equals(fs.readFileSync(path.join(tree(), one)))).toBe(true)
    expect(casObjects(B).size).toBe(1)
    const f2 = veloJson(B, ['fsck'])
    expect(f2.problems).toEqual([])
    expect(f2.remoteObjects).toBe(p.objects.total - 1)
  })

  it('reading every file gives the bytes of a full pull; fsck clean; pull --all-objects completes the image', () => {
    const B = path.join(w, 'B')
    const dir = mounts.find((m) => m.home === B)!.dir
    const C = path.join(w, 'C')
    veloJson(C, ['pull', ref, '--insecure'])
    const full = path.join(w, 'co-C')
    expect(velo(C, ['image', 'checkout', 'lazy_app:1', full]).status).toBe(0)
    const want = contents(full)
    // half the files through the mount
    const names = [...want.keys()].sort().filter((_, i) => i % 2 === 0)
    for (const n of names) expect(crypto.createHash('sha256').update(fs.readFileSync(path.join(dir, n))).digest('hex')).toBe(want.get(n))
    expect(veloJson(B, ['fsck']).problems).toEqual([])
    // the rest by --all-objects, named by the local image
    const all = veloJson(B, ['pull', 'lazy_app:1', '--all-objects'])
    expect(all.lazy).toBeUndefined()
    expect(all.objects.fetched).toBeGreaterThan(0)
    expect(all.objects.fetched).toBeLessThan(all.objects.total)
    const f = veloJson(B, ['fsck'])
    expect(f.problems).toEqual([])
    expect(f.remoteObjects).toBe(0)
    expect(casObjects(B)).toEqual(casObjects(C))
    for (const [n, h] of want) expect(crypto.createHash('sha256').update(fs.readFileSync(path.join(dir, n))).digest('hex')).toBe(h)
    expect(fs.existsSync(path.join(B, 'remote', 'lazy', 'lazy_app:1.json'))).toBe(false)
    // a lazy pull of an image this store has whole keeps it whole (no lazy record: nothing of it is a cache)
    const again = veloJson(C, ['pull', ref, '--insecure', '--lazy'])
    expect(again.objects.present).toBe(again.objects.total)
    expect(fs.existsSync(path.join(C, 'remote', 'lazy', 'lazy_app:1.json'))).toBe(false)
  })

  it('velo mount REF DIR --lazy pulls the metadata and mounts in one step', () => {
    const D = path.join(w, 'D')
    const dir = fs.mkdtempSync(path.join(w, 'mnt-'))
    const r = veloJson(D, ['mount', ref, dir, '--lazy', '--insecure'])
    mounts.push({home: D, dir})
    expect(r.lazy).toBe(true)
    expect(r.image).toBe('lazy_app:1')
    expect(casObjects(D).size).toBe(0)
    expect(fs.readFileSync(path.join(dir, 'same-b'), 'utf8')).toBe('same content\n')
    expect(casObjects(D).size).toBe(1)
  })

  it('the cache cap: objects of lazy images not in use are evicted, least recently used first; those of a mounted image are kept', () => {
    const F = path.join(w, 'F')
    veloJson(F, ['pull', ref, '--insecure', '--lazy'])
    veloJson(F, ['pull', `${reg.host}/lazy/other:1`, '--insecure', '--lazy'])
    const appDir = mount(F, 'lazy_app:1')
    const files = ['d0/e0/f21.bin', 'd1/e1/f22.bin', 'd2/e2/f23.bin', 'd3/e0/f24.bin']
    for (const f of files) fs.readFileSync(path.join(appDir, f))
    const appObjects = casObjects(F)
    expect(appObjects.size).toBe(files.length)
    expect(velo(F, ['umount', appDir]).status).toBe(0)
    mounts.splice(mounts.findIndex((m) => m.dir === appDir), 1)

    // another lazy image mounted with a cap of 1 KiB: app's objects (its image not in use) go
    const otherDir = mount(F, 'lazy_other:1', {VELO_LAZY_CACHE_MAX: '1k'})
    const one = 'd1/e1/f1.bin'
    expect(fs.readFileSync(path.join(otherDir, one)).equals(fs.readFileSync(path.join(w, 'tree2', one)))).toBe(true)
    const left = casObjects(F)
    for (const o of appObjects) expect(left.has(o)).toBe(false)
    // the mounted image's object stays, over the cap (in use)
    expect(left.size).toBe(1)
    expect(fs.readFileSync(path.join(otherDir, one)).equals(fs.readFileSync(path.join(w, 'tree2', one)))).toBe(true)
    const f = veloJson(F, ['fsck'])
    expect(f.problems).toEqual([])
    // evicted objects come back on the next read
    const again = mount(F, 'lazy_app:1')
    expect(fs.readFileSync(path.join(again, files[0])).equals(fs.readFileSync(path.join(tree(), files[0])))).toBe(true)
  })

  it('a store removed and made again at the same path while its old lazy mount still drains: the new mount reads, the old fetcher leaves its socket alone', async () => {
    // a CI job's VELO_HOME wiped and made again while a process still sat in the old mount: the old daemon and its
    // fetcher end only when that process leaves, after the new mount's fetcher listens on the same socket path
    const E = path.join(w, 'rewiped')
    const dir = path.join(w, 'mnt-rewiped')
    fs.mkdirSync(dir)
    const old = veloJson(E, ['mount', ref, dir, '--lazy', '--insecure'])
    const holder = spawn('sleep', ['600'], {cwd: dir, stdio: 'ignore'})
    let remounted = false
    try {
      expect(fs.readFileSync(path.join(dir, 'd2/e0/f30.bin')).equals(fs.readFileSync(path.join(tree(), 'd2/e0/f30.bin')))).toBe(true)
      const children = (ppid: number) =>
        fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p) && (() => {
          try {
            return Number(fs.readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1].split(' ')[1]) === ppid
          } catch {
            return false
          }
        })()).map(Number)
      const oldFetcher = children(old.pid)
      expect(oldFetcher).toHaveLength(1)
      // busy: detached lazily, the old daemon serves the sleeper on
      expect(velo(E, ['umount', dir, '--lazy']).status).toBe(0)
      rmrf(E)
      veloJson(E, ['mount', ref, dir, '--lazy', '--insecure'], {env: {VELO_LAZY_TIMEOUT: '10'}})
      mounts.push({home: E, dir})
      remounted = true
      // the new mount's fetcher listens first (its log says so), then the old daemon's last user leaves
      const logs = () => fs.readdirSync(path.join(E, 'mounts')).filter((n) => n.endsWith('.log')).map((n) => fs.readFileSync(path.join(E, 'mounts', n), 'utf8')).join('')
      for (let i = 0; i < 200 && !/serving /.test(logs()); i++) await new Promise((r) => setTimeout(r, 50))
      expect(logs()).toMatch(/serving /)
      holder.kill('SIGKILL')
      for (let i = 0; i < 200 && fs.existsSync(`/proc/${oldFetcher[0]}`); i++) await new Promise((r) => setTimeout(r, 50))
      expect(fs.existsSync(`/proc/${oldFetcher[0]}`)).toBe(false)
      // a file nobody read yet: fetched through the new mount's fetcher
      const two = 'd3/e1/f31.bin'
      expect(fs.readFileSync(path.join(dir, two)).equals(fs.readFileSync(path.join(tree(), two)))).toBe(true)
    } finally {
      holder.kill('SIGKILL')
      if (!remounted) velo(E, ['umount', dir, '--lazy'])
    }
  })

  it('registry stalled, down, or cut mid-read: the reader gets EIO within the timeout, a log line names the object, and reads work again once it is back', async () => {
    const proxy = await startProxy(Number(reg.host.split(':')[1]))
    try {
      const E = path.join(w, 'E')
      const pref = `127.0.0.1:${proxy.port}/lazy/app:1`
      veloJson(E, ['pull', pref, '--insecure', '--lazy'])
      const dir = mount(E, 'lazy_app:1', {VELO_LAZY_TIMEOUT: '2'})
      const rec = veloJson(E, ['mount']).find((m: any) => m.dir === dir)
      expect(rec).toBeTruthy()
      const log = fs.readdirSync(path.join(E, 'mounts')).filter((n) => n.endsWith('.log')).map((n) => path.join(E, 'mounts', n))[0]
      const cat = (rel: string) => spawnSync('cat', [path.join(dir, rel)], {encoding: 'buffer', timeout: 60_000, killSignal: 'SIGKILL', maxBuffer: 16 << 20})

      for (const [mode, file] of [
        ['stall', 'd1/e1/f1.bin'],
        ['cut', 'd4/e1/f4.bin'],
        ['down', 'd2/e2/f2.bin'],
      ] as const) {
        await proxy.mode(mode)
        const r = cat(file)
        expect(r.signal).toBeNull() // ended by itself (the 60 s kill is only a guard against a hang)
        expect(r.status).not.toBe(0)
        expect(String(r.stderr)).toMatch(/Input\/output error/)
        const name = [...fs.readFileSync(log, 'utf8').matchAll(/lazy fetch of object (\S+)/g)].map((m) => m[1]).pop()
        expect(name).toBeDefined()
        expect(name!.slice(0, 64)).toBe(spawnSync('b3sum', ['--no-mmap', path.join(tree(), file)], {encoding: 'utf8'}).stdout.slice(0, 64))
      }
      // nothing half-written; the store is consistent
      expect(veloJson(E, ['fsck']).problems).toEqual([])
      // back: the same file reads, identical
      await proxy.mode('pass')
      const ok = cat('d2/e2/f2.bin')
      expect(ok.status).toBe(0)
      expect(ok.stdout.equals(fs.readFileSync(path.join(tree(), 'd2/e2/f2.bin')))).toBe(true)
      // a registry that ignores Range (200, the whole pack): the object is cut out of it, verified, and read
      await proxy.mode('whole')
      for (const f of ['d3/e0/f3.bin', 'd5/e2/f5.bin', 'd0/e1/f49.bin']) { // raw, deflated, 1 MiB
        const whole = cat(f)
        expect(whole.status, String(whole.stderr)).toBe(0)
        expect(whole.stdout.equals(fs.readFileSync(path.join(tree(), f)))).toBe(true)
      }
      expect(fs.readdirSync(path.join(E, 'tmp'))).toEqual([])
    } finally {
      proxy.close()
    }
  })
})
