import * as fs from 'node:fs'
import * as path from 'node:path'
import {spawnSync} from 'node:child_process'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {ROOT, rmrf, tmpDir, velo, veloJson} from '../helpers'
import {listDir} from '../image/listing'
import {makeTree} from '../registry/fixture'

/**
 * The native ingest pass (native/ingest/velo-ingest.c: walk + objects in one process) against the Node path
 * (VELO_NO_NATIVE_INGEST=1) on the same tree: the same layer id, the same objects under the same names, a clean
 * fsck, the same checkout. The tree has what the walk must get right: hard links, symlinks, a fifo, a socket
 * (skipped), an empty file, setuid, a file over the 4 MiB read-once limit, a user.* xattr (left to Node's
 * policy), a sparse file, odd bytes in names.
 */
describe('velo ingest: native pass = Node path', () => {
  let w: string
  let src: string
  beforeAll(() => {
    w = tmpDir('velo-ingest-native-')
    src = path.join(w, 'src')
    makeTree(src, {files: 300, big: true})
    fs.writeFileSync(path.join(src, 'with-xattr'), 'x\n')
    // one user.* attribute through velo's own tool (canonical block: count, then name/value lengths and bytes)
    const name = Buffer.from('user.velo-test')
    const value = Buffer.from('yes')
    const block = Buffer.alloc(12 + name.length + value.length)
    block.writeUInt32LE(1, 0)
    block.writeUInt32LE(name.length, 4)
    block.writeUInt32LE(value.length, 8)
    name.copy(block, 12)
    value.copy(block, 12 + name.length)
    const set = spawnSync(path.join(ROOT, 'native', 'build', 'velo-xattr'), ['set', path.join(src, 'with-xattr')], {input: block})
    expect(set.status).toBe(0)
    fs.writeFileSync(path.join(src, Buffer.from([0x6e, 0xff, 0x20, 0x0a]).toString('latin1')), 'odd name\n')
    const f = fs.openSync(path.join(src, 'sparse'), 'w')
    fs.ftruncateSync(f, 1 << 20)
    fs.closeSync(f)
    // a socket file that stays (Node removes its own on close)
    spawnSync('python3', ['-c', 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', path.join(src, 'sock')])
    expect(fs.lstatSync(path.join(src, 'sock')).isSocket()).toBe(true)
  })
  afterAll(() => rmrf(w))

  it('gives the same layer, objects and checkout', () => {
    const objects = (h: string) => spawnSync('bash', ['-c', `cd ${h}/cas/blake3 && ls */ | sort`], {encoding: 'utf8'}).stdout
    const A = path.join(w, 'A')
    const B = path.join(w, 'B')
    const a = veloJson(A, ['ingest', src, '--name', 't'])
    const b = veloJson(B, ['ingest', src, '--name', 't'], {env: {VELO_NO_NATIVE_INGEST: '1'}})
    expect(a.layer).toBe(b.layer)
    expect(a.newObjects).toBe(b.newObjects)
    expect(a.newBytes).toBe(b.newBytes)
    expect(a.files).toBe(b.files)
    expect(a.skippedSockets).toBe(1)
    expect(objects(A)).toBe(objects(B))
    expect(objects(A).split('\n').length).toBeGreaterThan(300)
    expect(objects(A)).toMatch(/_x[0-9a-f]{32}\n/) // the file with an xattr: stored by the Node side, in its _x variant
    expect(velo(A, ['fsck']).status).toBe(0)
    expect(fs.readdirSync(path.join(A, 'tmp'))).toEqual([]) // no temp file left
    // again: every object a dedup hit, the same layer
    const again = veloJson(A, ['ingest', src, '--name', 't2'])
    expect(again.layer).toBe(a.layer)
    expect(again.newObjects).toBe(0)
    for (const [h, n] of [[A, 'ca'], [B, 'cb']]) expect(velo(h, ['image', 'checkout', 't', path.join(w, n)]).status).toBe(0)
    expect(JSON.stringify(listDir(path.join(w, 'ca')))).toBe(JSON.stringify(listDir(path.join(w, 'cb'))))
  })

  it('files of 32 MiB and more are hashed by velo-b3 (one call each); a velo-b3 that fails leaves the pass to read them itself, with the same objects', () => {
    const big = path.join(w, 'big')
    fs.mkdirSync(big)
    const bytes = Buffer.alloc(40 << 20)
    for (let i = 0; i < bytes.length; i += 4096) bytes.writeUInt32LE((i * 2654435761) >>> 0, i)
    fs.writeFileSync(path.join(big, 'large'), bytes)
    fs.writeFileSync(path.join(big, 'small'), 'small\n')
    const H = path.join(w, 'H')
    const log = path.join(w, 'execs')
    const r = spawnSync('strace', ['-f', '-qq', '-e', 'trace=execve', '-o', log, path.join(ROOT, 'bin', 'velo'), 'ingest', big, '--name', 'big', '--home', H, '--json'], {encoding: 'utf8'})
    expect(r.status, r.stderr).toBe(0)
    expect(fs.readFileSync(log, 'utf8').split('\n').filter((l) => /execve\("[^"]*\/velo-b3"/.test(l) && !/ENOENT/.test(l)).length).toBe(1)
    const objects = (cas: string) => spawnSync('bash', ['-c', `cd ${cas} && ls */ | sort`], {encoding: 'utf8'}).stdout
    const want = objects(path.join(H, 'cas', 'blake3'))
    const b3sum = spawnSync('b3sum', ['--no-names', path.join(big, 'large')], {encoding: 'utf8'}).stdout.trim()
    expect(want).toContain(`${b3sum}_${40 << 20}_`)
    // the pass alone, into an empty store dir, told to ask a tool that fails (for every file of a byte or more)
    const cas = path.join(w, 'cas2')
    const tmp = path.join(w, 'tmp2')
    for (let i = 0; i < 256; i++) fs.mkdirSync(path.join(cas, i.toString(16).padStart(2, '0')), {recursive: true}) // as a store has them
    fs.mkdirSync(tmp)
    const p = spawnSync(path.join(ROOT, 'native', 'build', 'velo-ingest'), ['--b3', '/bin/false', '1', cas, tmp, 'ROOT', big], {encoding: 'utf8'})
    expect(p.status, p.stderr).toBe(0)
    expect(p.stderr).toBe('')
    expect(objects(cas)).toBe(want)
    expect(spawnSync(path.join(ROOT, 'native', 'build', 'velo-ingest'), ['--b3', '/bin/false', 'lots', cas, tmp, 'ROOT', big]).status).toBe(2)
  })

  it('a directory that is not there fails before the store is made', () => {
    const H = path.join(w, 'none')
    const r = velo(H, ['ingest', path.join(w, 'missing')])
    expect(r.status).toBe(1)
    expect(r.stderr).toContain('NOT_FOUND')
    expect(fs.existsSync(H)).toBe(false)
  })
})
