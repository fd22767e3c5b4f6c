// The userspace ESP data path's packet processing, free of I/O: the TUN device, the UDP transport
// (ESP-in-UDP, RFC 3948) and the raw ESP socket are ports handed in by the installer, so unit
// tests drive it with plain arrays.
//
//   outbound(ip packet from TUN) -> out policy -> SA by reqid -> seal -> ESP-in-UDP / raw ESP
//                                             \-> no SA yet: acquire{reqid} + queue (bounded)
//   inbound(ESP from UDP 4500 / raw) -> SA by SPI -> replay check -> ICV+decrypt -> window update
//        -> trailer (padding 1,2,3..., next header) -> inner header -> SA selectors -> TUN
//
// Every failure is a counted drop (per SA where the SA is known, else global), never an
// exception; the first drop of each kind per SA (and each global kind) is logged once with its
// cause. Lifetimes (soft/hard bytes/packets) and the 2^32 sequence number limit without ESN raise
// `expire` events, as the kernel's XFRM does.
import type { Clock } from '../../common/clock.js';
import type { Endpoint, KernelEvent } from '../../ike/ports.js';
import {
  checkTrailer,
  ESP_HEADER_LEN,
  type EspCryptoImpl,
  espSeq,
  espSpi,
  NH_IPV4,
  NH_IPV6,
  TRAILER_BAD_NEXT_HEADER,
  TRAILER_DUMMY,
} from './esp-packet.js';
import {
  type DropCounters,
  type DropReason,
  PacketFields,
  type PolicyEntry,
  parseInner,
  type SaState,
  SaTable,
  SEQ_SOFT_MARGIN,
} from './sa-table.js';

/** Writes one IP packet to the TUN device; returns bytes written or -errno. */
export interface TunWriter {
  write(buf: Uint8Array, off: number, len: number): number;
}

/** ESP-in-UDP from the NAT-T socket (UdpTransport.sendEsp). */
export interface EspSender {
  sendEsp(local: Endpoint, remote: Endpoint, bytes: Uint8Array): void;
}

/**
 * ESP-in-UDP in batches from the NAT-T socket (native sendmmsg): datagram i is
 * buf[offs[i] .. offs[i] + lens[i]) to the IPv4 address addrs[i] (host order) and port ports[i].
 * Returns how many the kernel took, or -errno.
 */
export interface EspBatchSender {
  sendBatch(
    buf: Uint8Array,
    offs: Int32Array,
    lens: Int32Array,
    addrs: Uint32Array,
    ports: Int32Array,
    count: number,
  ): number;
}

/** Plain ESP (IP protocol 50) to an address; returns bytes sent or -errno. */
export interface RawEspSender {
  send(dst: string, bytes: Uint8Array): number;
}

/** The subset of a pino logger the data path uses. */
export interface DatapathLog {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export const silentLog: DatapathLog = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
};

/** Tuning constants (not from any RFC). */
export const DATAPATH_DEFAULTS = {
  /** Packets kept per reqid while the tunnel is negotiated (XFRM keeps none; libipsec a few). */
  queuePerReqid: 16,
  /** Queued packets older than this are dropped. */
  queueTimeoutMs: 5000,
  /** A still-missing SA raises another acquire after this long. */
  reacquireMs: 3000,
} as const;

export interface DatapathOptions {
  /** Cipher implementation (default: native AEAD when the addon is built). */
  impl?: EspCryptoImpl;
  clock: Clock;
  emit: (ev: KernelEvent) => void;
  log?: DatapathLog;
  queuePerReqid?: number;
  queueTimeoutMs?: number;
  reacquireMs?: number;
}

interface Pending {
  packets: Uint8Array[];
  /** Arrival time of each queued packet. */
  at: number[];
  lastAcquire: number;
}

