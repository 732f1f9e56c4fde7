import {spawn, spawnSync, ChildProcess} from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

/**
 * A private dockerd for one test file: own data-root, exec-root, pidfile and socket in a temp dir, no bridge,
 * no iptables (this machine has no registry and must not touch the host network). `stop()` kills it (and the
 * containerd it spawned), unmounts anything left under its dirs and removes them — call it in afterAll.
 */
export interface Dockerd {
  dir: string
  /** the cgroup parent every container of this daemon lives under (removed by stop()) */
  cgroupParent: string
  socket: string
  host: string
  docker(args: string[], opts?: {input?: Buffer | string; encoding?: 'buffer'}): {status: number; stdout: string; stderr: string; raw: Buffer}
  stop(): Promise<void>
}

export interface DockerdOptions {
  /** extra OCI runtimes by name (daemon.json "runtimes"); runc stays the default */
  runtimes?: Record<string, string>
}

export async function startDockerd(opts: DockerdOptions = {}): Promise<Dockerd> {
  // A short path: unix socket paths are limited to 108 bytes.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vd-'))
  const socket = path.join(dir, 'd.sock')
  const host = `unix://${socket}`
  // Our own daemon.json, so the host's /etc/docker/daemon.json is never read.
  const runtimes = Object.fromEntries(Object.entries(opts.runtimes ?? {}).map(([name, p]) => [name, {path: p}]))
  fs.writeFileSync(path.join(dir, 'daemon.json'), JSON.stringify({runtimes}))
  // A cgroup parent of our own instead of the shared /docker, so stop() can remove exactly what this daemon made.
  const cgroupParent = `velo-${path.basename(dir)}`
  const log = fs.openSync(path.join(dir, 'dockerd.log'), 'a')
  const proc: ChildProcess = spawn(
    'dockerd',
    [
      `--config-file=${path.join(dir, 'daemon.json')}`,
      `--cgroup-parent=/${cgroupParent}`,
      '--bridge=none',
      '--iptables=false',
      '--ip6tables=false',
      '--ip-masq=false',
      '--userland-proxy=false',
      `--data-root=${path.join(dir, 'data')}`,
      `--exec-root=${path.join(dir, 'exec')}`,
      `--pidfile=${path.join(dir, 'dockerd.pid')}`,
      `--host=${host}`,
      '--storage-driver=overlay2',
      '--log-level=warn',
    ],
    {stdio: ['ignore', log, log], detached: false},
  )
  fs.closeSync(log)
  let exited = false
  proc.on('exit', () => (exited = true))
  const docker: Dockerd['docker'] = (args, opts = {}) => {
    const r = spawnSync('docker', ['--host', host, ...args], {input: opts.input, maxBuffer: 1 << 30, env: {...process.env, DOCKER_CONFIG: path.join(dir, 'cli')}})
    const raw = r.stdout ?? Buffer.alloc(0)
    return {status: r.status ?? 137, stdout: raw.toString(), stderr: String(r.stderr ?? ''), raw}
  }
  const stop = async () => {
    if (!exited && proc.pid) {
      proc.kill('SIGTERM')
      for (let i = 0; i < 100 && !exited; i++) await new Promise((r) => setTimeout(r, 100))
      if (!exited) proc.kill('SIGKILL')
      for (let i = 0; i < 50 && !exited; i++) await new Promise((r) => setTimeout(r, 100))
    }
    // containerd started by dockerd (its pidfile lives under exec-root); it normally exits with dockerd.
    const cpid = path.join(dir, 'exec', 'containerd', 'containerd.pid')
    try {
      const pid = Number(fs.readFileSync(cpid, 'utf8').trim())
      if (pid > 0) {
        try {
          process.kill(pid, 'SIGKILL')
        } catch {}
      }
    } catch {}
    // Shims (containerd-shim-runc-v2 -address <dir>/...) outlive a daemon that was killed.
    killProcessesMentioning(dir)
    // Anything still mounted under our dirs (overlay mounts of containers, netns bind mounts) goes first.
    const mounts = fs
      .readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[4])
      .filter((m) => m && m.startsWith(dir))
      .sort((a, b) => b.length - a.length)
    for (const m of mounts) spawnSync('umount', ['-l', m])
    fs.rmSync(dir, {recursive: true, force: true})
    removeCgroupTree(cgroupParent)
  }
  try {
    for (let i = 0; ; i++) {
      if (exited) throw new Error(`dockerd exited early:\n${fs.readFileSync(path.join(dir, 'dockerd.log'), 'utf8').slice(-3000)}`)
      if (fs.existsSync(socket) && docker(['version', '--format', '{{.Server.Version}}']).status === 0) break
      if (i > 300) throw new Error(`dockerd did not come up in 30 s:\n${fs.readFileSync(path.join(dir, 'dockerd.log'), 'utf8').slice(-3000)}`)
      await new Promise((r) => setTimeout(r, 100))
    }
  } catch (err) {
    await stop()
    throw err
  }
  return {dir, cgroupParent, socket, host, docker, stop}
}

/** SIGKILL every process whose command line mentions DIR (a temp dir of ours: shims, conmon, daemons). */
export function killProcessesMentioning(dir: string): void {
  for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    if (Number(pid) === process.pid) continue
    let cmd: string
    try {
      cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8')
    } catch {
      continue
    }
    if (cmd.split('\0').some((a) => a.includes(dir))) {
      try {
        process.kill(Number(pid), 'SIGKILL')
      } catch {}
    }
  }
}

/**
 * Kill every process left in cgroup NAME (top-level, in each v1 hierarchy and the v2 tree) and remove its
 * directories, deepest first. The runtimes create the parent dirs of a container's cgroupsPath and never remove
 * them; a container whose engine died may still have processes there.
 */
export function removeCgroupTree(name: string): void {
  const roots = fs.existsSync('/sys/fs/cgroup') ? fs.readdirSync('/sys/fs/cgroup').map((c) => path.join('/sys/fs/cgroup', c, name)) : []
  const dirs: string[] = []
  const walk = (d: string) => {
    let ents: fs.Dirent[]
    try {
      ents = fs.readdirSync(d, {withFileTypes: true})
    } catch {
      return
    }
    for (const e of ents) if (e.isDirectory()) walk(path.join(d, e.name))
    dirs.push(d)
  }
  for (const r of roots) walk(r)
  // A paused container's processes cannot take SIGKILL until thawed.
  for (const d of dirs) {
    if (!d.startsWith('/sys/fs/cgroup/freezer/')) continue
    try {
      fs.writeFileSync(path.join(d, 'freezer.state'), 'THAWED')
    } catch {}
  }
  for (let round = 0; round < 50; round++) {
    let left = 0
    for (const d of dirs) {
      try {
        for (const pid of fs.readFileSync(path.join(d, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
          left++
          try {
            process.kill(Number(pid), 'SIGKILL')
          } catch {}
        }
      } catch {}
    }
    if (!left) break
    spawnSync('sleep', ['0.1'])
  }
  for (const d of dirs) {
    try {
      fs.rmdirSync(d)
    } catch {}
  }
}
