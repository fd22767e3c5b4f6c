// Target `xfrm-decode`: what ikegw reads from the kernel over NETLINK_XFRM — the netlink framing
// (decodeNlMessages), message bodies and attributes (decodeBody, decodeAttrs, the xfrm_algo*,
// replay state, templates and other attribute decoders), kernel events (decodeEvent and
// XfrmListener.receive), the client's reply handling (XfrmClient: ACK/NLMSG_ERROR/NLMSG_DONE,
// typed replies) and the installer's use of replies (querySa, updateSa with GETSA/GETAE, flush
// with dumps, policies), the last two against a fake kernel that answers each request with the
// next datagram of the input.
//
// Valid messages are built with the encoders first (installer.buildSa, the struct codecs), then
// mutated as a model (messages, struct fields, attributes: removed, duplicated, retyped, lengths
// edited) and as bytes.
//
// Invariants: decoders throw nothing but DecodeError; the listener never throws and delivers only
// well-formed events for our reqid range; every client call and installer operation settles with
// a result or a KernelError (never another exception, never a hang); the client's bookkeeping of
// pending requests is empty once a call has settled.
import { DecodeError, KernelError } from '../../common/errors.js';
import { decodeNlMessages, encodeNlMessage, type NlMessage, XfrmClient } from '../../esp/xfrm/client.js';
import { DEFAULT_REQID_RANGE, XfrmInstaller } from '../../esp/xfrm/installer.js';
import { decodeEvent, XfrmListener } from '../../esp/xfrm/listener.js';
import {
  AF_INET,
  AF_INET6,
  addrToXfrm,
  decodeAlgo,
  decodeAlgoAead,
  decodeAlgoAuth,
  decodeAttrs,
  decodeBody,
  decodeReplayEsn,
  decodeTmpls,
  decodeU32,
  encodeAttrs,
  encodeReplayEsn,
  encodeU32,
  IPPROTO_ESP,
  MSG_BODY,
  NLMSG_HDRLEN,
  type NlAttr,
  NlMsg,
  nlAlign,
  replayEsnFor,
  type StructCodec,
  XfrmAeventId,
  Xfrma,
  XfrmEncapTmpl,
  XfrmLifetimeCur,
  XfrmMark,
  XfrmMsg,
  XfrmReplayState,
  XfrmUserAcquire,
  XfrmUserExpire,
  XfrmUserMapping,
  XfrmUserpolicyInfo,
  XfrmUserpolicyType,
  XfrmUsersaInfo,
  XfrmUserTmpl,
  xfrmToAddr,
} from '../../esp/xfrm/structs.js';
import { ChannelError, type DatagramChannel } from '../../esp/xfrm/transport.js';
import type { AddSaSpec, KernelEvent, PolicySpec, TsRange } from '../../ike/ports.js';
import { type FuzzInstance, type FuzzTarget, invariant } from '../harness.js';
import { concatBytes, getUint, havoc, mutateLength, putUint } from '../mutate.js';
import type { Rng } from '../rng.js';

const LE = true; // x86-64/arm64: the table's host order (structs.ts asks the OS; tests run on LE)
const RANGE = DEFAULT_REQID_RANGE;

interface Msg {
  type: number;
  flags: number;
  seq: number;
  pid: number;
  /** The fixed struct (or the whole payload for types without one). */
  body: Uint8Array;
  attrs: NlAttr[];
}

function ts4(a: string, b: string): TsRange {
  return { family: 4, protocol: 0, startPort: 0, endPort: 65535, startAddr: a, endAddr: b };
}

function spec(o: Partial<AddSaSpec> = {}): AddSaSpec {
  return {
    reqid: 1,
    src: '198.51.100.1',
    dst: '172.30.0.2',
    spi: 0xc0000001,
    protocol: 'esp',
    mode: 'tunnel',
    alg: { kind: 'aead', name: 'aes-gcm-16', keyBits: 128 },
    encKey: new Uint8Array(20).fill(1),
    integKey: new Uint8Array(0),
    encap: { sport: 4500, dport: 4500 },
    esn: true,
    replayWindow: 64,
    inbound: true,
    srcTs: [ts4('192.168.100.0', '192.168.100.255')],
    dstTs: [ts4('10.10.0.0', '10.10.255.255')],
    lifetime: {},
    name: 'fuzz',
    ...o,
  };
}

