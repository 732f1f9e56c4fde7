import {spawn, spawnSync} from 'node:child_process'
import * as fs from 'node:fs'
import * as http from 'node:http'
import * as net from 'node:net'
import * as path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {VELO} from '../helpers'
import {SandboxHome, uniq} from '../sandbox/fixture'

// Networks through the real CNI plugins (bridge, host-local, portmap, firewall): real bridges, veths, iptables
// rules and network namespaces. Traffic goes only to loopback (published ports) and between the tenants' own
// namespaces, never anywhere else.

/** What a tenant leaves on the host: links, iptables rules (counters dropped), IPAM leases, namespace pins. */
function hostNetState(home: string): {links: string[]; rules: string[]; leases: string[]; pins: string[]} {
  const links = spawnSync('ip', ['-o', 'link', 'show'], {encoding: 'utf8'})
    .stdout.split('\n')
    .map((l) => l.split(':')[1]?.trim().split('@')[0])
    .filter((l): l is string => !!l)
    .sort()
  const rules = spawnSync('iptables-save', {encoding: 'utf8'})
    .stdout.split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => l.replace(/\[\d+:\d+\]/, ''))
  const ipam = path.join(home, 'networks', 'ipam')
  const leases = fs.existsSync(ipam) ? fs.readdirSync(ipam).flatMap((d) => fs.readdirSync(path.join(ipam, d)).filter((f) => /^\d/.test(f)).map((f) => `${d}/${f}`)) : []
  const pins = fs.existsSync('/run/velo/netns') ? fs.readdirSync('/run/velo/netns') : []
  return {links, rules, leases: leases.sort(), pins: pins.sort()}
}

function httpGet(port: number, p = '/'): Promise<{status: number; body: string}> {
  return new Promise((resolve, reject) => {
    const req = http.get({host: '127.0.0.1', port, path: p, timeout: 5000}, (res) => {
      let body = ''
      res.on('data', (d) => (body += d))
      res.on('end', () => resolve({status: res.statusCode ?? 0, body}))
    })
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', reject)
  })
}

async function until<T>(fn: () => Promise<T> | T, ok: (v: T) => boolean, ms = 10_000): Promise<T> {
  const end = Date.now() + ms
  for (;;) {
    try {
      const v = await fn()
      if (ok(v) || Date.now() > end) return v
    } catch (err) {
      if (Date.now() > end) throw err
    }
    await new Promise((r) => setTimeout(r, 100))
  }
}

/** a free TCP port on 127.0.0.1 (bound, then let go) */
function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port
      s.close(() => resolve(p))
    })
  })
}

const SERVER = 'require("http").createServer((q,r)=>{console.log("GET "+q.url);r.end("hello from "+require("os").hostname()+"\\n")}).listen(3000,()=>console.log("listening"))'

