// The TUN device of the userspace data path (strongSwan's kernel-libipsec does the same): packets
// routed to it are read in batches and handed to the ESP processing; decapsulated packets are
// written back. Routes for the remote traffic selectors point at it (rtnetlink through the
// `netlink` package).
//
// Node has no ioctl, so opening /dev/net/tun (TUNSETIFF), setting the MTU and bringing the link up
// happen in our small native addon (native/ikegw_native.c), which also reads packets with a
// uv_poll watcher on the main loop: one JS call per batch of up to `slots` packets, into one
// preallocated buffer (no allocation per packet).
import { createRtNetlink, FlagsNew } from 'netlink';
import { KernelError } from '../../common/errors.js';
import { loadNative, type NativeAddon } from '../../common/native.js';
import type { TsRange } from '../../ike/ports.js';
import { parseIpv4, parseIpv6 } from './sa-table.js';

export { loadNative, type NativeAddon, nativeAvailable } from '../../common/native.js';

function errnoOf(e: unknown): { errno: number; name: string } {
  const code = (e as { code?: unknown }).code;
  const m = /errno (\d+)/.exec(e instanceof Error ? e.message : '');
  return { errno: m ? Number(m[1]) : 5, name: typeof code === 'string' ? code : 'EIO' };
}

// ---- CIDRs for selector ranges ---------------------------------------------------------------

/** The smallest set of prefixes covering an address range (RFC 7296 TS ranges need not be CIDRs). */
export function rangeToCidrs(t: TsRange): string[] {
  if (t.family === 4) {
    let s = parseIpv4(t.startAddr);
    const e = parseIpv4(t.endAddr);
    if (s < 0 || e < 0 || s > e) return [];
    const out: string[] = [];
    while (s <= e) {
      let len = 32;
      // largest block aligned at s that fits in [s, e]
      while (len > 0) {
        const size = 2 ** (33 - len);
        if (s % size !== 0 || s + size - 1 > e) break;
        len--;
      }
      out.push(`${[s >>> 24, (s >>> 16) & 255, (s >>> 8) & 255, s & 255].join('.')}/${len}`);
      s += 2 ** (32 - len);
    }
    return out;
  }
  const sb = parseIpv6(t.startAddr);
  const eb = parseIpv6(t.endAddr);
  if (!sb || !eb) return [];
  const big = (b: Uint8Array): bigint => b.reduce((a, x) => (a << 8n) | BigInt(x), 0n);
  let s = big(sb);
  const e = big(eb);
  const out: string[] = [];
  while (s <= e) {
    let len = 128;
    while (len > 0) {
      const size = 1n << BigInt(129 - len);
      if (s % size !== 0n || s + size - 1n > e) break;
      len--;
    }
    const groups: string[] = [];
    for (let i = 7; i >= 0; i--) groups.push(((s >> BigInt(16 * i)) & 0xffffn).toString(16));
    out.push(`${groups.join(':')}/${len}`);
    s += 1n << BigInt(128 - len);
  }
  return out;
}

// ---- the device ----------------------------------------------------------------------------------

export interface TunOptions {
  /** Interface name (default ikegw0). */
  name?: string;
  /**
   * MTU of the device (default 1400, as kernel-libipsec): inner packets must still fit the path
   * after ESP-in-UDP (IPv4 20 + UDP 8 + ESP 8 + IV 8-16 + trailer 2-17 + ICV 12-32 bytes).
   */
  mtu?: number;
  /** Packets per read batch (default 64). */
  batch?: number;
  /**
   * Transmit queue of the device (default 1000, as Ethernet; the TUN default of 500 overflows in
   * bursts while a batch is being encrypted).
   */
  txqlen?: number;
}

export type PacketHandler = (buf: Uint8Array, off: number, len: number) => void;

