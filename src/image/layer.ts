import {VeloError} from '../lib/errors'
import {LayerBuilder, Meta, TreeNode, checkName, newMeta, whiteoutMeta} from '../manifest/builder'
import type {LayerInfo} from '../manifest/db'
import {FLAG_OPAQUE, FLAG_WHITEOUT, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG} from '../manifest/entry'
import type {Store} from '../store/cas'
import {isRoot} from '../lib/home'
import {filterXattrs, newXattrFilter, sameXattrs, XattrFilter, Xattrs} from '../manifest/xattrs'
import {decompress, drain, HashTap, TarEntry, tarEntries} from './stream'

/**
 * One image layer (a tar, OCI "Representation of Changes") → one velo layer.
 *
 * File content goes into the store while the tar streams by (hashed while written); the tree is built in
 * memory by LayerBuilder. Whiteouts stay IN the layer as entries — `.wh.NAME` becomes a WHITEOUT entry NAME,
 * `.wh..wh..opq` sets OPAQUE on its directory — exactly what Docker's overlay2 keeps on disk, so a layer
 * imported twice (or shared by two images) is one layer with one id.
 *
 * Hostile tars are refused, never "fixed up": every error names the entry.
 *  - names: absolute, any `..` component, NUL, empty components → refused (Docker cleans such names lexically
 *    and keeps them if they stay inside; velo is stricter: no image builder writes them).
 *  - an entry whose parent path runs through a symlink of the same layer → refused. (Docker unpacks inside a
 *    chroot, so such a write would follow the link inside the rootfs; no builder produces it, and following
 *    it here would make the layer's meaning depend on link resolution, so velo fails closed.)
 *  - a hard link whose target is not a regular file earlier in the same layer → refused (Docker's overlay2
 *    applies each layer into its own empty diff directory, so a link to a lower layer fails there too).
 *  - the same path twice (or a path and its whiteout) → refused. A directory created implicitly by a child
 *    entry may be given explicitly later (tar writers may emit parents after children).
 *  - a relative symlink target that climbs above the layer root (`a -> ../../etc`) → refused, as Docker's
 *    unpacker refuses it ("invalid symlink"); absolute targets are fine (resolved inside the container root).
 *  - whiteouts of `..`/`.`/names with '/' → refused; other `.wh..wh.` metadata (aufs) is skipped.
 */

export interface LayerResult {
  info: LayerInfo
  entries: Array<{key: Buffer; value: Buffer}>
  /** sha256 hex of the uncompressed tar (the OCI diff id) */
  diffId: string
  /** sha256 hex and size of the bytes as given (compressed if compressed) */
  blobDigest: string
  blobSize: number
  compression: string
  newObjects: number
  newBytes: number
  skipped: string[]
  /** entries that keep extended attributes */
  xattrEntries: number
  /** attributes dropped by policy (src/manifest/xattrs.ts), for the import's warnings */
  xattrDropped: XattrFilter
}

/** Files up to this size are read into memory and hashed before any write (dedup hits then write nothing). */
const SMALL_FILE = 1 << 20

const WH = '.wh.'
const WH_META = '.wh..wh.'
const WH_OPQ = '.wh..wh..opq'

export function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major >>> 0)
  const mi = BigInt(minor >>> 0)
  return (mi & 0xffn) | ((ma & 0xfffn) << 8n) | ((mi & ~0xffn) << 12n) | ((ma & ~0xfffn) << 32n)
}

export function majorMinor(rdev: bigint): {major: number; minor: number} {
  return {major: Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn)), minor: Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn))}
}

const show = (b: Buffer) => JSON.stringify(b.toString('utf8'))

