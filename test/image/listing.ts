import * as fs from 'node:fs'
import * as path from 'node:path'
import {Blake3Hasher} from '@napi-rs/blake-hash'
import {fmtXattrs, listImage, ListingRow} from '../../src/image/view'
import {ManifestDb} from '../../src/manifest/db'
import {tarEntries} from '../../src/image/stream'
import {paxXattrs} from '../../src/image/layer'
import {readXattrTree} from '../../src/store/xattr-io'

/**
 * Full listings (path, type, mode, uid, gid, size, BLAKE3 of content, link target, rdev) of a directory tree
 * on disk and of a tar stream (e.g. `docker export`), in the same shape as src/image/view.ts listView(), with
 * extended attributes (on disk: read by native velo-xattr without following symlinks; in a tar: PAX
 * SCHILY.xattr records read as bytes).
 */

const hashFile = (p: string) => {
  const h = new Blake3Hasher()
  h.update(fs.readFileSync(p))
  return h.digest('hex')
}

export function listDir(root: string): ListingRow[] {
  const out: ListingRow[] = []
  const xt = new Map([...readXattrTree(root)].map(([k, v]) => [Buffer.from(k, 'latin1').toString('utf8'), v]))
  const visit = (rel: string) => {
    const p = rel ? path.join(root, rel) : root
    const st = fs.lstatSync(p)
    const type = st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isFIFO() ? 'fifo' : st.isCharacterDevice() ? 'char' : st.isBlockDevice() ? 'block' : 'socket'
    out.push({
      path: rel || '.',
      type,
      mode: (st.mode & 0o7777).toString(8),
      uid: st.uid,
      gid: st.gid,
      size: type === 'file' ? st.size : 0,
      hash: type === 'file' && st.size > 0 ? hashFile(p) : '',
      target: type === 'symlink' ? fs.readlinkSync(p) : '',
      rdev: type === 'char' || type === 'block' ? String(st.rdev) : '',
      xattrs: fmtXattrs(xt.get(rel || '.')),
    })
    if (type === 'dir') for (const n of fs.readdirSync(p).sort()) visit(rel ? `${rel}/${n}` : n)
  }
  visit('')
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
}

const TYPES: Record<string, string> = {file: 'file', 'contiguous-file': 'file', directory: 'dir', symlink: 'symlink', fifo: 'fifo', 'character-device': 'char', 'block-device': 'block'}

export async function listTarStream(src: AsyncIterable<Buffer>): Promise<ListingRow[]> {
  const rows = new Map<string, ListingRow>()
  const utf8 = (s: string | null | undefined) => Buffer.from(s ?? '', 'latin1').toString('utf8') // names come as raw bytes
  for await (const e of tarEntries(src, 'listing')) {
    const h = {...(e.header as any), name: utf8(e.header.name), linkname: utf8(e.header.linkname)}
    const p = h.name.replace(/^\.\//, '').replace(/\/$/, '') || '.'
    const hasher = new Blake3Hasher()
    let size = 0
    for await (const c of e.stream) {
      hasher.update(c)
      size += c.length
    }
    if (h.type === 'link') {
      const t = rows.get(h.linkname.replace(/^\.\//, ''))
      if (!t) throw new Error(`hard link ${p} to unknown ${h.linkname}`)
      rows.set(p, {...t, path: p})
      continue
    }
    const type = TYPES[h.type] ?? h.type
    rows.set(p, {
      path: p,
      type,
      mode: (h.mode & 0o7777).toString(8),
      uid: h.uid,
      gid: h.gid,
      size: type === 'file' ? size : 0,
      hash: type === 'file' && size > 0 ? hasher.digest('hex') : '',
      target: type === 'symlink' ? h.linkname : '',
      rdev: type === 'char' || type === 'block' ? String((h.devminor & 0xff) | (h.devmajor << 8) | ((h.devminor & ~0xff) << 12)) : '',
      xattrs: fmtXattrs(paxXattrs(h.pax)),
    })
  }
  return [...rows.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
}

export const fmtRows = (rows: ListingRow[]) => rows.map((r) => `${r.path} ${r.type} ${r.mode} ${r.uid}:${r.gid} ${r.size} ${r.hash.slice(0, 16)} ${r.target} ${r.rdev} ${r.xattrs}`)

/** Run f on the home's manifest database, closing it after (it holds an LMDB reader). */
export function withDb<T>(home: string, f: (db: ManifestDb) => T): T {
  const db = ManifestDb.open(home)
  try {
    return f(db)
  } finally {
    db.close()
  }
}

/** An image's merged listing as `velo image ls`-style rows, read straight from the manifest. */
export const imageRows = (home: string, name: string): ListingRow[] => withDb(home, (db) => listImage(db, name))
