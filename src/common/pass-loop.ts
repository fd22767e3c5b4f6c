// A level-triggered reconcile loop shared by the routes agent and the Cilium operator: events only
// "kick" it (debounced); passes never overlap (a kick during a pass queues exactly one more); a
// failed pass is retried with exponential backoff; stop() waits for the pass in flight.

export interface PassLoopOptions {
  /** One full pass: compare desired with actual state and fix the difference. Throws on failure. */
  pass: () => Promise<void>;
  debounceMs: number;
  /** Retry delay = min(maxMs, baseMs * 2^min(failures, maxExp)). */
  backoff: { baseMs: number; maxExp: number; maxMs: number };
  /** Called for every failed pass with the delay until the retry (logging, status). */
  onError: (e: unknown, retryInMs: number) => void;
  /** Called after every successful pass. */
  onSuccess?: () => void;
  onScheduled?: (reason: string) => void;
}

export class PassLoop {
  private debounceTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  private queued: Promise<void> | undefined;
  private stopped = false;
  failures = 0;

  constructor(private readonly o: PassLoopOptions) {}

  /** Something changed: run a pass soon (several kicks within debounceMs make one pass). */
  kick(reason: string): void {
    if (this.stopped || this.debounceTimer) return;
    this.o.onScheduled?.(reason);
    this.debounceTimer = setTimeout(() => {
      this.debounceTimer = undefined;
      this.run().catch((e: unknown) => this.failed(e));
    }, this.o.debounceMs);
  }

  /** Run a pass after the one in flight (if any); resolves when it finished, rejects if it failed. */
  run(): Promise<void> {
    if (this.queued) return this.queued;
    const p = this.chain.then(async () => {
      this.queued = undefined;
      if (this.stopped) return;
      await this.o.pass();
      this.failures = 0;
      this.o.onSuccess?.();
    });
    this.queued = p;
    this.chain = p.catch(() => undefined);
    return p;
  }

  /** Report a failed pass and schedule the retry (for callers of run() that catch themselves). */
  failed(e: unknown): void {
    if (this.stopped) return;
    this.failures++;
    const b = this.o.backoff;
    const delay = Math.min(b.maxMs, b.baseMs * 2 ** Math.min(this.failures, b.maxExp));
    this.o.onError(e, delay);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.kick('retry'), delay);
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /** No more passes; waits for the one in flight. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.debounceTimer);
    clearTimeout(this.retryTimer);
    await this.chain;
  }
}
