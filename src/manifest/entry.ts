/**
 * The fixed-size binary manifest entry. C readers (native/common/manifest.c) read the same bytes, so every
 * change here is a format change: bump ENTRY_VERSION and update docs/format.md.
 *
 *  off  size  field
 *    0    32  hash        BLAKE3 of the content (regular files with size > 0; zero otherwise)
 *   32     8  size        u64 bytes (regular files; symlinks: target length)
 *   40     8  mtime_sec   i64
 *   48     8  rdev        u64 (char/block devices)
 *   56     4  mtime_nsec  u32
 *   60     4  mode        u32, full st_mode: S_IFMT type bits | 07777 permission bits
 *   64     4  uid         u32
 *   68     4  gid         u32
 *   72     4  ino         u32, layer-local inode number: root dir = 1; hard links share one ino; a directory's
 *                         ino is the parent_ino in its children's keys
 *   76     4  nlink       u32, entries in this layer that share ino (1 unless hard linked)
 *   80     4  flags       u32, bit 0 OPAQUE (dir hides lower layers' children), bit 1 WHITEOUT (hides NAME below)
 *   84     4  version     u32: 1, or 2 when the entry has extended attributes
 *   88     n  target      v1: symlink target bytes (S_IFLNK only), n = value length - 88
 * Version 2 (only written for entries WITH xattrs, so every xattr-free layer keeps its v1 bytes and its id):
 *   88     4  target_len  u32
 *   92     4  xattrs_len  u32, length of the xattr block
 *   96    16  xattr_digest  first 16 bytes of BLAKE3(xattr block): the CAS object-name suffix `_x<hex>`
 *  112     n  target, then the xattr block (src/manifest/xattrs.ts)
 *
 * All integers little-endian. Key: layer id (32 raw bytes) ‖ parent ino (u32 big-endian, so LMDB's bytewise
 * order groups a directory's children) ‖ name bytes (no '/', no NUL, 1..255 bytes; the root has parent 0 and
 * an empty name).
 */
import {decodeXattrs, encodeXattrs, xattrDigest, Xattrs} from './xattrs'

export const ENTRY_SIZE = 88
export const ENTRY_VERSION = 1
/** Entries with extended attributes (see above). Readers accept 1 and 2; older readers refuse 2 (fail closed). */
export const ENTRY_VERSION_XATTRS = 2
export const ENTRY_V2_FIXED = 112
export const KEY_PREFIX = 36
export const ROOT_INO = 1

export const FLAG_OPAQUE = 1
export const FLAG_WHITEOUT = 2

export const S_IFMT = 0o170000
export const S_IFREG = 0o100000
export const S_IFDIR = 0o040000
export const S_IFLNK = 0o120000
export const S_IFIFO = 0o010000
export const S_IFCHR = 0o020000
export const S_IFBLK = 0o060000
export const S_IFSOCK = 0o140000

export type Kind = 'file' | 'dir' | 'symlink' | 'fifo' | 'char' | 'block' | 'socket' | 'whiteout'

export interface Entry {
  hash: Buffer // 32 bytes
  size: bigint
  mtimeSec: bigint
  mtimeNsec: number
  rdev: bigint
  mode: number
  uid: number
  gid: number
  ino: number
  nlink: number
  flags: number
  target?: Buffer
  /** extended attributes (sorted, unique); absent = none */
  xattrs?: Xattrs
  /** 32 hex: digest of the xattr block (the object-name suffix); set iff xattrs is */
  xattrDigest?: string
}

export const ZERO_HASH = Buffer.alloc(32)

export function kindOf(e: Pick<Entry, 'mode' | 'flags'>): Kind {
  if (e.flags & FLAG_WHITEOUT) return 'whiteout'
  switch (e.mode & S_IFMT) {
    case S_IFREG:
      return 'file'
    case S_IFDIR:
      return 'dir'
    case S_IFLNK:
      return 'symlink'
    case S_IFIFO:
      return 'fifo'
    case S_IFCHR:
      return 'char'
    case S_IFBLK:
      return 'block'
    case S_IFSOCK:
      return 'socket'
    default:
      return 'file'
  }
}

export function encodeEntry(e: Entry): Buffer {
  const xb = e.xattrs?.length ? encodeXattrs(e.xattrs) : undefined
  const b = Buffer.alloc(encodedEntrySize(e, xb))
  encodeEntryInto(b, e, xb)
  return b
}

