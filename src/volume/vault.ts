import {execFileSync} from 'node:child_process'
import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {VeloError, fromSystemError} from '../lib/errors'
import {emitEvent} from '../lib/events'
import {writeFileAtomic} from '../lib/fsutil'
import {sleepSync} from '../lib/sleep'
import {isRoot} from '../lib/home'
import {nativeBin} from '../lib/native'
import {isVolumeExtra, parseBytes} from '../profiles/profile'
import type {MountSpec} from '../profiles/profile'
import {isRunning, listTenantNames, readState} from '../sandbox/state'
import {lockVolume, mountedAt, readRecord, recoverRestore, volumeDataDir, volumeDir} from './volumes'

/**
 * A volume's vault: a directory of secrets that shows as `.vault` in the volume's mounts while it is unlocked and
 * is absent while it is locked (docs/volumes.md, "The vault").
 *
 * The files live on an ext4 of their own, an image file made with the encrypt feature (volumes/NAME/vault/disk.img,
 * sparse), in a directory encrypted by the kernel's fscrypt (v2 policy: AES-256-XTS contents, AES-256-CTS names):
 * on disk, names and bytes are ciphertext. Its 512-bit master key is random; on disk it exists only wrapped
 * (ChaCha20-Poly1305) by a key derived from the password with Argon2id (header.json). Unlock derives, unwraps,
 * mounts the image and hands the key to the filesystem's keyring (native/tools/velo-vault); lock removes the key
 * (its secret wiped, cached plaintext of closed files evicted), shuts the filesystem down (every open descriptor
 * then fails with EIO) and unmounts it. Whether a vault is unlocked is the kernel's state (the image mounted at
 * vault/mnt), never a file that a crash could leave wrong.
 *
 * Not in the store: snapshots leave `.vault` out (their objects are shared, deduplicated and unencrypted), and a
 * restore is refused while the vault is unlocked.
 */

/** The reserved name in a volume's root where its vault shows while unlocked. */
export const VAULT_DIR = '.vault'

const KEY_BYTES = 64 // fscrypt v2 with AES-256-XTS takes a 512-bit master key
const KDF = {memoryKiB: 64 * 1024, iterations: 3, parallelism: 1} // RFC 9106's second choice, one lane
const DEFAULT_SIZE = 1024 ** 3
const MIN_SIZE = 16 * 1024 ** 2
/** After n wrong passwords in a row, the next try waits 2^(n-1) s, at most this long. */
const MAX_BACKOFF_S = 300

interface VaultHeader {
  version: 1
  kdf: {name: 'argon2id'; salt: string; memoryKiB: number; iterations: number; parallelism: number}
  cipher: 'chacha20-poly1305'
  nonce: string
  /** the master key encrypted, then its 16-byte tag (base64) */
  wrappedKey: string
  /** fscrypt's identifier of the master key (hex): what the filesystem names it by */
  keyId: string
  size: number
  createdAt: string
}

export type VaultState = 'locked' | 'unlocked'

const vaultHome = (home: string, name: string) => path.join(volumeDir(home, name), 'vault')
const headerFile = (home: string, name: string) => path.join(vaultHome(home, name), 'header.json')
const imageFile = (home: string, name: string) => path.join(vaultHome(home, name), 'disk.img')
const mountDir = (home: string, name: string) => path.join(vaultHome(home, name), 'mnt')
/** the encrypted directory inside the vault's filesystem: what `.vault` shows */
const filesDir = (home: string, name: string) => path.join(mountDir(home, name), 'files')
const failuresFile = (home: string, name: string) => path.join(vaultHome(home, name), 'failures.json')

function needRoot(what: string): void {
  if (!isRoot()) throw new VeloError('PERMISSION_DENIED', `${what} needs root (it mounts the vault's encrypted filesystem)`, {suggestion: 'run it as root (sudo)'})
}

