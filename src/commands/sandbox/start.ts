import {Args} from '@oclif/core'
import {VeloCommand} from '../../lib/command'

export default class SandboxStart extends VeloCommand<typeof SandboxStart> {
  static summary = 'Start a stopped sandbox again (its upper dir, i.e. its changes, are kept)'
  static args = {name: Args.string({required: true, description: 'sandbox name'})}

  async run() {
    const {startSandbox} = await import('../../sandbox/tenant')
    const r = await startSandbox(this.home, this.args.name)
    this.info(`started ${r.name} (init pid ${r.pid})`)
    return r
  }
}
