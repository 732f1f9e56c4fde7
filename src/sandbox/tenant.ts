import * as fs from 'node:fs'
import * as path from 'node:path'
import {writeFileAtomic} from '../lib/fsutil'
import {isRoot} from '../lib/home'
import {VeloError, fromSystemError} from '../lib/errors'
import {validateName} from '../lib/names'
import type {ManifestDb} from '../manifest/db'
import {CAPS, capMask, checkEnvKey, FORBIDDEN_CAPS, checkPathValue, DISK_MIN, isVolumeExtra, loadProfileCached, MountSpec, parseBytes, parseCpus, parsePids, Profile, RATE_MIN} from '../profiles/profile'
import {cgroupStats, layout, Limits} from './cgroup'
import {DEFAULT_IMAGE} from './default-image'
import {containerBoot, containerDelete, containerExec, containerKill, containerPurge} from './container'
import {StoreLock} from '../lib/lock'
import {emitEvent} from '../lib/events'
import {onInterrupt} from '../lib/interrupt'
import {clearPauseHolds, isPaused, whileNoReaders} from './pause'
import {NETWORK_MODES, parsePublish, parseRates, resolveNetwork, tenantAddress, type PortMapping, type TenantAddress} from '../network/networks'
import {monitorAlive, parseLogOpts, parseRestart, readWorkload} from './workload'
import {ensureVolumes, holdVolumes, isVolumeName, requireVolumes, snapshotMounts, volumeDataDir} from '../volume/volumes'
import {vaultMounts} from '../volume/vault'
import {isRunning, listTenantNames, lockSandbox, readState, TenantState, tenantDir, tenantIdRanges, tenantsDir, TmpfsSpec, writeState} from './state'

/**
 * One manifest DB handle per store for the life of this process (loading lmdb and opening the env is the
 * largest fixed cost of a create or rm; `sandbox run --rm` does both and pays it once). Closed at exit.
 */
const dbs = new Map<string, ManifestDb>()
async function openDb(home: string): Promise<ManifestDb> {
  let db = dbs.get(home)
  if (!db) {
    const m = await import('../manifest/db')
    db = m.ManifestDb.open(home)
    dbs.set(home, db)
    if (dbs.size === 1) process.once('exit', () => dbs.forEach((d) => d.close()))
  }
  return db
}
function closeDb(home: string): void {
  dbs.get(home)?.close()
  dbs.delete(home)
}

export const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

export interface CreateOptions {
  image?: string
  profile?: string
  env?: string[]
  mounts?: string[]
  memory?: string
  pids?: string
  cpus?: string
  ioReadBps?: string
  ioWriteBps?: string
  disk?: string
  hostname?: string
  /** farm (default): overlay over the image's hard-link farms; fuse: over one velo-fuse mount of the image */
  backend?: string
  /** fuse backend: a mount of the tenant's own that writes the object of every file opened to this file (velo image profile) */
  traceFile?: string
  /** private (default): a user namespace of the tenant's own; host: none, tenant root is host root minus capabilities (root only) */
  userns?: string
  /** a main command's args: the tenant runs ENTRYPOINT + (these, else CMD) as a workload (monitor, logs, exit
   * code, restart policy); with `attached`, that command is returned (CreateResult.command) for the caller to run */
  command?: string[]
  /** --entrypoint: replaces the image's ENTRYPOINT (and drops its CMD), as Docker's */
  entrypoint?: string
  /** sandbox run without -d: resolve the command, but the tenant has no main command (its caller execs it) */
  attached?: boolean
  /** --rm with -d: the tenant is removed when its main command ends, or when it is stopped */
  autoRemove?: boolean
  /** --read-only: the root filesystem read-only */
  readOnly?: boolean
  /** --tmpfs PATH[:OPTIONS] */
  tmpfs?: string[]
  /** the main command's working directory and user (default: the tenant's) */
  workdir?: string
  user?: string
  /** --restart no | on-failure[:N] | always | unless-stopped */
  restart?: string
  /** --log-opt max-size=SIZE / max-file=N */
  logOpts?: string[]
  /** --network loopback|none|bridge|NAME (default: the profile's, loopback) */
  network?: string
  /** -p [HOST_IP:]HOST_PORT:TENANT_PORT[/tcp|udp] */
  publish?: string[]
  /** --ingress-rate / --egress-rate (the CNI bandwidth plugin) */
  ingressRate?: string
  egressRate?: string
  /** --env-file: KEY=VALUE lines */
  envFiles?: string[]
  /** --cap-add / --cap-drop: changes to the profile's capability set */
  capAdd?: string[]
  capDrop?: string[]
}

/** --env-file FILE: KEY=VALUE lines, # comments and blank lines skipped; a bare KEY takes this process's value (as docker) */
function readEnvFiles(files: string[] | undefined): string[] {
  const out: string[] = []
  for (const f of files ?? []) {
    let text: string
    try {
      text = fs.readFileSync(f, 'utf8')
    } catch (err) {
      throw fromSystemError(err, `cannot read --env-file ${f}`)
    }
    for (const raw of text.split('\n')) {
      const line = raw.replace(/\r$/, '').trim()
      if (!line || line.startsWith('#')) continue
      if (line.includes('=')) out.push(line)
      else if (process.env[line] !== undefined) out.push(`${line}=${process.env[line]}`)
    }
  }
  return parseEnv(out, '--env-file')
}

