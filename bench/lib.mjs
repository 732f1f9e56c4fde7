// Shared bench helpers: hyperfine runs with JSON export, ratio tables.
import {execFileSync, spawn} from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import * as os from 'node:os'

export const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..')
export const VELO = path.join(ROOT, 'bin', 'velo') // as users run it: native front-end, Node CLI behind it

/**
 * Time commands with hyperfine (warm-up, several runs, optional prepare per command). Returns the mean
 * and stddev in seconds per command name.
 */
export function hyperfine(cmds, {runs = 5, warmup = 1} = {}) {
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'velo-hf-')), 'r.json')
  const args = ['--style', 'basic', '--export-json', out, '--runs', String(runs), '--warmup', String(warmup), '-N']
  // hyperfine applies a single --prepare to EVERY command: when any command has one, give each its own
  // (a no-op `true` for those without), so a cache-dropping prepare never leaks into a warm benchmark
  const anyPrepare = cmds.some((c) => c.prepare)
  for (const c of cmds) {
    args.push('--command-name', c.name)
    if (anyPrepare) args.push('--prepare', c.prepare || 'true')
    args.push(c.cmd)
  }
  // -N (no shell) needs --prepare to be run by a shell anyway; hyperfine does that. Commands with shell
  // syntax set shell: true.
  if (cmds.some((c) => c.shell)) args.splice(args.indexOf('-N'), 1)
  try {
    execFileSync('hyperfine', args, {stdio: ['ignore', 'inherit', 'inherit']})
    const r = JSON.parse(fs.readFileSync(out, 'utf8'))
    return Object.fromEntries(r.results.map((x) => [x.command, {mean: x.mean, stddev: x.stddev}]))
  } finally {
    fs.rmSync(path.dirname(out), {recursive: true, force: true}) // also when hyperfine fails
  }
}

/**
 * A new directory for every run of a command; all of them removed when the bench exits, never between timed runs.
 * An `rm -rf` of many files makes ext4 skip the inodes it freed for the next 30 s whenever new ones are allocated
 * (recently_deleted(), which reads inode-table blocks to find them: perf put 30% of a `cp -a` there), so whatever
 * deleted last before a run slowed that run (`cp -a` of the same 2,199 entries 0.20 s settled, 0.55–1.7 s after
 * deletions). prepare goes in the hyperfine entry (create: the directory is made too), dir is the shell words naming
 * this run's directory (so the entry needs shell: true).
 */
export function freshDirEachRun(base, {create = false} = {}) {
  fs.rmSync(base, {recursive: true, force: true})
  fs.mkdirSync(base, {recursive: true})
  const next = `${base}.next`
  removeAtExit(base, next)
  return {
    prepare: `d=${base}/$(date +%s%N) && ${create ? 'mkdir $d && ' : ''}echo $d > ${next} && sync`,
    dir: `$(cat ${next})`,
  }
}

/** Remove these paths when the bench exits (not between timed runs: freshDirEachRun says why). */
const atExit = []
export function removeAtExit(...paths) {
  if (!atExit.length) {
    process.on('exit', () => atExit.forEach((p) => fs.rmSync(p, {recursive: true, force: true})))
    // Ctrl-C or a kill: exit through 'exit', so what the runs wrote (up to GBs) goes too
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.once(sig, () => process.exit(128 + os.constants.signals[sig]))
  }
  atExit.push(...paths)
}

export function ratioRow(what, velo, peer, peerName, target, better = 'lower', unit = 's') {
  const ratio = velo.mean / peer.mean
  const ok = better === 'lower' ? ratio <= target : ratio >= target
  return {what, velo: velo.mean, peer: peer.mean, peerName, ratio, target: `${better === 'lower' ? '≤' : '≥'} ${target}`, ok, unit}
}

export function printRows(title, rows) {
  const lines = [`\n## ${title}`, '', '| what | velo | peer | ratio | target | |', '| --- | --- | --- | --- | --- | --- |']
  for (const r of rows)
    lines.push(`| ${r.what} | ${fmt(r.velo, r.unit)} | ${r.peerName} ${fmt(r.peer, r.unit)} | ${r.ratio.toFixed(2)}× | ${r.target} | ${r.ok ? 'met' : 'NOT met'} |`)
  const text = lines.join('\n')
  console.log(text)
  writeResults(title, rows)
  return text
}

/**
 * Every printed table is also a machine-readable run: bench/results/<bench>-<timestamp>.json (or under
 * $VELO_BENCH_RESULTS), which `npm run bench:report` charts. Values as measured, in the row's unit (seconds for
 * times); nothing is rounded.
 */
