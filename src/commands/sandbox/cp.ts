import {Args} from '@oclif/core'
import {VeloCommand} from '../../lib/command'

export default class SandboxCp extends VeloCommand<typeof SandboxCp> {
  static summary = 'Copy files between the host and a running sandbox (as docker cp)'
  static description = 'One side is NAME:/path. Into an existing directory: inside it; else under the new name. Files take the copier\'s owner.'
  static examples = ['<%= config.bin %> sandbox cp ./config.json web:/app/', '<%= config.bin %> sandbox cp web:/var/log ./web-logs']
  static args = {src: Args.string({required: true, description: 'source: a host path or NAME:/path'}), dst: Args.string({required: true, description: 'destination: a host path or NAME:/path'})}

  async run() {
    const {copy} = await import('../../sandbox/cp')
    const r = await copy(this.home, this.args.src, this.args.dst)
    this.info(`copied ${r.from} to ${r.to}`)
    return r
  }
}
