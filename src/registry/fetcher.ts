/**
 * The fetcher of a lazy image's mount (docs/registry.md "Lazy images"; native/fuse/lazy.c is the other end).
 * velo-fuse starts it as its child: `node lazy-fetcher.js HOME IMAGE TIMEOUT_MS SOCKET`. It listens on SOCKET;
 * each connection asks for one object by its CAS file name ("NAME\n") and gets "ok\n" once the object is in
 * the store — one Range GET into its pack, inflated if flagged, verified against its BLAKE3, linked atomically
 * (Store.writeBuffer) — or "err MESSAGE\n". Failures are retried with backoff within TIMEOUT_MS (the daemon's
 * own bound, after which the opener gets EIO). The registry client is src/registry's: auth, TLS and token
 * refresh as for push and pull.
 */
import * as fs from 'node:fs'
import * as net from 'node:net'
import * as path from 'node:path'
import {logJson, logLine} from '../lib/log'
import {VeloError} from '../lib/errors'
import {StoreLock} from '../lib/lock'
import {ManifestDb} from '../manifest/db'
import {objectName, parseObjectName, Store, VariantMeta} from '../store/cas'
import {Xattrs} from '../manifest/xattrs'
import {findCredentials} from './auth'
import {getBlob} from './blobs'
import {RemoteCache} from './cache'
import {RegistryClient} from './client'
import {decodeIndex, PackIndex} from './packs'
import {lazyCacheMax, LazyRecord, openObject, readLazyRecord} from './lazy'
import {trimLazyCache} from '../store/maintenance'

// its stderr is the mount's log: a dated line, or with VELO_LOG=json one JSON object (src/lib/log.ts)
const log = (msg: string) =>
  logJson() ? logLine(/FAILED|cannot/.test(msg) ? 'error' : 'info', msg, {component: 'velo-lazy-fetcher'}) : process.stderr.write(`${new Date().toISOString()} velo lazy-fetcher[${process.pid}]: ${msg}\n`)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

export class Fetcher {
  private client: RegistryClient
  private idx: PackIndex | undefined
  private readonly store: Store
  private readonly inflight = new Map<string, Promise<void>>()
  private xattrs: Map<string, Xattrs> | undefined
  fetched = 0
  private sinceTrim = 0
  private readonly cacheMax = lazyCacheMax()

  constructor(
    readonly home: string,
    readonly rec: LazyRecord,
    readonly timeoutMs: number,
  ) {
    this.store = new Store(home)
    this.client = this.newClient()
  }

  private newClient(): RegistryClient {
    return new RegistryClient(this.rec.registry, {insecure: this.rec.insecure, ca: this.rec.ca, credentials: findCredentials(this.rec.registry)})
  }

  private async index(): Promise<PackIndex> {
    if (this.idx) return this.idx
    const cache = new RemoteCache(this.home)
    let idx = cache.index(this.rec.index)
    if (!idx) {
      const b = await getBlob(this.client, this.rec.repo, this.rec.index, `pack index of ${this.rec.ref}`, 1 << 30)
      idx = decodeIndex(b, `pack index of ${this.rec.ref}`)
      cache.remember(this.rec.registry, this.rec.repo, this.rec.index, b)
    }
    return (this.idx = idx)
  }

  /** The xattr block of a variant with xattrs (its name has only the digest): from the image's layer entries. */
  private xattrsOf(digest: string): Xattrs {
    if (!this.xattrs) {
      this.xattrs = new Map()
      const db = ManifestDb.open(this.home)
      try {
        for (const l of this.rec.layers) for (const {entry} of db.layerEntries(l)) if (entry.xattrDigest && entry.xattrs) this.xattrs.set(entry.xattrDigest, entry.xattrs)
      } finally {
        db.close()
      }
    }
    const x = this.xattrs.get(digest)
    if (!x) throw new VeloError('NOT_FOUND', `no entry of image ${this.rec.image} has the xattr block ${digest}`)
    return x
  }

  /** Bring the object named NAME (its CAS file name) into the store; concurrent asks for one name share the work. */
  get(name: string): Promise<void> {
    let p = this.inflight.get(name)
    if (!p) {
      p = this.fetch(name).finally(() => this.inflight.delete(name))
      this.inflight.set(name, p)
    }
    return p
  }

