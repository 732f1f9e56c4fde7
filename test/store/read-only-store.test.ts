/**
 * A store the user may read but not write: root's store, shared for reading as docs/format.md says ("A store
 * shared for reading": search/list on its directories, read on the database and the lock file, the objects'
 * own modes untouched), used by `nobody` through setpriv. Reads work on both front doors (the native one and
 * VELO_NATIVE=0); `velo run` and `velo mount` keep their gc holds as nobody's own files in holds/, which root's gc
 * honours; every write says PERMISSION_DENIED (exit 1, never INTERNAL) and leaves the store byte for byte as it
 * was; an unregistered LMDB reader and the owner's writes exclude each other through the database's flock.
 */
import {spawn, spawnSync} from 'node:child_process'
import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {rmrf, tmpDir, VELO, velo, veloJson} from '../helpers'

const NOBODY = 65534
const SETPRIV = ['--reuid=65534', '--regid=65534', '--clear-groups']

let work: string, home: string, src: string, priv: string, nh: string, cache: string
let imgLayers: string[]

/** What "untouched" compares: every path under root with type/mode, owner, size, mtime and a content digest. */
function snapshot(root: string, skip: RegExp = /^$/): string[] {
  const out: string[] = []
  const walk = (d: string) => {
    for (const n of fs.readdirSync(d).sort()) {
      const p = path.join(d, n)
      const rel = path.relative(root, p)
      if (skip.test(rel)) continue
      const st = fs.lstatSync(p)
      const digest = st.isFile() ? crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex').slice(0, 16) : '-'
      out.push(`${rel} ${st.mode.toString(8)} ${st.uid}:${st.gid} ${st.isDirectory() ? '-' : st.size} ${st.mtimeMs} ${digest}`)
      if (st.isDirectory()) walk(p)
    }
  }
  walk(root)
  return out
}

/** The documented way to share a store for reading (docs/format.md): directories searchable (the object dirs
 *  listable too), the database and the store lock readable; objects keep their own modes. */
function share(h: string): void {
  const fan = fs.readdirSync(path.join(h, 'cas', 'blake3')).map((d) => path.join(h, 'cas', 'blake3', d))
  for (const d of [h, path.join(h, 'db')]) fs.chmodSync(d, fs.statSync(d).mode | 0o001)
  for (const d of [path.join(h, 'cas'), path.join(h, 'cas', 'blake3'), ...fan]) fs.chmodSync(d, fs.statSync(d).mode | 0o005)
  for (const f of [path.join(h, 'db', 'velo.lmdb'), path.join(h, 'lock')]) fs.chmodSync(f, fs.statSync(f).mode | 0o004)
}

interface Out {
  status: number
  stdout: string
  stderr: string
  ms: number
}

