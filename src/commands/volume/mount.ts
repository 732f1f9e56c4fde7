import {Args} from '@oclif/core'
import {VeloCommand} from '../../lib/command'

export default class VolumeMount extends VeloCommand<typeof VolumeMount> {
  static summary = "Mount a volume's files at DIR on the host (a bind; its snapshots read-only in DIR/.snapshots; root only)"
  static args = {name: Args.string({required: true, description: 'volume name'}), dir: Args.string({required: true, description: 'an existing directory'})}

  async run() {
    const {mountVolume} = await import('../../volume/volumes')
    const r = await mountVolume(this.home, this.args.name, this.args.dir)
    this.info(`mounted volume ${r.name} at ${r.dir}${r.snapshots.length ? ` (snapshots read-only in ${r.dir}/.snapshots)` : ''}`)
    return r
  }
}
