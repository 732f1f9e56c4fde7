import {ChildProcess, spawn, spawnSync} from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {rmrf, tmpDir, VELO} from '../helpers'

/**
 * A private containerd 1.6 (Debian's) with velo's snapshotter as proxy plugin `velo`, and the service itself,
 * all under one temp dir: containerd's root, state and sockets, the velo store. stop() takes everything down
 * (tasks, shims, mounts, processes, the dir) whatever state the test left.
 */
export interface Env {
  dir: string
  home: string
  velo: string // the snapshotter's socket
  address: string // containerd's socket
  ctr(args: string[], opts?: {input?: string}): {status: number; stdout: string; stderr: string}
  ctrOk(args: string[]): string
  startService(): Promise<void>
  /** After the service died hard, containerd's client reconnects with a backoff: until then calls fail "unavailable". */
  reconnected(): Promise<void>
  killService(signal?: NodeJS.Signals): Promise<void>
  service?: ChildProcess
  serviceLog(): string
  stop(): Promise<void>
}

async function waitFor(what: string, ok: () => boolean, log: () => string, tries = 300): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (ok()) return
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`${what} did not come up\n${log()}`)
}

const exited = (p: ChildProcess) => p.exitCode !== null || p.signalCode !== null

export async function startEnv(): Promise<Env> {
  const dir = tmpDir('velo-snap-')
  const home = path.join(dir, 'home')
  const velo = path.join(dir, 'velo.sock')
  const address = path.join(dir, 'c.sock')
  fs.writeFileSync(
    path.join(dir, 'config.toml'),
    `version = 2
root = "${dir}/root"
state = "${dir}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "${address}"
[ttrpc]
  address = "${address}.ttrpc"
[debug]
  address = "${dir}/debug.sock"
[proxy_plugins.velo]
  type = "snapshot"
  address = "${velo}"
`,
  )
  const ctdLog = fs.openSync(path.join(dir, 'containerd.log'), 'a')
  let containerd: ChildProcess | undefined
  const env: Env = {
    dir,
    home,
    velo,
    address,
    ctr(args, opts = {}) {
      const r = spawnSync('ctr', ['--address', address, ...args], {encoding: 'utf8', input: opts.input, maxBuffer: 64 << 20, timeout: 170_000})
      return {status: r.status ?? 137, stdout: String(r.stdout), stderr: String(r.stderr)}
    },
    ctrOk(args) {
      const r = env.ctr(args)
      if (r.status !== 0) throw new Error(`ctr ${args.join(' ')} exited ${r.status}: ${r.stderr}\n${env.serviceLog()}`)
      return r.stdout
    },
    serviceLog: () => (fs.existsSync(path.join(dir, 'velo.log')) ? fs.readFileSync(path.join(dir, 'velo.log'), 'utf8') : ''),
    async startService() {
      const log = fs.openSync(path.join(dir, 'velo.log'), 'a')
      env.service = spawn(VELO, ['snapshotter', 'serve', '--address', velo], {env: {...process.env, VELO_HOME: home}, stdio: ['ignore', log, log]})
      fs.closeSync(log)
      const p = env.service
      await waitFor('velo snapshotter', () => exited(p) || /serving/.test(env.serviceLog()), env.serviceLog)
      if (exited(p)) throw new Error(`velo snapshotter exited: ${env.serviceLog()}`)
    },
    async reconnected() {
      let last = ''
      for (let i = 0; i < 100; i++) {
        const r = env.ctr(['snapshots', '--snapshotter', 'velo', 'ls'])
        if (r.status === 0) return
        last = r.stderr
        if (!/unavailable/.test(r.stderr)) break
        await new Promise((res) => setTimeout(res, 200))
      }
      throw new Error(`containerd did not reach the restarted service: ${last}\n${env.serviceLog()}`)
    },
    async killService(signal = 'SIGTERM') {
      const p = env.service
      if (!p || exited(p)) return
      const gone = new Promise((r) => p.once('exit', r))
      p.kill(signal)
      await gone
    },
    async stop() {
      try {
        // tasks and containers first (their shims and rootfs mounts), then the engines
        if (containerd && !exited(containerd)) {
          for (const ns of ['default']) {
            for (const id of env.ctr(['-n', ns, 'tasks', 'ls', '-q']).stdout.split('\n').filter(Boolean)) env.ctr(['-n', ns, 'tasks', 'kill', '-s', 'SIGKILL', id]), env.ctr(['-n', ns, 'tasks', 'rm', '-f', id])
            for (const id of env.ctr(['-n', ns, 'containers', 'ls', '-q']).stdout.split('\n').filter(Boolean)) env.ctr(['-n', ns, 'containers', 'rm', id])
          }
          const gone = new Promise((r) => containerd!.once('exit', r))
          containerd.kill('SIGTERM')
          await Promise.race([gone, new Promise((r) => setTimeout(r, 10_000))])
          if (!exited(containerd)) containerd.kill('SIGKILL')
        }
      } finally {
        await env.killService('SIGTERM').catch(() => {})
        if (env.service && !exited(env.service)) env.service.kill('SIGKILL')
        // shims of this containerd (their command line names its address), then any mount left under the dir
        const ps = spawnSync('pgrep', ['-f', `-address ${address}`], {encoding: 'utf8'})
        for (const pid of String(ps.stdout).split('\n').filter(Boolean)) spawnSync('kill', ['-9', pid])
        const mounts = fs
          .readFileSync('/proc/self/mounts', 'utf8')
          .split('\n')
          .map((l) => l.split(' ')[1])
          .filter((m) => m && m.startsWith(dir))
          .reverse()
        for (const m of mounts) spawnSync('umount', ['-l', m])
        fs.closeSync(ctdLog)
        rmrf(dir)
      }
    },
  }
  try {
    await env.startService()
    containerd = spawn('containerd', ['--config', path.join(dir, 'config.toml')], {stdio: ['ignore', ctdLog, ctdLog]})
    const c = containerd
    await waitFor('containerd', () => exited(c) || env.ctr(['version']).status === 0, () => fs.readFileSync(path.join(dir, 'containerd.log'), 'utf8'))
    if (exited(c)) throw new Error(`containerd exited: ${fs.readFileSync(path.join(dir, 'containerd.log'), 'utf8')}`)
  } catch (err) {
    await env.stop()
    throw err
  }
  return env
}

/** What `ctr snapshots ls` prints: KEY PARENT KIND rows, sorted. */
export function lsRows(out: string): string[] {
  return out
    .trim()
    .split('\n')
    .slice(1)
    .map((l) => l.trim().split(/\s+/).join(' '))
    .sort()
}
