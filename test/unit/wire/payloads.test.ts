// Hand-built fixtures for every payload body except SA (sa.test.ts), written from the RFC 7296 §3
// and RFC 7383 §2.5 layouts, plus their error cases and verifyX() limits.
import { describe, expect, it } from 'vitest';
import { Reader, Writer } from '../../../src/common/bytes.js';
import { DecodeError } from '../../../src/common/errors.js';
import { EncodeError } from '../../../src/ike/wire/header.js';
import { decodeAuth, encodeAuth, encodedLengthAuth, verifyAuth } from '../../../src/ike/wire/payload/auth.js';
import { decodeCert, encodeCert, encodedLengthCert, verifyCert } from '../../../src/ike/wire/payload/cert.js';
import { decodeCp, encodeCp, encodedLengthCp, verifyCp } from '../../../src/ike/wire/payload/cp.js';
import {
  decodeDelete,
  encodeDelete,
  encodedLengthDelete,
  verifyDelete,
} from '../../../src/ike/wire/payload/delete.js';
import { decodeEap, encodedLengthEap, encodeEap, verifyEap } from '../../../src/ike/wire/payload/eap.js';
import { decodeId, encodedLengthId, encodeId, verifyId } from '../../../src/ike/wire/payload/id.js';
import { decodeKe, encodedLengthKe, encodeKe, verifyKe } from '../../../src/ike/wire/payload/ke.js';
import {
  decodeNonce,
  encodedLengthNonce,
  encodeNonce,
  verifyNonce,
} from '../../../src/ike/wire/payload/nonce.js';
import {
  decodeNotify,
  encodedLengthNotify,
  encodeNotify,
  verifyNotify,
} from '../../../src/ike/wire/payload/notify.js';
import {
  decodeSk,
  decodeSkf,
  encodedLengthSk,
  encodedLengthSkf,
  encodeSk,
  encodeSkf,
  verifySkf,
} from '../../../src/ike/wire/payload/sk.js';
import { decodeTs, encodedLengthTs, encodeTs, verifyTs } from '../../../src/ike/wire/payload/ts.js';
import { decodeVendor, encodedLengthVendor, encodeVendor } from '../../../src/ike/wire/payload/vendor.js';
import type { NotifyPayload, TsPayload } from '../../../src/ike/wire/types.js';
import { expectRoundTrip, hexBytes, seq } from '../../helpers/roundtrip.js';

const rd = (h: string) => new Reader(hexBytes(h));
const hexOf = (b: Uint8Array) => Buffer.from(b).toString('hex');

function expectDecodeError(f: () => unknown, msg: RegExp): void {
  expect(f).toThrow(DecodeError);
  expect(f).toThrow(msg);
}

describe('KE payload', () => {
  it('decodes group and data', () => {
    const b = hexBytes(`001f 0000 ${hexOf(seq(32))}`); // group 31, RESERVED, 32 bytes
    const ke = expectRoundTrip((r) => decodeKe(r, false), encodeKe, encodedLengthKe, b);
    expect(ke).toEqual({ type: 34, critical: false, group: 31, data: seq(32) });
  });
  it('rejects a body shorter than the fixed part', () => {
    expectDecodeError(() => decodeKe(rd('001f 00'), false), /truncated KE RESERVED/);
    expectDecodeError(() => decodeKe(rd('00'), false), /truncated KE DH group/);
  });
  it('verifyKe wants data', () => {
    expect(() => verifyKe({ type: 34, critical: false, group: 14, data: new Uint8Array(0) })).toThrow(
      DecodeError,
    );
  });
});

