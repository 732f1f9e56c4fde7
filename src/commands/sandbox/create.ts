import {Args, Flags} from '@oclif/core'
import {VeloCommand} from '../../lib/command'
import {registryFlags} from '../../registry/flags'
import {createFlags, createOpts, workloadFlags} from './flags'

export default class SandboxCreate extends VeloCommand<typeof SandboxCreate> {
  static summary = 'Create and start a sandbox, optionally with a main command (a workload)'
  static description =
    "Own mount, pid, uts, ipc, net and cgroup namespaces; an overlay root over the image's shared link farms; limits from the profile and flags. " +
    'With -- CMD, CMD is the main command: its output goes to `velo sandbox logs`, its exit stops the sandbox (or restarts the command, --restart), `velo sandbox wait` returns its exit code.'
  static examples = [
    '<%= config.bin %> sandbox create tenant-a',
    '<%= config.bin %> sandbox create ci-1 --profile ci-runner --memory 512m --mount ./src:/src:ro',
    '<%= config.bin %> sandbox create web --mount ./app:/app:ro --restart on-failure:3 -- node /app/server.js',
  ]
  static strict = false
  static dockerShape = 'name' as const
  static args = {name: Args.string({required: true, description: 'sandbox name'})}
  static flags = {
    ...createFlags,
    ...workloadFlags,
    workdir: Flags.string({char: 'w', description: "the main command's working directory (default: the image's)"}),
    user: Flags.string({char: 'u', description: 'USER or UID[:GID] the main command runs as (default: the image\'s)'}),
    lazy: Flags.boolean({description: '--image is a registry reference: pull its metadata only (velo pull --lazy) and run over a velo-fuse mount that fetches file contents on first read (implies --backend fuse)'}),
    ...registryFlags,
  }

  async run() {
    const {argv} = await this.parse({flags: SandboxCreate.flags, baseFlags: VeloCommand.baseFlags, args: SandboxCreate.args, strict: false, enableJsonFlag: SandboxCreate.enableJsonFlag})
    const {createSandbox} = await import('../../sandbox/tenant')
    const cmd = (argv as string[]).slice(1)
    const lazy = this.flags.lazy ? await lazyImage(this.home, this.flags) : {}
    const r = await createSandbox(this.home, this.args.name, {
      ...createOpts(this.flags),
      ...lazy,
      ...(cmd.length || this.flags.entrypoint !== undefined ? {command: cmd} : {}),
      restart: this.flags.restart,
      logOpts: this.flags['log-opt'],
      workdir: this.flags.workdir,
      user: this.flags.user,
    })
    this.info(`created sandbox ${r.name} (image ${r.image}, profile ${r.profile}, init pid ${r.pid})${cmd.length || this.flags.entrypoint !== undefined ? '; its main command runs: velo sandbox logs ' + r.name : ''}`)
    return r
  }
}

/** --lazy: the image reference pulled metadata-only; the sandbox then runs over the image's lazy FUSE mount. */
async function lazyImage(home: string, f: {image?: string; backend?: string; insecure?: boolean; ca?: string; username?: string; 'password-stdin'?: boolean}) {
  const {VeloError} = await import('../../lib/errors')
  if (!f.image) throw new VeloError('USAGE', '--lazy needs --image REF (a registry reference)', {suggestion: 'velo sandbox create NAME --image HOST/REPO:TAG --lazy'})
  const {clientOptions} = await import('../../registry/flags')
  const {pullImage} = await import('../../registry/pull')
  const p = await pullImage(home, f.image, {...clientOptions(f.image, f), lazy: true})
  return {image: p.image, backend: 'fuse'}
}
