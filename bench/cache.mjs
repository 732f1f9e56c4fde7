#!/usr/bin/env node
// CI cache benchmark: `velo cache save` / `velo ingest` / `velo cache restore` of a node_modules tree against
// `cp -a` of it, side by side (hyperfine), for a small project (~2,200 entries: start-up dominates) and a large
// one (the repository's own node_modules, ~15,000 entries). Every velo write ends with a syncfs (its durability
// promise) and cp -a does not sync: each run is prepared with `sync`, so neither side pays for the previous
// run's writeback. Usage: node bench/cache.mjs [--runs N]   Work dir: $VELO_BENCH_DIR (default /var/tmp/velo-bench-cache)
import * as fs from 'node:fs'
import * as path from 'node:path'
import {benchStart, freshDirEachRun, hyperfine, removeAtExit, printRows, ratioRow, sh, VELO, ROOT} from './lib.mjs'

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
const home = (label) => path.join(W, `home-${label}`)
const out = path.join(W, 'out')
for (const [label, tree] of [
  ['small', small],
  ['large', large],
]) {
  const entries = Number(sh(`find ${tree} | wc -l`).trim())
  sh(`cat $(find ${tree} -type f) > /dev/null 2>&1 || true`) // warm the page cache for both sides
  const what = `${label} node_modules (${entries} entries)`
  // first save: a fresh store every run (everything new); ingest the same. Every run into a new directory or store,
  // each group's its own (freshDirEachRun: no rm -rf right before a run)
  const H = home(label)
  const [cpOut, saveHome, ingestHome] = [`${out}-${label}-cp1`, `${H}-save`, `${H}-ingest`].map((d) => freshDirEachRun(d))
  let r = hyperfine(
    [
      {name: 'cp -a', shell: true, prepare: cpOut.prepare, cmd: `cp -a ${tree} ${cpOut.dir}`},
      {name: 'velo cache save', shell: true, prepare: saveHome.prepare, cmd: `${VELO} cache save k ${tree} --home ${saveHome.dir} --job bench`},
      {name: 'velo ingest', shell: true, prepare: ingestHome.prepare, cmd: `${VELO} ingest ${tree} --name nm --home ${ingestHome.dir}`},
    ],
    {runs},
  )
  rows.push(ratioRow(`cache save, fresh store: ${what}`, r['velo cache save'], r['cp -a'], 'cp -a', 1.5))
  rows.push(ratioRow(`ingest, fresh store: ${what}`, r['velo ingest'], r['cp -a'], 'cp -a', 1.5))
  // save again (a CI run whose key changed but whose files did not: every object a dedup hit)
  // a store of its own (never one removed just before: freshDirEachRun says why), removed when the bench exits
  removeAtExit(H)
  sh(`${VELO} cache save k ${tree} --home ${H} --job bench`)
  const cpAgain = freshDirEachRun(`${out}-${label}-cp2`)
  r = hyperfine(
    [
      {name: 'cp -a', shell: true, prepare: cpAgain.prepare, cmd: `cp -a ${tree} ${cpAgain.dir}`},
      {name: 'velo cache save (again)', prepare: 'sync', cmd: `${VELO} cache save k2 ${tree} --home ${H} --job bench`},
    ],
    {runs},
  )
  rows.push(ratioRow(`cache save, objects already stored: ${what}`, r['velo cache save (again)'], r['cp -a'], 'cp -a', 1.5))
  // restore (a plain checkout, replacing the directory) vs cp -a
  const [cpRestore, restored] = [`${out}-${label}-cp3`, `${out}-${label}-restore`].map((d) => freshDirEachRun(d))
  r = hyperfine(
    [
      {name: 'cp -a', shell: true, prepare: cpRestore.prepare, cmd: `cp -a ${tree} ${cpRestore.dir}`},
      {name: 'velo cache restore', shell: true, prepare: restored.prepare, cmd: `${VELO} cache restore k ${restored.dir} --home ${H} --job bench`},
    ],
    {runs},
  )
  rows.push(ratioRow(`cache restore (checkout): ${what}`, r['velo cache restore'], r['cp -a'], 'cp -a', 1.5))
}
sh(`rm -rf ${out}`)
printRows('velo cache vs cp -a', rows)