function readHeader(home: string, name: string): VaultHeader | undefined {
  let text: string
  try {
    text = fs.readFileSync(headerFile(home, name), 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw fromSystemError(err, `cannot read the vault of volume ${name}`)
  }
  try {
    const h = JSON.parse(text) as VaultHeader
    if (h.version !== 1 || h.kdf?.name !== 'argon2id' || h.cipher !== 'chacha20-poly1305') throw new Error('unknown format')
    return h
  } catch {
    throw new VeloError('STATE', `the vault header of volume ${name} is damaged`, {suggestion: `its files cannot be unlocked without it; ${headerFile(home, name)}`})
  }
}

function requireHeader(home: string, name: string): VaultHeader {
  const h = readHeader(home, name)
  if (!h) throw new VeloError('NOT_FOUND', `volume ${name} has no vault`, {suggestion: `make one: velo volume vault create ${name}`})
  return h
}

/** The device of the filesystem mounted at the vault's mount dir, if one is (its own, not the store's). */
function mountedDev(home: string, name: string): number | undefined {
  try {
    const m = fs.statSync(mountDir(home, name))
    return m.dev !== fs.statSync(vaultHome(home, name)).dev ? m.dev : undefined
  } catch {
    return undefined
  }
}

/** A device as mountinfo and velo-vault name it: "major:minor" (glibc's dev_t encoding, as Node's stat gives it). */
const devName = (dev: number) => `${Math.floor(dev / 256) & 0xfff}:${(dev & 0xff) | (Math.floor(dev / 4096) & 0xfff00)}`

/** The vault's key in its mounted filesystem: present (unlocked), or absent / incomplete (a lock or unlock cut short). */
function keyStatus(home: string, name: string, dev: number, keyId: string): string {
  return vaultTool(['status', mountDir(home, name), devName(dev), keyId], `cannot read the state of the vault of volume ${name}`).trim()
}

/** Whether a volume has a vault, and whether it is unlocked now: mounted, with its key in the filesystem. */
export function vaultState(home: string, name: string): VaultState | undefined {
  const h = readHeader(home, name)
  if (!h) return undefined
  const dev = mountedDev(home, name)
  return dev !== undefined && keyStatus(home, name, dev, h.keyId) === 'present' ? 'unlocked' : 'locked'
}

/** Argon2id of the password: the key that wraps the master key. */
async function deriveKek(password: string, kdf: VaultHeader['kdf']): Promise<Buffer> {
  const {argon2id} = await import('hash-wasm')
  const out = await argon2id({password, salt: Buffer.from(kdf.salt, 'base64'), iterations: kdf.iterations, memorySize: kdf.memoryKiB, parallelism: kdf.parallelism, hashLength: 32, outputType: 'binary'})
  const kek = Buffer.from(out)
  out.fill(0)
  return kek
}

/** What the wrapped key's tag covers besides the key: the header's fields that say what the key is for. */
const wrapAad = (h: Pick<VaultHeader, 'version' | 'keyId' | 'size'>) => Buffer.from(`velo-vault v${h.version} ${h.keyId} ${h.size}`)

function wrapKey(kek: Buffer, key: Buffer, h: Pick<VaultHeader, 'version' | 'keyId' | 'size'>): {nonce: string; wrappedKey: string} {
  const nonce = crypto.randomBytes(12)
  const c = crypto.createCipheriv('chacha20-poly1305', kek, nonce, {authTagLength: 16})
  c.setAAD(wrapAad(h), {plaintextLength: key.length})
  const body = Buffer.concat([c.update(key), c.final(), c.getAuthTag()])
  return {nonce: nonce.toString('base64'), wrappedKey: body.toString('base64')}
}

/** The master key, or undefined when the password is wrong (the tag does not verify: nothing else is said). */
function unwrapKey(kek: Buffer, h: VaultHeader): Buffer | undefined {
  const body = Buffer.from(h.wrappedKey, 'base64')
  if (body.length !== KEY_BYTES + 16) throw new VeloError('STATE', 'the vault header is damaged (wrapped key of a wrong length)')
  const d = crypto.createDecipheriv('chacha20-poly1305', kek, Buffer.from(h.nonce, 'base64'), {authTagLength: 16})
  d.setAAD(wrapAad(h), {plaintextLength: KEY_BYTES})
  d.setAuthTag(body.subarray(KEY_BYTES))
  const part = d.update(body.subarray(0, KEY_BYTES))
  try {
    return Buffer.concat([part, d.final()])
  } catch {
    return undefined
  } finally {
    part.fill(0)
  }
}

function run(cmd: string, args: string[], what: string, input?: Buffer): string {
  try {
    return execFileSync(cmd, args, {input, stdio: [input ? 'pipe' : 'ignore', 'pipe', 'pipe'], encoding: 'utf8'})
  } catch (err) {
    const e = err as {stderr?: string; code?: string}
    if (e.code === 'ENOENT') throw new VeloError('UNSUPPORTED', `${what}: ${cmd} is not installed`, {suggestion: 'install e2fsprogs and util-linux (Debian: apt-get install e2fsprogs mount)'})
    throw new VeloError('NATIVE', `${what}: ${String(e.stderr ?? err).trim()}`)
  }
}

function vaultTool(args: string[], what: string, key?: Buffer): string {
  return run(nativeBin('velo-vault'), args, what, key)
}

/** Mount the vault's image (a loop device util-linux sets up and frees with the last unmount). */
function mountImage(home: string, name: string): void {
  fs.mkdirSync(mountDir(home, name), {recursive: true, mode: 0o700})
  run('mount', ['-t', 'ext4', '-o', 'loop,nosuid,nodev', imageFile(home, name), mountDir(home, name)], `cannot mount the vault of volume ${name}`)
}

/**
 * The loop device still holding the image after a lock while a process kept a file of the vault open (the
 * filesystem is shut down, but lives until the last descriptor closes): a second mount of the same image beside
 * it is never made. The processes holding it are named.
 */
function refuseWhileHeld(home: string, name: string): void {
  const loops = () => run('losetup', ['--noheadings', '--output', 'NAME', '-j', imageFile(home, name)], 'cannot list loop devices').trim()
  let out = loops()
  if (!out) return
  const devs = out.split('\n').map((d) => fs.statSync(d.trim()).rdev)
  const holders = heldBy(devs)
  if (holders.size)
    throw new VeloError('BUSY', `the vault of volume ${name} was locked while files of it were open, and processes ${[...holders].join(', ')} still hold them (each call on them fails with EIO)`, {
      suggestion: 'end those processes or close those files, then unlock again',
    })
  // No process holds it: a mount namespace made while the vault was mounted (any tenant's or container's start
  // copies the host's mounts) may not have let its copy go yet; one that is being set up does within moments, and
  // the loop device goes a moment after its last user.
  for (const until = Date.now() + HELD_GRACE_MS; out && Date.now() < until; out = loops()) sleepSync(50)
  if (!out) return
  const namespaces = mountedIn(devs)
  throw new VeloError('BUSY', `the vault of volume ${name} is still mounted in ${namespaces.length ? `the mount namespaces of processes ${namespaces.join(', ')}` : 'a mount namespace'}, made while it was unlocked (locked there too: each call on it fails with EIO)`, {
    suggestion: namespaces.length ? 'end those processes (or unmount it there), then unlock again' : `restart the sandboxes that mount volume ${name}, then unlock again`,
  })
}

/** How long an unlock waits for a loop device no process holds to be let go of before it refuses */
const HELD_GRACE_MS = 3000

/** One process of each mount namespace that has a mount of one of the devices (/proc/PID/mountinfo's MAJ:MIN) */
function mountedIn(devs: number[]): string[] {
  // a device number as mountinfo writes it: the kernel's new_encode_dev split back into major and minor
  const ids = devs.map((d) => `${Math.floor(d / 256) & 0xfff}:${(d & 0xff) | (Math.floor(d / 4096) & 0xfff00)}`)
  const seen = new Set<string>()
  const found: string[] = []
  for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const ns = fs.readlinkSync(`/proc/${pid}/ns/mnt`)
      if (seen.has(ns)) continue
      seen.add(ns)
      if (fs.readFileSync(`/proc/${pid}/mountinfo`, 'utf8').split('\n').some((l) => ids.includes(l.split(' ')[2])))
        found.push(`${pid} (${fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim()})`)
    } catch {} // gone meanwhile, or not ours to read
  }
  return found
}

