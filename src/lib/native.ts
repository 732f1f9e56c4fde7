import * as fs from 'node:fs'
import * as path from 'node:path'
import {VeloError} from './errors'

let root: string | undefined

/** The package root (where package.json and native/ live), found from this file whether bundled or not. */
export function packageRoot(): string {
  if (root) return root
  let d = __dirname
  for (;;) {
    if (fs.existsSync(path.join(d, 'native', 'Makefile')) && fs.existsSync(path.join(d, 'package.json'))) return (root = d)
    const up = path.dirname(d)
    if (up === d) throw new VeloError('INTERNAL', `cannot find velo's package root from ${__dirname}`)
    d = up
  }
}

const optional = new Map<string, string | undefined>()
/**
 * Path of a native tool that may be missing (an accelerator, or a tool built only when its library is installed):
 * undefined then, and the caller takes its other way or says what is missing. Looked up once per process.
 */
export function optionalNativeBin(name: string): string | undefined {
  if (!optional.has(name)) {
    const p = path.join(packageRoot(), 'native', 'build', name)
    optional.set(name, fs.existsSync(p) ? p : undefined)
  }
  return optional.get(name)
}

/** Path of a native binary built by `make -C native`; a clear error when the build is missing. */
export function nativeBin(name: string): string {
  const p = path.join(packageRoot(), 'native', 'build', name)
  if (!fs.existsSync(p))
    throw new VeloError('NATIVE', `native binary ${name} is not built`, {suggestion: `run: make -C ${path.join(packageRoot(), 'native')}`})
  return p
}

/**
 * The environment for a native helper that works under this process's lock (velo-converge, velo-cold): our pid as
 * VELO_CALLER_PID, by which the helper tells that we died before it could ask to die with us, and exits instead of
 * writing on without the lock (native/common/caller.h).
 */
export function callerEnv(): NodeJS.ProcessEnv {
  return {...process.env, VELO_CALLER_PID: String(process.pid)}
}
