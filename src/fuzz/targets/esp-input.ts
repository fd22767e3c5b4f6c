// Target `esp-input`: the userspace data path's ESP input (EspDatapath.inbound: SA lookup, replay
// window, ICV and decryption, ESP trailer, inner IP header, the SA's traffic selectors) with live
// SAs: the first CHILD_SA of each strongSwan capture (its real keys; AES-GCM, ChaCha20-Poly1305,
// AES-CBC with HMAC-SHA2) plus SAs with ESN, a 4096-packet window, no replay check, NULL
// encryption, a packet lifetime, port/protocol selectors and IPv6 selectors.
//
// Inputs are either raw ESP packets (mutated captures and sealed packets), or an inner packet plus
// ESP trailer that the target seals itself (an independent implementation of RFC 4106/7634/3602+
// 4868) with the SA's keys and a chosen sequence number, so that mutated inner IP headers, trailers
// and sequence numbers get past the ICV.
//
// Invariants: inbound() never throws; every packet has exactly one outcome (one drop counter, or
// one packet written to the TUN device); what is written is exactly the inner packet that was
// sealed, lies within the SA's selectors (checked by a separate model), and was never delivered
// before (replay); a packet the model says is valid (fresh sequence number, correct ICV, trailer,
// header and selectors) is delivered, anything else is not; the drop log's memory stays bounded.
import { createCipheriv, createHmac } from 'node:crypto';
import { ManualClock } from '../../common/clock.js';
import { EspDatapath } from '../../esp/userspace/datapath.js';
import { type EspCryptoImpl, NH_IPV4, NH_IPV6 } from '../../esp/userspace/esp-packet.js';
import { DROP_REASONS, parseIpv4, parseIpv6, type SaState } from '../../esp/userspace/sa-table.js';
import type { AddSaSpec, EspAlgorithm, KernelEvent, TsRange } from '../../ike/ports.js';
import { capturedEsp } from '../corpus.js';
import { type FuzzInstance, type FuzzTarget, invariant } from '../harness.js';
import { concatBytes, getUint, havoc, putUint } from '../mutate.js';
import type { Rng } from '../rng.js';

const GW_CLUSTER = '172.30.0.2';
const GW_ONPREM = '198.51.100.1';
const CLUSTER = [ts4('10.10.0.0', '10.10.255.255'), ts4('10.96.0.0', '10.111.255.255')];
const ONPREM = [ts4('192.168.100.0', '192.168.100.255')];

function ts4(startAddr: string, endAddr: string, protocol = 0, startPort = 0, endPort = 65535): TsRange {
  return { family: 4, protocol, startPort, endPort, startAddr, endAddr };
}
function ts6(startAddr: string, endAddr: string, protocol = 0, startPort = 0, endPort = 65535): TsRange {
  return { family: 6, protocol, startPort, endPort, startAddr, endAddr };
}

function algFromProposal(p: string): EspAlgorithm {
  if (p.includes('CHACHA20')) return { kind: 'aead', name: 'chacha20-poly1305', keyBits: 256 };
  const gcm = /AES_GCM_16_(\d+)/.exec(p);
  if (gcm) return { kind: 'aead', name: 'aes-gcm-16', keyBits: Number(gcm[1]) };
  const cbc = /AES_CBC_(\d+)/.exec(p);
  const integ = p.includes('SHA2_512')
    ? 'hmac-sha2-512-256'
    : p.includes('SHA2_384')
      ? 'hmac-sha2-384-192'
      : p.includes('SHA2_256')
        ? 'hmac-sha2-256-128'
        : 'hmac-sha1-96';
  return { kind: 'cipher+integ', cipher: 'aes-cbc', keyBits: Number(cbc?.[1] ?? 128), integ };
}

const HASH = {
  'hmac-sha1-96': ['sha1', 12],
  'hmac-sha2-256-128': ['sha256', 16],
  'hmac-sha2-384-192': ['sha384', 24],
  'hmac-sha2-512-256': ['sha512', 32],
} as const;

function key(n: number, fill: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (fill + i * 7) & 0xff);
}

