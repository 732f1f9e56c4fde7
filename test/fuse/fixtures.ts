import {spawnSync} from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import {LayerBuilder, Meta, whiteoutMeta, FLAG_OPAQUE} from '../../src/manifest/builder'
import {ManifestDb} from '../../src/manifest/db'
import {S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG} from '../../src/manifest/entry'
import {Store} from '../../src/store/cas'
import {afterEach} from 'vitest'
import {rmrf, sh, tmpDir, velo} from '../helpers'

/** One entry of a test layer, by path. Parents missing from the layer are created as 0755 root dirs. */
export type Node =
  | string // a regular file with this content, 0644
  | {data: string | Buffer; mode?: number; uid?: number; gid?: number}
  | {dir: true; mode?: number; opaque?: boolean; uid?: number}
  | {symlink: string}
  | {whiteout: true}
  | {fifo: true}
  | {hardlink: string} // path of a regular file earlier in the same layer spec

/**
 * Build a multi-layer image (bottom layer first) straight through the store's own modules, the way an
 * image import does: objects into the CAS, then one layer record per spec, then the image.
 */
export function buildImage(home: string, name: string, layers: Array<Record<string, Node>>): string[] {
  const store = new Store(home).init()
  const db = ManifestDb.open(home)
  const ids: string[] = []
  try {
    layers.forEach((spec, li) => {
      const t = (i: number): Pick<Meta, 'mtimeSec' | 'mtimeNsec'> => ({mtimeSec: BigInt(1_600_000_000 + li * 1000 + i), mtimeNsec: 1000 * i + li})
      const b = new LayerBuilder({mode: S_IFDIR | 0o755, uid: 0, gid: 0, ...t(0)})
      Object.entries(spec).forEach(([p, node], i) => {
        const parts = p.split('/').map((s) => Buffer.from(s))
        const dir = b.resolveDir(parts.slice(0, -1), p, true)
        const nm = parts[parts.length - 1]
        if (typeof node === 'string' || 'data' in node) {
          const n = typeof node === 'string' ? {data: node} : node
          const buf = Buffer.from(n.data)
          const mode = S_IFREG | (n.mode ?? 0o644)
          const meta: Meta = {mode, uid: n.uid ?? 0, gid: n.gid ?? 0, ...t(i + 1), size: BigInt(buf.length)}
          if (buf.length) meta.hash = Buffer.from(store.writeBuffer(buf, meta).hash, 'hex')
          b.put(dir, nm, meta, p)
        } else if ('dir' in node) {
          b.put(dir, nm, {mode: S_IFDIR | (node.mode ?? 0o755), uid: node.uid ?? 0, gid: 0, ...t(i + 1), flags: node.opaque ? FLAG_OPAQUE : 0}, p)
        } else if ('symlink' in node) {
          const target = Buffer.from(node.symlink)
          b.put(dir, nm, {mode: S_IFLNK | 0o777, uid: 0, gid: 0, ...t(i + 1), target, size: BigInt(target.length)}, p)
        } else if ('whiteout' in node) {
          b.put(dir, nm, whiteoutMeta(), p)
        } else if ('fifo' in node) {
          b.put(dir, nm, {mode: S_IFIFO | 0o644, uid: 0, gid: 0, ...t(i + 1)}, p)
        } else {
          const target = b.lookup(node.hardlink.split('/').map((s) => Buffer.from(s)))
          if (!target) throw new Error(`hardlink target ${node.hardlink} not in layer`)
          b.link(dir, nm, target, p)
        }
      })
      store.sync()
      const {info, entries} = b.finish(`test layer ${li}`)
      db.putLayerSync(info, entries)
      ids.push(info.id)
    })
    db.putImageSync({name, layers: ids, createdAt: new Date().toISOString(), source: 'test'})
  } finally {
    db.close()
  }
  return ids
}

/** bsdtar's mtree listing with the keywords that are properties of the tree, not of one filesystem's inodes. */
export const MTREE_KEYWORDS = '!all,type,mode,uid,gid,size,link,sha256digest,time,nlink,device'
export function mtree(dir: string): string {
  const r = spawnSync('bsdtar', ['--format=mtree', '--options', MTREE_KEYWORDS, '-cf', '-', '-C', dir, '.'], {maxBuffer: 1 << 30})
  if (r.status !== 0) throw new Error(`bsdtar on ${dir} failed: ${r.stderr}`)
  return r.stdout.toString('latin1')
}

