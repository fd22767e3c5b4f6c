// Real UDP sockets on 127.0.0.1 with ports chosen by the kernel (port 0).
import dgram from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import type { Endpoint } from '../../src/ike/ports.js';
import { enableEspInUdp, espInUdpState } from '../../src/net/udp-encap.js';
import {
  LocalAddressResolver,
  normalizeAddress,
  TransportError,
  UdpTransport,
  type UdpTransportOptions,
} from '../../src/net/udp-transport.js';

interface Got {
  local: Endpoint;
  remote: Endpoint;
  bytes: Buffer;
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function transport(over: Partial<UdpTransportOptions> = {}) {
  const ike: Got[] = [];
  const esp: Got[] = [];
  const errors: TransportError[] = [];
  const t = new UdpTransport({
    address: '127.0.0.1',
    port: 0,
    natPort: 0,
    onIke: (local, remote, bytes) => ike.push({ local, remote, bytes: Buffer.from(bytes) }),
    onEsp: (local, remote, bytes) => esp.push({ local, remote, bytes: Buffer.from(bytes) }),
    onError: (e) => errors.push(e),
    ...over,
  });
  const ports = await t.start();
  cleanups.push(() => t.close());
  return { t, ports, ike, esp, errors };
}

/** A plain UDP peer that records what it receives. */
async function peer() {
  const sock = dgram.createSocket('udp4');
  const got: Buffer[] = [];
  const waiters: Array<() => void> = [];
  sock.on('message', (m) => {
    got.push(m);
    for (const w of waiters.splice(0)) w();
  });
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => sock.close(() => r())));
  const port = sock.address().port;
  const send = (bytes: Uint8Array, to: number) =>
    new Promise<void>((r, j) => sock.send(bytes, to, '127.0.0.1', (e) => (e ? j(e) : r())));
  const next = async (n = 1): Promise<Buffer[]> => {
    while (got.length < n) await new Promise<void>((r) => waiters.push(r));
    return got.splice(0, n);
  };
  return { sock, port, send, next, ep: { address: '127.0.0.1', port } as Endpoint };
}

async function until(cond: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timeout waiting for condition');
    await new Promise((r) => setTimeout(r, 2));
  }
}

const IKE = Buffer.from('0123456789abcdef0000000000000000212022080000000000000028', 'hex');

describe('UdpTransport receive', () => {
  it('binds two distinct ports and reports them', async () => {
    const { t, ports } = await transport();
    expect(ports.port).toBeGreaterThan(0);
    expect(ports.natPort).toBeGreaterThan(0);
    expect(ports.port).not.toBe(ports.natPort);
    expect(t.ports).toEqual(ports);
  });

  it('IKE on the IKE port arrives as is, with local and remote endpoints', async () => {
    const { ports, ike } = await transport();
    const p = await peer();
    await p.send(IKE, ports.port);
    await until(() => ike.length === 1);
    expect(ike[0]).toEqual({ local: { address: '127.0.0.1', port: ports.port }, remote: p.ep, bytes: IKE });
  });

  it('NAT-T port: non-ESP marker stripped; keepalive counted; ESP to onEsp; junk dropped', async () => {
    const { t, ports, ike, esp } = await transport();
    const p = await peer();
    await p.send(Buffer.concat([Buffer.alloc(4), IKE]), ports.natPort);
    await p.send(Buffer.from([0xff]), ports.natPort);
    const espPkt = Buffer.from('c0de000100000001aabbccdd', 'hex');
    await p.send(espPkt, ports.natPort);
    await p.send(Buffer.from([1, 2, 3]), ports.natPort); // too short for ESP
    await p.send(Buffer.alloc(4), ports.natPort); // marker without IKE
    await until(() => t.stats.dropped === 2);
    expect(ike).toEqual([{ local: { address: '127.0.0.1', port: ports.natPort }, remote: p.ep, bytes: IKE }]);
    expect(esp).toEqual([
      { local: { address: '127.0.0.1', port: ports.natPort }, remote: p.ep, bytes: espPkt },
    ]);
    expect(t.stats).toMatchObject({ ikeIn: 1, espIn: 1, keepalivesIn: 1, dropped: 2 });
  });

  it('ESP without a data path is dropped and counted', async () => {
    const { t, ports } = await transport({ onEsp: undefined });
    const p = await peer();
    await p.send(Buffer.from('c0de000100000001aabbccdd', 'hex'), ports.natPort);
    await until(() => t.stats.dropped === 1);
    expect(t.stats.espIn).toBe(0);
  });
});

