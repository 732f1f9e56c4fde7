import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {VeloError} from '../lib/errors'
import {RegistryClient, readAll} from './client'

/**
 * Blob transfers over the distribution API. Uploads: HEAD first (the registry may have it already), then a
 * cross-repository mount when another repository of the same registry is known to hold it, then a chunked
 * upload session whose position is recorded after every chunk, so an interrupted push resumes where the
 * registry says the session stands (GET on the session answers `Range: 0-N`) — or starts a new session when the
 * registry has forgotten the old one.
 */

export const UPLOAD_CHUNK = 8 << 20

export type BlobSource = (from: number, to: number) => AsyncIterable<Buffer>

export const bufferSource = (b: Buffer): BlobSource =>
  async function* (from, to) {
    yield b.subarray(from, to)
  }

const scope = (repo: string, actions: string) => `repository:${repo}:${actions}`

export type UploadOutcome = 'exists' | 'mounted' | 'uploaded' | 'resumed'

export interface UploadOptions {
  /** a repository of the same registry known to hold the blob (cross-repository mount) */
  mountFrom?: string
  /** where upload sessions are recorded for resuming (a directory) */
  sessionDir?: string
}

export async function blobExists(client: RegistryClient, repo: string, digest: string): Promise<boolean> {
  const r = await client.request('HEAD', `/v2/${repo}/blobs/${digest}`, {what: `blob ${digest.slice(0, 19)}`, expect: [200, 404], scopes: [scope(repo, 'pull')]})
  r.body.resume()
  return r.status === 200
}

/**
 * A cross-repository mount: the registry links a blob it holds in `from` into `repo` without a byte sent.
 * true when mounted, else the Location of the plain upload session the registry opened instead.
 */
export async function mountBlob(client: RegistryClient, repo: string, digest: string, from: string): Promise<true | string | undefined> {
  const r = await client.request('POST', `/v2/${repo}/blobs/uploads/?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(from)}`, {
    what: `mount of blob ${digest.slice(0, 19)} from ${from}`,
    expect: [201, 202],
    scopes: [scope(repo, 'pull,push'), scope(from, 'pull')],
  })
  r.body.resume()
  return r.status === 201 ? true : r.headers.location
}

function sessionFile(dir: string, client: RegistryClient, repo: string, digest: string): string {
  const key = crypto.createHash('sha256').update(`${client.registry}/${repo}@${digest}`).digest('hex').slice(0, 32)
  return path.join(dir, `${key}.json`)
}

export async function uploadBlob(client: RegistryClient, repo: string, digest: string, size: number, src: BlobSource, o: UploadOptions = {}): Promise<UploadOutcome> {
  const what = `blob ${digest.slice(0, 19)}`
  const scopes = [scope(repo, 'pull,push')]
  if (await blobExists(client, repo, digest)) return 'exists'
  let location: string | undefined
  let offset = 0
  if (o.mountFrom && o.mountFrom !== repo) {
    const m = await mountBlob(client, repo, digest, o.mountFrom)
    if (m === true) return 'mounted'
    location = m // not mountable: the registry opened a plain upload session instead
  }
  const sf = o.sessionDir ? sessionFile(o.sessionDir, client, repo, digest) : undefined
  if (!location && sf && size > UPLOAD_CHUNK) {
    // An earlier push of this blob stopped half-way: ask the registry how much of that session it kept.
    try {
      const s = JSON.parse(fs.readFileSync(sf, 'utf8'))
      const r = await client.request('GET', s.location, {what: `${what} (resumed upload)`, expect: [204, 404, 400], scopes})
      r.body.resume()
      const m = /^0-(\d+)$/.exec(String(r.headers.range ?? ''))
      if (r.status === 204 && m) {
        location = r.headers.location ?? s.location
        offset = Number(m[1]) + 1
      }
    } catch (err) {
      if (err instanceof VeloError && err.code !== 'NOT_FOUND' && err.code !== 'STATE') throw err
    }
  }
  if (!location) {
    const r = await client.request('POST', `/v2/${repo}/blobs/uploads/`, {what: `upload of ${what}`, expect: [202], scopes})
    r.body.resume()
    location = r.headers.location
    offset = 0
  }
  if (!location) throw new VeloError('STATE', `upload of ${what}: the registry ${client.registry} opened no upload session (no Location)`)
  if (size <= UPLOAD_CHUNK && offset === 0) {
    // One request: the whole blob with the closing PUT.
    const u = withDigest(client, location, digest)
    const r = await client.request('PUT', u, {what: `upload of ${what}`, expect: [201], scopes, headers: {'content-type': 'application/octet-stream', 'content-length': size}, body: () => src(0, size)})
    r.body.resume()
    return 'uploaded'
  }
  const resumed = offset > 0
  while (offset < size) {
    const end = Math.min(size, offset + UPLOAD_CHUNK)
    const start = offset
    const r = await client.request('PATCH', location, {
      what: `upload of ${what}`,
      expect: [202],
      scopes,
      headers: {'content-type': 'application/octet-stream', 'content-length': end - start, 'content-range': `${start}-${end - 1}`},
      body: () => src(start, end),
    })
    r.body.resume()
    location = r.headers.location ?? location
    offset = end
    if (sf) {
      fs.mkdirSync(path.dirname(sf), {recursive: true, mode: 0o700})
      fs.writeFileSync(sf, JSON.stringify({location: new URL(location, client.base).toString(), offset}))
    }
  }
  const r = await client.request('PUT', withDigest(client, location, digest), {what: `upload of ${what}`, expect: [201], scopes})
  r.body.resume()
  if (sf) fs.rmSync(sf, {force: true})
  return resumed ? 'resumed' : 'uploaded'
}

function withDigest(client: RegistryClient, location: string, digest: string): string {
  const u = new URL(location, client.base)
  u.searchParams.set('digest', digest)
  return u.toString()
}

/** A whole small blob, checked against its sha256 digest before anyone reads it. */
export async function getBlob(client: RegistryClient, repo: string, digest: string, what: string, max = 256 << 20): Promise<Buffer> {
  const r = await client.request('GET', `/v2/${repo}/blobs/${digest}`, {what, scopes: [scope(repo, 'pull')]})
  const b = await readAll(r.body, max, what)
  client.received += b.length
  const got = 'sha256:' + crypto.createHash('sha256').update(b).digest('hex')
  if (got !== digest)
    throw new VeloError('INTEGRITY', `${what}: digest mismatch: the registry sent bytes that hash to ${got}, not ${digest}`, {
      suggestion: 'the registry holds a damaged blob; push the image again (nothing was stored)',
    })
  return b
}

/** Bytes [offset, offset+length) of a blob: one Range GET. */
export async function getRange(client: RegistryClient, repo: string, digest: string, offset: number, length: number, what: string) {
  const r = await client.request('GET', `/v2/${repo}/blobs/${digest}`, {
    what,
    scopes: [scope(repo, 'pull')],
    headers: {range: `bytes=${offset}-${offset + length - 1}`},
    expect: [200, 206],
  })
  return r
}
