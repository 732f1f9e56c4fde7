import {newHasher} from '../lib/blake3'
import {VeloError} from '../lib/errors'
import {
  encodedEntrySize,
  encodeEntryInto,
  FLAG_OPAQUE,
  FLAG_WHITEOUT,
  KEY_PREFIX,
  S_IFCHR,
  S_IFDIR,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  ZERO_HASH,
} from './entry'
import type {LayerInfo} from './db'
import {encodeXattrs, type Xattrs} from './xattrs'

export interface Meta {
  mode: number // full st_mode
  uid: number
  gid: number
  mtimeSec: bigint
  mtimeNsec: number
  size?: bigint
  rdev?: bigint
  hash?: Buffer
  target?: Buffer
  flags?: number
  /** extended attributes, already filtered by policy (src/manifest/xattrs.ts); hard links share them */
  xattrs?: Xattrs
}

/**
 * A Meta with every field present, in one order: all metas then share one object shape, so `finish()`'s reads of
 * `hash`, `target`, `flags` stay monomorphic. Metas made by spreads and later additions had many shapes; a
 * 73,000-entry volume snapshot spent half of its parse and encode in those property accesses.
 */
export const newMeta = (mode: number, uid: number, gid: number, mtimeSec: bigint, mtimeNsec: number): Meta => ({
  mode,
  uid,
  gid,
  mtimeSec,
  mtimeNsec,
  size: undefined,
  rdev: undefined,
  hash: undefined,
  target: undefined,
  flags: undefined,
  xattrs: undefined,
})

/** The metadata a layer keeps of a file on disk (lstat with bigint: nanosecond mtimes). */
export const metaFromStat = (st: import('node:fs').BigIntStats): Meta =>
  newMeta(Number(st.mode), Number(st.uid), Number(st.gid), st.mtimeNs / 1_000_000_000n, Number(st.mtimeNs % 1_000_000_000n))

/** A node of the in-memory tree a layer is built from. Hard-linked nodes share one `group`. */
export interface TreeNode {
  name: Buffer
  meta: Meta
  children?: Map<string, TreeNode>
  group?: {members: number; ino?: number}
}

const key = (name: Buffer) => name.toString('latin1')

/** Reject names that could step out of the layer: empty, '.', '..', or containing '/' or NUL. */
export function checkName(name: Buffer, where: string): void {
  // a byte loop, not Buffer.includes: a walk checks every name, and two native calls per name showed in profiles
  const n = name.length
  let bad = n === 0 || n > 255 || (name[0] === 0x2e && (n === 1 || (n === 2 && name[1] === 0x2e)))
  for (let i = 0; !bad && i < n; i++) bad = name[i] === 0 || name[i] === 0x2f
  if (bad)
    throw new VeloError('BAD_INPUT', `invalid path component ${JSON.stringify(name.toString('latin1'))} in ${where}`)
}

/**
 * Builds one layer: an in-memory tree that the walk (or a tar stream) fills in any order; `finish()`
 * numbers inodes in sorted depth-first order, so the same tree always yields the same bytes and the same
 * layer id, and a directory always has a smaller ino than its children.
 */
export class LayerBuilder {
  readonly root: TreeNode

  constructor(rootMeta: Meta) {
    this.root = {name: Buffer.alloc(0), meta: {...rootMeta, mode: S_IFDIR | (rootMeta.mode & 0o7777)}, children: new Map()}
  }

  /** Find a node by path components; with `create`, missing parents are made as 0755 root dirs (tar layers may omit them). */
  resolveDir(parts: Buffer[], where: string, create = false): TreeNode {
    let cur = this.root
    for (const p of parts) {
      checkName(p, where)
      let next = cur.children!.get(key(p))
      if (!next) {
        if (!create) throw new VeloError('BAD_INPUT', `${where}: parent directory ${p.toString('latin1')} does not exist in the layer`)
        next = {name: p, meta: newMeta(S_IFDIR | 0o755, 0, 0, 0n, 0), children: new Map()}
        cur.children!.set(key(p), next)
      }
      if (!next.children) throw new VeloError('BAD_INPUT', `${where}: ${p.toString('latin1')} is not a directory in the layer`)
      cur = next
    }
    return cur
  }

  /** Add or replace `name` in `dir`. A directory replacing a directory keeps its children (tar semantics). */
  put(dir: TreeNode, name: Buffer, meta: Meta, where: string, latin1Name?: string): TreeNode {
    checkName(name, where)
    const k = latin1Name ?? key(name)
    const old = dir.children!.get(k)
    const isDir = (meta.mode & S_IFMT) === S_IFDIR
    if (old && isDir && old.children) {
      old.meta = meta
      return old
    }
    if (old?.group) old.group.members--
    const node: TreeNode = {name, meta, children: isDir ? new Map() : undefined}
    dir.children!.set(k, node)
    return node
  }

  /** Take `name` out of `dir` with everything below it; hard links left elsewhere count one member less each. */
  drop(dir: TreeNode, name: Buffer): void {
    const node = dir.children!.get(key(name))
    if (!node) return
    dir.children!.delete(key(name))
    const uncount = (n: TreeNode) => {
      if (n.group) n.group.members--
      for (const c of n.children?.values() ?? []) uncount(c)
    }
    uncount(node)
  }

  /** Make `name` a hard link to `target` (a regular file already in this layer). */
  link(dir: TreeNode, name: Buffer, target: TreeNode, where: string): TreeNode {
    if ((target.meta.mode & S_IFMT) !== S_IFREG) throw new VeloError('BAD_INPUT', `${where}: hard link target is not a regular file`)
    checkName(name, where)
    if (!target.group) target.group = {members: 1}
    const old = dir.children!.get(key(name))
    if (old === target) return target
    if (old?.group) old.group.members--
    const node: TreeNode = {name, meta: target.meta, group: target.group}
    target.group.members++
    dir.children!.set(key(name), node)
    return node
  }

