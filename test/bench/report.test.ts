import {spawn, spawnSync} from 'node:child_process'
import * as fs from 'node:fs'
import * as http from 'node:http'
import * as net from 'node:net'
import * as os from 'node:os'
import * as path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

// `npm run bench:report` end to end: result files written by bench/lib.mjs's own writer (fixture numbers, in a temp
// dir), a stress file in the shape stress/sandbox-1000.mjs writes, the report built from them, and the page opened
// in headless Chromium (Debian's chromium) with every request to the outside sent to a proxy of the test's own
// that counts them: each chart must have drawn its marks, and the proxy must have seen nothing.
const ROOT = path.resolve(__dirname, '..', '..')
const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => fs.existsSync(p))

let tmp: string
const node = (args: string[], env: Record<string, string> = {}) => {
  const r = spawnSync(process.execPath, args, {cwd: ROOT, encoding: 'utf8', env: {...process.env, ...env}})
  if (r.status !== 0) throw new Error(`node ${args.join(' ')}: ${r.status}\n${r.stderr}`)
  return r.stdout
}

/** A loopback HTTP proxy that answers 502 to everything and records what was asked. */
async function countingProxy() {
  const seen: string[] = []
  const server = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`)
    res.writeHead(502).end()
  })
  server.on('connect', (req, socket: net.Socket) => {
    seen.push(`CONNECT ${req.url}`)
    socket.end('HTTP/1.1 502 Bad Gateway\r\n\r\n')
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {seen, port: (server.address() as net.AddressInfo).port, close: () => new Promise<void>((r) => server.close(() => r()))}
}

/** Headless Chromium, its own process group and profile: the DOM after the page's scripts ran. Killed in finally. */
async function dumpDom(url: string, proxyPort: number): Promise<string> {
  const profile = fs.mkdtempSync(path.join(tmp, 'chromium-profile-'))
  const args = [
    '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-default-apps', '--disable-extensions',
    '--disable-domain-reliability', '--disable-client-side-phishing-detection', '--no-pings',
    '--disable-features=NetworkTimeServiceQuerying,OptimizationHints,MediaRouter,Translate',
    `--user-data-dir=${profile}`, `--proxy-server=http://127.0.0.1:${proxyPort}`, '--virtual-time-budget=20000',
    '--dump-dom', url,
  ]
  const child = spawn(CHROMIUM!, args, {detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: {...process.env, HOME: profile}})
  let out = ''
  let err = ''
  child.stdout.on('data', (d) => (out += d))
  child.stderr.on('data', (d) => (err += d))
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      child.on('error', reject)
      child.on('close', resolve)
    })
    if (code !== 0) throw new Error(`chromium exited ${code}: ${err.slice(-2000)}`)
    return out
  } finally {
    try {
      process.kill(-child.pid!, 'SIGKILL') // whatever of its group is left (zygote, utility processes)
    } catch {}
  }
}

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'velo-bench-report-'))
})
afterAll(() => fs.rmSync(tmp, {recursive: true, force: true}))