function policy(o: Partial<PolicySpec> = {}): PolicySpec {
  return {
    reqid: 1,
    direction: 'out',
    src: ts4('10.10.0.0', '10.10.255.255'),
    dst: ts4('192.168.100.0', '192.168.100.255'),
    tunnelSrc: '172.30.0.2',
    tunnelDst: '198.51.100.1',
    trap: false,
    ...o,
  };
}

function tmpl(reqid: number, v6 = false): Uint8Array {
  const t = XfrmUserTmpl.zero();
  const d = addrToXfrm(v6 ? '2001:db8::1' : '198.51.100.1');
  t.id = { daddr: d.bytes, spi: 0, proto: IPPROTO_ESP };
  t.family = d.family;
  t.saddr = addrToXfrm(v6 ? '2001:db8::2' : '172.30.0.2').bytes;
  t.reqid = reqid;
  t.mode = 1;
  t.aalgos = t.ealgos = t.calgos = 0xffffffff;
  return XfrmUserTmpl.encode(t);
}

/** Valid messages of every kind ikegw receives, built with the encoders under test. */
function seedMessages(): Msg[] {
  const inst = new XfrmInstaller(undefined as unknown as XfrmClient);
  const sa = (s: AddSaSpec, extra: NlAttr[] = []): Msg => {
    const { info, attrs } = inst.buildSa(s);
    info.curlft = { bytes: 1234n, packets: 12n, add_time: 1_700_000_000n, use_time: 0n };
    return {
      type: XfrmMsg.NEWSA,
      flags: 0,
      seq: 0,
      pid: 0,
      body: XfrmUsersaInfo.encode(info),
      attrs: [...attrs, ...extra],
    };
  };
  const kreq = RANGE.base + 1;
  const out: Msg[] = [
    sa(spec(), [
      { type: Xfrma.LTIME_VAL, data: XfrmLifetimeCur.encode(XfrmLifetimeCur.zero()) },
      { type: Xfrma.MARK, data: XfrmMark.encode({ v: 1, m: 0xffffffff }) },
      { type: Xfrma.SA_EXTRA_FLAGS, data: encodeU32(1) },
      { type: Xfrma.LASTUSED, data: new Uint8Array(8) },
    ]),
    sa(
      spec({
        alg: { kind: 'cipher+integ', cipher: 'aes-cbc', keyBits: 256, integ: 'hmac-sha2-256-128' },
        encKey: new Uint8Array(32).fill(2),
        integKey: new Uint8Array(32).fill(3),
        esn: false,
        replayWindow: 32,
        encap: undefined,
        src: '2001:db8::1',
        dst: '2001:db8::2',
      }),
      [{ type: Xfrma.REPLAY_VAL, data: XfrmReplayState.encode({ oseq: 5, seq: 7, bitmap: 0xff }) }],
    ),
  ];
  const pi = XfrmUserpolicyInfo.zero();
  pi.sel.family = AF_INET;
  pi.sel.daddr = addrToXfrm('192.168.100.0').bytes;
  pi.sel.prefixlen_d = 24;
  pi.dir = 1;
  out.push({
    type: XfrmMsg.NEWPOLICY,
    flags: 0,
    seq: 0,
    pid: 0,
    body: XfrmUserpolicyInfo.encode(pi),
    attrs: [
      { type: Xfrma.TMPL, data: concatBytes(tmpl(kreq), tmpl(kreq + 1, true)) },
      { type: Xfrma.POLICY_TYPE, data: XfrmUserpolicyType.encode({ type: 0, reserved1: 0, reserved2: 0 }) },
    ],
  });
  const acq = XfrmUserAcquire.zero();
  acq.id = { daddr: addrToXfrm('198.51.100.1').bytes, spi: 0, proto: IPPROTO_ESP };
  acq.sel.family = AF_INET;
  acq.sel.saddr = addrToXfrm('10.10.1.1').bytes;
  acq.sel.daddr = addrToXfrm('192.168.100.7').bytes;
  acq.policy = pi;
  out.push({
    type: XfrmMsg.ACQUIRE,
    flags: 0,
    seq: 0,
    pid: 0,
    body: XfrmUserAcquire.encode(acq),
    attrs: [{ type: Xfrma.TMPL, data: tmpl(kreq) }],
  });
  const exp = XfrmUserExpire.zero();
  exp.state = XfrmUsersaInfo.decode(out[0]!.body);
  exp.state.reqid = kreq;
  exp.hard = 1;
  out.push({ type: XfrmMsg.EXPIRE, flags: 0, seq: 0, pid: 0, body: XfrmUserExpire.encode(exp), attrs: [] });
  const map = XfrmUserMapping.zero();
  map.id = { daddr: addrToXfrm('172.30.0.2').bytes, spi: 0xc0000002, family: AF_INET, proto: IPPROTO_ESP };
  map.reqid = kreq;
  map.old_saddr = addrToXfrm('198.51.100.1').bytes;
  map.new_saddr = addrToXfrm('198.51.100.9').bytes;
  map.old_sport = 4500;
  map.new_sport = 31000;
  out.push({ type: XfrmMsg.MAPPING, flags: 0, seq: 0, pid: 0, body: XfrmUserMapping.encode(map), attrs: [] });
  const ae = XfrmAeventId.zero();
  ae.sa_id = { daddr: addrToXfrm('172.30.0.2').bytes, spi: 0xc0000001, family: AF_INET, proto: IPPROTO_ESP };
  out.push({
    type: XfrmMsg.NEWAE,
    flags: 0,
    seq: 0,
    pid: 0,
    body: XfrmAeventId.encode(ae),
    attrs: [
      { type: Xfrma.REPLAY_ESN_VAL, data: encodeReplayEsn({ ...replayEsnFor(128), seq: 77, oseq: 3 }) },
      {
        type: Xfrma.LTIME_VAL,
        data: XfrmLifetimeCur.encode({ bytes: 99n, packets: 3n, add_time: 1n, use_time: 2n }),
      },
      { type: Xfrma.REPLAY_THRESH, data: encodeU32(32) },
    ],
  });
  const err = (errno: number): Msg => ({
    type: NlMsg.ERROR,
    flags: 0,
    seq: 0,
    pid: 0,
    body: concatBytes(i32(-errno), new Uint8Array(16)),
    attrs: [],
  });
  out.push(err(0), err(2), err(17), err(1), {
    type: NlMsg.DONE,
    flags: 2,
    seq: 0,
    pid: 0,
    body: i32(0),
    attrs: [],
  });
  return out;
}

