import {VeloError} from '../lib/errors'
import {validateName} from '../lib/names'
import {importImage, ImportResult, nameFromRef} from './import'

/**
 * `velo image pull REF`: the image's `docker save` stream from the local Docker daemon (dockerode,
 * GET /images/REF/get), straight into the importer — no file in between. The daemon is found the way the
 * docker CLI finds it: DOCKER_HOST, else /var/run/docker.sock.
 */
export function dockerEndpoint(): string {
  return process.env.DOCKER_HOST || 'unix:///var/run/docker.sock'
}

function daemonError(err: unknown, ref: string): VeloError {
  const e = err as {code?: string; statusCode?: number; message?: string; json?: {message?: string}}
  const where = dockerEndpoint()
  if (e?.statusCode === 404)
    return new VeloError('NOT_FOUND', `the Docker daemon at ${where} has no image ${JSON.stringify(ref)}`, {
      suggestion: 'list its images with `docker images`; this machine pulls nothing from registries, so `docker pull`/`docker import` it first',
    })
  if (e?.code === 'ENOENT' || e?.code === 'ECONNREFUSED' || e?.code === 'ECONNRESET' || e?.code === 'EACCES' || e?.code === 'ENOTSOCK')
    return new VeloError('STATE', `cannot reach a Docker daemon at ${where} (${e.code})`, {
      suggestion: e.code === 'EACCES' ? 'run as root or as a member of the docker group' : 'start dockerd, or point DOCKER_HOST at its socket (unix:///path/to/docker.sock)',
    })
  if (e?.statusCode) return new VeloError('STATE', `the Docker daemon at ${where} refused: ${e.json?.message ?? e.message ?? e.statusCode}`)
  if (err instanceof VeloError) return err
  return new VeloError('STATE', `Docker daemon at ${where}: ${e?.message ?? String(err)}`, {cause: err})
}

export async function pullImage(home: string, ref: string, opts: {name?: string; onProgress?: (n: number, total: number) => void} = {}): Promise<ImportResult & {ref: string}> {
  const name = validateName('image', opts.name ?? nameFromRef(ref))
  const {default: Docker} = await import('dockerode')
  const http = await import('node:http')
  // No keep-alive: an idle pooled socket would hold the process open for seconds after the import is done.
  const agent = new http.Agent({keepAlive: false})
  let docker: InstanceType<typeof Docker>
  try {
    docker = new Docker({agent} as never)
  } catch (err) {
    throw new VeloError('USAGE', `DOCKER_HOST=${process.env.DOCKER_HOST}: ${(err as Error).message}`, {suggestion: 'set DOCKER_HOST=unix:///path/to/docker.sock'})
  }
  const image = docker.getImage(ref)
  let size = 0
  let stream: NodeJS.ReadableStream
  try {
    const info = await image.inspect()
    size = Number(info.Size ?? 0)
    stream = await image.get()
  } catch (err) {
    agent.destroy()
    throw daemonError(err, ref)
  }
  try {
    const r = await importImage(home, stream, {name, ref, source: `docker:${ref}`, format: 'image', onProgress: opts.onProgress ? (n) => opts.onProgress!(n, size) : undefined})
    return {...r, ref}
  } finally {
    ;(stream as unknown as {destroy?: () => void}).destroy?.()
    agent.destroy()
  }
}
