import {spawn, spawnSync} from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {afterEach, describe, expect, it} from 'vitest'
import {listRecords} from '../../src/fuse/mounts'
import {rmrf, sh, tmpDir, veloJson} from '../helpers'
import {MountGuard, isMounted, mount, mountFixture} from './fixtures'

const JOBS = 4
const SIZE = '4m'

/** Files written by fio with a crc32c verify header in every 4 KiB block, so any later read can check them. */
function fioData(dir: string): void {
  const r = spawnSync('fio', ['--name=data', `--directory=${dir}`, '--rw=randwrite', '--bs=4k', `--size=${SIZE}`, `--numjobs=${JOBS}`, '--verify=crc32c', '--do_verify=0', '--verify_state_save=0', '--randseed=1234', '--ioengine=psync'], {encoding: 'utf8', cwd: dir})
  if (r.status !== 0) throw new Error(`fio write failed: ${r.stderr}`)
}

/** Random reads of every file by JOBS concurrent jobs, each block checked against its header. */
function fioVerify(dir: string, engine: 'psync' | 'mmap', bs = '4k') {
  return spawnSync(
    'fio',
    ['--readonly', '--verify_state_save=0', '--name=data', `--directory=${dir}`, '--rw=randread', `--bs=${bs}`, '--verify_interval=4096', `--size=${SIZE}`, `--numjobs=${JOBS}`, '--verify=crc32c', `--ioengine=${engine}`, '--group_reporting', '--output-format=json'],
    {encoding: 'utf8', timeout: 120_000, cwd: path.dirname(dir)},
  )
}

const procState = (pid: number): string | undefined => {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    return s.slice(s.lastIndexOf(')') + 2).split(' ')[0]
  } catch {
    return undefined
  }
}

