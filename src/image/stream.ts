import * as crypto from 'node:crypto'
import * as zlib from 'node:zlib'
import {Readable} from 'node:stream'
import * as tar from 'tar-stream'
import {VeloError} from '../lib/errors'

/** Stream plumbing for image import: compression sniffing, hashing taps, and tar-stream fed without buffering. */

export type Compression = 'none' | 'gzip' | 'zstd' | 'bzip2' | 'xz'

export function sniffCompression(head: Buffer): Compression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip'
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'zstd'
  if (head.length >= 3 && head.toString('latin1', 0, 3) === 'BZh') return 'bzip2'
  if (head.length >= 6 && head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz'
  return 'none'
}

/** Does this look like the start of a tar (a ustar/gnu header with a valid checksum, or an all-zero block = empty tar)? */
export function looksLikeTar(head: Buffer): boolean {
  if (head.length < 512) return false
  const h = head.subarray(0, 512)
  if (h.every((b) => b === 0)) return true
  const magic = h.toString('latin1', 257, 262)
  if (magic !== 'ustar') return false
  let sum = 8 * 32
  for (let i = 0; i < 512; i++) if (i < 148 || i >= 156) sum += h[i]
  const stored = parseInt(h.toString('latin1', 148, 156).replace(/[\0 ]+$/g, '').trim(), 8)
  return stored === sum
}

/**
 * Pull chunks from `src` until at least `n` bytes are buffered (or the stream ends). Returns the head and an
 * async iterable that yields the head first and then the rest: nothing is lost and nothing else is buffered.
 */
export async function peek(src: AsyncIterable<Buffer>, n: number): Promise<{head: Buffer; stream: AsyncIterable<Buffer>}> {
  const it = src[Symbol.asyncIterator]()
  const chunks: Buffer[] = []
  let have = 0
  let done = false
  while (have < n) {
    const r = await it.next()
    if (r.done) {
      done = true
      break
    }
    const c = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value)
    chunks.push(c)
    have += c.length
  }
  const head = Buffer.concat(chunks)
  async function* rest(): AsyncGenerator<Buffer> {
    if (head.length) yield head
    if (done) return
    for (;;) {
      const r = await it.next()
      if (r.done) return
      yield Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value)
    }
  }
  return {head, stream: rest()}
}

/** Decompress if the stream starts with gzip magic; other known compressions are refused clearly. */
export async function decompress(src: AsyncIterable<Buffer>, where: string): Promise<{compression: Compression; stream: AsyncIterable<Buffer>}> {
  const {head, stream} = await peek(src, 6)
  const c = sniffCompression(head)
  if (c === 'none') return {compression: c, stream}
  if (c !== 'gzip')
    throw new VeloError('UNSUPPORTED', `${where}: ${c}-compressed data is not supported`, {suggestion: 'decompress it first, or give an uncompressed or gzip-compressed tar'})
  const gunzip = zlib.createGunzip()
  const input = Readable.from(stream)
  input.on('error', (err) => gunzip.destroy(err))
  input.pipe(gunzip)
  async function* out(): AsyncGenerator<Buffer> {
    try {
      for await (const chunk of gunzip) yield chunk as Buffer
    } catch (err) {
      const e = err as NodeJS.ErrnoException
      if (err instanceof VeloError) throw err
      if (e.code?.startsWith('Z_') || /header check|invalid|unexpected end/i.test(e.message))
        throw new VeloError('BAD_INPUT', `${where}: gzip data is corrupt (${e.message})`)
      throw err
    } finally {
      input.destroy()
    }
  }
  return {compression: c, stream: out()}
}

/** Hash everything that flows through; `tail` keeps the last 512 bytes (to check the end-of-archive marker). */
export class HashTap {
  readonly hash = crypto.createHash('sha256')
  bytes = 0
  /** Set to false once the digest is known to be unneeded (it is then invalid): saves a SHA-256 pass. */
  hashing = true
  private last: Buffer = Buffer.alloc(0)

  async *wrap(src: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    for await (const c of src) {
      if (this.hashing) this.hash.update(c)
      this.bytes += c.length
      this.last = c.length >= 512 ? c.subarray(c.length - 512) : Buffer.concat([this.last, c]).subarray(-512)
      yield c
    }
  }

  /** True when the stream ended with a zero block, as every tar writer ends an archive. */
  endsWithZeroBlock(): boolean {
    return this.last.length === 512 && this.last.every((b) => b === 0)
  }

  digest(): string {
    return this.hash.digest('hex')
  }
}

