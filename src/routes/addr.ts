// Address and prefix helpers for the route code: text <-> bytes, canonical CIDR text.
import { isIPv4, isIPv6 } from 'node:net';
import { Address6 } from 'ip-address';
import { ConfigError } from '../common/errors.js';
import type { Family } from './route-table.js';

export interface Cidr {
  family: Family;
  /** Network address bytes (4 or 16). */
  bytes: Uint8Array;
  prefixLen: number;
  /** Canonical text: "10.0.0.0/8", "fd00::/64". */
  text: string;
}

export function ipFamily(ip: string): Family | undefined {
  if (isIPv4(ip)) return 4;
  if (isIPv6(ip)) return 6;
  return undefined;
}

export function ipToBytes(ip: string): Uint8Array {
  if (isIPv4(ip)) return new Uint8Array(ip.split('.').map((p) => Number.parseInt(p, 10)));
  if (isIPv6(ip)) {
    const raw = new Address6(ip).toUnsignedByteArray();
    const out = new Uint8Array(16);
    out.set(raw.slice(-16), 16 - Math.min(16, raw.length));
    return out;
  }
  throw new Error(`not an IP address: ${ip}`);
}

export function bytesToIp(b: Uint8Array): string {
  if (b.length === 4) return Array.from(b).join('.');
  if (b.length === 16) return Address6.fromByteArray(Array.from(b)).correctForm();
  throw new Error(`bad address length ${b.length}`);
}

/** Canonical text of an IP address ("fd00:0::1" -> "fd00::1"). */
export function canonicalIp(ip: string): string {
  return bytesToIp(ipToBytes(ip));
}

/**
 * Parses "a.b.c.d/n" or "x::/n". Host bits must be zero (the kernel rejects such an IPv4 route
 * with EINVAL "Invalid prefix for given prefix length"), so they are a configuration error here.
 */
export function parseCidr(s: string, field = 'cidr'): Cidr {
  const slash = s.indexOf('/');
  const ip = slash < 0 ? s.trim() : s.slice(0, slash).trim();
  const family = ipFamily(ip);
  if (family === undefined) throw new ConfigError(field, `not a CIDR: ${JSON.stringify(s)}`);
  const max = family === 4 ? 32 : 128;
  const lenText = slash < 0 ? String(max) : s.slice(slash + 1).trim();
  if (!/^\d{1,3}$/.test(lenText)) throw new ConfigError(field, `bad prefix length in ${JSON.stringify(s)}`);
  const prefixLen = Number.parseInt(lenText, 10);
  if (prefixLen > max)
    throw new ConfigError(field, `prefix length ${prefixLen} > ${max} in ${JSON.stringify(s)}`);
  const bytes = ipToBytes(ip);
  const masked = maskBytes(bytes, prefixLen);
  if (!masked.every((v, i) => v === bytes[i])) {
    throw new ConfigError(field, `${s} has host bits set; the network is ${bytesToIp(masked)}/${prefixLen}`);
  }
  return { family, bytes: masked, prefixLen, text: `${bytesToIp(masked)}/${prefixLen}` };
}

export function maskBytes(b: Uint8Array, prefixLen: number): Uint8Array {
  const out = new Uint8Array(b.length);
  for (let i = 0; i < b.length; i++) {
    const bits = Math.max(0, Math.min(8, prefixLen - i * 8));
    out[i] = b[i]! & ((0xff << (8 - bits)) & 0xff);
  }
  return out;
}

/** Canonical CIDR text for a destination read back from the kernel. */
export function cidrText(family: Family, dst: Uint8Array | undefined, prefixLen: number): string {
  const bytes = dst && dst.length > 0 ? dst : new Uint8Array(family === 4 ? 4 : 16);
  return `${bytesToIp(bytes)}/${prefixLen}`;
}
