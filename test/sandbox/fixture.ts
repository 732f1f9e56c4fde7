import * as fs from 'node:fs'
import * as path from 'node:path'
import {spawn} from 'node:child_process'
import {rmrf, tmpDir, velo, veloJson, VELO, RunResult} from '../helpers'

/** One store per test file, with the built-in default image built on the first create. */
export class SandboxHome {
  readonly home: string
  private readonly created = new Set<string>()

  /** createArgs: added to every `sandbox create` this fixture runs (e.g. ['--backend', 'fuse']); home: the store's
   * dir (default: a new temp dir), removed by cleanup() */
  constructor(readonly createArgs: string[] = [], home?: string) {
    this.home = home ?? tmpDir('velo-sb-')
  }

  create(name: string, extra: string[] = []): any {
    this.created.add(name)
    return veloJson(this.home, ['sandbox', 'create', name, ...this.createArgs, ...extra])
  }

  /** `velo sandbox exec NAME -- sh -c SCRIPT` */
  sh(name: string, script: string, opts: {input?: string; extra?: string[]} = {}): RunResult {
    return velo(this.home, ['sandbox', 'exec', ...(opts.extra ?? []), name, '--', 'sh', '-c', script], {input: opts.input, timeout: 60_000})
  }

  exec(name: string, argv: string[], extra: string[] = []): RunResult {
    return velo(this.home, ['sandbox', 'exec', ...extra, name, '--', ...argv])
  }

  velo(args: string[], opts: {env?: Record<string, string>} = {}): RunResult {
    return velo(this.home, args, opts)
  }

  json(args: string[]): any {
    return veloJson(this.home, args)
  }

  track(name: string): void {
    this.created.add(name)
  }

  /** Async CLI call (for races and concurrent tenants). */
  veloAsync(args: string[]): Promise<RunResult> {
    return new Promise((resolve) => {
      const c = spawn(VELO, [...args], {env: {...process.env, VELO_HOME: this.home}})
      let stdout = ''
      let stderr = ''
      c.stdout.on('data', (d) => (stdout += d))
      c.stderr.on('data', (d) => (stderr += d))
      c.on('close', (code, sig) => resolve({status: code ?? 128 + (sig === 'SIGKILL' ? 9 : 15), stdout, stderr}))
    })
  }

  /** Remove every sandbox (rm -f), then the store; report anything left behind. */
  cleanup(): Leftovers {
    // no tenants dir: no sandbox was ever made here (a run of some of a file's tests); the store still goes
    const made = fs.existsSync(path.join(this.home, 'tenants')) ? fs.readdirSync(path.join(this.home, 'tenants')) : []
    const names = new Set([...this.created, ...made.filter((n) => !n.startsWith('.'))])
    for (const n of names) velo(this.home, ['sandbox', 'rm', '-f', n])
    const left = leftovers(this.home, [...names])
    rmrf(this.home)
    return left
  }
}

export interface Leftovers {
  mounts: string[]
  cgroups: string[]
  tenants: string[]
}

/**
 * The tenant's cgroup dir under one controller (v1; the one dir on v2), computed here from the rule docs/sandbox.md
 * states — velo/NAME.STORE, STORE the store dir's device and inode in hex — not read from velo's state.
 */
export function tenantCgroup(home: string, name: string, ctrl = 'memory'): string {
  const st = fs.statSync(home, {bigint: true})
  const leaf = `${name}.${st.dev.toString(16)}-${st.ino.toString(16)}`
  return fs.existsSync('/sys/fs/cgroup/cgroup.controllers') ? `/sys/fs/cgroup/velo/${leaf}` : `/sys/fs/cgroup/${ctrl}/velo/${leaf}`
}

/** Mounts under the store, cgroups and tenant dirs of the given sandboxes that still exist. */
export function leftovers(home: string, names: string[]): Leftovers {
  const mounts = fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l.includes(home))
  const cgroups: string[] = []
  // any store's cgroup of that name (velo/NAME.STORE), and the name alone as velo named them before
  for (const base of ['/sys/fs/cgroup/memory/velo', '/sys/fs/cgroup/pids/velo', '/sys/fs/cgroup/cpu/velo', '/sys/fs/cgroup/velo']) {
    let dirs: string[] = []
    try {
      dirs = fs.readdirSync(base)
    } catch {}
    for (const n of names) for (const d of dirs) if (d === n || (d.startsWith(`${n}.`) && /^[0-9a-f]+-[0-9a-f]+$/.test(d.slice(n.length + 1)))) cgroups.push(path.join(base, d))
  }
  let tenants: string[] = []
  try {
    tenants = fs.readdirSync(path.join(home, 'tenants'))
  } catch {}
  return {mounts, cgroups, tenants}
}

export const uniq = (p: string) => `${p}-${process.pid}-${Math.random().toString(36).slice(2, 7)}`
