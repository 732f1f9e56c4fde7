import * as fs from 'node:fs'
import {VeloError} from './errors'

/**
 * A password for a command: from stdin with `--password-stdin` (everything piped, one trailing newline dropped, as
 * `docker login --password-stdin` does), else typed on the terminal without echo (twice with `confirm`). Never
 * from an argument or the environment: those show in `ps` and /proc/PID/environ.
 */
export async function readPassword(o: {stdin?: boolean; prompt: string; confirm?: boolean; flag?: string}): Promise<string> {
  let pw: string
  if (o.stdin) {
    try {
      pw = fs.readFileSync(0, 'utf8').replace(/\r?\n$/, '')
    } catch (err) {
      throw new VeloError('USAGE', `cannot read the password from stdin: ${(err as Error).message}`)
    }
  } else {
    if (!process.stdin.isTTY || !process.stderr.isTTY)
      throw new VeloError('USAGE', 'no terminal to ask for the password on', {suggestion: `pipe it to ${o.flag ?? '--password-stdin'}`})
    pw = await promptHidden(o.prompt)
    if (o.confirm && (await promptHidden('again: ')) !== pw) throw new VeloError('USAGE', 'the two passwords differ')
  }
  if (pw.length === 0) throw new VeloError('USAGE', 'the password is empty')
  return pw
}

/** One line typed on the terminal, not echoed (raw mode; backspace edits, Ctrl-C and Ctrl-D give up). */
function promptHidden(prompt: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const stdin = process.stdin
    let line = ''
    process.stderr.write(prompt)
    stdin.setRawMode(true)
    stdin.resume()
    const done = (err?: Error) => {
      stdin.off('data', onData)
      stdin.setRawMode(false)
      stdin.pause()
      process.stderr.write('\n')
      if (err) reject(err)
      else resolve(line)
    }
    const onData = (chunk: Buffer) => {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return done()
        if (ch === '\u0003' || ch === '\u0004') return done(new VeloError('USAGE', 'no password given'))
        if (ch === '\u007f' || ch === '\b') line = [...line].slice(0, -1).join('')
        else line += ch
      }
    }
    stdin.on('data', onData)
  })
}
