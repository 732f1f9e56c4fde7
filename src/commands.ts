// The explicit command registry (oclif "explicit" strategy): one bundle, no directory globbing at start-up.
// Command modules import their domain code lazily inside run(), so loading this file stays cheap.
import Fsck from './commands/fsck'
import Gc from './commands/gc'
import ImageCheckout from './commands/image/checkout'
import ImageInspect from './commands/image/inspect'
import ImageLs from './commands/image/ls'
import ImageRm from './commands/image/rm'
import Ingest from './commands/ingest'
import Status from './commands/status'
import ImageImport from './commands/image/import'
import ImageExport from './commands/image/export'
import ImagePull from './commands/image/pull'

export const COMMANDS = {
  fsck: Fsck,
  gc: Gc,
  'image:checkout': ImageCheckout,
  'image:inspect': ImageInspect,
  'image:ls': ImageLs,
  'image:rm': ImageRm,
  ingest: Ingest,
  status: Status,
  'image:import': ImageImport,
  'image:export': ImageExport,
  'image:pull': ImagePull,
}
