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
// node:dgram has neither setsockopt nor a public way to read a socket's descriptor (the
// `_handle` getter is deprecated, DEP0112, and prints a warning to stderr). So UdpTransport has
// the native addon open and bind the NAT-T socket, hands the descriptor to dgram
// (socket.bind({ fd })) and keeps it: `UdpTransport.natFd`. The option is set on that descriptor
// with the addon.
import { IkegwError } from '../common/errors.js';
import { loadNative } from '../common/native.js';

/** <netinet/in.h> IPPROTO_UDP used as the level (SOL_UDP). */
export const SOL_UDP = 17;
/** <linux/udp.h> */
export const UDP_ENCAP = 100;
export const UDP_ENCAP_ESPINUDP = 2;

export class UdpEncapError extends IkegwError {
  constructor(
    readonly errno: string,
    message: string,
  ) {
    super('ERR_UDP_ENCAP', message);
  }
}

function errnoOf(e: unknown): string {
  const code = (e as { code?: unknown }).code;
  return typeof code === 'string' ? code : 'EUNKNOWN';
}

/**
 * Turns on kernel ESP-in-UDP decapsulation on the daemon's bound NAT-T socket, given by its
 * descriptor (UdpTransport.natFd; undefined when the socket is closed or the native addon that
 * opened it is missing). Throws UdpEncapError (errno "ENOPROTOOPT" without XFRM, "EBADF" when the
 * socket is not open, "ENOSYS" without the addon...).
 */
export function enableEspInUdp(fd: number | undefined): void {
  let n: ReturnType<typeof loadNative>;
  try {
    n = loadNative();
  } catch (e) {
    throw new UdpEncapError('ENOSYS', `UDP_ENCAP needs the native addon: ${(e as Error).message}`);
  }
  if (fd === undefined)
    throw new UdpEncapError('EBADF', 'UDP_ENCAP: the NAT-T socket is not open (no file descriptor)');
  try {
    n.setsockoptInt(fd, SOL_UDP, UDP_ENCAP, UDP_ENCAP_ESPINUDP);
  } catch (e) {
    throw new UdpEncapError(
      errnoOf(e),
      `setsockopt(UDP_ENCAP, ESPINUDP) on fd ${fd} failed: ${(e as Error).message}`,
    );
  }
}

/** The socket's current UDP_ENCAP type (0 = none, 2 = ESPINUDP); undefined when unreadable. */
export function espInUdpState(fd: number | undefined): number | undefined {
  if (fd === undefined) return undefined;
  try {
    return loadNative().getsockoptInt(fd, SOL_UDP, UDP_ENCAP);
  } catch {
    return undefined;
  }
}