/** Split a tar member name into components. Leading "./" is fine; absolute names and `..` are not. */
export function splitName(raw: Buffer, what: string): Buffer[] {
  const s = raw.toString('latin1')
  if (s.startsWith('/')) throw new VeloError('BAD_INPUT', `${what}: absolute path ${show(raw)} in a layer`, {suggestion: 'layer tars hold relative paths; rebuild the tar with relative names'})
  const parts: Buffer[] = []
  let start = 0
  for (let i = 0; i <= raw.length; i++) {
    if (i === raw.length || raw[i] === 0x2f) {
      const p = raw.subarray(start, i)
      start = i + 1
      if (p.length === 0 || (p.length === 1 && p[0] === 0x2e)) continue
      if (p.length === 2 && p[0] === 0x2e && p[1] === 0x2e) throw new VeloError('BAD_INPUT', `${what}: path ${show(raw)} contains '..'`, {suggestion: 'the tar tries to step out of its root; it is refused'})
      checkName(p, what)
      parts.push(p)
    }
  }
  return parts
}

/** The bytes of a member name: every name and PAX record was decoded as latin1 (= raw bytes, see tarEntries). */
function nameBytes(h: TarEntry['header'], which: 'name' | 'linkname'): Buffer {
  const pax = h.pax as Record<string, string> | null | undefined
  const fromPax = which === 'name' ? pax?.path : pax?.linkpath
  if (fromPax !== undefined) return Buffer.from(fromPax, 'latin1')
  return Buffer.from((h[which] as string | null) ?? '', 'latin1')
}

const SCHILY = 'SCHILY.xattr.'
const LIBARCHIVE = 'LIBARCHIVE.xattr.'

/** libarchive percent-encodes xattr names in LIBARCHIVE.xattr.* keys (RFC 3986 style). */
function percentDecode(s: string): Buffer {
  const out: number[] = []
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '%' && /^[0-9A-Fa-f]{2}$/.test(s.slice(i + 1, i + 3))) {
      out.push(parseInt(s.slice(i + 1, i + 3), 16))
      i += 2
    } else out.push(s.charCodeAt(i) & 0xff)
  }
  return Buffer.from(out)
}

/**
 * Extended attributes of a tar entry: PAX `SCHILY.xattr.NAME=VALUE` (GNU tar, Docker, star; the value is the
 * raw bytes) and `LIBARCHIVE.xattr.NAME=BASE64` (bsdtar; name percent-encoded). bsdtar writes both for the
 * same attribute; the SCHILY form wins where both exist.
 */
export function paxXattrs(pax: Record<string, string> | null | undefined): Xattrs {
  if (!pax) return []
  const m = new Map<string, {name: Buffer; value: Buffer}>()
  for (const [k, v] of Object.entries(pax)) {
    if (k.startsWith(LIBARCHIVE)) {
      const name = percentDecode(k.slice(LIBARCHIVE.length))
      if (!m.has(name.toString('latin1'))) m.set(name.toString('latin1'), {name, value: Buffer.from(v, 'base64')})
    }
  }
  for (const [k, v] of Object.entries(pax)) {
    if (k.startsWith(SCHILY)) {
      const name = Buffer.from(k.slice(SCHILY.length), 'latin1')
      m.set(name.toString('latin1'), {name, value: Buffer.from(v, 'latin1')})
    }
  }
  return [...m.values()]
}

function paxNumber(pax: Record<string, string> | null | undefined, k: string): number | undefined {
  const v = pax?.[k]
  if (v === undefined) return undefined
  const n = Number(v)
  return Number.isFinite(n) ? n : undefined
}

export class LayerApplier {
  readonly builder: LayerBuilder
  private readonly explicit = new WeakSet<TreeNode>()
  newObjects = 0
  newBytes = 0
  readonly skipped: string[] = []
  /** Entries that keep extended attributes; what the policy dropped (src/manifest/xattrs.ts). */
  xattrEntries = 0
  readonly xattrDropped = newXattrFilter()
  private readonly root = isRoot()

  constructor(private readonly store: Store, private readonly where: string) {
    this.builder = new LayerBuilder(newMeta(S_IFDIR | 0o755, 0, 0, 0n, 0))
  }

  private err(entry: string, msg: string, suggestion?: string): VeloError {
    return new VeloError('BAD_INPUT', `${this.where}: entry ${entry}: ${msg}`, suggestion ? {suggestion} : {})
  }

