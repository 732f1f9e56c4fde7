import * as fs from 'node:fs'
import * as path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {rmrf, sh, tmpDir} from '../helpers'
import {expectStoreIntact, ingest, ok, vrun} from './fixture'

// Real programs on projected trees: Debian's Python with its whole stdlib projected, and git on a projected work tree.
let dir: string, home: string

beforeAll(() => {
  dir = tmpDir('velo-run-prog-')
  home = path.join(dir, 'home')
})
afterAll(() => rmrf(dir))

describe('python3 with the stdlib projected', () => {
  it("imports json, sqlite3, email from the projection (lib-dynload .so files via dlopen) and writes its .pyc files beside them", () => {
    ingest(home, '/usr/lib/python3.11', 'py311')
    const py = path.join(dir, 'py')
    fs.mkdirSync(path.join(py, 'lib'), {recursive: true})
    const prog = `import json, sqlite3, email, email.parser, sys, hashlib
c = sqlite3.connect(':memory:'); c.execute('create table t(x)'); c.execute("insert into t values ('velo')")
print(json.__file__.replace(sys.prefix, '<prefix>'), sqlite3.__file__.replace(sys.prefix, '<prefix>'), c.execute('select x from t').fetchone()[0])
print(email.parser.Parser().parsestr('Subject: hi\\n\\nbody')['subject'], json.dumps({'a': [1, 2]}))
print(hashlib.sha256(open(json.__file__, 'rb').read()).hexdigest())`
    fs.writeFileSync(path.join(dir, 'prog.py'), prog)
    const out = ok(vrun(home, 'py311', py, `PYTHONHOME=$PWD /usr/bin/python3 ${dir}/prog.py`, ['--at', 'lib/python3.11']))
    const want = sh(`/usr/bin/python3 ${dir}/prog.py`).stdout.replace('/usr/lib/python3.11', '<prefix>/lib/python3.11')
    expect(out.split('\n').slice(1).join('\n')).toBe(want.split('\n').slice(1).join('\n'))
    expect(out.split('\n')[0]).toBe('<prefix>/lib/python3.11/json/__init__.py <prefix>/lib/python3.11/sqlite3/__init__.py velo')
    // it really ran from the projection: outside velo run, the placeholders are not Python source
    const bare = sh(`PYTHONHOME=${py} /usr/bin/python3 -c 'import json'`)
    expect(bare.status).not.toBe(0)
    // Python wrote bytecode caches into the projected tree: new private files, store untouched
    expect(sh(`find ${py}/lib/python3.11/json/__pycache__ -name '*.pyc' | wc -l`).stdout.trim()).not.toBe('0')
    expectStoreIntact(home)
  })
})

describe('git on a projected work tree', () => {
  it('git status --porcelain (and diff) agree with a real copy', () => {
    const repo = path.join(dir, 'src', 'repo')
    fs.mkdirSync(repo, {recursive: true})
    const setup = `set -e; cd ${repo}; git init -q; git config user.email t@example.com; git config user.name t
      mkdir -p lib bin; for i in $(seq 1 40); do echo "line $i" > lib/f$i.txt; done
      printf '#!/bin/sh\\necho hi\\n' > bin/run; chmod 755 bin/run; ln -s lib/f1.txt link; : > empty
      git add -A; git commit -qm init
      echo changed >> lib/f2.txt; rm lib/f3.txt; echo new > untracked.txt; chmod 644 bin/run`
    expect(sh(setup).status).toBe(0)
    ingest(home, repo, 'repo')
    const real = path.join(dir, 'real')
    const proj = path.join(dir, 'proj')
    fs.mkdirSync(real)
    fs.mkdirSync(proj)
    sh(`cp -a ${repo} ${real}/`)
    const cmd = 'cd repo && git status --porcelain && git diff --stat && git ls-files -s | sha256sum && ./link 2>/dev/null; cat link'
    const want = sh(cmd, {cwd: real})
    expect(want.status).toBe(0)
    expect(want.stdout).toContain(' M lib/f2.txt')
    expect(ok(vrun(home, 'repo', proj, cmd))).toBe(want.stdout)
    // a change made under the projection shows up like on the real copy
    const cmd2 = 'cd repo && echo more >> lib/f10.txt && git add lib/f10.txt && git status --porcelain'
    expect(ok(vrun(home, 'repo', proj, cmd2))).toBe(sh(cmd2, {cwd: real}).stdout)
    expectStoreIntact(home)
  })
})
