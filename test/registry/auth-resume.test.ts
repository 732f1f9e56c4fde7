import {spawn} from 'node:child_process'
import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import * as http from 'node:http'
import * as path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {blobExists, uploadBlob} from '../../src/registry/blobs'
import {RegistryClient} from '../../src/registry/client'
import {rmrf, tmpDir, velo, VELO, veloJson} from '../helpers'
import {bytes, checkoutListing, makeTree} from './fixture'
import {Registry, startRegistry} from './registry'

const issued = (reg: Registry) =>
  new Promise<number>((resolve, reject) =>
    http.get(`${reg.tokenUrl}/issued`, (res) => {
      let b = ''
      res.on('data', (c) => (b += c))
      res.on('end', () => resolve(Number(b)))
    }).on('error', reject),
  )

/**
 * Bearer-token auth (distribution's `auth.token` with a token service of the test's own, JWTs signed by a
 * test key, over TLS): push and pull through it, and a token that expires in the middle of a chunked upload
 * is replaced on the 401 and the upload goes on. Then a push killed mid-upload resumes its upload session.
 */
describe('velo push / pull: bearer tokens, resumed uploads', () => {
  let reg: Registry
  let w: string
  let env: Record<string, string>

  beforeAll(async () => {
    // the first token lives 2 s, every later one 5 minutes
    reg = await startRegistry({tls: true, auth: 'token', firstTokenLifetime: 2})
    w = tmpDir('velo-auth-')
    env = {VELO_REGISTRY_USERNAME: reg.user!.username, VELO_REGISTRY_PASSWORD: reg.user!.password}
  })
  afterAll(async () => {
    await reg?.stop()
    if (w) rmrf(w)
  })

  it('a token that expires mid-upload: the 401 gets a new token and the same chunk is sent again', async () => {
    const client = new RegistryClient(reg.host, {ca: reg.ca, credentials: {...reg.user!, source: 'test'}})
    try {
      const blob = bytes('mid-transfer', 20 << 20)
      const digest = 'sha256:' + crypto.createHash('sha256').update(blob).digest('hex')
      expect(await blobExists(client, 'auth/blob', digest)).toBe(false)
      expect(await issued(reg)).toBe(1)
      let calls = 0
      // the first chunk takes 3 s to send: the token (2 s) expires meanwhile, so the next PATCH meets a 401
      const src = async function* (from: number, to: number) {
        calls++
        if (calls === 1) await new Promise((r) => setTimeout(r, 3000))
        yield blob.subarray(from, to)
      }
      expect(await uploadBlob(client, 'auth/blob', digest, blob.length, src)).toBe('uploaded')
      expect(await issued(reg)).toBe(2)
      // three chunks; the refused PATCH waited for "100 Continue", so no byte went out twice
      expect(calls).toBe(3)
      expect(client.sent).toBe(blob.length)
      expect(await blobExists(client, 'auth/blob', digest)).toBe(true)
    } finally {
      client.close()
    }
  })

  it('push and pull through the token service; wrong credentials are refused', () => {
    const A = path.join(w, 'A')
    makeTree(path.join(w, 'tree'), {files: 60})
    veloJson(A, ['ingest', path.join(w, 'tree'), '--name', 'tree'])
    veloJson(A, ['push', 'tree', `${reg.host}/auth/tree:1`, ...reg.flags], {env})
    const B = path.join(w, 'B')
    veloJson(B, ['pull', `${reg.host}/auth/tree:1`, ...reg.flags, '--name', 'tree'], {env})
    expect(checkoutListing(B, 'tree', path.join(w, 'co-B'))).toBe(checkoutListing(A, 'tree', path.join(w, 'co-A')))
    const bad = velo(B, ['pull', `${reg.host}/auth/tree:1`, ...reg.flags, '--json'], {env: {VELO_REGISTRY_USERNAME: 'velo', VELO_REGISTRY_PASSWORD: 'wrong'}})
    expect(bad.status).toBe(1)
    expect(JSON.parse(bad.stdout).error.code).toBe('AUTH')
    expect(JSON.parse(bad.stdout).error.message).toMatch(/token service/)
  })

  it('an upload interrupted between chunks continues the same session (the registry says how far it got)', async () => {
    const client = new RegistryClient(reg.host, {ca: reg.ca, credentials: {...reg.user!, source: 'test'}})
    const sessions = path.join(w, 'sessions')
    try {
      const blob = bytes('interrupted', 20 << 20)
      const digest = 'sha256:' + crypto.createHash('sha256').update(blob).digest('hex')
      let n = 0
      const dies = async function* (from: number, to: number) {
        if (++n === 2) throw new Error('connection lost')
        yield blob.subarray(from, to)
      }
      await expect(uploadBlob(client, 'auth/interrupted', digest, blob.length, dies, {sessionDir: sessions})).rejects.toThrow(/connection lost/)
      expect(fs.readdirSync(sessions).length).toBe(1)
      const sentBefore = client.sent
      expect(await uploadBlob(client, 'auth/interrupted', digest, blob.length, async function* (from, to) {
        yield blob.subarray(from, to)
      }, {sessionDir: sessions})).toBe('resumed')
      // only the two chunks after the first one went out again
      expect(client.sent - sentBefore).toBe(blob.length - (8 << 20))
      expect(fs.readdirSync(sessions)).toEqual([])
      expect(await blobExists(client, 'auth/interrupted', digest)).toBe(true)
    } finally {
      client.close()
    }
  })

  it('a push SIGKILLed mid-upload: the rerun finishes it (resuming the session when the registry kept it)', async () => {
    const A = path.join(w, 'R')
    fs.mkdirSync(path.join(w, 'big'))
    fs.writeFileSync(path.join(w, 'big', 'big.bin'), bytes('resume', 96 << 20))
    veloJson(A, ['ingest', path.join(w, 'big'), '--name', 'big'])
    const uploads = path.join(A, 'remote', 'uploads')
    const p = spawn(VELO, ['push', 'big', `${reg.host}/auth/big:1`, ...reg.flags, '--json'], {env: {...process.env, ...env, VELO_HOME: A}, stdio: 'ignore'})
    const exited = new Promise<number | null>((r) => p.on('close', (code) => r(code)))
    let killed = false
    for (let i = 0; i < 6000 && p.exitCode === null; i++) {
      if (fs.existsSync(uploads) && fs.readdirSync(uploads).length > 0) {
        p.kill('SIGKILL')
        killed = true
        break
      }
      await new Promise((r) => setTimeout(r, 5))
    }
    await exited
    expect(killed, 'the push finished before it could be killed').toBe(true)
    const r = veloJson(A, ['push', 'big', `${reg.host}/auth/big:1`, ...reg.flags], {env})
    // Distribution 2.8 keeps a session only if it was cut between chunks (a chunk cut half-way leaves the
    // session longer than its recorded offset, and the registry then cancels it): resumed, or started again.
    expect(r.blobs.resumed).toBeLessThanOrEqual(1)
    if (r.blobs.resumed) expect(r.bytesSent).toBeLessThan(96 << 20)
    expect(fs.readdirSync(uploads)).toEqual([])
    const B = path.join(w, 'RB')
    veloJson(B, ['pull', `${reg.host}/auth/big:1`, ...reg.flags, '--name', 'big'], {env})
    expect(checkoutListing(B, 'big', path.join(w, 'co-RB'))).toBe(checkoutListing(A, 'big', path.join(w, 'co-RA')))
  })
})
