#!/usr/bin/env node
'use strict'
// Fast path for --version: every velo call pays Node's start-up, so this one pays nothing more.
const argv = process.argv.slice(2)
if (argv.length === 1 && (argv[0] === '--version' || argv[0] === '-v' || argv[0] === 'version')) {
  const pkg = require('../package.json')
  process.stdout.write(`velo/${pkg.version} ${process.platform}-${process.arch} node-${process.version}\n`)
  process.exit(0)
}
// Commands run through dist/fast.js (the same command classes without @oclif/core's start-up cost); help,
// unknown commands, and VELO_NO_FAST=1 go to real oclif.
;(async () => {
  // VELO_NO_CODE_CACHE=1: compile the bundle as require() does (for comparison: bench/store.mjs)
  const fast = () => (process.env.VELO_NO_CODE_CACHE ? require('../dist/fast.js') : require('./code-cache.js').load(`${__dirname}/../dist/fast.js`))
  if (!process.env.VELO_NO_FAST && (await fast().main(argv))) return
  await require('../dist/cli.js').run(__filename)
})()
