// SaInstaller for the userspace ESP data path (the counterpart of strongSwan's kernel-libipsec):
// SAs and policies live in our own SAD/SPD (sa-table.ts), packets come from and go to a TUN
// device (tun.ts), ESP travels in UDP through the daemon's NAT-T socket (RFC 3948) or, for SAs
// without UDP encapsulation, through an IPv4 raw socket for protocol 50.
//
// Kernel semantics are kept where the core can see them (same errors as MemoryInstaller and the
// XFRM installer: EEXIST, ENOENT, EINVAL as KernelError; policies reference-counted), and the
// data-path events reach the core through setListener: `acquire {reqid}` when a packet hits a
// policy without SA (the userspace trap), `expire` on lifetimes and sequence number exhaustion,
// `mapping` when authenticated ESP arrives from a new NAT mapping.
//
// Routes: every 'out' policy's destination selector is routed into the TUN device (reference
// counted per prefix), except prefixes that contain the tunnel's own peer address (they would
// swallow the ESP/IKE packets themselves).
import { type Clock, monotonicClock } from '../../common/clock.js';
import { KernelError } from '../../common/errors.js';
import { tryNative } from '../../common/native.js';
import type {
  AddSaSpec,
  Endpoint,
  KernelEvent,
  PolicySpec,
  SaCounters,
  SaId,
  SaInstaller,
} from '../../ike/ports.js';
import { type DatapathLog, EspDatapath, type EspSender, silentLog } from './datapath.js';
import { checkEspKeys, type EspCryptoImpl } from './esp-packet.js';
import { type DropCounters, parseIpv4, parseIpv6, saKey } from './sa-table.js';
import { RawEspSocket, rangeToCidrs, TunDevice, type TunOptions, type TunPort } from './tun.js';

const Errno = { ENOENT: 2, EEXIST: 17, EINVAL: 22 } as const;
type ErrnoName = keyof typeof Errno;

function kerr(op: string, name: ErrnoName, detail: string): KernelError {
  return new KernelError(op, Errno[name], name, `${op} failed: ${name} (${Errno[name]}): ${detail}`);
}

function family(addr: string): 4 | 6 | undefined {
  if (parseIpv4(addr) >= 0) return 4;
  if (addr.includes(':') && parseIpv6(addr)) return 6;
  return undefined;
}

function invalidSpec(s: AddSaSpec): string | undefined {
  if (!Number.isInteger(s.spi) || s.spi <= 0 || s.spi > 0xffffffff) return `SPI ${s.spi} out of range`;
  const fs = family(s.src);
  if (!fs || fs !== family(s.dst)) return `addresses ${s.src} -> ${s.dst} are not one IP family`;
  if (s.replayWindow < 0) return 'negative replay window';
  if (s.mode !== 'tunnel') return `mode ${String(s.mode)} (only tunnel mode)`;
  return checkEspKeys(s.alg, s.encKey, s.integKey);
}

/** Something that can send plain ESP and deliver received plain ESP (RawEspSocket, or a fake). */
export interface RawEspPort {
  send(dst: string, bytes: Uint8Array): number;
  start(onEsp: (src: string, dst: string, esp: Uint8Array) => void): void;
  close(): void;
}

/** The parts of the transport's bound NAT-T dgram.Socket the data path uses. */
export interface NatSocket {
  getRecvBufferSize(): number;
  setRecvBufferSize(size: number): void;
}

/** Receive buffer asked for on the NAT-T socket (tuning). */
export const NAT_T_RCVBUF = 4 * 1024 * 1024;

export interface UserspaceInstallerOptions {
  /** The TUN device (opened by the caller), or how to open one lazily on first use. */
  tun?: TunPort | (() => TunPort);
  /** Plain ESP: a raw socket port, a factory, or false to refuse SAs without UDP encapsulation. */
  rawEsp?: RawEspPort | (() => RawEspPort) | false;
  clock?: Clock;
  log?: DatapathLog;
  /** AEAD implementation: native (addon) when built, or node:crypto. */
  impl?: EspCryptoImpl;
  /** Send ESP-in-UDP in sendmmsg batches on the transport's NAT-T socket (default true). */
  batchSend?: boolean;
  /** Housekeeping period (queue timeouts), ms; 0 = no timer (tests call tick()). */
  tickMs?: number;
  queuePerReqid?: number;
  queueTimeoutMs?: number;
}

