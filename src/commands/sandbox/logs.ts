import {Args, Flags} from '@oclif/core'
import {VeloCommand} from '../../lib/command'

export default class SandboxLogs extends VeloCommand<typeof SandboxLogs> {
  static summary = "Show the output of a sandbox's main command"
  static description = "Its stdout to stdout and its stderr to stderr, as docker logs. Kept in the store per sandbox (tenants/NAME/logs, rotated at --log-opt max-size), across stop and start."
  static examples = ['<%= config.bin %> sandbox logs web', '<%= config.bin %> sandbox logs -f --tail 20 web', '<%= config.bin %> sandbox logs --since 5m -t web']
  static enableJsonFlag = false
  static aliases = ['logs']
  static args = {name: Args.string({required: true, description: 'sandbox name'})}
  static flags = {
    follow: Flags.boolean({char: 'f', description: 'keep printing new output until the workload ends'}),
    since: Flags.string({description: 'only output since a time (2026-12-06T10:00:00Z) or a duration back from now (30s, 5m, 2h)'}),
    tail: Flags.string({char: 'n', description: 'only the last N lines ("all": everything)'}),
    timestamps: Flags.boolean({char: 't', description: 'prefix each line with its time (RFC 3339, ns)'}),
  }

  async run() {
    const {streamLogs} = await import('../../sandbox/workload')
    const {VeloError} = await import('../../lib/errors')
    const t = this.flags.tail
    if (t !== undefined && t !== 'all' && !/^\d{1,9}$/.test(t)) throw new VeloError('USAGE', `invalid --tail ${JSON.stringify(t)}`, {suggestion: 'a number of lines, or all'})
    const write = (stream: NodeJS.WriteStream) => (b: Buffer) => void stream.write(b)
    await streamLogs(
      this.home,
      this.args.name,
      {follow: this.flags.follow, since: this.flags.since, tail: t === undefined || t === 'all' ? undefined : Number(t), timestamps: this.flags.timestamps},
      write(process.stdout),
      write(process.stderr),
    )
  }
}
