// The userspace data path's SA database and security policy database (RFC 4301 §4.4: SAD, SPD),
// reduced to what a tunnel-mode gateway with IKE-negotiated selectors needs:
//
//   SAs        by (dst, SPI) like XFRM (installer operations), inbound also by SPI alone (the
//              receive path: our SPIs are unique among our inbound SAs), outbound by reqid
//              (newest first: during a rekey the new SA takes over as soon as it is installed).
//   policies   'out' policies map a packet's selectors to a reqid; a trap policy (no SA yet) turns
//              a matching packet into an acquire. Policies are reference-counted exactly as in
//              MemoryInstaller (rekeys add the same selectors twice). 'in'/'fwd' policies are
//              kept for bookkeeping; the inbound check is the SA's own traffic selectors.
//   counters   per SA: bytes/packets (inner packets), drops by reason; global drops for packets
//              that match no SA (unknown SPI, no policy).
//
// Selectors are compiled once into numeric ranges (IPv4 as uint32, IPv6 as 16 bytes) so the
// per-packet match is a few integer comparisons.
import { ipv4ToUint32 } from '../../common/addr.js';
import type { AddSaSpec, Endpoint, PolicySpec, TsRange } from '../../ike/ports.js';
import { createEspCrypto, type EspCrypto, type EspCryptoImpl } from './esp-packet.js';
import { ReplayWindow } from './replay-window.js';

// ---- addresses -------------------------------------------------------------------------------

/** "192.0.2.1" -> uint32, or -1 if not a dotted quad. */
/** "a.b.c.d" -> uint32, or -1 (src/common/addr.ts; allocates nothing: it runs per SA and packet). */
export const parseIpv4 = ipv4ToUint32;

/** "2001:db8::1" (and "::ffff:1.2.3.4") -> 16 bytes, or undefined. */
export function parseIpv6(s: string): Uint8Array | undefined {
  let str = s;
  if (str.includes('.')) {
    // an embedded IPv4 address stands for the last two groups
    const at = str.lastIndexOf(':');
    const v4 = parseIpv4(str.slice(at + 1));
    if (at < 0 || v4 < 0) return undefined;
    str = `${str.slice(0, at + 1)}${Math.floor(v4 / 65536).toString(16)}:${(v4 & 0xffff).toString(16)}`;
  }
  const halves = str.split('::');
  if (halves.length > 2) return undefined;
  const parse = (part: string): number[] | undefined => {
    if (part === '') return [];
    const out: number[] = [];
    for (const g of part.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
      out.push(Number.parseInt(g, 16));
    }
    return out;
  };
  const head = parse(halves[0] ?? '');
  const rest = halves.length === 2 ? parse(halves[1] ?? '') : [];
  if (!head || !rest) return undefined;
  const fill = 8 - head.length - rest.length;
  if (halves.length === 2 ? fill < 1 : fill !== 0) return undefined;
  const groups = [...head, ...new Array<number>(fill).fill(0), ...rest];
  const b = new Uint8Array(16);
  groups.forEach((g, i) => {
    b[2 * i] = g >> 8;
    b[2 * i + 1] = g & 0xff;
  });
  return b;
}

function cmp16(a: Uint8Array, ao: number, b: Uint8Array): number {
  for (let i = 0; i < 16; i++) {
    const d = a[ao + i]! - b[i]!;
    if (d !== 0) return d;
  }
  return 0;
}

// ---- selectors -------------------------------------------------------------------------------

/**
 * A traffic selector in the form the packet path compares (4 per CHILD_SA: each SA's source and
 * destination selectors). A class, so that every field sits in the object itself: an object
 * literal spread from a base object kept half of them in a separate property array.
 */
export class CompiledTs {
  readonly family: 4 | 6;
  readonly proto: number;
  readonly startPort: number;
  readonly endPort: number;
  readonly anyPort: boolean;
  readonly v4Start: number;
  readonly v4End: number;
  readonly v6Start: Uint8Array;
  readonly v6End: Uint8Array;
  /** Number of addresses covered (log2-ish for v6), for most-specific-first ordering. */
  readonly width: number;
  readonly source: TsRange;

