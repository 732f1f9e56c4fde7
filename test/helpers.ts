import {spawnSync, SpawnSyncOptions} from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import {afterEach} from 'vitest'

export const ROOT = path.resolve(__dirname, '..')
/** The CLI as users run it: bin/velo (the native front-end for the hottest calls, the Node CLI for the rest). */
export const VELO = path.join(ROOT, 'bin', 'velo')

export interface RunResult {
  status: number
  stdout: string
  stderr: string
}

/** Run the real CLI against a store. */
export function velo(home: string, args: string[], opts: SpawnSyncOptions = {}): RunResult {
  const r = spawnSync(VELO, args, {
    encoding: 'utf8',
    maxBuffer: 256 << 20,
    ...opts,
    env: {...process.env, VELO_HOME: home, ...(opts.env ?? {})},
  })
  if (r.error) throw r.error
  return {status: r.status ?? 128 + 9, stdout: String(r.stdout), stderr: String(r.stderr)}
}

/** Run the CLI with --json and parse stdout; throws with stderr when the exit code is not 0. */
export function veloJson<T = any>(home: string, args: string[], opts: SpawnSyncOptions = {}): T {
  const r = velo(home, [...args, '--json'], opts)
  if (r.status !== 0) throw new Error(`velo ${args.join(' ')} exited ${r.status}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`)
  return JSON.parse(r.stdout)
}

/** A temp dir removed after the test, whatever happened (register with afterEach/afterAll). */
export function tmpDir(prefix = 'velo-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix))
}

export function rmrf(p: string): void {
  fs.rmSync(p, {recursive: true, force: true})
}

export function sh(cmd: string, opts: SpawnSyncOptions = {}): RunResult {
  const r = spawnSync('bash', ['-c', cmd], {encoding: 'utf8', maxBuffer: 256 << 20, ...opts})
  return {status: r.status ?? 137, stdout: String(r.stdout), stderr: String(r.stderr)}
}

/** Call inside a describe(): returns a maker of temp dirs that are all removed after each test. */
export function tmpDirs(prefix = 'velo-test-'): () => string {
  const dirs: string[] = []
  afterEach(() => dirs.splice(0).forEach(rmrf))
  return () => {
    const d = tmpDir(prefix)
    dirs.push(d)
    return d
  }
}
