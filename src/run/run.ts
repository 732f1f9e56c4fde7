import {spawn} from 'node:child_process'
import * as os from 'node:os'
import {assertLoadable} from './elf'
import {prepareExec} from './native'
import {Mode, prepareProjection, projectionEnv, Projection} from './projection'

export interface RunOptions {
  home: string
  image: string
  at?: string
  mode?: Mode
  cmd: string
  args: string[]
}

export interface RunResult {
  projection: Projection
  exitCode: number | null
  signal: NodeJS.Signals | null
}

const FORWARD: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH']

/** `velo run`: project the image, then run CMD with the shim preloaded; signals are forwarded to it. */
export async function runProjected(o: RunOptions): Promise<RunResult> {
  const file = assertLoadable(o.cmd, o.home)
  const projection = prepareProjection(o.home, o.image, {at: o.at, mode: o.mode})
  const env = projectionEnv(o.home, projection)
  prepareExec(o.home, file)
  const child = spawn(file, o.args, {stdio: 'inherit', env, argv0: o.cmd})
  const handlers = FORWARD.map((sig) => {
    const h = () => {
      try {
        child.kill(sig)
      } catch {}
    }
    process.on(sig, h)
    return [sig, h] as const
  })
  try {
    return await new Promise<RunResult>((resolve, reject) => {
      child.on('error', reject)
      child.on('exit', (code, signal) => resolve({projection, exitCode: code, signal}))
    })
  } finally {
    for (const [sig, h] of handlers) process.off(sig, h)
  }
}

/** Exit like the child did: same code, or the same signal (re-raised on ourselves with the default action). */
export function exitLikeChild(r: RunResult): never {
  if (r.signal) {
    process.removeAllListeners(r.signal)
    process.kill(process.pid, r.signal)
    // a signal whose default action does not kill (e.g. SIGWINCH): fall back to the shell convention
    process.exit(128 + (os.constants.signals[r.signal] ?? 0))
  }
  process.exit(r.exitCode ?? 1)
}
