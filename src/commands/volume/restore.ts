import {Args} from '@oclif/core'
import {VeloCommand} from '../../lib/command'

export default class VolumeRestore extends VeloCommand<typeof VolumeRestore> {
  static summary = "Make a volume's files those of a snapshot again (refused while a running sandbox uses it)"
  static args = {name: Args.string({required: true, description: 'volume name'}), snapshot: Args.string({required: true, description: 'snapshot name'})}

  async run() {
    const {restoreVolume} = await import('../../volume/volumes')
    const r = await restoreVolume(this.home, this.args.name, this.args.snapshot)
    this.info(`restored volume ${r.volume} to snapshot ${r.snapshot} (${r.files} files)`)
    return r
  }
}
