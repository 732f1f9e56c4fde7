/**
 * Rootless velo: an ordinary user (velo-rootless, which scripts/setup.sh makes with one range of 65,536 ids in
 * /etc/subuid and /etc/subgid) creates, uses and removes sandboxes in a store of its own. Real user, real
 * newuidmap/newgidmap, real namespaces and overlays; the user cannot reach root's store or tenants, and another
 * user cannot reach its own.
 */
import {spawnSync} from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {RunResult, VELO} from '../helpers'
import {SandboxHome, uniq} from './fixture'

const USER = 'velo-rootless'

function idsOf(user: string): {uid: number; gid: number} {
  const line = fs.readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith(`${user}:`))
  if (!line) throw new Error(`no user ${user}: scripts/setup.sh makes it`)
  const f = line.split(':')
  return {uid: Number(f[2]), gid: Number(f[3])}
}

function subRange(file: string, user: string): {start: number; count: number} {
  const line = fs.readFileSync(file, 'utf8').split('\n').find((l) => l.startsWith(`${user}:`))
  if (!line) throw new Error(`no ${user} entry in ${file}: scripts/setup.sh adds it`)
  const [, start, count] = line.split(':').map(Number)
  return {start, count}
}

/** velo as `user` (uid, gid, no supplementary groups), on `home` */
function veloAs(ids: {uid: number; gid: number}, home: string, args: string[], env: Record<string, string> = {}): RunResult {
  const r = spawnSync(VELO, args, {
    encoding: 'utf8',
    uid: ids.uid,
    gid: ids.gid,
    cwd: '/',
    timeout: 600_000, // the first call builds the default image as the user: minutes in a TCG guest
    env: {PATH: process.env.PATH!, HOME: '/nonexistent', VELO_HOME: home, ...env},
  })
  if (r.error) throw r.error
  return {status: r.status ?? 128 + 9, stdout: String(r.stdout), stderr: String(r.stderr)}
}

/** live (not zombie) processes of uid, and of the ids of its range */
function liveProcesses(uids: Array<[number, number]>): string[] {
  const out: string[] = []
  for (const pid of fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8')
      const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1])
      const state = /^State:\s+(\S)/m.exec(status)?.[1]
      if (state !== 'Z' && uids.some(([lo, n]) => uid >= lo && uid < lo + n)) out.push(`${pid} ${/^Name:\s+(.*)$/m.exec(status)?.[1]} uid ${uid}`)
    } catch {}
  }
  return out
}

/** rmdir a delegated subtree, deepest first, after moving what is still in it to the root cgroup */
function removeCgroupTree(dir: string): void {
  if (!fs.existsSync(dir)) return
  for (const d of fs.readdirSync(dir, {withFileTypes: true})) if (d.isDirectory()) removeCgroupTree(path.join(dir, d.name))
  try {
    for (const pid of fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) fs.writeFileSync('/sys/fs/cgroup/cgroup.procs', pid)
  } catch {}
  try {
    fs.rmdirSync(dir)
  } catch {}
}

