import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import {spawn, spawnSync} from 'node:child_process'
import {VeloError, fromSystemError} from '../lib/errors'
import {optionalNativeBin} from '../lib/native'
import {StoreLock} from '../lib/lock'
import {ManifestDb, LayerInfo, ImageRecord} from '../manifest/db'
import {FLAG_OPAQUE, LayerBuilder, Meta, metaFromStat, newMeta, TreeNode, whiteoutMeta} from '../manifest/builder'
import {S_IFCHR, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK} from '../manifest/entry'
import {NATIVE_HASH_MIN, Store} from './cas'
import type {WorkerResult} from './ingest-worker'
import {probePlaceholders} from '../run/native'
import {isRoot} from '../lib/home'
import {encodeXattrs, filterXattrs, newXattrFilter, xattrWarning, Xattrs} from '../manifest/xattrs'
import {readXattrTree} from './xattr-io'

export interface Progress {
  start(totalFiles: number, totalBytes: number): void
  update(files: number, bytes: number): void
  stop(): void
}

export interface IngestResult {
  image: string
  layer: string
  files: number
  dirs: number
  symlinks: number
  others: number
  skippedSockets: number
  logicalBytes: number
  newObjects: number
  newBytes: number
  dedupRatio: number
  seconds: number
  layerExisted: boolean
  warnings: string[]
  /** the image's layers: a volume snapshot stored as a delta (IndexOptions.held) is its base's and its own */
  layers: string[]
}


/** Paths are Buffers throughout: names may be any bytes but '/' and NUL, not just UTF-8. */
const join = (dir: Buffer, name: Buffer) => Buffer.concat([dir, Buffer.from('/'), name])

/**
 * `velo ingest DIR`: walk (sorted, lstat only), then store every regular file (hash → temp → link, dedup
 * on hit), then one syncfs, then one LMDB transaction with the layer and the image. A crash anywhere before
 * the commit leaves only objects (valid under their names) and temp files, never a manifest naming an
 * object that is not durable.
 */
/** Owners recorded instead of those on disk: a tree built without root (rootless velo's default image) cannot
 * chown, so its builder says what the owners are. `caller`: files owned by the caller become root's; `paths`:
 * owners by path relative to the tree (applied after `caller`). */
export interface OwnerOverrides {
  caller?: boolean
  paths?: Map<string, {uid: number; gid: number}>
}

/** A volume's fingerprint index (native/ingest/fpindex.h) for the native pass: read from `in`, written to `out`.
 * `held`, asked under the store lock: the layers (bottom first) of an image that holds exactly the stack `in`
 * describes, if one does — the objects of the index's hits are then in the store and are not looked up — and whether
 * this pass may be a delta over them (velo-ingest --delta: changed entries and whiteouts only; the image is then those
 * layers and the delta, none when nothing changed). */
export interface IndexOptions {
  in?: string
  out: string
  held?: (db: ManifestDb) => {layers: string[]; delta: boolean} | undefined
}

/** index: files unchanged since the index was written are not read again; ignored on the Node path (it hashes
 * everything, and writes no index). */
export async function ingestDirectory(home: string, dir: string, name: string, progress?: Progress, owners?: OwnerOverrides, opts: IngestTreesOptions = {}): Promise<IngestResult> {
  const r = await ingestTrees(home, [dir], (layers) => ({name, layers: layers.map((l) => l.id), createdAt: new Date().toISOString(), source: layers[0].source}), progress, owners, opts)
  const t = r.trees[0]
  const info = t.info
  return {
    image: name,
    // a delta pass: the image's top layer (its base's when nothing changed), the whole tree's counts (its record's)
    layer: r.image.layers[r.image.layers.length - 1],
    layers: r.image.layers,
    files: r.image.files ?? info.files,
    dirs: info.dirs,
    symlinks: info.symlinks,
    others: info.others,
    skippedSockets: r.skippedSockets,
    logicalBytes: r.image.logicalBytes ?? info.logicalBytes,
    newObjects: r.newObjects,
    newBytes: r.newBytes,
    dedupRatio: r.newBytes === 0 ? (info.logicalBytes === 0 ? 1 : Infinity) : (r.image.logicalBytes ?? info.logicalBytes) / r.newBytes,
    seconds: r.seconds,
    layerExisted: t.layerExisted,
    warnings: r.warnings,
  }
}

