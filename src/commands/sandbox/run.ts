import {Flags} from '@oclif/core'
import {VeloCommand} from '../../lib/command'
import {createFlags, createOpts, execFlags} from './flags'

export default class SandboxRun extends VeloCommand<typeof SandboxRun> {
  static summary = 'Create a sandbox, run one command in it, and (with --rm) remove it'
  static examples = ['<%= config.bin %> sandbox run --rm -- true', '<%= config.bin %> sandbox run --rm --mount ./app:/app:ro --workdir /app -- npm start']
  static strict = false
  static enableJsonFlag = false
  static flags = {
    ...createFlags,
    ...execFlags,
    rm: Flags.boolean({description: 'remove the sandbox when the command exits'}),
    name: Flags.string({description: 'sandbox name (default: run-<random>)'}),
  }

  async run() {
    const {argv} = await this.parse({flags: SandboxRun.flags, baseFlags: VeloCommand.baseFlags, args: SandboxRun.args, strict: false, enableJsonFlag: SandboxRun.enableJsonFlag})
    const {createSandbox, execSandbox, removeSandbox} = await import('../../sandbox/tenant')
    const name = this.flags.name ?? `run-${require('node:crypto').randomBytes(5).toString('hex')}`
    await createSandbox(this.home, name, createOpts(this.flags))
    try {
      process.exitCode = await execSandbox(this.home, name, argv as string[], {env: this.flags.env, workdir: this.flags.workdir, user: this.flags.user, tty: this.flags.tty})
    } finally {
      if (this.flags.rm) await removeSandbox(this.home, name, true)
    }
  }
}
