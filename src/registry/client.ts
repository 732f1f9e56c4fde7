import * as fs from 'node:fs'
import * as http from 'node:http'
import * as https from 'node:https'
import * as tls from 'node:tls'
import {Readable} from 'node:stream'
import {VeloError} from '../lib/errors'
import {Challenge, Credentials, parseChallenge} from './auth'
import {hostOf, isLoopback} from './ref'

/**
 * A small client for the OCI distribution API (the registry HTTP API v2) on Node's own http/https: keep-alive
 * sockets, basic and bearer-token auth, redirects for reads, and errors that say what went wrong in velo's
 * terms. No fetch(): a custom CA for one registry needs an https.Agent, and a request body must be replayable
 * (a body is a Buffer or a function that makes a fresh stream), so a request refused with 401 because its
 * token expired mid-transfer is sent again with a new token.
 */

export interface ClientOptions {
  /** plain HTTP; allowed only for a loopback registry */
  insecure?: boolean
  /** PEM file with the CA(s) that signed the registry's certificate (added to the system's) */
  ca?: string
  credentials?: Credentials
}

export type Body = Buffer | (() => AsyncIterable<Buffer>)

export interface RequestOptions {
  headers?: Record<string, string | number>
  body?: Body
  /** statuses that are answers, not errors (default: 2xx) */
  expect?: number[]
  /** token scopes this request needs, e.g. repository:team/app:pull,push (added to any challenge's scope) */
  scopes?: string[]
  /** what the request is for, in error messages */
  what: string
}

export interface Response {
  status: number
  headers: http.IncomingHttpHeaders
  body: http.IncomingMessage
}

const CONNECTION_ERRORS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'EAI_AGAIN', 'EPIPE', 'ECONNABORTED'])

export class RegistryClient {
  readonly base: string
  /** bytes sent in request bodies and received in response bodies (for reports and benches) */
  sent = 0
  received = 0
  requests = 0
  private readonly agent: http.Agent
  private basic: string | undefined
  private token: string | undefined
  private bearer: Challenge | undefined
  private readonly scopes = new Set<string>()

  constructor(
    readonly registry: string,
    private readonly opts: ClientOptions = {},
  ) {
    const host = hostOf(registry)
    if (opts.insecure && !isLoopback(host))
      throw new VeloError('USAGE', `--insecure (plain HTTP) is only for a registry on loopback, not ${registry}`, {
        suggestion: 'use TLS: give the registry a certificate and pass its CA with --ca FILE',
      })
    let ca: Buffer | undefined
    if (opts.ca) {
      try {
        ca = fs.readFileSync(opts.ca)
      } catch (err) {
        throw new VeloError('USAGE', `--ca ${opts.ca}: ${(err as Error).message}`)
      }
    }
    this.base = `${opts.insecure ? 'http' : 'https'}://${registry}`
    // The registry's CA added to Node's bundled roots (not replacing them: a redirect to storage elsewhere still verifies).
    const tls = tlsOptions(ca)
    this.agent = opts.insecure ? new http.Agent({keepAlive: true, maxSockets: 8}) : new https.Agent({keepAlive: true, maxSockets: 8, ...tls})
  }

  close(): void {
    this.agent.destroy()
  }

  /** One request, authenticated as the registry asks; one retry with fresh credentials after a 401. */
  async request(method: string, target: string, o: RequestOptions): Promise<Response> {
    for (const s of o.scopes ?? []) this.scopes.add(s)
    let refreshed = false
    for (;;) {
      const res = await this.send(method, target, o)
      if (res.status !== 401) return this.check(res, o)
      res.body.resume()
      const ch = parseChallenge(res.headers['www-authenticate'] as string | undefined)
      if (refreshed || !ch) throw this.authError(o, ch)
      refreshed = true
      if (ch.scheme === 'basic') {
        if (!this.opts.credentials) throw this.authError(o, ch)
        this.basic = 'Basic ' + Buffer.from(`${this.opts.credentials.username}:${this.opts.credentials.password}`).toString('base64')
      } else if (ch.scheme === 'bearer') {
        // A 401 with a token we had: it expired (or lacks a scope); ask for a new one covering every scope so far.
        if (ch.params.scope) for (const s of ch.params.scope.split(' ')) this.scopes.add(s)
        this.bearer = ch
        await this.fetchToken(o)
      } else {
        throw new VeloError('UNSUPPORTED', `the registry ${this.registry} asks for ${ch.scheme} authentication`, {suggestion: 'velo speaks basic and bearer-token auth'})
      }
    }
  }

  /** A JSON answer (registry errors are thrown as VeloErrors). */
  async json(method: string, target: string, o: RequestOptions): Promise<{value: any; raw: Buffer; headers: http.IncomingHttpHeaders}> {
    const r = await this.request(method, target, o)
    const raw = await readAll(r.body, 64 << 20, o.what)
    this.received += raw.length
    try {
      return {value: JSON.parse(raw.toString('utf8')), raw, headers: r.headers}
    } catch (err) {
      throw new VeloError('BAD_INPUT', `${o.what}: the registry's answer is not JSON (${(err as Error).message})`)
    }
  }

