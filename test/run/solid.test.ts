import * as fs from 'node:fs'
import * as path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {rmrf, sh, velo, VELO} from '../helpers'
import {expectStoreIntact, ingest, ok, projectionFixture, vrun} from './fixture'

// One projected node_modules (solid mode) against a real copy of the same tree, compared with outside tools.
let dir: string, home: string, real: string, proj: string

beforeAll(() => {
  ;({dir, home, real, proj} = projectionFixture('velo-run-'))
  ok(vrun(home, 'nm', proj, 'true')) // builds the skeleton
})
afterAll(() => rmrf(dir))

/** Same command in the real copy (no shim) and in the projection (under velo run): same output. */
function same(cmd: string, opts: {strip?: (s: string) => string} = {}) {
  const a = sh(cmd, {cwd: real})
  const b = vrun(home, 'nm', proj, cmd)
  expect(a.status, `${cmd} on the real copy: ${a.stderr}`).toBe(0)
  const strip = opts.strip ?? ((s: string) => s)
  expect(strip(ok(b))).toBe(strip(a.stdout))
  expect(a.stdout.length).toBeGreaterThan(0)
  return a.stdout
}

describe('solid projection of a node_modules image vs a real copy', () => {
  it('the skeleton is a real tree of dirs/symlinks and placeholders, not file content', () => {
    const st = fs.statSync(path.join(proj, 'node_modules/express/package.json'))
    expect(st.size).toBeGreaterThan(0)
    expect(st.blocks).toBe(0) // a placeholder: no data on disk
    // without the shim the placeholder reads as zeros, with it as the file
    expect(fs.readFileSync(path.join(proj, 'node_modules/express/package.json'))[0]).toBe(0)
    expect(ok(vrun(home, 'nm', proj, 'head -c 1 node_modules/express/package.json'))).toBe('{')
  })

  it('ls -lR', () => {
    same('ls -lR --time-style=+ node_modules')
  })
  it("find -printf '%p %y %m %s'", () => {
    same(`find node_modules -printf '%p %y %m %s %n %u %g\\n'`)
  })
  it('stat (all fields but inode and times)', () => {
    same(`find node_modules -print0 | sort -z | xargs -0 stat -c '%n|%F|%a|%s|%b|%B|%h|%u|%g|%o|%N'`)
    same(`stat node_modules/express/index.js | grep -v -e Inode -e Access: -e Modify -e Change -e Birth`)
  })
  it('du -s', () => {
    same('du -s node_modules && du -s --apparent-size node_modules && du -a node_modules | sort -k2')
  })
  it('tar c | tar t', () => {
    same('tar c node_modules | tar t')
    // and the archive bytes themselves, once times and owners are fixed
    same('tar c --mtime=@0 --owner=0 --group=0 --sort=name node_modules | sha256sum')
  })
  it('sha256sum of every file', () => {
    same('find node_modules -type f -print0 | sort -z | xargs -0 sha256sum')
  })
  it('cp -a out of the projection gives a real tree with no hard links and the same content', () => {
    ok(vrun(home, 'nm', proj, `cp -a node_modules ${dir}/copied`))
    const a = sh(`cd ${real} && find node_modules -type f -print0 | sort -z | xargs -0 sha256sum`).stdout
    const b = sh(`cd ${dir}/copied && find . -type f -print0 | sort -z | xargs -0 sha256sum | sed 's# \\./# node_modules/#'`).stdout
    expect(b).toBe(a)
    expect(sh(`find ${dir}/copied -type f -links +1 | wc -l`).stdout.trim()).toBe('0')
  })
  it('npm ls', () => {
    same('npm ls --all 2>/dev/null | tail -n +2')
  })
  it('node require, sync and async fs, with UV_USE_IO_URING=1 too', () => {
    const js = `
      const fs = require('fs'), crypto = require('crypto');
      const e = require('express'), s = require('semver');
      const f = require.resolve('express/lib/router/index.js');
      const h = (b) => crypto.createHash('sha256').update(b).digest('hex');
      (async () => {
        const a = await fs.promises.readFile(f);
        const st = await fs.promises.stat(f);
        const b = await new Promise((res, rej) => fs.readFile(f, (er, d) => er ? rej(er) : res(d)));
        const fh = await fs.promises.open(f); const st2 = await fh.stat(); await fh.close();
        console.log(typeof e, s.valid('1.2.3'), h(fs.readFileSync(f)), h(a), h(b), st.size, st2.size, st.blocks, st2.blocks, st2.nlink, fs.readdirSync('node_modules/express').join(','));
      })();`
    const expected = sh(`node -e "${js.replace(/"/g, '\\"')}"`, {cwd: real})
    expect(expected.status).toBe(0)
    for (const uring of ['0', '1']) {
      const r = vrun(home, 'nm', proj, `UV_USE_IO_URING=${uring} node -e "${js.replace(/"/g, '\\"')}"`)
      expect(ok(r), `UV_USE_IO_URING=${uring}`).toBe(expected.stdout)
    }
  })
  it('the shim survives sh -c, env -i and a program that clears LD_PRELOAD', () => {
    const want = sh('sha256sum node_modules/express/package.json', {cwd: real}).stdout
    expect(ok(vrun(home, 'nm', proj, `env -i /bin/sh -c 'sha256sum node_modules/express/package.json'`))).toBe(want)
    expect(ok(vrun(home, 'nm', proj, `LD_PRELOAD= sh -c 'env -u LD_PRELOAD sha256sum node_modules/express/package.json'`))).toBe(want)
    expect(ok(vrun(home, 'nm', proj, `python3 -c "import subprocess,os; e=dict(os.environ); e.pop('LD_PRELOAD'); print(subprocess.run(['sha256sum','node_modules/express/package.json'],env={'PATH':'/usr/bin:/bin'},capture_output=True,text=True).stdout, end='')"`))).toBe(want)
    // node .bin shims (symlink → script with #!/usr/bin/env node) run projected
    expect(ok(vrun(home, 'nm', proj, 'node_modules/.bin/semver 1.2.3'))).toBe(sh('node_modules/.bin/semver 1.2.3', {cwd: real}).stdout)
  })
  it('strace -f -e trace=%file: no failing access to a projected path that does not fail on the real copy', () => {
    const prog = `node -e "require('express'); require('semver')" && cat node_modules/express/package.json >/dev/null && ls -lR node_modules >/dev/null`
    const failing = (log: string, base: string) =>
      [
        ...new Set(
          log
            .split('\n')
            .filter((l) => / = -1 E/.test(l) && l.includes('node_modules'))
            .map((l) => l.replace(/^\d+\s+/, '').split(base).join('<root>').replace(/0x[0-9a-f]+/g, '0x')),
        ),
      ].sort()
    // -ff: one log per thread, so a call is never split into "<unfinished ...>" / "<... resumed>" lines
    // (the resumed half has no path) when another thread of node makes a call in between
    const log = (prefix: string) =>
      fs
        .readdirSync(dir)
        .filter((f) => f.startsWith(`${prefix}.`))
        .map((f) => fs.readFileSync(path.join(dir, f), 'utf8'))
        .join('\n')
    sh(`strace -ff -qq -e trace=%file -o ${dir}/real.strace bash -c '${prog.replace(/'/g, `'\\''`)}'`, {cwd: real})
    ok(vrun(home, 'nm', proj, `strace -ff -qq -e trace=%file -o ${dir}/proj.strace bash -c '${prog.replace(/'/g, `'\\''`)}'`))
    const a = failing(log('real.strace'), real)
    const b = failing(log('proj.strace'), proj)
    expect(a.length).toBeGreaterThan(0)
    expect(b).toEqual(a)
    // and the projection actually went through the store
    expect(log('proj.strace')).toContain(`${home}/cas/blake3/`)
  })
})

