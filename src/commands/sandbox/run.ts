import {Flags} from '@oclif/core'
import {VeloCommand} from '../../lib/command'
import {createFlags, createOpts, execFlags, workloadFlags} from './flags'

export default class SandboxRun extends VeloCommand<typeof SandboxRun> {
  static summary = 'Create a sandbox and run one command in it: attached (and with --rm removed after), or detached as its main command (-d)'
  static examples = [
    '<%= config.bin %> sandbox run --rm -- true',
    '<%= config.bin %> sandbox run --rm default sh -c \'echo hi\'',
    '<%= config.bin %> sandbox run --rm --mount ./app:/app:ro --workdir /app -- npm start',
    '<%= config.bin %> sandbox run -d --name web --mount ./app:/app:ro --workdir /app -- npm start',
  ]
  static strict = false
  static dockerShape = 'image' as const
  static enableJsonFlag = false
  static flags = {
    ...createFlags,
    ...execFlags,
    ...workloadFlags,
    detach: Flags.boolean({char: 'd', description: 'run the command as the sandbox\'s main command, in the background, and print the sandbox\'s name (logs: velo sandbox logs NAME)'}),
    rm: Flags.boolean({description: 'remove the sandbox when the command exits (with -d: when its main command ends, or it is stopped)'}),
    name: Flags.string({description: 'sandbox name (default: run-<random>)'}),
  }

  async run() {
    const {argv} = await this.parse({flags: SandboxRun.flags, baseFlags: VeloCommand.baseFlags, args: SandboxRun.args, strict: false, enableJsonFlag: SandboxRun.enableJsonFlag})
    const {createSandbox, execSandbox, removeSandbox} = await import('../../sandbox/tenant')
    const {VeloError} = await import('../../lib/errors')
    const name = this.flags.name ?? `run-${require('node:crypto').randomBytes(5).toString('hex')}`
    if (this.flags.detach) {
      if (this.flags.tty) throw new VeloError('USAGE', '-t needs an attached command; a detached main command writes to its logs', {suggestion: 'drop -t, or run it attached'})
      await createSandbox(this.home, name, {
        ...createOpts(this.flags),
        command: argv as string[],
        workdir: this.flags.workdir,
        user: this.flags.user,
        restart: this.flags.restart,
        logOpts: this.flags['log-opt'],
        autoRemove: this.flags.rm,
      })
      process.stdout.write(`${name}\n`)
      return
    }
    if (this.flags.restart !== undefined || this.flags['log-opt'] !== undefined)
      throw new VeloError('USAGE', '--restart and --log-opt are about a detached main command', {suggestion: 'add -d'})
    const r = await createSandbox(this.home, name, {...createOpts(this.flags), command: argv as string[], attached: true})
    try {
      process.exitCode = await execSandbox(this.home, name, r.command!, {env: this.flags.env, workdir: this.flags.workdir, user: this.flags.user, tty: this.flags.tty})
    } finally {
      if (this.flags.rm) await removeSandbox(this.home, name, true)
    }
  }
}
