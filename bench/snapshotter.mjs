#!/usr/bin/env node
// velo's containerd snapshotter against containerd's own overlayfs snapshotter, in one containerd, same run
// (issue 15): pull + unpack of an image from a loopback docker-registry, a second image sharing 90% of its files
// but no layer (disk growth), and `ctr run --rm` start-up. Usage: node bench/snapshotter.mjs [--runs N]
// Work dir: $VELO_BENCH_DIR or /var/tmp/velo-bench-snapshotter (containerd root, the velo store, the registry).
import {execFileSync, spawn} from 'node:child_process'
import * as fs from 'node:fs'
import * as net from 'node:net'
import * as path from 'node:path'
import {benchStart, printRows, ROOT, sh, VELO} from './lib.mjs'

const {runs, W} = benchStart('snapshotter', {defaultRuns: 5})
fs.rmSync(W, {recursive: true, force: true})
fs.mkdirSync(W, {recursive: true})
const log = (m) => process.stderr.write(`bench: ${m}\n`)
const procs = []
const wait = async (what, ok) => {
  for (let i = 0; i < 300; i++) {
    if (ok()) return
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`${what} did not come up`)
}
const freePort = () =>
  new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = s.address().port
      s.close(() => resolve(p))
    })
  })
const addr = `${W}/c.sock`
const ctr = (...a) => execFileSync('ctr', ['--address', addr, ...a], {encoding: 'utf8', maxBuffer: 1 << 26, stdio: ['ignore', 'pipe', 'pipe']})
const home = `${W}/velo-home`
const ms = () => performance.now()
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