describe('break-before-write', () => {
  it('every write path: the program sees its own write, the store stays intact', () => {
    const script = `
      set -e
      cd node_modules
      echo appended >> express/Readme.md                         # O_APPEND: copy first
      tail -n 1 express/Readme.md
      sed -i 's/"name": "semver"/"name": "semver-x"/' semver/package.json   # write temp + rename over
      grep -c semver-x semver/package.json
      : > express/History.md && stat -c %s express/History.md     # O_TRUNC: no copy needed
      truncate -s 10 express/LICENSE && cat express/LICENSE; echo  # truncate(2) to a size: copy first
      chmod 600 express/index.js && stat -c %a express/index.js && head -c 10 express/index.js; echo
      rm express/lib/view.js && test ! -e express/lib/view.js && echo removed
      mv express/lib/utils.js express/lib/utils2.js && sha256sum express/lib/utils2.js | cut -c1-16
      ln express/lib/request.js express/lib/request2.js && stat -c %h express/lib/request.js && cmp express/lib/request.js express/lib/request2.js && echo same
      ln -s ../package.json express/lib/pkg && head -c 1 express/lib/pkg; echo
      mkdir newdir && echo hi > newdir/f && cat newdir/f
      touch -d @1000000000 express/package.json && stat -c %Y express/package.json
      python3 -c "f=open('semver/index.js','r+'); f.seek(0); f.write('//'); f.close(); print(open('semver/index.js').read(4))"
      node -e "const fs=require('fs'); fs.writeFileSync('express/lib/express.js', 'module.exports=42'); console.log(fs.readFileSync('express/lib/express.js','utf8'))"
    `
    const want = sh(script, {cwd: real})
    expect(want.status, want.stderr).toBe(0)
    expect(ok(vrun(home, 'nm', proj, script))).toBe(want.stdout)
    expectStoreIntact(home)
    // the written files are now real, private files; untouched ones are still placeholders
    expect(fs.statSync(path.join(proj, 'node_modules/express/Readme.md')).blocks).toBeGreaterThan(0)
    expect(fs.statSync(path.join(proj, 'node_modules/express/lib/router/index.js')).blocks).toBe(0)
    // and the whole tree still agrees with the real copy after the same writes
    same('find node_modules -type f -print0 | sort -z | xargs -0 sha256sum')
    same(`find node_modules -printf '%p %y %m %s %n\\n' | sort`)
  })

  it('two files sharing one CAS object: writing one leaves the other and the object alone', () => {
    // express and body-parser... any two identical files: find a pair by content
    const dup = sh(`cd ${real}/node_modules && find . -type f -name LICENSE -print0 | xargs -0 sha256sum | sort | awk '{if ($1==p) {print q" "$2; exit} p=$1; q=$2}'`).stdout.trim()
    expect(dup).toMatch(/\S+ \S+/)
    const [a, b] = dup.split(' ')
    const before = sh(`sha256sum ${real}/node_modules/${b}`).stdout.split(' ')[0]
    ok(vrun(home, 'nm', proj, `echo changed >> node_modules/${a}`))
    expect(ok(vrun(home, 'nm', proj, `sha256sum node_modules/${b}`)).split(' ')[0]).toBe(before)
    expect(ok(vrun(home, 'nm', proj, `tail -n1 node_modules/${a}`))).toBe('changed\n')
    expectStoreIntact(home)
  })

  it('a redirected fd: fchmod/futimens reach the placeholder, never the store object', () => {
    const js = `const fs=require('fs'); const fd=fs.openSync('node_modules/express/package.json','r'); fs.fchmodSync(fd, 0o600); fs.futimesSync(fd, 5, 5); const a=fs.fstatSync(fd), b=fs.statSync('node_modules/express/package.json'); console.log((a.mode&0o777).toString(8), a.ino===b.ino, a.mtimeMs, a.nlink)`
    expect(ok(vrun(home, 'nm', proj, `node -e "${js}"`))).toBe('600 true 5000 1\n')
    const objs = sh(`find ${home}/cas -type f -perm 600 | wc -l`).stdout.trim()
    expect(objs).toBe('0')
    expectStoreIntact(home)
  })
})

