import {Args} from '@oclif/core'
import {VeloCommand, fmtBytes} from '../../lib/command'
import {VeloError} from '../../lib/errors'
import {cacheFlags, cacheOptions, words} from './flags'

export default class CacheSave extends VeloCommand<typeof CacheSave> {
  static summary = 'Save directories (node_modules, ~/.npm, .cache) as the cache entry of KEY'
  static description =
    'One layer per directory, one image `cache:<tag>` in the local store, pushed to --registry / $VELO_CACHE_REGISTRY as REPO:<tag> when given. After a `velo cache restore` of the same KEY missed in this job, the time since that miss is recorded as the cold run. docs/registry.md ("CI cache")'
  static examples = [
    '<%= config.bin %> cache save "npm-$(sha256sum package-lock.json | cut -c1-64)" node_modules ~/.npm',
    '<%= config.bin %> cache save deps-v1 node_modules --registry 127.0.0.1:5000/ci/cache --insecure',
  ]
  static strict = false
  static args = {
    key: Args.string({required: true, description: 'cache key (any text, e.g. a hash of the lock file)'}),
    dir: Args.string({required: true, description: 'directories to save (one or more)'}),
  }
  static flags = cacheFlags

  async run() {
    const [key, ...dirs] = words((await this.parse(CacheSave)).argv)
    if (!key || dirs.length === 0) throw new VeloError('USAGE', 'usage: velo cache save KEY DIR...')
    const {saveCache} = await import('../../cache/cache')
    const r = await saveCache(this.home, key, dirs, await cacheOptions(this.flags))
    this.info(
      `saved ${dirs.join(', ')} as cache ${JSON.stringify(key)} (${r.image}${r.pushed ? `, pushed to ${r.pushed.ref}, sent ${fmtBytes(r.pushed.bytesSent)}` : ''}): ` +
        `${r.files} files, ${fmtBytes(r.bytes)}, new ${fmtBytes(r.newBytes)}, ${r.seconds.toFixed(2)} s` +
        (r.coldSeconds !== undefined ? `; cold run measured: ${r.coldSeconds.toFixed(1)} s` : ''),
    )
    for (const w of (r as {warnings?: string[]}).warnings ?? []) this.warning(w)
    return r
  }
}