  /** Walk to the parent directory of an entry, creating missing parents (tars may omit them). */
  private parentOf(parts: Buffer[], entry: string): TreeNode {
    let cur = this.builder.root
    for (const p of parts) {
      let next = cur.children!.get(p.toString('latin1'))
      if (!next) {
        next = this.builder.put(cur, p, newMeta(S_IFDIR | 0o755, 0, 0, 0n, 0), entry)
      } else if (!next.children) {
        const t = next.meta.mode & S_IFMT
        if ((next.meta.flags ?? 0) & FLAG_WHITEOUT) throw this.err(entry, `parent ${show(p)} is whited out in the same layer`)
        if (t === S_IFLNK)
          throw this.err(entry, `parent ${show(p)} is a symlink in the same layer; writing through a symlink is refused`, 'a layer tar must not place entries under a symlink it contains')
        throw this.err(entry, `parent ${show(p)} is not a directory`)
      }
      cur = next
    }
    return cur
  }

  private metaOf(h: TarEntry['header'], type: number): Meta {
    const pax = h.pax as Record<string, string> | null | undefined
    const mt = paxNumber(pax, 'mtime')
    let mtimeSec: bigint
    let mtimeNsec = 0
    if (mt !== undefined) {
      const str = pax!.mtime
      const [s, frac = ''] = str.split('.')
      mtimeSec = BigInt(s)
      mtimeNsec = Number((frac + '000000000').slice(0, 9))
      if (str.startsWith('-') && frac) {
        mtimeSec -= 1n
        mtimeNsec = 1_000_000_000 - mtimeNsec
      }
    } else {
      mtimeSec = BigInt(Math.floor((h.mtime?.getTime() ?? 0) / 1000))
    }
    return newMeta(type | ((h.mode ?? 0) & 0o7777), paxNumber(pax, 'uid') ?? h.uid ?? 0, paxNumber(pax, 'gid') ?? h.gid ?? 0, mtimeSec, mtimeNsec)
  }

  /** Place a node; refuse a second explicit entry for the same path. */
  private place(dir: TreeNode, name: Buffer, meta: Meta, entry: string): TreeNode {
    const old = dir.children!.get(name.toString('latin1'))
    if (old) {
      const oldDir = !!old.children
      const newDir = (meta.mode & S_IFMT) === S_IFDIR
      if (this.explicit.has(old) || !(oldDir && newDir)) {
        const whOld = (old.meta.flags ?? 0) & FLAG_WHITEOUT
        const whNew = (meta.flags ?? 0) & FLAG_WHITEOUT
        if (whOld !== whNew) throw this.err(entry, `both ${show(name)} and its whiteout are in the layer`)
        throw this.err(entry, `duplicate entry (the path appears twice in the layer)`)
      }
      // An implicit parent made explicit: keep its children and an opaque flag set by .wh..wh..opq.
      old.meta = {...meta, flags: (meta.flags ?? 0) | ((old.meta.flags ?? 0) & FLAG_OPAQUE)}
      this.explicit.add(old)
      return old
    }
    const node = this.builder.put(dir, name, meta, entry)
    this.explicit.add(node)
    return node
  }

  async add(e: TarEntry): Promise<void> {
    const h = e.header
    const raw = nameBytes(h, 'name')
    const entry = show(raw)
    await this.addInner(e, raw, entry)
    // The entry's bytes must be consumed before the next header can be read (on error the caller aborts
    // the whole tar instead, so nothing is drained then).
    await drain(e.stream)
  }

