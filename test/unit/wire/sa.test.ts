import { describe, expect, it } from 'vitest';
import { Reader, Writer } from '../../../src/common/bytes.js';
import { DecodeError } from '../../../src/common/errors.js';
import { EncodeError } from '../../../src/ike/wire/header.js';
import { decodeSa, encodedLengthSa, encodeSa, verifySa } from '../../../src/ike/wire/payload/sa.js';
import type { SaPayload } from '../../../src/ike/wire/types.js';
import { expectRoundTrip, hexBytes } from '../../helpers/roundtrip.js';

const dec = (r: Reader) => decodeSa(r, false);
const decodeHex = (s: string) => decodeSa(new Reader(hexBytes(s)), false);

// SA body, written from RFC 7296 §3.3.1-§3.3.5: two proposals.
const twoProposals = `
  # proposal 1: more follows (2), length 44, num 1, IKE, SPI size 0, 4 transforms
  02 00 002c  01 01 00 04
    03 00 000c  01 00 000c  800e 0100   # ENCR AES_CBC, TV KEY_LENGTH 256
    03 00 0008  02 00 0005              # PRF HMAC_SHA2_256
    03 00 0008  03 00 000c              # INTEG HMAC_SHA2_256_128
    00 00 0008  04 00 001f              # DH 31 (last)
  # proposal 2: last (0), length 39, num 2, ESP, SPI size 4, 2 transforms
  00 00 0027  02 03 04 02  11223344
    03 00 0013  01 00 0014  800e 0080  0011 0003 aabbcc   # ENCR AES_GCM_16, TV 128, TLV type 17
    00 00 0008  05 00 0000              # ESN none (last)
`;

