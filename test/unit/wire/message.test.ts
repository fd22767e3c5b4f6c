import { describe, expect, it } from 'vitest';
import { concat, hex, Reader, Writer } from '../../../src/common/bytes.js';
import { DecodeError } from '../../../src/common/errors.js';
import { decodeHeader, EncodeError, encodeHeader } from '../../../src/ike/wire/header.js';
import {
  decodeMessage,
  decodePayloadChain,
  encodedLengthMessage,
  encodeMessage,
  encodePayloadChain,
  rawBody,
  summarize,
  UnsupportedVersionError,
} from '../../../src/ike/wire/message.js';
import { findUnsupportedCritical } from '../../../src/ike/wire/rules.js';
import type { IkeMessage, Payload } from '../../../src/ike/wire/types.js';
import { isUnknown } from '../../../src/ike/wire/types.js';
import { expectRoundTrip, hexBytes, seq } from '../../helpers/roundtrip.js';

const hexOf = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** Test-side chain builder: [type, body hex, critical?] → generic headers + bodies (RFC 7296 §3.2). */
function chain(items: [number, string, boolean?][], lastNext = 0): Uint8Array {
  const parts: Uint8Array[] = [];
  items.forEach(([, body, crit], i) => {
    const b = hexBytes(body);
    const next = items[i + 1]?.[0] ?? lastNext;
    const len = b.length + 4;
    parts.push(new Uint8Array([next, crit ? 0x80 : 0, len >> 8, len & 0xff]), b);
  });
  return concat(...parts);
}

/** Test-side header builder (RFC 7296 §3.1). */
function header(
  next: number,
  exchange: number,
  flags: number,
  msgId: number,
  bodyLen: number,
  version = 0x20,
): Uint8Array {
  const len = 28 + bodyLen;
  return hexBytes(
    `0102030405060708 1112131415161718 ${hex(new Uint8Array([next, version, exchange, flags]))}` +
      ` ${msgId.toString(16).padStart(8, '0')} ${len.toString(16).padStart(8, '0')}`,
  );
}

function message(
  next: number,
  exchange: number,
  flags: number,
  msgId: number,
  body: Uint8Array,
  version = 0x20,
): Uint8Array {
  return concat(header(next, exchange, flags, msgId, body.length, version), body);
}

const SA_BODY =
  '00 00 002c 01 01 00 04 03 00 000c 01 00 000c 800e 0080 03 00 0008 02 00 0005 03 00 0008 03 00 000c 00 00 0008 04 00 001f';
const KE_BODY = `001f 0000 ${hexOf(seq(32, 0x80))}`;
const NONCE_BODY = hexOf(seq(32));
const NATD_S = `00 00 4004 ${hexOf(seq(20, 1))}`;
const NATD_D = `00 00 4005 ${hexOf(seq(20, 2))}`;
const FRAG_SUP = '00 00 402e';

const ikeSaInitBody = chain([
  [33, SA_BODY],
  [34, KE_BODY],
  [40, NONCE_BODY],
  [41, NATD_S],
  [41, NATD_D],
  [41, FRAG_SUP],
  [43, 'deadbeef'],
]);
const ikeSaInitReq = message(33, 34, 0x08, 0, ikeSaInitBody);

const decodeMsg = (r: Reader) => decodeMessage(r.rest());
const encodeMsg = (w: Writer, m: IkeMessage) => {
  w.bytes(encodeMessage(m));
};

describe('IKE header', () => {
  it('decodes all fields, SPIs as bigint', () => {
    const h = decodeHeader(new Reader(ikeSaInitReq));
    expect(h).toEqual({
      spiI: 0x0102030405060708n,
      spiR: 0x1112131415161718n,
      nextPayload: 33,
      version: 0x20,
      exchange: 34,
      flags: 0x08,
      msgId: 0,
      length: ikeSaInitReq.length,
    });
    const w = new Writer();
    encodeHeader(w, h);
    expect(hex(w.finish())).toBe(hex(ikeSaInitReq.subarray(0, 28)));
  });
  it('handles SPIs and message IDs with the top bit set', () => {
    const b = hexBytes('ffffffffffffffff 8000000000000001 00 20 25 20 fffffffe 0000001c');
    const m = expectRoundTrip(decodeMsg, encodeMsg, encodedLengthMessage, b);
    expect(m.header.spiI).toBe(0xffffffffffffffffn);
    expect(m.header.spiR).toBe(0x8000000000000001n);
    expect(m.header.msgId).toBe(0xfffffffe);
    expect(m.payloads).toEqual([]);
  });
});

