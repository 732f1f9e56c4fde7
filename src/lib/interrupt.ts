/**
 * Until the returned function is called, SIGINT, SIGTERM and SIGHUP run `undo` (what must not outlive this process:
 * a boot for a copy, sandboxes paused for a read) and then exit as the signal would have (128 + its number).
 */
export function onInterrupt(undo: () => void): () => void {
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP']
  const onSignal = (sig: NodeJS.Signals) => {
    try {
      undo()
    } finally {
      process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGHUP' ? 1 : 15))
    }
  }
  for (const sig of signals) process.on(sig, onSignal)
  return () => {
    for (const sig of signals) process.off(sig, onSignal)
  }
}
