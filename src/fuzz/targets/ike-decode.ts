// Target `ike-decode`: the IKE message decoder (decodeMessage, every payload codec, the payload
// rules and the log summaries) on structure-aware mutations of the strongSwan captures, their
// decrypted inner chains put in the clear, and hand-built messages covering the payload types
// strongSwan did not send (CP, EAP, CERT, SKF, unknown critical payloads).
//
// Invariants: decoding returns or throws an IkegwError (never TypeError/RangeError); what decodes
// re-encodes to bytes that decode to an equal model, and re-encoding is stable; the rules checks
// and summaries throw nothing but IkegwErrors either.
import { isDeepStrictEqual } from 'node:util';
import { IkegwError } from '../../common/errors.js';
import { HeaderFlag } from '../../ike/wire/constants.js';
import { decodeMessage, encodeMessage, summarize } from '../../ike/wire/message.js';
import { checkPayloadRules, findUnsupportedCritical } from '../../ike/wire/rules.js';
import type { IkeMessage, Payload } from '../../ike/wire/types.js';
import { capturedMessages } from '../corpus.js';
import { type FuzzInstance, type FuzzTarget, invariant } from '../harness.js';
import {
  HEADER_LEN,
  type MessageModel,
  messageLengthFields,
  mutateSegments,
  PAYLOAD_TYPES,
  parseMessage,
  type Segment,
  SK,
  SKF,
  serializeMessage,
} from '../ike-model.js';
import { concatBytes, havoc, putUint } from '../mutate.js';
import type { Rng } from '../rng.js';

const e0: Uint8Array = new Uint8Array(0);
const seq = (n: number, start = 0): Uint8Array =>
  Uint8Array.from({ length: n }, (_, i) => (start + i) & 0xff);

function header(exchange: number, flags: number, msgId: number) {
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

/** Messages built with the encoder under test: every payload codec at least once. */
export function builtSeeds(): Uint8Array[] {
  const msg = (exchange: number, flags: number, msgId: number, payloads: Payload[]): Uint8Array =>
    encodeMessage({ header: header(exchange, flags, msgId), payloads });
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
  const v4 = {
    tsType: 7,
    ipProtocol: 0,
    startPort: 0,
    endPort: 65535,
    startAddr: seq(4, 10),
    endAddr: seq(4, 20),
  };
  const v6 = {
    tsType: 8,
    ipProtocol: 6,
    startPort: 443,
    endPort: 443,
    startAddr: seq(16, 1),
    endAddr: seq(16, 2),
  };
  const everything: Payload[] = [
    { type: 35, critical: false, idType: 2, data: seq(10, 0x61) },
    { type: 37, critical: false, encoding: 4, data: seq(40) },
    { type: 38, critical: false, encoding: 4, data: seq(40) },
    { type: 36, critical: false, idType: 1, data: seq(4) },
    { type: 39, critical: false, method: 2, data: seq(32) },
    sa,
    { type: 44, critical: false, selectors: [v4, v6] },
    { type: 45, critical: false, selectors: [v4] },
    n(16393, e0, 3, seq(4)),
    n(16388, seq(20)),
    { type: 42, critical: false, protocolId: 3, spiSize: 4, spis: [seq(4), seq(4, 9)] },
    { type: 42, critical: false, protocolId: 1, spiSize: 0, spis: [] },
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
    msg(34, HeaderFlag.INITIATOR, 0, [
      sa,
      { type: 34, critical: false, group: 31, data: seq(32) },
      { type: 40, critical: false, data: seq(32, 0x80) },
      n(16388, seq(20)),
      n(16389, seq(20, 5)),
      n(16430),
    ]),
    msg(34, HeaderFlag.RESPONSE, 0, [n(17, seq(2))]),
    msg(34, HeaderFlag.RESPONSE, 0, [n(16390, seq(33))]),
    msg(35, HeaderFlag.INITIATOR, 1, everything),
    msg(35, HeaderFlag.INITIATOR, 1, [{ type: 46, critical: false, innerType: 35, data: seq(80) }]),
    msg(35, HeaderFlag.INITIATOR, 1, [
      { type: 53, critical: false, innerType: 35, fragmentNumber: 1, totalFragments: 3, data: seq(60) },
    ]),
    msg(37, HeaderFlag.RESPONSE, 7, []),
  ];
}

/** The captures, plus each decrypted inner chain in a cleartext message of the same exchange. */
export function capturedSeeds(): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const m of capturedMessages()) {
    out.push(m.bytes);
    if (m.inner === undefined || m.innerType === undefined) continue;
    const h = new Uint8Array(m.bytes.subarray(0, HEADER_LEN));
    h[16] = m.innerType;
    const b = concatBytes(h, m.inner);
    putUint(b, 24, 4, b.length);
    out.push(b);
  }
  return out;
}

const EXCHANGES = [34, 35, 36, 37, 0, 33, 38, 43, 255];

