import {spawnSync} from 'node:child_process'
import * as fs from 'node:fs'
import {type ErrorCode, PERMISSION_SUGGESTION, VeloError} from '../lib/errors'
import {isRoot} from '../lib/home'
import {callerEnv, optionalNativeBin} from '../lib/native'

/**
 * A restore in place, in native/ingest/velo-converge: its first pass compares the data dir with the snapshot's
 * layers (file contents known from the volume's fingerprint index, never read) and writes a plan of only what
 * differs; its second (`--apply`, converge-apply.c) carries it out — removals, copies of the store's objects, links,
 * symlinks, then owners, modes, times and xattrs (directories deepest first). A plan is applied once; planning again
 * after a kill midway converges on the same tree: the caller keeps a marker until it is done and runs the whole
 * restore again if it finds one.
 */
/** velo-converge, or undefined when not built: the volume restores by a full checkout and a swap */
export const convergeTool = (): string | undefined => optionalNativeBin('velo-converge')

export interface ConvergeResult {
  /** paths removed, created or replaced, and paths whose metadata alone was set */
  removed: number
  written: number
  metaOnly: number
}

/** index: the volume's fingerprint index ('' for none); indexOut: where the index of the result goes; plan: where
 * the plan is kept between the passes (removed after); beforeChanges: called with the store objects the plan copies
 * that are not there as plain files (cold ones, src/store/cold.ts), after planning and before the first change */
export function convergeToLayer(home: string, dir: string, layers: string[], index: string, indexOut: string, plan: string, beforeChanges?: (objects: string[]) => void): ConvergeResult {
  try {
    const planned = converge([home, layers.join(','), dir, index, indexOut, plan])
    beforeChanges?.([...new Set(planned.split('\0').filter(Boolean))])
    const [removed, written, metaOnly] = converge(['--apply', dir, plan, ...(isRoot() ? [] : ['--no-chown'])]).trim().split(' ').map(Number)
    return {removed, written, metaOnly}
  } finally {
    fs.rmSync(plan, {force: true})
  }
}

/** velo-converge's exit statuses (native/ingest/converge.h): what kind of failure, without reading its message */
const CONVERGE_EXIT: Record<number, {code: ErrorCode; suggestion: string}> = {
  2: {code: 'INTEGRITY', suggestion: 'run velo fsck; the snapshot cannot be restored whole'},
  3: {code: 'NO_SPACE', suggestion: "free space on the volume's filesystem (or raise its --size), then restore again"},
  4: {code: 'PERMISSION_DENIED', suggestion: PERMISSION_SUGGESTION},
}

function converge(args: string[]): string {
  const r = spawnSync(convergeTool()!, args, {stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 2 ** 31, encoding: 'utf8', env: callerEnv()})
  if (r.error) throw new VeloError('NATIVE', `cannot run velo-converge: ${r.error.message}`)
  if (r.status === 0) return r.stdout
  const msg = `restore: ${r.stderr.trim().replace(/^velo-converge: /, '') || `velo-converge exited ${r.status ?? r.signal}`}`
  const kind = r.status !== null ? CONVERGE_EXIT[r.status] : undefined
  if (kind) throw new VeloError(kind.code, msg, {suggestion: kind.suggestion})
  throw new VeloError('NATIVE', msg)
}
