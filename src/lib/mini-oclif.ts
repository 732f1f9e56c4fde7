/**
 * The subset of @oclif/core that velo's commands use, small enough to load in a few milliseconds.
 *
 * Why: every velo call pays Node's start-up (~60–90 ms here) and loading @oclif/core costs as much again
 * (measured: `velo image ls` 0.16 s vs `node -e 0` 0.06 s). A hundred tenants means hundreds of calls, and
 * `velo sandbox run` is compared with `docker run`. So the build makes a second bundle, dist/fast.js, from
 * the SAME command classes with `@oclif/core` aliased to this file; bin/velo.js runs commands through it and
 * falls back to real oclif for help, unknown commands and anything this file does not handle.
 *
 * Parsing follows oclif's parser (lib/parser/parse.js) where velo's commands can tell the difference:
 * `--flag value`, `--flag=value`, `-f value`, `-fvalue`, bundled short booleans, `--no-x` with allowNo,
 * `--` ends flags, `multiple` flags are greedy unless `multipleNonGreedy`, strict mode rejects extra
 * arguments and unknown flags with oclif's messages. test/lib/fast-path.test.ts runs both paths side by side.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'

/* eslint-disable @typescript-eslint/no-explicit-any */
type Dict = Record<string, any>

export class CLIError extends Error {
  oclif: {exit: number}
  code?: string
  constructor(message: string, opts: {exit?: number; code?: string} = {}) {
    super(message)
    this.oclif = {exit: opts.exit ?? 2}
    this.code = opts.code
  }
}

export class ExitError extends CLIError {
  constructor(code: number) {
    super(`EEXIT: ${code}`, {exit: code, code: 'EEXIT'})
  }
}

export const Errors = {CLIError, ExitError}

/** Marker thrown before a command runs when the fast path cannot serve the call: bin/velo.js falls back. */
export class FallBack extends Error {}

const optionFlag = (defaults: Dict = {}) => (o: Dict = {}) => ({
  parse: async (i: string) => i,
  ...defaults,
  ...o,
  multiple: Boolean(o.multiple ?? defaults.multiple),
  type: 'option',
})

export const Flags = {
  string: (o: Dict = {}) => optionFlag()(o),
  directory: (o: Dict = {}) => optionFlag()(o),
  file: (o: Dict = {}) => optionFlag()(o),
  url: (o: Dict = {}) => optionFlag({parse: async (i: string) => new URL(i)})(o),
  option: (defaults: Dict) => optionFlag(defaults),
  custom: (defaults: Dict = {}) => optionFlag(defaults),
  boolean: (o: Dict = {}) => ({parse: async (b: boolean) => b, ...o, allowNo: Boolean(o.allowNo), type: 'boolean'}),
  integer: (o: Dict = {}) =>
    optionFlag({
      parse: async (input: string) => {
        if (!/^-?\d+$/.test(input)) throw new CLIError(`Expected an integer but received: ${input}`)
        const n = Number.parseInt(input, 10)
        if (o.min !== undefined && n < o.min) throw new CLIError(`Expected an integer greater than or equal to ${o.min} but received: ${input}`)
        if (o.max !== undefined && n > o.max) throw new CLIError(`Expected an integer less than or equal to ${o.max} but received: ${input}`)
        return n
      },
    })(o),
}

export const Args = {
  string: (o: Dict = {}) => ({parse: async (i: string) => i, ...o}),
  integer: (o: Dict = {}) => ({parse: async (i: string) => Flags.integer(o).parse(i), ...o}),
  custom: (d: Dict = {}) => (o: Dict = {}) => ({parse: async (i: string) => i, ...d, ...o}),
  directory: (o: Dict = {}) => ({parse: async (i: string) => i, ...o}),
  file: (o: Dict = {}) => ({parse: async (i: string) => i, ...o}),
}

let pkgVersion: string | undefined
function version(): string {
  if (pkgVersion) return pkgVersion
  try {
    let d = __dirname
    while (!fs.existsSync(path.join(d, 'package.json'))) d = path.dirname(d)
    pkgVersion = JSON.parse(fs.readFileSync(path.join(d, 'package.json'), 'utf8')).version
  } catch {
    pkgVersion = '0.0.0'
  }
  return pkgVersion!
}

