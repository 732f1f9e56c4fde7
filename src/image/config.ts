import type {ImageConfig} from '../manifest/db'

/**
 * The image config fields velo keeps, in one table for both directions: import reads them from an OCI/Docker
 * config's `config` object, export writes them back under the same Docker names.
 */
const FIELDS: ReadonlyArray<[docker: string, velo: keyof ImageConfig & string, kind: 'array' | 'string' | 'object']> = [
  ['Env', 'env', 'array'],
  ['Cmd', 'cmd', 'array'],
  ['Entrypoint', 'entrypoint', 'array'],
  ['WorkingDir', 'workingDir', 'string'],
  ['User', 'user', 'string'],
  ['Labels', 'labels', 'object'],
  ['ExposedPorts', 'exposedPorts', 'object'],
  ['Volumes', 'volumes', 'object'],
  ['StopSignal', 'stopSignal', 'string'],
]

const isKind = (v: unknown, kind: 'array' | 'string' | 'object'): boolean =>
  kind === 'array' ? Array.isArray(v) : kind === 'string' ? typeof v === 'string' && v !== '' : !!v && typeof v === 'object' && !Array.isArray(v)

/** Node's process.arch → Go's GOARCH, the name OCI platforms and Docker configs use. */
const GOARCH: Record<string, string> = {x64: 'amd64', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x', ia32: '386'}
export const hostGoArch = (): string => GOARCH[process.arch] ?? process.arch

/** An OCI/Docker image config JSON → what velo stores (fields of the wrong type are left out). */
export function configFromDocker(cfg: any): ImageConfig {
  const c = cfg?.config ?? {}
  const out: ImageConfig = {}
  for (const [docker, velo, kind] of FIELDS) if (isKind(c[docker], kind)) out[velo] = c[docker]
  if (typeof cfg?.architecture === 'string') out.architecture = cfg.architecture
  if (typeof cfg?.os === 'string') out.os = cfg.os
  return out
}

/** What velo stores → the `config` object of a Docker image config. */
export function configToDocker(c: ImageConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [docker, velo, kind] of FIELDS) if (isKind(c[velo], kind)) out[docker] = c[velo]
  return out
}
