// Round-trip checks for codecs (dns-packet's testEncoder idea): decode, re-encode byte for byte,
// compare the length function, and decode again from the middle of a larger buffer.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { fromHex, hex, Reader, Writer } from '../../src/common/bytes.js';

export type Decode<T> = (r: Reader) => T;
export type Encode<T> = (w: Writer, x: T) => void;
export type EncodedLength<T> = (x: T) => number;

/**
 * Checks that `bytes` decodes, that the decoder consumes all of it, that encoding the result gives
 * `bytes` back, that `encodedLength` agrees, and that decoding the same bytes placed at an offset
 * inside a larger buffer (with junk on both sides) gives an equal model. It also encodes after
 * some bytes already in the writer. Returns the decoded model for further assertions.
 */
export function expectRoundTrip<T>(
  decode: Decode<T>,
  encode: Encode<T>,
  encodedLength: EncodedLength<T>,
  bytes: Uint8Array,
): T {
  const r = new Reader(bytes);
  const x = decode(r);
  expect(r.remaining, 'decoder left bytes unread').toBe(0);

  const w = new Writer(8);
  encode(w, x);
  expect(hex(w.finish())).toBe(hex(bytes));
  expect(encodedLength(x)).toBe(bytes.length);

  const pre = 13;
  const post = 7;
  const big = new Uint8Array(pre + bytes.length + post).fill(0xa5);
  big.set(bytes, pre);
  const r2 = new Reader(big, pre, pre + bytes.length);
  const y = decode(r2);
  expect(r2.remaining, 'decoder left bytes unread at offset').toBe(0);
  expect(y).toEqual(x);

  const w2 = new Writer(4);
  w2.bytes(new Uint8Array([1, 2, 3]));
  encode(w2, x);
  expect(hex(w2.finish().subarray(3))).toBe(hex(bytes));
  return x;
}

/** Hex with whitespace and `#` comments (to end of line) allowed, for fixtures written from RFC layouts. */
export function hexBytes(s: string): Uint8Array {
  return fromHex(s.replace(/#[^\n]*/g, ''));
}

/** `n` bytes counting up from `start` (mod 256): recognisable filler for nonces, KE data, SPIs. */
export function seq(n: number, start = 0): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (start + i) & 0xff;
  return b;
}

export interface FixtureMessage {
  /** `<directory>/<file>` under test/fixtures/strongswan. */
  name: string;
  /** One raw IKE message (no non-ESP marker). */
  bytes: Uint8Array;
  /** Decrypted SK content from the matching `.inner.bin`, if there is one. */
  inner?: Uint8Array;
  /** strongSwan's log summary of the message from keys.json, e.g. `[ SA KE No ]`. */
  summary?: string;
}

const strongswanRoot = join(dirname(fileURLToPath(import.meta.url)), '../fixtures/strongswan');

/**
 * The IKE messages captured from strongSwan (test/fixtures/strongswan/<dir>/NN-*.bin; ESP packets
 * and `.inner.bin` files are not messages). Empty when the folder does not exist.
 */
export function strongswanFixtures(): FixtureMessage[] {
  if (!existsSync(strongswanRoot)) return [];
  const out: FixtureMessage[] = [];
  for (const dir of readdirSync(strongswanRoot, { withFileTypes: true })) {
    if (!dir.isDirectory()) continue;
    const d = join(strongswanRoot, dir.name);
    const summaries = new Map<string, string>();
    const keys = join(d, 'keys.json');
    if (existsSync(keys)) {
      const k = JSON.parse(readFileSync(keys, 'utf8')) as {
        messages?: { file: string; strongswan_log?: string }[];
      };
      for (const m of k.messages ?? []) {
        const s = m.strongswan_log?.match(/\[ .*\]$/)?.[0];
        if (s !== undefined) summaries.set(m.file, s);
      }
    }
    for (const f of readdirSync(d).sort()) {
      if (!f.endsWith('.bin') || f.endsWith('.inner.bin') || f.startsWith('esp-')) continue;
      const innerPath = join(d, f.replace(/\.bin$/, '.inner.bin'));
      out.push({
        name: `${dir.name}/${f}`,
        bytes: new Uint8Array(readFileSync(join(d, f))),
        inner: existsSync(innerPath) ? new Uint8Array(readFileSync(innerPath)) : undefined,
        summary: summaries.get(f),
      });
    }
  }
  return out;
}
