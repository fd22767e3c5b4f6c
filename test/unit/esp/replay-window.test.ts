// Anti-replay window (RFC 4303 §3.4.3, Appendix A; bitmap layout RFC 6479).
import { describe, expect, it } from 'vitest';
import { ReplayWindow } from '../../../src/esp/userspace/replay-window.js';

/** check + update as the receive path does (after a successful ICV). */
function accept(w: ReplayWindow, seq: number): string {
  const v = w.check(seq);
  if (v !== 'ok') return v;
  return w.update(seq, w.hi) ? 'ok' : 'replay';
}

describe('ReplayWindow without ESN', () => {
  it('rounds the size up to whole 32-bit blocks (RFC 6479 keeps one spare block)', () => {
    expect(new ReplayWindow(32, false).size).toBe(32);
    expect(new ReplayWindow(64, false).size).toBe(96);
    expect(new ReplayWindow(992, false).size).toBe(992); // 32 blocks
    expect(new ReplayWindow(1000, false).size).toBe(2016); // 64 blocks (a power of two)
    expect(new ReplayWindow(0, false).size).toBe(0);
  });

  it('accepts in-order packets and rejects duplicates', () => {
    const w = new ReplayWindow(64, false);
    for (let s = 1; s <= 200; s++) expect(accept(w, s)).toBe('ok');
    expect(accept(w, 200)).toBe('replay');
    expect(accept(w, 199)).toBe('replay');
    expect(w.top).toBe(200n);
  });

  it('sequence number 0 never appears without ESN', () => {
    expect(new ReplayWindow(32, false).check(0)).toBe('zero');
  });

  it('accepts out-of-order packets inside the window once each', () => {
    const w = new ReplayWindow(64, false);
    expect(accept(w, 100)).toBe('ok');
    for (const s of [99, 50, 70, 37]) expect(accept(w, s), `seq ${s}`).toBe('ok');
    for (const s of [99, 50, 70]) expect(accept(w, s), `again ${s}`).toBe('replay');
    // 100 - 96 + 1 = 5 is the oldest still inside a 96-packet window
    expect(accept(w, 5)).toBe('ok');
    expect(accept(w, 4)).toBe('too-old');
  });

  it('a far jump clears the whole bitmap: old bits do not reject new numbers', () => {
    const w = new ReplayWindow(32, false);
    for (let s = 1; s <= 64; s++) accept(w, s);
    expect(accept(w, 1_000_000)).toBe('ok');
    // 1_000_000 - 1 .. - 31 were never seen, although their bit positions were set long ago
    for (let s = 1_000_000 - 31; s < 1_000_000; s++) expect(accept(w, s), `seq ${s}`).toBe('ok');
    expect(accept(w, 1_000_000 - 32)).toBe('too-old');
  });

  it('moves block by block: bits of the block being reused are cleared', () => {
    const w = new ReplayWindow(32, false); // 2 blocks of 32 bits
    for (let s = 1; s <= 31; s++) accept(w, s); // block 0 full
    expect(accept(w, 40)).toBe('ok'); // block 1
    // 64..95 reuse block 0: its old bits (1..31) must be gone, or 65 would look replayed
    expect(accept(w, 65)).toBe('ok');
    expect(accept(w, 66)).toBe('ok');
    expect(accept(w, 64)).toBe('ok');
    expect(accept(w, 35)).toBe('ok'); // inside [35, 66], never seen
    expect(accept(w, 40)).toBe('replay');
    expect(accept(w, 34)).toBe('too-old');
  });

  it('the oldest number inside the window is top - size + 1', () => {
    const w = new ReplayWindow(32, false);
    expect(accept(w, 100)).toBe('ok');
    expect(accept(w, 69)).toBe('ok');
    expect(accept(w, 68)).toBe('too-old');
  });

  it('check alone does not move the window (the ICV may still fail)', () => {
    const w = new ReplayWindow(32, false);
    expect(w.check(10)).toBe('ok');
    expect(w.top).toBe(0n);
    expect(accept(w, 10)).toBe('ok');
  });

  it('a disabled window (0) accepts duplicates', () => {
    const w = new ReplayWindow(0, false);
    expect(accept(w, 5)).toBe('ok');
    expect(accept(w, 5)).toBe('ok');
    expect(accept(w, 1)).toBe('ok');
  });

  it('a large window (4096) tracks thousands of packets', () => {
    const w = new ReplayWindow(4096, false);
    for (let s = 1; s <= 5000; s += 2) expect(accept(w, s)).toBe('ok');
    expect(w.size).toBeGreaterThanOrEqual(4096);
    for (let s = 5000; s > 0; s -= 2) expect(accept(w, s)).toBe('ok');
    for (let s = 4999; s > 0; s -= 2) expect(accept(w, s)).toBe('replay');
  });
});

describe('ReplayWindow with ESN (RFC 4303 Appendix A2)', () => {
  it('infers the high half across the 2^32 boundary', () => {
    const w = new ReplayWindow(64, true);
    expect(accept(w, 1)).toBe('ok');
    expect(accept(w, 0x80000000)).toBe('ok');
    expect(accept(w, 0xfffffff0)).toBe('ok');
    expect(w.hi).toBe(0);
    expect(accept(w, 0xffffffff)).toBe('ok');
    expect(accept(w, 0)).toBe('ok'); // 2^32: low half 0, high half 1
    expect(w.hi).toBe(1);
    expect(w.top).toBe(0x1_0000_0000n);
    expect(accept(w, 5)).toBe('ok');
    expect(w.top).toBe(0x1_0000_0005n);
    // a late packet from before the wrap (Case B: window spans two subspaces)
    expect(accept(w, 0xfffffff8)).toBe('ok');
    expect(w.hi).toBe(0);
    expect(accept(w, 0xfffffff8)).toBe('replay');
    expect(w.top).toBe(0x1_0000_0005n);
  });

  it('numbers below the window in the same subspace are taken as the next subspace (A2.2 Case A)', () => {
    const w = new ReplayWindow(32, true);
    expect(accept(w, 1000)).toBe('ok');
    // 10 < 1000 - 32 + 1: not a late packet but one from subspace 1
    expect(w.check(10)).toBe('ok');
    expect(w.hi).toBe(1);
  });

  it('0:0 is still invalid with ESN, low half 0 is fine above it', () => {
    const w = new ReplayWindow(32, true);
    expect(w.check(0)).toBe('zero');
  });
});
