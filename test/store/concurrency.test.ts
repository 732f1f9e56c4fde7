import {spawn} from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {describe, expect, it} from 'vitest'
import {tmpDirs, velo, veloJson, VELO} from '../helpers'
import {listing} from './tree'

function run(home: string, args: string[]): Promise<{status: number; stdout: string; stderr: string}> {
  return new Promise((resolve) => {
    const c = spawn(VELO, [...args], {env: {...process.env, VELO_HOME: home}})
    let stdout = ''
    let stderr = ''
    c.stdout.on('data', (d) => (stdout += d))
    c.stderr.on('data', (d) => (stderr += d))
    c.on('close', (code) => resolve({status: code ?? 137, stdout, stderr})) // after stdio is drained
  })
}

function project(root: string, seed: number): void {
  for (let d = 0; d < 10; d++) {
    fs.mkdirSync(path.join(root, `pkg${d}`), {recursive: true})
    for (let f = 0; f < 30; f++) fs.writeFileSync(path.join(root, `pkg${d}`, `shared${f}.js`), `// shared ${d}/${f}\n`.repeat(20))
    fs.writeFileSync(path.join(root, `pkg${d}`, 'own.js'), `// own to project ${seed}\n`)
  }
}

describe('concurrent writers', () => {
  const mk = tmpDirs()

  it('two ingests at once into one store both succeed and both check out correctly', async () => {
    const home = mk()
    const a = mk()
    const b = mk()
    project(a, 1)
    project(b, 2)
    const [ra, rb] = await Promise.all([run(home, ['ingest', a, '--name', 'a', '--json']), run(home, ['ingest', b, '--name', 'b', '--json'])])
    expect(ra.status, ra.stderr).toBe(0)
    expect(rb.status, rb.stderr).toBe(0)
    for (const [name, src] of [['a', a], ['b', b]]) {
      const out = path.join(mk(), 'out')
      veloJson(home, ['image', 'checkout', name, out])
      expect(listing(out)).toBe(listing(src))
    }
    expect(velo(home, ['fsck']).status).toBe(0)
  })

  it('gc running alongside ingests never removes what an ingest is about to commit', async () => {
    const home = mk()
    const a = mk()
    project(a, 1)
    veloJson(home, ['ingest', a, '--name', 'first'])
    veloJson(home, ['image', 'rm', 'first']) // everything is garbage now ...
    const runs = await Promise.all([run(home, ['ingest', a, '--name', 'again']), run(home, ['gc']), run(home, ['gc'])]) // ... unless re-ingested
    for (const r of runs) expect(r.status, r.stderr).toBe(0)
    const out = path.join(mk(), 'out')
    veloJson(home, ['image', 'checkout', 'again', out])
    expect(listing(out)).toBe(listing(a))
    expect(velo(home, ['fsck']).status).toBe(0)
  })

  it('ten similar projects share their common files', () => {
    const home = mk()
    let logical = 0
    for (let i = 0; i < 10; i++) {
      const p = mk()
      project(p, i)
      logical += veloJson(home, ['ingest', p, '--name', `proj${i}`]).logicalBytes
    }
    const s = veloJson(home, ['status'])
    expect(s.images).toHaveLength(10)
    expect(s.logicalBytes).toBe(logical)
    // 300 shared files stored once; own.js is identical across one project's 10 packages, so once per project
    const one = mk()
    project(one, 0)
    const sharedBytes = veloJson(mk(), ['ingest', one, '--name', 'x']).logicalBytes - 10 * '// own to project 0\n'.length
    const ownBytes = 10 * '// own to project 0\n'.length
    expect(s.physicalBytes).toBe(sharedBytes + ownBytes)
    expect(s.dedupRatio).toBeGreaterThan(8)
  })
})
