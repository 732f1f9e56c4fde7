#!/usr/bin/env node
// Projection benchmark (velo run / the LD_PRELOAD shim), every pair measured side by side in one run:
//  1. cold start of node -e "require('<pkg>')" on a projected node_modules vs a real copy on disk
//  2. python3 -c 'import json' with the stdlib projected vs a real copy of it
//  3. velo run start-up on a 50,000-file image vs a 500-file image (and the one-time skeleton build)
// "shim" rows run the program with the shim preloaded (what `velo inception` + the shell hook give you);
// "velo run" rows include the velo CLI itself in front of the program: the native front-end (native/cli/run.c,
// which execs the program in its own process) and, for comparison in the same run, the Node CLI behind it
// (VELO_NATIVE=0).
// Usage: node bench/run.mjs [--runs N]   Work dir: $VELO_BENCH_DIR (default /var/tmp/velo-bench-run).
import * as fs from 'node:fs'
import * as path from 'node:path'
import {execFileSync} from 'node:child_process'
import * as os from 'node:os'
import {benchStart, printRows, ratioRow, sh, VELO, ROOT} from './lib.mjs'

// hyperfine, keeping CPU time (user + system) beside wall time: this 2-core machine is shared with other
// jobs, and CPU time is the steadier measure of what a start-up costs.
function hyperfine(cmds, {runs = 5, warmup = 1} = {}) {
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'velo-hf-')), 'r.json')
  const args = ['--style', 'basic', '--export-json', out, '--runs', String(runs), '--warmup', String(warmup), '-N']
  for (const c of cmds) {
    args.push('--command-name', c.name)
    if (c.prepare) args.push('--prepare', c.prepare)
    args.push(c.cmd)
  }
  execFileSync('hyperfine', args, {stdio: ['ignore', 'inherit', 'inherit']})
  const r = JSON.parse(fs.readFileSync(out, 'utf8'))
  fs.rmSync(path.dirname(out), {recursive: true, force: true})
  return Object.fromEntries(
    r.results.map((x) => [x.command, {mean: x.mean, stddev: x.stddev, median: x.median, cpu: {mean: x.user + x.system}}]),
  )
}
const cpuRow = (what, a, b, peer, target) => ratioRow(`${what} (CPU time)`, a.cpu, b.cpu, peer, target)

const {runs, W} = benchStart('run', {defaultRuns: 10, setup: false})
const H = path.join(W, 'home')
const v = `env VELO_HOME=${H} ${VELO}`
const vNode = `env VELO_HOME=${H} VELO_NATIVE=0 ${VELO}`
const SHIM = path.join(ROOT, 'native', 'build', 'libvelo-shim.so')
const shimEnv = `env LD_PRELOAD=${SHIM} VELO_SHIM_CAS=${H}/cas/blake3 UV_USE_IO_URING=0`
const plainEnv = `env UV_USE_IO_URING=0`
const ms = (s) => `${(s * 1000).toFixed(1)} ms`
const rows = []
const notes = []

// ---- fixtures (kept between runs) ----
const app = path.join(W, 'app')
if (!fs.existsSync(path.join(app, 'node_modules', '.package-lock.json'))) {
  console.error('bench: installing typescript and express from the npm registry ...')
  fs.mkdirSync(app, {recursive: true})
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({name: 'bench-run', private: true}))
  sh(`cd ${app} && npm install --no-audit --no-fund --loglevel=error typescript@5 express@4`)
}
function synth(name, n) {
  const d = path.join(W, name)
  if (fs.existsSync(path.join(d, '.done'))) return d
  fs.rmSync(d, {recursive: true, force: true})
  sh(`python3 - <<'PY'
import os
d = ${JSON.stringify(d)}
n = ${n}
for i in range(n):
    sub = os.path.join(d, 'd%03d' % (i // 100))
    os.makedirs(sub, exist_ok=True)
    with open(os.path.join(sub, 'f%05d.js' % i), 'w') as f:
        f.write('module.exports = %d\\n' % i)
open(os.path.join(d, '.done'), 'w').close()
PY`)
  return d
}
const s500 = synth('files500', 500)
const s50k = synth('files50000', 50000)

fs.rmSync(H, {recursive: true, force: true})
console.error('bench: ingesting the images ...')
sh(`${v} ingest ${app}/node_modules --name bench-nm >/dev/null 2>&1`)
sh(`${v} ingest /usr/lib/python3.11 --name bench-py >/dev/null 2>&1`)
sh(`${v} ingest ${s500} --name bench-500 >/dev/null 2>&1 && ${v} ingest ${s50k} --name bench-50000 >/dev/null 2>&1`)

