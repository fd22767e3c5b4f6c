import { describe, expect, it } from 'vitest';
import { ManualClock, monotonicClock } from '../../src/common/clock.js';
import { MAX_TIMEOUT_MS, type Scheduler, TimerRunner } from '../../src/daemon/timers.js';
import type { TimerKey } from '../../src/ike/events.js';

/** A scheduler driven by a ManualClock: advance() runs whatever became due, in time order. */
class ManualScheduler implements Scheduler {
  private seq = 0;
  readonly pending = new Map<number, { at: number; fn: () => void }>();
  constructor(readonly clock: ManualClock) {}
  set(fn: () => void, delayMs: number): unknown {
    const id = ++this.seq;
    this.pending.set(id, { at: this.clock.now() + delayMs, fn });
    return id;
  }
  clear(handle: unknown): void {
    this.pending.delete(handle as number);
  }
  advance(ms: number): void {
    const end = this.clock.now() + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const e of this.pending) if (e[1].at <= end && (!next || e[1].at < next[1].at)) next = e;
      if (!next) break;
      this.pending.delete(next[0]);
      this.clock.advance(next[1].at - this.clock.now());
      next[1].fn();
    }
    this.clock.advance(end - this.clock.now());
  }
}

const key = (what: string, gen = 1, sa = '0011223344556677'): TimerKey => ({ sa, what, gen });

function setup() {
  const clock = new ManualClock(1000);
  const sched = new ManualScheduler(clock);
  const fired: Array<{ key: TimerKey; at: number }> = [];
  const timers = new TimerRunner(clock, (k) => fired.push({ key: k, at: clock.now() }), sched);
  return { clock, sched, fired, timers };
}

describe('TimerRunner', () => {
  it('fires at atMs with the key', () => {
    const { sched, fired, timers } = setup();
    timers.arm(key('retransmit'), 5000);
    sched.advance(3999);
    expect(fired).toEqual([]);
    sched.advance(1);
    expect(fired).toEqual([{ key: key('retransmit'), at: 5000 }]);
    expect(timers.size).toBe(0);
  });

  it('re-arming the same key replaces the earlier timer', () => {
    const { sched, fired, timers } = setup();
    timers.arm(key('dpd', 1), 2000);
    timers.arm(key('dpd', 2), 3000);
    expect(timers.size).toBe(1);
    sched.advance(5000);
    expect(fired).toEqual([{ key: key('dpd', 2), at: 3000 }]);
  });

  it('keys differ by sa and by what', () => {
    const { sched, fired, timers } = setup();
    timers.arm(key('dpd', 1, 'a'), 2000);
    timers.arm(key('dpd', 1, 'b'), 1500);
    timers.arm(key('rekey-ike', 1, 'a'), 1800);
    sched.advance(2000);
    expect(fired.map((f) => `${f.key.sa}/${f.key.what}@${f.at}`)).toEqual([
      'b/dpd@1500',
      'a/rekey-ike@1800',
      'a/dpd@2000',
    ]);
  });

  it('cancel removes the timer only for the armed generation', () => {
    const { sched, fired, timers } = setup();
    timers.arm(key('retransmit', 3), 2000);
    expect(timers.cancel(key('retransmit', 2))).toBe(false); // stale cancel
    expect(timers.size).toBe(1);
    expect(timers.cancel(key('retransmit', 3))).toBe(true);
    expect(timers.cancel(key('retransmit', 3))).toBe(false);
    sched.advance(5000);
    expect(fired).toEqual([]);
  });

  it('a timer in the past fires on the next turn; cancelAll clears everything', () => {
    const { sched, fired, timers } = setup();
    timers.arm(key('a'), 0);
    timers.arm(key('b'), 99_999);
    sched.advance(0);
    expect(fired.map((f) => f.key.what)).toEqual(['a']);
    timers.cancelAll();
    expect(sched.pending.size).toBe(0);
    expect(timers.list()).toEqual([]);
  });

  it('delays beyond setTimeout range are re-armed in steps and fire at the right time', () => {
    const { clock, sched, fired, timers } = setup();
    const at = clock.now() + MAX_TIMEOUT_MS + 10_000;
    timers.arm(key('life'), at);
    sched.advance(MAX_TIMEOUT_MS);
    expect(fired).toEqual([]);
    sched.advance(10_000);
    expect(fired).toEqual([{ key: key('life'), at }]);
  });

  it('does not report a timer early when the scheduler fires before the clock reached atMs', () => {
    const clock = new ManualClock(0);
    const calls: Array<() => void> = [];
    const early: Scheduler = { set: (fn) => calls.push(fn), clear: () => {} };
    const fired: TimerKey[] = [];
    const timers = new TimerRunner(clock, (k) => fired.push(k), early);
    timers.arm(key('x'), 100);
    clock.advance(99);
    calls.shift()?.(); // fires 1 ms early
    expect(fired).toEqual([]);
    expect(calls).toHaveLength(1); // rescheduled
    clock.advance(1);
    calls.shift()?.();
    expect(fired).toEqual([key('x')]);
  });

  it('many timers, re-armed and cancelled at random (as 1000 IKE_SAs do): each live one fires once, at its time, in time order, with one scheduler timer', () => {
    const { clock, sched, fired, timers } = setup();
    let seed = 12345;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    // the model: the live generation and time of each key
    const model = new Map<string, { gen: number; at: number }>();
    let gen = 0;
    for (let step = 0; step < 20_000; step++) {
      const id = `sa${rnd(1000)}`;
      const what = ['retransmit', 'dpd', 'rekey-ike'][rnd(3)]!;
      const k = `${id}/${what}`;
      const op = rnd(10);
      if (op < 6) {
        const at = clock.now() + rnd(60_000);
        timers.arm(key(what, ++gen, id), at);
        model.set(k, { gen, at });
      } else if (op < 8) {
        const m = model.get(k);
        if (m) {
          expect(timers.cancel(key(what, m.gen, id))).toBe(true);
          model.delete(k);
        }
      } else {
        const end = clock.now() + rnd(2_000);
        const due = [...model].filter(([, m]) => m.at <= end);
        const before = fired.length;
        sched.advance(end - clock.now());
        const now = fired.slice(before);
        expect(now.map((f) => `${f.key.sa}/${f.key.what}#${f.key.gen}@${f.at}`).sort()).toEqual(
          due.map(([kk, m]) => `${kk}#${m.gen}@${m.at}`).sort(),
        );
        for (let i = 1; i < now.length; i++) expect(now[i]!.at).toBeGreaterThanOrEqual(now[i - 1]!.at);
        for (const [kk] of due) model.delete(kk);
      }
      expect(timers.size).toBe(model.size);
      // one scheduler timer at most (a cancelled earliest one leaves a wake-up that finds nothing)
      expect(sched.pending.size).toBeLessThanOrEqual(1);
      if (model.size) expect(sched.pending.size).toBe(1);
    }
  });

  it('works with real setTimeout (one short timer)', async () => {
    const fired: TimerKey[] = [];
    const done = new Promise<void>((resolve) => {
      const timers = new TimerRunner(monotonicClock, (k) => {
        fired.push(k);
        resolve();
      });
      timers.arm(key('real'), monotonicClock.now() + 15);
    });
    await done;
    expect(fired).toEqual([key('real')]);
  });
});