export interface ParseOutput {
  flags: Dict
  args: Dict
  argv: string[]
  raw: Array<{type: 'flag' | 'arg'; flag?: string; arg?: string; input: string}>
  metadata: {flags: Dict}
  nonExistentFlags: string[]
}

/** oclif-compatible parse of `argv` against flag and arg definitions. */
export async function parse(argv: string[], input: {flags?: Dict; baseFlags?: Dict; args?: Dict; strict?: boolean; enableJsonFlag?: boolean}): Promise<ParseOutput> {
  const flagDefs: Dict = {...(input.baseFlags ?? {}), ...(input.flags ?? {})}
  if (input.enableJsonFlag) flagDefs.json = {type: 'boolean', parse: async (b: boolean) => b, description: 'Format output as json.', helpGroup: 'GLOBAL'}
  for (const [name, f] of Object.entries(flagDefs)) f.name = name
  const argDefs: Dict = input.args ?? {}
  const argNames = Object.keys(argDefs)
  const strict = input.strict !== false

  const findFlag = (arg: string): {name?: string; isLong: boolean} => {
    const isLong = arg.startsWith('--')
    if (isLong) {
      const n = arg.slice(2)
      if (flagDefs[n]) return {name: n, isLong}
      for (const [k, f] of Object.entries(flagDefs)) if (f.aliases?.includes(n)) return {name: k, isLong}
      if (n.startsWith('no-') && flagDefs[n.slice(3)]?.allowNo) return {name: n.slice(3), isLong}
      return {isLong}
    }
    if (arg.startsWith('-') && arg.length >= 2) {
      const c = arg[1]
      for (const [k, f] of Object.entries(flagDefs)) if (f.char === c || f.charAliases?.includes(c)) return {name: k, isLong: false}
    }
    return {isLong}
  }

  const rest = [...argv]
  const raw: ParseOutput['raw'] = []
  const nonExistentFlags: string[] = []
  let parsingFlags = true
  let currentFlag: Dict | undefined
  const argTokens = () => raw.filter((r) => r.type === 'arg').length

  const parseFlag = (arg: string): boolean => {
    const {isLong, name} = findFlag(arg)
    if (!name) {
      const i = arg.indexOf('=')
      if (i !== -1) {
        rest.unshift(arg.slice(i + 1))
        const ok = parseFlag(arg.slice(0, i))
        if (!ok) rest.shift()
        return ok
      }
      return false
    }
    const flag = flagDefs[name]
    if (flag.type === 'option') {
      if (!flag.multiple && raw.some((o) => o.type === 'flag' && o.flag === name)) throw new CLIError(`Flag --${name} can only be specified once`)
      currentFlag = flag
      const value = isLong || arg.length < 3 ? rest.shift() : arg.slice(arg[2] === '=' ? 3 : 2)
      if (typeof value !== 'string' || findFlag(value).name) {
        if (flag.options) throw new CLIError(`Flag --${name} expects one of these values: ${flag.options.join(', ')}`)
        throw new CLIError(`Flag --${name} expects a value`)
      }
      raw.push({type: 'flag', flag: name, input: value})
    } else {
      raw.push({type: 'flag', flag: name, input: arg})
      if (!isLong && arg.length > 2) rest.unshift(`-${arg.slice(2)}`)
    }
    return true
  }

  while (rest.length > 0) {
    const tok = rest.shift()!
    if (parsingFlags && tok.startsWith('-') && tok !== '-') {
      if (tok === '--') {
        parsingFlags = false
        continue
      }
      if (parseFlag(tok)) continue
      if (!/^-\d/.test(tok)) {
        nonExistentFlags.push(tok)
        continue
      }
    }
    if (parsingFlags && currentFlag?.multiple && !currentFlag.multipleNonGreedy) {
      raw.push({type: 'flag', flag: currentFlag.name, input: tok})
      continue
    }
    raw.push({type: 'arg', arg: argNames[argTokens()], input: tok})
  }

  // oclif rejects unknown flags even when strict is off (validate.js); only tokens after `--` pass through
  if (nonExistentFlags.length > 0) throw new CLIError(`Nonexistent flag${nonExistentFlags.length > 1 ? 's' : ''}: ${nonExistentFlags.join(', ')}`)

  // flags
  const flags: Dict = {}
  const setFlags: Dict = {}
  for (const r of raw.filter((x) => x.type === 'flag')) {
    const f = flagDefs[r.flag!]
    if (f.type === 'boolean') {
      const v = !r.input.startsWith('--no-')
      flags[r.flag!] = await f.parse(v, {}, f)
    } else {
      if (f.options && !f.options.includes(r.input)) throw new CLIError(`Expected --${r.flag}=${r.input} to be one of: ${f.options.join(', ')}`)
      const v = await f.parse(r.input, {}, f)
      if (f.multiple) (flags[r.flag!] ??= []).push(v)
      else flags[r.flag!] = v
    }
    setFlags[r.flag!] = true
  }
  for (const [name, f] of Object.entries(flagDefs)) {
    if (flags[name] !== undefined) continue
    if (f.env && process.env[f.env] !== undefined) {
      const e = process.env[f.env]!
      flags[name] = f.type === 'boolean' ? ['1', 'true', 'yes'].includes(e.toLowerCase()) : await f.parse(e, {}, f)
      continue
    }
    if (f.default !== undefined) {
      const d = typeof f.default === 'function' ? await f.default({flags, options: f}) : f.default
      flags[name] = f.multiple && d !== undefined && !Array.isArray(d) ? [d] : d
    } else if (f.type === 'boolean' && !f.allowNo && f.default === undefined) {
      // oclif leaves unset booleans undefined
    }
    if (f.required && flags[name] === undefined) throw new CLIError(`Missing required flag ${name}`)
  }
  for (const [name, f] of Object.entries(flagDefs)) {
    if (!setFlags[name]) continue
    for (const ex of f.exclusive ?? []) if (setFlags[ex]) throw new CLIError(`--${ex}=${flags[ex]} cannot also be provided when using --${name}`)
    for (const dep of f.dependsOn ?? []) if (flags[dep] === undefined) throw new CLIError(`All of the following must be provided when using --${name}: --${dep}`)
  }

  // args
  const args: Dict = {}
  const argvOut: string[] = []
  const tokens = raw.filter((x) => x.type === 'arg')
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]
    const variadic = argNames.length > 0 && argDefs[argNames[argNames.length - 1]].multiple ? argNames[argNames.length - 1] : undefined
    if (!t.arg && variadic) {
      const v = await argDefs[variadic].parse(t.input, {}, argDefs[variadic])
      ;(args[variadic] = Array.isArray(args[variadic]) ? args[variadic] : [args[variadic]]).push(v)
      argvOut.push(v)
      continue
    }
    const def = t.arg ? argDefs[t.arg] : undefined
    if (!def) {
      if (strict) throw new CLIError(`Unexpected argument: ${t.input}\nSee more help with --help`)
      argvOut.push(t.input)
      continue
    }
    if (def.options && !def.options.includes(t.input)) throw new CLIError(`Expected ${t.input} to be one of: ${def.options.join(', ')}`)
    const v = await def.parse(t.input, {}, def)
    args[t.arg!] = v
    argvOut.push(v)
  }
  for (const [name, def] of Object.entries(argDefs)) {
    if (args[name] !== undefined) continue
    if (def.default !== undefined) args[name] = typeof def.default === 'function' ? await def.default() : def.default
    else if (def.required) {
      const missing = argNames.slice(argNames.indexOf(name)).filter((n) => argDefs[n].required)
      throw new CLIError(`Missing ${missing.length} required arg${missing.length > 1 ? 's' : ''}:\n${missing.map((n) => `${n}  ${argDefs[n].description ?? ''}`).join('\n')}\nSee more help with --help`)
    }
  }
  return {flags, args, argv: argvOut, raw, metadata: {flags: {}}, nonExistentFlags}
}

