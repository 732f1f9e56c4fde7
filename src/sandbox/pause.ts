import * as fs from 'node:fs'
import * as path from 'node:path'
import {emitEvent} from '../lib/events'
import {VeloError} from '../lib/errors'
import {procStat, writeFileAtomic} from '../lib/fsutil'
import {onInterrupt} from '../lib/interrupt'
import {StoreLock} from '../lib/lock'
import {containerFreeze} from './container'
import {isRunning, readState, tenantDir} from './state'
import {sleepSync} from '../lib/sleep'

/**
 * Who holds a sandbox paused. The user (`velo sandbox pause`) and velo's own readers of its files (a volume
 * snapshot, a commit) each hold it until they let go, and its cgroup stays frozen while anyone does: a user's
 * unpause during a snapshot cannot let the writer run before the snapshot has read, and a snapshot that ends does
 * not thaw a sandbox the user paused. The holds are tenants/NAME/pause-holds (JSON), changed under
 * tenants/NAME/pause-lock; tenants/NAME/paused is the native side's record that the cgroup is frozen, which the
 * listings of both front doors read. A frozen sandbox with no holds recorded (paused by the runtime's own verb)
 * counts as held by the user.
 */
export type PauseHolder = {by: 'user'} | {by: 'snapshot'; volume: string; pid: number; start: string} | {by: 'commit'; pid: number; start: string}

const HOLDS = 'pause-holds'

/** This process as a holder (its pid and start time: a dead holder is told from a live one that reused its pid). */
export function selfHolder(by: 'commit'): PauseHolder
export function selfHolder(by: 'snapshot', volume: string): PauseHolder
export function selfHolder(by: 'snapshot' | 'commit', volume?: string): PauseHolder {
  const start = procStat(process.pid)?.start ?? ''
  return by === 'snapshot' ? {by, volume: volume!, pid: process.pid, start} : {by, pid: process.pid, start}
}

/** Paused: running with its cgroup frozen (tenants/NAME/paused, written by the native side). */
export function isPaused(home: string, name: string): boolean {
  return fs.existsSync(path.join(tenantDir(home, name), 'paused'))
}

const alive = (h: PauseHolder) => {
  if (h.by === 'user') return true
  const st = procStat(h.pid)
  return !!st && st.start === h.start && st.state !== 'Z' && st.state !== 'X'
}
const same = (a: PauseHolder, b: PauseHolder) => a.by === b.by && (a.by === 'user' || (a.pid === (b as {pid: number}).pid && a.start === (b as {start: string}).start))
const describe = (h: PauseHolder) => (h.by === 'snapshot' ? `a snapshot of volume ${h.volume} (pid ${h.pid})` : h.by === 'commit' ? `a commit (pid ${h.pid})` : 'the user')

function readHolds(home: string, name: string): PauseHolder[] {
  try {
    const v = JSON.parse(fs.readFileSync(path.join(tenantDir(home, name), HOLDS), 'utf8'))
    return Array.isArray(v) ? v.filter((h) => h && (h.by === 'user' || ((h.by === 'snapshot' || h.by === 'commit') && Number.isInteger(h.pid) && typeof h.start === 'string'))) : []
  } catch {
    return [] // none, or damaged: a damaged record holds nothing (the freezer's state is the truth of "paused")
  }
}

function writeHolds(home: string, name: string, holds: PauseHolder[]): void {
  const file = path.join(tenantDir(home, name), HOLDS)
  if (holds.length) writeFileAtomic(file, JSON.stringify(holds) + '\n', 0o600)
  else fs.rmSync(file, {force: true})
}

/** The holds of a sandbox, changed one caller at a time; `fn` gets the recorded holds and what is frozen now. */
function lockHolds(home: string, name: string): StoreLock {
  readState(home, name) // NOT_FOUND before a lock file is made in a dir that is not there
  try {
    return new StoreLock(path.join(tenantDir(home, name), 'pause-lock')).acquire('exclusive')
  } catch (err) {
    // removed since: as readState says it
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new VeloError('NOT_FOUND', `no sandbox named ${JSON.stringify(name)}`)
    throw err
  }
}

function withHolds<T>(home: string, name: string, fn: (holds: PauseHolder[], frozen: boolean) => T): T {
  const lock = lockHolds(home, name)
  try {
    const s = readState(home, name)
    if (!isRunning(s)) throw new VeloError('STATE', `sandbox ${name} is not running`, {suggestion: `start it first: velo sandbox start ${name}`})
    const frozen = isPaused(home, name)
    let holds = readHolds(home, name)
    // frozen with nobody recorded: the user's (the runtime's own pause verb, or a pause before holds were kept)
    if (frozen && !holds.length) holds = [{by: 'user'}]
    return fn(holds, frozen)
  } finally {
    lock.release()
  }
}

/** Add a hold; the first freezes the sandbox. The user holding it twice is Docker's "already paused". */
export function holdPause(home: string, name: string, holder: PauseHolder): void {
  withHolds(home, name, (holds, frozen) => {
    if (holder.by === 'user' && holds.some((h) => h.by === 'user'))
      throw new VeloError('STATE', `sandbox ${name} is already paused`, {suggestion: `unpause it: velo sandbox unpause ${name}`})
    const next = [...holds.filter((h) => alive(h) && !same(h, holder)), holder]
    // the hold first, then the freeze: killed between the two, a dead reader's hold on a running sandbox is let go
    // by the next look at it; the other order would leave it frozen with nobody recorded (read as the user's)
    writeHolds(home, name, next)
    if (!frozen)
      try {
        containerFreeze(home, name, true)
      } catch (err) {
        writeHolds(home, name, holds) // as it was
        throw err
      }
  })
}

