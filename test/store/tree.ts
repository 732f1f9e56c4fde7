import {execFileSync} from 'node:child_process'
import {createHash} from 'node:crypto'
import * as fs from 'node:fs'
import * as path from 'node:path'

/** A listing that captures what a round trip must keep: path, type, mode, owner, size, ns mtime, link target,
 *  link count, and a content digest. Directory sizes are left out (they depend on the filesystem). */
export function listing(dir: string): string {
  const out = execFileSync('find', ['.', '-printf', '%p\\0%y\\0%m\\0%U\\0%G\\0%s\\0%T@\\0%l\\0%n\\0'], {cwd: dir, maxBuffer: 1 << 30})
  const f = out.toString('latin1').split('\0')
  const rows: string[] = []
  for (let i = 0; i + 9 <= f.length; i += 9) {
    const [p, y, m, u, g, s, t, l, n] = f.slice(i, i + 9)
    let digest = '-'
    if (y === 'f') digest = createHash('sha256').update(fs.readFileSync(Buffer.from(path.join(dir, p), 'latin1'))).digest('hex')
    rows.push([JSON.stringify(p), y, m, u, g, y === 'd' ? '-' : s, t, JSON.stringify(l), y === 'd' ? '-' : n, digest].join(' '))
  }
  return rows.sort().join('\n')
}

/** The awkward tree: every kind of entry and name the round trip must survive. */
export function makeAwkwardTree(root: string): void {
  const w = (rel: string | Buffer, data: string | Buffer) => fs.writeFileSync(Buffer.concat([Buffer.from(root + '/'), Buffer.from(rel)]), data)
  fs.mkdirSync(path.join(root, 'dir with spaces', 'sub'), {recursive: true})
  w('dir with spaces/sub/file name.txt', 'spaces\n')
  w('new\nline', 'a newline in the name\n')
  w(Buffer.from([0x6e, 0x6f, 0x6e, 0x2d, 0xff, 0xfe, 0x75, 0x74, 0x66]), 'not utf-8\n')
  w('empty', '')
  w('empty2', '')
  w('same-a', 'identical content\n')
  w('same-b', 'identical content\n')
  w('hard1', 'hard linked\n')
  fs.linkSync(path.join(root, 'hard1'), path.join(root, 'hard2'))
  fs.symlinkSync('dir with spaces/sub/file name.txt', path.join(root, 'link-rel'))
  fs.symlinkSync('/nonexistent/absolute', path.join(root, 'link-dangling'))
  execFileSync('mkfifo', [path.join(root, 'fifo')])
  w('setuid', '#!/bin/sh\n')
  fs.chmodSync(path.join(root, 'setuid'), 0o4755)
  w('sticky-dir-file', 'x')
  fs.mkdirSync(path.join(root, 'sticky'), {mode: 0o1777})
  fs.chmodSync(path.join(root, 'sticky'), 0o1777)
  w('private', 'secret\n')
  fs.chmodSync(path.join(root, 'private'), 0o600)
  if (process.getuid?.() === 0) fs.chownSync(path.join(root, 'private'), 1234, 5678)
  // deep: 60 levels of 40-byte names (~2.5 KB of path)
  let d = root
  for (let i = 0; i < 60; i++) d = path.join(d, `level-${String(i).padStart(2, '0')}-${'x'.repeat(31)}`)
  fs.mkdirSync(d, {recursive: true})
  fs.writeFileSync(path.join(d, 'deep.txt'), 'deep\n')
  // mtimes with nanoseconds, set last (files first, then dirs)
  execFileSync('touch', ['-h', '-d', '2001-02-03 04:05:06.123456789', path.join(root, 'empty'), path.join(root, 'link-rel')])
  execFileSync('touch', ['-d', '1999-12-31 23:59:59.987654321', path.join(root, 'dir with spaces', 'sub')])
}
