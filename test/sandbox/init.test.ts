import * as fs from 'node:fs'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {SandboxHome, uniq} from './fixture'
import {sleepSync} from '../../src/lib/sleep'

/** velo-init (native/init), pid 1 of every sandbox, seen from the host. */
describe('sandbox init', () => {
  const sb = new SandboxHome()
  const S = uniq('init')
  let pid = 0

  beforeAll(() => {
    pid = sb.create(S).pid
  })
  afterAll(() => {
    expect(sb.cleanup()).toEqual({mounts: [], cgroups: [], tenants: []})
  })

  it('forwards a signal sent to it to every process of the sandbox', async () => {
    const upper = `${sb.home}/tenants/${S}/upper/tmp`
    const run = sb.veloAsync(['sandbox', 'exec', S, '--', 'sh', '-c', "trap 'echo got > /tmp/usr1; exit 3' USR1; touch /tmp/ready; while :; do sleep 0.05; done"])
    for (let i = 0; i < 400 && !fs.existsSync(`${upper}/ready`); i++) await new Promise((r) => setTimeout(r, 25))
    process.kill(pid, 'SIGUSR1')
    const r = await run
    expect(r.status).toBe(3)
    expect(fs.readFileSync(`${upper}/usr1`, 'utf8')).toBe('got\n')
  })

  it('reaps an orphan', () => {
    // the subshell's sleep is re-parented to init when the subshell exits; it ends 0.3 s later and must not stay a zombie
    // (an unreaped zombie stays among init's children)
    expect(sb.sh(S, '(sleep 0.3 &); exit 0').status).toBe(0)
    const children = () => readOr(`/proc/${pid}/task/${pid}/children`).trim()
    const t0 = Date.now()
    while (children() && Date.now() - t0 < 10_000) sleepSync(50)
    expect(children()).toBe('')
  })

  it('holds next to no memory of its own: no heap, a few private pages (an idle tenant is only its init)', () => {
    if (process.arch !== 'x64' && process.arch !== 'arm64') {
      console.warn(`skipped: velo-init is built without a C library only on x86_64 and aarch64 (this is ${process.arch})`)
      return
    }
    const maps = fs.readFileSync(`/proc/${pid}/maps`, 'utf8')
    expect(maps).not.toMatch(/\[heap\]/)
    // only the dev/init file and the kernel's own areas: no shared libraries, no anonymous mappings
    const named = maps
      .trim()
      .split('\n')
      .map((l) => l.split(/\s+/)[5] ?? '')
    expect(named.filter((n) => n !== '/dev/init' && !/^\[(stack|vvar|vvar_vclock|vdso|vsyscall)\]$/.test(n))).toEqual([])
    const rollup = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8')
    const kib = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(rollup)?.[1])
    // the stack's pages (arguments, environment, one frame): a static glibc init held 44 KiB here
    expect(kib('Pss_Anon')).toBeLessThanOrEqual(16)
  })
})

function readOr(p: string): string {
  try {
    return fs.readFileSync(p, 'utf8')
  } catch {
    return ''
  }
}
