// Test helpers for the userspace ESP data path: inner packets, fake TUN/transport, SA pairs.
import { createCipheriv } from 'node:crypto';
import type { TunPort } from '../../../src/esp/userspace/tun.js';
import type { AddSaSpec, Endpoint, TsRange } from '../../../src/ike/ports.js';

export function v4(s: string): number[] {
  return s.split('.').map(Number);
}

/** A minimal IPv4 packet (checksum left 0: nothing on this path checks it). */
export function ipv4Packet(
  src: string,
  dst: string,
  o: { proto?: number; payload?: number; sport?: number; dport?: number; icmpType?: number } = {},
): Uint8Array {
  const proto = o.proto ?? 1;
  const payload = o.payload ?? 32;
  const b = new Uint8Array(20 + payload);
  b[0] = 0x45;
  b[2] = b.length >> 8;
  b[3] = b.length & 255;
  b[8] = 64;
  b[9] = proto;
  b.set(v4(src), 12);
  b.set(v4(dst), 16);
  if (proto === 6 || proto === 17) {
    b[20] = (o.sport ?? 40000) >> 8;
    b[21] = (o.sport ?? 40000) & 255;
    b[22] = (o.dport ?? 80) >> 8;
    b[23] = (o.dport ?? 80) & 255;
  } else if (proto === 1) {
    b[20] = o.icmpType ?? 8;
  }
  for (let i = 24; i < b.length; i++) b[i] = i & 255;
  return b;
}

export function ipv6Packet(src: Uint8Array, dst: Uint8Array, payload = 16, next = 17): Uint8Array {
  const b = new Uint8Array(40 + payload);
  b[0] = 0x60;
  b[4] = payload >> 8;
  b[5] = payload & 255;
  b[6] = next;
  b[7] = 64;
  b.set(src, 8);
  b.set(dst, 24);
  return b;
}

export const ts4 = (start: string, end: string, protocol = 0, startPort = 0, endPort = 65535): TsRange => ({
  family: 4,
  protocol,
  startPort,
  endPort,
  startAddr: start,
  endAddr: end,
});

export const CLUSTER = ts4('10.10.0.0', '10.10.255.255');
export const SERVICES = ts4('10.96.0.0', '10.111.255.255');
export const ONPREM = ts4('192.168.100.0', '192.168.100.255');

export class FakeTun implements TunPort {
  readonly name = 'faketun0';
  readonly written: Uint8Array[] = [];
  readonly routes: string[] = [];
  onPacket: ((buf: Uint8Array, off: number, len: number) => void) | undefined;
  failWrites = false;
  closed = false;
  write(buf: Uint8Array, off: number, len: number): number {
    if (this.failWrites) return -5;
    this.written.push(new Uint8Array(buf.subarray(off, off + len)));
    return len;
  }
  start(onPacket: (buf: Uint8Array, off: number, len: number) => void): void {
    this.onPacket = onPacket;
  }
  /** Simulates a packet routed into the TUN device (a reused read buffer, as the real one). */
  inject(p: Uint8Array): void {
    const slot = new Uint8Array(4096);
    slot.set(p, 100);
    this.onPacket?.(slot, 100, p.length);
    slot.fill(0xee); // the real read buffer is overwritten by the next batch
  }
  async addRoute(cidr: string): Promise<void> {
    this.routes.push(cidr);
  }
  async delRoute(cidr: string): Promise<void> {
    const i = this.routes.indexOf(cidr);
    if (i >= 0) this.routes.splice(i, 1);
  }
  close(): void {
    this.closed = true;
  }
}

export interface SentEsp {
  local: Endpoint;
  remote: Endpoint;
  bytes: Uint8Array;
}

/** AES-GCM-16 ESP around an exact plaintext (payload | padding | padLen | nh), for malformed trailers. */
export function sealGcmRaw(spec: AddSaSpec, seq: number, plaintext: Uint8Array): Uint8Array {
  const key = spec.encKey.subarray(0, spec.encKey.length - 4);
  const iv = new Uint8Array(8);
  new DataView(iv.buffer).setUint32(4, seq);
  const nonce = new Uint8Array([...spec.encKey.subarray(spec.encKey.length - 4), ...iv]);
  const hdr = new Uint8Array(8);
  new DataView(hdr.buffer).setUint32(0, spec.spi);
  new DataView(hdr.buffer).setUint32(4, seq);
  const c = createCipheriv(`aes-${key.length * 8}-gcm` as 'aes-128-gcm', key, nonce, { authTagLength: 16 });
  c.setAAD(hdr);
  const ct = Buffer.concat([c.update(plaintext), c.final()]);
  return new Uint8Array([...hdr, ...iv, ...ct, ...c.getAuthTag()]);
}

export class FakeTransport {
  readonly sent: SentEsp[] = [];
  sendEsp(local: Endpoint, remote: Endpoint, bytes: Uint8Array): void {
    this.sent.push({ local: { ...local }, remote: { ...remote }, bytes: Uint8Array.from(bytes) });
  }
}

export const GW_A = '172.30.0.2';
export const GW_B = '198.51.100.1';

/**
 * The two SAs of one CHILD_SA as seen from side A (cluster: local TS CLUSTER+SERVICES, remote
 * ONPREM) and the mirrored pair for side B.
 */
export function childPair(
  o: {
    alg?: AddSaSpec['alg'];
    encKey?: Uint8Array;
    integKey?: Uint8Array;
    esn?: boolean;
    reqid?: number;
  } = {},
): { a: { in: AddSaSpec; out: AddSaSpec }; b: { in: AddSaSpec; out: AddSaSpec } } {
  const alg = o.alg ?? { kind: 'aead', name: 'aes-gcm-16', keyBits: 128 };
  const k1 = o.encKey ?? new Uint8Array(20).fill(0x11);
  const k2 = o.encKey ? o.encKey.map((x) => x ^ 0x5a) : new Uint8Array(20).fill(0x22);
  const integ = o.integKey ?? new Uint8Array(0);
  const base = {
    reqid: o.reqid ?? 1,
    protocol: 'esp' as const,
    mode: 'tunnel' as const,
    alg,
    integKey: integ,
    esn: o.esn ?? false,
    replayWindow: 64,
    lifetime: {},
    name: 'onprem/cluster',
    encap: { sport: 4500, dport: 4500 },
  };
  const aOut: AddSaSpec = {
    ...base,
    src: GW_A,
    dst: GW_B,
    spi: 0xc0000001,
    encKey: k1,
    inbound: false,
    srcTs: [CLUSTER, SERVICES],
    dstTs: [ONPREM],
  };
  const aIn: AddSaSpec = {
    ...base,
    src: GW_B,
    dst: GW_A,
    spi: 0xc0000002,
    encKey: k2,
    inbound: true,
    srcTs: [ONPREM],
    dstTs: [CLUSTER, SERVICES],
  };
  return {
    a: { in: aIn, out: aOut },
    b: {
      in: { ...aOut, inbound: true, srcTs: aOut.srcTs, dstTs: aOut.dstTs },
      out: { ...aIn, inbound: false },
    },
  };
}