function mutateHeader(rng: Rng, h: Uint8Array): void {
  switch (rng.int(6)) {
    case 0:
      h[18] = rng.pick(EXCHANGES);
      break;
    case 1:
      h[19] = rng.pick([0, 0x08, 0x20, 0x28, 0x10, 0x18, 0x38, 0xff, rng.int(256)]);
      break;
    case 2:
      h[17] = rng.pick([0x20, 0x21, 0x2f, 0x10, 0x30, 0x00, 0xff]);
      break;
    case 3:
      putUint(h, 20, 4, rng.pick([0, 1, 2, 0x7fffffff, 0xffffffff, rng.u32()]));
      break;
    case 4:
      h.fill(0, rng.chance(0.5) ? 0 : 8, rng.chance(0.5) ? 8 : 16);
      break;
    default:
      h[rng.int(HEADER_LEN)] = rng.int(256);
  }
}

class IkeDecodeInstance implements FuzzInstance {
  private readonly seeds: Uint8Array[];
  private readonly models: MessageModel[];
  private readonly pool: Segment[];
  private decoded = 0;
  private rejected = 0;

  constructor() {
    this.seeds = [...capturedSeeds(), ...builtSeeds()];
    for (const s of this.seeds) decodeMessage(s); // every seed is valid to begin with
    this.models = this.seeds.map((s) => parseMessage(s)!);
    this.pool = this.models.flatMap((m) => m.segments);
  }

  generate(rng: Rng): Uint8Array {
    const model: MessageModel = rng.chance(0.08)
      ? this.randomChain(rng)
      : structuredClone(rng.pick(this.models));
    // Mostly structure-aware edits (lengths stay consistent), then sometimes raw havoc on top.
    const edits = rng.chance(0.15) ? 0 : rng.small(5);
    for (let k = 0; k < edits; k++) {
      if (rng.chance(0.12)) mutateHeader(rng, model.header);
      else mutateSegments(rng, model.segments, this.pool);
    }
    let b = serializeMessage(model);
    if (edits === 0 || rng.chance(0.35)) {
      b = havoc(rng, b, this.seeds, 4, messageLengthFields(b));
      // Usually keep the header length right so that the payload decoders are reached.
      if (b.length >= HEADER_LEN && rng.chance(0.7)) putUint(b, 24, 4, b.length);
    }
    return b;
  }

  private randomChain(rng: Rng): MessageModel {
    const header = new Uint8Array(rng.pick(this.models).header);
    header[18] = rng.pick(EXCHANGES);
    const segments: Segment[] = [];
    for (let i = rng.int(9); i > 0; i--) {
      const s = structuredClone(rng.pick(this.pool));
      if (rng.chance(0.1)) s.type = rng.pick(PAYLOAD_TYPES);
      segments.push(s);
    }
    // An SK/SKF payload anywhere but last ends the chain early: leave it, that is a case too.
    if (rng.chance(0.2))
      segments.push({ type: rng.pick([SK, SKF]), flags: 0, innerType: 35, body: rng.bytes(rng.int(64)) });
    return { header, segments };
  }

  run(input: Uint8Array): void {
    let m: IkeMessage;
    try {
      m = decodeMessage(input);
    } catch (e) {
      invariant(e instanceof IkegwError, 'decode threw a non-IkegwError', () =>
        String((e as Error)?.stack ?? e),
      );
      this.rejected++;
      this.unverified(input);
      return;
    }
    this.decoded++;
    let again: Uint8Array;
    let m2: IkeMessage;
    try {
      again = encodeMessage(m);
      m2 = decodeMessage(again);
    } catch (e) {
      throw new Error(`re-encode/decode of a decoded message failed: ${(e as Error).message}`, { cause: e });
    }
    invariant(isDeepStrictEqual(m, m2), 're-decoded model differs');
    invariant(Buffer.compare(encodeMessage(m2), again) === 0, 'encoding not stable');
    try {
      summarize(m.payloads);
      findUnsupportedCritical(m.payloads);
      checkPayloadRules(
        m.header.exchange,
        (m.header.flags & HeaderFlag.RESPONSE) !== 0,
        m.payloads,
        undefined,
      );
      checkPayloadRules(m.header.exchange, (m.header.flags & HeaderFlag.RESPONSE) !== 0, [], m.payloads);
    } catch (e) {
      invariant(e instanceof IkegwError, 'rules/summary threw a non-IkegwError', () =>
        String((e as Error)?.stack ?? e),
      );
    }
  }

  /** Decoding without the semantic checks (as capture tools do) must be just as safe. */
  private unverified(input: Uint8Array): void {
    try {
      const m = decodeMessage(input, { verify: false });
      summarize(m.payloads);
    } catch (e) {
      invariant(e instanceof IkegwError, 'unverified decode threw a non-IkegwError', () =>
        String((e as Error)?.stack ?? e),
      );
    }
  }

  stats(): Record<string, number> {
    return { decoded: this.decoded, rejected: this.rejected };
  }
}

export const ikeDecodeTarget: FuzzTarget = {
  name: 'ike-decode',
  about: 'IKE message decoder, payload codecs, rules and summaries on mutated strongSwan captures',
  stateless: true,
  create: () => new IkeDecodeInstance(),
};