describe('SA payload', () => {
  it('decodes proposals, transforms and TV/TLV attributes and round-trips', () => {
    const sa = expectRoundTrip(dec, encodeSa, encodedLengthSa, hexBytes(twoProposals));
    expect(sa.type).toBe(33);
    expect(sa.proposals).toHaveLength(2);
    const [p1, p2] = sa.proposals;
    expect(p1).toEqual({
      num: 1,
      protocolId: 1,
      spi: new Uint8Array(0),
      transforms: [
        { type: 1, id: 12, attributes: [{ type: 14, value: 256 }] },
        { type: 2, id: 5, attributes: [] },
        { type: 3, id: 12, attributes: [] },
        { type: 4, id: 31, attributes: [] },
      ],
    });
    expect(p2?.protocolId).toBe(3);
    expect(p2?.spi).toEqual(new Uint8Array([0x11, 0x22, 0x33, 0x44]));
    expect(p2?.transforms[0]?.attributes).toEqual([
      { type: 14, value: 128 },
      { type: 17, value: new Uint8Array([0xaa, 0xbb, 0xcc]) },
    ]);
    expect(p2?.transforms[1]).toEqual({ type: 5, id: 0, attributes: [] });
    expect(() => verifySa(sa)).not.toThrow();
  });

  it('keeps the critical flag it is given', () => {
    expect(decodeSa(new Reader(hexBytes(twoProposals)), true).critical).toBe(true);
  });

  it('accepts a proposal with an 8-byte IKE SPI (IKE rekey) and zero transforms structurally', () => {
    const sa = decodeHex('00 00 0010 01 01 08 00 0102030405060708');
    expect(sa.proposals[0]?.spi).toHaveLength(8);
    expect(sa.proposals[0]?.transforms).toEqual([]);
  });

  const bad: [string, string, RegExp][] = [
    ['empty body', '', /no proposals/],
    ['truncated proposal header', '00 00 00', /truncated/],
    ['proposal length below 8', '00 00 0007 01 01 00 00', /proposal length 7/],
    ['proposal length beyond payload', '00 00 0010 01 01 00 00', /truncated/],
    ['bad last-substructure value', '01 00 0008 01 01 00 00', /last-substructure value 1/],
    ['last proposal followed by bytes', '00 00 0008 01 01 00 00  00 00 0008 02 01 00 00', /marked last/],
    ['"more" with nothing after', '02 00 0008 01 01 00 00', /marked 'more'/],
    ['SPI size beyond proposal', '00 00 000a 01 03 04 00 1122', /SPI size 4 exceeds/],
    [
      'transform count too high',
      '00 00 0010 01 01 00 02 03 00 0008 01 00 000c',
      /transform count 2 but only 1/,
    ],
    [
      'transform count too low',
      '00 00 0018 01 01 00 01 00 00 0008 01 00 000c 00 00 0008 02 00 0005',
      /left after 1 transforms/,
    ],
    [
      'transform last marker wrong (last)',
      '00 00 0010 01 01 00 01 03 00 0008 01 00 000c',
      /last-substructure value 3, expected 0/,
    ],
    [
      'transform last marker wrong (more)',
      '00 00 0018 01 01 00 02 00 00 0008 01 00 000c 00 00 0008 02 00 0005',
      /last-substructure value 0, expected 3/,
    ],
    ['transform length below 8', '00 00 0010 01 01 00 01 00 00 0004 01 00 000c', /transform length 4/],
    ['transform length beyond proposal', '00 00 0010 01 01 00 01 00 00 000c 01 00 000c', /truncated/],
    [
      'TLV attribute length beyond transform',
      '00 00 0014 01 01 00 01 00 00 000c 01 00 000c 0011 0009',
      /truncated/,
    ],
    ['half an attribute header', '00 00 0012 01 01 00 01 00 00 000a 01 00 000c 800e', /truncated/],
  ];
  for (const [name, h, msg] of bad) {
    it(`rejects ${name}`, () => {
      const f = () => decodeHex(h);
      expect(f).toThrow(DecodeError);
      expect(f).toThrow(msg);
    });
  }

  it('verifySa checks SPI sizes per protocol', () => {
    const mk = (protocolId: number, spiLen: number): SaPayload => ({
      type: 33,
      critical: false,
      proposals: [{ num: 1, protocolId, spi: new Uint8Array(spiLen), transforms: [] }],
    });
    expect(() => verifySa(mk(1, 0))).not.toThrow();
    expect(() => verifySa(mk(1, 8))).not.toThrow();
    expect(() => verifySa(mk(1, 4))).toThrow(/IKE SPI size 4/);
    expect(() => verifySa(mk(3, 4))).not.toThrow();
    expect(() => verifySa(mk(3, 8))).toThrow(/ESP SPI size 8/);
    expect(() => verifySa(mk(2, 0))).toThrow(/AH SPI size 0/);
    expect(() => verifySa(mk(9, 3))).not.toThrow(); // unknown protocol: left to proposal selection
    expect(() => verifySa({ type: 33, critical: false, proposals: [] })).toThrow(DecodeError);
  });

  it('encoder rejects values that do not fit their fields', () => {
    const base = (): SaPayload => ({
      type: 33,
      critical: false,
      proposals: [
        { num: 1, protocolId: 1, spi: new Uint8Array(0), transforms: [{ type: 1, id: 12, attributes: [] }] },
      ],
    });
    const enc = (x: SaPayload) => encodeSa(new Writer(), x);
    const a = base();
    a.proposals[0]!.transforms[0]!.attributes.push({ type: 14, value: 70000 });
    expect(() => enc(a)).toThrow(EncodeError);
    const b = base();
    b.proposals[0]!.transforms[0]!.attributes.push({ type: 0x8000, value: 1 });
    expect(() => enc(b)).toThrow(/attribute type/);
    const c = base();
    c.proposals[0]!.spi = new Uint8Array(256);
    expect(() => enc(c)).toThrow(/SPI size/);
    const d = base();
    d.proposals[0]!.num = 256;
    expect(() => enc(d)).toThrow(/number/);
  });
});
