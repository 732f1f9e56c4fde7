import {Args, Flags} from '@oclif/core'
import {VeloCommand} from '../../lib/command'

export default class SandboxStats extends VeloCommand<typeof SandboxStats> {
  static summary = 'Live resource use of sandboxes: CPU %, memory, pids, network and block I/O (as docker stats)'
  static examples = ['<%= config.bin %> sandbox stats', '<%= config.bin %> sandbox stats web --no-stream --json']
  static strict = false
  static args = {name: Args.string({description: 'sandbox names (default: every running one)'})}
  static flags = {'no-stream': Flags.boolean({description: 'one sample, then exit (always so with --json)'})}

  async run() {
    const {argv} = await this.parse({flags: SandboxStats.flags, baseFlags: VeloCommand.baseFlags, args: SandboxStats.args, strict: false, enableJsonFlag: SandboxStats.enableJsonFlag})
    const {sampleStats} = await import('../../sandbox/stats')
    const {listSandboxes} = await import('../../sandbox/tenant')
    const {table} = await import('../../lib/table')
    const {fmtBytes} = await import('../../lib/command')
    const names = (argv as string[]).length ? (argv as string[]) : listSandboxes(this.home).filter((s) => s.status !== 'stopped').map((s) => s.name)
    const render = (l: Awaited<ReturnType<typeof sampleStats>>) =>
      table(
        ['NAME', 'CPU %', 'MEM USAGE / LIMIT', 'PIDS', 'NET I/O', 'BLOCK I/O'],
        l.map((s) => [
          s.name,
          `${s.cpuPercent.toFixed(2)}%`,
          `${s.memoryBytes !== undefined ? fmtBytes(s.memoryBytes) : '-'} / ${s.memoryLimit !== undefined ? fmtBytes(s.memoryLimit) : '-'}`,
          s.pids ?? '-',
          `${fmtBytes(s.netRxBytes)} / ${fmtBytes(s.netTxBytes)}`,
          s.blockReadBytes !== undefined ? `${fmtBytes(s.blockReadBytes)} / ${fmtBytes(s.blockWriteBytes ?? 0)}` : '-',
        ]),
      ) + '\n'
    if (this.flags['no-stream'] || this.jsonEnabled() || !process.stdout.isTTY) {
      const l = await sampleStats(this.home, names)
      if (!this.jsonEnabled()) process.stdout.write(render(l))
      return l
    }
    // streaming, as docker stats: the table redrawn every second until ^C
    for (;;) {
      const l = await sampleStats(this.home, names, 1000)
      process.stdout.write('\x1b[2J\x1b[H' + render(l))
    }
  }
}
