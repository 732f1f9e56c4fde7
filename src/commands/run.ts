import {Flags} from '@oclif/core'
import {VeloCommand} from '../lib/command'
import {VeloError} from '../lib/errors'

export default class Run extends VeloCommand<typeof Run> {
  static summary = 'Run a command with an image projected into a directory (LD_PRELOAD shim, no root, no mounts)'
  static description =
    'The image appears at --at (default: ./<the image source directory name>, e.g. ./node_modules) for CMD and its children. ' +
    'Solid mode (default) keeps a skeleton of directories, symlinks and placeholders there, built once and reused; --phantom writes ' +
    'nothing into the project (the skeleton and any writes live in the user cache). Writes never reach the store: a projected file ' +
    'is copied before it is first written. Exit code and signals pass through. Not a security boundary: see docs/shim.md. ' +
    'Without --image, the image of `velo inception` in this directory is used. With --json, velo\'s own errors are JSON; the ' +
    "command's output passes through unchanged."
  static examples = [
    '<%= config.bin %> run --image deps -- node -e "require(\'express\')"',
    '<%= config.bin %> run --image py311 --at ./lib/python3.11 --phantom -- python3 -c "import json"',
  ]
  static strict = false
  static flags = {
    image: Flags.string({description: 'image to project (default: the inception state of this directory)'}),
    at: Flags.string({description: 'projection root (default: ./<image source directory name>)'}),
    phantom: Flags.boolean({description: 'write nothing into the project directory', default: false}),
  }

  async run() {
    const {argv} = await this.parse(Run)
    const cmd = argv as string[]
    if (cmd.length === 0) throw new VeloError('USAGE', 'no command given', {suggestion: 'velo run --image NAME -- CMD [ARGS...]'})
    const {runProjected, exitLikeChild} = await import('../run/run')
    let image = this.flags.image
    let at = this.flags.at
    let mode: 'solid' | 'phantom' = this.flags.phantom ? 'phantom' : 'solid'
    if (!image) {
      const {findInception} = await import('../run/inception')
      const inc = findInception()
      if (!inc) throw new VeloError('USAGE', 'no --image given and this directory is not in inception mode', {suggestion: 'velo run --image NAME -- CMD, or `velo inception --image NAME` first'})
      image = inc.state.image
      at = at ?? inc.state.root
      if (!this.flags.phantom) mode = inc.state.mode
    }
    const r = await runProjected({home: this.home, image, at, mode, cmd: cmd[0], args: cmd.slice(1)})
    exitLikeChild(r)
  }
}