export interface IngestTreesOptions {
  index?: IndexOptions
  /** a step that must wait for the store lock */
  onLocked?: () => void
  /** entries of each tree's root left out of its layer, with all below them (a volume's `.vault`) */
  omitRootNames?: string[]
}

export interface TreesResult {
  /** one per directory, in the order given: its layer (one layer per directory) */
  trees: Array<{src: string; info: LayerInfo; layerExisted: boolean}>
  image: ImageRecord
  skippedSockets: number
  newObjects: number
  newBytes: number
  seconds: number
  warnings: string[]
}

export interface Scanned {
  src: string
  builder: LayerBuilder
  jobs: Job[]
  totalBytes: number
  skippedSockets: number
  /** a delta pass: the directories it found unchanged ('u'), and its summary of the whole tree ('S') */
  unchanged?: Set<TreeNode>
  summary?: {files: number; logicalBytes: number}
}

function checkDir(dir: string): {src: string; rootSt: fs.BigIntStats} {
  const src = path.resolve(dir)
  let rootSt: fs.BigIntStats
  try {
    rootSt = fs.statSync(src, {bigint: true})
  } catch (err) {
    throw fromSystemError(err, `cannot ingest ${dir}`)
  }
  if (!rootSt.isDirectory()) throw new VeloError('NOT_A_DIRECTORY', `cannot ingest ${dir}: not a directory`, {suggestion: 'give a directory; import tarballs with `velo image import`'})
  return {src, rootSt}
}

/** velo-ingest, or undefined when not built (no BLAKE3 C sources at install): the Node path */
export const nativeIngestTool = (): string | undefined => optionalNativeBin('velo-ingest')

const NUL = 0
const FIELDS = 13

/**
 * Phases 1 and 2 in one native process (native/ingest/velo-ingest.c): it walks every tree (sorted, no symlink
 * followed) and stores every regular file's object, and prints one record per entry; this builds the layers from
 * the records. Files it leaves alone (extended attributes: the policy is here; sparse placeholders) come back as
 * jobs for the Node path. Under the store's shared lock (it writes objects).
 */
/**
 * upper: the trees are overlayfs upper dirs being committed (src/image/commit.ts): a char device 0/0 is a whiteout,
 * the dirs overlay marked opaque carry FLAG_OPAQUE, and overlayfs' own xattrs are its bookkeeping (ignored, not
 * refused as in an ingest). Ids are taken as they are on disk (a commit that shifts ids uses the Node walk).
 */
type Pre = {newObjects: number; newBytes: number; files: number; bytes: number}

type NativeIndex = {in?: string; out: string; trust: boolean; delta?: boolean}
const nativeArgs = (store: Store, srcs: string[], index?: NativeIndex, adopt?: boolean, b3 = optionalNativeBin('velo-b3')) => [
  ...(adopt ? ['--adopt'] : []),
  // large files: velo-ingest asks velo-b3 for the hash that decides whether the object is new (all cores, mapped)
  ...(b3 ? ['--b3', b3, String(NATIVE_HASH_MIN)] : []),
  ...(index ? [...(index.in ? ['--index', index.in] : []), ...(index.trust ? ['--trust-index'] : []), ...(index.delta ? ['--delta'] : []), '--index-out', index.out] : []),
  store.casDir,
  store.tmpDir,
  isRoot() ? 'ROOT' : 'NOROOT',
  ...srcs,
]

/** "velo-ingest: PATH: what: strerror" → the error a Node call failing the same way gives (code, suggestion) */
function nativeFailure(stderr: string, status: number | null, signal: NodeJS.Signals | null): VeloError {
  const msg = stderr.trim() || `velo-ingest ${signal ? `killed by ${signal}` : `exited ${status}`}`
  const errno = [['ENOSPC', /No space left/], ['EDQUOT', /Disk quota/], ['EACCES', /Permission denied/], ['EPERM', /Operation not permitted/], ['ENOENT', /No such file/], ['ENOTDIR', /Not a directory/], ['EROFS', /Read-only file system/], ['EIO', /Input\/output error/]].find(([, re]) => (re as RegExp).test(msg))
  const what = `ingest: ${msg.replace(/^velo-ingest: /, '').replace(/: [^:]*$/, '')}`
  if (errno) return fromSystemError(Object.assign(new Error(msg), {code: errno[0] as string}), what)
  return new VeloError('NATIVE', `ingest: ${msg.replace(/^velo-ingest: /, '')}`)
}

