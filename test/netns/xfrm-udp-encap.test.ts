// UDP_ENCAP_ESPINUDP on a bound dgram socket (src/net/udp-encap.ts). Only socket options here — no
// datagram is sent. That the kernel then decapsulates ESP-in-UDP while IKE (non-ESP marker) still
// reaches the daemon is shown end to end in the kernel VM (test/kvm/xfrm-e2e.test.ts, "forced UDP
// encapsulation": IKE_AUTH floats to 4500 on that socket, ESP-in-UDP is counted by the inbound SA).
import dgram from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { dgramFd, enableEspInUdp, espInUdpState, UdpEncapError } from '../../src/net/udp-encap.js';
import { UdpTransport } from '../../src/net/udp-transport.js';

const linux = process.platform === 'linux';

function bound(type: 'udp4' | 'udp6', address: string): Promise<dgram.Socket> {
  const s = dgram.createSocket(type);
  return new Promise((res, rej) => {
    s.once('error', rej);
    s.bind(0, address, () => res(s));
  });
}

describe.skipIf(!linux)('UDP_ENCAP_ESPINUDP on the NAT-T socket', () => {
  const open: dgram.Socket[] = [];
  const warnings: string[] = [];
  const onWarning = (w: Error): void => {
    warnings.push(w.name);
  };
  process.on('warning', onWarning);
  afterEach(() => {
    for (const s of open.splice(0)) {
      try {
        s.close();
      } catch {
        // closed by the test
      }
    }
  });

  it('sets and reads back the option on IPv4 and IPv6 sockets, without a deprecation warning', async () => {
    for (const [type, addr] of [
      ['udp4', '127.0.0.1'],
      ['udp6', '::1'],
    ] as const) {
      const s = await bound(type, addr);
      open.push(s);
      expect(dgramFd(s)).toBeGreaterThan(2);
      expect(espInUdpState(s)).toBe(0);
      enableEspInUdp(s);
      expect(espInUdpState(s)).toBe(2);
    }
    await new Promise((r) => setImmediate(r));
    expect(warnings).not.toContain('DeprecationWarning');
  });

  it("works on UdpTransport's bound NAT-T socket (what the daemon does for the XFRM data path)", async () => {
    const t = new UdpTransport({ address: '127.0.0.1', port: 0, natPort: 0, onIke: () => {} });
    await t.start();
    try {
      const nat = t.natSocket;
      expect(nat).toBeDefined();
      enableEspInUdp(nat!);
      expect(espInUdpState(nat!)).toBe(2);
    } finally {
      await t.close();
    }
  });

  it('an unbound or closed socket is a UdpEncapError with an errno, not a crash', async () => {
    const unbound = dgram.createSocket('udp4');
    expect(() => enableEspInUdp(unbound)).toThrow(UdpEncapError);
    unbound.close();
    const s = await bound('udp4', '127.0.0.1');
    await new Promise<void>((r) => s.close(() => r()));
    const e = (() => {
      try {
        enableEspInUdp(s);
      } catch (x) {
        return x;
      }
      return undefined;
    })();
    expect(e).toBeInstanceOf(UdpEncapError);
    expect((e as UdpEncapError).errno).toMatch(/^E[A-Z]+$/);
    expect(espInUdpState(s)).toBeUndefined();
  });
});