try {
  // the inputs: a tree of real files (this checkout's node_modules), as image 1; image 2 is the
  // same tree built again (other mtimes: no layer in common) with 10% of its files changed
  log('building two images (the second shares 90% of its files, no layer)')
  const src = `${W}/tree`
  // every package but the few largest (native builds and compilers): ~13k files of ordinary JS, as an app image has
  sh(`mkdir -p ${src}/bin ${src}/node_modules && cp /bin/busybox ${src}/bin/ && ln -s busybox ${src}/bin/sh && cd ${ROOT}/node_modules && ls -A | grep -vxE 'node-pty|typescript|@rolldown|@lmdb|@esbuild|lightningcss-linux-x64-gnu|\\.bin' | xargs cp -a -t ${src}/node_modules/`)
  const files = sh(`find ${src} -type f | sort`).trim().split('\n')
  const mkImage = (tag, tarDir, changeEvery) => {
    fs.mkdirSync(tarDir, {recursive: true})
    if (changeEvery) files.forEach((f, i) => i % changeEvery === 0 && fs.appendFileSync(f, `\nchanged for ${tag}\n`))
    sh(`touch -d '@${tag === 'one' ? 1600000000 : 1700000000}' $(find ${src} -type d) ; tar -C ${src} -cf ${tarDir}/layer.tar .`)
    const layerSha = sh(`sha256sum ${tarDir}/layer.tar | cut -d' ' -f1`).trim()
    const config = JSON.stringify({architecture: 'amd64', os: 'linux', config: {Env: ['PATH=/bin'], Cmd: ['/bin/sh']}, rootfs: {type: 'layers', diff_ids: [`sha256:${layerSha}`]}})
    fs.writeFileSync(`${tarDir}/config.json`, config)
    fs.writeFileSync(`${tarDir}/manifest.json`, JSON.stringify([{Config: 'config.json', RepoTags: [`bench/${tag}:1`], Layers: ['layer.tar']}]))
    sh(`tar -C ${tarDir} -cf ${W}/${tag}.tar manifest.json config.json layer.tar`)
  }
  mkImage('one', `${W}/img1`, 0)
  mkImage('two', `${W}/img2`, 10)
  const bytes = Number(sh(`du -sb ${src} | cut -f1`))
  log(`${files.length} files, ${(bytes / 2 ** 20).toFixed(0)} MiB per image`)

  // registry, velo's service, containerd
  const port = await freePort()
  fs.writeFileSync(`${W}/registry.yml`, `version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${W}/registry\nhttp:\n  addr: 127.0.0.1:${port}\n`)
  procs.push(spawn('docker-registry', ['serve', `${W}/registry.yml`], {stdio: 'ignore'}))
  const svcLog = fs.openSync(`${W}/velo.log`, 'a')
  procs.push(spawn(VELO, ['snapshotter', 'serve', '--address', `${W}/velo.sock`], {env: {...process.env, VELO_HOME: home}, stdio: ['ignore', svcLog, svcLog]}))
  await wait('velo snapshotter', () => /serving/.test(fs.readFileSync(`${W}/velo.log`, 'utf8')))
  fs.writeFileSync(
    `${W}/config.toml`,
    `version = 2\nroot = "${W}/root"\nstate = "${W}/state"\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n[grpc]\n  address = "${addr}"\n[ttrpc]\n  address = "${addr}.ttrpc"\n[proxy_plugins.velo]\n  type = "snapshot"\n  address = "${W}/velo.sock"\n`,
  )
  const ctdLog = fs.openSync(`${W}/containerd.log`, 'a')
  procs.push(spawn('containerd', ['--config', `${W}/config.toml`], {stdio: ['ignore', ctdLog, ctdLog]}))
  await wait('containerd', () => {
    try {
      ctr('version')
      return true
    } catch {
      return false
    }
  })
  await wait('registry', () => {
    try {
      execFileSync('curl', ['-sf', `http://127.0.0.1:${port}/v2/`], {stdio: 'ignore'})
      return true
    } catch {
      return false
    }
  })
  const refs = {}
  for (const tag of ['one', 'two']) {
    ctr('image', 'import', '--snapshotter', 'overlayfs', `${W}/${tag}.tar`)
    const local = ctr('image', 'ls', '-q').split('\n').find((i) => i.includes(`bench/${tag}`))
    refs[tag] = `127.0.0.1:${port}/bench/${tag}:1`
    ctr('image', 'tag', local, refs[tag])
    ctr('image', 'push', '--plain-http', refs[tag])
    ctr('image', 'rm', local, refs[tag])
  }
  // containerd's content store is shared by both snapshotters: drop it before each pull, so both download
  const forget = (ref, snapshotter) => {
    try {
      ctr('image', 'rm', '--sync', ref)
    } catch {}
    ctr('content', 'prune', 'references')
    for (const k of ctr('snapshots', '--snapshotter', snapshotter, 'ls').split('\n').slice(1).map((l) => l.split(/\s+/)[0]).filter(Boolean).reverse())
      try {
        ctr('snapshots', '--snapshotter', snapshotter, 'rm', k)
      } catch {}
  }
  const pull = (ref, snapshotter) => {
    const t = ms()
    ctr('image', 'pull', '--plain-http', '--snapshotter', snapshotter, ref)
    return (ms() - t) / 1000
  }
  log(`pull + unpack, ${runs} runs each, alternating`)
  const times = {velo: [], overlayfs: []}
  for (let i = 0; i < runs; i++)
    for (const s of ['velo', 'overlayfs']) {
      forget(refs.one, s)
      times[s].push(pull(refs.one, s))
    }
  // disk growth from a second image sharing 90% of files: overlayfs's snapshot dir vs velo's store
  forget(refs.one, 'velo')
  forget(refs.one, 'overlayfs')
  const du = (p) => Number(sh(`du -sb ${p} 2>/dev/null | cut -f1 || echo 0`) || 0)
  const ovl = `${W}/root/io.containerd.snapshotter.v1.overlayfs`
  // one du over the whole store: a farm's hard links to the store's objects are counted once, as the disk holds them
  const veloDisk = () => du(home)
  pull(refs.one, 'velo')
  pull(refs.one, 'overlayfs')
  const [v0, o0] = [veloDisk(), du(ovl)]
  pull(refs.two, 'velo')
  pull(refs.two, 'overlayfs')
  const [v1, o1] = [veloDisk(), du(ovl)]
  // ctr run --rm start-up
  log(`ctr run --rm, ${runs} runs each`)
  const run = {velo: [], overlayfs: []}
  for (let i = 0; i < runs + 1; i++)
    for (const s of ['velo', 'overlayfs']) {
      const t = ms()
      ctr('run', '--snapshotter', s, '--rm', refs.one, `r-${s}-${i}`, '/bin/sh', '-c', 'true')
      if (i > 0) run[s].push((ms() - t) / 1000) // the first is a warm-up
    }
  const row = (what, v, o, target, unit = 's') => {
    const ratio = v / o
    return {what, velo: v, peer: o, peerName: 'overlayfs', ratio, target: `≤ ${target}`, ok: ratio <= target, unit}
  }
  printRows(`containerd snapshotter: velo vs overlayfs (${files.length} files, ${(bytes / 2 ** 20).toFixed(0)} MiB; medians of ${runs})`, [
    row('`ctr image pull` + unpack from a loopback registry', median(times.velo), median(times.overlayfs), 1.2),
    row('disk growth for a second image sharing 90% of files (no layer)', (v1 - v0) / 2 ** 20, (o1 - o0) / 2 ** 20, 0.2, 'MiB'),
    row('`ctr run --rm IMAGE sh -c true`', median(run.velo), median(run.overlayfs), 1.1),
  ])
} finally {
  try {
    for (const ns of ['default'])
      for (const id of sh(`ctr --address ${addr} -n ${ns} containers ls -q 2>/dev/null || true`).split('\n').filter(Boolean)) sh(`ctr --address ${addr} -n ${ns} tasks kill -s SIGKILL ${id} 2>/dev/null; ctr --address ${addr} -n ${ns} containers rm ${id} 2>/dev/null || true`)
  } catch {}
  for (const p of procs.reverse()) p.kill('SIGTERM')
  await new Promise((r) => setTimeout(r, 1000))
  for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL')
  sh(`grep -F ' ${W}/' /proc/self/mountinfo | cut -d' ' -f5 | sort -r | xargs -r -n1 umount -l 2>/dev/null || true`)
  fs.rmSync(W, {recursive: true, force: true})
}