  constructor(t: TsRange) {
    this.family = t.family;
    this.proto = t.protocol;
    this.startPort = t.startPort;
    this.endPort = t.endPort;
    this.anyPort = t.startPort === 0 && t.endPort === 65535;
    this.source = t;
    if (t.family === 4) {
      this.v4Start = parseIpv4(t.startAddr);
      this.v4End = parseIpv4(t.endAddr);
      this.v6Start = EMPTY16;
      this.v6End = EMPTY16;
      this.width = this.v4End - this.v4Start;
      return;
    }
    const s = parseIpv6(t.startAddr) ?? EMPTY16;
    const e = parseIpv6(t.endAddr) ?? EMPTY16;
    let width = 0;
    for (let i = 0; i < 16; i++) {
      if (s[i] !== e[i]) {
        width = (16 - i) * 8;
        break;
      }
    }
    this.v4Start = 0;
    this.v4End = -1;
    this.v6Start = s;
    this.v6End = e;
    this.width = 2 ** width;
  }
}

const EMPTY16 = new Uint8Array(16);

export function compileTs(t: TsRange): CompiledTs {
  return new CompiledTs(t);
}

/**
 * The selector fields of an inner IP packet (RFC 4301 §4.4.1.1). Filled in place by parseInner
 * (one object reused for every packet). `port` is the source or destination port as needed,
 * ICMP type<<8|code, or -1 when the transport header is not available (OPAQUE: non-first
 * fragment, unknown extension header), which only matches an any-port selector.
 */
export class PacketFields {
  family: 4 | 6 = 4;
  proto = 0;
  srcPort = -1;
  dstPort = -1;
  v4Src = 0;
  v4Dst = 0;
  buf: Uint8Array = EMPTY16;
  /** Offset of the IPv6 source address in buf (the destination follows at +16). */
  v6At = 0;
  /** Total length from the IP header, validated against the buffer. */
  length = 0;
}

const PROTO_ICMP = 1;
const PROTO_TCP = 6;
const PROTO_UDP = 17;
const PROTO_ICMPV6 = 58;
const PROTO_SCTP = 132;
const PROTO_UDPLITE = 136;

function hasPorts(p: number): boolean {
  return p === PROTO_TCP || p === PROTO_UDP || p === PROTO_SCTP || p === PROTO_UDPLITE;
}

/**
 * Reads the selector fields of the IP packet at buf[off..off+len). Returns false when it is not a
 * well-formed IPv4/IPv6 header (version, header length, total length within len).
 */
export function parseInner(buf: Uint8Array, off: number, len: number, f: PacketFields): boolean {
  if (len < 1) return false;
  const v = buf[off]! >> 4;
  f.buf = buf;
  f.srcPort = -1;
  f.dstPort = -1;
  if (v === 4) {
    if (len < 20) return false;
    const ihl = (buf[off]! & 0x0f) * 4;
    const total = (buf[off + 2]! << 8) | buf[off + 3]!;
    if (ihl < 20 || total < ihl || total > len) return false;
    f.family = 4;
    f.length = total;
    f.proto = buf[off + 9]!;
    f.v4Src =
      ((buf[off + 12]! << 24) | (buf[off + 13]! << 16) | (buf[off + 14]! << 8) | buf[off + 15]!) >>> 0;
    f.v4Dst =
      ((buf[off + 16]! << 24) | (buf[off + 17]! << 16) | (buf[off + 18]! << 8) | buf[off + 19]!) >>> 0;
    const fragOff = ((buf[off + 6]! & 0x1f) << 8) | buf[off + 7]!;
    if (fragOff === 0) {
      const t = off + ihl;
      if (hasPorts(f.proto) && total >= ihl + 4) {
        f.srcPort = (buf[t]! << 8) | buf[t + 1]!;
        f.dstPort = (buf[t + 2]! << 8) | buf[t + 3]!;
      } else if (f.proto === PROTO_ICMP && total >= ihl + 2) {
        // RFC 4301 §4.4.1.1: ICMP type/code in the (local) port selector
        f.srcPort = (buf[t]! << 8) | buf[t + 1]!;
        f.dstPort = f.srcPort;
      }
    }
    return true;
  }
  if (v === 6) {
    if (len < 40) return false;
    const total = 40 + ((buf[off + 4]! << 8) | buf[off + 5]!);
    if (total > len) return false;
    f.family = 6;
    f.length = total;
    f.proto = buf[off + 6]!;
    f.v6At = off + 8;
    const t = off + 40;
    if (hasPorts(f.proto) && total >= 44) {
      f.srcPort = (buf[t]! << 8) | buf[t + 1]!;
      f.dstPort = (buf[t + 2]! << 8) | buf[t + 3]!;
    } else if (f.proto === PROTO_ICMPV6 && total >= 42) {
      f.srcPort = (buf[t]! << 8) | buf[t + 1]!;
      f.dstPort = f.srcPort;
    }
    return true;
  }
  return false;
}

