import {Args, Flags} from '@oclif/core'
import {VeloCommand} from '../lib/command'

export default class Umount extends VeloCommand<typeof Umount> {
  static summary = 'Unmount a velo FUSE mount and stop its daemon; stale mounts (daemon gone) are cleaned too'
  static examples = ['<%= config.bin %> umount /mnt/debian', '<%= config.bin %> umount ./ro --lazy']
  static args = {dir: Args.string({required: true, description: 'mount point'})}
  static flags = {
    lazy: Flags.boolean({description: 'detach even while files are open (they keep working until closed)', default: false}),
    force: Flags.boolean({description: 'also unmount a shared image mount that sandboxes still use', default: false}),
  }

  async run() {
    const {unmount} = await import('../fuse/mounts')
    const r = unmount(this.home, this.args.dir, {lazy: this.flags.lazy, force: this.flags.force})
    this.info(`unmounted ${r.dir}${r.wasStale ? ' (it was stale: its daemon was gone)' : ''}${r.daemonKilled ? ' (daemon had to be killed)' : ''}`)
    return r
  }
}
