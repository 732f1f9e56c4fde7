#!/usr/bin/env node
// Stress: 100 tenants on the default image. Each is created, runs a workload that writes its own marker and
// checks that it sees no other tenant's, and is removed. Prints p50/p99 of create, exec and rm (wall time of
// the CLI call, and velo's own in-process time without Node's start-up), peak memory, and checks that no
// mount, process or cgroup is left behind.  Usage: node stress/sandbox-100.mjs [--tenants N] [--parallel P]
import {$, argv} from 'zx'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

$.verbose = false
const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..')
const VELO = path.join(ROOT, 'bin', 'velo')
const N = Number(argv.tenants ?? 100)
const P = Number(argv.parallel ?? 1)
const home = fs.mkdtempSync(path.join('/var/tmp', 'velo-stress-sb-'))
process.env.VELO_HOME = home
const names = Array.from({length: N}, (_, i) => `st-${String(i).padStart(3, '0')}`)

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]
}
const fmt = (xs) => `p50 ${pct(xs, 50).toFixed(1)} ms, p99 ${pct(xs, 99).toFixed(1)} ms, max ${Math.max(...xs).toFixed(1)} ms`
const memAvailable = () => Number(/MemAvailable:\s+(\d+)/.exec(fs.readFileSync('/proc/meminfo', 'utf8'))[1]) * 1024
const now = () => performance.now()

async function pool(items, fn) {
  let i = 0
  await Promise.all(Array.from({length: P}, async () => {
    while (i < items.length) await fn(items[i++])
  }))
}

let failed = false
try {
  await $`${VELO} sandbox run --rm -- true` // builds the default image and its farm once
  const mem0 = memAvailable()
  const create = [], createOwn = [], exec = [], rm = [], rmOwn = []

  await pool(names, async (n) => {
    const t = now()
    const r = JSON.parse((await $`${VELO} sandbox create ${n} --json`).stdout)
    create.push(now() - t)
    createOwn.push(r.timings.total)
  })
  const live = (await $`${VELO} sandbox ls --json`).stdout
  const running = JSON.parse(live).filter((s) => s.status === 'running').length
  const pids = JSON.parse(live).map((s) => s.pid)
  // proportional set size: shared pages (libc, velo-init) split across the inits
  const initPss = pids.reduce((a, p) => a + Number(/Pss:\s+(\d+)/.exec(fs.readFileSync(`/proc/${p}/smaps_rollup`, 'utf8'))?.[1] ?? 0) * 1024, 0)
  const cgRead = (n) => {
    for (const f of [`/sys/fs/cgroup/memory/velo/${n}/memory.usage_in_bytes`, `/sys/fs/cgroup/velo/${n}/memory.current`])
      if (fs.existsSync(f)) return Number(fs.readFileSync(f, 'utf8'))
    return 0
  }
  const cgMem = names.reduce((a, n) => a + cgRead(n), 0)
  const peakUsed = mem0 - memAvailable()

  await pool(names, async (n) => {
    const t = now()
    // writes its own marker, then counts markers: exactly one (its own) must be visible
    const out = (await $`${VELO} sandbox exec ${n} -- sh -c ${`echo ${n} > /marker-${n} && ls / | grep -c '^marker-' && cat /marker-${n}`}`).stdout
    exec.push(now() - t)
    if (out !== `1\n${n}\n`) throw new Error(`tenant ${n} saw ${JSON.stringify(out)}`)
  })

  await pool(names, async (n) => {
    const t = now()
    const r = JSON.parse((await $`${VELO} sandbox rm -f ${n} --json`).stdout)
    rm.push(now() - t)
    rmOwn.push(r[0].ms)
  })

  // leftovers: mounts, processes, cgroups, tenant dirs
  const mounts = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(home))
  const procs = pids.filter((p) => {
    try {
      return !/\) [ZX] /.test(fs.readFileSync(`/proc/${p}/stat`, 'utf8'))
    } catch {
      return false
    }
  })
  const cgroups = ['memory', 'pids', 'cpu'].flatMap((c) => names.filter((n) => fs.existsSync(`/sys/fs/cgroup/${c}/velo/${n}`)))
  const dirs = fs.readdirSync(path.join(home, 'tenants'))

  console.log(`stress: ${N} tenants on the default image, ${P} call(s) in flight, ${os.cpus().length} CPUs`)
  console.log(`  running at peak:         ${running}`)
  console.log(`  create (CLI call):       ${fmt(create)}`)
  console.log(`  create (velo's own):     ${fmt(createOwn)}   (in-process, without Node start-up)`)
  console.log(`  exec   (CLI call):       ${fmt(exec)}`)
  console.log(`  rm     (CLI call):       ${fmt(rm)}`)
  console.log(`  rm     (velo's own):     ${fmt(rmOwn)}`)
  console.log(`  create own p99/p50:      ${(pct(createOwn, 99) / pct(createOwn, 50)).toFixed(2)}`)
  console.log(`  first 10 vs last 10 creates (own, mean): ${(createOwn.slice(0, 10).reduce((a, b) => a + b) / 10).toFixed(1)} ms vs ${(createOwn.slice(-10).reduce((a, b) => a + b) / 10).toFixed(1)} ms`)
  console.log(`  peak memory, ${running} live tenants: init processes ${(initPss / 2 ** 20).toFixed(1)} MiB PSS in total (${(initPss / running / 1024).toFixed(0)} KiB each); charged to the tenants' memory cgroups ${(cgMem / 2 ** 20).toFixed(1)} MiB; host MemAvailable drop ${(peakUsed / 2 ** 20).toFixed(0)} MiB (noisy: other processes run too)`)
  console.log(`  left behind: mounts ${mounts.length}, processes ${procs.length}, cgroups ${cgroups.length}, tenant dirs ${dirs.length}`)
  if (mounts.length || procs.length || cgroups.length || dirs.length) failed = true
} catch (err) {
  failed = true
  console.error('stress failed:', String(err.stderr ?? err.message ?? err).split('\n').slice(0, 5).join('\n'))
} finally {
  for (const n of names) if (fs.existsSync(path.join(home, 'tenants', n))) await $`${VELO} sandbox rm -f ${n}`.nothrow().quiet()
  fs.rmSync(home, {recursive: true, force: true})
}
process.exit(failed ? 1 : 0)