const DROP_TEXT: Record<DropReason, string> = {
  malformed: 'malformed packet',
  'unknown-spi': 'ESP with an unknown SPI',
  replay: 'replayed or too old sequence number',
  auth: 'ICV verification failed',
  'bad-padding': 'bad ESP padding (RFC 4303 §2.4)',
  'bad-next-header': 'Next Header is neither IPv4 nor IPv6 (tunnel mode)',
  selector: "inner packet outside the SA's traffic selectors",
  'no-policy': 'packet matches no outbound policy',
  'no-sa': 'no SA came up in time for queued packets',
  'queue-full': 'acquire queue full',
  expired: 'SA hard lifetime reached',
  'seq-exhausted': 'sequence number space exhausted (rekey needed)',
  send: 'cannot send ESP',
  'tun-write': 'writing to the TUN device failed',
  dummy: 'dummy packet (Next Header 59)',
};

function ipv4Text(v: number): string {
  return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}

function ipv6Text(b: Uint8Array, at: number): string {
  const g: string[] = [];
  for (let i = 0; i < 16; i += 2) g.push(((b[at + i]! << 8) | b[at + i + 1]!).toString(16));
  return g.join(':').replace(/(^|:)0(:0)+(:|$)/, '::');
}

/** Outbound batch limits (sendmmsg); tuning, not protocol. */
const BATCH_MAX = 128;
const BATCH_BYTES = 512 * 1024;

export class EspDatapath {
  readonly table: SaTable;
  tun: TunWriter | undefined;
  esp: EspSender | undefined;
  raw: RawEspSender | undefined;
  /** When set, ESP-in-UDP to IPv4 peers is sealed into one buffer and sent per batch. */
  batch: EspBatchSender | undefined;
  private readonly bBuf = new Uint8Array(BATCH_BYTES);
  private readonly bOffs = new Int32Array(BATCH_MAX);
  private readonly bLens = new Int32Array(BATCH_MAX);
  private readonly bAddrs = new Uint32Array(BATCH_MAX);
  private readonly bPorts = new Int32Array(BATCH_MAX);
  private readonly bSa: Array<SaState | undefined> = new Array<SaState | undefined>(BATCH_MAX);
  private bCount = 0;
  private bUsed = 0;
  private readonly flushCb = (): void => this.flushOut();
  private readonly clock: Clock;
  private readonly emit: (ev: KernelEvent) => void;
  private readonly log: DatapathLog;
  private readonly fo = new PacketFields();
  private readonly fi = new PacketFields();
  private readonly pending = new Map<number, Pending>();
  /** Drop reasons already logged for drops that belong to no SA (the SA's own are on its SaState). */
  private readonly logged = new Set<string>();
  private readonly queueMax: number;
  private readonly queueTimeoutMs: number;
  private readonly reacquireMs: number;
  /** Totals over all SAs (for the benchmark and status). */
  readonly totals = { inPackets: 0, outPackets: 0, inBytes: 0, outBytes: 0 };

  constructor(o: DatapathOptions) {
    this.table = new SaTable(o.impl ?? 'auto');
    this.clock = o.clock;
    this.emit = o.emit;
    this.log = o.log ?? silentLog;
    this.queueMax = o.queuePerReqid ?? DATAPATH_DEFAULTS.queuePerReqid;
    this.queueTimeoutMs = o.queueTimeoutMs ?? DATAPATH_DEFAULTS.queueTimeoutMs;
    this.reacquireMs = o.reacquireMs ?? DATAPATH_DEFAULTS.reacquireMs;
  }

  // ---- drops --------------------------------------------------------------------------------

  private drop(reason: DropReason, sa: SaState | undefined, detail?: () => object): void {
    const counters: DropCounters = sa ? sa.drops : this.table.drops;
    counters[reason]++;
    const logged = sa ? sa.logged : this.logged;
    if (logged.has(reason)) return;
    logged.add(reason);
    const fields = {
      reason,
      ...(sa
        ? { sa: sa.name, spi: sa.spi.toString(16).padStart(8, '0'), dir: sa.inbound ? 'in' : 'out' }
        : {}),
      ...(detail ? detail() : {}),
    };
    const msg = `${DROP_TEXT[reason]}: dropped${sa ? ` on ${sa.name} SPI ${fields.spi}` : ''} (counted; logged once)`;
    if (reason === 'no-policy' || reason === 'dummy') this.log.debug(fields, msg);
    else this.log.warn(fields, msg);
  }

