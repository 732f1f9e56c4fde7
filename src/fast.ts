/**
 * The fast path (see src/lib/mini-oclif.ts): find the command for argv in the same registry oclif uses and
 * run it without loading @oclif/core. Returns false, having done nothing, when the call is not for us
 * (help, version, no command, unknown command): bin/velo.js then runs real oclif.
 */
import {COMMANDS} from './commands'

type CommandClass = {run(argv: string[], config?: Record<string, unknown>): Promise<unknown>; aliases?: string[]}

function findCommand(argv: string[]): {cls: CommandClass; rest: string[]} | undefined {
  const table = new Map<string, CommandClass>()
  for (const [id, cls] of Object.entries(COMMANDS) as Array<[string, CommandClass]>) {
    table.set(id, cls)
    for (const a of cls.aliases ?? []) table.set(a.replace(/ /g, ':'), cls)
  }
  // longest prefix of non-flag words that names a command (topics are separated by spaces)
  const words: string[] = []
  for (const a of argv) {
    if (a.startsWith('-')) break
    words.push(a)
  }
  for (let n = words.length; n > 0; n--) {
    const cls = table.get(words.slice(0, n).join(':'))
    if (cls) return {cls, rest: argv.slice(n)}
  }
  return undefined
}

export async function main(argv: string[]): Promise<boolean> {
  const dd = argv.indexOf('--')
  const before = dd === -1 ? argv : argv.slice(0, dd)
  if (before.includes('--help') || before.includes('-h') || before.includes('help')) return false
  const found = findCommand(argv)
  if (!found) return false
  try {
    await found.cls.run(found.rest)
  } catch (err) {
    const e = err as {oclif?: {exit?: number}; message?: string}
    if (e?.oclif?.exit !== undefined) {
      if (!String(e.message).startsWith('EEXIT')) process.stderr.write(`velo: error [USAGE]: ${e.message}\n`)
      process.exitCode = e.oclif.exit
    } else {
      process.stderr.write(`velo: error [INTERNAL]: ${e?.message ?? String(err)}\n`)
      process.exitCode = 70
    }
  }
  return true
}
