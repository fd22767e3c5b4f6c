// UDP_ENCAP_ESPINUDP on the NAT-T socket (src/net/udp-encap.ts), set through the native addon on the
// descriptor UdpTransport opened the socket with (dgram adopts it; nothing reads dgram internals).
// Here: the option itself, on IPv4 and IPv6 transports, and its errors. That the kernel then takes
// ESP-in-UDP while IKE (non-ESP marker) still reaches the daemon: test/unit/udp-transport.test.ts
// (on loopback), test/interop/daemon-process.test.ts (the real daemon, datapath: xfrm), and end to
// end in the kernel VM (test/kvm/xfrm-e2e.test.ts, "forced UDP encapsulation").
import { afterEach, describe, expect, it } from 'vitest';
import { nativeAvailable } from '../../src/common/native.js';
import { enableEspInUdp, espInUdpState, UdpEncapError } from '../../src/net/udp-encap.js';
import { UdpTransport } from '../../src/net/udp-transport.js';

const linux = process.platform === 'linux';
const avail = nativeAvailable();

describe.skipIf(!linux || (!avail.ok && !process.env.CI))('UDP_ENCAP_ESPINUDP on the NAT-T socket', () => {
  const open: UdpTransport[] = [];
  const warnings: string[] = [];
  const onWarning = (w: Error): void => {
    warnings.push(w.name);
  };
  process.on('warning', onWarning);
  afterEach(async () => {
    for (const t of open.splice(0)) await t.close();
  });

  async function transport(address: string): Promise<UdpTransport> {
    const t = new UdpTransport({ address, port: 0, natPort: 0, onIke: () => {} });
    await t.start();
    open.push(t);
    return t;
  }

  it("sets and reads back the option on IPv4 and IPv6 transports' NAT-T sockets, without a deprecation warning", async () => {
    for (const addr of ['127.0.0.1', '::1', '0.0.0.0', '::']) {
      const t = await transport(addr);
      expect(t.natFd, addr).toBeGreaterThan(2);
      expect(espInUdpState(t.natFd)).toBe(0);
      enableEspInUdp(t.natFd);
      expect(espInUdpState(t.natFd)).toBe(2);
    }
    await new Promise((r) => setImmediate(r));
    expect(warnings).not.toContain('DeprecationWarning');
  });

  it('a closed transport or a bad descriptor is a UdpEncapError with an errno, not a crash', async () => {
    const t = await transport('127.0.0.1');
    await t.close();
    expect(t.natFd).toBeUndefined();
    const errOf = (fd: number | undefined): unknown => {
      try {
        enableEspInUdp(fd);
      } catch (x) {
        return x;
      }
      return undefined;
    };
    const closed = errOf(t.natFd);
    expect(closed).toBeInstanceOf(UdpEncapError);
    expect((closed as UdpEncapError).errno).toBe('EBADF');
    const bad = errOf(1_000_000);
    expect(bad).toBeInstanceOf(UdpEncapError);
    expect((bad as UdpEncapError).errno).toBe('EBADF');
    expect(espInUdpState(t.natFd)).toBeUndefined();
    expect(espInUdpState(1_000_000)).toBeUndefined();
  });

  it('the NAT-T port is not shared: a second bind (with or without SO_REUSEADDR) fails with EADDRINUSE', async () => {
    const t = await transport('127.0.0.1');
    const { natPort } = t.ports;
    const other = new UdpTransport({ address: '127.0.0.1', port: 0, natPort, onIke: () => {} });
    await expect(other.start()).rejects.toMatchObject({ kind: 'bind', errno: 'EADDRINUSE' });
    // libuv sets SO_REUSEADDR on a descriptor dgram adopts; the transport turns it off again, or a
    // later socket with SO_REUSEADDR (charon's) could bind the same port and take its datagrams
    const dgram = await import('node:dgram');
    const s = dgram.createSocket({ type: 'udp4', reuseAddr: true });
    const err = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
      s.once('error', (e) => resolve(e));
      s.bind(natPort, '127.0.0.1', () => resolve(undefined));
    });
    s.close();
    expect(err?.code).toBe('EADDRINUSE');
  });
});