/** The processes with an open file or their cwd on one of the devices */
function heldBy(devs: number[]): Set<string> {
  const holders = new Set<string>()
  for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    let fds: string[]
    try {
      fds = fs.readdirSync(`/proc/${pid}/fd`)
    } catch {
      continue
    }
    for (const fd of fds) {
      try {
        if (devs.includes(fs.statSync(`/proc/${pid}/fd/${fd}`).dev)) {
          holders.add(`${pid} (${fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim()})`)
          break
        }
      } catch {}
    }
    try {
      if (devs.includes(fs.statSync(`/proc/${pid}/cwd`).dev)) holders.add(`${pid} (${fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim()})`)
    } catch {}
  }
  return holders
}

/** A bind of the vault at `target` (in a tenant's mount namespace with `pid`), never through a symlink (velo-bind). */
function bind(src: string, target: string, o: {pid?: number; readonly?: boolean} = {}): void {
  run(nativeBin('velo-bind'), [src, target, '--nosuid', ...(o.readonly ? ['--ro'] : []), ...(o.pid ? ['--pid', String(o.pid)] : [])], `cannot show the vault at ${target}${o.pid ? ` (pid ${o.pid})` : ''}`)
}

/** Where `.vault` shows on the host: in each `velo volume mount` of the volume. */
function hostMountPoints(home: string, name: string): string[] {
  return mountedAt(home, name).map((d) => path.join(d, VAULT_DIR))
}

