import { describe, expect, it } from 'vitest';
import { concat, hex } from '../../../src/common/bytes.js';
import { IntegrityError } from '../../../src/common/errors.js';
import { SeededRandom } from '../../../src/common/random.js';
import {
  aeadEncrypt,
  cbcDecrypt,
  cbcEncrypt,
  createSkCipher,
  type SkCipher,
} from '../../../src/ike/crypto/sk.js';
import {
  CryptoSuiteError,
  type EncrAlg,
  encrSuite,
  integMac,
  integSuite,
  keymatLen,
} from '../../../src/ike/crypto/suites.js';
import { Encr, Integ } from '../../../src/ike/wire/constants.js';

const CBC_INTEGS = [
  Integ.HMAC_SHA1_96,
  Integ.HMAC_SHA2_256_128,
  Integ.HMAC_SHA2_384_192,
  Integ.HMAC_SHA2_512_256,
];
const combos: Array<{ encr: EncrAlg; integ: number }> = [
  ...[128, 192, 256].flatMap((keyBits) =>
    CBC_INTEGS.map((integ) => ({ encr: { id: Encr.AES_CBC, keyBits }, integ })),
  ),
  ...[128, 192, 256].map((keyBits) => ({ encr: { id: Encr.AES_GCM_16, keyBits }, integ: Integ.NONE })),
  { encr: { id: Encr.CHACHA20_POLY1305, keyBits: 256 }, integ: Integ.NONE },
];

function label(c: { encr: EncrAlg; integ: number }): string {
  const e = encrSuite(c.encr).name;
  return c.integ === Integ.NONE ? e : `${e}/${integSuite(c.integ).name}`;
}

function make(c: { encr: EncrAlg; integ: number }, rnd: SeededRandom): SkCipher {
  const integLen = c.integ === Integ.NONE ? 0 : integSuite(c.integ).keyLen;
  return createSkCipher(c.encr, c.integ, rnd.bytes(keymatLen(c.encr)), rnd.bytes(integLen));
}

/** An IKE header (28 bytes) + SK generic header (4 bytes) with final lengths, as the caller builds it. */
function prefixFor(sk: SkCipher, plainLen: number, rnd: SeededRandom): Uint8Array {
  const p = rnd.bytes(32);
  const body = sk.bodyLength(plainLen);
  const msgLen = 32 + body;
  p[24] = msgLen >>> 24;
  p[25] = (msgLen >>> 16) & 0xff;
  p[26] = (msgLen >>> 8) & 0xff;
  p[27] = msgLen & 0xff;
  p[30] = (4 + body) >>> 8;
  p[31] = (4 + body) & 0xff;
  return p;
}

describe('SK payload: round trip for every ENCR x INTEG combination', () => {
  for (const c of combos) {
    it(label(c), () => {
      const rnd = new SeededRandom(7);
      const sk = make(c, rnd);
      for (const n of [0, 1, 14, 15, 16, 17, 31, 100, 1400]) {
        const plain = rnd.bytes(n);
        const prefix = prefixFor(sk, n, rnd);
        const body = sk.seal(prefix, plain, rnd.bytes(sk.ivLen));
        expect(body.length).toBe(sk.bodyLength(n));
        expect(sk.open(prefix, body)).toEqual(plain);
      }
    });
  }

  it('both ends with the same keys interoperate, and keys are copied at construction', () => {
    const rnd = new SeededRandom(1);
    const ke = rnd.bytes(16);
    const ka = rnd.bytes(32);
    const a = createSkCipher({ id: Encr.AES_CBC, keyBits: 128 }, Integ.HMAC_SHA2_256_128, ke, ka);
    const b = createSkCipher(
      { id: Encr.AES_CBC, keyBits: 128 },
      Integ.HMAC_SHA2_256_128,
      ke.slice(),
      ka.slice(),
    );
    ke.fill(0);
    ka.fill(0);
    const prefix = rnd.bytes(32);
    expect(b.open(prefix, a.seal(prefix, Uint8Array.of(1, 2, 3), rnd.bytes(16)))).toEqual(
      Uint8Array.of(1, 2, 3),
    );
  });
});

