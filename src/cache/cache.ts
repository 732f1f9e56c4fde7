import * as fs from 'node:fs'
import * as path from 'node:path'
import {VeloError, fromSystemError} from '../lib/errors'
import {ImageRecord, ManifestDb} from '../manifest/db'
import {DB_FILE} from '../lib/store-access'
import {hasObject} from '../registry/artifact'
import type {ClientOptions} from '../registry/client'
import {objectOf} from '../store/cas'
import {imageFor, IMAGE_PREFIX, keyOfTag, tagFor, tagMayMatch, validateKey} from './keys'
import {Journal, RestoreEvent, SaveEvent} from './journal'

/**
 * The CI cache (docs/registry.md, "CI cache"): directories saved as one velo image per key — one layer per
 * directory, the path map and the original key in the image config — kept in the local store as `cache:<tag>`
 * and, with a registry, pushed as REGISTRY/REPO:<tag>.
 */
export interface CacheConfig {
  v: 1
  key: string
  /** DIR as given to save (normalized) → its layer, in the order given */
  dirs: Array<{path: string; layer: string}>
  savedAt: string
  /** the cold run this entry stands for, measured (the missed restore → this save); absent: not measured */
  coldSeconds?: number
}

export interface CacheOptions {
  /** HOST[:PORT]/REPO, or undefined for the local store only */
  registry?: string
  client?: ClientOptions
  job: string
}

export interface SaveResult extends Omit<SaveEvent, 'type' | 'at'> {
  tag: string
  image: string
  job: string
}

export interface RestoreResult {
  hit: boolean
  key: string
  matchedKey?: string
  tag?: string
  source: 'local' | 'registry'
  dirs: Array<{path: string; replaced: boolean}>
  files?: number
  bytes?: number
  objects?: number
  objectsReused?: number
  bytesReused?: number
  objectsFetched?: number
  bytesFetched?: number
  bytesReceived?: number
  coldSeconds?: number
  seconds: number
  job: string
}

const secondsSince = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e9

/** `--registry HOST[:PORT]/REPO` (no tag, no digest): the tags are the cache's. */
export function parseCacheRegistry(s: string): string {
  const {parseRef} = require('../registry/ref') as typeof import('../registry/ref')
  const bad = (why: string) => new VeloError('USAGE', `invalid cache registry ${JSON.stringify(s)}: ${why}`, {suggestion: 'write HOST[:PORT]/REPO, e.g. 127.0.0.1:5000/ci/cache'})
  if (s.includes('@')) throw bad('no digest: the cache picks the tags')
  const slash = s.indexOf('/')
  if (slash > 0 && s.slice(slash).includes(':')) throw bad('no tag: the cache picks the tags')
  const r = parseRef(s)
  return `${r.registry}/${r.repo}`
}

/** The DIRs as given, normalized; none inside another (each is replaced whole on restore). */
function checkDirs(dirs: string[]): Array<{given: string; abs: string}> {
  if (dirs.length === 0) throw new VeloError('USAGE', 'give at least one directory')
  const out = dirs.map((d) => ({given: path.normalize(d), abs: path.resolve(d)}))
  for (const a of out) {
    if (a.abs === '/') throw new VeloError('USAGE', 'the cache does not save or replace /')
    for (const b of out)
      if (a !== b && (a.abs === b.abs || b.abs.startsWith(a.abs + '/')))
        throw new VeloError('USAGE', `cache directories overlap: ${a.given} and ${b.given}`, {suggestion: 'give each directory once, none inside another'})
  }
  return out
}

function cacheConfigOf(img: ImageRecord | undefined): CacheConfig | undefined {
  const c = img?.config?.cache as CacheConfig | undefined
  if (!c || c.v !== 1 || typeof c.key !== 'string' || !Array.isArray(c.dirs)) return undefined
  if (c.dirs.some((d) => typeof d?.path !== 'string' || typeof d?.layer !== 'string' || !img!.layers.includes(d.layer))) return undefined
  return c
}

// ---- save ---------------------------------------------------------------------------------------------------

