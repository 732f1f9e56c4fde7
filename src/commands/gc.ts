import {Flags} from '@oclif/core'
import {VeloCommand, fmtBytes} from '../lib/command'

export default class Gc extends VeloCommand<typeof Gc> {
  static summary = 'Delete layers and objects no image or sandbox uses, and stray temp files; compress cold objects of volume snapshots'
  static flags = {
    'dry-run': Flags.boolean({description: 'report what would be removed, remove nothing'}),
    wait: Flags.integer({description: 'seconds to wait for running writers to finish', default: 300}),
    'compact-threshold': Flags.string({description: 'rewrite a pack of small cold objects once this share of its bytes is dead (0-1; 0: any dead object)', default: '0.5'}),
  }

  async run() {
    const {gc} = await import('../store/maintenance')
    const threshold = Number(this.flags['compact-threshold'])
    const r = gc(this.home, {dryRun: this.flags['dry-run'], waitSec: this.flags.wait, compactThreshold: Number.isNaN(threshold) ? -1 : threshold})
    this.info(
      `${r.dryRun ? 'would remove' : 'removed'} ${r.removedLayers} layer(s), ${r.removedObjects} object(s) (${fmtBytes(r.removedBytes)}), ` +
        `${r.removedTempFiles} temp file(s), ${r.removedFarms} farm(s); kept ${r.keptObjects} object(s)`,
    )
    if (r.frozenObjects || r.coldFarms)
      this.info(
        `compressed ${r.frozenObjects} cold object(s) of volume snapshots (${fmtBytes(r.frozenBytes)} → ${fmtBytes(r.frozenStoredBytes)}${r.packedObjects ? `; ${r.packedObjects} of them into ${r.newPacks} pack(s)` : ''}${r.chunkedObjects ? `; ${r.chunkedObjects} of them as chunks, ${r.newChunks} new` : ''}); dropped ${r.coldFarms} unused snapshot farm(s)`,
      )
    if (r.compaction.rewrittenPacks)
      this.info(
        `compacted ${r.compaction.rewrittenPacks} pack(s) of small cold objects: dropped ${r.compaction.droppedObjects} object(s) no longer needed there (dead, or plain again: ${fmtBytes(r.compaction.droppedBytes)}), ${fmtBytes(r.compaction.bytesBefore)} → ${fmtBytes(r.compaction.bytesAfter)}`,
      )
    for (const d of r.compaction.damagedPacks) this.warning(`left a pack as it was: ${d} (run velo fsck)`)
    if (r.removedChunks) this.info(`removed ${r.removedChunks} chunk(s) no cold object names (${fmtBytes(r.removedChunkBytes)})`)
    if (!this.jsonEnabled())
      for (const f of r.ignoredHolds) this.warning(`ignored ${f}: not a gc hold (a regular file owned by the uid its name starts with, holding a hold's JSON)`)
    return r
  }
}
