import {Args, Flags} from '@oclif/core'
import {VeloCommand, fmtBytes} from '../../../lib/command'

export default class VolumeVaultCreate extends VeloCommand<typeof VolumeVaultCreate> {
  static summary = "Give a volume a vault: an encrypted directory at .vault in its mounts, absent while locked (left unlocked)"
  static examples = ['<%= config.bin %> volume vault create secrets', 'printf %s "$PW" | <%= config.bin %> volume vault create secrets --password-stdin --size 256m']
  static args = {name: Args.string({required: true, description: 'volume name'})}
  static flags = {
    'password-stdin': Flags.boolean({description: 'read the password from stdin (else it is asked for on the terminal, twice)'}),
    size: Flags.string({description: 'what its files may take, e.g. 256m (default 1g; a sparse file: only what is written takes disk)'}),
  }

  async run() {
    const {readPassword} = await import('../../../lib/password')
    const {createVault} = await import('../../../volume/vault')
    const password = await readPassword({stdin: this.flags['password-stdin'], prompt: `password for the vault of volume ${this.args.name}: `, confirm: true})
    const r = await createVault(this.home, this.args.name, password, {size: this.flags.size})
    this.info(`volume ${r.volume} has a vault of ${fmtBytes(r.size)}, unlocked: .vault in its mounts`)
    for (const w of r.warnings) this.warning(w)
    return r
  }
}
