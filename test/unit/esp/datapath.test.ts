// The userspace ESP data path end to end in memory: two UserspaceInstallers (cluster gateway A,
// on-prem gateway B) with fake TUN devices, ESP-in-UDP handed from one to the other.
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/common/clock.js';
import { nativeAvailable } from '../../../src/common/native.js';
import {
  createEspCrypto,
  type EspCryptoImpl,
  espOpen,
  espSeal,
  NH_IPV4,
} from '../../../src/esp/userspace/esp-packet.js';
import { UserspaceInstaller } from '../../../src/esp/userspace/installer.js';
import type { AddSaSpec, EspAlgorithm, KernelEvent, PolicySpec } from '../../../src/ike/ports.js';
import {
  CLUSTER,
  childPair,
  FakeTransport,
  FakeTun,
  GW_A,
  GW_B,
  ipv4Packet,
  ONPREM,
  SERVICES,
  sealGcmRaw,
  ts4,
} from './helpers.js';

const A_EP = { address: GW_A, port: 4500 };
const B_EP = { address: GW_B, port: 4500 };

function outPolicy(src = CLUSTER, dst = ONPREM, o: Partial<PolicySpec> = {}): PolicySpec {
  return { reqid: 1, direction: 'out', src, dst, tunnelSrc: GW_A, tunnelDst: GW_B, trap: false, ...o };
}

async function pair(o: Parameters<typeof childPair>[0] & { impl?: EspCryptoImpl } = {}) {
  const clock = new ManualClock(1000);
  const mk = () => {
    const tun = new FakeTun();
    const net = new FakeTransport();
    const events: KernelEvent[] = [];
    const inst = new UserspaceInstaller({ tun, rawEsp: false, clock, tickMs: 0, impl: o.impl ?? 'auto' });
    inst.attachTransport(net);
    inst.setListener((e) => events.push(e));
    return { tun, net, events, inst };
  };
  const a = mk();
  const b = mk();
  const sas = childPair(o);
  await a.inst.addSa(sas.a.in);
  await a.inst.addSa(sas.a.out);
  await b.inst.addSa(sas.b.in);
  await b.inst.addSa(sas.b.out);
  await a.inst.addPolicy(outPolicy());
  await a.inst.addPolicy(outPolicy(SERVICES));
  await b.inst.addPolicy(outPolicy(ONPREM, CLUSTER, { tunnelSrc: GW_B, tunnelDst: GW_A }));
  await b.inst.addPolicy(outPolicy(ONPREM, SERVICES, { tunnelSrc: GW_B, tunnelDst: GW_A }));
  /** Delivers everything A sent to B and vice versa. */
  const deliver = (): void => {
    for (const s of a.net.sent.splice(0)) b.inst.receiveEsp(B_EP, A_EP, s.bytes);
    for (const s of b.net.sent.splice(0)) a.inst.receiveEsp(A_EP, B_EP, s.bytes);
  };
  return { a, b, sas, clock, deliver };
}

const ALGS: Array<[string, EspAlgorithm, number, number]> = [
  ['AES-GCM-16/128', { kind: 'aead', name: 'aes-gcm-16', keyBits: 128 }, 20, 0],
  ['AES-GCM-16/256', { kind: 'aead', name: 'aes-gcm-16', keyBits: 256 }, 36, 0],
  ['ChaCha20-Poly1305', { kind: 'aead', name: 'chacha20-poly1305', keyBits: 256 }, 36, 0],
  [
    'AES-CBC-128/HMAC-SHA1-96',
    { kind: 'cipher+integ', cipher: 'aes-cbc', keyBits: 128, integ: 'hmac-sha1-96' },
    16,
    20,
  ],
  [
    'AES-CBC-256/HMAC-SHA2-512-256',
    { kind: 'cipher+integ', cipher: 'aes-cbc', keyBits: 256, integ: 'hmac-sha2-512-256' },
    32,
    64,
  ],
  [
    'NULL/HMAC-SHA2-256-128',
    { kind: 'cipher+integ', cipher: 'null', keyBits: 0, integ: 'hmac-sha2-256-128' },
    0,
    32,
  ],
];

