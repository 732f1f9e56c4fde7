import {execFileSync} from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

// Tests run the real CLI (bin/velo → native/build/velo, bin/velo.js → dist/fast.js/cli.js) and the real native
// binaries: make sure both are built. Phantom skeletons go to a cache dir of this run (not ~/.cache/velo),
// removed at the end: a test that does not set VELO_CACHE_HOME itself leaves nothing in the user's home.
export default function setup(): () => void {
  const root = path.resolve(__dirname, '..')
  execFileSync(process.execPath, ['scripts/build.mjs'], {cwd: root, stdio: 'inherit'})
  execFileSync('make', ['-s', '-C', 'native'], {cwd: root, stdio: 'inherit'})
  const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'velo-test-cache-'))
  process.env.VELO_CACHE_HOME = cache
  return () => fs.rmSync(cache, {recursive: true, force: true})
}
