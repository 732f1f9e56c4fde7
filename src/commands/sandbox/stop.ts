import {Args, Flags} from '@oclif/core'
import {VeloCommand} from '../../lib/command'

export default class SandboxStop extends VeloCommand<typeof SandboxStop> {
  static summary = 'Stop a sandbox (SIGTERM to all its processes, SIGKILL after the grace period); its files stay'
  static args = {name: Args.string({required: true, description: 'sandbox name'})}
  static flags = {time: Flags.integer({char: 't', description: 'grace period in seconds', default: 10})}

  async run() {
    const {stopSandbox} = await import('../../sandbox/tenant')
    const r = stopSandbox(this.home, this.args.name, this.flags.time * 1000)
    this.info(r.wasRunning ? `stopped ${r.name}${r.forced ? ' (killed after the grace period)' : ''}` : `${r.name} was not running`)
    return r
  }
}
