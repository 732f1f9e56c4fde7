#!/usr/bin/env node
// FUSE benchmark: velo mount (velo-fuse) vs the same image checked out on disk, side by side in one run
// (hyperfine), ratios printed at the end. Usage: node bench/fuse.mjs [--runs N]   (root: it mounts)
// Work dir: $VELO_BENCH_DIR (default /var/tmp/velo-bench-fuse), kept between runs (the inputs take a while).
//   1. sequential read of a 1 GiB file: disk (page cache warm) vs the mount, by default with FUSE
//      passthrough (the kernel reads the cached CAS object); and with VELO_FUSE_PASSTHROUGH=0, first read
//      through the daemon (the mount's own page cache dropped before each run) and again (keep_cache)
//   2. find + stat of a 50,000-file image, warm: the mount vs its on-disk checkout
//   3. `velo mount` of that image vs `velo image checkout` of it (both whole CLI invocations)
import * as fs from 'node:fs'
import * as path from 'node:path'
import {benchStart, freshDirEachRun, hyperfine, ratioRow, sh, VELO, ROOT, writeResults} from './lib.mjs'

const {runs, W} = benchStart('fuse')
const H = path.join(W, 'home')
const velo = (args) => `${VELO} ${args} --home ${H}`
const mounts = []
const umountAll = () => {
  for (const m of mounts.splice(0)) sh(`${velo(`umount ${m}`)} >/dev/null 2>&1 || umount -l ${m} 2>/dev/null || true`)
}
process.on('exit', umountAll)
process.on('SIGINT', () => process.exit(130))

// ---- inputs ------------------------------------------------------------------------------------------------
const bigSrc = path.join(W, 'bigsrc')
if (!fs.existsSync(path.join(bigSrc, 'big'))) {
  console.error('bench: writing a 1 GiB random file ...')
  fs.mkdirSync(bigSrc, {recursive: true})
  sh(`head -c 1G /dev/urandom > ${bigSrc}/big.tmp && mv ${bigSrc}/big.tmp ${bigSrc}/big`)
}
const tree = path.join(W, 'tree50k')
const DIRS = 250
const PER = 200
if (!fs.existsSync(path.join(tree, '.done'))) {
  console.error(`bench: writing a ${DIRS * PER}-file tree ...`)
  fs.rmSync(tree, {recursive: true, force: true})
  for (let d = 0; d < DIRS; d++) {
    const dir = path.join(tree, `d${String(d).padStart(3, '0')}`)
    fs.mkdirSync(dir, {recursive: true})
    for (let f = 0; f < PER; f++) fs.writeFileSync(path.join(dir, `f${f}.txt`), `file ${d}/${f}\n`.repeat(1 + (f % 7)))
  }
  fs.writeFileSync(path.join(tree, '.done'), '')
}
const files = DIRS * PER + 1
if (!fs.existsSync(path.join(H, 'db'))) {
  console.error('bench: ingesting both inputs ...')
  sh(`${velo(`ingest ${bigSrc} --name big`)} >/dev/null`)
  sh(`${velo(`ingest ${tree} --name many`)} >/dev/null`)
}
const bigCo = path.join(W, 'big-co')
const manyCo = path.join(W, 'many-co')
sh(`rm -rf ${bigCo} ${manyCo}`)
sh(`${velo(`image checkout big ${bigCo}`)} 2>/dev/null && ${velo(`image checkout many ${manyCo}`)} 2>/dev/null`)

