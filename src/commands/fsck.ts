import {Flags} from '@oclif/core'
import {VeloCommand} from '../lib/command'
import {VeloError} from '../lib/errors'

export default class Fsck extends VeloCommand<typeof Fsck> {
  static summary = 'Verify the store: re-hash every object, check every manifest entry resolves'
  static description = 'Exits 3 when anything is wrong, naming the images and paths a bad object hits. --repair removes bad objects and stray files and says what to re-ingest.'
  static flags = {repair: Flags.boolean({description: 'remove bad objects and stray files'})}

  async run() {
    const {fsck} = await import('../store/maintenance')
    const r = fsck(this.home, {repair: this.flags.repair})
    if (!this.jsonEnabled()) {
      const out = process.stderr
      for (const p of r.problems) {
        out.write(`${p.kind}: ${p.object ?? p.layer ?? ''}: ${p.problem}\n`)
        if (p.image) out.write(`  images: ${p.image}\n`)
        for (const path of (p.paths ?? []).slice(0, 10)) out.write(`  path: ${path}\n`)
        if ((p.paths?.length ?? 0) > 10) out.write(`  ... and ${p.paths!.length - 10} more paths\n`)
      }
      if (r.tempFiles) out.write(`note: ${r.tempFiles} stray temp file(s) from interrupted writes; velo gc removes them\n`)
      if (r.unreadable) out.write(`note: ${r.unreadable} object(s) this user may not read were not checked (their image's modes); run fsck as the store's owner to check them\n`)
      if (r.remoteObjects) out.write(`note: ${r.remoteObjects} object(s) of lazy images are still in the registry (fetched on first read; velo pull --all-objects IMAGE fetches them)\n`)
      out.write(`checked ${r.objectsChecked} objects, ${r.layersChecked} layers, ${r.imagesChecked} images: ${r.problems.length} problem(s)\n`)
      if (r.repaired) out.write(`repaired: removed ${r.repaired.removedObjects} bad object(s), ${r.repaired.removedStray} stray file(s)\n`)
      if (r.affectedImages.length) out.write(`images to re-ingest or re-import: ${r.affectedImages.join(', ')}\n`)
    }
    if (r.problems.length > 0) {
      if (this.jsonEnabled()) {
        process.stdout.write(JSON.stringify(r, null, 2) + '\n')
        this.exit(3)
      }
      throw new VeloError('INTEGRITY', `store has ${r.problems.length} problem(s)`, {
        suggestion: r.repaired ? 're-ingest the images listed above' : 'run `velo fsck --repair`, then re-ingest the images listed',
        details: r,
      })
    }
    return r
  }
}
