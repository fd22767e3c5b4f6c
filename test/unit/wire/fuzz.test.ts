// Seeded, bounded mutation fuzzing of decodeMessage (the msgboxio protocol/fuzz idea): whatever the
// input, decoding returns or throws an IkegwError (DecodeError), never TypeError/RangeError; what
// decodes re-encodes to bytes that decode to an equal model; the rules and summaries never crash.
import { isDeepStrictEqual } from 'node:util';
import { describe, expect, it } from 'vitest';
import { concat, hex } from '../../../src/common/bytes.js';
import { IkegwError } from '../../../src/common/errors.js';
import { SeededRandom } from '../../../src/common/random.js';
import { HeaderFlag } from '../../../src/ike/wire/constants.js';
import { decodeMessage, encodeMessage, summarize } from '../../../src/ike/wire/message.js';
import { checkPayloadRules, findUnsupportedCritical } from '../../../src/ike/wire/rules.js';
import type { IkeHeader, IkeMessage, Payload } from '../../../src/ike/wire/types.js';
import { seq, strongswanFixtures } from '../../helpers/roundtrip.js';

const ITERATIONS = 20_000;
const e0: Uint8Array = new Uint8Array(0);

function hdr(exchange: number, flags: number, msgId: number): IkeHeader {
  return {
    spiI: 0x0102030405060708n,
    spiR: 0x8877665544332211n,
    nextPayload: 0,
    version: 0x20,
    exchange,
    flags,
    msgId,
    length: 0,
  };
}
const msg = (exchange: number, flags: number, msgId: number, payloads: Payload[]): Uint8Array =>
  encodeMessage({ header: hdr(exchange, flags, msgId), payloads });

const v4sel = {
  tsType: 7,
  ipProtocol: 0,
  startPort: 0,
  endPort: 65535,
  startAddr: seq(4, 10),
  endAddr: seq(4, 20),
};
const v6sel = {
  tsType: 8,
  ipProtocol: 6,
  startPort: 443,
  endPort: 443,
  startAddr: seq(16, 1),
  endAddr: seq(16, 2),
};

/** Hand-built seeds covering every payload codec, encoded by the codec under test. */
function builtSeeds(): { name: string; bytes: Uint8Array }[] {
  const sa: Payload = {
    type: 33,
    critical: false,
    proposals: [
      {
        num: 1,
        protocolId: 1,
        spi: e0,
        transforms: [
          { type: 1, id: 12, attributes: [{ type: 14, value: 256 }] },
          { type: 2, id: 5, attributes: [] },
          { type: 3, id: 12, attributes: [] },
          { type: 4, id: 31, attributes: [] },
        ],
      },
      {
        num: 2,
        protocolId: 3,
        spi: seq(4, 0x40),
        transforms: [
          {
            type: 1,
            id: 20,
            attributes: [
              { type: 14, value: 128 },
              { type: 17, value: seq(3) },
            ],
          },
          { type: 5, id: 0, attributes: [] },
        ],
      },
    ],
  };
  const n = (t: number, data = e0, protocolId = 0, spi = e0): Payload => ({
    type: 41,
    critical: false,
    protocolId,
    spi,
    notifyType: t,
    data,
  });
  const everything: Payload[] = [
    { type: 35, critical: false, idType: 2, data: seq(10, 0x61) },
    { type: 37, critical: false, encoding: 4, data: seq(40) },
    { type: 38, critical: false, encoding: 4, data: seq(40) },
    { type: 36, critical: false, idType: 1, data: seq(4) },
    { type: 39, critical: false, method: 2, data: seq(32) },
    sa,
    { type: 44, critical: false, selectors: [v4sel, v6sel] },
    { type: 45, critical: false, selectors: [v4sel] },
    n(16393, e0, 3, seq(4)),
    n(16388, seq(20)),
    { type: 42, critical: false, protocolId: 3, spiSize: 4, spis: [seq(4), seq(4, 9)] },
    {
      type: 47,
      critical: false,
      cfgType: 1,
      attributes: [
        { type: 1, value: e0 },
        { type: 3, value: seq(4) },
      ],
    },
    { type: 48, critical: false, data: new Uint8Array([1, 7, 0, 6, 1, 0x41]) },
    { type: 43, critical: false, data: seq(16) },
    { type: 210, critical: true, unknown: true, body: seq(5) },
    { type: 40, critical: false, data: seq(32) },
  ];
  return [
    {
      name: 'IKE_SA_INIT req',
      bytes: msg(34, HeaderFlag.INITIATOR, 0, [
        sa,
        { type: 34, critical: false, group: 31, data: seq(32) },
        { type: 40, critical: false, data: seq(32, 0x80) },
        n(16388, seq(20)),
        n(16389, seq(20, 5)),
        n(16430),
        { type: 43, critical: false, data: seq(16) },
      ]),
    },
    { name: 'IKE_SA_INIT resp INVALID_KE', bytes: msg(34, HeaderFlag.RESPONSE, 0, [n(17, seq(2))]) },
    { name: 'all payloads in clear', bytes: msg(35, HeaderFlag.INITIATOR, 1, everything) },
    {
      name: 'IKE_AUTH SK',
      bytes: msg(35, HeaderFlag.INITIATOR, 1, [{ type: 46, critical: false, innerType: 35, data: seq(80) }]),
    },
    {
      name: 'IKE_AUTH SKF',
      bytes: msg(35, HeaderFlag.INITIATOR, 1, [
        { type: 53, critical: false, innerType: 35, fragmentNumber: 1, totalFragments: 3, data: seq(60) },
      ]),
    },
    { name: 'empty INFORMATIONAL', bytes: msg(37, HeaderFlag.RESPONSE, 7, []) },
  ];
}

