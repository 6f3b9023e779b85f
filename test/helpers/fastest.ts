/**
 * The least wall time of `runs` calls of `work`, in ms, and its last result. On a shared machine
 * other processes only ever add time, so the fastest run is the closest to the work's own cost:
 * the scaling tests compare fastest runs, not single ones.
 */
export function fastest<T>(runs: number, work: () => T): { ms: number; result: T } {
  let ms = Infinity;
  let result!: T;
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    result = work();
    ms = Math.min(ms, performance.now() - t0);
  }
  return { ms, result };
}