describe('ID payload', () => {
  it('decodes an ID_FQDN', () => {
    const b = hexBytes('02 000000 67772e6578616d706c65'); // FQDN "gw.example"
    const id = expectRoundTrip((r) => decodeId(r, false, 36), encodeId, encodedLengthId, b);
    expect(id.type).toBe(36);
    expect(id.idType).toBe(2);
    expect(Buffer.from(id.data).toString()).toBe('gw.example');
    expect(() => verifyId(id)).not.toThrow();
  });
  it('decodes an ID_IPV4_ADDR', () => {
    const id = expectRoundTrip(
      (r) => decodeId(r, true, 35),
      encodeId,
      encodedLengthId,
      hexBytes('01 000000 c0000201'),
    );
    expect(id).toEqual({ type: 35, critical: true, idType: 1, data: new Uint8Array([192, 0, 2, 1]) });
  });
  it('rejects a truncated header and bad address lengths', () => {
    expectDecodeError(() => decodeId(rd('01 0000'), false, 35), /truncated IDi RESERVED/);
    const v4 = decodeId(rd('01 000000 c000020101'), false, 35);
    expectDecodeError(() => verifyId(v4), /ID_IPV4_ADDR data is 5 bytes/);
    const v6 = decodeId(rd('05 000000 c0000201'), false, 36);
    expectDecodeError(() => verifyId(v6), /IDr: ID_IPV6_ADDR data is 4 bytes/);
    expectDecodeError(() => verifyId(decodeId(rd('02 000000'), false, 35)), /empty/);
  });
});

describe('CERT / CERTREQ payloads', () => {
  it('decodes a CERT', () => {
    const c = expectRoundTrip(
      (r) => decodeCert(r, false, 37),
      encodeCert,
      encodedLengthCert,
      hexBytes('04 3082000130'),
    );
    expect(c).toEqual({ type: 37, critical: false, encoding: 4, data: hexBytes('3082000130') });
  });
  it('decodes a CERTREQ with one SHA-1 CA hash, and an empty one', () => {
    const b = hexBytes(`04 ${hexOf(seq(20))}`);
    const c = expectRoundTrip((r) => decodeCert(r, false, 38), encodeCert, encodedLengthCert, b);
    expect(c.type).toBe(38);
    expect(() => verifyCert(c)).not.toThrow();
    expect(() => verifyCert(decodeCert(rd('04'), false, 38))).not.toThrow();
  });
  it('rejects an empty body, an empty CERT and a ragged X.509 CERTREQ', () => {
    expectDecodeError(() => decodeCert(rd(''), false, 37), /truncated CERT encoding/);
    expectDecodeError(() => verifyCert(decodeCert(rd('04'), false, 37)), /empty certificate/);
    expectDecodeError(
      () => verifyCert(decodeCert(rd(`04 ${hexOf(seq(21))}`), false, 38)),
      /not a multiple of 20/,
    );
  });
});

describe('AUTH payload', () => {
  it('decodes method and data', () => {
    const b = hexBytes(`02 000000 ${hexOf(seq(32, 0x40))}`); // Shared Key MIC
    const a = expectRoundTrip((r) => decodeAuth(r, false), encodeAuth, encodedLengthAuth, b);
    expect(a).toEqual({ type: 39, critical: false, method: 2, data: seq(32, 0x40) });
  });
  it('rejects truncation and empty data', () => {
    expectDecodeError(() => decodeAuth(rd('02 00'), false), /truncated AUTH RESERVED/);
    expectDecodeError(() => verifyAuth(decodeAuth(rd('02 000000'), false)), /empty/);
  });
});

describe('Nonce payload', () => {
  it('round-trips and enforces 16..256 bytes in verify', () => {
    const n = expectRoundTrip((r) => decodeNonce(r, false), encodeNonce, encodedLengthNonce, seq(32));
    expect(n).toEqual({ type: 40, critical: false, data: seq(32) });
    const mk = (len: number) => ({ type: 40 as const, critical: false, data: new Uint8Array(len) });
    expect(() => verifyNonce(mk(16))).not.toThrow();
    expect(() => verifyNonce(mk(256))).not.toThrow();
    expectDecodeError(() => verifyNonce(mk(15)), /Nonce: data length 15/);
    expectDecodeError(() => verifyNonce(mk(257)), /Nonce: data length 257/);
  });
});