describe('bench results', () => {
  it('bench/lib.mjs printRows writes a JSON run with velo, peer, ratio, target and met per row', () => {
    const dir = path.join(tmp, 'lib-results')
    node(
      ['--input-type=module', '-e', `import {printRows, ratioRow} from './bench/lib.mjs'
printRows('Fixture table', [ratioRow('a', {mean: 0.02}, {mean: 0.4}, 'docker', 0.5), ratioRow('b', {mean: 3}, {mean: 2}, 'disk', 0.7, 'higher', 'GB/s')])`],
      {VELO_BENCH_RESULTS: dir},
    )
    const files = fs.readdirSync(dir)
    expect(files).toHaveLength(1)
    expect(files[0]).toMatch(/^\[eval1\]-fixture-table-\d{4}-\d{2}-\d{2}T.*\.json$|^.*-fixture-table-\d{4}-.*\.json$/)
    const run = JSON.parse(fs.readFileSync(path.join(dir, files[0]), 'utf8'))
    expect(run).toMatchObject({kind: 'bench', title: 'Fixture table', source: 'bench run'})
    expect(run.rows).toEqual([
      {what: 'a', velo: {value: 0.02, unit: 's'}, peer: {name: 'docker', value: 0.4, unit: 's'}, ratio: 0.02 / 0.4, target: {better: 'lower', value: 0.5}, met: true},
      {what: 'b', velo: {value: 3, unit: 'GB/s'}, peer: {name: 'disk', value: 2, unit: 'GB/s'}, ratio: 1.5, target: {better: 'higher', value: 0.7}, met: true},
    ])
  })

  it('the importer reads docs/benchmarks.md tables as recorded, dated, marked with their source', () => {
    const docs = path.join(tmp, 'bench.md')
    fs.writeFileSync(
      docs,
      `# Benchmarks\n\n## Store\n\nMeasured 2026-11-21 on a quiet machine.\n\n| what | velo | peer | ratio | target | |\n| --- | --- | --- | --- | --- | --- |\n` +
        `| first ingest | 2.715 s | cp -a 2.088 s | 1.30× | ≤ 1.5 | met |\n| hash | 4.75 GB/s | b3sum 5.33 GB/s | 0.89× | ≥ 0.8 | met |\n| odd row | 19.3 vs 19.7 ms | | | | |\n\n` +
        `## Services (2026-12-06)\n\n| what | velo | peer | ratio | target | |\n| --- | --- | --- | --- | --- | --- |\n| bridge create | 71.5 ms | loopback 9.9 ms | 7.24× | ≤ 2 | **NOT met** |\n\n` +
        `## Run\n\n| what | velo | real copy | ratio | target | |\n| --- | --- | --- | --- | --- | --- |\n| node | 240.7 ms (CPU 252.4) | 288.8 ms (CPU 271.1) | 0.83× (CPU 0.93×) | ≤ 1.2 | met |\n| other | 5.5 ms | 209.2 ms | 0.03× | — | |\n` +
        `## Runtime (a vs runc)\n\nTwo runs, 2026-12-04 18:00 UTC.\n\n| what | run 1 (load 2) | run 2 (load 3) | target | |\n| --- | --- | --- | --- | --- |\n` +
        `| run: a vs runc | 17.8 vs 69.3 ms = **0.26×** | 19.1 vs 67.4 ms = **0.28×** | ≤ 0.25 | met |\n| floor | 2.18× | 1.77× | — | |\n| exec | 9.0 vs 53.4 ms = 0.17× | 11.3 vs 63.2 ms = 0.18× | — | |\n`,
    )
    const out = path.join(tmp, 'imported')
    node(['scripts/bench-import-docs.mjs', '--docs', docs, '--out', out])
    const runs = fs
      .readdirSync(out)
      .map((f) => JSON.parse(fs.readFileSync(path.join(out, f), 'utf8')))
      .sort((a, b) => a.title.localeCompare(b.title))
    expect(runs.map((r) => [r.title, r.date, r.source, r.rows.length])).toEqual([
      ['Run', null, 'docs/benchmarks.md', 1],
      ['Runtime (a vs runc): run 1 (load 2)', '2026-12-04', 'docs/benchmarks.md', 2],
      ['Runtime (a vs runc): run 2 (load 3)', '2026-12-04', 'docs/benchmarks.md', 2],
      ['Services (2026-12-06)', '2026-12-06', 'docs/benchmarks.md', 1],
      ['Store', '2026-11-21', 'docs/benchmarks.md', 2],
    ])
    const [runT, rt1, rt2, services, store] = runs
    // a table of runs: one run per column, the peer from the row or the heading, met from the recorded ratio
    expect(rt1.rows).toEqual([
      {what: 'run: a vs runc', velo: {value: 0.0178, unit: 's'}, peer: {name: 'runc', value: 0.0693, unit: 's'}, ratio: 0.26, target: {better: 'lower', value: 0.25}, met: false},
      {what: 'exec', velo: {value: 0.009, unit: 's'}, peer: {name: 'runc', value: 0.0534, unit: 's'}, ratio: 0.17, target: null, met: null},
    ])
    expect(rt2.rows[0]).toMatchObject({velo: {value: 0.0191}, peer: {value: 0.0674}, ratio: 0.28, met: false})
    expect(store.rows[0]).toEqual({what: 'first ingest', velo: {value: 2.715, unit: 's'}, peer: {name: 'cp -a', value: 2.088, unit: 's'}, ratio: 1.3, target: {better: 'lower', value: 1.5}, met: true})
    expect(store.rows[1]).toMatchObject({velo: {value: 4.75, unit: 'GB/s'}, peer: {name: 'b3sum'}, target: {better: 'higher', value: 0.8}})
    expect(services.rows[0]).toMatchObject({velo: {value: 0.0715, unit: 's'}, peer: {name: 'loopback', value: 0.0099}, ratio: 7.24, met: false})
    expect(runT.rows[0]).toMatchObject({what: 'node', velo: {value: 0.2407}, peer: {name: 'real copy', value: 0.2888}, ratio: 0.83})
  })

  it('the checked-in bench/results match what the importer makes of docs/benchmarks.md today', () => {
    const out = path.join(tmp, 'reimported')
    node(['scripts/bench-import-docs.mjs', '--out', out])
    const mine = fs.readdirSync(out).sort()
    const checkedIn = fs.readdirSync(path.join(ROOT, 'bench', 'results')).filter((f) => f.startsWith('docs-')).sort()
    expect(checkedIn).toEqual(mine)
    for (const f of mine) expect(fs.readFileSync(path.join(ROOT, 'bench', 'results', f), 'utf8')).toBe(fs.readFileSync(path.join(out, f), 'utf8'))
  })
})