describe('velo mount under concurrent load', () => {
  const {guard, tmp} = mountFixture()

  function setup(): {home: string; work: string} {
    const home = tmp('velo-fuse-home-')
    const work = tmp('velo-fuse-work-')
    fs.mkdirSync(path.join(work, 'src'))
    fioData(path.join(work, 'src'))
    veloJson(home, ['ingest', path.join(work, 'src'), '--name', 'fio'])
    return {home, work}
  }

  // passthrough (default where the kernel has it): the kernel reads the CAS objects itself; daemon: every read
  // is a FUSE request served by velo-fuse (splice). Both must return exactly the bytes fio wrote.
  for (const [mode, env] of [['passthrough', {}], ['daemon reads', {VELO_FUSE_PASSTHROUGH: '0'}]] as const) {
    it(`fio --readonly random reads (psync and mmap, several jobs) return correct data (${mode})`, () => {
      const {home, work} = setup()
      const mnt = path.join(work, 'mnt')
      mount(guard, home, 'fio', mnt, env)
      for (const [engine, bs] of [['psync', '4k'], ['mmap', '4k'], ['psync', '64k']] as const) {
        const r = fioVerify(mnt, engine, bs)
        expect(r.status, `${engine}/${bs}: ${r.stderr}`).toBe(0)
        const job = JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))).jobs[0]
        expect(job.error).toBe(0)
        expect(job.read.io_bytes).toBe(JOBS * 4 * 1024 * 1024)
      }
    })
  }

  it('the fio check can fail: a corrupted block in the image is reported', () => {
    const {home, work} = setup()
    const bad = path.join(work, 'bad')
    fs.cpSync(path.join(work, 'src'), bad, {recursive: true})
    const fd = fs.openSync(path.join(bad, 'data.1.0'), 'r+')
    fs.writeSync(fd, Buffer.from('CORRUPT'), 0, 7, 8200)
    fs.closeSync(fd)
    veloJson(home, ['ingest', bad, '--name', 'bad'])
    const mnt = path.join(work, 'mnt-bad')
    mount(guard, home, 'bad', mnt)
    const r = fioVerify(mnt, 'psync')
    expect(r.status).not.toBe(0)
    expect(r.stderr).toMatch(/verify: bad header crc/)
  })

  for (const [mode, env] of [['daemon reads', {VELO_FUSE_PASSTHROUGH: '0'}], ['passthrough', {}]] as const) {
    it(`kill -9 of the daemon under load: no reader hangs, velo umount cleans up (${mode})`, async () => {
      const {home, work} = setup()
      const mnt = path.join(work, 'mnt')
      const m = mount(guard, home, 'fio', mnt, env)
      const progress = path.join(work, 'progress')
      // O_DIRECT reads bypass the page cache; the cat loop reopens every file each round (an open always
      // needs the daemon); mmap readers fault pages in
      // (each in its own process group: fio forks one process per job, and cleanup must reach them all)
      const opts = {stdio: 'ignore', detached: true} as const
      const direct = spawn('fio', ['--readonly', '--verify_state_save=0', '--name=data', `--directory=${mnt}`, '--rw=randread', '--bs=4k', `--size=${SIZE}`, `--numjobs=${JOBS}`, '--direct=1', '--ioengine=psync', '--time_based', '--runtime=600'], opts)
      // in daemon mode the page cache is dropped each round so the reads go to the daemon again
      const drop = mode === 'daemon reads' ? 'echo 1 > /proc/sys/vm/drop_caches;' : ''
      const cat = spawn('bash', ['-c', `while :; do cat '${mnt}'/data.* >/dev/null || exit 0; ${drop} echo >> '${progress}'; done`], opts)
      const mmap = spawn('fio', ['--readonly', '--verify_state_save=0', '--name=data', `--directory=${mnt}`, '--rw=randread', '--bs=4k', `--size=${SIZE}`, '--numjobs=2', '--ioengine=mmap', '--time_based', '--runtime=600'], opts)
      const group = (p: typeof cat, sig: NodeJS.Signals) => {
        try {
          process.kill(-p.pid!, sig)
        } catch {
          /* group gone */
        }
      }
      const load = [direct, cat, mmap]
      const exited = load.map((p) => new Promise<void>((r) => (p.exitCode !== null ? r() : p.on('exit', () => r()))))
      const bounded = (ps: Array<Promise<void>>) => Promise.race([Promise.all(ps).then(() => 'exited'), new Promise((r) => setTimeout(() => r('hung'), 60_000))])
      const rounds = () => (fs.existsSync(progress) ? fs.readFileSync(progress, 'utf8').length : 0)
      try {
        // under load: the cat loop has read every file three times, and fio is running
        const deadline = Date.now() + 60_000
        while (rounds() < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
        expect(rounds()).toBeGreaterThanOrEqual(3)
        expect(load.every((p) => p.exitCode === null)).toBe(true)

        process.kill(m.pid, 'SIGKILL')
        const u = veloJson(home, ['umount', mnt])
        expect(u.wasStale).toBe(true)
        expect(isMounted(mnt)).toBe(false)
        expect(listRecords(home)).toEqual([])
        // the reader that needs the daemon for every open ends by itself with an error, not a hang
        expect(await bounded([exited[1]])).toBe('exited')
        if (mode === 'daemon reads') expect(await bounded([exited[0]])).toBe('exited') // every read needed the daemon
        // readers of files opened before the kill may go on (passthrough reads, pages they already mapped):
        // they are not stuck: none is in uninterruptible sleep, and each obeys SIGTERM
        for (const p of [direct, mmap]) if (p.exitCode === null) expect(procState(p.pid!) ?? 'gone').not.toBe('D')
        group(direct, 'SIGTERM')
        group(mmap, 'SIGTERM')
        expect(await bounded(exited)).toBe('exited')
        // and every fio job process too (not only the parents)
        await new Promise((r) => setTimeout(r, 200))
        const left = sh(`ps -o pid=,stat= -g ${load.map((p) => p.pid).join(',')} | awk '$2 !~ /^Z/' || true`)
        expect(left.stdout.trim()).toBe('')
        expect(procState(m.pid) ?? 'gone').toMatch(/gone|Z/)
        const d = sh(`ps -eo stat,args | awk '$1 ~ /^D/' | grep -F '${mnt}' || true`).stdout.trim()
        expect(d).toBe('')
      } finally {
        for (const p of load) group(p, 'SIGKILL')
      }
    })
  }
})

