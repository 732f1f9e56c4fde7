import {spawn} from 'node:child_process'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {compareRuntimes, View, Containerd, ENGINE_RUNTIMES, ok, parseView, startContainerd, VIEW_SCRIPT} from './engines'

/**
 * containerd 1.6 (Debian) driving the OCI runtime through the runc v2 shim with BinaryName set to the runtime
 * (`ctr run --runtime io.containerd.runc.v2 --runc-binary R`): a private containerd for this file (own root,
 * state and sockets, no CRI), the busybox image imported with `ctr image import`.
 */

let c: Containerd
beforeAll(async () => {
  c = await startContainerd()
})
afterAll(async () => {
  await c?.stop()
})

let seq = 0
const nextId = (rt: string) => `${rt}-${process.pid}-${++seq}`

/** `ctr run` in the background (not detached: ctr waits for the task and exits with its code). */
function runInBackground(args: string[]) {
  const p = spawn('ctr', ['--address', c.socket, '--namespace', c.ns, ...args], {stdio: ['ignore', 'pipe', 'pipe']})
  let out = ''
  let err = ''
  p.stdout.on('data', (d) => (out += d))
  p.stderr.on('data', (d) => (err += d))
  const exit = new Promise<number>((res) => p.on('exit', (code, sig) => res(code ?? 128 + (sig === 'SIGKILL' ? 9 : 15))))
  return {
    exit,
    out: () => out,
    err: () => err,
    async waitFor(re: RegExp, ms = 20_000) {
      for (const t0 = Date.now(); !re.test(out); ) {
        if (Date.now() - t0 > ms) throw new Error(`ctr run: ${re} not seen; stdout: ${out}; stderr: ${err}`)
        await new Promise((r) => setTimeout(r, 20))
      }
    },
    kill: () => p.exitCode === null && p.kill('SIGKILL'),
  }
}

const runcViews = new Map<string, View>()
describe.each(ENGINE_RUNTIMES)('containerd (runc v2 shim, BinaryName=$name)', ({name, path: R}) => {
  const ctrRun = (cmd: string[], extra: string[] = []) => {
    const id = nextId(name)
    return c.ctr(['run', '--rm', ...c.runtimeFlags(R, id), ...extra, c.image, id, ...cmd])
  }

  it('runs a command: output and exit codes', () => {
    // The short sleeps: ctr copies the task's output from FIFOs and can lose the last of it when the task exits
    // at once (seen with runc too); the runtime is not what is tested there.
    expect(ctrRun(['sh', '-c', 'echo hi; sleep 0.2'])).toMatchObject({status: 0, stdout: 'hi\n'})
    expect(ctrRun(['sh', '-c', 'echo out; echo err >&2; sleep 0.2; exit 3'])).toMatchObject({status: 3, stdout: 'out\n', stderr: expect.stringContaining('err\n')})
    // the user and the environment come from the image config and ctr's spec
    expect(ctrRun(['sh', '-c', 'id; echo $PATH; sleep 0.2'])).toMatchObject({status: 0, stdout: 'uid=0(root) gid=0(root) groups=0(root)\n/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n'})
    // nothing left: ctr run --rm removed the container and its task
    expect(c.ctr(['container', 'ls', '-q']).stdout).toBe('')
  })

  it('ctr task exec, then ctr task kill (SIGTERM trapped, then SIGKILL)', async () => {
    const id = nextId(name)
    const bg = runInBackground(['run', '--rm', ...c.runtimeFlags(R, id), c.image, id, 'sh', '-c', 'trap "echo got TERM; exit 42" TERM; echo ready; while :; do sleep 0.1; done'])
    try {
      await bg.waitFor(/ready/)
      // the short sleep: ctr can lose an exec's last output when it exits at once, as above (a CI run saw it with runc)
      const ex = c.ctr(['task', 'exec', '--exec-id', 'e1', id, 'sh', '-c', 'echo pid1 is $(cat /proc/1/comm); sleep 0.2; exit 5'])
      expect(ex).toMatchObject({status: 5, stdout: 'pid1 is sh\n'})
      const ps = ok(c.ctr(['task', 'ps', id]), 'ctr task ps')
      expect(ps.trim().split('\n').length).toBeGreaterThanOrEqual(2)
      ok(c.ctr(['task', 'kill', id]), 'ctr task kill')
      expect(await bg.exit).toBe(42)
      expect(bg.out()).toBe('ready\ngot TERM\n')
    } finally {
      bg.kill()
      // a failure above left the task and container that `ctr run --rm` would have removed: removed here, so the
      // next test's "nothing left" check is about that test
      if (c.ctr(['container', 'ls', '-q']).stdout.split('\n').includes(id)) {
        c.ctr(['task', 'kill', '--signal', 'SIGKILL', id])
        c.ctr(['task', 'rm', '-f', id])
        c.ctr(['container', 'rm', id])
      }
    }
    const id2 = nextId(name)
    const bg2 = runInBackground(['run', '--rm', ...c.runtimeFlags(R, id2), c.image, id2, 'sh', '-c', 'trap "" TERM; echo ready; while :; do sleep 0.1; done'])
    try {
      await bg2.waitFor(/ready/)
      ok(c.ctr(['task', 'kill', '--signal', 'SIGKILL', id2]), 'ctr task kill -s KILL')
      expect(await bg2.exit).toBe(137)
    } finally {
      bg2.kill()
    }
  })

  it('ctr task pause / resume', async () => {
    const id = nextId(name)
    const bg = runInBackground(['run', '--rm', ...c.runtimeFlags(R, id), c.image, id, 'sh', '-c', 'trap "exit 0" TERM; echo ready; while :; do sleep 0.1; done'])
    try {
      await bg.waitFor(/ready/)
      ok(c.ctr(['task', 'pause', id]), 'pause')
      expect(c.ctr(['task', 'ls']).stdout).toMatch(new RegExp(`^${id}\\s+\\d+\\s+PAUSED`, 'm'))
      ok(c.ctr(['task', 'resume', id]), 'resume')
      expect(c.ctr(['task', 'ls']).stdout).toMatch(new RegExp(`^${id}\\s+\\d+\\s+RUNNING`, 'm'))
      ok(c.ctr(['task', 'kill', id]), 'kill')
      expect(await bg.exit).toBe(0)
    } finally {
      bg.kill()
    }
  })

  it('a container sees the same as under runc', () => {
    const view = (rt: string) => {
      const id = nextId(rt)
      const runtime = ENGINE_RUNTIMES.find((x) => x.name === rt)!.path
      const r = c.ctr(['run', '--rm', ...c.runtimeFlags(runtime, id), c.image, id, 'sh', '-c', VIEW_SCRIPT])
      // the cgroup path names the container, whose id names the runtime
      return parseView(r.stdout.split(id).join('<ctr>'), r.status)
    }
    const cmp = compareRuntimes(name, view, runcViews)
    expect(cmp.runc.exit).toBe('0')
    expect(cmp.runc.ps).toMatch(/^\s*1 root\s+sh -c echo "== ps"/m)
    expect(cmp.diff).toEqual([])
  })
})
