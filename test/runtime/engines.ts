import {spawn, spawnSync, SpawnSyncOptions} from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import * as crypto from 'node:crypto'
import * as pty from 'node-pty'
import {Dockerd, killProcessesMentioning, removeCgroupTree, startDockerd} from '../image/dockerd'
import {busyboxRootfs, RUNC, VELO_RUNTIME} from './fixture'

/**
 * Real container engines (docker, containerd, podman) driving an OCI runtime given as a parameter, so the same
 * scenario runs with runc (the reference) and with velo-runtime. Each engine gets private dirs in a temp dir, its
 * own cgroup parent and no network; stop() kills what it started, unmounts, removes cgroups and dirs.
 */

/** The runtimes each engine scenario runs with. */
export const ENGINE_RUNTIMES: {name: 'runc' | 'velo'; path: string}[] = [
  {name: 'runc', path: RUNC},
  {name: 'velo', path: VELO_RUNTIME},
]
/** TEMPORARY (until native/build/velo-runtime exists): velo's rows are skipped when the binary is missing. */

export interface Run {
  status: number
  stdout: string
  stderr: string
}

export function run(cmd: string, args: string[], o: SpawnSyncOptions = {}): Run {
  const r = spawnSync(cmd, args, {encoding: 'utf8', timeout: 120_000, maxBuffer: 64 << 20, ...o})
  // A timeout is a result (status -1, e.g. "the container is still running"), not an exception.
  if (r.error && (r.error as NodeJS.ErrnoException).code !== 'ETIMEDOUT') throw r.error
  if (r.error) return {status: -1, stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? '')}
  return {status: r.status ?? 128 + 9, stdout: String(r.stdout), stderr: String(r.stderr)}
}