function portOk(ts: CompiledTs, port: number): boolean {
  if (ts.anyPort) return true;
  return port >= 0 && port >= ts.startPort && port <= ts.endPort;
}

/** Does the packet's source (src=true) or destination match the selector? */
export function tsMatches(ts: CompiledTs, f: PacketFields, src: boolean): boolean {
  if (ts.family !== f.family) return false;
  if (ts.proto !== 0 && ts.proto !== f.proto) return false;
  if (f.family === 4) {
    const a = src ? f.v4Src : f.v4Dst;
    if (a < ts.v4Start || a > ts.v4End) return false;
  } else {
    const at = src ? f.v6At : f.v6At + 16;
    if (cmp16(f.buf, at, ts.v6Start) < 0 || cmp16(f.buf, at, ts.v6End) > 0) return false;
  }
  return portOk(ts, src ? f.srcPort : f.dstPort);
}

function anyMatches(list: readonly CompiledTs[], f: PacketFields, src: boolean): boolean {
  for (let i = 0; i < list.length; i++) if (tsMatches(list[i]!, f, src)) return true;
  return false;
}

// ---- SAs --------------------------------------------------------------------------------------

export const DROP_REASONS = [
  'malformed',
  'unknown-spi',
  'replay',
  'auth',
  'bad-padding',
  'bad-next-header',
  'selector',
  'no-policy',
  'no-sa',
  'queue-full',
  'expired',
  'seq-exhausted',
  'send',
  'tun-write',
  'dummy',
] as const;
export type DropReason = (typeof DROP_REASONS)[number];

export type DropCounters = Record<DropReason, number>;

/**
 * All counters at 0, written out (one per SA): a literal keeps every counter inside the object,
 * where adding them in a loop left most in a separate property array.
 */
export function emptyDrops(): DropCounters {
  return {
    malformed: 0,
    'unknown-spi': 0,
    replay: 0,
    auth: 0,
    'bad-padding': 0,
    'bad-next-header': 0,
    selector: 0,
    'no-policy': 0,
    'no-sa': 0,
    'queue-full': 0,
    expired: 0,
    'seq-exhausted': 0,
    send: 0,
    'tun-write': 0,
    dummy: 0,
  } satisfies Record<DropReason, 0>;
}

/** Sequence number headroom: a soft expire (rekey) this many packets before 2^32 without ESN. */
export const SEQ_SOFT_MARGIN = 1 << 20;

export function saKey(dst: string, spi: number): string {
  return `${dst}|${(spi >>> 0).toString(16).padStart(8, '0')}`;
}

export class SaState {
  key: string;
  readonly spi: number;
  readonly reqid: number;
  readonly inbound: boolean;
  readonly name: string;
  readonly esn: boolean;
  src: string;
  dst: string;
  encap: { sport: number; dport: number } | undefined;
  /** Outbound: where ESP-in-UDP goes. */
  local: Endpoint;
  remote: Endpoint;
  /** remote.address as uint32 when IPv4, else -1 (for the batched send). */
  remoteV4: number;
  readonly crypto: EspCrypto;
  readonly replay: ReplayWindow | undefined;
  readonly srcTs: CompiledTs[];
  readonly dstTs: CompiledTs[];
  /** Outbound: the next sequence number to use (hi:lo); starts at 1 (RFC 4303 §3.3.3). */
  seqLo = 1;
  seqHi = 0;
  bytes = 0;
  packets = 0;
  lastUseMs: number | undefined;
  readonly drops: DropCounters = emptyDrops();
  private loggedSet: Set<string> | undefined;
  /** Drop reasons (and NAT mappings) already logged for this SA: they go when the SA goes. */
  get logged(): Set<string> {
    this.loggedSet ??= new Set<string>(); // made on the first drop: most SAs never log one
    return this.loggedSet;
  }
  readonly softBytes: number;
  readonly hardBytes: number;
  readonly softPackets: number;
  readonly hardPackets: number;
  softFired = false;
  hardFired = false;
  /** Installation order, to prefer the newest outbound SA of a reqid. */
  readonly serial: number;