// real copies and projections side by side
const real = path.join(W, 'real')
const proj = path.join(W, 'proj')
fs.rmSync(real, {recursive: true, force: true})
fs.rmSync(proj, {recursive: true, force: true})
fs.mkdirSync(path.join(real, 'lib'), {recursive: true})
fs.mkdirSync(path.join(proj, 'lib'), {recursive: true})
sh(`cp -a ${app}/node_modules ${real}/ && cp -a /usr/lib/python3.11 ${real}/lib/`)
sh(`cd ${proj} && ${v} run --image bench-nm -- true && ${v} run --image bench-py --at lib/python3.11 -- true`)
// warm both sides (and the store) the same way: one run each
sh(`find ${real} ${H}/cas -type f -print0 | xargs -0 cat >/dev/null`)

// ---- 0. what loading the shim costs at all ----
{
  const r = hyperfine(
    [
      {name: 'plain', cmd: 'env /bin/true'},
      {name: 'shim', cmd: `env LD_PRELOAD=${SHIM} VELO_SHIM_CAS=${H}/cas/blake3 /bin/true`},
    ],
    {runs: 200, warmup: 10},
  )
  const med = (x) => ({mean: x.median})
  rows.push(ratioRow('/bin/true with the shim preloaded vs without (load cost, median)', med(r.shim), med(r.plain), 'no shim', 1.2))
  rows.push(cpuRow('/bin/true with the shim preloaded vs without (load cost)', r.shim, r.plain, 'no shim', 1.2))
}

// ---- 1. node cold start ----
for (const pkg of ['typescript', 'express']) {
  const js = (dir) => `node -e "require('${dir}/node_modules/${pkg}')"`
  const r = hyperfine(
    [
      {name: 'real', cmd: `${plainEnv} ${js(real)}`},
      {name: 'shim', cmd: `${shimEnv} ${js(proj)}`},
      {name: 'velo run', cmd: `${v} run --image bench-nm --at ${proj}/node_modules -- ${js(proj)}`},
      {name: 'velo run (Node CLI)', cmd: `${vNode} run --image bench-nm --at ${proj}/node_modules -- ${js(proj)}`},
    ],
    {runs, warmup: 2},
  )
  rows.push(ratioRow(`node require('${pkg}'), shim preloaded vs real copy`, r.shim, r.real, 'real copy', 1.2))
  rows.push(cpuRow(`node require('${pkg}'), shim preloaded vs real copy`, r.shim, r.real, 'real copy', 1.2))
  rows.push(ratioRow(`node require('${pkg}'), whole \`velo run\` vs real copy`, r['velo run'], r.real, 'real copy', 1.2))
  rows.push(cpuRow(`node require('${pkg}'), whole \`velo run\` vs real copy`, r['velo run'], r.real, 'real copy', 1.2))
  rows.push(ratioRow(`node require('${pkg}'), \`velo run\` through the Node CLI (VELO_NATIVE=0) vs real copy`, r['velo run (Node CLI)'], r.real, 'real copy', 1.2))
  notes.push(`node require('${pkg}'): real ${ms(r.real.mean)}, shim ${ms(r.shim.mean)}, velo run ${ms(r['velo run'].mean)}, velo run via the Node CLI ${ms(r['velo run (Node CLI)'].mean)} (budget: npm start < 200 ms)`)
}

// ---- 2. python stdlib ----
{
  const py = (home) => `env PYTHONHOME=${home} /usr/bin/python3 -c 'import json'`
  const r = hyperfine(
    [
      {name: 'real', cmd: `${plainEnv} ${py(real)}`},
      {name: 'shim', cmd: `${shimEnv} ${py(proj)}`},
      {name: 'velo run', cmd: `${v} run --image bench-py --at ${proj}/lib/python3.11 -- /usr/bin/env PYTHONHOME=${proj} /usr/bin/python3 -c 'import json'`},
      {name: 'velo run (Node CLI)', cmd: `${vNode} run --image bench-py --at ${proj}/lib/python3.11 -- /usr/bin/env PYTHONHOME=${proj} /usr/bin/python3 -c 'import json'`},
    ],
    {runs, warmup: 2},
  )
  rows.push(ratioRow("python3 -c 'import json', stdlib projected (shim) vs real copy", r.shim, r.real, 'real copy', 1.2))
  rows.push(cpuRow("python3 -c 'import json', stdlib projected (shim) vs real copy", r.shim, r.real, 'real copy', 1.2))
  rows.push(ratioRow("python3 -c 'import json', whole `velo run` vs real copy", r['velo run'], r.real, 'real copy', 1.2))
  rows.push(cpuRow("python3 -c 'import json', whole `velo run` vs real copy", r['velo run'], r.real, 'real copy', 1.2))
  rows.push(ratioRow("python3 -c 'import json', `velo run` through the Node CLI (VELO_NATIVE=0) vs real copy", r['velo run (Node CLI)'], r.real, 'real copy', 1.2))
  notes.push(`python3 -c 'import json': real ${ms(r.real.mean)}, shim ${ms(r.shim.mean)}, velo run ${ms(r['velo run'].mean)}, velo run via the Node CLI ${ms(r['velo run (Node CLI)'].mean)} (budget: < 100 ms)`)
}

