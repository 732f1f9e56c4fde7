import {spawnSync} from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {emitEvent} from '../lib/events'
import {VeloError, fromSystemError} from '../lib/errors'
import {StoreLock} from '../lib/lock'
import {validateName} from '../lib/names'
import {nativeBin} from '../lib/native'
import {LayerBuilder, Meta, metaFromStat, TreeNode, whiteoutMeta} from '../manifest/builder'
import type {IdRange} from '../sandbox/state'
import {ImageConfig, ImageRecord, ManifestDb} from '../manifest/db'
import {FLAG_OPAQUE, S_IFCHR, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK} from '../manifest/entry'
import {Store} from '../store/cas'
import {isRoot} from '../lib/home'
import {filterXattrs, newXattrFilter, xattrWarning, XattrFilter, Xattrs} from '../manifest/xattrs'
import {readXattrTree} from '../store/xattr-io'
import {nativeIngestTool, scanNative} from '../store/ingest'

/**
 * An overlayfs upper directory → one velo layer (what `velo sandbox commit` stores on top of the tenant's
 * image layers). The kernel's own representation maps one to one onto velo's (and Docker's overlay2's):
 *  - a character device 0/0 is a whiteout → a WHITEOUT entry;
 *  - a directory with overlay.opaque=y → the OPAQUE flag;
 *  - everything else is content of the layer (copied-up files are whole files: velo mounts without metacopy).
 * Redirected directories (overlay.redirect, a renamed lower dir with redirect_dir=on) and metacopy files cannot
 * be expressed as a layer: they are refused, naming the path. xattrs Node cannot read come from native
 * velo-upper, which walks the tree without following symlinks.
 */

export interface CommitResult {
  image: string
  layer: string
  layers: string[]
  files: number
  whiteouts: number
  opaqueDirs: number
  newObjects: number
  newBytes: number
  layerExisted: boolean
  seconds: number
  warnings: string[]
}


/** Read the overlay xattrs of an upper dir (opaque dirs; refuse redirects and metacopy). */
function overlayMarks(upper: string): Set<string> {
  const r = spawnSync(nativeBin('velo-upper'), [upper], {maxBuffer: 1 << 30})
  if (r.status !== 0) throw new VeloError('UNREADABLE', `cannot read the overlay metadata of ${upper}: ${String(r.stderr).trim() || r.error?.message}`)
  const f = r.stdout.toString('latin1').split('\0')
  const opaque = new Set<string>()
  for (let i = 0; i + 1 < f.length; i += 2) {
    const [kind, p] = [f[i], f[i + 1]]
    const shown = JSON.stringify(Buffer.from(p, 'latin1').toString('utf8'))
    if (kind === 'o') opaque.add(p)
    else if (kind === 'r') throw new VeloError('UNSUPPORTED', `${shown} is a redirected (renamed) lower directory; a layer cannot express that`, {suggestion: 'mount overlays with redirect_dir=off (velo does) so renames copy up'})
    else if (kind === 'm') throw new VeloError('UNSUPPORTED', `${shown} is a metacopy-only file; a layer cannot express that`, {suggestion: 'mount overlays without metacopy (velo does)'})
    else if (kind === 'x') throw new VeloError('UNSUPPORTED', `${shown} carries an xattr whiteout; a layer cannot express that`)
  }
  return opaque
}

/** Build the layer from `upper` into `builder`, writing file content into the store. */
/**
 * Owners as the tenant saw them. A tenant in a user namespace of its own wrote its files under its host range:
 * ids inside the range come back as the tenant's (0..size-1), anything else is what the tenant saw too — the
 * overflow id 65534.
 */
export type IdShift = {uid: IdRange[]; gid: IdRange[]}
function unshift(meta: Meta, shift: IdShift | undefined): Meta {
  if (!shift) return meta
  // a host id back to the id the tenant saw; one outside its map is what the tenant saw of it: the overflow id
  const back = (id: number, map: IdRange[]) => {
    const r = map.find((m) => id >= m.hostID && id < m.hostID + m.size)
    return r ? r.containerID + (id - r.hostID) : 65534
  }
  return {...meta, uid: back(meta.uid, shift.uid), gid: back(meta.gid, shift.gid)}
}

