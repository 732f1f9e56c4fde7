import * as fs from 'node:fs'
import * as path from 'node:path'
import {VeloError} from '../lib/errors'
import {probePlaceholders} from './native'

/** Find CMD the way execvp does (PATH search when it has no '/'). */
export function resolveCommand(cmd: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (cmd.includes('/')) return fs.existsSync(cmd) ? path.resolve(cmd) : undefined
  for (const dir of (env.PATH ?? '/usr/local/bin:/usr/bin:/bin').split(':')) {
    const p = path.join(dir || '.', cmd)
    try {
      const st = fs.statSync(p)
      if (st.isFile() && st.mode & 0o111) return p
    } catch {}
  }
  return undefined
}

export type Loadability = {ok: true} | {ok: false; why: 'static' | 'setuid'; file: string}

/**
 * Can the shim be preloaded into FILE? Not into a static ELF (no PT_INTERP: nothing reads LD_PRELOAD) nor
 * a setuid/setgid program run by someone else (the kernel's secure mode makes ld.so ignore LD_PRELOAD).
 * A script is judged by its interpreter (one level of #!). A solid projection's placeholder is judged by the
 * content it stands for (its store object; HOME names the store): velo run makes it real before the exec.
 */
export function checkLoadable(file: string, depth = 0, home?: string): Loadability {
  let fd: number
  try {
    fd = fs.openSync(file, 'r')
  } catch {
    return {ok: true} // let the exec itself report it
  }
  try {
    const st = fs.fstatSync(fd)
    const uid = process.getuid?.() ?? 0
    const gid = process.getgid?.() ?? 0
    if ((st.mode & 0o4000 && st.uid !== uid) || (st.mode & 0o2000 && st.gid !== gid)) return {ok: false, why: 'setuid', file}
    // a placeholder (sparse, no blocks, marked): read the object instead of its zeros
    if (home && st.isFile() && st.size > 0 && st.blocks === 0) {
      const real = fs.realpathSync(file) // probe looks at the path itself, not through a symlink
      const obj = probePlaceholders(home, [Buffer.from(real)]).get(real)
      if (obj) {
        try {
          const ofd = fs.openSync(obj, 'r')
          fs.closeSync(fd)
          fd = ofd
        } catch {}
      }
    }
    const head = Buffer.alloc(4096)
    const n = fs.readSync(fd, head, 0, head.length, 0)
    if (n >= 2 && head[0] === 0x23 && head[1] === 0x21 && depth < 2) {
      const line = head.subarray(2, n).toString('latin1').split('\n')[0].trim()
      const interp = line.split(/\s+/)[0]
      return interp ? checkLoadable(interp, depth + 1, home) : {ok: true}
    }
    if (n < 64 || head.readUInt32BE(0) !== 0x7f454c46 || head[4] !== 2) return {ok: true} // not a 64-bit ELF: the kernel decides
    const type = head.readUInt16LE(16)
    const phoff = Number(head.readBigUInt64LE(32))
    const phentsize = head.readUInt16LE(54)
    const phnum = head.readUInt16LE(56)
    const ph = Buffer.alloc(phentsize * phnum)
    fs.readSync(fd, ph, 0, ph.length, phoff)
    for (let i = 0; i < phnum; i++) if (ph.readUInt32LE(i * phentsize) === 3 /* PT_INTERP */) return {ok: true}
    return type === 2 /* ET_EXEC */ || type === 3 ? {ok: false, why: 'static', file} : {ok: true}
  } finally {
    fs.closeSync(fd)
  }
}

export function assertLoadable(cmd: string, home?: string): string {
  const file = resolveCommand(cmd)
  if (!file) throw new VeloError('NOT_FOUND', `command not found: ${cmd}`, {suggestion: 'check the name and PATH'})
  const l = checkLoadable(file, 0, home)
  if (!l.ok) {
    const what = l.why === 'static' ? 'is statically linked' : 'is setuid/setgid (the kernel ignores LD_PRELOAD for it)'
    throw new VeloError('UNSUPPORTED', `${l.file} ${what}: the velo shim cannot be loaded into it, so it would read placeholders instead of the image's files`, {
      suggestion: 'run it inside a sandbox (`velo sandbox`), or materialize the files first (`velo wake`)',
    })
  }
  return file
}