export function ok(r: Run, what: string): string {
  if (r.status !== 0) throw new Error(`${what} exited ${r.status}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`)
  return r.stdout
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Unmount everything under DIR (deepest first), then remove it. */
export function unmountAndRemove(dir: string): void {
  const mounts = fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((m) => m && (m === dir || m.startsWith(dir + '/')))
    .sort((a, b) => b.length - a.length)
  for (const m of mounts) spawnSync('umount', ['-l', m])
  fs.rmSync(dir, {recursive: true, force: true})
}

/** The fixture's busybox rootfs as a plain tar (what `docker import` / `podman import` take). */
export function rootfsTar(dir: string): string {
  const out = path.join(dir, 'rootfs.tar')
  ok(run('tar', ['-C', busyboxRootfs(), '--numeric-owner', '-cf', out, '.']), 'tar rootfs')
  return out
}

/**
 * The same rootfs as a one-layer image in `docker save` format (manifest.json + config + layer), made by hand
 * so containerd's file needs no dockerd: `ctr image import` names it after RepoTags.
 */
export function dockerArchive(dir: string, tag: string): string {
  const work = fs.mkdtempSync(path.join(dir, 'img-'))
  const layer = rootfsTar(work)
  fs.renameSync(layer, path.join(work, 'layer.tar'))
  const diffId = 'sha256:' + crypto.createHash('sha256').update(fs.readFileSync(path.join(work, 'layer.tar'))).digest('hex')
  const config = {
    architecture: 'amd64',
    os: 'linux',
    config: {Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['sh']},
    rootfs: {type: 'layers', diff_ids: [diffId]},
  }
  fs.writeFileSync(path.join(work, 'config.json'), JSON.stringify(config))
  fs.writeFileSync(path.join(work, 'manifest.json'), JSON.stringify([{Config: 'config.json', RepoTags: [tag], Layers: ['layer.tar']}]))
  const out = path.join(dir, 'image.tar')
  ok(run('tar', ['-C', work, '-cf', out, 'manifest.json', 'config.json', 'layer.tar']), 'tar image')
  fs.rmSync(work, {recursive: true, force: true})
  return out
}

// ---------------------------------------------------------------------------------------------------------------
// What a container sees, for comparing runtimes under the same engine, image and flags.

/**
 * A script printing what a process sees of its container, in sections. `ps` comes first so pid numbers do not
 * depend on how many commands ran before it. Mounts are reduced to mountpoint, fstype and ro/rw, sorted.
 */
export const VIEW_SCRIPT = [
  'echo "== ps"; ps -o pid,user,args',
  'echo "== mounts"; awk \'{ i = 7; while ($i != "-") i++; split($6, o, ","); print $5, $(i + 1), o[1] }\' /proc/self/mountinfo | sort',
  'echo "== status"; grep -E "^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp|SigBlk|SigIgn):" /proc/self/status',
  'echo "== id"; id',
  'echo "== hostname"; hostname',
  'echo "== cwd"; pwd; umask',
  'echo "== env"; env | sort',
  'echo "== limits"; cat /proc/self/limits',
  'echo "== dev"; stat -c "%n %F %a %u:%g %t:%T" /dev/* | sort',
  'echo "== cgroup"; cat /proc/self/cgroup',
  'echo "== write"; (touch /probe && echo rw) 2>&1 | sed "s/^touch: //"',
].join('; ')

export type View = Record<string, string>

/** Sections of VIEW_SCRIPT's output (and `exit`, the exit code); container ids (64 hex digits, and docker's 12-digit hostnames) become <id>. */
export function parseView(stdout: string, status: number): View {
  const v: View = {exit: String(status)}
  let cur = ''
  for (const line of stdout.split('\n')) {
    const m = /^== (\w+)$/.exec(line)
    if (m) {
      cur = m[1]
      v[cur] = ''
    } else if (cur) v[cur] += line.replace(/[0-9a-f]{64}/g, '<id>').replace(/\b[0-9a-f]{12}\b/g, '<id>') + '\n'
  }
  for (const k of Object.keys(v)) v[k] = v[k].trimEnd()
  // Pid numbers past 1 are not comparable: a Go runtime's init (runc) spends pids of the new namespace on its
  // threads before it execs the command, a C one does not. Pid 1 and the rest of each line are kept.
  if (v.ps) v.ps = v.ps.replace(/^(\s*)(\d+) /gm, (m, sp, pid) => (pid === '1' ? m : `${sp}<pid> `))
  return v
}

/** Per section, the lines only runc saw (-) and only the other runtime saw (+). Empty when both saw the same. */
export function diffViews(runc: View, other: View, otherName: string): string[] {
  const out: string[] = []
  for (const k of [...new Set([...Object.keys(runc), ...Object.keys(other)])]) {
    const a = (runc[k] ?? '<missing>').split('\n')
    const b = (other[k] ?? '<missing>').split('\n')
    if (a.join('\n') === b.join('\n')) continue
    out.push(`[${k}]`)
    for (const l of a) if (!b.includes(l)) out.push(`- runc: ${l}`)
    for (const l of b) if (!a.includes(l)) out.push(`+ ${otherName}: ${l}`)
    if (a.length === b.length && a.every((l) => b.includes(l))) out.push('  (same lines, other order)')
  }
  return out
}

export interface Comparison {
  runc: View
  other: View
  diff: string[]
}

/**
 * Run the same thing (a function of the runtime's name) under runc and under OTHER; both views and their diff.
 * With CACHE, runc's view of KEY is run once per file and reused by the later rows (the other side always runs
 * afresh, so the runc row still compares two real runc runs).
 */
export function compareRuntimes(other: string, view: (runtime: string) => View, cache?: Map<string, View>, key = ''): Comparison {
  let runc = cache?.get(key)
  if (!runc) {
    runc = view('runc')
    cache?.set(key, runc)
  }
  const o = view(other)
  return {runc, other: o, diff: diffViews(runc, o, other)}
}

// ---------------------------------------------------------------------------------------------------------------
// A terminal (node-pty), for `docker run -it` and the like.

export interface PtySession {
  write(s: string): void
  /** resolves with the output so far once RE matches the output written after `from` (default: all of it) */
  waitFor(re: RegExp, timeoutMs?: number, from?: number): Promise<string>
  resize(cols: number, rows: number): void
  output(): string
  exit: Promise<number>
  kill(): void
}

export function ptySpawn(file: string, args: string[], o: {cols: number; rows: number; env?: Record<string, string>}): PtySession {
  const p = pty.spawn(file, args, {name: 'xterm', cols: o.cols, rows: o.rows, cwd: '/', env: {...(process.env as Record<string, string>), ...o.env}})
  let out = ''
  let done = false
  p.onData((d) => (out += d))
  const exit = new Promise<number>((res) =>
    p.onExit(({exitCode}) => {
      done = true
      res(exitCode)
    }),
  )
  return {
    write: (s) => p.write(s),
    async waitFor(re, timeoutMs = 20_000, from = 0) {
      const t0 = Date.now()
      while (!re.test(out.slice(from))) {
        if (Date.now() - t0 > timeoutMs || done) {
          if (re.test(out.slice(from))) break
          throw new Error(`terminal: ${re} not seen${done ? ' (process exited)' : ''}; output:\n${out}`)
        }
        await sleep(20)
      }
      return out
    },
    resize: (c, r) => p.resize(c, r),
    output: () => out,
    exit,
    kill: () => {
      if (!done) p.kill('SIGKILL')
    },
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Docker: a private dockerd (test/image/dockerd.ts) with velo-runtime registered as runtime "velo".

export interface DockerEngine {
  d: Dockerd
  image: string
  docker(args: string[], o?: SpawnSyncOptions): Run
  /** `docker run --rm --runtime R [flags] image cmd...` */
  run(runtime: string, flags: string[], cmd: string[]): Run
  /** what a container sees (VIEW_SCRIPT) under RUNTIME with FLAGS; hostname fixed so runs compare */
  view(runtime: string, flags?: string[]): View
  stop(): Promise<void>
}

export async function startDockerEngine(): Promise<DockerEngine> {
  // runc is dockerd's built-in default (/usr/sbin/runc from PATH); velo-runtime is registered by path.
  const d = await startDockerd({runtimes: {velo: VELO_RUNTIME}})
  const image = 'velo-busybox:1'
  try {
    const tar = rootfsTar(d.dir)
    ok(run('docker', ['--host', d.host, 'import', '--change', 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', tar, image], {env: dockerEnv(d)}), 'docker import')
    fs.rmSync(tar)
  } catch (e) {
    await d.stop()
    throw e
  }
  const docker = (args: string[], o: SpawnSyncOptions = {}) => run('docker', ['--host', d.host, ...args], {env: dockerEnv(d), ...o})
  const runIt = (runtime: string, flags: string[], cmd: string[]) => docker(['run', '--rm', '--network', 'none', '--runtime', runtime, ...flags, image, ...cmd])
  return {
    d,
    image,
    docker,
    run: runIt,
    view(runtime, flags = []) {
      const r = runIt(runtime, ['--hostname', 'view', ...flags], ['sh', '-c', VIEW_SCRIPT])
      return parseView(r.stdout, r.status)
    },
    stop: () => d.stop(),
  }
}

export const dockerEnv = (d: Dockerd) => ({...process.env, DOCKER_CONFIG: path.join(d.dir, 'cli'), DOCKER_HOST: d.host}) as Record<string, string>

// ---------------------------------------------------------------------------------------------------------------
// containerd: a private daemon (own root, state, sockets; no CRI), driven with ctr and the runc v2 shim.

export interface Containerd {
  dir: string
  socket: string
  /** the containerd namespace our containers live in */
  ns: string
  image: string
  /** the cgroup parent of every container we run (removed by stop()) */
  cgroupParent: string
  ctr(args: string[], o?: SpawnSyncOptions): Run
  /** the runtime flags for `ctr run`: the runc v2 shim with BinaryName = RUNTIME and a runtime root of ours */
  runtimeFlags(runtime: string, id: string): string[]
  stop(): Promise<void>
}

export async function startContainerd(): Promise<Containerd> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vc-'))
  const socket = path.join(dir, 'c.sock')
  const cgroupParent = `velo-${path.basename(dir)}`
  const ns = 'velo'
  const toml = [
    'version = 2',
    `root = ${JSON.stringify(path.join(dir, 'root'))}`,
    `state = ${JSON.stringify(path.join(dir, 'state'))}`,
    // CRI would want CNI and its own streaming server; ctr needs none of it.
    'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
    '[grpc]',
    `  address = ${JSON.stringify(socket)}`,
    '[ttrpc]',
    `  address = ${JSON.stringify(socket + '.ttrpc')}`,
    '[debug]',
    '  address = ""',
    '[metrics]',
    '  address = ""',
  ].join('\n')
  fs.writeFileSync(path.join(dir, 'config.toml'), toml + '\n')
  const log = fs.openSync(path.join(dir, 'containerd.log'), 'a')
  const proc = spawn('containerd', ['--config', path.join(dir, 'config.toml'), '--log-level', 'warn'], {stdio: ['ignore', log, log]})
  fs.closeSync(log)
  let exited = false
  proc.on('exit', () => (exited = true))
  const ctr = (args: string[], o: SpawnSyncOptions = {}) => run('ctr', ['--address', socket, '--namespace', ns, ...args], o)
  const stop = async () => {
    // Tasks first: shims are reparented away from containerd and outlive it.
    try {
      for (const line of ctr(['task', 'ls', '-q']).stdout.split('\n').filter(Boolean)) ctr(['task', 'kill', '-s', 'KILL', line])
      await sleep(200)
      for (const line of ctr(['task', 'ls', '-q']).stdout.split('\n').filter(Boolean)) ctr(['task', 'rm', '-f', line])
      for (const line of ctr(['container', 'ls', '-q']).stdout.split('\n').filter(Boolean)) ctr(['container', 'rm', line])
    } catch {}
    if (!exited) {
      proc.kill('SIGTERM')
      for (let i = 0; i < 100 && !exited; i++) await sleep(100)
      if (!exited) proc.kill('SIGKILL')
      for (let i = 0; i < 50 && !exited; i++) await sleep(100)
    }
    removeCgroupTree(cgroupParent)
    killProcessesMentioning(dir)
    unmountAndRemove(dir)
  }
  const image = 'docker.io/library/velo-busybox:1'
  try {
    for (let i = 0; ; i++) {
      if (exited) throw new Error(`containerd exited early:\n${fs.readFileSync(path.join(dir, 'containerd.log'), 'utf8').slice(-3000)}`)
      if (fs.existsSync(socket) && ctr(['version']).status === 0) break
      if (i > 300) throw new Error(`containerd did not come up in 30 s:\n${fs.readFileSync(path.join(dir, 'containerd.log'), 'utf8').slice(-3000)}`)
      await sleep(100)
    }
    const tar = dockerArchive(dir, 'velo-busybox:1')
    ok(ctr(['image', 'import', tar]), 'ctr image import')
    fs.rmSync(tar)
  } catch (e) {
    await stop()
    throw e
  }
  return {
    dir,
    socket,
    ns,
    image,
    cgroupParent,
    ctr,
    runtimeFlags: (runtime, id) => [
      '--runtime',
      'io.containerd.runc.v2',
      '--runc-binary',
      runtime,
      // Without it the shim keeps runtime state in /run/containerd/runc/<ns>, outside our dirs.
      '--runc-root',
      path.join(dir, 'runtime-root', path.basename(runtime)),
      '--cgroup',
      `/${cgroupParent}/${id}`,
    ],
    stop,
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Podman: no daemon; every call gets our root, runroot, tmpdir, network config dir and runtime root.

export interface Podman {
  dir: string
  image: string
  cgroupParent: string
  /** `podman <global flags> --runtime RUNTIME args...` */
  podman(runtime: string, args: string[], o?: SpawnSyncOptions): Run
  /** the flags every `podman run` here takes: no network, our cgroup parent, rlimits this host allows */
  runFlags: string[]
  stop(): Promise<void>
}

export async function startPodman(driver: 'overlay' | 'vfs' = 'overlay'): Promise<Podman> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-'))
  const cgroupParent = `velo-${path.basename(dir)}`
  // podman's image copy keeps a blob-info cache in /var/lib/containers/cache whatever --root says; it is ours
  // to remove only if it was not there before.
  const hadVarLibContainers = fs.existsSync('/var/lib/containers')
  // `podman run --rm` cleans up through conmon's exit command, which loses --runtime-flag: it calls
  // `<runtime> delete --force <id>` with the runtime's default root, and runc makes /run/runc for it.
  const hadRunRunc = fs.existsSync('/run/runc')
  const global = (runtime: string) => [
    '--root',
    path.join(dir, 'root'),
    '--runroot',
    path.join(dir, 'run'),
    '--tmpdir',
    path.join(dir, 'tmp'),
    '--network-config-dir',
    path.join(dir, 'net'),
    // No systemd here (pid 1 is not systemd): cgroupfs, and events to a file under --tmpdir.
    '--cgroup-manager',
    'cgroupfs',
    '--events-backend',
    'file',
    '--storage-driver',
    driver,
    '--runtime',
    runtime,
    // Without it the runtime keeps its state in its default root (/run/runc), outside our dirs.
    '--runtime-flag',
    `root=${path.join(dir, 'runtime-root', path.basename(runtime))}`,
  ]
  const podman = (runtime: string, args: string[], o: SpawnSyncOptions = {}) => run('podman', [...global(runtime), ...args], o)
  const stop = async () => {
    try {
      podman(RUNC, ['rm', '--all', '--force', '--time', '0'])
    } catch {}
    removeCgroupTree(cgroupParent)
    killProcessesMentioning(dir)
    unmountAndRemove(dir)
    if (!hadVarLibContainers) fs.rmSync('/var/lib/containers', {recursive: true, force: true})
    if (!hadRunRunc) {
      try {
        fs.rmdirSync('/run/runc') // only if empty
      } catch {}
    }
  }
  const image = 'localhost/velo-busybox:1'
  try {
    const tar = rootfsTar(dir)
    ok(podman(RUNC, ['import', '--quiet', '--change', 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', tar, image]), 'podman import')
    fs.rmSync(tar)
  } catch (e) {
    await stop()
    throw e
  }
  return {
    dir,
    image,
    cgroupParent,
    podman,
    runFlags: [
      '--network',
      'none',
      '--cgroup-parent',
      `/${cgroupParent}`,
      // podman's defaults (NOFILE 1048576, NPROC 32768) need CAP_SYS_RESOURCE to set, which this host's root
      // lacks: runc itself fails with "error setting rlimits". Lower limits need no privilege.
      '--ulimit',
      'nofile=1024:1024',
      '--ulimit',
      'nproc=4096:4096',
    ],
    stop,
  }
}
