// Bundle the CLI with esbuild: the entry, @oclif/core and the command registry in one file,
// so start-up reads one file instead of hundreds. Native addons (lmdb, blake-hash, node-pty) stay external.
import {build} from 'esbuild'
import {execFileSync} from 'node:child_process'

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: 'linked',
  logLevel: 'warning',
  external: ['typescript', 'ts-node', 'lmdb', '@napi-rs/blake-hash', 'node-pty', 'dockerode', 'testcontainers', 'cpu-features', 'ssh2', '@grpc/grpc-js', '@grpc/proto-loader'],
}
await build({...common, entryPoints: {cli: 'src/cli.ts', 'ingest-worker': 'src/store/ingest-worker.ts', 'lazy-fetcher': 'src/registry/fetcher.ts'}, minify: true, outdir: 'dist'})
// The fast path: the same commands against src/lib/mini-oclif.ts instead of @oclif/core (see that file).
// Its import() calls become require() (all of them load CommonJS or node: modules), so that bin/velo.js can run it
// from V8's code cache (bin/code-cache.js), written right after.
await build({...common, entryPoints: {fast: 'src/fast.ts'}, outdir: 'dist', minify: true, alias: {'@oclif/core': './src/lib/mini-oclif.ts'}, supported: {'dynamic-import': false}})
try {
  execFileSync(process.execPath, ['bin/code-cache.js', 'dist/fast.js'], {stdio: ['ignore', 'ignore', 'inherit']})
} catch {
  // an optimisation only: every call still works, each compiling the bundle (~30 ms more)
  console.warn('build: no code cache for dist/fast.js (see the error above); velo works without it')
}
// oclif.manifest.json lets oclif answer --help and route commands without loading command code.
execFileSync(process.execPath, ['node_modules/oclif/bin/run.js', 'manifest'], {stdio: ['ignore', 'ignore', 'inherit']})
