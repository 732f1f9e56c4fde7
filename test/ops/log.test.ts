import {spawnSync} from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {afterAll, describe, expect, it} from 'vitest'
import {rmrf, tmpDir, velo, veloJson} from '../helpers'
import {SandboxHome, uniq} from '../sandbox/fixture'

// VELO_LOG=json (native/common/vlog.h, src/lib/log.ts): one JSON object per stderr line, with the call's trace id
// carried by every process the call starts.
describe('VELO_LOG=json', () => {
  const sb = new SandboxHome()
  afterAll(() => {
    expect(sb.cleanup()).toEqual({mounts: [], cgroups: [], tenants: []})
  })
  const lines = (stderr: string) => stderr.split('\n').filter(Boolean).map((l) => JSON.parse(l))

  it('every stderr line is a JSON object with the same trace on both doors; a trace given is carried through the fallback to Node', () => {
    const [A, B] = [uniq('lj'), uniq('lk')]
    sb.track(A)
    sb.track(B)
    for (const env of [{}, {VELO_NATIVE: '0'}]) {
      const n = Object.keys(env).length ? B : A
      const r = velo(sb.home, ['sandbox', 'create', n], {env: {VELO_LOG: 'json', ...env}})
      expect(r.status, r.stderr).toBe(0)
      const [l] = lines(r.stderr)
      expect(l).toMatchObject({level: 'info', component: 'velo', msg: expect.stringContaining(`created sandbox ${n}`)})
      expect(l.trace).toMatch(/^[0-9a-f]{16}$/)
      expect(l.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/)
    }
    // one call, two lines (native rm of two names): one trace
    const rm = velo(sb.home, ['sandbox', 'rm', '-f', A, B], {env: {VELO_LOG: 'json'}})
    const ls = lines(rm.stderr)
    expect(ls.map((l) => l.msg)).toEqual([`removed ${A}`, `removed ${B}`])
    expect(ls[0].trace).toBe(ls[1].trace)
    // the native door hands a bad name to Node, which renders the error with the trace the call started with
    const bad = velo(sb.home, ['sandbox', 'create', 'no/such'], {env: {VELO_LOG: 'json', VELO_TRACE_ID: '0123456789abcdef'}})
    expect(bad.status).not.toBe(0)
    expect(lines(bad.stderr)).toEqual([expect.objectContaining({level: 'error', code: 'INVALID_NAME', trace: '0123456789abcdef', suggestion: expect.any(String)})])
    // without VELO_LOG the lines stay human
    expect(velo(sb.home, ['sandbox', 'rm', uniq('none')]).stderr).toMatch(/^velo: error \[NOT_FOUND\]/)
  })

  it("velo-fuse's own log lines (the mount's log file) are JSON objects too, with the mount's trace", () => {
    // a damaged store: the object behind a file is gone, so reading it through the mount fails and velo-fuse logs it
    const w = tmpDir('velo-log-fuse-')
    const home = path.join(w, 'home')
    const dir = path.join(w, 'mnt')
    try {
      fs.mkdirSync(path.join(w, 'tree'))
      fs.writeFileSync(path.join(w, 'tree', 'f.txt'), 'a file whose object goes missing\n')
      veloJson(home, ['ingest', path.join(w, 'tree'), '--name', 't'])
      fs.mkdirSync(dir)
      const m = velo(home, ['mount', 't', dir], {env: {VELO_LOG: 'json', VELO_TRACE_ID: 'fedcba9876543210'}})
      expect(m.status, m.stderr).toBe(0)
      const cas = path.join(home, 'cas', 'blake3')
      for (const d of fs.readdirSync(cas)) for (const o of fs.readdirSync(path.join(cas, d))) fs.rmSync(path.join(cas, d, o))
      expect(spawnSync('timeout', ['20', 'cat', path.join(dir, 'f.txt')]).status).not.toBe(0)
      const logs = fs.readdirSync(path.join(home, 'mounts')).filter((n) => n.endsWith('.log'))
      const text = logs.map((n) => fs.readFileSync(path.join(home, 'mounts', n), 'utf8')).join('')
      const ls = lines(text)
      expect(ls.length).toBeGreaterThan(0)
      expect(ls).toContainEqual(expect.objectContaining({level: 'error', component: 'velo-fuse', trace: 'fedcba9876543210', msg: expect.stringMatching(/is missing or has the wrong size/)}))
    } finally {
      velo(home, ['umount', dir])
      rmrf(w)
    }
  })
})