describe('SK payload: layout and padding', () => {
  it('CBC: minimal zero padding to the block size, Pad Length last, ICV over prefix | IV | C', () => {
    const rnd = new SeededRandom(2);
    const key = rnd.bytes(16);
    const ikey = rnd.bytes(20);
    const sk = createSkCipher({ id: Encr.AES_CBC, keyBits: 128 }, Integ.HMAC_SHA1_96, key, ikey);
    expect([sk.ivLen, sk.blockLen, sk.icvLen]).toEqual([16, 16, 12]);
    expect(sk.bodyLength(15)).toBe(16 + 16 + 12);
    expect(sk.bodyLength(16)).toBe(16 + 32 + 12);
    const plain = rnd.bytes(20);
    const prefix = rnd.bytes(32);
    const iv = rnd.bytes(16);
    const body = sk.seal(prefix, plain, iv);
    expect(body.subarray(0, 16)).toEqual(iv);
    const c = body.subarray(16, 48);
    const padded = cbcDecrypt('aes-128-cbc', key, iv, c);
    // 20 bytes + 11 zero bytes of padding + Pad Length 11 = 32
    expect(padded.subarray(0, 20)).toEqual(plain);
    expect(padded.subarray(20, 31)).toEqual(new Uint8Array(11));
    expect(padded[31]).toBe(11);
    expect(body.subarray(48)).toEqual(integMac(Integ.HMAC_SHA1_96, ikey, [prefix, iv, c]));
  });

  it('AEAD: no padding, Pad Length 0, IV | C | tag', () => {
    const rnd = new SeededRandom(3);
    const keymat = rnd.bytes(20);
    const sk = createSkCipher({ id: Encr.AES_GCM_16, keyBits: 128 }, Integ.NONE, keymat, new Uint8Array(0));
    const plain = rnd.bytes(33);
    const prefix = rnd.bytes(32);
    const iv = rnd.bytes(8);
    const body = sk.seal(prefix, plain, iv);
    expect(body.length).toBe(8 + 34 + 16);
    expect(body.subarray(8)).toEqual(
      aeadEncrypt({ id: Encr.AES_GCM_16, keyBits: 128 }, keymat, iv, prefix, concat(plain, Uint8Array.of(0))),
    );
  });

  it('reproduces byte for byte with an injected IV source', () => {
    const run = (): string => {
      const rnd = new SeededRandom(99);
      const sk = make({ encr: { id: Encr.AES_CBC, keyBits: 256 }, integ: Integ.HMAC_SHA2_512_256 }, rnd);
      return hex(sk.seal(rnd.bytes(32), rnd.bytes(50), rnd.bytes(16)));
    };
    expect(run()).toBe(run());
  });

  it('accepts non-zero padding from the peer (content is not checked, RFC 7296 §3.14)', () => {
    const rnd = new SeededRandom(4);
    const key = rnd.bytes(32);
    const ikey = rnd.bytes(32);
    const sk = createSkCipher({ id: Encr.AES_CBC, keyBits: 256 }, Integ.HMAC_SHA2_256_128, key, ikey);
    const plain = rnd.bytes(10);
    // 10 bytes + five non-zero padding bytes + Pad Length 5 = one block
    const padded = concat(plain, Uint8Array.of(0xaa, 0xbb, 0xcc, 0xdd, 0xee), Uint8Array.of(5));
    const iv = rnd.bytes(16);
    const prefix = rnd.bytes(32);
    const c = cbcEncrypt('aes-256-cbc', key, iv, padded);
    const body = concat(iv, c, integMac(Integ.HMAC_SHA2_256_128, ikey, [prefix, iv, c]));
    expect(sk.open(prefix, body)).toEqual(plain);
  });
});