/** the profile's capabilities with --cap-add/--cap-drop applied (names with or without CAP_, any case; drop ALL) */
function adjustCaps(base: string[], add: string[] | undefined, drop: string[] | undefined): string[] {
  const norm = (c: string, flag: string) => {
    const n = c.trim().toUpperCase().replace(/^CAP_/, '')
    if (n === 'ALL' && flag === '--cap-drop') return n
    if (!(n in CAPS)) throw new VeloError('USAGE', `${flag}: unknown capability ${JSON.stringify(c)}`, {suggestion: 'a capability name such as NET_RAW or CAP_CHOWN (capabilities(7))'})
    if (flag === '--cap-add' && FORBIDDEN_CAPS.includes(n))
      throw new VeloError('BAD_INPUT', `--cap-add ${n}: CAP_${n} cannot be granted to a tenant (it reaches outside the sandbox)`, {suggestion: 'velo refuses these even where docker --cap-add allows them: see docs/sandbox.md (Capabilities)'})
    return n
  }
  const dropped = new Set((drop ?? []).map((c) => norm(c, '--cap-drop')))
  const caps = dropped.has('ALL') ? [] : base.filter((c) => !dropped.has(c))
  for (const c of (add ?? []).map((x) => norm(x, '--cap-add'))) if (!caps.includes(c)) caps.push(c)
  return caps
}

export interface CreateResult {
  name: string
  image: string
  pid: number
  profile: string
  /** with `attached`: the command to run (ENTRYPOINT + args or CMD) */
  command?: string[]
  timings: Record<string, number> // ms per phase, inside this process (no Node start-up)
}

const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6

function parseEnv(list: string[] | undefined, what: string): string[] {
  return (list ?? []).map((kv) => {
    const i = kv.indexOf('=')
    if (i <= 0) throw new VeloError('USAGE', `${what} ${JSON.stringify(kv)}: expected KEY=VALUE`, {suggestion: `e.g. ${what} NODE_ENV=production`})
    checkEnvKey(kv.slice(0, i), what)
    if (kv.includes('\0')) throw new VeloError('USAGE', `${what} ${JSON.stringify(kv.slice(0, i))}: value must not contain NUL`)
    return kv
  })
}

/** "SRC:DST[:ro|rw]" → mount spec; SRC must exist on the host. */
export function parseMount(spec: string, home?: string): MountSpec {
  const parts = spec.split(':')
  let readonly = false
  if (parts.length === 3) {
    if (parts[2] !== 'ro' && parts[2] !== 'rw') throw new VeloError('USAGE', `--mount ${spec}: the third part must be ro or rw`, {suggestion: 'e.g. --mount ./src:/src:ro'})
    readonly = parts[2] === 'ro'
  } else if (parts.length !== 2) throw new VeloError('USAGE', `--mount ${spec}: expected SRC:DST[:ro]`, {suggestion: 'e.g. --mount ./src:/src:ro (paths cannot contain a colon)'})
  // Docker's rule: a bare name is a named volume (made on first use), anything else a host path
  if (home !== undefined && isVolumeName(parts[0])) {
    validateName('volume', parts[0])
    try {
      checkPathValue(parts[1], '--mount target')
    } catch (err) {
      throw new VeloError('USAGE', `--mount ${spec}: ${(err as Error).message.replace(/^profile: /, '')}`)
    }
    return {source: volumeDataDir(home, parts[0]), target: path.posix.normalize(parts[1]), readonly, volume: parts[0]}
  }
  const source = path.resolve(parts[0])
  try {
    checkPathValue(source, '--mount source')
    checkPathValue(parts[1], '--mount target')
  } catch (err) {
    throw new VeloError('USAGE', `--mount ${spec}: ${(err as Error).message.replace(/^profile: /, '')}`)
  }
  if (!fs.existsSync(source)) throw new VeloError('NOT_FOUND', `--mount ${spec}: ${source} does not exist`, {suggestion: 'create it first, or fix the path (a relative path is taken from the current directory)'})
  return {source, target: path.posix.normalize(parts[1]), readonly}
}

/** Mount options a --tmpfs may carry; pairs where the later one wins (as Docker merges them). velo adds nosuid and
 * nodev to every tenant tmpfs and refuses suid/dev: a tenant never gets set-id programs or device nodes of its own. */
const TMPFS_FLAG_CLASSES: string[][] = [['ro', 'rw'], ['exec', 'noexec'], ['nosuid'], ['nodev'], ['atime', 'noatime', 'relatime', 'norelatime', 'strictatime', 'nostrictatime'], ['diratime', 'nodiratime'], ['sync', 'async'], ['dirsync']]
const TMPFS_KEYS: Record<string, RegExp> = {size: /^\d+[kmg%]?$/i, nr_inodes: /^\d+[kmg]?$/i, mode: /^[0-7]{3,4}$/, uid: /^\d{1,10}$/, gid: /^\d{1,10}$/}

/** "PATH[:OPTIONS]" (Docker's --tmpfs): options start from noexec,nosuid,nodev; the later of a pair wins. */
export function parseTmpfs(spec: string): TmpfsSpec {
  const i = spec.indexOf(':')
  const target = i < 0 ? spec : spec.slice(0, i)
  const bad = (msg: string, suggestion = 'e.g. --tmpfs /run or --tmpfs /tmp:rw,exec,size=64m,mode=1777') => new VeloError('USAGE', `--tmpfs ${spec}: ${msg}`, {suggestion})
  try {
    checkPathValue(target, '--tmpfs target')
  } catch (err) {
    throw bad((err as Error).message.replace(/^profile: /, ''))
  }
  const norm = path.posix.normalize(target)
  if (norm === '/' || ['/proc', '/sys', '/dev'].some((p) => norm === p || norm.startsWith(p + '/')))
    throw bad(`a tmpfs cannot go at ${norm} (velo mounts the root, /proc, /sys and /dev itself)`, 'pick a directory such as /run, /tmp or /var/cache')
  const flags = new Map<number, string>() // class index → the option that won
  const keyed = new Map<string, string>()
  for (const o of ['noexec', 'nosuid', 'nodev', ...(i < 0 ? [] : spec.slice(i + 1).split(','))]) {
    if (o === '') throw bad('an empty option')
    if (o === 'suid' || o === 'dev') throw bad(`option ${o} is refused: a tenant's tmpfs is always nosuid,nodev`, 'drop it')
    const eq = o.indexOf('=')
    if (eq > 0) {
      const k = o.slice(0, eq)
      const v = o.slice(eq + 1)
      if (!(k in TMPFS_KEYS)) throw bad(`unknown option ${JSON.stringify(k)}`, `options: ${[...TMPFS_FLAG_CLASSES.flat(), ...Object.keys(TMPFS_KEYS).map((x) => x + '=')].join(', ')}`)
      if (!TMPFS_KEYS[k].test(v)) throw bad(`invalid ${k}=${v}`)
      keyed.delete(k) // the later one wins, in its own place
      keyed.set(k, v)
      continue
    }
    const c = TMPFS_FLAG_CLASSES.findIndex((cls) => cls.includes(o))
    if (c < 0) throw bad(`unknown option ${JSON.stringify(o)}`, `options: ${[...TMPFS_FLAG_CLASSES.flat(), ...Object.keys(TMPFS_KEYS).map((x) => x + '=')].join(', ')}`)
    flags.delete(c)
    flags.set(c, o)
  }
  return {target: norm, options: [...flags.values(), ...[...keyed].map(([k, v]) => `${k}=${v}`)]}
}

