import {Args, Flags} from '@oclif/core'
import {VeloCommand} from '../../lib/command'

export default class NetworkCreate extends VeloCommand<typeof NetworkCreate> {
  static summary = 'Create a network: a bridge its sandboxes share (CNI bridge + host-local), isolated from other networks'
  static examples = ['<%= config.bin %> network create backend', '<%= config.bin %> network create db --subnet 10.89.40.0/24 --internal']
  static args = {name: Args.string({required: true, description: 'network name'})}
  static flags = {
    subnet: Flags.string({description: 'IPv4 range of its addresses (default: the first free 10.89.N.0/24)'}),
    internal: Flags.boolean({description: 'no route out of the host (and no gateway on it)'}),
  }

  async run() {
    const {createNetwork} = await import('../../network/networks')
    const r = createNetwork(this.home, this.args.name, {subnet: this.flags.subnet, internal: this.flags.internal})
    this.info(`created network ${r.name} (${r.subnet}${r.internal ? ', internal' : ''}, bridge ${r.bridge})`)
    return r
  }
}
