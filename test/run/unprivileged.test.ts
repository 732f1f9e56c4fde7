import * as fs from 'node:fs'
import * as path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {ROOT, rmrf, sh, tmpDir, VELO} from '../helpers'
import {expectStoreIntact} from './fixture'

// velo run needs no privilege: a throwaway user (nobody) with its own store in a temp dir.
let dir: string
const NOBODY = 65534

function asNobody(cmd: string, cwd: string) {
  const env = `env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=${dir} VELO_HOME=${dir}/home VELO_CACHE_HOME=${dir}/cache`
  return sh(`cd ${cwd} && setpriv --reuid=${NOBODY} --regid=${NOBODY} --clear-groups --inh-caps=-all ${env} bash -c '${cmd.replace(/'/g, `'\\''`)}'`)
}

beforeAll(() => {
  dir = tmpDir('velo-unpriv-')
  fs.chmodSync(dir, 0o755)
  const nm = path.join(dir, 'src', 'node_modules')
  fs.mkdirSync(nm, {recursive: true})
  for (const p of ['semver', 'ms', 'debug']) sh(`cp -a ${ROOT}/node_modules/${p} ${nm}/`)
  fs.mkdirSync(path.join(dir, 'proj'))
  sh(`chown -R ${NOBODY}:${NOBODY} ${dir}`)
})
afterAll(() => rmrf(dir))

describe('velo run as an unprivileged user', () => {
  it('ingests, projects (solid and phantom), runs node, breaks on write, and never writes the store', () => {
    const velo = `${VELO}`
    expect(asNobody('id -u', dir).stdout.trim()).toBe(String(NOBODY))
    const ing = asNobody(`${velo} ingest ${dir}/src/node_modules --name nm --json`, dir)
    expect(ing.status, ing.stderr).toBe(0)
    const js = `console.log(require('semver').valid('1.2.3'), require('debug')('x').namespace, require('ms')(60000))`
    for (const mode of ['', '--phantom']) {
      const r = asNobody(`${velo} run --image nm ${mode} -- node -e "${js}"`, `${dir}/proj`)
      expect(r.stderr).toBe('')
      expect(r.stdout).toBe('1.2.3 x 1m\n')
    }
    // the solid skeleton belongs to nobody, and writing a projected file works (a private copy)
    expect(fs.statSync(path.join(dir, 'proj/node_modules/semver/package.json')).uid).toBe(NOBODY)
    const w = asNobody(`${velo} run --image nm -- sh -c 'echo x >> node_modules/ms/index.js && tail -n1 node_modules/ms/index.js'`, `${dir}/proj`)
    expect(w.stdout).toBe('x\n')
    // nobody cannot write into the objects either way, and they still hash to their names
    expectStoreIntact(`${dir}/home`)
    // a setuid program would run without the shim (the kernel's secure mode): refused, with the reason
    const su = asNobody(`${velo} run --image nm -- /usr/bin/su --help`, `${dir}/proj`)
    expect(su.status).toBe(1)
    expect(su.stderr).toMatch(/UNSUPPORTED.*setuid/)
  })
})