/** Docker's --entrypoint: one program name ("" clears the image's); a JSON array is taken as a whole argv (as Podman does). */
function parseEntrypoint(v: string): string[] {
  if (v === '') return []
  if (v.startsWith('[')) {
    let a: unknown
    try {
      a = JSON.parse(v)
    } catch {
      a = undefined
    }
    if (!Array.isArray(a) || a.some((x) => typeof x !== 'string')) throw new VeloError('USAGE', `invalid --entrypoint ${v}: a program name, or a JSON array of strings`, {suggestion: 'e.g. --entrypoint /bin/sh or --entrypoint \'["node","--trace-warnings"]\''})
    return a as string[]
  }
  return [v]
}

/** What a tenant runs for these args, by Docker's rule: ENTRYPOINT + (the args, else CMD); --entrypoint replaces
 * the image's ENTRYPOINT and drops its CMD. */
export function effectiveCommand(cfg: {entrypoint?: string[]; cmd?: string[]} | undefined, args: string[], entrypoint: string | undefined): string[] {
  const ep = entrypoint !== undefined ? parseEntrypoint(entrypoint) : Array.isArray(cfg?.entrypoint) ? cfg.entrypoint : []
  const cmd = args.length ? args : entrypoint !== undefined ? [] : Array.isArray(cfg?.cmd) ? cfg.cmd : []
  return [...ep, ...cmd]
}

/** An image's config env (from an imported image: anyone's input) as it may go into a sandbox. */
function imageEnv(image: string, env: unknown): string[] {
  if (env === undefined || env === null) return []
  if (!Array.isArray(env) || env.some((kv) => typeof kv !== 'string')) throw new VeloError('BAD_INPUT', `image ${image}: config env must be a list of KEY=VALUE strings`)
  for (const kv of env as string[])
    if (kv.includes('\0'))
      throw new VeloError('BAD_INPUT', `image ${image}: config env ${JSON.stringify(kv.slice(0, Math.max(0, kv.indexOf('='))) || kv)} contains NUL`, {
        suggestion: 'fix the image config (Env) and import it again',
      })
  return env as string[]
}

function envMerge(...lists: string[][]): string[] {
  const m = new Map<string, string>()
  for (const l of lists) for (const kv of l) m.set(kv.slice(0, kv.indexOf('=')), kv)
  return [...m.values()]
}

/**
 * Start the sandbox's init and record its pid. The container itself is velo-runtime's, set up from this state file
 * by the native code both front doors share (`velo __sandbox boot`, src/sandbox/container.ts): it must be on disk
 * first.
 */
function boot(home: string, s: TenantState, timings: Record<string, number>, transient = false): void {
  const t = process.hrtime.bigint()
  clearPauseHolds(home, s.name) // of a run that ended without a stop (the host rebooted): its cgroup is gone
  writeState(home, s)
  const {pid, pidStart, limits, cgroups, userns} = containerBoot(home, s.name, {transient})
  timings.runtime = ms(t)
  // the boot decides what a rootless tenant gets (its user namespace, the limits that apply, its cgroups)
  s.limits = limits
  s.cgroups = cgroups
  if (userns) s.userns = true
  s.pid = pid
  s.pidStart = pidStart
  s.startedAt = new Date().toISOString()
  writeState(home, s)
}

export async function createSandbox(home: string, name: string, o: CreateOptions): Promise<CreateResult> {
  const held: Array<() => void> = []
  try {
    return await createHolding(home, name, o, held)
  } finally {
    for (const release of held.reverse()) release()
  }
}

/** createSandbox, holding the volumes it mounts (holdVolumes) from their check, and the sandbox's lock from its
 * claim, until its tenant runs: `held` gets their releases. */
