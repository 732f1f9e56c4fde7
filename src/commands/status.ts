import {VeloCommand, fmtBytes} from '../lib/command'
import {table} from '../lib/table'

export default class Status extends VeloCommand<typeof Status> {
  static summary = 'Show the store: logical, deduplicated and stored (compressed) bytes, dedup ratio, images'

  async run() {
    const {status} = await import('../store/maintenance')
    const s = status(this.home)
    if (!this.jsonEnabled()) {
      const ratio = s.dedupRatio === null ? '-' : `${s.dedupRatio.toFixed(2)}x`
      process.stdout.write(
        `store     ${s.home}\n` +
          `logical   ${fmtBytes(s.logicalBytes)} referenced by ${s.images.length} image(s)\n` +
          `deduped   ${fmtBytes(s.physicalBytes)} in ${s.objects} objects, dedup ${ratio}\n` +
          `stored    ${fmtBytes(s.storedBytes)}` +
          (s.compressed.objects ? `, ${s.compressed.objects} cold objects compressed (${fmtBytes(s.compressed.logicalBytes)} in ${fmtBytes(s.compressed.storedBytes)})` : ', none compressed') +
          (s.packed.objects ? `; ${s.packed.objects} of them in ${s.packed.packs} pack(s) (${fmtBytes(s.packed.logicalBytes)} in ${fmtBytes(s.packed.storedBytes)})` : '') +
          (s.chunked.objects ? `; ${s.chunked.objects} of them chunked (${fmtBytes(s.chunked.logicalBytes)}), their ${s.chunkStore.chunks} chunks in ${fmtBytes(s.chunkStore.storedBytes)}\n` : '\n') +
          `layers    ${s.layers}, farms ${s.farms}, tenants ${s.tenants}, temp files ${s.tempFiles}\n\n` +
          table(
            ['IMAGE', 'LAYERS', 'FILES', 'LOGICAL'],
            s.images.map((i) => [i.name, i.layers, i.files, fmtBytes(i.logicalBytes)]),
          ) +
          '\n',
      )
    }
    return s
  }
}