/**
 * Let go of a hold; the last one thaws the sandbox. Holds of dead readers (a snapshot or commit killed with SIGKILL)
 * go with it. The user's unpause is refused while a live reader holds it, and is Docker's "not paused" without one.
 */
export function releasePause(home: string, name: string, holder: PauseHolder): void {
  withHolds(home, name, (holds, frozen) => {
    const live = holds.filter((h) => alive(h) && !same(h, holder))
    if (holder.by === 'user') {
      const readers = live.filter((h) => h.by !== 'user')
      if (!holds.some((h) => h.by === 'user')) {
        if (readers.length)
          throw new VeloError('BUSY', `sandbox ${name} is paused by ${readers.map(describe).join(', ')}; it is thawed when that ends`, {suggestion: 'retry when it ends (a snapshot pauses its writers only while it reads)'})
        if (!frozen) throw new VeloError('STATE', `sandbox ${name} is not paused`, {suggestion: 'see its status: velo sandbox ls'})
      }
    }
    // the thaw first, then the record (the reverse of holdPause, for the same reason); a failed thaw keeps the holds
    if (!live.length && frozen) containerFreeze(home, name, false)
    writeHolds(home, name, live)
  })
}

const readerHolds = (home: string, name: string): PauseHolder[] => readHolds(home, name).filter((h) => h.by !== 'user' && alive(h))

/**
 * Run fn (a stop) once no live reader (a snapshot, a commit) holds NAME paused, with the holds locked meanwhile so
 * that none can begin: thawing a writer mid-read would let it write into what is being read. Waits at most
 * `timeoutMs` (a reader stopped with Ctrl-Z holds on), then BUSY naming it.
 */
export function whileNoReaders<T>(home: string, name: string, fn: () => T, timeoutMs = 60_000): T {
  const said = new Set<number>()
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const lock = lockHolds(home, name)
    let readers: PauseHolder[]
    try {
      readers = readerHolds(home, name)
      if (!readers.length) return fn()
    } finally {
      lock.release()
    }
    if (Date.now() >= deadline)
      throw new VeloError('BUSY', `sandbox ${name} is held paused by ${readers.map(describe).join(', ')}`, {suggestion: 'retry when it ends, or end it (a stopped snapshot: fg or kill it)'})
    for (const r of readers)
      if (r.by !== 'user' && !said.has(r.pid)) {
        said.add(r.pid)
        process.stderr.write(`sandbox ${name}: waiting for ${r.by === 'snapshot' ? `the snapshot of volume ${r.volume}` : 'the commit'} (pid ${r.pid}) that holds it paused\n`)
      }
    sleepSync(50)
  }
}

/** Forget every hold (the sandbox stopped or booted: its cgroup is new or gone). */
export function clearPauseHolds(home: string, name: string): void {
  fs.rmSync(path.join(tenantDir(home, name), HOLDS), {force: true})
}

/**
 * `velo sandbox pause NAME` (docker pause): every process of the sandbox frozen (cgroup freezer) until unpause;
 * exec is refused meanwhile, stop thaws it first. Errors as Docker's: not running, already paused / not paused.
 */
export function pauseSandbox(home: string, name: string, paused: boolean): {name: string; paused: boolean} {
  if (paused) holdPause(home, name, {by: 'user'})
  else releasePause(home, name, {by: 'user'})
  emitEvent(home, 'sandbox', paused ? 'pause' : 'unpause', name)
  return {name, paused}
}

/** Let go of `holder`'s hold on NAMES; what could not be thawed, as messages (stopped or removed meanwhile: none). */
export function releaseHolds(home: string, names: string[], holder: PauseHolder): string[] {
  const failed: string[] = []
  for (const t of names)
    try {
      releasePause(home, t, holder)
    } catch (err) {
      const code = (err as VeloError).code
      if (code !== 'STATE' && code !== 'NOT_FOUND') failed.push(`${t}: ${(err as Error).message}`)
    }
  return failed
}

/**
 * Hold NAMES (the running ones) paused while their files are read (a volume snapshot, a commit), and let go however
 * this process ends short of SIGKILL (onInterrupt). Sandboxes the user paused are held too, so that an unpause cannot
 * let them run before the read ends. release() returns what could not be thawed.
 */
export function pauseFor(home: string, names: string[], holder: PauseHolder): {paused: string[]; release: () => string[]} {
  const held: string[] = []
  const off = onInterrupt(() => releaseHolds(home, held.splice(0), holder))
  const release = () => {
    off()
    return releaseHolds(home, held.splice(0), holder)
  }
  try {
    for (const t of names) {
      if (!isRunning(readState(home, t))) continue
      try {
        holdPause(home, t, holder)
      } catch (err) {
        const code = (err as VeloError).code
        if (code === 'STATE' || code === 'NOT_FOUND') continue // stopped or removed since it was listed: nothing to hold
        throw err
      }
      held.push(t)
    }
  } catch (err) {
    release()
    throw err
  }
  return {paused: [...held], release}
}
