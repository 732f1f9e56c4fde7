/** Run `fn` over `items` with at most `n` at a time; results in input order; the first error wins (the rest still settle). */
export async function pool<T, R>(items: T[], n: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length)
  let next = 0
  let failed: unknown
  const worker = async () => {
    while (failed === undefined && next < items.length) {
      const i = next++
      try {
        out[i] = await fn(items[i], i)
      } catch (err) {
        if (failed === undefined) failed = err
      }
    }
  }
  await Promise.all(Array.from({length: Math.min(n, items.length)}, worker))
  if (failed !== undefined) throw failed
  return out
}
