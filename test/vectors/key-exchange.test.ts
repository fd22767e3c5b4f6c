// Known answers for the key exchange methods: ECP groups 19/20/21 with their IKE KE payload
// encodings (RFC 5903 §8) and Curve25519/Curve448 (RFC 7748 §6, RFC 8031 Appendix A).
// MODP groups 14-16 have no published vectors for these groups (RFC 5114's are for group 24):
// test/unit/crypto/dh.test.ts checks them for agreement and peer validation instead.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromHex, hex } from '../../src/common/bytes.js';
import type { Random } from '../../src/common/random.js';
import { createKeyExchange, publicKeyLength, setRawKeyImport } from '../../src/ike/crypto/dh.js';
import { DhGroup } from '../../src/ike/wire/constants.js';

const h = fromHex;

/** A Random that hands out the given private values in order. */
function fixed(...values: string[]): Random {
  const queue = values.map(h);
  return {
    bytes(n) {
      const v = queue.shift();
      if (!v || v.length !== n) throw new Error(`test random: asked for ${n} bytes`);
      return v;
    },
    float: () => 0,
  };
}

/** The KE payload data: skip the 4-byte generic header and the 4-byte group + reserved. */
function keData(payload: string, group: number): Uint8Array {
  const p = h(payload);
  expect((p[2]! << 8) | p[3]!).toBe(p.length);
  expect((p[4]! << 8) | p[5]!).toBe(group);
  return p.subarray(8);
}

const rfc5903 = [
  {
    // RFC 5903 §8.1, 256-Bit Random ECP Group
    section: '§8.1 (256-bit random ECP group)',
    group: DhGroup.ECP_256,
    i: 'C88F01F5 10D9AC3F 70A292DA A2316DE5 44E9AAB8 AFE84049 C62A9C57 862D1433',
    kei: `00000048 00130000 DAD0B653 94221CF9 B051E1FE CA5787D0 98DFE637 FC90B9EF
          945D0C37 72581180 5271A046 1CDB8252 D61F1C45 6FA3E59A B1F45B33 ACCF5F58
          389E0577 B8990BB3`,
    r: 'C6EF9C5D 78AE012A 011164AC B397CE20 88685D8F 06BF9BE0 B283AB46 476BEE53',
    ker: `00000048 00130000 D12DFB52 89C8D4F8 1208B702 70398C34 2296970A 0BCCB74C
          736FC755 4494BF63 56FBF3CA 366CC23E 8157854C 13C58D6A AC23F046 ADA30F83
          53E74F33 039872AB`,
    girx: 'D6840F6B 42F6EDAF D13116E0 E1256520 2FEF8E9E CE7DCE03 812464D0 4B9442DE',
  },
  {
    // RFC 5903 §8.2, 384-Bit Random ECP Group
    section: '§8.2 (384-bit random ECP group)',
    group: DhGroup.ECP_384,
    i: `099F3C70 34D4A2C6 99884D73 A375A67F 7624EF7C 6B3C0F16 0647B674 14DCE655
        E35B5380 41E649EE 3FAEF896 783AB194`,
    kei: `00000068 00140000 667842D7 D180AC2C DE6F74F3 7551F557 55C7645C 20EF73E3
          1634FE72 B4C55EE6 DE3AC808 ACB4BDB4 C88732AE E95F41AA 9482ED1F C0EEB9CA
          FC498462 5CCFC23F 65032149 E0E144AD A0241815 35A0F38E EB9FCFF3 C2C947DA
          E69B4C63 4573A81C`,
    r: `41CB0779 B4BDB85D 47846725 FBEC3C94 30FAB46C C8DC5060 855CC9BD A0AA2942
        E0308312 916B8ED2 960E4BD5 5A7448FC`,
    ker: `00000068 00140000 E558DBEF 53EECDE3 D3FCCFC1 AEA08A89 A987475D 12FD950D
          83CFA417 32BC509D 0D1AC43A 0336DEF9 6FDA41D0 774A3571 DCFBEC7A ACF31964
          72169E83 8430367F 66EEBE3C 6E70C416 DD5F0C68 759DD1FF F83FA401 42209DFF
          5EAAD96D B9E6386C`,
    girx: `11187331 C279962D 93D60424 3FD592CB 9D0A926F 422E4718 7521287E 7156C5C4
           D6031355 69B9E9D0 9CF5D4A2 70F59746`,
  },
  {
    // RFC 5903 §8.3, 521-Bit Random ECP Group
    section: '§8.3 (521-bit random ECP group)',
    group: DhGroup.ECP_521,
    i: `0037ADE9 319A89F4 DABDB3EF 411AACCC A5123C61 ACAB57B5 393DCE47 608172A0
        95AA85A3 0FE1C295 2C6771D9 37BA9777 F5957B26 39BAB072 462F68C2 7A57382D
        4A52`,
    kei: `0000008C 00150000 0015417E 84DBF28C 0AD3C278 713349DC 7DF153C8 97A1891B
          D98BAB43 57C9ECBE E1E3BF42 E00B8E38 0AEAE57C 2D107564 94188594 2AF5A7F4
          601723C4 195D176C ED3E017C AE20B664 1D2EEB69 5786D8C9 46146239 D099E18E
          1D5A514C 739D7CB4 A10AD8A7 88015AC4 05D7799D C75E7B7D 5B6CF226 1A6A7F15
          07438BF0 1BEB6CA3 926F9582`,
    r: `0145BA99 A847AF43 793FDD0E 872E7CDF A16BE30F DC780F97 BCCC3F07 8380201E
        9C677D60 0B343757 A3BDBF2A 3163E4C2 F869CCA7 458AA4A4 EFFC311F 5CB15168
        5EB9`,
    ker: `0000008C 00150000 00D0B397 5AC4B799 F5BEA16D 5E13E9AF 971D5E9B 984C9F39
          728B5E57 39735A21 9B97C356 436ADC6E 95BB0352 F6BE64A6 C2912D4E F2D0433C
          ED2B6171 640012D9 460F015C 68226383 956E3BD0 66E797B6 23C27CE0 EAC2F551
          A10C2C72 4D985207 7B87220B 6536C5C4 08A1D2AE BB8E86D6 78AE49CB 57091F47
          32296579 AB44FCD1 7F0FC56A`,
    girx: `01144C7D 79AE6956 BC8EDB8E 7C787C45 21CB086F A64407F9 7894E5E6 B2D79B04
           D1427E73 CA4BAA24 0A347868 59810C06 B3C715A3 A8CC3151 F2BEE417 996D19F3
           DDEA`,
  },
];

