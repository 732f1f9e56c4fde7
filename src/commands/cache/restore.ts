import {Args, Flags} from '@oclif/core'
import {VeloCommand, fmtBytes} from '../../lib/command'
import {VeloError} from '../../lib/errors'
import {cacheFlags, cacheOptions, words} from './flags'

export default class CacheRestore extends VeloCommand<typeof CacheRestore> {
  static summary = 'Restore the cache entry of KEY into its directories (a miss is not an error)'
  static description =
    'Each DIR (in the order they were saved) is replaced whole by a plain checkout: written into a temp dir beside it, then renamed into place, so a killed restore leaves the old tree or the new one, never part of one. With --fallback-prefix, the newest entry whose key starts with P when KEY itself is missing. A miss prints "cache miss" on stderr and exits 0 (--fail-on-miss: exit 1). docs/registry.md ("CI cache")'
  static examples = [
    '<%= config.bin %> cache restore "npm-$(sha256sum package-lock.json | cut -c1-64)" --fallback-prefix npm- node_modules ~/.npm',
    '<%= config.bin %> cache restore deps-v1 node_modules --registry 127.0.0.1:5000/ci/cache --insecure --json',
  ]
  static strict = false
  static args = {
    key: Args.string({required: true, description: 'cache key'}),
    dir: Args.string({required: true, description: 'directories to restore into, as saved (one or more)'}),
  }
  static flags = {
    ...cacheFlags,
    'fallback-prefix': Flags.string({description: 'when KEY is missing, restore the newest entry whose key starts with this (repeatable: tried in order)', multiple: true, multipleNonGreedy: true}),
    'fail-on-miss': Flags.boolean({description: 'exit 1 (NOT_FOUND) on a miss instead of 0'}),
  }

  async run() {
    const [key, ...dirs] = words((await this.parse(CacheRestore)).argv)
    if (!key || dirs.length === 0) throw new VeloError('USAGE', 'usage: velo cache restore KEY [--fallback-prefix P] DIR...')
    const {restoreCache} = await import('../../cache/cache')
    const r = await restoreCache(this.home, key, dirs, {...(await cacheOptions(this.flags)), fallbackPrefixes: this.flags['fallback-prefix']})
    if (!r.hit) {
      if (this.flags['fail-on-miss']) throw new VeloError('NOT_FOUND', `cache miss: no entry for ${JSON.stringify(key)}${this.flags['fallback-prefix']?.length ? ' or its fallback prefixes' : ''}`)
      process.stderr.write(`cache miss: ${JSON.stringify(key)}\n`)
      return r
    }
    this.info(
      `cache hit: ${JSON.stringify(r.matchedKey ?? key)}${r.matchedKey ? ` (fallback for ${JSON.stringify(key)})` : ''} from the ${r.source === 'registry' ? 'registry' : 'local store'} into ${r.dirs.map((d) => d.path).join(', ')}: ` +
        `${r.files} files, ${fmtBytes(r.bytes ?? 0)}; ${fmtBytes(r.bytesReused ?? 0)} already in the store, ${fmtBytes(r.bytesFetched ?? 0)} fetched; ${r.seconds.toFixed(2)} s`,
    )
    return r
  }
}