function walkUpper(store: Store, upper: string, opaque: Set<string>, shift?: IdShift): {builder: LayerBuilder; newObjects: number; newBytes: number; xfilter: XattrFilter} {
  let rootSt: fs.BigIntStats
  try {
    rootSt = fs.lstatSync(upper, {bigint: true})
  } catch (err) {
    throw fromSystemError(err, `cannot read ${upper}`)
  }
  if (!rootSt.isDirectory()) throw new VeloError('NOT_A_DIRECTORY', `${upper} is not a directory`)
  const builder = new LayerBuilder(unshift(metaFromStat(rootSt), shift))
  // The tenant's xattrs (copy-up keeps the image's; setfattr in the sandbox adds its own). overlayfs' own
  // (trusted./user.overlay.*: opaque, origin, impure, ...) are its bookkeeping, already interpreted above.
  const treeX = readXattrTree(upper)
  const xfilter = newXattrFilter()
  const root = isRoot()
  const xattrsOf = (rel: string, kind: 'file' | 'dir' | 'symlink' | 'other', where: string): Xattrs | undefined => {
    const x = treeX.get(rel)
    return x ? filterXattrs(x, {where: `commit of ${upper}`, entry: where, kind, root, overlay: 'ignore', filter: xfilter}) : undefined
  }
  builder.root.meta.xattrs = xattrsOf('.', 'dir', upper)
  if (opaque.has('.')) builder.root.meta.flags = FLAG_OPAQUE
  const seen = new Map<string, TreeNode>()
  let newObjects = 0
  let newBytes = 0
  const walk = (dir: Buffer, rel: string, node: TreeNode) => {
    let names: Buffer[]
    try {
      names = (fs.readdirSync(dir, {encoding: 'buffer'}) as Buffer[]).sort(Buffer.compare)
    } catch (err) {
      throw fromSystemError(err, `cannot read ${dir.toString()}`)
    }
    for (const n of names) {
      const p = Buffer.concat([dir, Buffer.from('/'), n])
      const r = rel ? `${rel}/${n.toString('latin1')}` : n.toString('latin1')
      const where = p.toString()
      let st: fs.BigIntStats
      try {
        st = fs.lstatSync(p, {bigint: true})
      } catch (err) {
        throw fromSystemError(err, `cannot stat ${where}`)
      }
      const meta = unshift(metaFromStat(st), shift)
      const t = meta.mode & S_IFMT
      if (treeX.size) meta.xattrs = xattrsOf(r, t === S_IFDIR ? 'dir' : t === S_IFREG ? 'file' : t === S_IFLNK ? 'symlink' : 'other', where)
      if (t === S_IFCHR && st.rdev === 0n) {
        builder.put(node, n, whiteoutMeta(), where)
      } else if (t === S_IFDIR) {
        const child = builder.put(node, n, {...meta, flags: opaque.has(r) ? FLAG_OPAQUE : 0}, where)
        walk(p, r, child)
      } else if (t === S_IFREG) {
        const k = `${st.dev}:${st.ino}`
        if (st.nlink > 1n && seen.has(k)) {
          builder.link(node, n, seen.get(k)!, where)
          continue
        }
        const child = builder.put(node, n, {...meta, size: st.size}, where)
        if (st.nlink > 1n) seen.set(k, child)
        if (st.size > 0n) {
          const o = store.writeFile(p, {mode: meta.mode, uid: meta.uid, gid: meta.gid, size: Number(st.size), xattrs: meta.xattrs})
          child.meta.hash = Buffer.from(o.hash, 'hex')
          child.meta.size = BigInt(o.size)
          if (o.isNew) {
            newObjects++
            newBytes += o.size
          }
        }
      } else if (t === S_IFLNK) {
        let target: Buffer
        try {
          target = fs.readlinkSync(p, {encoding: 'buffer'}) as Buffer
        } catch (err) {
          throw fromSystemError(err, `cannot read link ${where}`)
        }
        builder.put(node, n, {...meta, target, size: BigInt(target.length)}, where)
      } else if (t === S_IFSOCK) {
        // a socket is not content (tar and Docker skip it too)
      } else {
        builder.put(node, n, {...meta, rdev: st.rdev}, where)
      }
    }
  }
  walk(Buffer.from(upper), '', builder.root)
  return {builder, newObjects, newBytes, xfilter}
}

