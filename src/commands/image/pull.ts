import {Args, Flags} from '@oclif/core'
import {VeloCommand, fmtBytes} from '../../lib/command'

export default class ImagePull extends VeloCommand<typeof ImagePull> {
  static summary = 'Import an image from the local Docker daemon'
  static description =
    "Streams the daemon's `docker save` output for REF straight into `velo image import` (no temp file). The daemon is DOCKER_HOST, else /var/run/docker.sock."
  static examples = ['<%= config.bin %> image pull debian:12', 'DOCKER_HOST=unix:///run/user/1000/docker.sock <%= config.bin %> image pull app:dev --name app']
  static args = {ref: Args.string({required: true, description: 'image reference or id known to the Docker daemon'})}
  static flags = {name: Flags.string({description: 'velo image name (default: REF)'})}

  async run() {
    const {pullImage} = await import('../../image/pull')
    const {progressLine} = await import('../../lib/progress')
    const r = await pullImage(this.home, this.args.ref, {name: this.flags.name, onProgress: progressLine(!this.jsonEnabled())})
    if (!this.jsonEnabled() && process.stderr.isTTY) process.stderr.write('\r\x1b[K')
    const existed = r.layers.filter((l) => l.existed).length
    this.info(
      `pulled ${r.ref} as ${r.images.map((i) => i.name).join(', ')}: ${r.layers.length} layers (${existed} already stored), ` +
        `read ${fmtBytes(r.inputBytes)}, new bytes ${fmtBytes(r.newBytes)}, ${r.seconds.toFixed(2)} s`,
    )
    return r
  }
}
