import * as fs from 'node:fs'
import * as path from 'node:path'
import {describe, expect, it} from 'vitest'
import {procStat, writeFileAtomic} from '../../src/lib/fsutil'
import {tmpDirs} from '../helpers'

describe('writeFileAtomic', () => {
  const mk = tmpDirs()

  it('replaces the file whole, with the mode asked for, and leaves no temp file', () => {
    const d = mk()
    const f = path.join(d, 'state.json')
    fs.writeFileSync(f, 'old')
    writeFileAtomic(f, 'new\n', 0o600)
    expect(fs.readFileSync(f, 'utf8')).toBe('new\n')
    expect(fs.statSync(f).mode & 0o777).toBe(0o600)
    expect(fs.readdirSync(d)).toEqual(['state.json'])
  })

  it('never writes through a symlink planted at the temp name', () => {
    const d = mk()
    const victim = path.join(d, 'victim')
    fs.writeFileSync(victim, 'untouched')
    const f = path.join(d, 'state.json')
    fs.symlinkSync(victim, path.join(d, `.state.json.${process.pid}.tmp`))
    writeFileAtomic(f, 'new\n')
    expect(fs.readFileSync(victim, 'utf8')).toBe('untouched')
    expect(fs.readFileSync(f, 'utf8')).toBe('new\n')
    expect(fs.lstatSync(f).isFile()).toBe(true)
  })

  it('removes its temp file when the rename fails', () => {
    const d = mk()
    const f = path.join(d, 'dir')
    fs.mkdirSync(path.join(f, 'child'), {recursive: true}) // rename(file, non-empty dir) fails
    expect(() => writeFileAtomic(f, 'x')).toThrow()
    expect(fs.readdirSync(d)).toEqual(['dir'])
  })
})

describe('procStat', () => {
  it('reads this process and reports a gone pid as undefined', () => {
    const st = procStat(process.pid)!
    expect(st.state).toMatch(/^[RS]$/)
    expect(Number(st.start)).toBeGreaterThan(0)
    expect(procStat(0x3fffff + 1)).toBeUndefined()
  })
})
