#!/usr/bin/env node
// Stress: a 1,000-tenant host (issue 16). 1,000 tenants on the default image, each with a small workload (a main
// command that sleeps in a loop, under its monitor), created one after another through the CLI; then execs into
// random tenants, stop/start of some, `sandbox ls` at full count, and rm of all. Prints create/exec/rm p50/p99 per
// bucket of 100 (so growth with the count shows), host memory per idle tenant (MemAvailable, and the PSS of the
// inits and monitors), open files and mounts at peak, and what is left after rm (must be nothing).
// Then IDLE tenants without a main command (velo-init alone): the host memory of an idle tenant, kernel + init.
// With --peer runc, the same number of runc containers follows in the same run (runc's own `runc spec` config, the
// default image's files as a read-only root, the same main command, `runc run -d` and `runc delete -f` one at a
// time): the growth of create with the count, and what a container holds, beside velo's.
// Not part of npm test. Usage: node stress/sandbox-1000.mjs [--tenants N] [--bucket B] [--idle IDLE] [--peer runc] [--json FILE]
import {argv} from 'zx'
import {spawnSync} from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..')
const VELO = path.join(ROOT, 'bin', 'velo')
const N = Number(argv.tenants ?? 1000)
const B = Number(argv.bucket ?? 100)
const IDLE = Number(argv.idle ?? 100)
const PEER = argv.peer
if (PEER !== undefined && PEER !== 'runc') throw new Error(`--peer: only runc is known, not ${PEER}`)
const RUNC = '/usr/sbin/runc'
const home = fs.mkdtempSync(path.join('/var/tmp', 'velo-stress-1k-'))
process.env.VELO_HOME = home
const names = Array.from({length: N}, (_, i) => `k-${String(i).padStart(4, '0')}`)

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]
}
const meminfo = () => Object.fromEntries([...fs.readFileSync('/proc/meminfo', 'utf8').matchAll(/^(\w+):\s+(\d+)/gm)].map((m) => [m[1], Number(m[2]) * 1024]))
const memAvailable = () => meminfo().MemAvailable
// where the kernel's share of a tenant goes: slab objects (namespaces, mounts, cgroups, dentries), per-cpu data
// (cgroup statistics), kernel stacks and page tables of its processes
const KERNEL_PARTS = ['SUnreclaim', 'SReclaimable', 'Percpu', 'KernelStack', 'PageTables']
// what a tenant holds that the host cannot take back: unreclaimable slab, per-cpu data, stacks, page tables (plus
// the PSS of its processes, added where used). MemAvailable moves with the page cache too (a few MiB either way
// between two reads), so at a few hundred tenants this sum is the steadier figure; both are printed.
const HELD = ['SUnreclaim', 'Percpu', 'KernelStack', 'PageTables']
const held = (k) => HELD.reduce((a, x) => a + k[x], 0)
const now = () => performance.now()
const pss = (pid) => {
  try {
    return Number(/Pss:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1] ?? 0) * 1024
  } catch {
    return 0
  }
}
const openFiles = () => Number(fs.readFileSync('/proc/sys/fs/file-nr', 'utf8').split('\t')[0])
const mountCount = () => fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean).length
// one velo call as a user's shell would make it, but without a shell in between (the timings are velo's, not
// bash's); a failure throws with its stderr
const velo = (...args) => {
  const r = spawnSync(VELO, args, {encoding: 'utf8', maxBuffer: 1 << 28})
  if (r.status !== 0) throw Object.assign(new Error(`velo ${args.join(' ')} exited ${r.status}`), {stderr: r.stderr})
  return r
}
const timed = async (fn) => {
  const t = now()
  await fn()
  return now() - t
}
// a process's children (one level), from the kernel's list
const children = (pid) => {
  try {
    return fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(' ').filter(Boolean).map(Number)
  } catch {
    return []
  }
}
// create/rm p50 and p99 per bucket of B, and the two ratios the issue's targets are on
const summarize = (create, rm) => {
  const buckets = []
  for (let b = 0; b < N; b += B)
    buckets.push({
      tenants: `${b + 1}-${Math.min(N, b + B)}`,
      createP50: pct(create.slice(b, b + B), 50),
      createP99: pct(create.slice(b, b + B), 99),
      rmP50: pct(rm.slice(b, b + B), 50),
      rmP99: pct(rm.slice(b, b + B), 99),
    })
  const lastHalf = create.slice(N / 2)
  return {buckets, createLastOverFirstP50: buckets[buckets.length - 1].createP50 / buckets[0].createP50, createP99OverP50LastHalf: pct(lastHalf, 99) / pct(lastHalf, 50)}
}