  constructor(spec: AddSaSpec, serial: number, impl: EspCryptoImpl = 'auto') {
    this.spi = spec.spi >>> 0;
    this.key = saKey(spec.dst, this.spi);
    this.reqid = spec.reqid;
    this.inbound = spec.inbound;
    this.name = spec.name;
    this.esn = spec.esn;
    this.src = spec.src;
    this.dst = spec.dst;
    this.encap = spec.encap ? { ...spec.encap } : undefined;
    this.local = { address: spec.src, port: spec.encap?.sport ?? 0 };
    this.remote = { address: spec.dst, port: spec.encap?.dport ?? 0 };
    this.remoteV4 = parseIpv4(spec.dst);
    this.crypto = createEspCrypto(
      spec.alg,
      spec.encKey,
      spec.integKey,
      spec.esn,
      impl,
      spec.inbound ? 'in' : 'out',
    );
    this.replay = spec.inbound ? new ReplayWindow(spec.replayWindow, spec.esn) : undefined;
    this.srcTs = spec.srcTs.map(compileTs);
    this.dstTs = spec.dstTs.map(compileTs);
    const n = (v: bigint | undefined): number => (v === undefined || v <= 0n ? Infinity : Number(v));
    this.softBytes = n(spec.lifetime.softBytes);
    this.hardBytes = n(spec.lifetime.hardBytes);
    this.softPackets = n(spec.lifetime.softPackets);
    this.hardPackets = n(spec.lifetime.hardPackets);
    this.serial = serial;
  }

  move(src: string, dst: string, encap: { sport: number; dport: number } | undefined): void {
    this.src = src;
    this.dst = dst;
    this.encap = encap ? { ...encap } : undefined;
    this.local = { address: src, port: encap?.sport ?? 0 };
    this.remote = { address: dst, port: encap?.dport ?? 0 };
    this.remoteV4 = parseIpv4(dst);
  }

  /** Inner packet selectors allowed on this SA (src/dst from the SA's point of view). */
  allows(f: PacketFields): boolean {
    return anyMatches(this.srcTs, f, true) && anyMatches(this.dstTs, f, false);
  }
}

// ---- policies ---------------------------------------------------------------------------------

function tsKey(t: TsRange): string {
  return `${t.family}:${t.protocol}:${t.startAddr}-${t.endAddr}:${t.startPort}-${t.endPort}`;
}

export function policyKey(p: Pick<PolicySpec, 'direction' | 'src' | 'dst'>): string {
  return `${p.direction}|${tsKey(p.src)}|${tsKey(p.dst)}`;
}

function effPriority(p: PolicySpec): number {
  return p.priority ?? (p.trap ? 2 : 1);
}

export function sameUse(a: PolicySpec, b: PolicySpec): boolean {
  return (
    a.reqid === b.reqid && a.tunnelSrc === b.tunnelSrc && a.tunnelDst === b.tunnelDst && a.trap === b.trap
  );
}

export interface PolicyEntry {
  refs: PolicySpec[];
  /** The installed (effective) spec: the highest priority, newest among equals. */
  installed: PolicySpec;
  src: CompiledTs;
  dst: CompiledTs;
}

function installedOf(refs: PolicySpec[]): PolicySpec {
  let best = refs[0]!;
  for (const p of refs) if (effPriority(p) <= effPriority(best)) best = p;
  return best;
}

/**
 * installedOf() once the installed reference, of priority `gone`, is removed: none left is better,
 * so the newest left with the same priority is it — found from the end, O(1) when all references
 * share a priority (thousands of CHILD_SAs on one policy went quadratic at shutdown).
 */
function installedAfter(refs: PolicySpec[], gone: number): PolicySpec {
  for (let i = refs.length - 1; i >= 0; i--) if (effPriority(refs[i]!) === gone) return refs[i]!;
  return installedOf(refs);
}

// ---- the table ---------------------------------------------------------------------------------

export class SaTable {
  readonly sas = new Map<string, SaState>();
  private readonly bySpi = new Map<number, SaState[]>();
  private readonly outByReqid = new Map<number, SaState>();
  readonly policies = new Map<string, PolicyEntry>();
  /** 'out' policies, most specific first (then by priority). */
  outPolicies: PolicyEntry[] = [];
  /** Drops that belong to no SA. */
  readonly drops: DropCounters = emptyDrops();
  private serial = 0;

  constructor(private readonly impl: EspCryptoImpl = 'auto') {}

  addSa(spec: AddSaSpec): SaState {
    const s = new SaState(spec, ++this.serial, this.impl);
    this.sas.set(s.key, s);
    this.index(s);
    return s;
  }