async function createHolding(home: string, name: string, o: CreateOptions, held: Array<() => void>): Promise<CreateResult> {
  const t0 = process.hrtime.bigint()
  const timings: Record<string, number> = {}
  validateName('sandbox', name)
  const profile: Profile = loadProfileCached(home, o.profile ?? 'default')
  const limits: Limits = {...profile.limits}
  if (o.memory !== undefined) limits.memory = parseBytes(o.memory, '--memory')
  if (o.pids !== undefined) limits.pids = parsePids(o.pids, '--pids')
  if (o.cpus !== undefined) limits.cpus = parseCpus(o.cpus, '--cpus')
  if (o.ioReadBps !== undefined) limits.ioReadBps = parseBytes(o.ioReadBps, '--io-read-bps', RATE_MIN)
  if (o.ioWriteBps !== undefined) limits.ioWriteBps = parseBytes(o.ioWriteBps, '--io-write-bps', RATE_MIN)
  if (o.disk !== undefined) limits.disk = parseBytes(o.disk, '--disk', DISK_MIN)
  const hostname = o.hostname ?? profile.hostname ?? name.replace(/[^A-Za-z0-9.-]/g, '-').slice(0, 63)
  if (!/^[A-Za-z0-9][A-Za-z0-9.-]{0,63}$/.test(hostname)) throw new VeloError('USAGE', `invalid --hostname ${JSON.stringify(hostname)}`, {suggestion: 'letters, digits, dots and dashes, starting with a letter or digit, at most 64 characters'})
  const env = envMerge(
    Object.entries(profile.env).map(([k, v]) => `${k}=${v}`),
    readEnvFiles(o.envFiles),
    parseEnv(o.env, '--env'),
  )
  const capabilities = adjustCaps(profile.capabilities, o.capAdd, o.capDrop)
  const mounts = [...profile.mounts, ...(o.mounts ?? []).map((m) => parseMount(m, home))]
  const volumes = mounts.filter((m) => m.volume !== undefined).map((m) => m.volume!)
  const backend = o.backend ?? 'farm'
  if (backend !== 'farm' && backend !== 'fuse')
    throw new VeloError('USAGE', `unknown --backend ${JSON.stringify(backend)}`, {suggestion: 'use farm (hard-link farms, the default) or fuse (one velo-fuse mount per image)'})
  if (o.userns !== undefined && o.userns !== 'private' && o.userns !== 'host')
    throw new VeloError('USAGE', `unknown --userns ${JSON.stringify(o.userns)}`, {suggestion: 'use private (a user namespace of the tenant\'s own, the default) or host (none; root only)'})
  const userns = o.userns === undefined ? profile.userns : o.userns === 'private'
  if (!userns && !isRoot())
    throw new VeloError('PERMISSION_DENIED', `${o.userns === 'host' ? '--userns host' : `profile ${profile.name} ("userns": false)`}: only root may run a tenant without a user namespace of its own`, {
      suggestion: 'leave the user namespace on (the default; without root every tenant has one)',
    })
  // Without root the image's FUSE mount is the user's own (fusermount3), which the host cannot idmap.
  if (backend === 'fuse' && !isRoot())
    throw new VeloError('UNSUPPORTED', 'the fuse backend needs root (a tenant of a user takes its lower layer idmapped, which only root can do to a FUSE mount)', {
      suggestion: 'use the farm backend (the default)',
    })
  const ports = (o.publish ?? []).map(parsePublish)
  const network = o.network !== undefined ? resolveNetwork(home, o.network) : profile.network
  if (ports.length && (NETWORK_MODES as readonly string[]).includes(network))
    throw new VeloError('USAGE', `-p needs a network the host can reach (this sandbox's is ${network})`, {suggestion: 'add --network bridge (or a network of yours: velo network create NAME)'})
  const bandwidth = parseRates(o.ingressRate, o.egressRate)
  if (bandwidth && (NETWORK_MODES as readonly string[]).includes(network))
    throw new VeloError('USAGE', `--ingress-rate/--egress-rate shape a velo network's traffic (this sandbox's network is ${network})`, {suggestion: 'add --network bridge (or a network of yours)'})
  const restart = parseRestart(o.restart)
  const logOpts = parseLogOpts(o.logOpts)
  // a main command when args or --entrypoint are given (an idle tenant to exec into otherwise: velo's create)
  const wantMain = !o.attached && (o.command !== undefined || o.entrypoint !== undefined)
  if (!wantMain && !o.attached && (restart || o.logOpts?.length || o.workdir !== undefined || o.user !== undefined || o.autoRemove))
    throw new VeloError('USAGE', '--restart, --log-opt, --rm, --workdir and --user (of create) are about a main command, and none was given', {suggestion: 'add one: velo sandbox create NAME [flags] -- CMD ARGS...'})
  if (o.command?.some((a) => a.includes('\0')) || o.entrypoint?.includes('\0')) throw new VeloError('USAGE', 'command arguments must not contain NUL characters')
  if (o.autoRemove && restart) throw new VeloError('USAGE', '--rm and --restart conflict: a removed sandbox cannot be restarted', {suggestion: 'drop one of them (as docker refuses them together)'})
  const tmpfs = (o.tmpfs ?? []).map(parseTmpfs)
  for (const [i, t] of tmpfs.entries()) {
    if (tmpfs.findIndex((x) => x.target === t.target) !== i) throw new VeloError('USAGE', `--tmpfs ${t.target} is given twice`)
    if (mounts.some((m) => path.posix.normalize(m.target) === t.target)) throw new VeloError('USAGE', `--tmpfs ${t.target}: a bind mount (--mount/-v) already goes there`)
  }
  if (o.workdir !== undefined && (!o.workdir.startsWith('/') || o.workdir.includes('\0'))) throw new VeloError('USAGE', `--workdir must be an absolute path, got ${JSON.stringify(o.workdir)}`)
  if (volumes.length) {
    await ensureVolumes(home, volumes) // made on first use, as docker does; they outlive a failed create
    mounts.push(...(await volumesSnapshotMounts(home, mounts)))
  }
  timings.parse = ms(t0)

  // The image and its farms (built once per layer, shared by every tenant).
  let t = process.hrtime.bigint()
  const imageName = o.image ?? DEFAULT_IMAGE
  const {ensureFarm} = await import('./farm')
  let db = await openDb(home)
  if (imageName === DEFAULT_IMAGE && !db.getImage(imageName)) {
    closeDb(home)
    await (await import('./default-image')).ensureDefaultImage(home)
    db = await openDb(home)
  }
  let state: TenantState
  let command: string[] | undefined
  {
    const img = db.requireImage(imageName)
    const imgEnv = imageEnv(imageName, img.config?.env) // before anything is claimed or built
    if (wantMain || o.attached) {
      command = effectiveCommand(img.config, o.command ?? [], o.entrypoint)
      if (command.length === 0)
        throw new VeloError('USAGE', `no command given, and image ${imageName} names none (no ENTRYPOINT or CMD)`, {suggestion: o.attached ? 'velo sandbox run [flags] [IMAGE] CMD ARGS... (or -- CMD ARGS...)' : 'velo sandbox create NAME [flags] -- CMD ARGS...'})
    }
    timings.image = ms(t)
    t = process.hrtime.bigint()
    // farms are built before the name is claimed (shared, harmless if the create then fails); the FUSE mount
    // gets this tenant as a holder, so that only happens once the name is ours (below)
    let lowers =
      backend === 'farm'
        ? [...img.layers].reverse().map((l) => {
            ensureFarm(home, db, l)
            return path.join(home, 'farms', l)
          })
        : []
    timings.farms = ms(t)

    // Claim the name: mkdir is atomic, so of two racing creates exactly one gets here. The claim runs under
    // the store's shared lock, and the farms are checked again under it: gc (exclusive lock) reads every
    // tenants/*/state.json as a gc hold, so from the moment the state file names the layers they are kept,
    // and before it, gc cannot run. (The native front-end claims the same way: native/cli/sandbox.c.)
    t = process.hrtime.bigint()
    // the volumes held from here until the tenant runs (not across the image and farm builds above, which can be long)
    if (volumes.length) {
      held.push(holdVolumes(home, volumes).release)
      mounts.push(...volumesVaultMounts(home, mounts)) // unlocked now; a lock waits for this tenant to run
    }
    const lock = new StoreLock(path.join(home, 'lock')).acquire('shared')
    try {
      if (backend === 'farm') for (const l of img.layers) ensureFarm(home, db, l)
      // and the volumes' snapshot farms, made above before the volumes were held: gc may have dropped one as unused
      // since (docs/volumes.md, "Cold objects"); from here the hold and then the state keep them
      for (const m of mounts) if (m.snapshot !== undefined) ensureFarm(home, db, path.basename(m.source))
      requireVolumes(home, volumes) // volume rm holds the exclusive lock: it sees this tenant's state, or we see it gone
      fs.mkdirSync(tenantsDir(home), {recursive: true, mode: 0o700})
      try {
        fs.mkdirSync(tenantDir(home, name), {mode: 0o700})
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST')
          throw new VeloError('ALREADY_EXISTS', `a sandbox named ${name} already exists`, {suggestion: `pick another name, or remove it first: velo sandbox rm -f ${name}`})
        throw fromSystemError(err, `cannot create sandbox ${name}`)
      }
      held.push(lockSandbox(home, name)) // ours: a start or rm of the name waits until it is booted
      if (backend === 'fuse') {
        t = process.hrtime.bigint()
        const {ensureImageMount, releaseImageMount} = await import('../fuse/mounts')
        try {
          const m = ensureImageMount(home, imageName, `tenant:${name}`, {db, trace: o.traceFile})
          if (userns && !m.idmap) {
            releaseImageMount(home, `tenant:${name}`, undefined, {db})
            throw fuseNotIdmappable()
          }
          lowers = [m.dir]
        } catch (err) {
          discardClaim(home, name)
          throw err
        }
        timings.fuse = ms(t)
      }
      state = {
        version: 1,
        name,
        image: imageName,
        layers: img.layers,
        lowers,
        ...(backend === 'fuse' ? {backend} : {}),
        profile: profile.name,
        hostname,
        network,
        ...(ports.length ? {ports} : {}),
        ...(bandwidth ? {bandwidth} : {}),
        env: envMerge([DEFAULT_PATH, 'HOME=/root'], imgEnv, env),
        mounts,
        ...(tmpfs.length ? {tmpfs} : {}),
        ...(o.readOnly ? {readonlyRoot: true as const} : {}),
        limits,
        capabilities,
        seccomp: profile.seccomp,
        ...(userns ? {userns: true as const} : {}),
        user: profile.user ?? img.config?.user ?? undefined,
        workdir: profile.workdir ?? img.config?.workingDir ?? '/',
        cgroups: (layout(), []), // the boot's (native/cli/oci.h: velo/NAME.STORE); layout() says UNSUPPORTED first when a v1 controller is missing
        createdAt: new Date().toISOString(),
      }
      try {
        if (wantMain) {
          // the main command's plan, fixed now (the monitor runs it at every start): its user from the image
          const u = resolveUser(home, state, o.user ?? state.user)
          state.main = {argv: command!, uid: u.uid, gid: u.gid, ...(u.home !== undefined ? {home: u.home} : {}), ...(o.workdir !== undefined ? {workdir: o.workdir} : {}), env: []}
          if (restart) state.restart = restart
          state.logs = logOpts
          if (o.autoRemove) state.autoRemove = true
        }
        // no LMDB hold: the state file is the tenant's gc hold (src/store/maintenance.ts gc)
        writeState(home, state)
        timings.claim = ms(t)
      } catch (err) {
        discardClaim(home, name)
        if (backend === 'fuse') (await import('../fuse/mounts')).releaseImageMount(home, `tenant:${name}`, undefined, {db})
        throw err
      }
    } finally {
      lock.release()
    }
  }
  emitEvent(home, 'sandbox', 'create', name, {image: imageName})
  try {
    boot(home, state, timings)
  } catch (err) {
    await removeSandbox(home, name, true).catch(() => undefined)
    throw err
  }
  timings.total = ms(t0)
  return {name, image: imageName, pid: state.pid!, profile: profile.name, ...(o.attached ? {command} : {}), timings}
}