/**
 * The upper dir's layer, its objects stored and durable: through the native pass of `velo ingest` (one C process
 * walks, hashes and stores, then one syncfs; native/ingest) when the ids are taken as they are, else (a tenant in a
 * user namespace of its own: ids shifted back, or no native tool, or VELO_NO_NATIVE_INGEST) the Node walk above.
 * Both give the same layer (test/image/commit-native.test.ts).
 */
function scanUpper(store: Store, upper: string, opaque: Set<string>, shift?: IdShift, adopt?: boolean): {builder: LayerBuilder; newObjects: number; newBytes: number; xfilter: XattrFilter} {
  const tool = shift || process.env.VELO_NO_NATIVE_INGEST ? undefined : nativeIngestTool()
  if (!tool) {
    const r = walkUpper(store, upper, opaque, shift)
    store.sync()
    return r
  }
  const xfilter = newXattrFilter()
  const pre = {newObjects: 0, newBytes: 0, files: 0, bytes: 0}
  const [t] = scanNative(tool, store, [upper], xfilter, pre, {opaque, adopt})
  // what the native pass leaves to Node: files with extended attributes (the policy is TypeScript's), sparse files
  for (const j of t.jobs) {
    const o = store.writeFile(j.path, {mode: j.node.meta.mode, uid: j.node.meta.uid, gid: j.node.meta.gid, size: j.size, xattrs: j.node.meta.xattrs})
    j.node.meta.hash = Buffer.from(o.hash, 'hex')
    j.node.meta.size = BigInt(o.size)
    if (o.isNew) {
      pre.newObjects++
      pre.newBytes += o.size
    }
  }
  // the native pass ended with a syncfs of its own: another only for what was stored here after it
  if (t.jobs.length) store.sync()
  return {builder: t.builder, newObjects: pre.newObjects, newBytes: pre.newBytes, xfilter}
}

export interface UpperLayerResult {
  layer: string
  files: number
  whiteouts: number
  opaqueDirs: number
  newObjects: number
  newBytes: number
  layerExisted: boolean
  warnings: string[]
}

/**
 * Store `upper` as a layer (objects, one syncfs, then the layer in one LMDB transaction, in which `inTxn` may
 * record what keeps it: an image, a hold). Under the store's shared lock, so gc cannot run in between. The
 * caller makes sure nothing writes to `upper` meanwhile. A layer the store already has is not stored again.
 */
export function storeUpperLayer(
  home: string,
  opts: {
    upperDir: string
    source: string
    shift?: IdShift
    baseLayers?: string[]
    inTxn?: (db: ManifestDb, layer: string) => void
    onLocked?: () => void
    /** the upper's files may become the store's objects (hard links, not copies): it is deleted after, and nothing
     * can write it meanwhile (velo-ingest --adopt; the Node walk copies) */
    adopt?: boolean
  },
): UpperLayerResult {
  const store = new Store(home).init('commit')
  const lock = new StoreLock(path.join(home, 'lock')).acquire('shared')
  const db = ManifestDb.open(home)
  try {
    opts.onLocked?.() // e.g. the tenant paused only now, not while a gc held the store
    for (const l of opts.baseLayers ?? []) if (!db.hasLayer(l)) throw new VeloError('NOT_FOUND', `base layer ${l} is not in the store`, {suggestion: 'run `velo fsck`'})
    const opaque = overlayMarks(opts.upperDir)
    const {builder, newObjects, newBytes, xfilter} = scanUpper(store, opts.upperDir, opaque, opts.shift, opts.adopt)
    const {info, entries} = builder.finish(opts.source)
    let layerExisted = false
    db.writeSync(() => {
      layerExisted = db.putLayerInTxn(info, entries)
      opts.inTxn?.(db, info.id)
    })
    return {
      layer: info.id,
      files: info.files,
      whiteouts: info.whiteouts,
      opaqueDirs: opaque.size,
      newObjects,
      newBytes,
      layerExisted,
      warnings: xfilter.droppedCount ? [xattrWarning([xfilter])] : [],
    }
  } finally {
    db.close()
    lock.release()
  }
}