describe('npm on a projected node_modules', () => {
  it('npm install adds a package next to the projected ones; npm ls and require see both; the store stays intact', () => {
    const p = path.join(dir, 'npmproj')
    fs.mkdirSync(p)
    sh(`cp ${real}/package.json ${p}/ && cp ${dir}/app/package-lock.json ${p}/`)
    const out = ok(
      vrun(home, 'nm', p, `npm install --prefer-offline --no-audit --no-fund --loglevel=error ms@2.1.3 >/dev/null && npm ls ms --depth=0 | tail -n +2 && node -e "console.log(require('ms')(60000), require('express').name)"`),
    )
    expect(out).toBe('└── ms@2.1.3\n\n1m createApplication\n')
    expectStoreIntact(home)
  })
})

describe('re-ingest of a projected tree', () => {
  it('velo ingest (without the shim) reads placeholders from the store and private copies from disk', () => {
    ok(vrun(home, 'nm', proj, 'echo reingest >> node_modules/express/package.json'))
    const r = velo(home, ['ingest', path.join(proj, 'node_modules'), '--name', 'nm2', '--json'])
    expect(r.status, r.stderr).toBe(0)
    const proj2 = path.join(dir, 'proj2')
    fs.mkdirSync(proj2)
    const sums = ok(vrun(home, 'nm2', proj2, 'find node_modules -type f -print0 | sort -z | xargs -0 sha256sum'))
    expect(sums).toBe(ok(vrun(home, 'nm', proj, 'find node_modules -type f -print0 | sort -z | xargs -0 sha256sum')))
    expect(ok(vrun(home, 'nm2', proj2, 'tail -n1 node_modules/express/package.json'))).toBe('reingest\n')
    expect(sums).not.toMatch(/^af5570f5a1810b7af78caf4bc70a660f0df51e42baf91d4de5b2328de0e83dfc /m) // sha256 of 4096 zero bytes never shows up
    expectStoreIntact(home)
  })
})