export class Command {
  static id?: string
  static summary?: string
  static description?: string
  static flags: Dict = {}
  static baseFlags: Dict = {}
  static args: Dict = {}
  static strict = true
  static enableJsonFlag = false
  static aliases: string[] = []
  static hidden = false
  static examples: string[] = []

  id?: string
  protected parsed = false

  constructor(public argv: string[], public config: Dict) {
    this.id = (this.constructor as typeof Command).id
  }

  get ctor(): typeof Command {
    return this.constructor as typeof Command
  }

  static async run(this: any, argv: string[] = [], config: Dict = {}): Promise<unknown> {
    const cmd = new this(argv, {bin: 'velo', version: version(), ...config})
    return cmd._run()
  }

  protected async _run(): Promise<unknown> {
    let err: unknown
    let result: unknown
    try {
      await this.init()
      result = await (this as any).run()
    } catch (error) {
      err = error
      await this.catch(error as Error)
    } finally {
      await this.finally(err as Error)
    }
    if (result && this.jsonEnabled()) this.logJson(result)
    return result
  }

  async init(): Promise<void> {}

  async finally(_err?: Error): Promise<void> {}

  protected async catch(err: Error & {exitCode?: number}): Promise<unknown> {
    process.exitCode = process.exitCode ?? err.exitCode ?? 1
    throw err
  }

