import {spawnSync} from 'node:child_process'
import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {emitEvent} from '../lib/events'
import {VeloError} from '../lib/errors'
import {writeFileAtomic} from '../lib/fsutil'
import {isRoot} from '../lib/home'
import {StoreLock} from '../lib/lock'
import {listTenantNames, readState, tenantDir} from '../sandbox/state'

/**
 * Networks of tenants, built by the standard CNI plugins (Debian's containernetworking-plugins): a Linux bridge
 * per network (bridge + host-local IPAM), published ports (portmap), Docker's isolation between networks
 * (firewall, ingressPolicy same-bridge), rates (bandwidth). This module keeps the records and writes each
 * network's CNI configuration list, $VELO_HOME/networks/NAME.conflist; the boot both front doors share runs it
 * (native/cli/cni.c: ADD between the runtime's create and start, DEL when the container goes), so the plugins
 * are driven from one place. docs/networks.md.
 */

export interface NetworkRecord {
  name: string
  subnet: string // a.b.c.d/n
  gateway: string
  bridge: string // velo-<8 hex>: an interface name of at most 15 bytes
  internal: boolean
  createdAt: string
}

/** The network `--network bridge` means, made on first use (Docker's default network has this name too). */
export const DEFAULT_NETWORK = 'bridge'
/** Modes that are not networks: a namespace with lo up (the default), or nothing at all. */
export const NETWORK_MODES = ['loopback', 'none'] as const
const RESERVED = new Set([...NETWORK_MODES, 'host', 'default'])
const NAME = /^[a-z0-9][a-z0-9_.-]{0,62}$/

export const networksDir = (home: string) => path.join(home, 'networks')
const recordPath = (home: string, name: string) => path.join(networksDir(home), `${name}.json`)
export const conflistPath = (home: string, name: string) => path.join(networksDir(home), `${name}.conflist`)
export const ipamDir = (home: string) => path.join(networksDir(home), 'ipam')

export function validateNetworkName(name: string): string {
  if (!NAME.test(name) || RESERVED.has(name))
    throw new VeloError('INVALID_NAME', `invalid network name ${JSON.stringify(name)}`, {
      suggestion: `lower-case letters, digits, '.', '_' and '-', at most 63 characters; not ${[...RESERVED].join(', ')}`,
    })
  return name
}

// ------------------------------------------------------------------------------------------------ IPv4 CIDRs

interface Cidr {
  base: number // network address, host bits zero
  bits: number
}

