import {newHasher} from '../lib/blake3'
import {VeloError} from '../lib/errors'

/**
 * Extended attributes of one manifest entry (one inode: hard links share them).
 *
 * Canonical block (docs/format.md, "Extended attributes"; native/common/velo_xattrs.h reads the same bytes):
 *   u32le count ‖ count × (u32le name length ‖ u32le value length ‖ name bytes ‖ value bytes)
 * names sorted bytewise and unique, so equal sets give equal bytes: the block enters the layer id (it is part
 * of the entry value) and its digest names the CAS object variant (`…_x<digest>`), so two files with the same
 * bytes but different xattrs never share an inode.
 */
export interface Xattr {
  name: Buffer
  value: Buffer
}
export type Xattrs = Xattr[]

/** Linux limits: XATTR_NAME_MAX 255, XATTR_SIZE_MAX 64 KiB. */
export const XATTR_NAME_MAX = 255
export const XATTR_SIZE_MAX = 65536

/** Sort by name and drop duplicates (the last value given for a name wins). */
export function normalizeXattrs(list: Xattrs): Xattrs {
  const m = new Map<string, Xattr>()
  for (const x of list) m.set(x.name.toString('latin1'), x)
  return [...m.values()].sort((a, b) => Buffer.compare(a.name, b.name))
}

export function encodeXattrs(list: Xattrs): Buffer {
  const x = normalizeXattrs(list)
  let len = 4
  for (const a of x) len += 8 + a.name.length + a.value.length
  const b = Buffer.alloc(len)
  b.writeUInt32LE(x.length, 0)
  let off = 4
  for (const a of x) {
    b.writeUInt32LE(a.name.length, off)
    b.writeUInt32LE(a.value.length, off + 4)
    a.name.copy(b, off + 8)
    a.value.copy(b, off + 8 + a.name.length)
    off += 8 + a.name.length + a.value.length
  }
  return b
}

export function decodeXattrs(b: Buffer): Xattrs {
  const bad = (why: string) => new Error(`malformed xattr block: ${why}`)
  if (b.length < 4) throw bad('too short')
  const n = b.readUInt32LE(0)
  const out: Xattrs = []
  let off = 4
  for (let i = 0; i < n; i++) {
    if (off + 8 > b.length) throw bad('truncated')
    const nl = b.readUInt32LE(off)
    const vl = b.readUInt32LE(off + 4)
    off += 8
    if (nl === 0 || nl > XATTR_NAME_MAX || vl > XATTR_SIZE_MAX || off + nl + vl > b.length) throw bad('bad lengths')
    const name = Buffer.from(b.subarray(off, off + nl))
    if (out.length && Buffer.compare(out[out.length - 1].name, name) >= 0) throw bad('names not sorted/unique')
    out.push({name, value: Buffer.from(b.subarray(off + nl, off + nl + vl))})
    off += nl + vl
  }
  if (off !== b.length) throw bad('trailing bytes')
  return out
}

/** 32 hex chars: the first 16 bytes of BLAKE3 over the canonical block (the object-name suffix). */
export function xattrDigest(block: Buffer): string {
  return newHasher().update(block).digest('hex').slice(0, 32)
}

export function sameXattrs(a: Xattrs | undefined, b: Xattrs | undefined): boolean {
  const ea = a?.length ? encodeXattrs(a) : undefined
  const eb = b?.length ? encodeXattrs(b) : undefined
  return ea === undefined || eb === undefined ? ea === eb : ea.equals(eb)
}

/** Printable form of a name for messages. */
export const showXattr = (n: Buffer) => JSON.stringify(n.toString('utf8'))

/**
 * Which attributes velo takes from input (image layers, `velo ingest`, `velo sandbox commit`):
 *  - 'keep': user.*, trusted.*, security.* (security.capability: file capabilities such as ping's);
 *  - 'overlay': trusted.overlay.* / user.overlay.* — overlayfs' own. In a layer they would act in the
 *    overlay lower (forged opaque dirs, redirects, metacopy): never taken from input;
 *  - 'velo': user.velo and user.velo.* — velo's own marks (`velo run` placeholders, projection stamps): not content;
 *  - 'other': system.* (ACLs are POSIX ACL records, not data here) and unknown namespaces.
 */
export function classifyXattr(name: Buffer): 'keep' | 'overlay' | 'velo' | 'other' {
  const s = name.toString('latin1')
  if (s.startsWith('trusted.overlay.') || s.startsWith('user.overlay.')) return 'overlay'
  if (s === 'user.velo' || s.startsWith('user.velo.')) return 'velo'
  if (s.startsWith('user.') || s.startsWith('trusted.') || s.startsWith('security.')) return 'keep'
  return 'other'
}