const IMPLS: EspCryptoImpl[] = nativeAvailable().ok ? ['node', 'native'] : ['node'];

describe('userspace ESP round trips', () => {
  for (const impl of IMPLS)
    for (const [name, alg, encLen, integLen] of ALGS) {
      if (impl === 'native' && alg.kind !== 'aead') continue;
      for (const esn of [false, true]) {
        it(`${name}${esn ? ' with ESN' : ''} (${impl}): pod -> on-prem host and back`, async () => {
          const { a, b, deliver } = await pair({
            impl,
            alg,
            encKey: new Uint8Array(encLen).map((_, i) => i + 1),
            integKey: new Uint8Array(integLen).fill(7),
            esn,
          });
          for (const size of [20, 21, 60, 1400]) {
            const p = ipv4Packet('10.10.1.10', '192.168.100.10', { payload: size - 20 });
            a.tun.inject(p);
            expect(a.net.sent).toHaveLength(1);
            const esp = a.net.sent[0]!;
            expect(esp.local).toEqual(A_EP);
            expect(esp.remote).toEqual(B_EP);
            deliver();
            expect(b.tun.written.pop()).toEqual(p);
            const r = ipv4Packet('192.168.100.10', '10.10.1.10', { payload: size - 20, icmpType: 0 });
            b.tun.inject(r);
            deliver();
            expect(a.tun.written.pop()).toEqual(r);
          }
          const st = a.inst.status();
          expect(st.sas.find((s) => s.dir === 'out')).toMatchObject({ packets: 4, drops: {} });
          expect(st.sas.find((s) => s.dir === 'in')).toMatchObject({ packets: 4, drops: {} });
          expect(st.drops).toEqual({});
        });
      }
    }

  it('counts bytes/packets per SA (querySa) and uses consecutive sequence numbers from 1', async () => {
    const { a, sas, clock } = await pair();
    for (let i = 0; i < 3; i++) a.tun.inject(ipv4Packet('10.10.1.10', '192.168.100.10', { payload: 80 }));
    const seqs = a.net.sent.map((s) => new DataView(s.bytes.buffer).getUint32(4));
    expect(seqs).toEqual([1, 2, 3]);
    const c = await a.inst.querySa({ src: GW_A, dst: GW_B, spi: sas.a.out.spi, protocol: 'esp' });
    expect(c).toEqual({ bytes: 300n, packets: 3n, lastUseMs: clock.now() });
  });

  it('a service-CIDR destination uses the same SA', async () => {
    const { a, b, deliver } = await pair();
    const p = ipv4Packet('192.168.100.10', '10.96.0.10', { proto: 17, dport: 53 });
    b.tun.inject(p);
    deliver();
    expect(a.tun.written).toEqual([p]);
  });
});

describe('batched sending (sendmmsg port)', () => {
  it('packets of one TUN batch leave in one batch after the batch, in order, and open on the peer', async () => {
    const { a, b } = await pair();
    const batches: Array<Array<{ bytes: Uint8Array; addr: number; port: number }>> = [];
    a.inst.datapath.batch = {
      sendBatch: (buf, offs, lens, addrs, ports, count) => {
        const got = [];
        for (let i = 0; i < count; i++)
          got.push({ bytes: buf.slice(offs[i]!, offs[i]! + lens[i]!), addr: addrs[i]!, port: ports[i]! });
        batches.push(got);
        return count;
      },
    };
    const sent = [100, 1400, 60].map((n) => ipv4Packet('10.10.1.10', '192.168.100.10', { payload: n }));
    for (const p of sent) a.tun.inject(p);
    expect(batches).toHaveLength(0); // not yet: flushed by a microtask after the TUN batch
    expect(a.net.sent).toHaveLength(0);
    await Promise.resolve();
    expect(batches).toHaveLength(1);
    expect(batches[0]!.map((d) => [d.addr, d.port])).toEqual(sent.map(() => [0xc6336401, 4500])); // 198.51.100.1
    for (const d of batches[0]!) b.inst.receiveEsp(B_EP, A_EP, d.bytes);
    expect(b.tun.written).toEqual(sent);
  });

  it('datagrams the kernel refused are counted as send drops', async () => {
    const { a } = await pair();
    a.inst.datapath.batch = { sendBatch: (_b, _o, _l, _a, _p, count) => count - 1 };
    a.tun.inject(ipv4Packet('10.10.1.10', '192.168.100.10'));
    a.tun.inject(ipv4Packet('10.10.1.10', '192.168.100.10'));
    await Promise.resolve();
    expect(a.inst.status().sas.find((s) => s.dir === 'out')!.drops).toEqual({ send: 1 });
  });
});

