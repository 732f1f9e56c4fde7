import {execFileSync, spawn} from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {afterAll, describe, expect, it} from 'vitest'
import {rmrf, tmpDir} from '../helpers'
import {SandboxHome, uniq} from '../sandbox/fixture'

// Cold objects (src/store/cold.ts, native/ingest/velo-cold.c): objects only volume snapshots name, linked by no
// farm, kept zstd-compressed by `velo gc`; every reader makes them plain again first. Real files, real zstd.
describe('cold objects of volume snapshots', () => {
  const sb = new SandboxHome()
  const work = tmpDir('velo-cold-')
  afterAll(() => {
    try {
      execFileSync('umount', [path.join(work, 'mnt')], {stdio: 'ignore'})
    } catch {}
    rmrf(work)
    expect(sb.cleanup()).toEqual({mounts: [], cgroups: [], tenants: []})
  })
  const ok = (args: string[]) => {
    const r = sb.velo(args)
    expect(r.status, `${args.join(' ')}: ${r.stderr}`).toBe(0)
    return r
  }
  const sh = (cmd: string) => execFileSync('bash', ['-c', cmd], {encoding: 'utf8'})
  /** every file under DIR: path, type, mode, owner, size and sha256 (what a reader must get back) */
  const listing = (dir: string) =>
    sh(`cd ${dir} && find . -path ./.snapshots -prune -o -printf '%p %y %m %U:%G %s\\n' | sort && find . -path ./.snapshots -prune -o -type f -print0 | sort -z | xargs -0r sha256sum`)
  const cas = () => path.join(sb.home, 'cas', 'blake3')
  const coldFiles = () => sh(`find ${cas()} -name '*.zst' | wc -l`).trim()
  const frozenOf = (name: string) => fs.existsSync(path.join(cas(), name.slice(0, 2), name + '.zst'))

  /** a volume with compressible files (one setuid, one of uid 1000), a random one, a small one and one with an xattr */
  function fill(V: string): string {
    ok(['volume', 'create', V])
    const data = sb.json(['volume', 'inspect', V]).dir
    sh(`cd ${data} && seq 1 300000 > big && mkdir d && seq 5 400000 > d/tool && chmod 4755 d/tool && seq 9 99999 > d/mine && chown 1000:1000 d/mine && head -c 65536 /dev/urandom > rand && echo small > small && seq 1 90000 > x && setfattr -n user.k -v v x`)
    return data
  }

  it('gc compresses the cold ones; checkout, restore, a mount and fsck get every byte back; status counts them', () => {
    const V = uniq('cold')
    const data = fill(V)
    ok(['volume', 'snapshot', V, 's1'])
    const s1 = listing(data)
    sh(`cd ${data} && echo more >> big && rm small`)
    ok(['volume', 'snapshot', V, 's2'])
    const s2 = listing(data)

    const gc = sb.json(['gc'])
    // big (twice), d/tool, d/mine: compressible; rand gains nothing, small is one block, x has an xattr
    expect(gc).toMatchObject({frozenObjects: 4, removedObjects: 0})
    expect(gc.frozenStoredBytes).toBeLessThan(gc.frozenBytes / 3)
    expect(coldFiles()).toBe('4')
    const st = sb.json(['status'])
    expect(st.compressed).toMatchObject({objects: 4, logicalBytes: gc.frozenBytes, storedBytes: gc.frozenStoredBytes})
    expect(st.storedBytes).toBeLessThan(st.physicalBytes)
    expect(sb.velo(['status']).stdout).toMatch(/4 cold objects compressed/)
    const metrics = sb.velo(['metrics']).stdout
    expect(metrics).toMatch(/^velo_store_compressed_objects 4$/m)
    expect(metrics).toMatch(new RegExp(`^velo_store_compressed_stored_bytes ${gc.frozenStoredBytes}$`, 'm'))
    const fsck = sb.json(['fsck'])
    expect(fsck.problems).toEqual([])

    // a checkout of the snapshot: the same files; what it read is plain again (no gc ran since)
    const out = path.join(work, 'co1')
    ok(['image', 'checkout', `volume:${V}:s1`, out])
    expect(listing(out)).toBe(s1)
    expect(coldFiles()).toBe('1') // what only s2 names (its big) stays cold

    // cold again, then a restore in place to s1, and a mount that shows both snapshots
    expect(sb.json(['gc']).frozenObjects).toBe(3)
    ok(['volume', 'restore', V, 's1'])
    expect(listing(data)).toBe(s1)
    const mnt = path.join(work, 'mnt')
    fs.mkdirSync(mnt)
    ok(['volume', 'mount', V, mnt])
    try {
      expect(listing(path.join(mnt, '.snapshots', 's2'))).toBe(s2.replace(/\.\/\.snapshots.*\n/g, ''))
      // farms bound by a mount are in use: gc keeps their objects hot
      expect(sb.json(['gc']).frozenObjects).toBe(0)
      expect(coldFiles()).toBe('0')
    } finally {
      ok(['volume', 'umount', mnt])
    }
    // unmounted: the snapshots' farms are a cache again, dropped, and their objects go cold
    const again = sb.json(['gc'])
    expect(again.coldFarms).toBe(2)
    expect(again.frozenObjects).toBe(4)
    expect(sb.json(['fsck']).problems).toEqual([])
    ok(['volume', 'rm', V]) // its snapshots go with it
    expect(sb.json(['gc']).removedObjects).toBe(7) // big twice, d/tool, d/mine, rand, small, x
    expect(coldFiles()).toBe('0')
    expect(fs.existsSync(path.join(sb.home, 'cold'))).toBe(false)
  })

  it('the snapshots of a volume a sandbox names, running or stopped, stay plain', () => {
    const V = uniq('cuse')
    fill(V)
    ok(['volume', 'snapshot', V, 's1'])
    const T = uniq('cut')
    sb.track(T)
    ok(['sandbox', 'create', T, '-v', `${V}:/d`])
    expect(sb.json(['gc']).frozenObjects).toBe(0) // running: its .snapshots/s1 is bound
    ok(['sandbox', 'stop', '-t', '1', T])
    expect(sb.json(['gc']).frozenObjects).toBe(0) // stopped: a start binds it again
    expect(sb.exec(T, ['true']).status).not.toBe(0)
    ok(['sandbox', 'start', T])
    expect(sb.exec(T, ['sh', '-c', 'cmp /d/big /d/.snapshots/s1/big && echo same']).stdout).toBe('same\n')
    ok(['sandbox', 'rm', '-f', T])
    expect(sb.json(['gc']).frozenObjects).toBe(3)
    ok(['volume', 'rm', V])
    sb.json(['gc'])
  })

  it('a damaged compressed object: fsck names it and its paths; a restore refuses it and leaves the volume as it was', () => {
    const V = uniq('cdmg')
    const data = fill(V)
    ok(['volume', 'snapshot', V, 's1'])
    sh(`cd ${data} && echo changed > big`)
    const before = listing(data)
    expect(sb.json(['gc']).frozenObjects).toBe(3)
    const zst = sh(`find ${cas()} -name '*.zst' -size +20k | head -1`).trim()
    const name = path.basename(zst, '.zst')
    const fd = fs.openSync(zst, 'r+')
    fs.writeSync(fd, Buffer.from('XXXX'), 0, 4, 2000)
    fs.closeSync(fd)
    const fsck = sb.velo(['fsck', '--json'])
    expect(fsck.status).not.toBe(0)
    const report = JSON.parse(fsck.stdout)
    expect(report.problems).toEqual([expect.objectContaining({kind: 'bad-object', object: name, image: `volume:${V}:s1`})])
    const r = sb.velo(['volume', 'restore', V, 's1'])
    expect(r.status).not.toBe(0)
    expect(r.stderr).toMatch(/INTEGRITY.*damaged/)
    expect(r.stderr).not.toMatch(/bug in velo/i)
    expect(listing(data)).toBe(before)
    expect(frozenOf(name)).toBe(true)
    ok(['volume', 'rm', V])
    sb.json(['gc'])
  })

  it('a plain file left beside its .zst (a thaw cut short by a power loss) is kept only when it reads as its name says', () => {
    const V = uniq('cpair')
    const data = fill(V)
    ok(['volume', 'snapshot', V, 's1'])
    const s1 = listing(data)
    expect(sb.json(['gc']).frozenObjects).toBe(3)
    const zst = sh(`find ${cas()} -name '*.zst' | head -1`).trim()
    const plain = zst.slice(0, -'.zst'.length)
    fs.writeFileSync(plain, '') // linked, its data never written: what the thaw's syncfs is there to prevent
    sb.json(['gc'])
    expect(fs.existsSync(zst)).toBe(true)
    expect(fs.existsSync(plain)).toBe(false)
    expect(sb.json(['fsck']).problems).toEqual([])
    const out = path.join(work, 'pair')
    ok(['image', 'checkout', `volume:${V}:s1`, out])
    expect(listing(out)).toBe(s1)
    ok(['volume', 'rm', V])
    sb.json(['gc'])
  })

  it('a large file changed in place: each version kept as content-defined chunks, the second costing its changed chunks; both read back; chunks no version names go; a damaged chunk is named and refused', () => {
    const V = uniq('cdc')
    ok(['volume', 'create', V])
    const data = sb.json(['volume', 'inspect', V]).dir
    // 24 MiB: half compressible text, half random (a database file, say)
    sh(`cd ${data} && (seq 1 1500000; head -c 12M /dev/urandom) > db.img && head -c 20000 /dev/urandom > small`)
    ok(['volume', 'snapshot', V, 's1'])
    const s1 = listing(data)
    const g1 = sb.json(['gc'])
    expect(g1).toMatchObject({chunkedObjects: 1})
    expect(g1.newChunks).toBeGreaterThan(100) // 24 MiB in chunks of 16-256 KiB (64 KiB on average)
    const stored1 = sb.json(['status']).storedBytes
    // 1 MiB rewritten in place, in the random half
    sh(`dd if=/dev/urandom of=${data}/db.img bs=1M count=1 seek=16 conv=notrunc status=none`)
    ok(['volume', 'snapshot', V, 's2'])
    const s2 = listing(data)
    const g2 = sb.json(['gc'])
    expect(g2).toMatchObject({chunkedObjects: 1}) // s2's db.img (s1's was chunked already)
    expect(g2.newChunks).toBeLessThan(30)
    const st = sb.json(['status'])
    // the store grew by about the changed MiB (random: stored as is), not by another 24 MiB
    expect(st.storedBytes - stored1).toBeGreaterThan(2 ** 20)
    expect(st.storedBytes - stored1).toBeLessThan(2 * 2 ** 20)
    expect(st.chunked).toMatchObject({objects: 2, logicalBytes: 2 * fs.statSync(path.join(data, 'db.img')).size})
    expect(sb.velo(['metrics']).stdout).toMatch(/^velo_store_chunked_objects 2$/m)
    expect(sb.json(['fsck']).problems).toEqual([])
    for (const [snap, want] of [['s1', s1], ['s2', s2]]) {
      const out = path.join(work, `cdc-${snap}`)
      ok(['image', 'checkout', `volume:${V}:${snap}`, out])
      expect(listing(out)).toBe(want)
      rmrf(out)
    }
    // s1 gone: the chunks only its version had go with it at the next gc; s2 still reads back whole
    ok(['volume', 'snapshot', 'rm', V, 's1'])
    const g3 = sb.json(['gc'])
    expect(g3.removedChunks).toBeGreaterThan(0)
    expect(g3.removedChunks).toBeLessThan(30)
    expect(sb.json(['fsck']).problems).toEqual([])
    const out = path.join(work, 'cdc-s2-again')
    ok(['image', 'checkout', `volume:${V}:s2`, out])
    expect(listing(out)).toBe(s2)
    rmrf(out)
    ok(['gc'])
    // a byte flipped in one chunk: fsck names the object and its path; a restore that needs it refuses, volume as it was
    const chunk = sh(`find ${path.join(sb.home, 'cas', 'chunks')} -type f | head -1`).trim()
    sh(`printf 'X' | dd of=${chunk} bs=1 seek=30 conv=notrunc status=none`)
    const f = sb.velo(['fsck', '--json'])
    expect(f.status).toBe(3)
    expect(JSON.parse(f.stdout).problems).toEqual([expect.objectContaining({kind: 'bad-object', problem: expect.stringMatching(/^compressed copy: chunk [0-9a-f]{64}: /)})])
    sh(`echo more >> ${data}/db.img`)
    const changed = listing(data)
    const r = sb.velo(['volume', 'restore', V, 's2'])
    expect(r.status).toBe(3)
    expect(r.stderr).toMatch(/INTEGRITY.*\.cdc: damaged: chunk/)
    expect(listing(data)).toBe(changed)
    // --repair removes the damaged chunk and keeps the recipe naming it (still a problem: its bytes are gone) ...
    expect(sb.velo(['fsck', '--repair']).status).toBe(3)
    expect(fs.existsSync(chunk)).toBe(false)
    expect(sh(`find ${sb.home}/cas/blake3 -name '*.cdc' | wc -l`).trim()).toBe('1')
    expect(JSON.parse(sb.velo(['fsck', '--json']).stdout).problems).toEqual([expect.objectContaining({problem: expect.stringMatching(/^compressed copy: chunk [0-9a-f]{64}: .*No such file/)})])
    // ... until a later freeze that has those bytes writes the chunk again: s2 reads back whole once more
    ok(['volume', 'snapshot', V, 's3'])
    expect(sb.json(['gc']).chunkedObjects).toBe(1)
    expect(sb.json(['fsck']).problems).toEqual([])
    const healed = path.join(work, 'cdc-s2-healed')
    ok(['image', 'checkout', `volume:${V}:s2`, healed])
    expect(listing(healed)).toBe(s2)
    rmrf(healed)
    ok(['volume', 'rm', V])
    expect(sb.json(['gc']).removedChunks).toBeGreaterThan(100)
  })

  it('gc killed (-9) while it compresses: every object stays readable, fsck passes, the next gc finishes', async () => {
    const V = uniq('ckill')
    ok(['volume', 'create', V])
    const data = sb.json(['volume', 'inspect', V]).dir
    // 200 compressible files and a large one (kept as chunks): a freeze long enough to be cut at several points
    sh(`cd ${data} && for i in $(seq 1 200); do seq $i $((i + 30000)) > f$i; done && (seq 1 2000000; head -c 16M /dev/urandom) > large`)
    ok(['volume', 'snapshot', V, 's1'])
    const s1 = listing(data)
    const co = (n: number) => {
      const out = path.join(work, `kill-${n}`)
      ok(['image', 'checkout', `volume:${V}:s1`, out])
      expect(listing(out)).toBe(s1)
      rmrf(out)
    }
    for (const [i, ms] of [150, 400, 700, 1000, 1300, 1600].entries()) {
      const gc = spawn(path.join(__dirname, '..', '..', 'bin', 'velo'), ['gc'], {env: {...process.env, VELO_HOME: sb.home}, stdio: 'ignore'})
      const closed = new Promise((r) => gc.on('close', r))
      await new Promise((r) => setTimeout(r, ms))
      gc.kill('SIGKILL')
      await closed
      // no object lost: each is plain, cold, or both (a .zst the next gc drops)
      const f = sb.velo(['fsck', '--json'])
      expect(JSON.parse(f.stdout).problems, `killed after ${ms} ms`).toEqual([])
      co(i) // thaws what it needs
    }
    const done = sb.json(['gc'])
    expect(done.frozenObjects).toBe(201)
    expect(done.chunkedObjects).toBe(1)
    expect(sb.json(['fsck']).problems).toEqual([])
    co(99)
    ok(['volume', 'rm', V])
  })
})