/** What the kernel's cap_convert_nscap accepts: a v2 (20-byte) or v3 (24-byte) vfs_cap_data. */
export function validCapability(v: Buffer): boolean {
  if (v.length < 4) return false
  const rev = v.readUInt32LE(0) & 0xff000000
  return (v.length === 20 && rev === 0x02000000) || (v.length === 24 && rev === 0x03000000)
}

export interface XattrFilter {
  /** what was dropped, for warnings: "path (name, name)" */
  dropped: string[]
  droppedCount: number
}

export const newXattrFilter = (): XattrFilter => ({dropped: [], droppedCount: 0})

/**
 * Apply velo's policy to the attributes of one input entry:
 *  - overlay's own attributes → refused (BAD_INPUT naming the entry): an image must express opaque dirs as
 *    `.wh..wh..opq`; an attribute that would steer the overlay lower is hostile input, not data;
 *    (`overlay: 'ignore'` is for `velo sandbox commit`, where they are the kernel's own bookkeeping and
 *    have already been interpreted.)
 *  - user.* on anything but regular files and directories: the kernel refuses them (EPERM), Docker drops
 *    them with a warning; velo drops them with a warning too;
 *  - system.* and unknown namespaces, and (not as root) trusted.* and security.*, which an unprivileged store cannot
 *    set on its objects: dropped with a warning;
 *  - whiteouts carry none.
 */
export function filterXattrs(
  list: Xattrs,
  ctx: {where: string; entry: string; kind: 'file' | 'dir' | 'symlink' | 'other'; root: boolean; overlay?: 'refuse' | 'ignore'; filter: XattrFilter},
): Xattrs | undefined {
  const kept: Xattrs = []
  const dropped: string[] = []
  for (const x of list) {
    if (x.name.length === 0 || x.name.length > XATTR_NAME_MAX || x.name.includes(0))
      throw new VeloError('BAD_INPUT', `${ctx.where}: entry ${ctx.entry}: invalid extended attribute name ${showXattr(x.name)}`)
    if (x.value.length > XATTR_SIZE_MAX)
      throw new VeloError('BAD_INPUT', `${ctx.where}: entry ${ctx.entry}: extended attribute ${showXattr(x.name)} is ${x.value.length} bytes (Linux allows ${XATTR_SIZE_MAX})`)
    const c = classifyXattr(x.name)
    if (x.name.toString('latin1') === 'security.capability' && !validCapability(x.value))
      throw new VeloError('BAD_INPUT', `${ctx.where}: entry ${ctx.entry}: security.capability is not a valid file capability (${x.value.length} bytes)`, {
        suggestion: 'the kernel accepts VFS_CAP_REVISION_2 (20 bytes) or _3 (24 bytes) values, as setcap writes them',
      })
    if (c === 'overlay') {
      if (ctx.overlay === 'ignore') continue
      throw new VeloError('BAD_INPUT', `${ctx.where}: entry ${ctx.entry}: carries overlayfs' own attribute ${showXattr(x.name)}; it would steer the overlay, so it is refused`, {
        suggestion: 'layers express opaque directories as .wh..wh..opq and deletions as .wh.NAME; remove overlay.* attributes from the input',
      })
    }
    if (c === 'velo') continue
    const s = x.name.toString('latin1')
    const privileged = !s.startsWith('user.')
    if (c === 'other' || (privileged && !ctx.root) || (!privileged && ctx.kind !== 'file' && ctx.kind !== 'dir')) {
      dropped.push(x.name.toString('utf8'))
      continue
    }
    kept.push(x)
  }
  if (dropped.length) {
    ctx.filter.droppedCount++
    if (ctx.filter.dropped.length < 10) ctx.filter.dropped.push(`${ctx.entry} (${dropped.join(', ')})`)
  }
  return kept.length ? normalizeXattrs(kept) : undefined
}

/** One warning line for what the policy dropped (import, ingest, commit). */
export function xattrWarning(filters: XattrFilter[]): string {
  const n = filters.reduce((a, f) => a + f.droppedCount, 0)
  const samples = filters.flatMap((f) => f.dropped).slice(0, 3)
  return (
    `extended attributes dropped on ${n} entr${n === 1 ? 'y' : 'ies'}, e.g. ${samples.join('; ')} ` +
    '(kept: user.* on files and directories, trusted.* and security.* when running as root; system.* and other namespaces are not kept)'
  )
}
