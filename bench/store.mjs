#!/usr/bin/env node
// Store benchmark: velo ingest / re-ingest / checkout vs `cp -a`, hashing vs `b3sum`, start-up vs `node -e 0`,
// all measured side by side in one run (hyperfine). Usage: node bench/store.mjs [--runs N]
// Work dir: $VELO_BENCH_DIR (default /var/tmp/velo-bench-store), kept between runs for the npm install.
import * as fs from 'node:fs'
import * as path from 'node:path'
import {benchStart, freshDirEachRun, hyperfine, printRows, ratioRow, ROOT, sh, VELO} from './lib.mjs'

const {runs, W} = benchStart('store')

// A real node_modules tree from the npm registry (a few thousand files).
const proj = path.join(W, 'proj')
const nm = path.join(proj, 'node_modules')
if (!fs.existsSync(path.join(nm, '.package-lock.json'))) {
  console.error('bench: installing a node_modules tree from the npm registry ...')
  fs.mkdirSync(proj, {recursive: true})
  fs.writeFileSync(path.join(proj, 'package.json'), JSON.stringify({name: 'bench-proj', private: true}))
  sh(`cd ${proj} && npm install --no-audit --no-fund --loglevel=error typescript@5 webpack@5 eslint@8 @babel/core@7 express@4 lodash@4`)
}
const files = Number(sh(`find ${nm} -type f | wc -l`).trim())
const bytes = Number(sh(`du -sb ${nm} | cut -f1`).trim())
console.error(`bench: node_modules has ${files} files, ${(bytes / 1e6).toFixed(1)} MB`)
sh(`cat $(find ${nm} -type f) > /dev/null 2>&1 || true`) // warm the page cache for both sides

const H = path.join(W, 'home')
const v = `${VELO}`
const rows = []

// 1. First ingest (fresh store every run) vs cp -a; every run into a new dir (freshDirEachRun: no rm -rf before it)
let [cp, fresh] = [`${W}/cp1`, `${H}-first`].map((d) => freshDirEachRun(d))
let r = hyperfine(
  [
    {name: 'cp -a', shell: true, prepare: cp.prepare, cmd: `cp -a ${nm} ${cp.dir}`},
    {name: 'velo ingest (first)', shell: true, prepare: fresh.prepare, cmd: `${v} ingest ${nm} --name nm --home ${fresh.dir}`},
  ],
  {runs},
)
rows.push(ratioRow(`first ingest of node_modules (${files} files)`, r['velo ingest (first)'], r['cp -a'], 'cp -a', 1.5))

// 2. Re-ingest of the unchanged tree vs cp -a.
sh(`rm -rf ${H} && ${v} ingest ${nm} --name nm --home ${H}`)
cp = freshDirEachRun(`${W}/cp2`)
r = hyperfine(
  [
    {name: 'cp -a', shell: true, prepare: cp.prepare, cmd: `cp -a ${nm} ${cp.dir}`},
    {name: 'velo ingest (again)', cmd: `${v} ingest ${nm} --name nm --home ${H}`},
  ],
  {runs},
)
rows.push(ratioRow('re-ingest of the unchanged tree', r['velo ingest (again)'], r['cp -a'], 'cp -a', 0.5))

// 3. Checkout vs cp -a.
let co
;[cp, co] = [`${W}/cp3`, `${W}/co`].map((d) => freshDirEachRun(d))
r = hyperfine(
  [
    {name: 'cp -a', shell: true, prepare: cp.prepare, cmd: `cp -a ${nm} ${cp.dir}`},
    {name: 'velo image checkout', shell: true, prepare: co.prepare, cmd: `${v} image checkout nm ${co.dir} --home ${H}`},
  ],
  {runs},
)
rows.push(ratioRow('image checkout', r['velo image checkout'], r['cp -a'], 'cp -a', 1.5))

// 4. Hashing one large file: a re-ingest of a directory holding one large file is one hashing pass (dedup
//    hit, nothing written) plus velo's fixed start-up; b3sum (mmap, all cores) hashes the same file. The file
//    is large (VELO_BENCH_HASH_GIB, default 6) so the comparison is about throughput, not start-up.
const gib = Number(process.env.VELO_BENCH_HASH_GIB || 6)
const bigDir = path.join(W, `bigdir-${gib}g`)
if (!fs.existsSync(path.join(bigDir, 'big'))) {
  fs.mkdirSync(bigDir, {recursive: true})
  sh(`head -c ${gib}G /dev/urandom > ${bigDir}/big`)
}
sh(`cat ${bigDir}/big > /dev/null; ${v} ingest ${bigDir} --name big --home ${H}`)
r = hyperfine(
  [
    {name: 'b3sum', cmd: `b3sum ${bigDir}/big`},
    {name: 'b3sum (1 thread)', cmd: `b3sum --num-threads 1 ${bigDir}/big`},
    {name: 'velo hash (re-ingest)', cmd: `${v} ingest ${bigDir} --name big --home ${H}`},
  ],
  {runs},
)
const bigBytes = gib * 1024 ** 3
const tp = (x) => ({mean: bigBytes / x.mean / 1e9})
rows.push(ratioRow(`hash throughput, ${gib} GiB file, whole velo call (higher is better)`, tp(r['velo hash (re-ingest)']), tp(r['b3sum']), 'b3sum', 0.8, 'higher', 'GB/s'))
rows.push(ratioRow('hash throughput vs single-threaded b3sum', tp(r['velo hash (re-ingest)']), tp(r['b3sum (1 thread)']), 'b3sum -j1', 0.8, 'higher', 'GB/s'))

// 5. Start-up.
r = hyperfine(
  [
    {name: 'node -e 0', cmd: 'node -e 0'},
    {name: 'velo --version', cmd: `${v} --version`},
    {name: 'velo image ls', cmd: `${v} image ls --home ${H} --json`},
    {name: 'velo image ls, no code cache', cmd: `env VELO_NO_CODE_CACHE=1 ${v} image ls --home ${H} --json`},
  ],
  {runs: Math.max(runs, 20), warmup: 3},
)
rows.push(ratioRow('velo --version', r['velo --version'], r['node -e 0'], 'node -e 0', 1.5))
rows.push(ratioRow('velo image ls --json (a whole command)', r['velo image ls'], r['node -e 0'], 'node -e 0', 2.0))
// the fast bundle from V8's code cache (bin/code-cache.js) vs compiled at every call: the cache must not cost
rows.push(ratioRow('velo image ls --json, the bundle from its code cache', r['velo image ls'], r['velo image ls, no code cache'], 'compiled each call', 1.0))

const text = printRows(`Store (bench/store.mjs, ${new Date().toISOString().slice(0, 10)}, ${files} files / ${(bytes / 1e6).toFixed(0)} MB node_modules)`, rows)
fs.mkdirSync(path.join(ROOT, 'bench', 'results'), {recursive: true})
fs.writeFileSync(path.join(ROOT, 'bench', 'results', 'store.md'), text + '\n')
