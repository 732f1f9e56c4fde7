import {VeloError} from '../lib/errors'
import type {Xattrs} from '../manifest/xattrs'

/**
 * Tar headers for `velo image export`'s layer tars, written as bytes (tar-stream's pack takes names as
 * strings and encodes PAX records as UTF-8, which cannot express a non-UTF-8 name or a binary xattr value).
 *
 * ustar headers; a PAX extended header ('x') comes first when something does not fit ustar, as Go's
 * archive/tar (Docker) and GNU tar --format=pax write it:
 *  - a name or link target longer than 100 bytes, or non-ASCII UTF-8 (as Go's writer and tar-stream do) →
 *    `path` / `linkpath` records with the bytes. A name that is not valid UTF-8 goes into the ustar field as
 *    raw bytes when it fits (GNU tar's own ustar output; every reader takes those bytes as they are), else
 *    into a `path` record as raw bytes: Go's reader (docker load) and GNU tar take them as they are. No
 *    `hdrcharset=BINARY` record: GNU tar 1.34 warns about it as an unknown keyword.
 *  - uid/gid above 0o7777777, size above 0o77777777777, mtime with nanoseconds or out of range → `uid`, `gid`,
 *    `size`, `mtime` records;
 *  - extended attributes → `SCHILY.xattr.NAME=VALUE` with the raw value (what Docker, GNU tar and bsdtar read).
 */

export type TarType = 'file' | 'link' | 'symlink' | 'char' | 'block' | 'directory' | 'fifo'
const TYPEFLAG: Record<TarType, string> = {file: '0', link: '1', symlink: '2', char: '3', block: '4', directory: '5', fifo: '6'}

export interface TarHeader {
  name: Buffer // directories end with '/'
  type: TarType
  mode: number
  uid: number
  gid: number
  mtimeSec: bigint
  mtimeNsec: number
  size?: number
  linkname?: Buffer
  devmajor?: number
  devminor?: number
  xattrs?: Xattrs
}

const isAscii = (b: Buffer) => b.every((c) => c > 0 && c < 0x80)

function isUtf8(b: Buffer): boolean {
  try {
    new TextDecoder('utf-8', {fatal: true}).decode(b)
    return true
  } catch {
    return false
  }
}

/** One PAX record "LEN KEY=VALUE\n", LEN counting itself. */
function paxRecord(key: Buffer, value: Buffer): Buffer {
  const body = key.length + value.length + 3 // ' ' '=' '\n'
  let len = body + String(body).length
  if (String(len).length !== String(body).length) len = body + String(len).length
  return Buffer.concat([Buffer.from(`${len} `), key, Buffer.from('='), value, Buffer.from('\n')])
}

/** PAX time: seconds with a 9-digit fraction (negative times as the PAX spec writes them: -1.5 = 1.5 s before the epoch). */
export function fmtPaxTime(sec: bigint, nsec: number): string {
  if (sec < 0n && nsec > 0) return `-${-sec - 1n}.${String(1_000_000_000 - nsec).padStart(9, '0')}`
  return `${sec}.${String(nsec).padStart(9, '0')}`
}

function octal(b: Buffer, off: number, width: number, v: number | bigint): void {
  const s = v.toString(8).padStart(width - 1, '0')
  b.write(s, off, width - 1, 'latin1')
  b[off + width - 1] = 0
}

function ustar(name: Buffer, typeflag: string, h: TarHeader, size: number, mtime: bigint, uid: number, gid: number, link: Buffer): Buffer {
  const b = Buffer.alloc(512)
  name.copy(b, 0, 0, Math.min(100, name.length))
  octal(b, 100, 8, h.mode & 0o7777)
  octal(b, 108, 8, uid)
  octal(b, 116, 8, gid)
  octal(b, 124, 12, size)
  octal(b, 136, 12, mtime)
  b.write(typeflag, 156, 1, 'latin1')
  link.copy(b, 157, 0, Math.min(100, link.length))
  b.write('ustar\u000000', 257, 8, 'latin1')
  if (h.type === 'char' || h.type === 'block') {
    octal(b, 329, 8, h.devmajor ?? 0)
    octal(b, 337, 8, h.devminor ?? 0)
  }
  b.fill(0x20, 148, 156)
  let sum = 0
  for (const c of b) sum += c
  b.write(sum.toString(8).padStart(6, '0') + '\u0000 ', 148, 8, 'latin1')
  return b
}

const MAX_ID = 0o7777777
const MAX_SIZE = 0o77777777777
const MAX_TIME = 0o77777777777n

/** The header block(s) of one member: [PAX header + records] + ustar header. */
export function encodeTarHeader(h: TarHeader, where: string): Buffer {
  const link = h.linkname ?? Buffer.alloc(0)
  const size = h.size ?? 0
  const recs: Buffer[] = []
  const needsPax = (b: Buffer) => b.length > 100 || (!isAscii(b) && isUtf8(b))
  const placeholder = (b: Buffer) => Buffer.from(b.toString('latin1').replace(/[^\x20-\x7e]/g, '_'), 'latin1').subarray(0, 100)
  let name = h.name
  if (needsPax(h.name)) {
    recs.push(paxRecord(Buffer.from('path'), h.name))
    name = placeholder(h.name)
  }
  let linkField = link
  if (needsPax(link)) {
    recs.push(paxRecord(Buffer.from('linkpath'), link))
    linkField = placeholder(link)
  }
  let uid = h.uid
  let gid = h.gid
  if (uid > MAX_ID || gid > MAX_ID) {
    recs.push(paxRecord(Buffer.from('uid'), Buffer.from(String(h.uid))), paxRecord(Buffer.from('gid'), Buffer.from(String(h.gid))))
    if (uid > MAX_ID) uid = 0
    if (gid > MAX_ID) gid = 0
  }
  let sizeField = size
  if (size > MAX_SIZE) {
    recs.push(paxRecord(Buffer.from('size'), Buffer.from(String(size))))
    sizeField = 0
  }
  let mtime = h.mtimeSec
  if (h.mtimeNsec !== 0 || h.mtimeSec < 0n || h.mtimeSec > MAX_TIME) {
    recs.push(paxRecord(Buffer.from('mtime'), Buffer.from(fmtPaxTime(h.mtimeSec, h.mtimeNsec))))
    if (mtime < 0n || mtime > MAX_TIME) mtime = 0n
  }
  for (const x of h.xattrs ?? []) {
    if (x.name.includes(0x3d) || x.name.includes(0))
      throw new VeloError('UNSUPPORTED', `${where}: extended attribute ${JSON.stringify(x.name.toString('utf8'))} has '=' in its name, which a PAX record cannot hold`)
    recs.push(paxRecord(Buffer.concat([Buffer.from('SCHILY.xattr.'), x.name]), x.value))
  }
  const main = ustar(name, TYPEFLAG[h.type], h, sizeField, mtime, uid, gid, linkField)
  if (recs.length === 0) return main
  const body = Buffer.concat(recs)
  const paxName = Buffer.from('PaxHeaders/' + name.toString('latin1').replace(/\/$/, '').split('/').pop()).subarray(0, 100)
  const ph = ustar(paxName, 'x', {...h, type: 'file', mode: 0o644}, body.length, mtime, 0, 0, Buffer.alloc(0))
  return Buffer.concat([ph, body, Buffer.alloc((512 - (body.length % 512)) % 512), main])
}

/** Zero padding after `size` content bytes. */
export const tarPadding = (size: number) => Buffer.alloc((512 - (size % 512)) % 512)
/** End of archive: two zero blocks. */
export const TAR_END = Buffer.alloc(1024)
