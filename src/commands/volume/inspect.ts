import {Args} from '@oclif/core'
import {VeloCommand} from '../../lib/command'

export default class VolumeInspect extends VeloCommand<typeof VolumeInspect> {
  static summary = "Show a volume: its record, where its files are, and the sandboxes that use it"
  static args = {name: Args.string({required: true, description: 'volume name'})}

  async run() {
    const {inspectVolume} = await import('../../volume/volumes')
    const r = inspectVolume(this.home, this.args.name)
    if (!this.jsonEnabled()) process.stdout.write(JSON.stringify(r, null, 2) + '\n')
    return r
  }
}