export interface UserspaceSaStatus {
  name: string;
  spi: number;
  reqid: number;
  dir: 'in' | 'out';
  src: string;
  dst: string;
  bytes: number;
  packets: number;
  drops: Partial<DropCounters>;
}

export interface UserspaceStatus {
  sas: UserspaceSaStatus[];
  /** Drops that belong to no SA (unknown SPI, no policy, queue). */
  drops: Partial<DropCounters>;
  totals: { inPackets: number; outPackets: number; inBytes: number; outBytes: number };
  routes: string[];
  tun?: string;
  tunReadErrors: number;
}

function nonZero(d: DropCounters): Partial<DropCounters> {
  const o: Partial<DropCounters> = {};
  for (const [k, v] of Object.entries(d) as Array<[keyof DropCounters, number]>) if (v > 0) o[k] = v;
  return o;
}

export class UserspaceInstaller implements SaInstaller {
  readonly kind = 'userspace' as const;
  readonly datapath: EspDatapath;
  private listener: ((ev: KernelEvent) => void) | undefined;
  private tunPort: TunPort | undefined;
  private readonly tunFactory: (() => TunPort) | undefined;
  private raw: RawEspPort | undefined;
  private readonly rawFactory: (() => RawEspPort) | false;
  private rawFailed = false;
  private readonly log: DatapathLog;
  private readonly routes = new Map<string, number>();
  private timer: ReturnType<typeof setInterval> | undefined;
  private closed = false;
  private readonly batchSend: boolean;
  /** TUN read errors (each errno is logged once). */
  tunReadErrors = 0;
  private readonly tunErrnos = new Set<number>();

  constructor(o: UserspaceInstallerOptions = {}) {
    this.log = o.log ?? silentLog;
    this.batchSend = o.batchSend ?? true;
    this.datapath = new EspDatapath({
      ...(o.impl ? { impl: o.impl } : {}),
      clock: o.clock ?? monotonicClock,
      emit: (ev) => this.raise(ev),
      log: this.log,
      ...(o.queuePerReqid !== undefined ? { queuePerReqid: o.queuePerReqid } : {}),
      ...(o.queueTimeoutMs !== undefined ? { queueTimeoutMs: o.queueTimeoutMs } : {}),
    });
    if (typeof o.tun === 'function') this.tunFactory = o.tun;
    else if (o.tun) this.attachTun(o.tun);
    if (o.rawEsp === false) this.rawFactory = false;
    else if (typeof o.rawEsp === 'function') this.rawFactory = o.rawEsp;
    else if (o.rawEsp) {
      this.rawFactory = false;
      this.attachRaw(o.rawEsp);
    } else this.rawFactory = () => RawEspSocket.open();
    const tick = o.tickMs ?? 500;
    if (tick > 0) {
      this.timer = setInterval(() => this.datapath.tick(), tick);
      this.timer.unref();
    }
  }

  /** Opens the TUN device now (fail fast at daemon start) and returns the installer. */
  static open(tun: TunOptions = {}, o: Omit<UserspaceInstallerOptions, 'tun'> = {}): UserspaceInstaller {
    return new UserspaceInstaller({ ...o, tun: TunDevice.open(tun) });
  }

  /** kernel_listener_t: acquire / expire / mapping. */
  setListener(fn: ((ev: KernelEvent) => void) | undefined): void {
    this.listener = fn;
  }

  private raise(ev: KernelEvent): void {
    try {
      this.listener?.(ev);
    } catch (e) {
      this.log.error(
        { event: ev.kind },
        `kernel event listener failed: ${e instanceof Error ? e.message : String(e)}`,
      );
    }
  }

  /**
   * The UDP transport that sends ESP-in-UDP (UdpTransport). With the native addon, ESP to IPv4
   * peers goes out in sendmmsg batches on the transport's own NAT-T socket (same socket, same
   * source port 4500, so NAT mappings are shared with IKE); otherwise one send per packet.
   */
  attachTransport(
    t: EspSender & { readonly natSocket?: NatSocket | undefined; readonly natFd?: number | undefined },
  ): void {
    this.datapath.esp = t;
    this.datapath.batch = undefined;
    const sock = t.natSocket;
    // All ESP of all tunnels arrives on this one socket: give bursts room (the default ~208 KB
    // holds only ~100 small packets; the kernel caps the request at net.core.rmem_max).
    try {
      if (sock && sock.getRecvBufferSize() < NAT_T_RCVBUF) sock.setRecvBufferSize(NAT_T_RCVBUF);
    } catch (e) {
      this.log.debug(
        {},
        `NAT-T socket receive buffer unchanged: ${e instanceof Error ? e.message : String(e)}`,
      );
    }
    // the descriptor the transport opened the NAT-T socket with (native addon; dgram adopted it)
    const fd = t.natFd;
    const n = this.batchSend ? tryNative() : undefined;
    if (!n || fd === undefined || !sock) return;
    this.datapath.batch = {
      sendBatch: (buf, offs, lens, addrs, ports, count) =>
        // the socket may have been closed (shutdown): never write to a reused descriptor
        t.natSocket === sock && t.natFd === fd
          ? n.udpSendBatch(fd, buf, offs, lens, addrs, ports, count)
          : -9,
    };
  }

