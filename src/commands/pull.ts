import {Args, Flags} from '@oclif/core'
import {VeloCommand, fmtBytes} from '../lib/command'
import {registryFlags} from '../registry/flags'

export default class Pull extends VeloCommand<typeof Pull> {
  static summary = 'Pull an image from an OCI registry (a velo image, or a plain Docker/OCI image)'
  static description =
    'A velo image: its layers, then only the objects this store lacks, by Range GETs into its packs, each verified against its BLAKE3 name before it is stored; an interrupted pull resumes (what is stored is not fetched again). A Docker/OCI image goes through `velo image import`. The image is named --name, else REPO:TAG with "/" as "_". docs/registry.md'
  static examples = ['<%= config.bin %> pull 127.0.0.1:5000/team/app:1 --insecure', '<%= config.bin %> pull registry.example:5000/team/app:1 --ca ca.pem --name app']
  static args = {ref: Args.string({required: true, description: 'HOST[:PORT]/REPO[:TAG|@DIGEST]'})}
  static flags = {
    ...registryFlags,
    name: Flags.string({description: 'velo image name (default: REPO:TAG with "/" as "_")'}),
    lazy: Flags.boolean({description: 'metadata only (layers, pack index): file contents are fetched when a mount of the image first opens them (velo mount, sandbox --backend fuse)', exclusive: ['all-objects']}),
    'all-objects': Flags.boolean({description: 'fetch every object of the image, also of layers already stored: turns a lazy image into a complete one (REF may then be the local image name)'}),
  }

  async run() {
    const {clientOptions} = await import('../registry/flags')
    const {pullImage} = await import('../registry/pull')
    const {progressLine} = await import('../lib/progress')
    const line = progressLine(!this.jsonEnabled(), 'pull')
    const {lazySource} = await import('../registry/lazy')
    const src = this.flags['all-objects'] ? lazySource(this.home, this.args.ref, this.flags) : {ref: this.args.ref, flags: this.flags, name: this.flags.name}
    const r = await pullImage(this.home, src.ref, {
      ...clientOptions(src.ref, src.flags),
      name: src.name,
      lazy: this.flags.lazy,
      allObjects: this.flags['all-objects'],
      onProgress: line ? (n, t) => line(n, t) : undefined,
    })
    if (!this.jsonEnabled() && process.stderr.isTTY) process.stderr.write('\r\x1b[K')
    for (const w of r.warnings) this.warning(w)
    const existed = r.layers.filter((l) => l.existed).length
    this.info(
      `pulled ${r.ref} as ${r.image}${r.lazy ? ' lazily (objects fetched on first read through a mount)' : ''}${r.replaced ? ' (replaced the old image of that name)' : ''} (${r.format}): ${r.layers.length} layers (${existed} already stored), ` +
        `${r.objects.fetched} objects fetched, received ${fmtBytes(r.bytesReceived)} in ${r.requests} requests, ${r.seconds.toFixed(2)} s`,
    )
    return r
  }
}