  /** Drop counters that belong to no SA. */
  get globalDrops(): DropCounters {
    return this.table.drops;
  }

  // ---- outbound -------------------------------------------------------------------------------

  /** One IP packet read from the TUN device: buf[off..off+len) is only valid during the call. */
  outbound(buf: Uint8Array, off: number, len: number): void {
    const f = this.fo;
    if (!parseInner(buf, off, len, f)) {
      this.drop('malformed', undefined, () => ({ where: 'tun', len }));
      return;
    }
    const pol = this.table.matchOut(f);
    if (!pol) {
      this.drop('no-policy', undefined, () => ({ dst: this.dstText(f) }));
      return;
    }
    const sa = this.table.outbound(pol.installed.reqid);
    if (!sa || sa.hardFired) {
      this.enqueue(pol, buf, off, f.length);
      return;
    }
    this.seal(sa, buf, off, f.length, f.family === 4 ? NH_IPV4 : NH_IPV6);
  }

  private dstText(f: PacketFields): string {
    return f.family === 4 ? ipv4Text(f.v4Dst) : ipv6Text(f.buf, f.v6At + 16);
  }

  private srcText(f: PacketFields): string {
    return f.family === 4 ? ipv4Text(f.v4Src) : ipv6Text(f.buf, f.v6At);
  }

  private seal(sa: SaState, buf: Uint8Array, off: number, len: number, nh: number): void {
    if (sa.seqLo === 0 && sa.seqHi === 0) {
      // wrapped past 2^32 - 1 without ESN (or 2^64 with): the SA must not be used any more
      this.drop('seq-exhausted', sa);
      return;
    }
    const c = sa.crypto;
    const plen = c.packetLength(len);
    const batched = sa.encap !== undefined && this.batch !== undefined && sa.remoteV4 >= 0;
    let pkt: Uint8Array | undefined;
    if (batched) {
      if (this.bCount === BATCH_MAX || this.bUsed + plen > BATCH_BYTES) this.flushOut();
      const i = this.bCount;
      const at = this.bUsed;
      c.sealInto(this.bBuf, at, sa.spi, sa.seqLo, sa.seqHi, buf, off, len, nh);
      this.bOffs[i] = at;
      this.bLens[i] = plen;
      this.bAddrs[i] = sa.remoteV4;
      this.bPorts[i] = sa.remote.port;
      this.bSa[i] = sa;
      this.bUsed = (at + plen + 7) & ~7;
      this.bCount = i + 1;
      // sent when the current batch of TUN packets has been processed (microtasks run right
      // after each native callback), or earlier when the batch buffer is full
      if (i === 0) queueMicrotask(this.flushCb);
    } else {
      pkt = Buffer.allocUnsafe(plen);
      c.sealInto(pkt, 0, sa.spi, sa.seqLo, sa.seqHi, buf, off, len, nh);
    }
    // advance the sequence number (RFC 4303 §3.3.3: never cycle)
    const next = (sa.seqLo + 1) >>> 0;
    if (next === 0) {
      if (sa.esn && sa.seqHi < 0xffffffff) sa.seqHi++;
      else {
        sa.seqHi = 0;
        this.fireExpire(sa, true);
      }
    } else if (!sa.esn && next === 0x1_0000_0000 - SEQ_SOFT_MARGIN) {
      this.fireExpire(sa, false);
    }
    sa.seqLo = next;
    sa.packets++;
    sa.bytes += len;
    sa.lastUseMs = this.clock.now();
    this.totals.outPackets++;
    this.totals.outBytes += len;
    if (sa.packets >= sa.softPackets || sa.bytes >= sa.softBytes) this.lifetime(sa);
    if (!pkt) return;
    if (sa.encap) {
      const t = this.esp;
      if (!t) {
        this.drop('send', sa, () => ({ why: 'no UDP transport attached' }));
        return;
      }
      t.sendEsp(sa.local, sa.remote, pkt);
    } else {
      const r = this.raw;
      const n = r ? r.send(sa.dst, pkt) : -1;
      if (n < 0)
        this.drop('send', sa, () => ({
          why: r
            ? `raw ESP send failed (errno ${-n})`
            : 'plain ESP (no UDP encapsulation) needs the raw ESP socket',
        }));
    }
  }

