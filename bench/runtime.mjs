#!/usr/bin/env node
// OCI runtime benchmark: velo-runtime (native/build/velo-runtime) vs runc (/usr/sbin/runc, the reference) on the
// SAME bundle, every command measured side by side in the same hyperfine calls:
//  1. `run ID` (create + start + wait + delete in one call)
//  2. create, start, wait (poll `state` until "stopped"), delete as four separate invocations (what an engine's
//     shim does), one small sh script per runtime
//  3. the floor: `unshare -m -p -n -u -i -C --fork true` (the namespaces alone, no runtime)
//  4. `exec ID true` into a running container
// The bundle is what test/runtime/fixture.ts makes: a busybox rootfs (static /bin/busybox + applet links,
// /etc/passwd, /etc/group), read-only, and a config like `runc spec` (terminal false) running
// ["/bin/busybox", "true"].
// Usage: node bench/runtime.mjs [--runs N (default 30)] [--rounds R (default 5: the runs are split into R hyperfine
// calls, pooled)]   Work dir: $VELO_BENCH_DIR (default /var/tmp/velo-bench-runtime),
// removed at the end, with every container (kill + delete --force in both state roots).
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import {spawn, spawnSync} from 'node:child_process'
import {benchStart, ratioRow, sh, ROOT, writeResults} from './lib.mjs'

// hyperfine through a shell (hyperfine subtracts the shell's own start-up). This 2-core machine is shared with
// other jobs whose load comes in bursts, and hyperfine runs one command's runs back to back: so the runs are
// split into `rounds` hyperfine calls and pooled, each command getting its share of every stretch of time.
// Mean, stddev, median and minimum come from the pooled times. Run asynchronously in its own process group, so
// a SIGINT/SIGTERM to us stops it before the clean-up.
let hfPid = 0
async function hyperfineOnce(cmds, runs, warmup) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'velo-hf-'))
  const args = ['--style', 'basic', '--export-json', path.join(dir, 'r.json'), '--runs', String(runs), '--warmup', String(warmup)]
  for (const c of cmds) args.push('--command-name', c.name, c.cmd)
  try {
    const p = spawn('hyperfine', args, {stdio: ['ignore', 'inherit', 'inherit'], detached: true})
    hfPid = p.pid
    const code = await new Promise((res, rej) => (p.on('error', rej), p.on('exit', (c, sig) => res(sig ? 128 : c))))
    hfPid = 0
    if (code !== 0) throw new Error(`hyperfine failed (exit ${code})`)
    return JSON.parse(fs.readFileSync(path.join(dir, 'r.json'), 'utf8')).results
  } finally {
    fs.rmSync(dir, {recursive: true, force: true})
  }
}
async function hyperfine(cmds, {runs, warmup, rounds}) {
  const times = Object.fromEntries(cmds.map((c) => [c.name, []]))
  for (let i = 0; i < rounds; i++)
    for (const x of await hyperfineOnce(cmds, Math.max(1, Math.round(runs / rounds)), i === 0 ? warmup : 1)) times[x.command].push(...x.times)
  return Object.fromEntries(
    Object.entries(times).map(([k, t]) => {
      const s = [...t].sort((a, b) => a - b)
      const mean = t.reduce((a, b) => a + b, 0) / t.length
      const stddev = Math.sqrt(t.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, t.length - 1))
      const median = s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
      return [k, {mean, stddev, median, min: s[0], n: t.length}]
    }),
  )
}

const VR = path.join(ROOT, 'native', 'build', 'velo-runtime')
const RUNC = '/usr/sbin/runc'
const log = (m) => console.error(`bench: ${m}`)
const loadavg = () => os.loadavg().map((x) => x.toFixed(2)).join(' ')
const ms = (s) => `${(s * 1000).toFixed(1)} ms`

if (!fs.existsSync(VR)) sh(`make -s -C ${ROOT}/native`)
const {runs, W} = benchStart('runtime', {defaultRuns: 30, setup: false})
const rounds = Number(process.argv.includes('--rounds') ? process.argv[process.argv.indexOf('--rounds') + 1] : 5) || 5
const load0 = loadavg()
fs.rmSync(W, {recursive: true, force: true})
fs.mkdirSync(W, {recursive: true})

