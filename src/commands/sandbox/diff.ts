import {Args} from '@oclif/core'
import {VeloCommand} from '../../lib/command'

export default class SandboxDiff extends VeloCommand<typeof SandboxDiff> {
  static summary = 'List what a sandbox changed: A added, C changed, D deleted'
  static args = {name: Args.string({required: true, description: 'sandbox name'})}

  async run() {
    const {diffSandbox} = await import('../../sandbox/tenant')
    const d = diffSandbox(this.home, this.args.name)
    if (!this.jsonEnabled()) process.stdout.write(d.map((e) => `${e.kind} ${e.path}`).join('\n') + (d.length ? '\n' : ''))
    return d
  }
}