describe('SK payload: integrity failures all raise IntegrityError', () => {
  for (const c of combos) {
    it(`${label(c)}: flipping any single bit of prefix or body fails`, () => {
      const rnd = new SeededRandom(11);
      const sk = make(c, rnd);
      const plain = rnd.bytes(23);
      const prefix = prefixFor(sk, plain.length, rnd);
      const body = sk.seal(prefix, plain, rnd.bytes(sk.ivLen));
      const msg = concat(prefix, body);
      for (let i = 0; i < msg.length; i++) {
        const m = msg.slice();
        m[i]! ^= 1 << (i % 8);
        expect(() => sk.open(m.subarray(0, 32), m.subarray(32)), `byte ${i}`).toThrow(IntegrityError);
      }
    });

    it(`${label(c)}: truncated or extended bodies fail`, () => {
      const rnd = new SeededRandom(12);
      const sk = make(c, rnd);
      const prefix = rnd.bytes(32);
      const body = sk.seal(prefix, rnd.bytes(40), rnd.bytes(sk.ivLen));
      for (const n of [0, 1, sk.ivLen, sk.ivLen + sk.icvLen, body.length - 1]) {
        expect(() => sk.open(prefix, body.subarray(0, n))).toThrow(IntegrityError);
      }
      expect(() => sk.open(prefix, concat(body, Uint8Array.of(0)))).toThrow(IntegrityError);
      expect(() => sk.open(prefix, concat(body, new Uint8Array(16)))).toThrow(IntegrityError);
    });
  }

  it('CBC: a correctly MACed message with an impossible Pad Length fails', () => {
    const rnd = new SeededRandom(5);
    const key = rnd.bytes(16);
    const ikey = rnd.bytes(32);
    const sk = createSkCipher({ id: Encr.AES_CBC, keyBits: 128 }, Integ.HMAC_SHA2_256_128, key, ikey);
    const block = rnd.bytes(16);
    block[15] = 16; // pad length 16 + 1 > 16 bytes of plaintext
    const iv = rnd.bytes(16);
    const prefix = rnd.bytes(32);
    const c = cbcEncrypt('aes-128-cbc', key, iv, block);
    const body = concat(iv, c, integMac(Integ.HMAC_SHA2_256_128, ikey, [prefix, iv, c]));
    expect(() => sk.open(prefix, body)).toThrow(/bad padding length/);
  });

  it('AEAD: a correctly tagged message with an impossible Pad Length fails', () => {
    const rnd = new SeededRandom(6);
    const keymat = rnd.bytes(36);
    const alg = { id: Encr.CHACHA20_POLY1305, keyBits: 256 };
    const sk = createSkCipher(alg, Integ.NONE, keymat, new Uint8Array(0));
    const iv = rnd.bytes(8);
    const prefix = rnd.bytes(32);
    // Pad Length 4 with only 3 bytes before it.
    const body = concat(iv, aeadEncrypt(alg, keymat, iv, prefix, Uint8Array.of(1, 2, 3, 4)));
    expect(() => sk.open(prefix, body)).toThrow(/bad padding length/);
    // Pad Length 2 with exactly 2 bytes before it is fine: empty inner payloads.
    const empty = concat(iv, aeadEncrypt(alg, keymat, iv, prefix, Uint8Array.of(9, 9, 2)));
    expect(sk.open(prefix, empty)).toEqual(new Uint8Array(0));
  });

  it('SKF: the fragment number and total are authenticated like any prefix byte', () => {
    const rnd = new SeededRandom(8);
    const sk = make({ encr: { id: Encr.AES_GCM_16, keyBits: 256 }, integ: Integ.NONE }, rnd);
    // IKE header + SKF generic header + Fragment Number (2) + Total Fragments (2) (RFC 7383 §2.5)
    const prefix = concat(rnd.bytes(28), Uint8Array.of(0x35, 0, 0, 0, 0, 1, 0, 3));
    const body = sk.seal(prefix, rnd.bytes(500), rnd.bytes(8));
    const other = prefix.slice();
    other[33] = 2;
    expect(() => sk.open(other, body)).toThrow(IntegrityError);
    expect(sk.open(prefix, body)).toHaveLength(500);
  });
});

describe('createSkCipher rejects bad keys and combinations up front', () => {
  const z = (n: number): Uint8Array => new Uint8Array(n);
  it('wrong encryption key lengths', () => {
    expect(() =>
      createSkCipher({ id: Encr.AES_CBC, keyBits: 128 }, Integ.HMAC_SHA1_96, z(24), z(20)),
    ).toThrow(CryptoSuiteError);
    expect(() => createSkCipher({ id: Encr.AES_GCM_16, keyBits: 128 }, Integ.NONE, z(16), z(0))).toThrow(
      /20 bytes of key material/,
    );
    expect(() =>
      createSkCipher({ id: Encr.CHACHA20_POLY1305, keyBits: 256 }, Integ.NONE, z(32), z(0)),
    ).toThrow(CryptoSuiteError);
  });
  it('wrong integrity key lengths', () => {
    expect(() =>
      createSkCipher({ id: Encr.AES_CBC, keyBits: 128 }, Integ.HMAC_SHA2_256_128, z(16), z(20)),
    ).toThrow(/32-byte key/);
  });
  it('AEAD with an integrity algorithm or key, CBC without one', () => {
    expect(() =>
      createSkCipher({ id: Encr.AES_GCM_16, keyBits: 128 }, Integ.HMAC_SHA1_96, z(20), z(20)),
    ).toThrow(CryptoSuiteError);
    expect(() => createSkCipher({ id: Encr.AES_GCM_16, keyBits: 128 }, Integ.NONE, z(20), z(1))).toThrow(
      CryptoSuiteError,
    );
    expect(() => createSkCipher({ id: Encr.AES_CBC, keyBits: 128 }, Integ.NONE, z(16), z(0))).toThrow(
      CryptoSuiteError,
    );
  });
  it('unsupported algorithms and a wrong IV length', () => {
    expect(() => createSkCipher({ id: Encr['3DES'], keyBits: 0 }, Integ.HMAC_SHA1_96, z(24), z(20))).toThrow(
      CryptoSuiteError,
    );
    const sk = createSkCipher({ id: Encr.AES_CBC, keyBits: 128 }, Integ.HMAC_SHA1_96, z(16), z(20));
    expect(() => sk.seal(z(32), z(4), z(8))).toThrow(/16-byte IV/);
  });
});