describe('velo-fuse descriptor cache', () => {
  const dirs: string[] = []
  afterEach(() => {
    for (const d of dirs.splice(0)) {
      sh(`umount -l '${d}/mnt' 2>/dev/null`)
      rmrf(d)
    }
  })

  it('keeps at most --max-fds CAS objects open however many files are read', () => {
    const home = tmpDir('velo-fuse-home-')
    const work = tmpDir('velo-fuse-work-')
    dirs.push(work, home)
    const src = path.join(work, 'src')
    fs.mkdirSync(src)
    for (let i = 0; i < 300; i++) fs.writeFileSync(path.join(src, `f${i}`), `file ${i}\n`)
    const {layer} = veloJson(home, ['ingest', src, '--name', 'many'])
    const mnt = path.join(work, 'mnt')
    fs.mkdirSync(mnt)
    const bin = path.join(__dirname, '../../native/build/velo-fuse')
    const r = spawnSync(bin, ['--daemon', '--max-fds', '16', '--', home, mnt, layer], {encoding: 'utf8'})
    expect(r.status, r.stderr).toBe(0)
    const pid = Number(r.stdout.trim().split(/\s+/)[0]) // "PID[ idmap]"
    try {
      // descriptors of CAS objects (the daemon also holds /dev/fuse clones, one per worker thread, and LMDB)
      const fds = () =>
        fs.readdirSync(`/proc/${pid}/fd`).filter((f) => {
          try {
            return fs.readlinkSync(`/proc/${pid}/fd/${f}`).startsWith(path.join(home, 'cas'))
          } catch {
            return false
          }
        }).length
      // 300 files held open at once by one reader, each read: the daemon must not follow with 300 descriptors
      const held = [...Array(300).keys()].map((i) => fs.openSync(path.join(mnt, `f${i}`), 'r'))
      try {
        const buf = Buffer.alloc(64)
        held.forEach((fd, i) => expect(buf.subarray(0, fs.readSync(fd, buf, 0, 64, 0)).toString()).toBe(`file ${i}\n`))
        expect(fds()).toBeLessThanOrEqual(16)
        expect(fds()).toBeGreaterThan(0) // it does cache
      } finally {
        held.forEach((fd) => fs.closeSync(fd))
      }
    } finally {
      sh(`umount '${mnt}'`)
      process.kill(pid, 'SIGTERM')
    }
  })
})