function i32(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setInt32(0, v, LE);
  return b;
}

function hasStruct(type: number): StructCodec<unknown> | undefined {
  const c = MSG_BODY[type] as StructCodec<unknown> | { size: number } | undefined;
  return c && 'decode' in c ? c : undefined;
}

function serialize(msgs: readonly Msg[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const m of msgs) {
    const payload = m.attrs.length ? concatBytes(padTo4(m.body), encodeAttrs(m.attrs)) : m.body;
    const b = encodeNlMessage(m.type, m.flags, m.seq, payload);
    new DataView(b.buffer).setUint32(12, m.pid, LE);
    parts.push(padTo4(b));
  }
  return concatBytes(...parts);
}

function padTo4(b: Uint8Array): Uint8Array {
  if (b.length % 4 === 0) return b;
  const out = new Uint8Array(nlAlign(b.length));
  out.set(b);
  return out;
}

/** Offsets of length/count/family fields in a struct body (for targeted edits). */
function bodyFields(type: number): Array<{ at: number; size: 1 | 2 | 4; le: boolean }> {
  const f = (at: number, size: 1 | 2 | 4) => ({ at, size, le: LE });
  switch (type) {
    case XfrmMsg.NEWSA:
    case XfrmMsg.UPDSA:
      return [f(40, 2), f(212, 2), f(56 + 20, 1), f(208, 4), f(214, 1), f(215, 1), f(216, 1)];
    case XfrmMsg.NEWPOLICY:
      return [f(40, 2), f(160, 1), f(152, 4)];
    case XfrmMsg.ACQUIRE:
      return [f(20, 1), f(40 + 16 + 40, 2), f(96 + 40, 2)];
    case XfrmMsg.EXPIRE:
      return [f(212, 2), f(208, 4), f(56 + 20, 1), f(224, 1)];
    case XfrmMsg.MAPPING:
      return [f(20, 2), f(22, 1), f(24, 4)];
    case NlMsg.ERROR:
    case NlMsg.DONE:
      return [f(0, 4)];
    default:
      return [];
  }
}

