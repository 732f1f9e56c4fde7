import {Args} from '@oclif/core'
import {VeloCommand} from '../../lib/command'

/** `velo sandbox pause` and, as its subclass, `unpause`: one verb, two directions (src/sandbox/pause.ts pauseSandbox). */
export default class SandboxPause extends VeloCommand<typeof SandboxPause> {
  static summary = 'Freeze every process of running sandboxes (cgroup freezer) until unpause'
  static aliases = ['pause']
  static strict = false
  static args = {name: Args.string({required: true, description: 'sandbox name (several may follow)'})}
  static paused = true

  async run() {
    const {pauseSandbox} = await import('../../sandbox/pause')
    const paused = (this.constructor as typeof SandboxPause).paused
    const {argv} = await this.parse({baseFlags: VeloCommand.baseFlags, args: SandboxPause.args, strict: false, enableJsonFlag: SandboxPause.enableJsonFlag})
    const out = []
    for (const n of argv as string[]) {
      out.push(pauseSandbox(this.home, n, paused))
      this.info(`${paused ? 'paused' : 'unpaused'} ${n}`)
    }
    return out
  }
}
