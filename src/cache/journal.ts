import * as fs from 'node:fs'
import * as path from 'node:path'
import {createHash} from 'node:crypto'
import {fromSystemError} from '../lib/errors'

/**
 * What one CI job's cache calls did, kept in the store: `$VELO_HOME/cache-journal/<job>/` —
 *   `events.jsonl`     one JSON line per restore (hit or miss) and save, appended (O_APPEND: whole lines)
 *   `marks/<tag>.json` the start mark a missed restore leaves: {key, at}; the save of that key after it
 *                      measures the cold run (the work between the miss and the save) and removes the mark
 * The job is `--job`, else $VELO_CACHE_JOB, else the CI's own run id (GitHub Actions: run id, attempt, job;
 * GitLab: CI_JOB_ID), else "local". `velo cache summary` reads the job's events; nothing is estimated.
 */
export interface RestoreEvent {
  type: 'restore'
  at: string
  key: string
  /** the key actually restored (differs from key on a fallback-prefix hit) */
  matchedKey?: string
  hit: boolean
  source: 'local' | 'registry'
  dirs: string[]
  /** files written into the DIRs / objects and bytes the restore needed */
  files?: number
  bytes?: number
  objects?: number
  /** objects (and their bytes) already in the store: not downloaded */
  objectsReused?: number
  bytesReused?: number
  /** objects fetched from the registry, their bytes, and the bytes on the wire */
  objectsFetched?: number
  bytesFetched?: number
  bytesReceived?: number
  seconds: number
  /** the cold run this cache entry replaces, as measured when it was saved (absent: not measured) */
  coldSeconds?: number
}

export interface SaveEvent {
  type: 'save'
  at: string
  key: string
  dirs: string[]
  files: number
  bytes: number
  newObjects: number
  newBytes: number
  pushed?: {ref: string; bytesSent: number}
  seconds: number
  /** measured: from the missed restore of the same key in this job to the start of this save */
  coldSeconds?: number
}

export type CacheEvent = RestoreEvent | SaveEvent

const SAFE_JOB = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,100}$/

export function jobId(flag?: string): string {
  const env = process.env
  const raw =
    flag ||
    env.VELO_CACHE_JOB ||
    (env.GITHUB_RUN_ID ? `gh-${env.GITHUB_RUN_ID}-${env.GITHUB_RUN_ATTEMPT ?? '1'}-${env.GITHUB_JOB ?? ''}` : undefined) ||
    (env.CI_JOB_ID ? `gl-${env.CI_JOB_ID}` : undefined) ||
    'local'
  return SAFE_JOB.test(raw) ? raw : 'j-' + createHash('sha256').update(raw).digest('hex').slice(0, 32)
}

export class Journal {
  readonly dir: string
  constructor(home: string, readonly job: string) {
    this.dir = path.join(home, 'cache-journal', job)
  }

  private ensure(): void {
    try {
      fs.mkdirSync(path.join(this.dir, 'marks'), {recursive: true, mode: 0o700})
    } catch (err) {
      throw fromSystemError(err, `cannot create the cache journal ${this.dir}`)
    }
  }

  append(e: CacheEvent): void {
    this.ensure()
    try {
      fs.appendFileSync(path.join(this.dir, 'events.jsonl'), JSON.stringify(e) + '\n', {mode: 0o600})
    } catch (err) {
      throw fromSystemError(err, `cannot write the cache journal ${this.dir}`)
    }
  }

  events(): CacheEvent[] {
    let text: string
    try {
      text = fs.readFileSync(path.join(this.dir, 'events.jsonl'), 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
      throw fromSystemError(err, `cannot read the cache journal ${this.dir}`)
    }
    const out: CacheEvent[] = []
    for (const line of text.split('\n')) {
      if (!line) continue
      try {
        out.push(JSON.parse(line))
      } catch {
        // a line cut by a crash: skipped, never guessed at
      }
    }
    return out
  }

  private markFile(tag: string): string {
    return path.join(this.dir, 'marks', `${tag}.json`)
  }

  /** A missed restore: the cold run of this key starts now. */
  mark(tag: string, key: string, at: Date): void {
    this.ensure()
    const f = this.markFile(tag)
    fs.writeFileSync(f + '.tmp', JSON.stringify({key, at: at.toISOString()}))
    fs.renameSync(f + '.tmp', f)
  }

  /** The start of the cold run of this key in this job, if a restore missed it; the mark is consumed. */
  takeMark(tag: string, key: string): Date | undefined {
    const f = this.markFile(tag)
    try {
      const m = JSON.parse(fs.readFileSync(f, 'utf8'))
      fs.rmSync(f, {force: true})
      if (m?.key !== key || typeof m.at !== 'string') return undefined
      const d = new Date(m.at)
      return Number.isNaN(d.getTime()) ? undefined : d
    } catch {
      return undefined
    }
  }

  clear(): void {
    fs.rmSync(this.dir, {recursive: true, force: true})
  }
}