/** Length/count fields inside attribute payloads. */
function attrFields(type: number): Array<{ at: number; size: 1 | 2 | 4; le: boolean }> {
  switch (type) {
    case Xfrma.ALG_AEAD:
    case Xfrma.ALG_AUTH_TRUNC:
      return [
        { at: 64, size: 4, le: LE },
        { at: 68, size: 4, le: LE },
      ];
    case Xfrma.ALG_CRYPT:
    case Xfrma.ALG_AUTH:
    case Xfrma.ALG_COMP:
      return [{ at: 64, size: 4, le: LE }];
    case Xfrma.REPLAY_ESN_VAL:
      return [
        { at: 0, size: 4, le: LE },
        { at: 20, size: 4, le: LE },
      ];
    case Xfrma.TMPL:
      return [
        { at: 24, size: 2, le: LE },
        { at: 44, size: 4, le: LE },
        { at: 20, size: 1, le: LE },
      ];
    default:
      return [];
  }
}

const ATTR_TYPES = Object.values(Xfrma);
const MSG_TYPES = [...Object.values(XfrmMsg), NlMsg.ERROR, NlMsg.DONE, NlMsg.NOOP, NlMsg.OVERRUN, 0, 0xffff];

function mutateMessages(rng: Rng, msgs: Msg[], seeds: readonly Msg[]): void {
  const n = msgs.length;
  const i = rng.int(Math.max(n, 1));
  const m = msgs[i];
  switch (rng.int(12)) {
    case 0:
      if (n > 1) msgs.splice(i, 1);
      break;
    case 1:
      if (m) msgs.splice(rng.int(n + 1), 0, structuredClone(m));
      break;
    case 2:
      msgs.splice(rng.int(n + 1), 0, structuredClone(rng.pick(seeds)));
      break;
    case 3:
      if (m) m.type = rng.pick(MSG_TYPES);
      break;
    case 4:
      if (m) m.flags = rng.pick([0, 2, 0x100, 0x300, 0xffff, rng.int(65536)]);
      break;
    case 5: {
      // a struct field
      if (!m) break;
      const fields = bodyFields(m.type);
      if (fields.length) {
        const f = rng.pick(fields);
        m.body = new Uint8Array(m.body);
        putUint(
          m.body,
          f.at,
          f.size,
          rng.chance(0.5)
            ? mutateLength(rng, getUint(m.body, f.at, f.size, LE), f.size)
            : rng.pick([0, 2, 10, 50, 0xff, 0xffff]),
          LE,
        );
      } else m.body = havoc(rng, m.body, [], 2);
      break;
    }
    case 6: // truncate or extend the fixed part
      if (m)
        m.body = rng.chance(0.6)
          ? m.body.subarray(0, rng.int(m.body.length + 1))
          : concatBytes(m.body, rng.bytes(rng.small(8) * 4));
      break;
    case 7: // remove / duplicate / reorder attributes
      if (m?.attrs.length) {
        const j = rng.int(m.attrs.length);
        if (rng.chance(0.4)) m.attrs.splice(j, 1);
        else if (rng.chance(0.5)) m.attrs.push(structuredClone(m.attrs[j]!));
        else rng.shuffle(m.attrs);
      }
      break;
    case 8: // retype an attribute or borrow one from another message
      if (!m) break;
      if (m.attrs.length && rng.chance(0.5))
        m.attrs[rng.int(m.attrs.length)]!.type = rng.pick(ATTR_TYPES) | (rng.chance(0.1) ? 0x8000 : 0);
      else {
        const donor = rng.pick(seeds).attrs;
        if (donor.length) m.attrs.push(structuredClone(rng.pick(donor)));
      }
      break;
    case 9: {
      // an attribute's content
      if (!m?.attrs.length) break;
      const a = m.attrs[rng.int(m.attrs.length)]!;
      const fields = attrFields(a.type);
      if (fields.length && rng.chance(0.6)) {
        const f = rng.pick(fields);
        a.data = new Uint8Array(a.data);
        putUint(a.data, f.at, f.size, mutateLength(rng, getUint(a.data, f.at, f.size, LE), f.size), LE);
      } else a.data = havoc(rng, a.data, [], 3);
      break;
    }
    case 10:
      if (m) m.seq = rng.pick([0, 1, 2, 3, 0xffffffff]);
      break;
    default:
      if (m) m.pid = rng.u32();
  }
}

