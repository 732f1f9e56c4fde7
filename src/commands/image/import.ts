import {Args, Flags} from '@oclif/core'
import {VeloCommand, fmtBytes} from '../../lib/command'

export default class ImageImport extends VeloCommand<typeof ImageImport> {
  static summary = 'Import a docker save tar, an OCI image layout (dir or tar) or a rootfs tarball'
  static description =
    'Streams the archive once (FILE, or - for stdin); gzip-compressed archives and layers are fine. Each image layer becomes one velo layer, so images that share base layers share storage. Every digest is verified; nothing is stored as an image unless the whole archive checks out.'
  static examples = [
    '<%= config.bin %> image import busybox.tar',
    'docker save debian:12 | <%= config.bin %> image import -',
    '<%= config.bin %> image import rootfs.tar.gz --name base --format rootfs',
    '<%= config.bin %> image import ./oci-layout-dir --name app',
  ]
  static args = {file: Args.string({required: true, description: 'archive file, OCI layout directory, or - for stdin'})}
  static flags = {
    name: Flags.string({description: 'image name (default: the image tag in the archive; for a rootfs tar, the file name)'}),
    format: Flags.string({description: 'archive kind (auto: detected from the first member)', options: ['auto', 'image', 'rootfs'], default: 'auto'}),
  }

  async run() {
    const {importImage} = await import('../../image/import')
    const {progressLine} = await import('../../lib/progress')
    const r = await importImage(this.home, this.args.file, {name: this.flags.name, format: this.flags.format as never, onProgress: progressLine(!this.jsonEnabled())})
    if (!this.jsonEnabled() && process.stderr.isTTY) process.stderr.write('\r\x1b[K')
    for (const img of r.images)
      this.info(`imported ${img.name} (${img.layers.length} layer${img.layers.length === 1 ? '' : 's'}${img.replaced ? ', replaced the old image of that name' : ''})`)
    const existed = r.layers.filter((l) => l.existed).length
    this.info(
      `  format ${r.format}, layers ${r.layers.length} (${existed} already stored), logical ${fmtBytes(r.logicalBytes)}, ` +
        `new objects ${r.newObjects}, new bytes ${fmtBytes(r.newBytes)}, ${r.seconds.toFixed(2)} s`,
    )
    for (const w of r.warnings) this.warning(w)
    return r
  }
}
