import {spawn, spawnSync} from 'node:child_process'
import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {afterEach, describe, expect, it} from 'vitest'
import {withDb} from '../image/listing'
import {Env, lsRows, startEnv} from './harness'

/** kill -9 of the service in the middle of a Commit (while it ingests the upper), then a restart. */

const S = ['snapshots', '--snapshotter', 'velo']
const root = process.getuid?.() === 0
const HOLDER = 'containerd-snapshotter'

function sh(cmd: string) {
  const r = spawnSync('bash', ['-c', cmd], {encoding: 'utf8'})
  if (r.status !== 0) throw new Error(`${cmd}: ${r.stderr}`)
  return r.stdout
}

type Meta = {snapshots: Record<string, {kind: string; layer?: string; id: string}>}
const meta = (env: Env): Meta => JSON.parse(fs.readFileSync(path.join(env.home, 'snapshotter', 'metadata.json'), 'utf8'))
const byName = (env: Env, name: string) => Object.entries(meta(env).snapshots).find(([k]) => k.endsWith(`/${name}`))?.[1]

/** How many objects the store holds (stops counting at `enough`). */
function objects(home: string, enough: number): number {
  const cas = path.join(home, 'cas')
  let n = 0
  const walk = (d: string, depth: number) => {
    for (const e of fs.readdirSync(d, {withFileTypes: true})) {
      if (n >= enough) return
      if (e.isDirectory() && depth < 3) walk(path.join(d, e.name), depth + 1)
      else if (e.isFile()) n++
    }
  }
  if (fs.existsSync(cas)) walk(cas, 0)
  return n
}

describe.skipIf(!root)('velo snapshotter: kill -9 and restart', () => {
  let env: Env | undefined
  afterEach(async () => {
    await env?.stop()
    env = undefined
  })

  it('a commit killed while it ingests leaves the active snapshot as it was; after a restart everything agrees and the commit can be redone', async () => {
    env = await startEnv()
    const mnt = path.join(env.dir, 'mnt')
    fs.mkdirSync(mnt)
    // a committed base, then an active child with many files (the ingest takes a while)
    env.ctrOk([...S, 'prepare', 'base-a'])
    sh(env.ctrOk([...S, 'mounts', mnt, 'base-a']).trim())
    fs.writeFileSync(path.join(mnt, 'base'), 'base\n')
    sh(`umount ${mnt}`)
    env.ctrOk([...S, 'commit', 'base', 'base-a'])
    env.ctrOk([...S, 'prepare', 'big', 'base'])
    sh(env.ctrOk([...S, 'mounts', mnt, 'big']).trim())
    const sums = new Map<string, string>()
    for (let d = 0; d < 40; d++) {
      fs.mkdirSync(path.join(mnt, `d${d}`))
      for (let f = 0; f < 150; f++) {
        const b = crypto.randomBytes(4096)
        fs.writeFileSync(path.join(mnt, `d${d}`, `f${f}`), b)
        sums.set(`d${d}/f${f}`, crypto.createHash('sha256').update(b).digest('hex'))
      }
    }
    sh(`umount ${mnt}`)
    const objectsBefore = objects(env.home, 1e9)

    // commit in the background; kill -9 the service once the ingest has written objects
    const commit = spawn('ctr', ['--address', env.address, ...S, 'commit', 'big-c', 'big'], {stdio: ['ignore', 'ignore', 'pipe']})
    const commitDone = new Promise<number>((r) => commit.once('exit', (c) => r(c ?? 137)))
    for (let i = 0; i < 2000 && objects(env.home, objectsBefore + 50) < objectsBefore + 50; i++) await new Promise((r) => setTimeout(r, 5))
    expect(objects(env.home, objectsBefore + 50)).toBeGreaterThanOrEqual(objectsBefore + 50) // it was ingesting
    await env.killService('SIGKILL')
    expect(await commitDone).not.toBe(0) // the request died with the service
    expect(byName(env, 'big')?.kind).toBe('active')
    expect(byName(env, 'big-c')).toBeUndefined()

    // restart: containerd and the service agree; the hold names only committed layers
    await env.startService()
    await env.reconnected()
    expect(lsRows(env.ctrOk([...S, 'ls']))).toEqual(['base Committed', 'big base Active'])
    const held = withDb(env.home, (db) => db.holds.get(HOLDER)?.layers)
    expect(held).toEqual([byName(env, 'base')!.layer])

    // the upper is intact and the commit can be redone
    sh(env.ctrOk([...S, 'mounts', mnt, 'big']).trim())
    expect(fs.readdirSync(mnt).length).toBe(41)
    sh(`umount ${mnt}`)
    env.ctrOk([...S, 'commit', 'big-c', 'big'])
    env.ctrOk([...S, 'view', 'v', 'big-c'])
    sh(env.ctrOk([...S, 'mounts', mnt, 'v']).trim())
    for (const [p, sum] of sums) expect(crypto.createHash('sha256').update(fs.readFileSync(path.join(mnt, p))).digest('hex'), p).toBe(sum)
    expect(fs.readFileSync(path.join(mnt, 'base'), 'utf8')).toBe('base\n')
    sh(`umount ${mnt}`)

    // kill -9 when idle: nothing lost either
    const before = lsRows(env.ctrOk([...S, 'ls']))
    expect(before).toEqual(['base Committed', 'big-c base Committed', 'v big-c View'])
    await env.killService('SIGKILL')
    await env.startService()
    await env.reconnected()
    expect(lsRows(env.ctrOk([...S, 'ls']))).toEqual(before)
    expect(withDb(env.home, (db) => db.holds.get(HOLDER)?.layers.length)).toBe(2)
    const top = path.join(env.home, 'snapshotter', 'l', byName(env, 'big-c')!.id)
    expect(env.ctrOk([...S, 'mounts', mnt, 'v'])).toContain(`lowerdir=${top}:`)
    expect(fs.realpathSync(top)).toBe(path.join(env.home, 'farms', byName(env, 'big-c')!.layer!))
  })
})
