import {Args} from '@oclif/core'
import {VeloCommand} from '../../lib/command'
import {registryFlags} from '../../registry/flags'

export default class RegistryRm extends VeloCommand<typeof RegistryRm> {
  static summary = 'Delete an image (the manifest a tag names) from a registry'
  static description =
    "Deletes the manifest by digest (registry API v2 has no tag-only delete before distribution 3): every tag on that manifest goes with it. Its blobs stay until the registry's garbage collection, which keeps every blob another manifest lists. The registry needs storage.delete.enabled."
  static examples = ['<%= config.bin %> registry rm 127.0.0.1:5000/team/app:1 --insecure']
  static args = {ref: Args.string({required: true, description: 'HOST[:PORT]/REPO[:TAG|@DIGEST]'})}
  static flags = {...registryFlags}

  async run() {
    const {clientOptions} = await import('../../registry/flags')
    const {deleteRemote} = await import('../../registry/plain')
    const r = await deleteRemote(this.args.ref, clientOptions(this.args.ref, this.flags))
    this.info(`deleted ${r.ref} (${r.digest})`)
    return r
  }
}