// the same workload under runc, one call at a time: `runc run -d` (create + start) and `runc delete -f`, each
// container in its own cgroup under one parent of this run's (removed at the end), memory read as for velo's
const peerRunc = async () => {
  const rootfs = path.join(home, 'peer-rootfs')
  velo('image', 'checkout', 'default', rootfs)
  const bundle = path.join(home, 'peer-bundle')
  const state = path.join(home, 'peer-state')
  fs.mkdirSync(bundle)
  const spec = spawnSync(RUNC, ['spec'], {cwd: bundle, encoding: 'utf8'})
  if (spec.status !== 0) throw new Error(`runc spec failed: ${spec.stderr}`)
  const parent = `velo-stress-peer-${process.pid}`
  const ids = names.map((n) => `r-${n}`)
  const cfg = JSON.parse(fs.readFileSync(path.join(bundle, 'config.json'), 'utf8'))
  cfg.root = {path: rootfs, readonly: true}
  cfg.process.terminal = false
  cfg.process.args = ['sh', '-c', 'while :; do sleep 3600; done']
  // no pipe to runc: a detached container keeps its stdio open, so a pipe would never end; errors go to runc's log
  const runcLog = path.join(home, 'peer-runc.log')
  const runc = (...args) => {
    const r = spawnSync(RUNC, ['--root', state, '--log', runcLog, ...args], {stdio: 'ignore'})
    if (r.status !== 0) throw Object.assign(new Error(`runc ${args.join(' ')} exited ${r.status}`), {stderr: fs.readFileSync(runcLog, 'utf8').split('\n').slice(-3).join('\n')})
  }
  const peer = {runtime: 'runc'}
  try {
    await new Promise((r) => setTimeout(r, 1000))
    const info0 = meminfo()
    const create = []
    for (const id of ids) {
      cfg.linux.cgroupsPath = `/${parent}/${id}`
      fs.writeFileSync(path.join(bundle, 'config.json'), JSON.stringify(cfg))
      create.push(await timed(() => runc('run', '-d', '--bundle', bundle, id)))
    }
    await new Promise((r) => setTimeout(r, 1000))
    const info1 = meminfo()
    const pids = ids.map((id) => Number(JSON.parse(spawnSync(RUNC, ['--root', state, 'state', id], {encoding: 'utf8'}).stdout).pid))
    const procs = pids.flatMap((p) => [p, ...children(p)])
    const procPss = procs.reduce((a, p) => a + pss(p), 0)
    const kernelPerTenantKiB = Object.fromEntries(KERNEL_PARTS.map((k) => [k, (info1[k] - info0[k]) / N / 1024]))
    const rm = []
    for (const id of ids) rm.push(await timed(() => runc('delete', '-f', id)))
    Object.assign(peer, summarize(create, rm), {
      processesPerTenant: procs.length / N,
      processPssPerTenantKiB: procPss / N / 1024,
      kernelPerTenantKiB,
      heldPerTenantMiB: (held(kernelPerTenantKiB) + procPss / N / 1024) / 1024,
    })
  } finally {
    for (const id of ids) spawnSync(RUNC, ['--root', state, 'delete', '-f', id], {stdio: 'ignore'})
    // runc leaves the parent it was given; what is still there after that is a leftover
    const left = []
    // below each v1 hierarchy (and a hybrid host's unified tree), or below the root of a pure v2 host
    for (const h of ['', ...fs.readdirSync('/sys/fs/cgroup')]) {
      const d = path.join('/sys/fs/cgroup', h, parent)
      if (!fs.existsSync(d)) continue
      left.push(...fs.readdirSync(d, {withFileTypes: true}).filter((e) => e.isDirectory()).map((e) => path.join(d, e.name)))
      try {
        fs.rmdirSync(d)
      } catch {}
    }
    peer.leftBehind = {cgroups: left.length, containers: fs.existsSync(state) ? fs.readdirSync(state).length : 0}
  }
  return peer
}

