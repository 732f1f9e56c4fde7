import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {VeloError, fromSystemError} from '../lib/errors'
import {StoreLock} from '../lib/lock'
import {applyMeta, entryMeta, MetaRecord} from '../lib/meta'
import type {ManifestDb} from '../manifest/db'
import {FLAG_OPAQUE, kindOf} from '../manifest/entry'
import {objectOf, Store} from '../store/cas'
import {thawLayers} from '../store/cold'

const SLASH = Buffer.from('/')
const DOT = Buffer.from('.')
const TYPE: Record<string, MetaRecord['type']> = {dir: 'd', symlink: 'l', fifo: 'p', char: 'c', block: 'b', whiteout: 'w', file: 'f'}

export const farmsDir = (home: string) => path.join(home, 'farms')
export const farmPath = (home: string, layer: string) => path.join(farmsDir(home), layer)

export interface FarmStats {
  layer: string
  built: boolean
  links: number
  copies: number
  seconds: number
}

/**
 * A link farm: one layer as a directory tree whose regular files are hard links to the CAS objects (the
 * object inode already carries the file's mode/uid/gid). Built once per layer, atomically (temp dir under
 * farms/, then rename), under the store's shared lock so gc cannot sweep objects mid-build; afterwards
 * shared read-only, as an overlay lowerdir, by every tenant of every image holding that layer.
 */
export function ensureFarm(home: string, db: ManifestDb, layer: string): FarmStats {
  const final = farmPath(home, layer)
  if (fs.existsSync(final)) return {layer, built: false, links: 0, copies: 0, seconds: 0}
  const t0 = process.hrtime.bigint()
  const lock = new StoreLock(path.join(home, 'lock')).acquire('shared')
  const tmp = path.join(farmsDir(home), `.tmp-${layer.slice(0, 16)}-${process.pid}-${crypto.randomBytes(4).toString('hex')}`)
  try {
    if (fs.existsSync(final)) return {layer, built: false, links: 0, copies: 0, seconds: 0}
    if (!db.hasLayer(layer)) throw new VeloError('NOT_FOUND', `layer ${layer.slice(0, 12)} is not in the store`, {suggestion: 'run velo fsck; re-ingest or re-import the image'})
    thawLayers(home, db, [layer]) // its cold objects hot again, under the lock gc's freeze waits for
    fs.mkdirSync(farmsDir(home), {recursive: true, mode: 0o700})
    fs.mkdirSync(tmp, {mode: 0o700})
    const store = new Store(home)
    const tmpBuf = Buffer.from(tmp)
    const abs = (rel: Buffer) => (rel === DOT ? tmpBuf : Buffer.concat([tmpBuf, SLASH, rel])) as unknown as string
    const dirs = new Map<number, Buffer>()
    const firstLink = new Map<number, Buffer>()
    const nonDirs: MetaRecord[] = []
    const dirRecs: Array<MetaRecord & {depth: number}> = []
    let links = 0
    let copies = 0
    for (const {parentIno, name, entry: e} of db.layerEntries(layer)) {
      const meta = (rel: Buffer, type: MetaRecord['type']): MetaRecord => entryMeta(rel, e, type, {opaque: (e.flags & FLAG_OPAQUE) !== 0})
      if (parentIno === 0) {
        dirs.set(e.ino, DOT)
        dirRecs.push({...meta(DOT, 'd'), depth: -1})
        continue
      }
      const parent = dirs.get(parentIno)
      if (!parent) throw new VeloError('INTEGRITY', `layer ${layer.slice(0, 12)}: ${name.toString()} has no parent directory`, {suggestion: 'run velo fsck'})
      if (name.includes(0x2f) || name.equals(DOT) || name.toString('latin1') === '..' || name.length === 0)
        throw new VeloError('INTEGRITY', `layer ${layer.slice(0, 12)}: bad name ${JSON.stringify(name.toString())}`)
      const rel = parent === DOT ? name : Buffer.concat([parent, SLASH, name])
      const kind = kindOf(e)
      try {
        switch (kind) {
          case 'dir':
            fs.mkdirSync(abs(rel), {mode: 0o700})
            dirs.set(e.ino, rel)
            dirRecs.push({...meta(rel, 'd'), depth: rel.filter((c) => c === 0x2f).length})
            break
          case 'file': {
            const first = e.nlink > 1 ? firstLink.get(e.ino) : undefined
            if (first) {
              fs.linkSync(abs(first), abs(rel))
              break
            }
            if (e.size === 0n) {
              // never hard-link empty files: all of them would share one inode (and its metadata)
              fs.writeFileSync(abs(rel), '', {flag: 'wx', mode: 0o600})
              nonDirs.push(meta(rel, 'f'))
            } else {
              // the object inode carries mode, owner and xattrs (they are part of its name)
              const src = store.path(objectOf(e))
              try {
                fs.linkSync(src, abs(rel))
                links++
              } catch (err) {
                const code = (err as NodeJS.ErrnoException).code
                if (code === 'EMLINK') {
                  // ext4 stops at 65,000 links per inode: this path gets its own copy
                  fs.copyFileSync(src, abs(rel), fs.constants.COPYFILE_EXCL)
                  nonDirs.push(meta(rel, 'f'))
                  copies++
                } else if (code === 'ENOENT' && !fs.existsSync(src)) {
                  throw new VeloError('INTEGRITY', `object for ${rel.toString()} (layer ${layer.slice(0, 12)}) is missing from the store`, {suggestion: 'run velo fsck, then re-ingest the image'})
                } else if (code === 'EXDEV') {
                  throw new VeloError('CROSS_DEVICE', `cannot link ${rel.toString()} into the farm: ${farmsDir(home)} and the store are on different filesystems`, {
                    suggestion: 'keep VELO_HOME (cas/ and farms/) on one filesystem',
                  })
                } else throw err
              }
            }
            if (e.nlink > 1) firstLink.set(e.ino, rel)
            break
          }
          case 'symlink':
            fs.symlinkSync(e.target ?? Buffer.alloc(0), abs(rel))
            nonDirs.push(meta(rel, 'l'))
            break
          case 'socket':
            break
          default:
            nonDirs.push(meta(rel, TYPE[kind])) // fifo, char, block, whiteout: created by velo-meta
        }
      } catch (err) {
        throw err instanceof VeloError ? err : fromSystemError(err, `farm for layer ${layer.slice(0, 12)}: ${rel.toString()}`)
      }
    }
    dirRecs.sort((a, b) => b.depth - a.depth) // deepest first, root last: mtimes stick
    applyMeta(tmp, [...nonDirs, ...dirRecs])
    try {
      fs.renameSync(tmp, final)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw fromSystemError(err, `cannot publish farm ${final}`)
      // another builder won the race: theirs is identical
    }
    return {layer, built: true, links, copies, seconds: Number(process.hrtime.bigint() - t0) / 1e9}
  } finally {
    if (fs.existsSync(tmp)) fs.rmSync(tmp, {recursive: true, force: true})
    lock.release()
  }
}
