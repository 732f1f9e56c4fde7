import * as fs from 'node:fs'

/**
 * Load the lmdb package without its libc probe. Its loader (node-gyp-build-optional-packages) runs
 * detect-libc on every start-up to choose a glibc or musl prebuild, which costs ~35 ms per velo call here;
 * it skips the probe when LIBC is set. Alpine is the musl distribution anyone runs Node on; everything
 * else velo supports is glibc. The variable is removed again so no child process inherits it.
 */
const had = 'LIBC' in process.env
if (!had) process.env.LIBC = fs.existsSync('/etc/alpine-release') ? 'musl' : 'glibc'
// eslint-disable-next-line @typescript-eslint/no-require-imports
export const lmdb = require('lmdb') as typeof import('lmdb')
if (!had) delete process.env.LIBC
