import {Flags} from '@oclif/core'
import {VeloCommand} from '../lib/command'

export default class Hook extends VeloCommand<typeof Hook> {
  static summary = 'Print the shell hook that runs commands projected inside inception directories'
  static description =
    'Add `eval "$(velo hook --shell bash)"` to ~/.bashrc (or zsh). In a directory with .velo/ (see `velo inception`) the hook exports ' +
    'the shim environment, so node, npm, python3 run projected; leaving the directory restores the previous environment. ' +
    'With --json, the script is returned as {"script": ...}.'
  static examples = ['eval "$(<%= config.bin %> hook --shell bash)"']
  static flags = {shell: Flags.string({description: 'shell', options: ['bash', 'zsh'], default: 'bash'})}

  async run() {
    const {hookScript} = await import('../run/hook')
    const script = hookScript(this.flags.shell as 'bash' | 'zsh')
    if (!this.jsonEnabled()) process.stdout.write(script)
    return {shell: this.flags.shell, script}
  }
}
