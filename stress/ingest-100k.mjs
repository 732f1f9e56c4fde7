#!/usr/bin/env node
// Stress: 100,000 small files ingest and check out correctly (not part of npm test: takes a minute or two).
// Usage: node stress/ingest-100k.mjs [--files N]
// Builds a tree of N small files (1/5 of them duplicates of others, in 1,000 directories), ingests it into a
// fresh store, checks it out, and compares the two trees with an outside tool (find + sha256 over both).
import {$, fs, path, os} from 'zx'

$.verbose = false
const n = Number(process.argv[process.argv.indexOf('--files') + 1]) || 100_000
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..')
const velo = path.join(root, 'bin', 'velo.js')
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'velo-stress-'))
const src = path.join(work, 'src')
const home = path.join(work, 'home')
const out = path.join(work, 'out')
const t = () => performance.now()
try {
  await $`bash ${root}/scripts/setup.sh`
  console.error(`stress: writing ${n} files ...`)
  for (let d = 0; d < 1000; d++) {
    const dir = path.join(src, `d${String(d).padStart(3, '0')}`)
    fs.mkdirSync(dir, {recursive: true})
    for (let f = 0; f < n / 1000; f++) {
      const i = d * (n / 1000) + f
      fs.writeFileSync(path.join(dir, `f${f}.txt`), i % 5 === 0 ? `duplicate ${i % 1000}\n` : `file ${i}\n`.repeat(1 + (i % 7)))
    }
  }
  let t0 = t()
  const ing = JSON.parse((await $`node ${velo} ingest ${src} --name stress --home ${home} --json`).stdout)
  const ingestS = (t() - t0) / 1000
  t0 = t()
  await $`node ${velo} image checkout stress ${out} --home ${home} --json`
  const checkoutS = (t() - t0) / 1000
  const list = async (d) => (await $`cd ${d} && find . -printf '%p %y %m %s %T@\n' | sort && find . -type f -print0 | sort -z | xargs -0 sha256sum`).stdout
  const same = (await list(src)) === (await list(out))
  const fsck = await $`node ${velo} fsck --home ${home}`.nothrow()
  console.log(
    JSON.stringify({files: ing.files, newObjects: ing.newObjects, ingestSeconds: ingestS, checkoutSeconds: checkoutS, identical: same, fsckExit: fsck.exitCode}, null, 2),
  )
  if (!same || fsck.exitCode !== 0 || ing.files !== n) {
    console.error('stress: FAILED')
    process.exitCode = 1
  } else console.error(`stress: OK — ${n} files ingested in ${ingestS.toFixed(1)} s, checked out in ${checkoutS.toFixed(1)} s, identical`)
} finally {
  fs.rmSync(work, {recursive: true, force: true})
}
