// UDP sockets for IKE (port 500) and NAT traversal (port 4500, RFC 3948), with node:dgram.
//
// Port 4500 carries three things, told apart by their first bytes (RFC 3948 §2.2, RFC 7296 §2.23):
//   00 00 00 00 ...  non-ESP marker: an IKE message follows (the marker is stripped)
//   ff               a single byte: NAT-keepalive (ignored, counted)
//   anything else    ESP in UDP, starting with the (non-zero) SPI -> onEsp (userspace data path)
// On port 500 everything is IKE. Sending from the 4500 socket prepends the marker.
//
// Limitation: Node's dgram has no IP_PKTINFO, so a socket bound to a wildcard address (0.0.0.0 or ::)
// cannot tell on which local address a datagram arrived, nor choose the source address of what it
// sends (the kernel picks it by route). When the transport is bound to a wildcard address it
// therefore reports as `local.address` the address the kernel would use as source towards the
// sender — found with LocalAddressResolver (a connected UDP socket's local address, cached) — which
// is exactly the address our replies leave from. Bind to a specific address to avoid the lookup.
// When the listen address is "::", the sockets are dual-stack (unless net.ipv6.bindv6only=1) and
// IPv4 peers appear as plain IPv4 addresses.
//
// The NAT-T socket's file descriptor is needed twice: the XFRM data path sets UDP_ENCAP on it, the
// userspace data path sends ESP-in-UDP batches on it with sendmmsg. dgram has no public way to
// read it (Socket.prototype._handle is deprecated, DEP0112, and warns on stderr), but it can adopt
// a descriptor: socket.bind({ fd }). So with the native addon, the addon opens and binds the NAT-T
// socket, dgram adopts it and handles everything else as usual, and `natFd` keeps the descriptor.
// Without the addon the socket is a plain dgram bind and `natFd` is undefined.
import dgram from 'node:dgram';
import { isIPv4 } from 'node:net';
import { type Clock, monotonicClock } from '../common/clock.js';
import { IkegwError } from '../common/errors.js';
import { type NativeAddon, tryNative } from '../common/native.js';
import type { Endpoint } from '../ike/ports.js';

/** RFC 3948 §2.2 non-ESP marker. */
export const NON_ESP_MARKER = new Uint8Array(4);
/** RFC 3948 §2.3 NAT-keepalive payload. */
export const NAT_KEEPALIVE = new Uint8Array([0xff]);

/**
 * Receive buffer asked for on both IKE sockets. The event loop reads a socket only between
 * events, and an IKE_SA_INIT or IKE_AUTH takes ~1 ms of CPU: a burst of requests (a load
 * generator's 128 in flight, a gateway restarting with many peers) overflowed the default ~208 KB
 * (~100 datagrams) and every dropped IKE_AUTH stalled its IKE_SA for a 4 s retransmission —
 * the "not CPU-bound" serialization. The kernel caps the request at net.core.rmem_max.
 */
export const IKE_RCVBUF = 2 * 1024 * 1024;

export type TransportErrorKind = 'bind' | 'send' | 'socket' | 'resolve';

/** A socket problem, with the system error code ("EACCES", "ENETUNREACH", ...) as `errno`. */
export class TransportError extends IkegwError {
  constructor(
    readonly kind: TransportErrorKind,
    readonly errno: string,
    message: string,
    readonly local?: Endpoint,
    readonly remote?: Endpoint,
  ) {
    super('ERR_TRANSPORT', message);
  }
}

const HINTS: Record<string, string> = {
  EACCES: 'ports below 1024 need root or CAP_NET_BIND_SERVICE',
  EADDRINUSE: 'another process (an IKE daemon such as charon?) already uses this port',
  EADDRNOTAVAIL: 'the address is not configured on this host',
  ENETUNREACH: 'no route to the peer',
  EHOSTUNREACH: 'no route to the peer',
  EMSGSIZE: 'datagram larger than the path MTU allows; enable IKE fragmentation',
};

function codeOf(e: unknown): string {
  const c = (e as NodeJS.ErrnoException | undefined)?.code;
  return typeof c === 'string' ? c : 'EUNKNOWN';
}

function explain(code: string, what: string): string {
  const hint = HINTS[code];
  return `${what}: ${code}${hint ? ` (${hint})` : ''}`;
}

/** Linux SOL_SOCKET / SO_REUSEADDR (asm-generic: x86, arm). */
const SOL_SOCKET = 1;
const SO_REUSEADDR = 2;

/**
 * Opens and binds a UDP socket with the native addon and has `sock` adopt it; returns its
 * descriptor. Throws (with the errno name as `code`) when the bind fails; nothing stays open then.
 */