  private async fetch(name: string): Promise<void> {
    const id = parseObjectName(name)
    if (!id || objectName(id) !== name) throw new VeloError('BAD_INPUT', `${JSON.stringify(name)} is not an object name`)
    if (this.store.has(id)) return
    const meta: VariantMeta = {mode: id.mode, uid: id.uid, gid: id.gid}
    if (id.xattrs) meta.xattrs = this.xattrsOf(id.xattrs)
    // another variant of the same content already here (another image, another mode): no request
    const dir = path.dirname(this.store.path(id))
    const sibling = fs.readdirSync(dir).find((n) => n.startsWith(`${id.hash}_${id.size}_`) && !n.endsWith('.zst') && !n.endsWith('.cdc')) // a plain one, not a cold copy
    if (sibling) return this.write(() => this.store.writeFile(path.join(dir, sibling), {...meta, size: id.size}))
    const deadline = Date.now() + this.timeoutMs
    let delay = 100
    for (let attempt = 1; ; attempt++) {
      try {
        const idx = await this.index()
        const what = `object ${id.hash}`
        // the request, until the registry answers (no lock taken, nothing written yet) ...
        const obj = await withDeadline(openObject(this.client, this.rec.repo, idx, id.hash, id.size), deadline - Date.now(), what)
        // ... then its bytes into the store, under the lock, ended at the deadline (its temp file goes with it)
        const left = deadline - Date.now()
        const cancel = setTimeout(() => obj.abort(timedOut(`${what}: the registry did not send it within the ${this.timeoutMs} ms allowed`)), Math.max(0, left))
        try {
          if (left <= 0) {
            obj.abort()
            throw timedOut(`${what}: no time left`)
          }
          await this.writing(() => obj.store(this.store, meta))
        } finally {
          clearTimeout(cancel)
        }
        this.fetched++
        this.sinceTrim += id.size
        if (this.sinceTrim >= Math.min(64 << 20, this.cacheMax / 8)) this.trim() // between writes only

        return
      } catch (err) {
        const e = err instanceof VeloError ? err : new VeloError('INTERNAL', String((err as Error)?.message ?? err))
        // an object the index does not list, a damaged record: no retry helps
        // nor a full or read-only disk
        if (['NOT_FOUND', 'BAD_INPUT', 'AUTH', 'NO_SPACE', 'PERMISSION_DENIED'].includes(e.code) || Date.now() + delay >= deadline) throw e
        log(`object ${name}: attempt ${attempt} failed (${e.message}); again in ${delay} ms`)
        if ((e as {timedOut?: boolean}).timedOut) {
          // a request that hangs: drop its sockets with the client
          this.client.close()
          this.client = this.newClient()
        }
        await sleep(delay)
        delay = Math.min(delay * 2, 2000)
      }
    }
  }

  /** Keep the lazily fetched objects under the cap (evicting those of lazy images not in use). */
  trim(): void {
    if (this.active) return // its exclusive lock needs ours let go, which a write in flight holds
    this.sinceTrim = 0
    this.unlock() // its exclusive lock would wait on our own shared one
    try {
      const r = trimLazyCache(this.home, this.cacheMax)
      if (r.evicted) log(`cache: ${r.cachedBytes} bytes over the cap ${this.cacheMax}: evicted ${r.evicted} objects (${r.evictedBytes} bytes) of lazy images not in use`)
    } catch (err) {
      log(`cache trim failed: ${(err as Error).message}`)
    }
  }

  /**
   * Writes under the store's shared lock: gc (exclusive) never clears tmp/ under a write. Taken once for a
   * burst of fetches (flock(1) costs a process) and dropped after 200 ms without a write, so gc waits no longer.
   */
  private lock: StoreLock | undefined
  private lockTimer: NodeJS.Timeout | undefined
  private write(fn: () => unknown): void {
    this.holdLock()
    try {
      fn()
    } finally {
      this.letGoLater()
    }
  }

  /** write, for a write that streams (an object fetched into the store): the lock is held until the last one ends */
  private active = 0
  private async writing<T>(fn: () => Promise<T>): Promise<T> {
    this.holdLock()
    this.active++
    try {
      return await fn()
    } finally {
      this.active--
      this.letGoLater()
    }
  }

