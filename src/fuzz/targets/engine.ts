// Target `engine`: IkeEngine.handle() with live IKE_SAs, fed mutated datagrams.
//
// Two engines run back to back (engine-pair.ts): A (cluster side) establishes two IKE_SAs with B,
// "target" (from 198.51.100.2) and "other" (from 198.51.100.3). Only B is fuzzed. Inputs are:
//   0 raw        a mutated captured strongSwan message (mostly new IKE_SA_INITs, unknown SPIs)
//   1 readdress  a mutated captured message with the target IKE_SA's SPIs (integrity failures)
//   2 request    a mutated payload chain, protected as a request with the target IKE_SA's real
//                keys and the next message ID: reaches the inner payload parsers and the
//                IKE_AUTH / CREATE_CHILD_SA / INFORMATIONAL request handlers
//   3 response   B is made to send a request (CHILD/IKE rekey, CHILD delete), then gets a mutated,
//                properly protected response: reaches the response handlers
//   4 fragments  like 2, but as RFC 7383 fragments (SKF), possibly duplicated/reordered/inconsistent
// Payload chains come from the strongSwan captures' decrypted SK contents and from genuine
// requests/responses A sends in this set-up (rekeys with KE, new CHILD_SAs, deletes), recorded at
// start. SPIs of the live SAs are written as placeholders in inputs and filled in when run, so a
// crash input replays against a fresh instance.
//
// Invariants: nothing escapes handle() and neither engine logs an error (the engine logs its own
// internal exceptions at level error); the other IKE_SA and its kernel state are untouched; every
// few hundred inputs the target SA is torn down and set up again, and then the engines' tables,
// timers and the kernel state must be back to exactly the size they had after the first set-up.
import { IkegwError } from '../../common/errors.js';
import type { ConnectionConfig } from '../../ike/config.js';
import { createSkCipher, type SkCipher } from '../../ike/crypto/sk.js';
import type { IkeEngine } from '../../ike/engine.js';
import type { BusEvent } from '../../ike/events.js';
import type { Endpoint } from '../../ike/ports.js';
import type { IkeSa } from '../../ike/sa/ike-sa.js';
import { parseProposals } from '../../ike/sa/proposal-syntax.js';
import { decodeMessage } from '../../ike/wire/message.js';
import type { SkPayload } from '../../ike/wire/types.js';
import { capturedMessages } from '../corpus.js';
import { child, connection, EnginePair, engineConfig, type Side } from '../engine-pair.js';
import {
  type FuzzInstance,
  type FuzzTarget,
  InvariantError,
  invariant,
  normalizeMessage,
  ReportedError,
} from '../harness.js';
import {
  HEADER_LEN,
  mutateSegments,
  parseChain,
  parseMessage,
  type Segment,
  serializeChain,
  serializeMessage,
} from '../ike-model.js';
import { concatBytes, getUint, havoc, putUint } from '../mutate.js';
import type { Rng } from '../rng.js';

const A1 = '198.51.100.2';
const A2 = '198.51.100.3';
const B = '198.51.100.1';
const STRANGER = '203.0.113.9';
const IKE_AUTH = 35;
const CREATE_CHILD_SA = 36;
const INFORMATIONAL = 37;
const SK = 46;
const SKF = 53;
const FLAG_I = 0x08;
const FLAG_R = 0x20;

/** IKE proposals A offers for the target IKE_SA: AEAD and encrypt-then-MAC SK ciphers. */
const VARIANTS = [
  'aes256gcm16-prfsha256-x25519',
  'aes128-sha256-x25519',
  'chacha20poly1305-prfsha256-x25519',
];

const MODE_RAW = 0;
const MODE_READDRESS = 1;
const MODE_REQUEST = 2;
const MODE_RESPONSE = 3;
const MODE_FRAGMENTS = 4;

/** Input header: mode, exchange, first inner type, msgId delta (int8), mode parameter, flags, variant. */
const IN_HDR = 7;

