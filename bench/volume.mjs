#!/usr/bin/env node
// Volumes benchmark (issue 14): writes and metadata work on a volume against the same on a plain directory of the
// same filesystem, and snapshot / restore of a 50k-file volume against a full ingest of it, side by side (hyperfine).
//   1. untar of a node_modules tree into `velo volume mount`'s dir vs into a plain dir
//   2. rsync -a of that tree into each
//   3. snapshot of a volume of ≥ 50,000 files with 1% of them changed since the last snapshot vs `velo ingest` of the
//      same tree into an empty store
//   4. restore of a snapshot of that volume vs the same full ingest
// Inputs: this checkout's node_modules (scripts/setup.sh installs it), tarred once, and copies of it for the 50k-file
// volume. Usage: node bench/volume.mjs [--runs N]   Work dir: $VELO_BENCH_DIR (default /var/tmp/velo-bench-volume)
import * as fs from 'node:fs'
import * as path from 'node:path'
import {benchStart, hyperfine, printRows, ratioRow, sh, VELO, ROOT} from './lib.mjs'

const {runs, W} = benchStart('volume')
const v = VELO
const H = path.join(W, 'home')
const log = (m) => console.error(`bench: ${m}`)
const rows = []
const notes = []

const mounted = []
const umountAll = () => {
  for (const m of mounted.splice(0)) sh(`${v} volume umount ${m} --home ${H} >/dev/null 2>&1 || umount -l ${m} 2>/dev/null || true`)
}
try {
  sh(`rm -rf ${H} ${W}/plain ${W}/mnt ${W}/full`)
  const tar = path.join(W, 'nm.tar')
  if (!fs.existsSync(tar)) sh(`tar -C ${ROOT} -cf ${tar} node_modules`)
  const files = Number(sh(`tar -tf ${tar} | grep -vc '/$'`).trim())
  log(`tree: ${files} entries that are not directories (${(fs.statSync(tar).size / 1e6).toFixed(0)} MB tar)`)

  // 1 + 2: writes through the volume's mount vs a plain directory on the same filesystem
  sh(`${v} volume create w --home ${H} >/dev/null`)
  const M = path.join(W, 'mnt')
  const P = path.join(W, 'plain')
  fs.mkdirSync(M, {recursive: true})
  fs.mkdirSync(P, {recursive: true})
  sh(`${v} volume mount w ${M} --home ${H} >/dev/null`)
  mounted.push(M)
  sh(`sync; cat ${tar} >/dev/null`)
  let r = hyperfine(
    [
      {name: 'plain', shell: true, prepare: `rm -rf ${P}/t && mkdir ${P}/t && sync`, cmd: `tar -C ${P}/t -xf ${tar}`},
      {name: 'volume', shell: true, prepare: `rm -rf ${M}/t && mkdir ${M}/t && sync`, cmd: `tar -C ${M}/t -xf ${tar}`},
    ],
    {runs},
  )
  rows.push(ratioRow(`untar of node_modules (${files} entries) into the volume's mount vs a plain dir, same filesystem`, r.volume, r.plain, 'plain dir', 1.2))
  const src = path.join(P, 'src')
  sh(`rm -rf ${src} && mkdir -p ${src} && tar -C ${src} -xf ${tar}`)
  r = hyperfine(
    [
      {name: 'plain', shell: true, prepare: `rm -rf ${P}/r && sync`, cmd: `rsync -a ${src}/ ${P}/r/`},
      {name: 'volume', shell: true, prepare: `rm -rf ${M}/r && sync`, cmd: `rsync -a ${src}/ ${M}/r/`},
    ],
    {runs},
  )
  rows.push(ratioRow('rsync -a of that tree into the volume vs a plain dir', r.volume, r.plain, 'plain dir', 1.2))
  umountAll()

  // 3 + 4: a volume of >= 50,000 files (copies of the tree), snapshots and restore vs a full ingest
  sh(`${v} volume create big --home ${H} >/dev/null`)
  const data = JSON.parse(sh(`${v} volume inspect big --home ${H} --json`)).dir
  let copies = 0
  while (Number(sh(`find ${data} -type f | wc -l`).trim()) < 50000) sh(`mkdir -p ${data}/c${copies} && tar -C ${data}/c${copies++} -xf ${tar}`)
  const all = sh(`cd ${data} && find . -type f -size +0 | sort`).trim().split('\n')
  const bigFiles = Number(sh(`find ${data} -type f | wc -l`).trim())
  // 1% of the files, spread over the tree, changed before every snapshot run (new bytes each time)
  const changed = all.filter((_, i) => i % 100 === 7)
  fs.writeFileSync(path.join(W, 'changed.txt'), changed.map((f) => path.join(data, f)).join('\n') + '\n')
  fs.writeFileSync(path.join(W, 'change.sh'), `#!/bin/sh\nn=$(date +%s%N)\nwhile read -r f; do echo "// $n" >> "$f"; done < ${W}/changed.txt\n`)
  log(`volume: ${bigFiles} files (${copies} copies of the tree); ${changed.length} of them changed before each snapshot`)
  sh(`${v} volume snapshot big s0 --home ${H} >/dev/null`)
  sh(`sync; find ${data} -type f -exec cat {} + >/dev/null`)
  const FULL = path.join(W, 'full')
  r = hyperfine(
    [
      {name: 'full ingest', shell: true, prepare: `rm -rf ${FULL} && sync`, cmd: `${v} ingest ${data} --name full --home ${FULL} >/dev/null`},
      {name: 'snapshot', shell: true, prepare: `sh ${W}/change.sh && sync`, cmd: `${v} volume snapshot big s$(date +%s%N) --home ${H} >/dev/null`},
      {name: 'restore', shell: true, prepare: 'sync', cmd: `${v} volume restore big s0 --home ${H} >/dev/null`},
    ],
    {runs},
  )
  rows.push(ratioRow(`snapshot of a ${bigFiles}-file volume with 1% of its files changed vs a full ingest of it`, r.snapshot, r['full ingest'], 'velo ingest (empty store)', 0.2))
  rows.push(ratioRow(`restore of a snapshot of that volume vs the same full ingest`, r.restore, r['full ingest'], 'velo ingest (empty store)', 0.1))
  notes.push('chunk-level dedup (a 1 GiB file with 1 MiB changed stores <= 2 MiB more): not measured, FastCDC chunking is not built')
  printRows('Volumes (issue 14)', rows)
  for (const n of notes) console.log(`- ${n}`)
} finally {
  umountAll()
  sh(`${v} volume rm w big --home ${H} >/dev/null 2>&1 || true`)
  sh(`rm -rf ${H} ${W}/plain ${W}/mnt ${W}/full`)
}
