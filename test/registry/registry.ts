import {ChildProcess, spawn, spawnSync} from 'node:child_process'
import * as fs from 'node:fs'
import * as net from 'node:net'
import * as os from 'node:os'
import * as path from 'node:path'

/**
 * A private registry for one test file: Debian's docker-registry (CNCF Distribution 2.8) on a free loopback
 * port with its own storage, config and (optionally) TLS certificate, htpasswd users or a bearer-token service —
 * all in one temp dir that stop() removes (kill, then rm), so call it in afterAll. Traffic stays on 127.0.0.1.
 */
export interface Registry {
  /** 127.0.0.1:PORT */
  host: string
  dir: string
  storage: string
  /** the CLI flags that reach it: --insecure, or --ca FILE */
  flags: string[]
  /** the CA file for TLS registries */
  ca?: string
  user?: {username: string; password: string}
  /** the token service's base URL (bearer auth) */
  tokenUrl?: string
  /** total bytes of blob data in the registry's storage */
  blobBytes(): number
  /** every blob file under the storage dir: digest hex → path of its data file */
  blobFiles(): Map<string, string>
  /** stop the registry, run its garbage collection (deleting untagged manifests too), start it again */
  gc(): Promise<string>
  stop(): Promise<void>
}

export interface RegistryOptions {
  tls?: boolean
  auth?: 'basic' | 'token'
  /** bearer tokens: how long each is valid (s); the first one may be given a shorter life */
  tokenLifetime?: number
  firstTokenLifetime?: number
}

const HERE = __dirname

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.on('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port
      s.close(() => resolve(p))
    })
  })
}

function run(cmd: string, args: string[], opts: {cwd?: string} = {}): string {
  const r = spawnSync(cmd, args, {encoding: 'utf8', ...opts})
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr || r.error}`)
  return r.stdout
}

/** A self-signed certificate for 127.0.0.1 (its own CA): key.pem, cert.pem in dir. */
export function makeCert(dir: string, cn = '127.0.0.1'): {key: string; cert: string} {
  const key = path.join(dir, `${cn}.key.pem`)
  const cert = path.join(dir, `${cn}.cert.pem`)
  run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=${cn}`, '-addext', 'subjectAltName=IP:127.0.0.1', '-addext', 'basicConstraints=critical,CA:TRUE'])
  return {key, cert}
}

/** An htpasswd line with a bcrypt hash (cost 4: the registry checks it on every request) made by libxcrypt through perl. */
function htpasswdLine(user: string, password: string): string {
  const alphabet = './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'
  let salt = ''
  for (let i = 0; i < 21; i++) salt += alphabet[Math.floor(Math.random() * 64)]
  salt += '.' // the 22nd character carries 2 bits only: '.' keeps them zero
  const hash = run('perl', ['-e', 'print crypt($ARGV[0], $ARGV[1])', password, `$2b$04$${salt}`]).trim()
  if (!hash.startsWith('$2b$04$')) throw new Error(`bcrypt via crypt(3) failed: ${hash}`)
  return `${user}:${hash}\n`
}

async function waitFor(check: () => Promise<boolean>, what: string, log: string): Promise<void> {
  for (let i = 0; i < 150; i++) {
    if (await check()) return
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`${what} did not come up in 15 s:\n${fs.existsSync(log) ? fs.readFileSync(log, 'utf8').slice(-3000) : ''}`)
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1')
    s.on('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.on('error', () => resolve(false))
  })
}

