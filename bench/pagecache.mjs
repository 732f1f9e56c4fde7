#!/usr/bin/env node
// Page cache: velo vs Docker's overlay2, in one run (issue 16). Two images that share most of their files but no
// layer: A is the default rootfs (busybox + node + npm), B the same tree plus one more file, stored separately
// (velo: two ingests; docker: two `docker import`s, so each image has its own layer with its own copy of every
// file). N tenants of each image (default 100) read the image's node binary once (the file they share, ~100 MiB)
// and then sleep. Then, for each engine: every copy of that file on its disk (same size and content under the
// engine's data dir, one per inode) and how much of each the page cache holds (fincore), and the host's Cached
// growth while the tenants ran. velo's images point at one CAS object, so the host caches one copy; overlay2 has
// one per layer.
//   Usage: node bench/pagecache.mjs [--tenants N]     Work dir: $VELO_BENCH_DIR (default /var/tmp/velo-bench-pagecache)
// Drops the host's page cache (echo 3 > /proc/sys/vm/drop_caches) before each engine's turn: run it on a host
// where that is acceptable.
import * as fs from 'node:fs'
import * as path from 'node:path'
import {printRows, ratioRow, sh, startDockerd, VELO, ROOT} from './lib.mjs'

const arg = (k, d) => (process.argv.includes(k) ? process.argv[process.argv.indexOf(k) + 1] : d)
const N = Number(arg('--tenants', 100))
const W = process.env.VELO_BENCH_DIR || '/var/tmp/velo-bench-pagecache'
const H = path.join(W, 'home')
const log = (m) => console.error(`bench: ${m}`)
const NODE = '/usr/bin/node' // where rootfs/build.sh puts the host's node
const WORK = `cat ${NODE} >/dev/null; echo read; while :; do sleep 3600; done`
let dockerd // bench/lib.mjs startDockerd
function cleanupVelo() {
  for (const s of sh(`ls ${H}/tenants 2>/dev/null || true`).split('\n').filter(Boolean)) sh(`${VELO} sandbox rm -f ${s} --home ${H} >/dev/null 2>&1 || true`)
}

const cached = () => Number(/^Cached:\s+(\d+)/m.exec(fs.readFileSync('/proc/meminfo', 'utf8'))[1]) * 1024
// output kept off the terminal; a failing call's stderr is in the error execFileSync throws
const quiet = {stdio: ['ignore', 'pipe', 'pipe']}
const dropCaches = () => sh('sync; echo 3 > /proc/sys/vm/drop_caches')

/** Every copy of the file (same size and sha256) under root, one per inode, with the bytes the page cache holds. */
function copiesOf(file, root) {
  const size = fs.statSync(file).size
  const sum = sh(`sha256sum ${file}`).split(' ')[0]
  const seen = new Map()
  for (const p of sh(`find ${root} -xdev -type f -size ${size}c 2>/dev/null || true`).split('\n').filter(Boolean)) {
    const st = fs.statSync(p, {bigint: true})
    const key = `${st.dev}:${st.ino}`
    if (seen.has(key) || sh(`sha256sum ${JSON.stringify(p)}`).split(' ')[0] !== sum) continue
    seen.set(key, {path: p, cached: Number(sh(`fincore --bytes --noheadings --output RES ${JSON.stringify(p)}`).trim())})
  }
  return [...seen.values()]
}

/** Wait until every tenant has printed "read" (its copy of node read once), via the engine's logs command. */
async function waitRead(names, logsOf) {
  for (const n of names)
    for (let i = 0; ; i++) {
      if (sh(`${logsOf(n)} 2>&1 || true`).includes('read')) break
      if (i > 600) throw new Error(`tenant ${n} never read ${NODE}`)
      await new Promise((r) => setTimeout(r, 100))
    }
}