const ipNum = (ip: string): number | undefined => {
  const p = ip.split('.')
  if (p.length !== 4 || p.some((x) => !/^\d{1,3}$/.test(x) || Number(x) > 255)) return undefined
  return p.reduce((a, x) => a * 256 + Number(x), 0)
}
const ipText = (n: number) => [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.')

export function parseCidr(v: string): Cidr {
  const m = /^([\d.]+)\/(\d{1,2})$/.exec(v)
  const ip = m ? ipNum(m[1]) : undefined
  const bits = m ? Number(m[2]) : NaN
  if (ip === undefined || !(bits >= 8 && bits <= 29))
    throw new VeloError('USAGE', `invalid --subnet ${JSON.stringify(v)}`, {suggestion: 'an IPv4 network from /8 to /29, e.g. 10.89.5.0/24'})
  const base = ip - (ip % 2 ** (32 - bits))
  if (base !== ip) throw new VeloError('USAGE', `--subnet ${v} has host bits set`, {suggestion: `did you mean ${ipText(base)}/${bits}?`})
  return {base, bits}
}

/** one contains the other: their prefixes agree on the shorter one's bits */
const overlaps = (a: Cidr, b: Cidr) => {
  const bits = Math.min(a.bits, b.bits)
  return Math.floor(a.base / 2 ** (32 - bits)) === Math.floor(b.base / 2 ** (32 - bits))
}
const cidrText = (c: Cidr) => `${ipText(c.base)}/${c.bits}`

/** The host's IPv4 routes (what a new network must not shadow), from `ip -j route`. */
function hostRoutes(): Array<{cidr: Cidr; dev: string}> {
  const r = spawnSync('ip', ['-j', '-4', 'route', 'show', 'table', 'all'], {encoding: 'utf8'})
  if (r.status !== 0) return []
  const out: Array<{cidr: Cidr; dev: string}> = []
  for (const x of JSON.parse(r.stdout) as Array<{dst: string; dev?: string; table?: string; type?: string}>) {
    if (!x.dst || x.dst === 'default' || (x.type && x.type !== 'unicast') || (x.table && x.table !== 'main')) continue
    const [ip, bits] = x.dst.includes('/') ? x.dst.split('/') : [x.dst, '32']
    const n = ipNum(ip)
    if (n !== undefined) out.push({cidr: {base: n - (n % 2 ** (32 - Number(bits))), bits: Number(bits)}, dev: x.dev ?? '?'})
  }
  return out
}

/**
 * Subnets claimed by the networks of every store on this host (/var/lib/velo/subnets/A.B.C.D_N, naming the
 * network's record): a bridge gets its route only when its first tenant starts, so the host's routes alone
 * cannot keep two stores from picking the same range. A claim whose record is gone (a store removed without
 * `velo network rm`) is stale and dropped.
 */
const CLAIMS = '/var/lib/velo/subnets'

function claims(): Array<{cidr: Cidr; dev: string}> {
  let names: string[]
  try {
    names = fs.readdirSync(CLAIMS)
  } catch {
    return []
  }
  const out: Array<{cidr: Cidr; dev: string}> = []
  for (const n of names) {
    const m = /^(\d+\.\d+\.\d+\.\d+)_(\d+)$/.exec(n)
    if (!m) continue
    let owner = ''
    try {
      owner = fs.readFileSync(path.join(CLAIMS, n), 'utf8').trim()
    } catch {}
    if (!owner || !fs.existsSync(owner)) {
      fs.rmSync(path.join(CLAIMS, n), {force: true})
      continue
    }
    out.push({cidr: {base: ipNum(m[1])!, bits: Number(m[2])}, dev: `velo network ${owner}`})
  }
  return out
}

const claimName = (c: Cidr) => `${ipText(c.base)}_${c.bits}`

function withClaimsLock<T>(fn: () => T): T {
  fs.mkdirSync(CLAIMS, {recursive: true, mode: 0o700})
  const lock = new StoreLock(path.join(CLAIMS, '.lock')).acquire('exclusive')
  try {
    return fn()
  } finally {
    lock.release()
  }
}

// -------------------------------------------------------------------------------------------------- records

export function readNetwork(home: string, name: string): NetworkRecord {
  try {
    return JSON.parse(fs.readFileSync(recordPath(home, name), 'utf8'))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT')
      throw new VeloError('NOT_FOUND', `no network named ${name}`, {suggestion: `create it: velo network create ${name}, or list them: velo network ls`})
    throw err
  }
}

export function listNetworks(home: string): NetworkRecord[] {
  let names: string[]
  try {
    names = fs.readdirSync(networksDir(home))
  } catch {
    return []
  }
  return names
    .filter((n) => n.endsWith('.json'))
    .map((n) => {
      try {
        return JSON.parse(fs.readFileSync(path.join(networksDir(home), n), 'utf8')) as NetworkRecord
      } catch {
        return undefined
      }
    })
    .filter((r): r is NetworkRecord => !!r)
    .sort((a, b) => a.name.localeCompare(b.name))
}

/** The CNI configuration list of a network: what the plugins get, in order (DEL runs them in reverse). */
function conflist(home: string, r: NetworkRecord): object {
  return {
    cniVersion: '1.0.0',
    name: r.bridge, // unique per store and network: host-local's lease dir, portmap's and firewall's chain names
    plugins: [
      {
        type: 'bridge',
        bridge: r.bridge,
        // an internal network has no gateway on the host: no route out, and the host cannot reach it either
        isGateway: !r.internal,
        ipMasq: !r.internal,
        hairpinMode: true,
        ipam: {
          type: 'host-local',
          ranges: [[{subnet: r.subnet, ...(r.internal ? {} : {gateway: r.gateway})}]],
          routes: r.internal ? [] : [{dst: '0.0.0.0/0'}],
          dataDir: ipamDir(home),
        },
      },
      {type: 'portmap', capabilities: {portMappings: true}, snat: true},
      {type: 'firewall', backend: 'iptables', ingressPolicy: 'same-bridge'},
      {type: 'bandwidth', capabilities: {bandwidth: true}},
    ],
  }
}

function withNetworkLock<T>(home: string, fn: () => T): T {
  fs.mkdirSync(networksDir(home), {recursive: true, mode: 0o711})
  // the same flock native/cli/cni.c takes around ADD and DEL
  const lock = new StoreLock(path.join(networksDir(home), 'lock')).acquire('exclusive')
  try {
    return fn()
  } finally {
    lock.release()
  }
}

export interface CreateNetworkOptions {
  subnet?: string
  internal?: boolean
}

/** `velo network create NAME [--subnet CIDR] [--internal]` */
export function createNetwork(home: string, name: string, o: CreateNetworkOptions = {}): NetworkRecord {
  validateNetworkName(name)
  if (!isRoot()) throw new VeloError('PERMISSION_DENIED', 'networks need root (a bridge, iptables rules)', {suggestion: 'run as root; without root a tenant has its own loopback only'})
  const want = o.subnet !== undefined ? parseCidr(o.subnet) : undefined
  return withNetworkLock(home, () => withClaimsLock(() => {
    if (fs.existsSync(recordPath(home, name))) throw new VeloError('ALREADY_EXISTS', `a network named ${name} already exists`, {suggestion: `use it (--network ${name}), or remove it first: velo network rm ${name}`})
    const taken = [...listNetworks(home).map((n) => ({cidr: parseCidr(n.subnet), dev: `network ${n.name}`})), ...claims(), ...hostRoutes()]
    let cidr: Cidr
    if (want) {
      const clash = taken.find((t) => overlaps(t.cidr, want))
      if (clash) throw new VeloError('BAD_INPUT', `--subnet ${cidrText(want)} overlaps ${cidrText(clash.cidr)} (${clash.dev})`, {suggestion: 'pick a free range, or leave --subnet out: velo picks a free 10.89.N.0/24'})
      cidr = want
    } else {
      // the first free 10.89.N.0/24, as Podman picks them
      let found: Cidr | undefined
      for (let n = 0; n < 256 && !found; n++) {
        const c = {base: ipNum(`10.89.${n}.0`)!, bits: 24}
        if (!taken.some((t) => overlaps(t.cidr, c))) found = c
      }
      if (!found) throw new VeloError('BAD_INPUT', 'no free subnet left in 10.89.0.0/16', {suggestion: 'give one: --subnet CIDR'})
      cidr = found
    }
    const r: NetworkRecord = {
      name,
      subnet: cidrText(cidr),
      gateway: ipText(cidr.base + 1),
      bridge: `velo-${crypto.createHash('sha256').update(`${home}\0${name}`).digest('hex').slice(0, 8)}`,
      internal: !!o.internal,
      createdAt: new Date().toISOString(),
    }
    writeFileAtomic(conflistPath(home, name), JSON.stringify(conflist(home, r), null, 2) + '\n', 0o644)
    writeFileAtomic(recordPath(home, name), JSON.stringify(r, null, 2) + '\n', 0o644)
    writeFileAtomic(path.join(CLAIMS, claimName(cidr)), recordPath(home, name) + '\n', 0o600)
    emitEvent(home, 'network', 'create', name, {subnet: r.subnet, bridge: r.bridge, ...(r.internal ? {internal: 'true'} : {})})
    return r
  }))
}

/** The network a tenant's --network names: a velo network (the default one made on first use), or a mode. */
export function resolveNetwork(home: string, v: string): string {
  if ((NETWORK_MODES as readonly string[]).includes(v)) return v
  if (v === DEFAULT_NETWORK) {
    if (!fs.existsSync(recordPath(home, v))) {
      try {
        createNetwork(home, v)
      } catch (err) {
        if ((err as VeloError).code !== 'ALREADY_EXISTS') throw err
      }
    }
    return v
  }
  readNetwork(home, validateNetworkName(v))
  return v
}

/** Tenants (running or not) whose state names the network. */
export function networkUsers(home: string, name: string): string[] {
  return listTenantNames(home).filter((t) => {
    try {
      return readState(home, t).network === name
    } catch {
      return false
    }
  })
}

/** tenants/NAME/network.json, as native/cli/cni.c writes it at ADD */
export interface TenantAddress {
  network: string
  ip: string
  gateway?: string
  mac?: string
  attached: boolean
}

export function tenantAddress(home: string, tenant: string): TenantAddress | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(tenantDir(home, tenant), 'network.json'), 'utf8'))
  } catch {
    return undefined
  }
}

