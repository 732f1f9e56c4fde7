/**
 * One error type for the whole CLI. `code` is stable (scripts match on it), `exitCode` follows the
 * convention 1 = user error, 2 = usage, 3 = integrity problem found, 70 = bug (EX_SOFTWARE).
 */
export type ErrorCode =
  | 'USAGE'
  | 'INVALID_NAME'
  | 'NOT_FOUND'
  | 'ALREADY_EXISTS'
  | 'NOT_A_DIRECTORY'
  | 'PERMISSION_DENIED'
  | 'NO_SPACE'
  | 'UNREADABLE'
  | 'CROSS_DEVICE'
  | 'INTEGRITY'
  | 'BUSY'
  | 'UNSUPPORTED'
  | 'BAD_INPUT'
  | 'STATE'
  | 'NATIVE'
  | 'UNREACHABLE'
  | 'AUTH'
  | 'RATE_LIMITED'
  | 'INTERNAL'

const EXIT: Record<ErrorCode, number> = {
  USAGE: 2,
  INVALID_NAME: 2,
  NOT_FOUND: 1,
  ALREADY_EXISTS: 1,
  NOT_A_DIRECTORY: 1,
  PERMISSION_DENIED: 1,
  NO_SPACE: 1,
  UNREADABLE: 1,
  CROSS_DEVICE: 1,
  INTEGRITY: 3,
  BUSY: 1,
  UNSUPPORTED: 1,
  BAD_INPUT: 1,
  STATE: 1,
  NATIVE: 1,
  UNREACHABLE: 1,
  AUTH: 1,
  RATE_LIMITED: 1,
  INTERNAL: 70,
}

export class VeloError extends Error {
  readonly code: ErrorCode
  readonly exitCode: number
  readonly suggestion?: string
  readonly details?: unknown

  constructor(code: ErrorCode, message: string, opts: {suggestion?: string; details?: unknown; cause?: unknown} = {}) {
    super(message, opts.cause === undefined ? undefined : {cause: opts.cause})
    this.name = 'VeloError'
    this.code = code
    this.exitCode = EXIT[code]
    this.suggestion = opts.suggestion
    this.details = opts.details
  }

  get isBug(): boolean {
    return this.code === 'INTERNAL'
  }

  toJSON(): Record<string, unknown> {
    return {
      error: {code: this.code, message: this.message, suggestion: this.suggestion, details: this.details},
    }
  }
}

/** What to do about a path this user may not read or write: most often a store someone else owns. */
export const PERMISSION_SUGGESTION =
  'check the permissions of that path; to use a store of your own, pass --home DIR or set VELO_HOME (without either, a non-root user gets ~/.local/share/velo)'

/** System errors that are the user's environment (permissions, a full disk), never velo's bugs. */
const ENVIRONMENT_CODES = new Set(['EACCES', 'EPERM', 'EROFS', 'ENOSPC', 'EDQUOT'])

/**
 * Any error that reached the top without a VeloError around it. A permission or space error says what the
 * user's environment refused and is rendered as that, naming the path (never as a bug in velo); anything else
 * left is INTERNAL.
 */
export function fromUncaught(err: unknown): VeloError {
  if (err instanceof VeloError) return err
  const e = err as NodeJS.ErrnoException
  if (typeof e?.code === 'string' && ENVIRONMENT_CODES.has(e.code))
    return fromSystemError(err, e.path ? `${e.syscall ?? 'access'} ${e.path}` : e.syscall ?? 'system call')
  if (isPermissionMessage((e as Error)?.message)) return new VeloError('PERMISSION_DENIED', (e as Error).message, {cause: err, suggestion: PERMISSION_SUGGESTION})
  return new VeloError('INTERNAL', (e as Error)?.message ?? String(err), {cause: err})
}

/** Native libraries (LMDB) report errno as text only. */
export function isPermissionMessage(msg: string | undefined): boolean {
  return /permission denied|operation not permitted|read-only file system|\bEACCES\b|\bEPERM\b|\bEROFS\b/i.test(msg ?? '')
}

/** Translate a Node system error into a VeloError that names what failed. */
export function fromSystemError(err: unknown, what: string): VeloError {
  if (err instanceof VeloError) return err
  const e = err as NodeJS.ErrnoException
  switch (e?.code) {
    case 'ENOENT':
      return new VeloError('NOT_FOUND', `${what}: no such file or directory`, {cause: err})
    case 'EACCES':
    case 'EPERM':
      return new VeloError('PERMISSION_DENIED', `${what}: permission denied`, {cause: err, suggestion: PERMISSION_SUGGESTION})
    case 'EROFS':
      return new VeloError('PERMISSION_DENIED', `${what}: read-only file system`, {cause: err, suggestion: PERMISSION_SUGGESTION})
    case 'ENOSPC':
    case 'EDQUOT':
      return new VeloError('NO_SPACE', `${what}: no space left on device`, {
        cause: err,
        suggestion: 'free space in the store (velo gc) or move it with --home / VELO_HOME',
      })
    case 'ENOTDIR':
      return new VeloError('NOT_A_DIRECTORY', `${what}: not a directory`, {cause: err})
    case 'EXDEV':
      return new VeloError('CROSS_DEVICE', `${what}: store and target are on different filesystems`, {
        cause: err,
        suggestion: 'put VELO_HOME on the same filesystem, or (as root) use --backend fuse (before Linux 6.12 with --userns host)',
      })
    case 'EIO':
      return new VeloError('UNREADABLE', `${what}: I/O error`, {cause: err})
    default:
      return new VeloError('INTERNAL', `${what}: ${e?.message ?? String(err)}`, {cause: err})
  }
}