let failed = false
const report = {tenants: N, cpus: os.cpus().length}
try {
  velo('sandbox', 'run', '--rm', '--', 'true') // the default image and its farm, once
  // idle tenants first (no main command: velo-init alone, as a CI job's tenant between execs): what one costs the
  // host, kernel + init, the issue's "host memory per idle tenant"; first, so that no freed tenant's slab objects
  // are there to be reused (which would understate it)
  const idleNames = Array.from({length: IDLE}, (_, i) => `i-${String(i).padStart(4, '0')}`)
  await new Promise((r) => setTimeout(r, 1000))
  const idle0 = meminfo()
  for (const n of idleNames) velo('sandbox', 'create', n)
  await new Promise((r) => setTimeout(r, 1000))
  const idle1 = meminfo()
  const idleInitPss = idleNames.reduce((a, n) => a + pss(JSON.parse(fs.readFileSync(path.join(home, 'tenants', n, 'state.json'), 'utf8')).pid), 0)
  for (const n of idleNames) velo('sandbox', 'rm', '-f', n)
  Object.assign(report, {
    idleTenants: IDLE,
    idleHostMemPerTenantMiB: (idle0.MemAvailable - idle1.MemAvailable) / IDLE / 2 ** 20,
    idleInitPssPerTenantKiB: idleInitPss / IDLE / 1024,
    idleKernelPerTenantKiB: Object.fromEntries(KERNEL_PARTS.map((k) => [k, (idle1[k] - idle0[k]) / IDLE / 1024])),
  })
  report.idleHeldPerTenantMiB = (held(report.idleKernelPerTenantKiB) + report.idleInitPssPerTenantKiB) / 1024

  await new Promise((r) => setTimeout(r, 500))
  const mem0 = memAvailable()
  const info0 = meminfo()
  const files0 = openFiles()
  const mounts0 = mountCount()
  const create = []
  for (const n of names) create.push(await timed(() => velo('sandbox', 'create', n, '--', 'sh', '-c', 'while :; do sleep 3600; done')))
  await new Promise((r) => setTimeout(r, 1000))
  const memUsed = mem0 - memAvailable()
  const info1 = meminfo()
  const kernelPerTenantKiB = Object.fromEntries(KERNEL_PARTS.map((k) => [k, (info1[k] - info0[k]) / N / 1024]))
  const ls = []
  let running = 0
  for (let i = 0; i < 5; i++) ls.push(await timed(async () => (running = JSON.parse(velo('sandbox', 'ls', '--json').stdout).filter((s) => s.status === 'running').length)))
  const states = names.map((n) => JSON.parse(fs.readFileSync(path.join(home, 'tenants', n, 'state.json'), 'utf8')))
  const monitorPids = names.map((n) => Number(fs.readFileSync(path.join(home, 'tenants', n, 'monitor.pid'), 'utf8').split(' ')[0]))
  const initPss = states.reduce((a, s) => a + pss(s.pid), 0)
  const monPss = monitorPids.reduce((a, p) => a + pss(p), 0)
  // the workload's own processes: every process in the tenant but its init (the main command runs as the monitor's child)
  const tree = (pid) => children(pid).flatMap((c) => [c, ...tree(c)])
  const workPids = monitorPids.flatMap(tree)
  const workPss = workPids.reduce((a, p) => a + pss(p), 0)
  const files = openFiles() - files0
  const mounts = mountCount() - mounts0

  // execs into random tenants, stop/start of some
  const exec = []
  for (let i = 0; i < 200; i++) {
    const n = names[Math.floor(Math.random() * N)]
    exec.push(await timed(() => velo('sandbox', 'exec', n, '--', 'true')))
  }
  const restart = []
  for (let i = 0; i < 20; i++) {
    const n = names[Math.floor((i * N) / 20)]
    restart.push(await timed(async () => {
      velo('sandbox', 'stop', '-t', '1', n)
      velo('sandbox', 'start', n)
    }))
  }
  const rm = []
  for (const n of names) rm.push(await timed(() => velo('sandbox', 'rm', '-f', n)))

  Object.assign(report, summarize(create, rm), {
    runningAtPeak: running,
    execP50: pct(exec, 50),
    execP99: pct(exec, 99),
    stopStartP50: pct(restart, 50),
    lsMsAtPeak: pct(ls, 50),
    hostMemPerTenantMiB: memUsed / N / 2 ** 20,
    initPssPerTenantKiB: initPss / N / 1024,
    monitorPssPerTenantKiB: monPss / N / 1024,
    workloadPssPerTenantKiB: workPss / N / 1024,
    workloadProcessesPerTenant: workPids.length / N,
    kernelPerTenantKiB,
    heldPerTenantMiB: (held(kernelPerTenantKiB) + (initPss + monPss + workPss) / N / 1024) / 1024,
    openFilesAtPeak: files,
    mountsAtPeak: mounts,
  })

  // leftovers
  const leftMounts = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(home))
  const leftProcs = [...states.map((s) => s.pid), ...monitorPids].filter((p) => {
    try {
      return !/\) [ZX] /.test(fs.readFileSync(`/proc/${p}/stat`, 'utf8'))
    } catch {
      return false
    }
  })
  // the cgroups each tenant's boot recorded in its state while it ran (velo decides where they are)
  const leftCgroups = states.flatMap((s) => s.cgroups ?? []).filter((d) => fs.existsSync(d))
  const leftDirs = fs.readdirSync(path.join(home, 'tenants'))
  report.leftBehind = {mounts: leftMounts.length, processes: leftProcs.length, cgroups: leftCgroups.length, tenantDirs: leftDirs.length}
  if (leftMounts.length || leftProcs.length || leftCgroups.length || leftDirs.length) failed = true
  if (PEER) {
    report.peer = await peerRunc()
    if (report.peer.leftBehind.cgroups || report.peer.leftBehind.containers) failed = true
  }

  const f = (x) => x.toFixed(1)
  console.log(`stress: ${N} tenants (each with a main command under its monitor), one CLI call at a time, ${report.cpus} CPUs`)
  console.log('  tenants     create p50   p99    rm p50    p99   (ms, whole CLI call)')
  for (const b of report.buckets) console.log(`  ${b.tenants.padEnd(10)} ${f(b.createP50).padStart(8)} ${f(b.createP99).padStart(6)} ${f(b.rmP50).padStart(8)} ${f(b.rmP99).padStart(6)}`)
  console.log(`  create p50, last bucket / first: ${report.createLastOverFirstP50.toFixed(2)} (target ≤ 1.1); p99/p50 of the last half: ${report.createP99OverP50LastHalf.toFixed(2)} (target ≤ 2)`)
  console.log(`  exec into random tenants: p50 ${f(report.execP50)} ms, p99 ${f(report.execP99)} ms; stop + start: p50 ${f(report.stopStartP50)} ms`)
  console.log(`  sandbox ls --json with ${running} running: ${f(report.lsMsAtPeak)} ms (target ≤ 50)`)
  console.log(`  host memory per tenant with its workload: ${report.heldPerTenantMiB.toFixed(2)} MiB held (kernel's unreclaimable + PSS), ${report.hostMemPerTenantMiB.toFixed(2)} MiB MemAvailable drop; PSS init ${f(report.initPssPerTenantKiB)} KiB + monitor ${f(report.monitorPssPerTenantKiB)} KiB`)
  console.log(`    the workload's ${report.workloadProcessesPerTenant.toFixed(1)} processes: PSS ${f(report.workloadPssPerTenantKiB)} KiB; kernel: ${KERNEL_PARTS.map((k) => `${k} ${f(kernelPerTenantKiB[k])}`).join(', ')} KiB`)
  console.log(`  an idle tenant (no main command; ${IDLE} of them): ${report.idleHeldPerTenantMiB.toFixed(2)} MiB held (target ≤ 0.3), ${report.idleHostMemPerTenantMiB.toFixed(2)} MiB MemAvailable drop; PSS init ${f(report.idleInitPssPerTenantKiB)} KiB; kernel: ${KERNEL_PARTS.map((k) => `${k} ${f(report.idleKernelPerTenantKiB[k])}`).join(', ')} KiB`)
  console.log(`  at peak: ${files} more open files, ${mounts} more mounts in the host namespace`)
  console.log(`  left behind: ${JSON.stringify(report.leftBehind)}`)
  if (report.peer) {
    const p = report.peer
    console.log(`peer: ${N} runc containers of the same image and main command (runc run -d, runc delete -f), same run`)
    console.log('  tenants     create p50   p99    rm p50    p99   (ms, whole runc call)   velo create p50 / runc')
    p.buckets.forEach((b, i) => console.log(`  ${b.tenants.padEnd(10)} ${f(b.createP50).padStart(8)} ${f(b.createP99).padStart(6)} ${f(b.rmP50).padStart(8)} ${f(b.rmP99).padStart(6)}   ${(report.buckets[i].createP50 / b.createP50).toFixed(2)}×`))
    console.log(`  create p50, last bucket / first: ${p.createLastOverFirstP50.toFixed(2)} (velo ${report.createLastOverFirstP50.toFixed(2)}); p99/p50 of the last half: ${p.createP99OverP50LastHalf.toFixed(2)} (velo ${report.createP99OverP50LastHalf.toFixed(2)})`)
    console.log(`  host memory per container: ${p.heldPerTenantMiB.toFixed(2)} MiB held (velo ${report.heldPerTenantMiB.toFixed(2)}); its ${p.processesPerTenant.toFixed(1)} processes: PSS ${f(p.processPssPerTenantKiB)} KiB; kernel: ${KERNEL_PARTS.map((k) => `${k} ${f(p.kernelPerTenantKiB[k])}`).join(', ')} KiB`)
    console.log(`  left behind: ${JSON.stringify(p.leftBehind)}`)
  }
  // --json FILE, else bench/results/sandbox-1000-<timestamp>.json (the growth curves of `npm run bench:report`)
  const jsonFile = argv.json || path.join(ROOT, 'bench', 'results', `sandbox-1000-${new Date().toISOString().replace(/[:.]/g, '-')}.json`)
  fs.mkdirSync(path.dirname(jsonFile), {recursive: true})
  fs.writeFileSync(jsonFile, JSON.stringify({kind: 'stress', bench: 'sandbox-1000', date: new Date().toISOString(), source: 'stress run', ...report}, null, 2) + '\n')
  console.log(`  results: ${jsonFile}`)
} catch (err) {
  failed = true
  console.error('stress failed:', String(err.stderr ?? err.message ?? err).split('\n').slice(0, 5).join('\n'))
} finally {
  for (const n of fs.existsSync(path.join(home, 'tenants')) ? fs.readdirSync(path.join(home, 'tenants')).filter((n) => !n.startsWith('.')) : [])
    spawnSync(VELO, ['sandbox', 'rm', '-f', n])
  fs.rmSync(home, {recursive: true, force: true})
}
process.exit(failed ? 1 : 0)