/** `.vault` in the volume's root, made from the host as the mount point of every bind of the vault. */
function makeMountPoint(home: string, name: string): void {
  const p = path.join(volumeDataDir(home, name), VAULT_DIR)
  try {
    fs.mkdirSync(p, {mode: 0o755})
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw fromSystemError(err, `cannot make ${p}`)
    const st = fs.lstatSync(p)
    if (!st.isDirectory() || fs.readdirSync(p).length)
      throw new VeloError('STATE', `volume ${name} has a ${VAULT_DIR} of its own (made while its vault was locked); ${VAULT_DIR} is reserved for the vault`, {
        suggestion: `move it away first: its files are in ${p}`,
      })
  }
}

/** `velo volume vault create NAME`: a new vault, left unlocked (its `.vault` empty, ready to fill). */
export async function createVault(home: string, name: string, password: string, o: {size?: string} = {}): Promise<{volume: string; size: number; state: VaultState; warnings: string[]}> {
  readRecord(home, name)
  needRoot('a vault')
  const size = o.size === undefined ? DEFAULT_SIZE : parseBytes(o.size, '--size', MIN_SIZE)
  const lock = lockVolume(home, name)
  try {
    if (readHeader(home, name)) throw new VeloError('ALREADY_EXISTS', `volume ${name} already has a vault`, {suggestion: `unlock it: velo volume vault unlock ${name}`})
    const dir = vaultHome(home, name)
    // a create cut short left a partial vault without a header (perhaps mounted): it never held a secret, start again
    detach(home, name)
    fs.rmSync(dir, {recursive: true, force: true})
    fs.mkdirSync(dir, {mode: 0o700})
    const img = imageFile(home, name)
    fs.closeSync(fs.openSync(img, 'wx', 0o600))
    fs.truncateSync(img, size) // sparse: the vault takes the blocks its files take
    run('mkfs.ext4', ['-q', '-F', '-O', 'encrypt', '-m', '0', '-L', 'velo-vault', '-E', 'lazy_itable_init=0,root_owner=0:0', img], `cannot make the vault of volume ${name}`)
    const key = crypto.randomBytes(KEY_BYTES)
    let kek: Buffer | undefined
    let warnings: string[] = []
    try {
      mountImage(home, name)
      fs.mkdirSync(filesDir(home, name), {mode: 0o755})
      const keyId = vaultTool(['init', filesDir(home, name)], `cannot encrypt the vault of volume ${name}`, key).trim()
      const kdf = {name: 'argon2id' as const, salt: crypto.randomBytes(16).toString('base64'), ...KDF}
      kek = await deriveKek(password, kdf)
      const h: VaultHeader = {version: 1, kdf, cipher: 'chacha20-poly1305', nonce: '', wrappedKey: '', keyId, size, createdAt: new Date().toISOString()}
      Object.assign(h, wrapKey(kek, key, h))
      writeFileAtomic(headerFile(home, name), JSON.stringify(h, null, 2) + '\n')
      warnings = attach(home, name)
    } catch (err) {
      detach(home, name, readHeader(home, name)?.keyId)
      fs.rmSync(dir, {recursive: true, force: true})
      throw err
    } finally {
      key.fill(0)
      kek?.fill(0)
    }
    emitEvent(home, 'volume', 'vault-create', name, {size})
    return {volume: name, size, state: 'unlocked', warnings}
  } finally {
    lock.release()
  }
}

/**
 * The vault's files at `.vault` in every mount of the volume: the host's (`velo volume mount`) and those of the running
 * tenants that mount it (a bind made in the tenant's mount namespace, idmapped with its user namespace, as its start
 * would have made it). Returns what could not be done for a tenant (one stopping meanwhile, say).
 */
