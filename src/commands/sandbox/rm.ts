import {Args, Flags} from '@oclif/core'
import {VeloCommand} from '../../lib/command'

export default class SandboxRm extends VeloCommand<typeof SandboxRm> {
  static summary = 'Remove sandboxes: processes, mounts, cgroups and files'
  static strict = false
  static args = {name: Args.string({required: true, description: 'sandbox name(s)'})}
  static flags = {force: Flags.boolean({char: 'f', description: 'kill it if it is running'})}

  async run() {
    const {argv} = await this.parse({flags: SandboxRm.flags, baseFlags: VeloCommand.baseFlags, args: SandboxRm.args, strict: false, enableJsonFlag: SandboxRm.enableJsonFlag})
    const {removeSandbox} = await import('../../sandbox/tenant')
    const out = []
    for (const n of argv as string[]) {
      out.push(await removeSandbox(this.home, n, this.flags.force))
      this.info(`removed ${n}`)
    }
    return out
  }
}