  /** ESP-in-UDP received on the NAT-T port (UdpTransport's onEsp). */
  receiveEsp(local: Endpoint, remote: Endpoint, bytes: Uint8Array): void {
    this.datapath.inbound(local, remote, bytes);
  }

  private attachTun(t: TunPort): void {
    this.tunPort = t;
    this.datapath.tun = t;
    t.start(
      (buf, off, len) => this.datapath.outbound(buf, off, len),
      () => {},
      (errno) => {
        this.tunReadErrors++;
        if (this.tunErrnos.has(errno)) return; // logged once per cause, counted always
        this.tunErrnos.add(errno);
        this.log.error(
          { errno, tun: t.name },
          `reading from TUN device ${t.name} failed (errno ${errno}); counted, logged once`,
        );
      },
    );
  }

  private tun(): TunPort | undefined {
    if (!this.tunPort && this.tunFactory && !this.closed) this.attachTun(this.tunFactory());
    return this.tunPort;
  }

  private attachRaw(r: RawEspPort): void {
    this.raw = r;
    this.datapath.raw = r;
    r.start((src, dst, esp) =>
      this.datapath.inbound({ address: dst, port: 0 }, { address: src, port: 0 }, esp),
    );
  }

  private ensureRaw(spec: AddSaSpec): void {
    if (spec.encap || this.raw || this.rawFailed || this.rawFactory === false) return;
    if (family(spec.dst) !== 4) {
      this.log.warn(
        { sa: spec.name },
        `${spec.name}: plain ESP over IPv6 is not supported by the userspace data path (use UDP encapsulation)`,
      );
      return;
    }
    try {
      this.attachRaw(this.rawFactory());
    } catch (e) {
      this.rawFailed = true;
      this.log.warn(
        { sa: spec.name },
        `${spec.name}: SA without UDP encapsulation, but no raw ESP socket: ${e instanceof Error ? e.message : String(e)}; its packets are dropped`,
      );
    }
  }

  // ---- SaInstaller ------------------------------------------------------------------------------

  async addSa(spec: AddSaSpec): Promise<void> {
    const bad = invalidSpec(spec);
    if (bad) throw kerr('addSa', 'EINVAL', bad);
    const k = saKey(spec.dst, spec.spi);
    if (this.datapath.table.sas.has(k)) throw kerr('addSa', 'EEXIST', `SA ${k} exists`);
    this.tun();
    this.ensureRaw(spec);
    this.datapath.table.addSa(spec);
    if (!spec.inbound) this.datapath.flushPending(spec.reqid);
  }

  async updateSa(
    id: SaId,
    newSrc: string,
    newDst: string,
    encap?: { sport: number; dport: number },
  ): Promise<void> {
    const t = this.datapath.table;
    const s = t.sas.get(saKey(id.dst, id.spi));
    if (!s) throw kerr('updateSa', 'ENOENT', `no SA ${saKey(id.dst, id.spi)}`);
    const nk = saKey(newDst, id.spi);
    if (nk !== s.key && t.sas.has(nk)) throw kerr('updateSa', 'EEXIST', `SA ${nk} exists`);
    const fs = family(newSrc);
    if (!fs || fs !== family(newDst)) throw kerr('updateSa', 'EINVAL', `addresses ${newSrc} -> ${newDst}`);
    t.moveSa(s, newSrc, newDst, encap);
  }

  async querySa(id: SaId): Promise<SaCounters> {
    const s = this.datapath.table.sas.get(saKey(id.dst, id.spi));
    if (!s) throw kerr('querySa', 'ENOENT', `no SA ${saKey(id.dst, id.spi)}`);
    const c: SaCounters = { bytes: BigInt(s.bytes), packets: BigInt(s.packets) };
    if (s.lastUseMs !== undefined) c.lastUseMs = s.lastUseMs;
    return c;
  }

