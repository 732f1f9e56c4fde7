import {Args, Flags} from '@oclif/core'
import {VeloCommand, fmtBytes} from '../lib/command'
import {registryFlags} from '../registry/flags'

export default class Push extends VeloCommand<typeof Push> {
  static summary = 'Push an image to an OCI registry'
  static description =
    "By default velo's own artifact: layer manifests, a pack index and packs of objects, all listed by one OCI manifest (artifactType application/vnd.velo.image.v1), uploading only what the registry lacks (packs it has are reused). With --oci, a plain OCI image (uncompressed layer tars) that `docker pull` reads. docs/registry.md"
  static examples = [
    '<%= config.bin %> push app 127.0.0.1:5000/team/app:1 --insecure',
    'echo "$PW" | <%= config.bin %> push app registry.example:5000/team/app:1 --ca ca.pem --username ci --password-stdin',
    '<%= config.bin %> push app 127.0.0.1:5000/team/app:1 --oci --insecure   # for docker pull',
  ]
  static args = {
    image: Args.string({required: true, description: 'velo image name'}),
    ref: Args.string({required: true, description: 'HOST[:PORT]/REPO[:TAG] (the tag defaults to latest)'}),
  }
  static flags = {
    ...registryFlags,
    oci: Flags.boolean({description: 'push a plain OCI image (for docker pull and other OCI tools) instead of a velo image'}),
  }

  async run() {
    const {clientOptions} = await import('../registry/flags')
    const {progressLine} = await import('../lib/progress')
    const line = progressLine(!this.jsonEnabled(), 'push')
    const opts = {...clientOptions(this.args.ref, this.flags), onProgress: line ? (n: number, t: number) => line(n, t) : undefined}
    const r = this.flags.oci
      ? await (await import('../registry/plain')).pushOci(this.home, this.args.image, this.args.ref, opts)
      : await (await import('../registry/push')).pushImage(this.home, this.args.image, this.args.ref, opts)
    if (!this.jsonEnabled() && process.stderr.isTTY) process.stderr.write('\r\x1b[K')
    const b = r.blobs
    this.info(
      `pushed ${r.image} to ${r.ref} (${r.format}${r.format === 'velo' ? `, ${r.objects} objects in ${r.packs.total} packs, ${r.packs.reused} reused` : ''}): ` +
        `${b.uploaded} blobs uploaded, ${b.existed} already there, ${b.mounted} mounted; sent ${fmtBytes(r.bytesSent)}, ${r.seconds.toFixed(2)} s`,
    )
    this.info(`digest: ${r.digest}`)
    return r
  }
}
