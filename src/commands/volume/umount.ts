import {Args} from '@oclif/core'
import {VeloCommand} from '../../lib/command'

export default class VolumeUmount extends VeloCommand<typeof VolumeUmount> {
  static summary = 'Unmount a volume mounted with velo volume mount'
  static args = {dir: Args.string({required: true, description: 'where it is mounted'})}

  async run() {
    const {umountVolume} = await import('../../volume/volumes')
    const r = umountVolume(this.home, this.args.dir)
    this.info(`unmounted ${r.dir}`)
    return r
  }
}