/** Real seeds: strongSwan messages, and their decrypted inner chains put into a cleartext message. */
function fixtureSeeds(): { name: string; bytes: Uint8Array }[] {
  const out: { name: string; bytes: Uint8Array }[] = [];
  for (const fx of strongswanFixtures()) {
    out.push({ name: fx.name, bytes: fx.bytes });
    if (fx.inner === undefined || fx.inner.length === 0) continue;
    const outer = decodeMessage(fx.bytes);
    const sk = outer.payloads[outer.payloads.length - 1];
    if (sk === undefined || !('innerType' in sk)) continue;
    const h = new Uint8Array(fx.bytes.subarray(0, 28));
    h[16] = sk.innerType;
    const bytes = concat(h, fx.inner);
    new DataView(bytes.buffer).setUint32(24, bytes.length);
    out.push({ name: `${fx.name} (inner, cleartext)`, bytes });
  }
  return out;
}

/** Offsets of length fields in a well-formed seed: the header length and each payload length. */
function lengthFields(b: Uint8Array): { at: number; size: 2 | 4 }[] {
  const out: { at: number; size: 2 | 4 }[] = [{ at: 24, size: 4 }];
  let next = b[16] ?? 0;
  let off = 28;
  while (next !== 0 && off + 4 <= b.length) {
    out.push({ at: off + 2, size: 2 });
    const len = ((b[off + 2] ?? 0) << 8) | (b[off + 3] ?? 0);
    if (next === 46 || next === 53 || len < 4) break;
    next = b[off] ?? 0;
    off += len;
  }
  return out;
}

const interesting = [0, 1, 2, 3, 4, 7, 8, 0x10, 0x20, 0x7f, 0x80, 0xfe, 0xff];

function mutate(
  rng: SeededRandom,
  seed: Uint8Array,
  seeds: Uint8Array[],
  lens: { at: number; size: 2 | 4 }[],
): Uint8Array {
  let b: Uint8Array = new Uint8Array(seed);
  const rounds = 1 + rng.int(3);
  for (let k = 0; k < rounds; k++) {
    const pos = rng.int(Math.max(b.length, 1));
    switch (rng.int(9)) {
      case 0: {
        // bit flips
        const flips = 1 + rng.int(3);
        for (let i = 0; i < flips && b.length > 0; i++) {
          const p = rng.int(b.length);
          b[p] = (b[p] ?? 0) ^ (1 << rng.int(8));
        }
        break;
      }
      case 1: // interesting byte value
        if (b.length > 0) b[pos] = interesting[rng.int(interesting.length)] ?? 0;
        break;
      case 2: // truncate
        b = b.slice(0, rng.int(b.length + 1));
        break;
      case 3: // append junk
        b = concat(b, rng.bytes(1 + rng.int(16)));
        break;
      case 4: {
        // corrupt a length field (header or payload)
        const f = lens[rng.int(lens.length)];
        if (f === undefined || f.at + f.size > b.length) break;
        const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
        const cur = f.size === 2 ? dv.getUint16(f.at) : dv.getUint32(f.at);
        const choice = rng.int(4);
        let v = cur;
        if (choice === 0) v = cur + 1 + rng.int(8);
        else if (choice === 1) v = cur - 1 - rng.int(8);
        else if (choice === 2) v = rng.int(6);
        else v = f.size === 2 ? 0xffff : 0xffffffff;
        if (f.size === 2) dv.setUint16(f.at, v & 0xffff);
        else dv.setUint32(f.at, v >>> 0);
        break;
      }
      case 5: {
        // splice: replace a range with a range of another seed
        const other = seeds[rng.int(seeds.length)] ?? seed;
        const from = rng.int(other.length);
        const piece = other.subarray(from, from + 1 + rng.int(64));
        const cut = rng.int(65);
        b = concat(b.subarray(0, pos), piece, b.subarray(Math.min(b.length, pos + cut)));
        break;
      }
      case 6: // delete a range
        b = concat(b.subarray(0, pos), b.subarray(Math.min(b.length, pos + 1 + rng.int(32))));
        break;
      case 7: {
        // duplicate a range
        const piece = b.slice(pos, pos + 1 + rng.int(32));
        b = concat(b.subarray(0, pos), piece, b.subarray(pos));
        break;
      }
      default: {
        // retarget a next-payload field
        const types = [0, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 53, 1, 49, 255];
        const f = lens[rng.int(lens.length)];
        const at = f === undefined || f.size === 4 ? 16 : f.at - 2;
        if (at < b.length) b[at] = types[rng.int(types.length)] ?? 0;
      }
    }
  }
  // Most of the time keep the header length right, so the payload decoders get exercised.
  if (b.length >= 28 && rng.float() < 0.75)
    new DataView(b.buffer, b.byteOffset, b.byteLength).setUint32(24, b.length);
  return b;
}

