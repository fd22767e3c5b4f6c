// Seeded, bounded fuzzing of the engine with mutated real strongSwan 5.9.8 messages
// (test/fixtures/strongswan): outer messages aimed at an established IKE_SA's SPIs, and mutated
// decrypted payload chains re-encrypted with that SA's keys so they get past the integrity check.
// Nothing may throw out of the engine or log an internal error, and a second IKE_SA between the
// same peers must be untouched.
import { describe, expect, it } from 'vitest';
import { concat, Writer } from '../../../src/common/bytes.js';
import { SeededRandom } from '../../../src/common/random.js';
import { MemoryInstaller } from '../../../src/esp/memory-installer.js';
import { ExchangeType, HeaderFlag, PayloadType } from '../../../src/ike/wire/constants.js';
import { encodeHeader } from '../../../src/ike/wire/header.js';
import { decodeMessage } from '../../../src/ike/wire/message.js';
import type { SkPayload } from '../../../src/ike/wire/types.js';
import { childConfig, connection, EnginePair, engineConfig } from '../../helpers/engine-pair.js';
import { strongswanFixtures } from '../../helpers/roundtrip.js';

const A = '198.51.100.2';
const B = '198.51.100.1';
const fixtures = strongswanFixtures();

function mutate(r: SeededRandom, src: Uint8Array): Uint8Array {
  const b = new Uint8Array(src);
  switch (r.int(5)) {
    case 0: // bit flips
      for (let i = 0, n = 1 + r.int(4); i < n && b.length; i++) b[r.int(b.length)]! ^= 1 << r.int(8);
      return b;
    case 1: // truncate
      return b.subarray(0, r.int(b.length + 1));
    case 2: // special byte values
      for (let i = 0, n = 1 + r.int(3); i < n && b.length; i++)
        b[r.int(b.length)] = [0, 0xff, 0x7f, 0x80, 1][r.int(5)]!;
      return b;
    case 3: // splice a chunk from elsewhere
      if (b.length > 8) {
        const at = r.int(b.length - 4);
        b.copyWithin(at, r.int(b.length - 4), r.int(b.length));
      }
      return b;
    default: // append junk
      return concat(b, r.bytes(r.int(64)));
  }
}

describe.skipIf(fixtures.length === 0)('engine fuzz with mutated strongSwan messages', () => {
  it('never throws, never logs an internal error, never disturbs another IKE_SA', async () => {
    const target = connection({
      name: 'target',
      localAddrs: [A],
      remoteAddrs: [B],
      initialContact: false,
      children: [
        childConfig({ name: 't', localTs: ['10.10.0.0/16'], remoteTs: ['192.168.100.0/24'], reqid: 1 }),
      ],
    });
    const other = connection({
      name: 'other',
      localAddrs: [A],
      remoteAddrs: [B],
      initialContact: false,
      children: [
        childConfig({ name: 'o', localTs: ['10.20.0.0/16'], remoteTs: ['192.168.100.0/24'], reqid: 2 }),
      ],
    });
    const resp = connection({
      name: 'any',
      localAddrs: [B],
      remoteAddrs: ['%any'],
      children: [childConfig({ name: 'r', localTs: ['192.168.100.0/24'], remoteTs: ['10.0.0.0/8'] })],
    });
    resp.psk = target.psk;
    other.psk = target.psk;
    const p = new EnginePair(
      engineConfig([target, other]),
      engineConfig([resp]),
      { a: A, b: B },
      { a: new MemoryInstaller(), b: new MemoryInstaller() },
      7,
    );
    p.feed(p.a, { kind: 'command', cmd: { cmd: 'initiate', conn: 'target' } });
    p.feed(p.a, { kind: 'command', cmd: { cmd: 'initiate', conn: 'other' } });
    await p.settle();
    const [saT, saO] = ['target', 'other'].map(
      (n) =>
        p.b.engine
          .list()
          .find((s) => s.children[0]?.remoteTs[0] === (n === 'target' ? '10.10.0.0/16' : '10.20.0.0/16'))!,
    );
    expect(saT?.state).toBe('ESTABLISHED');
    expect(saO?.state).toBe('ESTABLISHED');
    const otherBefore = JSON.stringify(p.b.engine.list().find((s) => s.uid === saO!.uid));
    let spiI = BigInt(`0x${saT!.spiI}`);
    let spiR = BigInt(`0x${saT!.spiR}`);
    let initiatorSa = p.a.engine.peek(spiI)!;
    let responderSa = p.b.engine.peek(spiR)!;
    // A fuzzed DELETE or error may legitimately end the target SA: bring up a new one and go on.
    const reestablish = async () => {
      p.feed(p.a, { kind: 'command', cmd: { cmd: 'terminate', conn: 'target' } });
      await p.settle();
      p.feed(p.a, { kind: 'command', cmd: { cmd: 'initiate', conn: 'target' } });
      await p.settle();
      const sa = p.a.engine.list().find((x) => x.conn === 'target' && x.state === 'ESTABLISHED')!;
      spiI = BigInt(`0x${sa.spiI}`);
      spiR = BigInt(`0x${sa.spiR}`);
      initiatorSa = p.a.engine.peek(spiI)!;
      responderSa = p.b.engine.peek(spiR)!;
      reestablished++;
    };

    const r = new SeededRandom(2026);
    const inners = fixtures
      .filter((f) => f.inner)
      .map((f) => ({ f, sk: decodeMessage(f.bytes).payloads.at(-1) as SkPayload }));
    const remote = { address: A, port: 500 };
    const local = { address: B, port: 500 };
    let fed = 0;
    let decrypted = 0;
    let reestablished = 0;
    for (let i = 0; i < 4000; i++) {
      let bytes: Uint8Array;
      const mode = r.int(3);
      const f = fixtures[r.int(fixtures.length)]!;
      if (mode === 0) {
        // A mutated real message as is (mostly IKE_SA_INIT requests and unknown SPIs).
        bytes = mutate(r, f.bytes);
      } else if (mode === 1) {
        // A real message re-addressed to the target SA's SPIs, then mutated: integrity failures.
        const b = new Uint8Array(f.bytes);
        new DataView(b.buffer).setBigUint64(0, spiI);
        new DataView(b.buffer).setBigUint64(8, spiR);
        bytes = mutate(r, b);
      } else {
        // A mutated decrypted payload chain, protected with the target SA's real keys as a request
        // with the next expected message ID: exercises every request handler.
        const { f: fi, sk } = inners[r.int(inners.length)]!;
        const inner = mutate(r, fi.inner!);
        const exchange = [ExchangeType.IKE_AUTH, ExchangeType.CREATE_CHILD_SA, ExchangeType.INFORMATIONAL][
          r.int(3)
        ]!;
        const cipher = initiatorSa.cipherOut!;
        const bodyLen = cipher.bodyLength(inner.length);
        const w = new Writer(32);
        encodeHeader(w, {
          spiI,
          spiR,
          nextPayload: PayloadType.SK,
          version: 0x20,
          exchange,
          flags: HeaderFlag.INITIATOR,
          msgId: responderSa.nextPeerMsgId,
          length: 32 + bodyLen,
        });
        w.u8(sk.innerType)
          .u8(0)
          .u16(4 + bodyLen);
        const prefix = w.finish();
        bytes = concat(prefix, cipher.seal(prefix, inner, r.bytes(cipher.ivLen)));
      }
      p.b.events.length = 0;
      p.feed(p.b, { kind: 'datagram', local, remote, bytes });
      if (mode === 2 && p.b.events.some((e) => e.ev === 'message' && e.dir === 'in')) decrypted++;
      if (p.b.engine.peek(spiR)?.state !== 'ESTABLISHED') await reestablish();
      await p.settle();
      p.wire.length = 0; // B's answers to A are not delivered: A's SA state stays as is
      fed++;
      const internal = p.b.events.filter((e) => e.ev === 'log' && e.level === 'error');
      expect(internal, `iteration ${i}`).toEqual([]);
    }
    expect(fed).toBe(4000);
    // Hundreds of the re-encrypted chains decoded and reached a request handler.
    expect(decrypted).toBeGreaterThan(300);
    expect(reestablished).toBeGreaterThan(0);
    // The other IKE_SA between the same peers is exactly as it was.
    expect(JSON.stringify(p.b.engine.list().find((s) => s.uid === saO!.uid))).toBe(otherBefore);
  });
});

