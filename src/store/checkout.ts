import * as fs from 'node:fs'
import * as path from 'node:path'
import {VeloError, fromSystemError} from '../lib/errors'
import {applyMeta, entryMeta, MetaRecord} from '../lib/meta'
import {ManifestDb} from '../manifest/db'
import {Entry, FLAG_OPAQUE, kindOf} from '../manifest/entry'
import {checkName} from '../manifest/builder'
import {objectOf, Store} from './cas'
import {holdThawed} from './cold'
import type {Progress} from './ingest'

export interface CheckoutResult {
  image: string
  dest: string
  layers: number
  files: number
  bytes: number
  seconds: number
}

const SLASH = Buffer.from('/')
const DOT = Buffer.from('.')
const TYPE: Record<string, MetaRecord['type']> = {file: 'f', dir: 'd', symlink: 'l', fifo: 'p', char: 'c', block: 'b'}

function rmAny(p: Buffer): void {
  fs.rmSync(p as unknown as string, {recursive: true, force: true})
}

function lstatOrNull(p: Buffer): fs.Stats | null {
  try {
    return fs.lstatSync(p)
  } catch {
    return null
  }
}

/**
 * Materialize an image as a plain directory tree: real copies (never links into the store), layers applied
 * bottom to top with whiteouts and opaque directories, metadata (ns mtimes, owners, setuid bits, fifos,
 * devices) applied last by velo-meta, directories deepest first. DEST must not exist or be empty.
 */
export function checkoutImage(home: string, name: string, dest: string, progress?: Progress): CheckoutResult {
  const t0 = process.hrtime.bigint()
  const db = ManifestDb.open(home)
  try {
    const img = db.requireImage(name)
    const {dest: out, files, bytes} = checkoutLayers(home, db, img.layers, dest, progress)
    return {image: name, dest: out, layers: img.layers.length, files, bytes, seconds: Number(process.hrtime.bigint() - t0) / 1e9}
  } finally {
    db.close()
  }
}

/**
 * The layers given (bottom first) as a plain tree at DEST (new or empty). Every name is checked as it is read
 * (no '/', '.', '..', NUL, empty): a crafted layer (a pulled one) cannot make a checkout write outside DEST.
 */