/** What the installer needs from the device (TunDevice, or a fake in tests). */
export interface TunPort {
  readonly name: string;
  write(buf: Uint8Array, off: number, len: number): number;
  /** Starts delivering read packets; a read error (negative errno) goes to onError. */
  start(onPacket: PacketHandler, onBatchEnd: () => void, onError: (errno: number) => void): void;
  addRoute(cidr: string): Promise<void>;
  delRoute(cidr: string): Promise<void>;
  close(): void;
}

const RTPROT_STATIC = 4;
const RT_SCOPE_LINK = 253;
const RT_TABLE_MAIN = 254;
const RTN_UNICAST = 1;

export class TunDevice implements TunPort {
  readonly name: string;
  readonly ifindex: number;
  readonly mtu: number;
  private readonly n: NativeAddon;
  private fd: number;
  private reader: object | undefined;
  private readonly slot: number;
  private readonly slots: number;
  private readonly buffer: ArrayBuffer;
  private readonly view: Uint8Array;
  private readonly lens: Int32Array;
  private rt: ReturnType<typeof createRtNetlink> | undefined;

  private constructor(
    n: NativeAddon,
    info: { fd: number; name: string; ifindex: number },
    mtu: number,
    batch: number,
  ) {
    this.n = n;
    this.fd = info.fd;
    this.name = info.name;
    this.ifindex = info.ifindex;
    this.mtu = mtu;
    this.slot = Math.ceil((Math.max(mtu, 1280) + 64) / 64) * 64;
    this.slots = batch;
    this.buffer = new ArrayBuffer(this.slot * this.slots);
    this.view = new Uint8Array(this.buffer);
    this.lens = new Int32Array(this.slots);
  }

  /** Creates (or attaches to) the TUN device, sets its MTU and brings it up. Needs CAP_NET_ADMIN. */
  static open(o: TunOptions = {}): TunDevice {
    const n = loadNative();
    const mtu = o.mtu ?? 1400;
    try {
      const info = n.tunOpen(o.name ?? 'ikegw0', mtu, o.txqlen ?? 1000);
      return new TunDevice(n, info, mtu, o.batch ?? 64);
    } catch (e) {
      const { errno, name } = errnoOf(e);
      throw new KernelError(
        'tunOpen',
        errno,
        name,
        `cannot open TUN device ${o.name ?? 'ikegw0'}: ${e instanceof Error ? e.message : String(e)}`,
      );
    }
  }

  start(onPacket: PacketHandler, onBatchEnd: () => void, onError: (errno: number) => void): void {
    if (this.reader || this.fd < 0) return;
    const view = this.view;
    const lens = this.lens;
    const slot = this.slot;
    this.reader = this.n.readerStart(this.fd, this.buffer, slot, this.slots, lens, (count, negErrno) => {
      for (let i = 0; i < count; i++) onPacket(view, i * slot, lens[i]!);
      if (count > 0) onBatchEnd();
      if (negErrno < 0) onError(-negErrno);
    });
  }

  write(buf: Uint8Array, off: number, len: number): number {
    if (this.fd < 0) return -9; // EBADF
    return this.n.write(this.fd, buf, off, len);
  }

  private netlink(): ReturnType<typeof createRtNetlink> {
    if (!this.rt) {
      this.rt = createRtNetlink();
      this.rt.socket.unref();
    }
    return this.rt;
  }

  private routeMsg(cidr: string): {
    data: Parameters<ReturnType<typeof createRtNetlink>['newRoute']>[0];
    dst: Buffer;
  } {
    const [addr = '', lenText = ''] = cidr.split('/');
    const v4 = parseIpv4(addr);
    const dst =
      v4 >= 0
        ? Buffer.from([v4 >>> 24, (v4 >>> 16) & 255, (v4 >>> 8) & 255, v4 & 255])
        : Buffer.from(parseIpv6(addr) ?? []);
    return {
      data: {
        family: v4 >= 0 ? 2 : 10,
        dstLen: Number(lenText),
        table: RT_TABLE_MAIN,
        protocol: RTPROT_STATIC,
        scope: RT_SCOPE_LINK,
        type: RTN_UNICAST,
      },
      dst,
    };
  }

