import {VeloCommand} from '../lib/command'

export default class Wake extends VeloCommand<typeof Wake> {
  static summary = 'Leave inception mode: every projected file becomes a real file, usable without velo'
  static description = 'Placeholders are replaced by private copies of their store objects (the store is only read); .velo/ is removed.'
  static examples = ['<%= config.bin %> wake']

  async run() {
    const {wake} = await import('../run/inception')
    const r = wake(process.cwd())
    this.info(`woke ${r.root}: ${r.materialized} files materialized (${r.mode})`)
    return r
  }
}
