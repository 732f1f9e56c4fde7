import {Flags} from '@oclif/core'
import {VeloCommand, fmtBytes} from '../../lib/command'

export default class CacheSummary extends VeloCommand<typeof CacheSummary> {
  static summary = "What this job's cache restores and saves did: bytes not downloaded, files reused, time saved"
  static description =
    'From the job\'s journal in the store ($VELO_HOME/cache-journal/<job>/). Time saved = the cold run the restored entry replaced (measured when it was saved: from a missed restore of that key to its save) minus the restore\'s own time; "not measured" when no cold run was recorded. docs/registry.md ("CI cache")'
  static examples = ['<%= config.bin %> cache summary', '<%= config.bin %> cache summary --json']
  static flags = {
    job: Flags.string({description: "the job (default $VELO_CACHE_JOB, else the CI's run/job id, else local)"}),
    clear: Flags.boolean({description: "remove the job's journal after printing it"}),
  }

  async run() {
    const {jobId, Journal} = await import('../../cache/journal')
    const {summarize} = await import('../../cache/summary')
    const {table} = await import('../../lib/table')
    const job = jobId(this.flags.job)
    const s = summarize(this.home, job)
    const secs = (n: number | null, none = 'not measured') => (n === null ? none : `${n.toFixed(1)} s`)
    const rows = s.rows.map((r) => [
      r.action,
      r.matchedKey ? `${r.key} (← ${r.matchedKey})` : r.key,
      r.result,
      r.files === null ? '-' : String(r.files),
      r.bytesNotDownloaded === null ? '-' : fmtBytes(r.bytesNotDownloaded),
      r.bytesFetched === null ? '-' : fmtBytes(r.bytesFetched),
      `${r.seconds.toFixed(2)} s`,
      r.action === 'save' ? secs(r.coldSeconds) : r.result === 'hit' ? secs(r.coldSeconds) : '-',
      r.result === 'hit' ? secs(r.timeSavedSeconds) : '-',
    ])
    const t = s.totals
    this.info(
      `velo cache, job ${job}: ${t.restores} restores (${t.hits} hits, ${t.misses} misses), ${t.saves} saves\n` +
        (rows.length ? table(['ACTION', 'KEY', 'RESULT', 'FILES', 'NOT DOWNLOADED', 'FETCHED', 'TIME', 'COLD RUN', 'TIME SAVED'], rows) + '\n' : '') +
        `total: ${t.filesReused} files reused, ${fmtBytes(t.bytesNotDownloaded)} not downloaded, ${fmtBytes(t.bytesFetched)} fetched, time saved ` +
        (t.timeSavedSeconds === null ? 'not measured' : `${t.timeSavedSeconds.toFixed(1)} s (${t.hitsMeasured} of ${t.hits} hits measured)`),
    )
    if (this.flags.clear) new Journal(this.home, job).clear()
    return s
  }
}