export function writeResults(title, rows, {bench = path.basename(process.argv[1] || 'bench', '.mjs'), date = new Date()} = {}) {
  const dir = process.env.VELO_BENCH_RESULTS || path.join(ROOT, 'bench', 'results')
  fs.mkdirSync(dir, {recursive: true})
  const stamp = date.toISOString().replace(/[:.]/g, '-')
  const run = {
    kind: 'bench',
    bench,
    title,
    date: date.toISOString(),
    source: 'bench run',
    host: {cpus: os.cpus().length, load1: os.loadavg()[0]},
    rows: rows.map((r) => {
      const m = /^(≤|≥)\s*([\d.]+)/.exec(r.target || '')
      return {
        what: r.what,
        velo: {value: r.velo, unit: r.unit || 's'},
        peer: {name: r.peerName, value: r.peer, unit: r.unit || 's'},
        ratio: r.ratio,
        target: m ? {better: m[1] === '≤' ? 'lower' : 'higher', value: Number(m[2])} : null,
        met: r.ok === undefined ? null : r.ok,
      }
    }),
  }
  // a bench may print several tables in one run: each gets its own file (title slug keeps them apart)
  const slug = title.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 40)
  const file = path.join(dir, `${bench}-${slug}-${stamp}.json`)
  fs.writeFileSync(file, JSON.stringify(run, null, 2) + '\n')
  return file
}

const fmt = (v, unit = 's') => (unit !== 's' ? `${v.toFixed(2)} ${unit}` : v < 1 ? `${(v * 1000).toFixed(1)} ms` : `${v.toFixed(3)} s`)

export function sh(cmd, opts = {}) {
  return execFileSync('bash', ['-c', cmd], {encoding: 'utf8', maxBuffer: 1 << 28, ...opts})
}

/**
 * What every bench does first: `--runs N` from argv (default `defaultRuns`), its work dir ($VELO_BENCH_DIR, else
 * /var/tmp/velo-bench-NAME, kept between runs for inputs that take a while to make), and, unless told not to,
 * scripts/setup.sh (the same install the README's commands run).
 */
export function benchStart(name, {defaultRuns = 5, setup = true} = {}) {
  const i = process.argv.indexOf('--runs')
  const runs = (i >= 0 && Number(process.argv[i + 1])) || defaultRuns
  const W = process.env.VELO_BENCH_DIR || `/var/tmp/velo-bench-${name}`
  fs.mkdirSync(W, {recursive: true})
  if (setup) sh(`bash ${ROOT}/scripts/setup.sh`)
  return {runs, W}
}

/**
 * A private dockerd for a bench, started and waited for: no bridge, no iptables (no traffic beyond loopback and the
 * bench's own containers), overlay2, its data root, exec root, pidfile, socket and log under DIR. Returns `docker`
 * (the CLI prefix that talks to it), `dataRoot` (its files), and stop(): its containers removed, the daemon ended
 * (SIGKILL after 20 s), whatever it left mounted under DIR detached. extraArgs: more dockerd flags.
 */
export async function startDockerd(dir, {extraArgs = []} = {}) {
  fs.mkdirSync(dir, {recursive: true})
  const sock = path.join(dir, 'docker.sock')
  const dataRoot = path.join(dir, 'data')
  const logFile = path.join(dir, 'dockerd.log')
  const out = fs.openSync(logFile, 'a')
  const proc = spawn(
    'dockerd',
    ['--bridge=none', '--iptables=false', '--ip-masq=false', '--storage-driver=overlay2', '--log-level=warn', `--data-root=${dataRoot}`, `--exec-root=${dir}/exec`, `--pidfile=${dir}/docker.pid`, `--host=unix://${sock}`, ...extraArgs],
    {stdio: ['ignore', out, out]},
  )
  fs.closeSync(out)
  let exited = false
  proc.on('exit', () => (exited = true))
  const docker = `docker -H unix://${sock}`
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
  const stop = async () => {
    if (!exited) {
      try {
        sh(`${docker} ps -aq | xargs -r ${docker} rm -f >/dev/null 2>&1 || true`)
      } catch {}
      proc.kill('SIGTERM')
      for (let i = 0; i < 200 && !exited; i++) await sleep(100)
      if (!exited) proc.kill('SIGKILL')
      for (let i = 0; i < 50 && !exited; i++) await sleep(100)
    }
    const mounts = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4]).filter((m) => m?.startsWith(dir + '/'))
    for (const m of mounts.sort((a, b) => b.length - a.length)) sh(`umount -l ${m} 2>/dev/null || true`)
  }
  for (let i = 0; i < 300; i++) {
    if (exited) throw new Error(`dockerd exited: ${fs.readFileSync(logFile, 'utf8').slice(-2000)}`)
    try {
      sh(`${docker} version >/dev/null 2>&1`)
      return {docker, dataRoot, stop}
    } catch {}
    await sleep(100)
  }
  await stop()
  throw new Error(`dockerd did not answer within 30 s; see ${logFile}`)
}
