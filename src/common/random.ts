import { randomFillSync } from 'node:crypto';

/** Source of randomness. Injected into the protocol core so tests are reproducible. */
export interface Random {
  bytes(n: number): Uint8Array;
  /** Uniform float in [0, 1). */
  float(): number;
}

/**
 * The kernel's CSPRNG through OpenSSL, drawn 8 KiB at a time: one syscall per ~200 handshakes
 * instead of several per handshake. Every byte is handed out once (copied, never shared).
 */
class PooledSystemRandom implements Random {
  private pool = new Uint8Array(8192);
  private pos = this.pool.length;

  bytes(n: number): Uint8Array {
    if (n > this.pool.length / 4) return randomFillSync(new Uint8Array(n));
    if (this.pos + n > this.pool.length) {
      randomFillSync(this.pool);
      this.pos = 0;
    }
    const out = this.pool.slice(this.pos, this.pos + n);
    this.pool.fill(0, this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  float(): number {
    const b = this.bytes(4);
    return (((b[0]! << 24) >>> 0) + ((b[1]! << 16) | (b[2]! << 8) | b[3]!)) / 0x1_0000_0000;
  }
}

export const systemRandom: Random = new PooledSystemRandom();

/** Deterministic generator for tests and fuzzing (xorshift128+, seeded). Not for keys in production. */
export class SeededRandom implements Random {
  private s0: bigint;
  private s1: bigint;
  constructor(seed: number) {
    this.s0 = BigInt(seed >>> 0) | 0x9e3779b97f4a7c15n;
    this.s1 = (BigInt(seed >>> 0) << 17n) ^ 0xbf58476d1ce4e5b9n;
    for (let i = 0; i < 8; i++) this.next();
  }
  private next(): bigint {
    const M = 0xffffffffffffffffn;
    let x = this.s0;
    const y = this.s1;
    this.s0 = y;
    x = (x ^ (x << 23n)) & M;
    this.s1 = x ^ y ^ (x >> 17n) ^ (y >> 26n);
    return (this.s1 + y) & M;
  }
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i += 8) {
      let v = this.next();
      for (let j = 0; j < 8 && i + j < n; j++) {
        out[i + j] = Number(v & 0xffn);
        v >>= 8n;
      }
    }
    return out;
  }
  float(): number {
    return Number(this.next() >> 11n) / 2 ** 53;
  }
  int(n: number): number {
    return Math.floor(this.float() * n);
  }
}
