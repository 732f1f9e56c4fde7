import {Args} from '@oclif/core'
import {VeloCommand} from '../../lib/command'

export default class NetworkInspect extends VeloCommand<typeof NetworkInspect> {
  static summary = 'Show a network: subnet, gateway, bridge, and its sandboxes with their addresses'
  static args = {name: Args.string({required: true, description: 'network name'})}

  async run() {
    const {inspectNetwork} = await import('../../network/networks')
    const r = inspectNetwork(this.home, this.args.name)
    if (!this.jsonEnabled()) process.stdout.write(JSON.stringify(r, null, 2) + '\n')
    return r
  }
}
