// The userspace data path sends ESP-in-UDP in sendmmsg batches on UdpTransport's own bound NAT-T
// socket (same source port 4500, same NAT mapping as IKE). It needs that socket's descriptor: the
// transport knows it (the native addon opened and bound the socket, dgram adopted it), so nothing
// reads dgram internals and Node prints no DeprecationWarning (DEP0112, Socket.prototype._handle)
// into the daemon's stderr.
import dgram from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { nativeAvailable } from '../../../src/common/native.js';
import { UserspaceInstaller } from '../../../src/esp/userspace/installer.js';
import { UdpTransport } from '../../../src/net/udp-transport.js';
import { CLUSTER, childPair, FakeTun, ipv4Packet, ONPREM } from './helpers.js';

const avail = nativeAvailable();
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

describe.skipIf(process.platform !== 'linux' || !avail.ok)('ESP-in-UDP batches on the NAT-T socket', () => {
  it("go out through the transport's own socket (source port = NAT-T port), without a deprecation warning", async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error): void => {
      warnings.push(`${w.name}: ${w.message}`);
    };
    process.on('warning', onWarning);
    cleanups.push(() => {
      process.off('warning', onWarning);
    });

    const peer = dgram.createSocket('udp4');
    const got: Array<{ msg: Buffer; port: number }> = [];
    peer.on('message', (msg, rinfo) => got.push({ msg, port: rinfo.port }));
    await new Promise<void>((r) => peer.bind(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => peer.close(() => r())));

    const t = new UdpTransport({ address: '127.0.0.1', port: 0, natPort: 0, onIke: () => {} });
    const { natPort } = await t.start();
    cleanups.push(() => t.close());

    const tun = new FakeTun();
    const inst = new UserspaceInstaller({ tun, rawEsp: false, tickMs: 0 });
    cleanups.push(() => inst.close());
    inst.attachTransport(t);
    const { a } = childPair();
    const encap = { sport: natPort, dport: peer.address().port };
    await inst.addSa({ ...a.out, src: '127.0.0.1', dst: '127.0.0.1', encap });
    await inst.addPolicy({
      reqid: 1,
      direction: 'out',
      src: CLUSTER,
      dst: ONPREM,
      tunnelSrc: '127.0.0.1',
      tunnelDst: '127.0.0.1',
      trap: false,
    });

    tun.inject(ipv4Packet('10.10.1.10', '192.168.100.10'));
    const end = Date.now() + 5000;
    while (got.length === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
    expect(got).toHaveLength(1);
    expect(got[0]!.msg.readUInt32BE(0)).toBe(a.out.spi);
    expect(got[0]!.port).toBe(natPort);
    expect(t.stats.espOut).toBe(0); // not t.sendEsp(): the batch (sendmmsg) on the descriptor
    await new Promise((r) => setImmediate(r)); // warnings are emitted on the next tick
    expect(warnings).toEqual([]);
  });
});