describe('velo-fuse passthrough', () => {
  const {guard, tmp} = mountFixture()

  it('lets the kernel read open files from their CAS object (the daemon reads nothing); VELO_FUSE_PASSTHROUGH=0 turns it off', () => {
    const home = tmp('velo-fuse-home-')
    const work = tmp('velo-fuse-work-')
    fs.mkdirSync(path.join(work, 'src'))
    const data = Buffer.alloc(32 << 20)
    for (let i = 0; i < data.length; i += 4096) data.writeUInt32LE(i, i)
    fs.writeFileSync(path.join(work, 'src', 'big'), data)
    veloJson(home, ['ingest', path.join(work, 'src'), '--name', 'pt'])
    const daemonRead = (pid: number) => Number(/rchar: (\d+)/.exec(fs.readFileSync(`/proc/${pid}/io`, 'utf8'))![1])
    // VELO_FUSE_NO_SPLICE=1: reads the daemon serves are preads, which /proc/PID/io counts (splice is not counted)
    const modes = [
      ['passthrough', {VELO_FUSE_NO_SPLICE: '1'}, false],
      ['daemon', {VELO_FUSE_NO_SPLICE: '1', VELO_FUSE_PASSTHROUGH: '0'}, true],
    ] as const
    for (const [mode, env, expectRead] of modes) {
      const mnt = path.join(work, `mnt-${mode}`)
      const m = mount(guard, home, 'pt', mnt, env)
      const before = daemonRead(m.pid)
      expect(fs.readFileSync(path.join(mnt, 'big')).equals(data)).toBe(true)
      const read = daemonRead(m.pid) - before
      if (expectRead) expect(read, mode).toBeGreaterThanOrEqual(data.length)
      else expect(read, mode).toBeLessThan(1 << 20) // requests and replies only, no file data
    }
  })

  it('falls back to serving reads itself when the kernel refuses a backing file (store on a stacked filesystem)', () => {
    // an overlayfs store: its files sit one level deep in the stack, which a FUSE mount with
    // max_stack_depth 1 may not use as backing files (ELOOP): every read must then come from the daemon
    const work = tmp('velo-fuse-work-')
    for (const d of ['lower', 'upper', 'ovlwork', 'home']) fs.mkdirSync(path.join(work, d))
    const home = path.join(work, 'home')
    const ov = sh(`mount -t overlay overlay -o lowerdir='${work}/lower',upperdir='${work}/upper',workdir='${work}/ovlwork' '${home}'`)
    expect(ov.status, ov.stderr).toBe(0)
    try {
      fs.mkdirSync(path.join(work, 'src'))
      const data = Buffer.alloc(3 << 20)
      for (let i = 0; i < data.length; i += 4096) data.writeUInt32LE(i + 7, i)
      fs.writeFileSync(path.join(work, 'src', 'f'), data)
      veloJson(home, ['ingest', path.join(work, 'src'), '--name', 'ovl'])
      const mnt = path.join(work, 'mnt')
      const m = mount(guard, home, 'ovl', mnt)
      try {
        expect(fs.readFileSync(path.join(mnt, 'f')).equals(data)).toBe(true)
        expect(fs.readFileSync(path.join(mnt, 'f')).equals(data)).toBe(true) // and again, after the switch
        const log = fs.readFileSync(listRecords(home)[0].log, 'utf8')
        expect(log).toMatch(/passthrough unavailable/)
      } finally {
        guard.cleanup()
        // the lazy cleanup does not wait for the daemon, which still holds files of the store: wait for it
        for (let i = 0; i < 500 && !/^(gone|Z|X)$/.test(procState(m.pid) ?? 'gone'); i++) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10)
      }
    } finally {
      if (sh(`umount '${home}'`).status !== 0) sh(`umount -l '${home}'`)
    }
  })

  it('serves one file opened many times at once (and executed while running) in passthrough mode', async () => {
    const home = tmp('velo-fuse-home-')
    const work = tmp('velo-fuse-work-')
    fs.mkdirSync(path.join(work, 'src'))
    fs.copyFileSync('/bin/sleep', path.join(work, 'src', 'sleep'))
    fs.chmodSync(path.join(work, 'src', 'sleep'), 0o755)
    const data = Buffer.alloc(1 << 20, 9)
    fs.writeFileSync(path.join(work, 'src', 'data'), data)
    veloJson(home, ['ingest', path.join(work, 'src'), '--name', 'same'])
    const mnt = path.join(work, 'mnt')
    mount(guard, home, 'same', mnt)
    // the kernel takes one backing file per inode: every open of a node must share the first one's
    const fds = [...Array(8).keys()].map(() => fs.openSync(path.join(mnt, 'data'), 'r'))
    try {
      for (const fd of fds) {
        const b = Buffer.alloc(data.length)
        expect(fs.readSync(fd, b, 0, b.length, 0)).toBe(data.length)
        expect(b.equals(data)).toBe(true)
      }
    } finally {
      fds.forEach((fd) => fs.closeSync(fd))
    }
    // a binary running from the mount while it is executed again (exec holds it open)
    const running = spawn(path.join(mnt, 'sleep'), ['30'], {stdio: 'ignore'})
    try {
      await new Promise((r) => setTimeout(r, 200))
      const again = sh(`'${mnt}/sleep' 0 && echo ran`)
      expect(again.stderr).toBe('')
      expect(again.stdout.trim()).toBe('ran')
    } finally {
      running.kill('SIGKILL')
    }
    // after the last close a fresh open works again (the backing id was released, a new one is registered)
    expect(fs.readFileSync(path.join(mnt, 'data')).equals(data)).toBe(true)
  })
})
