import * as path from 'node:path'
import {Args, Flags} from '@oclif/core'
import {VeloCommand, fmtBytes} from '../lib/command'
import {validateName} from '../lib/names'

export default class Ingest extends VeloCommand<typeof Ingest> {
  static summary = 'Store a directory tree as one layer and an image of that name'
  static description = 'Identical files are stored once (BLAKE3 content addressing). Prints files, logical bytes, new bytes stored, dedup ratio and time.'
  static examples = ['<%= config.bin %> ingest ./node_modules --name deps', '<%= config.bin %> ingest /srv/rootfs --json']
  static args = {dir: Args.string({required: true, description: 'directory to ingest'})}
  static flags = {name: Flags.string({description: 'image name (default: the directory name)'})}

  async run() {
    const {ingestDirectory} = await import('../store/ingest')
    const {stderrProgress} = await import('../lib/progress')
    const name = validateName('image', this.flags.name ?? path.basename(path.resolve(this.args.dir)))
    const r = await ingestDirectory(this.home, this.args.dir, name, stderrProgress('ingest', !this.jsonEnabled()))
    const ratio = r.newBytes === 0 ? 'all deduplicated' : `${r.dedupRatio.toFixed(2)}x`
    this.info(
      `ingested ${this.args.dir} as image ${r.image} (layer ${r.layer.slice(0, 12)})\n` +
        `  files ${r.files}, dirs ${r.dirs}, symlinks ${r.symlinks}, other ${r.others}` +
        (r.skippedSockets ? `, sockets skipped ${r.skippedSockets}` : '') +
        `\n  logical ${fmtBytes(r.logicalBytes)}, new objects ${r.newObjects}, new bytes ${fmtBytes(r.newBytes)}, dedup ${ratio}, ${r.seconds.toFixed(2)} s`,
    )
    for (const w of r.warnings) this.warning(w)
    return {...r, dedupRatio: Number.isFinite(r.dedupRatio) ? r.dedupRatio : null}
  }
}
