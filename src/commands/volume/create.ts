import {Args, Flags} from '@oclif/core'
import {VeloCommand} from '../../lib/command'

export default class VolumeCreate extends VeloCommand<typeof VolumeCreate> {
  static summary = 'Create a named volume: data that outlives its sandboxes (mount it with -v NAME:/path)'
  static examples = ['<%= config.bin %> volume create cache', '<%= config.bin %> volume create seed --from default', '<%= config.bin %> sandbox run -d -v cache:/cache -- CMD']
  static args = {name: Args.string({required: true, description: 'volume name'})}
  static flags = {
    from: Flags.string({description: "fill it with an image's files (copies, with their owners and modes)"}),
    size: Flags.string({description: "what its files may take, e.g. 1g (a project quota; needs root and project quotas on the store's filesystem)"}),
  }

  async run() {
    const {createVolume} = await import('../../volume/volumes')
    const v = await createVolume(this.home, this.args.name, {from: this.flags.from, size: this.flags.size})
    this.info(`created volume ${v.name}${v.from ? ` from ${v.from}` : ''}`)
    return v
  }
}