const TRIGGERS = ['rekey-child', 'rekey-ike', 'delete-child', 'create-child'] as const;
type Trigger = (typeof TRIGGERS)[number];

interface Chain {
  exchange: number;
  segs: Segment[];
}

interface Engines {
  bySpi: Map<bigint, IkeSa>;
  halfOpen: Map<string, unknown>;
  espSpis: Set<number>;
  ops: Map<number, unknown>;
  queues: Map<unknown, unknown[]>;
  engineTimers: Map<string, unknown>;
  halfOpenByIp: Map<string, number>;
  restartBackoff: Map<string, number>;
}

function internals(e: IkeEngine): Engines {
  return e as unknown as Engines;
}

function sizes(side: Side): Record<string, number> {
  const e = internals(side.engine);
  const snap = side.installer.snapshot();
  return {
    ikeSas: e.bySpi.size,
    halfOpen: e.halfOpen.size,
    halfOpenByIp: e.halfOpenByIp.size,
    espSpis: e.espSpis.size,
    kernelOps: e.ops.size,
    queues: [...e.queues.values()].reduce((n, q) => n + q.length, 0),
    engineTimers: e.engineTimers.size,
    restartBackoff: e.restartBackoff.size,
    timers: side.timers.size,
    kernelSas: snap.sas.length,
    kernelPolicyRefs: snap.policies.reduce((n, p) => n + p.refs, 0),
  };
}

/** The cipher the peer protects its messages to this IKE_SA with (from the SA's own keys). */
function peerCipher(sa: IkeSa): SkCipher | undefined {
  const s = sa.suite;
  const k = sa.keys;
  if (!s || !k) return undefined;
  return sa.initiator
    ? createSkCipher(s.encr, s.integ, k.skEr, k.skAr)
    : createSkCipher(s.encr, s.integ, k.skEi, k.skAi);
}

function u32(v: number): Uint8Array {
  const b = new Uint8Array(4);
  putUint(b, 0, 4, v);
  return b;
}

function u64(v: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, v);
  return b;
}

// Placeholders for the live SAs' SPIs in payload chains (filled in when an input runs):
//   5a 5a 00 kk         SPI of B's k-th CHILD_SA that the peer uses in DELETE / REKEY_SA (B's outbound)
//   5a 5b 00 kk         B's k-th inbound SPI
//   5a 5c 00 00 00 00 00 0k   IKE SPI i (k=0) or r (k=1)
function placeholders(sa: IkeSa): Array<{ from: Uint8Array; to: Uint8Array }> {
  const out: Array<{ from: Uint8Array; to: Uint8Array }> = [];
  const kids = [...sa.children].sort((x, y) => x.uid - y.uid);
  kids.slice(0, 8).forEach((c, k) => {
    out.push({ from: Uint8Array.of(0x5a, 0x5a, 0, k), to: u32(c.spiOut) });
    out.push({ from: Uint8Array.of(0x5a, 0x5b, 0, k), to: u32(c.spiIn) });
  });
  out.push({ from: Uint8Array.of(0x5a, 0x5c, 0, 0, 0, 0, 0, 0), to: u64(sa.spiI) });
  out.push({ from: Uint8Array.of(0x5a, 0x5c, 0, 0, 0, 0, 0, 1), to: u64(sa.spiR) });
  return out;
}

function replaceAll(b: Uint8Array, subs: Array<{ from: Uint8Array; to: Uint8Array }>): Uint8Array {
  const out = new Uint8Array(b);
  for (const { from, to } of subs) {
    for (let i = 0; i + from.length <= out.length; i++) {
      let hit = true;
      for (let j = 0; j < from.length && hit; j++) hit = out[i + j] === from[j];
      if (hit) {
        out.set(to, i);
        i += from.length - 1;
      }
    }
  }
  return out;
}

/** The reverse: live SPIs in a recorded chain become placeholders. */
function toPlaceholders(b: Uint8Array, sa: IkeSa): Uint8Array {
  return replaceAll(
    b,
    placeholders(sa).map((p) => ({ from: p.to, to: p.from })),
  );
}

