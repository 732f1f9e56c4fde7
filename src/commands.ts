// The explicit command registry (oclif "explicit" strategy): one bundle, no directory globbing at start-up.
// Command modules import their domain code lazily inside run(), so loading this file stays cheap.
import Ingest from './commands/ingest'
import ImageImport from './commands/image/import'

export const COMMANDS = {
  ingest: Ingest,
  'image:import': ImageImport,
}
