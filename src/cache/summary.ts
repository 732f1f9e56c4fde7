import * as fs from 'node:fs'
import * as path from 'node:path'
import {CacheEvent, Journal, RestoreEvent} from './journal'

/**
 * What the job's cache calls did, from its journal only. Time saved is shown for a hit only when the entry it
 * restored carries a measured cold run (the work between a missed restore and the save of that key, in the job
 * that saved it), as BuildBuddy and Turborepo report saved time against the original duration: cold run −
 * restore time. Otherwise it is null ("not measured"), never an estimate.
 */
export interface SummaryRow {
  action: 'restore' | 'save'
  key: string
  matchedKey?: string
  result: 'hit' | 'miss' | 'saved'
  source?: 'local' | 'registry'
  files: number | null
  /** restore: bytes of objects the store already had (not downloaded); null for a miss or a save */
  bytesNotDownloaded: number | null
  bytesFetched: number | null
  seconds: number
  coldSeconds: number | null
  timeSavedSeconds: number | null
}

export interface Summary {
  job: string
  rows: SummaryRow[]
  totals: {
    restores: number
    hits: number
    misses: number
    saves: number
    filesReused: number
    bytesNotDownloaded: number
    bytesFetched: number
    /** the sum over hits whose cold run was measured; null when none was */
    timeSavedSeconds: number | null
    hitsMeasured: number
  }
}

function row(e: CacheEvent): SummaryRow {
  if (e.type === 'save')
    return {action: 'save', key: e.key, result: 'saved', files: e.files, bytesNotDownloaded: null, bytesFetched: null, seconds: e.seconds, coldSeconds: e.coldSeconds ?? null, timeSavedSeconds: null}
  const r = e as RestoreEvent
  // a fallback hit restored another key's entry: the job still did part of the work, so nothing is claimed
  const saved = r.hit && !r.matchedKey && r.coldSeconds !== undefined ? r.coldSeconds - r.seconds : null
  return {
    action: 'restore',
    key: r.key,
    ...(r.matchedKey ? {matchedKey: r.matchedKey} : {}),
    result: r.hit ? 'hit' : 'miss',
    source: r.source,
    files: r.hit ? r.files ?? null : null,
    bytesNotDownloaded: r.hit ? r.bytesReused ?? null : null,
    bytesFetched: r.hit ? r.bytesFetched ?? null : null,
    seconds: r.seconds,
    coldSeconds: r.hit ? r.coldSeconds ?? null : null,
    timeSavedSeconds: saved,
  }
}

export function summarize(home: string, job: string): Summary {
  const rows = new Journal(home, job).events().map(row)
  const hits = rows.filter((r) => r.result === 'hit')
  const measured = hits.filter((r) => r.timeSavedSeconds !== null)
  return {
    job,
    rows,
    totals: {
      restores: rows.filter((r) => r.action === 'restore').length,
      hits: hits.length,
      misses: rows.filter((r) => r.result === 'miss').length,
      saves: rows.filter((r) => r.action === 'save').length,
      filesReused: hits.reduce((a, r) => a + (r.files ?? 0), 0),
      bytesNotDownloaded: hits.reduce((a, r) => a + (r.bytesNotDownloaded ?? 0), 0),
      bytesFetched: hits.reduce((a, r) => a + (r.bytesFetched ?? 0), 0),
      timeSavedSeconds: measured.length ? measured.reduce((a, r) => a + r.timeSavedSeconds!, 0) : null,
      hitsMeasured: measured.length,
    },
  }
}

/** Every job's journal in the store, added up (`velo metrics`): restores by "result/source", saves, bytes. */
export function cacheTotals(home: string): {restores: Record<string, number>; saves: number; bytesReused: number; bytesFetched: number} {
  const out = {restores: {} as Record<string, number>, saves: 0, bytesReused: 0, bytesFetched: 0}
  let jobs: string[] = []
  try {
    jobs = fs.readdirSync(path.join(home, 'cache-journal'))
  } catch {}
  for (const job of jobs.sort()) {
    const s = summarize(home, job)
    for (const r of s.rows) {
      if (r.action !== 'restore') continue
      const k = `${r.result === 'hit' && r.matchedKey ? 'fallback' : r.result}/${r.source ?? 'local'}`
      out.restores[k] = (out.restores[k] ?? 0) + 1
    }
    out.saves += s.totals.saves
    out.bytesReused += s.totals.bytesNotDownloaded
    out.bytesFetched += s.totals.bytesFetched
  }
  return out
}
