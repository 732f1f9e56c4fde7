import * as fs from 'node:fs'
import * as path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {rmrf, tmpDir, velo} from '../helpers'

// bin/velo.js runs commands through dist/fast.js (mini-oclif) and falls back to real oclif; VELO_NO_FAST=1
// forces oclif. Both must parse and answer the same way.
describe('fast path and oclif agree', () => {
  const home = tmpDir()
  const src = tmpDir()
  beforeAll(() => {
    fs.writeFileSync(path.join(src, 'f'), 'x')
    expect(velo(home, ['ingest', src, '--name', 'img']).status).toBe(0)
  })
  afterAll(() => {
    rmrf(home)
    rmrf(src)
  })

  const cases: string[][] = [
    ['image', 'ls', '--json'],
    ['image', 'list', '--json'],
    ['image', 'inspect', 'img', '--json'],
    ['image', 'inspect', '--json', 'img'],
    ['image', 'inspect'],
    ['image', 'inspect', 'a', 'b'],
    ['image', 'rm', '--no-such-flag', 'x'],
    ['image', 'rm', 'nope', '--json'],
    ['ingest', '/nonexistent', '--name=x'],
    ['ingest', '/nonexistent', '--name'],
    ['ingest', src, '--name', '../evil'],
    ['gc', '--wait', 'soon'],
    ['gc', '--dry-run', '--json'],
    ['status', '--json'],
  ]
  it.each(cases)('velo %s …', (...args) => {
    const fast = velo(home, args)
    const slow = velo(home, args, {env: {VELO_NO_FAST: '1'}})
    expect(fast.status).toBe(slow.status)
    const norm = (s: string) => s.replace(/"(createdAt|seconds)": [^,\n]+/g, '"$1": X').replace(/\d+\.\d+ s/g, 'N s')
    expect(norm(fast.stdout)).toBe(norm(slow.stdout))
    // error lines carry the same code (oclif's own usage messages differ in wording only)
    const code = (s: string) => /\[([A-Z_]+)\]/.exec(s)?.[1]
    expect(code(fast.stderr)).toBe(code(slow.stderr))
  })

  it('--help is answered by oclif', () => {
    const r = velo(home, ['image', 'ls', '--help'])
    expect(r.status).toBe(0)
    expect(r.stdout).toMatch(/USAGE/)
  })
})