export interface ExecOptions {
  env?: string[]
  workdir?: string
  user?: string
  tty?: boolean
}

/** Look a user up in the sandbox's /etc/passwd (upper dir first, then the farms, top first); no symlinks followed. */
/** The ids (and home) a user given by name or UID[:GID] has in the tenant; root without a lookup. */
function resolveUser(home: string, s: TenantState, user: string | undefined): {uid: number; gid: number; home?: string} {
  return user && user !== 'root' && user !== '0' && user !== '0:0' ? lookupUser(home, s, user) : {uid: 0, gid: 0}
}

function lookupUser(home: string, s: TenantState, user: string): {uid: number; gid: number; home?: string} {
  const [u, g] = user.split(':')
  const readTable = (file: string): string[][] | undefined => {
    for (const base of [path.join(tenantDir(home, s.name), 'upper'), ...s.lowers]) {
      try {
        const etc = fs.lstatSync(path.join(base, 'etc'))
        const f = fs.lstatSync(path.join(base, 'etc', file))
        if (!etc.isDirectory() || !f.isFile()) continue
        return fs
          .readFileSync(path.join(base, 'etc', file), 'utf8')
          .split('\n')
          .map((l) => l.split(':'))
      } catch {}
    }
    return undefined
  }
  let uid: number
  let gid: number | undefined
  let homeDir: string | undefined
  if (/^\d+$/.test(u)) uid = Number(u)
  else {
    const row = readTable('passwd')?.find((r) => r[0] === u)
    if (!row) throw new VeloError('NOT_FOUND', `no user ${JSON.stringify(u)} in sandbox ${s.name}'s /etc/passwd`, {suggestion: 'use a numeric UID[:GID]'})
    uid = Number(row[2])
    gid = Number(row[3])
    homeDir = row[5]
  }
  if (g !== undefined) {
    if (/^\d+$/.test(g)) gid = Number(g)
    else {
      const row = readTable('group')?.find((r) => r[0] === g)
      if (!row) throw new VeloError('NOT_FOUND', `no group ${JSON.stringify(g)} in sandbox ${s.name}'s /etc/group`)
      gid = Number(row[2])
    }
  }
  if (homeDir === undefined && /^\d+$/.test(u)) homeDir = readTable('passwd')?.find((r) => r[2] === u)?.[5]
  return {uid, gid: gid ?? uid, home: homeDir}
}

