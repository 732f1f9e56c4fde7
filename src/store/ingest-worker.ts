// Worker thread for ingest: stores batches of files (hash → temp → link) so two cores share the per-file
// syscall and hashing work. Receives {jobs: [{path, mode, uid, gid, size}]}, answers with one result per job.
import {parentPort, workerData} from 'node:worker_threads'
import {fromUncaught} from '../lib/errors'
import {Store} from './cas'
import {decodeXattrs} from '../manifest/xattrs'

export interface WorkerJob {
  path: Uint8Array
  mode: number
  uid: number
  gid: number
  size: number
  xattrs?: Uint8Array // canonical block
}

export type WorkerResult = {hash: string; size: number; isNew: boolean} | {error: {code: string; message: string; suggestion?: string}}

const store = new Store(workerData.home as string)
parentPort!.on('message', (jobs: WorkerJob[]) => {
  const out: WorkerResult[] = []
  for (const j of jobs) {
    try {
      const xattrs = j.xattrs ? decodeXattrs(Buffer.from(j.xattrs.buffer, j.xattrs.byteOffset, j.xattrs.byteLength)) : undefined
      const r = store.writeFile(Buffer.from(j.path.buffer, j.path.byteOffset, j.path.byteLength), {mode: j.mode, uid: j.uid, gid: j.gid, size: j.size, xattrs})
      out.push({hash: r.hash, size: r.size, isNew: r.isNew})
    } catch (err) {
      // as the main thread renders an uncaught error: a permission or a full disk is the user's, not a bug
      const e = fromUncaught(err)
      out.push({error: {code: e.code, message: e.message, suggestion: e.suggestion}})
      break // the main thread fails the ingest on the first error
    }
  }
  parentPort!.postMessage(out)
})
