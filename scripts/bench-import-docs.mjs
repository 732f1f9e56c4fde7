#!/usr/bin/env node
// Reads the result tables already recorded in docs/benchmarks.md (| what | velo | peer | ratio | target | status |)
// into the JSON shape the bench scripts write (bench/lib.mjs writeResults), marked source: "docs/benchmarks.md".
// Nothing is measured here: every number is parsed from a table row as it stands in the docs.
// Usage: node scripts/bench-import-docs.mjs [--docs FILE] [--out DIR]   (default: bench/results)
import * as fs from 'node:fs'
import * as path from 'node:path'

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..')

// "2.715 s", "699.9 ms", "4.75 GB/s", "18.4 ms ± 0.8", "cp -a 2.088 s" (name before the number)
const VALUE = /^(.*?)\s*(-?\d+(?:\.\d+)?)\s*(µs|ms|s|GB\/s|MB\/s|MB|GB|KiB|MiB)(?:\s*±\s*[\d.]+)?\s*$/

// ms → s without binary noise (19.1 ms is 0.0191 s, not 0.019100000000000002)
const ms = (x) => Number((x / 1000).toPrecision(12))

export function parseValue(cell) {
  const m = VALUE.exec(cell.trim())
  if (!m) return null
  let value = Number(m[2])
  let unit = m[3]
  if (unit === 'ms') (value = ms(value)), (unit = 's') // times in seconds, as the bench scripts write them
  else if (unit === 'µs') (value = ms(value / 1000)), (unit = 's')
  return {name: m[1].trim(), value, unit}
}

const cells = (line) => line.trim().replace(/^\|/, '').replace(/\|$/, '').split('|').map((c) => c.trim())
const slug = (s) => s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 48)

// no date in the heading: the nearest "YYYY-MM-DD" in the prose just above the table (its "Measured ..." line)
function tableDate(lines, i, section) {
  if (section.date) return {date: section.date, dateFrom: section.dateFrom}
  for (let j = i - 1; j >= 0 && !/^#/.test(lines[j]); j--) {
    const d = /(\d{4}-\d{2}-\d{2})/.exec(lines[j])
    if (d && !/^\|/.test(lines[j])) return {date: d[1], dateFrom: 'text above the table'}
  }
  return {date: null, dateFrom: null}
}

/**
 * | what | run 1 (...) | run 2 (...) | target | | with cells "17.8 vs 69.3 ms = **0.26×**": one run per run column. The
 * peer is named by the row ("...: velo-runtime vs runc") or else the section ("OCI runtime (velo-runtime vs runc)").
 * Cells of another form ("2.18×" alone: no values) are left out.
 */
