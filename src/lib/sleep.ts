/** Block this thread for `ms` (a synchronous command's wait between polls; nothing else runs meanwhile). */
export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
}
