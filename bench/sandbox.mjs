#!/usr/bin/env node
// Sandbox benchmark: velo vs Docker (dockerd from Debian's docker.io, started here with --bridge=none
// --iptables=false and stopped at the end; image made with `docker import` of the same rootfs), runc and
// bwrap, all measured side by side in one run with hyperfine.  Usage: node bench/sandbox.mjs [--runs N]
//   [--fleet N] [--skip-fleet] [--skip-scale] [--skip-userns] [--skip-service] [--only-service]
// Work dir: $VELO_BENCH_DIR (default /var/tmp/velo-bench-sandbox), removed at the end.
import * as fs from 'node:fs'
import * as path from 'node:path'
import {hyperfine, printRows, ratioRow, sh, startDockerd, VELO, ROOT} from './lib.mjs'

const arg = (k, d) => (process.argv.includes(k) ? process.argv[process.argv.indexOf(k) + 1] : d)
const runs = Number(arg('--runs', 10))
const fleetN = Number(arg('--fleet', 100))
const W = process.env.VELO_BENCH_DIR || '/var/tmp/velo-bench-sandbox'
const H = path.join(W, 'home')
const v = `${VELO}`
const log = (m) => console.error(`bench: ${m}`)
// the private dockerd (bench/lib.mjs startDockerd) and the docker CLI prefix that talks to it
let dockerd
let d = 'docker'
function cleanupVelo() {
  try {
    const l = JSON.parse(sh(`${v} sandbox ls --json --home ${H}`))
    for (const s of l) sh(`${v} sandbox rm -f ${s.name} --home ${H} >/dev/null 2>&1 || true`)
  } catch {}
}

/** A tree of n small files in dirs of 100, plus the dirs a sandbox root needs. */
function makeTree(dir, n) {
  fs.mkdirSync(dir, {recursive: true})
  for (const x of ['proc', 'sys', 'dev', 'tmp']) fs.mkdirSync(path.join(dir, x))
  for (let i = 0; i < n; i++) {
    const sub = path.join(dir, 'data', `d${Math.floor(i / 100)}`)
    if (i % 100 === 0) fs.mkdirSync(sub, {recursive: true})
    fs.writeFileSync(path.join(sub, `f${i}`), `file ${i}\n`)
  }
}

