import * as fs from 'node:fs'
import * as path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {rmrf, sh} from '../helpers'
import {expectStoreIntact, ok, projectionFixture, vrun} from './fixture'

// Phantom mode: the same image, with nothing written into the project directory.
let dir: string, home: string, real: string, proj: string, cache: string
const env = () => ({VELO_CACHE_HOME: cache})

beforeAll(() => {
  ;({dir, home, real, proj} = projectionFixture('velo-phantom-'))
  cache = path.join(dir, 'cache')
})
afterAll(() => rmrf(dir))

const listing = () => sh(`find ${proj} -printf '%P %y %s\\n' | sort`).stdout

function same(cmd: string) {
  const a = sh(cmd, {cwd: real})
  expect(a.status, a.stderr).toBe(0)
  expect(ok(vrun(home, 'nm', proj, cmd, ['--phantom'], env()))).toBe(a.stdout)
}

describe('phantom projection', () => {
  it('reads, lists and stats like a real copy while the project directory stays untouched', () => {
    const before = listing()
    same('ls -lR --time-style=+ node_modules')
    same(`find node_modules -printf '%p %y %m %s %n\\n'`)
    same('find node_modules -type f -print0 | sort -z | xargs -0 sha256sum')
    same('du -s --apparent-size node_modules && tar c node_modules | tar t')
    same('cd node_modules/express && pwd -P | sed "s#.*/##" && node -e "console.log(require(\'./package.json\').name, process.cwd().endsWith(\'/node_modules/express\'))" && cat ../../package.json')
    same('npm ls --all 2>/dev/null | tail -n +2')
    // the projection root is listed in its parent, by readdir (ls, find, python) and scandir (node)
    same(`ls && find . -maxdepth 1 -printf '%p %y\\n' | sort && node -e "console.log(require('fs').readdirSync('.').sort().join())" && python3 -c "import os; print(sorted(os.listdir('.')))"`)
    expect(listing()).toBe(before)
    expect(fs.existsSync(path.join(proj, 'node_modules'))).toBe(false)
  })

  it('node require with UV_USE_IO_URING=1, sync and async', () => {
    const js = `const fs=require('fs'); require('express'); fs.promises.readFile(require.resolve('semver/package.json'),'utf8').then(t=>console.log(JSON.parse(t).name, fs.realpathSync('node_modules/express').endsWith('proj/node_modules/express')))`
    expect(ok(vrun(home, 'nm', proj, `UV_USE_IO_URING=1 node -e "${js}"`, ['--phantom'], env()))).toBe('semver true\n')
  })

  it('writes land in the private skeleton: visible to the program, never in the project or the store', () => {
    const before = listing()
    const script = `set -e; echo more >> node_modules/express/Readme.md; tail -n1 node_modules/express/Readme.md
      mkdir node_modules/mine && echo x > node_modules/mine/f && cat node_modules/mine/f
      mv node_modules/semver/README.md node_modules/semver/R.md && head -c 8 node_modules/semver/R.md; echo
      rm node_modules/express/index.js; test ! -e node_modules/express/index.js && echo gone`
    const head = fs.readFileSync(path.join(real, 'node_modules/semver/README.md')).subarray(0, 8).toString()
    expect(ok(vrun(home, 'nm', proj, script, ['--phantom'], env()))).toBe(`more\nx\n${head}\ngone\n`)
    // persistent across runs of the same projection
    expect(ok(vrun(home, 'nm', proj, 'cat node_modules/mine/f', ['--phantom'], env()))).toBe('x\n')
    expect(listing()).toBe(before)
    expectStoreIntact(home)
  })
})