  private async addInner(e: TarEntry, raw: Buffer, entry: string): Promise<void> {
    const h = e.header
    const rawX = paxXattrs(h.pax as Record<string, string> | null | undefined)
    const xattrsFor = (kind: 'file' | 'dir' | 'symlink' | 'other'): Xattrs | undefined => {
      if (rawX.length === 0) return undefined
      const x = filterXattrs(rawX, {where: this.where, entry, kind, root: this.root, filter: this.xattrDropped})
      if (x) this.xattrEntries++
      return x
    }
    const parts = splitName(raw, `${this.where}: entry ${entry}`)
    if (parts.length === 0) {
      // The root ("./"): its metadata becomes the layer root's.
      if (h.type !== 'directory') throw this.err(entry, 'the layer root is not a directory')
      if (this.explicit.has(this.builder.root)) throw this.err(entry, 'duplicate entry (the root appears twice)')
      this.builder.root.meta = {...this.metaOf(h, S_IFDIR), flags: (this.builder.root.meta.flags ?? 0) & FLAG_OPAQUE, xattrs: xattrsFor('dir')}
      this.explicit.add(this.builder.root)
      return
    }
    const base = parts[parts.length - 1]
    const baseStr = base.toString('latin1')
    const dir = this.parentOf(parts.slice(0, -1), entry)

    if (baseStr.startsWith(WH)) {
      xattrsFor('other') // a marker carries no attributes: refuse overlay ones, drop (and report) the rest
      if (baseStr === WH_OPQ) {
        if ((dir.meta.flags ?? 0) & FLAG_OPAQUE) throw this.err(entry, 'duplicate opaque marker')
        dir.meta = {...dir.meta, flags: (dir.meta.flags ?? 0) | FLAG_OPAQUE}
        return
      }
      if (baseStr.startsWith(WH_META)) {
        this.skipped.push(raw.toString('utf8')) // aufs metadata (.wh..wh.plnk, .wh..wh.aufs): not content
        return
      }
      const target = base.subarray(WH.length)
      const t = target.toString('latin1')
      if (t === '' || t === '.' || t === '..') throw this.err(entry, `whiteout aimed at ${JSON.stringify(t)} is refused`)
      checkName(target, `${this.where}: whiteout entry ${entry}`)
      this.place(dir, target, whiteoutMeta(), entry)
      return
    }

    switch (h.type) {
      case 'directory':
        this.place(dir, base, {...this.metaOf(h, S_IFDIR), xattrs: xattrsFor('dir')}, entry)
        return
      case 'file':
      case 'contiguous-file': {
        const meta = this.metaOf(h, S_IFREG)
        meta.xattrs = xattrsFor('file')
        const size = h.size ?? 0
        meta.size = BigInt(size)
        if (size > 0) {
          let r
          if (size <= SMALL_FILE) {
            // Small: hashed in memory first, so a file already in the store costs one lstat and no write.
            const chunks: Buffer[] = []
            let got = 0
            for await (const c of e.stream) {
              chunks.push(c)
              got += c.length
            }
            if (got !== size) throw this.err(entry, `content is ${got} bytes, header says ${size} (truncated tar)`)
            r = this.store.writeBuffer(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, got), meta)
          } else {
            // Large: streamed into the store (hashed while written), never buffered whole.
            r = await this.store.writeStream(e.stream, {mode: meta.mode, uid: meta.uid, gid: meta.gid, xattrs: meta.xattrs})
          }
          if (r.size !== size) throw this.err(entry, `content is ${r.size} bytes, header says ${size} (truncated tar)`)
          meta.hash = Buffer.from(r.hash, 'hex')
          if (r.isNew) {
            this.newObjects++
            this.newBytes += r.size
          }
        }
        this.place(dir, base, meta, entry)
        return
      }
      case 'symlink': {
        const target = nameBytes(h, 'linkname')
        if (target.length === 0) throw this.err(entry, 'symlink with an empty target')
        if (target.includes(0)) throw this.err(entry, 'symlink target contains NUL')
        // As Docker's unpacker: a relative target that climbs above the layer root is a breakout attempt.
        if (target[0] !== 0x2f) {
          let depth = parts.length - 1
          for (const c of target.toString('latin1').split('/')) {
            if (c === '..') depth--
            else if (c !== '' && c !== '.') depth++
            if (depth < 0)
              throw this.err(entry, `symlink target ${show(target)} climbs above the layer root`, 'Docker refuses such a layer too ("invalid symlink"); use an absolute target or fewer ".."')
          }
        }
        this.place(dir, base, {...this.metaOf(h, S_IFLNK), target, size: BigInt(target.length), xattrs: xattrsFor('symlink')}, entry)
        return
      }
      case 'link': {
        const lraw = nameBytes(h, 'linkname')
        const lparts = splitName(lraw, `${this.where}: hard link ${entry} → ${show(lraw)}`)
        let target: TreeNode | undefined = this.builder.root
        for (const p of lparts) {
          target = target?.children?.get(p.toString('latin1'))
          if (!target) break
        }
        if (!target || lparts.length === 0 || !this.explicit.has(target))
          throw this.err(entry, `hard link target ${show(lraw)} is not in this layer`, 'a hard link in a layer tar must point to a file stored earlier in the same tar')
        if ((target.meta.mode & S_IFMT) !== S_IFREG || (target.meta.flags ?? 0) & FLAG_WHITEOUT)
          throw this.err(entry, `hard link target ${show(lraw)} is not a regular file`)
        const old = dir.children!.get(baseStr)
        if (old) throw this.err(entry, 'duplicate entry (the path appears twice in the layer)')
        // Hard links share one inode and so one set of attributes. Writers repeat the target's on the link
        // entry (Docker does) or give none; different ones have no single meaning.
        const lx = xattrsFor('file')
        if (lx && !sameXattrs(lx, target.meta.xattrs))
          throw this.err(entry, `hard link carries extended attributes different from its target ${show(lraw)}'s`, 'hard links share one inode; give the attributes on the target entry only')
        const node = this.builder.link(dir, base, target, entry)
        this.explicit.add(node)
        return
      }
      case 'character-device':
      case 'block-device':
      case 'fifo': {
        const t = h.type === 'fifo' ? S_IFIFO : h.type === 'block-device' ? S_IFBLK : S_IFCHR
        const meta = this.metaOf(h, t)
        meta.xattrs = xattrsFor('other')
        if (t !== S_IFIFO) meta.rdev = makedev(h.devmajor ?? 0, h.devminor ?? 0)
        this.place(dir, base, meta, entry)
        return
      }
      default:
        throw this.err(entry, `unsupported tar entry type ${String(h.type)}`)
    }
  }

  finish(source: string, extra: Partial<LayerInfo>) {
    return this.builder.finish(source, extra)
  }
}

