import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import {decodeIndex, PackIndex} from './packs'

/**
 * What this store knows about registries, under `$VELO_HOME/remote/` (docs/registry.md): pack indexes it
 * pushed or pulled (`indexes/<sha256 hex>`, the index bytes, content-addressed) and, per registry, which
 * repository holds each of them (`registries/<host_port>/<index hex>` holding the repository name). A push
 * uses them to reuse packs the registry already has — in the target repository as they are, from another
 * repository by a cross-repository mount — and a lazy reader will find its index here without a request.
 * Everything here is a hint: a push checks every reused pack with HEAD, and a wrong or stale file costs a
 * re-upload, never a wrong image. No credentials are kept here.
 */

const safe = (registry: string) => registry.replace(/[^A-Za-z0-9._-]/g, '_')

function writeAtomic(file: string, data: Buffer | string): void {
  fs.mkdirSync(path.dirname(file), {recursive: true, mode: 0o700})
  const tmp = `${file}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`
  fs.writeFileSync(tmp, data, {mode: 0o600})
  fs.renameSync(tmp, file)
}

export class RemoteCache {
  readonly dir: string
  constructor(home: string) {
    this.dir = path.join(home, 'remote')
  }

  get uploadsDir(): string {
    return path.join(this.dir, 'uploads')
  }

  remember(registry: string, repo: string, indexDigest: string, indexBytes: Buffer): void {
    try {
      const hex = indexDigest.slice(7)
      const f = path.join(this.dir, 'indexes', hex)
      if (!fs.existsSync(f)) writeAtomic(f, indexBytes)
      writeAtomic(path.join(this.dir, 'registries', safe(registry), hex), repo)
    } catch {
      // a hint only: a store we cannot write here still pushes and pulls
    }
  }

  /** Where blobs of this registry are (for cross-repository mounts): `registries/<host>/blobs/<hex>` holds a repository. */
  rememberBlobs(registry: string, repo: string, digests: string[]): void {
    try {
      for (const d of digests) {
        const f = path.join(this.dir, 'registries', safe(registry), 'blobs', d.slice(7))
        if (this.blobRepo(registry, d) !== repo) writeAtomic(f, repo)
      }
    } catch {}
  }

  blobRepo(registry: string, digest: string): string | undefined {
    try {
      return fs.readFileSync(path.join(this.dir, 'registries', safe(registry), 'blobs', digest.slice(7)), 'utf8').trim() || undefined
    } catch {
      return undefined
    }
  }

  index(indexDigest: string): PackIndex | undefined {
    try {
      const b = fs.readFileSync(path.join(this.dir, 'indexes', indexDigest.slice(7)))
      if ('sha256:' + crypto.createHash('sha256').update(b).digest('hex') !== indexDigest) return undefined
      return decodeIndex(b)
    } catch {
      return undefined
    }
  }

  /** Indexes known at this registry, with the repository that holds each. */
  known(registry: string): Array<{digest: string; repo: string}> {
    const d = path.join(this.dir, 'registries', safe(registry))
    let names: string[]
    try {
      names = fs.readdirSync(d)
    } catch {
      return []
    }
    const out: Array<{digest: string; repo: string}> = []
    for (const n of names) {
      if (!/^[0-9a-f]{64}$/.test(n)) continue
      try {
        out.push({digest: `sha256:${n}`, repo: fs.readFileSync(path.join(d, n), 'utf8').trim()})
      } catch {}
    }
    return out
  }
}

/**
 * A temp dir for a push's packs or layer tars: in the store's tmp/ (the caller holds the store's shared lock,
 * and `velo gc` removes what a killed push leaves there), else — a store this user may only read — the
 * system's temp dir.
 */
export function pushTempDir(home: string): string {
  try {
    return fs.mkdtempSync(path.join(home, 'tmp', 'push-'))
  } catch {
    return fs.mkdtempSync(path.join(os.tmpdir(), 'velo-push-'))
  }
}
