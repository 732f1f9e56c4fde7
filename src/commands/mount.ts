import {Args, Flags} from '@oclif/core'
import {VeloCommand} from '../lib/command'
import {registryFlags} from '../registry/flags'

export default class Mount extends VeloCommand<typeof Mount> {
  static summary = 'Serve an image read-only on a directory through FUSE (no copies, any filesystem)'
  static description =
    'The velo-fuse daemon serves the image\'s merged layers (whiteouts applied) straight from the store, with exact per-path ' +
    'metadata and long kernel caches. It runs detached and is recorded in $VELO_HOME/mounts; end it with `velo umount DIR`. ' +
    'Without arguments, lists the mounts of this store and their state (active, stale = daemon gone).'
  static examples = [
    '<%= config.bin %> mount debian /mnt/debian',
    '<%= config.bin %> mount deps ./ro --foreground',
    '<%= config.bin %> mount 127.0.0.1:5000/team/app:1 /mnt/app --lazy --insecure',
    '<%= config.bin %> mount',
  ]
  static args = {
    image: Args.string({description: 'image name (with --lazy: a registry reference, HOST[:PORT]/REPO[:TAG|@DIGEST])'}),
    dir: Args.string({description: 'existing directory to mount on'}),
  }
  static flags = {
    foreground: Flags.boolean({description: 'stay attached; Ctrl-C (SIGINT) or SIGTERM unmounts', default: false}),
    debug: Flags.boolean({description: 'trace FUSE requests on stderr (with --foreground)', default: false, hidden: true}),
    lazy: Flags.boolean({description: 'IMAGE is a registry reference: pull its metadata only (velo pull --lazy) and mount it; file contents are fetched on first open (VELO_LAZY_TIMEOUT seconds, default 30, then EIO)'}),
    ...registryFlags,
  }

  async run() {
    const {mountImage, listMounts} = await import('../fuse/mounts')
    const {validateName} = await import('../lib/names')
    const {VeloError} = await import('../lib/errors')
    if (!this.args.image) {
      const mounts = listMounts(this.home)
      if (!this.jsonEnabled())
        process.stdout.write(
          (await import('../lib/table')).table(
            ['DIR', 'IMAGE', 'STATE', 'PID', 'USERS'],
            mounts.map((m) => [m.dir, m.image ?? '-', m.state, m.pid ?? '-', m.shared ? m.users.join(',') || '-' : '-']),
          ) + '\n',
        )
      return mounts
    }
    if (!this.args.dir) throw new VeloError('USAGE', 'velo mount IMAGE DIR: the directory is missing', {suggestion: 'see velo mount --help'})
    let image: string
    let pulled: unknown
    if (this.flags.lazy) {
      const {clientOptions} = await import('../registry/flags')
      const {pullImage} = await import('../registry/pull')
      const p = await pullImage(this.home, this.args.image, {...clientOptions(this.args.image, this.flags), lazy: true})
      image = p.image
      pulled = {digest: p.digest, bytesReceived: p.bytesReceived, requests: p.requests, seconds: p.seconds}
    } else image = validateName('image', this.args.image)
    const r = await mountImage(this.home, image, this.args.dir, {foreground: this.flags.foreground, debug: this.flags.debug})
    if (this.flags.foreground) {
      this.info(`unmounted ${r.dir}`)
      if (r.exitCode) process.exitCode = r.exitCode
    } else this.info(`mounted ${image} on ${r.dir} (velo-fuse pid ${r.pid}, log ${r.log})`)
    return {image: r.image, dir: r.dir, pid: r.pid, layers: r.layers, log: r.log, idmap: r.idmap === true, ...(pulled ? {lazy: true, pull: pulled} : {})}
  }
}