export async function execSandbox(home: string, name: string, argv: string[], o: ExecOptions): Promise<number> {
  const s = readState(home, name)
  if (!isRunning(s)) throw new VeloError('STATE', `sandbox ${name} is stopped`, {suggestion: `start it with \`velo sandbox start ${name}\``})
  if (argv.length === 0) throw new VeloError('USAGE', 'no command given', {suggestion: 'velo sandbox exec NAME -- CMD ARGS...'})
  if (argv.some((a) => a.includes('\0'))) throw new VeloError('USAGE', 'command arguments must not contain NUL characters')
  const workdir = o.workdir ?? s.workdir
  if (!workdir.startsWith('/') || workdir.includes('\0')) throw new VeloError('USAGE', `--workdir must be an absolute path, got ${JSON.stringify(workdir)}`)
  const u = resolveUser(home, s, o.user ?? s.user)
  return containerExec(home, name, {
    uid: u.uid,
    gid: u.gid,
    userHome: u.home,
    workdir: o.workdir,
    env: parseEnv(o.env, '--env'),
    argv,
    tty: !!o.tty && !!process.stdin.isTTY,
  })
}

/** A tenant in a user namespace takes the image's FUSE mount idmapped, which needs the daemon to allow it. */
function fuseNotIdmappable(): VeloError {
  return new VeloError('UNSUPPORTED', "this kernel cannot idmap a FUSE mount (FUSE_ALLOW_IDMAP needs Linux 6.12+), so the fuse backend cannot serve a tenant in a user namespace of its own", {
    suggestion: 'add --userns host (tenant root is then host root minus capabilities), or use the farm backend (the default)',
  })
}

/** The snapshots of the volumes among mounts, read-only at TARGET/.snapshots/SNAP (as they are now). */
async function volumesSnapshotMounts(home: string, mounts: MountSpec[]): Promise<MountSpec[]> {
  const out: MountSpec[] = []
  for (const m of mounts) if (m.volume !== undefined && !isVolumeExtra(m)) out.push(...(await snapshotMounts(home, m.volume, m.target)))
  return out
}

/** The vaults of the volumes among mounts that are unlocked now, at TARGET/.vault (called while the volumes are held). */
function volumesVaultMounts(home: string, mounts: MountSpec[]): MountSpec[] {
  return mounts.flatMap((m) => (m.volume !== undefined && !isVolumeExtra(m) ? vaultMounts(home, m.volume, m.target, m.readonly) : []))
}

export async function startSandbox(home: string, name: string, o: {transient?: boolean} = {}): Promise<CreateResult> {
  const t0 = process.hrtime.bigint()
  const unlock = lockSandbox(home, name) // two starts never boot it twice
  try {
    return await startLocked(home, name, t0, o)
  } finally {
    unlock()
  }
}

async function startLocked(home: string, name: string, t0: bigint, o: {transient?: boolean}): Promise<CreateResult> {
  const s = readState(home, name)
  if (isRunning(s)) throw new VeloError('STATE', `sandbox ${name} is already running`, {suggestion: `run commands in it with velo sandbox exec ${name} -- CMD, or stop it first`})
  const volumes = s.mounts.flatMap((m) => (m.volume !== undefined && !isVolumeExtra(m) ? [m.volume] : []))
  const held = holdVolumes(home, volumes)
  try {
    return await startHoldingVolumes(home, s, t0, o)
  } finally {
    held.release()
  }
}

