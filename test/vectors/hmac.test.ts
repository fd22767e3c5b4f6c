// Known answers for the PRF and INTEG transforms (HMAC-SHA1 and HMAC-SHA2, full and truncated).
import { describe, expect, it } from 'vitest';
import { fromHex, hex } from '../../src/common/bytes.js';
import { integMac, prf } from '../../src/ike/crypto/suites.js';
import { Integ, Prf } from '../../src/ike/wire/constants.js';

const ascii = (s: string): Uint8Array => new TextEncoder().encode(s);
const rep = (byte: number, n: number): Uint8Array => new Uint8Array(n).fill(byte);
const seq = (from: number, to: number): Uint8Array =>
  Uint8Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('PRF_HMAC_SHA1: RFC 2202 §3 (test cases 1-4, 6, 7)', () => {
  const cases: Array<[string, Uint8Array, Uint8Array, string]> = [
    ['RFC 2202 §3 test_case 1', rep(0x0b, 20), ascii('Hi There'), 'b617318655057264e28bc0b6fb378c8ef146be00'],
    [
      'RFC 2202 §3 test_case 2',
      ascii('Jefe'),
      ascii('what do ya want for nothing?'),
      'effcdf6ae5eb2fa2d27416d5f184df9c259a7c79',
    ],
    ['RFC 2202 §3 test_case 3', rep(0xaa, 20), rep(0xdd, 50), '125d7342b9ac11cd91a39af48aa17b4f63f175d3'],
    ['RFC 2202 §3 test_case 4', seq(0x01, 0x19), rep(0xcd, 50), '4c9007f4026250c6bc8414f9bf50c86c2d7235da'],
    [
      'RFC 2202 §3 test_case 6',
      rep(0xaa, 80),
      ascii('Test Using Larger Than Block-Size Key - Hash Key First'),
      'aa4ae5e15272d00e95705637ce8a3b55ed402112',
    ],
    [
      'RFC 2202 §3 test_case 7',
      rep(0xaa, 80),
      ascii('Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data'),
      'e8e99d0f45237d786d6bbaa7965c7808bbff1a91',
    ],
  ];
  for (const [name, key, data, out] of cases) {
    it(name, () => expect(hex(prf(Prf.HMAC_SHA1, key, data))).toBe(out));
  }
});

describe('HMAC_SHA1_96: RFC 2202 §3 digests truncated to 96 bits as RFC 2404 §2 defines', () => {
  // RFC 2202 §3 test_case 1 and 3, first 12 bytes.
  it('RFC 2202 §3 test_case 1, truncated', () =>
    expect(hex(integMac(Integ.HMAC_SHA1_96, rep(0x0b, 20), [ascii('Hi There')]))).toBe(
      'b617318655057264e28bc0b6',
    ));
  it('RFC 2202 §3 test_case 3, truncated', () =>
    expect(hex(integMac(Integ.HMAC_SHA1_96, rep(0xaa, 20), [rep(0xdd, 50)]))).toBe(
      '125d7342b9ac11cd91a39af4',
    ));
});

describe('PRF_HMAC_SHA2_256/384/512: RFC 4231 §4 (test cases 1, 3, 4, 6, 7)', () => {
  const data1 = ascii('Hi There');
  const data6 = ascii('Test Using Larger Than Block-Size Key - Hash Key First');
  const data7 = ascii(
    'This is a test using a larger than block-size key and a larger than block-size data. ' +
      'The key needs to be hashed before being used by the HMAC algorithm.',
  );
  const cases: Array<[string, number, Uint8Array, Uint8Array, string]> = [
    // RFC 4231 §4.2 Test Case 1
    [
      '4.2 case 1 SHA-256',
      Prf.HMAC_SHA2_256,
      rep(0x0b, 20),
      data1,
      'b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7',
    ],
    [
      '4.2 case 1 SHA-384',
      Prf.HMAC_SHA2_384,
      rep(0x0b, 20),
      data1,
      'afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59cfaea9ea9076ede7f4af152e8b2fa9cb6',
    ],
    [
      '4.2 case 1 SHA-512',
      Prf.HMAC_SHA2_512,
      rep(0x0b, 20),
      data1,
      '87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cdedaa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854',
    ],
    // RFC 4231 §4.4 Test Case 3
    [
      '4.4 case 3 SHA-256',
      Prf.HMAC_SHA2_256,
      rep(0xaa, 20),
      rep(0xdd, 50),
      '773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe',
    ],
    [
      '4.4 case 3 SHA-384',
      Prf.HMAC_SHA2_384,
      rep(0xaa, 20),
      rep(0xdd, 50),
      '88062608d3e6ad8a0aa2ace014c8a86f0aa635d947ac9febe83ef4e55966144b2a5ab39dc13814b94e3ab6e101a34f27',
    ],
    [
      '4.4 case 3 SHA-512',
      Prf.HMAC_SHA2_512,
      rep(0xaa, 20),
      rep(0xdd, 50),
      'fa73b0089d56a284efb0f0756c890be9b1b5dbdd8ee81a3655f83e33b2279d39bf3e848279a722c806b485a47e67c807b946a337bee8942674278859e13292fb',
    ],
    // RFC 4231 §4.5 Test Case 4
    [
      '4.5 case 4 SHA-256',
      Prf.HMAC_SHA2_256,
      seq(0x01, 0x19),
      rep(0xcd, 50),
      '82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b',
    ],
    [
      '4.5 case 4 SHA-384',
      Prf.HMAC_SHA2_384,
      seq(0x01, 0x19),
      rep(0xcd, 50),
      '3e8a69b7783c25851933ab6290af6ca77a9981480850009cc5577c6e1f573b4e6801dd23c4a7d679ccf8a386c674cffb',
    ],
    [
      '4.5 case 4 SHA-512',
      Prf.HMAC_SHA2_512,
      seq(0x01, 0x19),
      rep(0xcd, 50),
      'b0ba465637458c6990e5a8c5f61d4af7e576d97ff94b872de76f8050361ee3dba91ca5c11aa25eb4d679275cc5788063a5f19741120c4f2de2adebeb10a298dd',
    ],
    // RFC 4231 §4.7 Test Case 6
    [
      '4.7 case 6 SHA-256',
      Prf.HMAC_SHA2_256,
      rep(0xaa, 131),
      data6,
      '60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54',
    ],
    [
      '4.7 case 6 SHA-384',
      Prf.HMAC_SHA2_384,
      rep(0xaa, 131),
      data6,
      '4ece084485813e9088d2c63a041bc5b44f9ef1012a2b588f3cd11f05033ac4c60c2ef6ab4030fe8296248df163f44952',
    ],
    [
      '4.7 case 6 SHA-512',
      Prf.HMAC_SHA2_512,
      rep(0xaa, 131),
      data6,
      '80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f3526b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598',
    ],
    // RFC 4231 §4.8 Test Case 7
    [
      '4.8 case 7 SHA-256',
      Prf.HMAC_SHA2_256,
      rep(0xaa, 131),
      data7,
      '9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2',
    ],
    [
      '4.8 case 7 SHA-384',
      Prf.HMAC_SHA2_384,
      rep(0xaa, 131),
      data7,
      '6617178e941f020d351e2f254e8fd32c602420feb0b8fb9adccebb82461e99c5a678cc31e799176d3860e6110c46523e',
    ],
  ];
  for (const [name, id, key, data, out] of cases) {
    it(`RFC 4231 §${name}`, () => expect(hex(prf(id, key, data))).toBe(out));
  }
});