  protected async parse(options?: Dict, argv = this.argv): Promise<ParseOutput> {
    // `options` may be a command class (oclif accepts both): read its statics by name, since a spread
    // would copy only own properties and lose inherited ones such as VeloCommand's baseFlags.
    const o = options ?? this.ctor
    const r = await parse(argv, {
      flags: o.flags,
      baseFlags: o.baseFlags ?? this.ctor.baseFlags,
      args: o.args,
      strict: o.strict,
      enableJsonFlag: o.enableJsonFlag ?? this.ctor.enableJsonFlag,
    })
    this.parsed = true
    return r
  }

  jsonEnabled(): boolean {
    if (!this.ctor.enableJsonFlag) return false
    const i = this.argv.indexOf('--')
    return (i === -1 ? this.argv : this.argv.slice(0, i)).includes('--json')
  }

  exit(code = 0): never {
    throw new ExitError(code)
  }

  error(input: string | Error, options: {exit?: number | false; code?: string} = {}): never {
    const e = typeof input === 'string' ? new CLIError(input, {exit: options.exit === false ? 1 : options.exit, code: options.code}) : input
    throw e
  }

  warn(input: string | Error): string | Error {
    if (!this.jsonEnabled()) process.stderr.write(` ›   Warning: ${typeof input === 'string' ? input : input.message}\n`)
    return input
  }

  log(message: unknown = '', ...args: unknown[]): void {
    if (!this.jsonEnabled()) process.stdout.write([typeof message === 'string' ? message : require('node:util').inspect(message), ...args].join(' ') + '\n')
  }

  logToStderr(message: unknown = '', ...args: unknown[]): void {
    if (!this.jsonEnabled()) process.stderr.write([String(message), ...args].join(' ') + '\n')
  }

  logJson(json: unknown): void {
    process.stdout.write(JSON.stringify(json, null, 2) + '\n')
  }

  toSuccessJson(result: unknown): unknown {
    return result
  }

  toErrorJson(err: unknown): unknown {
    return {error: err}
  }
}

export async function execute(): Promise<never> {
  throw new FallBack('execute is not available in the fast path')
}

export const ux = {
  stdout: (s = '') => process.stdout.write(s + '\n'),
  stderr: (s = '') => process.stderr.write(s + '\n'),
  action: {start: () => {}, stop: () => {}},
  colorize: (_c: string, s: string) => s,
}

export type {Dict}
// Type-only re-exports some command files use as `Interfaces.X`.
// eslint-disable-next-line @typescript-eslint/no-namespace
export namespace Interfaces {
  export type InferredFlags<T> = any
  export type InferredArgs<T> = any
}
