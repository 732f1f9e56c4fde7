import {Args} from '@oclif/core'
import {VeloCommand} from '../../lib/command'

export default class SandboxPort extends VeloCommand<typeof SandboxPort> {
  static summary = "List a sandbox's published ports (as docker port)"
  static examples = ['<%= config.bin %> sandbox port web']
  static args = {name: Args.string({required: true, description: 'sandbox name'})}

  async run() {
    const {readState} = await import('../../sandbox/state')
    const {validateName} = await import('../../lib/names')
    const s = readState(this.home, validateName('sandbox', this.args.name))
    const ports = s.ports ?? []
    // docker port's lines: 3000/tcp -> 127.0.0.1:8080
    if (!this.jsonEnabled()) for (const p of ports) process.stdout.write(`${p.containerPort}/${p.protocol} -> ${p.hostIP ?? '0.0.0.0'}:${p.hostPort}\n`)
    return ports
  }
}
