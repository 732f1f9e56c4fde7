#!/usr/bin/env node
// Registry benchmark (issue 13), velo and Docker side by side in one run, one registry on loopback:
//   1. `velo pull` of a whole image into an empty store vs `docker pull` of the same tree (a `docker import`ed
//      image: one gzip layer) into an empty daemon (target ≤ 1×)
//   2. a second image that shares 95% of its files: bytes each side's pull receives (target ≤ 0.1× Docker's)
// Usage: node bench/registry.mjs [--runs N]
// Needs root (a private dockerd with --bridge=none --iptables=false in the work dir) and docker-registry
// (Distribution 2.8, plain HTTP on 127.0.0.1, which Docker reaches without TLS). No traffic leaves loopback:
// the image is made of this host's own files (/usr/lib/x86_64-linux-gnu and /usr/share: the first
// files under 2 MiB in path order, up to 6,000 files or 150 MB), the second one the same tree with every 20th file changed.
// Work dir: $VELO_BENCH_DIR (default /var/tmp/velo-bench-registry).
import {spawn} from 'node:child_process'
import * as fs from 'node:fs'
import * as net from 'node:net'
import * as path from 'node:path'
import {benchStart, freshDirEachRun, hyperfine, printRows, ratioRow, sh, VELO} from './lib.mjs'

const {runs, W} = benchStart('registry', {setup: process.env.VELO_BENCH_SETUP !== '0'})
const v = VELO

// 1. The trees: t1 (host files), t2 (every 20th file changed: 5%).
const t1 = path.join(W, 't1')
const t2 = path.join(W, 't2')
if (!fs.existsSync(path.join(W, 'trees.done'))) {
  sh(`rm -rf ${t1} ${t2} && mkdir -p ${t1}`)
  const list = sh(`find /usr/lib/x86_64-linux-gnu /usr/share -xdev -type f -size -2M -printf '%s %p\\n' | sort -k2`).trim().split('\n')
  const picked = []
  let bytes = 0
  for (const l of list) {
    const i = l.indexOf(' ')
    const size = Number(l.slice(0, i))
    if (bytes + size > 150e6 || picked.length >= 6000) break
    picked.push(l.slice(i + 2)) // relative to /
    bytes += size
  }
  fs.writeFileSync(path.join(W, 'files.txt'), picked.join('\n') + '\n')
  sh(`tar -C / -cf - -T ${W}/files.txt | tar -C ${t1} -xf -`)
  sh(`cp -a ${t1} ${t2}`)
  picked.forEach((p, i) => {
    if (i % 20 === 7) fs.appendFileSync(path.join(t2, p), `changed ${i}\n`)
  })
  for (const t of ['t1', 't2']) sh(`tar -C ${W}/${t} --numeric-owner -cf ${W}/${t}.tar .`)
  fs.writeFileSync(path.join(W, 'trees.done'), '')
}
const nfiles = Number(sh(`find ${t1} -type f | wc -l`).trim())
const treeBytes = Number(sh(`du -sb ${t1} | cut -f1`).trim())

// 2. A registry and a private dockerd.
const port = await new Promise((resolve) => {
  const s = net.createServer().listen(0, '127.0.0.1', () => {
    const p = s.address().port
    s.close(() => resolve(p))
  })
})
const REG = `127.0.0.1:${port}`
const R = path.join(W, 'registry')
sh(`rm -rf ${R} && mkdir -p ${R}`)
fs.writeFileSync(
  path.join(R, 'config.yml'),
  ['version: 0.1', 'log:', '  level: warn', '  accesslog:', '    disabled: true', 'storage:', '  filesystem:', `    rootdirectory: ${R}/storage`, 'http:', `  addr: ${REG}`].join('\n') + '\n',
)
const regLog = fs.openSync(path.join(R, 'registry.log'), 'a')
const registry = spawn('docker-registry', ['serve', path.join(R, 'config.yml')], {stdio: ['ignore', regLog, regLog]})

const D = path.join(W, 'dockerd')
sh(`rm -rf ${D} && mkdir -p ${D}`)
const host = `unix://${D}/d.sock`
const log = fs.openSync(path.join(D, 'dockerd.log'), 'a')
fs.writeFileSync(path.join(D, 'daemon.json'), '{}')
const dockerd = spawn(
  'dockerd',
  [`--config-file=${D}/daemon.json`, '--bridge=none', '--iptables=false', '--ip6tables=false', '--ip-masq=false', '--userland-proxy=false', `--data-root=${D}/data`, `--exec-root=${D}/exec`, `--pidfile=${D}/pid`, `--host=${host}`, '--storage-driver=overlay2', '--log-level=warn'],
  {stdio: ['ignore', log, log]},
)
let exited = false
dockerd.on('exit', () => (exited = true))
const docker = `docker --host ${host}`
const stop = async () => {
  registry.kill('SIGTERM')
  if (!exited) dockerd.kill('SIGTERM')
  for (let i = 0; i < 100 && !exited; i++) await new Promise((r) => setTimeout(r, 100))
  if (!exited) dockerd.kill('SIGKILL')
  for (let i = 0; i < 50 && !exited; i++) await new Promise((r) => setTimeout(r, 100))
  for (const m of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4]).filter((m) => m?.startsWith(D)).sort((a, b) => b.length - a.length))
    sh(`umount -l ${m} || true`)
  sh(`rm -rf ${D} ${R}`)
}

