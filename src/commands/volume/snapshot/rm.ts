import {Args} from '@oclif/core'
import {VeloCommand} from '../../../lib/command'

export default class VolumeSnapshotRm extends VeloCommand<typeof VolumeSnapshotRm> {
  static summary = "Remove a volume's snapshot (velo gc then frees the bytes nothing else holds)"
  static args = {name: Args.string({required: true, description: 'volume name'}), snapshot: Args.string({required: true, description: 'snapshot name'})}

  async run() {
    const {removeSnapshot} = await import('../../../volume/volumes')
    const r = await removeSnapshot(this.home, this.args.name, this.args.snapshot)
    this.info(`removed snapshot ${r.snapshot} of volume ${r.volume}`)
    return r
  }
}