describe('velo run itself', () => {
  it('passes exit codes and signals through', () => {
    expect(vrun(home, 'nm', proj, 'exit 7').status).toBe(7)
    // the child dies of SIGTERM; velo re-raises it on itself, so the shell sees 128 + 15
    const r = sh(`VELO_HOME=${home} ${VELO} run --image nm -- sh -c 'kill -TERM $$'; echo "status $?"`, {cwd: proj})
    expect(r.stdout).toBe('status 143\n')
  })
  it('refuses static binaries and says why', () => {
    const r = velo(home, ['run', '--image', 'nm', '--', '/bin/busybox', 'true'], {cwd: proj})
    expect(r.status).toBe(1)
    expect(r.stderr).toMatch(/UNSUPPORTED.*statically linked/)
  })
  it('warns when a projected program execs a static binary', () => {
    const r = vrun(home, 'nm', proj, '/bin/busybox true')
    expect(r.status).toBe(0)
    expect(r.stderr).toMatch(/busybox is statically linked/)
  })
  it('refuses to project over a directory that is not its projection', () => {
    const other = path.join(dir, 'other')
    fs.mkdirSync(path.join(other, 'node_modules'), {recursive: true})
    fs.writeFileSync(path.join(other, 'node_modules', 'mine'), 'x')
    const r = vrun(home, 'nm', other, 'true')
    expect(r.status).toBe(1)
    expect(r.stderr).toMatch(/STATE.*not a velo projection/)
    expect(fs.readFileSync(path.join(other, 'node_modules', 'mine'), 'utf8')).toBe('x')
  })
  it('an unknown image is a clear error', () => {
    const r = vrun(home, 'nope', proj, 'true')
    expect(r.status).toBe(1)
    expect(r.stderr).toMatch(/NOT_FOUND/)
  })
})
