import {afterAll, describe, expect, it} from 'vitest'
import {velo} from '../helpers'
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
})
