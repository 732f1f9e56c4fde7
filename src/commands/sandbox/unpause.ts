import {Args} from '@oclif/core'
import {VeloCommand} from '../../lib/command'

export default class SandboxUnpause extends VeloCommand<typeof SandboxUnpause> {
  static summary = 'Thaw paused sandboxes: their processes run on where they stopped'
  static aliases = ['unpause']
  static strict = false
  static args = {name: Args.string({required: true, description: 'sandbox name (several may follow)'})}

  async run() {
    const {pauseSandbox} = await import('../../sandbox/tenant')
    const {argv} = await this.parse({baseFlags: VeloCommand.baseFlags, args: SandboxUnpause.args, strict: false, enableJsonFlag: SandboxUnpause.enableJsonFlag})
    const out = []
    for (const n of argv as string[]) {
      out.push(pauseSandbox(this.home, n, false))
      this.info(`unpaused ${n}`)
    }
    return out
  }
}
