import {Args, Flags} from '@oclif/core'
import {VeloCommand, fmtBytes} from '../../lib/command'

export default class VolumeSnapshot extends VeloCommand<typeof VolumeSnapshot> {
  static summary = "Snapshot a volume: its files as they are now, stored once in the store (deduplicated against everything in it)"
  static examples = ['<%= config.bin %> volume snapshot cache before-upgrade', '<%= config.bin %> volume restore cache before-upgrade']
  static args = {name: Args.string({required: true, description: 'volume name'}), snapshot: Args.string({required: true, description: 'snapshot name'})}
  static flags = {
    pause: Flags.boolean({description: 'pause the running sandboxes that may write the volume for the snapshot (one instant of their writes)', default: true, allowNo: true}),
  }

  async run() {
    const {snapshotVolume} = await import('../../volume/volumes')
    const r = await snapshotVolume(this.home, this.args.name, this.args.snapshot, {pause: this.flags.pause})
    this.info(`snapshot ${r.name} of volume ${this.args.name}: ${r.files} files, ${fmtBytes(r.logicalBytes)}, ${fmtBytes(r.newBytes)} new in the store${r.paused.length ? ` (paused for it: ${r.paused.join(', ')})` : ''}`)
    return r
  }
}
