import {Command, Flags, Interfaces} from '@oclif/core'
import {fromUncaught, VeloError} from './errors'
import {dockerArgv, type DockerShape} from './docker-argv'
import {resolveHome} from './home'
import {logJson, logLine, traceId} from './log'

/**
 * Base of every velo command: `--json` (machine output only on stdout; human text and progress on stderr)
 * and `--home` (the store). Errors are rendered once, here: code, message, suggestion, exit code.
 */
export abstract class VeloCommand<T extends typeof Command = typeof Command> extends Command {
  static enableJsonFlag = true
  static baseFlags = {
    home: Flags.string({description: 'store location (default: $VELO_HOME, /var/lib/velo for root, $XDG_DATA_HOME/velo otherwise)', helpGroup: 'GLOBAL'}),
  }

  protected flags!: Interfaces.InferredFlags<(typeof VeloCommand)['baseFlags'] & T['flags']>
  protected args!: Interfaces.InferredArgs<T['args']>

  protected get home(): string {
    return resolveHome((this.flags as {home?: string}).home)
  }

  /** Human-readable line on stderr (never stdout, so `--json` output stays clean). Silent with --json. */
  protected info(msg: string): void {
    if (!this.jsonEnabled()) logLine('info', msg)
  }

  /** A warning on stderr ("velo: warning: ..."), also with --json (it is not data); a JSON line with VELO_LOG=json. */
  protected warning(msg: string): void {
    logLine('warning', `velo: warning: ${msg}`)
  }

  /** Docker's shape: flags end at the first word after NAME (or IMAGE), which starts the command (docker-argv.ts) */
  static dockerShape?: DockerShape

  public async init(): Promise<void> {
    if (logJson()) traceId() // this call's trace id, exported to every process it starts (src/lib/log.ts)
    await super.init()
    const shape = (this.ctor as unknown as {dockerShape?: DockerShape}).dockerShape
    if (shape) this.argv = dockerArgv(this.argv, {...(super.ctor as typeof VeloCommand).baseFlags, ...this.ctor.flags} as never, shape)
    const {args, flags} = await this.parse({
      flags: this.ctor.flags,
      baseFlags: (super.ctor as typeof VeloCommand).baseFlags,
      enableJsonFlag: this.ctor.enableJsonFlag,
      args: this.ctor.args,
      strict: this.ctor.strict,
    })
    this.flags = flags as never
    this.args = args as never
  }

  protected async catch(err: Error & {exitCode?: number; oclif?: {exit?: number}; code?: string}): Promise<unknown> {
    if (err.code === 'EEXIT') throw err // this.exit(n) from a command: not an error to render
    const e = toVeloError(err)
    if (this.jsonEnabled()) {
      process.stdout.write(JSON.stringify(e.toJSON(), null, 2) + '\n')
    } else if (logJson()) {
      logLine('error', e.message, {code: e.code, suggestion: e.suggestion, ...(e.isBug && process.env.VELO_DEBUG ? {stack: String((err as Error).stack)} : {})})
    } else {
      process.stderr.write(`velo: error [${e.code}]: ${e.message}\n`)
      if (e.suggestion) process.stderr.write(`  suggestion: ${e.suggestion}\n`)
      if (e.isBug && process.env.VELO_DEBUG) process.stderr.write(String((err as Error).stack) + '\n')
      if (e.isBug) process.stderr.write('  this is a bug in velo; rerun with VELO_DEBUG=1 for a stack trace\n')
    }
    process.exitCode = e.exitCode
    return this.exit(e.exitCode)
  }
}

export function toVeloError(err: unknown): VeloError {
  if (err instanceof VeloError) return err
  const anyErr = err as {oclif?: {exit?: number}; message?: string; code?: string}
  // oclif's own parse errors (unknown flag, missing arg) are usage errors.
  if (anyErr?.oclif || /Unexpected argument|Missing required|Nonexistent flag|Expected --/.test(anyErr?.message ?? ''))
    return new VeloError('USAGE', anyErr.message ?? 'usage error', {suggestion: 'see --help'})
  return fromUncaught(err)
}

/** Format bytes for humans (base 1024). */
export function fmtBytes(n: number): string {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let i = 0
  while (n >= 1024 && i < u.length - 1) {
    n /= 1024
    i++
  }
  return `${i === 0 ? n : n.toFixed(1)} ${u[i]}`
}
