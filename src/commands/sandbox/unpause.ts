import SandboxPause from './pause'

export default class SandboxUnpause extends SandboxPause {
  static summary = 'Thaw paused sandboxes: their processes run on where they stopped'
  static aliases = ['unpause']
  static paused = false
}
