import {describe, expect, it} from 'vitest'
import {bundles, RUNTIMES} from './fixture'
import {ptySpawn} from './engines'

// process.terminal in the foreground without an engine's console socket: the runtime makes the pty inside the
// container and relays it to its own terminal itself (`runc run`/`runc exec -t` do the same), so the program
// sees /dev/pts/N of the container, our window size (and its changes), and the exit code comes back.
describe('a terminal relayed by the runtime (run, exec -t)', () => {
  const make = bundles()
  for (const name of ['runc', 'velo'] as const) {
    it(`run with process.terminal [${name}]`, async () => {
      const b = make(RUNTIMES[name], (c) => {
        c.process.terminal = true
        // runc sizes the terminal after the process has started (a race under load); velo-runtime before it
        c.process.args = ['sh', '-c', `tty; ${name === 'runc' ? 'sleep 0.5; ' : ''}stty size; read line; echo "got $line"; exit 5`]
      })
      const t = ptySpawn(RUNTIMES[name], ['--root', b.root, 'run', '--bundle', b.dir, b.id], {cols: 111, rows: 33})
      try {
        await t.waitFor(/33 111/)
        t.write('hello\r')
        await t.waitFor(/got hello/)
        expect(await t.exit).toBe(5)
        expect(t.output()).toMatch(/^\/dev\/pts\/0\r?$/m)
      } finally {
        t.kill()
      }
    })

    it(`exec -t into a running container, window changes followed [${name}]`, async () => {
      const b = make(RUNTIMES[name], (c) => (c.process.args = ['sleep', '60']))
      expect(b.rt(['run', '--detach', '--bundle', b.dir, b.id], {stdio: 'ignore'}).status).toBe(0)
      // runc's exec sizes (and sets up) the terminal after the process has started, as its run does: under load its
      // first stty can fail ("No child processes", seen once in a CI run); the same pause as above
      const first = name === 'runc' ? 'sleep 0.5; ' : ''
      const t = ptySpawn(RUNTIMES[name], ['--root', b.root, 'exec', '-t', b.id, 'sh', '-c', `tty; ${first}stty size; read x; stty size; exit 6`], {cols: 90, rows: 20})
      try {
        await t.waitFor(/20 90/)
        const mark = t.output().length
        t.resize(120, 40)
        await new Promise((r) => setTimeout(r, 200))
        t.write('\r')
        await t.waitFor(/40 120/, 20_000, mark)
        expect(await t.exit).toBe(6)
        expect(t.output()).toMatch(/\/dev\/pts\/\d+/)
      } finally {
        t.kill()
      }
    })
  }
})
