import * as fs from 'node:fs'
import * as path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {rmrf, sh, tmpDir} from '../helpers'
import {expectStoreIntact, ingest, ok, vrun} from './fixture'

// Every glibc name the shim covers, called by its exact name from C (plain, 64, fortified, the pre-2.33
// __xstat family through its compat symbol version, statx, raw syscall(SYS_statx)): same answers on a real
// copy and on a projection.
let dir: string, home: string, bin: string

beforeAll(() => {
  dir = tmpDir('velo-abi-')
  home = path.join(dir, 'home')
  bin = path.join(dir, 'abi')
  const cc = sh(`gcc -O2 -Wall -o ${bin} ${path.join(__dirname, 'abi.c')}`)
  if (cc.status !== 0) throw new Error(cc.stderr)
  const src = path.join(dir, 'src', 'tree')
  fs.mkdirSync(path.join(src, 'd'), {recursive: true})
  fs.writeFileSync(path.join(src, 'd', 'file.txt'), 'hello from the image, a file of some size\n'.repeat(200))
  fs.symlinkSync('file.txt', path.join(src, 'd', 'link'))
  for (let i = 0; i < 5; i++) fs.writeFileSync(path.join(src, 'd', `other${i}`), `other ${i}\n`)
  ingest(home, src, 'tree')
  fs.mkdirSync(path.join(dir, 'real'))
  fs.mkdirSync(path.join(dir, 'proj'))
  sh(`cp -a ${src} ${dir}/real/`)
})
afterAll(() => rmrf(dir))

describe('glibc entry points', () => {
  it('every covered name answers on the projection as on a real copy', () => {
    const args = 'tree/d/file.txt tree/d/link tree/d'
    const want = sh(`${bin} ${args}`, {cwd: path.join(dir, 'real')})
    expect(want.status, want.stderr).toBe(0)
    expect(want.stdout).toContain("__xstat64: mode 100644 size 8400 blocks 24 nlink 1 same-ino 1")
    const got = ok(vrun(home, 'tree', path.join(dir, 'proj'), `${bin} ${args}`))
    // the only expected difference: io_uring is refused under the shim
    expect(got).toBe(want.stdout.replace('io_uring_setup: allowed', 'io_uring_setup: refused'))
    // phantom mode: same answers, nothing in the project directory
    fs.mkdirSync(path.join(dir, 'ph'))
    const ph = ok(vrun(home, 'tree', path.join(dir, 'ph'), `${bin} ${args}`, ['--phantom'], {VELO_CACHE_HOME: path.join(dir, 'cache')}))
    expect(ph).toBe(got)
    expect(fs.readdirSync(path.join(dir, 'ph'))).toEqual([])
    expectStoreIntact(home)
  })

  it('a placeholder whose store object is gone fails loudly (EIO and a message), never reads as zeros', () => {
    // the only objects under 100 bytes are the "other N" files (8 bytes each)
    const victim = sh(`find ${home}/cas -type f -size -100c | head -1`).stdout.trim()
    expect(victim).not.toBe('')
    const saved = `${dir}/saved-object`
    sh(`mv ${victim} ${saved}`)
    try {
      const r = vrun(home, 'tree', path.join(dir, 'proj'), 'cat tree/d/other0 tree/d/other1 tree/d/other2 tree/d/other3 tree/d/other4')
      expect(r.status).not.toBe(0)
      expect(r.stderr).toMatch(/velo: cannot open the store object behind .*tree\/d\/other\d/)
      expect(r.stderr).toMatch(/Input\/output error/)
      expect(r.stdout).not.toContain('\0')
    } finally {
      sh(`mv ${saved} ${victim}`)
    }
    expectStoreIntact(home)
  })
})
