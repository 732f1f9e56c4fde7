'use strict'
// V8's code cache for a CommonJS bundle: every velo call that Node serves loads dist/fast.js (700 KB), and compiling
// it is most of what a call costs beyond Node's own start. The build writes FILE.cache once (write()); load() runs
// the bundle from it. V8 checks its own version and flags and compiles afresh when they differ, but it recognises
// the source only by its length, so the cache starts with the SHA-256 of the source it was made from and is used
// only for that exact source; and V8 checks the cache's own checksum only in debug builds, so the cache's hash
// follows (a damaged cache must never reach V8). Anything wrong with the cache (missing, stale, damaged) falls back
// to a plain require(); nothing here can make a call fail that would have worked without it.
const fs = require('node:fs')
const path = require('node:path')
const vm = require('node:vm')
const crypto = require('node:crypto')
const Module = require('node:module')

const HASH_BYTES = 32 // SHA-256; the file: hash of the source, hash of V8's data, V8's data

function sha256(data) {
  return crypto.createHash('sha256').update(data).digest()
}

function compile(file, source, cachedData) {
  return new vm.Script(Module.wrap(source), {filename: file, cachedData})
}

/** Run a compiled module wrapper as require() runs `file`: its own module object, require and paths. */
function run(script, file, register) {
  const m = new Module(file, module)
  m.filename = file
  m.paths = Module._nodeModulePaths(path.dirname(file))
  if (register) Module._cache[file] = m
  try {
    script.runInThisContext().call(m.exports, m.exports, Module.createRequire(file), m, file, path.dirname(file))
  } catch (err) {
    if (register) delete Module._cache[file]
    throw err
  }
  m.loaded = true
  return m.exports
}

/** Run `file` as require() would, but compiled from its code cache when that cache was made from this source. */
function load(file) {
  file = path.resolve(file)
  if (Module._cache[file]) return Module._cache[file].exports
  let script
  try {
    const source = fs.readFileSync(file, 'utf8')
    const cache = fs.readFileSync(`${file}.cache`)
    const data = cache.subarray(2 * HASH_BYTES)
    if (!data.length || !cache.subarray(0, HASH_BYTES).equals(sha256(source)) || !cache.subarray(HASH_BYTES, 2 * HASH_BYTES).equals(sha256(data)))
      return require(file)
    script = compile(file, source, data)
  } catch {
    return require(file)
  }
  return run(script, file, true)
}

/** Write `file`.cache: the source's hash, the data's hash, then V8's code cache of the bundle once its top level has run. A bundle
 * with import() in it gets none (any old one is removed): a script compiled by vm has no loader for import() unless
 * given one, and Node 20's is experimental (a warning on stderr) and lost when the code comes from a cache; the
 * build turns the fast bundle's import() into require(). Returns the cache's size, or 0. */
function write(file) {
  file = path.resolve(file)
  const source = fs.readFileSync(file, 'utf8')
  if (/\bimport\(/.test(source)) {
    fs.rmSync(`${file}.cache`, {force: true})
    return 0
  }
  const script = compile(file, source, undefined)
  run(script, file, false) // its top level compiled too, not only pre-parsed
  const data = script.createCachedData()
  const tmp = `${file}.cache.${process.pid}`
  fs.writeFileSync(tmp, Buffer.concat([sha256(source), sha256(data), data]))
  fs.renameSync(tmp, `${file}.cache`)
  return data.length
}

module.exports = {load, write}

if (require.main === module) {
  for (const f of process.argv.slice(2)) {
    const n = write(f)
    process.stderr.write(n ? `code cache: ${f}.cache (${n} bytes)\n` : `code cache: none for ${f} (it has import(); see bin/code-cache.js)\n`)
  }
}