// ---- the bundle (as test/runtime/fixture.ts builds it) ----
const rootfs = path.join(W, 'rootfs')
for (const d of ['bin', 'etc', 'tmp', 'proc', 'sys', 'dev', 'root']) fs.mkdirSync(path.join(rootfs, d), {recursive: true})
fs.chmodSync(path.join(rootfs, 'tmp'), 0o1777)
fs.copyFileSync('/bin/busybox', path.join(rootfs, 'bin', 'busybox'))
fs.chmodSync(path.join(rootfs, 'bin', 'busybox'), 0o755)
for (const a of spawnSync('/bin/busybox', ['--list'], {encoding: 'utf8'}).stdout.split('\n').filter(Boolean))
  if (a !== 'busybox') fs.symlinkSync('busybox', path.join(rootfs, 'bin', a))
fs.writeFileSync(path.join(rootfs, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n')
fs.writeFileSync(path.join(rootfs, 'etc', 'group'), 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\n')

function bundle(name, args) {
  const dir = path.join(W, name)
  fs.mkdirSync(dir)
  sh(`cd ${dir} && ${RUNC} spec`) // runc's own default config, so both runtimes get exactly what runc proposes
  const c = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'))
  c.root = {path: rootfs, readonly: true}
  c.process.terminal = false
  c.process.args = args
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(c, null, 2))
  return dir
}
const B = bundle('bundle', ['/bin/busybox', 'true'])
const BX = bundle('bundle-exec', ['/bin/busybox', 'sleep', '100000'])
const RT = {velo: VR, runc: RUNC}
const state = (n) => path.join(W, `state-${n}`)

// the four calls as an engine makes them; "wait" polls `state` (a CLI caller has no other way: the
// container's process is not its child), so the poll count is part of what is measured
fs.writeFileSync(
  path.join(W, 'cycle.sh'),
  `#!/bin/sh
# cycle.sh RUNTIME ROOT BUNDLE: create, start, wait (poll state), delete; the id is unique per call
set -e
rt=$1 root=$2 b=$3 id=c$$
"$rt" --root "$root" create --bundle "$b" "$id" </dev/null >/dev/null 2>&1
"$rt" --root "$root" start "$id"
until "$rt" --root "$root" state "$id" | grep -q '"status": *"stopped"'; do [ -z "$COUNT" ] || echo poll >&2; done
"$rt" --root "$root" delete "$id"
`,
)
fs.chmodSync(path.join(W, 'cycle.sh'), 0o755)

function cleanup() {
  for (const [n, bin] of Object.entries(RT)) {
    const r = spawnSync(bin, ['--root', state(n), 'list', '--quiet'], {encoding: 'utf8'})
    for (const id of String(r.stdout || '').split('\n').filter(Boolean)) {
      spawnSync(bin, ['--root', state(n), 'kill', id, 'KILL'], {stdio: 'ignore'})
      spawnSync(bin, ['--root', state(n), 'delete', '--force', id], {stdio: 'ignore'})
    }
  }
}

// killed (timeout, Ctrl-C): stop hyperfine, then remove the containers (the exec ones would outlive us)
for (const sig of ['SIGINT', 'SIGTERM'])
  process.on(sig, () => {
    if (hfPid) {
      try {
        process.kill(-hfPid, 'SIGKILL')
      } catch {}
    }
    cleanup()
    fs.rmSync(W, {recursive: true, force: true})
    process.exit(128 + (sig === 'SIGINT' ? 2 : 15))
  })

const rows = []
const notes = []
let results
const polls = {}
try {
  // sanity: both runtimes run the bundle and exec works, before anything is timed. The containers' stdio goes
  // to /dev/null: a detached container holding our pipe would keep sh() waiting for EOF.
  for (const [n, bin] of Object.entries(RT)) {
    sh(`${bin} --root ${state(n)} run --bundle ${B} sanity-${n} </dev/null`, {timeout: 30_000})
    sh(`${W}/cycle.sh ${bin} ${state(n)} ${B}`, {timeout: 30_000})
    sh(`${bin} --root ${state(n)} create --bundle ${BX} x-${n} </dev/null >/dev/null 2>&1 && ${bin} --root ${state(n)} start x-${n}`, {timeout: 30_000})
    sh(`${bin} --root ${state(n)} exec x-${n} /bin/busybox true`, {timeout: 30_000})
  }

  // how many `state` calls "wait" takes (outside the timed runs: COUNT makes the loop report each miss)
  for (const [n, bin] of Object.entries(RT)) {
    let misses = 0
    for (let i = 0; i < 10; i++) misses += sh(`COUNT=1 ${W}/cycle.sh ${bin} ${state(n)} ${B} 2>&1 >/dev/null`, {timeout: 30_000}).split('\n').filter((l) => l === 'poll').length
    polls[n] = 1 + misses / 10
  }

  log(`${runs} runs per command in ${rounds} rounds; load average ${load0}`)
  // every command in each round, so every number shares the machine's state. Each command runs in a fresh sh
  // (hyperfine subtracts the shell's own start-up), so $$ is a new id per iteration.
  results = await hyperfine(
    [
      {name: 'velo run', cmd: `${VR} --root ${state('velo')} run --bundle ${B} r$$`},
      {name: 'runc run', cmd: `${RUNC} --root ${state('runc')} run --bundle ${B} r$$`},
      {name: 'velo create+start+wait+delete', cmd: `${W}/cycle.sh ${VR} ${state('velo')} ${B}`},
      {name: 'runc create+start+wait+delete', cmd: `${W}/cycle.sh ${RUNC} ${state('runc')} ${B}`},
      {name: 'unshare floor', cmd: 'unshare -m -p -n -u -i -C --fork true'},
      {name: 'velo exec', cmd: `${VR} --root ${state('velo')} exec x-velo /bin/busybox true`},
      {name: 'runc exec', cmd: `${RUNC} --root ${state('runc')} exec x-runc /bin/busybox true`},
    ],
    {runs, warmup: 3, rounds},
  )
} finally {
  cleanup()
  const left = ['velo', 'runc'].flatMap((n) => (fs.existsSync(state(n)) ? fs.readdirSync(state(n)) : []))
  if (left.length) console.error(`bench: containers left in the state roots after cleanup: ${left.join(' ')}`)
  fs.rmSync(W, {recursive: true, force: true})
}

const r = results
rows.push(ratioRow('`run ID` (create + start + wait + delete in one call) of `true`', r['velo run'], r['runc run'], 'runc', 0.5))
rows.push(ratioRow('create, start, wait (poll `state`), delete as 4+ calls', r['velo create+start+wait+delete'], r['runc create+start+wait+delete'], 'runc', 0.5))
const info = [
  ['`run ID` vs the namespaces alone', r['velo run'], r['unshare floor'], 'unshare'],
  ['`runc run ID` vs the namespaces alone', r['runc run'], r['unshare floor'], 'unshare'],
  ['`exec ID true` into a running container', r['velo exec'], r['runc exec'], 'runc'],
]
const lines = ['\n## OCI runtime: velo-runtime vs runc, same bundle', '', '| what | velo-runtime | peer | ratio | target | |', '| --- | --- | --- | --- | --- | --- |']
for (const x of rows) lines.push(`| ${x.what} | ${ms(x.velo)} | ${x.peerName} ${ms(x.peer)} | ${x.ratio.toFixed(2)}× | ${x.target} | ${x.ok ? 'met' : 'NOT met'} |`)
for (const [what, a, b, peer] of info) lines.push(`| ${what} | ${ms(a.mean)} | ${peer} ${ms(b.mean)} | ${(a.mean / b.mean).toFixed(2)}× | — | |`)
notes.push(`all commands, mean ± stddev (median, min) over ${r['velo run'].n} runs each: ${Object.entries(r).map(([k, x]) => `${k} ${ms(x.mean)} ± ${ms(x.stddev)} (${ms(x.median)}, ${ms(x.min)})`).join('; ')}`)
notes.push(`the same ratios on medians: run ${(r['velo run'].median / r['runc run'].median).toFixed(2)}×, four calls ${(r['velo create+start+wait+delete'].median / r['runc create+start+wait+delete'].median).toFixed(2)}×, run vs unshare ${(r['velo run'].median / r['unshare floor'].median).toFixed(2)}×, exec ${(r['velo exec'].median / r['runc exec'].median).toFixed(2)}×`)
notes.push(`\`state\` calls per wait (mean of 10 cycles, untimed): velo-runtime ${polls.velo.toFixed(1)}, runc ${polls.runc.toFixed(1)}`)
notes.push(`load average (1, 5, 15 min): ${load0} at the start, ${loadavg()} at the end (2 cores)`)
writeResults('OCI runtime: velo-runtime vs runc, same bundle', rows)
const text = `${lines.join('\n')}\n\n${notes.map((n) => `- ${n}`).join('\n')}\n\nCommand: node bench/runtime.mjs --runs ${runs} --rounds ${rounds} (${new Date().toISOString()})\n`
console.log(text)
fs.mkdirSync(path.join(ROOT, 'bench', 'results'), {recursive: true})
fs.writeFileSync(path.join(ROOT, 'bench', 'results', 'runtime.md'), text)
