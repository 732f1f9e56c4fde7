#!/usr/bin/env node
// Lazy images benchmark (issue 13): a large image in a loopback registry, an empty store, and
//   velo sandbox create N --image REF --lazy  +  velo sandbox exec N -- node -e "require('/app/node_modules/express')"
// timed end to end (metadata pull, lazy mount, sandbox, the first command), and the bytes fetched against the
// image's bytes (targets: ≤ 1 s, ≤ 10%). For comparison the same with a full `velo pull` first.
// The image: the default rootfs (busybox + node), an express-like package tree (40 modules required), and
// host files (/usr/lib/x86_64-linux-gnu, /usr/share: up to 6,000 files under 2 MiB, 150 MB) nobody reads.
// Usage: node bench/lazy.mjs [--runs N]   (root; docker-registry; plain HTTP on 127.0.0.1 only)
import {spawn} from 'node:child_process'
import * as fs from 'node:fs'
import * as net from 'node:net'
import * as path from 'node:path'
import {benchStart, printRows, ROOT, sh, VELO} from './lib.mjs'

const {runs, W} = benchStart('lazy', {setup: process.env.VELO_BENCH_SETUP !== '0'})
const v = VELO
const T = path.join(W, 'tree')
if (!fs.existsSync(path.join(W, 'tree.done'))) {
  sh(`rm -rf ${T}`)
  sh(`bash ${ROOT}/rootfs/build.sh ${T}`)
  const list = sh(`find /usr/lib/x86_64-linux-gnu /usr/share -xdev -type f -size -2M -printf '%s %p\\n' | sort -k2`).trim().split('\n')
  const picked = []
  let bytes = 0
  for (const l of list) {
    const i = l.indexOf(' ')
    const size = Number(l.slice(0, i))
    if (bytes + size > 150e6 || picked.length >= 6000) break
    picked.push(l.slice(i + 2))
    bytes += size
  }
  fs.writeFileSync(path.join(W, 'files.txt'), picked.join('\n') + '\n')
  sh(`mkdir -p ${T}/data && tar -C / -cf - -T ${W}/files.txt | tar -C ${T}/data -xf -`)
  const em = path.join(T, 'app', 'node_modules', 'express')
  fs.mkdirSync(path.join(em, 'lib'), {recursive: true})
  const libs = Array.from({length: 40}, (_, i) => `./lib/m${i}.js`)
  fs.writeFileSync(path.join(em, 'index.js'), `const p = [${libs.map((l) => `require(${JSON.stringify(l)})`).join(', ')}]\nmodule.exports = () => p.reduce((a, f) => a + f(), 0)\n`)
  libs.forEach((_, i) => fs.writeFileSync(path.join(em, 'lib', `m${i}.js`), `${'/* padding */\n'.repeat(50 + i)}module.exports = () => ${i}\n`))
  fs.writeFileSync(path.join(W, 'tree.done'), '')
}

const port = await new Promise((resolve) => {
  const s = net.createServer().listen(0, '127.0.0.1', () => {
    const p = s.address().port
    s.close(() => resolve(p))
  })
})
const REG = `127.0.0.1:${port}`
const R = path.join(W, 'registry')
sh(`rm -rf ${R} && mkdir -p ${R}`)
fs.writeFileSync(path.join(R, 'config.yml'), ['version: 0.1', 'log:', '  level: warn', '  accesslog:', '    disabled: true', 'storage:', '  filesystem:', `    rootdirectory: ${R}/storage`, 'http:', `  addr: ${REG}`].join('\n') + '\n')
const regLog = fs.openSync(path.join(R, 'registry.log'), 'a')
const registry = spawn('docker-registry', ['serve', path.join(R, 'config.yml')], {stdio: ['ignore', regLog, regLog]})
const H = path.join(W, 'home')
const S = path.join(W, 'src-home')
const casBytes = (home) => Number(sh(`find ${home}/cas/blake3 -type f -printf '%s\\n' 2>/dev/null | awk '{s+=$1} END {print s+0}'`).trim())
const clean = () => sh(`${v} sandbox rm -f lz --home ${H} >/dev/null 2>&1; ${v} umount --lazy --force $(${v} mount --home ${H} --json 2>/dev/null | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{try{console.log(JSON.parse(s).map(m=>m.dir).join(" "))}catch{}})') >/dev/null 2>&1; rm -rf ${H}; true`)
const first = `node -e "console.log(require('/app/node_modules/express')())"`
try {
  for (let i = 0; ; i++) {
    try {
      sh(`curl -sf http://${REG}/v2/ >/dev/null`)
      break
    } catch {}
    if (i > 100) throw new Error('the registry did not start')
    await new Promise((r) => setTimeout(r, 100))
  }
  sh(`rm -rf ${S} && ${v} ingest ${T} --name big --home ${S} --json >/dev/null && ${v} push big ${REG}/bench/big:1 --insecure --home ${S} --json >/dev/null`)
  const imageBytes = casBytes(S)
  const nfiles = Number(sh(`find ${T} -type f | wc -l`).trim())
  const time = (cmd) => {
    const t0 = process.hrtime.bigint()
    const out = sh(cmd)
    return {s: Number(process.hrtime.bigint() - t0) / 1e9, out}
  }
  const lazy = []
  const full = []
  let fetched = 0
  for (let r = 0; r < runs; r++) {
    clean()
    const t = time(`${v} sandbox create lz --image ${REG}/bench/big:1 --lazy --insecure --home ${H} >/dev/null && ${v} sandbox exec lz --home ${H} -- ${first}`)
    if (t.out.trim() !== '780') throw new Error(`unexpected output: ${t.out}`)
    lazy.push(t.s)
    fetched = casBytes(H)
    clean()
    const f = time(`${v} pull ${REG}/bench/big:1 --insecure --home ${H} >/dev/null && ${v} sandbox create lz --image bench_big:1 --backend fuse --home ${H} >/dev/null && ${v} sandbox exec lz --home ${H} -- ${first}`)
    full.push(f.s)
  }
  clean()
  const mean = (a) => a.reduce((x, y) => x + y, 0) / a.length
  const rows = [
    {what: `lazy start of a remote image (${nfiles} files, ${(imageBytes / 1e6).toFixed(0)} MB) and its first command, empty store`, velo: mean(lazy), peer: mean(full), peerName: 'full pull + start', ratio: mean(lazy) / mean(full), target: '≤ 1 s', ok: mean(lazy) <= 1, unit: 's'},
    {what: 'bytes of objects fetched by that start / bytes of the image', velo: fetched / 1e6, peer: imageBytes / 1e6, peerName: 'image', ratio: fetched / imageBytes, target: '≤ 0.1', ok: fetched / imageBytes <= 0.1, unit: 'MB'},
  ]
  printRows('Lazy images (issue 13)', rows)
  console.log(`- runs: lazy ${lazy.map((x) => x.toFixed(3)).join(', ')} s; full ${full.map((x) => x.toFixed(3)).join(', ')} s`)
} finally {
  clean()
  registry.kill('SIGTERM')
  sh(`rm -rf ${R} ${S}`)
}
