import {spawnSync} from 'node:child_process'
import {VeloError} from '../lib/errors'
import {nativeBin} from '../lib/native'
import {decodeXattrs, encodeXattrs, Xattrs} from '../manifest/xattrs'

/**
 * Extended attributes on disk, through native/build/velo-xattr (Node has no xattr calls). One process per
 * call: `set` is used once per new object that has attributes (rare: a handful per image), `get` and `tree`
 * batch a whole list or tree.
 */

function run(args: string[], input: Buffer, what: string): Buffer {
  const r = spawnSync(nativeBin('velo-xattr'), args, {input, stdio: ['pipe', 'pipe', 'pipe'], maxBuffer: 1 << 30})
  if (r.error) throw new VeloError('NATIVE', `cannot run velo-xattr: ${r.error.message}`)
  if (r.status !== 0) {
    const msg = String(r.stderr).trim() || `velo-xattr exited ${r.status}`
    if (/Operation not supported/.test(msg))
      throw new VeloError('UNSUPPORTED', `${what}: ${msg}`, {suggestion: 'keep VELO_HOME on a filesystem with extended attributes (ext4, xfs, btrfs, tmpfs ≥ 6.6)'})
    if (/Operation not permitted|Permission denied/.test(msg))
      throw new VeloError('PERMISSION_DENIED', `${what}: ${msg}`, {suggestion: 'trusted.* and security.* attributes need root'})
    if (/No space left|Disk quota/.test(msg)) throw new VeloError('NO_SPACE', `${what}: ${msg}`)
    throw new VeloError('NATIVE', `${what}: ${msg}`)
  }
  return r.stdout
}

/** Set `xattrs` on `file` (a final symlink is not followed). */
export function setXattrs(file: string, xattrs: Xattrs): void {
  run(['set', file], encodeXattrs(xattrs), `cannot set extended attributes on ${file}`)
}

function parse(out: Buffer): Map<string, Xattrs> {
  const m = new Map<string, Xattrs>()
  const f = out.toString('latin1').split('\0')
  for (let i = 0; i + 1 < f.length; i += 2) m.set(f[i], decodeXattrs(Buffer.from(f[i + 1], 'hex')))
  return m
}

/** The attributes of each path (no symlink followed); keys are the paths as latin1 strings; paths without any are absent. */
export function readXattrs(paths: Array<string | Buffer>): Map<string, Xattrs> {
  if (paths.length === 0) return new Map()
  const input = Buffer.concat(paths.flatMap((p) => [typeof p === 'string' ? Buffer.from(p) : p, Buffer.from([0])]))
  return parse(run(['get'], input, 'cannot read extended attributes'))
}

/** Every entry under `root` that has attributes, keyed by relative path (latin1; '.' = root). Walks without following symlinks. */
export function readXattrTree(root: string): Map<string, Xattrs> {
  return parse(run(['tree', root], Buffer.alloc(0), `cannot read the extended attributes under ${root}`))
}