/** upper: an overlay upper dir (opaque dirs, whiteouts); adopt: its files are taken into the store by hard link, not
 * copied (velo-ingest --adopt: the caller deletes the tree after and vouches that nothing writes it meanwhile) */
export function scanNative(tool: string, store: Store, srcs: string[], xfilter: ReturnType<typeof newXattrFilter>, pre: Pre, upper?: {opaque: Set<string>; adopt?: boolean}, index?: NativeIndex): Scanned[] {
  const r = spawnSync(tool, nativeArgs(store, srcs, index, upper?.adopt), {stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 2 ** 31})
  if (r.error) throw new VeloError('NATIVE', `cannot run velo-ingest: ${r.error.message}`)
  if (r.status !== 0) throw nativeFailure(String(r.stderr), r.status, r.signal)
  if (r.stderr.length) process.stderr.write(r.stderr) // its notes (a damaged volume index, read past)
  const p = nativeParser(srcs, xfilter, pre, upper)
  if (p.feed(r.stdout) !== r.stdout.length) throw new VeloError('NATIVE', 'velo-ingest: truncated output')
  return p.finish()
}

/**
 * The same pass, its records parsed while it runs (a second core): a large tree's parse costs nothing beside the
 * walk instead of coming after it (a 72,000-entry volume snapshot: ~400 ms less). undefined: --delta was asked over
 * an index that does not list every entry, and nothing was done.
 */
export async function scanNativeStreaming(tool: string, store: Store, srcs: string[], xfilter: ReturnType<typeof newXattrFilter>, pre: Pre, index?: NativeIndex): Promise<Scanned[] | undefined> {
  const child = spawn(tool, nativeArgs(store, srcs, index), {stdio: ['ignore', 'pipe', 'pipe']})
  const err: Buffer[] = []
  child.stderr.on('data', (c: Buffer) => err.push(c))
  const done = new Promise<{status: number | null; signal: NodeJS.Signals | null}>((resolve, reject) => {
    child.on('error', (e) => reject(new VeloError('NATIVE', `cannot run velo-ingest: ${e.message}`)))
    child.on('close', (status, signal) => resolve({status, signal}))
  })
  const p = nativeParser(srcs, xfilter, pre)
  let rest: Buffer | undefined
  let parseError: unknown
  try {
    for await (const chunk of child.stdout as AsyncIterable<Buffer>) {
      const buf = rest ? Buffer.concat([rest, chunk]) : chunk
      const used = p.feed(buf)
      rest = used < buf.length ? buf.subarray(used) : undefined
    }
  } catch (e) {
    parseError = e
    child.kill('SIGKILL')
  }
  const {status, signal} = await done
  if (parseError) throw parseError
  // --delta over an index that does not list every entry: nothing done, the caller runs the full pass
  if (status === 3 && index?.delta) return undefined
  if (status !== 0) throw nativeFailure(Buffer.concat(err).toString(), status, signal)
  if (err.length) process.stderr.write(Buffer.concat(err))
  if (rest) throw new VeloError('NATIVE', 'velo-ingest: truncated output')
  return p.finish()
}

