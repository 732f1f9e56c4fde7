import {VeloCommand} from '../../lib/command'

export default class SandboxLs extends VeloCommand<typeof SandboxLs> {
  static summary = 'List sandboxes (running and stopped)'
  static aliases = ['sandbox list', 'ps']

  async run() {
    const {listSandboxes} = await import('../../sandbox/tenant')
    const {table} = await import('../../lib/table')
    const l = listSandboxes(this.home)
    const status = (s: (typeof l)[number]) => (s.exitCode !== undefined ? `exited (${s.exitCode})` : s.status)
    const cmd = (s: (typeof l)[number]) => (s.command ? JSON.stringify(s.command.join(' ').slice(0, 40)) : '-')
    if (!this.jsonEnabled())
      process.stdout.write(
        table(
          ['NAME', 'STATUS', 'IMAGE', 'COMMAND', 'NETWORK', 'PORTS', 'PID', 'CREATED'],
          l.map((s) => [s.name, status(s), s.image, cmd(s), s.ip ? `${s.network} ${s.ip}` : s.network, s.ports?.join(',') || '-', s.pid ?? '-', s.createdAt]),
        ) + '\n',
      )
    return l
  }
}
