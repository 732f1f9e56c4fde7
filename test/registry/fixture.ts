import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {spawnSync} from 'node:child_process'
import {listDir} from '../image/listing'
import {velo} from '../helpers'

/** Deterministic bytes: the same seed gives the same file, so two trees share exactly the files meant to. */
export function bytes(seed: string, size: number): Buffer {
  const out = Buffer.alloc(size)
  let off = 0
  let i = 0
  while (off < size) {
    const h = crypto.createHash('sha512').update(`${seed}/${i++}`).digest()
    off += h.copy(out, off)
  }
  return out
}

/**
 * A tree of `files` files (sizes 1 B – 40 KiB, a few of several MiB, every tenth one text, one over the 8 MiB in-memory limit when
 * `big`), in nested dirs, with an empty file, a symlink, a hard link, a setuid file, the same content in two
 * modes (two object variants), and a fifo. `changed` files (by index)
 * get other content: two trees that differ in 5% of their files share the other 95%.
 */
export function makeTree(dir: string, o: {files: number; changed?: Set<number>; big?: boolean; tag?: string}): void {
  fs.mkdirSync(dir, {recursive: true})
  for (let i = 0; i < o.files; i++) {
    const sub = path.join(dir, `d${i % 7}`, `e${i % 3}`)
    fs.mkdirSync(sub, {recursive: true})
    const size = i % 50 === 49 ? (1 << 20) + i * 13 : 1 + ((i * 7919) % (40 << 10))
    const seed = o.changed?.has(i) ? `changed-${o.tag ?? 'x'}-${i}` : `file-${i}`
    // every tenth file is text (packs store it deflated), the others random bytes (stored as they are)
    const content = i % 10 === 5 ? Buffer.from(Array.from({length: Math.ceil(size / 24)}, (_, n) => `${seed} line ${n % 97}\n`).join('')) : bytes(seed, size)
    fs.writeFileSync(path.join(sub, `f${i}.bin`), content)
  }
  if (o.big) fs.writeFileSync(path.join(dir, 'big.bin'), bytes('big', (9 << 20) + 123))
  fs.writeFileSync(path.join(dir, 'empty'), '')
  fs.writeFileSync(path.join(dir, 'same-a'), 'same content\n')
  fs.writeFileSync(path.join(dir, 'same-b'), 'same content\n')
  fs.chmodSync(path.join(dir, 'same-b'), 0o600)
  fs.writeFileSync(path.join(dir, 'suid'), 'suid\n')
  fs.chmodSync(path.join(dir, 'suid'), 0o4755)
  fs.symlinkSync('d0/e0/f0.bin', path.join(dir, 'link'))
  fs.linkSync(path.join(dir, 'same-a'), path.join(dir, 'hard'))
  spawnSync('mkfifo', [path.join(dir, 'fifo')])
}

/** Check an image out of a store and list it (path, type, mode, owner, size, BLAKE3, target, xattrs). */
export function checkoutListing(home: string, image: string, dest: string): string {
  const r = velo(home, ['image', 'checkout', image, dest])
  if (r.status !== 0) throw new Error(`checkout ${image}: ${r.stderr}`)
  return JSON.stringify(listDir(dest))
}