/** Decodes an attribute's payload the way ikegw's readers would. */
function decodeAttr(a: NlAttr): unknown {
  switch (a.type) {
    case Xfrma.ALG_AEAD:
      return decodeAlgoAead(a.data);
    case Xfrma.ALG_AUTH_TRUNC:
      return decodeAlgoAuth(a.data);
    case Xfrma.ALG_CRYPT:
    case Xfrma.ALG_AUTH:
    case Xfrma.ALG_COMP:
      return decodeAlgo(a.data);
    case Xfrma.REPLAY_ESN_VAL:
      return decodeReplayEsn(a.data);
    case Xfrma.REPLAY_VAL:
      return XfrmReplayState.decode(a.data);
    case Xfrma.TMPL:
      return decodeTmpls(a.data);
    case Xfrma.ENCAP:
      return XfrmEncapTmpl.decode(a.data);
    case Xfrma.LTIME_VAL:
      return XfrmLifetimeCur.decode(a.data);
    case Xfrma.MARK:
      return XfrmMark.decode(a.data);
    case Xfrma.POLICY_TYPE:
      return XfrmUserpolicyType.decode(a.data);
    case Xfrma.REPLAY_THRESH:
    case Xfrma.ETIMER_THRESH:
    case Xfrma.SA_EXTRA_FLAGS:
    case Xfrma.IF_ID:
    case Xfrma.TFCPAD:
      return decodeU32(a.data);
    default:
      return a.data;
  }
}

function onlyDecodeErrors(what: string, f: () => void): void {
  try {
    f();
  } catch (e) {
    invariant(e instanceof DecodeError, `${what} threw something else than DecodeError`, () =>
      String((e as Error)?.stack ?? e),
    );
  }
}

/** A DatagramChannel whose "kernel" answers each request with the next scripted datagram. */
class FakeKernel implements DatagramChannel {
  readonly label = 'fuzz';
  private cb: ((d: Uint8Array) => void) | undefined;
  private closed = false;
  requests = 0;
  constructor(
    private readonly script: Uint8Array[],
    private readonly patchSeq: boolean,
  ) {}
  send(d: Uint8Array): Promise<void> {
    // As a closed netlink socket does.
    if (this.closed) return Promise.reject(new ChannelError(9, 'EBADF', 'socket closed'));
    this.requests++;
    const seq = getUint(d, 8, 4, LE);
    const dump = (getUint(d, 6, 2, LE) & 0x300) === 0x300;
    const next = this.script.shift();
    let reply: Uint8Array;
    if (next) {
      reply = new Uint8Array(next);
      if (this.patchSeq) {
        // Every message of the reply answers this request.
        let off = 0;
        while (off + NLMSG_HDRLEN <= reply.length) {
          putUint(reply, off + 8, 4, seq, LE);
          const len = getUint(reply, off, 4, LE);
          if (len < NLMSG_HDRLEN) break;
          off += Math.ceil(len / 4) * 4; // not nlAlign: lengths up to 2^32 here
        }
      }
    } else {
      // Script exhausted: a plain ACK (or the end of a dump).
      const body = concatBytes(i32(0), d.subarray(0, 16));
      reply = encodeNlMessage(dump ? NlMsg.DONE : NlMsg.ERROR, 0, seq, dump ? i32(0) : body);
    }
    queueMicrotask(() => this.cb?.(reply));
    return Promise.resolve();
  }
  onDatagram(cb: (d: Uint8Array) => void): void {
    this.cb = cb;
  }
  join(): Promise<void> {
    return Promise.resolve();
  }
  onLost(): void {}
  setRef(): void {}
  close(): void {
    this.closed = true;
    this.cb = undefined;
  }
}