/** The bytes encodeEntry gives for e (xb: its encoded xattr block, when it has xattrs). */
export function encodedEntrySize(e: Pick<Entry, 'target'>, xb: Buffer | undefined): number {
  const t = e.target?.length ?? 0
  return xb ? ENTRY_V2_FIXED + t + xb.length : ENTRY_SIZE + t
}

/** encodeEntry into b (exactly encodedEntrySize(e, xb) bytes, zeroed or not): for many entries in one buffer. */
export function encodeEntryInto(b: Buffer, e: Entry, xb: Buffer | undefined): void {
  const t = e.target ?? Buffer.alloc(0)
  e.hash.copy(b, 0, 0, 32)
  b.writeBigUInt64LE(e.size, 32)
  b.writeBigInt64LE(e.mtimeSec, 40)
  b.writeBigUInt64LE(e.rdev, 48)
  b.writeUInt32LE(e.mtimeNsec, 56)
  b.writeUInt32LE(e.mode >>> 0, 60)
  b.writeUInt32LE(e.uid >>> 0, 64)
  b.writeUInt32LE(e.gid >>> 0, 68)
  b.writeUInt32LE(e.ino >>> 0, 72)
  b.writeUInt32LE(e.nlink >>> 0, 76)
  b.writeUInt32LE(e.flags >>> 0, 80)
  if (!xb) {
    b.writeUInt32LE(ENTRY_VERSION, 84)
    t.copy(b, ENTRY_SIZE)
    return
  }
  b.writeUInt32LE(ENTRY_VERSION_XATTRS, 84)
  b.writeUInt32LE(t.length, 88)
  b.writeUInt32LE(xb.length, 92)
  Buffer.from(xattrDigest(xb), 'hex').copy(b, 96)
  t.copy(b, ENTRY_V2_FIXED)
  xb.copy(b, ENTRY_V2_FIXED + t.length)
}

/**
 * An entry from its stored bytes. copy=false: the entry's buffers (hash, target) are views of b, for a b that stays
 * as it is while the entry lives (a layer blob being pulled); LMDB's reused read buffers need the copies.
 */
export function decodeEntry(b: Buffer, copy = true): Entry {
  const view = (s: Buffer) => (copy ? Buffer.from(s) : s)
  if (b.length < ENTRY_SIZE) throw new Error(`manifest entry too short (${b.length} bytes)`)
  const version = b.readUInt32LE(84)
  if (version !== ENTRY_VERSION && version !== ENTRY_VERSION_XATTRS) throw new Error(`manifest entry version ${version} is not supported`)
  const e: Entry = {
    hash: view(b.subarray(0, 32)),
    size: b.readBigUInt64LE(32),
    mtimeSec: b.readBigInt64LE(40),
    rdev: b.readBigUInt64LE(48),
    mtimeNsec: b.readUInt32LE(56),
    mode: b.readUInt32LE(60),
    uid: b.readUInt32LE(64),
    gid: b.readUInt32LE(68),
    ino: b.readUInt32LE(72),
    nlink: b.readUInt32LE(76),
    flags: b.readUInt32LE(80),
  }
  if (version === ENTRY_VERSION) {
    if (b.length > ENTRY_SIZE) e.target = view(b.subarray(ENTRY_SIZE))
    return e
  }
  if (b.length < ENTRY_V2_FIXED) throw new Error(`manifest entry too short (${b.length} bytes)`)
  const tl = b.readUInt32LE(88)
  const xl = b.readUInt32LE(92)
  if (ENTRY_V2_FIXED + tl + xl !== b.length) throw new Error('manifest entry lengths do not add up')
  if (tl) e.target = view(b.subarray(ENTRY_V2_FIXED, ENTRY_V2_FIXED + tl))
  const xb = b.subarray(ENTRY_V2_FIXED + tl)
  e.xattrDigest = b.toString('hex', 96, 112)
  if (xattrDigest(xb) !== e.xattrDigest) throw new Error('manifest entry xattr digest does not match its xattrs')
  e.xattrs = decodeXattrs(xb)
  return e
}

export function entryKey(layer: Buffer, parentIno: number, name: Buffer): Buffer {
  const k = Buffer.allocUnsafe(KEY_PREFIX + name.length)
  layer.copy(k, 0, 0, 32)
  k.writeUInt32BE(parentIno >>> 0, 32)
  name.copy(k, KEY_PREFIX)
  return k
}

export function splitKey(k: Buffer): {layer: Buffer; parentIno: number; name: Buffer} {
  return {layer: k.subarray(0, 32), parentIno: k.readUInt32BE(32), name: k.subarray(KEY_PREFIX)}
}
