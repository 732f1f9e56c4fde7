import {spawnSync} from 'node:child_process'
import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {VeloError} from '../lib/errors'
import {isRoot} from '../lib/home'
import {StoreLock} from '../lib/lock'
import {packageRoot} from '../lib/native'

export const DEFAULT_IMAGE = 'default'

async function hasImage(home: string): Promise<boolean> {
  if (!fs.existsSync(path.join(home, 'db', 'velo.lmdb'))) return false
  const {ManifestDb} = await import('../manifest/db')
  const db = ManifestDb.open(home)
  try {
    return !!db.getImage(DEFAULT_IMAGE)
  } finally {
    db.close()
  }
}

/**
 * The built-in image: on first use, rootfs/build.sh assembles busybox-static + the host's node and npm into
 * a temp dir (no network), which is ingested as image "default" and removed. One builder at a time (an
 * exclusive flock on $VELO_HOME/default-image.lock); the others wait and then find the image.
 */
export async function ensureDefaultImage(home: string): Promise<{built: boolean; seconds: number}> {
  const t0 = Date.now()
  if (await hasImage(home)) return {built: false, seconds: 0}
  fs.mkdirSync(path.join(home, 'tmp'), {recursive: true, mode: 0o700})
  const lock = new StoreLock(path.join(home, 'default-image.lock')).acquire('exclusive', {timeoutSec: 300})
  try {
    if (await hasImage(home)) return {built: false, seconds: 0}
    const dir = path.join(home, 'tmp', `default-rootfs-${process.pid}-${crypto.randomBytes(4).toString('hex')}`)
    try {
      const r = spawnSync('bash', [path.join(packageRoot(), 'rootfs', 'build.sh'), dir], {stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8'})
      if (r.status !== 0) throw new VeloError('NATIVE', `building the default image failed: ${String(r.stderr).trim()}`, {suggestion: 'see rootfs/README.md (needs busybox-static, node and npm on the host)'})
      const {ingestDirectory} = await import('../store/ingest')
      // Without root build.sh cannot chown: it prints "owner UID GID PATH" for what it would have chowned, and what
      // is the caller's is recorded as root's, so the image is the same as root builds it.
      const paths = new Map<string, {uid: number; gid: number}>()
      for (const m of String(r.stdout).matchAll(/^owner (\d+) (\d+) (.+)$/gm)) paths.set(m[3], {uid: Number(m[1]), gid: Number(m[2])})
      await ingestDirectory(home, dir, DEFAULT_IMAGE, undefined, isRoot() ? undefined : {caller: true, paths})
    } finally {
      fs.rmSync(dir, {recursive: true, force: true})
    }
    return {built: true, seconds: (Date.now() - t0) / 1000}
  } finally {
    lock.release()
  }
}