  /** Sends the sealed batch (one sendmmsg). */
  flushOut(): void {
    const count = this.bCount;
    if (count === 0) return;
    this.bCount = 0;
    this.bUsed = 0;
    const b = this.batch;
    const n = b ? b.sendBatch(this.bBuf, this.bOffs, this.bLens, this.bAddrs, this.bPorts, count) : -9;
    const ok = Math.max(0, n);
    for (let i = ok; i < count; i++) {
      const sa = this.bSa[i];
      this.drop('send', sa, () => ({
        why: n < 0 ? `sendmmsg failed (errno ${-n})` : 'the kernel refused datagrams of a batch',
      }));
    }
    this.bSa.fill(undefined, 0, count);
  }

  private lifetime(sa: SaState): void {
    if (!sa.hardFired && (sa.packets >= sa.hardPackets || sa.bytes >= sa.hardBytes))
      this.fireExpire(sa, true);
    else if (!sa.softFired) this.fireExpire(sa, false);
  }

  private fireExpire(sa: SaState, hard: boolean): void {
    if (hard) {
      if (sa.hardFired) return;
      sa.hardFired = true;
      sa.softFired = true;
    } else {
      if (sa.softFired) return;
      sa.softFired = true;
    }
    this.log.info(
      { sa: sa.name, spi: sa.spi.toString(16).padStart(8, '0'), hard, packets: sa.packets, bytes: sa.bytes },
      `${hard ? 'hard' : 'soft'} expire of ${sa.inbound ? 'inbound' : 'outbound'} SA ${sa.name}`,
    );
    this.emit({ kind: 'expire', spi: sa.spi, dst: sa.dst, hard });
  }

  private enqueue(pol: PolicyEntry, buf: Uint8Array, off: number, len: number): void {
    const reqid = pol.installed.reqid;
    const now = this.clock.now();
    let q = this.pending.get(reqid);
    if (!q) {
      q = { packets: [], at: [], lastAcquire: Number.NEGATIVE_INFINITY };
      this.pending.set(reqid, q);
    }
    this.expireQueue(reqid, q, now);
    if (now - q.lastAcquire >= this.reacquireMs) {
      q.lastAcquire = now;
      const f = this.fo;
      const ev: KernelEvent = { kind: 'acquire', reqid, src: this.srcText(f), dst: this.dstText(f) };
      this.log.debug({ reqid, src: ev.src, dst: ev.dst }, `acquire for reqid ${reqid}: no SA yet`);
      this.emit(ev);
    }
    if (q.packets.length >= this.queueMax) {
      this.drop('queue-full', undefined, () => ({ reqid }));
      return;
    }
    const copy = new Uint8Array(len); // the read buffer is reused by the next batch
    copy.set(buf.subarray(off, off + len));
    q.packets.push(copy);
    q.at.push(now);
  }

  private expireQueue(reqid: number, q: Pending, now: number): void {
    let n = 0;
    while (n < q.at.length && now - q.at[n]! > this.queueTimeoutMs) n++;
    if (n === 0) return;
    q.packets.splice(0, n);
    q.at.splice(0, n);
    for (let i = 0; i < n; i++) this.drop('no-sa', undefined, () => ({ reqid }));
  }

  /** Periodic housekeeping (queue timeouts); call every few hundred ms. */
  tick(): void {
    const now = this.clock.now();
    for (const [reqid, q] of this.pending) {
      this.expireQueue(reqid, q, now);
      if (q.packets.length === 0 && now - q.lastAcquire >= this.reacquireMs) this.pending.delete(reqid);
    }
  }

  /** Packets waiting for an SA, per reqid (tests, status). */
  queued(reqid: number): number {
    return this.pending.get(reqid)?.packets.length ?? 0;
  }

