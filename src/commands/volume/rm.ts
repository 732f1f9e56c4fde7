import {Args} from '@oclif/core'
import {VeloCommand} from '../../lib/command'

export default class VolumeRm extends VeloCommand<typeof VolumeRm> {
  static summary = 'Remove volumes, their files and their snapshots (refused while a sandbox uses one, running or stopped)'
  static aliases = ['volume remove']
  static strict = false
  static args = {name: Args.string({required: true, description: 'volume name(s)'})}

  async run() {
    const {argv} = await this.parse({flags: VolumeRm.flags, baseFlags: VeloCommand.baseFlags, args: VolumeRm.args, strict: false, enableJsonFlag: VolumeRm.enableJsonFlag})
    const {removeVolume, removeVolumeSnapshots} = await import('../../volume/volumes')
    const out = []
    for (const name of argv as string[]) {
      removeVolume(this.home, name)
      const snapshots = await removeVolumeSnapshots(this.home, name)
      out.push({name, snapshots})
      this.info(`removed volume ${name}${snapshots.length ? ` and its snapshots (${snapshots.join(', ')})` : ''}`)
    }
    return out
  }
}