  private index(s: SaState): void {
    if (s.inbound) {
      const l = this.bySpi.get(s.spi);
      if (l) l.push(s);
      else this.bySpi.set(s.spi, [s]);
    } else {
      const cur = this.outByReqid.get(s.reqid);
      if (!cur || cur.serial < s.serial) this.outByReqid.set(s.reqid, s);
    }
  }

  private unindex(s: SaState): void {
    if (s.inbound) {
      const l = this.bySpi.get(s.spi);
      if (l) {
        const i = l.indexOf(s);
        if (i >= 0) l.splice(i, 1);
        if (l.length === 0) this.bySpi.delete(s.spi);
      }
    } else if (this.outByReqid.get(s.reqid) === s) {
      this.outByReqid.delete(s.reqid);
      let best: SaState | undefined;
      for (const o of this.sas.values())
        if (!o.inbound && o.reqid === s.reqid && o !== s && (!best || o.serial > best.serial)) best = o;
      if (best) this.outByReqid.set(s.reqid, best);
    }
  }

  delSa(key: string): SaState | undefined {
    const s = this.sas.get(key);
    if (!s) return undefined;
    this.sas.delete(key);
    this.unindex(s);
    return s;
  }

  /** Re-keys an SA under new addresses (updateSa). */
  moveSa(s: SaState, src: string, dst: string, encap: { sport: number; dport: number } | undefined): void {
    this.sas.delete(s.key);
    this.unindex(s);
    s.move(src, dst, encap);
    s.key = saKey(dst, s.spi);
    this.sas.set(s.key, s);
    this.index(s);
  }

  inbound(spi: number, localAddr: string): SaState | undefined {
    const l = this.bySpi.get(spi);
    if (!l) return undefined;
    if (l.length === 1) return l[0];
    for (const s of l) if (s.dst === localAddr) return s;
    return l[0];
  }

  outbound(reqid: number): SaState | undefined {
    return this.outByReqid.get(reqid);
  }

  addPolicy(p: PolicySpec): void {
    const k = policyKey(p);
    const e = this.policies.get(k);
    // a copy with every field in the object (a spread copy kept half in a property array)
    const ref: PolicySpec = {
      reqid: p.reqid,
      direction: p.direction,
      src: p.src,
      dst: p.dst,
      tunnelSrc: p.tunnelSrc,
      tunnelDst: p.tunnelDst,
      trap: p.trap,
      priority: p.priority,
    };
    if (e) {
      // installedOf() incrementally (many SAs may share one policy: O(1) per reference)
      e.refs.push(ref);
      const before = effPriority(e.installed);
      if (effPriority(ref) <= before) e.installed = ref;
      if (effPriority(e.installed) !== before) this.reorder();
    } else {
      this.policies.set(k, { refs: [ref], installed: ref, src: compileTs(p.src), dst: compileTs(p.dst) });
      this.reorder();
    }
  }

  /** Removes one reference; false when there is none of this user. */
  delPolicy(p: PolicySpec): 'ok' | 'no-policy' | 'not-user' {
    const k = policyKey(p);
    const e = this.policies.get(k);
    if (!e) return 'no-policy';
    let i = e.refs.length - 1;
    while (i >= 0 && !sameUse(e.refs[i]!, p)) i--;
    if (i < 0) return 'not-user';
    const [gone] = e.refs.splice(i, 1);
    if (e.refs.length === 0) {
      this.policies.delete(k);
      this.reorder();
    } else if (gone === e.installed) {
      e.installed = installedAfter(e.refs, effPriority(gone));
      if (effPriority(e.installed) !== effPriority(gone)) this.reorder();
    }
    return 'ok';
  }

  private reorder(): void {
    this.outPolicies = [...this.policies.values()]
      .filter((e) => e.installed.direction === 'out')
      .sort(
        (a, b) =>
          effPriority(a.installed) - effPriority(b.installed) ||
          a.dst.width - b.dst.width ||
          a.src.width - b.src.width,
      );
  }

  /** The out policy for a packet, or undefined. */
  matchOut(f: PacketFields): PolicyEntry | undefined {
    const list = this.outPolicies;
    for (let i = 0; i < list.length; i++) {
      const e = list[i]!;
      if (tsMatches(e.dst, f, false) && tsMatches(e.src, f, true)) return e;
    }
    return undefined;
  }

  flush(): void {
    this.sas.clear();
    this.bySpi.clear();
    this.outByReqid.clear();
    this.policies.clear();
    this.outPolicies = [];
  }
}