describe('bench report', () => {
  it('every chart of the page draws in headless Chromium, with no network request', async () => {
    if (!CHROMIUM) throw new Error('no /usr/bin/chromium: scripts/setup.sh installs Debian\'s chromium')
    const results = path.join(tmp, 'results')
    node(
      ['--input-type=module', '-e', `import {printRows, ratioRow} from './bench/lib.mjs'
printRows('Fixture sandboxes', [ratioRow('run --rm', {mean: 0.03}, {mean: 0.6}, 'docker', 0.5), ratioRow('bridge', {mean: 0.07}, {mean: 0.01}, 'loopback', 2)])
printRows('Fixture FUSE', [ratioRow('sequential read (default: FUSE passthrough)', {mean: 6.4}, {mean: 6.4}, 'disk (cached)', 0.7, 'higher', 'GB/s'), ratioRow('same: first read', {mean: 0.9}, {mean: 6.4}, 'disk (cached)', 0.7, 'higher', 'GB/s')])
printRows('Fixture page cache', [ratioRow('page cache holding the shared file (fincore of every copy)', {mean: 94}, {mean: 188}, 'docker overlay2', 0.5, 'lower', 'MiB'), ratioRow('host page cache grown (/proc/meminfo Cached)', {mean: 118}, {mean: 271}, 'docker overlay2', 0.5, 'lower', 'MiB')])`],
      {VELO_BENCH_RESULTS: results},
    )
    const buckets = [1, 2, 3].map((i) => ({tenants: `${(i - 1) * 100 + 1}-${i * 100}`, createP50: 10 + i, createP99: 20 + i, rmP50: 5 + i, rmP99: 9 + i}))
    fs.writeFileSync(path.join(results, 'sandbox-1000-fixture.json'), JSON.stringify({kind: 'stress', date: '2026-12-06', tenants: 300, buckets}))
    fs.writeFileSync(path.join(results, 'unrelated.json'), JSON.stringify({tool: 'something else'}))

    const out = path.join(tmp, 'report')
    const svgDir = path.join(tmp, 'img')
    node(['scripts/bench-report.mjs', '--results', results, '--out', out, '--svg-dir', svgDir])
    const page = path.join(out, 'index.html')
    const htmlText = fs.readFileSync(page, 'utf8')
    expect(htmlText).not.toMatch(/<script[^>]+src=|<link[^>]+href=/) // everything inline
    expect(htmlText).not.toContain('No stress results')

    // the SVG files: one per chart, each with data marks
    const svgs = fs.readdirSync(svgDir).sort()
    expect(svgs).toHaveLength(6) // 3 bench tables + growth + page cache + FUSE reads
    expect(svgs).toContain('bench-growth-1000.svg')
    expect(svgs).toContain('bench-page-cache.svg')
    expect(svgs).toContain('bench-fuse-reads.svg')
    for (const f of svgs) expect(fs.readFileSync(path.join(svgDir, f), 'utf8')).toMatch(/^<svg[\s\S]*class="mark-(rect|line)/)

    const proxy = await countingProxy()
    let dom: string
    try {
      // control: the same browser setup does send a page's outside request to the proxy (so "none seen" means something)
      const control = path.join(tmp, 'control.html')
      fs.writeFileSync(control, '<!doctype html><img src="http://velo-report-control.invalid/x.png">')
      await dumpDom(`file://${control}`, proxy.port)
      expect(proxy.seen.some((s) => s.includes('velo-report-control.invalid'))).toBe(true)
      proxy.seen.length = 0

      dom = await dumpDom(`file://${page}`, proxy.port)
      // Chromium's own background calls (network time, component updates, account sign-in) are not the page's:
      // named by exact host, so a page fetching from any other host (a CDN, fonts) still counts
      const browserOwn = /^(GET|POST|CONNECT) (https?:\/\/)?(clients2\.google\.com|update\.googleapis\.com|accounts\.google\.com)[:/]/
      expect(proxy.seen.filter((s) => !browserOwn.test(s))).toEqual([])
    } finally {
      await proxy.close()
    }
    expect(dom).toContain('data-done="yes"')
    // each chart container: its id, the count of data marks the page found in it, and what it holds
    const charts = [...dom.matchAll(/<div class="chart" ([^>]*)>([\s\S]*?)<\/div><\/section>/g)].map((m) => {
      const attr = (k: string) => new RegExp(`${k}="([^"]*)"`).exec(m[1])?.[1] ?? ''
      return [m[0], attr('id'), attr('data-drawn'), m[2]]
    })
    expect(charts.map((m) => m[1]).sort()).toEqual(svgs.map((f) => f.replace(/\.svg$/, '')))
    const drawn = Object.fromEntries(charts.map((m) => [m[1], m[2]]))
    for (const m of charts) {
      expect(m[3], m[1]).toMatch(/^<svg/)
      expect(Number(drawn[m[1]]), `${m[1]} drew ${drawn[m[1]]}`).toBeGreaterThan(0)
    }
    // marks per chart: a bench table of 2 rows draws 4 velo/peer bars + 2 ratio bars + 2 target ticks;
    // the growth chart 4 lines (create/rm p50/p99) + 12 points; the page cache and FUSE reads 2 rows × 2 sides
    const bench = charts.filter((m) => /^bench-.*fixture-/.test(m[1]))
    expect(bench).toHaveLength(3)
    for (const m of bench) expect(Number(m[2])).toBe(8)
    expect(Number(drawn['bench-growth-1000'])).toBe(16)
    expect(Number(drawn['bench-page-cache'])).toBe(4)
    expect(Number(drawn['bench-fuse-reads'])).toBe(4)
  })

  it('without stress results the growth curves are left out with a note, not drawn from anything else', () => {
    const results = path.join(tmp, 'results-nostress')
    node(['--input-type=module', '-e', `import {printRows, ratioRow} from './bench/lib.mjs'
printRows('Only one', [ratioRow('x', {mean: 1}, {mean: 2}, 'peer', 1)])`], {VELO_BENCH_RESULTS: results})
    const out = path.join(tmp, 'report-nostress')
    const svgDir = path.join(tmp, 'img-nostress')
    node(['scripts/bench-report.mjs', '--results', results, '--out', out, '--svg-dir', svgDir])
    const htmlText = fs.readFileSync(path.join(out, 'index.html'), 'utf8')
    expect(htmlText).toContain('No stress results')
    expect(htmlText).not.toContain('id="bench-growth-1000"')
    expect(htmlText).not.toContain('id="bench-page-cache"')
    expect(fs.readdirSync(svgDir)).toHaveLength(1)
  })
})