function adoptBound(
  n: NativeAddon,
  sock: dgram.Socket,
  family: 4 | 6,
  address: string,
  port: number,
): number {
  const fd = n.udpBind(family, address, port);
  try {
    sock.bind({ fd }); // the socket is bound already: no DNS lookup, no waiting
  } catch (e) {
    n.close(fd);
    throw e;
  }
  // libuv's uv_udp_open() turns SO_REUSEADDR on for an adopted descriptor: turn it off again, so
  // that, as with a plain dgram bind, no other socket (a charon started later) can share the port
  n.setsockoptInt(fd, SOL_SOCKET, SO_REUSEADDR, 0);
  return fd;
}

export function fmtEp(e: Endpoint): string {
  return e.address.includes(':') ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`;
}

/** "::ffff:192.0.2.1" (IPv4 on a dual-stack socket) -> "192.0.2.1". */
export function normalizeAddress(a: string): string {
  const m = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(a);
  return m ? m[1]! : a;
}

function isWildcard(a: string): boolean {
  return a === '0.0.0.0' || a === '::';
}

// ---- local address lookup ----------------------------------------------------------------------

/**
 * Finds the source address the kernel would use towards a peer: connect() a throw-away UDP socket
 * to it (no packet is sent) and read the socket's local address. Results are cached for `ttlMs`
 * (routes rarely change; a stale answer only affects NAT detection until it expires).
 */
export class LocalAddressResolver {
  private readonly cache = new Map<string, { addr: string; until: number }>();
  private readonly inflight = new Map<string, Promise<string>>();

  constructor(
    private readonly ttlMs = 30_000,
    private readonly clock: Clock = monotonicClock,
  ) {}

  cached(remote: string): string | undefined {
    const c = this.cache.get(remote);
    return c && c.until > this.clock.now() ? c.addr : undefined;
  }

  resolve(remote: string, port = 500): Promise<string> {
    const c = this.cached(remote);
    if (c) return Promise.resolve(c);
    const f = this.inflight.get(remote);
    if (f) return f;
    const p = this.lookup(remote, port).finally(() => this.inflight.delete(remote));
    this.inflight.set(remote, p);
    return p;
  }

  private lookup(remote: string, port: number): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      const sock = dgram.createSocket(isIPv4(remote) ? 'udp4' : 'udp6');
      const fail = (e: unknown): void => {
        sock.close();
        reject(
          new TransportError('resolve', codeOf(e), explain(codeOf(e), `no local address towards ${remote}`)),
        );
      };
      sock.once('error', fail);
      try {
        sock.connect(port || 500, remote, () => {
          try {
            const addr = normalizeAddress(sock.address().address);
            this.cache.set(remote, { addr, until: this.clock.now() + this.ttlMs });
            sock.close();
            resolve(addr);
          } catch (e) {
            fail(e);
          }
        });
      } catch (e) {
        fail(e);
      }
    });
  }
}

// ---- the transport -------------------------------------------------------------------------------

export interface TransportStats {
  ikeIn: number;
  ikeOut: number;
  espIn: number;
  espOut: number;
  keepalivesIn: number;
  keepalivesOut: number;
  /** Datagrams dropped on receive (malformed on 4500, ESP without data path, unresolvable local address). */
  dropped: number;
  sendErrors: number;
}

export interface UdpTransportOptions {
  /** Listen address; 0.0.0.0 / :: = all (see the limitation above). */
  address: string;
  /** IKE port (500); 0 = any free port (tests). */
  port: number;
  /** NAT-T port (4500); 0 = any free port. */
  natPort: number;
  onIke: (local: Endpoint, remote: Endpoint, bytes: Uint8Array) => void;
  /** ESP-in-UDP received on the NAT-T port (userspace data path); dropped and counted if absent. */
  onEsp?: (local: Endpoint, remote: Endpoint, bytes: Uint8Array) => void;
  /** Socket and send errors; the transport never throws them at the event loop. */
  onError?: (err: TransportError) => void;
  resolver?: LocalAddressResolver;
}

export class UdpTransport {
  readonly stats: TransportStats = {
    ikeIn: 0,
    ikeOut: 0,
    espIn: 0,
    espOut: 0,
    keepalivesIn: 0,
    keepalivesOut: 0,
    dropped: 0,
    sendErrors: 0,
  };
  private ike: dgram.Socket | undefined;
  private nat: dgram.Socket | undefined;
  private natFdValue: number | undefined;
  private boundPort = 0;
  private boundNatPort = 0;
  private closed = false;
  private pendingSends = 0;
  private drainWaiters: Array<() => void> = [];
  private readonly resolver: LocalAddressResolver;
  private readonly family: 4 | 6;
  private readonly queued = new Map<string, Array<(local: string) => void>>();

  constructor(private readonly opts: UdpTransportOptions) {
    this.family = isIPv4(opts.address) ? 4 : 6;
    this.resolver = opts.resolver ?? new LocalAddressResolver();
  }

  /** Binds both sockets; rejects with a TransportError (kind 'bind') and leaves nothing open. */
  async start(): Promise<{ port: number; natPort: number }> {
    try {
      this.ike = (await this.bind(this.opts.port, false)).sock;
      const nat = await this.bind(this.opts.natPort, true);
      this.nat = nat.sock;
      this.natFdValue = nat.fd;
    } catch (e) {
      await this.close();
      throw e;
    }
    this.boundPort = this.ike.address().port;
    this.boundNatPort = this.nat.address().port;
    return { port: this.boundPort, natPort: this.boundNatPort };
  }

  get ports(): { port: number; natPort: number } {
    return { port: this.boundPort, natPort: this.boundNatPort };
  }

  /** The bound NAT-T socket. */
  get natSocket(): dgram.Socket | undefined {
    return this.nat;
  }

  /**
   * The NAT-T socket's file descriptor while it is open (the XFRM data path sets UDP_ENCAP on it,
   * the userspace one sends ESP batches on it); undefined before start, after close, and without
   * the native addon.
   */
  get natFd(): number | undefined {
    return this.nat ? this.natFdValue : undefined;
  }

  get resolverInstance(): LocalAddressResolver {
    return this.resolver;
  }

  /** Sends an IKE message from the socket bound to local.port (with the non-ESP marker on NAT-T). */
  send(local: Endpoint, remote: Endpoint, bytes: Uint8Array): void {
    const sock = this.socketFor(local, remote);
    if (!sock) return;
    this.stats.ikeOut++;
    this.transmit(sock, sock === this.nat ? [NON_ESP_MARKER, bytes] : [bytes], local, remote);
  }

  /** Sends an ESP packet in UDP from the NAT-T socket (userspace data path). */
  sendEsp(local: Endpoint, remote: Endpoint, bytes: Uint8Array): void {
    const sock = this.socketFor({ ...local, port: this.boundNatPort }, remote);
    if (!sock) return;
    this.stats.espOut++;
    this.transmit(sock, [bytes], local, remote);
  }

  /** Sends a NAT-keepalive (RFC 3948 §2.3) from the NAT-T socket. */
  sendKeepalive(local: Endpoint, remote: Endpoint): void {
    const sock = this.socketFor({ ...local, port: this.boundNatPort }, remote);
    if (!sock) return;
    this.stats.keepalivesOut++;
    this.transmit(sock, [NAT_KEEPALIVE], local, remote);
  }

  /** Resolves when every send handed to the kernel has completed, or false after timeoutMs. */
  flush(timeoutMs = 2000): Promise<boolean> {
    if (this.pendingSends === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(false), timeoutMs);
      t.unref();
      this.drainWaiters.push(() => {
        clearTimeout(t);
        resolve(true);
      });
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    this.natFdValue = undefined; // never hand out a descriptor that is being closed (and reused)
    const closeOne = (s: dgram.Socket | undefined): Promise<void> =>
      new Promise((resolve) => {
        if (!s) return resolve();
        try {
          s.close(() => resolve());
        } catch {
          resolve(); // already closed
        }
      });
    await Promise.all([closeOne(this.ike), closeOne(this.nat)]);
    this.ike = undefined;
    this.nat = undefined;
  }

  // ---- internals ---------------------------------------------------------------------------------

  private bind(port: number, isNat: boolean): Promise<{ sock: dgram.Socket; fd?: number }> {
    const type = this.family === 4 ? 'udp4' : 'udp6';
    const sock = dgram.createSocket({ type, ipv6Only: false });
    const where: Endpoint = { address: this.opts.address, port };
    const bindError = (e: unknown): TransportError => {
      const code = codeOf(e);
      return new TransportError('bind', code, explain(code, `cannot bind UDP ${fmtEp(where)}`), where);
    };
    const n = isNat ? tryNative() : undefined;
    return new Promise((resolve, reject) => {
      const onBindError = (e: unknown): void => {
        sock.close();
        reject(bindError(e));
      };
      sock.once('error', onBindError);
      const onBound = (fd?: number): void => {
        sock.off('error', onBindError);
        try {
          if (sock.getRecvBufferSize() < IKE_RCVBUF) sock.setRecvBufferSize(IKE_RCVBUF);
        } catch {
          /* unchanged: the default buffer still works, only bursts overflow it sooner */
        }
        sock.on('error', (e) => {
          const code = codeOf(e);
          this.report(new TransportError('socket', code, explain(code, `UDP socket ${fmtEp(where)}`), where));
        });
        sock.on('message', (msg, rinfo) => this.receive(isNat, msg, rinfo));
        resolve(fd === undefined ? { sock } : { sock, fd });
      };
      if (!n) {
        sock.bind({ port, address: this.opts.address, exclusive: true }, () => onBound());
        return;
      }
      let fd: number;
      try {
        fd = adoptBound(n, sock, this.family, this.opts.address, port);
      } catch (e) {
        sock.off('error', onBindError);
        sock.close();
        reject(bindError(e));
        return;
      }
      onBound(fd);
    });
  }

  private receive(isNat: boolean, msg: Buffer, rinfo: dgram.RemoteInfo): void {
    const remote: Endpoint = { address: normalizeAddress(rinfo.address), port: rinfo.port };
    const localPort = isNat ? this.boundNatPort : this.boundPort;
    if (msg.length === 0) {
      this.stats.dropped++;
      return;
    }
    if (!isNat) {
      this.stats.ikeIn++;
      this.withLocal(remote, (addr) => this.opts.onIke({ address: addr, port: localPort }, remote, msg));
      return;
    }
    if (msg.length === 1 && msg[0] === 0xff) {
      this.stats.keepalivesIn++;
      return;
    }
    if (msg.length >= 4 && msg[0] === 0 && msg[1] === 0 && msg[2] === 0 && msg[3] === 0) {
      if (msg.length === 4) {
        this.stats.dropped++; // a marker with nothing behind it
        return;
      }
      this.stats.ikeIn++;
      const ike = msg.subarray(4);
      this.withLocal(remote, (addr) => this.opts.onIke({ address: addr, port: localPort }, remote, ike));
      return;
    }
    // ESP: SPI (non-zero) + sequence number at least (RFC 4303 §2).
    if (msg.length < 8 || !this.opts.onEsp) {
      this.stats.dropped++;
      return;
    }
    this.stats.espIn++;
    const onEsp = this.opts.onEsp;
    this.withLocal(remote, (addr) => onEsp({ address: addr, port: localPort }, remote, msg));
  }

  /** Calls deliver with the local address for this peer, keeping per-peer order while resolving. */
  private withLocal(remote: Endpoint, deliver: (local: string) => void): void {
    if (!isWildcard(this.opts.address)) {
      deliver(this.opts.address);
      return;
    }
    const key = remote.address;
    const q = this.queued.get(key);
    if (q) {
      q.push(deliver);
      return;
    }
    const c = this.resolver.cached(key);
    if (c) {
      deliver(c);
      return;
    }
    const queue = [deliver];
    this.queued.set(key, queue);
    this.resolver.resolve(key, remote.port).then(
      (addr) => {
        this.queued.delete(key);
        if (this.closed) return;
        for (const d of queue) d(addr);
      },
      (e: unknown) => {
        this.queued.delete(key);
        this.stats.dropped += queue.length;
        this.report(
          e instanceof TransportError
            ? e
            : new TransportError('resolve', codeOf(e), `no local address towards ${key}`, undefined, remote),
        );
      },
    );
  }

  private socketFor(local: Endpoint, remote: Endpoint): dgram.Socket | undefined {
    const sock =
      local.port === this.boundNatPort ? this.nat : local.port === this.boundPort ? this.ike : undefined;
    if (this.closed || !sock) {
      this.stats.sendErrors++;
      const why = this.closed ? 'transport is closed' : `no socket bound to local port ${local.port}`;
      this.report(
        new TransportError(
          'send',
          this.closed ? 'ECLOSED' : 'ENOSOCK',
          `cannot send to ${fmtEp(remote)}: ${why}`,
          local,
          remote,
        ),
      );
      return undefined;
    }
    return sock;
  }

  private transmit(sock: dgram.Socket, parts: Uint8Array[], local: Endpoint, remote: Endpoint): void {
    let address = remote.address;
    if (this.family === 6 && isIPv4(address)) address = `::ffff:${address}`;
    else if (this.family === 4 && !isIPv4(address)) {
      this.stats.sendErrors++;
      this.report(
        new TransportError(
          'send',
          'EAFNOSUPPORT',
          `cannot send to ${fmtEp(remote)} from an IPv4 socket`,
          local,
          remote,
        ),
      );
      return;
    }
    this.pendingSends++;
    const done = (err: Error | null): void => {
      this.pendingSends--;
      if (err) {
        this.stats.sendErrors++;
        const code = codeOf(err);
        this.report(
          new TransportError('send', code, explain(code, `send to ${fmtEp(remote)} failed`), local, remote),
        );
      }
      if (this.pendingSends === 0) {
        const w = this.drainWaiters;
        this.drainWaiters = [];
        for (const f of w) f();
      }
    };
    try {
      sock.send(parts, remote.port, address, done);
    } catch (e) {
      done(e as Error);
    }
  }

  private report(e: TransportError): void {
    try {
      this.opts.onError?.(e);
    } catch {
      // an error callback that throws must not take the socket down
    }
  }
}
