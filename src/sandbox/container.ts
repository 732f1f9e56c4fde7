import {spawn, spawnSync} from 'node:child_process'
import {VeloError} from '../lib/errors'
import {nativeBin} from '../lib/native'
import type {Limits} from './cgroup'

/**
 * A sandbox's container steps, done once in C whichever front door a call came in by: `velo __sandbox` of the
 * native binary (native/cli/sandbox_internal.c) turns the tenant's state.json into an OCI bundle and drives
 * velo-runtime (create, start, exec, kill, delete). Node does what needs Node first (the default image, farms,
 * FUSE mounts, profiles, the name claim and state file, user names) and hands over here.
 */
function internal(verb: string, home: string, args: string[], stdio: 'pipe' | 'inherit' = 'pipe') {
  return spawnSync(nativeBin('velo'), ['__sandbox', verb, '--home', home, ...args], {stdio: stdio === 'pipe' ? ['ignore', 'pipe', 'pipe'] : 'inherit', encoding: 'utf8'})
}

/** native/cli/rtcall.h SB_PERM_SUGGESTION */
const PERM_SUGGESTION = 'only the owner of a store can drive its sandboxes: use a store of your own (--home DIR or VELO_HOME); without root, see docs/sandbox.md (Rootless velo)'

function failure(what: string, r: ReturnType<typeof internal>): VeloError {
  const msg = String(r.stderr ?? '').trim() || (r.error ? r.error.message : `exit ${r.status}`)
  // what the host cannot do, or a permission problem found before the start (native/cli/rtcall.h):
  // "UNSUPPORTED: message\nsuggestion: text", "PERMISSION_DENIED: ..."
  const u = /^(UNSUPPORTED|PERMISSION_DENIED|NOT_FOUND|BUSY): ([^\n]*)(?:\nsuggestion: ([^]*))?$/.exec(msg)
  if (u) return new VeloError(u[1] as 'UNSUPPORTED' | 'PERMISSION_DENIED' | 'NOT_FOUND' | 'BUSY', `${what}: ${u[2]}`, {suggestion: u[3]})
  const perm = /Operation not permitted|Permission denied/.test(msg)
  return new VeloError(perm ? 'PERMISSION_DENIED' : 'NATIVE', `${what}: ${msg}`, {suggestion: perm ? PERM_SUGGESTION : undefined})
}

/** What the boot decided for the tenant: without root, only the limits the host lets velo apply, the cgroups it
 * has (maybe none) and always a user namespace (native/cli/rtcall.c rootless_limits). */
export interface BootDecision {
  limits: Limits
  cgroups: string[]
  userns: boolean
}

/** Boot the sandbox NAME (its state.json written): velo-runtime create + start; its init's pid and start time. */
export function containerBoot(home: string, name: string, o: {transient?: boolean} = {}): {pid: number; pidStart: string} & BootDecision {
  // transient: for `sandbox cp` of a stopped sandbox (native/cli/rtcall.h): no main command, no network, no events
  const r = internal('boot', home, o.transient ? [name, '--transient'] : [name])
  if (r.status !== 0) throw failure('cannot start sandbox', r)
  // warnings (rootless: the limits this host does not let velo apply) reach the user as they would from C
  if (r.stderr) process.stderr.write(r.stderr)
  const m = /^(\d+) (\d+)\n(\{.*\})$/.exec(String(r.stdout).trim())
  if (!m) throw new VeloError('NATIVE', `velo __sandbox boot printed ${JSON.stringify(r.stdout)}`)
  return {pid: Number(m[1]), pidStart: m[2], ...(JSON.parse(m[3]) as BootDecision)}
}

/** Signal the sandbox's init and wait up to timeoutMs for it to exit. */
export function containerKill(home: string, name: string, signal: number, timeoutMs: number): 'exited' | 'timeout' | 'gone' {
  const r = internal('kill', home, [name, String(signal), String(timeoutMs)])
  if (r.status === 0) return 'exited'
  if (r.status === 2) return 'timeout'
  if (r.status === 3) return 'gone'
  throw failure("cannot signal the sandbox's init", r)
}

/** velo-runtime pause / resume (its cgroup frozen or thawed; tenants/NAME/paused kept in step by the native side):
 * 'done', or 'already' when it was paused (running) already. */
export function containerFreeze(home: string, name: string, frozen: boolean): 'done' | 'already' {
  const r = internal(frozen ? 'pause' : 'resume', home, [name])
  if (r.status === 0) return 'done'
  if (r.status === 4) return 'already'
  throw failure(`cannot ${frozen ? 'pause' : 'unpause'} sandbox ${name}`, r)
}

/** velo-runtime delete --force: every process, the cgroups and the runtime's record of the sandbox. */
export function containerDelete(home: string, name: string): void {
  const r = internal('delete', home, [name])
  if (r.status !== 0) throw failure(`cannot remove sandbox ${name}`, r)
}

/** Remove tenants/REL (a tenant dir moved aside, a stopped tenant's work dir): without root this needs the tenant's user namespace (what it
 * made as its other users is owned by ids of the user's range), which the native side sets up. */
export function containerPurge(home: string, rel: string): void {
  const r = internal('purge', home, [rel])
  if (r.status !== 0) throw failure(`cannot remove ${rel}`, r)
}

/** A project quota of `bytes` on volumes/NAME/data (native/cli/disk.c, as a tenant's --disk). */
export function volumeQuota(home: string, name: string, bytes: number): void {
  const r = internal('volume-quota', home, [name, String(bytes)])
  if (r.status !== 0) throw failure(`cannot limit volume ${name}`, r)
}

export interface ContainerExec {
  uid: number
  gid: number
  userHome?: string
  workdir?: string
  env: string[]
  argv: string[]
  tty: boolean
}

/** Run a command in the sandbox with stdio passed through (velo-runtime relays a terminal); its exit code. */
export function containerExec(home: string, name: string, x: ContainerExec): Promise<number> {
  const args = ['__sandbox', 'exec', '--home', home, '--uid', String(x.uid), '--gid', String(x.gid)]
  if (x.userHome !== undefined) args.push('--user-home', x.userHome)
  if (x.workdir !== undefined) args.push('--workdir', x.workdir)
  if (x.tty) args.push('--tty')
  for (const kv of x.env) args.push('--env', kv)
  args.push(name, '--', ...x.argv)
  return new Promise((resolve, reject) => {
    const child = spawn(nativeBin('velo'), args, {stdio: 'inherit'})
    // The runtime forwards signals to the workload; velo itself must outlive it to pass the exit code back.
    // Terminal signals (^C, ^\\) reach it directly (same process group): velo only ignores them; signals sent to
    // velo alone (kill PID) are passed on.
    const fwd = (sig: NodeJS.Signals) => () => {
      try {
        child.kill(sig)
      } catch {}
    }
    const handlers: Array<[NodeJS.Signals, () => void]> = [
      ...(['SIGTERM', 'SIGHUP', 'SIGUSR1', 'SIGUSR2'] as NodeJS.Signals[]).map((s): [NodeJS.Signals, () => void] => [s, fwd(s)]),
      ['SIGINT', () => {}],
      ['SIGQUIT', () => {}],
    ]
    for (const [s, h] of handlers) process.on(s, h)
    child.on('error', (err) => reject(new VeloError('NATIVE', `cannot run velo: ${err.message}`)))
    child.on('exit', (code, signal) => {
      for (const [s, h] of handlers) process.off(s, h)
      resolve(code ?? 128 + (signal ? require('node:os').constants.signals[signal] ?? 9 : 9))
    })
  })
}
