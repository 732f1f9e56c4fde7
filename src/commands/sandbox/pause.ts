import {Args} from '@oclif/core'
import {VeloCommand} from '../../lib/command'

export default class SandboxPause extends VeloCommand<typeof SandboxPause> {
  static summary = 'Freeze every process of running sandboxes (cgroup freezer) until unpause'
  static aliases = ['pause']
  static strict = false
  static args = {name: Args.string({required: true, description: 'sandbox name (several may follow)'})}

  async run() {
    const {pauseSandbox} = await import('../../sandbox/tenant')
    const {argv} = await this.parse({baseFlags: VeloCommand.baseFlags, args: SandboxPause.args, strict: false, enableJsonFlag: SandboxPause.enableJsonFlag})
    const out = []
    for (const n of argv as string[]) {
      out.push(pauseSandbox(this.home, n, true))
      this.info(`paused ${n}`)
    }
    return out
  }
}
