import * as fs from 'node:fs'
import {Flags} from '@oclif/core'
import {VeloError} from '../lib/errors'
import {findCredentials} from './auth'
import type {ClientOptions} from './client'
import {parseRef} from './ref'

/** The connection flags every registry command takes. */
export const registryFlags = {
  insecure: Flags.boolean({description: 'plain HTTP (only for a registry on loopback: 127.0.0.0/8, ::1, localhost)'}),
  ca: Flags.string({description: "PEM file with the CA that signed the registry's TLS certificate (added to the system's)"}),
  username: Flags.string({description: 'user name (the password comes from --password-stdin); else VELO_REGISTRY_USERNAME/_PASSWORD, else ~/.docker/config.json'}),
  'password-stdin': Flags.boolean({description: 'read the password from stdin (with --username)'}),
}

/** Client options from the flags: credentials read once, the password from stdin (never from argv). */
export function clientOptions(ref: string, f: {insecure?: boolean; ca?: string; username?: string; 'password-stdin'?: boolean}): ClientOptions {
  let password: string | undefined
  if (f['password-stdin']) {
    if (f.username === undefined) throw new VeloError('USAGE', '--password-stdin needs --username')
    try {
      password = fs.readFileSync(0, 'utf8').replace(/\r?\n$/, '')
    } catch (err) {
      throw new VeloError('USAGE', `cannot read the password from stdin: ${(err as Error).message}`)
    }
  }
  const {registry} = parseRef(ref)
  return {insecure: f.insecure, ca: f.ca, credentials: findCredentials(registry, {username: f.username, password})}
}