describe('bad input is counted and dropped, never thrown', () => {
  it('replayed, truncated, corrupted and unknown-SPI ESP', async () => {
    const { a, b, sas } = await pair();
    a.tun.inject(ipv4Packet('10.10.1.10', '192.168.100.10'));
    const good = a.net.sent.pop()!.bytes;
    b.inst.receiveEsp(B_EP, A_EP, good);
    expect(b.tun.written).toHaveLength(1);
    // replay
    b.inst.receiveEsp(B_EP, A_EP, good);
    // corrupted ciphertext / ICV under fresh sequence numbers: auth (a corrupted copy of a seen
    // number is a replay, found before the ICV is computed)
    for (const [at, seq] of [
      [20, 50],
      [good.length - 1, 51],
    ] as const) {
      const bad = good.slice();
      bad[at]! ^= 1;
      bad[7] = seq;
      b.inst.receiveEsp(B_EP, A_EP, bad);
    }
    // a fresh sequence number but a wrong ICV (not a replay): auth
    const forged = good.slice();
    forged[7] = 99;
    b.inst.receiveEsp(B_EP, A_EP, forged);
    // truncated (shorter than header + IV + ICV), empty, garbage
    b.inst.receiveEsp(B_EP, A_EP, good.subarray(0, 20));
    b.inst.receiveEsp(B_EP, A_EP, new Uint8Array(3));
    // wrong SPI
    const wrongSpi = good.slice();
    wrongSpi[0] = 0x12;
    b.inst.receiveEsp(B_EP, A_EP, wrongSpi);
    expect(b.tun.written).toHaveLength(1);
    const st = b.inst.status();
    const inSa = st.sas.find((s) => s.spi === sas.b.in.spi)!;
    expect(inSa.drops).toEqual({ replay: 1, auth: 3, malformed: 1 });
    expect(st.drops).toEqual({ malformed: 1, 'unknown-spi': 1 });
    // the SA still works
    a.tun.inject(ipv4Packet('10.10.1.10', '192.168.100.10'));
    b.inst.receiveEsp(B_EP, A_EP, a.net.sent.pop()!.bytes);
    expect(b.tun.written).toHaveLength(2);
  });

  /** Builds a valid ESP packet for B's inbound SA around an arbitrary plaintext. */
  function forge(spec: AddSaSpec, seq: number, inner: Uint8Array, nh = NH_IPV4): Uint8Array {
    const c = createEspCrypto(spec.alg, spec.encKey, spec.integKey, spec.esn);
    return espSeal(c, spec.spi, seq, 0, inner, nh);
  }

  it('authenticated packets outside the SA selectors are dropped (selector)', async () => {
    const { b, sas } = await pair();
    // from a pod to 192.168.200.1: the SA only carries 192.168.100.0/24
    b.inst.receiveEsp(B_EP, A_EP, forge(sas.b.in, 1, ipv4Packet('10.10.1.10', '192.168.200.1')));
    // from outside the cluster ranges
    b.inst.receiveEsp(B_EP, A_EP, forge(sas.b.in, 2, ipv4Packet('172.16.0.1', '192.168.100.10')));
    b.inst.receiveEsp(B_EP, A_EP, forge(sas.b.in, 3, ipv4Packet('10.10.1.10', '192.168.100.10')));
    expect(b.tun.written).toHaveLength(1);
    expect(b.inst.status().sas.find((s) => s.spi === sas.b.in.spi)!.drops).toEqual({ selector: 2 });
  });

  it('bad padding, wrong next header, dummy packets and malformed inner headers', async () => {
    const { b, sas } = await pair();
    const spec = sas.b.in;
    const inner = ipv4Packet('10.10.1.10', '192.168.100.10', { payload: 28 }); // 48 bytes: 2 bytes of padding
    const c = createEspCrypto(spec.alg, spec.encKey, spec.integKey, false);
    const pt = espOpen(c, espSeal(c, spec.spi, 1, 0, inner, NH_IPV4), 0)!;
    expect([...pt.subarray(inner.length)]).toEqual([1, 2, 2, 4]); // RFC 4303 §2.4 padding 1, 2
    b.inst.receiveEsp(B_EP, A_EP, sealGcmRaw(spec, 2, Uint8Array.from([...inner, 1, 3, 2, 4])));
    b.inst.receiveEsp(B_EP, A_EP, sealGcmRaw(spec, 3, Uint8Array.from([...inner, 0, 0, 2, 4])));
    b.inst.receiveEsp(B_EP, A_EP, sealGcmRaw(spec, 4, Uint8Array.from([...inner, 1, 2, 9, 4]))); // 9 bytes claimed, not 1..9
    b.inst.receiveEsp(B_EP, A_EP, sealGcmRaw(spec, 5, Uint8Array.from([...inner, 1, 2, 2, 17])));
    b.inst.receiveEsp(B_EP, A_EP, sealGcmRaw(spec, 6, Uint8Array.from([...inner, 1, 2, 2, 59])));
    b.inst.receiveEsp(B_EP, A_EP, sealGcmRaw(spec, 7, Uint8Array.from([1, 2, 200, 4]))); // pad length beyond the payload
    b.inst.receiveEsp(B_EP, A_EP, forge(spec, 8, new Uint8Array(40).fill(0x99))); // not an IP header
    b.inst.receiveEsp(B_EP, A_EP, forge(spec, 9, ipv4Packet('10.10.1.10', '192.168.100.10'), 41)); // v4 in NH 41
    expect(b.tun.written).toHaveLength(0);
    expect(b.inst.status().sas.find((s) => s.spi === spec.spi)!.drops).toEqual({
      'bad-padding': 4,
      'bad-next-header': 1,
      dummy: 1,
      malformed: 2,
    });
    // and a correct one still passes
    b.inst.receiveEsp(B_EP, A_EP, sealGcmRaw(spec, 10, Uint8Array.from([...inner, 1, 2, 2, 4])));
    expect(b.tun.written).toEqual([inner]);
  });

  it('TUN packets that match no policy, or are not IP, are dropped', async () => {
    const { a } = await pair();
    a.tun.inject(ipv4Packet('10.10.1.10', '8.8.8.8'));
    a.tun.inject(new Uint8Array([0x45, 0, 0]));
    a.tun.inject(new Uint8Array(60).fill(0x70));
    expect(a.net.sent).toHaveLength(0);
    expect(a.inst.status().drops).toEqual({ 'no-policy': 1, malformed: 2 });
  });

  it('a TUN write error is counted', async () => {
    const { a, b, deliver } = await pair();
    b.tun.failWrites = true;
    a.tun.inject(ipv4Packet('10.10.1.10', '192.168.100.10'));
    deliver();
    expect(Object.values(b.inst.status().sas.find((s) => s.dir === 'in')!.drops)).toEqual([1]);
  });
});

