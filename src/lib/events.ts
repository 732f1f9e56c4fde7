import {spawnSync} from 'node:child_process'
import {nativeBin} from './native'

/**
 * Append an event to the store's journal ($VELO_HOME/events.log) through `velo __event`: native/cli/events.c is
 * the journal's one writer (its line format, the one-write append, the size bound), whichever front door a call
 * came in by. Best effort, as there: a journal that cannot be written never fails the change it records.
 */
export function emitEvent(home: string, type: 'sandbox' | 'image' | 'volume' | 'store' | 'network', action: string, name: string, attrs: Record<string, string | number> = {}): void {
  try {
    spawnSync(nativeBin('velo'), ['__event', '--home', home, type, action, name, ...Object.entries(attrs).map(([k, v]) => `${k}=${v}`)], {stdio: 'ignore'})
  } catch {}
}