export interface TarEntry {
  header: tar.Header & {pax?: Record<string, string> | null}
  stream: AsyncIterable<Buffer>
}

/**
 * Iterate the entries of a tar byte stream. The extractor is fed by hand (await drain) so backpressure holds
 * end to end; a parse error (bad checksum, truncation) rejects the iteration with a BAD_INPUT error naming `where`.
 * Each entry's stream must be consumed (or resumed) before the next entry is requested.
 */
export async function* tarEntries(src: AsyncIterable<Buffer>, where: string): AsyncGenerator<TarEntry> {
  const ex = tar.extract({filenameEncoding: 'latin1'} as never)
  rawPax(ex)
  let feedErr: unknown
  const feeding = (async () => {
    try {
      for await (const c of src) {
        if (ex.destroyed) return
        if (!ex.write(c)) {
          await new Promise<void>((resolve) => {
            const done = () => {
              ex.off('drain', done)
              ex.off('close', done)
              resolve()
            }
            ex.on('drain', done)
            ex.on('close', done)
          })
        }
      }
      if (!ex.destroyed) ex.end(undefined as never)
    } catch (err) {
      feedErr = err
      ex.destroy(err as Error)
    }
  })()
  const translate = (err: unknown): unknown => {
    const e = feedErr ?? err
    if (e instanceof VeloError) return e
    const msg = (e as Error).message ?? String(e)
    if (/Unexpected end of data/.test(msg)) return new VeloError('BAD_INPUT', `${where}: the tar is truncated (${msg})`)
    if (/Invalid tar header|Header exceeds|Invalid header|unknown format/i.test(msg)) return new VeloError('BAD_INPUT', `${where}: the tar is corrupt (${msg})`)
    return new VeloError('BAD_INPUT', `${where}: cannot read the tar (${msg})`, {cause: e})
  }
  // Errors surface either from the entry iteration or from an entry's data stream; both are translated.
  async function* data(s: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    try {
      for await (const c of s) yield c
    } catch (err) {
      throw translate(err)
    }
  }
  try {
    for await (const s of ex as AsyncIterable<unknown>) {
      yield {header: (s as never as {header: TarEntry['header']}).header, stream: data(s as AsyncIterable<Buffer>)}
    }
  } catch (err) {
    throw translate(err)
  } finally {
    if (!ex.destroyed) ex.destroy(undefined as never)
    await feeding
  }
  if (feedErr) throw feedErr
}

/**
 * PAX records as raw bytes (each byte one latin1 char), like the ustar names (filenameEncoding latin1):
 * tar-stream decodes PAX values as UTF-8, which corrupts binary SCHILY.xattr values (security.capability)
 * and non-UTF-8 path records. Same record grammar as tar-stream's decodePax ("LEN KEY=VALUE\n").
 */
export function decodePaxRaw(buf: Buffer): Record<string, string> {
  const out: Record<string, string> = {}
  let off = 0
  while (off < buf.length) {
    let i = off
    while (i < buf.length && buf[i] !== 0x20) i++
    const len = parseInt(buf.toString('latin1', off, i), 10)
    if (!len || off + len > buf.length || i >= off + len) break
    const rec = buf.subarray(i + 1, off + len - 1) // without the trailing newline
    const eq = rec.indexOf(0x3d)
    if (eq === -1) break
    out[rec.toString('latin1', 0, eq)] = rec.toString('latin1', eq + 1)
    off += len
  }
  return out
}

/** Make one tar-stream extractor decode PAX headers with decodePaxRaw (tar-stream 3's _decodeLongHeader). */
function rawPax(ex: tar.Extract): void {
  const x = ex as unknown as {_decodeLongHeader?: (buf: Buffer) => void; _header: {type: string}; _pax: Record<string, string> | null; _paxGlobal: Record<string, string> | null}
  const orig = x._decodeLongHeader
  if (typeof orig !== 'function') throw new VeloError('INTERNAL', 'tar-stream changed: cannot read PAX records as bytes')
  x._decodeLongHeader = function (this: typeof x, buf: Buffer) {
    if (this._header.type === 'pax-header') this._pax = this._paxGlobal === null ? decodePaxRaw(buf) : {...this._paxGlobal, ...decodePaxRaw(buf)}
    else if (this._header.type === 'pax-global-header') this._paxGlobal = decodePaxRaw(buf)
    else orig.call(this, buf)
  }
}

export async function drain(src: AsyncIterable<Buffer>): Promise<void> {
  for await (const _ of src) {
    // discard
  }
}
