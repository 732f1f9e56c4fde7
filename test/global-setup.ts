import {execFileSync} from 'node:child_process'
import * as path from 'node:path'

// Tests run the real CLI (bin/velo.js → dist/cli.js) and the real native binaries: make sure both are built.
export default function setup(): void {
  const root = path.resolve(__dirname, '..')
  execFileSync(process.execPath, ['scripts/build.mjs'], {cwd: root, stdio: 'inherit'})
  execFileSync('make', ['-s', '-C', 'native'], {cwd: root, stdio: 'inherit'})
}
