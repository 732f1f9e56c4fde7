import * as fs from 'node:fs'
import * as path from 'node:path'
import {spawn} from 'node:child_process'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {ROOT, rmrf, sh, tmpDir, velo} from '../helpers'
import {expectStoreIntact, ingest, ok, vrun} from './fixture'

// The skeleton builder under stress: kill -9 at any point of a build, then the next run must still give
// exactly the image; a second image never lands on top of the first.
let dir: string, home: string, layer: string
const PROJECT = path.join(ROOT, 'native', 'build', 'velo-project')

beforeAll(() => {
  dir = tmpDir('velo-skel-')
  home = path.join(dir, 'home')
  layer = ingest(home, '/usr/lib/python3.11', 'py')
})
afterAll(() => rmrf(dir))

const tree = (d: string) => sh(`cd ${d} && find . -printf '%p %y %m %s %l\\n' | sort && find . -type f -print0 | sort -z | xargs -0 sha256sum`)

describe('velo-project', () => {
  it('kill -9 at any point of a build: the next run resumes and the tree is exactly the image', async () => {
    const want = sh(`cd /usr/lib/python3.11 && find . -printf '%p %y %m %s %l\\n' | sort && find . -type f -print0 | sort -z | xargs -0 sha256sum`).stdout
    for (const delayMs of [5, 20, 60]) {
      const at = path.join(dir, `kill${delayMs}`, 'python3.11')
      fs.mkdirSync(path.dirname(at))
      const child = spawn(PROJECT, ['build', home, at, layer], {stdio: 'ignore'})
      const exited = new Promise((r) => child.on('exit', r))
      await new Promise((r) => setTimeout(r, delayMs))
      child.kill('SIGKILL') // a no-op if it already finished: then the run below finds it fresh
      await exited
      const got = vrun(home, 'py', path.dirname(at), 'cd python3.11 && find . -printf "%p %y %m %s %l\\n" | sort && find . -type f -print0 | sort -z | xargs -0 sha256sum', ['--at', at])
      expect(ok(got)).toBe(want)
    }
    expectStoreIntact(home)
  })

  it('concurrent first runs at the same place: one builds, the others wait and reuse it', async () => {
    const at = path.join(dir, 'race', 'python3.11')
    fs.mkdirSync(path.dirname(at))
    const runs = [0, 1, 2, 3].map(
      () =>
        new Promise<{code: number | null; out: string; err: string}>((resolve) => {
          const c = spawn(PROJECT, ['build', home, at, layer])
          let out = ''
          let err = ''
          c.stdout.on('data', (d) => (out += d))
          c.stderr.on('data', (d) => (err += d))
          c.on('close', (code) => resolve({code, out, err})) // 'close': after stdout has been read to its end ('exit' may come first)
        }),
    )
    const res = await Promise.all(runs)
    for (const r of res) expect(r.code, r.err).toBe(0)
    expect(res.filter((r) => r.out.includes('"built"')).length).toBe(1)
    expect(res.filter((r) => r.out.includes('"fresh"')).length).toBe(3)
  })

  it('a projection of another image is refused, and left as it was', () => {
    const other = path.join(dir, 'other-src')
    fs.mkdirSync(other)
    fs.writeFileSync(path.join(other, 'x'), 'other')
    ingest(home, other, 'other')
    const at = path.join(dir, 'kill5', 'python3.11')
    const before = tree(at).stdout
    const r = velo(home, ['run', '--image', 'other', '--at', at, '--', 'true'])
    expect(r.status).toBe(1)
    expect(r.stderr).toMatch(/STATE.*another image/)
    expect(tree(at).stdout).toBe(before)
  })

  it("the shim will not let a program forge or read velo's marks", () => {
    const at = path.join(dir, 'kill5')
    const py = `import os
p='python3.11/json/__init__.py'
try:
  os.setxattr(p, 'user.velo', b'V' + bytes(60)); print('forged')
except OSError as e: print('set', e.errno)
try:
  os.getxattr(p, 'user.velo'); print('read')
except OSError as e: print('get', e.errno)
print([a for a in os.listxattr(p) if a.startswith('user.velo')])`
    fs.writeFileSync(path.join(dir, 'forge.py'), py)
    expect(ok(vrun(home, 'py', at, `/usr/bin/python3 ${dir}/forge.py`, ['--at', path.join(at, 'python3.11')]))).toBe('set 1\nget 61\n[]\n')
  })
})