  async addRoute(cidr: string): Promise<void> {
    const { data, dst } = this.routeMsg(cidr);
    try {
      await this.netlink().newRoute(
        data,
        { dst, oif: this.ifindex, table: RT_TABLE_MAIN },
        {
          flags: FlagsNew.CREATE | FlagsNew.REPLACE,
        },
      );
    } catch (e) {
      const m = /([A-Z][A-Z0-9]+)\s*$/.exec(e instanceof Error ? e.message : '');
      throw new KernelError(
        'addRoute',
        0,
        m?.[1] ?? 'EIO',
        `route ${cidr} dev ${this.name}: ${e instanceof Error ? e.message : String(e)}`,
      );
    }
  }

  async delRoute(cidr: string): Promise<void> {
    const { data, dst } = this.routeMsg(cidr);
    try {
      await this.netlink().delRoute(
        { ...data, scope: 255 },
        { dst, oif: this.ifindex, table: RT_TABLE_MAIN },
      );
    } catch {
      // gone already (the device went down, or someone removed it): nothing to undo
    }
  }

  /** Stops reading and closes the device (the kernel removes it and its routes). */
  close(): void {
    if (this.reader) this.n.readerStop(this.reader);
    this.reader = undefined;
    if (this.fd >= 0) {
      try {
        this.n.close(this.fd);
      } catch {
        // already closed
      }
    }
    this.fd = -1;
    try {
      this.rt?.socket.close();
    } catch {
      // closed
    }
    this.rt = undefined;
  }
}

/** Plain ESP (IP protocol 50) over an IPv4 raw socket; reads carry the IPv4 header. */
export class RawEspSocket {
  private fd: number;
  private reader: object | undefined;
  private readonly buffer = new ArrayBuffer(2048 * 32);
  private readonly view = new Uint8Array(this.buffer);
  private readonly lens = new Int32Array(32);

  private constructor(
    private readonly n: NativeAddon,
    fd: number,
  ) {
    this.fd = fd;
  }

  static open(): RawEspSocket {
    const n = loadNative();
    try {
      return new RawEspSocket(n, n.rawEspOpen4());
    } catch (e) {
      const { errno, name } = errnoOf(e);
      throw new KernelError(
        'rawEspOpen4',
        errno,
        name,
        `cannot open a raw ESP socket: ${e instanceof Error ? e.message : String(e)}`,
      );
    }
  }

  /** Delivers (src, dst, esp) per received packet; the IPv4 header is parsed off here. */
  start(onEsp: (src: string, dst: string, esp: Uint8Array) => void): void {
    if (this.reader || this.fd < 0) return;
    const v = this.view;
    this.reader = this.n.readerStart(this.fd, this.buffer, 2048, 32, this.lens, (count) => {
      for (let i = 0; i < count; i++) {
        const off = i * 2048;
        const len = this.lens[i]!;
        if (len < 20 || v[off]! >> 4 !== 4) continue;
        const ihl = (v[off]! & 15) * 4;
        if (len < ihl + 8) continue;
        const src = `${v[off + 12]}.${v[off + 13]}.${v[off + 14]}.${v[off + 15]}`;
        const dst = `${v[off + 16]}.${v[off + 17]}.${v[off + 18]}.${v[off + 19]}`;
        // a view: the ESP processing keeps nothing of it beyond the call
        onEsp(src, dst, v.subarray(off + ihl, off + len));
      }
    });
  }

  send(dst: string, bytes: Uint8Array): number {
    if (this.fd < 0) return -9;
    return this.n.sendTo4(this.fd, bytes, 0, bytes.length, dst);
  }

  close(): void {
    if (this.reader) this.n.readerStop(this.reader);
    this.reader = undefined;
    if (this.fd >= 0) this.n.close(this.fd);
    this.fd = -1;
  }
}