export async function saveCache(home: string, key: string, dirs: string[], o: CacheOptions): Promise<SaveResult> {
  const t0 = process.hrtime.bigint()
  const started = new Date()
  const tag = tagFor(validateKey(key))
  const image = imageFor(tag)
  const ds = checkDirs(dirs)
  const journal = new Journal(home, o.job)
  const mark = journal.takeMark(tag, key)
  const coldSeconds = mark ? Math.max(0, (started.getTime() - mark.getTime()) / 1000) : undefined
  const {ingestTrees} = await import('../store/ingest')
  const r = await ingestTrees(home, ds.map((d) => d.abs), (layers) => {
    const savedAt = new Date().toISOString()
    const cache: CacheConfig = {v: 1, key, dirs: ds.map((d, i) => ({path: d.given, layer: layers[i].id})), savedAt, ...(coldSeconds !== undefined ? {coldSeconds} : {})}
    return {name: image, layers: layers.map((l) => l.id), createdAt: savedAt, source: `cache:${key}`, config: {cache}}
  })
  let pushed: SaveEvent['pushed']
  if (o.registry) {
    const {pushImage} = await import('../registry/push')
    const p = await pushImage(home, image, `${o.registry}:${tag}`, o.client)
    pushed = {ref: p.ref, bytesSent: p.bytesSent}
  }
  const ev: SaveEvent = {
    type: 'save',
    at: started.toISOString(),
    key,
    dirs: ds.map((d) => d.given),
    files: r.trees.reduce((a, t) => a + t.info.files, 0),
    bytes: r.trees.reduce((a, t) => a + t.info.logicalBytes, 0),
    newObjects: r.newObjects,
    newBytes: r.newBytes,
    ...(pushed ? {pushed} : {}),
    seconds: secondsSince(t0),
    ...(coldSeconds !== undefined ? {coldSeconds} : {}),
  }
  journal.append(ev)
  return {...ev, tag, image, job: o.job, warnings: r.warnings} as SaveResult
}

// ---- restore ------------------------------------------------------------------------------------------------

interface Found {
  tag: string
  key: string
  source: 'local' | 'registry'
}

/** The local store's cache entry for the key, else the newest whose key starts with a fallback prefix. */
function findLocal(db: ManifestDb, key: string, prefixes: string[]): Found | undefined {
  const tag = tagFor(key)
  const exact = cacheConfigOf(db.getImage(imageFor(tag)))
  if (exact?.key === key) return {tag, key, source: 'local'}
  for (const p of prefixes) {
    let best: {tag: string; key: string; at: string} | undefined
    for (const {key: name, value} of db.images.getRange({start: IMAGE_PREFIX})) {
      if (!String(name).startsWith(IMAGE_PREFIX)) break
      const t = String(name).slice(IMAGE_PREFIX.length)
      if (tagMayMatch(t, p) === 'no') continue
      const c = cacheConfigOf(value)
      if (!c || !c.key.startsWith(p)) continue
      if (!best || c.savedAt > best.at) best = {tag: t, key: c.key, at: c.savedAt}
    }
    if (best) return {tag: best.tag, key: best.key, source: 'local'}
  }
  return undefined
}

/** At most this many candidate tags are read (one manifest GET each; a config GET for hashed tags). */
const MAX_CANDIDATES = 64

async function findRemote(home: string, registry: string, key: string, prefixes: string[], client: import('../registry/client').RegistryClient): Promise<Found | undefined> {
  const {parseRef} = await import('../registry/ref')
  const {getManifest} = await import('../registry/pull')
  const {getBlob} = await import('../registry/blobs')
  const {parseArtifactConfig} = await import('../registry/artifact')
  const repo = parseRef(registry).repo
  const ref = (tag: string) => ({registry: client.registry, repo, tag})
  const notFound = (err: unknown) => err instanceof VeloError && err.code === 'NOT_FOUND'
  /** the key and creation time a tag's manifest and config say, or undefined when the tag is not a cache entry */
  const entryOf = async (tag: string): Promise<{key: string; at: string} | undefined> => {
    let m
    try {
      m = await getManifest(client, ref(tag))
    } catch (err) {
      if (notFound(err)) return undefined
      throw err
    }
    const cfgDesc = m.value?.config
    if (typeof cfgDesc?.digest !== 'string') return undefined
    const cfg = parseArtifactConfig(await getBlob(client, repo, cfgDesc.digest, `config of ${registry}:${tag}`, 64 << 20), `config of ${registry}:${tag}`)
    const c = cfg.config?.cache as CacheConfig | undefined
    if (c?.v !== 1 || typeof c.key !== 'string') return undefined
    return {key: c.key, at: typeof c.savedAt === 'string' ? c.savedAt : cfg.createdAt}
  }
  const tag = tagFor(key)
  const exact = await entryOf(tag)
  if (exact?.key === key) return {tag, key, source: 'registry'}
  if (prefixes.length === 0) return undefined
  // every tag of the repository (the tags list is paginated by `Link: <…?last=…&n=…>; rel="next"`)
  const tags: string[] = []
  let next: string | undefined = `/v2/${repo}/tags/list?n=1000`
  for (let page = 0; next && page < 100; page++) {
    let r
    try {
      r = await client.json('GET', next, {what: `tags of ${registry}`, scopes: [`repository:${repo}:pull`]})
    } catch (err) {
      if (notFound(err)) return undefined
      throw err
    }
    if (Array.isArray(r.value?.tags)) tags.push(...r.value.tags.filter((t: unknown) => typeof t === 'string'))
    const link = /<([^>]+)>;\s*rel="?next"?/.exec(String(r.headers.link ?? ''))
    next = link ? link[1] : undefined
    if (next && !next.startsWith('/v2/')) next = undefined // only the registry's own paths
  }
  for (const p of prefixes) {
    const cands = tags.filter((t) => tagMayMatch(t, p) !== 'no')
    // newest first is only known from the entries: read at most MAX_CANDIDATES, the most specific tags first
    let best: {tag: string; key: string; at: string} | undefined
    for (const t of cands.slice(0, MAX_CANDIDATES)) {
      const e = await entryOf(t)
      if (!e || !e.key.startsWith(p)) continue
      const k = keyOfTag(t)
      if (k !== undefined && k !== e.key) continue // a tag that does not say what its config says: not ours
      if (!best || e.at > best.at) best = {tag: t, key: e.key, at: e.at}
    }
    if (best) return {tag: best.tag, key: best.key, source: 'registry'}
  }
  return undefined
}

