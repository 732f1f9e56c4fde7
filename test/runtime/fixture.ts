import {spawn, spawnSync, SpawnSyncOptions} from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import {afterAll, afterEach} from 'vitest'
import {ROOT} from '../helpers'

/**
 * OCI runtime fixtures: the same bundle run by velo-runtime and by runc, so every behaviour is checked against
 * the reference runtime in the same test. Bundles share one busybox rootfs (read-only in the default config).
 */
export const VELO_RUNTIME = path.join(ROOT, 'native', 'build', 'velo-runtime')
export const RUNC = '/usr/sbin/runc'
export const RUNTIMES: Record<string, string> = {velo: VELO_RUNTIME, runc: RUNC}

let rootfsDir: string | undefined
/** A busybox rootfs (static busybox + applet links, /etc/passwd and /etc/group), made once per test file. */
export function busyboxRootfs(): string {
  if (rootfsDir) return rootfsDir
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'velo-oci-rootfs-'))
  for (const sub of ['bin', 'etc', 'tmp', 'proc', 'sys', 'dev', 'root']) fs.mkdirSync(path.join(d, sub))
  fs.chmodSync(path.join(d, 'tmp'), 0o1777)
  fs.copyFileSync('/bin/busybox', path.join(d, 'bin', 'busybox'))
  fs.chmodSync(path.join(d, 'bin', 'busybox'), 0o755)
  const applets = spawnSync('/bin/busybox', ['--list'], {encoding: 'utf8'}).stdout.split('\n').filter(Boolean)
  for (const a of applets) if (a !== 'busybox') fs.symlinkSync('busybox', path.join(d, 'bin', a))
  fs.writeFileSync(path.join(d, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\ntester:x:1000:1000:tester:/tmp:/bin/sh\n')
  fs.writeFileSync(path.join(d, 'etc', 'group'), 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\ntester:x:1000:\n')
  rootfsDir = d
  return d
}

// Imported at collection time, so this is a hook of every test file that uses the fixture: the shared rootfs goes,
// and velo-runtime's parent cgroup (/velo-runtime, left like runc's parents so concurrent creates never race its
// removal) is removed when no container of another file is still in it (rmdir of a non-empty cgroup just fails).
afterAll(() => {
  if (rootfsDir) fs.rmSync(rootfsDir, {recursive: true, force: true})
  rootfsDir = undefined
  for (const h of fs.readdirSync('/sys/fs/cgroup')) {
    try {
      fs.rmdirSync(path.join('/sys/fs/cgroup', h, 'velo-runtime'))
    } catch {}
  }
})

/** What `runc spec` writes (not a terminal), with the shared rootfs; change it with the patch function. */
export function defaultConfig(): any {
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: {uid: 0, gid: 0},
      args: ['sh'],
      env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'TERM=xterm'],
      cwd: '/',
      capabilities: Object.fromEntries(['bounding', 'effective', 'permitted', 'ambient'].map((k) => [k, ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE']])),
      rlimits: [{type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024}],
      noNewPrivileges: true,
    },
    root: {path: busyboxRootfs(), readonly: true},
    hostname: 'oci',
    mounts: [
      {destination: '/proc', type: 'proc', source: 'proc'},
      {destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k']},
      {destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5']},
      {destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k']},
      {destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev']},
      {destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro']},
      {destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro']},
    ],
    linux: {
      resources: {devices: [{allow: false, access: 'rwm'}]},
      namespaces: [{type: 'pid'}, {type: 'network'}, {type: 'ipc'}, {type: 'uts'}, {type: 'mount'}],
      maskedPaths: ['/proc/acpi', '/proc/asound', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list', '/proc/timer_stats', '/proc/sched_debug', '/sys/firmware', '/proc/scsi'],
      readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
  }
}

export interface Bundle {
  dir: string
  /** a fresh --root for this bundle's runtime state */
  root: string
  config: any
}

let seq = 0
/** Call inside a describe(): makes bundles (config = defaultConfig() changed by patch); every container a test
 * made is deleted (--force) and every bundle dir removed after the test, whatever happened. */
export function bundles(): (runtime: string, patch?: (c: any) => void) => Bundle & {id: string; rt: (args: string[], o?: SpawnSyncOptions) => RtResult} {
  const made: {runtime: string; root: string; id: string; dir: string}[] = []
  afterEach(() => {
    for (const b of made.splice(0)) {
      spawnSync(b.runtime, ['--root', b.root, 'delete', '--force', b.id], {stdio: 'ignore'})
      fs.rmSync(b.dir, {recursive: true, force: true})
      fs.rmSync(b.root, {recursive: true, force: true})
    }
  })
  return (runtime, patch) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'velo-oci-bundle-'))
    const root = path.join(dir, 'state')
    const config = defaultConfig()
    patch?.(config)
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config, null, 2))
    const id = `t${process.pid}-${++seq}`
    made.push({runtime, root, id, dir})
    return {dir, root, config, id, rt: (args, o) => rt(runtime, root, args, o)}
  }
}

export interface RtResult {
  status: number
  stdout: string
  stderr: string
}

/** Run a runtime verb with a --root. */
export function rt(runtime: string, root: string, args: string[], o: SpawnSyncOptions = {}): RtResult {
  const r = spawnSync(runtime, ['--root', root, ...args], {encoding: 'utf8', timeout: 60_000, ...o})
  if (r.error) throw r.error
  return {status: r.status ?? 128 + 9, stdout: String(r.stdout), stderr: String(r.stderr)}
}

/** `run` (create + start + wait, as `runc run`): the container's exit code and what it printed. */
export function runBundle(runtime: string, b: Bundle & {id: string}, o: SpawnSyncOptions = {}): RtResult {
  return rt(runtime, b.root, ['run', '--bundle', b.dir, b.id], {stdio: ['ignore', 'pipe', 'pipe'], ...o})
}

/** Run a command in a fresh container of each runtime: {velo, runc} results, for side-by-side checks. */
export function both(make: ReturnType<typeof bundles>, patch: (c: any) => void): Record<'velo' | 'runc', RtResult> {
  const out: any = {}
  for (const name of ['velo', 'runc'] as const) {
    const b = make(RUNTIMES[name], patch)
    out[name] = runBundle(RUNTIMES[name], b)
  }
  return out
}

/** A shell script as the container's process. */
export const shArgs = (script: string) => (c: any) => {
  c.process.args = ['sh', '-c', script]
}

/** Start a long-lived process in the background and return a killer (for tests that need a detached runner). */
export function background(cmd: string, args: string[]): {stop: () => void} {
  const p = spawn(cmd, args, {stdio: 'ignore', detached: true})
  return {stop: () => p.pid && process.kill(-p.pid, 'SIGKILL')}
}

/** Every cgroup dir named id in any hierarchy, up to 4 levels down (the default parents differ per runtime). */
export function cgroupDirsNamed(id: string): string[] {
  const out: string[] = []
  const walk = (d: string, depth: number) => {
    let ents: fs.Dirent[]
    try {
      ents = fs.readdirSync(d, {withFileTypes: true})
    } catch {
      return
    }
    for (const e of ents) {
      if (!e.isDirectory()) continue
      const p = path.join(d, e.name)
      if (e.name === id) out.push(p)
      else if (depth < 4) walk(p, depth + 1)
    }
  }
  for (const h of fs.readdirSync('/sys/fs/cgroup')) walk(path.join('/sys/fs/cgroup', h), 1)
  return out
}

export function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
}

/** Poll fn every 10 ms until it holds, or fail naming what was awaited. */
export function waitFor(what: string, fn: () => boolean, ms = 10_000): void {
  const end = Date.now() + ms
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    sleepMs(10)
  }
}
