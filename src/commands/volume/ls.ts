import {VeloCommand} from '../../lib/command'

export default class VolumeLs extends VeloCommand<typeof VolumeLs> {
  static summary = 'List volumes and the sandboxes that use them'
  static aliases = ['volume list']

  async run() {
    const {listVolumes} = await import('../../volume/volumes')
    const {table} = await import('../../lib/table')
    const l = listVolumes(this.home)
    if (!this.jsonEnabled()) process.stdout.write(table(['NAME', 'CREATED', 'FROM', 'VAULT', 'USED BY'], l.map((v) => [v.name, v.createdAt, v.from ?? '', v.vault ?? '', v.usedBy.join(',')])) + '\n')
    return l
  }
}