const rows = []
try {
  sh(`bash ${ROOT}/scripts/setup.sh`)
  cleanupVelo()
  fs.rmSync(W, {recursive: true, force: true})
  fs.mkdirSync(W, {recursive: true})
  log('building the two rootfs trees (B = A + one file) and their tarballs')
  sh(`bash ${ROOT}/rootfs/build.sh ${W}/a && cp -a ${W}/a ${W}/b && echo b > ${W}/b/etc/image-b`)
  sh(`tar -C ${W}/a -cf ${W}/a.tar . && tar -C ${W}/b -cf ${W}/b.tar .`)
  const nodeMiB = fs.statSync(`${W}/a${NODE}`).size / 2 ** 20
  sh(`${VELO} ingest ${W}/a --name pc-a --home ${H} >/dev/null 2>&1 && ${VELO} ingest ${W}/b --name pc-b --home ${H} >/dev/null 2>&1`)
  for (const img of ['pc-a', 'pc-b']) sh(`${VELO} sandbox run --rm --image ${img} --home ${H} -- true`) // farms built once
  const names = (img) => Array.from({length: N}, (_, i) => `${img}-${i}`)

  log(`velo: ${N} tenants of each image read ${NODE} (${nodeMiB.toFixed(1)} MiB), page cache dropped first`)
  dropCaches()
  let c0 = cached()
  for (const img of ['pc-a', 'pc-b'])
    for (const n of names(img)) sh(`${VELO} sandbox create ${n} --image ${img} --home ${H} -- sh -c '${WORK}'`, quiet)
  await waitRead([...names('pc-a'), ...names('pc-b')], (n) => `${VELO} sandbox logs ${n} --home ${H}`)
  const veloCached = cached() - c0
  const veloCopies = copiesOf(`${W}/a${NODE}`, H)
  cleanupVelo()

  log('docker (overlay2): the same, dockerd started here (--bridge=none --iptables=false)')
  dockerd = await startDockerd(path.join(W, 'dockerd'))
  const d = dockerd.docker
  sh(`${d} import ${W}/a.tar pc-a >/dev/null && ${d} import ${W}/b.tar pc-b >/dev/null`)
  dropCaches()
  c0 = cached()
  for (const img of ['pc-a', 'pc-b'])
    for (const n of names(img)) sh(`${d} run -d --network none --name ${n} ${img} sh -c '${WORK}'`, quiet)
  await waitRead([...names('pc-a'), ...names('pc-b')], (n) => `${d} logs ${n}`)
  const dockerCached = cached() - c0
  const dockerCopies = copiesOf(`${W}/a${NODE}`, dockerd.dataRoot)
  await dockerd.stop()

  const mib = (b) => b / 2 ** 20
  const sum = (cs) => cs.reduce((a, c) => a + c.cached, 0)
  const held = (cs) => cs.filter((c) => c.cached > 0).length
  console.log(`\n${NODE} (${nodeMiB.toFixed(1)} MiB), read by ${N} tenants of each of two images:`)
  console.log(`  velo:   ${veloCopies.length} cop${veloCopies.length === 1 ? 'y' : 'ies'} on disk, ${held(veloCopies)} in the page cache, ${mib(sum(veloCopies)).toFixed(1)} MiB cached`)
  console.log(`  docker: ${dockerCopies.length} cop${dockerCopies.length === 1 ? 'y' : 'ies'} on disk, ${held(dockerCopies)} in the page cache, ${mib(sum(dockerCopies)).toFixed(1)} MiB cached`)
  console.log(`  host page cache grown while the tenants ran: velo ${mib(veloCached).toFixed(1)} MiB, docker ${mib(dockerCached).toFixed(1)} MiB`)
  // one copy of the shared file against overlay2's one per layer: half, with two images
  rows.push(ratioRow(`page cache holding the shared node binary, ${N}+${N} tenants of two images that share it (fincore of every copy)`, {mean: mib(sum(veloCopies))}, {mean: mib(sum(dockerCopies))}, 'docker overlay2', 0.5, 'lower', 'MiB'))
  rows.push(ratioRow(`host page cache grown while those ${2 * N} tenants started and read it (/proc/meminfo Cached)`, {mean: mib(veloCached)}, {mean: mib(dockerCached)}, 'docker overlay2', 0.5, 'lower', 'MiB'))
  printRows('Page cache: two images sharing their files', rows)
} finally {
  cleanupVelo()
  await dockerd?.stop()
  fs.rmSync(W, {recursive: true, force: true})
}
