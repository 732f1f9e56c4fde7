import {Args, Flags} from '@oclif/core'
import {VeloCommand} from '../../lib/command'

export default class SandboxRestart extends VeloCommand<typeof SandboxRestart> {
  static summary = 'Stop a sandbox (if it runs) and start it again'
  static args = {name: Args.string({required: true, description: 'sandbox name'})}
  static flags = {time: Flags.integer({char: 't', description: 'grace period in seconds', default: 10})}

  async run() {
    const {restartSandbox} = await import('../../sandbox/tenant')
    const r = await restartSandbox(this.home, this.args.name, this.flags.time * 1000)
    this.info(`restarted ${r.name} (init pid ${r.pid})`)
    return r
  }
}
