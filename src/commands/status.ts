import {VeloCommand, fmtBytes} from '../lib/command'
import {table} from '../lib/table'

export default class Status extends VeloCommand<typeof Status> {
  static summary = 'Show the store: objects, logical vs physical bytes, dedup ratio, images'

  async run() {
    const {status} = await import('../store/maintenance')
    const s = status(this.home)
    if (!this.jsonEnabled()) {
      const ratio = s.dedupRatio === null ? '-' : `${s.dedupRatio.toFixed(2)}x`
      process.stdout.write(
        `store     ${s.home}\n` +
          `objects   ${s.objects} (${fmtBytes(s.physicalBytes)} stored)\n` +
          `logical   ${fmtBytes(s.logicalBytes)} referenced by ${s.images.length} image(s), dedup ${ratio}\n` +
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