describe('decodeMessage', () => {
  it('decodes a literal IKE_SA_INIT error response (HDR, N(INVALID_KE_PAYLOAD))', () => {
    // RFC 7296 §1.2: header (next 41, v2.0, IKE_SA_INIT, Response), then Notify 17 with group 19.
    const b = hexBytes(`
      0102030405060708 0000000000000000 29 20 22 20 00000000 00000026
      00 00 000a  00 00 0011  0013
    `);
    const m = expectRoundTrip(decodeMsg, encodeMsg, encodedLengthMessage, b);
    expect(m.header.exchange).toBe(34);
    expect(m.header.flags).toBe(0x20);
    expect(m.payloads).toEqual([
      {
        type: 41,
        critical: false,
        protocolId: 0,
        spi: new Uint8Array(0),
        notifyType: 17,
        data: hexBytes('0013'),
      },
    ]);
    expect(summarize(m.payloads)).toBe('[ N(INVAL_KE) ]');
  });

  it('decodes an IKE_SA_INIT request with every payload and round-trips it', () => {
    const m = expectRoundTrip(decodeMsg, encodeMsg, encodedLengthMessage, ikeSaInitReq);
    expect(m.payloads.map((p) => p.type)).toEqual([33, 34, 40, 41, 41, 41, 43]);
    expect(summarize(m.payloads)).toBe('[ SA KE No N(NATD_S_IP) N(NATD_D_IP) N(FRAG_SUP) V ]');
  });

  it('decodes a message at a non-zero byteOffset', () => {
    const big = concat(seq(5), ikeSaInitReq, seq(9));
    const view = big.subarray(5, 5 + ikeSaInitReq.length);
    expect(decodeMessage(view)).toEqual(decodeMessage(ikeSaInitReq));
  });

  it('stops at SK and keeps its next-payload as innerType', () => {
    const body = chain([[46, hexOf(seq(64))]], 35);
    const b = message(46, 35, 0x08, 1, body);
    const m = expectRoundTrip(decodeMsg, encodeMsg, encodedLengthMessage, b);
    expect(m.payloads).toEqual([{ type: 46, critical: false, innerType: 35, data: seq(64) }]);
    expect(summarize(m.payloads)).toBe('[ SK ]');
  });

  it('decodes SKF fragments', () => {
    const b = message(53, 35, 0x08, 1, chain([[53, `0001 0002 ${hexOf(seq(40))}`]], 35));
    const m = expectRoundTrip(decodeMsg, encodeMsg, encodedLengthMessage, b);
    expect(m.payloads[0]).toEqual({
      type: 53,
      critical: false,
      innerType: 35,
      fragmentNumber: 1,
      totalFragments: 2,
      data: seq(40),
    });
    expect(summarize(m.payloads)).toBe('[ EF(1/2) ]');
  });

  it('keeps unknown payloads with their critical bit; the critical one is found', () => {
    const body = chain([
      [41, FRAG_SUP],
      [49, 'aabbcc', false],
      [200, '0102', true],
      [40, NONCE_BODY],
    ]);
    const b = message(41, 34, 0x08, 0, body);
    const m = expectRoundTrip(decodeMsg, encodeMsg, encodedLengthMessage, b);
    const u1 = m.payloads[1];
    const u2 = m.payloads[2];
    expect(u1 && isUnknown(u1) && u1.body).toEqual(hexBytes('aabbcc'));
    expect(u2).toEqual({ type: 200, critical: true, unknown: true, body: hexBytes('0102') });
    expect(findUnsupportedCritical(m.payloads)).toBe(200);
    expect(findUnsupportedCritical(m.payloads.slice(0, 2))).toBeUndefined();
    expect(summarize(m.payloads)).toBe('[ N(FRAG_SUP) U49 U200 No ]');
  });

  it('keeps the critical bit of known payloads and ignores reserved bits', () => {
    const body = concat(hexBytes('00 ff 0024'), seq(32)); // Nonce with C and all RESERVED bits set
    const m = decodeMessage(message(40, 34, 0x08, 0, body));
    expect(m.payloads[0]?.critical).toBe(true);
    const again = encodeMessage(m);
    expect(again[29]).toBe(0x80); // RESERVED bits are sent as zero
    expect(decodeMessage(again)).toEqual(m);
  });

  it('accepts a higher minor version and rejects a different major version', () => {
    expect(decodeMessage(message(40, 34, 8, 0, chain([[40, NONCE_BODY]]), 0x21)).header.version).toBe(0x21);
    for (const v of [0x10, 0x30]) {
      const b = message(40, 34, 8, 0, chain([[40, NONCE_BODY]]), v);
      let err: unknown;
      try {
        decodeMessage(b);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(UnsupportedVersionError);
      expect(err).toBeInstanceOf(DecodeError);
      const uv = err as UnsupportedVersionError;
      expect(uv.version).toBe(v);
      expect(uv.header.spiI).toBe(0x0102030405060708n);
      expect(uv.header.exchange).toBe(34);
    }
  });

  it('runs verifyX() unless asked not to', () => {
    const b = message(40, 34, 8, 0, chain([[40, hexOf(seq(8))]]));
    expect(() => decodeMessage(b)).toThrow(/Nonce: data length 8/);
    expect(decodeMessage(b, { verify: false }).payloads[0]).toEqual({
      type: 40,
      critical: false,
      data: seq(8),
    });
  });

  it('exposes the raw wire body (with RESERVED bytes) for AUTH', () => {
    const b = message(35, 35, 8, 1, chain([[35, '01 ab0000 c0000201']]));
    const m = decodeMessage(b);
    const id = m.payloads[0];
    expect(id && rawBody(id)).toEqual(hexBytes('01 ab0000 c0000201'));
    expect(rawBody({ type: 40, critical: false, data: seq(16) })).toBeUndefined();
  });

  const bad: [string, () => Uint8Array, RegExp][] = [
    ['a datagram shorter than the header', () => ikeSaInitReq.subarray(0, 27), /truncated IKE header/],
    [
      'a header length larger than the datagram',
      () => ikeSaInitReq.subarray(0, ikeSaInitReq.length - 1),
      /length field \d+ != datagram length/,
    ],
    [
      'a header length smaller than the datagram',
      () => concat(ikeSaInitReq, new Uint8Array(1)),
      /length field \d+ != datagram length/,
    ],
    [
      'a payload length below 4',
      () => message(40, 34, 8, 0, hexBytes('00 00 0003 00')),
      /payload length 3 is smaller/,
    ],
    [
      'a payload length past the end',
      () => message(40, 34, 8, 0, hexBytes(`00 00 0030 ${NONCE_BODY}`)),
      /payload length 48 exceeds/,
    ],
    [
      'a next payload with nothing after it',
      () => message(40, 34, 8, 0, chain([[40, NONCE_BODY]], 41)),
      /announced by a next-payload field/,
    ],
    [
      'bytes after the last payload',
      () => message(40, 34, 8, 0, concat(chain([[40, NONCE_BODY]]), seq(4))),
      /4 bytes after the last payload/,
    ],
    [
      'SK that is not last',
      () => message(46, 37, 8, 2, concat(chain([[46, hexOf(seq(32))]], 41), chain([[41, FRAG_SUP]]))),
      /must be the last payload/,
    ],
    [
      'SKF that is not last',
      () => message(53, 37, 8, 2, concat(chain([[53, `0001 0001 ${hexOf(seq(32))}`]], 0), seq(8))),
      /must be the last payload/,
    ],
    ['a truncated generic header', () => message(40, 34, 8, 0, hexBytes('00 00')), /truncated/],
    [
      'a malformed payload inside the chain',
      () => message(42, 37, 8, 2, chain([[42, '03 04 0002 11111111']])),
      /Delete: 2 SPIs/,
    ],
  ];
  for (const [name, mk, msg] of bad) {
    it(`rejects ${name}`, () => {
      const f = () => decodeMessage(mk());
      expect(f).toThrow(DecodeError);
      expect(f).toThrow(msg);
    });
  }
});

describe('decodePayloadChain / encodePayloadChain', () => {
  const inner = chain([
    [35, '01 000000 c0000201'],
    [39, `02 000000 ${hexOf(seq(32))}`],
    [33, SA_BODY],
    [44, '01 000000 07 00 0010 0000 ffff 0a000000 0a00ffff'],
    [45, '01 000000 07 00 0010 0000 ffff c0a86400 c0a864ff'],
    [41, '00 00 4000'],
    [47, '01 000000 0001 0000'],
  ]);

  it('decodes a decrypted SK body given its first type, inside a larger buffer', () => {
    const buf = concat(seq(10), inner, seq(6)); // IV before, padding after
    const ps = decodePayloadChain(35, buf, 10, 10 + inner.length);
    expect(summarize(ps)).toBe('[ IDi AUTH SA TSi TSr N(INIT_CONTACT) CPRQ(ADDR) ]');
    expect(hex(encodePayloadChain(ps))).toBe(hex(inner));
  });

  it('sets next-payload fields, with innerType for a trailing SK', () => {
    const ps: Payload[] = [
      {
        type: 41,
        critical: false,
        protocolId: 0,
        spi: new Uint8Array(0),
        notifyType: 16430,
        data: new Uint8Array(0),
      },
      { type: 46, critical: false, innerType: 36, data: seq(16) },
    ];
    const b = encodePayloadChain(ps);
    expect(b[0]).toBe(46);
    expect(b[8]).toBe(36);
    expect(decodePayloadChain(41, b)).toEqual(ps);
  });

  it('refuses to encode SK/SKF anywhere but last, and oversized payloads', () => {
    const sk: Payload = { type: 46, critical: false, innerType: 35, data: seq(16) };
    const n: Payload = {
      type: 41,
      critical: false,
      protocolId: 0,
      spi: new Uint8Array(0),
      notifyType: 16430,
      data: new Uint8Array(0),
    };
    expect(() => encodePayloadChain([sk, n])).toThrow(EncodeError);
    expect(() => encodePayloadChain([{ type: 43, critical: false, data: new Uint8Array(65532) }])).toThrow(
      /does not fit/,
    );
    expect(() =>
      encodePayloadChain([{ type: 43, critical: false, data: new Uint8Array(65531) }]),
    ).not.toThrow();
  });

  it('encodeMessage recomputes nextPayload and length', () => {
    const m = decodeMessage(ikeSaInitReq);
    const edited: IkeMessage = {
      header: { ...m.header, nextPayload: 0, length: 1 },
      payloads: m.payloads.slice(1),
    };
    const b = encodeMessage(edited);
    const back = decodeMessage(b);
    expect(back.header.nextPayload).toBe(34);
    expect(back.header.length).toBe(b.length);
    expect(b.length).toBe(encodedLengthMessage(edited));
    expect(back.payloads).toEqual(m.payloads.slice(1));
  });
});

describe('summarize', () => {
  it('formats like strongSwan', () => {
    const n = (t: number): Payload => ({
      type: 41,
      critical: false,
      protocolId: 0,
      spi: new Uint8Array(0),
      notifyType: t,
      data: new Uint8Array(0),
    });
    expect(summarize([])).toBe('[ ]');
    expect(summarize([16431, 16406, 16418, 16404, 16384, 16396, 16397, 16417, 16420].map(n))).toBe(
      '[ N(HASH_ALG) N(REDIR_SUP) N(CHDLESS_SUP) N(MULT_AUTH) N(INIT_CONTACT) N(MOBIKE_SUP) N(ADD_4_ADDR) N(EAP_ONLY) N(MSG_ID_SYN_SUP) ]',
    );
    expect(summarize([16390, 17, 14, 24, 38, 16393, 16391, 16394, 16395, 12345].map(n))).toBe(
      '[ N(COOKIE) N(INVAL_KE) N(NO_PROP) N(AUTH_FAILED) N(TS_UNACCEPT) N(REKEY_SA) N(USE_TRANSP) N(ESP_TFC_PAD_N) N(NON_FIRST_FRAG) N(12345) ]',
    );
    expect(
      summarize([
        { type: 42, critical: false, protocolId: 3, spiSize: 4, spis: [] },
        { type: 48, critical: false, data: hexBytes('0105000501') },
        { type: 48, critical: false, data: hexBytes('03050004') },
        {
          type: 47,
          critical: false,
          cfgType: 2,
          attributes: [
            { type: 1, value: seq(4) },
            { type: 99, value: seq(0) },
          ],
        },
        { type: 37, critical: false, encoding: 4, data: seq(3) },
        { type: 38, critical: false, encoding: 4, data: seq(0) },
      ]),
    ).toBe('[ D EAP/REQ/ID EAP/SUCC CPRP(ADDR 99) CERT CERTREQ ]');
  });
});
