import {FLAG_OPAQUE, FLAG_WHITEOUT, LayerInfo, ManifestDb} from '../manifest/db'
import {Entry, kindOf, S_IFDIR, S_IFMT, S_IFREG, ZERO_HASH} from '../manifest/entry'
import {LayerBuilder, Meta, newMeta, TreeNode} from '../manifest/builder'

/**
 * The merged view of an image computed from its manifests alone (no farm, no mount): layers applied bottom
 * first with OCI/overlay semantics — a WHITEOUT entry deletes the name (and everything under it) from the
 * layers below, an OPAQUE directory hides the lower layers' children, a non-directory replaces whatever was
 * below, and a directory over a directory merges. This is what `docker run` shows for the same layers, and
 * what tests compare against Docker.
 */
export interface ViewNode {
  entry: Entry
  layer: string
  children?: Map<string, ViewNode>
}

export function mergedView(db: ManifestDb, layers: string[]): ViewNode {
  let root: ViewNode | undefined
  for (const layer of layers) {
    const byIno = new Map<number, ViewNode>()
    for (const {parentIno, name, entry} of db.layerEntries(layer)) {
      if (parentIno === 0) {
        // The layer root: merge (a root is always a directory); opaque root drops everything below.
        if (!root || entry.flags & FLAG_OPAQUE) root = {entry, layer, children: new Map()}
        else root.entry = entry
        byIno.set(entry.ino, root)
        continue
      }
      const parent = byIno.get(parentIno)
      if (!parent?.children) throw new Error(`layer ${layer}: entry ${name.toString()} has no parent directory in the view`)
      const k = name.toString('latin1')
      if (entry.flags & FLAG_WHITEOUT) {
        parent.children.delete(k)
        continue
      }
      const old = parent.children.get(k)
      const isDir = (entry.mode & S_IFMT) === S_IFDIR
      let node: ViewNode
      if (isDir && old?.children && !(entry.flags & FLAG_OPAQUE)) {
        old.entry = entry
        old.layer = layer
        node = old
      } else {
        node = {entry, layer, children: isDir ? new Map() : undefined}
        parent.children.set(k, node)
      }
      if (isDir) byIno.set(entry.ino, node)
    }
  }
  if (!root) throw new Error('image has no layers')
  return root
}

/**
 * One layer with what a stack of layers shows (mergedView): no whiteouts, no opaque marks, hard links kept (a group
 * lives in one layer). Its entries are those a walk of the same tree gives, so it has the id a full ingest of that
 * tree gets. What a volume snapshot stored as a delta becomes where one layer is needed (its `.snapshots` view).
 */
export function squashLayers(db: ManifestDb, layers: string[], source: string): {info: LayerInfo; entries: Array<{key: Buffer; value: Buffer}>} {
  const view = mergedView(db, layers)
  const metaOf = (e: Entry): Meta => {
    const m = newMeta(e.mode, e.uid, e.gid, e.mtimeSec, e.mtimeNsec)
    const type = e.mode & S_IFMT
    if (type === S_IFREG) {
      m.size = e.size
      if (e.size > 0n) m.hash = e.hash
    } else if (e.target) {
      m.target = e.target
      m.size = e.size
    } else if (type !== S_IFDIR) m.rdev = e.rdev
    if (e.xattrs?.length) m.xattrs = e.xattrs
    return m
  }
  const builder = new LayerBuilder(metaOf(view.entry))
  const groups = new Map<string, TreeNode>() // "layer:ino" of a hard-link group → its first member
  const visit = (from: ViewNode, to: TreeNode, where: string) => {
    for (const [k, c] of from.children!) {
      const name = Buffer.from(k, 'latin1')
      const at = `${where}/${k}`
      const e = c.entry
      const g = (e.mode & S_IFMT) === S_IFREG && e.nlink > 1 ? `${c.layer}:${e.ino}` : undefined
      const first = g ? groups.get(g) : undefined
      if (first) {
        builder.link(to, name, first, at)
        continue
      }
      const node = builder.put(to, name, metaOf(e), at, k)
      if (g) groups.set(g, node)
      if (c.children) visit(c, node, at)
    }
  }
  visit(view, builder.root, '')
  return builder.finish(source)
}

export interface ListingRow {
  path: string
  type: string
  mode: string // permission bits, octal
  uid: number
  gid: number
  size: number
  hash: string // BLAKE3 of the content (files); '' otherwise
  target: string // symlink target
  rdev: string
  xattrs: string // "name=hexvalue" sorted by name, comma-separated; '' when none
}

/** The listing form of a set of xattrs (what tests compare across velo, disk and Docker). */
export const fmtXattrs = (x: Array<{name: Buffer; value: Buffer}> | undefined): string =>
  (x ?? [])
    .map((a) => `${a.name.toString('utf8')}=${a.value.toString('hex')}`)
    .sort()
    .join(',')

/** A full listing of a view, sorted by path: what tests compare with a Docker container's tree. */
export function listView(root: ViewNode): ListingRow[] {
  const out: ListingRow[] = []
  const visit = (node: ViewNode, p: string) => {
    const e = node.entry
    const kind = kindOf(e)
    out.push({
      path: p || '.',
      type: kind,
      mode: (e.mode & 0o7777).toString(8),
      uid: e.uid,
      gid: e.gid,
      size: kind === 'file' ? Number(e.size) : 0,
      hash: kind === 'file' && !e.hash.equals(ZERO_HASH) ? e.hash.toString('hex') : '',
      target: e.target ? e.target.toString('utf8') : '',
      rdev: kind === 'char' || kind === 'block' ? String(e.rdev) : '',
      xattrs: fmtXattrs(e.xattrs),
    })
    if (node.children) for (const [k, c] of [...node.children.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1))) visit(c, p ? `${p}/${Buffer.from(k, 'latin1').toString('utf8')}` : Buffer.from(k, 'latin1').toString('utf8'))
  }
  visit(root, '')
  return out
}

export function listImage(db: ManifestDb, name: string): ListingRow[] {
  return listView(mergedView(db, db.requireImage(name).layers))
}