function attach(home: string, name: string): string[] {
  makeMountPoint(home, name)
  const dev = mountedDev(home, name)
  for (const p of hostMountPoints(home, name)) if (fs.lstatSync(p).dev !== dev) bind(filesDir(home, name), p)
  const warnings: string[] = []
  for (const t of listTenantNames(home)) {
    let s
    try {
      s = readState(home, t)
    } catch {
      continue
    }
    if (!isRunning(s)) continue
    for (const m of s.mounts) {
      if (m.volume !== name || isVolumeExtra(m)) continue
      const target = path.posix.join(m.target, VAULT_DIR)
      try {
        bind(filesDir(home, name), target, {pid: s.pid, readonly: m.readonly})
      } catch (err) {
        warnings.push(`sandbox ${t} gets the vault at its next start: ${(err as Error).message}`)
      }
    }
  }
  return warnings
}

/**
 * Lock what is mounted: every bind of the vault detached (the host's first; then `.vault` removed from the volume's
 * root, which takes it out of every tenant's mount namespace), the key removed from the filesystem (its secret
 * wiped; the files nobody holds open evicted with their cached plaintext), the filesystem shut down (a descriptor
 * still open fails with EIO from here on) and unmounted. Each step is tried whatever the one before did (the first
 * error is thrown at the end); velo-vault acts only on the root of a mount of the vault's own device.
 * Returns whether open files kept some of it alive, and what a sandbox left in the way.
 */
function detach(home: string, name: string, keyId?: string): {openFiles: boolean; warnings: string[]} {
  const dev = mountedDev(home, name)
  // mountinfo names mount points by their real path
  const mnt = dev === undefined ? '' : path.join(fs.realpathSync(vaultHome(home, name)), 'mnt')
  const errors: unknown[] = []
  const warnings: string[] = []
  const step = (fn: () => void) => {
    try {
      fn()
    } catch (err) {
      errors.push(err)
    }
  }
  if (dev !== undefined) {
    // the host's binds of it (`velo volume mount`): mountinfo's third field is the filesystem's device
    for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
      const f = line.split(' ')
      if (f[2] !== devName(dev)) continue
      const point = f[4].replace(/\\(\d{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)))
      if (point !== mnt) step(() => vaultTool(['umount', point, devName(dev)], `cannot detach the vault from ${point}`))
    }
  }
  // the mount point: removing it detaches the binds every tenant's namespace has of it
  step(() => {
    try {
      fs.rmdirSync(path.join(volumeDataDir(home, name), VAULT_DIR))
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ENOTEMPTY' || code === 'ENOTDIR')
        warnings.push(`${VAULT_DIR} in volume ${name} is not the vault's mount point (a sandbox replaced it?): a sandbox that had the vault may keep a dead ${VAULT_DIR} (every call on it fails) until it restarts`)
      else if (code !== 'ENOENT') throw fromSystemError(err, `cannot remove ${VAULT_DIR} from volume ${name}`)
    }
  })
  let openFiles = false
  if (dev !== undefined) {
    // locked whatever the above did: the key out, the filesystem down, unmounted
    if (keyId) step(() => (openFiles = vaultTool(['remove', mnt, devName(dev), keyId], `cannot lock the vault of volume ${name}`).includes('busy')))
    step(() => vaultTool(['shutdown', mnt, devName(dev)], `cannot lock the vault of volume ${name}`))
    step(() => vaultTool(['umount', mnt, devName(dev)], `cannot unmount the vault of volume ${name}`))
  }
  if (errors.length) throw errors[0]
  return {openFiles, warnings}
}

/** Refuse a try while the last wrong ones are recent; count this try before it is made (a kill cannot skip it). */
function countTry(home: string, name: string): number {
  let f = {count: 0, last: 0}
  try {
    f = JSON.parse(fs.readFileSync(failuresFile(home, name), 'utf8'))
  } catch {}
  if (f.count > 0) {
    const wait = Math.min(2 ** (f.count - 1), MAX_BACKOFF_S) * 1000
    const left = f.last + wait - Date.now()
    if (left > 0)
      throw new VeloError('RATE_LIMITED', `too many wrong passwords for the vault of volume ${name}`, {suggestion: `try again in ${Math.ceil(left / 1000)} s`})
  }
  writeFailures(home, name, f.count + 1)
  return f.count + 1
}