/**
 * Import one layer from a byte stream (a layer blob: tar or tar+gzip). Verifies nothing by itself; the caller
 * compares blobDigest/diffId against what the image manifest and config say.
 */
export async function importLayerStream(store: Store, src: AsyncIterable<Buffer>, where: string, source: string): Promise<LayerResult> {
  const blobTap = new HashTap()
  const {compression, stream} = await decompress(blobTap.wrap(src), where)
  // Uncompressed: the blob digest IS the diff id; hash the bytes once, not twice.
  if (compression === 'none') blobTap.hashing = false
  const diffTap = new HashTap()
  const applier = new LayerApplier(store, where)
  let count = 0
  for await (const e of tarEntries(diffTap.wrap(stream), where)) {
    await applier.add(e)
    count++
  }
  if (!diffTap.endsWithZeroBlock() && diffTap.bytes > 0)
    throw new VeloError('BAD_INPUT', `${where}: the tar is truncated (it ends after ${count} entries without an end-of-archive block)`)
  if (diffTap.bytes === 0) throw new VeloError('BAD_INPUT', `${where}: empty layer blob (not a tar)`)
  const diffId = diffTap.digest()
  const {info, entries} = applier.finish(source, {diffId: `sha256:${diffId}`})
  return {
    info,
    entries,
    diffId,
    blobDigest: compression === 'none' ? diffId : blobTap.digest(),
    blobSize: blobTap.bytes,
    compression,
    newObjects: applier.newObjects,
    newBytes: applier.newBytes,
    skipped: applier.skipped,
    xattrEntries: applier.xattrEntries,
    xattrDropped: applier.xattrDropped,
  }
}
