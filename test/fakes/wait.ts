// Polling helper for convergence assertions: no fixed sleeps, a generous deadline.

/** Polls `fn` until it returns a value for which `ok` holds (default: truthy); throws with the last value. */
export async function waitFor<T>(
  fn: () => T | Promise<T>,
  opts: { timeoutMs?: number; intervalMs?: number; what?: string; ok?: (v: T) => boolean } = {},
): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 5000);
  const ok = opts.ok ?? ((v: T) => Boolean(v));
  let last: T | undefined;
  let lastErr: unknown;
  for (;;) {
    try {
      last = await fn();
      if (ok(last)) return last;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() > deadline) {
      const detail = lastErr !== undefined ? String(lastErr) : JSON.stringify(last);
      throw new Error(`timed out waiting for ${opts.what ?? 'condition'}; last: ${detail}`);
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 25));
  }
}
