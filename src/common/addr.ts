// IP address text <-> bytes <-> bigint, without allocation-heavy libraries on the hot path.
import { isIPv4, isIPv6 } from 'node:net';

/** IPv4 as 4 bytes when it is dotted-quad text (the fast path of addrToBytes/ipToBytes). */
export function ipv4Bytes(text: string): Uint8Array | undefined {
  const v = ipv4ToUint32(text);
  return v >= 0 ? v4Bytes(v) : undefined;
}

export function ipFamily(text: string): 4 | 6 {
  if (isIPv4(text)) return 4;
  if (isIPv6(text)) return 6;
  throw new Error(`not an IP address: ${JSON.stringify(text)}`);
}

/**
 * Dotted-quad IPv4 text as a uint32, or -1; what node:net's isIPv4 accepts (decimal octets
 * ≤ 255, no leading zeros), allocating nothing.
 */
export function ipv4ToUint32(s: string): number {
  let v = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || dots === 3) return -1;
      v = v * 256 + octet;
      octet = 0;
      digits = 0;
      dots++;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && octet === 0) return -1; // leading zero
      if (++digits > 3) return -1;
      octet = octet * 10 + (c - 48);
      if (octet > 255) return -1;
    } else return -1;
  }
  return dots === 3 && digits > 0 ? v * 256 + octet : -1;
}

function v4Bytes(v: number): Uint8Array {
  const b = new Uint8Array(4);
  b[0] = v >>> 24;
  b[1] = (v >>> 16) & 0xff;
  b[2] = (v >>> 8) & 0xff;
  b[3] = v & 0xff;
  return b;
}

export function addrToBytes(text: string): Uint8Array {
  const quad = ipv4ToUint32(text);
  if (quad >= 0) return v4Bytes(quad);
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