const CLIENT_OPS = [
  'getSa',
  'dumpSa',
  'dumpPolicy',
  'getPolicy',
  'getAe',
  'allocSpi',
  'newSa',
  'delSa',
] as const;
const INSTALLER_OPS = [
  'querySa',
  'updateSa',
  'updateSa-v6',
  'flush',
  'addPolicy',
  'delPolicy',
  'addSa',
  'delSa',
] as const;

/** Input: consumer, operation, flags, then datagrams as [u16 length][bytes]. */
const IN_HDR = 3;

function splitDatagrams(b: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let at = 0;
  while (at + 2 <= b.length && out.length < 16) {
    const len = getUint(b, at, 2);
    out.push(b.subarray(at + 2, Math.min(b.length, at + 2 + len)));
    at += 2 + len;
  }
  return out;
}

function joinDatagrams(ds: Uint8Array[]): Uint8Array {
  return concatBytes(
    ...ds.flatMap((d) => {
      const len = new Uint8Array(2);
      putUint(len, 0, 2, Math.min(d.length, 0xffff));
      return [len, d.subarray(0, 0xffff)];
    }),
  );
}

/** A call's outcome, caught at once (a rejection must not go unhandled while the fake kernel runs). */
function outcome(p: Promise<unknown>): Promise<{ error?: unknown; settled: true }> {
  return p.then(
    () => ({ settled: true as const }),
    (error: unknown) => ({ error: error ?? new Error('rejected with undefined'), settled: true as const }),
  );
}

async function settled(p: Promise<{ error?: unknown; settled: true }>, what: string): Promise<void> {
  let done = false;
  const r = await Promise.race([p, drain().then(() => undefined)]);
  if (r) done = true;
  invariant(done, 'a call never settled', () => what);
  const e = r?.error;
  if (e !== undefined)
    invariant(e instanceof KernelError, `${what} rejected with something else than KernelError`, () =>
      String((e as Error)?.stack ?? e),
    );
}

/** Lets microtask chains (fake kernel replies, installer steps) run to the end. */
async function drain(): Promise<void> {
  for (let i = 0; i < 4; i++) await new Promise<void>((r) => setImmediate(r));
}

class XfrmInstance implements FuzzInstance {
  private readonly seeds = seedMessages();
  private readonly seedBytes = this.seeds.map((m) => serialize([m]));
  private readonly counts = { decoded: 0, rejected: 0, events: 0, clientOps: 0, installerOps: 0 };

