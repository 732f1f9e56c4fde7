import * as fs from 'node:fs'
import * as path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {rmrf, sh, tmpDir, velo, VELO} from '../helpers'
import {expectStoreIntact, ingest, npmApp} from './fixture'

// Inception: a project directory runs projected without typing `velo run`; wake leaves real files behind.
let dir: string, home: string, app: string

beforeAll(() => {
  dir = tmpDir('velo-incept-')
  home = path.join(dir, 'home')
  app = npmApp(dir)
  ingest(home, path.join(app, 'node_modules'), 'nm')
})
afterAll(() => rmrf(dir))

const sums = (d: string) => sh(`cd ${d} && find node_modules -type f -print0 | sort -z | xargs -0 sha256sum`).stdout
const xattrs = (d: string) =>
  sh(`python3 -c "import os,sys
n=0
for r,ds,fs in os.walk(sys.argv[1]):
  for x in ds+fs:
    n+=len([a for a in os.listxattr(os.path.join(r,x), follow_symlinks=False) if a.startswith('user.velo')])
print(n)" ${d}`).stdout.trim()

describe('velo inception / hook / wake', () => {
  for (const mode of ['solid', 'phantom'] as const) {
    it(`${mode}: the hook runs node projected in the directory, wake leaves plain files`, () => {
      const proj = path.join(dir, `proj-${mode}`)
      fs.mkdirSync(proj)
      const env = {VELO_CACHE_HOME: path.join(dir, 'cache')}
      const r = velo(home, ['inception', '--image', 'nm', `--${mode}`, '--json'], {cwd: proj, env})
      expect(r.status, r.stderr).toBe(0)
      expect(JSON.parse(r.stdout)).toMatchObject({image: 'nm', mode, root: path.join(fs.realpathSync(proj), 'node_modules')})
      expect(fs.existsSync(path.join(proj, '.velo', 'env'))).toBe(true)
      expect(fs.existsSync(path.join(proj, 'node_modules'))).toBe(mode === 'solid')

      // the shell hook: inside the project node sees the image; outside, the environment is as before
      const js = `console.log(require(process.cwd() + '/node_modules/express').name)`
      const hook = sh(
        `export VELO_HOME=${home}; LD_PRELOAD=; unset LD_PRELOAD; eval "$(${VELO} hook --shell bash)"
         cd ${proj} && _velo_hook && node -e "${js}" && [ -n "$LD_PRELOAD" ] && echo in
         cd ${dir} && _velo_hook && echo "out:\${LD_PRELOAD-unset}"`,
      )
      expect(hook.stderr).toBe('')
      expect(hook.stdout).toBe('createApplication\nin\nout:unset\n')
      // velo run without --image uses the inception state
      const vr = velo(home, ['run', '--', 'node', '-e', js], {cwd: proj, env})
      expect(vr.stdout).toBe('createApplication\n')
      // a write while in inception survives wake
      expect(velo(home, ['run', '--', 'sh', '-c', 'echo mine >> node_modules/express/Readme.md'], {cwd: proj, env}).status).toBe(0)

      const w = velo(home, ['wake', '--json'], {cwd: proj, env})
      expect(w.status, w.stderr).toBe(0)
      expect(fs.existsSync(path.join(proj, '.velo'))).toBe(false)
      // plain files now: no shim, no marks, same content as the image (plus our write)
      sh(`cp ${app}/node_modules/express/Readme.md ${dir}/r.md; echo mine >> ${dir}/r.md`)
      const want = sums(app).replace(/^\S+(?=  node_modules\/express\/Readme.md$)/m, sh(`sha256sum ${dir}/r.md`).stdout.split(' ')[0])
      expect(sums(proj)).toBe(want)
      expect(xattrs(path.join(proj, 'node_modules'))).toBe('0')
      expect(sh(`cd ${proj} && node -e "${js}"`).stdout).toBe('createApplication\n')
      expectStoreIntact(home)
    })
  }

  for (const mode of ['solid', 'phantom'] as const) {
    it(`${mode}: velo run and velo wake from a shell where the hook is active (the shim in velo's own LD_PRELOAD)`, () => {
      const proj = path.join(dir, `hooked-${mode}`)
      fs.mkdirSync(proj)
      const env = {VELO_CACHE_HOME: path.join(dir, 'cache')}
      expect(velo(home, ['inception', '--image', 'nm', `--${mode}`], {cwd: proj, env}).status).toBe(0)
      const js = `console.log(require(process.cwd() + '/node_modules/express').name)`
      const r = sh(
        `export VELO_HOME=${home} VELO_CACHE_HOME=${env.VELO_CACHE_HOME}; eval "$(${VELO} hook --shell bash)"
         cd ${proj} && _velo_hook && [ -n "$LD_PRELOAD" ] || exit 9
         ${VELO} run -- node -e "${js}" && VELO_NATIVE=0 ${VELO} run -- node -e "${js}" && ${VELO} wake --json >/dev/null`,
      )
      expect(r.stderr).toBe('')
      expect(r.stdout).toBe('createApplication\ncreateApplication\n')
      // wake really materialized: plain files, the image's content, no marks
      expect(fs.existsSync(path.join(proj, '.velo'))).toBe(false)
      expect(sums(proj)).toBe(sums(app))
      expect(xattrs(path.join(proj, 'node_modules'))).toBe('0')
      expectStoreIntact(home)
    })
  }
})