  async delSa(id: SaId): Promise<void> {
    if (!this.datapath.table.delSa(saKey(id.dst, id.spi)))
      throw kerr('delSa', 'ENOENT', `no SA ${saKey(id.dst, id.spi)}`);
  }

  async addPolicy(p: PolicySpec): Promise<void> {
    if (p.src.family !== p.dst.family)
      throw kerr('addPolicy', 'EINVAL', 'selectors of different IP families');
    this.datapath.table.addPolicy(p);
    if (p.direction === 'out') await this.routeRefs(p, +1);
  }

  async delPolicy(p: PolicySpec): Promise<void> {
    const r = this.datapath.table.delPolicy(p);
    if (r === 'no-policy') throw kerr('delPolicy', 'ENOENT', `no ${p.direction} policy for these selectors`);
    if (r === 'not-user') throw kerr('delPolicy', 'ENOENT', `policy is not used by reqid ${p.reqid}`);
    if (p.direction === 'out') await this.routeRefs(p, -1);
  }

  async flush(): Promise<void> {
    this.datapath.table.flush();
    this.datapath.clearPending();
    const tun = this.tunPort;
    const routes = [...this.routes.keys()];
    this.routes.clear();
    if (tun) for (const r of routes) await tun.delRoute(r);
  }

  // ---- routes -----------------------------------------------------------------------------------

  private async routeRefs(p: PolicySpec, delta: 1 | -1): Promise<void> {
    const tun = this.tun();
    if (!tun) return;
    const peer = p.tunnelDst;
    for (const cidr of rangeToCidrs(p.dst)) {
      if (delta > 0 && containsAddress(cidr, peer)) {
        this.log.warn(
          { route: cidr, peer },
          `not routing ${cidr} into ${tun.name}: it contains the peer ${peer} itself (the tunnel's own packets would loop)`,
        );
        continue;
      }
      const n = (this.routes.get(cidr) ?? 0) + delta;
      if (n <= 0) {
        if (this.routes.delete(cidr)) await tun.delRoute(cidr);
        continue;
      }
      this.routes.set(cidr, n);
      if (n === 1 && delta > 0) {
        try {
          await tun.addRoute(cidr);
        } catch (e) {
          this.log.warn(
            { route: cidr },
            `route ${cidr} dev ${tun.name}: ${e instanceof Error ? e.message : String(e)}`,
          );
        }
      }
    }
  }

  // ---- status and shutdown -------------------------------------------------------------------

  status(): UserspaceStatus {
    const sas: UserspaceSaStatus[] = [...this.datapath.table.sas.values()].map((s) => ({
      name: s.name,
      spi: s.spi,
      reqid: s.reqid,
      dir: s.inbound ? 'in' : 'out',
      src: s.src,
      dst: s.dst,
      bytes: s.bytes,
      packets: s.packets,
      drops: nonZero(s.drops),
    }));
    return {
      sas,
      drops: nonZero(this.datapath.globalDrops),
      totals: { ...this.datapath.totals },
      routes: [...this.routes.keys()],
      ...(this.tunPort ? { tun: this.tunPort.name } : {}),
      tunReadErrors: this.tunReadErrors,
    };
  }

  /** Housekeeping now (tests). */
  tick(): void {
    this.datapath.tick();
  }

  /** Stops the timer and closes the TUN device and the raw socket. */
  close(): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.tunPort?.close();
    this.tunPort = undefined;
    this.datapath.tun = undefined;
    this.raw?.close();
    this.raw = undefined;
    this.datapath.raw = undefined;
  }
}

function containsAddress(cidr: string, addr: string): boolean {
  const [net = '', lenText = '0'] = cidr.split('/');
  const len = Number(lenText);
  const a4 = parseIpv4(addr);
  const n4 = parseIpv4(net);
  if (a4 >= 0 && n4 >= 0) {
    if (len === 0) return true;
    const size = 2 ** (32 - len);
    return Math.floor(a4 / size) === Math.floor(n4 / size);
  }
  const a6 = parseIpv6(addr);
  const n6 = parseIpv6(net);
  if (!a6 || !n6) return false;
  for (let bit = 0; bit < len; bit++) {
    const i = bit >> 3;
    const m = 0x80 >> (bit & 7);
    if ((a6[i]! & m) !== (n6[i]! & m)) return false;
  }
  return true;
}
