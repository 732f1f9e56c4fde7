import {Args} from '@oclif/core'
import {VeloCommand} from '../../lib/command'

export default class SandboxWait extends VeloCommand<typeof SandboxWait> {
  static summary = "Wait until a sandbox's main command has ended; print its exit code"
  static description = 'As docker wait: blocks while the workload runs (restarts included), then prints the exit code of its last run.'
  static examples = ['<%= config.bin %> sandbox wait web']
  static args = {name: Args.string({required: true, description: 'sandbox name'})}

  async run() {
    const {waitWorkload} = await import('../../sandbox/workload')
    const code = await waitWorkload(this.home, this.args.name)
    if (!this.jsonEnabled()) process.stdout.write(`${code}\n`)
    return {name: this.args.name, exitCode: code}
  }
}
