// Traffic selectors (RFC 7296 §3.13.1 ranges) -> struct xfrm_selector, and policy priorities.
//
// The kernel's selector is a prefix per side plus a port/mask per side, so:
//  - an address range that is not one prefix is split into the exact prefixes that cover it (one
//    kernel policy each), never widened (strongSwan's ts2subnet takes the smallest enclosing subnet,
//    which would make an inbound policy accept more than was negotiated);
//  - a port range becomes port/mask of the range's common leading bits (strongSwan ts2ports; the
//    kernel has no ranges), which may be wider than the range, as in strongSwan;
//  - for ICMP the kernel wants type in sport and code in dport (strongSwan ts2selector; RFC 4301
//    §4.4.1.3 puts type<<8|code in the "port" of the TS).
import { addrToBig, bigToAddr } from '../../common/addr.js';
import type { PolicySpec, TsRange } from '../../ike/ports.js';
import {
  AF_INET,
  AF_INET6,
  addrToXfrm,
  type XfrmSelector,
  XfrmSelector as XfrmSelectorCodec,
} from './structs.js';

/** Upper bound on kernel policies for one PolicySpec (src prefixes x dst prefixes). */
export const MAX_SELECTORS_PER_POLICY = 64;

export interface Prefix {
  addr: string;
  len: number;
}

/** The exact prefixes covering [start, end] (RFC 4632-style range to CIDR split). */
export function rangeToPrefixes(start: string, end: string, family: 4 | 6): Prefix[] {
  const bits = family === 4 ? 32 : 128;
  let lo = addrToBig(start);
  const hi = addrToBig(end);
  if (lo > hi) throw new RangeError(`range ${start}-${end} is empty`);
  const out: Prefix[] = [];
  while (lo <= hi) {
    // the largest block that starts at lo (alignment) and does not pass hi
    let size = 0;
    while (
      size < bits &&
      (lo & ((1n << BigInt(size + 1)) - 1n)) === 0n &&
      lo + (1n << BigInt(size + 1)) - 1n <= hi
    )
      size++;
    out.push({ addr: bigToAddr(lo, family), len: bits - size });
    lo += 1n << BigInt(size);
  }
  return out;
}

/** strongSwan ts2ports: a single port exactly, otherwise the common leading bits of from and to. */
export function portMask(from: number, to: number): { port: number; mask: number } {
  if (from === to) return { port: from, mask: 0xffff };
  let mask = 0;
  for (let bit = 15; bit >= 0; bit--) {
    const b = 1 << bit;
    if ((b & from) !== (b & to)) return { port: from & mask, mask };
    mask |= b;
  }
  return { port: from & mask, mask };
}

const IPPROTO_ICMP = 1;
const IPPROTO_ICMPV6 = 58;

/** Every kernel selector for a src/dst TS pair; throws RangeError when it cannot be expressed. */
export function tsToSelectors(src: TsRange, dst: TsRange): XfrmSelector[] {
  if (src.family !== dst.family) throw new RangeError('selectors of different IP families');
  const s = rangeToPrefixes(src.startAddr, src.endAddr, src.family);
  const d = rangeToPrefixes(dst.startAddr, dst.endAddr, dst.family);
  if (s.length * d.length > MAX_SELECTORS_PER_POLICY)
    throw new RangeError(
      `${src.startAddr}-${src.endAddr} === ${dst.startAddr}-${dst.endAddr} needs ${s.length * d.length} kernel policies (more than ${MAX_SELECTORS_PER_POLICY})`,
    );
  const proto = Math.max(src.protocol, dst.protocol);
  let sp = portMask(src.startPort, src.endPort);
  let dp = portMask(dst.startPort, dst.endPort);
  if ((proto === IPPROTO_ICMP || proto === IPPROTO_ICMPV6) && (sp.mask === 0xffff || dp.mask === 0xffff)) {
    const port = Math.max(sp.mask === 0xffff ? sp.port : 0, dp.mask === 0xffff ? dp.port : 0);
    const type = port >> 8;
    const code = port & 0xff;
    sp = { port: type, mask: type ? 0xffff : 0 };
    dp = { port: code, mask: code ? 0xffff : 0 };
  }
  const out: XfrmSelector[] = [];
  for (const a of s) {
    for (const b of d) {
      const sel = XfrmSelectorCodec.zero();
      sel.family = src.family === 4 ? AF_INET : AF_INET6;
      sel.saddr = addrToXfrm(a.addr).bytes;
      sel.prefixlen_s = a.len;
      sel.daddr = addrToXfrm(b.addr).bytes;
      sel.prefixlen_d = b.len;
      sel.proto = proto;
      sel.sport = sp.port;
      sel.sport_mask = sp.mask;
      sel.dport = dp.port;
      sel.dport_mask = dp.mask;
      out.push(sel);
    }
  }
  return out;
}

function maskBits(mask: number): number {
  let n = 0;
  for (let bit = 15; bit >= 0 && mask & (1 << bit); bit--) n++;
  return n;
}

/**
 * strongSwan 5.9 kernel_netlink_ipsec.c get_priority(): PRIO_BASE 200000, DEFAULT/ROUTED add one
 * PRIO_BASE; more specific selectors get a smaller value (= higher priority); a trap (ROUTED)
 * policy ranks one below a regular one with the same selector.
 */
export function policyPriority(sel: XfrmSelector, trap: boolean): number {
  const PRIO_BASE = 200_000;
  let p = PRIO_BASE + PRIO_BASE;
  p -= (sel.prefixlen_s + sel.prefixlen_d) * 512;
  p -= sel.proto ? 256 : 0;
  p -= (maskBits(sel.sport_mask) + maskBits(sel.dport_mask)) * 4;
  p -= trap ? 0 : 1;
  return p;
}

/** A stable key for (direction, selector) — what the kernel's SPD is keyed by (mark aside). */
export function selectorKey(dir: PolicySpec['direction'], sel: XfrmSelector): string {
  return `${dir}|${Buffer.from(XfrmSelectorCodec.encode(sel)).toString('hex')}`;
}