  generate(rng: Rng): Uint8Array {
    const h = new Uint8Array(IN_HDR);
    h[0] = rng.pick([0, 0, 0, 0, 1, 2]);
    h[1] = rng.int(256);
    h[2] = rng.chance(0.85) ? 1 : 0;
    const count = h[0] === 0 ? 1 : rng.small(5);
    const ds: Uint8Array[] = [];
    for (let k = 0; k < count; k++) {
      const msgs: Msg[] = [];
      for (let j = rng.small(3); j > 0; j--) msgs.push(structuredClone(rng.pick(this.seeds)));
      // Replies end with an ACK/DONE more often than not.
      if (h[0] !== 0 && rng.chance(0.6))
        msgs.push(structuredClone(this.seeds.find((m) => m.type === NlMsg.ERROR)!));
      for (let e = rng.chance(0.15) ? 0 : rng.small(4); e > 0; e--) mutateMessages(rng, msgs, this.seeds);
      let b = serialize(msgs);
      if (rng.chance(0.3)) {
        const fields: Array<{ at: number; size: 1 | 2 | 4; le: boolean }> = [];
        let off = 0;
        while (off + 16 <= b.length) {
          fields.push({ at: off, size: 4, le: LE }, { at: off + 4, size: 2, le: LE });
          const len = getUint(b, off, 4, LE);
          if (len < 16) break;
          off += Math.ceil(len / 4) * 4;
        }
        b = havoc(rng, b, this.seedBytes, 3, fields);
      }
      ds.push(b);
    }
    return concatBytes(h, joinDatagrams(ds));
  }

  async run(input: Uint8Array): Promise<void> {
    if (input.length < IN_HDR) return;
    const ds = splitDatagrams(input.subarray(IN_HDR));
    switch (input[0]! % 3) {
      case 0:
        for (const d of ds) this.decodeAll(d);
        return;
      case 1:
        return this.client(CLIENT_OPS[input[1]! % CLIENT_OPS.length]!, ds, (input[2]! & 1) === 1);
      default:
        return this.installer(INSTALLER_OPS[input[1]! % INSTALLER_OPS.length]!, ds, (input[2]! & 1) === 1);
    }
  }

  /** The decoders one by one, the event decoder, and the listener. */
  private decodeAll(d: Uint8Array): void {
    let msgs: NlMessage[] = [];
    onlyDecodeErrors('decodeNlMessages', () => {
      msgs = decodeNlMessages(d);
    });
    if (msgs.length) this.counts.decoded++;
    else this.counts.rejected++;
    for (const m of msgs) {
      invariant(
        m.payload.buffer === d.buffer && m.payload.byteOffset + m.payload.length <= d.byteOffset + d.length,
        'a message payload lies outside the datagram',
      );
      const codec = hasStruct(m.type);
      if (codec) {
        onlyDecodeErrors(`decodeBody(${codec.name})`, () => {
          const { body, attrs } = decodeBody(codec, m.payload);
          const fam = (body as { family?: number; sel?: { family: number } }).family;
          const saddr = (body as { saddr?: unknown }).saddr;
          if ((fam === AF_INET || fam === AF_INET6) && saddr instanceof Uint8Array) xfrmToAddr(fam, saddr);
          for (const a of attrs) decodeAttr(a);
        });
      }
      onlyDecodeErrors('decodeAttrs', () => {
        for (const a of decodeAttrs(m.payload)) decodeAttr(a);
      });
      onlyDecodeErrors('decodeEvent', () => {
        const ev = decodeEvent(m, RANGE);
        if (ev) this.checkEvent(ev);
      });
    }
    const events: KernelEvent[] = [];
    const listener = Reflect.construct(XfrmListener as unknown as new (...a: unknown[]) => XfrmListener, [
      new FakeKernel([], false),
      RANGE,
      () => undefined,
    ]) as XfrmListener;
    listener.setListener((ev) => events.push(ev));
    try {
      listener.receive(d);
    } catch (e) {
      throw new Error(`XfrmListener.receive threw: ${(e as Error)?.message}`, { cause: e });
    }
    for (const ev of events) this.checkEvent(ev);
    this.counts.events += events.length;
  }

  private checkEvent(ev: KernelEvent): void {
    const addr = (s: unknown) => typeof s === 'string' && s.length > 0;
    switch (ev.kind) {
      case 'acquire':
        invariant(
          Number.isInteger(ev.reqid) && ev.reqid >= 0 && ev.reqid < RANGE.span,
          'acquire for a reqid outside the range',
          () => String(ev.reqid),
        );
        invariant(addr(ev.src) && addr(ev.dst), 'acquire without addresses');
        break;
      case 'expire':
      case 'mapping':
        invariant(
          Number.isInteger(ev.spi) && ev.spi >= 0 && ev.spi <= 0xffffffff,
          `${ev.kind} with a bad SPI`,
        );
        invariant(addr(ev.dst), `${ev.kind} without an address`);
        if (ev.kind === 'mapping')
          invariant(
            addr(ev.newRemote.address) && ev.newRemote.port >= 0 && ev.newRemote.port <= 65535,
            'mapping without an endpoint',
          );
        break;
    }
  }