function fail(what: string, name: string, input: Uint8Array, e: unknown): never {
  const err = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  throw new Error(`${what} (seed ${name}): ${err}\ninput ${hex(input)}`);
}

describe('wire fuzz', () => {
  it(`survives ${ITERATIONS} seeded mutations`, () => {
    const seeds = [...builtSeeds(), ...fixtureSeeds()];
    for (const s of seeds) decodeMessage(s.bytes); // every seed is valid to begin with
    const lens = seeds.map((s) => lengthFields(s.bytes));
    const seedBytes = seeds.map((s) => s.bytes);
    const clear = seeds.flatMap((s, i) => (s.bytes[16] === 46 || s.bytes[16] === 53 ? [] : [i]));
    const rng = new SeededRandom(0x1ce5eed);
    let decoded = 0;
    let rejected = 0;
    const reasons = new Map<string, number>();
    for (let i = 0; i < ITERATIONS; i++) {
      // Mostly seeds with cleartext payloads: mutating an SK body only exercises the SK length.
      const si = rng.float() < 0.7 ? (clear[rng.int(clear.length)] ?? 0) : rng.int(seeds.length);
      const seed = seeds[si];
      const lf = lens[si];
      if (seed === undefined || lf === undefined) continue;
      const input = mutate(rng, seed.bytes, seedBytes, lf);
      let m: IkeMessage;
      try {
        m = decodeMessage(input);
      } catch (e) {
        if (!(e instanceof IkegwError))
          fail(`decode threw a non-IkegwError at iteration ${i}`, seed.name, input, e);
        rejected++;
        if (process.env.FUZZ_STATS) {
          const k = (e as Error).message.replace(/\d+/g, 'N').slice(0, 60);
          reasons.set(k, (reasons.get(k) ?? 0) + 1);
        }
        continue;
      }
      decoded++;
      let again: Uint8Array;
      let m2: IkeMessage;
      try {
        again = encodeMessage(m);
        m2 = decodeMessage(again);
      } catch (e) {
        fail(`re-encode/decode failed at iteration ${i}`, seed.name, input, e);
      }
      if (!isDeepStrictEqual(m, m2)) fail(`re-decoded model differs at iteration ${i}`, seed.name, input, '');
      if (hex(encodeMessage(m2)) !== hex(again))
        fail(`encoding not stable at iteration ${i}`, seed.name, input, '');
      try {
        summarize(m.payloads);
        findUnsupportedCritical(m.payloads);
        checkPayloadRules(
          m.header.exchange,
          (m.header.flags & HeaderFlag.RESPONSE) !== 0,
          m.payloads,
          undefined,
        );
      } catch (e) {
        if (!(e instanceof IkegwError))
          fail(`rules/summary threw a non-IkegwError at iteration ${i}`, seed.name, input, e);
      }
    }
    if (process.env.FUZZ_STATS) {
      console.log({ decoded, rejected, reasons: [...reasons].sort((a, b) => b[1] - a[1]) });
    }
    // The mutations must reach past the header checks in a fair share of cases.
    expect(decoded).toBeGreaterThan(ITERATIONS * 0.05);
    expect(rejected).toBeGreaterThan(ITERATIONS * 0.3);
  });
});
