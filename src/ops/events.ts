import * as fs from 'node:fs'
import * as path from 'node:path'
import {VeloError} from '../lib/errors'
import {sinceTime, timeKey} from '../sandbox/workload'

/** One line of $VELO_HOME/events.log (written by native/cli/events.c, its one writer). */
export interface VeloEvent {
  time: string // RFC 3339, ns, UTC
  type: string // sandbox | image | volume | store
  action: string // create start stop die rm | import rm | create rm snapshot restore | gc
  name: string
  attrs: Record<string, string>
}

export interface EventFilter {
  since?: string
  until?: string
  /** KEY=VALUE: type, action, name, or an attribute */
  filters?: string[]
}

const journal = (home: string) => path.join(home, 'events.log')

function parseFilters(list: string[] = []): Array<[string, string]> {
  return list.map((f) => {
    const i = f.indexOf('=')
    if (i <= 0) throw new VeloError('USAGE', `--filter ${JSON.stringify(f)}: expected KEY=VALUE`, {suggestion: 'e.g. --filter type=sandbox --filter action=die --filter name=web'})
    return [f.slice(0, i), f.slice(i + 1)]
  })
}

/** A matcher for the filters: the same key given twice matches either value (as docker events' filters). */
export function matcher(o: EventFilter): (e: VeloEvent) => boolean {
  // RFC 3339 strings of one zone compare in time order once their fractions have the same length (timeKey)
  const since = o.since !== undefined ? timeKey(sinceTime(o.since)) : undefined
  const until = o.until !== undefined ? timeKey(sinceTime(o.until)) : undefined
  const byKey = new Map<string, string[]>()
  for (const [k, v] of parseFilters(o.filters)) byKey.set(k, [...(byKey.get(k) ?? []), v])
  return (e) => {
    if (since !== undefined && timeKey(e.time) < since) return false
    if (until !== undefined && timeKey(e.time) > until) return false
    for (const [k, vs] of byKey) {
      const v = k === 'type' || k === 'action' || k === 'name' ? e[k] : e.attrs?.[k]
      if (!vs.includes(v)) return false
    }
    return true
  }
}

/** Whole lines of text as events (a line that does not parse is skipped: nothing else can be in the journal) */
function parseLines(text: string): VeloEvent[] {
  const out: VeloEvent[] = []
  for (const line of text.split('\n')) {
    if (!line) continue
    try {
      out.push(JSON.parse(line))
    } catch {}
  }
  return out
}

/** The journal's events, oldest first (events.log.1, then events.log), filtered. */
export function readEvents(home: string, o: EventFilter = {}): VeloEvent[] {
  const keep = matcher(o)
  const read = (f: string) => {
    try {
      return fs.readFileSync(f, 'utf8')
    } catch {
      return ''
    }
  }
  return parseLines(read(journal(home) + '.1') + read(journal(home))).filter(keep)
}

/** -f: the events already there (filtered), then new ones as they are appended, across a rotation, until stopped. */
export async function followEvents(home: string, o: EventFilter, out: (e: VeloEvent) => void, stop: Promise<void>): Promise<void> {
  const keep = matcher({...o, until: undefined})
  for (const e of readEvents(home, o)) out(e)
  const f = journal(home)
  let ino = 0
  let pos = 0
  try {
    const st = fs.statSync(f)
    ino = st.ino
    pos = st.size
  } catch {}
  let rest = ''
  let done = false
  stop.then(() => (done = true))
  while (!done) {
    await new Promise((r) => setTimeout(r, 100))
    let st: fs.Stats
    try {
      st = fs.statSync(f)
    } catch {
      continue
    }
    if (st.ino !== ino) {
      // rotated: what was left in the old file is events.log.1's tail, then the new file from its start
      try {
        const old = fs.readFileSync(f + '.1')
        rest += old.subarray(pos).toString('utf8')
      } catch {}
      ino = st.ino
      pos = 0
    }
    if (st.size > pos) {
      const fd = fs.openSync(f, 'r')
      try {
        const buf = Buffer.alloc(st.size - pos)
        fs.readSync(fd, buf, 0, buf.length, pos)
        pos = st.size
        rest += buf.toString('utf8')
      } finally {
        fs.closeSync(fd)
      }
    }
    const cut = rest.lastIndexOf('\n')
    if (cut < 0) continue
    for (const e of parseLines(rest.slice(0, cut))) if (keep(e)) out(e)
    rest = rest.slice(cut + 1)
  }
}
