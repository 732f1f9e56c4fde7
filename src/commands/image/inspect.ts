import {Args} from '@oclif/core'
import {VeloCommand} from '../../lib/command'

export default class ImageInspect extends VeloCommand<typeof ImageInspect> {
  static summary = 'Show an image: its layers (bottom first), their sizes and its config'
  static args = {name: Args.string({required: true, description: 'image name'})}

  async run() {
    const {ManifestDb} = await import('../../manifest/db')
    const db = ManifestDb.open(this.home)
    try {
      const img = db.requireImage(this.args.name)
      const out = {...img, layerInfo: img.layers.map((l) => db.getLayer(l))}
      if (!this.jsonEnabled()) process.stdout.write(JSON.stringify(out, null, 2) + '\n')
      return out
    } finally {
      db.close()
    }
  }
}
