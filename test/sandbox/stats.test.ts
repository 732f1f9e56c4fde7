import {afterAll, describe, expect, it} from 'vitest'
import {SandboxHome, uniq} from './fixture'

// velo sandbox stats / top: the kernel's counters for real tenants (a busy one, an idle one, two talking
// over a network of this store's own).
describe('sandbox stats and top', () => {
  const sb = new SandboxHome()
  const NET = uniq('st').toLowerCase()
  afterAll(() => {
    for (const n of sb.json(['sandbox', 'ls']).map((s: any) => s.name)) sb.velo(['sandbox', 'rm', '-f', n])
    sb.velo(['network', 'rm', NET])
    expect(sb.cleanup()).toEqual({mounts: [], cgroups: [], tenants: []})
  })

  it('CPU, memory, pids and network counters per tenant; top lists its processes with host pids', () => {
    const [BUSY, IDLE, PEER] = [uniq('busy'), uniq('idle'), uniq('peer')]
    expect(sb.velo(['network', 'create', NET]).status).toBe(0)
    for (const n of [BUSY, PEER]) sb.track(n)
    expect(sb.velo(['sandbox', 'run', '-d', '--name', BUSY, '--network', NET, '--memory', '256m', '--', 'sh', '-c', 'node -e \'require("http").createServer((q,r)=>r.end("x".repeat(100000))).listen(3000)\' & while :; do :; done']).status).toBe(0)
    sb.create(IDLE)
    sb.create(PEER, ['--network', NET])
    // traffic between two tenants of the network (never anywhere else)
    const got = sb.exec(PEER, ['node', '-e', `let n=50;(function go(){require("http").get({host:${JSON.stringify(BUSY)},port:3000,timeout:5000},r=>{let b=0;r.on("data",d=>b+=d.length);r.on("end",()=>console.log(b))}).on("timeout",function(){this.destroy(new Error("timeout"))}).on("error",()=>--n>0&&setTimeout(go,200))})()`])
    expect(got.stdout).toBe('100000\n')
    const l = sb.json(['sandbox', 'stats', BUSY, IDLE, '--no-stream'])
    const busy = l.find((s: any) => s.name === BUSY)
    const idle = l.find((s: any) => s.name === IDLE)
    expect(busy.cpuPercent).toBeGreaterThan(1) // a spinning process (its share depends on the host's load)
    expect(busy.cpuPercent).toBeGreaterThan(idle.cpuPercent)
    expect(busy.memoryLimit).toBe(256 * 1024 * 1024)
    expect(busy.pids).toBeGreaterThanOrEqual(3) // tasks, as docker stats counts them: init, sh, node and its threads
    expect(busy.memoryBytes).toBeGreaterThan(1024 * 1024)
    expect(busy.netTxBytes).toBeGreaterThan(100000) // the page it served
    expect(idle).toMatchObject({pids: 1, netRxBytes: 0, netTxBytes: 0})
    const top = sb.json(['sandbox', 'top', BUSY])
    expect(top.map((p: any) => p.command)).toEqual(expect.arrayContaining(['/dev/init', expect.stringMatching(/^sh -c /), expect.stringMatching(/^node -e /)]))
    expect(top.every((p: any) => p.pid > 1)).toBe(true) // host pids
    const stopped = uniq('stopped')
    sb.create(stopped)
    sb.json(['sandbox', 'stop', stopped])
    for (const verb of ['stats', 'top']) {
      const r = sb.velo(['sandbox', verb, stopped, ...(verb === 'stats' ? ['--no-stream'] : [])])
      expect(r.status).not.toBe(0)
      expect(r.stderr).toMatch(/STATE.*stopped/)
    }
  })
})
