import {Args, Flags} from '@oclif/core'
import {VeloCommand} from '../../../lib/command'

export default class VolumeVaultUnlock extends VeloCommand<typeof VolumeVaultUnlock> {
  static summary = "Unlock a volume's vault: its files at .vault in every mount of the volume (host mounts, running sandboxes, and sandboxes as they start)"
  static examples = ['<%= config.bin %> volume vault unlock secrets', 'printf %s "$PW" | <%= config.bin %> volume vault unlock secrets --password-stdin']
  static args = {name: Args.string({required: true, description: 'volume name'})}
  static flags = {
    'password-stdin': Flags.boolean({description: 'read the password from stdin (else it is asked for on the terminal)'}),
  }

  async run() {
    const {readPassword} = await import('../../../lib/password')
    const {unlockVault} = await import('../../../volume/vault')
    const password = await readPassword({stdin: this.flags['password-stdin'], prompt: `password for the vault of volume ${this.args.name}: `})
    const r = await unlockVault(this.home, this.args.name, password)
    this.info(`the vault of volume ${r.volume} is ${r.already ? 'already ' : ''}unlocked`)
    for (const w of r.warnings) this.warning(w)
    return r
  }
}
