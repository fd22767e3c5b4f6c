// ESP anti-replay window (RFC 4303 §3.4.3 and Appendix A), with the bitmap laid out as in RFC 6479:
// a ring of 32-bit blocks, so advancing the window clears whole blocks instead of shifting bits,
// and a window of thousands of packets costs no more per packet than one of 32.
//
//   bitmap: n blocks of 32 bits (n a power of two), window W = (n - 1) * 32 packets
//   sequence number s lives in block (s >> 5) & (n - 1), bit s & 31
//
// Extended sequence numbers (RFC 4303 §2.2.1, Appendix A2): only the low 32 bits travel on the
// wire; the receiver infers the high 32 bits from the top of its window (A2.2) before it checks the
// ICV (the high bits are part of the ICV/AAD input), and moves the window only after the ICV has
// verified (A2.3 / §3.4.3: "the receive window is updated only if the integrity verification
// succeeds").
//
// The 64-bit numbers are kept as two uint32 halves (hi, lo), never as a single JS number.

/** RFC 4303 §3.4.3 "MUST" minimum is 32; strongSwan's default is 32, Linux allows up to 4096. */
export const MIN_WINDOW = 32;
/** Upper bound we accept (bits in the bitmap); larger requests are clamped. */
export const MAX_WINDOW = 1 << 16;

export type ReplayVerdict = 'ok' | 'replay' | 'too-old' | 'zero';

const TWO32 = 0x1_0000_0000;

export class ReplayWindow {
  /** Window size W in packets (a multiple of 32; 0 = replay check disabled). */
  readonly size: number;
  private readonly bitmap: Uint32Array;
  private readonly mask: number;
  /** Highest authenticated sequence number (hi:lo); 0:0 = nothing received yet. */
  private topHi = 0;
  private topLo = 0;
  /** High half inferred by the last check() (valid when it returned 'ok'). */
  hi = 0;

  /**
   * @param window requested window (packets); rounded up to a multiple of 32, at least 32 when
   *   enabled. 0 disables the check (received packets are never refused as replays).
   */
  constructor(
    window: number,
    readonly esn: boolean,
  ) {
    if (window <= 0) {
      this.size = 0;
      // ESN inference still needs a window to reason about (A2.2); use the minimum.
      this.bitmap = new Uint32Array(2);
      this.mask = 1;
      return;
    }
    const w = Math.min(Math.max(Math.ceil(window / 32) * 32, MIN_WINDOW), MAX_WINDOW);
    let blocks = 2;
    while ((blocks - 1) * 32 < w) blocks *= 2;
    this.size = (blocks - 1) * 32;
    this.bitmap = new Uint32Array(blocks);
    this.mask = blocks - 1;
  }

  /** The highest authenticated sequence number as a bigint (tests, status). */
  get top(): bigint {
    return (BigInt(this.topHi) << 32n) | BigInt(this.topLo);
  }

  private get inferWindow(): number {
    return this.size > 0 ? this.size : MIN_WINDOW;
  }

  /**
   * Pre-ICV check of a received low-order sequence number. On 'ok', `this.hi` holds the inferred
   * high-order half (always 0 without ESN) to feed into the ICV computation and then update().
   */
  check(seqLo: number): ReplayVerdict {
    seqLo >>>= 0;
    let hi = 0;
    if (this.esn) {
      // RFC 4303 Appendix A2.2
      const w = this.inferWindow;
      const tl = this.topLo;
      const th = this.topHi;
      if (tl >= w - 1) {
        // Case A: the window lies within one sequence number subspace.
        hi = seqLo >= tl - w + 1 ? th : th + 1;
      } else {
        // Case B: the window spans two subspaces.
        hi = seqLo >= tl - w + 1 + TWO32 ? th - 1 : th;
      }
      if (hi < 0) return 'too-old';
      if (hi >= TWO32) return 'too-old'; // 2^64 exhausted: never happens, never accept
      if (hi === 0 && seqLo === 0) return 'zero';
    } else if (seqLo === 0) {
      return 'zero'; // the first packet is 1 (§3.3.3); 0 never appears without ESN
    }
    this.hi = hi;
    if (this.size === 0) return 'ok';
    const diff = (hi - this.topHi) * TWO32 + (seqLo - this.topLo);
    if (diff > 0) return 'ok';
    if (-diff >= this.size) return 'too-old';
    const block = (seqLo >>> 5) & this.mask;
    const bit = 1 << (seqLo & 31);
    return (this.bitmap[block]! & bit) !== 0 ? 'replay' : 'ok';
  }

  /**
   * Marks (hi:lo) as received after the ICV verified; advances the window. Returns false if the
   * number turned out to be a replay (a concurrent duplicate), true otherwise.
   */
  update(seqLo: number, hi: number): boolean {
    seqLo >>>= 0;
    const diff = (hi - this.topHi) * TWO32 + (seqLo - this.topLo);
    const bm = this.bitmap;
    if (diff > 0) {
      if (this.size > 0) {
        // RFC 6479 §2: clear the blocks the top moves over (all of them after a far jump).
        const topBlock = (this.topHi * TWO32 + this.topLo) / 32;
        const newBlock = (hi * TWO32 + seqLo) / 32;
        let steps = Math.floor(newBlock) - Math.floor(topBlock);
        if (steps > bm.length) steps = bm.length;
        let idx = (this.topLo >>> 5) & this.mask;
        for (let i = 0; i < steps; i++) {
          idx = (idx + 1) & this.mask;
          bm[idx] = 0;
        }
      }
      this.topHi = hi;
      this.topLo = seqLo;
    } else if (this.size > 0 && -diff >= this.size) {
      return false;
    }
    if (this.size === 0) return true;
    const block = (seqLo >>> 5) & this.mask;
    const bit = 1 << (seqLo & 31);
    if ((bm[block]! & bit) !== 0) return false;
    bm[block] = bm[block]! | bit;
    return true;
  }
}