describe('Notify payload', () => {
  it('decodes a notify without SPI (NAT_DETECTION_SOURCE_IP)', () => {
    const b = hexBytes(`00 00 4004 ${hexOf(seq(20))}`);
    const n = expectRoundTrip((r) => decodeNotify(r, false), encodeNotify, encodedLengthNotify, b);
    expect(n).toEqual({
      type: 41,
      critical: false,
      protocolId: 0,
      spi: new Uint8Array(0),
      notifyType: 16388,
      data: seq(20),
    });
    expect(() => verifyNotify(n)).not.toThrow();
  });
  it('decodes a notify with an ESP SPI (REKEY_SA)', () => {
    const n = expectRoundTrip(
      (r) => decodeNotify(r, false),
      encodeNotify,
      encodedLengthNotify,
      hexBytes('03 04 4009 c1a2b3d4'),
    );
    expect(n.protocolId).toBe(3);
    expect(n.spi).toEqual(hexBytes('c1a2b3d4'));
    expect(n.notifyType).toBe(16393);
    expect(n.data).toHaveLength(0);
    expect(() => verifyNotify(n)).not.toThrow();
  });
  it('decodes an error notify with data (INVALID_KE_PAYLOAD, group 19)', () => {
    const n = expectRoundTrip(
      (r) => decodeNotify(r, false),
      encodeNotify,
      encodedLengthNotify,
      hexBytes('00 00 0011 0013'),
    );
    expect(n.notifyType).toBe(17);
    expect(n.data).toEqual(hexBytes('0013'));
  });
  it('rejects an SPI size past the end and a short header', () => {
    expectDecodeError(
      () => decodeNotify(rd('03 08 4009 c1a2b3d4'), false),
      /Notify: SPI size 8 exceeds the 4 bytes/,
    );
    expectDecodeError(() => decodeNotify(rd('00 00 40'), false), /truncated Notify message type/);
  });
  it('verifyNotify checks sizes the RFCs fix', () => {
    const mk = (notifyType: number, data: number, spi = 0, protocolId = 0): NotifyPayload => ({
      type: 41,
      critical: false,
      protocolId,
      spi: new Uint8Array(spi),
      notifyType,
      data: new Uint8Array(data),
    });
    expectDecodeError(
      () => verifyNotify(mk(16388, 19)),
      /NAT_DETECTION_SOURCE_IP: data length 19, expected 20/,
    );
    expectDecodeError(() => verifyNotify(mk(17, 3)), /INVALID_KE_PAYLOAD/);
    expectDecodeError(() => verifyNotify(mk(16390, 0)), /cookie length 0/);
    expectDecodeError(() => verifyNotify(mk(16390, 65)), /cookie length 65/);
    expect(() => verifyNotify(mk(16390, 64))).not.toThrow();
    expectDecodeError(() => verifyNotify(mk(16431, 3)), /odd/);
    expectDecodeError(() => verifyNotify(mk(16393, 0, 3, 3)), /SPI size 3/);
    expectDecodeError(() => verifyNotify(mk(16393, 0, 4, 7)), /protocol ID 7/);
    expect(() => verifyNotify(mk(16384, 0, 0, 9))).not.toThrow(); // protocol ignored without SPI
    expect(() => verifyNotify(mk(40000, 1000))).not.toThrow(); // unknown type: anything goes
  });
});

describe('Delete payload', () => {
  it('decodes ESP SPIs', () => {
    const b = hexBytes('03 04 0002 11111111 22222222');
    const d = expectRoundTrip((r) => decodeDelete(r, false), encodeDelete, encodedLengthDelete, b);
    expect(d).toEqual({
      type: 42,
      critical: false,
      protocolId: 3,
      spiSize: 4,
      spis: [hexBytes('11111111'), hexBytes('22222222')],
    });
    expect(() => verifyDelete(d)).not.toThrow();
  });
  it('decodes an IKE SA delete (no SPIs)', () => {
    const d = expectRoundTrip(
      (r) => decodeDelete(r, false),
      encodeDelete,
      encodedLengthDelete,
      hexBytes('01 00 0000'),
    );
    expect(d.spis).toEqual([]);
    expect(() => verifyDelete(d)).not.toThrow();
  });
  it('rejects count/size mismatches', () => {
    expectDecodeError(
      () => decodeDelete(rd('03 04 0002 11111111'), false),
      /2 SPIs of 4 bytes need 8 bytes, payload has 4/,
    );
    expectDecodeError(() => decodeDelete(rd('03 04 0001 11111111 22'), false), /need 4 bytes, payload has 5/);
    expectDecodeError(() => decodeDelete(rd('01 00 0003'), false), /SPI size 0 with SPI count 3/);
    expectDecodeError(() => decodeDelete(rd('03 04'), false), /truncated Delete SPI count/);
  });
  it('verifyDelete checks SPI size per protocol', () => {
    expectDecodeError(() => verifyDelete(decodeDelete(rd('01 04 0001 11111111'), false)), /Delete IKE/);
    expectDecodeError(
      () => verifyDelete(decodeDelete(rd('03 08 0001 1111111122222222'), false)),
      /SPI size 8/,
    );
    expectDecodeError(() => verifyDelete(decodeDelete(rd('07 00 0000'), false)), /unknown protocol ID 7/);
  });
  it('encoder rejects an SPI of the wrong size', () => {
    const d = { type: 42 as const, critical: false, protocolId: 3, spiSize: 4, spis: [new Uint8Array(3)] };
    expect(() => encodeDelete(new Writer(), d)).toThrow(EncodeError);
  });
});

