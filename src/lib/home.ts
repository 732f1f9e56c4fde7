import * as os from 'node:os'
import * as path from 'node:path'

/** The store root: --home, then VELO_HOME, then /var/lib/velo for root, $XDG_DATA_HOME/velo otherwise. */
export function resolveHome(flag?: string): string {
  if (flag) return path.resolve(flag)
  if (process.env.VELO_HOME) return path.resolve(process.env.VELO_HOME)
  if (process.getuid?.() === 0) return '/var/lib/velo'
  const xdg = process.env.XDG_DATA_HOME || path.join(os.homedir(), '.local', 'share')
  return path.join(xdg, 'velo')
}

export const isRoot = (): boolean => process.getuid?.() === 0
