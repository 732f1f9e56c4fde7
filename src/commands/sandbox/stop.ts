import {Args, Flags} from '@oclif/core'
import {VeloCommand} from '../../lib/command'

export default class SandboxStop extends VeloCommand<typeof SandboxStop> {
  static summary = 'Stop a sandbox (SIGTERM to all its processes, SIGKILL after the grace period); its files stay'
  static args = {name: Args.string({required: true, description: 'sandbox name'})}
  static flags = {time: Flags.integer({char: 't', description: 'grace period in seconds', default: 10})}

  async run() {
    const {removeSandbox, stopSandbox} = await import('../../sandbox/tenant')
    const {readState} = await import('../../sandbox/state')
    const autoRemove = readState(this.home, this.args.name).autoRemove === true
    const r = stopSandbox(this.home, this.args.name, this.flags.time * 1000)
    this.info(r.wasRunning ? `stopped ${r.name}${r.forced ? ' (killed after the grace period)' : ''}` : `${r.name} was not running`)
    // --rm with -d: a stopped tenant is removed, as docker does (its monitor removes it when the command ends by itself)
    if (autoRemove) {
      await removeSandbox(this.home, this.args.name, true).catch((err) => {
        // the monitor may have removed it first (the command ended as the stop began)
        if ((err as {code?: string}).code !== 'NOT_FOUND') throw err
      })
      this.info(`removed ${r.name} (--rm)`)
    }
    return {...r, ...(autoRemove ? {removed: true} : {})}
  }
}