describe('Vendor ID payload', () => {
  it('round-trips opaque data', () => {
    const v = expectRoundTrip(
      (r) => decodeVendor(r, false),
      encodeVendor,
      encodedLengthVendor,
      hexBytes('882fe56d6fd20dbc2251613b2ebe5beb'),
    );
    expect(v.type).toBe(43);
    expect(v.data).toHaveLength(16);
  });
});

describe('TS payloads', () => {
  const twoSelectors = `
    02 000000                                  # 2 TSs, RESERVED
    07 00 0010  0000 ffff  00000000 ffffffff    # IPv4 any protocol, all ports, 0.0.0.0-255.255.255.255
    08 06 0028  01bb 01bb                       # IPv6 TCP port 443
      20010db8000000000000000000000000
      20010db800000000ffffffffffffffff
  `;
  it('decodes IPv4 and IPv6 range selectors', () => {
    const ts = expectRoundTrip(
      (r) => decodeTs(r, false, 44),
      encodeTs,
      encodedLengthTs,
      hexBytes(twoSelectors),
    );
    expect(ts.type).toBe(44);
    expect(ts.selectors).toEqual([
      {
        tsType: 7,
        ipProtocol: 0,
        startPort: 0,
        endPort: 65535,
        startAddr: hexBytes('00000000'),
        endAddr: hexBytes('ffffffff'),
      },
      {
        tsType: 8,
        ipProtocol: 6,
        startPort: 443,
        endPort: 443,
        startAddr: hexBytes('20010db8000000000000000000000000'),
        endAddr: hexBytes('20010db800000000ffffffffffffffff'),
      },
    ]);
    expect(() => verifyTs(ts)).not.toThrow();
  });
  it('rejects bad counts, lengths and types', () => {
    expectDecodeError(
      () => decodeTs(rd('02 000000 07 00 0010 0000 ffff 00000000 ffffffff'), false, 44),
      /TSi: number of TSs is 2 but only 1/,
    );
    expectDecodeError(
      () => decodeTs(rd('01 000000 07 00 0010 0000 ffff 00000000 ffffffff 00'), false, 45),
      /TSr: 1 bytes after 1 selectors/,
    );
    expectDecodeError(
      () => decodeTs(rd('01 000000 07 00 0014 0000 ffff 00000000 ffffffff 00000000'), false, 44),
      /selector length 20, expected 16/,
    );
    expectDecodeError(
      () => decodeTs(rd('01 000000 08 00 0010 0000 ffff 00000000 ffffffff'), false, 44),
      /selector length 16, expected 40/,
    );
    expectDecodeError(
      () => decodeTs(rd('01 000000 09 00 0010 0000 ffff 00000000 ffffffff'), false, 44),
      /unsupported TS type 9/,
    );
    expectDecodeError(
      () => decodeTs(rd('01 000000 07 00 0010 0000 ffff 00000000 ffff'), false, 44),
      /truncated/,
    );
  });
  it('verifyTs wants at least one selector; the encoder checks address sizes', () => {
    const empty = decodeTs(rd('00 000000'), false, 45);
    expectDecodeError(() => verifyTs(empty), /TSr: no traffic selectors/);
    const bad: TsPayload = {
      type: 44,
      critical: false,
      selectors: [
        {
          tsType: 7,
          ipProtocol: 0,
          startPort: 0,
          endPort: 65535,
          startAddr: new Uint8Array(16),
          endAddr: new Uint8Array(4),
        },
      ],
    };
    expect(() => encodeTs(new Writer(), bad)).toThrow(/starting address: expected 4 bytes/);
  });
});