/** startSandbox, holding the volumes it mounts (holdVolumes) from their check until its tenant runs. */
async function startHoldingVolumes(home: string, s: TenantState, t0: bigint, o: {transient?: boolean}): Promise<CreateResult> {
  const name = s.name
  // a volume's snapshots as they are at this start (taken or removed since the last one)
  if (s.mounts.some((m) => m.volume !== undefined)) {
    const kept = s.mounts.filter((m) => !isVolumeExtra(m))
    s.mounts = [...kept, ...(await volumesSnapshotMounts(home, kept)), ...volumesVaultMounts(home, kept)]
  }
  const timings: Record<string, number> = {}
  const db = await openDb(home)
  if (s.backend === 'fuse') {
    // the image's shared mount, (re)mounted if it went away or went stale (daemon killed) since the last start
    const m = (await import('../fuse/mounts')).ensureImageMount(home, s.image, `tenant:${name}`, {db})
    if (s.userns && !m.idmap) throw fuseNotIdmappable()
    s.lowers = [m.dir]
  } else {
    const {ensureFarm} = await import('./farm')
    for (const l of s.layers) ensureFarm(home, db, l) // gc keeps held layers; a farm removed by hand is rebuilt
  }
  // Whatever a crash left in the work dir is overlay's scratch space: start from an empty one.
  if (isRoot()) fs.rmSync(path.join(tenantDir(home, name), 'work'), {recursive: true, force: true})
  else containerPurge(home, `${name}/work`) // rootless: overlay leaves work/work mode 000, for the tenant's root only
  boot(home, s, timings, o.transient)
  timings.total = ms(t0)
  return {name, image: s.image, pid: s.pid!, profile: s.profile, timings}
}

/**
 * Run fn with a stopped sandbox's filesystem up, as `docker cp` reaches a stopped container's files: the sandbox is
 * booted without its main command, its network or events (its init only, in its own namespaces and limits), and
 * killed and deleted afterwards; its state file is put back as it was. A sandbox started or removed by someone
 * else meanwhile is theirs: the state is not put back over it. Interrupted (SIGINT, SIGTERM, SIGHUP) the copy
 * still ends the boot before the process exits; killed with SIGKILL it leaves the sandbox up with its init only,
 * which `velo sandbox stop` ends (docs/sandbox.md).
 */
export async function whileBootedForCopy<T>(home: string, name: string, fn: () => Promise<T>): Promise<T> {
  // the whole copy under the sandbox's lock: a start, stop or rm meanwhile waits for the copy's boot to end
  const unlock = lockSandbox(home, name)
  try {
    if (isRunning(readState(home, name))) return await fn() // started since the caller looked: copy as to a running one
    const file = path.join(tenantDir(home, name), 'state.json')
    const before = fs.readFileSync(file, 'utf8')
    let booted: CreateResult | undefined
    let done = false
    const end = () => {
      if (done || !booted) return
      done = true
      let now: TenantState
      try {
        now = readState(home, name)
      } catch {
        return // removed meanwhile: nothing of ours is left to end
      }
      if (now.pid !== booted.pid) return // started again by someone else (our boot was ended by theirs)
      // each step on its own: a failed kill must not keep the delete (which kills too) or the state from their turn
      try {
        containerKill(home, name, 9, 5000)
      } catch {}
      try {
        containerDelete(home, name)
      } finally {
        writeFileAtomic(file, before, 0o600)
      }
    }
    booted = await startSandbox(home, name, {transient: true})
    const off = onInterrupt(end)
    try {
      return await fn()
    } finally {
      off()
      end()
    }
  } finally {
    unlock()
  }
}

/** A failed create's claim, removed as rm removes a tenant: renamed aside first, so a call waiting on its lock file
 * cannot make that file again inside a dir being emptied (and then find it current). */
function discardClaim(home: string, name: string): void {
  const trash = path.join(tenantsDir(home), `.rm-${name}-${process.pid}`)
  try {
    fs.renameSync(tenantDir(home, name), trash)
  } catch {
    return
  }
  fs.rmSync(trash, {recursive: true, force: true})
}

/** `velo sandbox restart`: stop (if it runs) and start, as one turn of the sandbox's lock (no start in between). */
export async function restartSandbox(home: string, name: string, graceMs: number): Promise<CreateResult> {
  const unlock = lockSandbox(home, name)
  try {
    stopSandbox(home, name, graceMs)
    return await startSandbox(home, name)
  } finally {
    unlock()
  }
}

/** SIGTERM to init (it forwards to every process and exits when they are gone), SIGKILL after the grace period. */
export function stopSandbox(home: string, name: string, graceMs = 10_000): {name: string; wasRunning: boolean; forced: boolean} {
  const unlock = lockSandbox(home, name)
  try {
    return stopLocked(home, name, graceMs)
  } finally {
    unlock()
  }
}

function stopLocked(home: string, name: string, graceMs: number): {name: string; wasRunning: boolean; forced: boolean} {
  const s = readState(home, name)
  if (!isRunning(s)) return {name, wasRunning: false, forced: false}
  // a snapshot or commit reading its files holds it paused: a stop thaws it (its init must see the signal), and a
  // writer let run mid-read breaks the read's one instant; so the stop waits for the read to end, and none begins
  // until the stop is done (it then finds the sandbox stopped)
  return whileNoReaders(home, name, () => {
    let forced = false
    const r = containerKill(home, name, 15, graceMs)
    if (r === 'timeout') {
      forced = true
      containerKill(home, name, 9, 5000)
    }
    // init is gone: the runtime drops the container (cgroups, its record); the tenant's files stay for start
    containerDelete(home, name)
    clearPauseHolds(home, name)
    emitEvent(home, 'sandbox', 'stop', name, forced ? {forced: 'true'} : {})
    return {name, wasRunning: true, forced}
  })
}

/** Kill (with force) or refuse (running, without force); then cgroups, hold, and every file of the tenant. */
export async function removeSandbox(home: string, name: string, force: boolean): Promise<{name: string; killed: boolean; ms: number; timings?: Record<string, number>}> {
  const t0 = process.hrtime.bigint()
  const unlock = lockSandbox(home, name) // its state read under it: a start meanwhile is seen, not undone
  try {
    return await removeLocked(home, name, force, t0)
  } finally {
    unlock()
  }
}

