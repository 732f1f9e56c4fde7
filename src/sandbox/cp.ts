import {spawn} from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {VeloError} from '../lib/errors'
import {validateName} from '../lib/names'
import {nativeBin} from '../lib/native'
import {isRunning, readState} from './state'

/**
 * `velo sandbox cp SRC DST`, one side `NAME:/path` (as docker cp): a tar stream between the host and a tenant
 * (a stopped one is booted for the copy without its workload or network: src/sandbox/tenant.ts whileBootedForCopy). The tenant's side runs inside it (`velo sandbox exec NAME tar ...`, the tenant's own view, user
 * namespace and limits), so nothing it names can reach the host. The host's side is bsdtar, whose extraction
 * refuses `..`, absolute names and writing through symlinks (libarchive's secure defaults): a tenant that plants
 * `x -> /etc` in what is copied out cannot make the host write outside DST. Files land with the copier's owner
 * (root in the tenant going in, the caller on the host coming out), not the other side's ids, as docker cp does.
 */
export interface CpResult {
  from: string
  to: string
}

const SPEC = /^([A-Za-z0-9][A-Za-z0-9_.:-]{0,127}):(\/.*)$/

function split(v: string): {name?: string; path: string} {
  const m = SPEC.exec(v)
  return m ? {name: m[1], path: m[2]} : {path: v}
}

function run(cmd: string, args: string[], opts: {input?: NodeJS.ReadableStream; env?: NodeJS.ProcessEnv} = {}) {
  const c = spawn(cmd, args, {stdio: [opts.input ? 'pipe' : 'ignore', 'pipe', 'pipe'], env: opts.env ?? process.env})
  if (opts.input) opts.input.pipe(c.stdin!)
  let err = ''
  c.stderr!.on('data', (d) => (err += d))
  const done = new Promise<void>((resolve, reject) =>
    c.on('close', (code) => (code === 0 ? resolve() : reject(new VeloError('NATIVE', `${path.basename(cmd)} exited ${code}: ${err.trim().split('\n').slice(-3).join('; ')}`)))),
  )
  return {child: c, done}
}

export async function copy(home: string, srcArg: string, dstArg: string): Promise<CpResult> {
  const src = split(srcArg)
  const dst = split(dstArg)
  if (!!src.name === !!dst.name)
    throw new VeloError('USAGE', 'velo sandbox cp copies between the host and one sandbox: exactly one side is NAME:/path', {suggestion: 'velo sandbox cp ./file web:/tmp/, or velo sandbox cp web:/var/log/app.log ./'})
  const name = validateName('sandbox', (src.name ?? dst.name)!)
  const s = readState(home, name)
  // a stopped sandbox (docker cp works on those too): its filesystem brought up for the copy, no workload, no network
  if (!isRunning(s)) {
    const {whileBootedForCopy} = await import('./tenant')
    return whileBootedForCopy(home, name, () => copyRunning(home, name, src, dst))
  }
  return copyRunning(home, name, src, dst)
}

async function copyRunning(home: string, name: string, src: {name?: string; path: string}, dst: {name?: string; path: string}): Promise<CpResult> {
  // the tenant's side is an exec of the sandbox (the native front door, as users call it)
  const velo = (args: string[]): [string, string[]] => [nativeBin('velo'), ['sandbox', 'exec', '--home', home, name, '--', ...args]]
  if (dst.name) {
    // host → tenant: the host packs, the tenant unpacks where it says (an existing dir: inside it)
    const abs = path.resolve(src.path)
    let st: fs.Stats
    try {
      st = fs.lstatSync(abs)
    } catch (err) {
      throw new VeloError('NOT_FOUND', `no such file on the host: ${src.path}`, {cause: err})
    }
    const base = st.isDirectory() && src.path.endsWith('/.') ? '.' : path.basename(abs)
    // inside: into DST when it is a dir, else under DST's own name (a rename, as docker cp)
    const script = 'set -e; d="$1"; if [ -d "$d" ]; then tar -xo -f - -C "$d"; else p=$(dirname "$d"); [ -d "$p" ] || { echo "no such directory in the sandbox: $p" >&2; exit 2; }; t=$(mktemp -d "$p/.velo-cp.XXXXXX"); tar -xo -f - -C "$t"; mv "$t/$2" "$d"; rmdir "$t"; fi'
    const pack = run('bsdtar', ['-c', '-f', '-', '-C', path.dirname(abs), base])
    const [cmd, args] = velo(['sh', '-c', script, 'cp', dst.path, base])
    const unpack = run(cmd, args, {input: pack.child.stdout!})
    await Promise.all([pack.done, unpack.done])
    return {from: abs, to: `${name}:${dst.path}`}
  }
  // tenant → host: the tenant packs (its own view), bsdtar unpacks with its secure defaults
  const abs = path.resolve(dst.path)
  const into = fs.existsSync(abs) && fs.statSync(abs).isDirectory()
  const parent = into ? abs : path.dirname(abs)
  if (!fs.existsSync(parent)) throw new VeloError('NOT_FOUND', `no such directory on the host: ${parent}`)
  const target = into ? abs : fs.mkdtempSync(path.join(parent, '.velo-cp.'))
  const srcBase = path.posix.basename(src.path)
  const [cmd, args] = velo(['sh', '-c', 'cd "$(dirname "$1")" && tar -c -f - "$(basename "$1")"', 'cp', src.path])
  const pack = run(cmd, args)
  const unpack = run('bsdtar', ['-x', '-f', '-', '--no-same-owner', '-C', target], {input: pack.child.stdout!})
  try {
    await Promise.all([pack.done, unpack.done])
    if (!into) fs.renameSync(path.join(target, srcBase), abs)
  } finally {
    if (!into) fs.rmSync(target, {recursive: true, force: true})
  }
  return {from: `${name}:${src.path}`, to: abs}
}
