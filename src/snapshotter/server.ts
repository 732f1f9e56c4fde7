import * as fs from 'node:fs'
import * as path from 'node:path'
import type * as grpc from '@grpc/grpc-js'
import {VeloError, fromSystemError} from '../lib/errors'
import {toVeloError} from '../lib/command'
import {GRPC, KIND_NUM, Mount, Snapshot, SnapshotError, Snapshots} from './snapshots'

/**
 * containerd's proxy snapshotter service, `containerd.services.snapshots.v1.Snapshots`, on a unix socket, from
 * containerd 1.6's own protos as Debian ships them (golang-github-containerd-containerd-dev, with gogo/protobuf's
 * and the well-known types beside them). Requests run one at a time (Node's one thread; every handler is
 * synchronous), so each sees the metadata as the one before left it.
 */
export const PROTO_ROOT = '/usr/share/gocode/src'
export const SNAPSHOTS_PROTO = 'github.com/containerd/containerd/api/services/snapshots/v1/snapshots.proto'

function loadService(protoRoot = process.env.VELO_CONTAINERD_PROTOS || PROTO_ROOT) {
  const file = path.join(protoRoot, SNAPSHOTS_PROTO)
  if (!fs.existsSync(file))
    throw new VeloError('NOT_FOUND', `containerd's snapshots protocol is not at ${file}`, {
      suggestion: 'apt-get install golang-github-containerd-containerd-dev (or point VELO_CONTAINERD_PROTOS at a dir with the same layout)',
    })
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const protoLoader = require('@grpc/proto-loader') as typeof import('@grpc/proto-loader')
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const grpcJs = require('@grpc/grpc-js') as typeof import('@grpc/grpc-js')
  const def = protoLoader.loadSync(SNAPSHOTS_PROTO, {
    keepCase: true,
    longs: String,
    enums: Number,
    defaults: true,
    includeDirs: [protoRoot, path.join(protoRoot, 'github.com/gogo/protobuf'), path.join(protoRoot, 'github.com/gogo/protobuf/protobuf')],
  })
  const pkg = grpcJs.loadPackageDefinition(def) as unknown as {containerd: {services: {snapshots: {v1: {Snapshots: grpc.ServiceClientConstructor}}}}}
  return {grpcJs, service: pkg.containerd.services.snapshots.v1.Snapshots.service}
}

function ts(iso: string) {
  const ms = Date.parse(iso)
  return {seconds: String(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1e6}
}

export function infoOf(name: string, s: Snapshot) {
  return {name, parent: s.parent, kind: KIND_NUM[s.kind], created_at: ts(s.createdAt), updated_at: ts(s.updatedAt), labels: s.labels}
}

function toStatus(err: unknown): grpc.ServiceError {
  const code = err instanceof SnapshotError ? err.grpcCode : GRPC.INTERNAL
  const e = toVeloError(err)
  const out = new Error(e.message) as grpc.ServiceError
  out.code = code
  out.details = e.suggestion ? `${e.message} (${e.suggestion})` : e.message
  return out
}

export interface Served {
  address: string
  close(): Promise<void>
}

type Req = Record<string, unknown> & {key?: string; parent?: string; name?: string; labels?: Record<string, string>}

export async function serve(home: string, address: string, log: (msg: string) => void = () => {}): Promise<Served> {
  const {grpcJs, service} = loadService()
  const snaps = new Snapshots(home).open()
  try {
    fs.mkdirSync(path.dirname(address), {recursive: true, mode: 0o711})
    // a socket left by a service that died (the exclusive lock above says none is running)
    const st = fs.lstatSync(address, {throwIfNoEntry: false})
    if (st?.isSocket()) fs.rmSync(address)
    else if (st) throw new VeloError('ALREADY_EXISTS', `${address} exists and is not a socket`)
  } catch (err) {
    snaps.close()
    throw err instanceof VeloError ? err : fromSystemError(err, `cannot prepare ${address}`)
  }
  const unary =
    <T>(what: string, fn: (req: Req) => T) =>
    (call: grpc.ServerUnaryCall<Req, T>, cb: grpc.sendUnaryData<T>) => {
      try {
        const r = fn(call.request)
        cb(null, r)
      } catch (err) {
        if (!(err instanceof SnapshotError)) log(`${what} ${JSON.stringify(call.request.key ?? call.request.name ?? '')}: ${(err as Error).message}`)
        cb(toStatus(err))
      }
    }
  const mounts = (m: Mount[]) => ({mounts: m})
  const impl: grpc.UntypedServiceImplementation = {
    Prepare: unary('prepare', (r) => mounts(snaps.prepare(r.key ?? '', r.parent ?? '', r.labels ?? {}))),
    View: unary('view', (r) => mounts(snaps.view(r.key ?? '', r.parent ?? '', r.labels ?? {}))),
    Mounts: unary('mounts', (r) => mounts(snaps.mounts(r.key ?? ''))),
    Commit: unary('commit', (r) => {
      snaps.commit(r.name ?? '', r.key ?? '', r.labels ?? {})
      return {}
    }),
    Remove: unary('remove', (r) => {
      snaps.remove(r.key ?? '')
      return {}
    }),
    Stat: unary('stat', (r) => ({info: infoOf(r.key ?? '', snaps.get(r.key ?? ''))})),
    Update: unary('update', (r) => {
      const info = r.info as {name: string; labels: Record<string, string>}
      const paths = ((r.update_mask as {paths?: string[]} | null)?.paths ?? []) as string[]
      return {info: infoOf(info.name, snaps.update(info.name, info.labels ?? {}, paths))}
    }),
    Usage: unary('usage', (r) => {
      const u = snaps.usage(r.key ?? '')
      return {size: String(u.size), inodes: String(u.inodes)}
    }),
    Cleanup: unary('cleanup', () => {
      snaps.cleanup()
      return {}
    }),
    List: (call: grpc.ServerWritableStream<Req, unknown>) => {
      try {
        // containerd's filters are not interpreted: every snapshot is listed (containerd filters what it shows)
        const all = snaps.list().map(([k, s]) => infoOf(k, s))
        for (let i = 0; i < all.length; i += 100) call.write({info: all.slice(i, i + 100)})
        call.end()
      } catch (err) {
        call.destroy(toStatus(err))
      }
    },
  }
  const server = new grpcJs.Server()
  server.addService(service, impl)
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`unix://${address}`, grpcJs.ServerCredentials.createInsecure(), (err) => (err ? reject(new VeloError('UNREACHABLE', `cannot listen on ${address}: ${err.message}`)) : resolve())),
  ).catch((err) => {
    snaps.close()
    throw err
  })
  fs.chmodSync(address, 0o600)
  return {
    address,
    close: () =>
      new Promise<void>((resolve) => {
        server.tryShutdown(() => {
          snaps.close()
          fs.rmSync(address, {force: true})
          resolve()
        })
      }),
  }
}
