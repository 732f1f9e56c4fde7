import * as http from 'node:http'
import {Gauge, Counter, Registry} from 'prom-client'
import {VeloError} from '../lib/errors'

/**
 * `velo metrics`: the store and every tenant in the Prometheus text exposition, built with prom-client from what the
 * kernel and the store say at the moment of the call (no daemon keeps history: Prometheus scrapes). Counters the
 * kernel keeps as totals (CPU time, bytes) are exported as counters; levels as gauges.
 */
export async function collectMetrics(home: string): Promise<Registry> {
  const reg = new Registry()
  const g = (name: string, help: string, labelNames: string[] = []) => new Gauge({name, help, labelNames, registers: [reg]})
  const c = (name: string, help: string, labelNames: string[] = []) => new Counter({name, help, labelNames, registers: [reg]})

  // the store (src/store/maintenance.ts status: every object's size, the manifest DB's images and layers)
  const {status} = await import('../store/maintenance')
  const st = status(home)
  g('velo_store_objects', 'Objects in the content-addressed store').set(st.objects)
  g('velo_store_physical_bytes', 'Bytes of the store\'s objects, each counted once (deduplicated; cold ones at their uncompressed size)').set(st.physicalBytes)
  g('velo_store_stored_bytes', 'Bytes the objects take as stored: plain ones whole, cold ones zstd-compressed').set(st.storedBytes)
  g('velo_store_compressed_objects', 'Cold objects (only volume snapshots name them) kept zstd-compressed by velo gc').set(st.compressed.objects)
  g('velo_store_compressed_bytes', 'Uncompressed bytes of the cold objects').set(st.compressed.logicalBytes)
  g('velo_store_compressed_stored_bytes', 'Bytes the cold objects take compressed (their .zst files, chunk recipes and packs)').set(st.compressed.storedBytes)
  g('velo_store_chunked_objects', 'Cold objects kept as content-defined chunks (8 MiB and more)').set(st.chunked.objects)
  g('velo_store_chunks', 'Chunks of chunked cold objects, each stored once').set(st.chunkStore.chunks)
  g('velo_store_chunk_stored_bytes', 'Bytes the chunks take (compressed)').set(st.chunkStore.storedBytes)
  g('velo_store_packed_objects', 'Small cold objects kept in packs (under 64 KiB)').set(st.packed.objects)
  g('velo_store_packs', 'Packs of small cold objects').set(st.packed.packs)
  g('velo_store_pack_stored_bytes', 'Bytes the packs take (compressed; dead objects until gc compacts a pack)').set(st.packed.storedBytes)
  g('velo_store_logical_bytes', 'Bytes of every file of every layer, as if each were stored on its own').set(st.logicalBytes)
  if (st.dedupRatio !== null) g('velo_store_dedup_ratio', 'Logical bytes over physical bytes').set(st.dedupRatio)
  g('velo_store_layers', 'Layers in the manifest database').set(st.layers)
  g('velo_store_images', 'Images').set(st.images.length)
  g('velo_store_farms', 'Hard-link farms built (one per layer a tenant has used)').set(st.farms)
  g('velo_store_temp_files', 'Temp files left by interrupted writes (velo gc removes them)').set(st.tempFiles)

  // FUSE daemons serving images (src/fuse/mounts.ts)
  const {listMounts} = await import('../fuse/mounts')
  const mounts = listMounts(home)
  const fuse = g('velo_fuse_mounts', 'velo-fuse mounts by state (active: served; stale: daemon gone)', ['state'])
  for (const state of ['active', 'stale', 'unmounted']) fuse.set({state}, mounts.filter((m) => m.state === state).length)

  // tenants (state.json, workload.json, their cgroups and network namespace)
  const {listTenantNames, readState, isRunning} = await import('../sandbox/state')
  const {sandboxCounters} = await import('../sandbox/stats')
  const {readWorkload} = await import('../sandbox/workload')
  const L = ['sandbox']
  const up = g('velo_sandbox_running', '1 while the sandbox runs, 0 when stopped', L)
  const cpu = c('velo_sandbox_cpu_seconds_total', 'CPU time of the sandbox\'s cgroup', L)
  const mem = g('velo_sandbox_memory_bytes', 'Memory charged to the sandbox\'s cgroup', L)
  const memMax = g('velo_sandbox_memory_limit_bytes', 'The sandbox\'s memory limit', L)
  const pids = g('velo_sandbox_pids', 'Tasks in the sandbox', L)
  const oom = c('velo_sandbox_oom_kills_total', 'Processes the kernel killed for the sandbox\'s memory limit', L)
  const rx = c('velo_sandbox_network_receive_bytes_total', 'Bytes received on the sandbox\'s interfaces (not lo)', L)
  const tx = c('velo_sandbox_network_transmit_bytes_total', 'Bytes sent on the sandbox\'s interfaces (not lo)', L)
  const br = c('velo_sandbox_block_read_bytes_total', 'Bytes the sandbox read from block devices', L)
  const bw = c('velo_sandbox_block_write_bytes_total', 'Bytes the sandbox wrote to block devices', L)
  const restarts = c('velo_sandbox_restarts_total', 'Restarts of the sandbox\'s main command (--restart)', L)
  let running = 0
  const names = listTenantNames(home)
  for (const name of names) {
    let s
    try {
      s = readState(home, name)
    } catch {
      continue // being created, or damaged: `velo sandbox ls` says which
    }
    const labels = {sandbox: name}
    const live = isRunning(s)
    up.set(labels, live ? 1 : 0)
    const w = readWorkload(home, name)
    if (w) restarts.inc(labels, w.restartCount)
    if (!live) continue
    running++
    const k = sandboxCounters(s)
    if (k.cpuSeconds !== undefined) cpu.inc(labels, k.cpuSeconds)
    if (k.memoryBytes !== undefined) mem.set(labels, k.memoryBytes)
    if (k.memoryLimit !== undefined) memMax.set(labels, k.memoryLimit)
    if (k.pids !== undefined) pids.set(labels, k.pids)
    if (k.oomKills !== undefined) oom.inc(labels, k.oomKills)
    rx.inc(labels, k.netRxBytes)
    tx.inc(labels, k.netTxBytes)
    if (k.blockReadBytes !== undefined) br.inc(labels, k.blockReadBytes)
    if (k.blockWriteBytes !== undefined) bw.inc(labels, k.blockWriteBytes)
  }
  const count = g('velo_sandboxes', 'Sandboxes by state', ['state'])
  count.set({state: 'running'}, running)
  count.set({state: 'stopped'}, names.length - running)

  // networks and volumes (their records in the store)
  const {listNetworks} = await import('../network/networks')
  g('velo_networks', 'Networks (bridges through the CNI plugins)').set(listNetworks(home).length)
  const {listVolumes} = await import('../volume/volumes')
  const vols = listVolumes(home)
  g('velo_volumes', 'Named volumes').set(vols.length)
  g('velo_volumes_in_use', 'Named volumes some sandbox names').set(vols.filter((v) => v.usedBy.length).length)

  // the CI cache: every job's journal (cache-journal/<job>/events.jsonl). The totals of what the journals hold, so
  // they fall when a journal is cleared (`velo cache summary --clear`): a counter reset, which Prometheus's rate()
  // takes as such.
  const {cacheTotals} = await import('../cache/summary')
  const t = cacheTotals(home)
  const restores = c('velo_cache_restores_total', 'CI cache restores by result (hit: the key; fallback: a --fallback prefix; miss) and source', ['result', 'source'])
  for (const [k, n] of Object.entries(t.restores)) {
    const [result, source] = k.split('/')
    restores.inc({result, source}, n)
  }
  c('velo_cache_saves_total', 'CI cache saves').inc(t.saves)
  c('velo_cache_reused_bytes_total', 'Bytes restores found in the store already (not downloaded)').inc(t.bytesReused)
  c('velo_cache_fetched_bytes_total', 'Bytes restores fetched from the registry').inc(t.bytesFetched)
  return reg
}

