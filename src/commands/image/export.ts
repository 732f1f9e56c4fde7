import {Args, Flags} from '@oclif/core'
import {VeloCommand, fmtBytes} from '../../lib/command'

export default class ImageExport extends VeloCommand<typeof ImageExport> {
  static summary = 'Export an image as a docker save tarball (`docker load` accepts it)'
  static description =
    'Writes the legacy docker-save layout (one layer tar per velo layer, with whiteouts and opaque markers, a config with rootfs.diff_ids, manifest.json). The file appears only when complete.'
  static examples = ['<%= config.bin %> image export app -o app.tar && docker load -i app.tar']
  static args = {name: Args.string({required: true, description: 'image name'})}
  static flags = {
    output: Flags.string({char: 'o', required: true, description: 'output file'}),
    tag: Flags.string({description: 'the repo:tag Docker gives the loaded image (default: the image name, ":latest" if it has no tag)'}),
  }

  async run() {
    const {exportImage} = await import('../../image/export')
    const r = await exportImage(this.home, this.args.name, this.flags.output, {tag: this.flags.tag})
    this.info(`exported ${r.image} as ${r.tag} to ${r.file}: ${r.layers.length} layers, ${fmtBytes(r.bytes)}, ${r.seconds.toFixed(2)} s`)
    return r
  }
}