  private holdLock(): void {
    if (!this.lock) this.lock = new StoreLock(path.join(this.home, 'lock')).acquire('shared', {timeoutSec: Math.max(1, Math.ceil(this.timeoutMs / 1000))})
    if (this.lockTimer) clearTimeout(this.lockTimer)
    this.lockTimer = undefined
  }

  private letGoLater(): void {
    if (this.active === 0) this.lockTimer = setTimeout(() => this.unlock(), 200)
  }

  private unlock(): void {
    if (this.lockTimer) clearTimeout(this.lockTimer)
    this.lockTimer = undefined
    this.lock?.release()
    this.lock = undefined
  }

  close(): void {
    this.unlock()
    this.client.close()
  }
}

const timedOut = (m: string) => Object.assign(new VeloError('UNREACHABLE', m, {suggestion: 'check that the registry runs and answers'}), {timedOut: true})

function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  if (ms <= 0) return Promise.reject(timedOut(`${what}: no time left`))
  let t: NodeJS.Timeout
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise<T>((_, reject) => {
      t = setTimeout(() => reject(timedOut(`${what}: the registry did not answer within ${ms} ms`)), ms)
    }),
  ])
}

export async function serve(home: string, image: string, timeoutMs: number, socket: string): Promise<net.Server> {
  const rec = readLazyRecord(home, image)
  if (!rec) throw new VeloError('NOT_FOUND', `image ${image} is not a lazy image of this store (no remote/lazy/${image}.json)`)
  // The socket path is the mount's (HOME/mounts/ID.fetch), and a newer mount of the same dir (a CI job's home removed
  // and made again while this mount was lazily unmounted) may own it by now: a fetcher whose daemon is gone — it died
  // while Node was still starting — leaves at once, before it touches the path. (Seen: such a fetcher removed the
  // newer fetcher's socket, and the newer mount's reads failed with EIO.)
  const daemon = Number(process.env.VELO_FUSE_PID) || undefined
  const orphaned = () => daemon !== undefined && process.ppid !== daemon
  if (orphaned()) process.exit(0)
  const f = new Fetcher(home, rec, timeoutMs)
  fs.rmSync(socket, {force: true})
  const server = net.createServer((conn) => {
    let buf = ''
    conn.setEncoding('utf8')
    conn.on('error', () => {})
    conn.on('data', (d: string) => {
      buf += d
      const nl = buf.indexOf('\n')
      if (nl < 0) {
        if (buf.length > 512) conn.destroy()
        return
      }
      const name = buf.slice(0, nl)
      buf = ''
      const t0 = Date.now()
      f.get(name).then(
        () => {
          log(`object ${name}: in the store (${Date.now() - t0} ms)`)
          conn.end('ok\n')
        },
        (err) => {
          const msg = String((err as Error)?.message ?? err).replace(/\s+/g, ' ')
          log(`object ${name}: FAILED: ${msg}`)
          conn.end(`err ${msg}\n`)
        },
      )
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(socket, () => resolve())
  })
  fs.chmodSync(socket, 0o600)
  // Only our own socket is removed on the way out (a newer mount's fetcher may listen on the path by then). The inode
  // number alone does not say it (a removed home's freed inodes are handed out again at once): its times too.
  const id = (st: fs.BigIntStats) => `${st.ino}:${st.ctimeNs}:${st.birthtimeNs}`
  const mine = id(fs.statSync(socket, {bigint: true}))
  // No server.close(): libuv unlinks a listening pipe's path when it closes it, whoever's socket is there by then
  // (this was the EIO); the process exits and the kernel closes the socket.
  const stop = () => {
    f.close()
    try {
      if (id(fs.statSync(socket, {bigint: true})) === mine) fs.rmSync(socket, {force: true})
    } catch {}
    process.exit(0)
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
  // the daemon's death signal (PR_SET_PDEATHSIG) can come before the handler above exists: watch the parent too
  if (daemon !== undefined) setInterval(() => orphaned() && stop(), 500).unref()
  log(`serving ${rec.ref} (image ${image}) on ${socket}`)
  setImmediate(() => f.trim())
  return server
}

if (require.main === module) {
  const [home, image, timeout, socket] = process.argv.slice(2)
  serve(home, image, Number(timeout) || 30000, socket).catch((err) => {
    log(`cannot start: ${(err as Error).message}`)
    process.exit(1)
  })
}