/** strongSwan's chains name strongSwan's SPIs: point their DELETE and REKEY_SA SPIs at ours. */
function placeholdersForCaptured(segs: Segment[], rng: Rng): void {
  for (const s of segs) {
    if (s.type === 42 && s.body.length >= 8 && s.body[0] === 3 && s.body[1] === 4) {
      for (let at = 4; at + 4 <= s.body.length; at += 4)
        s.body.set(Uint8Array.of(0x5a, 0x5a, 0, rng.int(2)), at);
    }
    if (s.type === 41 && s.body.length >= 8 && s.body[1] === 4 && getUint(s.body, 2, 2) === 16393)
      s.body.set(Uint8Array.of(0x5a, 0x5a, 0, rng.int(2)), 4);
  }
}

function naturalExchange(file: string): number {
  if (file.includes('ike_auth')) return IKE_AUTH;
  if (file.includes('create_child')) return CREATE_CHILD_SA;
  return INFORMATIONAL;
}

class EngineInstance implements FuzzInstance {
  private pair!: EnginePair;
  private variant = 0;
  private baselineOther = '';
  private otherSpis: number[] = [];
  private baseline: { a: Record<string, number>; b: Record<string, number> } | undefined;
  private readonly requests: Chain[] = [];
  private readonly responses = new Map<Trigger, Chain[]>();
  private readonly captured: Chain[] = [];
  private readonly capturedResponses: Chain[] = [];
  private readonly pool: Segment[] = [];
  private readonly outer: Uint8Array[] = capturedMessages().map((m) => m.bytes);
  private readonly ciphers = new WeakMap<IkeSa, SkCipher>();
  private readonly counts = {
    decrypted: 0,
    responses: 0,
    resets: 0,
    raw: 0,
    readdress: 0,
    requests: 0,
    fragments: 0,
    responseInputs: 0,
  };

  async init(): Promise<void> {
    this.pair = this.newPair();
    await this.establish(true);
    const bsa = this.liveSa();
    invariant(bsa, 'set-up', () => 'the target IKE_SA did not come up');
    // The other IKE_SA, as B sees it: must never change.
    const other = this.otherSa();
    invariant(other, 'set-up', () => 'the other IKE_SA did not come up');
    this.baselineOther = this.describeOther();
    this.otherSpis = other.children.flatMap((c) => [c.spiIn, c.spiOut]);
    await this.record();
    this.baseline = { a: sizes(this.pair.a), b: sizes(this.pair.b) };
    for (const m of capturedMessages()) {
      if (!m.inner || m.innerType === undefined) continue;
      const segs = parseChain(m.innerType, m.inner);
      const chain = { exchange: naturalExchange(m.file), segs };
      const resp = (m.bytes[19]! & FLAG_R) !== 0;
      (resp ? this.capturedResponses : this.captured).push(chain);
      this.pool.push(...segs);
    }
    for (const m of capturedMessages()) {
      const pm = parseMessage(m.bytes);
      if (pm && pm.segments[0]?.type !== SK) this.pool.push(...pm.segments);
    }
    for (const c of [...this.requests, ...[...this.responses.values()].flat()]) this.pool.push(...c.segs);
  }

  private newPair(): EnginePair {
    const target = connection(
      'target',
      [A1],
      [B],
      [
        child('t', ['10.10.0.0/16'], ['192.168.100.0/24'], 1),
        child('t2', ['10.11.0.0/16'], ['192.168.101.0/24'], 3),
      ],
      [VARIANTS[this.variant]!],
    );
    const other = connection('other', [A2], [B], [child('o', ['10.20.0.0/16'], ['192.168.100.0/24'], 2)]);
    const bChild = (reqid: number) => child('r', ['192.168.0.0/16'], ['10.0.0.0/8'], reqid);
    const b = [
      connection('tgt', [B], [A1], [bChild(1)], ['default', VARIANTS[2]!]),
      connection('oth', [B], [A2], [bChild(2)]),
      connection('any', [B], ['%any'], [bChild(3)]),
    ];
    return new EnginePair(engineConfig([target, other]), engineConfig(b), 4242);
  }