describe('ECP groups: RFC 5903 §8 test vectors, KE payloads included', () => {
  for (const v of rfc5903) {
    it(`RFC 5903 ${v.section}`, () => {
      const kei = keData(v.kei, v.group);
      const ker = keData(v.ker, v.group);
      expect(publicKeyLength(v.group)).toBe(kei.length);
      const initiator = createKeyExchange(v.group, fixed(v.i));
      const responder = createKeyExchange(v.group, fixed(v.r));
      // Our KE data is x | y with no 0x04 prefix (RFC 5903 §7), exactly the RFC's KEi / KEr.
      expect(hex(initiator.publicKey)).toBe(hex(kei));
      expect(hex(responder.publicKey)).toBe(hex(ker));
      // The shared secret is the x coordinate of g^ir only.
      const girx = hex(h(v.girx));
      expect(hex(initiator.computeSecret(ker))).toBe(girx);
      expect(hex(responder.computeSecret(kei))).toBe(girx);
    });
  }
});

// Both ways of handing raw keys to OpenSSL: Node 24.22's raw-private/raw-public import, and the
// PKCS#8 / SPKI DER forms a Node without it takes.
describe.each([
  ['raw key import', undefined],
  ['DER key import', false],
] as const)('Curve25519 / Curve448 (%s)', (_name, mode) => {
  beforeAll(() => setRawKeyImport(mode));
  afterAll(() => setRawKeyImport(undefined));

  it('RFC 7748 §6.1 (Curve25519)', () => {
    const a = createKeyExchange(
      DhGroup.CURVE25519,
      fixed('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a'),
    );
    const b = createKeyExchange(
      DhGroup.CURVE25519,
      fixed('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb'),
    );
    expect(hex(a.publicKey)).toBe('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
    expect(hex(b.publicKey)).toBe('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f');
    const k = '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742';
    expect(hex(a.computeSecret(b.publicKey))).toBe(k);
    expect(hex(b.computeSecret(a.publicKey))).toBe(k);
  });

  it('RFC 8031 Appendix A (numerical example for IKEv2)', () => {
    const i = createKeyExchange(
      DhGroup.CURVE25519,
      fixed('751fb4308655b476b6789b7325f9ea8cddd16a58533ff6d9e60009464a5f9d94'),
    );
    const r = createKeyExchange(
      DhGroup.CURVE25519,
      fixed('0a54645253290d60ddadd0e030bacd9e5501efdc220755a1e978f1b839a05688'),
    );
    expect(hex(i.publicKey)).toBe('48d5ddd4061257ba166fa3f9bbdb74f1a4e81c089384fa77f790709f0dfbc766');
    expect(hex(r.publicKey)).toBe('0be7c1f5aad87d7e448662673298a443478b859745179eaf564c79c0ef6eee25');
    const k = 'c74950607a12327f3204d94b6825bfb068b7f8319a9e3708ed3d43ce8130c950';
    expect(hex(i.computeSecret(r.publicKey))).toBe(k);
    expect(hex(r.computeSecret(i.publicKey))).toBe(k);
  });

  it('RFC 7748 §6.2 (Curve448)', () => {
    const a = createKeyExchange(
      DhGroup.CURVE448,
      fixed(
        '9a8f4925d1519f5775cf46b04b5800d4ee9ee8bae8bc5565d498c28dd9c9baf574a9419744897391006382a6f127ab1d9ac2d8c0a598726b',
      ),
    );
    const b = createKeyExchange(
      DhGroup.CURVE448,
      fixed(
        '1c306a7ac2a0e2e0990b294470cba339e6453772b075811d8fad0d1d6927c120bb5ee8972b0d3e21374c9c921b09d1b0366f10b65173992d',
      ),
    );
    expect(hex(a.publicKey)).toBe(
      '9b08f7cc31b7e3e67d22d5aea121074a273bd2b83de09c63faa73d2c22c5d9bbc836647241d953d40c5b12da88120d53177f80e532c41fa0',
    );
    expect(hex(b.publicKey)).toBe(
      '3eb7a829b0cd20f5bcfc0b599b6feccf6da4627107bdb0d4f345b43027d8b972fc3e34fb4232a13ca706dcb57aec3dae07bdc1c67bf33609',
    );
    const k =
      '07fff4181ac6cc95ec1c16a94a0f74d12da232ce40a77552281d282bb60c0b56fd2464c335543936521c24403085d59a449a5037514a879d';
    expect(hex(a.computeSecret(b.publicKey))).toBe(k);
    expect(hex(b.computeSecret(a.publicKey))).toBe(k);
  });
});
