// UDP_ENCAP_ESPINUDP on the NAT-T socket (RFC 3948), for the kernel (XFRM) data path.
//
// With setsockopt(fd, SOL_UDP, UDP_ENCAP, UDP_ENCAP_ESPINUDP) on the bound port-4500 socket the
// kernel's xfrm4_udp_encap_rcv()/xfrm6_udp_encap_rcv() sees every datagram first:
//   - ESP in UDP (first 4 bytes = a non-zero SPI)  -> decapsulated and handed to XFRM, never to us;
//   - a one-byte 0xff NAT-keepalive                 -> dropped by the kernel;
//   - the non-ESP marker (4 zero bytes) + IKE       -> delivered to the socket unchanged, so
//     UdpTransport's demux still strips the marker and hands IKE to the engine.
// Without it, inbound ESP-in-UDP would reach userspace (and be dropped there) — the outbound side
// works regardless, because the SA's XFRMA_ENCAP template makes the kernel encapsulate.
//
// The `sockopt` package takes the socket object and reads `socket._handle.fd`. For a dgram.Socket
// `_handle` is a deprecated getter (DEP0112, a runtime warning); the handle lives in the socket's
// internal state symbol. We read the fd there and hand sockopt a minimal `{ _handle: { fd } }`,
// falling back to the deprecated getter only if Node ever moves the state.
import type { Socket } from 'node:dgram';
import { createRequire } from 'node:module';
import { constants as osConstants } from 'node:os';
import { IkegwError } from '../common/errors.js';

/** <netinet/in.h> IPPROTO_UDP used as the level (SOL_UDP). */
export const SOL_UDP = 17;
/** <linux/udp.h> */
export const UDP_ENCAP = 100;
export const UDP_ENCAP_ESPINUDP = 2;

interface SockoptModule {
  setsockopt(socket: { _handle: { fd: number } }, level: number, name: number, value: number): void;
  getsockopt(socket: { _handle: { fd: number } }, level: number, name: number): number;
}

let mod: SockoptModule | undefined;
function sockopt(): SockoptModule {
  mod ??= createRequire(import.meta.url)('sockopt') as SockoptModule;
  return mod;
}

export class UdpEncapError extends IkegwError {
  constructor(
    readonly errno: string,
    message: string,
  ) {
    super('ERR_UDP_ENCAP', message);
  }
}

/** sockopt's native errors carry only a message: "setsockopt failed: Bad file descriptor (9)". */
function errnoOf(e: unknown): string {
  const code = (e as { code?: unknown }).code;
  if (typeof code === 'string') return code;
  const m = /\((\d+)\)\s*$/.exec(e instanceof Error ? e.message : String(e));
  if (m) {
    const n = Number(m[1]);
    for (const [name, v] of Object.entries(osConstants.errno)) if (v === n) return name;
  }
  return 'EUNKNOWN';
}

/** The OS file descriptor of a bound dgram socket, or undefined (not bound yet / closed). */
export function dgramFd(socket: Socket): number | undefined {
  const sym = Object.getOwnPropertySymbols(socket).find((s) => s.description === 'state symbol');
  const state = sym
    ? (socket as unknown as Record<symbol, { handle?: { fd?: unknown } } | undefined>)[sym]
    : undefined;
  let fd = state?.handle?.fd;
  if (fd === undefined && !sym) fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  return typeof fd === 'number' && Number.isInteger(fd) && fd >= 0 ? fd : undefined;
}

/**
 * Turns on kernel ESP-in-UDP decapsulation on the daemon's bound NAT-T socket. Throws
 * UdpEncapError (errno "ENOPROTOOPT" without XFRM, "EBADF" on a closed socket...).
 */
export function enableEspInUdp(socket: Socket): void {
  const fd = dgramFd(socket);
  if (fd === undefined)
    throw new UdpEncapError('EBADF', 'UDP_ENCAP: the NAT-T socket is not bound (no file descriptor)');
  try {
    sockopt().setsockopt({ _handle: { fd } }, SOL_UDP, UDP_ENCAP, UDP_ENCAP_ESPINUDP);
  } catch (e) {
    const errno = errnoOf(e);
    throw new UdpEncapError(
      errno,
      `setsockopt(UDP_ENCAP, ESPINUDP) on fd ${fd} failed: ${(e as Error).message}`,
    );
  }
}

/** The socket's current UDP_ENCAP type (0 = none, 2 = ESPINUDP); undefined when unreadable. */
export function espInUdpState(socket: Socket): number | undefined {
  const fd = dgramFd(socket);
  if (fd === undefined) return undefined;
  try {
    return sockopt().getsockopt({ _handle: { fd } }, SOL_UDP, UDP_ENCAP);
  } catch {
    return undefined;
  }
}
