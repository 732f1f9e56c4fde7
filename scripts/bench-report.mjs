#!/usr/bin/env node
// `npm run bench:report`: bench/results/*.json → bench/report/index.html (one self-contained page, Vega's runtime
// inlined, opens offline) and docs/img/bench-*.svg (the same charts rendered in Node by Vega's headless
// View.toSVG(), embedded in docs/benchmarks.md). Charts are Vega-Lite specs compiled to Vega here; the page only
// carries the Vega runtime and the compiled specs with their data inline (no loader, no URL).
// Usage: node scripts/bench-report.mjs [--results DIR] [--out DIR] [--svg-dir DIR]
import * as fs from 'node:fs'
import * as path from 'node:path'
import {fileURLToPath} from 'node:url'
import * as vega from 'vega'
import * as vl from 'vega-lite'

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..')

/** Reads every result file: bench runs (kind "bench", rows) and stress runs (buckets). Others are skipped. */
export function loadResults(dir) {
  const runs = []
  const stress = []
  const skipped = []
  if (!fs.existsSync(dir)) return {runs, stress, skipped}
  for (const f of fs.readdirSync(dir).filter((f) => f.endsWith('.json')).sort()) {
    let j
    try {
      j = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'))
    } catch {
      skipped.push(f)
      continue
    }
    if (j && Array.isArray(j.rows) && j.rows.length) runs.push({...j, file: f})
    else if (j && Array.isArray(j.buckets) && j.buckets.length) stress.push({...j, file: f})
    else skipped.push(f)
  }
  runs.sort((a, b) => String(a.date).localeCompare(String(b.date)) || a.file.localeCompare(b.file))
  return {runs, stress, skipped}
}

