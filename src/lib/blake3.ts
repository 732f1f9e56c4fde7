import type {Blake3Hasher as Hasher} from '@napi-rs/blake-hash'

let mod: typeof import('@napi-rs/blake-hash') | undefined

/**
 * A BLAKE3 hasher, with the native module loaded on first use: most velo calls (sandbox exec, ls, rm)
 * never hash, and loading the addon costs several ms of every call's start-up.
 */
export function newHasher(): Hasher {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  mod ??= require('@napi-rs/blake-hash') as typeof import('@napi-rs/blake-hash')
  return new mod.Blake3Hasher()
}