export async function metricsText(home: string): Promise<{text: string; contentType: string}> {
  const reg = await collectMetrics(home)
  return {text: await reg.metrics(), contentType: reg.contentType}
}

/** `velo metrics --listen HOST:PORT`: GET /metrics collects afresh per scrape; runs until SIGINT/SIGTERM. */
export async function serveMetrics(home: string, listen: string, onListening: (addr: string) => void): Promise<void> {
  const m = /^(\[[0-9a-fA-F:]+\]|[0-9.]+|localhost):(\d{1,5})$/.exec(listen)
  if (!m || Number(m[2]) > 65535) throw new VeloError('USAGE', `--listen ${JSON.stringify(listen)}: expected HOST:PORT`, {suggestion: 'e.g. --listen 127.0.0.1:9464'})
  const host = m[1].replace(/^\[|\]$/g, '')
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, {'content-type': 'text/plain'}).end('velo metrics: GET /metrics\n')
      return
    }
    metricsText(home).then(
      ({text, contentType}) => res.writeHead(200, {'content-type': contentType}).end(text),
      (err) => res.writeHead(500, {'content-type': 'text/plain'}).end(`${(err as Error).message}\n`),
    )
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(err.code === 'EADDRINUSE' ? new VeloError('BUSY', `--listen ${listen}: the address is in use`, {suggestion: 'pick another port'}) : err),
    )
    server.listen(Number(m[2]), host, () => resolve())
  })
  const a = server.address() as {address: string; port: number}
  onListening(`${a.address.includes(':') ? `[${a.address}]` : a.address}:${a.port}`)
  await new Promise<void>((resolve) => {
    const stop = () => server.close(() => resolve())
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
  })
}