async function removeLocked(home: string, name: string, force: boolean, t0: bigint): Promise<{name: string; killed: boolean; ms: number; timings?: Record<string, number>}> {
  const dir = tenantDir(home, name)
  let s: TenantState | undefined
  try {
    s = readState(home, name)
  } catch (err) {
    if ((err as VeloError).code === 'NOT_FOUND') throw err
    if (!force) throw err
  }
  let killed = false
  const tm: Record<string, number> = {}
  let t = process.hrtime.bigint()
  if (s && isRunning(s)) {
    if (!force) throw new VeloError('STATE', `sandbox ${name} is running`, {suggestion: `stop it first (velo sandbox stop ${name}) or use rm -f`})
    killed = true
  }
  // every process, the cgroups and the runtime's record (by name: also when the state file is damaged)
  containerDelete(home, name)
  tm.runtime = ms(t)
  t = process.hrtime.bigint()
  // tenants created before state files became gc holds have an LMDB hold: drop it (the native front-end
  // leaves those tenants to this path)
  {
    const db = await openDb(home)
    if (db.holds.get(`tenant:${name}`)) db.deleteHoldSync(`tenant:${name}`)
  }
  // a FUSE sandbox (or one whose state is unreadable) drops its reference on the image's shared mount
  if (!s || s.backend === 'fuse') (await import('../fuse/mounts')).releaseImageMount(home, `tenant:${name}`, undefined, {db: await openDb(home)})
  tm.hold = ms(t)
  t = process.hrtime.bigint()
  // Move aside first (one rename), so a half-finished removal never looks like a live sandbox.
  const trash = path.join(tenantsDir(home), `.rm-${name}-${process.pid}`)
  try {
    fs.renameSync(dir, trash)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw fromSystemError(err, `cannot remove sandbox ${name}`)
    return {name, killed, ms: ms(t0)}
  }
  if (isRoot()) fs.rmSync(trash, {recursive: true, force: true})
  else containerPurge(home, path.basename(trash))
  tm.files = ms(t)
  emitEvent(home, 'sandbox', 'rm', name)
  return {name, killed, ms: ms(t0), timings: tm}
}

export interface SandboxInfo {
  name: string
  status: 'running' | 'paused' | 'stopped'
  image: string
  profile: string
  pid: number | null
  createdAt: string
  startedAt?: string
  /** a workload's main command, and how its last run ended (while stopped) */
  command?: string[]
  exitCode?: number
  network: string
  ip?: string
  ports?: string[]
}

/** network.json without the CNI result (plugins' internals) */
function addressOf(home: string, name: string): Omit<TenantAddress, never> | undefined {
  const a = tenantAddress(home, name)
  if (!a) return undefined
  const {network, ip, gateway, mac, attached} = a as TenantAddress & {result?: unknown}
  return {network, ip, ...(gateway ? {gateway} : {}), ...(mac ? {mac} : {}), attached}
}

const portText = (p: PortMapping) => `${p.hostIP ? p.hostIP + ':' : ''}${p.hostPort}->${p.containerPort}/${p.protocol}`

export function listSandboxes(home: string): SandboxInfo[] {
  const out: SandboxInfo[] = []
  for (const n of listTenantNames(home)) {
    let s: TenantState
    try {
      s = readState(home, n)
    } catch {
      continue
    }
    const running = isRunning(s)
    const w = s.main && !running ? readWorkload(home, n) : undefined
    out.push({
      name: n,
      status: running ? (isPaused(home, n) ? 'paused' : 'running') : 'stopped',
      image: s.image,
      profile: s.profile,
      pid: running ? s.pid! : null,
      createdAt: s.createdAt,
      startedAt: s.startedAt,
      ...(s.main ? {command: s.main.argv} : {}),
      ...(w?.exitCode !== undefined ? {exitCode: w.exitCode} : {}),
      network: s.network,
      ...(() => {
        const a = running && !(NETWORK_MODES as readonly string[]).includes(s.network) ? tenantAddress(home, n) : undefined
        return a?.attached && a.ip ? {ip: a.ip} : {}
      })(),
      ...(s.ports?.length ? {ports: s.ports.map(portText)} : {}),
    })
  }
  return out
}

export function inspectSandbox(home: string, name: string): Record<string, unknown> {
  const s = readState(home, name)
  const running = isRunning(s)
  return {
    ...s,
    status: running ? (isPaused(home, name) ? 'paused' : 'running') : 'stopped',
    pid: running ? s.pid : null,
    dir: tenantDir(home, name),
    // a user namespace of its own: where its ids are on the host (its bundle's mappings)
    ...(s.userns ? {hostIds: tenantIdRanges(home, name)} : {}),
    usage: running ? cgroupStats(s.cgroups) : undefined,
    // a workload: its main command's run (startedAt, restartCount, running, mainPid, exitCode, finishedAt)
    ...(s.main ? {workload: readWorkload(home, name), monitor: monitorAlive(home, name)} : {}),
    // on a velo network: its address (kept across stop and start), gateway, MAC, published ports
    ...(!(NETWORK_MODES as readonly string[]).includes(s.network) ? {address: addressOf(home, name)} : {}),
  }
}

export interface DiffEntry {
  kind: 'A' | 'C' | 'D'
  path: string
}

/** What the tenant changed: walk its upper dir; whiteouts are deletions, paths the image has are changes. */
export function diffSandbox(home: string, name: string): DiffEntry[] {
  const s = readState(home, name)
  const upper = path.join(tenantDir(home, name), 'upper')
  const inLower = (rel: string) =>
    s.lowers.some((l) => {
      try {
        fs.lstatSync(path.join(l, rel))
        return true
      } catch {
        return false
      }
    })
  const out: DiffEntry[] = []
  const walk = (rel: string) => {
    let names: string[]
    try {
      names = fs.readdirSync(path.join(upper, rel)).sort()
    } catch {
      return
    }
    for (const n of names) {
      const r = rel ? `${rel}/${n}` : n
      const st = fs.lstatSync(path.join(upper, r))
      if (st.isCharacterDevice() && st.rdev === 0) {
        out.push({kind: 'D', path: '/' + r})
        continue
      }
      out.push({kind: inLower(r) ? 'C' : 'A', path: '/' + r})
      if (st.isDirectory()) walk(r)
    }
  }
  walk('')
  return out
}
