import {Args} from '@oclif/core'
import {VeloCommand, fmtBytes} from '../../lib/command'

export default class ImageCheckout extends VeloCommand<typeof ImageCheckout> {
  static summary = 'Materialize an image as a plain directory tree (copies, not links into the store)'
  static args = {
    name: Args.string({required: true, description: 'image name'}),
    dir: Args.string({required: true, description: 'target directory (new or empty)'}),
  }

  async run() {
    const {checkoutImage} = await import('../../store/checkout')
    const {stderrProgress} = await import('../../lib/progress')
    const r = checkoutImage(this.home, this.args.name, this.args.dir, stderrProgress('checkout', !this.jsonEnabled()))
    this.info(`checked out ${r.image} to ${r.dest}: ${r.files} files, ${fmtBytes(r.bytes)}, ${r.seconds.toFixed(2)} s`)
    return r
  }
}
