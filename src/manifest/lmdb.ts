import * as fs from 'node:fs'

/**
 * Load the lmdb package without the work velo does not need, measured per velo call here:
 * - its loader (node-gyp-build-optional-packages) runs detect-libc to choose a glibc or musl prebuild
 *   (~35 ms); it skips the probe when LIBC is set. Alpine is the musl distribution anyone runs Node on;
 *   everything else velo supports is glibc;
 * - lmdb pulls in msgpackr, which loads its native decoder msgpackr-extract (~28 ms); velo stores only
 *   binary and JSON values, never msgpack, so the accelerator is switched off.
 * Both variables are removed again afterwards so no child process inherits them.
 */
let mod: typeof import('lmdb') | undefined

/** The lmdb package, loaded on first use (opening a database), so importing ManifestDb costs nothing. */
export function lmdb(): typeof import('lmdb') {
  if (mod) return mod
  const set = (k: string, v: string) => (k in process.env ? undefined : ((process.env[k] = v), k))
  const added = [
    set('LIBC', fs.existsSync('/etc/alpine-release') ? 'musl' : 'glibc'),
    set('MSGPACKR_NATIVE_ACCELERATION_DISABLED', 'true'),
  ]
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    mod = require('lmdb') as typeof import('lmdb')
  } finally {
    for (const k of added) if (k) delete process.env[k]
  }
  return mod
}