/** The inbound SAs of the target (index = input byte 1 modulo the count). */
function saSpecs(): AddSaSpec[] {
  const base = {
    protocol: 'esp' as const,
    mode: 'tunnel' as const,
    esn: false,
    replayWindow: 64,
    inbound: true,
    lifetime: {},
    encap: { sport: 4500, dport: 4500 },
  };
  const out: AddSaSpec[] = [];
  let reqid = 1;
  for (const e of capturedEsp()) {
    if (e.seq !== 1) continue; // one SA per captured direction
    out.push({
      ...base,
      reqid: reqid++,
      name: `${e.suite}/${e.fromCluster ? 'onprem-in' : 'cluster-in'}`,
      src: e.fromCluster ? GW_CLUSTER : GW_ONPREM,
      dst: e.fromCluster ? GW_ONPREM : GW_CLUSTER,
      spi: e.spi,
      alg: algFromProposal(e.proposal),
      encKey: e.encKey,
      integKey: e.integKey,
      srcTs: e.fromCluster ? CLUSTER : ONPREM,
      dstTs: e.fromCluster ? ONPREM : CLUSTER,
    });
  }
  const synthetic: Array<Partial<AddSaSpec> & Pick<AddSaSpec, 'alg' | 'encKey' | 'integKey'>> = [
    // ESN, AES-GCM-256, ports and protocols in the selectors
    {
      alg: { kind: 'aead', name: 'aes-gcm-16', keyBits: 256 },
      encKey: key(36, 1),
      integKey: new Uint8Array(0),
      esn: true,
      srcTs: [
        ts4('192.168.100.0', '192.168.100.255', 6, 443, 443),
        ts4('192.168.100.0', '192.168.100.255', 1, 0x0800, 0x08ff),
      ],
      dstTs: [ts4('10.10.0.0', '10.10.255.255', 0, 1024, 65535), ts4('10.10.0.0', '10.10.255.255', 1)],
    },
    // no replay check, ChaCha20-Poly1305, IPv6
    {
      alg: { kind: 'aead', name: 'chacha20-poly1305', keyBits: 256 },
      encKey: key(36, 2),
      integKey: new Uint8Array(0),
      replayWindow: 0,
      srcTs: [ts6('2001:db8:1::', '2001:db8:1:ffff:ffff:ffff:ffff:ffff')],
      dstTs: [ts6('2001:db8:2::', '2001:db8:2::ffff', 17, 53, 53), ts6('fd00::', 'fd00::ff', 58)],
    },
    // a 4096-packet window, AES-CBC-256 with HMAC-SHA1-96, ESN
    {
      alg: { kind: 'cipher+integ', cipher: 'aes-cbc', keyBits: 256, integ: 'hmac-sha1-96' },
      encKey: key(32, 3),
      integKey: key(20, 4),
      esn: true,
      replayWindow: 4096,
      srcTs: ONPREM,
      dstTs: CLUSTER,
    },
    // NULL encryption with HMAC-SHA2-384, a lifetime of 3000 packets, all addresses
    {
      alg: { kind: 'cipher+integ', cipher: 'null', keyBits: 0, integ: 'hmac-sha2-384-192' },
      encKey: new Uint8Array(0),
      integKey: key(48, 5),
      lifetime: { softPackets: 2000n, hardPackets: 3000n },
      srcTs: [ts4('0.0.0.0', '255.255.255.255'), ts6('::', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff')],
      dstTs: [ts4('0.0.0.0', '255.255.255.255'), ts6('::', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff')],
    },
  ];
  for (const [i, s] of synthetic.entries()) {
    out.push({
      ...base,
      srcTs: ONPREM,
      dstTs: CLUSTER,
      ...s,
      reqid: reqid++,
      name: `synthetic-${i}`,
      src: GW_ONPREM,
      dst: GW_CLUSTER,
      spi: 0xc0de0000 + i,
    });
  }
  return out;
}

// ---- an independent ESP sealer ---------------------------------------------------------------------

function sealRaw(
  spec: AddSaSpec,
  seqLo: number,
  seqHi: number,
  plaintext: Uint8Array,
  iv: Uint8Array,
): Uint8Array {
  const hdr = new Uint8Array(8);
  putUint(hdr, 0, 4, spec.spi);
  putUint(hdr, 4, 4, seqLo);
  const alg = spec.alg;
  if (alg.kind === 'aead') {
    const k = spec.encKey;
    const nonce = concatBytes(k.subarray(k.length - 4), iv.subarray(0, 8));
    const aad = spec.esn ? concatBytes(hdr.subarray(0, 4), u32(seqHi), hdr.subarray(4)) : hdr;
    const c =
      alg.name === 'chacha20-poly1305'
        ? createCipheriv('chacha20-poly1305', k.subarray(0, 32), nonce, { authTagLength: 16 })
        : createCipheriv(`aes-${alg.keyBits}-gcm` as 'aes-128-gcm', k.subarray(0, k.length - 4), nonce, {
            authTagLength: 16,
          });
    c.setAAD(aad, { plaintextLength: plaintext.length });
    const ct = concatBytes(c.update(plaintext), c.final());
    return concatBytes(hdr, iv.subarray(0, 8), ct, c.getAuthTag());
  }
  let body: Uint8Array;
  if (alg.cipher === 'aes-cbc') {
    const whole = plaintext.length - (plaintext.length % 16);
    const c = createCipheriv(`aes-${alg.keyBits}-cbc`, spec.encKey, iv.subarray(0, 16));
    c.setAutoPadding(false);
    // A plaintext that is not a whole number of blocks: the rest goes out unencrypted (invalid).
    body = concatBytes(
      iv.subarray(0, 16),
      c.update(plaintext.subarray(0, whole)),
      c.final(),
      plaintext.subarray(whole),
    );
  } else body = plaintext;
  const [hash, icvLen] = HASH[alg.integ];
  const h = createHmac(hash, spec.integKey).update(hdr).update(body);
  if (spec.esn) h.update(u32(seqHi));
  return concatBytes(hdr, body, h.digest().subarray(0, icvLen));
}

function u32(v: number): Uint8Array {
  const b = new Uint8Array(4);
  putUint(b, 0, 4, v);
  return b;
}

// ---- a separate model of what may be delivered -------------------------------------------------------

interface Fields {
  family: 4 | 6;
  total: number;
  proto: number;
  src: bigint;
  dst: bigint;
  srcPort: number;
  dstPort: number;
}

const PORT_PROTOS = new Set([6, 17, 132, 136]);

/** RFC 4301 §4.4.1.1 selector fields of an inner packet, or undefined if the header is not valid. */
function innerFields(b: Uint8Array): Fields | undefined {
  const v = (b[0] ?? 0) >> 4;
  const big = (at: number, n: number): bigint => {
    let x = 0n;
    for (let i = 0; i < n; i++) x = (x << 8n) | BigInt(b[at + i]!);
    return x;
  };
  if (v === 4) {
    if (b.length < 20) return undefined;
    const ihl = (b[0]! & 15) * 4;
    const total = getUint(b, 2, 2);
    if (ihl < 20 || total < ihl || total > b.length) return undefined;
    const f: Fields = {
      family: 4,
      total,
      proto: b[9]!,
      src: big(12, 4),
      dst: big(16, 4),
      srcPort: -1,
      dstPort: -1,
    };
    const fragOff = getUint(b, 6, 2) & 0x1fff;
    if (fragOff === 0) {
      if (PORT_PROTOS.has(f.proto) && total >= ihl + 4) {
        f.srcPort = getUint(b, ihl, 2);
        f.dstPort = getUint(b, ihl + 2, 2);
      } else if (f.proto === 1 && total >= ihl + 2) f.srcPort = f.dstPort = getUint(b, ihl, 2);
    }
    return f;
  }
  if (v === 6) {
    if (b.length < 40) return undefined;
    const total = 40 + getUint(b, 4, 2);
    if (total > b.length) return undefined;
    const f: Fields = {
      family: 6,
      total,
      proto: b[6]!,
      src: big(8, 16),
      dst: big(24, 16),
      srcPort: -1,
      dstPort: -1,
    };
    if (PORT_PROTOS.has(f.proto) && total >= 44) {
      f.srcPort = getUint(b, 40, 2);
      f.dstPort = getUint(b, 42, 2);
    } else if (f.proto === 58 && total >= 42) f.srcPort = f.dstPort = getUint(b, 40, 2);
    return f;
  }
  return undefined;
}

function addrBig(t: TsRange, which: 'startAddr' | 'endAddr'): bigint {
  if (t.family === 4) return BigInt(parseIpv4(t[which]));
  let x = 0n;
  for (const byte of parseIpv6(t[which]) ?? new Uint8Array(16)) x = (x << 8n) | BigInt(byte);
  return x;
}

function selectorOk(list: readonly TsRange[], f: Fields, src: boolean): boolean {
  return list.some((t) => {
    if (t.family !== f.family || (t.protocol !== 0 && t.protocol !== f.proto)) return false;
    const a = src ? f.src : f.dst;
    if (a < addrBig(t, 'startAddr') || a > addrBig(t, 'endAddr')) return false;
    if (t.startPort === 0 && t.endPort === 65535) return true;
    const port = src ? f.srcPort : f.dstPort;
    return port >= 0 && port >= t.startPort && port <= t.endPort;
  });
}

/** Padding 1, 2, 3, ... and Next Header IPv4/IPv6 (RFC 4303 §2.4, tunnel mode): inner length or -1. */
function trailerOk(pt: Uint8Array): { innerLen: number; nh: number } | undefined {
  if (pt.length < 2) return undefined;
  const nh = pt[pt.length - 1]!;
  const padLen = pt[pt.length - 2]!;
  const innerLen = pt.length - 2 - padLen;
  if (innerLen < 0) return undefined;
  for (let i = 0; i < padLen; i++) if (pt[innerLen + i] !== i + 1) return undefined;
  if (nh !== NH_IPV4 && nh !== NH_IPV6) return undefined;
  return { innerLen, nh };
}

/** Per-SA model of the replay window: the highest number delivered and those in the window. */
class WindowModel {
  top = 0n;
  readonly seen = new Set<bigint>();
  constructor(
    readonly size: number,
    readonly esn: boolean,
  ) {}

  /** RFC 4303 A2.2: the high half the receiver infers for `lo`. */
  inferHi(lo: number): number {
    if (!this.esn) return 0;
    const w = BigInt(Math.max(this.size, 32));
    const th = this.top >> 32n;
    const tl = this.top & 0xffffffffn;
    const l = BigInt(lo);
    if (tl >= w - 1n) return Number(l >= tl - w + 1n ? th : th + 1n);
    return Number(l >= tl - w + 1n + 0x1_0000_0000n ? th - 1n : th);
  }

  fresh(hi: number, lo: number): boolean {
    if (hi < 0 || hi > 0xffffffff) return false;
    const x = (BigInt(hi) << 32n) | BigInt(lo);
    if (x === 0n) return false;
    if (this.size === 0) return true;
    if (x > this.top) return true;
    if (this.top - x >= BigInt(this.size)) return false;
    return !this.seen.has(x);
  }

  accept(hi: number, lo: number): void {
    const x = (BigInt(hi) << 32n) | BigInt(lo);
    if (x > this.top) this.top = x;
    if (this.size === 0) return;
    this.seen.add(x);
    if (this.seen.size > 2 * this.size + 64)
      for (const s of this.seen) if (this.top - s >= BigInt(this.size)) this.seen.delete(s);
  }
}

// ---- the target ------------------------------------------------------------------------------------

const MODE_RAW = 0;
const MODE_SEALED = 1;
/** mode, SA index, seq (4), options, seal options, IV byte */
const IN_HDR = 9;

class FakeTun {
  readonly written: Uint8Array[] = [];
  write(buf: Uint8Array, off: number, len: number): number {
    this.written.push(buf.slice(off, off + len));
    return len;
  }
}

interface Path {
  dp: EspDatapath;
  tun: FakeTun;
  events: KernelEvent[];
  sas: SaState[];
  models: WindowModel[];
}

class EspInputInstance implements FuzzInstance {
  private specs = saSpecs();
  private readonly clock = new ManualClock(1_000_000);
  private paths: Path[] = [];
  private readonly captured = capturedEsp();
  private readonly inners: Uint8Array[];
  private readonly counts = { delivered: 0, dropped: 0, sealed: 0, raw: 0 };
  private readonly dropsByReason: Record<string, number> = {};

  constructor() {
    this.inners = this.captured.map((e) => e.inner);
    this.build();
  }

  private build(): void {
    this.specs = saSpecs();
    const impls: EspCryptoImpl[] = ['auto', 'node'];
    this.paths = impls.map((impl) => {
      const events: KernelEvent[] = [];
      const dp = new EspDatapath({ impl, clock: this.clock, emit: (e) => events.push(e) });
      const tun = new FakeTun();
      dp.tun = tun;
      const sas = this.specs.map((s) => dp.table.addSa(s));
      // The outbound half of each CHILD_SA (for the NAT mapping check on ESP-in-UDP).
      for (const s of this.specs)
        dp.table.addSa({
          ...s,
          inbound: false,
          spi: (s.spi ^ 0x5a5a5a5a) >>> 0,
          src: s.dst,
          dst: s.src,
          srcTs: s.dstTs,
          dstTs: s.srcTs,
        });
      const models = sas.map((sa, i) => new WindowModel(sa.replay!.size, this.specs[i]!.esn));
      return { dp, tun, events, sas, models };
    });
  }

  generate(rng: Rng): Uint8Array {
    const h = new Uint8Array(IN_HDR);
    const path = rng.int(2);
    const i = rng.int(this.specs.length);
    const spec = this.specs[i]!;
    const model = this.paths[path]!.models[i]!;
    h[1] = i;
    h[6] = path | (rng.chance(0.1) ? rng.int(4) << 1 : 0);
    // A sequence number near the window: the next ones, inside it (maybe replays), just below it,
    // far ahead, 0, the wrap-around.
    const top = Number(model.top & 0xffffffffn);
    const win = Math.max(model.size, 32);
    // Without ESN a jump to near 2^32 exhausts the SA until the next checkpoint: rarely.
    const far = spec.esn || rng.chance(0.1);
    const pick = rng.int(100);
    let seq =
      pick < 55
        ? top + 1 + rng.int(3)
        : pick < 75
          ? top - rng.int(win)
          : pick < 85
            ? top - win - rng.int(3)
            : pick < 90
              ? top + rng.pick(far ? [win, win + 1, 0x10000, 0x7fffffff] : [win, win + 1, 0x100])
              : pick < 97
                ? rng.pick(far ? [0, 1, 2, 0xffffffff, 0xfffffffe] : [0, 1, 2])
                : far
                  ? rng.u32()
                  : top + rng.int(0x10000);
    if (!far && (seq < 0 || seq > 0xffffffff)) seq = top + 1;
    putUint(h, 2, 4, seq >>> 0);
    h[8] = rng.int(256);
    if (rng.chance(0.25)) {
      // raw: a captured packet or a packet sealed now, then byte mutations
      h[0] = MODE_RAW;
      let pkt: Uint8Array;
      if (rng.chance(0.4)) pkt = rng.pick(this.captured).bytes;
      else pkt = this.seal(spec, seq >>> 0, model.inferHi(seq >>> 0), this.plaintext(rng, spec), h[8]!);
      return concatBytes(
        h,
        havoc(
          rng,
          pkt,
          this.captured.map((c) => c.bytes),
          3,
          [
            { at: 0, size: 4 },
            { at: 4, size: 4 },
          ],
        ),
      );
    }
    h[0] = MODE_SEALED;
    h[7] = rng.chance(0.92) ? 0 : rng.int(4);
    return concatBytes(h, this.plaintext(rng, spec));
  }

  /** An inner packet (mutated header) with an ESP trailer (mostly right). */
  private plaintext(rng: Rng, spec: AddSaSpec): Uint8Array {
    let inner: Uint8Array;
    const r = rng.int(10);
    if (r < 3) inner = new Uint8Array(rng.pick(this.inners));
    else inner = this.buildInner(rng, spec);
    if (rng.chance(0.5)) inner = this.mutateHeader(rng, inner);
    const align = spec.alg.kind === 'cipher+integ' && spec.alg.cipher === 'aes-cbc' ? 16 : 4;
    let padLen = (align - ((inner.length + 2) % align)) % align;
    let nh = inner[0]! >> 4 === 6 ? NH_IPV6 : NH_IPV4;
    const t = rng.int(20);
    if (t === 0) padLen += align * rng.range(1, 3);
    else if (t === 1) nh = rng.pick([59, 0, 17, 50, 255, NH_IPV6, NH_IPV4]);
    const pad = Uint8Array.from({ length: padLen }, (_, i) => i + 1);
    if (t === 2 && padLen > 0) pad[rng.int(padLen)] = 0;
    const out = concatBytes(inner, pad, Uint8Array.of(padLen, nh));
    if (t === 3) out[out.length - 2] = rng.int(256);
    if (t === 4) return out.subarray(0, out.length - 1 - rng.int(Math.min(out.length, 8)));
    return out;
  }

  /** A packet between addresses in (or just outside) the SA's selectors. */
  private buildInner(rng: Rng, spec: AddSaSpec): Uint8Array {
    const src = rng.pick(spec.srcTs);
    const dst = rng.chance(0.9) ? rng.pick(spec.dstTs) : rng.pick(spec.srcTs);
    const v6 = src.family === 6;
    const proto = src.protocol || dst.protocol || rng.pick([1, 6, 17, 58, 132, 50, 0]);
    const payload = rng.pick([0, 1, 2, 3, 4, 8, 20, 64]);
    const b = new Uint8Array((v6 ? 40 : 20) + payload);
    const addr = (t: TsRange): Uint8Array => {
      const lo = addrBig(t, 'startAddr');
      const hi = addrBig(t, 'endAddr');
      const span = hi - lo;
      let x = lo + (span > 0n ? BigInt(rng.u32()) % (span + 1n) : 0n);
      const edge = rng.int(8);
      if (edge === 0) x = lo;
      else if (edge === 1) x = hi;
      else if (edge === 2) x = lo - 1n;
      else if (edge === 3) x = hi + 1n;
      const n = v6 ? 16 : 4;
      const out = new Uint8Array(n);
      for (let i = n - 1; i >= 0; i--) {
        out[i] = Number(x & 0xffn);
        x >>= 8n;
      }
      return out;
    };
    const port = (t: TsRange): number =>
      rng.pick([t.startPort, t.endPort, t.startPort - 1, t.endPort + 1, rng.int(65536)]) & 0xffff;
    if (v6) {
      b[0] = 0x60;
      putUint(b, 4, 2, payload);
      b[6] = proto;
      b[7] = 64;
      b.set(addr(src), 8);
      b.set(addr(dst), 24);
    } else {
      b[0] = 0x45;
      putUint(b, 2, 2, b.length);
      b[8] = 64;
      b[9] = proto;
      b.set(addr(src), 12);
      b.set(addr(dst), 16);
    }
    const t = v6 ? 40 : 20;
    if (payload >= 4) {
      if (proto === 1 || proto === 58) b[t] = rng.pick([8, 0, 128, 129, 3, rng.int(256)]);
      else {
        putUint(b, t, 2, port(src));
        putUint(b, t + 2, 2, port(dst));
      }
    }
    return b;
  }

  private mutateHeader(rng: Rng, b: Uint8Array): Uint8Array {
    const v6 = b[0]! >> 4 === 6;
    const out = new Uint8Array(b);
    switch (rng.int(9)) {
      case 0: // version
        out[0] = (rng.pick([4, 6, 0, 5, 15]) << 4) | (out[0]! & 15);
        break;
      case 1: // IHL
        if (!v6) out[0] = (out[0]! & 0xf0) | rng.int(16);
        break;
      case 2: // total / payload length
        putUint(
          out,
          v6 ? 4 : 2,
          2,
          rng.pick([0, 1, 19, 20, 39, 40, out.length, out.length + 1, out.length - 1, 0xffff]),
        );
        break;
      case 3: // protocol
        out[v6 ? 6 : 9] = rng.pick([0, 1, 6, 17, 58, 132, 136, 44, 255]);
        break;
      case 4: // fragment offset / flags
        if (!v6) putUint(out, 6, 2, rng.pick([0x2000, 0x0001, 0x1fff, 0x4000, rng.int(65536)]));
        break;
      case 5: // truncate
        return out.subarray(0, rng.int(out.length + 1));
      case 6: // extend
        return concatBytes(out, rng.bytes(rng.small(8) * 4));
      default:
        return havoc(rng, out, this.inners, 2, [
          { at: 2, size: 2 },
          { at: 4, size: 2 },
        ]);
    }
    return out;
  }

  private seal(spec: AddSaSpec, seqLo: number, seqHi: number, pt: Uint8Array, ivByte: number): Uint8Array {
    const iv = new Uint8Array(16).fill(ivByte);
    putUint(iv, 4, 4, seqLo);
    return sealRaw(spec, seqLo, seqHi, pt, iv);
  }

  run(input: Uint8Array): void {
    if (input.length < IN_HDR) return;
    const path = this.paths[input[6]! & 1]!;
    const i = input[1]! % this.specs.length;
    const spec = this.specs[i]!;
    const seqLo = getUint(input, 2, 4);
    const body = input.subarray(IN_HDR);
    const remote = { address: spec.src, port: 4500 + ((input[6]! >> 1) & 3) };
    const local = { address: spec.dst, port: 4500 };
    let pkt: Uint8Array;
    let sealed: { opts: number; pt: Uint8Array } | undefined;
    if (input[0]! % 2 === MODE_RAW) {
      this.counts.raw++;
      pkt = new Uint8Array(body);
    } else {
      this.counts.sealed++;
      const hi = path.models[i]!.inferHi(seqLo);
      sealed = { opts: input[7]!, pt: body };
      pkt = this.seal(spec, seqLo, (sealed.opts & 2 ? hi + 1 : hi) >>> 0, body, input[8]!);
      if (sealed.opts & 1) pkt[pkt.length - 1] = pkt[pkt.length - 1]! ^ 1;
    }
    // The SA the packet is for, as the model sees it (by SPI).
    const spi = pkt.length >= 4 ? getUint(pkt, 0, 4) : -1;
    const j = this.specs.findIndex((x) => x.spi === spi);
    const sa = j >= 0 ? path.sas[j]! : undefined;
    const model = j >= 0 ? path.models[j]! : undefined;
    const lo = pkt.length >= 8 ? getUint(pkt, 4, 4) : 0;
    const hi = model ? model.inferHi(lo) : 0;
    const fresh = model ? model.fresh(hi, lo) : false;
    const expired = sa?.hardFired ?? false;
    const expect =
      sealed && sa ? this.expectation(this.specs[j]!, sa, fresh, sealed.opts, sealed.pt, pkt) : undefined;

    const before = this.drops(path);
    const written = path.tun.written.length;
    path.dp.inbound(local, remote, pkt);
    const after = this.drops(path);
    const changed = Object.keys(after).filter((k) => after[k] !== before[k]);
    const dropped = changed.reduce((n, k) => n + (after[k] ?? 0) - (before[k] ?? 0), 0);
    const delivered = path.tun.written.splice(written);
    invariant(
      dropped + delivered.length === 1,
      'one outcome per packet',
      () => `${changed.join(',')} and ${delivered.length} packets`,
    );
    const reason = changed[0]?.split(':')[1];
    // Authenticated: the ICV verified, so the window moved, whatever became of the inner packet.
    const authenticated =
      delivered.length === 1 ||
      (sa !== undefined &&
        (reason === 'bad-padding' ||
          reason === 'bad-next-header' ||
          reason === 'selector' ||
          reason === 'dummy' ||
          (reason === 'malformed' && pkt.length >= sa.crypto.minLength)));
    if (authenticated) {
      invariant(sa && model, 'accepted a packet for an unknown SPI', () => spi.toString(16));
      invariant(!expired, 'accepted a packet on an expired SA', () => spec.name);
      invariant(
        fresh,
        'accepted a replayed or too old packet',
        () => `SA ${sa.name}, seq ${hi}:${lo}, top ${model.top}`,
      );
      model.accept(hi, lo);
    }
    if (sealed && expect) {
      invariant(
        authenticated,
        'a correctly sealed packet failed authentication',
        () => `SA ${spec.name}, seq ${hi}:${lo}: ${reason}`,
      );
    }
    if (sealed && !expect && sa && authenticated)
      invariant(
        !this.forged(this.specs[j]!, sealed.opts),
        'a packet with a wrong ICV was accepted',
        () => spec.name,
      );
    this.checkBounded(path);
    if (delivered.length === 0) {
      this.counts.dropped++;
      invariant(
        !expect?.inner,
        'a valid packet was dropped',
        () => `SA ${spec.name}, seq ${hi}:${lo}: ${reason}`,
      );
      return;
    }
    this.counts.delivered++;
    const out = delivered[0]!;
    const s = this.specs[j]!;
    const f = innerFields(out);
    invariant(f && f.total === out.length, 'delivered a malformed inner packet', () =>
      Buffer.from(out).toString('hex'),
    );
    invariant(
      selectorOk(s.srcTs, f, true) && selectorOk(s.dstTs, f, false),
      'delivered outside the selectors',
      () => `SA ${s.name}: ${Buffer.from(out.subarray(0, 48)).toString('hex')}`,
    );
    if (sealed) {
      invariant(
        expect?.inner,
        'delivered a packet the model refuses',
        () => `SA ${s.name}: ${Buffer.from(sealed.pt).toString('hex')}`,
      );
      invariant(
        Buffer.compare(out, expect.inner) === 0,
        'delivered something else than was sealed',
        () => `${Buffer.from(out).toString('hex')} != ${Buffer.from(expect.inner!).toString('hex')}`,
      );
    }
  }

  /** The ICV or the ESN high half was deliberately wrong. */
  private forged(spec: AddSaSpec, opts: number): boolean {
    return (opts & 1) !== 0 || ((opts & 2) !== 0 && spec.esn);
  }

  /**
   * What a correct receiver does with a packet sealed here: authenticate it (`inner` undefined:
   * then drop it for its content), deliver `inner`, or (undefined) refuse it before the ICV.
   */
  private expectation(
    spec: AddSaSpec,
    sa: SaState,
    fresh: boolean,
    opts: number,
    pt: Uint8Array,
    pkt: Uint8Array,
  ): { inner?: Uint8Array } | undefined {
    if (this.forged(spec, opts) || sa.hardFired || !fresh) return undefined;
    const cbc = spec.alg.kind === 'cipher+integ' && spec.alg.cipher === 'aes-cbc';
    const align = cbc ? 16 : 4;
    if (pt.length < align || pt.length % align !== 0 || pkt.length < sa.crypto.minLength) return undefined;
    const tr = trailerOk(pt);
    if (!tr) return {};
    const inner = pt.subarray(0, tr.innerLen);
    const f = innerFields(inner);
    if (!f || f.family !== (tr.nh === NH_IPV4 ? 4 : 6)) return {};
    if (!selectorOk(spec.srcTs, f, true) || !selectorOk(spec.dstTs, f, false)) return {};
    return { inner: inner.slice(0, f.total) };
  }

  /** Every drop counter of the path, by "<sa>:<reason>" ("-" for drops that belong to no SA). */
  private drops(p: Path): Record<string, number> {
    const out: Record<string, number> = {};
    for (const r of DROP_REASONS) if (p.dp.globalDrops[r]) out[`-:${r}`] = p.dp.globalDrops[r];
    for (const s of p.dp.table.sas.values())
      for (const r of DROP_REASONS) if (s.drops[r]) out[`${s.key}:${r}`] = s.drops[r];
    return out;
  }

  /**
   * The once-per-kind drop log remembers what it logged: per SA it may hold a few keys, but nothing
   * of an SA that is gone (else it grows with every rekey), and the global part is bounded.
   */
  private checkBounded(p: Path): void {
    const logged = (p.dp as unknown as { logged: Set<string> }).logged;
    let global = 0;
    for (const k of logged) {
      const parts = k.split('|');
      if (parts.length < 3) {
        global++;
        continue;
      }
      const sa = `${parts[0]}|${parts[1]}`;
      invariant(
        p.dp.table.sas.has(sa),
        'the drop log keeps entries of deleted SAs',
        () => `${k} (${logged.size} keys)`,
      );
    }
    invariant(
      global <= DROP_REASONS.length,
      'unbounded growth',
      () => `drop log holds ${global} global keys`,
    );
    invariant(p.events.length < 100_000, 'unbounded growth', () => `${p.events.length} kernel events`);
  }

  /** Time passes; every 50 inputs one SA is rekeyed: deleted, and added again under a new SPI. */
  between(j: number): void {
    if (j % 100 === 0) this.clock.advance(1000);
    if (j % 50 !== 0) return;
    const i = (j / 50) % this.specs.length;
    const old = this.specs[i]!;
    const spec = { ...old, spi: (old.spi + 0x10000) >>> 0 };
    this.specs[i] = spec;
    for (const p of this.paths) {
      this.tallySa(p.sas[i]!);
      p.dp.table.delSa(p.sas[i]!.key);
      p.sas[i] = p.dp.table.addSa(spec);
      p.models[i] = new WindowModel(p.sas[i]!.replay!.size, spec.esn);
    }
  }

  /** Fresh SAs (windows, lifetimes) and nothing left over. */
  checkpoint(): void {
    this.tally();
    this.build();
  }

  private tallySa(sa: { drops: Record<string, number> }): void {
    for (const r of DROP_REASONS)
      if (sa.drops[r]) this.dropsByReason[r] = (this.dropsByReason[r] ?? 0) + sa.drops[r]!;
  }

  private tally(): void {
    for (const p of this.paths) {
      this.tallySa({ drops: p.dp.globalDrops });
      for (const s of p.dp.table.sas.values()) this.tallySa(s);
    }
  }

  stats(): Record<string, number> {
    this.tally();
    const drops = Object.fromEntries(Object.entries(this.dropsByReason).map(([k, v]) => [`drop:${k}`, v]));
    return { ...this.counts, ...drops };
  }
}

export const espInputTarget: FuzzTarget = {
  name: 'esp-input',
  about: 'userspace ESP input with live SAs: replay window, ICV, trailer, inner header, selectors',
  stateless: false,
  checkpointEvery: 2_000,
  create: () => new EspInputInstance(),
};