  private aConn(name: string): ConnectionConfig {
    return this.pair.a.engine.cfg.connections.find((c) => c.name === name)!;
  }

  /** B's current target IKE_SA (the newest ESTABLISHED one of connection tgt). */
  private liveSa(): IkeSa | undefined {
    let best: IkeSa | undefined;
    for (const sa of internals(this.pair.b.engine).bySpi.values())
      if (sa.conn.name === 'tgt' && sa.state === 'ESTABLISHED' && (!best || sa.uid > best.uid)) best = sa;
    return best;
  }

  private otherSa(): IkeSa | undefined {
    for (const sa of internals(this.pair.b.engine).bySpi.values()) if (sa.conn.name === 'oth') return sa;
    return undefined;
  }

  private describeOther(): string {
    const o = this.otherSa();
    const info = o ? this.pair.b.engine.list().find((s) => s.uid === o.uid) : undefined;
    return JSON.stringify(info ?? null);
  }

  private feed(side: Side, ev: Parameters<IkeEngine['handle']>[0]): void {
    try {
      this.pair.feed(side, ev);
    } catch (e) {
      throw new ReportedError(
        'HandleThrew',
        `handle() threw: ${(e as Error)?.stack ?? e}`,
        `handle() threw: ${normalizeMessage(String((e as Error)?.message ?? e))}`,
      );
    }
  }

  /** (Re-)establishes the target IKE_SA (and, the first time, the other one). */
  private async establish(first: boolean): Promise<void> {
    const p = this.pair;
    if (!first) {
      this.feed(p.b, { kind: 'command', cmd: { cmd: 'terminate', conn: 'tgt' } });
      this.feed(p.a, { kind: 'command', cmd: { cmd: 'terminate', conn: 'target' } });
      await this.settle();
      // Half-open SAs, retransmits, lingering inbound SAs: all of it must run out.
      await p.advance(400_000);
      this.aConn('target').ikeProposals = parseProposals([VARIANTS[this.variant]!], 'ike');
    }
    this.feed(p.a, { kind: 'command', cmd: { cmd: 'initiate', conn: 'target', child: 't' } });
    if (first) this.feed(p.a, { kind: 'command', cmd: { cmd: 'initiate', conn: 'other' } });
    await this.settle();
    this.checkLogs();
  }

  private async settle(): Promise<void> {
    try {
      await this.pair.settle();
    } catch (e) {
      if (e instanceof IkegwError || e instanceof ReportedError) throw e;
      throw new InvariantError('no-settle', String((e as Error).message));
    }
  }

  /** Genuine requests and responses of this set-up, decrypted as B sees them. */
  private async record(): Promise<void> {
    const p = this.pair;
    const capture = async (side: Side, act: () => void, into: Chain[]): Promise<void> => {
      const sa = this.liveSa();
      if (!sa) return;
      side.sent.length = 0;
      act();
      await this.settle();
      for (const s of side.sent) {
        const chain = this.open(sa, s.bytes);
        if (chain) into.push(chain);
      }
      side.sent.length = 0;
      await this.establish(false);
    };
    const liveChild = () => this.liveSa()?.children[0];
    // A's requests to B.
    await capture(
      p.a,
      () => this.feed(p.a, { kind: 'command', cmd: { cmd: 'initiate', conn: 'target', child: 't2' } }),
      this.requests,
    );
    await capture(
      p.a,
      () => this.feed(p.a, { kind: 'command', cmd: { cmd: 'rekey', conn: 'target', child: 't' } }),
      this.requests,
    );
    await capture(
      p.a,
      () => this.feed(p.a, { kind: 'command', cmd: { cmd: 'rekey', conn: 'target', ike: true } }),
      this.requests,
    );
    await capture(
      p.a,
      () => {
        const c = liveChild();
        if (c) this.feed(p.a, { kind: 'kernel', ev: { kind: 'expire', spi: c.spiOut, dst: B, hard: true } });
      },
      this.requests,
    );
    await capture(
      p.a,
      () => this.feed(p.a, { kind: 'command', cmd: { cmd: 'terminate', conn: 'target' } }),
      this.requests,
    );
    this.requests.push({ exchange: INFORMATIONAL, segs: [] }); // a liveness check
    // A's responses to B's requests.
    for (const t of TRIGGERS) {
      const list: Chain[] = [];
      await capture(p.a, () => this.trigger(t), list);
      this.responses.set(t, list);
    }
  }

