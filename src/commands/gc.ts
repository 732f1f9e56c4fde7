import {Flags} from '@oclif/core'
import {VeloCommand, fmtBytes} from '../lib/command'

export default class Gc extends VeloCommand<typeof Gc> {
  static summary = 'Delete layers and objects no image or sandbox uses, and stray temp files; compress cold objects of volume snapshots'
  static flags = {
    'dry-run': Flags.boolean({description: 'report what would be removed, remove nothing'}),
    wait: Flags.integer({description: 'seconds to wait for running writers to finish', default: 300}),
  }

  async run() {
    const {gc} = await import('../store/maintenance')
    const r = gc(this.home, {dryRun: this.flags['dry-run'], waitSec: this.flags.wait})
    this.info(
      `${r.dryRun ? 'would remove' : 'removed'} ${r.removedLayers} layer(s), ${r.removedObjects} object(s) (${fmtBytes(r.removedBytes)}), ` +
        `${r.removedTempFiles} temp file(s), ${r.removedFarms} farm(s); kept ${r.keptObjects} object(s)`,
    )
    if (r.frozenObjects || r.coldFarms)
      this.info(
        `compressed ${r.frozenObjects} cold object(s) of volume snapshots (${fmtBytes(r.frozenBytes)} → ${fmtBytes(r.frozenStoredBytes)}${r.chunkedObjects ? `; ${r.chunkedObjects} of them as chunks, ${r.newChunks} new` : ''}); dropped ${r.coldFarms} unused snapshot farm(s)`,
      )
    if (r.removedChunks) this.info(`removed ${r.removedChunks} chunk(s) no cold object names (${fmtBytes(r.removedChunkBytes)})`)
    if (!this.jsonEnabled())
      for (const f of r.ignoredHolds) this.warning(`ignored ${f}: not a gc hold (a regular file owned by the uid its name starts with, holding a hold's JSON)`)
    return r
  }
}