  lookup(parts: Buffer[]): TreeNode | undefined {
    let cur: TreeNode | undefined = this.root
    for (const p of parts) {
      cur = cur?.children?.get(key(p))
      if (!cur) return undefined
    }
    return cur
  }

  finish(source: string, extra: Partial<LayerInfo> = {}): {info: LayerInfo; entries: Array<{key: Buffer; value: Buffer}>} {
    const out: Array<{parentIno: number; name: Buffer; meta: Meta; ino: number; nlink: number}> = []
    let next = 1
    const stats = {files: 0, dirs: 0, symlinks: 0, others: 0, whiteouts: 0, logicalBytes: 0}
    const visit = (node: TreeNode, parentIno: number) => {
      let ino: number
      let nlink = 1
      if (node.group) {
        if (node.group.ino === undefined) {
          node.group.ino = next++
          stats.logicalBytes += Number(node.meta.size ?? 0n)
        }
        ino = node.group.ino
        nlink = node.group.members
      } else {
        ino = next++
        if ((node.meta.mode & S_IFMT) === S_IFREG) stats.logicalBytes += Number(node.meta.size ?? 0n)
      }
      const m = node.meta
      if ((m.flags ?? 0) & FLAG_WHITEOUT) stats.whiteouts++
      else if (node.children) stats.dirs++
      else if ((m.mode & S_IFMT) === S_IFREG) stats.files++
      else if ((m.mode & S_IFMT) === S_IFLNK) stats.symlinks++
      else stats.others++
      const row = {parentIno, name: node.name, meta: m, ino, nlink}
      let siblings = byParent.get(parentIno)
      if (!siblings) byParent.set(parentIno, (siblings = []))
      siblings.push(row)
      if (node.children) {
        // by the latin1 keys: the same order as comparing the name bytes, without a native call per comparison
        const kids = [...node.children.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
        for (const [, c] of kids) visit(c, ino)
      }
    }
    // Rows grouped by parent: a parent's first child is visited right after it, so the groups come in the order of
    // their parents' inos, each group in name order: (parent ino, name) order without sorting all the rows.
    const byParent = new Map<number, Array<{parentIno: number; name: Buffer; meta: Meta; ino: number; nlink: number}>>()
    visit(this.root, 0)
    // The layer id is the BLAKE3 of the sorted (key without layer id, value) pairs, length-prefixed.
    for (const g of byParent.values()) for (const r of g) out.push(r)
    // "v1" for good: entries with xattrs are v2 entries, but layers without any keep their ids.
    // One buffer, one hash call (a call into the native hasher per field cost ~25 ms per 2,000 entries); the values
    // are encoded straight into it and handed to LMDB as views of it, keys likewise from one buffer (a 72,000-entry
    // layer spent ~40% of its finish allocating and copying a buffer per value and per key).
    const header = Buffer.from('velo-layer-v1\n')
    const xbs = out.map((r) => (r.meta.xattrs?.length ? encodeXattrs(r.meta.xattrs) : undefined))
    const sizes = out.map((r, i) => encodedEntrySize(r.meta, xbs[i]))
    let total = header.length
    let keyTotal = 0
    for (let i = 0; i < out.length; i++) {
      total += 12 + out[i].name.length + sizes[i]
      keyTotal += KEY_PREFIX + out[i].name.length
    }
    const all = Buffer.alloc(total)
    const values: Buffer[] = new Array(out.length)
    let o = header.copy(all, 0)
    for (let i = 0; i < out.length; i++) {
      const r = out[i]
      all.writeUInt32LE(4 + r.name.length, o)
      all.writeUInt32LE(sizes[i], o + 4)
      all.writeUInt32BE(r.parentIno >>> 0, o + 8) // the key without the layer id: parent ino big-endian ‖ name
      o += 12
      o += r.name.copy(all, o)
      const v = all.subarray(o, o + sizes[i])
      encodeEntryInto(
        v,
        {
          hash: r.meta.hash ?? ZERO_HASH,
          size: r.meta.size ?? (r.meta.target ? BigInt(r.meta.target.length) : 0n),
          mtimeSec: r.meta.mtimeSec,
          mtimeNsec: r.meta.mtimeNsec,
          rdev: r.meta.rdev ?? 0n,
          mode: r.meta.mode,
          uid: r.meta.uid,
          gid: r.meta.gid,
          ino: r.ino,
          nlink: r.nlink,
          flags: r.meta.flags ?? 0,
          target: r.meta.target,
        },
        xbs[i],
      )
      values[i] = v
      o += sizes[i]
    }
    const idHex = newHasher().update(all).digest('hex')
    const id = Buffer.from(idHex, 'hex')
    const info: LayerInfo = {id: idHex, createdAt: new Date().toISOString(), source, entries: out.length, ...stats, ...extra}
    const keys = Buffer.allocUnsafe(keyTotal)
    let k = 0
    const entries = out.map((r, i) => {
      const start = k
      k += id.copy(keys, k, 0, 32)
      k = keys.writeUInt32BE(r.parentIno >>> 0, k)
      k += r.name.copy(keys, k)
      return {key: keys.subarray(start, k), value: values[i]}
    })
    return {info, entries}

  }
}

export const whiteoutMeta = (): Meta => {
  const m = newMeta(S_IFCHR, 0, 0, 0n, 0)
  m.rdev = 0n
  m.flags = FLAG_WHITEOUT
  return m
}
export {FLAG_OPAQUE}