const rows = []
try {
  // ---- 1. sequential read ------------------------------------------------------------------------------------
  // the default mount (FUSE passthrough: the kernel reads the CAS object itself) and one with
  // VELO_FUSE_PASSTHROUGH=0 (every read a FUSE request the daemon answers with splice)
  const mBig = path.join(W, 'mnt-big')
  const mBigD = path.join(W, 'mnt-big-daemon')
  for (const [m, env] of [[mBig, ''], [mBigD, 'VELO_FUSE_PASSTHROUGH=0 ']]) {
    fs.mkdirSync(m, {recursive: true})
    sh(`${velo(`umount ${m}`)} >/dev/null 2>&1 || true`)
    sh(`${env}${velo(`mount big ${m}`)} 2>/dev/null`)
    mounts.push(m)
  }
  const obj = sh(`find ${H}/cas -type f -size +1000M | head -1`).trim()
  sh(`cat ${obj} ${bigCo}/big > /dev/null`) // the object and the checkout copy both in the host page cache
  // drops the daemon-read mount's own page cache of the file (not the object's): the next read goes through the daemon
  const dropMountCache = `python3 -c "import os; fd=os.open('${mBigD}/big', os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)"`
  let r = hyperfine(
    [
      {name: 'disk (cached)', cmd: `dd if=${bigCo}/big of=/dev/null bs=1M`},
      {name: 'mount (passthrough)', cmd: `dd if=${mBig}/big of=/dev/null bs=1M`},
      {name: 'mount (daemon reads), first read', prepare: dropMountCache, cmd: `dd if=${mBigD}/big of=/dev/null bs=1M`},
      {name: 'mount (daemon reads), again', cmd: `dd if=${mBigD}/big of=/dev/null bs=1M`},
    ],
    {runs, warmup: 2},
  )
  const tp = (x) => ({mean: 1.073741824 / x.mean}) // GB/s
  const gbs = {unit: 'GB/s'}
  const disk = tp(r['disk (cached)'])
  rows.push({...ratioRow('sequential read of 1 GiB (default: FUSE passthrough)', tp(r['mount (passthrough)']), disk, 'disk (cached)', 0.7, 'higher'), ...gbs})
  rows.push({...ratioRow('same, VELO_FUSE_PASSTHROUGH=0: first read through the daemon', tp(r['mount (daemon reads), first read']), disk, 'disk (cached)', 0.7, 'higher'), ...gbs})
  rows.push({...ratioRow('same, VELO_FUSE_PASSTHROUGH=0: read again (mount page cache, keep_cache)', tp(r['mount (daemon reads), again']), disk, 'disk (cached)', 0.7, 'higher'), ...gbs})

  // ---- 2. find + stat of 50,000 files, warm ------------------------------------------------------------------
  const mMany = path.join(W, 'mnt-many')
  fs.mkdirSync(mMany, {recursive: true})
  sh(`${velo(`umount ${mMany}`)} >/dev/null 2>&1 || true`)
  sh(`${velo(`mount many ${mMany}`)} 2>/dev/null`)
  mounts.push(mMany)
  const findStat = (d) => `find ${d} -printf '%s %m %U %G %T@\\n'` // stats every entry
  r = hyperfine(
    [
      {name: 'find+stat checkout', cmd: findStat(manyCo), shell: true},
      {name: 'find+stat mount', cmd: findStat(mMany), shell: true},
    ],
    {runs, warmup: 2},
  )
  rows.push(ratioRow(`find + stat of ${files} entries, warm`, r['find+stat mount'], r['find+stat checkout'], 'on-disk checkout', 2))
  // cold through the daemon, for the record (no target): the kernel's dentry/attr caches dropped first
  r = hyperfine(
    [
      {name: 'find+stat checkout (cold caches)', prepare: 'echo 2 > /proc/sys/vm/drop_caches', cmd: findStat(manyCo), shell: true},
      {name: 'find+stat mount (cold caches)', prepare: 'echo 2 > /proc/sys/vm/drop_caches', cmd: findStat(mMany), shell: true},
    ],
    {runs: Math.min(runs, 3), warmup: 0},
  )
  rows.push({...ratioRow(`find + stat of ${files} entries, dentries/inodes dropped first`, r['find+stat mount (cold caches)'], r['find+stat checkout (cold caches)'], 'on-disk checkout', 0), target: '(none)', ok: undefined})

  // ---- 3. velo mount vs velo image checkout ----------------------------------------------------------------
  const m2 = path.join(W, 'mnt-many2')
  // a new checkout dir each run (an rm -rf of the last one right before a run slows it: bench/lib.mjs freshDirEachRun)
  const co2s = freshDirEachRun(path.join(W, 'co2'))
  fs.mkdirSync(m2, {recursive: true})
  mounts.push(m2)
  r = hyperfine(
    [
      {name: 'velo image checkout', prepare: co2s.prepare, cmd: velo(`image checkout many ${co2s.dir}`), shell: true},
      {name: 'velo mount', prepare: `${velo(`umount ${m2}`)} >/dev/null 2>&1 || true`, cmd: velo(`mount many ${m2}`), shell: true},
    ],
    {runs: Math.min(runs, 3), warmup: 1},
  )
  rows.push(ratioRow(`velo mount of a ${files}-entry image`, r['velo mount'], r['velo image checkout'], 'velo image checkout', 0.1))
} finally {
  umountAll()
}
writeResults('FUSE', rows)
const fmt = (row, x) => (row.unit === 'GB/s' ? `${x.toFixed(2)} GB/s` : x < 1 ? `${(x * 1000).toFixed(1)} ms` : `${x.toFixed(3)} s`)
console.log(['\n## FUSE', '', '| what | velo | peer | ratio | target | |', '| --- | --- | --- | --- | --- | --- |',
  ...rows.map((r) => `| ${r.what} | ${fmt(r, r.velo)} | ${r.peerName} ${fmt(r, r.peer)} | ${r.ratio.toFixed(2)}× | ${r.target} | ${r.ok === undefined ? '' : r.ok ? 'met' : 'NOT met'} |`)].join('\n'))
