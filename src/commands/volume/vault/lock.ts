import {Args} from '@oclif/core'
import {VeloCommand} from '../../../lib/command'

export default class VolumeVaultLock extends VeloCommand<typeof VolumeVaultLock> {
  static summary = "Lock a volume's vault: .vault gone from every mount of the volume (sandboxes too), its key out of the kernel, open files of it failing with EIO"
  static args = {name: Args.string({required: true, description: 'volume name'})}

  async run() {
    const {lockVault} = await import('../../../volume/vault')
    const r = lockVault(this.home, this.args.name)
    this.info(`the vault of volume ${r.volume} is locked${r.openFiles ? ' (files of it that were open now fail with EIO; its filesystem goes when they close)' : ''}`)
    for (const w of r.warnings) this.warning(w)
    return r
  }
}