/** The records' parser: feed(buf) takes every whole record in buf and returns the bytes it used. */
function nativeParser(srcs: string[], xfilter: ReturnType<typeof newXattrFilter>, pre: Pre, upper?: {opaque: Set<string>}): {feed: (out: Buffer) => number; finish: () => Scanned[]} {
  const trees: Scanned[] = srcs.map((src) => ({src, builder: undefined as never, jobs: [], totalBytes: 0, skippedSockets: 0}))
  const dirsOf = srcs.map(() => new Map<string, TreeNode>())
  const treeX: Array<Map<string, Xattrs> | undefined> = srcs.map(() => undefined)
  const seen = new Map<string, TreeNode>()
  const root = isRoot()
  // Fields located by offset, numbers read from their digits: one Buffer view or string per record only where one
  // is kept (a 72,000-entry volume made ~900,000 short-lived views otherwise, a third of a snapshot's Node time).
  const at = new Int32Array(FIELDS + 1)
  let out: Buffer = Buffer.alloc(0)
  const num = (i: number): number => {
    let v = 0
    let p = at[i]
    const neg = out[p] === 0x2d
    if (neg) p++
    for (const e = at[i + 1] - 1; p < e; p++) v = v * 10 + (out[p] - 0x30)
    return neg ? -v : v
  }
  const big = (i: number): bigint => (at[i + 1] - at[i] > 16 ? BigInt(out.toString('latin1', at[i], at[i + 1] - 1)) : BigInt(num(i)))
  const str = (i: number): string => out.toString('latin1', at[i], at[i + 1] - 1)
  const srcBufs = srcs.map((s) => Buffer.from(s))
  // hashes decoded from their 64 hex digits into slabs of 32-byte views (one allocation per 2,048 files)
  let slab = Buffer.alloc(0)
  let slabAt = 0
  const nib = (c: number) => (c <= 0x39 ? c - 0x30 : c - 0x57)
  const hash32 = (p: number): Buffer => {
    if (slabAt === slab.length) {
      slab = Buffer.allocUnsafe(32 * 2048)
      slabAt = 0
    }
    const h = slab.subarray(slabAt, slabAt + 32)
    slabAt += 32
    for (let i = 0; i < 32; i++) h[i] = (nib(out[p + 2 * i]) << 4) | nib(out[p + 2 * i + 1])
    return h
  }
  const feed = (buf: Buffer): number => {
    out = buf
    const len = out.length
    let pos = 0
    records: while (pos < out.length) {
      at[0] = pos
      // a byte loop: Buffer.indexOf is a native call, 13 per record
      for (let i = 0; i < FIELDS; i++) {
        let end = at[i]
        while (end < len && out[end] !== NUL) end++
        if (end >= len) break records // the rest of this record comes with the next chunk
        at[i + 1] = end + 1
      }
      pos = at[FIELDS]
      const t = num(0)
      const flag = String.fromCharCode(out[at[12]])
      const tree = trees[t]
      if (flag === 'S') {
        // a delta pass's last record: the whole tree's regular files (size: their bytes; rdev: their number)
        tree.summary = {files: num(8), logicalBytes: num(5)}
        continue
      }
      const relB = out.subarray(at[1], at[2] - 1)
      const rel = str(1)
      const mode = num(2)
      const meta = newMeta(mode, num(3), num(4), big(6), num(7))
      const type = mode & S_IFMT
      // the path for messages (a rope: built only if read); the Buffer path only for the Node path's jobs
      const where = rel === '.' ? tree.src : tree.src + '/' + rel
      if (flag === 'x' || flag === 'X' || flag === 'U') {
        treeX[t] ??= readXattrTree(tree.src)
        const x = treeX[t]!.get(rel)
        if (x)
          meta.xattrs = filterXattrs(x, {
            where: `${upper ? 'commit' : 'ingest'} of ${tree.src}`,
            entry: Buffer.from(where, 'latin1').toString(),
            kind: type === S_IFDIR ? 'dir' : type === S_IFREG ? 'file' : type === S_IFLNK ? 'symlink' : 'other',
            root,
            filter: xfilter,
            ...(upper ? {overlay: 'ignore' as const} : {}),
          })
      }
      if (rel === '.') {
        tree.builder = new LayerBuilder(meta)
        if (upper?.opaque.has('.')) tree.builder.root.meta.flags = FLAG_OPAQUE
        if (flag === 'u' || flag === 'U') (tree.unchanged ??= new Set()).add(tree.builder.root)
        dirsOf[t].set('', tree.builder.root)
        continue
      }
      const slash = rel.lastIndexOf('/')
      const parent = dirsOf[t].get(slash < 0 ? '' : rel.slice(0, slash))
      if (!parent) throw new VeloError('NATIVE', `velo-ingest: ${where} before its directory`)
      const n = slash < 0 ? relB : relB.subarray(slash + 1)
      const nKey = slash < 0 ? rel : rel.slice(slash + 1)
      if (flag === 'w') {
        // a delta's whiteout: an entry of the base gone from the tree
        tree.builder.put(parent, n, whiteoutMeta(), where)
      } else if (type === S_IFDIR) {
        if (upper?.opaque.has(rel)) meta.flags = FLAG_OPAQUE
        const node = tree.builder.put(parent, n, meta, where, nKey)
        if (flag === 'u' || flag === 'U') (tree.unchanged ??= new Set()).add(node)
        dirsOf[t].set(rel, node)
      } else if (upper && type === S_IFCHR && at[9] - at[8] === 2 && out[at[8]] === 0x30) {
        tree.builder.put(parent, n, whiteoutMeta(), where)
      } else if (type === S_IFREG) {
        const hl = at[10] - at[9] > 1 ? str(9) : ''
        const first = hl ? seen.get(hl) : undefined
        if (first) {
          tree.builder.link(parent, n, first, where)
          continue
        }
        const size = big(5)
        meta.size = size
        const node = tree.builder.put(parent, n, meta, where, nKey)
        if (hl) seen.set(hl, node)
        if (flag === 'n' || flag === 'd') {
          node.meta.hash = hash32(at[11])
          pre.files++
          pre.bytes += Number(size)
          if (flag === 'n') {
            pre.newObjects++
            pre.newBytes += Number(size)
          }
        } else if (size > 0n) {
          // 's': sparse; 'X': sparse with xattrs (a `velo run` placeholder is both): read through its object
          tree.jobs.push({path: join(srcBufs[t], relB), node, size: Number(size), sparse: flag === 's' || flag === 'X'})
          tree.totalBytes += Number(size)
        }
      } else if (type === S_IFLNK) {
        const target = Buffer.from(str(10), 'hex')
        meta.target = target
        meta.size = BigInt(target.length)
        tree.builder.put(parent, n, meta, where)
      } else if (type === S_IFSOCK) {
        tree.skippedSockets++
      } else {
        meta.rdev = big(8)
        tree.builder.put(parent, n, meta, where)
      }
    }
    return pos
  }
  const finish = (): Scanned[] => {
    for (const tr of trees) if (!tr.builder) throw new VeloError('NATIVE', `velo-ingest: no record for ${tr.src}`)
    return trees
  }
  return {feed, finish}
}

