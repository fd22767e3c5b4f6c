// PassLoop: kicks are debounced, passes never overlap, failures back off and recover.
import { describe, expect, it } from 'vitest';
import { PassLoop } from '../../src/common/pass-loop.js';

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('PassLoop', () => {
  it('turns a burst of kicks into one pass, and a kick during a pass into exactly one more', async () => {
    let running = 0;
    let maxParallel = 0;
    let passes = 0;
    const loop = new PassLoop({
      pass: async () => {
        running++;
        maxParallel = Math.max(maxParallel, running);
        passes++;
        await tick(20);
        running--;
      },
      debounceMs: 5,
      backoff: { baseMs: 10, maxExp: 3, maxMs: 100 },
      onError: () => {},
    });
    for (let i = 0; i < 10; i++) loop.kick('burst');
    await tick(15);
    expect(passes).toBe(1);
    for (let i = 0; i < 5; i++) loop.kick('during');
    await Promise.all([loop.run(), loop.run()]);
    await tick(50);
    expect(maxParallel).toBe(1);
    expect(passes).toBeLessThanOrEqual(3);
    await loop.stop();
  });

  it('retries a failing pass with growing delays until it succeeds; stop ends it', async () => {
    let n = 0;
    const delays: number[] = [];
    let ok = 0;
    const loop = new PassLoop({
      pass: async () => {
        if (++n < 4) throw new Error(`fail ${n}`);
      },
      debounceMs: 1,
      backoff: { baseMs: 5, maxExp: 3, maxMs: 1000 },
      onError: (_e, d) => delays.push(d),
      onSuccess: () => ok++,
    });
    loop.kick('start');
    await tick(200);
    expect(delays).toEqual([10, 20, 40]);
    expect(ok).toBe(1);
    expect(loop.failures).toBe(0);
    await loop.stop();
    loop.kick('after stop');
    await tick(10);
    expect(n).toBe(4);
  });
});
