import {Flags} from '@oclif/core'
import {VeloCommand} from '../lib/command'

export default class Events extends VeloCommand<typeof Events> {
  static summary = "What changed in this store: sandbox create/start/stop/die/rm, images, volumes, gc (the store's event journal)"
  static examples = ['<%= config.bin %> events --since 10m', '<%= config.bin %> events -f --filter type=sandbox --filter action=die', '<%= config.bin %> events --json --filter name=web']
  static enableJsonFlag = false
  static flags = {
    since: Flags.string({description: 'from this time (RFC 3339) or this long ago (10m, 2h)'}),
    until: Flags.string({description: 'up to this time or this long ago'}),
    filter: Flags.string({description: 'KEY=VALUE: type, action, name or an attribute (repeatable; one key twice = either)', multiple: true, multipleNonGreedy: true}),
    follow: Flags.boolean({char: 'f', description: 'keep printing events as they happen, until interrupted'}),
    json: Flags.boolean({description: 'one JSON object per line'}),
  }

  async run() {
    const {followEvents, readEvents} = await import('../ops/events')
    const o = {since: this.flags.since, until: this.flags.until, filters: this.flags.filter}
    const print = (e: import('../ops/events').VeloEvent) =>
      process.stdout.write(
        this.flags.json ? JSON.stringify(e) + '\n' : `${e.time} ${e.type} ${e.action} ${e.name}${Object.keys(e.attrs ?? {}).length ? ` (${Object.entries(e.attrs).map(([k, v]) => `${k}=${v}`).join(', ')})` : ''}\n`,
      )
    if (!this.flags.follow) {
      for (const e of readEvents(this.home, o)) print(e)
      return
    }
    const stop = new Promise<void>((resolve) => {
      process.once('SIGINT', () => resolve())
      process.once('SIGTERM', () => resolve())
    })
    await followEvents(this.home, o, print, stop)
  }
}