/** A delta pass's tree without the directories it found unchanged that hold nothing changed below them (the
 * directories it records whole, so that each change has its parents; the base has the others). */
function pruneUnchanged(tree: Scanned): void {
  const unchanged = tree.unchanged
  if (!unchanged) return
  const prune = (node: TreeNode): boolean => {
    for (const [k, c] of node.children!) if (c.children && prune(c)) node.children!.delete(k)
    return unchanged.has(node) && node.children!.size === 0
  }
  prune(tree.builder.root)
}

/** Phase 1 of an ingest: walk one tree (sorted, lstat only) into a layer builder and the list of files to store. */
function scanTree(dir: string, owners: OwnerOverrides | undefined, xfilter: ReturnType<typeof newXattrFilter>): Scanned {
  const src = path.resolve(dir)
  let rootSt: fs.BigIntStats
  try {
    rootSt = fs.statSync(src, {bigint: true})
  } catch (err) {
    throw fromSystemError(err, `cannot ingest ${dir}`)
  }
  if (!rootSt.isDirectory()) throw new VeloError('NOT_A_DIRECTORY', `cannot ingest ${dir}: not a directory`, {suggestion: 'give a directory; import tarballs with `velo image import`'})
  const myUid = process.getuid?.() ?? -1
  const myGid = process.getgid?.() ?? -1
  const ownedAs = <M extends {uid: number; gid: number}>(rel: string, meta: M): M => {
    if (!owners) return meta
    if (owners.caller && meta.uid === myUid) meta.uid = 0
    if (owners.caller && meta.gid === myGid) meta.gid = 0
    const o = owners.paths?.get(rel)
    if (o) Object.assign(meta, o)
    return meta
  }
  const builder = new LayerBuilder(ownedAs('', metaFromStat(rootSt)))
  const jobs: Job[] = []
  const seen = new Map<string, TreeNode>() // dev:ino → first node, for hard links
  let totalBytes = 0
  let skippedSockets = 0

  // Extended attributes of the whole tree in one native walk (Node cannot read them), filtered by policy:
  // overlayfs' own refused, velo's own placeholder marks ignored (src/manifest/xattrs.ts).
  const treeX = readXattrTree(src)
  const root = isRoot()
  const xattrsOf = (rel: string, kind: 'file' | 'dir' | 'symlink' | 'other', where: string): Xattrs | undefined => {
    const x = treeX.get(rel)
    return x ? filterXattrs(x, {where: `ingest of ${src}`, entry: where, kind, root, filter: xfilter}) : undefined
  }
  if (treeX.has('.')) builder.root.meta.xattrs = xattrsOf('.', 'dir', src)

  // Sorted names make the layer deterministic.
  const walk = (dirPath: Buffer, node: TreeNode, rel: string) => {
    let names: Buffer[]
    try {
      names = fs.readdirSync(dirPath, {encoding: 'buffer'}) as Buffer[]
    } catch (err) {
      throw fromSystemError(err, `cannot read directory ${dirPath.toString()}`)
    }
    names.sort(Buffer.compare)
    for (const n of names) {
      const p = join(dirPath, n)
      const r = rel ? `${rel}/${n.toString('latin1')}` : n.toString('latin1')
      let st: fs.BigIntStats
      try {
        st = fs.lstatSync(p, {bigint: true})
      } catch (err) {
        // removed or renamed away since the listing (a live tree): not part of it any more, as in velo-ingest
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue
        throw fromSystemError(err, `cannot stat ${p.toString()}`)
      }
      const meta = ownedAs(r, metaFromStat(st))
      const type = Number(st.mode) & S_IFMT
      const where = p.toString()
      if (treeX.size) meta.xattrs = xattrsOf(r, type === S_IFDIR ? 'dir' : type === S_IFREG ? 'file' : type === S_IFLNK ? 'symlink' : 'other', where)
      if (type === S_IFDIR) {
        walk(p, builder.put(node, n, meta, where), r)
      } else if (type === S_IFREG) {
        if (st.nlink > 1n) {
          const k = `${st.dev}:${st.ino}`
          const first = seen.get(k)
          if (first) {
            builder.link(node, n, first, where)
            continue
          }
          const child = builder.put(node, n, {...meta, size: st.size}, where)
          seen.set(k, child)
          if (st.size > 0n) jobs.push({path: p, node: child, size: Number(st.size), sparse: st.blocks === 0n})
          totalBytes += Number(st.size)
          continue
        }
        const child = builder.put(node, n, {...meta, size: st.size}, where)
        if (st.size > 0n) jobs.push({path: p, node: child, size: Number(st.size), sparse: st.blocks === 0n})
        totalBytes += Number(st.size)
      } else if (type === S_IFLNK) {
        let target: Buffer
        try {
          target = fs.readlinkSync(p, {encoding: 'buffer'}) as Buffer
        } catch (err) {
          throw fromSystemError(err, `cannot read link ${where}`)
        }
        builder.put(node, n, {...meta, target, size: BigInt(target.length)}, where)
      } else if (type === S_IFSOCK) {
        skippedSockets++ // as tar does: a socket is not content
      } else {
        builder.put(node, n, {...meta, rdev: st.rdev}, where)
      }
    }
  }
  walk(Buffer.from(src), builder.root, '')
  return {src, builder, jobs, totalBytes, skippedSockets}
}

