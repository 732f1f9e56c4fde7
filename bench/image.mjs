#!/usr/bin/env node
// Image benchmark, velo and Docker side by side in one run (hyperfine):
//   1. `velo image import` of a `docker save` tar vs `docker load` of the same tar (target ≤ 1×)
//   2. a second image sharing the base layer: bytes velo stores vs bytes Docker's data-root grows
//   3. `velo image pull` (daemon → velo store) vs `docker save > FILE` (daemon → file)
// Usage: node bench/image.mjs [--runs N]
// Needs root (a private dockerd with --bridge=none --iptables=false in the work dir; stopped at the end).
// Work dir: $VELO_BENCH_DIR (default /var/tmp/velo-bench-image); the Debian rootfs (debootstrap
// --variant=minbase bookworm, ~1 min) is kept there between runs.
import {spawn} from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {benchStart, freshDirEachRun, hyperfine, printRows, ratioRow, sh, VELO, ROOT} from './lib.mjs'

const {runs, W} = benchStart('image')

// A realistic image: Debian 12 minbase from the Debian mirror.
const rootfs = path.join(W, 'rootfs')
const rootTar = path.join(W, 'rootfs.tar')
if (!fs.existsSync(rootTar)) {
  if (!fs.existsSync(path.join(rootfs, 'etc', 'debian_version'))) {
    console.error('bench: debootstrap --variant=minbase bookworm (about a minute) ...')
    sh(`rm -rf ${rootfs} && debootstrap --variant=minbase bookworm ${rootfs} http://deb.debian.org/debian >${W}/debootstrap.log 2>&1`)
  }
  sh(`tar -C ${rootfs} --numeric-owner -cf ${rootTar}.tmp . && mv ${rootTar}.tmp ${rootTar}`)
}

// A private dockerd (own data-root, exec-root, pidfile, socket).
const D = path.join(W, 'dockerd')
sh(`rm -rf ${D} && mkdir -p ${D}`)
const sock = path.join(D, 'd.sock')
const host = `unix://${sock}`
const log = fs.openSync(path.join(D, 'dockerd.log'), 'a')
const dockerd = spawn(
  'dockerd',
  ['--bridge=none', '--iptables=false', '--ip6tables=false', '--ip-masq=false', '--userland-proxy=false', `--data-root=${D}/data`, `--exec-root=${D}/exec`, `--pidfile=${D}/pid`, `--host=${host}`, '--storage-driver=overlay2', '--log-level=warn'],
  {stdio: ['ignore', log, log]},
)
let exited = false
dockerd.on('exit', () => (exited = true))
const docker = `docker --host ${host}`
const v = `${VELO}`
const stop = async () => {
  if (!exited) dockerd.kill('SIGTERM')
  for (let i = 0; i < 100 && !exited; i++) await new Promise((r) => setTimeout(r, 100))
  if (!exited) dockerd.kill('SIGKILL')
  for (let i = 0; i < 50 && !exited; i++) await new Promise((r) => setTimeout(r, 100))
  for (const m of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4]).filter((m) => m?.startsWith(D)).sort((a, b) => b.length - a.length))
    sh(`umount -l ${m} || true`)
  sh(`rm -rf ${D}`)
}