/** sha256sum of every regular file, in path order, as the tool prints it. */
export function sha256All(dir: string): string {
  const r = sh(`cd '${dir}' && find . -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum`)
  if (r.status !== 0) throw new Error(`sha256sum in ${dir} failed: ${r.stderr}`)
  return r.stdout
}

/** Mount points this test process made, unmounted in afterEach whatever happened. */
export class MountGuard {
  private readonly items: Array<{home: string; dir: string}> = []

  add(home: string, dir: string): string {
    this.items.push({home, dir})
    return dir
  }

  /** velo umount --force --lazy, then umount -l and SIGKILL for whatever is still there. */
  cleanup(): void {
    for (const {home, dir} of this.items.splice(0)) {
      velo(home, ['umount', '--force', '--lazy', dir])
      if (fs.readFileSync('/proc/self/mountinfo', 'utf8').includes(` ${dir} `)) sh(`umount -l '${dir}'`)
    }
  }

  /** Kill every daemon recorded in HOME and detach its mount (for homes whose records survived a failure). */
  static killAll(home: string): void {
    const d = path.join(home, 'mounts')
    if (!fs.existsSync(d)) return
    for (const f of fs.readdirSync(d).filter((n) => n.endsWith('.json'))) {
      try {
        const r = JSON.parse(fs.readFileSync(path.join(d, f), 'utf8'))
        sh(`umount -l '${r.dir}' 2>/dev/null; kill -9 ${Number(r.pid)} 2>/dev/null`)
      } catch {
        /* unreadable record */
      }
    }
  }
}

/**
 * Call inside a describe(): a MountGuard and a maker of temp dirs. After each test, whatever happened, every
 * mount is detached, every daemon recorded in those dirs killed, and the dirs removed.
 */
export function mountFixture(): {guard: MountGuard; tmp: (prefix: string) => string} {
  const guard = new MountGuard()
  const dirs: string[] = []
  afterEach(() => {
    guard.cleanup()
    for (const d of dirs.splice(0)) {
      MountGuard.killAll(d)
      rmrf(d)
    }
  })
  return {
    guard,
    tmp: (prefix) => {
      const d = tmpDir(prefix)
      dirs.push(d)
      return d
    },
  }
}

/** velo mount IMAGE DIR (detached); registers DIR with GUARD. Throws with stderr when it fails.
 *  ENV reaches the daemon: VELO_FUSE_PASSTHROUGH=0 makes it serve every read itself. */
export function mount(guard: MountGuard, home: string, image: string, dir: string, env: Record<string, string> = {}): {pid: number; dir: string} {
  if (!fs.existsSync(dir)) fs.mkdirSync(dir, {recursive: true}) // (a stale mount point cannot be mkdir'ed)
  guard.add(home, dir)
  const r = velo(home, ['mount', image, dir, '--json'], {env})
  if (r.status !== 0) throw new Error(`velo mount ${image} ${dir} exited ${r.status}: ${r.stderr}`)
  return JSON.parse(r.stdout)
}

/** Why this kernel cannot idmap a FUSE mount, or undefined when it can: asked of a real velo-fuse daemon
 *  (`velo mount --json` says whether the kernel offered FUSE_ALLOW_IDMAP, Linux 6.12+). */
export function fuseIdmapMissing(): string | undefined {
  const home = tmpDir('velo-fuse-probe-')
  const dir = path.join(home, 'mnt')
  try {
    buildImage(home, 'probe', [{a: 'x'}])
    fs.mkdirSync(dir)
    const r = velo(home, ['mount', 'probe', dir, '--json'])
    if (r.status !== 0) throw new Error(`velo mount exited ${r.status}: ${r.stderr}`)
    return JSON.parse(r.stdout).idmap === true ? undefined : `this kernel (${os.release()}) cannot idmap a FUSE mount (FUSE_ALLOW_IDMAP needs Linux 6.12+)`
  } finally {
    velo(home, ['umount', dir])
    rmrf(home)
  }
}

export const isMounted = (dir: string): boolean =>
  fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[4] === dir)
