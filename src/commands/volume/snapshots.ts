import {Args} from '@oclif/core'
import {VeloCommand, fmtBytes} from '../../lib/command'

export default class VolumeSnapshots extends VeloCommand<typeof VolumeSnapshots> {
  static summary = "List a volume's snapshots, oldest first"
  static args = {name: Args.string({required: true, description: 'volume name'})}

  async run() {
    const {listSnapshots} = await import('../../volume/volumes')
    const {table} = await import('../../lib/table')
    const l = await listSnapshots(this.home, this.args.name)
    if (!this.jsonEnabled()) process.stdout.write(table(['SNAPSHOT', 'CREATED', 'FILES', 'SIZE'], l.map((s) => [s.name, s.createdAt, s.files, fmtBytes(s.logicalBytes)])) + '\n')
    return l
  }
}
