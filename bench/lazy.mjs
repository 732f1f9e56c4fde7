#!/usr/bin/env node
// Lazy images benchmark (issue 13): a large image in a loopback registry, an empty store, and
//   velo sandbox create N --image REF --lazy  +  velo sandbox exec N -- node -e "require('/app/node_modules/express')"
// timed end to end (metadata pull, lazy mount, sandbox, the first command), and the bytes fetched against the
// image's bytes (targets: ≤ 1 s, ≤ 10%): the image pushed once as it is, once after `velo image profile` of that
// command (its start-up set packed first and prefetched by the lazy pull). For comparison: a full `velo pull` first.
// The image: the default rootfs (busybox + node), an express-like package tree (40 modules required), and
// host files (/usr/lib, /usr/share: files under 8 MiB in path order, up to VELO_BENCH_LAZY_MB, default 1200 MB,
// and VELO_BENCH_LAZY_FILES, default 60,000 files) nobody reads: with the defaults the image is ≥ 1 GiB, as issue 13's
// target states it.
// Usage: node bench/lazy.mjs [--runs N]   (root; docker-registry; plain HTTP on 127.0.0.1 only)
import {spawn} from 'node:child_process'
import * as fs from 'node:fs'
import * as net from 'node:net'
import * as path from 'node:path'
import {benchStart, printRows, ROOT, sh, VELO} from './lib.mjs'

const {runs, W} = benchStart('lazy', {setup: process.env.VELO_BENCH_SETUP !== '0'})
const v = VELO
const T = path.join(W, 'tree')
const LIMITS = `${Number(process.env.VELO_BENCH_LAZY_MB || 1200)} MB, ${Number(process.env.VELO_BENCH_LAZY_FILES || 60000)} files`
const made = fs.existsSync(path.join(W, 'tree.done')) ? fs.readFileSync(path.join(W, 'tree.done'), 'utf8') : undefined
if (made !== LIMITS) {
  sh(`rm -rf ${T}`)
  sh(`bash ${ROOT}/rootfs/build.sh ${T}`)
  const list = sh(`find /usr/lib /usr/share -xdev -type f -size -8M -printf '%s %p\\n' | sort -k2`).trim().split('\n')
  const picked = []
  let bytes = 0
  for (const l of list) {
    const i = l.indexOf(' ')
    const size = Number(l.slice(0, i))
    if (bytes + size > Number(process.env.VELO_BENCH_LAZY_MB || 1200) * 1e6 || picked.length >= Number(process.env.VELO_BENCH_LAZY_FILES || 60000)) break
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
  fs.writeFileSync(path.join(W, 'tree.done'), LIMITS)
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
  const prof = JSON.parse(sh(`${v} image profile big --home ${S} --json -- ${first} | sed -n '/^{/,$p'`))
  sh(`${v} push big ${REG}/bench/big:2 --insecure --home ${S} --json >/dev/null`)
  const imageBytes = casBytes(S)
  const nfiles = Number(sh(`find ${T} -type f | wc -l`).trim())
  const time = (cmd) => {
    const t0 = process.hrtime.bigint()
    const out = sh(cmd)
    return {s: Number(process.hrtime.bigint() - t0) / 1e9, out}
  }
  const lazyStart = (tag) => {
    clean()
    const t = time(`${v} sandbox create lz --image ${REG}/bench/big:${tag} --lazy --insecure --home ${H} >/dev/null && ${v} sandbox exec lz --home ${H} -- ${first}`)
    if (t.out.trim() !== '780') throw new Error(`unexpected output: ${t.out}`)
    return {s: t.s, bytes: casBytes(H)}
  }
  const plain = []
  const profiled = []
  for (let r = 0; r < runs; r++) {
    plain.push(lazyStart(1))
    profiled.push(lazyStart(2))
  }
  clean()
  const full = time(`${v} pull ${REG}/bench/big:1 --insecure --home ${H} >/dev/null && ${v} sandbox create lz --image bench_big:1 --backend fuse --home ${H} >/dev/null && ${v} sandbox exec lz --home ${H} -- ${first}`).s
  clean()
  const mean = (a) => a.reduce((x, y) => x + y, 0) / a.length
  const what = `(${nfiles} files, ${(imageBytes / 1e6).toFixed(0)} MB)`
  const rows = []
  for (const [name, r] of [['profiled (velo image profile, prefetch)', profiled], ['not profiled (every file on first open)', plain]]) {
    const s = mean(r.map((x) => x.s))
    const b = r[r.length - 1].bytes
    rows.push({what: `lazy start of a remote image ${what} + first command, ${name}`, velo: s, peer: full, peerName: 'full pull + start', ratio: s / full, target: '≤ 1 s', ok: s <= 1, unit: 's'})
    rows.push({what: `bytes fetched by that start / the image's bytes, ${name}`, velo: b / 1e6, peer: imageBytes / 1e6, peerName: 'image', ratio: b / imageBytes, target: '≤ 0.1', ok: b / imageBytes <= 0.1, unit: 'MB'})
  }
  printRows('Lazy images (issue 13)', rows)
  console.log(`- profile: ${prof.objects} files, ${(prof.bytes / 1e6).toFixed(1)} MB read by \`${first}\``)
  console.log(`- runs: profiled ${profiled.map((x) => x.s.toFixed(3)).join(', ')} s; not profiled ${plain.map((x) => x.s.toFixed(3)).join(', ')} s; full pull + start ${full.toFixed(3)} s`)
} finally {
  clean()
  registry.kill('SIGTERM')
  sh(`rm -rf ${R} ${S}`)
}
