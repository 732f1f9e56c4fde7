import {createHash} from 'node:crypto'
import {VeloError} from '../lib/errors'

/**
 * Cache keys → registry tags and local image names, deterministically.
 *
 * A tag is `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`; a key is any text a CI job makes (`npm-linux-<sha256 of
 * package-lock.json>`, `v1/deps@x`). Encoding: `k_` + the key with every byte outside [A-Za-z0-9_] written as
 * `-` and two lower-case hex digits (its UTF-8 bytes). Per byte, so a key's prefix encodes to the tag's prefix
 * (what `--fallback-prefix` matches on) and the tag decodes back to the key. A key whose encoding would make the
 * tag longer than MAX_TAG becomes `h_` + the first part of its encoding + `_` + 40 hex of its sha256 (still
 * deterministic, still prefix-matchable up to that part); the original key is always kept in the image config.
 */
export const MAX_TAG = 120
const HASHED_HEAD = MAX_TAG - 2 - 1 - 40
export const IMAGE_PREFIX = 'cache:'
const SAFE = /^[A-Za-z0-9_]$/

export function validateKey(key: string): string {
  if (typeof key !== 'string' || key.length === 0) throw new VeloError('USAGE', 'a cache key may not be empty')
  if (Buffer.byteLength(key) > 4096) throw new VeloError('USAGE', 'a cache key is at most 4096 bytes', {suggestion: 'hash long inputs into the key (e.g. sha256 of the lock file)'})
  if (/[\0-\x1f\x7f]/.test(key)) throw new VeloError('USAGE', `cache key ${JSON.stringify(key)} has control characters`)
  return key
}

export function encodeKey(key: string): string {
  let out = ''
  for (const ch of key) {
    if (SAFE.test(ch)) out += ch
    else for (const b of Buffer.from(ch)) out += '-' + b.toString(16).padStart(2, '0')
  }
  return out
}

export function decodeKey(enc: string): string | undefined {
  const bytes: number[] = []
  for (let i = 0; i < enc.length; i++) {
    if (enc[i] === '-') {
      const h = enc.slice(i + 1, i + 3)
      if (!/^[0-9a-f]{2}$/.test(h)) return undefined
      bytes.push(parseInt(h, 16))
      i += 2
    } else if (SAFE.test(enc[i])) bytes.push(enc.charCodeAt(i))
    else return undefined
  }
  return Buffer.from(bytes).toString('utf8')
}

export function tagFor(key: string): string {
  const enc = encodeKey(validateKey(key))
  if (2 + enc.length <= MAX_TAG) return 'k_' + enc
  const digest = createHash('sha256').update(key).digest('hex').slice(0, 40)
  return `h_${enc.slice(0, HASHED_HEAD)}_${digest}`
}

/** The key a tag names when the tag alone says it (`k_` tags); undefined for hashed tags (read the config). */
export function keyOfTag(tag: string): string | undefined {
  return tag.startsWith('k_') ? decodeKey(tag.slice(2)) : undefined
}

/**
 * Whether a tag may hold a key starting with PREFIX: exactly for `k_` tags; for `h_` tags when the kept part of
 * the encoding agrees with the prefix's as far as both go (the key in the config decides).
 */
export function tagMayMatch(tag: string, prefix: string): 'yes' | 'maybe' | 'no' {
  const enc = encodeKey(prefix)
  if (tag.startsWith('k_')) return tag.slice(2).startsWith(enc) ? 'yes' : 'no'
  if (tag.startsWith('h_')) {
    const head = tag.slice(2, 2 + HASHED_HEAD)
    return head.startsWith(enc) || enc.startsWith(head) ? 'maybe' : 'no'
  }
  return 'no'
}

export const imageFor = (tag: string): string => IMAGE_PREFIX + tag