export async function startRegistry(o: RegistryOptions = {}): Promise<Registry> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'velo-reg-'))
  const storage = path.join(dir, 'storage')
  const port = await freePort()
  const host = `127.0.0.1:${port}`
  const log = path.join(dir, 'registry.log')
  let proc: ChildProcess | undefined
  let tokenProc: ChildProcess | undefined
  const lines = ['version: 0.1', 'log:', '  level: warn', '  accesslog:', '    disabled: true', 'storage:', '  filesystem:', `    rootdirectory: ${storage}`, '  delete:', '    enabled: true', 'http:', `  addr: ${host}`]
  let ca: string | undefined
  const flags: string[] = []
  if (o.tls) {
    const c = makeCert(dir)
    ca = c.cert
    lines.push('  tls:', `    certificate: ${c.cert}`, `    key: ${c.key}`)
    flags.push('--ca', c.cert)
  } else flags.push('--insecure')
  const user = o.auth ? {username: 'velo', password: 'secret-' + Math.random().toString(36).slice(2)} : undefined
  let tokenUrl: string | undefined
  if (o.auth === 'basic') {
    fs.writeFileSync(path.join(dir, 'htpasswd'), htpasswdLine(user!.username, user!.password))
    lines.push('auth:', '  htpasswd:', '    realm: velo-test', `    path: ${path.join(dir, 'htpasswd')}`)
  } else if (o.auth === 'token') {
    const tk = makeCert(dir, 'token-signer')
    const portFile = path.join(dir, 'token.port')
    tokenProc = spawn(process.execPath, [path.join(HERE, 'token-server.mjs'), portFile, tk.key, tk.cert, `${user!.username}:${user!.password}`, String(o.tokenLifetime ?? 300), ...(o.firstTokenLifetime ? [String(o.firstTokenLifetime)] : [])], {
      stdio: ['ignore', 'ignore', fs.openSync(path.join(dir, 'token.log'), 'a')],
    })
    await waitFor(async () => fs.existsSync(portFile) && fs.readFileSync(portFile, 'utf8').length > 0, 'token service', path.join(dir, 'token.log'))
    tokenUrl = `http://127.0.0.1:${fs.readFileSync(portFile, 'utf8')}`
    lines.push('auth:', '  token:', `    realm: ${tokenUrl}/token`, '    service: velo-test-registry', '    issuer: velo-test-issuer', `    rootcertbundle: ${tk.cert}`)
  }
  const config = path.join(dir, 'config.yml')
  fs.writeFileSync(config, lines.join('\n') + '\n')

  const start = async () => {
    const fd = fs.openSync(log, 'a')
    proc = spawn('docker-registry', ['serve', config], {stdio: ['ignore', fd, fd]})
    fs.closeSync(fd)
    let exited = false
    proc.on('exit', () => (exited = true))
    await waitFor(async () => {
      if (exited) throw new Error(`docker-registry exited:\n${fs.readFileSync(log, 'utf8').slice(-3000)}`)
      return listening(port)
    }, 'docker-registry', log)
  }
  const stopRegistry = async () => {
    const p = proc
    proc = undefined
    if (!p || p.exitCode !== null) return
    const gone = new Promise<void>((r) => p.once('exit', () => r()))
    p.kill('SIGTERM')
    const t = setTimeout(() => p.kill('SIGKILL'), 5000)
    await gone
    clearTimeout(t)
  }
  const blobsRoot = path.join(storage, 'docker', 'registry', 'v2', 'blobs')
  const blobFiles = () => {
    const out = new Map<string, string>()
    const walk = (d: string) => {
      let ents: fs.Dirent[]
      try {
        ents = fs.readdirSync(d, {withFileTypes: true})
      } catch {
        return
      }
      for (const e of ents) {
        const p = path.join(d, e.name)
        if (e.isDirectory()) walk(p)
        else if (e.name === 'data') out.set(path.basename(d), p)
      }
    }
    walk(blobsRoot)
    return out
  }
  const reg: Registry = {
    host,
    dir,
    storage,
    flags,
    ca,
    user,
    tokenUrl,
    blobFiles,
    blobBytes: () => [...blobFiles().values()].reduce((a, f) => a + fs.statSync(f).size, 0),
    gc: async () => {
      await stopRegistry()
      const out = run('docker-registry', ['garbage-collect', '--delete-untagged', config])
      await start()
      return out
    },
    stop: async () => {
      await stopRegistry()
      if (tokenProc && tokenProc.exitCode === null) {
        const gone = new Promise<void>((r) => tokenProc!.once('exit', () => r()))
        tokenProc.kill('SIGTERM')
        await gone
      }
      fs.rmSync(dir, {recursive: true, force: true})
    },
  }
  try {
    await start()
  } catch (err) {
    await reg.stop()
    throw err
  }
  return reg
}
