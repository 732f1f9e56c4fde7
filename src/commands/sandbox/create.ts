import {Args} from '@oclif/core'
import {VeloCommand} from '../../lib/command'
import {createFlags, createOpts} from './flags'

export default class SandboxCreate extends VeloCommand<typeof SandboxCreate> {
  static summary = 'Create and start a sandbox'
  static description = 'Own mount, pid, uts, ipc, net and cgroup namespaces; an overlay root over the image\'s shared link farms; limits from the profile and flags.'
  static examples = ['<%= config.bin %> sandbox create tenant-a', '<%= config.bin %> sandbox create ci-1 --profile ci-runner --memory 512m --mount ./src:/src:ro']
  static args = {name: Args.string({required: true, description: 'sandbox name'})}
  static flags = createFlags

  async run() {
    const {createSandbox} = await import('../../sandbox/tenant')
    const r = await createSandbox(this.home, this.args.name, createOpts(this.flags))
    this.info(`created sandbox ${r.name} (image ${r.image}, profile ${r.profile}, init pid ${r.pid})`)
    return r
  }
}
