import {Args} from '@oclif/core'
import {VeloCommand, fmtBytes} from '../../lib/command'

export default class ImageProfile extends VeloCommand<typeof ImageProfile> {
  static summary = 'Record which files a start-up reads (in a sandbox), so pushes put them first and lazy pulls prefetch them'
  static description =
    'Runs CMD in a sandbox (fuse backend, a mount of its own that notes every file opened) and stores the objects read, first open first, with the image ($VELO_HOME/prefetch/IMAGE.json). `velo push` then packs them first, in packs of their own, and a `velo pull --lazy` (mount --lazy, sandbox create --lazy) fetches them in one request per 16 MiB before it returns. docs/registry.md'
  static examples = ['<%= config.bin %> image profile app -- node /app/server.js --check']
  static strict = false
  static args = {image: Args.string({required: true, description: 'image name'})}

  async run() {
    const {argv} = await this.parse({flags: ImageProfile.flags, baseFlags: VeloCommand.baseFlags, args: ImageProfile.args, strict: false, enableJsonFlag: ImageProfile.enableJsonFlag})
    const {validateName} = await import('../../lib/names')
    const {profileImage} = await import('../../image/profile')
    const r = await profileImage(this.home, validateName('image', this.args.image), (argv as string[]).slice(1))
    this.info(`profiled ${r.image}: ${r.command.join(' ')} exited ${r.exitCode} having read ${r.objects} files (${fmtBytes(r.bytes)}); push the image to make a lazy start fetch them first`)
    return r
  }
}
