import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {compareRuntimes, View, ENGINE_RUNTIMES, ok, parseView, Podman, startPodman, VIEW_SCRIPT} from './engines'

/**
 * Podman 4.3 (Debian) driving the OCI runtime with `--runtime R`: no daemon, our own --root/--runroot/--tmpdir,
 * the cgroupfs manager and file events (this host has no systemd), no network, the busybox rootfs brought in
 * with `podman import`. Overlay storage for the scenarios, one run on vfs.
 */

let p: Podman
let vfs: Podman
beforeAll(async () => {
  p = await startPodman('overlay')
  vfs = await startPodman('vfs')
})
afterAll(async () => {
  await p?.stop()
  await vfs?.stop()
})

const runcViews = new Map<string, View>()
describe.each(ENGINE_RUNTIMES)('podman --runtime $name', ({name, path: R}) => {
  const podRun = (pm: Podman, flags: string[], cmd: string[]) => pm.podman(R, ['run', '--rm', ...pm.runFlags, ...flags, pm.image, ...cmd])

  it('runs a command: output and exit codes (overlay and vfs storage)', () => {
    for (const pm of [p, vfs]) {
      expect(podRun(pm, [], ['echo', 'hi'])).toMatchObject({status: 0, stdout: 'hi\n'})
      expect(podRun(pm, [], ['sh', '-c', 'exit 3']).status).toBe(3)
    }
    expect(podRun(p, ['--user', '1000:1000', '--cap-drop', 'ALL', '--read-only'], ['sh', '-c', 'id; grep CapEff /proc/self/status; touch /x'])).toMatchObject({
      status: 1,
      stdout: 'uid=1000(tester) gid=1000(tester) groups=1000(tester)\nCapEff:\t0000000000000000\n',
      stderr: expect.stringMatching(/Read-only file system/),
    })
    // podman's --memory and --pids-limit reach the cgroup the runtime made
    expect(podRun(p, ['--memory', '64m', '--pids-limit', '17'], ['sh', '-c', 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max'])).toMatchObject({
      status: 0,
      stdout: `${64 << 20}\n17\n`,
    })
  })

  it('podman exec, stop (SIGTERM trapped) and kill -s KILL', () => {
    const id = ok(p.podman(R, ['run', '-d', ...p.runFlags, p.image, 'sh', '-c', 'trap "echo got TERM; exit 42" TERM; echo started; while :; do sleep 0.1; done']), 'podman run -d').trim()
    try {
      expect(p.podman(R, ['exec', id, 'sh', '-c', 'echo pid1 is $(cat /proc/1/comm); exit 5'])).toMatchObject({status: 5, stdout: 'pid1 is sh\n'})
      ok(p.podman(R, ['stop', '--time', '10', id]), 'podman stop')
      expect(ok(p.podman(R, ['wait', id]), 'podman wait').trim()).toBe('42')
      expect(ok(p.podman(R, ['logs', id]), 'podman logs')).toBe('started\ngot TERM\n')
    } finally {
      p.podman(R, ['rm', '--force', '--time', '0', id])
    }
    const id2 = ok(p.podman(R, ['run', '-d', ...p.runFlags, p.image, 'sh', '-c', 'trap "" TERM; while :; do sleep 0.1; done']), 'podman run -d').trim()
    try {
      ok(p.podman(R, ['kill', '--signal', 'KILL', id2]), 'podman kill')
      expect(ok(p.podman(R, ['wait', id2]), 'podman wait').trim()).toBe('137')
    } finally {
      p.podman(R, ['rm', '--force', '--time', '0', id2])
    }
  })

  it('a container sees the same as under runc', () => {
    const view = (rt: string) => {
      const runtime = ENGINE_RUNTIMES.find((x) => x.name === rt)!.path
      const r = p.podman(runtime, ['run', '--rm', ...p.runFlags, '--hostname', 'view', p.image, 'sh', '-c', VIEW_SCRIPT])
      return parseView(r.stdout, r.status)
    }
    const cmp = compareRuntimes(name, view, runcViews)
    expect(cmp.runc.exit).toBe('0')
    expect(cmp.runc.hostname).toBe('view')
    expect(cmp.runc.ps).toMatch(/^\s*1 root\s+sh -c echo "== ps"/m)
    expect(cmp.diff).toEqual([])
  })
})