describe('trap: acquire and queue', () => {
  async function trapped(o: { queuePerReqid?: number } = {}) {
    const clock = new ManualClock(0);
    const tun = new FakeTun();
    const net = new FakeTransport();
    const events: KernelEvent[] = [];
    const inst = new UserspaceInstaller({ tun, rawEsp: false, clock, tickMs: 0, ...o });
    inst.attachTransport(net);
    inst.setListener((e) => events.push(e));
    await inst.addPolicy(outPolicy(CLUSTER, ONPREM, { trap: true, reqid: 7 }));
    return { clock, tun, net, events, inst };
  }

  it('the first packet raises one acquire and is sent once the SA is installed', async () => {
    const { tun, net, events, inst } = await trapped();
    const p1 = ipv4Packet('10.10.1.10', '192.168.100.10');
    const p2 = ipv4Packet('10.10.1.10', '192.168.100.11');
    tun.inject(p1);
    tun.inject(p2);
    expect(events).toEqual([{ kind: 'acquire', reqid: 7, src: '10.10.1.10', dst: '192.168.100.10' }]);
    expect(net.sent).toHaveLength(0);
    expect(inst.datapath.queued(7)).toBe(2);
    const sas = childPair({ reqid: 7 });
    await inst.addSa(sas.a.in);
    await inst.addSa(sas.a.out);
    expect(net.sent).toHaveLength(2);
    // the queued copies survived the reuse of the read buffer
    const c = createEspCrypto(sas.b.in.alg, sas.b.in.encKey, sas.b.in.integKey, false);
    const got = net.sent.map((s) => espOpen(c, s.bytes, 0)!.subarray(0, p1.length));
    expect(got).toEqual([p1, p2]);
    expect(inst.datapath.queued(7)).toBe(0);
  });

  it('the queue is bounded and times out; acquires repeat after a pause', async () => {
    const { clock, tun, events, inst } = await trapped({ queuePerReqid: 3 });
    for (let i = 0; i < 5; i++) tun.inject(ipv4Packet('10.10.1.10', '192.168.100.10'));
    expect(inst.datapath.queued(7)).toBe(3);
    expect(inst.status().drops).toEqual({ 'queue-full': 2 });
    clock.advance(6000);
    inst.tick();
    expect(inst.datapath.queued(7)).toBe(0);
    expect(inst.status().drops).toEqual({ 'queue-full': 2, 'no-sa': 3 });
    tun.inject(ipv4Packet('10.10.1.10', '192.168.100.10'));
    expect(events.filter((e) => e.kind === 'acquire')).toHaveLength(2);
  });
});