  /** Makes B start an exchange on the target IKE_SA. */
  private trigger(t: Trigger): void {
    const p = this.pair;
    const sa = this.liveSa();
    if (!sa) return;
    switch (t) {
      case 'rekey-child':
        return this.feed(p.b, { kind: 'command', cmd: { cmd: 'rekey', conn: 'tgt' } });
      case 'rekey-ike':
        return this.feed(p.b, { kind: 'command', cmd: { cmd: 'rekey', conn: 'tgt', ike: true } });
      case 'delete-child': {
        const c = sa.children.find((x) => x.state === 'INSTALLED');
        if (c) this.feed(p.b, { kind: 'kernel', ev: { kind: 'expire', spi: c.spiIn, dst: B, hard: true } });
        return;
      }
      case 'create-child': {
        // B has one child config; a soft expire makes it rekey (a CREATE_CHILD_SA with REKEY_SA).
        const c = sa.children.find((x) => x.state === 'INSTALLED');
        if (c) this.feed(p.b, { kind: 'kernel', ev: { kind: 'expire', spi: c.spiIn, dst: B, hard: false } });
        return;
      }
    }
  }

  /** Decrypts a datagram sent on `sa` (by either side) into a chain with placeholders. */
  private open(sa: IkeSa, bytes: Uint8Array): Chain | undefined {
    try {
      const m = decodeMessage(bytes);
      const sk = m.payloads.at(-1) as SkPayload | undefined;
      if (!sk || sk.type !== SK) return undefined;
      const prefix = bytes.subarray(0, bytes.length - sk.data.length);
      const toB = (m.header.flags & FLAG_I) !== 0 ? !sa.initiator : sa.initiator;
      const cipher = toB ? sa.cipherIn! : this.peerCipherOf(sa)!;
      const plain = cipher.open(prefix, sk.data);
      return { exchange: m.header.exchange, segs: parseChain(sk.innerType, toPlaceholders(plain, sa)) };
    } catch {
      return undefined;
    }
  }

  private peerCipherOf(sa: IkeSa): SkCipher | undefined {
    let c = this.ciphers.get(sa);
    if (!c) {
      c = peerCipher(sa);
      if (c) this.ciphers.set(sa, c);
    }
    return c;
  }

  // ---- generation -----------------------------------------------------------------------------