/**
 * Store `upper` as a new layer and record image `name` = `baseLayers` + that layer, in one transaction after
 * one syncfs. The caller makes sure nothing writes to `upper` meanwhile (a stopped or frozen tenant).
 */
export function commitUpper(home: string, opts: {name: string; baseLayers: string[]; upperDir: string; config?: ImageConfig; source: string; shift?: IdShift; onLocked?: () => void}): CommitResult {
  const t0 = process.hrtime.bigint()
  validateName('image', opts.name)
  let layers: string[] = []
  const r = storeUpperLayer(home, {
    upperDir: opts.upperDir,
    source: opts.source,
    shift: opts.shift,
    baseLayers: opts.baseLayers,
    onLocked: opts.onLocked,
    inTxn: (db, layer) => {
      layers = [...opts.baseLayers, layer]
      const rec: ImageRecord = {name: opts.name, layers, createdAt: new Date().toISOString(), source: opts.source}
      if (opts.config && Object.keys(opts.config).length) rec.config = opts.config
      // putImageSync refuses an image naming a layer that is gone (a gc between the tenant's hold and now)
      db.putImageSync(rec)
    },
  })
  return {...r, image: opts.name, layers, seconds: Number(process.hrtime.bigint() - t0) / 1e9}
}


/**
 * `velo sandbox commit TENANT NAME`: image NAME = the tenant's image layers + its upper dir as one more layer.
 * The tenant must be stopped (its upper dir must not change while it is read; `velo sandbox stop` keeps the
 * files). The new image keeps the tenant image's config (Env, Cmd, WorkingDir, User, ...).
 */
/**
 * `velo sandbox commit NAME IMAGE`. A running sandbox is paused while its upper dir is read (as `docker commit`
 * pauses the container: the layer is one instant of its writes), then thawed; `pause: false` refuses a running
 * one instead, since its upper dir could change while it is read. One the user paused stays paused (src/sandbox/pause.ts).
 */
export async function commitSandbox(home: string, tenant: string, name: string, o: {pause?: boolean} = {}): Promise<CommitResult & {sandbox: string; paused: boolean}> {
  const {readState, isRunning} = await import('../sandbox/state')
  const s = readState(home, tenant)
  if (!isRunning(s)) return {...(await commitStopped(home, tenant, name, s)), paused: false}
  if (o.pause === false)
    throw new VeloError('STATE', `sandbox ${tenant} is running; its upper dir could change while it is read`, {suggestion: `commit it paused (the default), or stop it first: velo sandbox stop ${tenant}`})
  const {pauseFor, selfHolder} = await import('../sandbox/pause')
  let guard: ReturnType<typeof pauseFor> | undefined
  try {
    // paused once the store lock is held (not while a gc holds it); thawed however the commit ends, a signal included
    return {...(await commitStopped(home, tenant, name, s, () => (guard = pauseFor(home, [tenant], selfHolder('commit'))))), paused: true}
  } finally {
    const failed = guard?.release() ?? []
    if (failed.length) throw new VeloError('STATE', `sandbox ${tenant} paused for the commit could not be thawed: ${failed.join('; ')}`, {suggestion: `unpause it: velo sandbox unpause ${tenant}`})
  }
}

async function commitStopped(home: string, tenant: string, name: string, s: import('../sandbox/state').TenantState, onLocked?: () => void): Promise<CommitResult & {sandbox: string}> {
  const {tenantDir, tenantIdRanges} = await import('../sandbox/state')
  let config: ImageConfig | undefined
  const db = ManifestDb.open(home)
  try {
    config = db.getImage(s.image)?.config
  } finally {
    db.close()
  }
  // a tenant in its own user namespace: its ranges as its bundle says
  const shift = s.userns ? tenantIdRanges(home, tenant) : undefined
  const r = commitUpper(home, {name, baseLayers: s.layers, upperDir: path.join(tenantDir(home, tenant), 'upper'), config, source: `sandbox:${tenant}`, shift, onLocked})
  emitEvent(home, 'image', 'commit', name, {sandbox: tenant, layer: r.layer})
  return {...r, sandbox: tenant}
}