  /** An outbound SA was installed: send what waited for its reqid. */
  flushPending(reqid: number): void {
    const q = this.pending.get(reqid);
    if (!q) return;
    this.pending.delete(reqid);
    const sa = this.table.outbound(reqid);
    if (!sa) return;
    const now = this.clock.now();
    for (let i = 0; i < q.packets.length; i++) {
      const p = q.packets[i]!;
      if (now - q.at[i]! > this.queueTimeoutMs) {
        this.drop('no-sa', undefined, () => ({ reqid }));
        continue;
      }
      const f = this.fo;
      if (!parseInner(p, 0, p.length, f)) continue;
      this.seal(sa, p, 0, p.length, f.family === 4 ? NH_IPV4 : NH_IPV6);
    }
  }

  clearPending(): void {
    this.pending.clear();
  }

  // ---- inbound --------------------------------------------------------------------------------

  /** One ESP packet (SPI first; UDP payload of port 4500 or the payload after the IP header). */
  inbound(local: Endpoint, remote: Endpoint, pkt: Uint8Array): void {
    if (pkt.length < 8) {
      this.drop('malformed', undefined, () => ({ where: 'esp', len: pkt.length, from: remote.address }));
      return;
    }
    const spi = espSpi(pkt);
    const sa = this.table.inbound(spi, local.address);
    if (!sa) {
      this.drop('unknown-spi', undefined, () => ({
        spi: spi.toString(16).padStart(8, '0'),
        from: remote.address,
      }));
      return;
    }
    if (pkt.length < sa.crypto.minLength) {
      this.drop('malformed', sa, () => ({ len: pkt.length }));
      return;
    }
    if (sa.hardFired) {
      this.drop('expired', sa);
      return;
    }
    const rw = sa.replay!;
    const seq = espSeq(pkt);
    if (rw.check(seq) !== 'ok') {
      this.drop('replay', sa, () => ({ seq }));
      return;
    }
    const hi = rw.hi;
    const ptLen = sa.crypto.openInPlace(pkt, hi);
    if (ptLen < 0) {
      this.drop('auth', sa, () => ({ seq, from: `${remote.address}:${remote.port}` }));
      return;
    }
    if (!rw.update(seq, hi)) {
      this.drop('replay', sa, () => ({ seq }));
      return;
    }
    const at = ESP_HEADER_LEN + sa.crypto.ivLen;
    const n = checkTrailer(pkt, ptLen, at);
    if (n < 0) {
      this.drop(
        n === TRAILER_DUMMY ? 'dummy' : n === TRAILER_BAD_NEXT_HEADER ? 'bad-next-header' : 'bad-padding',
        sa,
      );
      return;
    }
    const f = this.fi;
    const nh = pkt[at + ptLen - 1]!;
    if (!parseInner(pkt, at, n, f) || f.family !== (nh === NH_IPV4 ? 4 : 6)) {
      this.drop('malformed', sa, () => ({ where: 'inner', nh }));
      return;
    }
    if (!sa.allows(f)) {
      this.drop('selector', sa, () => ({ src: this.srcText(f), dst: this.dstText(f), proto: f.proto }));
      return;
    }
    sa.packets++;
    sa.bytes += f.length;
    this.totals.inPackets++;
    this.totals.inBytes += f.length;
    if (sa.packets >= sa.softPackets || sa.bytes >= sa.softBytes) this.lifetime(sa);
    sa.lastUseMs = this.clock.now();
    if (sa.encap) {
      const out = this.table.outbound(sa.reqid);
      if (out?.encap && (remote.address !== out.remote.address || remote.port !== out.remote.port))
        this.mapping(sa, remote);
    }
    const t = this.tun;
    const w = t ? t.write(pkt, at, f.length) : -1;
    if (w < 0) this.drop('tun-write', sa, () => ({ errno: -w }));
  }

  /** RFC 3948 §3 / XFRM_MSG_MAPPING: authenticated ESP from a new address or port. */
  private mapping(sa: SaState, remote: Endpoint): void {
    const key = `map|${remote.address}|${remote.port}`;
    if (sa.logged.has(key)) return;
    sa.logged.add(key);
    this.emit({ kind: 'mapping', spi: sa.spi, dst: sa.dst, newRemote: { ...remote } });
  }
}