try {
  for (let i = 0; ; i++) {
    if (exited) throw new Error('dockerd exited: ' + fs.readFileSync(path.join(D, 'dockerd.log'), 'utf8').slice(-2000))
    try {
      sh(`${docker} version >/dev/null 2>&1 && curl -sf http://${REG}/v2/ >/dev/null`)
      break
    } catch {}
    if (i > 300) throw new Error('dockerd or the registry did not start')
    await new Promise((r) => setTimeout(r, 100))
  }
  // Docker's images: docker import (one gzip layer each), pushed.
  for (const t of ['t1', 't2']) {
    sh(`${docker} import ${W}/${t}.tar ${REG}/bench/docker:${t} >/dev/null`)
    sh(`${docker} push -q ${REG}/bench/docker:${t} >/dev/null`)
  }
  // velo's images: the same trees ingested, pushed (t2 reuses t1's packs).
  const S = path.join(W, 'src-home')
  sh(`rm -rf ${S}`)
  for (const t of ['t1', 't2']) {
    sh(`${v} ingest ${W}/${t} --name ${t} --home ${S} --json >/dev/null`)
    sh(`${v} push ${t} ${REG}/bench/velo:${t} --insecure --home ${S} --json > ${W}/push-${t}.json`)
  }
  const push2 = JSON.parse(fs.readFileSync(`${W}/push-t2.json`, 'utf8'))
  const layerBytes = (tag) => JSON.parse(sh(`curl -sf -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' http://${REG}/v2/bench/docker/manifests/${tag}`)).layers.reduce((a, l) => a + l.size, 0)
  console.error(`bench: ${nfiles} files, ${(treeBytes / 1e6).toFixed(1)} MB; docker layer (gzip) ${(layerBytes('t1') / 1e6).toFixed(1)} MB; velo push of t2 reused ${push2.packs.reused} packs, sent ${(push2.bytesSent / 1e6).toFixed(2)} MB`)

  const rows = []
  const notes = []
  const wipeDocker = `${docker} rmi -f $(${docker} images -aq) >/dev/null 2>&1; true`
  const H = path.join(W, 'pull-home')
  // 1. Whole image: empty daemon vs empty store (a new one each run: bench/lib.mjs freshDirEachRun)
  const pullHomes = freshDirEachRun(path.join(W, 'pull-homes'))
  const r = hyperfine(
    [
      {name: 'docker pull', prepare: wipeDocker, cmd: `${docker} pull -q ${REG}/bench/docker:t1`, shell: true},
      {name: 'velo pull', prepare: pullHomes.prepare, cmd: `${v} pull ${REG}/bench/velo:t1 --insecure --home ${pullHomes.dir}`, shell: true},
    ],
    {runs},
  )
  rows.push(ratioRow(`pull of a whole image from a loopback registry (${nfiles} files, ${(treeBytes / 1e6).toFixed(0)} MB), into an empty store / daemon`, r['velo pull'], r['docker pull'], 'docker pull', 1))

  // 2. The second image, after the first: bytes received.
  sh(`${wipeDocker}; rm -rf ${H}`)
  sh(`${docker} pull -q ${REG}/bench/docker:t1 >/dev/null`)
  sh(`${v} pull ${REG}/bench/velo:t1 --insecure --home ${H} --json >/dev/null`)
  // Docker's pull of t2 receives its one layer whole (it shares no layer with t1): the layer's compressed size
  const dockerBytes = layerBytes('t2')
  sh(`${docker} pull -q ${REG}/bench/docker:t2 >/dev/null`)
  const p2 = JSON.parse(sh(`${v} pull ${REG}/bench/velo:t2 --insecure --home ${H} --json`))
  rows.push(
    ratioRow('bytes received pulling a second image that shares 95% of its files', {mean: p2.bytesReceived / 1e6}, {mean: dockerBytes / 1e6}, 'docker pull', 0.1, 'lower', 'MB'),
  )
  notes.push(
    `velo's second pull: ${p2.objects.fetched} of ${p2.objects.total} objects fetched in ${p2.requests} requests, ${(p2.bytesReceived / 1e6).toFixed(2)} MB received (the layer blob, pack index and new objects); ` +
      `Docker's: one ${(dockerBytes / 1e6).toFixed(2)} MB gzip layer (an imported or rebuilt tree is one new layer to Docker).`,
  )
  printRows('Registry (issue 13)', rows)
  for (const n of notes) console.log(`- ${n}`)
} finally {
  await stop()
}
