import {Flags} from '@oclif/core'
import {VeloCommand} from '../lib/command'

export default class Metrics extends VeloCommand<typeof Metrics> {
  static summary = 'The store and every sandbox as Prometheus metrics (text exposition), printed or served over HTTP'
  static examples = ['<%= config.bin %> metrics', '<%= config.bin %> metrics --listen 127.0.0.1:9464   # scrape http://127.0.0.1:9464/metrics']
  static enableJsonFlag = false
  static flags = {listen: Flags.string({description: 'serve GET /metrics at HOST:PORT until interrupted (each scrape reads afresh)'})}

  async run() {
    const {metricsText, serveMetrics} = await import('../ops/metrics')
    if (this.flags.listen) {
      await serveMetrics(this.home, this.flags.listen, (addr) => this.info(`serving metrics at http://${addr}/metrics`))
      return
    }
    process.stdout.write((await metricsText(this.home)).text)
  }
}