describe('HMAC-SHA-256-128/384-192/512-256: RFC 4868 §2.7.2 (AUTH256/384/512 test cases)', () => {
  const cases: Array<[string, number, Uint8Array, Uint8Array, string]> = [
    // RFC 4868 §2.7.2.1 Test Case AUTH256-1, §2.7.2.2 AUTH384-1, §2.7.2.3 AUTH512-1: key 0x0b.., "Hi There"
    [
      'AUTH256-1',
      Integ.HMAC_SHA2_256_128,
      rep(0x0b, 32),
      ascii('Hi There'),
      '198a607eb44bfbc69903a0f1cf2bbdc5',
    ],
    [
      'AUTH384-1',
      Integ.HMAC_SHA2_384_192,
      rep(0x0b, 48),
      ascii('Hi There'),
      'b6a8d5636f5c6a7224f9977dcf7ee6c7fb6d0c48cbdee973',
    ],
    [
      'AUTH512-1',
      Integ.HMAC_SHA2_512_256,
      rep(0x0b, 64),
      ascii('Hi There'),
      '637edc6e01dce7e6742a99451aae82df23da3e92439e590e43e761b33e910fb8',
    ],
    // AUTH*-2: key "Jefe" repeated to the key length
    [
      'AUTH256-2',
      Integ.HMAC_SHA2_256_128,
      ascii('Jefe'.repeat(8)),
      ascii('what do ya want for nothing?'),
      '167f928588c5cc2eef8e3093caa0e87c',
    ],
    [
      'AUTH384-2',
      Integ.HMAC_SHA2_384_192,
      ascii('Jefe'.repeat(12)),
      ascii('what do ya want for nothing?'),
      '2c7353974f1842fd66d53c452ca42122b28c0b594cfb184d',
    ],
    [
      'AUTH512-2',
      Integ.HMAC_SHA2_512_256,
      ascii('Jefe'.repeat(16)),
      ascii('what do ya want for nothing?'),
      'cb370917ae8a7ce28cfd1d8f4705d6141c173b2a9362c15df235dfb251b15454',
    ],
    // AUTH*-3: key 0xaa.., data 50 x 0xdd
    ['AUTH256-3', Integ.HMAC_SHA2_256_128, rep(0xaa, 32), rep(0xdd, 50), 'cdcb1220d1ecccea91e53aba3092f962'],
    [
      'AUTH384-3',
      Integ.HMAC_SHA2_384_192,
      rep(0xaa, 48),
      rep(0xdd, 50),
      '809f439be00274321d4a538652164b53554a508184a0c316',
    ],
    [
      'AUTH512-3',
      Integ.HMAC_SHA2_512_256,
      rep(0xaa, 64),
      rep(0xdd, 50),
      '2ee7acd783624ca9398710f3ee05ae41b9f9b0510c87e49e586cc9bf961733d8',
    ],
  ];
  for (const [name, id, key, data, out] of cases) {
    it(`RFC 4868 §2.7.2 ${name}`, () => expect(hex(integMac(id, key, [data]))).toBe(out));
  }

  it('integMac takes its data in parts', () => {
    const whole = integMac(Integ.HMAC_SHA2_256_128, rep(0x0b, 32), [ascii('Hi There')]);
    expect(integMac(Integ.HMAC_SHA2_256_128, rep(0x0b, 32), [ascii('Hi '), ascii('There')])).toEqual(whole);
    expect(fromHex('198a607eb44bfbc69903a0f1cf2bbdc5')).toEqual(whole);
  });
});
