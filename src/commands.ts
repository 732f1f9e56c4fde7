// The explicit command registry (oclif "explicit" strategy): one bundle, no directory globbing at start-up.
// Command modules import their domain code lazily inside run(), so loading this file stays cheap.
import Fsck from './commands/fsck'
import Gc from './commands/gc'
import ImageCheckout from './commands/image/checkout'
import ImageInspect from './commands/image/inspect'
import ImageLs from './commands/image/ls'
import ImageRm from './commands/image/rm'
import Ingest from './commands/ingest'
import Events from './commands/events'
import Metrics from './commands/metrics'
import Mount from './commands/mount'
import Status from './commands/status'
import NetworkCreate from './commands/network/create'
import NetworkInspect from './commands/network/inspect'
import NetworkLs from './commands/network/ls'
import NetworkRm from './commands/network/rm'
import SandboxCommit from './commands/sandbox/commit'
import SandboxCp from './commands/sandbox/cp'
import SandboxCreate from './commands/sandbox/create'
import SandboxDiff from './commands/sandbox/diff'
import SandboxExec from './commands/sandbox/exec'
import SandboxPause from './commands/sandbox/pause'
import SandboxUnpause from './commands/sandbox/unpause'
import SandboxInspect from './commands/sandbox/inspect'
import SandboxLogs from './commands/sandbox/logs'
import SandboxLs from './commands/sandbox/ls'
import SandboxPort from './commands/sandbox/port'
import SandboxRestart from './commands/sandbox/restart'
import SandboxRm from './commands/sandbox/rm'
import SandboxRun from './commands/sandbox/run'
import SandboxStart from './commands/sandbox/start'
import SandboxStats from './commands/sandbox/stats'
import SandboxStop from './commands/sandbox/stop'
import SandboxTop from './commands/sandbox/top'
import SandboxWait from './commands/sandbox/wait'
import Umount from './commands/umount'
import VolumeCreate from './commands/volume/create'
import VolumeInspect from './commands/volume/inspect'
import VolumeLs from './commands/volume/ls'
import VolumeMount from './commands/volume/mount'
import VolumeRm from './commands/volume/rm'
import VolumeRestore from './commands/volume/restore'
import VolumeSnapshot from './commands/volume/snapshot'
import VolumeSnapshotRm from './commands/volume/snapshot/rm'
import VolumeSnapshots from './commands/volume/snapshots'
import VolumeVaultCreate from './commands/volume/vault/create'
import VolumeVaultLock from './commands/volume/vault/lock'
import VolumeVaultUnlock from './commands/volume/vault/unlock'
import VolumeUmount from './commands/volume/umount'
import Run from './commands/run'
import Inception from './commands/inception'
import Wake from './commands/wake'
import Hook from './commands/hook'
import ImageImport from './commands/image/import'
import ImageExport from './commands/image/export'
import ImagePull from './commands/image/pull'
import ImageProfile from './commands/image/profile'
import Push from './commands/push'
import Pull from './commands/pull'
import RegistryRm from './commands/registry/rm'
import SnapshotterServe from './commands/snapshotter/serve'
import CacheSave from './commands/cache/save'
import CacheRestore from './commands/cache/restore'
import CacheSummary from './commands/cache/summary'

export const COMMANDS = {
  fsck: Fsck,
  gc: Gc,
  'image:checkout': ImageCheckout,
  'image:inspect': ImageInspect,
  'image:ls': ImageLs,
  'image:rm': ImageRm,
  ingest: Ingest,
  events: Events,
  metrics: Metrics,
  mount: Mount,
  status: Status,
  'network:create': NetworkCreate,
  'network:inspect': NetworkInspect,
  'network:ls': NetworkLs,
  'network:rm': NetworkRm,
  'sandbox:commit': SandboxCommit,
  'sandbox:cp': SandboxCp,
  'sandbox:create': SandboxCreate,
  'sandbox:diff': SandboxDiff,
  'sandbox:exec': SandboxExec,
  'sandbox:inspect': SandboxInspect,
  'sandbox:logs': SandboxLogs,
  'sandbox:pause': SandboxPause,
  'sandbox:ls': SandboxLs,
  'sandbox:port': SandboxPort,
  'sandbox:restart': SandboxRestart,
  'sandbox:rm': SandboxRm,
  'sandbox:run': SandboxRun,
  'sandbox:start': SandboxStart,
  'sandbox:stats': SandboxStats,
  'sandbox:stop': SandboxStop,
  'sandbox:top': SandboxTop,
  'sandbox:unpause': SandboxUnpause,
  'sandbox:wait': SandboxWait,
  umount: Umount,
  'volume:create': VolumeCreate,
  'volume:inspect': VolumeInspect,
  'volume:ls': VolumeLs,
  'volume:mount': VolumeMount,
  'volume:rm': VolumeRm,
  'volume:restore': VolumeRestore,
  'volume:snapshot': VolumeSnapshot,
  'volume:snapshot:rm': VolumeSnapshotRm,
  'volume:snapshots': VolumeSnapshots,
  'volume:vault:create': VolumeVaultCreate,
  'volume:vault:lock': VolumeVaultLock,
  'volume:vault:unlock': VolumeVaultUnlock,
  'volume:umount': VolumeUmount,
  run: Run,
  inception: Inception,
  wake: Wake,
  hook: Hook,
  'image:import': ImageImport,
  'image:export': ImageExport,
  'image:pull': ImagePull,
  'image:profile': ImageProfile,
  push: Push,
  pull: Pull,
  'registry:rm': RegistryRm,
  'snapshotter:serve': SnapshotterServe,
  'cache:save': CacheSave,
  'cache:restore': CacheRestore,
  'cache:summary': CacheSummary,
}
