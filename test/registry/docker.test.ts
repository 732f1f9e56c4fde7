import * as fs from 'node:fs'
import * as path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {rmrf, sh, tmpDir, velo, veloJson} from '../helpers'
import {Dockerd, startDockerd} from '../image/dockerd'
import {imageRows} from '../image/listing'
import {makeTree} from './fixture'
import {Registry, startRegistry} from './registry'

const ok = (r: {status: number; stdout: string; stderr: string}, what: string) => {
  if (r.status !== 0) throw new Error(`${what} failed (${r.status}): ${r.stderr}`)
  return r.stdout.trim()
}

/**
 * Plain images both ways with a real Docker (a private dockerd; the registry on 127.0.0.1, which Docker
 * reaches over plain HTTP by default): `velo pull` of what `docker push` wrote, and `docker pull` of what
 * `velo push --oci` wrote. Each side is compared through `docker save` → `velo image import`, the import path
 * test/image/ checks against Docker's own view.
 */
describe('velo push / pull with docker push / docker pull', () => {
  let reg: Registry
  let d: Dockerd
  let w: string

  beforeAll(async () => {
    ;[reg, d] = await Promise.all([startRegistry(), startDockerd()])
    w = tmpDir('velo-regdocker-')
  })
  afterAll(async () => {
    await Promise.all([reg?.stop(), d?.stop()])
    if (w) rmrf(w)
  })

  it('velo pull reads an image docker pushed (gzip layers, Docker schema 2 manifest)', () => {
    const tree = path.join(w, 'tree')
    makeTree(tree, {files: 80})
    fs.rmSync(path.join(tree, 'fifo')) // docker import keeps fifos, but keep the example plain
    ok(sh(`tar -C ${tree} -cf ${w}/tree.tar .`), 'tar')
    const ref = `${reg.host}/docker/tree:1`
    ok(d.docker(['import', `${w}/tree.tar`, ref]), 'docker import')
    ok(d.docker(['push', ref]), 'docker push')
    const H = path.join(w, 'H')
    const r = veloJson(H, ['pull', ref, '--insecure', '--name', 'tree'])
    expect(r.format).toBe('docker')
    // the same image through docker save → velo image import: the same layers
    fs.writeFileSync(path.join(w, 'tree-save.tar'), d.docker(['save', ref], {encoding: 'buffer'}).raw)
    veloJson(H, ['image', 'import', path.join(w, 'tree-save.tar'), '--name', 'saved'])
    expect(veloJson(H, ['image', 'inspect', 'tree']).layers).toEqual(veloJson(H, ['image', 'inspect', 'saved']).layers)
    expect(imageRows(H, 'tree')).toEqual(imageRows(H, 'saved'))
    // a digest reference works too
    const byDigest = veloJson(H, ['pull', `${reg.host}/docker/tree@${r.digest}`, '--insecure', '--name', 'tree-d'])
    expect(byDigest.layers.map((l: any) => l.id)).toEqual(r.layers.map((l: any) => l.id))
  })

  it('docker pull reads what velo push --oci wrote', () => {
    const H = path.join(w, 'V')
    makeTree(path.join(w, 'vtree'), {files: 50})
    veloJson(H, ['ingest', path.join(w, 'vtree'), '--name', 'vtree'])
    const ref = `${reg.host}/velo/vtree:2`
    const p = veloJson(H, ['push', 'vtree', ref, '--oci', '--insecure'])
    expect(p.format).toBe('oci')
    ok(d.docker(['pull', ref]), 'docker pull')
    fs.writeFileSync(path.join(w, 'vtree-save.tar'), d.docker(['save', ref], {encoding: 'buffer'}).raw)
    veloJson(H, ['image', 'import', path.join(w, 'vtree-save.tar'), '--name', 'back'])
    expect(imageRows(H, 'back')).toEqual(imageRows(H, 'vtree'))
    expect(veloJson(H, ['image', 'inspect', 'back']).layers).toEqual(veloJson(H, ['image', 'inspect', 'vtree']).layers)
    // and velo pulls the plain image back as well
    const again = veloJson(path.join(w, 'V2'), ['pull', ref, '--insecure', '--name', 'vtree'])
    expect(again.format).toBe('oci')
    // docker cannot run a velo artifact: velo's own push is for velo; say so clearly when docker pulls it
    veloJson(H, ['push', 'vtree', `${reg.host}/velo/artifact:1`, '--insecure'])
    const dp = d.docker(['pull', `${reg.host}/velo/artifact:1`])
    expect(dp.status).not.toBe(0)
    expect(velo(H, ['image', 'ls']).status).toBe(0)
  })
})