export function checkoutLayers(home: string, db: ManifestDb, layers: string[], dest: string, progress?: Progress): {dest: string; files: number; bytes: number} {
  // cold objects of the layers made hot, and the store's shared lock held while they are copied (gc waits)
  const release = holdThawed(home, db, layers)
  try {
    const img = {layers}
    const store = new Store(home)
    const out = path.resolve(dest)
    try {
      const st = fs.lstatSync(out)
      if (!st.isDirectory()) throw new VeloError('ALREADY_EXISTS', `checkout target ${dest} exists and is not a directory`)
      if (fs.readdirSync(out).length > 0) throw new VeloError('ALREADY_EXISTS', `checkout target ${dest} is not empty`, {suggestion: 'give a new or empty directory'})
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err instanceof VeloError ? err : fromSystemError(err, `cannot use ${dest}`)
      try {
        fs.mkdirSync(out, {recursive: true})
      } catch (e) {
        throw fromSystemError(e, `cannot create ${dest}`)
      }
    }
    const outBuf = Buffer.from(out)
    const abs = (rel: Buffer) => (rel.equals(DOT) ? outBuf : Buffer.concat([outBuf, SLASH, rel]))

    // Final metadata per relative path (latin1 key keeps arbitrary bytes); an upper layer overwrites.
    const meta = new Map<string, MetaRecord>()
    const forget = (rel: Buffer) => {
      const k = rel.toString('latin1')
      meta.delete(k)
      const pre = k + '/'
      for (const key of meta.keys()) if (key.startsWith(pre)) meta.delete(key)
    }
    const record = (rel: Buffer, e: Entry) => {
      // opaque dirs are applied by deleting what lies below, so no overlay xattr in a checkout
      meta.set(rel.toString('latin1'), entryMeta(rel, e, TYPE[kindOf(e)] ?? 'f'))
    }

    const totalFiles = img.layers.reduce((n, l) => n + (db.getLayer(l)?.files ?? 0), 0)
    const totalBytes = img.layers.reduce((n, l) => n + (db.getLayer(l)?.logicalBytes ?? 0), 0)
    progress?.start(totalFiles, totalBytes)
    let files = 0
    let bytes = 0
    for (const layer of img.layers) {
      const dirs = new Map<number, Buffer>() // ino → relative path
      const firstLink = new Map<number, Buffer>() // hard link groups: ino → first path written
      for (const {parentIno, name: n, entry: e} of db.layerEntries(layer)) {
        if (parentIno === 0) {
          if (n.length !== 0 || kindOf(e) !== 'dir' || dirs.size > 0) throw new VeloError('INTEGRITY', `layer ${layer.slice(0, 12)}: a second or malformed root entry`, {suggestion: 'run velo fsck'})
          dirs.set(e.ino, DOT)
          record(DOT, e)
          continue
        }
        const parent = dirs.get(parentIno)
        if (!parent) throw new VeloError('INTEGRITY', `layer ${layer.slice(0, 12)}: entry ${n.toString()} has no parent directory ${parentIno}`, {suggestion: 'run velo fsck'})
        checkName(n, `layer ${layer.slice(0, 12)}`)
        const rel = parent === DOT ? n : Buffer.concat([parent, SLASH, n])
        const p = abs(rel)
        const kind = kindOf(e)
        const cur = lstatOrNull(p)
        try {
          if (kind === 'whiteout') {
            if (cur) rmAny(p)
            forget(rel)
            continue
          }
          if (kind === 'dir') {
            if (cur && !cur.isDirectory()) {
              rmAny(p)
              forget(rel)
            }
            if (cur?.isDirectory() && e.flags & FLAG_OPAQUE) {
              for (const c of fs.readdirSync(p, {encoding: 'buffer'}) as Buffer[]) rmAny(Buffer.concat([p, SLASH, c]))
              forget(rel)
            }
            if (!cur || !cur.isDirectory()) fs.mkdirSync(p)
            dirs.set(e.ino, rel)
            record(rel, e)
            continue
          }
          if (cur) {
            rmAny(p)
            forget(rel)
          }
          if (kind === 'file') {
            const first = e.nlink > 1 ? firstLink.get(e.ino) : undefined
            if (first) {
              fs.linkSync(abs(first), p)
              continue // shares the first path's inode and metadata
            }
            if (e.size === 0n) fs.writeFileSync(p, '', {flag: 'wx'})
            else {
              const o = objectOf(e) // a copy: its xattrs come from the manifest via velo-meta
              try {
                fs.copyFileSync(store.path(o), p as unknown as string, fs.constants.COPYFILE_EXCL)
              } catch (err) {
                if ((err as NodeJS.ErrnoException).code === 'ENOENT' && !fs.existsSync(store.path(o)))
                  throw new VeloError('INTEGRITY', `object for ${rel.toString()} is missing from the store`, {suggestion: 'run velo fsck, then re-ingest the image'})
                throw err
              }
            }
            if (e.nlink > 1) firstLink.set(e.ino, rel)
            files++
            bytes += Number(e.size)
            progress?.update(files, bytes)
            record(rel, e)
          } else if (kind === 'symlink') {
            fs.symlinkSync(e.target ?? Buffer.alloc(0), p)
            record(rel, e)
          } else {
            record(rel, e) // fifo/char/block: created by velo-meta
          }
        } catch (err) {
          throw err instanceof VeloError ? err : fromSystemError(err, `checkout of ${rel.toString()}`)
        }
      }
    }
    progress?.stop()
    // Non-directories first, then directories deepest first, so no later write bumps a set mtime.
    const recs = [...meta.values()]
    const depth = (r: MetaRecord) => (r.path as Buffer).filter((c) => c === 0x2f).length
    const nonDirs = recs.filter((r) => r.type !== 'd')
    const isRoot = (r: MetaRecord) => (r.path as Buffer).equals(DOT)
    const dirRecs = recs.filter((r) => r.type === 'd').sort((a, b) => Number(isRoot(a)) - Number(isRoot(b)) || depth(b) - depth(a))
    applyMeta(out, [...nonDirs, ...dirRecs])
    return {dest: out, files, bytes}
  } finally {
    release()
  }
}