/**
 * `velo ingest DIR` and `velo cache save`: each directory becomes one layer; walk them all (sorted, lstat only),
 * then store every regular file (hash → temp → link, dedup on hit), then one syncfs, then ONE LMDB transaction
 * with the layers and the image record `makeImage` returns. A crash anywhere before the commit leaves only
 * objects (valid under their names) and temp files, never a manifest naming an object that is not durable.
 */
export async function ingestTrees(
  home: string,
  dirs: string[],
  makeImage: (layers: LayerInfo[]) => ImageRecord,
  progress?: Progress,
  owners?: OwnerOverrides,
  opts: IngestTreesOptions = {},
): Promise<TreesResult> {
  const t0 = process.hrtime.bigint()
  const xfilter = newXattrFilter()
  // The native pass (walk + objects in one C process) unless owners are rewritten (the default image's builder)
  // or it is not built; VELO_NO_NATIVE_INGEST=1 forces the Node path (tests compare both).
  const tool = owners || process.env.VELO_NO_NATIVE_INGEST ? undefined : nativeIngestTool()
  // a missing or wrong directory fails before the store is touched
  let scanned: Scanned[] = tool ? dirs.map((d) => ({...checkDir(d), builder: undefined as never, jobs: [], totalBytes: 0, skippedSockets: 0})) : dirs.map((d) => scanTree(d, owners, xfilter))
  const mark = (what: string) => process.env.VELO_TIMING && process.stderr.write(`timing: ${what} at ${performance.now().toFixed(1)} ms since start\n`)
  mark('ingest start')
  const store = new Store(home).init()
  const lock = new StoreLock(path.join(home, 'lock')).acquire('shared')
  mark('locked')
  const db = ManifestDb.open(home)
  mark('db open')
  try {
    // the caller's step that must wait for the lock (a snapshot pauses its volume's writers here, not while a gc
    // still holds the store)
    opts.onLocked?.()
    const pre = {newObjects: 0, newBytes: 0, files: 0, bytes: 0}
    // the index's layer held by the store, checked under its lock (gc waits): the objects its hits name are there
    const held = opts.index?.in && dirs.length === 1 ? opts.index.held?.(db) : undefined
    const index: NativeIndex | undefined = opts.index && dirs.length === 1 ? {in: opts.index.in, out: opts.index.out, trust: !!held} : undefined
    // a delta over the image the index describes, held under this lock (gc cannot take its layers meanwhile)
    const base = tool && held?.delta ? held.layers : undefined
    if (tool && base) {
      const srcs = scanned.map((s) => s.src)
      const tried = await scanNativeStreaming(tool, store, srcs, xfilter, pre, {...index!, delta: true})
      scanned = tried ?? (await scanNativeStreaming(tool, store, srcs, xfilter, pre, index))!
      if (tried) pruneUnchanged(scanned[0])
    } else if (tool) scanned = (await scanNativeStreaming(tool, store, scanned.map((s) => s.src), xfilter, pre, index))!
    const delta = base && scanned[0].summary ? {base, ...scanned[0].summary} : undefined
    mark('native pass done')
    const jobs = scanned.flatMap((s) => s.jobs)
    const totalBytes = scanned.reduce((a, s) => a + s.totalBytes, 0)
    readThroughPlaceholders(home, jobs)
    const tWalk = process.hrtime.bigint()

    // Phase 2: content, on worker threads when there is enough of it to pay for starting them.
    progress?.start(jobs.length + pre.files, totalBytes + pre.bytes)
    const counts = {newObjects: pre.newObjects, newBytes: pre.newBytes, doneFiles: pre.files, doneBytes: pre.bytes}
    const record = (j: Job, r: {hash: string; size: number; isNew: boolean}) => {
      const m = j.node.meta
      // A file that changed between the walk and the read is recorded as what was actually stored.
      if (r.size !== j.size) m.size = BigInt(r.size)
      m.hash = Buffer.from(r.hash, 'hex')
      if (r.isNew) {
        counts.newObjects++
        counts.newBytes += r.size
      }
      counts.doneFiles++
      counts.doneBytes += r.size
      progress?.update(counts.doneFiles, counts.doneBytes)
    }
    if (jobs.length >= PARALLEL_MIN_FILES && os.availableParallelism() > 1) await storeInWorkers(home, jobs, record)
    else for (const j of jobs) record(j, store.writeFile(j.path, {mode: j.node.meta.mode, uid: j.node.meta.uid, gid: j.node.meta.gid, size: j.size, xattrs: j.node.meta.xattrs}))
    progress?.stop()

    const tContent = process.hrtime.bigint()
    // Phase 3: durable data, then the manifest that names it.
    // the native pass ended with a syncfs of its own: another only for objects stored here after it
    if (!tool || jobs.length > 0) store.sync()
    const tSync = process.hrtime.bigint()
    for (const s of scanned) for (const n of opts.omitRootNames ?? []) s.builder.drop(s.builder.root, Buffer.from(n))
    const built = scanned.map((s) => s.builder.finish(s.src))
    mark('layers built')
    const existed = built.map((b) => db.hasLayer(b.info.id))
    const image = makeImage(built.map((b) => b.info))
    // a delta with nothing in it (the root unchanged, no entry below) is no layer: the image is its base
    const empty = !!delta && !scanned[0].builder.root.children!.size && !!scanned[0].unchanged?.has(scanned[0].builder.root)
    if (delta) Object.assign(image, {layers: empty ? [...delta.base] : [...delta.base, built[0].info.id], files: delta.files, logicalBytes: delta.logicalBytes})
    let squashed: {info: LayerInfo; entries: Array<{key: Buffer; value: Buffer}>} | undefined
    if (delta && !empty && (delta.base.includes(built[0].info.id) || built[0].info.files * 2 > delta.files)) {
      // stored whole instead: the same delta twice in one stack (a change made, undone and made again), or a delta of
      // most of the files (written since the last snapshot, or too recently for the index to vouch for them), which
      // would cost a layer of the stack for what a whole one holds
      const {squashLayers} = await import('../image/view')
      // the delta first, for the merge to read (named by no image: gc removes it)
      if (!delta.base.includes(built[0].info.id)) db.writeSync(() => db.putLayerInTxn(built[0].info, built[0].entries), 'ingest')
      squashed = squashLayers(db, image.layers, built[0].info.source)
      image.layers = [squashed.info.id]
      delete image.files
      delete image.logicalBytes
    }
    db.writeSync(() => {
      if (squashed) db.putLayerInTxn(squashed.info, squashed.entries)
      else if (!empty) for (const b of built) db.putLayerInTxn(b.info, b.entries)
      db.images.putSync(image.name, image)
    }, 'ingest')
    mark('committed')
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9
    if (process.env.VELO_TIMING)
      process.stderr.write(
        `timing: walk ${Number(tWalk - t0) / 1e6} ms, content ${Number(tContent - tWalk) / 1e6} ms, syncfs ${Number(tSync - tContent) / 1e6} ms, commit ${Number(process.hrtime.bigint() - tSync) / 1e6} ms\n`,
      )
    return {
      trees: scanned.map((s, i) => ({src: s.src, info: squashed?.info ?? built[i].info, layerExisted: existed[i]})),
      image,
      skippedSockets: scanned.reduce((a, s) => a + s.skippedSockets, 0),
      newObjects: counts.newObjects,
      newBytes: counts.newBytes,
      seconds,
      warnings: xfilter.droppedCount ? [xattrWarning([xfilter])] : [],
    }
  } finally {
    db.close()
    lock.release()
  }
}

