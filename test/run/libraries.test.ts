import * as fs from 'node:fs'
import * as path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {rmrf, sh, tmpDir, velo} from '../helpers'
import {expectStoreIntact, ingest} from './fixture'

// Shared libraries that live only in the image and are loaded by ld.so itself (DT_NEEDED), where no preload
// sees the open: they must be made real before the exec or dlopen that needs them, or ld.so maps a
// placeholder's zeros ("invalid ELF header"). native/shim/elfdeps.c, used by the shim's exec/dlopen
// wrappers, by the native `velo run` and (through velo-project prepare) by the Node one.
let dir: string, home: string, outside: string

beforeAll(() => {
  dir = tmpDir('velo-libs-')
  home = path.join(dir, 'home')
  const src = path.join(dir, 'src', 'pkg')
  fs.mkdirSync(path.join(src, 'bin'), {recursive: true})
  fs.mkdirSync(path.join(src, 'lib'), {recursive: true})
  fs.writeFileSync(path.join(dir, 'inner.c'), 'int inner(void) { return 42; }\n')
  fs.writeFileSync(path.join(dir, 'outer.c'), 'int inner(void);\nint outer(void) { return inner() + 1; }\n')
  fs.writeFileSync(path.join(dir, 'prog.c'), '#include <stdio.h>\nint inner(void);\nint main(void) { printf("inner=%d\\n", inner()); return 0; }\n')
  const cc = (args: string) => {
    const r = sh(`cd ${dir} && gcc ${args}`)
    if (r.status !== 0) throw new Error(r.stderr)
  }
  cc(`-shared -fPIC -o ${src}/lib/libinner.so inner.c`)
  // libouter needs libinner from its own directory; prog needs it from ../lib (RUNPATH with $ORIGIN)
  cc(`-shared -fPIC -o ${src}/lib/libouter.so outer.c -L${src}/lib -linner -Wl,-rpath,'$ORIGIN'`)
  cc(`-o ${src}/bin/prog prog.c -L${src}/lib -linner -Wl,-rpath,'$ORIGIN/../lib'`)
  // a program outside the image that finds libinner through LD_LIBRARY_PATH only
  outside = path.join(dir, 'prog-outside')
  cc(`-o ${outside} prog.c -L${src}/lib -linner`)
  ingest(home, src, 'libs')
})
afterAll(() => rmrf(dir))

/** A fresh solid projection (every file a placeholder) in its own project directory. */
function fresh(name: string, extra: string[] = []): {proj: string; root: string} {
  const proj = path.join(dir, name)
  fs.mkdirSync(proj)
  const r = velo(home, ['run', '--image', 'libs', ...extra, '--', 'true'], {cwd: proj, env: {VELO_CACHE_HOME: path.join(dir, 'cache')}})
  expect(r.status, r.stderr).toBe(0)
  const root = path.join(fs.realpathSync(proj), 'pkg')
  if (!extra.includes('--phantom')) for (const f of ['bin/prog', 'lib/libinner.so', 'lib/libouter.so']) expect(fs.statSync(path.join(root, f)).blocks, f).toBe(0)
  return {proj, root}
}

function run(proj: string, cmd: string[], opts: {native?: boolean; phantom?: boolean} = {}) {
  return velo(home, ['run', '--image', 'libs', ...(opts.phantom ? ['--phantom'] : []), '--', ...cmd], {
    cwd: proj,
    env: {VELO_NATIVE: opts.native === false ? '0' : '1', VELO_CACHE_HOME: path.join(dir, 'cache')},
  })
}

describe('libraries ld.so loads itself (DT_NEEDED) from a projection', () => {
  it('a projected program exec\'d inside the tree (the shim\'s exec) finds its projected library through RUNPATH $ORIGIN', () => {
    const {proj} = fresh('exec-shim')
    const r = run(proj, ['sh', '-c', 'pkg/bin/prog'])
    expect(r.stderr).toBe('')
    expect(r.stdout).toBe('inner=42\n')
  })

  for (const native of [true, false]) {
    it(`velo run's own exec of a projected program (${native ? 'native front-end' : 'Node CLI'})`, () => {
      const {proj} = fresh(`exec-run-${native}`)
      const r = run(proj, ['pkg/bin/prog'], {native})
      expect(r.stderr).toBe('')
      expect(r.stdout).toBe('inner=42\n')
      expect(r.status).toBe(0)
    })
  }

  it('a program outside the image with LD_LIBRARY_PATH into the projection', () => {
    const {proj, root} = fresh('llp')
    const viaShim = run(proj, ['sh', '-c', `LD_LIBRARY_PATH=${root}/lib exec ${outside}`])
    expect(viaShim.stderr).toBe('')
    expect(viaShim.stdout).toBe('inner=42\n')
    const {proj: p2, root: r2} = fresh('llp-run')
    const direct = velo(home, ['run', '--image', 'libs', '--', outside], {cwd: p2, env: {LD_LIBRARY_PATH: `${r2}/lib`}})
    expect(direct.stderr).toBe('')
    expect(direct.stdout).toBe('inner=42\n')
  })

  for (const phantom of [false, true]) {
    it(`dlopen of a projected library whose own dependency is projected (${phantom ? 'phantom' : 'solid'})`, () => {
      const {proj, root} = fresh(`dlopen-${phantom}`, phantom ? ['--phantom'] : [])
      const py = `import ctypes; print(ctypes.CDLL('${root}/lib/libouter.so').outer())`
      const r = run(proj, ['python3', '-c', py], {phantom})
      expect(r.stderr).toBe('')
      expect(r.stdout).toBe('43\n')
      if (phantom) expect(fs.existsSync(root)).toBe(false) // still nothing in the project directory
    })
  }

  it('the store is untouched by all of it', () => {
    expectStoreIntact(home)
  })
})