const slug = (s) => s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 60)
const short = (s, n = 70) => (s.length > n ? s.slice(0, n - 1) + '…' : s).replace(/`/g, '')
const num = (x) => String(Number(x.toPrecision(4)))
// times are stored in seconds; charted in ms
const shown = (v) => (v.unit === 's' ? {value: v.value * 1000, unit: 'ms'} : {value: v.value, unit: v.unit})

/** One chart per bench run: velo vs the peer per row (one x scale per row: units differ), and ratio vs target. */
function runChart(run) {
  const bars = []
  const ratios = []
  run.rows.forEach((r, i) => {
    const what = `${i + 1}. ${short(r.what)}`
    const v = shown(r.velo)
    const p = shown(r.peer)
    bars.push({what, side: 'velo', value: v.value, unit: v.unit, label: `${num(v.value)} ${v.unit}`})
    bars.push({what, side: short(r.peer.name, 30), value: p.value, unit: p.unit, label: `${num(p.value)} ${p.unit}`})
    ratios.push({
      what,
      ratio: r.ratio,
      target: r.target ? r.target.value : null,
      better: r.target ? r.target.better : null,
      met: r.met === true ? 'met' : r.met === false ? 'not met' : 'no target',
    })
  })
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {text: `${run.title}`, subtitle: `${run.date ?? 'date unknown'} · source: ${run.source}${run.source === 'docs/benchmarks.md' ? ` line ${run.line}` : ''}`},
    vconcat: [
      {
        data: {values: bars},
        facet: {row: {field: 'what', type: 'nominal', header: {labelAngle: 0, labelAlign: 'left', labelLimit: 420, title: null}, sort: null}},
        spec: {
          width: 360,
          height: {step: 14},
          layer: [
            {mark: 'bar', encoding: {y: {field: 'side', type: 'nominal', title: null, sort: null}, x: {field: 'value', type: 'quantitative', title: null}, color: {condition: {test: "datum.side === 'velo'", value: '#1f77b4'}, value: '#9aa5b1'}}},
            {mark: {type: 'text', align: 'left', dx: 3, fontSize: 10}, encoding: {y: {field: 'side', type: 'nominal', sort: null}, x: {field: 'value', type: 'quantitative'}, text: {field: 'label'}}},
          ],
        },
        resolve: {scale: {x: 'independent', y: 'independent'}},
      },
      {
        data: {values: ratios},
        title: 'velo / peer (bar) and target (tick)',
        width: 360,
        height: {step: 18},
        layer: [
          {mark: 'bar', encoding: {y: {field: 'what', type: 'nominal', title: null, sort: null, axis: {labelLimit: 420}}, x: {field: 'ratio', type: 'quantitative', title: 'ratio (×)'}, color: {field: 'met', type: 'nominal', scale: {domain: ['met', 'not met', 'no target'], range: ['#2ca02c', '#d62728', '#9aa5b1']}, title: 'target'}}},
          {mark: {type: 'tick', thickness: 3, color: 'black'}, transform: [{filter: 'datum.target != null'}], encoding: {y: {field: 'what', type: 'nominal', sort: null}, x: {field: 'target', type: 'quantitative'}}},
        ],
      },
    ],
  }
}

/** Bars of velo against its peer per row, one panel per run (the FUSE reads and the page-cache comparison). */
function sideBySide(values, {title, subtitle, unit}) {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {text: title, subtitle},
    data: {values},
    facet: {row: {field: 'run', type: 'nominal', title: null, header: {labelAngle: 0, labelAlign: 'left'}}},
    spec: {
      width: 420,
      height: {step: 14},
      mark: 'bar',
      encoding: {
        y: {field: 'what', type: 'nominal', title: null, sort: null},
        yOffset: {field: 'side', type: 'nominal'},
        x: {field: 'value', type: 'quantitative', title: unit},
        color: {field: 'side', type: 'nominal', title: null},
      },
    },
  }
}

const runName = (run) => `${run.date ?? '?'} (${run.source === 'docs/benchmarks.md' ? `docs line ${run.line}` : run.file})`

/** Sequential reads through a FUSE mount against the disk with its page cache warm (bench/fuse.mjs), across runs. */
function fuseReadsChart(runs) {
  const values = []
  for (const run of runs)
    for (const r of run.rows)
      if (r.velo.unit === 'GB/s' && /cache/i.test(r.peer.name)) {
        const case_ = /passthrough\)/i.test(r.what) ? 'FUSE passthrough' : /first read/i.test(r.what) ? 'daemon, first read' : /again/i.test(r.what) ? 'daemon, read again (mount page cache)' : short(r.what, 40)
        values.push({run: runName(run), what: case_, side: 'velo mount', value: r.velo.value})
        values.push({run: runName(run), what: case_, side: r.peer.name, value: r.peer.value})
      }
  if (!values.length) return null
  return sideBySide(values, {title: 'FUSE: sequential read through the mount vs the disk, page cache warm', subtitle: 'GB/s, higher is better', unit: 'GB/s'})
}

/** The page-cache comparison with Docker (bench/pagecache.mjs): what the host caches of files two images share. */
function pageCacheChart(runs) {
  const values = []
  for (const run of runs)
    for (const r of run.rows)
      if (r.velo.unit === 'MiB' && /page cache/i.test(r.what)) {
        const what = /fincore/i.test(r.what) ? 'shared file, every copy (fincore)' : /Cached/.test(r.what) ? 'host Cached growth' : short(r.what, 40)
        values.push({run: runName(run), what, side: 'velo', value: r.velo.value})
        values.push({run: runName(run), what, side: r.peer.name, value: r.peer.value})
      }
  if (!values.length) return null
  return sideBySide(values, {title: 'Page cache: tenants of two images that share their files (different layers)', subtitle: 'MiB the host caches, lower is better', unit: 'MiB'})
}

/** The 1,000-tenant growth curves: create / rm p50 and p99 per bucket of tenants, one line per stress run (and per
 * peer runtime, when the run had one: `--peer runc`). */
function growthChart(stress) {
  const values = []
  for (const s of stress)
    for (const [who, buckets] of [['', s.buckets], [`${s.peer?.runtime} `, s.peer?.buckets ?? []]])
      for (const b of buckets) {
        const upTo = Number(String(b.tenants).split('-').pop())
        for (const [k, label] of [['createP50', 'create p50'], ['createP99', 'create p99'], ['rmP50', 'rm p50'], ['rmP99', 'rm p99']])
          if (typeof b[k] === 'number') values.push({tenants: upTo, series: `${who}${label}`, ms: b[k], run: `${s.date ?? s.file}`})
      }
  if (!values.length) return null
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    // the runs are named in the legend (one dash pattern each); a title listing them all grew wider than the chart
    title: {text: `Growth: create and rm per bucket of tenants (${stress.length} run${stress.length === 1 ? '' : 's'} of ${[...new Set(stress.map((s) => s.tenants))].join(', ')} tenants)`, subtitle: 'whole CLI call, ms'},
    data: {values},
    width: 520,
    height: 260,
    mark: {type: 'line', point: true},
    encoding: {
      x: {field: 'tenants', type: 'quantitative', title: 'tenants created so far (bucket end)'},
      y: {field: 'ms', type: 'quantitative', title: 'ms'},
      color: {field: 'series', type: 'nominal', title: null},
      strokeDash: {field: 'run', type: 'nominal', title: 'run'},
    },
  }
}

/** Every chart of a results dir: [{id, title, spec (Vega-Lite)}], and notes for what is absent. */
export function charts({runs, stress}) {
  const out = []
  const notes = []
  for (const run of runs) out.push({id: `bench-${slug(run.file.replace(/\.json$/, ''))}`, title: `${run.title} (${run.date ?? 'date unknown'})`, spec: runChart(run)})
  const g = growthChart(stress)
  if (g) out.push({id: 'bench-growth-1000', title: 'Growth with the tenant count', spec: g})
  else notes.push('No stress results (stress/sandbox-1000.mjs writes them to bench/results/sandbox-1000-*.json): the 1,000-tenant growth curves are left out until a run records them.')
  const pc = pageCacheChart(runs)
  if (pc) out.push({id: 'bench-page-cache', title: 'Page cache against Docker', spec: pc})
  else notes.push('No page-cache rows (bench/pagecache.mjs): the page-cache comparison with Docker is left out.')
  const fr = fuseReadsChart(runs)
  if (fr) out.push({id: 'bench-fuse-reads', title: 'FUSE reads', spec: fr})
  else notes.push('No sequential-read rows against the page-cache-warm disk (bench/fuse.mjs): the FUSE read chart is left out.')
  // ids are file names of the SVGs: make them unique
  const seen = new Map()
  for (const c of out) {
    const n = (seen.get(c.id) || 0) + 1
    seen.set(c.id, n)
    if (n > 1) c.id += `-${n}`
  }
  return {charts: out, notes}
}

export async function toSVG(vlSpec) {
  const view = new vega.View(vega.parse(vl.compile(vlSpec, {logger: quiet}).spec), {renderer: 'none'})
  try {
    return await view.toSVG()
  } finally {
    view.finalize()
  }
}

// Vega-Lite warns that the per-row x scales of a facet share a field name (intended: one scale per row)
const quiet = vega.logger(vega.Error)

const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;'})[c])
// inside <script>: no "</script" can end the element early
const scriptSafe = (s) => s.replace(/<\/(script)/gi, '<\\/$1').replace(/<!--/g, '<\\!--')

export function html({charts: cs, notes}, {runs, stress}) {
  const vegaJs = fs.readFileSync(path.join(path.dirname(fileURLToPath(import.meta.resolve('vega'))), 'vega.min.js'), 'utf8')
  const specs = cs.map((c) => ({id: c.id, spec: vl.compile(c.spec, {logger: quiet}).spec}))
  const sources = [...new Set(runs.map((r) => r.source))].join(', ') || 'none'
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; img-src data:">
<title>velo benchmarks</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
.chart { margin: 1.5em 0 2.5em; }
.note { color: #8a5a00; }
</style>
</head>
<body>
<h1>velo benchmarks</h1>
<p>${runs.length} bench runs, ${stress.length} stress runs (sources: ${esc(sources)}). Generated ${esc(new Date().toISOString())} by <code>npm run bench:report</code>.
Runs imported from docs/benchmarks.md carry its numbers as recorded there; nothing on this page is estimated.</p>
${notes.map((n) => `<p class="note">${esc(n)}</p>`).join('\n')}
${cs.map((c) => `<section><h2>${esc(c.title)}</h2><div class="chart" id="${esc(c.id)}" data-drawn="no"></div></section>`).join('\n')}
<script>${scriptSafe(vegaJs)}</script>
<script>
const SPECS = ${JSON.stringify(specs).replace(/</g, '\\u003c')};
(async () => {
  for (const {id, spec} of SPECS) {
    const el = document.getElementById(id);
    try {
      const view = new vega.View(vega.parse(spec), {renderer: 'svg', container: el, hover: true});
      await view.runAsync();
      // data marks only (bars, ticks, lines, points), not axes, legends or titles
      el.dataset.drawn = String(el.querySelectorAll('svg .role-mark:is(.mark-rect, .mark-line, .mark-symbol) > path').length);
    } catch (e) {
      el.dataset.drawn = 'error';
      el.textContent = 'chart failed: ' + e;
    }
  }
  document.body.dataset.done = 'yes';
})();
</script>
</body>
</html>
`
}