describe('networks (CNI: bridge, host-local, portmap, firewall)', () => {
  const sb = new SandboxHome()
  const nets: string[] = []
  let before: ReturnType<typeof hostNetState>
  const network = (args: string[]) => sb.velo(['network', ...args])
  const mkNet = (name: string, extra: string[] = []) => {
    const r = network(['create', name, ...extra, '--json'])
    expect(r.status, r.stderr).toBe(0)
    nets.push(name)
    return JSON.parse(r.stdout)
  }

  beforeAll(() => {
    sb.create(uniq('warm')) // the default image, built once
    before = hostNetState(sb.home)
  })
  afterAll(() => {
    // tenants first (a network in use cannot go), then every network of this store with its bridge and rules
    const tenants = path.join(sb.home, 'tenants')
    for (const t of fs.existsSync(tenants) ? fs.readdirSync(tenants) : []) sb.velo(['sandbox', 'rm', '-f', t])
    const bridges = JSON.parse(network(['ls', '--json']).stdout).map((n: any) => n.bridge)
    for (const n of [...nets, 'bridge']) network(['rm', n])
    const left = hostNetState('/nonexistent')
    expect(left.links.filter((l) => bridges.includes(l))).toEqual([])
    expect(left.rules.filter((l) => bridges.some((b: string) => l.includes(b)))).toEqual([])
    expect(sb.cleanup()).toEqual({mounts: [], cgroups: [], tenants: []})
  })

  it('network create/ls/inspect/rm; subnets never overlap; bad input is refused with nothing made', () => {
    const A = uniq('na').toLowerCase()
    const a = mkNet(A)
    expect(a).toMatchObject({name: A, internal: false, bridge: expect.stringMatching(/^velo-[0-9a-f]{8}$/)})
    expect(a.subnet).toMatch(/^10\.89\.\d+\.0\/24$/)
    const B = uniq('nb').toLowerCase()
    const b = mkNet(B)
    expect(b.subnet).not.toBe(a.subnet)
    expect(JSON.parse(network(['ls', '--json']).stdout).map((n: any) => n.name)).toEqual(expect.arrayContaining([A, B]))
    const bad: Array<[string[], number, RegExp]> = [
      [['create', uniq('nc').toLowerCase(), '--subnet', a.subnet], 1, /BAD_INPUT.*overlaps/],
      [['create', uniq('nc').toLowerCase(), '--subnet', '192.0.2.0/25'], 1, /BAD_INPUT.*overlaps/], // the host's own route (this VM's eth0) — any host route would do
      [['create', uniq('nc').toLowerCase(), '--subnet', '10.89.300.0/24'], 2, /USAGE.*subnet/],
      [['create', uniq('nc').toLowerCase(), '--subnet', '10.90.0.1/24'], 2, /host bits/],
      [['create', 'none'], 2, /INVALID_NAME/],
      [['create', A], 1, /ALREADY_EXISTS/],
      [['rm', 'nope-no-such'], 1, /NOT_FOUND/],
    ]
    const hostRoute = spawnSync('ip', ['-4', 'route', 'show', '192.0.2.0/24'], {encoding: 'utf8'}).stdout.trim()
    for (const [args, code, re] of bad) {
      if (args.includes('192.0.2.0/25') && !hostRoute) continue // no such host route on this machine
      const r = network(args)
      expect(r.status, args.join(' ')).toBe(code)
      expect(r.stderr).toMatch(re)
    }
    expect(JSON.parse(network(['ls', '--json']).stdout).length).toBe(nets.length)
    // in use: refused; then removed with its bridge and its rules
    const T = uniq('nt')
    sb.create(T, ['--network', A])
    const rm = network(['rm', A])
    expect(rm.status).toBe(1)
    expect(rm.stderr).toMatch(new RegExp(`BUSY.*${T}`))
    sb.json(['sandbox', 'rm', '-f', T])
    expect(network(['rm', A]).status).toBe(0)
    nets.splice(nets.indexOf(A), 1)
    expect(spawnSync('ip', ['link', 'show', a.bridge]).status).not.toBe(0)
    expect(spawnSync('iptables-save', {encoding: 'utf8'}).stdout).not.toContain(a.bridge)
  })

  it('a service published with -p 127.0.0.1:P:3000 answers the host; its logs show it; stop/start keeps its address and logs; rm leaves nothing', async () => {
    const N = uniq('web')
    const P = await freePort()
    const r = sb.velo(['sandbox', 'run', '-d', '--name', N, '--network', 'bridge', '-p', `127.0.0.1:${P}:3000`, '--', 'node', '-e', SERVER])
    expect(r.status, r.stderr).toBe(0)
    sb.track(N)
    const res = await until(() => httpGet(P, '/first'), (v) => v.status === 200)
    expect(res.body).toBe(`hello from ${N}\n`)
    expect(sb.velo(['sandbox', 'logs', N]).stdout).toBe('listening\nGET /first\n')
    const addr = sb.json(['sandbox', 'inspect', N]).address
    expect(addr).toMatchObject({network: 'bridge', ip: expect.stringMatching(/^10\.89\.\d+\.\d+$/), attached: true})
    expect(sb.json(['sandbox', 'ls']).find((s: any) => s.name === N)).toMatchObject({network: 'bridge', ip: addr.ip, ports: [`127.0.0.1:${P}->3000/tcp`]})
    expect(sb.velo(['sandbox', 'port', N]).stdout).toBe(`3000/tcp -> 127.0.0.1:${P}\n`)
    sb.json(['sandbox', 'stop', N])
    expect(sb.json(['sandbox', 'inspect', N]).address).toMatchObject({ip: addr.ip, attached: false})
    sb.json(['sandbox', 'start', N])
    expect((await until(() => httpGet(P, '/second'), (v) => v.status === 200)).body).toBe(`hello from ${N}\n`)
    expect(sb.json(['sandbox', 'inspect', N]).address.ip).toBe(addr.ip)
    expect(sb.velo(['sandbox', 'logs', N]).stdout).toBe('listening\nGET /first\nlistening\nGET /second\n')
    sb.json(['sandbox', 'rm', '-f', N])
    const after = hostNetState(sb.home)
    // the default network's bridge (made by the first tenant on it) belongs to the network, not the tenant
    expect(after.links.filter((l) => !before.links.includes(l) && !l.startsWith('velo-'))).toEqual([])
    expect(after.leases).toEqual([])
    expect(after.pins.filter((p) => !before.pins.includes(p))).toEqual([])
    expect(after.rules.filter((l) => l.includes(addr.ip) || l.includes(`${P}`))).toEqual([])
  })

  it('tenants on one network talk by name; another network cannot reach them; loopback-only sees lo alone', () => {
    const X = uniq('nx').toLowerCase()
    const Y = uniq('ny').toLowerCase()
    mkNet(X)
    mkNet(Y)
    const [A, B, C, L] = [uniq('ta'), uniq('tb'), uniq('tc'), uniq('tl')]
    sb.track(A)
    expect(sb.velo(['sandbox', 'run', '-d', '--name', A, '--network', X, '--', 'node', '-e', SERVER]).status).toBe(0)
    sb.create(B, ['--network', X])
    sb.create(C, ['--network', Y])
    sb.create(L)
    const ipA = sb.json(['sandbox', 'inspect', A]).address.ip
    // node is the client (busybox-static's wget crashes in this image: its static glibc cannot load NSS)
    const get = (from: string, host: string, tries = 10) =>
      sb.exec(from, ['node', '-e', `let n=${tries};(function go(){require("http").get({host:${JSON.stringify(host)},port:3000,timeout:2000},r=>r.pipe(process.stdout)).on("timeout",function(){this.destroy(new Error("timeout"))}).on("error",e=>{if(--n>0)setTimeout(go,300);else{console.error(e.code||e.message);process.exit(1)}})})()`])
    const byName = get(B, A)
    expect(byName.status, byName.stdout + byName.stderr).toBe(0)
    expect(byName.stdout).toBe(`hello from ${A}\n`)
    expect(sb.sh(B, 'cat /etc/hosts').stdout).toMatch(new RegExp(`${ipA.replace(/\./g, '\\.')}\\s+${A}`))
    const cross = get(C, ipA, 1)
    expect(cross.stdout).not.toContain('hello from')
    expect(cross.status).toBe(1)
    expect(sb.sh(C, `grep -c ${A} /etc/hosts`).stdout.trim()).toBe('0')
    expect(sb.sh(L, 'ls /sys/class/net').stdout.trim()).toBe('lo')
    expect(sb.sh(B, 'ls /sys/class/net').stdout.trim().split(/\s+/).sort()).toEqual(['eth0', 'lo'])
    for (const n of [A, B, C, L]) sb.json(['sandbox', 'rm', '-f', n])
  })

  it('--ingress-rate/--egress-rate shape the tenant\'s veth through the bandwidth plugin (tc tbf), and go with it', () => {
    const N = uniq('bw')
    sb.create(N, ['--network', 'bridge', '--ingress-rate', '10mbit', '--egress-rate', '5mbit'])
    const peer = sb.sh(N, 'cat /sys/class/net/eth0/iflink').stdout.trim()
    const veth = spawnSync('ip', ['-o', 'link'], {encoding: 'utf8'}).stdout.split('\n').find((l) => l.startsWith(`${peer}:`))!.split(':')[1].trim().split('@')[0]
    const qdisc = () => spawnSync('tc', ['qdisc', 'show', 'dev', veth], {encoding: 'utf8'}).stdout
    expect(qdisc()).toMatch(/tbf .*rate 10Mbit/)
    // egress: the plugin's ifb device carries the 5 Mbit bucket
    expect(spawnSync('tc', ['qdisc', 'show'], {encoding: 'utf8'}).stdout).toMatch(/tbf .*rate 5Mbit/)
    const bad = sb.velo(['sandbox', 'create', uniq('bw2'), '--network', 'bridge', '--egress-rate', 'fast'])
    expect(bad.status).toBe(2)
    expect(bad.stderr).toMatch(/--egress-rate/)
    sb.json(['sandbox', 'rm', '-f', N])
    expect(spawnSync('tc', ['qdisc', 'show'], {encoding: 'utf8'}).stdout).not.toMatch(/rate (5|10)Mbit/)
  })

  it('the native front door serves --network and -p (no Node started) and writes the state Node writes', async () => {
    const [A, B] = [uniq('nat'), uniq('nod')]
    const [P1, P2] = [await freePort(), await freePort()]
    for (const n of [A, B]) sb.track(n)
    // NODE_OPTIONS that cannot load: any fall back to Node fails loudly
    const a = sb.velo(['sandbox', 'create', A, '--network', 'bridge', '-p', `127.0.0.1:${P1}:80`, '-p', `${P2}:81/udp`], {env: {NODE_OPTIONS: '--require=/nonexistent/velo-front-test.js'}})
    expect(a.status, a.stderr).toBe(0)
    expect(sb.velo(['sandbox', 'create', B, '--network', 'bridge', '-p', `127.0.0.1:${P1 + 1}:80`, '-p', `${P2 + 1}:81/udp`], {env: {VELO_NATIVE: '0'}}).status).toBe(0)
    const norm = (n: string, ports: number[]) => {
      let t = fs.readFileSync(path.join(sb.home, 'tenants', n, 'state.json'), 'utf8').split(n).join('NAME')
      for (const p of ports) t = t.split(String(p)).join('0')
      const j = JSON.parse(t)
      return {...j, createdAt: 0, startedAt: 0, pid: 0, pidStart: 0}
    }
    expect(norm(A, [P1, P2])).toEqual(norm(B, [P1 + 1, P2 + 1]))
    expect(sb.json(['sandbox', 'inspect', A]).address).toMatchObject({network: 'bridge', attached: true})
    for (const n of [A, B]) sb.json(['sandbox', 'rm', '-f', n])
  })

  it('a port in use, a port another tenant publishes, a bad -p, -p without a network, an unknown network: clear errors, nothing half-made', async () => {
    const P = await freePort()
    const holder = net.createServer().listen(P, '127.0.0.1')
    await new Promise((r) => holder.once('listening', r))
    const base = hostNetState(sb.home)
    try {
      const N = uniq('busy')
      const r = sb.velo(['sandbox', 'run', '-d', '--name', N, '--network', 'bridge', '-p', `127.0.0.1:${P}:3000`, '--', 'true'])
      expect(r.status).toBe(1)
      expect(r.stderr).toMatch(new RegExp(`BUSY.*${P}.*in use`))
      expect(fs.existsSync(path.join(sb.home, 'tenants', N))).toBe(false)
      const now = hostNetState(sb.home)
      expect(now.links).toEqual(base.links)
      expect(now.leases).toEqual(base.leases)
      expect(now.rules).toEqual(base.rules)
    } finally {
      holder.close()
    }
    const Q = await freePort()
    const W = uniq('pub')
    sb.track(W)
    expect(sb.velo(['sandbox', 'run', '-d', '--name', W, '--network', 'bridge', '-p', `127.0.0.1:${Q}:3000`, '--', 'node', '-e', SERVER]).status).toBe(0)
    const twice = sb.velo(['sandbox', 'create', uniq('pub2'), '--network', 'bridge', '-p', `${Q}:80`])
    expect(twice.status).toBe(1)
    expect(twice.stderr).toMatch(new RegExp(`BUSY.*${Q}.*published by sandbox ${W}`))
    sb.json(['sandbox', 'rm', '-f', W])
    for (const [args, code, re] of [
      [['sandbox', 'create', uniq('bp'), '--network', 'bridge', '-p', '80'], 2, /USAGE.*-p/],
      [['sandbox', 'create', uniq('bp'), '--network', 'bridge', '-p', '1.2.3:80:80'], 2, /USAGE.*-p/],
      [['sandbox', 'create', uniq('bp'), '--network', 'bridge', '-p', '70000:80'], 2, /USAGE.*-p/],
      [['sandbox', 'create', uniq('bp'), '-p', '8080:80'], 2, /USAGE.*needs a network/],
      [['sandbox', 'create', uniq('bp'), '--network', 'nope-none'], 1, /NOT_FOUND.*nope-none/],
    ] as Array<[string[], number, RegExp]>) {
      const r = sb.velo(args)
      expect(r.status, args.join(' ')).toBe(code)
      expect(r.stderr).toMatch(re)
    }
  })

  it('velo killed (-9) at any point of a create on a network: rm -f leaves no veth, rule, lease or pin behind', async () => {
    const base = hostNetState(sb.home)
    const names: string[] = []
    for (const at of [15, 40, 70, 100, 130, 160, 200, 260]) {
      const N = uniq(`k${at}`)
      names.push(N)
      sb.track(N)
      const P = await freePort()
      const c = spawn(VELO, ['sandbox', 'create', N, '--network', 'bridge', '-p', `127.0.0.1:${P}:3000`], {env: {...process.env, VELO_HOME: sb.home}, detached: true, stdio: 'ignore'})
      const exited = new Promise((r) => c.once('exit', r).once('error', r))
      await new Promise((r) => setTimeout(r, at))
      try {
        process.kill(-c.pid!, 'SIGKILL') // the CLI and everything of its process group (the boot, the plugins)
      } catch {}
      await exited
    }
    for (const N of names) sb.velo(['sandbox', 'rm', '-f', N])
    const after = hostNetState(sb.home)
    expect(after.links.filter((l) => !base.links.includes(l) && !l.startsWith('velo-'))).toEqual([])
    expect(after.leases).toEqual(base.leases)
    expect(after.pins).toEqual(base.pins)
    // the network's own isolation rules (made with its first tenant, like its bridge) belong to the network
    const bridges: string[] = JSON.parse(sb.velo(['network', 'ls', '--json']).stdout).map((n: any) => n.bridge)
    const networks = (l: string) => l.includes('CNI-ISOLATION') && bridges.some((b) => l.includes(b))
    expect(after.rules.filter((l) => !base.rules.includes(l) && !networks(l))).toEqual([])
  })

  it('a tenant whose init died with the host (kill -9, stale leases and rules) starts again cleanly, and rm leaves nothing', async () => {
    const N = uniq('stale')
    const P = await freePort()
    sb.track(N)
    expect(sb.velo(['sandbox', 'run', '-d', '--name', N, '--network', 'bridge', '-p', `127.0.0.1:${P}:3000`, '--', 'node', '-e', SERVER]).status).toBe(0)
    const ip = sb.json(['sandbox', 'inspect', N]).address.ip
    const pid = sb.json(['sandbox', 'inspect', N]).pid
    // what a crash leaves: the init and the monitor gone, the CNI state (lease, rules, pin) still there
    const mon = Number(fs.readFileSync(path.join(sb.home, 'tenants', N, 'monitor.pid'), 'utf8').split(' ')[0])
    process.kill(mon, 'SIGKILL')
    process.kill(pid, 'SIGKILL')
    await until(() => sb.json(['sandbox', 'inspect', N]).status, (s) => s === 'stopped')
    expect(sb.velo(['sandbox', 'start', N]).status).toBe(0)
    expect((await until(() => httpGet(P), (v) => v.status === 200)).body).toBe(`hello from ${N}\n`)
    expect(sb.json(['sandbox', 'inspect', N]).address.ip).toBe(ip)
    // one set of rules for it, not two
    expect(spawnSync('iptables-save', ['-t', 'nat'], {encoding: 'utf8'}).stdout.split('\n').filter((l) => l.startsWith('-A POSTROUTING') && l.includes(`${ip}/32`)).length).toBe(1)
    sb.json(['sandbox', 'rm', '-f', N])
    const after = hostNetState(sb.home)
    expect(after.leases).toEqual([])
    expect(after.rules.filter((l) => l.includes(ip) || l.includes(`${P}`))).toEqual([])
  })
})
