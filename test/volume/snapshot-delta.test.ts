import {execFileSync} from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {rmrf, tmpDir} from '../helpers'
import {SandboxHome, uniq} from '../sandbox/fixture'

// Volume snapshots stored as deltas (docs/volumes.md, "Snapshots as deltas"): velo-ingest --delta records only what
// changed since the snapshot the volume's fingerprint index describes, plus whiteouts; the snapshot's image is that
// snapshot's layers and the delta. Every reader must see exactly the files as they were: checked against the data dir
// with real tools, against a full ingest of the same files (the same layer id once squashed), through a view, a
// restore, a checkout.
describe('volume snapshots stored as deltas', () => {
  const sb = new SandboxHome()
  const work = tmpDir('velo-delta-')
  const racy = process.env.VELO_INDEX_RACY_SECONDS
  beforeAll(() => {
    // files older than 1 s count as settled (the default window is ~40 s: dirty page writeback)
    process.env.VELO_INDEX_RACY_SECONDS = '1'
  })
  afterAll(() => {
    if (racy === undefined) delete process.env.VELO_INDEX_RACY_SECONDS
    else process.env.VELO_INDEX_RACY_SECONDS = racy
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
  const settle = () => sh('sleep 1.2')
  /** every entry under DIR but .snapshots: path, type, mode, owner, size of non-directories, mtime, link count,
   * symlink target, xattrs, and each file's sha256 */
  const listing = (dir: string) =>
    sh(
      `cd ${dir} && find . -path ./.snapshots -prune -o -type d -printf '%p %y %m %U:%G %T@\\n' -o -printf '%p %y %m %U:%G %s %T@ %n %l\\n' | sort && ` +
        `find . -path ./.snapshots -prune -o -type f -print0 | sort -z | xargs -0r sha256sum && ` +
        `getfattr -R -d -m - --absolute-names . 2>/dev/null | grep -v '^# file: ./.snapshots' || true`,
    )
  /** what a view shows of the same (a farm: its files are the store's objects, their times and link counts shared) */
  const viewListing = (dir: string) =>
    sh(
      `cd ${dir} && find . -path ./.snapshots -prune -o -type d -printf '%p %y %m %U:%G\n' -o -printf '%p %y %m %U:%G %s %l\n' | sort && ` +
        `find . -path ./.snapshots -prune -o -type f -print0 | sort -z | xargs -0r sha256sum`,
    )
  const snapshot = (V: string, s: string) => sb.json(['volume', 'snapshot', V, s]) as {layer: string; layers: string[]; files: number; logicalBytes: number}
  const layersOf = (V: string, s: string) => (sb.json(['volume', 'snapshots', V]) as Array<{name: string; layers: string[]; files: number}>).find((x) => x.name === s)!
  const checkout = (image: string) => {
    const out = path.join(work, `co-${uniq('c')}`)
    ok(['image', 'checkout', image, out])
    return out
  }

  /** a tree with what a layer can hold: nested dirs, files of two owners and modes, an empty one, hard links, a
   * symlink, a fifo, a file and a dir with an xattr */
  function fill(V: string): string {
    ok(['volume', 'create', V])
    const data = sb.json(['volume', 'inspect', V]).dir
    sh(
      `cd ${data} && mkdir -p a/b/c d e/f && seq 1 5000 > a/one && echo two > a/b/two && echo three > a/b/c/three && ` +
        `seq 1 900 > d/keep && echo gone > d/gone && echo x > e/f/x && : > empty && ln a/one a/one-link && ln -s b/two a/sym && ` +
        `mkfifo fifo && echo mine > mine && chown 1000:1000 mine && chmod 640 mine && echo attr > attr && setfattr -n user.k -v v attr && ` +
        `mkdir xdir && setfattr -n user.d -v 1 xdir && for i in $(seq 1 40); do echo $i > a/b/n$i; done`,
    )
    return data
  }

  it('after a few changes a snapshot is a delta over the last one, and reads back as the files were everywhere', () => {
    const V = uniq('delta')
    const data = fill(V)
    settle()
    const s0 = snapshot(V, 's0')
    expect(s0.layers).toHaveLength(1)
    const before = listing(data)
    const beforeView = viewListing(data)
    settle()
    // every kind of change: content, mode, owner, mtime, a file removed, a tree removed, a dir replaced by a file and a
    // file by a dir, a rename, a new hard link, a symlink retargeted, a new dir, a file gaining an xattr
    sh(
      `cd ${data} && echo more >> a/b/two && chmod 600 a/b/c/three && chown 1000:1000 d/keep && touch -d @1000000000 a/b/n7 && ` +
        `rm d/gone && rm -r e && echo now-a-file > e && rm -r a/b/c && mkdir a/b/c && echo new > a/b/c/new && ` +
        `mv a/b/n1 a/moved && ln mine mine-link && ln -sfn other a/sym && mkdir -p g/h && echo deep > g/h/deep && ` +
        `rm a/b/n2 && mkdir a/b/n2 && setfattr -n user.z -v 1 a/b/n3`,
    )
    const s1 = snapshot(V, 's1')
    const after = listing(data)
    const afterView = viewListing(data)
    // a delta on s0's layer: a few entries, while the snapshot still counts the whole tree
    expect(s1.layers).toEqual([s0.layer, s1.layer])
    const regular = Number(sh(`cd ${data} && find . -path ./.snapshots -prune -o -type f -print | wc -l`).trim())
    expect(s1.files).toBe(regular)
    expect(layersOf(V, 's1')).toMatchObject({layers: [s0.layer, s1.layer], files: regular})

    // both read back as they were: a checkout of each
    expect(listing(checkout(`volume:${V}:s1`))).toBe(after)
    expect(listing(checkout(`volume:${V}:s0`))).toBe(before)

    // a restore from the stack, after more changes
    sh(`cd ${data} && rm -rf g && echo junk > junk && echo edit >> a/b/two && chmod 700 a/b`)
    ok(['volume', 'restore', V, 's1'])
    expect(listing(data)).toBe(after)
    expect(sb.json(['fsck']).problems).toEqual([])
    const full = sb.json(['ingest', data, '--name', uniq('full')]).layer
    // the restore's index lists every entry (what it rewrote as present only): the next snapshot is a delta on s1
    settle()
    const s2 = snapshot(V, 's2')
    expect(s2.layers.slice(0, 2)).toEqual(s1.layers)
    expect(listing(checkout(`volume:${V}:s2`))).toBe(after)
    sh(`cd ${data} && echo again >> a/moved && rm a/one-link`)
    const s3 = snapshot(V, 's3')
    expect(s3.layers.slice(0, -1)).toEqual(s2.layers)
    expect(listing(checkout(`volume:${V}:s3`))).toBe(listing(data))

    // a view needs one layer: the stack is squashed into the very layer a full ingest of the same files gets
    const mnt = path.join(work, 'mnt')
    fs.mkdirSync(mnt, {recursive: true})
    ok(['volume', 'mount', V, mnt])
    try {
      expect(layersOf(V, 's1').layers).toEqual([full])
      expect(viewListing(path.join(mnt, '.snapshots', 's1'))).toBe(afterView)
      expect(viewListing(path.join(mnt, '.snapshots', 's0'))).toBe(beforeView)
    } finally {
      ok(['volume', 'umount', mnt])
    }
    expect(sb.json(['fsck']).problems).toEqual([])
    ok(['volume', 'rm', V])
  })

  it('nothing changed: the snapshot is the last one; most files changed, or the same delta twice: stored whole', () => {
    const V = uniq('dsame')
    const data = fill(V)
    // (a hard-link group is recorded in every delta, changed or not: none here)
    sh(`rm ${data}/a/one-link`)
    settle()
    const s0 = snapshot(V, 's0')
    settle()
    expect(snapshot(V, 's1').layers).toEqual([s0.layer])
    // one file set to A, B, then A again with the same mtime: the third delta is the first one again
    const set = (v: string) => sh(`cd ${data} && echo ${v} > a/b/two && touch -d @1000000000 a/b/two`)
    set('A')
    const s2 = snapshot(V, 's2')
    expect(s2.layers).toEqual([s0.layer, s2.layer])
    const s2list = listing(data)
    set('B')
    expect(snapshot(V, 's3').layers).toHaveLength(3)
    set('A')
    const s4 = snapshot(V, 's4')
    expect(s4.layers).toEqual([s4.layer])
    expect(listing(checkout(`volume:${V}:s4`))).toBe(s2list)
    // every file rewritten since the last snapshot: a whole layer, not a delta of everything
    sh(`cd ${data} && find . -path ./.snapshots -prune -o -type f -exec sh -c 'echo x >> "$1"' _ {} \\;`)
    const s5 = snapshot(V, 's5')
    expect(s5.layers).toEqual([s5.layer])
    expect(listing(checkout(`volume:${V}:s5`))).toBe(listing(data))
    expect(sb.json(['fsck']).problems).toEqual([])
    ok(['volume', 'rm', V])
  })

  it('what a review found: a hard link across a renamed dir, one layer topping two stacks, a root xattr a restore must drop', () => {
    // a hard-link group stays whole in one layer when a directory holding one of its links is renamed (no ctime moves)
    const V = uniq('dlink')
    ok(['volume', 'create', V])
    const data = sb.json(['volume', 'inspect', V]).dir
    sh(`cd ${data} && mkdir d && echo hello > d/a && ln d/a x && for i in $(seq 10); do echo $i > f$i; done`)
    settle()
    snapshot(V, 's1')
    settle()
    sh(`cd ${data} && mv d e`)
    const renamed = listing(data)
    expect(snapshot(V, 's2').layers).toHaveLength(2)
    expect(listing(checkout(`volume:${V}:s2`))).toBe(renamed)
    sh(`cd ${data} && echo more >> f1`)
    ok(['volume', 'restore', V, 's2'])
    expect(listing(data)).toBe(renamed)
    expect(sh(`stat -c %i ${data}/x`)).toBe(sh(`stat -c %i ${data}/e/a`))

    // a layer can top two stacks (layers are named by content): the index is read against its very stack only
    const W = uniq('dtwo')
    ok(['volume', 'create', W])
    const w = sb.json(['volume', 'inspect', W]).dir
    const t0 = 'touch -d @1000000000'
    sh(`cd ${w} && echo yyy > y && ${t0} y . && touch -d @1000000000 .snapshots`)
    settle()
    snapshot(W, 's1')
    sh(`cd ${w} && echo xxx > x && ${t0} x .snapshots .`)
    settle()
    const s2 = snapshot(W, 's2')
    // y gone, x rewritten with the same bytes and times: more than half of the files changed, so stored whole — the
    // very layer s2's delta is
    sh(`cd ${w} && rm y && echo xxx > x && ${t0} x .snapshots .`)
    settle()
    const s3 = snapshot(W, 's3')
    expect(s3.layers).toEqual([s2.layer])
    settle()
    snapshot(W, 's4')
    expect(listing(checkout(`volume:${W}:s4`))).toBe(listing(w))

    // an attribute given to the root after a snapshot: a restore removes it, and the next snapshot has the root as is
    sh(`setfattr -n user.k -v v ${w}`)
    ok(['volume', 'restore', W, 's3'])
    expect(sh(`getfattr -d -m - --absolute-names ${w}`)).not.toMatch(/user\.k/)
    sh(`setfattr -n user.k -v v ${w}`)
    settle()
    snapshot(W, 's5')
    expect(listing(checkout(`volume:${W}:s5`))).toBe(listing(w))
    expect(sb.json(['fsck']).problems).toEqual([])

    // an index an older velo named after its stack's top layer only (index-<layer>) — here after s3's one layer, while
    // it describes s5's tree: read for its fingerprints, never as a base — the next snapshot is whole and right
    const vdir = path.dirname(w)
    const current = fs.readdirSync(vdir).filter((n) => n.startsWith('stack-'))
    expect(current).toHaveLength(1)
    fs.renameSync(path.join(vdir, current[0]), path.join(vdir, `index-${s3.layer}`))
    sh(`cd ${w} && echo more >> x`)
    settle()
    const s6 = snapshot(W, 's6')
    expect(s6.layers).toEqual([s6.layer])
    expect(listing(checkout(`volume:${W}:s6`))).toBe(listing(w))
    expect(fs.readdirSync(vdir).filter((n) => n.startsWith('index') || n.startsWith('stack-'))).toEqual([`stack-${s6.layer}`])
    ok(['volume', 'rm', V])
    ok(['volume', 'rm', W])
  })

  it('a stack is cut at 8 layers; removing the snapshots below keeps the later ones whole through gc; fsck passes', () => {
    const V = uniq('dchain')
    const data = fill(V)
    settle()
    const lists: string[] = []
    const depth: number[] = []
    for (let i = 0; i < 10; i++) {
      sh(`cd ${data} && echo v${i} > a/b/n${10 + i} && rm a/b/n${30 + i}`)
      depth.push(snapshot(V, `s${i}`).layers.length)
      lists.push(listing(data))
    }
    expect(depth).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 1, 2])
    for (let i = 0; i < 7; i++) ok(['volume', 'snapshot', 'rm', V, `s${i}`])
    sb.json(['gc'])
    for (const i of [7, 8, 9]) expect(listing(checkout(`volume:${V}:s${i}`))).toBe(lists[i])
    expect(sb.json(['fsck']).problems).toEqual([])
    // the volume's index described s9's stack: the next snapshot is a delta on it
    sh(`cd ${data} && echo last > a/b/n20`)
    expect(snapshot(V, 's10').layers).toHaveLength(3)
    ok(['volume', 'rm', V])
    sb.json(['gc'])
  })

  it('a snapshot rm racing the squash of its delta (a mount shows it) and a gc: the snapshot is gone or whole, the others read back, fsck passes', async () => {
    const V = uniq('drace')
    const data = fill(V)
    settle()
    const mnt = path.join(work, `mnt-${V}`)
    fs.mkdirSync(mnt)
    const lists = new Map<string, string>([['base', viewListing(data)]])
    snapshot(V, 'base')
    let deltas = 0
    for (let i = 0; i < 8; i++) {
      sh(`cd ${data} && echo r${i} > a/b/n${10 + i}`)
      if (snapshot(V, `r${i}`).layers.length > 1) deltas++ // a delta: its view needs a squash
      const removed = viewListing(data)
      // the mount squashes every delta snapshot it shows; meanwhile r{i} is removed and a gc runs, each later by a
      // step every round, so the rm lands in another part of the mount each time
      const later = (ms: number, args: string[]) => new Promise((r) => setTimeout(r, ms)).then(() => sb.veloAsync(args))
      const [m, rm, gc] = await Promise.all([
        sb.veloAsync(['volume', 'mount', V, mnt]),
        later(i * 120, ['volume', 'snapshot', 'rm', V, `r${i}`]),
        later(i * 60, ['gc', '--json']),
      ])
      expect(rm.status, rm.stderr).toBe(0)
      expect(gc.status, gc.stderr).toBe(0)
      if (m.status === 0) {
        // what it shows of the removed one, if anything, is whole; the others are as they were
        const shown = fs.readdirSync(path.join(mnt, '.snapshots'))
        for (const [n, l] of lists) expect(viewListing(path.join(mnt, '.snapshots', n)), n).toBe(l)
        if (shown.includes(`r${i}`) && fs.readdirSync(path.join(mnt, '.snapshots', `r${i}`)).length) expect(viewListing(path.join(mnt, '.snapshots', `r${i}`))).toBe(removed)
        ok(['volume', 'umount', mnt])
      } else expect(m.stderr).not.toMatch(/bug in velo|NATIVE/)
      expect(sb.json(['volume', 'snapshots', V]).map((x: {name: string}) => x.name)).not.toContain(`r${i}`)
      // keep one of every two: the next delta stacks on a kept one or on a removed one's layers
      if (i % 2 === 0) lists.set(`k${i}`, viewListing(data)), ok(['volume', 'snapshot', V, `k${i}`])
    }
    expect(deltas, 'snapshots stored as deltas, squashed by the mount while removed').toBeGreaterThanOrEqual(3)
    sb.json(['gc'])
    expect(sb.json(['fsck']).problems).toEqual([])
    for (const [n, l] of lists) expect(viewListing(checkout(`volume:${V}:${n}`)), n).toBe(l)
    ok(['volume', 'rm', V])
    sb.json(['gc'])
  })
})
