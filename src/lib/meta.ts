import {spawnSync} from 'node:child_process'
import {VeloError} from './errors'
import {isRoot} from './home'
import {nativeBin} from './native'
import {encodeXattrs, Xattrs} from '../manifest/xattrs'

/** Metadata for one path beneath a root, applied by native/build/velo-meta (see native/tools/velo-meta.c). */
export interface MetaRecord {
  path: Buffer | string // relative to the root; '.' is the root
  type: 'f' | 'd' | 'l' | 'p' | 'c' | 'b' | 'w' // p/c/b/w are created by velo-meta
  mode: number // permission bits (07777)
  uid: number
  gid: number
  mtimeSec: bigint
  mtimeNsec: number
  rdev?: bigint
  opaque?: boolean // trusted.overlay.opaque=y
  xattrs?: Xattrs // set after chown/chmod (chown clears security.capability)
  /** xattrs are the whole set: any other attribute of the path is removed (a restored volume's root) */
  exactXattrs?: boolean
}

/** The metadata record of a manifest entry at relative path `rel` (velo-meta applies it). */
export function entryMeta(
  rel: Buffer,
  e: {mode: number; uid: number; gid: number; mtimeSec: bigint; mtimeNsec: number; rdev: bigint; flags: number; xattrs?: Xattrs},
  type: MetaRecord['type'],
  opts: {opaque?: boolean; xattrs?: boolean} = {},
): MetaRecord {
  const r: MetaRecord = {path: rel, type, mode: e.mode & 0o7777, uid: e.uid, gid: e.gid, mtimeSec: e.mtimeSec, mtimeNsec: e.mtimeNsec, rdev: e.rdev, opaque: opts.opaque}
  if (opts.xattrs !== false && e.xattrs?.length) r.xattrs = e.xattrs
  return r
}

const NUL = Buffer.from([0])

export function encodeMeta(records: MetaRecord[]): Buffer {
  const parts: Buffer[] = []
  for (const r of records) {
    const p = typeof r.path === 'string' ? Buffer.from(r.path) : r.path
    if (p.includes(0)) throw new VeloError('INTERNAL', 'path with NUL byte')
    parts.push(p, NUL)
    const rest = [r.type, (r.mode & 0o7777).toString(8), r.uid, r.gid, r.mtimeSec, r.mtimeNsec, r.rdev ?? 0n, (r.opaque ? 1 : 0) | (r.exactXattrs ? 2 : 0), r.xattrs?.length ? encodeXattrs(r.xattrs).toString('hex') : '']
    parts.push(Buffer.from(rest.join('\0') + '\0'))
  }
  return Buffer.concat(parts)
}

/**
 * Apply metadata to many paths in one process: nanosecond mtimes, ownership (root only), modes incl.
 * setuid, fifos/devices/overlay whiteouts, opaque dirs. Paths never resolve through symlinks or outside root.
 * Send directories after their contents (deepest first) so their mtimes stick.
 */
export function applyMeta(root: string, records: MetaRecord[], opts: {chown?: boolean} = {}): void {
  if (records.length === 0) return
  const chown = opts.chown ?? isRoot()
  const r = spawnSync(nativeBin('velo-meta'), chown ? [root] : [root, '--no-chown'], {
    input: encodeMeta(records),
    stdio: ['pipe', 'ignore', 'pipe'],
    maxBuffer: 1 << 20,
  })
  if (r.error) throw new VeloError('NATIVE', `cannot run velo-meta: ${r.error.message}`)
  if (r.status !== 0) {
    const msg = String(r.stderr).trim()
    const code = /No space left/.test(msg) ? 'NO_SPACE' : /Permission denied|Operation not permitted/.test(msg) ? 'PERMISSION_DENIED' : 'NATIVE'
    throw new VeloError(code, msg || `velo-meta exited ${r.status}`)
  }
}
