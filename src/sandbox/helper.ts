import {spawn, spawnSync} from 'node:child_process'
import {VeloError} from '../lib/errors'
import {nativeBin} from '../lib/native'

/** Run `velo-helper create` with a plan; returns the sandbox init's pid and start time. */
export function helperCreate(plan: string): {pid: number; pidStart: string} {
  const r = spawnSync(nativeBin('velo-helper'), ['create'], {env: {VELO_PLAN: plan}, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8'})
  if (r.error) throw new VeloError('NATIVE', `cannot run velo-helper: ${r.error.message}`)
  if (r.status !== 0) {
    const msg = String(r.stderr).trim().replace(/^velo-helper: /, '')
    throw new VeloError(/Operation not permitted|Permission denied/.test(msg) ? 'PERMISSION_DENIED' : 'NATIVE', `cannot start sandbox: ${msg || `velo-helper exited ${r.status}`}`, {
      suggestion: /not permitted|denied/.test(msg) ? 'sandboxes need root (namespaces, mounts, cgroups)' : undefined,
    })
  }
  const m = /^(\d+) (\d+)$/.exec(String(r.stdout).trim())
  if (!m) throw new VeloError('NATIVE', `velo-helper create printed ${JSON.stringify(r.stdout)}`)
  return {pid: Number(m[1]), pidStart: m[2]}
}

/** Signal a sandbox's init through a pidfd and wait up to timeoutMs for it to exit. */
export function helperKill(pid: number, pidStart: string, signal: number, timeoutMs: number): 'exited' | 'timeout' | 'gone' {
  const r = spawnSync(nativeBin('velo-helper'), ['kill', String(pid), pidStart, String(signal), String(timeoutMs)], {stdio: ['ignore', 'ignore', 'pipe']})
  if (r.status === 0) return 'exited'
  if (r.status === 2) return 'timeout'
  if (r.status === 3) return 'gone'
  const msg = String(r.stderr).trim().replace(/^velo-helper kill: /, '') || `velo-helper kill exited ${r.status}`
  if (/Operation not permitted|Permission denied/.test(msg))
    throw new VeloError('PERMISSION_DENIED', `cannot signal the sandbox's init: ${msg}`, {suggestion: 'sandboxes need root (namespaces, mounts, cgroups)'})
  throw new VeloError('NATIVE', `cannot signal the sandbox's init: ${msg}`)
}

/** Run `velo-helper exec` with stdio passed through; resolves to the exit code (128+N for signal N). */
export function helperExec(plan: string, tty: boolean): Promise<number> {
  const bin = nativeBin('velo-helper')
  if (tty && process.stdin.isTTY) return execPty(bin, plan)
  return new Promise((resolve, reject) => {
    const child = spawn(bin, ['exec'], {env: {VELO_PLAN: plan}, stdio: 'inherit'})
    // The helper forwards signals to the workload; velo itself must outlive it to pass the exit code back.
    // Terminal signals (^C, ^\\) reach the helper directly (same process group): velo only ignores them;
    // signals sent to velo alone (kill PID) are passed on.
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
    child.on('error', (err) => reject(new VeloError('NATIVE', `cannot run velo-helper: ${err.message}`)))
    child.on('exit', (code, signal) => {
      for (const [s, h] of handlers) process.off(s, h)
      resolve(code ?? 128 + (signal ? require('node:os').constants.signals[signal] ?? 9 : 9))
    })
  })
}

async function execPty(bin: string, plan: string): Promise<number> {
  const pty = await import('node-pty')
  const stdin = process.stdin
  const stdout = process.stdout
  const term = pty.spawn(bin, ['exec'], {
    name: process.env.TERM || 'xterm-256color',
    cols: stdout.columns || 80,
    rows: stdout.rows || 24,
    env: {VELO_PLAN: plan},
  })
  return new Promise((resolve) => {
    const onResize = () => term.resize(stdout.columns || 80, stdout.rows || 24)
    stdout.on('resize', onResize)
    stdin.setRawMode?.(true)
    stdin.resume()
    const onData = (d: Buffer) => term.write(d.toString('binary'))
    stdin.on('data', onData)
    term.onData((d) => stdout.write(d))
    term.onExit(({exitCode, signal}) => {
      stdout.off('resize', onResize)
      stdin.off('data', onData)
      stdin.setRawMode?.(false)
      stdin.pause()
      resolve(signal ? 128 + signal : exitCode)
    })
  })
}
