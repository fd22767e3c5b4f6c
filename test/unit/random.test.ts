// systemRandom hands out pooled CSPRNG bytes: never the same bytes twice, right lengths.
import { describe, expect, it } from 'vitest';
import { systemRandom } from '../../src/common/random.js';

describe('systemRandom (pooled)', () => {
  it('returns fresh, unshared bytes of the requested length across pool refills', () => {
    const seen = new Set<string>();
    const held: Uint8Array[] = [];
    for (let i = 0; i < 3000; i++) {
      const b = systemRandom.bytes(32);
      expect(b.length).toBe(32);
      const h = Buffer.from(b).toString('hex');
      expect(seen.has(h)).toBe(false);
      seen.add(h);
      held.push(b);
    }
    // handed-out arrays are copies: a refill never changes them
    const snapshot = Buffer.from(held[0]!).toString('hex');
    systemRandom.bytes(8192);
    for (let i = 0; i < 600; i++) systemRandom.bytes(32);
    expect(Buffer.from(held[0]!).toString('hex')).toBe(snapshot);
    expect(systemRandom.bytes(10_000).length).toBe(10_000);
  });

  it('float() is uniform-looking in [0, 1)', () => {
    let sum = 0;
    for (let i = 0; i < 20_000; i++) {
      const f = systemRandom.float();
      expect(f >= 0 && f < 1).toBe(true);
      sum += f;
    }
    expect(Math.abs(sum / 20_000 - 0.5)).toBeLessThan(0.02);
  });
});
