import * as fs from 'node:fs'
import * as path from 'node:path'
import {execFileSync} from 'node:child_process'
import {expect} from 'vitest'
import {ROOT, sh, tmpDir, velo, RunResult} from '../helpers'

export const SHIM = path.join(ROOT, 'native', 'build', 'libvelo-shim.so')

/** A real node_modules, installed by npm (from its cache when it can), with a package that has a bin. */
export function npmApp(dir: string): string {
  const app = path.join(dir, 'app')
  fs.mkdirSync(app, {recursive: true})
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({name: 'app', version: '1.0.0', private: true}))
  const r = sh('npm install --prefer-offline --no-audit --no-fund --loglevel=error express@4.21.2 semver@7.6.3', {cwd: app})
  if (r.status !== 0) throw new Error(`npm install failed: ${r.stderr}`)
  return app
}

export function ingest(home: string, dir: string, name: string, opts = {}): string {
  const r = velo(home, ['ingest', dir, '--name', name, '--json'], opts)
  if (r.status !== 0) throw new Error(`ingest failed: ${r.stderr}`)
  return JSON.parse(r.stdout).layer
}

/** `velo run --image IMAGE [extra] -- bash -c CMD` in CWD. */
export function vrun(home: string, image: string, cwd: string, cmd: string, extra: string[] = [], env: NodeJS.ProcessEnv = {}): RunResult {
  return velo(home, ['run', '--image', image, ...extra, '--', 'bash', '-c', cmd], {cwd, env})
}

export function ok(r: RunResult): string {
  expect(r.stderr.replace(/^npm warn Unknown (user|env) config.*\n/gm, ''), `stderr of a run that should be clean (exit ${r.status})`).toBe('')
  expect(r.status).toBe(0)
  return r.stdout
}

/**
 * Every object in the store still hashes to its name (BLAKE3 via b3sum) and has the size in its name: the
 * projection never wrote into the store.
 */
export function expectStoreIntact(home: string): number {
  const cas = path.join(home, 'cas', 'blake3')
  const out = execFileSync('bash', ['-c', 'find . -type f -print0 | sort -z | xargs -0 -r b3sum'], {cwd: cas, encoding: 'utf8', maxBuffer: 64 << 20})
  let n = 0
  for (const line of out.trim().split('\n').filter(Boolean)) {
    const [hash, file] = line.split(/\s+/)
    const name = path.basename(file)
    const [nameHash, size] = name.split('_')
    expect(hash, `object ${file}`).toBe(nameHash)
    expect(fs.statSync(path.join(cas, file)).size, `size of ${file}`).toBe(Number(size))
    n++
  }
  expect(n).toBeGreaterThan(0)
  // and the store's own check agrees (re-hashes every object, checks every layer's references)
  const f = velo(home, ['fsck', '--json'])
  expect(f.status, f.stdout + f.stderr).toBe(0)
  expect(JSON.parse(f.stdout).problems).toEqual([])
  return n
}

/**
 * The projection fixture both modes compare against: a node_modules image `nm` in `home`, a real copy of the
 * app in `real`, and a project dir `proj` holding only package.json (where the image gets projected).
 */
export function projectionFixture(prefix: string): {dir: string; home: string; real: string; proj: string} {
  const dir = tmpDir(prefix)
  const home = path.join(dir, 'home')
  const app = npmApp(dir)
  ingest(home, path.join(app, 'node_modules'), 'nm')
  const real = path.join(dir, 'real')
  const proj = path.join(dir, 'proj')
  fs.mkdirSync(real)
  fs.mkdirSync(proj)
  sh(`cp -a ${app}/node_modules ${app}/package.json ${real}/ && cp -a ${app}/package.json ${proj}/`)
  return {dir, home, real, proj}
}
