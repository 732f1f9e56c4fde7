import {Args} from '@oclif/core'
import {VeloCommand} from '../../lib/command'

export default class VolumeRm extends VeloCommand<typeof VolumeRm> {
  static summary = 'Remove volumes and their files (refused while a sandbox uses one, running or stopped)'
  static aliases = ['volume remove']
  static strict = false
  static args = {name: Args.string({required: true, description: 'volume name(s)'})}

  async run() {
    const {argv} = await this.parse({flags: VolumeRm.flags, baseFlags: VeloCommand.baseFlags, args: VolumeRm.args, strict: false, enableJsonFlag: VolumeRm.enableJsonFlag})
    const {removeVolume} = await import('../../volume/volumes')
    const out = []
    for (const name of argv as string[]) {
      out.push(removeVolume(this.home, name))
      this.info(`removed volume ${name}`)
    }
    return out
  }
}
