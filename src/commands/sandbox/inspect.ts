import {Args} from '@oclif/core'
import {VeloCommand} from '../../lib/command'

export default class SandboxInspect extends VeloCommand<typeof SandboxInspect> {
  static summary = 'Show a sandbox\'s state, settings and resource usage'
  static args = {name: Args.string({required: true, description: 'sandbox name'})}

  async run() {
    const {inspectSandbox} = await import('../../sandbox/tenant')
    const r = inspectSandbox(this.home, this.args.name)
    if (!this.jsonEnabled()) process.stdout.write(JSON.stringify(r, null, 2) + '\n')
    return r
  }
}