describe('SK and SKF payloads', () => {
  it('keeps SK data opaque with the inner payload type', () => {
    const sk = expectRoundTrip((r) => decodeSk(r, false, 35), encodeSk, encodedLengthSk, seq(48));
    expect(sk).toEqual({ type: 46, critical: false, innerType: 35, data: seq(48) });
  });
  it('decodes SKF fragment numbering', () => {
    const b = hexBytes(`0002 0003 ${hexOf(seq(24))}`);
    const f = expectRoundTrip((r) => decodeSkf(r, false, 0), encodeSkf, encodedLengthSkf, b);
    expect(f).toEqual({
      type: 53,
      critical: false,
      innerType: 0,
      fragmentNumber: 2,
      totalFragments: 3,
      data: seq(24),
    });
    expect(() => verifySkf(f)).not.toThrow();
  });
  it('rejects a short SKF header and out-of-range fragment numbers', () => {
    expectDecodeError(() => decodeSkf(rd('0001 00'), false, 35), /truncated SKF total fragments/);
    expectDecodeError(() => verifySkf(decodeSkf(rd('0000 0003'), false, 35)), /fragment number 0/);
    expectDecodeError(
      () => verifySkf(decodeSkf(rd('0004 0003'), false, 0)),
      /fragment number 4 > total fragments 3/,
    );
  });
});

describe('CP payload', () => {
  it('decodes a CFG_REQUEST with empty attributes', () => {
    const b = hexBytes('01 000000  0001 0000  0003 0000'); // INTERNAL_IP4_ADDRESS, INTERNAL_IP4_DNS
    const cp = expectRoundTrip((r) => decodeCp(r, false), encodeCp, encodedLengthCp, b);
    expect(cp).toEqual({
      type: 47,
      critical: false,
      cfgType: 1,
      attributes: [
        { type: 1, value: new Uint8Array(0) },
        { type: 3, value: new Uint8Array(0) },
      ],
    });
    expect(() => verifyCp(cp)).not.toThrow();
  });
  it('decodes a CFG_REPLY with an address', () => {
    const cp = expectRoundTrip(
      (r) => decodeCp(r, false),
      encodeCp,
      encodedLengthCp,
      hexBytes('02 000000 0001 0004 0a000001'),
    );
    expect(cp.attributes[0]?.value).toEqual(hexBytes('0a000001'));
  });
  it('rejects truncated attributes and unknown CFG types', () => {
    expectDecodeError(
      () => decodeCp(rd('01 000000 0001 0004 0a00'), false),
      /truncated CP attribute #1 value/,
    );
    expectDecodeError(() => decodeCp(rd('01 000000 0001 00'), false), /truncated CP attribute #1 length/);
    expectDecodeError(() => verifyCp(decodeCp(rd('05 000000'), false)), /unknown CFG type 5/);
  });
});

describe('EAP payload', () => {
  it('keeps the EAP message whole', () => {
    const e = expectRoundTrip(
      (r) => decodeEap(r, false),
      encodeEap,
      encodedLengthEap,
      hexBytes('01 05 0005 01'),
    ); // Request/Identity
    expect(e).toEqual({ type: 48, critical: false, data: hexBytes('0105000501') });
    expect(() => verifyEap(e)).not.toThrow();
    expectRoundTrip((r) => decodeEap(r, false), encodeEap, encodedLengthEap, hexBytes('03 05 0004')); // Success
  });
  it('rejects length mismatches and requests without a type', () => {
    expectDecodeError(() => decodeEap(rd('01 05 0006 01'), false), /EAP length 6 != payload body length 5/);
    expectDecodeError(() => decodeEap(rd('01 05 0004'), false), /no type field/);
    expectDecodeError(() => decodeEap(rd('01 05'), false), /truncated EAP length/);
  });
});
