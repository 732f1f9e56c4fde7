#!/usr/bin/env node
// CI cache benchmark: `velo cache save` / `velo ingest` / `velo cache restore` of a node_modules tree against
// `cp -a` of it, side by side (hyperfine), for a small project (~2,200 entries: start-up dominates) and a large
// one (the repository's own node_modules, ~15,000 entries). Every velo write ends with a syncfs (its durability
// promise) and cp -a does not sync: each run is prepared with `sync`, so neither side pays for the previous
// run's writeback. Usage: node bench/cache.mjs [--runs N]   Work dir: $VELO_BENCH_DIR (default /var/tmp/velo-bench-cache)
import * as fs from 'node:fs'
import * as path from 'node:path'
import {benchStart, hyperfine, printRows, ratioRow, sh, VELO, ROOT} from './lib.mjs'

const {runs, W} = benchStart('cache', {setup: false})
const NM = fs.realpathSync(path.join(ROOT, 'node_modules'))
// the small project: a handful of packages of the repository's own node_modules (real npm trees)
const small = path.join(W, 'small', 'node_modules')
if (!fs.existsSync(small)) {
  fs.mkdirSync(small, {recursive: true})
  for (const p of ['lodash', 'yaml', 'undici', 'semver', 'vitest', 'lmdb', 'msgpackr', 'chalk', '@oclif', 'ajv', 'tar-stream', 'zx', 'cli-progress'])
    if (fs.existsSync(path.join(NM, p))) sh(`cp -a ${path.join(NM, p)} ${small}/`)
}
const large = path.join(W, 'large', 'node_modules')
if (!fs.existsSync(large)) {
  fs.mkdirSync(path.dirname(large), {recursive: true})
  sh(`cp -a ${NM} ${large}`)
}
const rows = []
const H = path.join(W, 'home')
const out = path.join(W, 'out')
for (const [label, tree] of [
  ['small', small],
  ['large', large],
]) {
  const entries = Number(sh(`find ${tree} | wc -l`).trim())
  sh(`cat $(find ${tree} -type f) > /dev/null 2>&1 || true`) // warm the page cache for both sides
  const what = `${label} node_modules (${entries} entries)`
  // first save: a fresh store every run (everything new); ingest the same
  let r = hyperfine(
    [
      {name: 'cp -a', prepare: `rm -rf ${out} && sync`, cmd: `cp -a ${tree} ${out}`},
      {name: 'velo cache save', prepare: `rm -rf ${H} && sync`, cmd: `${VELO} cache save k ${tree} --home ${H} --job bench`},
      {name: 'velo ingest', prepare: `rm -rf ${H} && sync`, cmd: `${VELO} ingest ${tree} --name nm --home ${H}`},
    ],
    {runs},
  )
  rows.push(ratioRow(`cache save, fresh store: ${what}`, r['velo cache save'], r['cp -a'], 'cp -a', 1.5))
  rows.push(ratioRow(`ingest, fresh store: ${what}`, r['velo ingest'], r['cp -a'], 'cp -a', 1.5))
  // save again (a CI run whose key changed but whose files did not: every object a dedup hit)
  sh(`rm -rf ${H} && ${VELO} cache save k ${tree} --home ${H} --job bench`)
  r = hyperfine(
    [
      {name: 'cp -a', prepare: `rm -rf ${out} && sync`, cmd: `cp -a ${tree} ${out}`},
      {name: 'velo cache save (again)', prepare: 'sync', cmd: `${VELO} cache save k2 ${tree} --home ${H} --job bench`},
    ],
    {runs},
  )
  rows.push(ratioRow(`cache save, objects already stored: ${what}`, r['velo cache save (again)'], r['cp -a'], 'cp -a', 1.5))
  // restore (a plain checkout, replacing the directory) vs cp -a
  r = hyperfine(
    [
      {name: 'cp -a', prepare: `rm -rf ${out} && sync`, cmd: `cp -a ${tree} ${out}`},
      {name: 'velo cache restore', prepare: `rm -rf ${out} && sync`, cmd: `${VELO} cache restore k ${out} --home ${H} --job bench`},
    ],
    {runs},
  )
  rows.push(ratioRow(`cache restore (checkout): ${what}`, r['velo cache restore'], r['cp -a'], 'cp -a', 1.5))
}
sh(`rm -rf ${H} ${out}`)
printRows('velo cache vs cp -a', rows)