/**
 * A solid `velo run` projection holds placeholders (sparse, no blocks, marked with an xattr) that read as
 * zeros without the shim: ingest their store object instead. Only files with size > 0 and no blocks are
 * asked about (one velo-project call for all of them), so ordinary trees pay nothing.
 */
function readThroughPlaceholders(home: string, jobs: Array<{path: Buffer; sparse?: boolean}>): void {
  const cands = jobs.filter((j) => j.sparse)
  if (cands.length === 0) return
  const objs = probePlaceholders(home, cands.map((j) => j.path))
  for (const j of cands) {
    const obj = objs.get(j.path.toString('latin1'))
    if (!obj) continue
    if (!fs.existsSync(obj))
      throw new VeloError('BAD_INPUT', `${j.path.toString()} is a velo placeholder whose content is not in this store (${obj})`, {
        suggestion: 'ingest it into the store it was projected from, or run `velo wake` there first',
      })
    j.path = Buffer.from(obj)
  }
}

export type {LayerInfo}

/** Below this many files, starting worker threads (~30 ms) costs more than it saves. */
const PARALLEL_MIN_FILES = 1000
const BATCH = 128

type Job = {path: Buffer; node: TreeNode; size: number; sparse?: boolean}

/** Store files on min(cores, 4) worker threads, handing out batches from one queue; fail on the first error. */
async function storeInWorkers(home: string, jobs: Job[], record: (j: Job, r: {hash: string; size: number; isNew: boolean}) => void): Promise<void> {
  const {Worker} = await import('node:worker_threads')
  const script = path.join(__dirname, __filename.endsWith('.ts') ? 'ingest-worker.ts' : 'ingest-worker.js')
  const n = Math.min(os.availableParallelism(), 4)
  let next = 0
  let failure: VeloError | undefined
  const workers = Array.from({length: n}, () => new Worker(script, {workerData: {home}}))
  try {
    await Promise.all(
      workers.map(
        (w) =>
          new Promise<void>((resolve, reject) => {
            let batch: Job[] = []
            const send = () => {
              if (failure || next >= jobs.length) return resolve()
              batch = jobs.slice(next, next + BATCH)
              next += batch.length
              w.postMessage(
                batch.map((j) => ({path: j.path, mode: j.node.meta.mode, uid: j.node.meta.uid, gid: j.node.meta.gid, size: j.size, xattrs: j.node.meta.xattrs?.length ? encodeXattrs(j.node.meta.xattrs) : undefined})),
              )
            }
            w.on('message', (results: WorkerResult[]) => {
              for (let i = 0; i < results.length; i++) {
                const r = results[i]
                if ('error' in r) {
                  failure ??= new VeloError(r.error.code as never, r.error.message, {suggestion: r.error.suggestion})
                  return resolve()
                }
                record(batch[i], r)
              }
              send()
            })
            w.on('error', reject)
            send()
          }),
      ),
    )
  } finally {
    await Promise.all(workers.map((w) => w.terminate()))
  }
  if (failure) throw failure
}
