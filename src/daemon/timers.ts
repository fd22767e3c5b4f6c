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
  handle: unknown;
}

export function timerId(key: TimerKey): string {
  return `${key.sa}/${key.what}`;
}

export class TimerRunner {
  private readonly armed = new Map<string, Armed>();

  constructor(
    private readonly clock: Clock,
    private readonly onFire: (key: TimerKey) => void,
    private readonly scheduler: Scheduler = realScheduler,
  ) {}

  /** Arms (or re-arms) the timer for key to fire at clock time atMs. */
  arm(key: TimerKey, atMs: number): void {
    const id = timerId(key);
    const old = this.armed.get(id);
    if (old) this.scheduler.clear(old.handle);
    const entry: Armed = { key, atMs, handle: undefined };
    this.armed.set(id, entry);
    this.schedule(id, entry);
  }

  /** Cancels the timer for key if the armed one has the same generation. Returns whether it did. */
  cancel(key: TimerKey): boolean {
    const id = timerId(key);
    const a = this.armed.get(id);
    if (!a || a.key.gen !== key.gen) return false;
    this.scheduler.clear(a.handle);
    this.armed.delete(id);
    return true;
  }

  cancelAll(): void {
    for (const a of this.armed.values()) this.scheduler.clear(a.handle);
    this.armed.clear();
  }

  get size(): number {
    return this.armed.size;
  }

  /** The armed timers (for status output and tests). */
  list(): Array<{ key: TimerKey; atMs: number }> {
    return [...this.armed.values()].map((a) => ({ key: a.key, atMs: a.atMs }));
  }

  private schedule(id: string, entry: Armed): void {
    const delay = Math.max(0, Math.ceil(entry.atMs - this.clock.now()));
    entry.handle = this.scheduler.set(() => this.due(id, entry), Math.min(delay, MAX_TIMEOUT_MS));
  }

  private due(id: string, entry: Armed): void {
    if (this.armed.get(id) !== entry) return; // replaced or cancelled meanwhile
    // setTimeout may fire a little early against a monotonic clock, and long timers fire in steps:
    // only report the timer once the clock has really reached atMs.
    if (this.clock.now() < entry.atMs) {
      this.schedule(id, entry);
      return;
    }
    this.armed.delete(id);
    this.onFire(entry.key);
  }
}
