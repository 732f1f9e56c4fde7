import {VeloCommand} from '../../lib/command'

export default class NetworkLs extends VeloCommand<typeof NetworkLs> {
  static summary = 'List networks'
  static aliases = ['network list']

  async run() {
    const {listNetworks, networkUsers} = await import('../../network/networks')
    const {table} = await import('../../lib/table')
    const l = listNetworks(this.home).map((n) => ({...n, sandboxes: networkUsers(this.home, n.name).length}))
    if (!this.jsonEnabled())
      process.stdout.write(table(['NAME', 'SUBNET', 'BRIDGE', 'INTERNAL', 'SANDBOXES'], l.map((n) => [n.name, n.subnet, n.bridge, n.internal ? 'yes' : 'no', n.sandboxes])) + '\n')
    return l
  }
}
