import {VeloCommand, fmtBytes} from '../../lib/command'
import {table} from '../../lib/table'

export default class ImageLs extends VeloCommand<typeof ImageLs> {
  static summary = 'List images'
  static aliases = ['image list', 'images']

  async run() {
    const {listImages} = await import('../../store/maintenance')
    const images = listImages(this.home)
    if (!this.jsonEnabled())
      process.stdout.write(
        table(
          ['NAME', 'LAYERS', 'FILES', 'SIZE', 'CREATED'],
          images.map((i) => [i.name, i.layers, i.files, fmtBytes(i.logicalBytes), i.createdAt]),
        ) + '\n',
      )
    return images
  }
}
