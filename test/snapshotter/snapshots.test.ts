import {spawnSync} from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {afterEach, describe, expect, it} from 'vitest'
import {fmtRows, listDir, withDb} from '../image/listing'
import {velo} from '../helpers'
import {Env, lsRows, startEnv} from './harness'

/** `ctr snapshots --snapshotter velo ...` against a real containerd 1.6 and the real service. */

const S = ['snapshots', '--snapshotter', 'velo']
const root = process.getuid?.() === 0

function sh(cmd: string) {
  const r = spawnSync('bash', ['-c', cmd], {encoding: 'utf8'})
  if (r.status !== 0) throw new Error(`${cmd}: ${r.stderr}`)
  return r.stdout
}

/** Mount what `ctr snapshots mounts DIR KEY` prints (containerd's own rendering of the service's answer). */
function mountSnap(env: Env, key: string, dir: string): string {
  fs.mkdirSync(dir, {recursive: true})
  const line = env.ctrOk([...S, 'mounts', dir, key]).trim()
  expect(line).toMatch(/^mount -t /)
  sh(line)
  return line
}
const umount = (dir: string) => sh(`umount ${dir}`)

type Meta = {snapshots: Record<string, {kind: string; parent: string; layer?: string; id: string}>}
const meta = (env: Env): Meta => JSON.parse(fs.readFileSync(path.join(env.home, 'snapshotter', 'metadata.json'), 'utf8'))
/** velo's entry of containerd's snapshot NAME (containerd names it NAMESPACE/N/NAME in the backend). */
/** The short name velo gives a committed snapshot's farm in mount options (a symlink to the farm). */
const link = (env: Env, s: {id: string}) => path.join(env.home, 'snapshotter', 'l', s.id)
const entry = (env: Env, name: string) => Object.entries(meta(env).snapshots).find(([k]) => k.endsWith(`/${name}`))?.[1]