try {
  for (let i = 0; ; i++) {
    if (exited) throw new Error('dockerd exited: ' + fs.readFileSync(path.join(D, 'dockerd.log'), 'utf8').slice(-2000))
    try {
      sh(`${docker} version >/dev/null 2>&1`)
      break
    } catch {}
    if (i > 300) throw new Error('dockerd did not start')
    await new Promise((r) => setTimeout(r, 100))
  }
  // Images: the Debian base, and two apps on top of it (each one more layer from a real `docker commit`).
  sh(`${docker} import ${rootTar} debian:bench >/dev/null`)
  sh(`${docker} run --network none --name app1 debian:bench sh -c 'mkdir -p /app && cp -a /usr/share/doc /app/doc1 && head -c 8000000 /dev/urandom > /app/blob1 && rm -rf /usr/share/man' >/dev/null`)
  sh(`${docker} commit app1 app1:bench >/dev/null && ${docker} rm app1 >/dev/null`)
  sh(`${docker} run --network none --name app2 debian:bench sh -c 'mkdir -p /app && head -c 5000000 /dev/urandom > /app/blob2 && echo two > /app/VERSION && rm -rf /usr/share/locale' >/dev/null`)
  sh(`${docker} commit app2 app2:bench >/dev/null && ${docker} rm app2 >/dev/null`)
  const tars = {base: `${W}/debian.tar`, app1: `${W}/app1.tar`, app2: `${W}/app2.tar`}
  sh(`${docker} save -o ${tars.base} debian:bench && ${docker} save -o ${tars.app1} app1:bench && ${docker} save -o ${tars.app2} app2:bench`)
  const size = (f) => fs.statSync(f).size
  const files = Number(sh(`tar -xOf ${tars.base} $(tar -tf ${tars.base} | grep layer.tar | head -1) | tar -t | wc -l`).trim())
  console.error(`bench: debian.tar ${(size(tars.base) / 1e6).toFixed(1)} MB (${files} entries), app1.tar ${(size(tars.app1) / 1e6).toFixed(1)} MB, app2.tar ${(size(tars.app2) / 1e6).toFixed(1)} MB`)
  sh(`cat ${W}/*.tar > /dev/null`) // page cache warm for both sides

  const H = path.join(W, 'home')
  const rows = []
  const notes = []

  // 1. import vs docker load of the same docker-save tar, each into an empty store / daemon.
  const wipeDocker = `${docker} rmi -f $(${docker} images -aq) >/dev/null 2>&1; true`
  // each import into a new store (an rm -rf of the last one right before a run slows it: bench/lib.mjs freshDirEachRun)
  const fresh = freshDirEachRun(path.join(W, 'import-homes'))
  let r = hyperfine(
    [
      {name: 'docker load', prepare: wipeDocker, cmd: `${docker} load -q -i ${tars.base}`, shell: true},
      {name: 'velo image import', prepare: fresh.prepare, cmd: `${v} image import ${tars.base} --home ${fresh.dir}`, shell: true},
    ],
    {runs},
  )
  rows.push(ratioRow(`import of a docker save tar (Debian 12 minbase, ${(size(tars.base) / 1e6).toFixed(0)} MB, ${files} entries)`, r['velo image import'], r['docker load'], 'docker load', 1))

  // 2. A second image sharing the base: what each side stores in addition.
  sh(`${wipeDocker}; rm -rf ${H}`)
  const du = (p) => Number(sh(`du -sb ${p} | cut -f1`).trim())
  sh(`${docker} load -q -i ${tars.base} >/dev/null`)
  sh(`${docker} load -q -i ${tars.app1} >/dev/null`)
  const d0 = du(`${D}/data`)
  sh(`${docker} load -q -i ${tars.app2} >/dev/null`)
  const d1 = du(`${D}/data`)
  const velo1 = JSON.parse(sh(`${v} image import ${tars.base} --home ${H} --json`))
  JSON.parse(sh(`${v} image import ${tars.app1} --home ${H} --json`))
  const s0 = du(H)
  const velo2 = JSON.parse(sh(`${v} image import ${tars.app2} --home ${H} --json`))
  const s1 = du(H)
  const top = velo2.layers[velo2.layers.length - 1]
  notes.push(
    `Second app image on the same base (app2.tar, ${(size(tars.app2) / 1e6).toFixed(1)} MB; its own layer holds ${(top.logicalBytes / 1e6).toFixed(2)} MB of files): ` +
      `velo stored ${velo2.newBytes} new content bytes in ${velo2.newObjects} objects (base layer ${velo2.layers[0].existed ? 'already stored, shared' : 'NOT shared'}; the first import stored ${(velo1.newBytes / 1e6).toFixed(1)} MB); ` +
      `the store grew by ${((s1 - s0) / 1e6).toFixed(2)} MB on disk incl. manifests; Docker's data-root grew by ${((d1 - d0) / 1e6).toFixed(2)} MB.`,
  )

  // 3. pull (daemon → velo store) vs docker save to a file; each pull into a new store
  const pullHomes = freshDirEachRun(path.join(W, 'pull-homes'))
  r = hyperfine(
    [
      {name: 'docker save > file', prepare: `rm -f ${W}/saved.tar`, cmd: `${docker} save debian:bench > ${W}/saved.tar`, shell: true},
      {name: 'velo image pull', prepare: pullHomes.prepare, cmd: `env DOCKER_HOST=${host} ${v} image pull debian:bench --home ${pullHomes.dir}`, shell: true},
    ],
    {runs},
  )
  rows.push(ratioRow('pull of the Debian image from the daemon (velo: into the store; Docker: `docker save > file`)', r['velo image pull'], r['docker save > file'], 'docker save > file', 2))

  const text = printRows('Images', rows) + '\n\n' + notes.map((n) => `- ${n}`).join('\n') + '\n'
  console.log('\n' + notes.join('\n'))
  fs.mkdirSync(path.join(ROOT, 'bench', 'results'), {recursive: true})
  fs.writeFileSync(path.join(ROOT, 'bench', 'results', 'image.md'), `${text}\nCommand: \`node bench/image.mjs --runs ${runs}\` (${new Date().toISOString()})\n`)
} finally {
  await stop()
  sh(`rm -rf ${W}/home ${W}/pullhome ${W}/saved.tar`)
}
