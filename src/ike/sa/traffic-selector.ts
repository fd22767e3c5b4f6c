// Traffic selectors: wire form <-> TsRange, and narrowing (RFC 7296 §2.9).
import { addrToBig, addrToBytes, bigToAddr, bytesToAddr } from '../../common/addr.js';
import type { TsRange } from '../ports.js';
import { TsType } from '../wire/constants.js';
import type { TrafficSelector } from '../wire/types.js';

export function tsToWire(ts: TsRange): TrafficSelector {
  return {
    tsType: ts.family === 4 ? TsType.IPV4_ADDR_RANGE : TsType.IPV6_ADDR_RANGE,
    ipProtocol: ts.protocol,
    startPort: ts.startPort,
    endPort: ts.endPort,
    startAddr: addrToBytes(ts.startAddr),
    endAddr: addrToBytes(ts.endAddr),
  };
}

export function tsFromWire(ts: TrafficSelector): TsRange {
  return {
    family: ts.tsType === TsType.IPV4_ADDR_RANGE ? 4 : 6,
    protocol: ts.ipProtocol,
    startPort: ts.startPort,
    endPort: ts.endPort,
    startAddr: bytesToAddr(ts.startAddr),
    endAddr: bytesToAddr(ts.endAddr),
  };
}

/** Intersection of two selectors, or undefined if they do not overlap. */
export function intersect(a: TsRange, b: TsRange): TsRange | undefined {
  if (a.family !== b.family) return undefined;
  if (a.protocol !== 0 && b.protocol !== 0 && a.protocol !== b.protocol) return undefined;
  const startPort = Math.max(a.startPort, b.startPort);
  const endPort = Math.min(a.endPort, b.endPort);
  // OPAQUE ports (start 65535, end 0) only match themselves; treat an empty range as no overlap.
  if (startPort > endPort) return undefined;
  const s = maxBig(addrToBig(a.startAddr), addrToBig(b.startAddr));
  const e = minBig(addrToBig(a.endAddr), addrToBig(b.endAddr));
  if (s > e) return undefined;
  return {
    family: a.family,
    protocol: a.protocol !== 0 ? a.protocol : b.protocol,
    startPort,
    endPort,
    startAddr: bigToAddr(s, a.family),
    endAddr: bigToAddr(e, a.family),
  };
}

/** True if `inner` lies completely within `outer`. */
export function isSubset(inner: TsRange, outer: TsRange): boolean {
  const x = intersect(inner, outer);
  return x !== undefined && sameTs(x, inner);
}

export function sameTs(a: TsRange, b: TsRange): boolean {
  return (
    a.family === b.family &&
    a.protocol === b.protocol &&
    a.startPort === b.startPort &&
    a.endPort === b.endPort &&
    addrToBig(a.startAddr) === addrToBig(b.startAddr) &&
    addrToBig(a.endAddr) === addrToBig(b.endAddr)
  );
}

/**
 * Narrowing as the responder (RFC 7296 §2.9): the subset of what the peer proposed that our
 * configuration allows. Every proposed selector is intersected with every configured one; the
 * result keeps the peer's order and drops duplicates. Empty = TS_UNACCEPTABLE.
 */
export function narrow(proposed: TsRange[], configured: TsRange[]): TsRange[] {
  const out: TsRange[] = [];
  for (const p of proposed) {
    for (const c of configured) {
      const x = intersect(p, c);
      if (x && !out.some((o) => sameTs(o, x))) out.push(x);
    }
  }
  return out;
}

/** Initiator-side check of a response: every selector the responder chose lies within what we proposed. */
export function allWithin(chosen: TsRange[], proposed: TsRange[]): boolean {
  return chosen.length > 0 && chosen.every((c) => proposed.some((p) => isSubset(c, p)));
}

/** "10.10.0.0/16" where the range is a prefix, else "a-b"; protocol/ports appended like swanctl. */
export function formatTs(ts: TsRange): string {
  const s = addrToBig(ts.startAddr);
  const e = addrToBig(ts.endAddr);
  const bits = ts.family === 4 ? 32 : 128;
  let addr = `${ts.startAddr}..${ts.endAddr}`;
  const size = e - s + 1n;
  if (size > 0n && (size & (size - 1n)) === 0n && (s & (size - 1n)) === 0n) {
    const prefix = bits - (size.toString(2).length - 1);
    addr = `${ts.startAddr}/${prefix}`;
  }
  const anyPorts = ts.startPort === 0 && ts.endPort === 65535;
  if (ts.protocol === 0 && anyPorts) return addr;
  const port = anyPorts
    ? ''
    : ts.startPort === ts.endPort
      ? `/${ts.startPort}`
      : `/${ts.startPort}-${ts.endPort}`;
  return `${addr}[${ts.protocol}${port}]`;
}

export function containsAddr(ts: TsRange, addr: string): boolean {
  try {
    const a = addrToBig(addr);
    return (
      (addr.includes(':') ? 6 : 4) === ts.family && a >= addrToBig(ts.startAddr) && a <= addrToBig(ts.endAddr)
    );
  } catch {
    return false;
  }
}

function maxBig(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}
function minBig(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}
