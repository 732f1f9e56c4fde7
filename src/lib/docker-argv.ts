/**
 * Docker's habit for the commands that end in a command to run: flags end at the first word after NAME (or
 * IMAGE), so `velo sandbox exec a sh -c 'x'` runs `sh -c x` (its -c is not velo's) and `velo sandbox exec a ls -t`
 * lists by time; velo's flags may still come before or after NAME (`sandbox create NAME --memory 1g -- CMD`), and
 * `--` still works. Applied to argv before parsing (src/lib/command.ts), so oclif, the fast path's parser and
 * --help all see one canonical form:
 *   name:  exec [flags] NAME [flags] CMD...   → exec [flags] NAME [flags] -- CMD...
 *   image: run [flags] IMAGE [flags] CMD...   → run [flags] --image IMAGE [flags] -- CMD...
 * native/cli/args.c (args_docker_shape) does the same for the calls the native front-end serves.
 */
type FlagDefs = Record<string, {type?: string; char?: string; aliases?: string[]; charAliases?: string[]}>

export type DockerShape = 'name' | 'image'

export function dockerArgv(argv: string[], defs: FlagDefs, shape: DockerShape): string[] {
  const names = Object.keys(defs)
  const byLong = (n: string) => Object.values(defs).find((f, i) => names[i] === n || f.aliases?.includes(n))
  const byChar = (c: string) => Object.values(defs).find((f) => f.char === c || f.charAliases?.includes(c))
  let first = -1 // NAME or IMAGE
  for (let i = 0; i < argv.length; i++) {
    const tok = argv[i]
    if (tok === '--') break // separated already
    if (tok.startsWith('--')) {
      // --flag value (an option without =) takes the next word
      if (!tok.includes('=') && byLong(tok.slice(2))?.type === 'option') i++
      continue
    }
    if (tok.startsWith('-') && tok.length > 1 && !/^-\d/.test(tok)) {
      // -x value, -xvalue, or bundled booleans (-it): only a lone -x of an option takes the next word; in a
      // bundle, the first option character takes the rest of the word as its value
      for (let k = 1; k < tok.length; k++) {
        const f = byChar(tok[k])
        if (f?.type === 'option') {
          if (k === tok.length - 1) i++
          break
        }
      }
      continue
    }
    if (first < 0) {
      first = i
      continue
    }
    // the first word after NAME: the command starts here
    return finish(argv, first, i, shape)
  }
  return first < 0 ? argv : finish(argv, first, -1, shape)
}

/** `--` before the command (at cmd; -1: none), and IMAGE as --image */
function finish(argv: string[], first: number, cmd: number, shape: DockerShape): string[] {
  const out = cmd < 0 ? [...argv] : [...argv.slice(0, cmd), '--', ...argv.slice(cmd)]
  if (shape === 'image') out.splice(first, 1, '--image', argv[first])
  return out
}