const rows = []
const notes = []
class Done extends Error {}
try {
  sh(`bash ${ROOT}/scripts/setup.sh`)
  for (const s of sh(`ls ${H}/tenants 2>/dev/null || true`).split('\n').filter(Boolean)) sh(`${v} sandbox rm -f ${s} --home ${H} >/dev/null 2>&1 || true`)
  fs.rmSync(W, {recursive: true, force: true})
  fs.mkdirSync(W, {recursive: true})
  log('building the default rootfs (rootfs/build.sh) and its tarball')
  sh(`bash ${ROOT}/rootfs/build.sh ${W}/rootfs && tar -C ${W}/rootfs -cf ${W}/rootfs.tar .`)
  const files = sh(`find ${W}/rootfs | wc -l`).trim()
  sh(`${v} ingest ${W}/rootfs --name default --home ${H} >/dev/null`)
  sh(`${v} sandbox run --rm --home ${H} -- true`) // builds the farm once
  log('starting dockerd (--bridge=none --iptables=false) and importing the same rootfs')
  dockerd = await startDockerd(path.join(W, 'dockerd'))
  d = dockerd.docker
  sh(`${d} import ${W}/rootfs.tar velo-bench >/dev/null`)
  sh(`${d} run --rm --network none velo-bench true`)
  // runc: an OCI bundle over the same rootfs (read-only root, own namespaces incl. network)
  fs.mkdirSync(`${W}/runc`, {recursive: true})
  sh(`cd ${W}/runc && runc spec`)
  const spec = JSON.parse(fs.readFileSync(`${W}/runc/config.json`, 'utf8'))
  spec.root = {path: `${W}/rootfs`, readonly: true}
  spec.process.terminal = false
  spec.process.args = ['true']
  fs.writeFileSync(`${W}/runc/config.json`, JSON.stringify(spec))
  const runcCmd = `runc --root ${W}/runc-state run -b ${W}/runc bench-$$RANDOM$$RANDOM >/dev/null`
  const bwrapCmd = `bwrap --ro-bind ${W}/rootfs / --proc /proc --dev /dev --tmpfs /tmp --unshare-all --die-with-parent true`

  let r
  // 0. a service: run detached with a published port, until it answers on the host's loopback
  if (!process.argv.includes('--skip-service')) {
    log('a service: run -d -p 127.0.0.1:P:3000 until it answers, and create on a bridge network')
    const SERVER = 'require("http").createServer((q,r)=>r.end("ok")).listen(3000)'
    fs.writeFileSync(`${W}/poll.js`, 'const p=+process.argv[2];(function go(){require("http").get({host:"127.0.0.1",port:p},r=>{r.resume();process.exit(r.statusCode===200?0:1)}).on("error",()=>setTimeout(go,5))})()\n')
    sh(`${d} network create velobench >/dev/null`)
    const [P1, P2] = [18301, 18302]
    r = hyperfine(
      [
        {name: 'velo', shell: true, prepare: `${v} sandbox rm -f svc --home ${H} >/dev/null 2>&1 || true`,
          cmd: `${v} sandbox run -d --name svc --network bridge -p 127.0.0.1:${P1}:3000 --home ${H} -- node -e '${SERVER}' >/dev/null && node ${W}/poll.js ${P1}`},
        {name: 'docker', shell: true, prepare: `${d} rm -f svc >/dev/null 2>&1 || true`,
          cmd: `${d} run -d --name svc --network velobench -p 127.0.0.1:${P2}:3000 velo-bench node -e '${SERVER}' >/dev/null && node ${W}/poll.js ${P2}`},
      ],
      {runs, warmup: 1},
    )
    rows.push(ratioRow('a service: `run -d -p 127.0.0.1:P:3000` until it answers on the host vs `docker run -d -p` (user bridge network, docker-proxy)', r.velo, r.docker, 'docker', 0.3))
    sh(`${v} sandbox rm -f svc --home ${H} >/dev/null 2>&1 || true; ${d} rm -f svc >/dev/null 2>&1 || true; ${d} network rm velobench >/dev/null`)
    r = hyperfine(
      [
        {name: 'loopback', shell: true, prepare: `${v} sandbox rm -f cb0 --home ${H} >/dev/null 2>&1 || true`, cmd: `${v} sandbox create cb0 --home ${H} >/dev/null`},
        {name: 'bridge', shell: true, prepare: `${v} sandbox rm -f cb1 --home ${H} >/dev/null 2>&1 || true`, cmd: `${v} sandbox create cb1 --network bridge --home ${H} >/dev/null`},
      ],
      {runs: Math.max(runs, 10), warmup: 1},
    )
    rows.push(ratioRow('create on a bridge network (CNI bridge + host-local + firewall) vs loopback only', r.bridge, r.loopback, 'loopback', 2))
    sh(`${v} sandbox rm -f cb0 cb1 --home ${H} >/dev/null 2>&1 || true; ${v} network rm bridge --home ${H} >/dev/null 2>&1 || true`)
  }
  if (process.argv.includes('--only-service')) throw new Done()

  // 1. one-shot run of `true`
  log('run --rm true')
  r = hyperfine(
    [
      {name: 'velo', cmd: `${v} sandbox run --rm --home ${H} -- true`},
      {name: 'docker', cmd: `${d} run --rm --network none velo-bench true`},
      {name: 'runc', cmd: runcCmd, shell: true},
      {name: 'bwrap', cmd: bwrapCmd},
    ],
    {runs, warmup: 2},
  )
  rows.push(ratioRow('`sandbox run --rm -- true` vs `docker run --rm IMAGE true`', r.velo, r.docker, 'docker', 0.5))
  notes.push(`same run, for reference (no target): runc run ${(r.runc.mean * 1000).toFixed(1)} ms (read-only rootfs dir, no overlay, no image store), bwrap --unshare-all ${(r.bwrap.mean * 1000).toFixed(1)} ms (no overlay, no cgroups, no init); velo/runc ${(r.velo.mean / r.runc.mean).toFixed(2)}×, velo/bwrap ${(r.velo.mean / r.bwrap.mean).toFixed(2)}×`)

  // 2. create + exec + rm as three calls
  log('create + exec + rm')
  r = hyperfine(
    [
      {name: 'velo', shell: true, cmd: `${v} sandbox create b3 --home ${H} >/dev/null 2>&1 && ${v} sandbox exec b3 --home ${H} -- true && ${v} sandbox rm -f b3 --home ${H} >/dev/null 2>&1`},
      {name: 'docker', shell: true, cmd: `${d} run -d --network none --name b3 velo-bench sleep 1000 >/dev/null && ${d} exec b3 true && ${d} rm -f b3 >/dev/null`},
    ],
    {runs, warmup: 1},
  )
  rows.push(ratioRow('create + exec `true` + rm (three calls) vs docker `run -d` + `exec` + `rm -f`', r.velo, r.docker, 'docker', 0.5))

  // 3. a fleet driven through the CLI, 8 calls in flight
  if (!process.argv.includes('--skip-fleet')) {
    log(`${fleetN} tenants, 8 calls in flight`)
    const seq = `seq -w 1 ${fleetN}`
    const veloFleet = [
      `${seq} | xargs -P8 -I{} ${v} sandbox create f{} --home ${H} >/dev/null 2>&1`,
      `${seq} | xargs -P8 -I{} ${v} sandbox exec f{} --home ${H} -- true`,
      `${seq} | xargs -P8 -I{} ${v} sandbox rm -f f{} --home ${H} >/dev/null 2>&1`,
    ].join(' && ')
    const dockerFleet = [
      `${seq} | xargs -P8 -I{} ${d} run -d --network none --name f{} velo-bench sleep 1000 >/dev/null`,
      `${seq} | xargs -P8 -I{} ${d} exec f{} true`,
      `${seq} | xargs -P8 -I{} ${d} rm -f f{} >/dev/null`,
    ].join(' && ')
    r = hyperfine(
      [
        {name: 'velo', shell: true, cmd: veloFleet},
        {name: 'docker', shell: true, cmd: dockerFleet},
      ],
      {runs: Math.max(1, Math.min(runs, 2)), warmup: 0},
    )
    rows.push(ratioRow(`${fleetN} tenants via the CLI (create, exec, rm), 8 in flight`, r.velo, r.docker, 'docker', 0.5))
  }

  // 4. create cost vs image size (farms are built once per layer; the first create pays that)
  if (!process.argv.includes('--skip-scale')) {
    log('create on a 5,000-file and a 50,000-file image')
    makeTree(`${W}/t5k`, 5000)
    makeTree(`${W}/t50k`, 50000)
    sh(`${v} ingest ${W}/t5k --name t5k --home ${H} >/dev/null && ${v} ingest ${W}/t50k --name t50k --home ${H} >/dev/null`)
    for (const i of ['t5k', 't50k']) {
      const t0 = Date.now()
      sh(`${v} sandbox create warm-${i} --image ${i} --home ${H} >/dev/null && ${v} sandbox rm -f warm-${i} --home ${H} >/dev/null`)
      notes.push(`first create on ${i} (builds its farm once): ${((Date.now() - t0) / 1000).toFixed(2)} s`)
    }
    r = hyperfine(
      [
        {name: '5k', shell: true, prepare: `${v} sandbox rm -f c5 --home ${H} >/dev/null 2>&1 || true`, cmd: `${v} sandbox create c5 --image t5k --home ${H} >/dev/null`},
        {name: '50k', shell: true, prepare: `${v} sandbox rm -f c50 --home ${H} >/dev/null 2>&1 || true`, cmd: `${v} sandbox create c50 --image t50k --home ${H} >/dev/null`},
      ],
      {runs, warmup: 1},
    )
    rows.push(ratioRow('create on a 50,000-file image vs on a 5,000-file one', r['50k'], r['5k'], '5k-file image', 1.3))
    sh(`${v} sandbox rm -f c5 c50 --home ${H} >/dev/null 2>&1 || true`)
  }

  // 4b. a user namespace of the tenant's own (the default: idmapped layers, its own range) vs root's opt-out
  if (!process.argv.includes('--skip-userns')) {
    log('create with and without a user namespace of its own')
    r = hyperfine(
      [
        {name: 'host', shell: true, prepare: `${v} sandbox rm -f cu0 --home ${H} >/dev/null 2>&1 || true`, cmd: `${v} sandbox create cu0 --userns host --home ${H} >/dev/null`},
        {name: 'userns', shell: true, prepare: `${v} sandbox rm -f cu1 --home ${H} >/dev/null 2>&1 || true`, cmd: `${v} sandbox create cu1 --home ${H} >/dev/null`},
      ],
      {runs: Math.max(runs, 10), warmup: 1},
    )
    rows.push(ratioRow('create with a user namespace of its own (the default) vs without (--userns host)', r.userns, r.host, 'without', 1.2))
    sh(`${v} sandbox rm -f cu0 cu1 --home ${H} >/dev/null 2>&1 || true`)
  }

  // 5. where a call's time goes
  log('start-up breakdown')
  sh(`${v} sandbox create probe --home ${H} >/dev/null 2>&1`)
  r = hyperfine(
    [
      {name: 'node -e 0', cmd: 'node -e 0'},
      {name: 'velo --version', cmd: `${v} --version`},
      {name: 'velo sandbox ls', cmd: `${v} sandbox ls --home ${H}`},
      {name: 'velo sandbox exec true', cmd: `${v} sandbox exec probe --home ${H} -- true`},
      {name: 'velo sandbox exec true (Node CLI)', shell: true, cmd: `VELO_NATIVE=0 ${v} sandbox exec probe --home ${H} -- true`},
      {name: 'velo-runtime exec true', cmd: `${ROOT}/native/build/velo-runtime --root ${H}/runtime exec probe /bin/true`},
    ],
    {runs, warmup: 2},
  )
  const own = []
  for (let i = 0; i < 5; i++) {
    own.push(JSON.parse(sh(`${v} sandbox create own${i} --json --home ${H}`)).timings)
    sh(`${v} sandbox rm -f own${i} --home ${H} >/dev/null`)
  }
  const avg = (k) => (own.reduce((a, t) => a + t[k], 0) / own.length).toFixed(1)
  notes.push(
    `call breakdown (means): node -e 0 ${(r['node -e 0'].mean * 1000).toFixed(1)} ms; velo --version ${(r['velo --version'].mean * 1000).toFixed(1)} ms; ` +
      `velo sandbox ls ${(r['velo sandbox ls'].mean * 1000).toFixed(1)} ms (Node); velo sandbox exec true ${(r['velo sandbox exec true'].mean * 1000).toFixed(1)} ms native, ${(r['velo sandbox exec true (Node CLI)'].mean * 1000).toFixed(1)} ms with VELO_NATIVE=0 ` +
      `(velo-runtime exec as a program on its own — state, setns, fork, caps, seccomp, exec: ${(r['velo-runtime exec true'].mean * 1000).toFixed(1)} ms)`,
  )
  notes.push(`create, velo's own in-process time (mean of 5): total ${avg('total')} ms = image lookup (LMDB, under the shared store lock) ${avg('image')} ms, farms ${avg('farms')} ms, claim (mkdir + state.json, the gc hold) ${avg('claim')} ms, the runtime's create + start, in-process (cgroups, namespaces, mounts, init) ${avg('runtime')} ms`)
  sh(`${v} sandbox rm -f probe --home ${H} >/dev/null 2>&1`)
} catch (err) {
  if (!(err instanceof Done)) throw err
} finally {
  cleanupVelo()
  try {
    sh(`${v} network rm bridge --home ${H} >/dev/null 2>&1 || true`)
  } catch {}
  await dockerd?.stop()
  fs.rmSync(W, {recursive: true, force: true})
}
printRows('Sandboxes: velo vs docker, runc, bwrap', rows)
console.log('')
for (const n of notes) console.log(`- ${n}`)
console.log(`\n(load average during the run: ${fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')})`)
