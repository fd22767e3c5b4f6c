// Byte-level mutations shared by the targets (AFL/libFuzzer's havoc stage, without coverage):
// bit flips, interesting values, arithmetic on 8/16/32-bit fields (both byte orders), truncation,
// extension, range deletion/duplication/insertion, splicing from other corpus entries. The
// structure-aware mutations (payload chains, netlink attributes, YAML trees...) live with their
// targets and usually finish with a light pass of these.
import type { Rng } from './rng.js';

export const INTERESTING8 = [0, 1, 2, 3, 4, 7, 8, 0x0f, 0x10, 0x20, 0x3f, 0x40, 0x7f, 0x80, 0x81, 0xfe, 0xff];
export const INTERESTING16 = [
  0, 1, 2, 3, 4, 5, 8, 0x0c, 0x10, 0x1c, 0x20, 0x40, 0x7f, 0x80, 0xff, 0x100, 0x200, 0x3ff, 0x400, 0x7fff,
  0x8000, 0xfffe, 0xffff,
];
export const INTERESTING32 = [
  0, 1, 2, 4, 0x10, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x10000, 0x7fffffff, 0x80000000,
  0xfffffffe, 0xffffffff,
];

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function setN(b: Uint8Array, at: number, size: 1 | 2 | 4, v: number, le: boolean): void {
  for (let i = 0; i < size; i++) {
    const shift = 8 * (le ? i : size - 1 - i);
    b[at + i] = (v >>> shift) & 0xff;
  }
}

function getN(b: Uint8Array, at: number, size: 1 | 2 | 4, le: boolean): number {
  let v = 0;
  for (let i = 0; i < size; i++) {
    const shift = 8 * (le ? i : size - 1 - i);
    v += (b[at + i] ?? 0) * 2 ** shift;
  }
  return v;
}

/** Writes an unsigned value of `size` bytes (big-endian unless `le`). Out-of-range writes are ignored. */
export function putUint(b: Uint8Array, at: number, size: 1 | 2 | 4, v: number, le = false): void {
  if (at < 0 || at + size > b.length) return;
  setN(b, at, size, v >>> 0, le);
}

export function getUint(b: Uint8Array, at: number, size: 1 | 2 | 4, le = false): number {
  return getN(b, at, size, le);
}

/** A new value for a length/count field currently holding `cur`: off by a little, tiny, or huge. */
export function mutateLength(rng: Rng, cur: number, size: 1 | 2 | 4): number {
  const max = size === 1 ? 0xff : size === 2 ? 0xffff : 0xffffffff;
  switch (rng.int(6)) {
    case 0:
      return Math.min(max, cur + 1 + rng.int(8));
    case 1:
      return Math.max(0, cur - 1 - rng.int(8));
    case 2:
      return rng.int(9);
    case 3:
      return max;
    case 4:
      return Math.min(max, cur + rng.pick([4, 8, 16, 64, 256]));
    default:
      return rng.pick(size === 1 ? INTERESTING8 : size === 2 ? INTERESTING16 : INTERESTING32) & max;
  }
}

/**
 * One to `maxRounds` havoc mutations of a copy of `input`. `corpus` supplies splice material;
 * `fields` (optional) names offsets of known length/count fields that get edited preferentially.
 */
export function havoc(
  rng: Rng,
  input: Uint8Array,
  corpus: readonly Uint8Array[] = [],
  maxRounds = 4,
  fields: ReadonlyArray<{ at: number; size: 1 | 2 | 4; le?: boolean }> = [],
): Uint8Array {
  let b: Uint8Array = new Uint8Array(input);
  const rounds = rng.small(maxRounds);
  for (let k = 0; k < rounds; k++) b = havocOnce(rng, b, corpus, fields);
  return b;
}

function havocOnce(
  rng: Rng,
  b: Uint8Array,
  corpus: readonly Uint8Array[],
  fields: ReadonlyArray<{ at: number; size: 1 | 2 | 4; le?: boolean }>,
): Uint8Array {
  const n = b.length;
  const pos = rng.int(Math.max(n, 1));
  switch (rng.int(fields.length ? 16 : 14)) {
    case 0: {
      // bit flips
      const flips = rng.small(4);
      for (let i = 0; i < flips && n > 0; i++) {
        const p = rng.int(n);
        b[p] = b[p]! ^ (1 << rng.int(8));
      }
      return b;
    }
    case 1: // an interesting byte
      if (n > 0) b[pos] = rng.pick(INTERESTING8);
      return b;
    case 2: // an interesting 16-bit value
      putUint(b, pos, 2, rng.pick(INTERESTING16), rng.chance(0.3));
      return b;
    case 3: // an interesting 32-bit value
      putUint(b, pos, 4, rng.pick(INTERESTING32), rng.chance(0.3));
      return b;
    case 4: {
      // arithmetic on a field
      const size = rng.pick([1, 2, 4] as const);
      if (pos + size > n) return b;
      const le = rng.chance(0.3);
      const d = rng.range(1, 35) * (rng.chance(0.5) ? 1 : -1);
      putUint(b, pos, size, (getUint(b, pos, size, le) + d) % 2 ** (8 * size), le);
      return b;
    }
    case 5: // a random byte
      if (n > 0) b[pos] = rng.int(256);
      return b;
    case 6: // truncate
      return b.slice(0, rng.int(n + 1));
    case 7: // extend with junk or zeros
      return concatBytes(
        b,
        rng.chance(0.5) ? rng.bytes(rng.small(64) * 4) : new Uint8Array(rng.small(16) * 4),
      );
    case 8: // delete a range
      return concatBytes(b.subarray(0, pos), b.subarray(Math.min(n, pos + rng.small(32) * rng.range(1, 4))));
    case 9: {
      // duplicate a range
      const piece = b.slice(pos, pos + rng.small(32) * rng.range(1, 4));
      return concatBytes(b.subarray(0, pos), piece, b.subarray(pos));
    }
    case 10: // insert random bytes
      return concatBytes(b.subarray(0, pos), rng.bytes(rng.small(16)), b.subarray(pos));
    case 11: {
      // overwrite with a chunk from elsewhere in the input
      if (n < 2) return b;
      const from = rng.int(n);
      const len = Math.min(rng.small(32) * 2, n - from, n - pos);
      b.copyWithin(pos, from, from + len);
      return b;
    }
    case 12:
    case 13: {
      // splice: replace a range with a range of another corpus entry
      if (corpus.length === 0) return b;
      const other = rng.pick(corpus);
      if (other.length === 0) return b;
      const from = rng.int(other.length);
      const piece = other.subarray(from, from + rng.small(16) * 4);
      if (rng.chance(0.5)) {
        const out = new Uint8Array(b);
        out.set(piece.subarray(0, Math.max(0, n - pos)), pos);
        return out;
      }
      return concatBytes(b.subarray(0, pos), piece, b.subarray(Math.min(n, pos + rng.int(64))));
    }
    default: {
      // a known length/count field
      const f = rng.pick(fields);
      if (f.at + f.size > n) return b;
      putUint(b, f.at, f.size, mutateLength(rng, getUint(b, f.at, f.size, f.le), f.size), f.le);
      return b;
    }
  }
}
