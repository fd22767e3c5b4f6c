// Runs the core's `arm`/`cancel` effects with real timers (STYLE.md §2: the core only returns
// timestamps; this adapter owns setTimeout).
//
// Keys are `${sa}/${what}`: arming a key that is already armed replaces the earlier timer. A `cancel`
// removes the timer only if its generation matches the armed one — a stale cancel must not kill a
// newer timer (the core ignores a stale timer when it fires, like strongSwan's retransmit() checks
// the message ID, so leaving one running is harmless; losing a live one is not).
import type { Clock } from '../common/clock.js';
import type { TimerKey } from '../ike/events.js';

/** The scheduling primitive; injectable so tests drive time by hand. */
export interface Scheduler {
  set(fn: () => void, delayMs: number): unknown;
  clear(handle: unknown): void;
}

/** setTimeout's maximum delay (2^31-1 ms, ~24.8 days); longer timers are re-armed in steps. */
export const MAX_TIMEOUT_MS = 0x7fffffff;

export const realScheduler: Scheduler = {
  set(fn, delayMs) {
    const t = setTimeout(fn, delayMs);
    // Timers never keep the process alive on their own; the sockets do.
    t.unref();
    return t;
  },
  clear(handle) {
    clearTimeout(handle as ReturnType<typeof setTimeout>);
  },
};

interface Armed {
  key: TimerKey;
  atMs: number;
  /** Arming order: equal times fire in the order they were armed. */
  seq: number;
}

export function timerId(key: TimerKey): string {
  return `${key.sa}/${key.what}`;
}

const before = (a: Armed, b: Armed): boolean => a.atMs < b.atMs || (a.atMs === b.atMs && a.seq < b.seq);

/**
 * The armed timers in a binary min-heap with ONE scheduler timer for the earliest (rather than a
 * setTimeout per timer: an IKE_SA has several armed at all times, and 10k SAs meant 40k+ Node
 * Timeout objects and a clearTimeout/setTimeout pair per re-arm). A replaced or cancelled timer
 * stays in the heap until it surfaces (lazy deletion; compacted when stale entries dominate).
 */
export class TimerRunner {
  private readonly armed = new Map<string, Armed>();
  private heap: Armed[] = [];
  private seq = 0;
  private handle: unknown;
  /** When the scheduler timer is set for (Infinity: none). */
  private wakeAt = Number.POSITIVE_INFINITY;

  constructor(
    private readonly clock: Clock,
    private readonly onFire: (key: TimerKey) => void,
    private readonly scheduler: Scheduler = realScheduler,
  ) {}

  /** Arms (or re-arms) the timer for key to fire at clock time atMs. */
  arm(key: TimerKey, atMs: number): void {
    const entry: Armed = { key, atMs, seq: ++this.seq };
    this.armed.set(timerId(key), entry);
    this.push(entry);
    if (this.heap.length > 64 && this.heap.length > 2 * this.armed.size) this.compact();
    if (atMs < this.wakeAt) this.wake(atMs);
  }

  /** Cancels the timer for key if the armed one has the same generation. Returns whether it did. */
  cancel(key: TimerKey): boolean {
    const id = timerId(key);
    const a = this.armed.get(id);
    if (!a || a.key.gen !== key.gen) return false;
    this.armed.delete(id);
    return true;
  }

  cancelAll(): void {
    this.armed.clear();
    this.heap = [];
    this.unschedule();
  }

  get size(): number {
    return this.armed.size;
  }

  /** The armed timers (for status output and tests). */
  list(): Array<{ key: TimerKey; atMs: number }> {
    return [...this.armed.values()].map((a) => ({ key: a.key, atMs: a.atMs }));
  }

  private live(e: Armed): boolean {
    return this.armed.get(timerId(e.key)) === e;
  }

  private unschedule(): void {
    if (this.handle !== undefined) this.scheduler.clear(this.handle);
    this.handle = undefined;
    this.wakeAt = Number.POSITIVE_INFINITY;
  }

  private wake(atMs: number): void {
    this.unschedule();
    this.wakeAt = atMs;
    const delay = Math.max(0, Math.ceil(atMs - this.clock.now()));
    this.handle = this.scheduler.set(() => this.due(), Math.min(delay, MAX_TIMEOUT_MS));
  }

  private due(): void {
    this.handle = undefined;
    this.wakeAt = Number.POSITIVE_INFINITY;
    // Only what was armed before this turn fires now; timers armed by onFire wait for the next one.
    const lastSeq = this.seq;
    const now = this.clock.now();
    for (;;) {
      const top = this.heap[0];
      if (!top) break;
      if (!this.live(top)) {
        this.pop();
        continue;
      }
      // setTimeout may fire a little early against a monotonic clock, and long timers fire in steps:
      // only report a timer once the clock has really reached atMs.
      if (top.atMs > now || top.seq > lastSeq) break;
      this.pop();
      this.armed.delete(timerId(top.key));
      this.onFire(top.key);
    }
    this.rearm();
  }

  /** The scheduler timer for the earliest live timer (dropping stale ones on top). */
  private rearm(): void {
    while (this.heap.length && !this.live(this.heap[0]!)) this.pop();
    const top = this.heap[0];
    if (!top) return this.unschedule();
    if (top.atMs !== this.wakeAt || this.handle === undefined) this.wake(top.atMs);
  }

  private compact(): void {
    const keep = this.heap.filter((e) => this.live(e));
    this.heap = [];
    for (const e of keep) this.push(e);
  }

  private push(e: Armed): void {
    const h = this.heap;
    let i = h.push(e) - 1;
    while (i > 0) {
      const up = (i - 1) >> 1;
      if (!before(e, h[up]!)) break;
      h[i] = h[up]!;
      i = up;
    }
    h[i] = e;
  }

  private pop(): Armed | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length === 0 || last === undefined) return top;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= h.length) break;
      const r = l + 1;
      const c = r < h.length && before(h[r]!, h[l]!) ? r : l;
      if (!before(h[c]!, last)) break;
      h[i] = h[c]!;
      i = c;
    }
    h[i] = last;
    return top;
  }
}
