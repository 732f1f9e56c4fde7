import {spawnSync} from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {rmrf, tmpDir, velo, veloJson} from '../helpers'
import {bytes} from '../registry/fixture'
import {Registry, startRegistry} from '../registry/registry'
import {SandboxHome, uniq} from '../sandbox/fixture'

function casObjects(home: string): number {
  const cas = path.join(home, 'cas', 'blake3')
  let n = 0
  if (fs.existsSync(cas)) for (const d of fs.readdirSync(cas)) n += fs.readdirSync(path.join(cas, d)).length
  return n
}

/**
 * An express-like package tree in ROOT/app: node_modules/express requires 40 modules of its own; beside it
 * 30 other packages nobody requires (JS files and a few MiB of data each), so the image is mostly bytes a
 * start-up never reads.
 */
function makeApp(root: string): void {
  const em = path.join(root, 'app', 'node_modules', 'express')
  fs.mkdirSync(path.join(em, 'lib'), {recursive: true})
  const libs = Array.from({length: 40}, (_, i) => `./lib/m${i}.js`)
  fs.writeFileSync(path.join(em, 'package.json'), JSON.stringify({name: 'express', version: '4.0.0-test', main: 'index.js'}))
  fs.writeFileSync(path.join(em, 'index.js'), `const parts = [${libs.map((l) => `require(${JSON.stringify(l)})`).join(', ')}]\nmodule.exports = () => parts.reduce((a, f) => a + f(), 0)\n`)
  libs.forEach((_, i) => fs.writeFileSync(path.join(em, 'lib', `m${i}.js`), `// module ${i}\n${'/* padding */\n'.repeat(50 + i)}module.exports = () => ${i}\n`))
  for (let p = 0; p < 30; p++) {
    const d = path.join(root, 'app', 'node_modules', `pkg${p}`)
    fs.mkdirSync(path.join(d, 'lib'), {recursive: true})
    fs.writeFileSync(path.join(d, 'index.js'), `module.exports = ${p}\n`)
    for (let f = 0; f < 60; f++) fs.writeFileSync(path.join(d, 'lib', `f${f}.js`), bytes(`pkg${p}/${f}`, 2000 + f * 37))
    fs.writeFileSync(path.join(d, 'data.bin'), bytes(`pkg${p}/data`, 3 << 20))
  }
}

describe('a lazy sandbox: sandbox create --image REF --lazy', () => {
  let reg: Registry
  let w: string
  let sb: SandboxHome | undefined
  let ref: string
  let src: string

  beforeAll(async () => {
    reg = await startRegistry()
    w = tmpDir('velo-lazy-sb-')
    fs.chmodSync(w, 0o755) // the profile's tenant (its own user namespace) reaches store A inside it
    const rootfs = path.join(w, 'rootfs')
    const b = spawnSync('bash', [path.join(__dirname, '..', '..', 'rootfs', 'build.sh'), rootfs], {encoding: 'utf8'})
    if (b.status !== 0) throw new Error(b.stderr)
    makeApp(rootfs)
    const A = path.join(w, 'A')
    veloJson(A, ['ingest', rootfs, '--name', 'app'])
    ref = `${reg.host}/lazy/node-app:1`
    veloJson(A, ['push', 'app', ref, '--insecure'])
    rmrf(rootfs)
    src = A
  }, 300_000)
  afterAll(async () => {
    if (sb) {
      const left = sb.cleanup()
      expect(left).toEqual({mounts: [], cgroups: [], tenants: []})
    }
    await reg?.stop()
    if (w) rmrf(w)
  })

  it('runs node requiring a package tree while fetching only what it reads; find / fetches nothing', () => {
    sb = new SandboxHome()
    const n = uniq('lazy')
    sb.track(n)
    const c = sb.json(['sandbox', 'create', n, '--image', ref, '--lazy', '--insecure'])
    expect(c.image).toBe('lazy_node-app:1')
    const total = veloJson(sb.home, ['fsck']).remoteObjects as number
    expect(total).toBeGreaterThan(1900)
    const before = casObjects(sb.home)

    const r = sb.exec(n, ['node', '-e', "console.log(require('/app/node_modules/express')())"])
    expect(r.stderr).toBe('')
    expect(r.stdout).toBe(`${(39 * 40) / 2}\n`)
    const afterRun = casObjects(sb.home)
    // node, its libraries, express's 42 files: a small part of the image's objects
    expect(afterRun - before).toBeGreaterThanOrEqual(42)
    expect(afterRun).toBeLessThan(total / 10)

    // the shell (busybox) is a file the next command reads: fetched by this first call
    expect(sb.sh(n, 'true').status).toBe(0)
    const withShell = casObjects(sb.home)
    expect(withShell).toBe(afterRun + 1)
    // metadata only (ls -l would read /etc/passwd for owner names: file contents)
    const f = sb.sh(n, 'find / -xdev | wc -l; ls -R /app >/dev/null; stat -c %s /app/node_modules/pkg3/data.bin >/dev/null && echo ok')
    expect(f.status).toBe(0)
    expect(Number(f.stdout.split('\n')[0])).toBeGreaterThan(2000)
    expect(f.stdout).toMatch(/ok\n$/)
    expect(casObjects(sb.home)).toBe(withShell)
    expect(veloJson(sb.home, ['fsck']).problems).toEqual([])
  })

  it('velo image profile records what a start-up reads; the push packs it first; a lazy create fetches it in a few range requests, and the command then fetches nothing', () => {
    const cmd = ['node', '-e', "console.log(require('/app/node_modules/express')())"]
    const pr = velo(src, ['image', 'profile', 'app', '--json', '--', ...cmd])
    expect(pr.stderr).toBe('')
    // the command's own output first (it runs attached), then the report
    expect(pr.stdout.startsWith(`${(39 * 40) / 2}\n`)).toBe(true)
    const p = JSON.parse(pr.stdout.slice(pr.stdout.indexOf('{')))
    expect(p.exitCode).toBe(0)
    expect(p.objects).toBeGreaterThanOrEqual(42) // node, its libraries, express's files
    const ref2 = `${reg.host}/lazy/node-app:2`
    const push = veloJson(src, ['push', 'app', ref2, '--insecure'])
    expect(push.prefetch).toBe(p.objects)

    const P = path.join(w, 'P')
    const pull = veloJson(P, ['pull', ref2, '--insecure', '--lazy'])
    expect(pull.objects.fetched).toBe(p.objects)
    // manifest, config, layer blob, index: the rest are range requests over the profile's packed bytes
    expect(pull.requests - 4).toBeLessThanOrEqual(Math.ceil(p.bytes / (16 << 20)) + 1)
    expect(pull.requests - 4).toBeLessThan(p.objects)

    const sb2 = new SandboxHome([], path.join(w, 'Q'))
    try {
      const n = uniq('pf')
      sb2.track(n)
      sb2.json(['sandbox', 'create', n, '--image', ref2, '--lazy', '--insecure'])
      const before = casObjects(sb2.home)
      expect(before).toBe(p.objects)
      const r = sb2.exec(n, cmd)
      expect(r.stdout).toBe(`${(39 * 40) / 2}\n`)
      expect(casObjects(sb2.home)).toBe(before)
    } finally {
      expect(sb2.cleanup()).toEqual({mounts: [], cgroups: [], tenants: []})
    }
  })
})