/**
 * Restore KEY into DIRS. A miss is not an error (`hit: false`; the caller decides with --fail-on-miss) and
 * leaves a start mark in the job's journal, so a later `velo cache save` of the key measures the cold run.
 * A hit replaces each DIR whole: the layer is checked out into a temp dir beside DIR (same filesystem), then
 * renamed into place — a restore killed at any point leaves each DIR as it was or complete, never partial.
 */
export async function restoreCache(home: string, key: string, dirs: string[], o: CacheOptions & {fallbackPrefixes?: string[]}): Promise<RestoreResult> {
  const t0 = process.hrtime.bigint()
  const started = new Date()
  validateKey(key)
  const ds = checkDirs(dirs)
  const prefixes = (o.fallbackPrefixes ?? []).filter((p) => p.length > 0)
  const journal = new Journal(home, o.job)
  const source: 'local' | 'registry' = o.registry ? 'registry' : 'local'
  const miss = (): RestoreResult => {
    const tag = tagFor(key)
    journal.mark(tag, key, started)
    const seconds = secondsSince(t0)
    const ev: RestoreEvent = {type: 'restore', at: started.toISOString(), key, hit: false, source, dirs: ds.map((d) => d.given), seconds}
    journal.append(ev)
    return {hit: false, key, source, dirs: ds.map((d) => ({path: d.given, replaced: false})), seconds, job: o.job}
  }

  let found: Found | undefined
  let pull: import('../registry/pull').PullResult | undefined
  if (o.registry) {
    const {RegistryClient} = await import('../registry/client')
    const {parseRef} = await import('../registry/ref')
    const client = new RegistryClient(parseRef(o.registry).registry, o.client ?? {})
    try {
      found = await findRemote(home, o.registry, key, prefixes, client)
    } finally {
      client.close()
    }
    if (!found) return miss()
    const {pullImage} = await import('../registry/pull')
    pull = await pullImage(home, `${o.registry}:${found.tag}`, {...o.client, name: imageFor(found.tag)})
  } else {
    if (!fs.existsSync(path.join(home, DB_FILE))) return miss()
    const db = ManifestDb.open(home)
    try {
      found = findLocal(db, key, prefixes)
    } finally {
      db.close()
    }
    if (!found) return miss()
  }

  const {checkoutLayers} = await import('../store/checkout')
  const db = ManifestDb.open(home)
  try {
    const img = db.getImage(imageFor(found.tag))
    const c = cacheConfigOf(img)
    if (!img || !c || c.key !== found.key)
      throw new VeloError('BAD_INPUT', `cache entry ${found.tag} is not a velo cache image for key ${JSON.stringify(found.key)}`, {suggestion: 'save the key again (velo cache save)'})
    if (c.dirs.length !== ds.length)
      throw new VeloError('USAGE', `cache entry for ${JSON.stringify(found.key)} holds ${c.dirs.length} director${c.dirs.length === 1 ? 'y' : 'ies'} (${c.dirs.map((d) => d.path).join(', ')}), ${ds.length} given`, {
        suggestion: 'restore the directories in the order they were saved; or make the directory list part of the key',
      })
    // objects the restored layers need: what was fetched, what the store had
    const seen = new Set<string>()
    let objects = 0
    let bytes = 0
    for (const d of c.dirs)
      for (const {entry} of db.layerEntries(d.layer)) {
        if (!hasObject(entry)) continue
        const ob = objectOf(entry)
        const k = `${ob.hash}_${ob.mode}_${ob.uid}_${ob.gid}_${ob.xattrs ?? ''}`
        if (seen.has(k)) continue
        seen.add(k)
        objects++
        bytes += ob.size
      }
    const objectsFetched = pull?.objects.fetched ?? 0
    const bytesFetched = pull?.objects.fetchedBytes ?? 0
    let files = 0
    let written = 0
    const replaced: boolean[] = []
    for (let i = 0; i < ds.length; i++) {
      const r = replaceDir(ds[i].abs, (tmp) => checkoutLayers(home, db, [c.dirs[i].layer], tmp))
      files += r.files
      written += r.bytes
      replaced.push(r.replaced)
    }
    const seconds = secondsSince(t0)
    const ev: RestoreEvent = {
      type: 'restore',
      at: started.toISOString(),
      key,
      ...(found.key !== key ? {matchedKey: found.key} : {}),
      hit: true,
      source: found.source,
      dirs: ds.map((d) => d.given),
      files,
      bytes: written,
      objects,
      objectsReused: objects - objectsFetched,
      bytesReused: bytes - bytesFetched,
      objectsFetched,
      bytesFetched,
      ...(pull ? {bytesReceived: pull.bytesReceived} : {}),
      seconds,
      ...(c.coldSeconds !== undefined ? {coldSeconds: c.coldSeconds} : {}),
    }
    journal.append(ev)
    // A fallback hit is not a miss: the work after it (an incremental install) is not a cold run, so it leaves
    // no start mark, and the save of KEY after it records no cold run.
    const {type: _t, at: _a, dirs: _d, ...rest} = ev
    return {...rest, tag: found.tag, dirs: ds.map((d, i) => ({path: d.given, replaced: replaced[i]})), job: o.job}
  } finally {
    db.close()
  }
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * Fill a new temp dir beside TARGET, then put it in TARGET's place: rename(TARGET → old), rename(temp →
 * TARGET), remove old. Killed at any point, TARGET is the old tree, the new tree, or (between the two
 * renames) absent with the old tree beside it — never a partial tree. What a killed restore left beside
 * TARGET (`.NAME.velo-restore-PID-*`, `.NAME.velo-old-PID-*` of a process that is gone) is removed first.
 */