export async function buildReport({results, out, svgDir}) {
  const data = loadResults(results)
  const built = charts(data)
  fs.mkdirSync(out, {recursive: true})
  const page = path.join(out, 'index.html')
  fs.writeFileSync(page, html(built, data))
  const svgs = []
  if (svgDir) {
    fs.mkdirSync(svgDir, {recursive: true})
    for (const f of fs.readdirSync(svgDir)) if (/^bench-.*\.svg$/.test(f)) fs.rmSync(path.join(svgDir, f)) // none stale
    for (const c of built.charts) {
      const file = path.join(svgDir, `${c.id}.svg`)
      fs.writeFileSync(file, await toSVG(c.spec))
      svgs.push(file)
    }
  }
  return {page, svgs, charts: built.charts.map((c) => c.id), notes: built.notes, skipped: data.skipped}
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const arg = (k, d) => (process.argv.includes(k) ? process.argv[process.argv.indexOf(k) + 1] : d)
  const r = await buildReport({
    results: arg('--results', path.join(ROOT, 'bench', 'results')),
    out: arg('--out', path.join(ROOT, 'bench', 'report')),
    svgDir: arg('--svg-dir', path.join(ROOT, 'docs', 'img')),
  })
  console.log(`${path.relative(process.cwd(), r.page)}: ${r.charts.length} charts`)
  for (const f of r.svgs) console.log(`  ${path.relative(process.cwd(), f)}`)
  for (const n of r.notes) console.log(`  note: ${n}`)
  if (r.skipped.length) console.log(`  skipped (not a result file): ${r.skipped.join(', ')}`)
}
