import {Flags} from '@oclif/core'
import {VeloCommand} from '../../lib/command'

export default class SnapshotterServe extends VeloCommand<typeof SnapshotterServe> {
  static summary = "Serve containerd's proxy snapshotter API (gRPC on a unix socket): committed layers go into velo's store and are mounted from its farms"
  static description = 'Runs until SIGTERM or SIGINT. containerd config: [proxy_plugins.velo] type = "snapshot" address = "<the socket>". See docs/snapshotter.md.'
  static examples = ['<%= config.bin %> snapshotter serve --address /run/velo/snapshotter.sock']
  static flags = {
    address: Flags.string({description: 'unix socket to listen on', default: '/run/velo/snapshotter.sock'}),
  }

  async run() {
    const {serve} = await import('../../snapshotter/server')
    const s = await serve(this.home, this.flags.address, (m) => process.stderr.write(`velo snapshotter: ${m}\n`))
    this.info(`velo snapshotter: serving ${s.address} (store ${this.home})`)
    await new Promise<void>((resolve) => {
      const stop = () => void s.close().then(resolve)
      process.once('SIGTERM', stop)
      process.once('SIGINT', stop)
    })
    return {address: s.address}
  }
}