// ---- 3. start-up vs image size ----
{
  const at = (n) => path.join(W, `at${n}`)
  const first = hyperfine(
    [
      {name: '500', prepare: `rm -rf ${at(500)}`, cmd: `${v} run --image bench-500 --at ${at(500)} -- /bin/true`},
      {name: '50000', prepare: `rm -rf ${at(50000)}`, cmd: `${v} run --image bench-50000 --at ${at(50000)} -- /bin/true`},
    ],
    {runs: 3, warmup: 0},
  )
  notes.push(`first velo run (builds the skeleton once): 500 files ${ms(first['500'].mean)}, 50,000 files ${ms(first['50000'].mean)}`)
  const r = hyperfine(
    [
      {name: '500', cmd: `${v} run --image bench-500 --at ${at(500)} -- /bin/true`},
      {name: '50000', cmd: `${v} run --image bench-50000 --at ${at(50000)} -- /bin/true`},
    ],
    {runs, warmup: 2},
  )
  rows.push(ratioRow('velo run start-up, 50,000-file image vs 500-file image', r['50000'], r['500'], '500 files', 1.2))
  rows.push(cpuRow('velo run start-up, 50,000-file image vs 500-file image', r['50000'], r['500'], '500 files', 1.2))
  // what the CLI in front costs: velo run of /bin/true vs node doing nothing
  const c = hyperfine(
    [
      {name: 'node -e 0', cmd: 'node -e 0'},
      {name: 'velo --version', cmd: `${VELO} --version`},
      {name: 'velo run -- /bin/true', cmd: `${v} run --image bench-500 --at ${at(500)} -- /bin/true`},
      {name: 'velo run -- /bin/true (Node CLI)', cmd: `${vNode} run --image bench-500 --at ${at(500)} -- /bin/true`},
      {name: '/bin/true', cmd: '/bin/true'},
    ],
    {runs, warmup: 2},
  )
  rows.push(ratioRow('velo run -- /bin/true: native front-end vs the Node CLI (what velo itself costs)', c['velo run -- /bin/true'], c['velo run -- /bin/true (Node CLI)'], 'Node CLI', 1.0))
  notes.push(`CLI start-up: /bin/true ${ms(c['/bin/true'].mean)}, node -e 0 ${ms(c['node -e 0'].mean)}, velo --version ${ms(c['velo --version'].mean)}, velo run -- /bin/true ${ms(c['velo run -- /bin/true'].mean)} (CPU ${ms(c['velo run -- /bin/true'].cpu.mean)}), through the Node CLI ${ms(c['velo run -- /bin/true (Node CLI)'].mean)}`)
  const p = hyperfine(
    [
      {name: '500', cmd: `${path.join(ROOT, 'native/build/velo-project')} build ${H} ${at(500)} ${sh(`${v} image inspect bench-500 --json | node -e "process.stdout.write(JSON.parse(require('fs').readFileSync(0)).layers.reverse().join(' '))"`)}`},
      {name: '50000', cmd: `${path.join(ROOT, 'native/build/velo-project')} build ${H} ${at(50000)} ${sh(`${v} image inspect bench-50000 --json | node -e "process.stdout.write(JSON.parse(require('fs').readFileSync(0)).layers.reverse().join(' '))"`)}`},
    ],
    {runs, warmup: 2},
  )
  rows.push(ratioRow('projection check of an existing skeleton (velo-project), 50,000 vs 500 files', p['50000'], p['500'], '500 files', 1.2))
}

const text = printRows('Projection (velo run)', rows)
console.log('\n' + notes.map((n) => `- ${n}`).join('\n'))
fs.mkdirSync(path.join(ROOT, 'bench', 'results'), {recursive: true})
fs.writeFileSync(path.join(ROOT, 'bench', 'results', 'run.md'), `${text}\n\n${notes.map((n) => `- ${n}`).join('\n')}\n\nload average at the end: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}\nCommand: node bench/run.mjs --runs ${runs}\n`)
