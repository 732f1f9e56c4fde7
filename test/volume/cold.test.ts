import {execFileSync, spawn} from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {afterAll, describe, expect, it, onTestFinished} from 'vitest'
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
  /** every file under DIR: path, type, mode, owner, size (not a directory's: ext4's depends on its history) and
   * sha256 (what a reader must get back) */
  const listing = (dir: string) =>
    sh(`cd ${dir} && find . -path ./.snapshots -prune -o -type d -printf '%p %y %m %U:%G\\n' -o -printf '%p %y %m %U:%G %s\\n' | sort && find . -path ./.snapshots -prune -o -type f -print0 | sort -z | xargs -0r sha256sum`)
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
    // big (twice), d/tool, d/mine: compressible, each its own .zst; small goes into a pack; rand gains nothing, x has
    // an xattr
    expect(gc).toMatchObject({frozenObjects: 5, packedObjects: 1, newPacks: 1, removedObjects: 0})
    expect(gc.frozenStoredBytes).toBeLessThan(gc.frozenBytes / 3)
    expect(coldFiles()).toBe('4')
    const st = sb.json(['status'])
    expect(st.compressed).toMatchObject({objects: 5, logicalBytes: gc.frozenBytes, storedBytes: gc.frozenStoredBytes})
    expect(st.packed).toMatchObject({objects: 1, logicalBytes: 6, packs: 1})
    expect(st.storedBytes).toBeLessThan(st.physicalBytes)
    expect(sb.velo(['status']).stdout).toMatch(/5 cold objects compressed/)
    const metrics = sb.velo(['metrics']).stdout
    expect(metrics).toMatch(/^velo_store_compressed_objects 5$/m)
    expect(metrics).toMatch(new RegExp(`^velo_store_compressed_stored_bytes ${gc.frozenStoredBytes}$`, 'm'))
    const fsck = sb.json(['fsck'])
    expect(fsck.problems).toEqual([])

    // a checkout of the snapshot: the same files; what it read is plain again (no gc ran since)
    const out = path.join(work, 'co1')
    ok(['image', 'checkout', `volume:${V}:s1`, out])
    expect(listing(out)).toBe(s1)
    expect(coldFiles()).toBe('1') // what only s2 names (its big) stays cold

    // cold again (small: its packed copy dropped, being plain, and packed anew), then a restore in place to s1, and a
    // mount that shows both snapshots
    expect(sb.json(['gc'])).toMatchObject({frozenObjects: 4, packedObjects: 1, compaction: expect.objectContaining({rewrittenPacks: 1, droppedObjects: 1})})
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
    expect(again.frozenObjects).toBe(5)
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
    expect(sb.json(['gc']).frozenObjects).toBe(4)
    ok(['volume', 'rm', V])
    sb.json(['gc'])
  })

  it('a damaged compressed object: fsck names it and its paths; a restore refuses it and leaves the volume as it was', () => {
    const V = uniq('cdmg')
    const data = fill(V)
    ok(['volume', 'snapshot', V, 's1'])
    sh(`cd ${data} && echo changed > big`)
    const before = listing(data)
    expect(sb.json(['gc']).frozenObjects).toBe(4)
    const zst = sh(`find ${cas()} -name '*.zst' -size +20k | head -1`).trim()
    const name = path.basename(zst, '.zst')
    const fd = fs.openSync(zst, 'r+')
    fs.writeSync(fd, Buffer.from('XXXX'), 0, 4, 2000)
    fs.closeSync(fd)
    const fsck = sb.velo(['fsck', '--json'])
    expect(fsck.status).not.toBe(0)
    const report = JSON.parse(fsck.stdout)
    expect(report.problems).toEqual([expect.objectContaining({kind: 'bad-object', object: name, copy: 'zst', image: `volume:${V}:s1`})])
    const r = sb.velo(['volume', 'restore', V, 's1'])
    expect(r.status).not.toBe(0)
    expect(r.stderr).toMatch(/INTEGRITY.*damaged/)
    expect(r.stderr).not.toMatch(/bug in velo/i)
    expect(listing(data)).toBe(before)
    expect(frozenOf(name)).toBe(true)
    // --repair removes the copy found bad (the .zst) and nothing else: the snapshot then lacks that one object
    const rep = sb.velo(['fsck', '--repair', '--json'])
    expect(JSON.parse(rep.stdout).repaired.removedObjects).toBe(1)
    expect(fs.existsSync(zst)).toBe(false)
    expect(JSON.parse(sb.velo(['fsck', '--json']).stdout).problems).toEqual([expect.objectContaining({kind: 'missing-object', object: name})])
    ok(['volume', 'rm', V])
    sb.json(['gc'])
  })

  it('a plain file left beside its .zst (a thaw cut short by a power loss) is kept only when it reads as its name says', () => {
    const V = uniq('cpair')
    const data = fill(V)
    ok(['volume', 'snapshot', V, 's1'])
    const s1 = listing(data)
    expect(sb.json(['gc']).frozenObjects).toBe(4)
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
    expect(JSON.parse(f.stdout).problems).toEqual([expect.objectContaining({kind: 'bad-object', copy: 'chunk', chunk: expect.stringMatching(/^[0-9a-f]{64}$/), problem: expect.stringMatching(/^compressed copy: chunk [0-9a-f]{64}: /)})])
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
    expect(JSON.parse(sb.velo(['fsck', '--json']).stdout).problems).toEqual([expect.objectContaining({copy: 'chunk', problem: expect.stringMatching(/^compressed copy: chunk [0-9a-f]{64}: .*No such file/)})])
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

  /** n small text files (about 0.1-25 KiB, each different) under DIR/PREFIX, and five of 8-56 KB: all under a pack's
   * 64 KiB limit */
  function smallFiles(dir: string, prefix: string, n: number): void {
    fs.mkdirSync(path.join(dir, prefix, 'sub'), {recursive: true})
    for (let i = 0; i < n; i++) {
      const lines = 5 + ((i * 7919) % 900)
      let body = ''
      for (let j = 0; j < lines; j++) body += `${prefix} ${i} line ${j} ${(i * j) % 97}\n`
      fs.writeFileSync(path.join(dir, prefix, i % 3 ? 'sub' : '', `f${i}.txt`), body)
    }
    for (let i = 0; i < 5; i++) fs.writeFileSync(path.join(dir, prefix, `mid${i}.txt`), `${prefix} ${i} `.repeat(20000).slice(0, 8000 + 12000 * i))
  }
  const packFiles = () => sh(`find ${path.join(sb.home, 'cas', 'packs')} -name '*.pack' 2>/dev/null | sort`).trim().split('\n').filter(Boolean)
  const casKiB = () => Number(sh(`du -sk ${path.join(sb.home, 'cas')} | cut -f1`))

  it('small cold objects go into packs: far fewer blocks; they read back everywhere; gc compacts a pack once its dead share reaches the threshold; a damaged pack is named, refused and repaired', () => {
    sb.json(['gc', '--compact-threshold', '0']) // what earlier tests left: gone, so the counts below are this test's
    expect(packFiles()).toEqual([])
    const A = uniq('pka')
    const B = uniq('pkb')
    onTestFinished(() => void [A, B].forEach((v) => sb.velo(['volume', 'rm', v]))) // gone even when the test fails
    ok(['volume', 'create', A])
    ok(['volume', 'create', B])
    const dataA = sb.json(['volume', 'inspect', A]).dir
    const dataB = sb.json(['volume', 'inspect', B]).dir
    smallFiles(dataA, 'a', 1200)
    smallFiles(dataB, 'b', 800)
    ok(['volume', 'snapshot', A, 's1'])
    ok(['volume', 'snapshot', B, 's1'])
    const sA = listing(dataA)
    const sB = listing(dataB)
    const before = casKiB()
    const plainKiB = Number(sh(`du -skc ${dataA}/a ${dataB}/b | tail -1 | cut -f1`)) // the same files, plain
    const g = sb.json(['gc'])
    expect(g).toMatchObject({frozenObjects: 2010, packedObjects: 2010, newPacks: 1, removedObjects: 0})
    expect(packFiles()).toHaveLength(1)
    // 2,010 files of at least one 4 KiB block each, now one compressed pack: the store shrank by most of them
    expect(before - casKiB()).toBeGreaterThan(plainKiB * 0.75)
    const st = sb.json(['status'])
    expect(st.packed).toMatchObject({objects: 2010, packs: 1})
    expect(st.packed.storedBytes).toBeLessThan(st.packed.logicalBytes / 5)
    expect(sb.velo(['metrics']).stdout).toMatch(/^velo_store_packed_objects 2010$/m)
    expect(sb.json(['fsck']).problems).toEqual([])
    const co = (V: string, want: string, n: string) => {
      const out = path.join(work, `pk-${n}`)
      ok(['image', 'checkout', `volume:${V}:s1`, out])
      expect(listing(out)).toBe(want)
      rmrf(out)
    }
    co(A, sA, 'a1')
    co(B, sB, 'b1')
    // what the checkouts made plain is dropped from the pack (each plain file checked first) and packed anew
    const g2 = sb.json(['gc'])
    expect(g2).toMatchObject({packedObjects: 2010, removedObjects: 0, compaction: expect.objectContaining({rewrittenPacks: 1, droppedObjects: 2010, movedObjects: 0})})
    expect(packFiles()).toHaveLength(1)

    // B's objects dead: 40% of the pack, under the default threshold (0.5): the pack stays as it is
    ok(['volume', 'rm', B])
    const [packed] = packFiles()
    const dry = sb.json(['gc', '--dry-run', '--compact-threshold', '0'])
    expect(dry).toMatchObject({dryRun: true, compaction: expect.objectContaining({deadObjects: 805, rewrittenPacks: 0})})
    expect(packFiles()).toEqual([packed]) // a dry run rewrites nothing
    const g3 = sb.json(['gc'])
    expect(g3.compaction).toMatchObject({threshold: 0.5, rewrittenPacks: 0})
    expect(g3.removedObjects).toBe(0) // still stored, until their pack is rewritten
    const [pack] = packFiles()
    // at 0.3 it is rewritten with A's objects only; B's counted removed now, once
    const g4 = sb.json(['gc', '--compact-threshold', '0.3'])
    expect(g4.compaction).toMatchObject({rewrittenPacks: 1, droppedObjects: 805, movedObjects: 1205})
    expect(g4.removedObjects).toBe(805)
    expect(g4.compaction.bytesAfter).toBeLessThan(g4.compaction.bytesBefore * 0.8)
    expect(packFiles()).toHaveLength(1)
    expect(packFiles()[0]).not.toBe(pack)
    expect(sb.json(['gc']).compaction.rewrittenPacks).toBe(0)
    expect(sb.json(['status']).packed.objects).toBe(1205)
    expect(sb.json(['fsck']).problems).toEqual([])
    co(A, sA, 'a2')
    expect(sb.json(['gc']).compaction).toMatchObject({rewrittenPacks: 1, droppedObjects: 1205})
    expect(sb.velo(['gc', '--compact-threshold', '2']).stderr).toMatch(/USAGE.*between 0 and 1/)

    // a byte run overwritten in the pack's first frame: fsck names the objects of that frame; a restore that needs
    // them refuses; --repair rewrites the pack without them and every other object still reads back
    const victim = packFiles()[0]
    const fd = fs.openSync(victim, 'r+')
    fs.writeSync(fd, Buffer.alloc(64, 0x55), 0, 64, 200)
    fs.closeSync(fd)
    const f = sb.velo(['fsck', '--json'])
    expect(f.status).not.toBe(0)
    const bad = JSON.parse(f.stdout).problems
    expect(bad.length).toBeGreaterThan(0)
    expect(bad.length).toBeLessThan(100) // one frame: 128 KiB of objects
    for (const p of bad) expect(p).toMatchObject({kind: 'bad-object', copy: 'packed', image: `volume:${A}:s1`, problem: expect.stringMatching(/^compressed copy: pack [0-9a-f]{64}\.pack: /)})
    // the files of the damaged objects removed, so the restore must read them back (which files share that frame
    // depends on the order the pack was written in, not on this test)
    for (const p of bad) for (const q of p.paths as string[]) fs.rmSync(path.join(dataA, q))
    const now = listing(dataA)
    const r = sb.velo(['volume', 'restore', A, 's1'])
    expect(r.status).toBe(3)
    expect(r.stderr).toMatch(/INTEGRITY.*damaged/)
    expect(listing(dataA)).toBe(now)
    // one of those files stored again (another volume has the same bytes): gc packs a good copy of its object into a
    // new pack, behind the damaged one; readers fall back to it; the damaged pack stays (its other objects are bad)
    const healed = bad[0].object as string
    const gen = path.join(work, 'regen')
    smallFiles(gen, 'a', 1200)
    const C = uniq('pkc')
    onTestFinished(() => void sb.velo(['volume', 'rm', C]))
    ok(['volume', 'create', C])
    fs.copyFileSync(path.join(gen, bad[0].paths[0]), path.join(sb.json(['volume', 'inspect', C]).dir, 'again.txt'))
    rmrf(gen)
    ok(['volume', 'snapshot', C, 's1'])
    const g5 = sb.json(['gc'])
    expect(g5.packedObjects).toBe(1)
    expect(g5.newPacks).toBe(1)
    const mid = JSON.parse(sb.velo(['fsck', '--json']).stdout).problems
    expect(mid.map((p: {object: string}) => p.object).sort()).toEqual(bad.map((p: {object: string}) => p.object).filter((n: string) => n !== healed).sort())
    expect(sb.json(['gc', '--compact-threshold', '0']).compaction.damagedPacks.length).toBeGreaterThan(0) // left as it is
    // --repair drops only the copies that do not read back right: the healed object's good copy stays
    const rep = sb.velo(['fsck', '--repair', '--json'])
    expect(rep.status).toBe(3)
    expect(JSON.parse(rep.stdout).repaired.removedObjects).toBe(bad.length - 1)
    expect(fs.existsSync(victim)).toBe(false)
    const after = JSON.parse(sb.velo(['fsck', '--json']).stdout).problems
    // the dropped objects are missing now (the image names them); nothing else is wrong
    expect(after.map((p: {object: string}) => p.object).sort()).toEqual(mid.map((p: {object: string}) => p.object).sort())
    for (const p of after) expect(p.problem).toMatch(/absent/)
    const out = path.join(work, 'pk-c')
    ok(['image', 'checkout', `volume:${C}:s1`, out])
    expect(fs.readFileSync(path.join(out, 'again.txt'))).toEqual(fs.readFileSync(path.join(sb.json(['volume', 'inspect', C]).dir, 'again.txt')))
    rmrf(out)
    ok(['volume', 'rm', C])
    ok(['volume', 'rm', A])
    expect(sb.json(['gc', '--compact-threshold', '0'])).toMatchObject({compaction: expect.objectContaining({rewrittenPacks: 2})}) // A's rewritten one, C's
    expect(packFiles()).toEqual([])
    expect(sb.json(['fsck']).problems).toEqual([])
  })

  it('small objects an older gc froze one by one (<name>.zst) are moved into a pack by the next gc, checked on the way', () => {
    const F = uniq('pkz')
    onTestFinished(() => void sb.velo(['volume', 'rm', F]))
    ok(['volume', 'create', F])
    const data = sb.json(['volume', 'inspect', F]).dir
    for (let i = 0; i < 6; i++) fs.writeFileSync(path.join(data, `f${i}`), `pkz ${i}\n`.repeat(2000 + i)) // ~14 KB each
    ok(['volume', 'snapshot', F, 's1'])
    const want = listing(data)
    // what gc did before packs: each object its own zstd frame (with its checksum), the plain file gone
    const objs = sh(`find ${cas()} -type f -size +8k -size -20k -name '*_644_0_0' | xargs -r grep -l '^pkz '`).trim().split('\n')
    expect(objs).toHaveLength(6)
    for (const o of objs) sh(`zstd -q --check -c ${o} > ${o}.zst && chmod 600 ${o}.zst && rm ${o}`)
    const g = sb.json(['gc'])
    expect(g.packedObjects).toBe(6)
    for (const o of objs) {
      expect(fs.existsSync(o + '.zst')).toBe(false)
      expect(fs.existsSync(o)).toBe(false)
    }
    expect(sb.json(['fsck']).problems).toEqual([])
    const out = path.join(work, 'pkz')
    ok(['image', 'checkout', `volume:${F}:s1`, out])
    expect(listing(out)).toBe(want)
    rmrf(out)
    ok(['volume', 'rm', F])
  })

  it('a pack whose index is damaged: its other objects still read; reads of objects it may hold fail closed; --repair salvages the rest into a new pack', () => {
    sb.json(['gc', '--compact-threshold', '0'])
    const D = uniq('pkx')
    onTestFinished(() => void sb.velo(['volume', 'rm', D]))
    ok(['volume', 'create', D])
    const data = sb.json(['volume', 'inspect', D]).dir
    for (let i = 0; i < 30; i++) fs.writeFileSync(path.join(data, `f${i}`), `pkx ${i}\n`.repeat(100 + i))
    ok(['volume', 'snapshot', D, 's1'])
    const want = listing(data)
    expect(sb.json(['gc']).packedObjects).toBe(30)
    const [pack] = packFiles()
    // the index's first line made unreadable (a name that is no object name)
    const buf = fs.readFileSync(pack)
    const ioff = Number(buf.readBigUInt64LE(buf.length - 24))
    buf[ioff + 3] = 0x5a // 'Z' in the first line's hash
    fs.writeFileSync(pack, buf)
    const f = JSON.parse(sb.velo(['fsck', '--json']).stdout)
    expect(f.problems.filter((p: {kind: string}) => p.kind === 'damaged-pack')).toEqual([expect.objectContaining({problem: expect.stringMatching(/1 bad index line/)})])
    const missing = f.problems.filter((p: {kind: string}) => p.kind === 'missing-object')
    expect(missing).toHaveLength(1)
    // a checkout needs that object: it may be in the damaged pack, so the read fails closed
    const out = path.join(work, 'pkx')
    const co = sb.velo(['image', 'checkout', `volume:${D}:s1`, out])
    expect(co.status).toBe(3)
    expect(co.stderr).toMatch(/INTEGRITY.*in no pack that can be read/)
    rmrf(out)
    const rep = JSON.parse(sb.velo(['fsck', '--repair', '--json']).stdout)
    expect(rep.repaired.removedStray).toBe(1)
    expect(fs.existsSync(pack)).toBe(false)
    expect(packFiles()).toHaveLength(1)
    const after = JSON.parse(sb.velo(['fsck', '--json']).stdout).problems
    expect(after).toEqual(missing) // the 29 others read back from the new pack
    // the lost file written again and snapshotted: the volume reads back whole
    const lost = missing[0].paths[0].replace(/^\//, '')
    fs.writeFileSync(path.join(data, lost), fs.readFileSync(path.join(data, lost))) // same bytes, a new object write
    ok(['volume', 'snapshot', D, 's2'])
    ok(['image', 'checkout', `volume:${D}:s2`, out])
    expect(listing(out)).toBe(want)
    rmrf(out)
    ok(['volume', 'rm', D])
  })

  it('gc killed (-9) while it packs and while it compacts: every object stays readable, fsck passes, the next gc finishes', async () => {
    sb.json(['gc', '--compact-threshold', '0'])
    expect(packFiles()).toEqual([])
    const made: string[] = []
    onTestFinished(() => void made.forEach((v) => sb.velo(['volume', 'rm', v]))) // gone even when the test fails
    /** a volume of n small files, snapshotted as s1; its listing */
    const volume = (prefix: string, n: number) => {
      const V = uniq(prefix)
      made.push(V)
      ok(['volume', 'create', V])
      const data = sb.json(['volume', 'inspect', V]).dir
      smallFiles(data, prefix, n)
      ok(['volume', 'snapshot', V, 's1'])
      return {V, want: listing(data)}
    }
    const readsBack = ({V, want}: {V: string; want: string}) => {
      const out = path.join(work, `pkk-${V}`)
      ok(['image', 'checkout', `volume:${V}:s1`, out])
      expect(listing(out)).toBe(want)
      rmrf(out)
    }
    const velo = path.join(__dirname, '..', '..', 'bin', 'velo')
    const killAt = async (args: string[], ms: number) => {
      const gc = spawn(velo, args, {env: {...process.env, VELO_HOME: sb.home}, stdio: 'ignore'})
      const closed = new Promise<string | null>((r) => gc.on('close', (_code, signal) => r(signal)))
      await new Promise((r) => setTimeout(r, ms))
      gc.kill('SIGKILL')
      const cut = (await closed) === 'SIGKILL' // still running when killed (not finished before)
      expect(JSON.parse(sb.velo(['fsck', '--json']).stdout).problems, `${args.join(' ')} killed after ${ms} ms`).toEqual([])
      return cut
    }
    // cut while it packs 3,010 objects
    const a = volume('pka', 1500)
    const b = volume('pkb', 1500)
    for (const ms of [350, 700]) expect(await killAt(['gc'], ms), `gc cut after ${ms} ms`).toBe(true)
    sb.json(['gc'])
    expect(sb.json(['status']).packed.objects).toBe(3010)
    readsBack(a)
    readsBack(b)
    sb.json(['gc'])
    // cut while it compacts: each time a pack of a live volume's objects and a dead one's, rewritten (threshold 0)
    let cut = 0
    for (const ms of [300, 450, 600]) {
      const live = volume('pkl', 1000)
      const dead = volume('pkd', 1000)
      expect(sb.json(['gc']).newPacks).toBe(1)
      ok(['volume', 'rm', dead.V])
      if (await killAt(['gc', '--compact-threshold', '0'], ms)) cut++
      readsBack(live)
      ok(['volume', 'rm', live.V])
    }
    expect(cut).toBeGreaterThanOrEqual(2) // most kills landed in a running gc (a fast one may end before 600 ms)
    expect(sb.json(['gc', '--compact-threshold', '0']).compaction.damagedPacks).toEqual([])
    expect(sb.json(['gc', '--compact-threshold', '0']).compaction.rewrittenPacks).toBe(0)
    expect(sb.json(['fsck']).problems).toEqual([])
    readsBack(a)
    ok(['volume', 'rm', a.V])
    ok(['volume', 'rm', b.V])
    sb.json(['gc', '--compact-threshold', '0'])
    expect(packFiles()).toEqual([])
    expect(sb.json(['status']).packed).toMatchObject({objects: 0, packs: 0})
  })
})
