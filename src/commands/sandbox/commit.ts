import {Args, Flags} from '@oclif/core'
import {VeloCommand, fmtBytes} from '../../lib/command'

export default class SandboxCommit extends VeloCommand<typeof SandboxCommit> {
  static summary = "Store a sandbox as a new image: its image's layers + its changes as one more layer"
  static description =
    'Deletions (overlay whiteouts) and replaced directories (opaque dirs) become layer deletions, exactly as Docker commits them. A running sandbox is paused while its changes are read (as docker commit), then runs on; --no-pause refuses a running one instead.'
  static examples = ['<%= config.bin %> sandbox commit ci-1 ci-base:2', '<%= config.bin %> sandbox stop ci-1 && <%= config.bin %> sandbox commit ci-1 ci-base:2']
  static args = {
    name: Args.string({required: true, description: 'sandbox name'}),
    image: Args.string({required: true, description: 'new image name'}),
  }
  static flags = {
    pause: Flags.boolean({description: 'pause a running sandbox while its changes are read', default: true, allowNo: true}),
  }

  async run() {
    const {commitSandbox} = await import('../../image/commit')
    const r = await commitSandbox(this.home, this.args.name, this.args.image, {pause: this.flags.pause})
    this.info(
      `committed sandbox ${r.sandbox} as image ${r.image}: ${r.layers.length} layers (new layer ${r.layer.slice(0, 12)}: ${r.files} files, ` +
        `${r.whiteouts} deletions, ${r.opaqueDirs} opaque dirs), new bytes ${fmtBytes(r.newBytes)}, ${r.seconds.toFixed(2)} s`,
    )
    for (const w of r.warnings) this.warning(w)
    return r
  }
}