/** The wrong tries in a row, and when the last one was counted or answered (the next wait runs from it) */
const writeFailures = (home: string, name: string, count: number) => writeFileAtomic(failuresFile(home, name), JSON.stringify({count, last: Date.now()}) + '\n')

/** `velo volume vault unlock NAME`: the vault's files at `.vault` again. */
export async function unlockVault(home: string, name: string, password: string): Promise<{volume: string; state: VaultState; already?: boolean; warnings: string[]}> {
  readRecord(home, name)
  needRoot('unlocking a vault')
  const lock = lockVolume(home, name)
  try {
    const h = requireHeader(home, name)
    recoverRestore(home, name, 'locked') // a restore killed midway is finished while `.vault` is absent
    const dev = mountedDev(home, name)
    if (dev !== undefined) {
      if (keyStatus(home, name, dev, h.keyId) === 'present') {
        // a host mount made since shows it too (running tenants have it: from their start or the unlock)
        for (const p of hostMountPoints(home, name)) if (fs.lstatSync(p).dev !== dev) bind(filesDir(home, name), p)
        return {volume: name, state: 'unlocked', already: true, warnings: []}
      }
      detach(home, name, h.keyId) // a lock or an unlock cut short (mounted without its key): finish the lock first
    }
    const tries = countTry(home, name)
    const kek = await deriveKek(password, h.kdf)
    const key = unwrapKey(kek, h)
    kek.fill(0)
    if (!key) {
      // the wait runs from the answer, not from the try's start: a slow key derivation does not use it up
      writeFailures(home, name, tries)
      emitEvent(home, 'volume', 'vault-auth-failed', name, {tries})
      throw new VeloError('AUTH', `wrong password for the vault of volume ${name}`, {suggestion: `the next try waits ${Math.min(2 ** (tries - 1), MAX_BACKOFF_S)} s`})
    }
    fs.rmSync(failuresFile(home, name), {force: true})
    let warnings: string[] = []
    try {
      refuseWhileHeld(home, name)
      mountImage(home, name)
      try {
        vaultTool(['add', mountDir(home, name), devName(mountedDev(home, name) ?? 0), h.keyId], `cannot unlock the vault of volume ${name}`, key)
        warnings = attach(home, name)
      } catch (err) {
        detach(home, name, h.keyId)
        throw err
      }
    } finally {
      key.fill(0)
    }
    emitEvent(home, 'volume', 'vault-unlock', name)
    return {volume: name, state: 'unlocked', warnings}
  } finally {
    lock.release()
  }
}

/** `velo volume vault lock NAME`: `.vault` gone from every mount of the volume; open files of it fail with EIO. */
export function lockVault(home: string, name: string): {volume: string; state: VaultState; openFiles: boolean; warnings: string[]} {
  readRecord(home, name)
  needRoot('locking a vault')
  const lock = lockVolume(home, name)
  try {
    const h = requireHeader(home, name)
    const {openFiles, warnings} = detach(home, name, h.keyId)
    emitEvent(home, 'volume', 'vault-lock', name, {openFiles: String(openFiles)})
    return {volume: name, state: 'locked', openFiles, warnings}
  } finally {
    lock.release()
  }
}

/**
 * The vault's bind under a tenant's `-v NAME:TARGET` (TARGET/.vault, idmapped like the volume), when it is unlocked
 * at the tenant's start; none when locked. Called while the volume is held (holdVolumes): no lock comes between.
 */
export function vaultMounts(home: string, name: string, target: string, readonly: boolean): MountSpec[] {
  const state = vaultState(home, name)
  if (state === 'locked') {
    // a host restart unmounted it without a lock: its empty mount point goes, so `.vault` is absent as locked
    try {
      fs.rmdirSync(path.join(volumeDataDir(home, name), VAULT_DIR))
    } catch {}
  }
  if (state !== 'unlocked') return []
  makeMountPoint(home, name)
  return [{source: filesDir(home, name), target: path.posix.join(target, VAULT_DIR), readonly, volume: name, vault: true}]
}

/** For `velo volume rm` and restore: refused while the vault is unlocked (its files are in use, and not a snapshot's). */
export function refuseUnlockedVault(home: string, name: string, what: string): void {
  // mounted is unlocked, with a header or without (a create cut short: `vault create` again cleans it up)
  if (mountedDev(home, name) !== undefined)
    throw new VeloError('BUSY', `the vault of volume ${name} is unlocked`, {suggestion: `lock it before ${what}: velo volume vault lock ${name}`})
}
