import {spawn} from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {afterEach, describe, expect, it} from 'vitest'
import {cleanupStaleMounts, ensureImageMount, releaseImageMount, listRecords} from '../../src/fuse/mounts'
import {ManifestDb} from '../../src/manifest/db'
import {VELO, rmrf, sh, tmpDir, velo, veloJson} from '../helpers'
import {MountGuard, isMounted, mount} from './fixtures'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
async function until(what: string, cond: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`)
    await sleep(25)
  }
}
const alive = (pid: number) => {
  try {
    const st = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    return !/^\d+ \(.*\) [ZX]/.test(st)
  } catch {
    return false
  }
}
/** SIGKILL and wait until the process is gone (or a zombie): kill(2) only queues the signal. */
function kill9(pid: number): void {
  process.kill(pid, 'SIGKILL')
  const end = Date.now() + 20_000
  while (alive(pid) && Date.now() < end) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10)
}
const holds = (home: string) => {
  const db = ManifestDb.open(home)
  try {
    return db.listHolds().map((h) => h.holder)
  } finally {
    db.close()
  }
}

describe('velo mount / umount lifecycle', () => {
  const guard = new MountGuard()
  const homes: string[] = []
  const dirs: string[] = []
  afterEach(() => {
    guard.cleanup()
    for (const h of homes.splice(0)) {
      MountGuard.killAll(h)
      rmrf(h)
    }
    dirs.splice(0).forEach(rmrf)
  })

  function setup(): {home: string; work: string} {
    const home = tmpDir('velo-fuse-home-')
    const work = tmpDir('velo-fuse-work-')
    homes.push(home)
    dirs.push(work)
    const src = path.join(work, 'src')
    fs.mkdirSync(path.join(src, 'sub'), {recursive: true})
    fs.writeFileSync(path.join(src, 'hello'), 'hello\n')
    fs.writeFileSync(path.join(src, 'sub', 'data'), Buffer.alloc(256 * 1024, 7))
    veloJson(home, ['ingest', src, '--name', 'img'])
    return {home, work}
  }

  it('mounts detached, lists it, records it with a gc hold, and unmounts cleanly', () => {
    const {home, work} = setup()
    const mnt = path.join(work, 'mnt')
    const m = mount(guard, home, 'img', mnt)
    expect(isMounted(mnt)).toBe(true)
    expect(alive(m.pid)).toBe(true)
    expect(fs.readFileSync(path.join(mnt, 'hello'), 'utf8')).toBe('hello\n')
    const list = veloJson(home, ['mount'])
    expect(list).toEqual([expect.objectContaining({dir: mnt, image: 'img', state: 'active', pid: m.pid})])
    expect(holds(home)).toHaveLength(1)
    // the image can be removed and gc run: the mount keeps its layers and objects alive
    veloJson(home, ['image', 'rm', 'img'])
    veloJson(home, ['gc'])
    expect(fs.readFileSync(path.join(mnt, 'sub', 'data')).equals(Buffer.alloc(256 * 1024, 7))).toBe(true)
    const u = veloJson(home, ['umount', mnt])
    expect(u).toMatchObject({dir: mnt, wasStale: false, daemonKilled: false})
    expect(isMounted(mnt)).toBe(false)
    expect(alive(m.pid)).toBe(false)
    expect(listRecords(home)).toEqual([])
    expect(holds(home)).toEqual([])
  })

  it('rejects bad requests with clear errors and leaves nothing behind', () => {
    const {home, work} = setup()
    const mnt = path.join(work, 'mnt')
    fs.mkdirSync(mnt)
    const r1 = velo(home, ['mount', 'nope', mnt])
    expect(r1.status).toBe(1)
    expect(r1.stderr).toMatch(/NOT_FOUND.*nope/)
    const r2 = velo(home, ['mount', 'img', path.join(work, 'missing')])
    expect(r2.status).toBe(1)
    expect(r2.stderr).toMatch(/NOT_FOUND/)
    fs.writeFileSync(path.join(work, 'file'), '')
    const r3 = velo(home, ['mount', 'img', path.join(work, 'file')])
    expect(r3.stderr).toMatch(/NOT_A_DIRECTORY/)
    const r4 = velo(home, ['mount', '../etc', mnt])
    expect(r4.status).toBe(2)
    expect(r4.stderr).toMatch(/INVALID_NAME/)
    const r5 = velo(home, ['umount', mnt])
    expect(r5.status).toBe(1)
    expect(r5.stderr).toMatch(/NOT_FOUND.*not a velo mount/)
    expect(isMounted(mnt)).toBe(false)
    expect(listRecords(home)).toEqual([])
    expect(holds(home)).toEqual([])
    // mounting twice on one directory is refused; the first mount keeps working
    mount(guard, home, 'img', mnt)
    const r6 = velo(home, ['mount', 'img', mnt])
    expect(r6.status).toBe(1)
    expect(r6.stderr).toMatch(/ALREADY_EXISTS/)
    expect(fs.readFileSync(path.join(mnt, 'hello'), 'utf8')).toBe('hello\n')
  })

  it('refuses to unmount a busy mount unless --lazy', async () => {
    const {home, work} = setup()
    const mnt = path.join(work, 'mnt')
    const m = mount(guard, home, 'img', mnt)
    const holder = spawn('sleep', ['600'], {cwd: mnt, stdio: 'ignore'})
    try {
      await until('sleep started', () => alive(holder.pid!))
      const r = velo(home, ['umount', mnt])
      expect(r.status).toBe(1)
      expect(r.stderr).toMatch(/BUSY/)
      expect(isMounted(mnt)).toBe(true)
      veloJson(home, ['umount', '--lazy', mnt])
      expect(isMounted(mnt)).toBe(false)
      // a lazily detached mount is still served to the process inside it until it leaves
      expect(fs.readFileSync(`/proc/${holder.pid}/cwd/hello`, 'utf8')).toBe('hello\n')
    } finally {
      holder.kill('SIGKILL')
    }
    await until('daemon exits once the last user left', () => !alive(m.pid))
  })

  it('detects a stale mount (daemon killed) and cleans it with velo umount', () => {
    const {home, work} = setup()
    const mnt = path.join(work, 'mnt')
    const m = mount(guard, home, 'img', mnt)
    kill9(m.pid)
    const r = sh(`ls '${mnt}'`)
    expect(r.stderr).toMatch(/Transport endpoint is not connected|Software caused connection abort/)
    expect(veloJson(home, ['mount'])).toEqual([expect.objectContaining({dir: mnt, state: 'stale'})])
    const u = veloJson(home, ['umount', mnt])
    expect(u.wasStale).toBe(true)
    expect(isMounted(mnt)).toBe(false)
    expect(listRecords(home)).toEqual([])
    expect(holds(home)).toEqual([])
    // and the directory is usable again
    const m2 = mount(guard, home, 'img', mnt)
    expect(fs.readFileSync(path.join(mnt, 'hello'), 'utf8')).toBe('hello\n')
    // velo mount over a stale mount cleans it first and mounts afresh
    kill9(m2.pid)
    const m3 = mount(guard, home, 'img', mnt)
    expect(m3.pid).not.toBe(m2.pid)
    expect(fs.readFileSync(path.join(mnt, 'hello'), 'utf8')).toBe('hello\n')
    expect(sh(`grep -c ' ${mnt} ' /proc/self/mountinfo`).stdout.trim()).toBe('1')
  })

  it('cleanupStaleMounts() finds and cleans every stale mount of a store, leaving live ones', () => {
    const {home, work} = setup()
    const a = mount(guard, home, 'img', path.join(work, 'a'))
    const b = mount(guard, home, 'img', path.join(work, 'b'))
    kill9(a.pid)
    const cleaned = cleanupStaleMounts(home)
    expect(cleaned.map((c) => c.dir)).toEqual([path.join(work, 'a')])
    expect(isMounted(path.join(work, 'a'))).toBe(false)
    expect(isMounted(path.join(work, 'b'))).toBe(true)
    expect(listRecords(home).map((r) => r.pid)).toEqual([b.pid])
    expect(cleanupStaleMounts(home)).toEqual([])
  })

  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    it(`--foreground unmounts cleanly on ${sig}`, async () => {
      const {home, work} = setup()
      const mnt = path.join(work, 'mnt')
      fs.mkdirSync(mnt)
      guard.add(home, mnt)
      const child = spawn(VELO, ['mount', 'img', mnt, '--foreground'], {env: {...process.env, VELO_HOME: home}, stdio: ['ignore', 'pipe', 'pipe']})
      let stderr = ''
      child.stderr.on('data', (d) => (stderr += d))
      const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)))
      try {
        await until('mounted', () => isMounted(mnt) && listRecords(home).length === 1)
        expect(fs.readFileSync(path.join(mnt, 'hello'), 'utf8')).toBe('hello\n')
        const daemon = listRecords(home)[0].pid
        child.kill(sig)
        expect(await exited).toBe(0)
        expect(isMounted(mnt)).toBe(false)
        expect(alive(daemon)).toBe(false)
        expect(listRecords(home)).toEqual([])
        expect(holds(home)).toEqual([])
        expect(stderr).toMatch(/serving img/)
      } finally {
        child.kill('SIGKILL')
      }
    })
  }
})

describe('ensureImageMount: one daemon per image for every sandbox', () => {
  const homes: string[] = []
  const dirs: string[] = []
  afterEach(() => {
    for (const h of homes.splice(0)) {
      for (const r of listRecords(h)) sh(`umount -l '${r.dir}' 2>/dev/null; kill -9 ${r.pid} 2>/dev/null`)
      rmrf(h)
    }
    for (const d of dirs.splice(0)) {
      sh(`umount -l '${d}/merged' 2>/dev/null`)
      rmrf(d)
    }
  })

  it('shares one mount between holders, serves as an overlay lower layer, and unmounts with the last release', () => {
    const home = tmpDir('velo-fuse-home-')
    const work = tmpDir('velo-fuse-work-')
    homes.push(home)
    dirs.push(work)
    const src = path.join(work, 'src')
    fs.mkdirSync(src)
    fs.writeFileSync(path.join(src, 'base'), 'from the image\n')
    veloJson(home, ['ingest', src, '--name', 'img'])
    const a = ensureImageMount(home, 'img', 'tenant:a')
    const b = ensureImageMount(home, 'img', 'tenant:b')
    expect(b.dir).toBe(a.dir)
    expect(b.pid).toBe(a.pid)
    expect(ensureImageMount(home, 'img', 'tenant:a').pid).toBe(a.pid) // idempotent per holder
    expect(listRecords(home)).toEqual([expect.objectContaining({shared: true, users: ['tenant:a', 'tenant:b']})])
    // a velo umount of a mount sandboxes use is refused
    expect(velo(home, ['umount', a.dir]).stderr).toMatch(/BUSY.*tenant:a/)

    // overlayfs accepts the FUSE mount as its lower layer: writes land in the upper dir only
    for (const d of ['upper', 'work', 'merged']) fs.mkdirSync(path.join(work, d))
    const ov = sh(`mount -t overlay overlay -o lowerdir='${a.dir}',upperdir='${work}/upper',workdir='${work}/work' '${work}/merged'`)
    expect(ov.status, ov.stderr).toBe(0)
    try {
      expect(fs.readFileSync(path.join(work, 'merged', 'base'), 'utf8')).toBe('from the image\n')
      fs.writeFileSync(path.join(work, 'merged', 'base'), 'changed by the tenant\n')
      fs.writeFileSync(path.join(work, 'merged', 'new'), 'new\n')
      expect(fs.readFileSync(path.join(work, 'upper', 'base'), 'utf8')).toBe('changed by the tenant\n')
      expect(fs.readFileSync(path.join(a.dir, 'base'), 'utf8')).toBe('from the image\n')
      expect(fs.existsSync(path.join(a.dir, 'new'))).toBe(false)
    } finally {
      sh(`umount '${work}/merged'`)
    }

    a.release()
    expect(isMounted(a.dir)).toBe(true)
    expect(listRecords(home)[0].users).toEqual(['tenant:b'])
    releaseImageMount(home, 'tenant:b') // from another process: by holder name
    expect(isMounted(a.dir)).toBe(false)
    expect(listRecords(home)).toEqual([])
    expect(holds(home)).toEqual([])
  })

  it('replaces a stale shared mount (daemon killed) with a fresh one', () => {
    const home = tmpDir('velo-fuse-home-')
    const work = tmpDir('velo-fuse-work-')
    homes.push(home)
    dirs.push(work)
    fs.writeFileSync(path.join(work, 'f'), 'x\n')
    veloJson(home, ['ingest', work, '--name', 'img'])
    // the caller's own DB handle is used and stays open (the sandbox code keeps one per process)
    const db = ManifestDb.open(home)
    const a = ensureImageMount(home, 'img', 'tenant:a', {db})
    expect(db.getImage('img')?.layers).toEqual(a.layers)
    expect(db.listHolds().map((h) => h.holder)).toHaveLength(1)
    kill9(a.pid)
    expect(sh(`ls '${a.dir}'`).stderr).toMatch(/Transport endpoint is not connected|Software caused connection abort/)
    const b = ensureImageMount(home, 'img', 'tenant:b')
    expect(b.pid).not.toBe(a.pid)
    expect(fs.readFileSync(path.join(b.dir, 'f'), 'utf8')).toBe('x\n')
    // the holder of the dead mount is carried over: both must release
    expect(listRecords(home)[0].users.sort()).toEqual(['tenant:a', 'tenant:b'])
    b.release()
    a.release() // (with the caller's handle, still open)
    expect(isMounted(b.dir)).toBe(false)
    expect(db.listHolds()).toEqual([])
    db.close()
  })

  it('kill -9 of a shared daemon under an overlay: readers through the overlay fail instead of hanging; cleanup works', async () => {
    const home = tmpDir('velo-fuse-home-')
    const work = tmpDir('velo-fuse-work-')
    homes.push(home)
    dirs.push(work)
    fs.mkdirSync(path.join(work, 'src'))
    for (let i = 0; i < 20; i++) fs.writeFileSync(path.join(work, 'src', `f${i}`), Buffer.alloc(1 << 20, i))
    veloJson(home, ['ingest', path.join(work, 'src'), '--name', 'img'])
    const m = ensureImageMount(home, 'img', 'tenant:a')
    for (const d of ['upper', 'work', 'merged']) fs.mkdirSync(path.join(work, d))
    const ov = sh(`mount -t overlay overlay -o lowerdir='${m.dir}',upperdir='${work}/upper',workdir='${work}/work' '${work}/merged'`)
    expect(ov.status, ov.stderr).toBe(0)
    const progress = path.join(work, 'progress')
    // a tenant-like reader: reopens every file through the overlay each round
    const reader = spawn('bash', ['-c', `while :; do cat '${work}'/merged/f* >/dev/null || exit 0; echo 1 > /proc/sys/vm/drop_caches; echo >> '${progress}'; done`], {stdio: 'ignore', detached: true})
    const exited = new Promise<void>((r) => reader.on('exit', () => r()))
    try {
      await until('reader running', () => fs.existsSync(progress) && fs.readFileSync(progress, 'utf8').length >= 2, 60_000)
      kill9(m.pid)
      expect(await Promise.race([exited.then(() => 'exited'), sleep(60_000).then(() => 'hung')])).toBe('exited')
      const cleaned = cleanupStaleMounts(home)
      expect(cleaned.map((c) => c.dir)).toEqual([m.dir])
      expect(isMounted(m.dir)).toBe(false)
      // the tenant's overlay can be unmounted (the sandbox would then remount on a fresh image mount)
      expect(sh(`umount '${work}/merged'`).status).toBe(0)
      const fresh = ensureImageMount(home, 'img', 'tenant:a')
      expect(fresh.pid).not.toBe(m.pid)
      expect(fs.readFileSync(path.join(fresh.dir, 'f3')).equals(Buffer.alloc(1 << 20, 3))).toBe(true)
      fresh.release()
      expect(isMounted(fresh.dir)).toBe(false)
    } finally {
      try {
        process.kill(-reader.pid!, 'SIGKILL')
      } catch {
        /* gone */
      }
    }
  })
})
