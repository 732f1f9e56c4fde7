import {spawn, spawnSync} from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {afterEach, describe, expect, it} from 'vitest'
import {listRecords} from '../../src/fuse/mounts'
import {rmrf, sh, tmpDir, veloJson} from '../helpers'
import {MountGuard, isMounted, mount} from './fixtures'

const JOBS = 4
const SIZE = '4m'

/** Files written by fio with a crc32c verify header in every 4 KiB block, so any later read can check them. */
function fioData(dir: string): void {
  const r = spawnSync('fio', ['--name=data', `--directory=${dir}`, '--rw=randwrite', '--bs=4k', `--size=${SIZE}`, `--numjobs=${JOBS}`, '--verify=crc32c', '--do_verify=0', '--randseed=1234', '--ioengine=psync'], {encoding: 'utf8'})
  if (r.status !== 0) throw new Error(`fio write failed: ${r.stderr}`)
}

/** Random reads of every file by JOBS concurrent jobs, each block checked against its header. */
function fioVerify(dir: string, engine: 'psync' | 'mmap', bs = '4k') {
  return spawnSync(
    'fio',
    ['--readonly', '--name=data', `--directory=${dir}`, '--rw=randread', `--bs=${bs}`, '--verify_interval=4096', `--size=${SIZE}`, `--numjobs=${JOBS}`, '--verify=crc32c', `--ioengine=${engine}`, '--group_reporting', '--output-format=json'],
    {encoding: 'utf8', timeout: 120_000},
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
  const guard = new MountGuard()
  const dirs: string[] = []
  afterEach(() => {
    guard.cleanup()
    for (const d of dirs.splice(0)) {
      MountGuard.killAll(d)
      rmrf(d)
    }
  })

  function setup(): {home: string; work: string} {
    const home = tmpDir('velo-fuse-home-')
    const work = tmpDir('velo-fuse-work-')
    dirs.push(home, work)
    fs.mkdirSync(path.join(work, 'src'))
    fioData(path.join(work, 'src'))
    veloJson(home, ['ingest', path.join(work, 'src'), '--name', 'fio'])
    return {home, work}
  }

  it('fio --readonly random reads (psync and mmap, several jobs) return correct data', () => {
    const {home, work} = setup()
    const mnt = path.join(work, 'mnt')
    mount(guard, home, 'fio', mnt)
    for (const [engine, bs] of [['psync', '4k'], ['mmap', '4k'], ['psync', '64k']] as const) {
      const r = fioVerify(mnt, engine, bs)
      expect(r.status, `${engine}/${bs}: ${r.stderr}`).toBe(0)
      const job = JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))).jobs[0]
      expect(job.error).toBe(0)
      expect(job.read.io_bytes).toBe(JOBS * 4 * 1024 * 1024)
    }
  })

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

  it('kill -9 of the daemon under load: readers fail instead of hanging, velo umount cleans up', async () => {
    const {home, work} = setup()
    const mnt = path.join(work, 'mnt')
    const m = mount(guard, home, 'fio', mnt)
    // O_DIRECT keeps every read going to the daemon (no page cache); mmap readers fault pages in through it
    const direct = spawn('fio', ['--readonly', '--name=data', `--directory=${mnt}`, '--rw=randread', '--bs=4k', `--size=${SIZE}`, `--numjobs=${JOBS}`, '--direct=1', '--ioengine=psync', '--time_based', '--runtime=600'], {stdio: 'ignore'})
    const cat = spawn('bash', ['-c', `while :; do cat '${mnt}'/data.* >/dev/null || exit 0; echo 1 > /proc/sys/vm/drop_caches; done`], {stdio: 'ignore'})
    const mmap = spawn('fio', ['--readonly', '--name=data', `--directory=${mnt}`, '--rw=randread', '--bs=4k', `--size=${SIZE}`, '--numjobs=2', '--ioengine=mmap', '--time_based', '--runtime=600'], {stdio: 'ignore'})
    const load = [direct, cat, mmap]
    const exited = load.map((p) => new Promise<void>((r) => (p.exitCode !== null ? r() : p.on('exit', () => r()))))
    const bounded = (ps: Array<Promise<void>>) => Promise.race([Promise.all(ps).then(() => 'exited'), new Promise((r) => setTimeout(() => r('hung'), 60_000))])
    try {
      // wait until the daemon is demonstrably serving reads (its rchar in /proc/PID/io grows)
      const readBytes = () => Number(/rchar: (\d+)/.exec(fs.readFileSync(`/proc/${m.pid}/io`, 'utf8'))?.[1] ?? 0)
      const before = readBytes()
      const deadline = Date.now() + 30_000
      while (readBytes() < before + 64 * 1024 * 1024 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
      expect(readBytes()).toBeGreaterThan(before + 64 * 1024 * 1024)

      process.kill(m.pid, 'SIGKILL')
      const u = veloJson(home, ['umount', mnt])
      expect(u.wasStale).toBe(true)
      expect(isMounted(mnt)).toBe(false)
      expect(listRecords(home)).toEqual([])
      // readers that need the daemon end by themselves with an error, not a hang (a generous bound only a hang exceeds)
      expect(await bounded(exited.slice(0, 2))).toBe('exited')
      // the mmap reader may go on from pages it already has; it is not stuck: it is not in D state and obeys SIGTERM
      expect(procState(mmap.pid!) ?? 'gone').not.toBe('D')
      mmap.kill('SIGTERM')
      expect(await bounded(exited.slice(2))).toBe('exited')
      // nothing is left waiting on the dead connection
      expect(procState(m.pid) ?? 'gone').toMatch(/gone|Z/)
      const d = sh(`ps -eo stat,args | awk '$1 ~ /^D/' | grep -F '${mnt}' || true`).stdout.trim()
      expect(d).toBe('')
    } finally {
      for (const p of load) p.kill('SIGKILL')
    }
  })
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
    const pid = Number(r.stdout.trim())
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
