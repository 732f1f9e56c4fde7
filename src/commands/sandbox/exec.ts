import {Args, Flags} from '@oclif/core'
import {VeloCommand} from '../../lib/command'
import {execFlags} from './flags'

export default class SandboxExec extends VeloCommand<typeof SandboxExec> {
  static summary = 'Run a command in a running sandbox'
  static description = 'stdin, stdout and stderr pass through; the exit code comes back (128+N when the command dies of signal N).'
  static examples = ['<%= config.bin %> sandbox exec tenant-a npm start', '<%= config.bin %> sandbox exec -it tenant-a sh', '<%= config.bin %> sandbox exec tenant-a sh -c \'echo $HOME\'']
  static strict = false
  static dockerShape = 'name' as const
  static aliases = ['exec']
  static enableJsonFlag = false
  static args = {name: Args.string({required: true, description: 'sandbox name'})}
  static flags = {...execFlags, env: Flags.string({char: 'e', description: 'environment variable KEY=VALUE (repeatable)', multiple: true, multipleNonGreedy: true})}

  async run() {
    const {argv} = await this.parse({flags: SandboxExec.flags, baseFlags: VeloCommand.baseFlags, args: SandboxExec.args, strict: false, enableJsonFlag: SandboxExec.enableJsonFlag})
    const {execSandbox} = await import('../../sandbox/tenant')
    const cmd = (argv as string[]).slice(1)
    process.exitCode = await execSandbox(this.home, this.args.name, cmd, {env: this.flags.env, workdir: this.flags.workdir, user: this.flags.user, tty: this.flags.tty})
  }
}
