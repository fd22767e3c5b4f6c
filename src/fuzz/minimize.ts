// Delta debugging (Zeller's ddmin, removal only) of a failing input: the smallest input found that
// still fails the same way. `stillFails` runs the target on a candidate and says whether it
// reproduces the original failure signature. Bounded by a number of runs and a time budget.

export interface MinimizeBudget {
  maxRuns: number;
  maxMs: number;
}

export async function minimize(
  input: Uint8Array,
  stillFails: (candidate: Uint8Array) => boolean | Promise<boolean>,
  budget: MinimizeBudget = { maxRuns: 5000, maxMs: 60_000 },
): Promise<{ input: Uint8Array; runs: number }> {
  const started = Date.now();
  let runs = 0;
  const exhausted = (): boolean => runs >= budget.maxRuns || Date.now() - started > budget.maxMs;
  const test = async (c: Uint8Array): Promise<boolean> => {
    runs++;
    return await stillFails(c);
  };

  let cur = input;
  let n = 2;
  while (cur.length >= 2 && !exhausted()) {
    const chunk = Math.ceil(cur.length / n);
    let reduced = false;
    for (let i = 0; i < n && !exhausted(); i++) {
      const from = i * chunk;
      if (from >= cur.length) break;
      const to = Math.min(cur.length, from + chunk);
      const candidate = new Uint8Array(cur.length - (to - from));
      candidate.set(cur.subarray(0, from), 0);
      candidate.set(cur.subarray(to), from);
      if (await test(candidate)) {
        cur = candidate;
        n = Math.max(n - 1, 2);
        reduced = true;
        break;
      }
    }
    if (reduced) continue;
    if (n >= cur.length) break;
    n = Math.min(cur.length, n * 2);
  }
  return { input: cur, runs };
}
