import {VeloCommand} from '../../lib/command'

export default class SandboxLs extends VeloCommand<typeof SandboxLs> {
  static summary = 'List sandboxes (running and stopped)'
  static aliases = ['sandbox list']

  async run() {
    const {listSandboxes} = await import('../../sandbox/tenant')
    const {table} = await import('../../lib/table')
    const l = listSandboxes(this.home)
    if (!this.jsonEnabled()) process.stdout.write(table(['NAME', 'STATUS', 'IMAGE', 'PROFILE', 'PID', 'CREATED'], l.map((s) => [s.name, s.status, s.image, s.profile, s.pid ?? '-', s.createdAt])) + '\n')
    return l
  }
}