export function inspectNetwork(home: string, name: string): NetworkRecord & {tenants: Array<{name: string; ip?: string; attached: boolean}>} {
  const r = readNetwork(home, validateNetworkName(name))
  return {
    ...r,
    tenants: networkUsers(home, name).map((t) => {
      const a = tenantAddress(home, t)
      return {name: t, ...(a?.ip ? {ip: a.ip} : {}), attached: !!a?.attached}
    }),
  }
}

/** `velo network rm NAME`: refused while a tenant names it; then its bridge, its isolation rules, its files. */
export function removeNetwork(home: string, name: string): {name: string} {
  validateNetworkName(name)
  return withNetworkLock(home, () => {
    const r = readNetwork(home, name)
    const users = networkUsers(home, name)
    if (users.length) throw new VeloError('BUSY', `network ${name} is in use by ${users.join(', ')}`, {suggestion: `remove those sandboxes first (velo sandbox rm -f ${users.join(' ')})`})
    // the bridge plugin leaves the bridge and the firewall plugin its isolation rules for it: both are the network's
    spawnSync('ip', ['link', 'del', r.bridge], {encoding: 'utf8'})
    deleteRulesNaming(r.bridge)
    fs.rmSync(path.join(ipamDir(home), r.bridge), {recursive: true, force: true})
    fs.rmSync(conflistPath(home, name), {force: true})
    fs.rmSync(path.join(networksDir(home), `${name}.hosts`), {force: true})
    fs.rmSync(recordPath(home, name), {force: true})
    withClaimsLock(() => {
      const claim = path.join(CLAIMS, claimName(parseCidr(r.subnet)))
      try {
        if (fs.readFileSync(claim, 'utf8').trim() === recordPath(home, name)) fs.rmSync(claim, {force: true})
      } catch {}
    })
    emitEvent(home, 'network', 'rm', name)
    return {name}
  })
}