describe('rootless velo (an ordinary user with subordinate ids)', () => {
  const me = idsOf(USER)
  const sub = subRange('/etc/subuid', USER)
  const subG = subRange('/etc/subgid', USER)
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'velo-rootless-'))
  const home = path.join(base, 'store')
  const shared = path.join(base, 'shared')
  const secretDir = path.join(base, 'secret')
  const A = uniq('rl-a')
  const as = (args: string[], env?: Record<string, string>) => veloAs(me, home, args, env)
  const sh = (name: string, script: string, extra: string[] = []) => as(['sandbox', 'exec', ...extra, name, '--', 'sh', '-c', script])
  const rootStore = new SandboxHome(['--profile', 'userns'])
  const R = uniq('rl-root')

  beforeAll(() => {
    fs.chmodSync(base, 0o755)
    fs.mkdirSync(home)
    fs.chownSync(home, me.uid, me.gid)
    fs.mkdirSync(shared)
    fs.chownSync(shared, me.uid, me.gid)
    fs.mkdirSync(secretDir, {mode: 0o755})
    fs.writeFileSync(path.join(secretDir, 'secret'), 'host root only\n', {mode: 0o600})
    const r = as(['sandbox', 'create', A, '--mount', `${shared}:/shared`, '--mount', `${secretDir}:/secret`])
    if (r.status !== 0) throw new Error(`create as ${USER}: ${r.stderr}`)
    rootStore.create(R)
  }, 900_000)

  afterAll(() => {
    as(['sandbox', 'rm', '-f', A])
    const left = rootStore.cleanup()
    const tenants = fs.existsSync(path.join(home, 'tenants')) ? fs.readdirSync(path.join(home, 'tenants')) : []
    const procs = liveProcesses([[me.uid, 1], [sub.start, sub.count]])
    fs.rmSync(base, {recursive: true, force: true})
    expect(left).toEqual({mounts: [], cgroups: [], tenants: []})
    expect({tenants, procs}).toEqual({tenants: [], procs: []})
  })

  it('the tenant is in a user namespace of its own: root is the user, its other ids the user\'s subordinate range', () => {
    const r = sh(A, 'cat /proc/self/uid_map /proc/self/gid_map; id -u')
    expect(r.status).toBe(0)
    const rows = r.stdout.trim().split('\n').map((l) => l.trim().split(/\s+/).map(Number))
    expect(rows).toEqual([[0, me.uid, 1], [1, sub.start, Math.min(sub.count, 65535)], [0, me.gid, 1], [1, subG.start, Math.min(subG.count, 65535)], [0]])
    const info = JSON.parse(as(['sandbox', 'inspect', A, '--json']).stdout)
    expect(info.userns).toBe(true)
    expect(info.hostIds.uid).toEqual([{containerID: 0, hostID: me.uid, size: 1}, {containerID: 1, hostID: sub.start, size: Math.min(sub.count, 65535)}])
    // only root may opt a tenant out of its user namespace, on both front doors; nothing is made
    for (const args of [['--userns', 'host'], ['--backend', 'fuse', '--userns', 'host']]) {
      const r = as(['sandbox', 'create', uniq('rl-host'), ...args])
      expect(r.status).toBe(1)
      expect(r.stderr).toMatch(/PERMISSION_DENIED.*only root may run a tenant without a user namespace/)
    }
    expect(as(['sandbox', 'create', uniq('rl-fuse'), '--backend', 'fuse']).stderr).toMatch(/UNSUPPORTED[\s\S]*use the farm backend/)
    expect(fs.readdirSync(path.join(home, 'tenants')).filter((n) => /^rl-(host|fuse)/.test(n))).toEqual([])
  })

  it('says which limits it cannot apply (no cgroup delegated to the user on this host) and does not pretend', () => {
    const name = uniq('rl-lim')
    const r = as(['sandbox', 'create', name, '--memory', '64m', '--pids', '64'])
    try {
      expect(r.status).toBe(0)
      const cgroupV2 = fs.existsSync('/sys/fs/cgroup/cgroup.controllers')
      if (!cgroupV2) {
        expect(r.stderr).toMatch(/warning: sandbox \S+ runs without its memory, pids limits: velo is not root, and this host's cgroups are v1/)
        const info = JSON.parse(as(['sandbox', 'inspect', name, '--json']).stdout)
        expect(info.limits).toEqual({})
        expect(info.cgroups).toEqual([])
      }
      const d = as(['sandbox', 'create', uniq('rl-disk'), '--disk', '64m'])
      expect(d.stderr).toMatch(/runs without its disk limit: a project quota needs root/)
      as(['sandbox', 'rm', '-f', JSON.parse(as(['sandbox', 'ls', '--json']).stdout).find((s: any) => s.name.startsWith('rl-disk')).name])
    } finally {
      as(['sandbox', 'rm', '-f', name])
    }
  })

  it('files: the tenant\'s root writes as the user, its other users as ids of the range; a host secret stays unreadable', () => {
    const r = sh(A, 'echo root > /shared/by-root; echo mine > /tmp/by-root; mkdir -p /home/node/w && chown 1000:1000 /home/node/w; su node -s /bin/sh -c "echo n > /home/node/w/by-node"; cat /secret/secret')
    expect(r.stderr).toMatch(/\/secret\/secret.*Permission denied/)
    expect(r.status).not.toBe(0)
    expect(fs.statSync(path.join(shared, 'by-root')).uid).toBe(me.uid)
    const upper = path.join(home, 'tenants', A, 'upper')
    expect(fs.statSync(path.join(upper, 'tmp', 'by-root')).uid).toBe(me.uid)
    expect(fs.statSync(path.join(upper, 'home', 'node', 'w', 'by-node')).uid).toBe(sub.start + 999)
    expect(sh(A, 'stat -c %u:%g /home/node/w/by-node').stdout.trim()).toBe('1000:1000')
  })

  it('exec: exit codes, the user of a name, stdin; the native and the Node door alike', () => {
    expect(sh(A, 'exit 7').status).toBe(7)
    for (const env of [{}, {VELO_NATIVE: '0'}] as Array<Record<string, string>>) {
      const r = as(['sandbox', 'exec', '-u', 'node', A, '--', 'id'], env)
      expect(r.stdout).toMatch(/^uid=1000\(node\) gid=1000\(node\)/)
    }
    const r = as(['sandbox', 'run', '--rm', '--', 'sh', '-c', 'echo $((6*7))'], {VELO_NATIVE: '0'})
    expect(r.status).toBe(0)
    expect(r.stdout).toBe('42\n')
  })

  it('stop, start, diff and commit work on the user\'s own store', () => {
    const name = uniq('rl-c')
    expect(as(['sandbox', 'create', name]).status).toBe(0)
    try {
      expect(sh(name, 'mkdir /data && echo hi > /data/x && rm /etc/os-release').status).toBe(0)
      expect(as(['sandbox', 'stop', name]).status).toBe(0)
      expect(as(['sandbox', 'start', name]).status).toBe(0)
      expect(sh(name, 'cat /data/x').stdout).toBe('hi\n')
      expect(as(['sandbox', 'diff', name]).stdout).toMatch(/A \/data\/x\n[^]*D \/etc\/os-release/)
      expect(as(['sandbox', 'stop', name]).status).toBe(0)
      const img = uniq('rl-img')
      expect(as(['sandbox', 'commit', name, img]).status).toBe(0)
      const r = as(['sandbox', 'run', '--rm', '--image', img, '--', 'sh', '-c', 'cat /data/x; test -e /etc/os-release || echo gone'])
      expect(r.stdout).toBe('hi\ngone\n')
    } finally {
      as(['sandbox', 'rm', '-f', name])
    }
  })

  it('a workload: run -d, logs, wait, restart policy, rm — as the user, its monitor the user\'s', () => {
    const W = uniq('rl-wl')
    let r = as(['sandbox', 'run', '-d', '--name', W, '--restart', 'on-failure:1', '--', 'sh', '-c', 'id -u; echo err >&2; exit 4'])
    expect(r.status, r.stderr).toBe(0)
    expect(as(['sandbox', 'wait', W]).stdout).toBe('4\n')
    r = as(['sandbox', 'logs', W])
    expect(r.stdout).toBe('0\n0\n')
    expect(r.stderr).toBe('err\nerr\n')
    const logs = path.join(home, 'tenants', W, 'logs', 'container.log')
    expect(fs.statSync(logs).uid).toBe(me.uid)
    expect(as(['sandbox', 'rm', '-f', W]).status).toBe(0)
    expect(fs.existsSync(path.join(home, 'tenants', W))).toBe(false)
  })

  it('cannot touch root\'s store or its tenants; root\'s tenant keeps running', () => {
    const other = (args: string[]) => veloAs(me, rootStore.home, args)
    for (const args of [['sandbox', 'exec', R, '--', 'id'], ['sandbox', 'rm', '-f', R], ['sandbox', 'stop', R]]) {
      const r = other(args)
      expect(r.status).toBe(1)
      expect(r.stderr).toMatch(/error \[PERMISSION_DENIED\]/)
      expect(r.stderr).not.toMatch(/bug in velo/)
    }
    expect(rootStore.sh(R, 'echo alive').stdout).toBe('alive\n')
  })

  // cgroup v2 only (the guests of `npm run test:hosts`; this host is v1): root delegates a subtree to the user as
  // systemd's Delegate= does (the dir and its cgroup.procs/subtree_control/threads are the user's), velo runs in a
  // leaf of it, and its tenants' limits hold, nested under that subtree.
  const v2 = fs.existsSync('/sys/fs/cgroup/cgroup.controllers')
  it.skipIf(!v2)('on cgroup v2, limits apply under a cgroup delegated to the user, nested there, and go with rm (needs a v2 host: npm run test:hosts)', () => {
    const deleg = path.join('/sys/fs/cgroup', uniq('velo-deleg'))
    const leaf = path.join(deleg, 'shell')
    const name = uniq('rl-v2')
    fs.writeFileSync('/sys/fs/cgroup/cgroup.subtree_control', '+memory +pids +cpu')
    fs.mkdirSync(deleg)
    try {
      for (const f of ['', 'cgroup.procs', 'cgroup.subtree_control', 'cgroup.threads']) fs.chownSync(path.join(deleg, f), me.uid, me.gid)
      fs.mkdirSync(leaf)
      fs.chownSync(leaf, me.uid, me.gid)
      fs.chownSync(path.join(leaf, 'cgroup.procs'), me.uid, me.gid)
      // velo as the user, started inside the leaf: root places the shell there (as systemd places a login session;
      // the user alone may not move a process out of a cgroup it does not own), then drops to the user
      const inLeaf = (args: string[]) => {
        const drop = ['setpriv', `--reuid=${me.uid}`, `--regid=${me.gid}`, '--clear-groups', VELO]
        const r = spawnSync('sh', ['-c', `echo $$ > ${leaf}/cgroup.procs && exec "$@"`, 'sh', ...drop, ...args], {
          encoding: 'utf8',
          cwd: '/',
          env: {PATH: process.env.PATH!, HOME: '/nonexistent', VELO_HOME: home},
        })
        return {status: r.status ?? 137, stdout: String(r.stdout), stderr: String(r.stderr)}
      }
      const c = inLeaf(['sandbox', 'create', name, '--memory', '64m', '--pids', '32'])
      expect(c.status, c.stderr).toBe(0)
      expect(c.stderr).not.toMatch(/warning/)
      // a tenant's cgroup is named after it and its store (NAME.STORE), as on a host's own hierarchy
      const tenantDir = fs.readdirSync(path.join(deleg, 'velo')).find((d) => d.startsWith(`${name}.`))
      expect(tenantDir).toBeDefined()
      const tenantCg = path.join(deleg, 'velo', tenantDir!)
      expect(fs.readFileSync(path.join(tenantCg, 'memory.max'), 'utf8').trim()).toBe(String(64 << 20))
      expect(fs.readFileSync(path.join(tenantCg, 'pids.max'), 'utf8').trim()).toBe('32')
      const info = JSON.parse(inLeaf(['sandbox', 'inspect', name, '--json']).stdout)
      expect(info.limits).toEqual({memory: 64 << 20, pids: 32})
      expect(info.cgroups).toEqual([tenantCg])
      // the pids limit holds inside: a fork bomb stops at 32 tasks, the host is untouched
      const r = inLeaf(['sandbox', 'exec', name, '--', 'sh', '-c', 'for i in $(seq 64); do sleep 5 & done 2>/dev/null; cat /sys/fs/cgroup/pids.current'])
      expect(Number(r.stdout.trim())).toBeLessThanOrEqual(32)
      expect(inLeaf(['sandbox', 'rm', '-f', name]).status).toBe(0)
      expect(fs.existsSync(tenantCg)).toBe(false)
    } finally {
      removeCgroupTree(deleg)
    }
  })

  it('another user cannot touch this user\'s store; a user without subordinate ids gets a clear error', () => {
    const nobody = {uid: 65534, gid: 65534}
    const r = veloAs(nobody, home, ['sandbox', 'exec', A, '--', 'id'])
    expect(r.status).toBe(1)
    expect(r.stderr).toMatch(/error \[PERMISSION_DENIED\]/)
    const own = path.join(base, 'nobody-store')
    fs.mkdirSync(own)
    fs.chownSync(own, nobody.uid, nobody.gid)
    const c = veloAs(nobody, own, ['sandbox', 'create', 'x'])
    expect(c.status).toBe(1)
    expect(c.stderr).toMatch(/error \[UNSUPPORTED\]: cannot start sandbox: user nobody \(uid 65534\) has no range in \/etc\/subuid and \/etc\/subgid/)
    expect(c.stderr).toMatch(/suggestion: ask an administrator to run: usermod --add-subuids/)
    expect(fs.readdirSync(path.join(own, 'tenants'))).toEqual([])
  })
})