  generate(rng: Rng): Uint8Array {
    const r = rng.float();
    const mode =
      r < 0.12
        ? MODE_RAW
        : r < 0.22
          ? MODE_READDRESS
          : r < 0.7
            ? MODE_REQUEST
            : r < 0.88
              ? MODE_RESPONSE
              : MODE_FRAGMENTS;
    const h = new Uint8Array(IN_HDR);
    h[0] = mode;
    h[6] = this.variant;
    if (mode === MODE_RAW || mode === MODE_READDRESS) {
      const m = parseMessage(rng.pick(this.outer))!;
      for (let k = rng.small(4); k > 0; k--) {
        if (rng.chance(0.2)) m.header[rng.int(HEADER_LEN)] = rng.int(256);
        else mutateSegments(rng, m.segments, this.pool);
      }
      if (mode === MODE_RAW && rng.chance(0.5)) m.header.set(rng.bytes(8), 0); // a new SPIi
      let b = serializeMessage(m);
      if (rng.chance(0.4)) b = havoc(rng, b, this.outer, 3);
      h[4] = rng.int(8);
      return concatBytes(h, b);
    }
    let chain: Chain;
    if (mode === MODE_RESPONSE) {
      const t = rng.int(TRIGGERS.length);
      h[4] = t;
      const own = this.responses.get(TRIGGERS[t]!) ?? [];
      chain = own.length && rng.chance(0.8) ? rng.pick(own) : rng.pick(this.capturedResponses);
    } else {
      chain = this.requests.length && rng.chance(0.55) ? rng.pick(this.requests) : rng.pick(this.captured);
      if (mode === MODE_FRAGMENTS) h[4] = rng.int(256);
    }
    const segs = structuredClone(chain.segs);
    if (!this.requests.includes(chain)) placeholdersForCaptured(segs, rng);
    const edits = rng.chance(0.2) ? 0 : rng.small(4);
    for (let k = 0; k < edits; k++) mutateSegments(rng, segs, this.pool);
    h[1] = rng.chance(0.85)
      ? chain.exchange
      : rng.pick([IKE_AUTH, CREATE_CHILD_SA, INFORMATIONAL, 34, 0, 255]);
    h[2] = segs[0]?.type ?? 0;
    if (rng.chance(0.04)) h[2] = rng.int(256);
    h[3] = rng.chance(0.9) ? 0 : rng.pick([0xff, 1, 2, 0x80, 0x7f]);
    h[5] = rng.chance(0.95) ? 0 : rng.pick([0x10, 0x28, 0x08, 0x20, 0x00, rng.int(256)]);
    let body = serializeChain(segs);
    if (rng.chance(0.15)) body = havoc(rng, body, [], 3);
    return concatBytes(h, body);
  }

  // ---- execution --------------------------------------------------------------------------------

  async run(input: Uint8Array): Promise<void> {
    if (input.length < IN_HDR) return;
    const mode = input[0]! % 5;
    const variant = input[6]! % VARIANTS.length;
    const body = input.subarray(IN_HDR);
    if (variant !== this.variant || !this.liveSa()) {
      this.variant = variant;
      await this.reset();
    }
    const sa = this.liveSa()!;
    const p = this.pair;
    p.a.events.length = 0;
    p.b.events.length = 0;
    const remotes: Endpoint[] = [
      { address: A1, port: 500 },
      { address: A1, port: 4500 },
      { address: A2, port: 500 },
      { address: STRANGER, port: 500 },
      { address: STRANGER, port: 4500 },
      { address: A1, port: 1024 },
      { address: '2001:db8::2', port: 500 },
      { address: A1, port: 500 },
    ];
    const local: Endpoint = { address: B, port: 500 };
    switch (mode) {
      case MODE_RAW:
      case MODE_READDRESS: {
        const b = new Uint8Array(body);
        if (mode === MODE_READDRESS && b.length >= 16) {
          b.set(u64(sa.spiI), 0);
          b.set(u64(sa.spiR), 8);
        }
        this.counts[mode === MODE_RAW ? 'raw' : 'readdress']++;
        const remote = remotes[input[4]! % remotes.length]!;
        this.feed(p.b, {
          kind: 'datagram',
          local: remote.port === 4500 ? { address: B, port: 4500 } : local,
          remote,
          bytes: b,
        });
        break;
      }
      case MODE_REQUEST:
      case MODE_FRAGMENTS: {
        this.counts[mode === MODE_REQUEST ? 'requests' : 'fragments']++;
        const inner = replaceAll(body, placeholders(sa));
        const msgId = (sa.nextPeerMsgId + ((input[3]! << 24) >> 24)) >>> 0;
        const flags = input[5]! || (sa.initiator ? 0 : FLAG_I);
        const datagrams =
          mode === MODE_REQUEST
            ? [this.protect(sa, input[1]!, flags, msgId, input[2]!, inner)]
            : this.fragments(sa, input[1]!, flags, msgId, input[2]!, inner, input[4]!);
        for (const d of datagrams)
          this.feed(p.b, { kind: 'datagram', local, remote: { address: A1, port: 500 }, bytes: d });
        break;
      }
      case MODE_RESPONSE: {
        this.counts.responseInputs++;
        if (!sa.pending) {
          p.deliver = false; // B's request must not reach A: the fuzzer answers it
          try {
            this.trigger(TRIGGERS[input[4]! % TRIGGERS.length]!);
          } finally {
            p.deliver = true;
          }
          await this.settle();
        }
        const pending = sa.pending;
        if (!pending || sa.state === 'DESTROYED') break;
        const inner = replaceAll(body, placeholders(sa));
        const msgId = (pending.msgId + ((input[3]! << 24) >> 24)) >>> 0;
        const flags = input[5]! || FLAG_R | (sa.initiator ? 0 : FLAG_I);
        const exchange = input[1]! === 0 ? pending.exchange : input[1]!;
        this.feed(p.b, {
          kind: 'datagram',
          local,
          remote: { address: A1, port: 500 },
          bytes: this.protect(sa, exchange, flags, msgId, input[2]!, inner),
        });
        if (!sa.pending) this.counts.responses++;
        break;
      }
    }
    await this.settle();
    this.counts.decrypted += p.b.events.filter(
      (e) => e.ev === 'message' && e.dir === 'in' && e.sa?.uid === sa.uid,
    ).length;
    this.checkLogs();
    this.checkOther();
    this.checkBounded();
  }

