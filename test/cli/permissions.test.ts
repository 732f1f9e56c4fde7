/**
 * A store this user may not read or write (a root-owned store, or a shared one made readable but not writable):
 * every command says PERMISSION_DENIED with a suggestion and exit code 1 — never INTERNAL ("a bug in velo") —
 * and the store is left exactly as it was. Run as `nobody` through setpriv, on both front doors.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import {spawnSync} from 'node:child_process'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {rmrf, tmpDir, VELO, veloJson} from '../helpers'

const NOBODY = ['--reuid=nobody', '--regid=nogroup', '--clear-groups']

/** every file and dir under root with its mode, size and mtime: what "left exactly as it was" compares */
function snapshot(root: string): string[] {
  const out: string[] = []
  const walk = (d: string) => {
    for (const n of fs.readdirSync(d).sort()) {
      const p = path.join(d, n)
      const st = fs.lstatSync(p)
      out.push(`${path.relative(root, p)} ${st.mode.toString(8)} ${st.isDirectory() ? '-' : st.size} ${st.mtimeMs}`)
      if (st.isDirectory()) walk(p)
    }
  }
  walk(root)
  return out
}

describe('a store this user may not write', () => {
  let work: string, home: string, src: string
  beforeAll(() => {
    work = tmpDir('velo-perm-')
    fs.chmodSync(work, 0o755)
    home = path.join(work, 'store')
    src = path.join(work, 'src')
    fs.mkdirSync(path.join(src, 'etc'), {recursive: true})
    fs.writeFileSync(path.join(src, 'etc', 'hello'), 'hi\n')
    veloJson(home, ['ingest', src, '--name', 'img'])
    fs.mkdirSync(path.join(work, 'nobody-home'))
    fs.chownSync(path.join(work, 'nobody-home'), 65534, 65534)
    veloJson(home, ['sandbox', 'create', 'p0', '--image', 'img']) // root's tenant, which nobody may not touch
  })
  afterAll(() => {
    veloJson(home, ['sandbox', 'rm', '-f', 'p0'])
    rmrf(work)
  })

  const asNobody = (args: string[], env: NodeJS.ProcessEnv = {}) =>
    spawnSync('setpriv', [...NOBODY, VELO, ...args], {
      cwd: path.join(work, 'nobody-home'),
      encoding: 'utf8',
      env: {...process.env, VELO_HOME: home, HOME: path.join(work, 'nobody-home'), ...env},
    })

  const calls: string[][] = [
    ['image', 'ls'],
    ['image', 'inspect', 'img'],
    ['sandbox', 'ls'],
    ['sandbox', 'create', 'p1'],
    ['sandbox', 'exec', 'p0', '--', 'true'],
    ['sandbox', 'stop', 'p0'],
    ['sandbox', 'rm', '-f', 'p0'],
    ['sandbox', 'rm', '-f', 'p1'],
    ['run', '--image', 'img', '--', 'true'],
    ['gc'],
    ['fsck'],
  ]

  /** readable: calls that only read may succeed; whatever fails, fails as a permission error */
  const check = (readable: boolean) => {
    const before = snapshot(home)
    for (const env of [{}, {VELO_NATIVE: '0'}])
      for (const args of calls) {
        const r = asNobody(args, env)
        const what = `${args.join(' ')} ${JSON.stringify(env)}: ${r.stderr}`
        if (readable && r.status === 0) continue
        expect(r.status, what).toBe(1)
        // in a readable store, "no such sandbox" is a true answer too; and in root's: its tenants' roots (user
        // namespaces) must search the store and tenants dirs (0711), so a name can be tested, never listed or read
        expect(r.stderr, what).toMatch(args.includes('p1') ? /error \[(PERMISSION_DENIED|NOT_FOUND)\]: .+/ : /error \[PERMISSION_DENIED\]: .+/)
        expect(r.stderr, what).toMatch(/suggestion: /)
        expect(r.stderr, what).not.toMatch(/bug in velo|INTERNAL/)
      }
    if (!readable) {
      const j = asNobody(['image', 'ls', '--json'])
      expect(j.status).toBe(1)
      expect(JSON.parse(j.stdout).error.code).toBe('PERMISSION_DENIED')
    }
    // velo run succeeds on a readable store; its gc hold is nobody's own file in holds/
    const kept = (l: string[]) => (readable ? l.filter((x) => !/^holds[ /]/.test(x)) : l)
    expect(kept(snapshot(home))).toEqual(kept(before))
    expect(veloJson(home, ['sandbox', 'ls']).find((x: any) => x.name === 'p0').status).toBe('running')
  }

  it("root's own store (mode 0711, searchable by its tenants' roots, not listable): every command is a permission error and nothing changes", () => {
    expect(fs.statSync(home).mode & 0o777).toBe(0o711)
    check(false)
  })

  it('a shared store (readable, its LMDB lock file writable, so readers register): image reads and run work, writes say why', () => {
    spawnSync('chmod', ['-R', 'a+rX', home])
    fs.chmodSync(path.join(home, 'db', 'velo.lmdb-lock'), 0o666)
    try {
      // readers register in the lock file; velo run's gc hold is nobody's own file in holds/ (test/store/read-only-store.test.ts)
      const mine = (l: string) => l.startsWith('db/velo.lmdb-lock ') || /^holds[ /]/.test(l)
      const before = snapshot(home).filter((l) => !mine(l))
      for (const env of [{}, {VELO_NATIVE: '0'}]) {
        const ls = asNobody(['image', 'ls', '--json'], env)
        expect(ls.status, ls.stderr).toBe(0)
        expect(JSON.parse(ls.stdout).map((i: any) => i.name)).toContain('img')
        expect(asNobody(['image', 'inspect', 'img'], env).status).toBe(0)
        const run = asNobody(['run', '--image', 'img', '--', 'cat', 'src/etc/hello'], env)
        expect(run.stderr).toBe('')
        expect([run.status, run.stdout]).toEqual([0, 'hi\n'])
        for (const args of [['image', 'rm', 'img'], ['ingest', src, '--name', 'mine']]) {
          const r = asNobody(args, env)
          const what = `${args.join(' ')}: ${r.stderr}`
          expect(r.status, what).toBe(1)
          expect(r.stderr, what).toMatch(/error \[PERMISSION_DENIED\]: .+/)
          expect(r.stderr, what).not.toMatch(/bug in velo|INTERNAL/)
        }
      }
      expect(snapshot(home).filter((l) => !mine(l))).toEqual(before)
      expect(fs.readdirSync(path.join(home, 'holds')).filter((n) => n.startsWith('65534-'))).toHaveLength(1)
    } finally {
      fs.chmodSync(path.join(home, 'db', 'velo.lmdb-lock'), 0o644)
    }
  })

  it('a store made readable to all but writable by root only: still a permission error, never a bug', () => {
    spawnSync('chmod', ['-R', 'a+rX', home])
    check(true)
    expect(asNobody(['sandbox', 'ls']).status).toBe(0) // a read that needs no lock
  })
})
