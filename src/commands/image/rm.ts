import {Args, Flags} from '@oclif/core'
import {VeloCommand} from '../../lib/command'
import {VeloError} from '../../lib/errors'

export default class ImageRm extends VeloCommand<typeof ImageRm> {
  static summary = 'Remove images (their data is reclaimed by `velo gc` once nothing else uses it)'
  static strict = false
  static args = {name: Args.string({required: true, description: 'image name(s)'})}
  static flags = {force: Flags.boolean({char: 'f', description: 'no error for images that do not exist'})}

  async run() {
    const {ManifestDb} = await import('../../manifest/db')
    // the parsed arguments: raw argv would take a flag's value (`--home DIR`) for an image name
    const names = ((await this.parse(ImageRm)).argv as string[]).filter((a) => !a.startsWith('-'))
    const db = ManifestDb.open(this.home)
    try {
      const removed: string[] = []
      for (const n of names) {
        if (db.deleteImageSync(n)) removed.push(n)
        else if (!this.flags.force) throw new VeloError('NOT_FOUND', `no image named ${JSON.stringify(n)}`, {suggestion: 'list images with `velo image ls`'})
      }
      const {emitEvent} = await import('../../lib/events')
      for (const n of removed) {
        emitEvent(this.home, 'image', 'rm', n)
        this.info(`removed image ${n}`)
      }
      return {removed}
    } finally {
      db.close()
    }
  }
}