describe('lifetimes and sequence numbers', () => {
  it('soft and hard packet lifetimes raise expire; a hard-expired SA carries nothing', async () => {
    const { a, sas } = await pair();
    // replace A's outbound SA by one with packet limits
    await a.inst.delSa({ src: GW_A, dst: GW_B, spi: sas.a.out.spi, protocol: 'esp' });
    await a.inst.addSa({ ...sas.a.out, lifetime: { softPackets: 2n, hardPackets: 4n } });
    for (let i = 0; i < 6; i++) a.tun.inject(ipv4Packet('10.10.1.10', '192.168.100.10'));
    expect(a.events).toEqual([
      { kind: 'expire', spi: sas.a.out.spi, dst: GW_B, hard: false },
      { kind: 'expire', spi: sas.a.out.spi, dst: GW_B, hard: true },
      { kind: 'acquire', reqid: 1, src: '10.10.1.10', dst: '192.168.100.10' },
    ]);
    expect(a.net.sent).toHaveLength(4);
  });

  it('without ESN the sequence number never wraps: soft expire before 2^32, then stop', async () => {
    const { a, sas } = await pair();
    const sa = a.inst.datapath.table.outbound(1)!;
    sa.seqLo = 0xffffffff - (1 << 20) - 1;
    a.tun.inject(ipv4Packet('10.10.1.10', '192.168.100.10'));
    a.tun.inject(ipv4Packet('10.10.1.10', '192.168.100.10'));
    expect(a.events).toEqual([{ kind: 'expire', spi: sas.a.out.spi, dst: GW_B, hard: false }]);
    sa.seqLo = 0xffffffff;
    a.tun.inject(ipv4Packet('10.10.1.10', '192.168.100.10')); // the last number, 2^32 - 1
    expect(new DataView(a.net.sent.at(-1)!.bytes.buffer).getUint32(4)).toBe(0xffffffff);
    expect(a.events.at(-1)).toEqual({ kind: 'expire', spi: sas.a.out.spi, dst: GW_B, hard: true });
    const before = a.net.sent.length;
    a.tun.inject(ipv4Packet('10.10.1.10', '192.168.100.10'));
    expect(a.net.sent).toHaveLength(before);
  });

  it('with ESN the high half advances and travels only in the ICV/AAD', async () => {
    const { a, b, deliver } = await pair({ esn: true });
    const sa = a.inst.datapath.table.outbound(1)!;
    sa.seqLo = 0xfffffffe;
    b.inst.datapath.table.inbound(0xc0000001, GW_B)!.replay!.update(0xfffffff0, 0);
    for (let i = 0; i < 4; i++) a.tun.inject(ipv4Packet('10.10.1.10', '192.168.100.10'));
    expect(sa.seqHi).toBe(1);
    deliver();
    expect(b.tun.written).toHaveLength(4);
    expect(a.events).toEqual([]);
  });
});

