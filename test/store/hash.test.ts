import {execFileSync} from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {describe, expect, it} from 'vitest'
import {hashBuffer, hashFile} from '../../src/store/cas'
import {ROOT, tmpDirs} from '../helpers'

const b3sum = (f: string) => execFileSync('b3sum', ['--no-names', f]).toString().trim()

describe('BLAKE3 paths agree', () => {
  const mk = tmpDirs()

  it('velo-b3 (mapped windows, all cores), the Node binding and b3sum give the same hash', () => {
    const dir = mk()
    // sizes around velo-b3's 64 MiB window and the 32 MiB native threshold, and odd tails
    for (const size of [0, 1, 1025, (32 << 20) + 3, (64 << 20) - 1, 64 << 20, (64 << 20) + 1, (130 << 20) + 12345]) {
      const f = path.join(dir, `f${size}`)
      const fd = fs.openSync(f, 'w')
      const block = Buffer.alloc(1 << 20)
      for (let off = 0; off < size; off += block.length) {
        block.fill((off >> 20) & 0xff)
        block.writeUInt32LE(off >>> 0, 0)
        fs.writeSync(fd, block, 0, Math.min(block.length, size - off))
      }
      fs.closeSync(fd)
      const expected = b3sum(f)
      expect(hashFile(f).hash, `hashFile, size ${size}`).toBe(expected)
      if (size > 0 && size < 200 << 20) expect(hashBuffer(fs.readFileSync(f)), `binding, size ${size}`).toBe(expected)
      const native = execFileSync(path.join(ROOT, 'native', 'build', 'velo-b3'), ['--', f]).toString().trim()
      expect(native, `velo-b3, size ${size}`).toBe(`${expected} ${size}`)
      fs.rmSync(f)
    }
  })

  it('a large file with a non-UTF-8 name is hashed by the Node path', () => {
    const dir = mk()
    const name = Buffer.concat([Buffer.from(dir + '/big-'), Buffer.from([0xff, 0xfe])])
    fs.writeFileSync(name, Buffer.alloc((33 << 20) + 7, 7))
    const viaLink = path.join(dir, 'same')
    fs.linkSync(name, viaLink)
    expect(hashFile(name).hash).toBe(b3sum(viaLink))
  })
})
