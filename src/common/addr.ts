// IP address text <-> bytes <-> bigint, without allocation-heavy libraries on the hot path.
import { isIPv4, isIPv6 } from 'node:net';

export function ipFamily(text: string): 4 | 6 {
  if (isIPv4(text)) return 4;
  if (isIPv6(text)) return 6;
  throw new Error(`not an IP address: ${JSON.stringify(text)}`);
}

export function addrToBytes(text: string): Uint8Array {
  if (isIPv4(text)) return new Uint8Array(text.split('.').map((x) => Number(x)));
  if (!isIPv6(text)) throw new Error(`not an IP address: ${JSON.stringify(text)}`);
  let s = text;
  const out = new Uint8Array(16);
  // embedded IPv4 suffix (::ffff:1.2.3.4)
  const v4 = s.match(/(\d+\.\d+\.\d+\.\d+)$/);
  let tail: number[] = [];
  if (v4?.[1]) {
    const b = addrToBytes(v4[1]);
    tail = [(b[0]! << 8) | b[1]!, (b[2]! << 8) | b[3]!];
    s = s.slice(0, s.length - v4[1].length).replace(/:$/, ':0');
    s = s.endsWith(':0') ? s.slice(0, -2) : s;
    if (s.endsWith(':')) s += '';
  }
  const [headS, tailS] = s.includes('::') ? s.split('::') : [s, undefined];
  const head = headS ? headS.split(':').filter((x) => x !== '') : [];
  const rest = tailS !== undefined ? tailS.split(':').filter((x) => x !== '') : [];
  const words = [...head.map((x) => Number.parseInt(x, 16))];
  const restW = [...rest.map((x) => Number.parseInt(x, 16)), ...tail];
  const fill = 8 - words.length - restW.length;
  const all =
    tailS !== undefined || tail.length
      ? [...words, ...new Array(Math.max(0, fill)).fill(0), ...restW]
      : words;
  for (let i = 0; i < 8; i++) {
    const w = all[i] ?? 0;
    out[2 * i] = (w >> 8) & 0xff;
    out[2 * i + 1] = w & 0xff;
  }
  return out;
}

export function bytesToAddr(b: Uint8Array): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  if (b.length !== 16) throw new Error(`address must be 4 or 16 bytes, got ${b.length}`);
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push((b[i]! << 8) | b[i + 1]!);
  // RFC 5952: compress the longest run (>= 2) of zero words
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hexw = words.map((w) => w.toString(16));
  if (bestStart < 0) return hexw.join(':');
  return `${hexw.slice(0, bestStart).join(':')}::${hexw.slice(bestStart + bestLen).join(':')}`;
}

export function bytesToBig(b: Uint8Array): bigint {
  let v = 0n;
  for (const x of b) v = (v << 8n) | BigInt(x);
  return v;
}

export function bigToBytes(v: bigint, len: number): Uint8Array {
  const out = new Uint8Array(len);
  let x = v;
  for (let i = len - 1; i >= 0; i--) {
    out[i] = Number(x & 0xffn);
    x >>= 8n;
  }
  return out;
}

// Traffic-selector narrowing and formatting convert the same few addresses for every CHILD_SA:
// remember the last few thousand (cleared when full; a bigint is immutable).
const bigCache = new Map<string, bigint>();

export function addrToBig(text: string): bigint {
  let v = bigCache.get(text);
  if (v === undefined) {
    v = bytesToBig(addrToBytes(text));
    if (bigCache.size >= 4096) bigCache.clear();
    bigCache.set(text, v);
  }
  return v;
}

export function bigToAddr(v: bigint, family: 4 | 6): string {
  return bytesToAddr(bigToBytes(v, family === 4 ? 4 : 16));
}

/** Canonical text form (RFC 5952 for IPv6). */
export function canonicalAddr(text: string): string {
  return bytesToAddr(addrToBytes(text));
}