/** Every iptables rule (filter and nat tables) that names the interface: deleted by its own spec. */
function deleteRulesNaming(ifname: string): void {
  for (const table of ['filter', 'nat']) {
    const save = spawnSync('iptables-save', ['-t', table], {encoding: 'utf8'})
    if (save.status !== 0) continue
    for (const line of save.stdout.split('\n')) {
      if (!line.startsWith('-A ') || !new RegExp(`(^| )(-i|-o) ${ifname}( |$)`).test(line)) continue
      const args = splitRule(line.slice(3))
      spawnSync('iptables', ['-t', table, '-D', ...args], {encoding: 'utf8'})
    }
  }
}

/** An iptables-save rule into argv (double-quoted words, as in comments). */
function splitRule(s: string): string[] {
  const out: string[] = []
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g
  let m: RegExpExecArray | null
  while ((m = re.exec(s))) out.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2])
  return out
}

// ------------------------------------------------------------------------------------------------- bandwidth

/** The bandwidth plugin's runtimeConfig: rates in bits per second, bursts in bits */
export interface Bandwidth {
  ingressRate?: number
  ingressBurst?: number
  egressRate?: number
  egressBurst?: number
}

/** --ingress-rate / --egress-rate: "10mbit", "500kbit", "1gbit", or bits per second; the burst is 1/10 s of it
 * (at least 64 KiB), as the token bucket the plugin sets up needs one. */
export function parseRates(ingress: string | undefined, egress: string | undefined): Bandwidth | undefined {
  const rate = (v: string, flag: string) => {
    const m = /^(\d+(?:\.\d+)?)\s*(|k|m|g)(?:bit|bps)?$/i.exec(v.trim())
    const n = m ? Math.floor(Number(m[1]) * {'': 1, k: 1e3, m: 1e6, g: 1e9}[m[2].toLowerCase() as '' | 'k' | 'm' | 'g']) : NaN
    if (!(n >= 8000)) throw new VeloError('USAGE', `invalid ${flag} ${JSON.stringify(v)}`, {suggestion: 'bits per second, at least 8kbit: e.g. 500kbit, 10mbit, 1gbit'})
    return n
  }
  const b: Bandwidth = {}
  if (ingress !== undefined) {
    b.ingressRate = rate(ingress, '--ingress-rate')
    b.ingressBurst = Math.max(Math.floor(b.ingressRate / 10), 64 * 1024 * 8)
  }
  if (egress !== undefined) {
    b.egressRate = rate(egress, '--egress-rate')
    b.egressBurst = Math.max(Math.floor(b.egressRate / 10), 64 * 1024 * 8)
  }
  return Object.keys(b).length ? b : undefined
}

// ---------------------------------------------------------------------------------------------- published ports

export interface PortMapping {
  hostIP?: string
  hostPort: number
  containerPort: number
  protocol: 'tcp' | 'udp'
}

/** -p [HOST_IP:]HOST_PORT:TENANT_PORT[/tcp|udp] */
export function parsePublish(v: string): PortMapping {
  const m = /^(?:(\d{1,3}(?:\.\d{1,3}){3}):)?(\d{1,5}):(\d{1,5})(?:\/(tcp|udp))?$/.exec(v)
  const bad = () => new VeloError('USAGE', `invalid -p ${JSON.stringify(v)}`, {suggestion: 'use [HOST_IP:]HOST_PORT:TENANT_PORT[/tcp|udp], e.g. -p 127.0.0.1:8080:3000'})
  if (!m) throw bad()
  const [hostPort, containerPort] = [Number(m[2]), Number(m[3])]
  if (hostPort < 1 || hostPort > 65535 || containerPort < 1 || containerPort > 65535 || (m[1] && ipNum(m[1]) === undefined)) throw bad()
  return {...(m[1] ? {hostIP: m[1]} : {}), hostPort, containerPort, protocol: (m[4] as 'tcp' | 'udp') ?? 'tcp'}
}