function replaceDir<T extends {files: number; bytes: number}>(target: string, fill: (tmp: string) => T): T & {replaced: boolean} {
  const parent = path.dirname(target)
  const base = path.basename(target)
  try {
    fs.mkdirSync(parent, {recursive: true})
  } catch (err) {
    throw fromSystemError(err, `cannot create ${parent}`)
  }
  let cur: fs.Stats | undefined
  try {
    cur = fs.lstatSync(target)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw fromSystemError(err, `cannot use ${target}`)
  }
  if (cur && !cur.isDirectory())
    throw new VeloError('NOT_A_DIRECTORY', `cannot restore into ${target}: it exists and is not a directory`, {suggestion: 'remove it, or restore into another path'})
  const stale = new RegExp(`^\\.${base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.velo-(?:restore|old)-(\\d+)-`)
  for (const n of fs.readdirSync(parent)) {
    const m = stale.exec(n)
    if (m && !alive(Number(m[1]))) fs.rmSync(path.join(parent, n), {recursive: true, force: true})
  }
  const tmp = fs.mkdtempSync(path.join(parent, `.${base}.velo-restore-${process.pid}-`))
  let old: string | undefined
  try {
    const r = fill(tmp)
    if (cur) {
      old = `${tmp.replace('.velo-restore-', '.velo-old-')}`
      fs.renameSync(target, old)
    }
    fs.renameSync(tmp, target)
    if (old) fs.rmSync(old, {recursive: true, force: true})
    return {...r, replaced: !!cur}
  } catch (err) {
    fs.rmSync(tmp, {recursive: true, force: true})
    if (old && !fs.existsSync(target) && fs.existsSync(old)) fs.renameSync(old, target) // put the old tree back
    throw err instanceof VeloError ? err : fromSystemError(err, `cannot restore ${target}`)
  }
}