describe('UdpTransport send', () => {
  it('from the IKE port without marker, from the NAT-T port with marker; keepalive and ESP', async () => {
    const { t, ports } = await transport();
    const p = await peer();
    t.send({ address: '127.0.0.1', port: ports.port }, p.ep, IKE);
    expect(await p.next()).toEqual([IKE]);
    t.send({ address: '127.0.0.1', port: ports.natPort }, p.ep, IKE);
    expect(await p.next()).toEqual([Buffer.concat([Buffer.alloc(4), IKE])]);
    t.sendKeepalive({ address: '127.0.0.1', port: ports.natPort }, p.ep);
    expect(await p.next()).toEqual([Buffer.from([0xff])]);
    const espPkt = Buffer.from('c0de000100000001', 'hex');
    t.sendEsp({ address: '127.0.0.1', port: ports.natPort }, p.ep, espPkt);
    expect(await p.next()).toEqual([espPkt]);
    expect(await t.flush()).toBe(true);
    expect(t.stats).toMatchObject({ ikeOut: 2, keepalivesOut: 1, espOut: 1, sendErrors: 0 });
  });

  it('the source port of a reply is the bound port', async () => {
    const { t, ports } = await transport();
    const p = await peer();
    const from = new Promise<number>((r) => p.sock.once('message', (_m, rinfo) => r(rinfo.port)));
    t.send({ address: '127.0.0.1', port: ports.natPort }, p.ep, IKE);
    expect(await from).toBe(ports.natPort);
  });

  it('send errors are reported with their cause, never thrown', async () => {
    const { t, ports, errors } = await transport();
    const p = await peer();
    // kernel error: a datagram larger than UDP allows
    t.send({ address: '127.0.0.1', port: ports.port }, p.ep, new Uint8Array(70_000));
    await t.flush();
    // no socket on that local port
    t.send({ address: '127.0.0.1', port: 1 }, p.ep, IKE);
    // IPv6 peer on an IPv4 transport
    t.send({ address: '127.0.0.1', port: ports.port }, { address: '2001:db8::1', port: 500 }, IKE);
    expect(errors.map((e) => [e.kind, e.errno])).toEqual([
      ['send', 'EMSGSIZE'],
      ['send', 'ENOSOCK'],
      ['send', 'EAFNOSUPPORT'],
    ]);
    expect(errors[0]!.message).toBe(
      `send to 127.0.0.1:${p.port} failed: EMSGSIZE (datagram larger than the path MTU allows; enable IKE fragmentation)`,
    );
    expect(errors[0]!.remote).toEqual(p.ep);
    expect(t.stats.sendErrors).toBe(3);
  });

  it('after close, sends report ECLOSED', async () => {
    const { t, ports, errors } = await transport();
    await t.close();
    t.send({ address: '127.0.0.1', port: ports.port }, { address: '127.0.0.1', port: 9 }, IKE);
    expect(errors.map((e) => e.errno)).toEqual(['ECLOSED']);
  });
});