  private async client(op: (typeof CLIENT_OPS)[number], ds: Uint8Array[], patch: boolean): Promise<void> {
    this.counts.clientOps++;
    const k = new FakeKernel([...ds], patch);
    const c = new XfrmClient(k, { timeoutMs: 60_000 });
    const id = {
      daddr: addrToXfrm('172.30.0.2').bytes,
      spi: 0xc0000001,
      family: AF_INET,
      proto: IPPROTO_ESP,
    };
    const call = (): Promise<unknown> => {
      switch (op) {
        case 'getSa':
          return c.getSa('getSa', id);
        case 'dumpSa':
          return c.dumpSa();
        case 'dumpPolicy':
          return c.dumpPolicy();
        case 'getPolicy':
          return c.getPolicy('getPolicy', { sel: XfrmUserpolicyInfo.zero().sel, index: 0, dir: 1 });
        case 'getAe':
          return c.getAe('getAe', { sa_id: id, saddr: new Uint8Array(16), flags: 3, reqid: 0 });
        case 'allocSpi':
          return c.allocSpi({ info: XfrmUsersaInfo.zero(), min: 0x100, max: 0xffffffff });
        case 'newSa':
          return c.newSa(XfrmUsersaInfo.zero(), []);
        default:
          return c.delSa('delSa', id);
      }
    };
    const p = outcome(call());
    await drain();
    c.close(); // whatever is still pending fails with a KernelError
    await settled(p, `XfrmClient.${op}`);
    invariant(
      (c as unknown as { pending: Map<number, unknown> }).pending.size === 0,
      'requests left pending after close',
    );
  }

  private async installer(
    op: (typeof INSTALLER_OPS)[number],
    ds: Uint8Array[],
    patch: boolean,
  ): Promise<void> {
    this.counts.installerOps++;
    const k = new FakeKernel([...ds], patch);
    const c = new XfrmClient(k, { timeoutMs: 60_000 });
    const inst = new XfrmInstaller(c);
    const id = { src: '198.51.100.1', dst: '172.30.0.2', spi: 0xc0000001, protocol: 'esp' as const };
    const ops: Array<Promise<{ error?: unknown; settled: true }>> = [];
    const push = (...ps: Promise<unknown>[]): void => {
      for (const x of ps) ops.push(outcome(x));
    };
    switch (op) {
      case 'querySa':
        push(inst.querySa(id));
        break;
      case 'updateSa':
        push(inst.updateSa(id, '198.51.100.9', '172.30.0.2', { sport: 31000, dport: 4500 }));
        break;
      case 'updateSa-v6':
        push(inst.updateSa(id, '2001:db8::9', '2001:db8::1'));
        break;
      case 'flush':
        push(inst.flushOwned());
        break;
      case 'addPolicy':
        push(inst.addPolicy(policy()), inst.addPolicy(policy({ trap: true })));
        break;
      case 'delPolicy':
        push(inst.addPolicy(policy()), inst.delPolicy(policy()));
        break;
      case 'addSa':
        push(inst.addSa(spec()));
        break;
      default:
        push(inst.delSa(id));
    }
    await drain();
    c.close();
    for (const p of ops) await settled(p, `XfrmInstaller.${op}`);
  }

  stats(): Record<string, number> {
    return { ...this.counts };
  }
}

export const xfrmDecodeTarget: FuzzTarget = {
  name: 'xfrm-decode',
  about: 'XFRM netlink decoders, kernel events, client replies and installer operations on mutated messages',
  stateless: true,
  create: () => new XfrmInstance(),
};
