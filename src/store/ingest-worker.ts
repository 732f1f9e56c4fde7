// Worker thread for ingest: stores batches of files (hash → temp → link) so two cores share the per-file
// syscall and hashing work. Receives {jobs: [{path, mode, uid, gid, size}]}, answers with one result per job.
import {parentPort, workerData} from 'node:worker_threads'
import {VeloError} from '../lib/errors'
import {Store} from './cas'

export interface WorkerJob {
  path: Uint8Array
  mode: number
  uid: number
  gid: number
  size: number
}

export type WorkerResult = {hash: string; size: number; isNew: boolean} | {error: {code: string; message: string; suggestion?: string}}

const store = new Store(workerData.home as string)
parentPort!.on('message', (jobs: WorkerJob[]) => {
  const out: WorkerResult[] = []
  for (const j of jobs) {
    try {
      const r = store.writeFile(Buffer.from(j.path.buffer, j.path.byteOffset, j.path.byteLength), j)
      out.push({hash: r.hash, size: r.size, isNew: r.isNew})
    } catch (err) {
      const e = err instanceof VeloError ? err : new VeloError('INTERNAL', (err as Error).message)
      out.push({error: {code: e.code, message: e.message, suggestion: e.suggestion}})
      break // the main thread fails the ingest on the first error
    }
  }
  parentPort!.postMessage(out)
})