const nobodyEnv = (env: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => {
  const e: NodeJS.ProcessEnv = {...process.env, VELO_HOME: home, HOME: nh, VELO_CACHE_HOME: cache, ...env}
  delete e.XDG_RUNTIME_DIR
  delete e.XDG_CACHE_HOME
  return e
}

function asNobody(args: string[], env: NodeJS.ProcessEnv = {}, cwd = nh): Out {
  const t0 = Date.now()
  const r = spawnSync('setpriv', [...SETPRIV, VELO, ...args], {cwd, encoding: 'utf8', env: nobodyEnv(env)})
  if (r.error) throw r.error
  return {status: r.status ?? 128, stdout: r.stdout, stderr: r.stderr, ms: Date.now() - t0}
}

const FRONT_DOORS: Array<[string, NodeJS.ProcessEnv]> = [
  ['native front-end', {}],
  ['VELO_NATIVE=0', {VELO_NATIVE: '0'}],
]

const holdFile = (holder: string, uid = NOBODY) =>
  path.join(home, 'holds', `${uid}-${crypto.createHash('sha256').update(holder).digest('hex').slice(0, 32)}.json`)

/** the clean refusal of a write: exit 1, PERMISSION_DENIED, names the store and what to do, never a bug */
function expectPermissionError(r: Out, what: string): void {
  expect(r.status, `${what}: ${r.stderr}`).toBe(1)
  expect(r.stderr, what).toMatch(/^velo: error \[PERMISSION_DENIED\]: .+/m)
  expect(r.stderr, what).toMatch(/suggestion: .+/)
  expect(r.stderr, what).not.toMatch(/bug in velo|INTERNAL/)
}

beforeAll(() => {
  work = tmpDir('velo-ro-')
  fs.chmodSync(work, 0o755)
  home = path.join(work, 'store')
  src = path.join(work, 'src')
  fs.mkdirSync(path.join(src, 'etc'), {recursive: true})
  fs.mkdirSync(path.join(src, 'lib'), {recursive: true})
  fs.writeFileSync(path.join(src, 'etc', 'hello'), 'hi\n')
  fs.writeFileSync(path.join(src, 'lib', 'data.txt'), 'data '.repeat(1000))
  // an image with a file only its owner may read (mode 0600, root's): nobody may not read its object either
  priv = path.join(work, 'priv')
  fs.mkdirSync(path.join(priv, 'etc'), {recursive: true})
  fs.writeFileSync(path.join(priv, 'etc', 'shadow'), 'root:secret\n', {mode: 0o600})
  veloJson(home, ['ingest', src, '--name', 'img'])
  imgLayers = veloJson(home, ['image', 'inspect', 'img']).layers
  veloJson(home, ['ingest', priv, '--name', 'priv'])
  veloJson(home, ['ingest', src, '--name', 'held']) // for the gc test (same layer as img)
  share(home)
  nh = path.join(work, 'nobody')
  cache = path.join(nh, '.cache', 'velo')
  fs.mkdirSync(cache, {recursive: true})
  for (const p of [nh, path.join(nh, '.cache'), cache]) fs.chownSync(p, NOBODY, NOBODY)
})

afterAll(() => {
  // a velo-fuse daemon of a failed mount test: end it by the pid its record names
  const records = path.join(cache, 'mounts')
  if (work && fs.existsSync(records))
    for (const d of fs.readdirSync(records))
      for (const f of fs.readdirSync(path.join(records, d)).filter((n) => n.endsWith('.json'))) {
        try {
          process.kill(JSON.parse(fs.readFileSync(path.join(records, d, f), 'utf8')).pid, 'SIGKILL')
        } catch {}
      }
  if (work) rmrf(work)
})

describe('a store this user may read but not write', () => {
  it('sharing as documented: the store keeps its modes across the owner\'s writes, holds/ is 1733, objects keep their own modes', () => {
    expect(fs.statSync(home).mode & 0o7777).toBe(0o701)
    expect(fs.statSync(path.join(home, 'holds')).mode & 0o7777).toBe(0o1733)
    veloJson(home, ['ingest', src, '--name', 'again']) // a write by the owner does not take the sharing back
    veloJson(home, ['image', 'rm', 'again'])
    expect(fs.statSync(home).mode & 0o7777).toBe(0o701)
    const modes = new Set(
      fs.readdirSync(path.join(home, 'cas', 'blake3')).flatMap((d) => fs.readdirSync(path.join(home, 'cas', 'blake3', d)).map((o) => o.split('_')[2])),
    )
    expect([...modes].sort()).toEqual(['600', '644'])
  })

  it('reads work on both front doors and change nothing: image ls/inspect/checkout/export, status, fsck', () => {
    const before = snapshot(home)
    for (const [door, env] of FRONT_DOORS) {
      const ls = asNobody(['image', 'ls', '--json'], env)
      expect(ls.status, `${door}: ${ls.stderr}`).toBe(0)
      expect(JSON.parse(ls.stdout).map((i: any) => i.name).sort()).toEqual(['held', 'img', 'priv'])
      const inspect = asNobody(['image', 'inspect', 'img', '--json'], env)
      expect(inspect.status, inspect.stderr).toBe(0)
      expect(JSON.parse(inspect.stdout).layers).toEqual(imgLayers)
      const status = asNobody(['status', '--json'], env)
      expect(status.status, status.stderr).toBe(0)
      expect(JSON.parse(status.stdout)).toMatchObject({objects: 3, layers: 2})
      // fsck checks what it may read and says how much it could not (priv's 0600 object)
      const fsck = asNobody(['fsck', '--json'], env)
      expect(fsck.status, fsck.stderr).toBe(0)
      expect(JSON.parse(fsck.stdout)).toMatchObject({objectsChecked: 2, unreadable: 1, problems: []})
      expect(asNobody(['fsck'], env).stderr).toMatch(/1 object\(s\) this user may not read were not checked/)
      const out = path.join(nh, `co-${env.VELO_NATIVE ?? 'native'}`)
      const co = asNobody(['image', 'checkout', 'img', out], env)
      expect(co.status, co.stderr).toBe(0)
      expect(fs.readFileSync(path.join(out, 'etc', 'hello'), 'utf8')).toBe('hi\n')
      expect(fs.readFileSync(path.join(out, 'lib', 'data.txt'), 'utf8')).toBe('data '.repeat(1000))
      const tar = path.join(nh, `img-${env.VELO_NATIVE ?? 'native'}.tar`)
      const ex = asNobody(['image', 'export', 'img', '-o', tar], env)
      expect(ex.status, ex.stderr).toBe(0)
      expect(spawnSync('tar', ['tf', tar], {encoding: 'utf8'}).stdout).toMatch(/layer\.tar/)
      // an image with a file nobody may not read: reading it says so (as a copy by nobody would)
      for (const args of [['image', 'checkout', 'priv', path.join(nh, 'co-priv')], ['image', 'export', 'priv', '-o', path.join(nh, 'priv.tar')]]) {
        const r = asNobody(args, env)
        expectPermissionError(r, args.join(' '))
        expect(r.stderr).toMatch(/permission denied/)
        rmrf(path.join(nh, 'co-priv'))
      }
    }
    // an unregistered reader does not even touch the LMDB lock file
    expect(snapshot(home)).toEqual(before)
  })

  it('every write says PERMISSION_DENIED, exit 1, and leaves the store byte for byte as it was', () => {
    const tar = path.join(work, 'img.tar')
    veloJson(home, ['image', 'export', 'img', '-o', tar])
    fs.chmodSync(tar, 0o644)
    const before = snapshot(home)
    const writes = [
      ['ingest', src, '--name', 'mine'],
      ['image', 'rm', 'img'],
      ['image', 'rm', 'no-such-image'],
      ['image', 'import', tar, '--name', 'imported'],
      ['gc'],
      ['gc', '--dry-run'],
      ['fsck', '--repair'],
      ['sandbox', 'create', 'ro1', '--image', 'img'],
    ]
    for (const [door, env] of FRONT_DOORS)
      for (const args of writes) {
        const r = asNobody(args, env)
        expectPermissionError(r, `${door}: ${args.join(' ')}`)
        if (args[0] !== 'sandbox') expect(r.stderr).toContain(`the store at ${home} is read-only for this user`)
        const j = asNobody([...args, '--json'], env)
        expect(j.status).toBe(1)
        expect(JSON.parse(j.stdout).error.code, `${door}: ${args.join(' ')} --json`).toBe('PERMISSION_DENIED')
      }
    expect(snapshot(home)).toEqual(before)
  })

  it('velo run: its gc hold is nobody\'s own file in holds/; the second run is served natively; root\'s gc keeps the layers', async () => {
    const at = path.join(nh, 'proj')
    const before = snapshot(home, /^holds(\/|$)/)
    for (const [door, env] of FRONT_DOORS) {
      const r = asNobody(['run', '--image', 'img', '--at', at, '--', 'cat', path.join(at, 'etc', 'hello')], env)
      expect(r.stderr, door).toBe('')
      expect([r.status, r.stdout], door).toEqual([0, 'hi\n'])
    }
    const hold = holdFile(`projection:${at}`)
    const st = fs.statSync(hold)
    expect([st.uid, st.mode & 0o777]).toEqual([NOBODY, 0o644])
    expect(JSON.parse(fs.readFileSync(hold, 'utf8'))).toMatchObject({holder: `projection:${at}`, layers: imgLayers})
    // the hold exists: the native front-end runs the program in velo's own process (no Node in between)
    const child = spawn('setpriv', [...SETPRIV, VELO, 'run', '--image', 'img', '--at', at, '--', 'sh', '-c', 'echo $$'], {cwd: nh, env: nobodyEnv()})
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    expect(await new Promise((resolve) => child.on('close', resolve))).toBe(0)
    expect(Number(out.trim())).toBe(child.pid)
    // phantom mode: the private skeleton in nobody's cache, nothing at the projection root
    const ph = path.join(nh, 'phantom-root')
    const p = asNobody(['run', '--image', 'img', '--at', ph, '--phantom', '--', 'cat', path.join(ph, 'lib', 'data.txt')])
    expect([p.status, p.stdout.length, p.stderr]).toEqual([0, 5000, ''])
    expect(fs.existsSync(ph)).toBe(false)
    // nothing in the store changed but nobody's own hold files
    expect(snapshot(home, /^holds(\/|$)/)).toEqual(before)
    expect(fs.readdirSync(path.join(home, 'holds')).every((n) => n.startsWith(`${NOBODY}-`))).toBe(true)

    // the owner removes the image and collects garbage: the layer stays, nobody's projection still reads
    veloJson(home, ['image', 'rm', 'img', 'held'])
    const gc = veloJson(home, ['gc'])
    expect(gc).toMatchObject({removedLayers: 0, ignoredHolds: []})
    const again = asNobody(['run', '--image', 'priv', '--at', path.join(nh, 'other'), '--', 'cat', path.join(at, 'lib', 'data.txt')])
    expect([again.status, again.stdout.length], again.stderr).toEqual([0, 5000])
    for (const n of ['img', 'held']) veloJson(home, ['ingest', src, '--name', n]) // back for the later tests
  })

  it('inception and wake as nobody: the hold keeps a layer whose image the owner removed; wake drops it, then gc collects', () => {
    const proj = path.join(nh, 'incept')
    fs.mkdirSync(proj)
    fs.chownSync(proj, NOBODY, NOBODY)
    const src2 = path.join(work, 'src2')
    fs.mkdirSync(path.join(src2, 'etc'), {recursive: true})
    fs.writeFileSync(path.join(src2, 'etc', 'hello'), 'hi\n')
    fs.writeFileSync(path.join(src2, 'etc', 'only-here'), 'a layer of its own\n')
    veloJson(home, ['ingest', src2, '--name', 'tmpimg'])
    const inc = asNobody(['inception', '--image', 'tmpimg', '--at', path.join(proj, 'deps')], {}, proj)
    expect(inc.status, inc.stderr).toBe(0)
    veloJson(home, ['image', 'rm', 'tmpimg']) // the owner removes it; nobody's hold keeps its layer
    const hold = holdFile(`projection:${path.join(proj, 'deps')}`)
    expect(fs.existsSync(hold)).toBe(true)
    expect(veloJson(home, ['gc'])).toMatchObject({removedLayers: 0, removedObjects: 0})
    const wake = asNobody(['wake'], {}, proj)
    expect(wake.status, wake.stderr).toBe(0)
    expect(fs.existsSync(hold)).toBe(false)
    expect(fs.readFileSync(path.join(proj, 'deps', 'etc', 'only-here'), 'utf8')).toBe('a layer of its own\n')
    expect(veloJson(home, ['gc'])).toMatchObject({removedLayers: 1, removedObjects: 1})
  })

  it('gc ignores (and names) what is not a valid hold in holds/: wrong owner, a symlink, bad JSON; stray temp files go', () => {
    const layer = imgLayers[0]
    const fake = holdFile('projection:/fake')
    const wrongOwner = fake // root-owned, named as nobody's
    fs.writeFileSync(wrongOwner, JSON.stringify({holder: 'projection:/fake', layers: [layer], createdAt: 'x'}))
    const link = holdFile('projection:/link')
    fs.symlinkSync('/etc/passwd', link)
    const bad = holdFile('projection:/bad')
    fs.writeFileSync(bad, '{not json')
    fs.chownSync(bad, NOBODY, NOBODY)
    const temp = path.join(home, 'holds', `.${path.basename(bad)}.999999.tmp`)
    fs.writeFileSync(temp, '{}')
    fs.chownSync(temp, NOBODY, NOBODY)
    try {
      const r = velo(home, ['gc', '--dry-run'])
      expect(r.status, r.stderr).toBe(0)
      for (const f of [wrongOwner, link, bad]) expect(r.stderr).toContain(`velo: warning: ignored ${f}: not a gc hold`)
      const j = veloJson(home, ['gc'])
      expect(j.ignoredHolds.sort()).toEqual([wrongOwner, link, bad].sort())
      expect(fs.existsSync(temp)).toBe(false)
      expect(fs.readFileSync('/etc/passwd', 'utf8')).toMatch(/^root:/)
    } finally {
      for (const f of [wrongOwner, link, bad, temp]) fs.rmSync(f, {force: true})
    }
  })

  it('a store without holds/ (made before it existed): velo run says what its owner must do, and changes nothing', () => {
    const old = path.join(work, 'old')
    veloJson(old, ['ingest', src, '--name', 'img'])
    fs.rmdirSync(path.join(old, 'holds'))
    share(old)
    const before = snapshot(old)
    for (const [door, env] of FRONT_DOORS) {
      const r = asNobody(['run', '--image', 'img', '--at', path.join(nh, 'old-proj'), '--', 'true'], {...env, VELO_HOME: old})
      expectPermissionError(r, door)
      expect(r.stderr).toContain(`mkdir -m 1733 ${path.join(old, 'holds')}`)
    }
    expect(snapshot(old)).toEqual(before)
  })

  it('an unregistered reader and the owner\'s writes exclude each other through the database flock, on both sides', async () => {
    const db = path.join(home, 'db', 'velo.lmdb')
    // a write in progress (the exclusive flock, as a write transaction holds it): nobody's reads wait for it,
    // Node's (image ls) and C's (the native velo run reads the image record and its hold)
    const at = path.join(nh, 'proj')
    asNobody(['run', '--image', 'img', '--at', at, '--', 'true']) // the hold exists: the next run is native
    for (const args of [['image', 'ls'], ['run', '--image', 'img', '--at', at, '--', 'true']]) {
      const holder = spawn('flock', ['-x', db, 'sleep', '1.5'], {stdio: 'ignore'})
      await new Promise((r) => setTimeout(r, 300))
      const r = asNobody(args)
      expect(r.status, r.stderr).toBe(0)
      expect(r.ms, args.join(' ')).toBeGreaterThanOrEqual(1000)
      await new Promise((r) => holder.on('close', r))
    }
    // nobody reading (the shared flock, as an unregistered reader holds it): the owner's commit waits for it
    const reader = spawn('setpriv', [...SETPRIV, 'flock', '-s', db, 'sleep', '1.5'], {stdio: 'ignore'})
    await new Promise((r) => setTimeout(r, 300))
    const t0 = Date.now()
    veloJson(home, ['image', 'rm', 'held'])
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1000)
    await new Promise((r) => reader.on('close', r))
    veloJson(home, ['ingest', src, '--name', 'held'])
  })

  it('velo mount (FUSE) as nobody: records in nobody\'s cache, the hold in holds/, read-only view; umount drops both', () => {
    // Debian's /dev/fuse is 0666; this host's is 0600. Without changing the host, the mount runs in a private
    // mount namespace where a 0666 node of the same device sits on /dev/fuse (fusermount3 does the mount).
    veloJson(home, ['ingest', src, '--name', 'scratch'])
    const node = path.join(work, 'fuse-dev')
    expect(spawnSync('mknod', ['-m', '666', node, 'c', '10', '229']).status).toBe(0)
    const mnt = path.join(nh, 'mnt')
    fs.mkdirSync(mnt)
    fs.chownSync(mnt, NOBODY, NOBODY)
    const skip = /^(holds|db|events\.log)(\/|$)/ // nobody's hold; the owner's own write below, and its event
    const before = snapshot(home, skip)
    const env = Object.entries(nobodyEnv())
      .filter(([k]) => /^(VELO_HOME|HOME|VELO_CACHE_HOME|PATH)$/.test(k))
      .map(([k, v]) => `${k}=${v}`)
    const nb = ['setpriv', ...SETPRIV, 'env', ...env].join(' ')
    const hold = holdFile(`mount:${crypto.createHash('sha256').update(mnt).digest('hex').slice(0, 16)}`)
    const script = [
      'set -e',
      `mount --bind ${node} /dev/fuse`,
      `cd ${nh}`,
      `${nb} ${VELO} mount img ${mnt}`,
      `${nb} ${VELO} mount --json > ${nh}/mounts.json`,
      `${nb} cat ${mnt}/etc/hello > ${nh}/hello.out`,
      `test -f ${hold} && echo held > ${nh}/hold.out`,
      // the daemon reads unregistered, holding the database's flock per read only: the owner's writes go on
      `VELO_HOME=${home} timeout 60 ${VELO} image rm scratch > /dev/null`,
      `${nb} touch ${mnt}/etc/new 2> ${nh}/touch.err || echo refused > ${nh}/touch.out`,
      `${nb} ${VELO} umount ${mnt}`,
    ].join('\n')
    const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'bash', '-c', script], {encoding: 'utf8', env: {PATH: process.env.PATH}, stdio: ['ignore', 'pipe', 'pipe']})
    expect(r.status, r.stderr + r.stdout).toBe(0)
    const mounts = JSON.parse(fs.readFileSync(path.join(nh, 'mounts.json'), 'utf8'))
    expect(mounts).toMatchObject([{dir: mnt, image: 'img', state: 'active'}])
    expect(fs.readFileSync(path.join(nh, 'hello.out'), 'utf8')).toBe('hi\n')
    expect(fs.readFileSync(path.join(nh, 'hold.out'), 'utf8')).toBe('held\n')
    expect(fs.readFileSync(path.join(nh, 'touch.out'), 'utf8')).toBe('refused\n')
    expect(fs.readFileSync(path.join(nh, 'touch.err'), 'utf8')).toMatch(/Read-only file system|Permission denied/)
    expect(fs.existsSync(hold)).toBe(false)
    // the record lived in nobody's cache (gone with the umount), never in the store
    const records = path.join(cache, 'mounts')
    expect(fs.readdirSync(records).flatMap((d) => fs.readdirSync(path.join(records, d))).filter((n) => n.endsWith('.json'))).toEqual([])
    expect(snapshot(home, skip)).toEqual(before)
    expect(veloJson(home, ['image', 'ls']).map((i: any) => i.name)).not.toContain('scratch')
  })

  it('a setuid object is setuid to every reader of a shared store; through the documented nosuid bind mount it is not, and all else works', () => {
    // the hazard docs/format.md names: objects keep their modes, so a setuid-root program in any image of a
    // store others may reach runs as root for them (here a setuid copy of id(1), which only prints its euid)
    const s3 = path.join(work, 'suid-src')
    fs.mkdirSync(path.join(s3, 'bin'), {recursive: true})
    fs.copyFileSync('/usr/bin/id', path.join(s3, 'bin', 'id'))
    fs.chmodSync(path.join(s3, 'bin', 'id'), 0o4755)
    veloJson(home, ['ingest', s3, '--name', 'suid'])
    const fan = path.join(home, 'cas', 'blake3')
    const obj = fs.readdirSync(fan).flatMap((d) => fs.readdirSync(path.join(fan, d)).map((o) => path.join(d, o))).find((o) => /_4755_0_0$/.test(o))!
    expect(obj).toBeTruthy()
    const view = path.join(work, 'shared-view')
    fs.mkdirSync(view)
    const nb = ['setpriv', ...SETPRIV, 'env', `HOME=${nh}`, `VELO_CACHE_HOME=${cache}`, `PATH=${process.env.PATH}`].join(' ')
    const at = path.join(nh, 'via-view')
    const script = [
      'set -e',
      `mount --bind ${home} ${view}`,
      `mount -o remount,bind,nosuid,nodev ${view}`,
      `${nb} ${path.join(home, 'cas', 'blake3', obj)} -u > ${nh}/euid-store.out`,
      `${nb} ${path.join(view, 'cas', 'blake3', obj)} -u > ${nh}/euid-view.out`,
      `cd ${nh}`,
      `${nb} VELO_HOME=${view} ${VELO} image ls --json > ${nh}/ls-view.json`,
      `${nb} VELO_HOME=${view} ${VELO} run --image img --at ${at} -- cat ${at}/etc/hello > ${nh}/run-view.out`,
    ].join('\n')
    try {
      const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'bash', '-c', script], {encoding: 'utf8', env: {PATH: process.env.PATH}, stdio: ['ignore', 'pipe', 'pipe']})
      expect(r.status, r.stderr).toBe(0)
      expect(fs.readFileSync(path.join(nh, 'euid-store.out'), 'utf8')).toBe('0\n')
      expect(fs.readFileSync(path.join(nh, 'euid-view.out'), 'utf8')).toBe(`${NOBODY}\n`)
      expect(JSON.parse(fs.readFileSync(path.join(nh, 'ls-view.json'), 'utf8')).map((i: any) => i.name)).toContain('img')
      expect(fs.readFileSync(path.join(nh, 'run-view.out'), 'utf8')).toBe('hi\n')
      // the hold names the projection; gc (by the owner, through the store's own path) sees it
      expect(fs.existsSync(holdFile(`projection:${at}`))).toBe(true)
    } finally {
      veloJson(home, ['image', 'rm', 'suid'])
      veloJson(home, ['gc']) // the setuid object goes
    }
    expect(fs.existsSync(path.join(fan, obj))).toBe(false)
  })

  it('a store on a read-only mount: reads work (root\'s too: EROFS makes it an unregistered reader); run says it cannot hold', () => {
    const view = path.join(work, 'ro-view')
    fs.mkdirSync(view)
    const script = [
      'set -e',
      `mount --bind ${home} ${view}`,
      `mount -o remount,bind,ro ${view}`,
      `VELO_HOME=${view} ${VELO} image ls --json > ${nh}/ls-ro-root.json`,
      `VELO_HOME=${view} ${VELO} fsck --json > ${nh}/fsck-ro-root.json`,
      `cd ${nh}`,
      `VELO_HOME=${view} ${VELO} run --image img --at ${nh}/ro-proj -- true 2> ${nh}/run-ro.err || echo $? > ${nh}/run-ro.status`,
      `VELO_HOME=${view} ${VELO} ingest ${src} --name x 2> ${nh}/ingest-ro.err || echo $? > ${nh}/ingest-ro.status`,
    ].join('\n')
    const before = snapshot(home)
    const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'bash', '-c', script], {encoding: 'utf8', env: {PATH: process.env.PATH}, stdio: ['ignore', 'pipe', 'pipe']})
    expect(r.status, r.stderr).toBe(0)
    expect(JSON.parse(fs.readFileSync(path.join(nh, 'ls-ro-root.json'), 'utf8')).map((i: any) => i.name)).toContain('img')
    expect(JSON.parse(fs.readFileSync(path.join(nh, 'fsck-ro-root.json'), 'utf8'))).toMatchObject({problems: [], unreadable: 0})
    for (const what of ['run-ro', 'ingest-ro']) {
      expect(fs.readFileSync(path.join(nh, `${what}.status`), 'utf8'), what).toBe('1\n')
      const err = fs.readFileSync(path.join(nh, `${what}.err`), 'utf8')
      expect(err, what).toMatch(new RegExp(`^velo: error \\[PERMISSION_DENIED\\]: the store at ${view} is on a read-only file system`, 'm'))
      expect(err, what).not.toMatch(/bug in velo|INTERNAL/)
    }
    expect(snapshot(home)).toEqual(before)
  })

  it('HOME=/nonexistent (nobody\'s): reads and solid runs need no cache; phantom says where to put one', () => {
    const r = asNobody(['image', 'ls'], {HOME: '/nonexistent', VELO_CACHE_HOME: ''})
    expect(r.status, r.stderr).toBe(0)
    const at = path.join(nh, 'solid2')
    for (const [door, env] of FRONT_DOORS) {
      const s = asNobody(['run', '--image', 'img', '--at', at, '--', 'cat', path.join(at, 'etc', 'hello')], {...env, HOME: '/nonexistent', VELO_CACHE_HOME: ''})
      expect([s.status, s.stdout, s.stderr], door).toEqual([0, 'hi\n', ''])
    }
    const ph = asNobody(['run', '--image', 'img', '--at', path.join(nh, 'ph2'), '--phantom', '--', 'true'], {HOME: '/nonexistent', VELO_CACHE_HOME: ''})
    expectPermissionError(ph, 'phantom without a cache')
    expect(ph.stderr).toMatch(/VELO_CACHE_HOME/)
  })

  it('cold objects the owner\'s gc packed: nobody\'s fsck counts them as unreadable, not missing; a read says the owner must run it once', () => {
    veloJson(home, ['volume', 'create', 'pv'])
    try {
      const data = veloJson(home, ['volume', 'inspect', 'pv']).dir
      for (let i = 0; i < 20; i++) fs.writeFileSync(path.join(data, `f${i}`), `file ${i}\n`.repeat(50 + i))
      veloJson(home, ['volume', 'snapshot', 'pv', 's1'])
      expect(veloJson(home, ['gc']).packedObjects).toBe(20)
      share(home)
      // packs are the owner's (0600): nobody cannot tell what they hold
      const fsck = asNobody(['fsck', '--json'])
      expect(fsck.status, fsck.stderr).toBe(0)
      const report = JSON.parse(fsck.stdout)
      expect(report.problems).toEqual([])
      expect(report.unreadable).toBe(21) // priv's 0600 object, and the 20 a pack may hold
      const out = path.join(nh, 'co-pv')
      const co = asNobody(['image', 'checkout', 'volume:pv:s1', out])
      expectPermissionError(co, 'checkout of packed objects')
      expect(co.stderr).toMatch(/compressed \(cold.*only the store's owner can decompress/)
      rmrf(out)
      // the owner's read makes them plain, for everyone
      const own = path.join(work, 'co-pv-owner')
      expect(velo(home, ['image', 'checkout', 'volume:pv:s1', own]).status).toBe(0)
      rmrf(own)
      const again = asNobody(['image', 'checkout', 'volume:pv:s1', out])
      expect(again.status, again.stderr).toBe(0)
      expect(fs.readFileSync(path.join(out, 'f7'), 'utf8')).toBe('file 7\n'.repeat(57))
      rmrf(out)
    } finally {
      velo(home, ['volume', 'rm', 'pv'])
      veloJson(home, ['gc', '--compact-threshold', '0'])
    }
  })
})
