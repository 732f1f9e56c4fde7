// The explicit command registry (oclif "explicit" strategy): one bundle, no directory globbing at start-up.
// Command modules import their domain code lazily inside run(), so loading this file stays cheap.
import Ingest from './commands/ingest'
import Run from './commands/run'
import Inception from './commands/inception'
import Wake from './commands/wake'
import Hook from './commands/hook'

export const COMMANDS = {
  ingest: Ingest,
  run: Run,
  inception: Inception,
  wake: Wake,
  hook: Hook,
}
