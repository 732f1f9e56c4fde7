import {Args} from '@oclif/core'
import {VeloCommand} from '../../lib/command'

export default class NetworkRm extends VeloCommand<typeof NetworkRm> {
  static summary = 'Remove networks (refused while a sandbox is on one): the bridge, its rules, its leases'
  static aliases = ['network remove']
  static strict = false
  static args = {name: Args.string({required: true, description: 'network name(s)'})}

  async run() {
    const {argv} = await this.parse({flags: NetworkRm.flags, baseFlags: VeloCommand.baseFlags, args: NetworkRm.args, strict: false, enableJsonFlag: NetworkRm.enableJsonFlag})
    const {removeNetwork} = await import('../../network/networks')
    const out = []
    for (const name of argv as string[]) {
      out.push(removeNetwork(this.home, name))
      this.info(`removed network ${name}`)
    }
    return out
  }
}