  private header(
    sa: IkeSa,
    exchange: number,
    flags: number,
    msgId: number,
    next: number,
    length: number,
  ): Uint8Array {
    const h = new Uint8Array(HEADER_LEN);
    h.set(u64(sa.spiI), 0);
    h.set(u64(sa.spiR), 8);
    h[16] = next;
    h[17] = 0x20;
    h[18] = exchange;
    h[19] = flags;
    putUint(h, 20, 4, msgId);
    putUint(h, 24, 4, length);
    return h;
  }

  /** HDR, SK{inner} with the peer's real keys. */
  private protect(
    sa: IkeSa,
    exchange: number,
    flags: number,
    msgId: number,
    innerType: number,
    inner: Uint8Array,
  ): Uint8Array {
    const cipher = this.peerCipherOf(sa)!;
    const bodyLen = cipher.bodyLength(inner.length);
    const prefix = concatBytes(
      this.header(sa, exchange, flags, msgId, SK, HEADER_LEN + 4 + bodyLen),
      Uint8Array.of(innerType, 0, 0, 0),
    );
    putUint(prefix, HEADER_LEN + 2, 2, 4 + bodyLen);
    return concatBytes(prefix, cipher.seal(prefix, inner, new Uint8Array(cipher.ivLen).fill(0x42)));
  }

  /**
   * HDR, SKF{part} for each fragment (RFC 7383). `param`: bits 0-2 the number of fragments - 1,
   * bit 3 announce one fragment fewer than sent, bit 4 send the last one twice, bit 5 reverse
   * the order, bit 6 skip fragment 1, bit 7 announce 200 fragments.
   */
  private fragments(
    sa: IkeSa,
    exchange: number,
    flags: number,
    msgId: number,
    innerType: number,
    inner: Uint8Array,
    param: number,
  ): Uint8Array[] {
    const cipher = this.peerCipherOf(sa)!;
    const n = (param & 7) + 1;
    let total = n - ((param >> 3) & 1);
    if (param & 0x80) total = 200;
    const size = Math.ceil(inner.length / n);
    const out: Uint8Array[] = [];
    for (let i = 0; i < n; i++) {
      if (i === 0 && param & 0x40) continue;
      const part = inner.subarray(i * size, (i + 1) * size);
      const bodyLen = cipher.bodyLength(part.length);
      const generic = new Uint8Array(8);
      generic[0] = i === 0 ? innerType : 0;
      putUint(generic, 2, 2, 8 + bodyLen);
      putUint(generic, 4, 2, i + 1);
      putUint(generic, 6, 2, total);
      const prefix = concatBytes(
        this.header(sa, exchange, flags, msgId, SKF, HEADER_LEN + 8 + bodyLen),
        generic,
      );
      out.push(concatBytes(prefix, cipher.seal(prefix, part, new Uint8Array(cipher.ivLen).fill(0x42))));
    }
    if (param & 0x10 && out.length) out.push(out[out.length - 1]!);
    if (param & 0x20) out.reverse();
    return out;
  }

