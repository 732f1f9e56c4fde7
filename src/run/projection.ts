import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import {fromSystemError, VeloError} from '../lib/errors'
import {StoreLock} from '../lib/lock'
import {isReadOnlyStore} from '../lib/store-access'
import {HoldRecord, ManifestDb} from '../manifest/db'
import {getUserHold, putUserHold} from '../store/holds'
import {buildSkeleton, BuildResult, shimPath} from './native'
import {holdThawed, mayHoldCold} from '../store/cold'

export type Mode = 'solid' | 'phantom'

export interface Projection {
  image: string
  layers: string[] // top first (the C view's order)
  root: string // where the program sees the image
  mode: Mode
  skel: string // the directory that holds the skeleton: root itself (solid) or a private one in the cache (phantom)
  build: BuildResult
}

/** Default projection root: the image's source directory name under the cwd (`node_modules` → ./node_modules). */
export function defaultRoot(source: string, cwd = process.cwd()): string {
  const base = path.basename(source.replace(/\/+$/, '')) || 'image'
  return path.join(cwd, base)
}

/** Phantom skeletons live in the user's cache: $VELO_CACHE_HOME, $XDG_CACHE_HOME/velo, ~/.cache/velo, else <store>/cache. */
export function cacheDir(home: string): string {
  if (process.env.VELO_CACHE_HOME) return path.resolve(process.env.VELO_CACHE_HOME)
  const candidates = [process.env.XDG_CACHE_HOME && path.join(process.env.XDG_CACHE_HOME, 'velo'), path.join(os.homedir(), '.cache', 'velo')]
  for (const c of candidates) {
    if (!c) continue
    try {
      fs.mkdirSync(c, {recursive: true, mode: 0o700})
      fs.accessSync(c, fs.constants.W_OK)
      return c
    } catch {}
  }
  return path.join(home, 'cache')
}

export function phantomSkel(home: string, root: string, layers: string[]): string {
  const id = crypto.createHash('sha256').update(root).update('\0').update(layers.join(',')).digest('hex').slice(0, 24)
  return path.join(cacheDir(home), 'phantom', id)
}

/** Resolve the projection root: it must sit in an existing directory; symlinks in its parents are resolved. */
function resolveRoot(at: string): string {
  const abs = path.resolve(at)
  const parent = path.dirname(abs)
  let real: string
  try {
    real = fs.realpathSync(parent)
  } catch (err) {
    throw fromSystemError(err, `cannot project at ${abs}: its parent directory`)
  }
  return path.join(real, path.basename(abs))
}

/**
 * Make sure the projection of IMAGE exists on disk (built once, then reused: a second run is one getxattr in
 * velo-project) and that gc keeps its layers (hold "projection:<skeleton dir>"): in LMDB when this user may
 * write the store, else in a hold file of this user's in the store's holds/ (src/store/holds.ts).
 */
export function prepareProjection(home: string, image: string, opts: {at?: string; mode?: Mode}): Projection {
  // A reader of a store it may not write reads LMDB unregistered, under the database's shared flock, which must
  // never be held while waiting for the store lock (gc holds that and waits for the database): store lock first.
  const readOnly = isReadOnlyStore(home)
  const lock = readOnly ? new StoreLock(path.join(home, 'lock')).acquire('shared') : undefined
  let db: ManifestDb | undefined
  let p: Omit<Projection, 'build'>
  try {
    db = ManifestDb.open(home)
    const img = db.requireImage(image)
    const layers = [...img.layers].reverse()
    const root = resolveRoot(opts.at ?? defaultRoot(img.source))
    const mode = opts.mode ?? 'solid'
    let skel = root
    if (mode === 'phantom') {
      skel = phantomSkel(home, root, layers)
      try {
        fs.mkdirSync(path.dirname(skel), {recursive: true, mode: 0o700})
      } catch (err) {
        const e = fromSystemError(err, `cannot create the phantom cache ${path.dirname(skel)}`)
        if (e.code !== 'PERMISSION_DENIED') throw e
        throw new VeloError('PERMISSION_DENIED', e.message, {cause: err, suggestion: 'set VELO_CACHE_HOME (or XDG_CACHE_HOME, or HOME) to a directory of your own'})
      }
    }
    // gc root first (so a gc between build and registration cannot sweep what the skeleton names); a
    // read when it exists already, so the usual run writes nothing
    const holder = `projection:${skel}`
    const same = (h: HoldRecord | undefined) => !!h && h.layers.join() === img.layers.join()
    if (db.readOnly) {
      if (!same(getUserHold(home, holder))) putUserHold(home, holder, img.layers)
    } else if (!same(db.holds.get(holder))) {
      const l = new StoreLock(path.join(home, 'lock')).acquire('shared')
      try {
        db.putHoldSync({holder, layers: img.layers, createdAt: new Date().toISOString()})
      } finally {
        l.release()
      }
    }
    // what is cold made plain (the shim opens plain objects only): held layers never go cold again, but a thaw that
    // failed after the hold was written (a damaged .zst, a full disk) is tried again here, with its error
    if (mayHoldCold(home)) holdThawed(home, db, img.layers)()
    p = {image, layers, root, mode, skel}
  } finally {
    db?.close()
    lock?.release()
  }
  // velo-project takes the store's shared lock itself, and only when it has to build
  const build = buildSkeleton(home, p.skel, p.layers)
  return {...p, build}
}

/** The environment a projected process tree runs with. */
export function projectionEnv(home: string, p: Pick<Projection, 'root' | 'mode' | 'skel' | 'image'>, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const shim = shimPath()
  const pre = (base.LD_PRELOAD ?? '').split(/[: ]/).filter((x) => x && x !== shim)
  const env: NodeJS.ProcessEnv = {
    ...base,
    LD_PRELOAD: [shim, ...pre].join(':'),
    VELO_SHIM_CAS: path.join(home, 'cas', 'blake3'),
    VELO_SHIM_IMAGE: p.image,
    // libuv's io_uring would read files past the shim; the shim also refuses io_uring_setup, this is belt and braces
    UV_USE_IO_URING: base.UV_USE_IO_URING ?? '0',
  }
  delete env.VELO_SHIM_PHANTOM_ROOT
  delete env.VELO_SHIM_PHANTOM_SKEL
  if (p.mode === 'phantom') {
    env.VELO_SHIM_PHANTOM_ROOT = p.root
    env.VELO_SHIM_PHANTOM_SKEL = p.skel
  }
  return env
}

