import {VeloError} from './errors'

/**
 * Image and sandbox names end up in LMDB keys, directory names and cgroup paths, so they are held to a
 * small safe alphabet: no slashes, no leading dot or dash, no `..`, at most 128 bytes.
 */
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/

export function validateName(kind: 'image' | 'sandbox' | 'layer' | 'volume', name: string): string {
  if (typeof name !== 'string' || !NAME.test(name) || name.includes('..')) {
    throw new VeloError('INVALID_NAME', `invalid ${kind} name ${JSON.stringify(name)}`, {
      suggestion: `a ${kind} name starts with a letter or digit and uses only letters, digits, '.', '_', '-' and ':' (at most 128 characters, no '/' and no '..')`,
    })
  }
  return name
}