describe('authentic but malformed requests', () => {
  it('are answered with INVALID_SYNTAX (RFC 7296 §3.10.1) and advance the message ID', async () => {
    const a = connection({
      name: 'a',
      localAddrs: [A],
      remoteAddrs: [B],
      children: [childConfig({ localTs: ['10.10.0.0/16'], remoteTs: ['192.168.100.0/24'] })],
    });
    const b = connection({
      name: 'b',
      localAddrs: [B],
      remoteAddrs: ['%any'],
      children: [childConfig({ localTs: ['192.168.100.0/24'], remoteTs: ['10.0.0.0/8'] })],
    });
    b.psk = a.psk;
    const p = new EnginePair(
      engineConfig([a]),
      engineConfig([b]),
      { a: A, b: B },
      { a: new MemoryInstaller(), b: new MemoryInstaller() },
    );
    p.feed(p.a, { kind: 'command', cmd: { cmd: 'initiate', conn: 'a' } });
    await p.settle();
    const info = p.a.engine.list()[0]!;
    const spiI = BigInt(`0x${info.spiI}`);
    const spiR = BigInt(`0x${info.spiR}`);
    const ia = p.a.engine.peek(spiI)!;
    const rb = p.b.engine.peek(spiR)!;
    const before = rb.nextPeerMsgId;
    // a Notify payload whose length field runs past the end, properly encrypted and authenticated
    const inner = new Uint8Array([0, 0, 0, 40, 0, 0, 0x40, 0x00]);
    const cipher = ia.cipherOut!;
    const bodyLen = cipher.bodyLength(inner.length);
    const w = new Writer(32);
    encodeHeader(w, {
      spiI,
      spiR,
      nextPayload: PayloadType.SK,
      version: 0x20,
      exchange: ExchangeType.INFORMATIONAL,
      flags: HeaderFlag.INITIATOR,
      msgId: before,
      length: 32 + bodyLen,
    });
    w.u8(PayloadType.NOTIFY)
      .u8(0)
      .u16(4 + bodyLen);
    const prefix = w.finish();
    const bytes = concat(prefix, cipher.seal(prefix, inner, new Uint8Array(cipher.ivLen)));
    p.b.events.length = 0;
    p.feed(p.b, {
      kind: 'datagram',
      local: { address: B, port: 500 },
      remote: { address: A, port: 500 },
      bytes,
    });
    const out = p.of(p.b, 'message').filter((m) => m.dir === 'out');
    expect(out.map((m) => `${m.exchange} ${m.response} ${m.summary}`)).toEqual([
      'INFORMATIONAL true [ N(INVAL_SYN) ]',
    ]);
    expect(rb.nextPeerMsgId).toBe(before + 1);
    expect(p.b.engine.list()[0]?.state).toBe('ESTABLISHED');
  });
});