  // ---- invariants ---------------------------------------------------------------------------------

  /** An error logged by either engine is an exception it caught (or a kernel op that failed). */
  private checkLogs(): void {
    for (const side of [this.pair.a, this.pair.b]) {
      for (const e of side.events) {
        if (e.ev !== 'log' || e.level !== 'error') continue;
        throw new ReportedError(
          'EngineError',
          `engine ${side.name} logged an error: ${e.msg}`,
          `engine ${side.name} error: ${signatureOfLogged(e)}`,
        );
      }
    }
  }

  private checkOther(): void {
    const now = this.describeOther();
    invariant(
      now === this.baselineOther,
      'the other IKE_SA changed',
      () => `${this.baselineOther}\n-> ${now}`,
    );
    const kernel = new Set(this.pair.b.installer.snapshot().sas.map((s) => s.spec.spi));
    for (const spi of this.otherSpis)
      invariant(
        kernel.has(spi),
        "the other IKE_SA's kernel state changed",
        () => `SA ${spi.toString(16)} is gone`,
      );
  }

  /** Between resets: generous bounds (an authenticated peer may create some CHILD_SAs). */
  private checkBounded(): void {
    for (const side of [this.pair.a, this.pair.b]) {
      const s = sizes(side);
      const over = Object.entries(s).filter(([, v]) => v > 512);
      invariant(over.length === 0, 'unbounded growth', () => `${side.name}: ${JSON.stringify(s)}`);
    }
  }

  /** After a reset, exactly the state of the first set-up. */
  private checkBaseline(): void {
    if (!this.baseline) return;
    for (const side of [this.pair.a, this.pair.b]) {
      const want = this.baseline[side.name];
      const got = sizes(side);
      invariant(
        JSON.stringify(got) === JSON.stringify(want),
        'state left behind after the IKE_SA was torn down',
        () => `${side.name}: ${JSON.stringify(got)}, after set-up ${JSON.stringify(want)}`,
      );
    }
  }

  private async reset(): Promise<void> {
    this.counts.resets++;
    this.pair.a.events.length = 0;
    this.pair.b.events.length = 0;
    await this.establish(false);
    invariant(this.liveSa(), 'set-up', () => 'the target IKE_SA did not come up again');
    this.checkBaseline();
    this.checkOther();
  }

  /** Time passes: half-open SAs, retransmits and lingering SAs time out on the way. */
  async between(j: number): Promise<void> {
    if (j % 50 === 0) {
      await this.pair.advance(((j / 50) % 20) * 1000 + 1000);
      this.checkLogs();
    }
    this.pair.a.events.length = 0;
    this.pair.b.events.length = 0;
  }

  /** A new target IKE_SA (with the next SK cipher) and nothing left of the old one. */
  async checkpoint(): Promise<void> {
    this.variant = (this.variant + 1) % VARIANTS.length;
    await this.reset();
  }

  stats(): Record<string, number> {
    return { ...this.counts };
  }
}

function signatureOfLogged(e: Extract<BusEvent, { ev: 'log' }>): string {
  const lines = e.msg.split('\n');
  const frame = lines.find((l) => /\/(src|dist)\/(?!fuzz\/)/.test(l));
  const loc = frame ? (/((?:src|dist)\/[^():]+):(\d+)/.exec(frame) ?? []).slice(1).join(':') : '';
  return `${normalizeMessage(lines[0] ?? '')}${loc ? ` @ ${loc}` : ''}`;
}

export const engineTarget: FuzzTarget = {
  name: 'engine',
  about: 'IkeEngine.handle() with live IKE_SAs: mutated and re-encrypted requests, responses, fragments',
  stateless: false,
  checkpointEvery: 500,
  async create() {
    const inst = new EngineInstance();
    await inst.init();
    return inst;
  },
};
