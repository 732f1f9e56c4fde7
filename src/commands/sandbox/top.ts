import {Args} from '@oclif/core'
import {VeloCommand} from '../../lib/command'

export default class SandboxTop extends VeloCommand<typeof SandboxTop> {
  static summary = "The processes of a running sandbox (host pids, as docker top)"
  static args = {name: Args.string({required: true, description: 'sandbox name'})}

  async run() {
    const {topProcesses} = await import('../../sandbox/stats')
    const {validateName} = await import('../../lib/names')
    const l = topProcesses(this.home, validateName('sandbox', this.args.name))
    if (!this.jsonEnabled()) process.stdout.write((await import('../../lib/table')).table(['PID', 'USER', 'TIME', 'COMMAND'], l.map((p) => [p.pid, p.user, p.time, p.command])) + '\n')
    return l
  }
}