function multiRunTable(lines, i, head, section) {
  const runCols = head.map((h, k) => (k > 0 && /^run \d+/.test(h) ? k : -1)).filter((k) => k > 0)
  const tcol = head.indexOf('target')
  if (!runCols.length || tcol < 0) return null
  const {date, dateFrom} = tableDate(lines, i, section)
  const byCol = new Map(runCols.map((k) => [k, []]))
  let j = i + 2
  for (; j < lines.length && /^\|/.test(lines[j]); j++) {
    const c = cells(lines[j])
    const peerName = (/\bvs ([\w.-]+)\s*$/.exec(c[0].replace(/`/g, '')) || /\bvs ([\w.-]+)/.exec(section.title) || [])[1]
    const t = /^(≤|≥)\s*([\d.]+)/.exec(c[tcol] || '')
    for (const k of runCols) {
      const m = /^([\d.]+) vs ([\d.]+) (ms|s) = \**([\d.]+)×/.exec(c[k] || '')
      if (!m || !peerName) continue
      const sec = (x) => (m[3] === 'ms' ? ms(x) : x)
      const ratio = Number(m[4])
      const target = t ? {better: t[1] === '≤' ? 'lower' : 'higher', value: Number(t[2])} : null
      byCol.get(k).push({
        what: c[0],
        velo: {value: sec(Number(m[1])), unit: 's'},
        peer: {name: peerName, value: sec(Number(m[2])), unit: 's'},
        ratio,
        target,
        // the recorded ratio against the recorded target (the table's status column covers all runs at once)
        met: target ? (target.better === 'lower' ? ratio <= target.value : ratio >= target.value) : null,
      })
    }
  }
  const runs = runCols
    .filter((k) => byCol.get(k).length)
    .map((k) => ({kind: 'bench', bench: slug(section.title), title: `${section.title}: ${head[k]}`, date, dateFrom, source: 'docs/benchmarks.md', line: i + 1, rows: byCol.get(k)}))
  return {runs, end: j}
}

/** All result tables of a benchmarks.md text, one run per table (per run column in a table of runs). */
export function importDocs(text) {
  const lines = text.split('\n')
  const runs = []
  let section = null // {title, date, dateFrom}
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]
    const h = /^(#{2,3})\s+(.*)$/.exec(line)
    if (h) {
      if (h[1] === '##') {
        const d = /(\d{4}-\d{2}-\d{2})/.exec(h[2])
        section = {title: h[2].trim(), date: d ? d[1] : null, dateFrom: d ? 'heading' : null, sub: null}
      } else if (section) section.sub = h[2].trim()
      continue
    }
    if (!section || !/^\|\s*what\s*\|/.test(line)) continue
    const head = cells(line)
    const multi = multiRunTable(lines, i, head, section)
    if (multi) {
      runs.push(...multi.runs)
      i = multi.end - 1
      continue
    }
    // | what | velo | peer | ratio | target | |, or the peer named in the header (| what | velo | real copy | ...)
    if (head.length < 6 || head[1] !== 'velo' || head[3] !== 'ratio' || head[4] !== 'target') continue
    const peerHeader = head[2] === 'peer' ? null : head[2]
    const {date, dateFrom} = tableDate(lines, i, section)
    const rows = []
    let j = i + 2 // skip the | --- | row
    for (; j < lines.length && /^\|/.test(lines[j]); j++) {
      const c = cells(lines[j])
      const bare = (x) => (x || '').replace(/\s*\(CPU [^)]*\)\s*$/, '') // "353.3 ms (CPU 356.2)": the wall time
      const velo = parseValue(bare(c[1]))
      const peer = parseValue(bare(c[2]))
      const ratio = /^([\d.]+)×/.exec(c[3])
      // a row without a target in such a table compares something else (its peer is in the row's text): left out
      if (peerHeader && !/^(≤|≥)/.test(c[4])) continue
      if (peer && peerHeader && !peer.name) peer.name = peerHeader
      if (!velo || !peer || !ratio || !peer.name) continue // not a velo-vs-peer row (e.g. "19.3 vs 19.7 ms")
      const t = /^(≤|≥)\s*([\d.]+)/.exec(c[4])
      const status = (c[5] || '').replace(/\*/g, '').trim()
      rows.push({
        what: c[0],
        velo: {value: velo.value, unit: velo.unit},
        peer: {name: peer.name, value: peer.value, unit: peer.unit},
        ratio: Number(ratio[1]),
        target: t ? {better: t[1] === '≤' ? 'lower' : 'higher', value: Number(t[2])} : null,
        met: /^met/i.test(status) ? true : /^not met/i.test(status) ? false : null,
      })
    }
    if (rows.length)
      runs.push({
        kind: 'bench',
        bench: slug(section.title),
        title: section.sub ? `${section.title}: ${section.sub}` : section.title,
        date,
        dateFrom,
        source: 'docs/benchmarks.md',
        line: i + 1,
        rows,
      })
    i = j - 1
  }
  return runs
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const arg = (k, d) => (process.argv.includes(k) ? process.argv[process.argv.indexOf(k) + 1] : d)
  const docs = arg('--docs', path.join(ROOT, 'docs', 'benchmarks.md'))
  const out = arg('--out', path.join(ROOT, 'bench', 'results'))
  fs.mkdirSync(out, {recursive: true})
  for (const f of fs.readdirSync(out)) if (f.startsWith('docs-')) fs.rmSync(path.join(out, f)) // regenerate, never stale
  const runs = importDocs(fs.readFileSync(docs, 'utf8'))
  const seen = new Map()
  for (const r of runs) {
    const base = `docs-${r.bench.replace(/-?\d{4}-\d{2}-\d{2}$/, '')}${r.date ? `-${r.date}` : ''}`
    const n = (seen.get(base) || 0) + 1
    seen.set(base, n)
    const file = path.join(out, `${base}${n > 1 ? `-${n}` : ''}.json`)
    fs.writeFileSync(file, JSON.stringify(r, null, 2) + '\n')
    console.log(`${path.relative(ROOT, file)}: ${r.rows.length} rows (line ${r.line}, date ${r.date ?? 'unknown'})`)
  }
}
