import {spawnSync} from 'node:child_process'
import * as fs from 'node:fs'
import {VeloError, fromSystemError} from '../lib/errors'
import {applyMeta, MetaRecord} from '../lib/meta'
import {optionalNativeBin} from '../lib/native'
import {decodeXattrs} from '../manifest/xattrs'

/**
 * A restore in place: native/ingest/velo-converge compares the data dir with the snapshot's layer (file contents
 * known from the volume's fingerprint index, never read) and plans only what differs; this applies the plan —
 * removals, copies of the store's objects, links, symlinks — then the metadata of every path it touched (velo-meta:
 * files first, directories deepest first). Applying a plan again, or planning again after a kill midway, converges
 * on the same tree: the caller keeps a marker until it is done and runs it again if it finds one.
 */
/** velo-converge, or undefined when not built: the volume restores by a full checkout and a swap */
export const convergeTool = (): string | undefined => optionalNativeBin('velo-converge')

const FIELDS = 13
const S_IFMT = 0o170000
const TYPES: Record<number, MetaRecord['type']> = {0o040000: 'd', 0o100000: 'f', 0o120000: 'l', 0o010000: 'p', 0o020000: 'c', 0o060000: 'b'}

export interface ConvergeResult {
  /** paths removed, created or replaced, and paths whose metadata alone was set */
  removed: number
  written: number
  metaOnly: number
}

/** index: the volume's fingerprint index ('' for none); indexOut: where the index of the result goes; beforeChanges:
 * called with the store objects the plan copies that are not there as plain files (cold ones, src/store/cold.ts),
 * after planning and before the first change */
export function convergeToLayer(home: string, dir: string, layers: string[], index: string, indexOut: string, beforeChanges?: (objects: string[]) => void): ConvergeResult {
  const r = spawnSync(convergeTool()!, [home, layers.join(','), dir, index, indexOut], {stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 2 ** 31})
  if (r.error) throw new VeloError('NATIVE', `cannot run velo-converge: ${r.error.message}`)
  if (r.status !== 0) throw new VeloError('NATIVE', `restore: ${String(r.stderr).trim().replace(/^velo-converge: /, '') || `velo-converge exited ${r.status}`}`)
  const out: Buffer = r.stdout
  const root = Buffer.from(dir)
  const abs = (rel: Buffer) => (rel.length === 1 && rel[0] === 0x2e ? root : Buffer.concat([root, Buffer.from('/'), rel]))
  const metas: MetaRecord[] = []
  const firstOfGroup = new Map<string, Buffer>()
  const res: ConvergeResult = {removed: 0, written: 0, metaOnly: 0}
  const f: Buffer[] = new Array(FIELDS)
  // the objects the plan copies (field 9: the object's path), for what must be made plain first
  const objects: string[] = []
  for (let pos = 0, n = 0, copies = false; pos < out.length; n++) {
    const end = out.indexOf(0, pos)
    if (end < 0) break // said below
    if (n % FIELDS === 0) copies = out[pos] === 0x43 || out[pos] === 0x52 // 'C' create, 'R' replace
    if (n % FIELDS === 8 && end > pos && copies) {
      const o = out.toString('utf8', pos, end)
      if (!fs.existsSync(o)) objects.push(o)
    }
    pos = end + 1
  }
  beforeChanges?.(objects)
  let pos = 0
  while (pos < out.length) {
    for (let i = 0; i < FIELDS; i++) {
      const end = out.indexOf(0, pos)
      if (end < 0) throw new VeloError('NATIVE', 'velo-converge: truncated output')
      f[i] = out.subarray(pos, end)
      pos = end + 1
    }
    const action = String.fromCharCode(f[0][0])
    const rel = Buffer.from(f[1])
    const p = abs(rel)
    try {
      if (action === 'D' || action === 'R') {
        fs.rmSync(p as unknown as string, {recursive: true, force: true})
        res.removed += action === 'D' ? 1 : 0
      }
      if (action === 'D') continue
      const mode = Number(f[2].toString('latin1'))
      const type = TYPES[mode & S_IFMT]
      if (!type) throw new VeloError('INTEGRITY', `snapshot entry ${rel.toString()} has an unknown type (mode ${mode.toString(8)})`, {suggestion: 'run velo fsck'})
      if (action === 'C' || action === 'R') {
        res.written++
        if (type === 'd') fs.mkdirSync(p)
        else if (type === 'l') fs.symlinkSync(Buffer.from(f[9].toString('latin1'), 'hex'), p)
        else if (type === 'f') {
          const group = f[11].toString('latin1')
          const first = group ? firstOfGroup.get(group) : undefined
          if (first) {
            fs.linkSync(first, p)
            continue // one inode: the first path's metadata is the group's
          }
          const object = f[8].toString() // the store object's path
          if (object === '') fs.writeFileSync(p, '', {flag: 'wx'})
          else
            try {
              fs.copyFileSync(object, p as unknown as string, fs.constants.COPYFILE_EXCL)
            } catch (err) {
              if ((err as NodeJS.ErrnoException).code === 'ENOENT' && !fs.existsSync(object))
                throw new VeloError('INTEGRITY', `object for ${rel.toString()} is missing from the store`, {suggestion: 'run velo fsck; the snapshot cannot be restored whole'})
              throw err
            }
          if (group) firstOfGroup.set(group, p)
        } // fifo and device nodes: velo-meta makes them
      } else res.metaOnly++
      const xhex = f[10].toString('latin1')
      metas.push({
        path: rel,
        type,
        mode: mode & 0o7777,
        uid: Number(f[3].toString('latin1')),
        gid: Number(f[4].toString('latin1')),
        mtimeSec: BigInt(f[5].toString('latin1')),
        mtimeNsec: Number(f[6].toString('latin1')),
        rdev: BigInt(f[7].toString('latin1')),
        ...(xhex ? {xattrs: decodeXattrs(Buffer.from(xhex, 'hex'))} : {}),
        // the root cannot be made again as a directory with other attributes is: its own that the snapshot lacks go
        ...(rel.length === 1 && rel[0] === 0x2e ? {exactXattrs: true} : {}),
      })
    } catch (err) {
      throw err instanceof VeloError ? err : fromSystemError(err, `restore of ${rel.toString()}`)
    }
  }
  // contents before their directories, directories deepest first, the root last: no later write moves a set mtime
  const depth = (m: MetaRecord) => (m.path as Buffer).filter((c) => c === 0x2f).length
  const isRoot = (m: MetaRecord) => (m.path as Buffer).length === 1 && (m.path as Buffer)[0] === 0x2e
  const dirs = metas.filter((m) => m.type === 'd').sort((a, b) => Number(isRoot(a)) - Number(isRoot(b)) || depth(b) - depth(a))
  applyMeta(dir, [...metas.filter((m) => m.type !== 'd'), ...dirs])
  return res
}