describe.skipIf(process.platform !== 'linux')('UDP_ENCAP on the NAT-T socket (kernel data path)', () => {
  it("the NAT-T socket's descriptor is known while it is open; the IKE socket needs none", async () => {
    const { t } = await transport();
    expect(t.natFd).toBeGreaterThan(2);
    await t.close();
    expect(t.natFd).toBeUndefined();
  });

  it('with ESPINUDP set, the kernel takes ESP-in-UDP; IKE behind the non-ESP marker still arrives', async () => {
    const { t, ports, ike, esp } = await transport();
    expect(espInUdpState(t.natFd)).toBe(0);
    enableEspInUdp(t.natFd);
    expect(espInUdpState(t.natFd)).toBe(2);
    const p = await peer();
    // an ESP packet (SPI != 0) first, then IKE: datagrams on loopback keep their order, so once
    // the IKE message is here, the ESP one would have been too had the kernel passed it up
    await p.send(Buffer.from('c0de000100000001aabbccddeeff0011', 'hex'), ports.natPort);
    await p.send(Buffer.concat([Buffer.alloc(4), IKE]), ports.natPort);
    await until(() => ike.length === 1);
    expect(ike[0]!.bytes).toEqual(IKE);
    expect(esp).toEqual([]);
    expect(t.stats.espIn).toBe(0);
  });
});

describe('UdpTransport bind errors', () => {
  it('EADDRINUSE rejects start() with a TransportError naming the address', async () => {
    const { ports } = await transport();
    const other = new UdpTransport({ address: '127.0.0.1', port: ports.port, natPort: 0, onIke: () => {} });
    const e = await other.start().catch((x: unknown) => x);
    expect(e).toBeInstanceOf(TransportError);
    expect(e).toMatchObject({ kind: 'bind', errno: 'EADDRINUSE' });
    expect((e as Error).message).toBe(
      `cannot bind UDP 127.0.0.1:${ports.port}: EADDRINUSE (another process (an IKE daemon such as charon?) already uses this port)`,
    );
    // the NAT-T port conflicting closes the already bound IKE socket again
    const third = new UdpTransport({
      address: '127.0.0.1',
      port: 0,
      natPort: ports.natPort,
      onIke: () => {},
    });
    await expect(third.start()).rejects.toMatchObject({ errno: 'EADDRINUSE' });
  });

  it.skipIf(process.getuid?.() === 0)('EACCES for a privileged port without root', async () => {
    const t = new UdpTransport({ address: '127.0.0.1', port: 500, natPort: 0, onIke: () => {} });
    await expect(t.start()).rejects.toMatchObject({ kind: 'bind', errno: 'EACCES' });
  });

  it('EADDRNOTAVAIL for an address that is not local', async () => {
    const t = new UdpTransport({ address: '192.0.2.123', port: 0, natPort: 0, onIke: () => {} });
    await expect(t.start()).rejects.toMatchObject({ kind: 'bind', errno: 'EADDRNOTAVAIL' });
  });
});

describe('wildcard binding and the local address', () => {
  it('bound to 0.0.0.0, the local address is the source address towards the peer', async () => {
    const { ports, ike } = await transport({ address: '0.0.0.0' });
    const p = await peer();
    await p.send(IKE, ports.port);
    await p.send(Buffer.concat([Buffer.alloc(4), IKE]), ports.natPort);
    await until(() => ike.length === 2);
    expect(ike.map((g) => g.local)).toEqual([
      { address: '127.0.0.1', port: ports.port },
      { address: '127.0.0.1', port: ports.natPort },
    ]);
  });

  it('LocalAddressResolver uses a connected socket and caches', async () => {
    const r = new LocalAddressResolver();
    expect(r.cached('127.0.0.1')).toBeUndefined();
    expect(await r.resolve('127.0.0.1')).toBe('127.0.0.1');
    expect(r.cached('127.0.0.1')).toBe('127.0.0.1');
    expect(await r.resolve('127.0.0.2')).toBe('127.0.0.1');
  });

  it('normalizeAddress turns v4-mapped IPv6 into IPv4', () => {
    expect(normalizeAddress('::ffff:192.0.2.1')).toBe('192.0.2.1');
    expect(normalizeAddress('2001:db8::1')).toBe('2001:db8::1');
  });
});