describe('NAT mapping', () => {
  it('authenticated ESP from a new address/port raises one mapping event', async () => {
    const { a, b, sas } = await pair();
    b.tun.inject(ipv4Packet('192.168.100.10', '10.10.1.10'));
    const pkt = b.net.sent.pop()!.bytes;
    a.inst.receiveEsp(A_EP, { address: GW_B, port: 31337 }, pkt);
    expect(a.events).toEqual([
      { kind: 'mapping', spi: sas.a.in.spi, dst: GW_A, newRemote: { address: GW_B, port: 31337 } },
    ]);
    expect(a.tun.written).toHaveLength(1);
  });
});

describe('IPv6 selectors', () => {
  it('parses inner IPv6 and matches v6 ranges', async () => {
    const { UserspaceInstaller: U } = await import('../../../src/esp/userspace/installer.js');
    const tun = new FakeTun();
    const net = new FakeTransport();
    const inst = new U({ tun, rawEsp: false, tickMs: 0 });
    inst.attachTransport(net);
    const l6 = {
      family: 6 as const,
      protocol: 0,
      startPort: 0,
      endPort: 65535,
      startAddr: 'fd00:10::',
      endAddr: 'fd00:10::ffff',
    };
    const r6 = { ...l6, startAddr: 'fd00:192::', endAddr: 'fd00:192::ffff:ffff' };
    const sas = childPair();
    await inst.addSa({ ...sas.a.out, srcTs: [l6], dstTs: [r6] });
    await inst.addPolicy({ ...outPolicy(), src: l6, dst: r6 });
    const { ipv6Packet } = await import('./helpers.js');
    const src = new Uint8Array(16);
    src.set([0xfd, 0, 0, 0x10], 0);
    src[15] = 5;
    const dst = new Uint8Array(16);
    dst.set([0xfd, 0, 0x01, 0x92], 0);
    dst[13] = 1;
    tun.inject(ipv6Packet(src, dst));
    expect(net.sent).toHaveLength(1);
    dst[3] = 0x93;
    tun.inject(ipv6Packet(src, dst));
    expect(net.sent).toHaveLength(1);
    expect(tun.routes).toEqual(['fd00:192:0:0:0:0:0:0/96']);
    expect(inst.status().drops).toEqual({ 'no-policy': 1 });
    expect(ts4('10.0.0.0', '10.0.0.255').family).toBe(4);
  });
});
