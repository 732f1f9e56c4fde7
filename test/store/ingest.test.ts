import * as fs from 'node:fs'
import * as path from 'node:path'
import {describe, expect, it} from 'vitest'
import {tmpDirs, velo, veloJson} from '../helpers'

describe('velo ingest', () => {
  const mk = tmpDirs()

  it('stores a tree once and dedups a second ingest', () => {
    const home = mk()
    const src = mk()
    fs.writeFileSync(path.join(src, 'a.txt'), 'hello\n')
    fs.mkdirSync(path.join(src, 'sub'))
    fs.writeFileSync(path.join(src, 'sub', 'b.txt'), 'hello\n')
    fs.writeFileSync(path.join(src, 'empty'), '')
    const r1 = veloJson(home, ['ingest', src, '--name', 'one'])
    expect(r1.files).toBe(3)
    expect(r1.newObjects).toBe(1)
    expect(r1.newBytes).toBe(6)
    const r2 = veloJson(home, ['ingest', src, '--name', 'two'])
    expect(r2.newObjects).toBe(0)
    expect(r2.newBytes).toBe(0)
    expect(r2.layer).toBe(r1.layer)
  })

  it('rejects a missing directory with a clear error and exit code', () => {
    const home = mk()
    const r = velo(home, ['ingest', '/nonexistent/velo-dir'])
    expect(r.status).toBe(1)
    expect(r.stderr).toMatch(/NOT_FOUND.*nonexistent/)
  })
})