  private authHeader(): string | undefined {
    return this.token ? `Bearer ${this.token}` : this.basic
  }

  private async fetchToken(o: RequestOptions): Promise<void> {
    const ch = this.bearer!
    if (!ch.params.realm) throw new VeloError('AUTH', `the registry ${this.registry} asks for a bearer token but names no realm`)
    const u = new URL(ch.params.realm)
    if (ch.params.service) u.searchParams.set('service', ch.params.service)
    for (const s of this.scopes) u.searchParams.append('scope', s)
    const headers: Record<string, string> = {}
    const c = this.opts.credentials
    if (c) headers.authorization = 'Basic ' + Buffer.from(`${c.username}:${c.password}`).toString('base64')
    const lib = u.protocol === 'http:' ? http : https
    if (u.protocol === 'http:' && !isLoopback(u.hostname))
      throw new VeloError('AUTH', `the token service ${u.origin} is plain HTTP and not on loopback: velo does not send credentials there`)
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      const req = lib.request(u, {method: 'GET', headers, agent: u.protocol === 'http:' ? undefined : new https.Agent(tlsOptions(this.opts.ca ? fs.readFileSync(this.opts.ca) : undefined))}, resolve)
      req.on('error', reject)
      req.end()
    }).catch((err) => {
      throw this.netError(err, `token service ${u.origin}`)
    })
    const raw = await readAll(res, 1 << 20, 'token')
    if (res.statusCode === 401 || res.statusCode === 403)
      throw new VeloError('AUTH', `${o.what}: the token service of ${this.registry} refused ${c ? `the credentials from ${c.source}` : 'an anonymous request'} (${res.statusCode})`, {
        suggestion: c ? 'check the user name and password' : 'log in: --username U --password-stdin, or VELO_REGISTRY_USERNAME/VELO_REGISTRY_PASSWORD, or `docker login`',
      })
    if (res.statusCode !== 200) throw new VeloError('AUTH', `${o.what}: the token service of ${this.registry} answered ${res.statusCode}`)
    let tok: any
    try {
      tok = JSON.parse(raw.toString('utf8'))
    } catch {
      throw new VeloError('AUTH', `${o.what}: the token service of ${this.registry} sent no JSON`)
    }
    const t = tok?.token ?? tok?.access_token
    if (typeof t !== 'string' || !t) throw new VeloError('AUTH', `${o.what}: the token service of ${this.registry} sent no token`)
    this.token = t
  }

  private authError(o: RequestOptions, ch: Challenge | undefined): VeloError {
    const c = this.opts.credentials
    if (!c)
      return new VeloError('AUTH', `${o.what}: the registry ${this.registry} needs credentials (401)`, {
        suggestion: 'pass --username U --password-stdin, or set VELO_REGISTRY_USERNAME and VELO_REGISTRY_PASSWORD, or `docker login` (velo reads ~/.docker/config.json)',
      })
    return new VeloError('AUTH', `${o.what}: the registry ${this.registry} refused the credentials from ${c.source} (401${ch ? `, ${ch.scheme}` : ''})`, {
      suggestion: 'check the user name, password and that this user may push/pull this repository',
    })
  }

  private async check(res: Response, o: RequestOptions): Promise<Response> {
    const ok = o.expect ? o.expect.includes(res.status) : res.status >= 200 && res.status < 300
    if (ok) return res
    const raw = await readAll(res.body, 1 << 20, o.what).catch(() => Buffer.alloc(0))
    let code = ''
    let message = ''
    try {
      const e = JSON.parse(raw.toString('utf8'))?.errors?.[0]
      code = String(e?.code ?? '')
      message = String(e?.message ?? '')
    } catch {}
    if (res.status === 400 && /HTTP request to an HTTPS server/i.test(raw.toString('utf8')))
      return Promise.reject(new VeloError('UNREACHABLE', `${o.what}: ${this.registry} speaks TLS, not plain HTTP`, {suggestion: 'drop --insecure (pass the CA with --ca FILE if its certificate is not in the system store)'}))
    const said = `${res.status}${code ? ` ${code}` : ''}${message ? `: ${message}` : ''}`
    if (res.status === 404 || code === 'MANIFEST_UNKNOWN' || code === 'NAME_UNKNOWN' || code === 'BLOB_UNKNOWN')
      return Promise.reject(new VeloError('NOT_FOUND', `${o.what}: not in the registry ${this.registry} (${said})`, {suggestion: 'check the repository and tag'}))
    if (res.status === 403 || code === 'DENIED') return Promise.reject(new VeloError('AUTH', `${o.what}: the registry ${this.registry} denied it (${said})`, {suggestion: 'this user may not do that on this repository'}))
    if (code === 'DIGEST_INVALID' || code === 'SIZE_INVALID')
      return Promise.reject(new VeloError('INTEGRITY', `${o.what}: the registry ${this.registry} says the upload does not match its digest (${said})`, {suggestion: 'run `velo fsck` on the store, then push again'}))
    if (res.status === 405 || code === 'UNSUPPORTED')
      return Promise.reject(new VeloError('UNSUPPORTED', `${o.what}: the registry ${this.registry} does not support it (${said})`, {suggestion: 'deleting needs `storage.delete.enabled: true` in the registry config'}))
    return Promise.reject(new VeloError('STATE', `${o.what}: the registry ${this.registry} answered ${said}`))
  }

  private url(target: string): URL {
    return new URL(target, this.base)
  }

  private async send(method: string, target: string, o: RequestOptions, hops = 0): Promise<Response> {
    const u = this.url(target)
    const headers: Record<string, string | number> = {'user-agent': 'velo', ...(o.headers ?? {})}
    const auth = this.authHeader()
    const sameOrigin = u.origin === new URL(this.base).origin
    if (auth && sameOrigin) headers.authorization = auth
    let body: Buffer | AsyncIterable<Buffer> | undefined
    if (o.body) {
      body = Buffer.isBuffer(o.body) ? o.body : o.body()
      if (Buffer.isBuffer(body)) headers['content-length'] = body.length
    } else if (method === 'PUT' || method === 'POST' || method === 'PATCH') headers['content-length'] = 0
    // A large body waits for "100 Continue": a registry that refuses the request (a token that expired
    // mid-push) answers 401 before a byte of it is sent, and the retry sends it once.
    const waitContinue = body !== undefined && (!Buffer.isBuffer(body) || body.length > 64 << 10)
    if (waitContinue) headers.expect = '100-continue'
    this.requests++
    const lib = u.protocol === 'http:' ? http : https
    const agent = sameOrigin ? this.agent : undefined
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      const req = lib.request(u, {method, headers, agent}, resolve)
      req.setTimeout(120_000, () => req.destroy(Object.assign(new Error('no answer in 120 s'), {code: 'ETIMEDOUT'})))
      req.on('error', reject)
      const sendBody = () => {
        if (body === undefined) req.end()
        else if (Buffer.isBuffer(body)) {
          this.sent += body.length
          req.end(body)
        } else {
          const src = Readable.from(body)
          src.on('data', (c: Buffer) => (this.sent += c.length))
          src.on('error', (err) => req.destroy(err))
          src.pipe(req)
        }
      }
      if (waitContinue) {
        req.on('continue', sendBody)
        req.flushHeaders()
      } else sendBody()
    }).catch((err) => {
      throw this.netError(err, o.what)
    })
    const status = res.statusCode ?? 0
    if ((method === 'GET' || method === 'HEAD') && [301, 302, 303, 307, 308].includes(status) && res.headers.location && hops < 5) {
      res.resume()
      // Storage behind the registry (S3 and the like) answers on its own origin: no registry credentials go there.
      return this.send(method, new URL(res.headers.location, u).toString(), o, hops + 1)
    }
    return {status, headers: res.headers, body: res}
  }

  netError(err: unknown, what: string): VeloError {
    if (err instanceof VeloError) return err
    const e = err as NodeJS.ErrnoException
    const code = e?.code ?? ''
    if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|HOSTNAME|ALTNAME/.test(code) || /certificate/i.test(e?.message ?? ''))
      return new VeloError('UNREACHABLE', `${what}: the TLS certificate of ${this.registry} is not trusted (${code || e.message})`, {
        suggestion: 'pass the CA that signed it with --ca FILE (a registry on loopback without TLS: --insecure)',
      })
    if (code === 'EPROTO' || /wrong version number|packet length too long/i.test(e?.message ?? ''))
      return new VeloError('UNREACHABLE', `${what}: ${this.registry} does not speak ${this.opts.insecure ? 'plain HTTP' : 'TLS'} (${e.message})`, {
        suggestion: this.opts.insecure ? 'drop --insecure' : 'a plain-HTTP registry on loopback needs --insecure',
      })
    if (CONNECTION_ERRORS.has(code))
      return new VeloError('UNREACHABLE', `${what}: cannot reach the registry ${this.registry} (${code})`, {
        suggestion: 'check that the registry runs and listens at that address',
      })
    return new VeloError('UNREACHABLE', `${what}: ${this.registry}: ${e?.message ?? String(err)}`, {cause: err})
  }
}

function tlsOptions(ca: Buffer | undefined): https.AgentOptions {
  if (!ca) return {}
  // Node's default roots plus the given CA (ca: replaces the roots, so both are passed).
  return {ca: [...tls.rootCertificates, ca.toString('utf8')]}
}

/** Read a whole (small) body, refusing more than `max` bytes. */
export async function readAll(s: AsyncIterable<Buffer>, max: number, what: string): Promise<Buffer> {
  const parts: Buffer[] = []
  let n = 0
  for await (const c of s) {
    n += c.length
    if (n > max) throw new VeloError('BAD_INPUT', `${what}: the registry sent more than ${max} bytes`)
    parts.push(c as Buffer)
  }
  return Buffer.concat(parts)
}
