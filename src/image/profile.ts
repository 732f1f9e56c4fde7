import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {VeloError} from '../lib/errors'
import {ManifestDb} from '../manifest/db'
import {parseObjectName} from '../store/cas'

/**
 * Start-up profiles (docs/registry.md "Lazy images", prefetch): `velo image profile IMAGE -- CMD` runs CMD in a
 * sandbox over a velo-fuse mount of its own that writes the object of every file at its first open (velo-fuse
 * --trace), and keeps that list, in first-open order, as `$VELO_HOME/prefetch/<image>.json` — valid while the
 * image has the same layers. `velo push` puts those objects first, in packs of their own, and names them in the
 * artifact's config; a lazy pull fetches them (contiguous: one range request per 16 MiB) before it returns.
 */
export interface PrefetchRecord {
  velo: 1
  image: string
  layers: string[]
  command: string[]
  /** BLAKE3 hashes of the objects read, first open first, unique */
  objects: string[]
  bytes: number
  recordedAt: string
}

const prefetchFile = (home: string, image: string) => path.join(home, 'prefetch', `${image}.json`)

export function readPrefetch(home: string, image: string, layers: string[]): PrefetchRecord | undefined {
  try {
    const r = JSON.parse(fs.readFileSync(prefetchFile(home, image), 'utf8')) as PrefetchRecord
    if (r.velo !== 1 || r.layers?.join('/') !== layers.join('/') || !Array.isArray(r.objects)) return undefined // another image of that name now
    return r
  } catch {
    return undefined
  }
}

export interface ProfileResult {
  image: string
  command: string[]
  exitCode: number
  objects: number
  bytes: number
  file: string
}

export async function profileImage(home: string, image: string, command: string[]): Promise<ProfileResult> {
  if (command.length === 0) throw new VeloError('USAGE', 'no command given', {suggestion: 'velo image profile IMAGE -- CMD ARGS...'})
  const db = ManifestDb.open(home)
  let layers: string[]
  try {
    layers = db.requireImage(image).layers
  } finally {
    db.close()
  }
  const {createSandbox, execSandbox, removeSandbox} = await import('../sandbox/tenant')
  fs.mkdirSync(path.join(home, 'tmp'), {recursive: true, mode: 0o700})
  const trace = path.join(home, 'tmp', `profile-${process.pid}-${crypto.randomBytes(4).toString('hex')}.trace`)
  const name = `profile-${process.pid}-${crypto.randomBytes(3).toString('hex')}`
  let exitCode: number
  try {
    await createSandbox(home, name, {image, backend: 'fuse', traceFile: trace})
    try {
      exitCode = await execSandbox(home, name, command, {})
    } finally {
      await removeSandbox(home, name, true)
    }
    const seen = new Set<string>()
    const objects: string[] = []
    let bytes = 0
    for (const line of fs.existsSync(trace) ? fs.readFileSync(trace, 'utf8').split('\n') : []) {
      const id = parseObjectName(line.trim())
      if (!id || seen.has(id.hash)) continue
      seen.add(id.hash)
      objects.push(id.hash)
      bytes += id.size
    }
    const rec: PrefetchRecord = {velo: 1, image, layers, command, objects, bytes, recordedAt: new Date().toISOString()}
    const f = prefetchFile(home, image)
    fs.mkdirSync(path.dirname(f), {recursive: true})
    const tmp = `${f}.${process.pid}.tmp`
    fs.writeFileSync(tmp, JSON.stringify(rec, null, 1) + '\n')
    fs.renameSync(tmp, f)
    return {image, command, exitCode, objects: objects.length, bytes, file: f}
  } finally {
    fs.rmSync(trace, {force: true})
  }
}
