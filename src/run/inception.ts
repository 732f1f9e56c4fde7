import * as fs from 'node:fs'
import * as path from 'node:path'
import {VeloError, fromSystemError} from '../lib/errors'
import {writeFileAtomic} from '../lib/fsutil'
import {StoreLock} from '../lib/lock'
import {isReadOnlyStore} from '../lib/store-access'
import {ManifestDb} from '../manifest/db'
import {dropUserHold} from '../store/holds'
import {wakeSkeleton} from './native'
import {Mode, prepareProjection, projectionEnv, Projection} from './projection'
import {HOOK_VARS} from './hook'

/** `.velo/state.json` of a project directory in inception mode. */
export interface InceptionState {
  version: 1
  image: string
  layers: string[]
  root: string
  mode: Mode
  skel: string
  home: string
  createdAt: string
}

export const STATE_DIR = '.velo'

/** The nearest project directory (cwd or an ancestor) in inception mode. */
export function findInception(from = process.cwd()): {dir: string; state: InceptionState} | undefined {
  let d = path.resolve(from)
  for (;;) {
    const f = path.join(d, STATE_DIR, 'state.json')
    try {
      return {dir: d, state: JSON.parse(fs.readFileSync(f, 'utf8'))}
    } catch {}
    const up = path.dirname(d)
    if (up === d) return undefined
    d = up
  }
}

function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`
}

/**
 * `velo inception`: project IMAGE for this directory persistently. State in .velo/ (state.json, and env: the
 * variables `velo hook` exports so that plain `node`, `npm`, `python3` here run projected). The projection is
 * built now, so later commands start in O(1).
 */
export function incept(home: string, dir: string, opts: {image: string; at?: string; mode: Mode}): {state: InceptionState; projection: Projection} {
  let project: string
  try {
    project = fs.realpathSync(dir)
  } catch (err) {
    throw fromSystemError(err, `cannot use ${dir} as a project directory`)
  }
  const existing = findInception(project)
  if (existing && existing.dir === project)
    throw new VeloError('ALREADY_EXISTS', `${project} is already in inception mode (image ${existing.state.image})`, {
      suggestion: 'run `velo wake` first to leave it',
    })
  const projection = prepareProjection(home, opts.image, {at: opts.at ?? undefined, mode: opts.mode})
  const state: InceptionState = {
    version: 1,
    image: opts.image,
    layers: projection.layers,
    root: projection.root,
    mode: opts.mode,
    skel: projection.skel,
    home,
    createdAt: new Date().toISOString(),
  }
  const sd = path.join(project, STATE_DIR)
  try {
    fs.mkdirSync(sd, {recursive: true, mode: 0o700})
    const env = projectionEnv(home, projection, {})
    const lines = HOOK_VARS.filter((k) => k !== 'LD_PRELOAD' && env[k] !== undefined).map((k) => `export ${k}=${shq(env[k]!)}`)
    // LD_PRELOAD is prepended to whatever the shell already has
    lines.unshift(`export LD_PRELOAD=${shq(env.LD_PRELOAD!)}\${LD_PRELOAD:+:\$LD_PRELOAD}`)
    writeFileAtomic(path.join(sd, 'env'), lines.join('\n') + '\n', 0o644)
    writeFileAtomic(path.join(sd, 'state.json'), JSON.stringify(state, null, 2) + '\n', 0o644)
  } catch (err) {
    throw fromSystemError(err, `cannot write ${sd}`)
  }
  return {state, projection}
}

/**
 * `velo wake`: leave inception mode with every file real. Solid: placeholders are replaced by copies of
 * their objects in place. Phantom: the private skeleton (with the program's own writes) is moved to the
 * projection root first, then woken. The .velo state and the gc hold go last.
 */
export function wake(dir: string): {root: string; materialized: number; mode: Mode} {
  const found = findInception(dir)
  if (!found) throw new VeloError('NOT_FOUND', `${path.resolve(dir)} is not in inception mode`, {suggestion: 'start it with `velo inception --image NAME`'})
  const {state} = found
  if (state.mode === 'phantom') {
    if (fs.existsSync(state.root))
      throw new VeloError('ALREADY_EXISTS', `cannot wake: ${state.root} exists`, {suggestion: 'move it away, then run `velo wake` again'})
    try {
      fs.renameSync(state.skel, state.root)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw fromSystemError(err, `cannot move ${state.skel} to ${state.root}`)
      throw new VeloError('CROSS_DEVICE', `the phantom skeleton ${state.skel} is on another filesystem than ${state.root}`, {
        suggestion: 'set VELO_CACHE_HOME to a directory on the project filesystem before `velo inception --phantom`',
      })
    }
  }
  const r = wakeSkeleton(state.home, state.root)
  const holder = `projection:${state.skel}`
  if (isReadOnlyStore(state.home)) {
    dropUserHold(state.home, holder) // a store this user may only read: the hold is this user's file in holds/
  } else {
    const lock = new StoreLock(path.join(state.home, 'lock')).acquire('shared')
    const db = ManifestDb.open(state.home)
    try {
      db.deleteHoldSync(holder)
    } finally {
      db.close()
      lock.release()
    }
  }
  fs.rmSync(path.join(found.dir, STATE_DIR), {recursive: true, force: true})
  return {root: state.root, materialized: r.materialized, mode: state.mode}
}
