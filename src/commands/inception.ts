import {Flags} from '@oclif/core'
import {VeloCommand} from '../lib/command'

export default class Inception extends VeloCommand<typeof Inception> {
  static summary = 'Put this directory in inception mode: later commands here run with the image projected'
  static description =
    'Builds the projection now and records it in .velo/ (state.json, env). With the shell hook (`eval "$(velo hook --shell bash)"`), ' +
    'plain node, npm, python3 in this directory then run through the shim without typing `velo run`. `velo wake` leaves the mode with ' +
    'every file real.'
  static examples = ['<%= config.bin %> inception --image deps', '<%= config.bin %> inception --image deps --phantom']
  static flags = {
    image: Flags.string({description: 'image to project', required: true}),
    at: Flags.string({description: 'projection root (default: ./<image source directory name>)'}),
    solid: Flags.boolean({description: 'a skeleton on disk in the project (default)', exclusive: ['phantom']}),
    phantom: Flags.boolean({description: 'nothing written into the project except .velo/', exclusive: ['solid']}),
  }

  async run() {
    const {incept} = await import('../run/inception')
    const {state, projection} = incept(this.home, process.cwd(), {image: this.flags.image, at: this.flags.at, mode: this.flags.phantom ? 'phantom' : 'solid'})
    this.info(
      `inception: image ${state.image} projected at ${state.root} (${state.mode}${projection.build.state === 'built' ? `, ${projection.build.files} files` : ', reused'})\n` +
        `  state in ${process.cwd()}/.velo; enable the shell hook with: eval "$(velo hook --shell bash)"`,
    )
    return {...state, build: projection.build}
  }
}