describe.skipIf(!root)('velo snapshotter through ctr snapshots', () => {
  let env: Env | undefined
  afterEach(async () => {
    await env?.stop()
    env = undefined
  })

  it('prepare, commit (into the store, served from farms), view, mounts, usage, labels, ls across a restart, rm, gc', async () => {
    env = await startEnv()
    const mnt = path.join(env.dir, 'mnt')

    // a snapshot without parent: a bind of its dir
    env.ctrOk([...S, 'prepare', 'a1'])
    expect(mountSnap(env, 'a1', mnt)).toMatch(/^mount -t bind .* -o rw,rbind$/)
    sh(`cd ${mnt} && mkdir -p etc d/keep sub && echo hello > etc/a && head -c 1048576 /dev/urandom > big && chown 12:34 etc/a && chmod 640 etc/a && ln big big.link && ln -s etc/a sym && echo gone > d/x && echo k > d/keep/k && mkfifo fifo && chmod 1777 sub`)
    umount(mnt)
    // an active snapshot's usage: what containerd wrote into it (1 MiB and a few small files)
    expect(lsRows(env.ctrOk([...S, 'usage', 'a1']))).toEqual([expect.stringMatching(/^a1 1\.\d+ MiB (9|1\d)$/)])
    env.ctrOk([...S, 'commit', 'c1', 'a1'])
    const c1 = entry(env, 'c1')!
    expect(c1.kind).toBe('committed')
    expect(c1.layer).toMatch(/^[0-9a-f]{64}$/)
    // the layer is in velo's store and its farm links the store's objects
    const farm1 = path.join(env.home, 'farms', c1.layer!)
    expect(withDb(env.home, (db) => db.hasLayer(c1.layer!))).toBe(true)
    expect(fs.statSync(path.join(farm1, 'big')).nlink).toBeGreaterThanOrEqual(3) // the object, big, big.link
    expect(fs.statSync(path.join(farm1, 'etc/a'))).toMatchObject({uid: 12, gid: 34, mode: 0o100640})
    // the active snapshot's dir is gone once committed
    expect(fs.readdirSync(path.join(env.home, 'snapshotter', 'snapshots'))).toEqual([])

    // a child: an overlay over c1's farm; a whiteout, an opaque dir, a new file
    env.ctrOk([...S, 'prepare', 'a2', 'c1'])
    const line = mountSnap(env, 'a2', mnt)
    expect(line).toContain(`lowerdir=${link(env, c1)}`)
    expect(fs.realpathSync(link(env, c1))).toBe(farm1)
    expect(line).toMatch(/^mount -t overlay overlay .*upperdir=.*workdir=|^mount -t overlay overlay .*workdir=.*upperdir=/)
    expect(fs.readFileSync(path.join(mnt, 'etc/a'), 'utf8')).toBe('hello\n')
    sh(`cd ${mnt} && rm etc/a && rm -rf d && mkdir d && echo new > d/n && echo more > new`)
    umount(mnt)
    env.ctrOk([...S, 'commit', 'c2', 'a2'])
    const c2 = entry(env, 'c2')!
    const farm2 = path.join(env.home, 'farms', c2.layer!)
    expect(fs.statSync(path.join(farm2, 'etc/a')).isCharacterDevice()).toBe(true) // velo's whiteout, as overlay reads it
    expect(fs.statSync(path.join(farm2, 'etc/a')).rdev).toBe(0)
    expect(sh(`getfattr --absolute-names -n trusted.overlay.opaque --only-values ${farm2}/d`)).toBe('y')

    // a view of c2: exactly the files the overlay showed (the whiteout hides etc/a, d is opaque)
    // (ctr gives views no gc.root label, unlike prepare and commit: containerd's gc, run after any removal, would
    // take them; no removal happens before the label is set)
    const view = (key: string, parent: string) => {
      env!.ctrOk([...S, 'view', key, parent])
      env!.ctrOk([...S, 'label', key, 'containerd.io/gc.root=test'])
    }
    view('v2', 'c2')
    expect(mountSnap(env, 'v2', mnt)).toBe(`mount -t overlay overlay ${mnt} -o lowerdir=${link(env, c2)}:${link(env, c1)}`) // read-only: no upper
    expect(fs.realpathSync(link(env, c2))).toBe(farm2)
    const rows = fmtRows(listDir(mnt))
    expect(rows.map((r) => r.split(' ').slice(0, 5).join(' '))).toEqual([
      '. dir 755 0:0 0',
      'big file 644 0:0 1048576',
      'big.link file 644 0:0 1048576',
      'd dir 755 0:0 0',
      'd/n file 644 0:0 4',
      'etc dir 755 0:0 0',
      'fifo fifo 644 0:0 0',
      'new file 644 0:0 5',
      'sub dir 1777 0:0 0',
      'sym symlink 777 0:0 0',
    ])
    expect(() => fs.writeFileSync(path.join(mnt, 'x'), 'x')).toThrow(/EROFS/)
    umount(mnt)

    // usage: real sizes (c1 holds 1 MiB of data); a view of two layers is an overlay of both farms, top first
    const usage = Object.fromEntries(lsRows(env.ctrOk([...S, 'usage'])).map((l) => [l.split(' ')[0], l]))
    expect(usage.c1).toMatch(/^c1 1\.\d+ MiB \d+$/)
    env.ctrOk([...S, 'prepare', 'a3', 'c2'])
    view('v3', 'c1')
    expect(env.ctrOk([...S, 'mounts', mnt, 'a3'])).toContain(`lowerdir=${link(env, c2)}:${link(env, c1)}`)
    expect(env.ctrOk([...S, 'mounts', mnt, 'v3']).trim()).toBe(`mount -t bind ${farm1} ${mnt} -o ro,rbind`) // one lower: a read-only bind

    // the same tree twice (same names, content, owners, modes, times): one velo layer, stored once
    const same = path.join(env.dir, 'same')
    const sameLayer = (key: string) => {
      env!.ctrOk([...S, 'prepare', key])
      mountSnap(env!, key, same)
      sh(`cd ${same} && mkdir -p etc && printf 'same\\n' > etc/f && cp etc/f etc/g && ln -s f etc/l && chown 3:4 etc/g && find . -exec touch -h -d @1000000000 {} +`)
      umount(same)
      env!.ctrOk([...S, 'commit', `${key}-c`, key])
      return entry(env!, `${key}-c`)!.layer!
    }
    const layerCount = () => withDb(env!.home, (db) => [...db.layers.getKeys({})].length)
    const l1 = sameLayer('again')
    const n1 = layerCount()
    expect(sameLayer('again2')).toBe(l1)
    expect(layerCount()).toBe(n1)
    expect(fs.statSync(path.join(env.home, 'farms', l1, 'etc/g'))).toMatchObject({uid: 3, gid: 4})

    // labels (Update) and Stat
    env.ctrOk([...S, 'label', 'c1', 'velo.test/x=1'])
    const info = JSON.parse(env.ctrOk([...S, 'info', 'c1']))
    expect(info).toMatchObject({Kind: 'Committed', Labels: {'velo.test/x': '1'}})
    expect(JSON.parse(env.ctrOk([...S, 'info', 'c2']))).toMatchObject({Kind: 'Committed', Parent: 'c1'})

    // velo gc keeps every layer a committed snapshot uses (its hold)
    const before = lsRows(env.ctrOk([...S, 'ls']))
    expect(before).toEqual(['a3 c2 Active', 'again-c Committed', 'again2-c Committed', 'c1 Committed', 'c2 c1 Committed', 'v2 c2 View', 'v3 c1 View'])
    expect(velo(env.home, ['gc']).status).toBe(0)
    expect(fs.existsSync(farm1) && fs.existsSync(farm2)).toBe(true)
    expect(withDb(env.home, (db) => db.hasLayer(c1.layer!) && db.hasLayer(c2.layer!))).toBe(true)

    // a restart loses nothing
    await env.killService('SIGTERM')
    await env.startService()
    await env.reconnected() // containerd's client redials with a backoff: "unavailable" until then, not an error of ours
    expect(lsRows(env.ctrOk([...S, 'ls']))).toEqual(before)
    expect(JSON.parse(env.ctrOk([...S, 'info', 'c1'])).Labels).toMatchObject({'velo.test/x': '1'})
    mountSnap(env, 'v2', mnt)
    expect(fmtRows(listDir(mnt))).toEqual(rows)
    umount(mnt)

    // rm: containerd removes from the backend in its gc; then velo's hold lets go of c2's layer and velo gc frees it
    // (and a dir no snapshot names, as a crash between mkdir and the metadata leaves: containerd's gc calls Cleanup)
    fs.mkdirSync(path.join(env.home, 'snapshotter', 'snapshots', '999', 'fs'), {recursive: true})
    for (const k of ['a3', 'v3', 'v2', 'c2', 'again-c', 'again2-c']) env.ctrOk([...S, 'rm', k])
    const snapDirs = () => fs.readdirSync(path.join(env!.home, 'snapshotter', 'snapshots'))
    for (let i = 0; i < 100 && (entry(env, 'c2') || entry(env, 'again-c') || snapDirs().length); i++) await new Promise((r) => setTimeout(r, 100))
    expect(entry(env, 'c2')).toBeUndefined()
    expect(entry(env, 'a3')).toBeUndefined()
    expect(snapDirs()).toEqual([])
    expect(lsRows(env.ctrOk([...S, 'ls']))).toEqual(['c1 Committed'])
    expect(velo(env.home, ['gc']).status).toBe(0)
    expect(fs.existsSync(farm2)).toBe(false)
    expect(fs.existsSync(path.join(env.home, 'snapshotter', 'l', c2.id))).toBe(false)
    expect(withDb(env.home, (db) => db.hasLayer(c2.layer!))).toBe(false)
    expect(fs.existsSync(farm1)).toBe(true)
    // the store stays consistent for velo's own checks
    const fsck = velo(env.home, ['fsck'])
    expect(fsck.status, fsck.stdout + fsck.stderr).toBe(0)

    // errors containerd understands: not found, already exists
    expect(env.ctr([...S, 'prepare', 'c1']).stderr).toMatch(/already exists/)
    expect(env.ctr([...S, 'info', 'nope']).stderr).toMatch(/not found/)
  })

  it("an unpack snapshot's files become the store's objects (no copy); any other, or one still mounted, is copied", async () => {
    env = await startEnv()
    const mnt = path.join(env.dir, 'mnt')
    /** prepare KEY, write a file of new bytes into it through its mount, and its inode in the snapshot's dir */
    const fill = (key: string) => {
      env!.ctrOk([...S, 'prepare', key])
      mountSnap(env!, key, mnt)
      sh(`head -c 65536 /dev/urandom > ${mnt}/f && echo small > ${mnt}/s`)
      return fs.statSync(path.join(env!.home, 'snapshotter', 'snapshots', entry(env!, key)!.id, 'fs', 'f')).ino
    }
    const commitIno = (key: string, name: string) => {
      env!.ctrOk([...S, 'commit', name, key])
      const farm = path.join(env!.home, 'farms', entry(env!, name)!.layer!)
      // the farm's link and the store's object are one inode: nothing else names it (the snapshot's dir is gone)
      expect(fs.statSync(path.join(farm, 'f')).nlink).toBe(2)
      return fs.statSync(path.join(farm, 'f')).ino
    }

    // containerd's unpack key, unmounted at commit: the file itself went into the store
    const a = fill('extract-1 sha256:aa')
    umount(mnt)
    expect(commitIno('extract-1 sha256:aa', 'u1')).toBe(a)
    // a snapshot of another name (a container's rootfs may be one): a copy
    const b = fill('rootfs-1')
    umount(mnt)
    expect(commitIno('rootfs-1', 'u2')).not.toBe(b)
    // an unpack key, but still mounted when committed: a copy
    const c = fill('extract-2 sha256:bb')
    try {
      expect(commitIno('extract-2 sha256:bb', 'u3')).not.toBe(c)
    } finally {
      umount(mnt)
    }
    // what was stored is what was written, and the store is whole
    const fsck = velo(env.home, ['fsck'])
    expect(fsck.status, fsck.stdout + fsck.stderr).toBe(0)
  })
})
