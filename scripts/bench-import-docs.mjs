#!/usr/bin/env node
// Reads the result tables already recorded in docs/benchmarks.md (| what | velo | peer | ratio | target | status |)
// into the JSON shape the bench scripts write (bench/lib.mjs writeResults), marked source: "docs/benchmarks.md".
// Nothing is measured here: every number is parsed from a table row as it stands in the docs.
// Usage: node scripts/bench-import-docs.mjs [--docs FILE] [--out DIR]   (default: bench/results)
import * as fs from 'node:fs'
import * as path from 'node:path'

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..')

// "2.715 s", "699.9 ms", "4.75 GB/s", "18.4 ms ± 0.8", "cp -a 2.088 s" (name before the number)
const VALUE = /^(.*?)\s*(-?\d+(?:\.\d+)?)\s*(ms|s|GB\/s|MB\/s|MB|GB|KiB|MiB)(?:\s*±\s*[\d.]+)?\s*$/

export function parseValue(cell) {
  const m = VALUE.exec(cell.trim())
  if (!m) return null
  let value = Number(m[2])
  let unit = m[3]
  if (unit === 'ms') (value /= 1000), (unit = 's') // times in seconds, as the bench scripts write them
  return {name: m[1].trim(), value, unit}
}

const cells = (line) => line.trim().replace(/^\|/, '').replace(/\|$/, '').split('|').map((c) => c.trim())
const slug = (s) => s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 48)

/** All result tables of a benchmarks.md text, one run per table. */
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
    // | what | velo | peer | ratio | target | |, or the peer named in the header (| what | velo | real copy | ...)
    if (head.length < 6 || head[1] !== 'velo' || head[3] !== 'ratio' || head[4] !== 'target') continue
    const peerHeader = head[2] === 'peer' ? null : head[2]
    // no date in the heading: the nearest "YYYY-MM-DD" in the prose just above the table (its "Measured ..." line)
    let date = section.date
    let dateFrom = section.dateFrom
    if (!date) {
      for (let j = i - 1; j >= 0 && !/^#/.test(lines[j]); j--) {
        const d = /(\d{4}-\d{2}-\d{2})/.exec(lines[j])
        if (d && !/^\|/.test(lines[j])) {
          date = d[1]
          dateFrom = 'text above the table'
          break
        }
      }
    }
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
