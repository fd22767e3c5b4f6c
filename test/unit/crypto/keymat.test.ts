import { createHash } from 'node:crypto';
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { concat, fromHex, hex } from '../../../src/common/bytes.js';
import { DecodeError } from '../../../src/common/errors.js';
import { SeededRandom } from '../../../src/common/random.js';
import { createKeyExchange } from '../../../src/ike/crypto/dh.js';
import {
  ChildKeys,
  deriveChildKeys,
  deriveIkeKeys,
  deriveRekeyedIkeKeys,
  ikeKeyLengths,
  ipToBytes,
  KEY_PAD,
  macedId,
  natdHash,
  pskAuthData,
  signedOctets,
} from '../../../src/ike/crypto/keymat.js';
import { createSkCipher } from '../../../src/ike/crypto/sk.js';
import { CryptoSuiteError, keymatLen, prf, prfPlus } from '../../../src/ike/crypto/suites.js';
import { DhGroup, Encr, Integ, Prf } from '../../../src/ike/wire/constants.js';

const rnd = new SeededRandom(42);
const ni = rnd.bytes(32);
const nr = rnd.bytes(32);
const gir = rnd.bytes(32);
const spiI = 0x0102030405060708n;
const spiR = 0xf1f2f3f4f5f6f7f8n;
const gcm = { prf: Prf.HMAC_SHA2_256, encr: { id: Encr.AES_GCM_16, keyBits: 128 }, integ: Integ.NONE };
const cbc = {
  prf: Prf.HMAC_SHA2_384,
  encr: { id: Encr.AES_CBC, keyBits: 256 },
  integ: Integ.HMAC_SHA2_256_128,
};

describe('IKE SA keys (RFC 7296 §2.14)', () => {
  it('key lengths per suite', () => {
    expect(ikeKeyLengths(gcm)).toEqual({ prf: 32, integ: 0, encr: 20 });
    expect(ikeKeyLengths(cbc)).toEqual({ prf: 48, integ: 32, encr: 32 });
    expect(() => ikeKeyLengths({ ...gcm, integ: Integ.HMAC_SHA1_96 })).toThrow(CryptoSuiteError);
    expect(() => ikeKeyLengths({ ...cbc, integ: Integ.NONE })).toThrow(CryptoSuiteError);
    expect(() => ikeKeyLengths({ ...cbc, prf: Prf.AES128_XCBC })).toThrow(CryptoSuiteError);
  });

  it('splits prf+(SKEYSEED, Ni | Nr | SPIi | SPIr) in order d, ai, ar, ei, er, pi, pr', () => {
    const k = deriveIkeKeys(cbc, ni, nr, gir, spiI, spiR);
    expect(k.skeyseed).toEqual(prf(Prf.HMAC_SHA2_384, concat(ni, nr), gir));
    const seed = concat(ni, nr, fromHex('0102030405060708f1f2f3f4f5f6f7f8'));
    const all = prfPlus(Prf.HMAC_SHA2_384, k.skeyseed, seed, 3 * 48 + 2 * 32 + 2 * 32);
    expect(concat(k.skD, k.skAi, k.skAr, k.skEi, k.skEr, k.skPi, k.skPr)).toEqual(all);
    expect([k.skD, k.skAi, k.skAr, k.skEi, k.skEr, k.skPi, k.skPr].map((x) => x.length)).toEqual([
      48, 32, 32, 32, 32, 48, 48,
    ]);
  });

  it('initiator and responder derive the same keys from a real exchange, and the SK ciphers interoperate', () => {
    const i = createKeyExchange(DhGroup.CURVE25519, new SeededRandom(1));
    const r = createKeyExchange(DhGroup.CURVE25519, new SeededRandom(2));
    const ki = deriveIkeKeys(gcm, ni, nr, i.computeSecret(r.publicKey), spiI, spiR);
    const kr = deriveIkeKeys(gcm, ni, nr, r.computeSecret(i.publicKey), spiI, spiR);
    expect(hex(ki.skEi)).toBe(hex(kr.skEi));
    const out = createSkCipher(gcm.encr, Integ.NONE, ki.skEi, ki.skAi);
    const inn = createSkCipher(gcm.encr, Integ.NONE, kr.skEi, kr.skAi);
    const prefix = rnd.bytes(32);
    expect(inn.open(prefix, out.seal(prefix, Uint8Array.of(1, 2), rnd.bytes(8)))).toEqual(
      Uint8Array.of(1, 2),
    );
  });

  it('rekey uses the old PRF for SKEYSEED and the new PRF for prf+ (§2.18)', () => {
    const old = deriveIkeKeys(cbc, ni, nr, gir, spiI, spiR);
    const n2i = rnd.bytes(16);
    const n2r = rnd.bytes(16);
    const g2 = rnd.bytes(56);
    const k = deriveRekeyedIkeKeys(Prf.HMAC_SHA2_384, old.skD, gcm, g2, n2i, n2r, 7n, 9n);
    expect(k.skeyseed).toEqual(prf(Prf.HMAC_SHA2_384, old.skD, concat(g2, n2i, n2r)));
    expect(k.skeyseed).toHaveLength(48);
    const seed = concat(n2i, n2r, fromHex('00000000000000070000000000000009'));
    expect(k.skD).toEqual(prfPlus(Prf.HMAC_SHA2_256, k.skeyseed, seed, 32));
    expect(k.skEi).toHaveLength(20);
  });

  it('refuses an empty shared secret', () => {
    expect(() => deriveIkeKeys(gcm, ni, nr, new Uint8Array(0), spiI, spiR)).toThrow(CryptoSuiteError);
  });
});

describe('CHILD_SA keys (RFC 7296 §2.17)', () => {
  it('initiator->responder first, encryption before integrity', () => {
    const skD = rnd.bytes(32);
    const c = deriveChildKeys(Prf.HMAC_SHA2_256, skD, ni, nr, undefined, 16, 32);
    const km = prfPlus(Prf.HMAC_SHA2_256, skD, concat(ni, nr), 96);
    expect(c.encrI).toEqual(km.subarray(0, 16));
    expect(c.integI).toEqual(km.subarray(16, 48));
    expect(c.encrR).toEqual(km.subarray(48, 64));
    expect(c.integR).toEqual(km.subarray(64, 96));
  });

  it('PFS puts g^ir (new) in front of the nonces; AEAD has empty integrity keys', () => {
    const skD = rnd.bytes(32);
    const g = rnd.bytes(32);
    const len = keymatLen({ id: Encr.AES_GCM_16, keyBits: 256 });
    const c = deriveChildKeys(Prf.HMAC_SHA2_256, skD, ni, nr, g, len, 0);
    expect(concat(c.encrI, c.encrR)).toEqual(prfPlus(Prf.HMAC_SHA2_256, skD, concat(g, ni, nr), 72));
    expect(c.integI).toHaveLength(0);
    expect(c.integR).toHaveLength(0);
  });
});

describe('key objects never print their bytes', () => {
  it('toJSON, util.inspect, String() print <redacted>', () => {
    const k = deriveIkeKeys(cbc, ni, nr, gir, spiI, spiR);
    const c = deriveChildKeys(Prf.HMAC_SHA2_256, k.skD.subarray(0, 32), ni, nr, undefined, 16, 32);
    const logged = JSON.stringify({ sa: 'x', keys: k, child: c });
    expect(logged).toBe('{"sa":"x","keys":"<redacted>","child":"<redacted>"}');
    expect(inspect({ k, c }, { depth: 5 })).not.toContain(hex(k.skD).slice(0, 8));
    expect(inspect(k)).toBe('IkeKeys <redacted>');
    expect(inspect(c)).toBe('ChildKeys <redacted>');
    expect(`${k}`).toBe('IkeKeys <redacted>');
  });

  it('wipe() zeroes every key', () => {
    const k = deriveIkeKeys(cbc, ni, nr, gir, spiI, spiR);
    k.wipe();
    for (const x of [k.skeyseed, k.skD, k.skAi, k.skAr, k.skEi, k.skEr, k.skPi, k.skPr]) {
      expect(x.every((b) => b === 0)).toBe(true);
    }
    const c = new ChildKeys(Uint8Array.of(1), Uint8Array.of(2), Uint8Array.of(3), Uint8Array.of(4));
    c.wipe();
    expect([...c.encrI, ...c.integI, ...c.encrR, ...c.integR]).toEqual([0, 0, 0, 0]);
  });
});

describe('shared-key AUTH (RFC 7296 §2.15)', () => {
  // No published AUTH vector exists; this checks the composition against the RFC's formula.
  it('AUTH = prf(prf(PSK, "Key Pad for IKEv2"), RealMessage | Nonce | prf(SK_p, IDbody))', () => {
    expect(new TextDecoder().decode(KEY_PAD)).toBe('Key Pad for IKEv2');
    expect(KEY_PAD).toHaveLength(17);
    const psk = new TextEncoder().encode('secret');
    const msg = rnd.bytes(300);
    const skP = rnd.bytes(32);
    const idBody = concat(Uint8Array.of(2, 0, 0, 0), new TextEncoder().encode('gw.example.com'));
    const maced = prf(Prf.HMAC_SHA2_256, skP, idBody);
    expect(macedId(Prf.HMAC_SHA2_256, skP, idBody)).toEqual(maced);
    expect(signedOctets(Prf.HMAC_SHA2_256, msg, nr, skP, idBody)).toEqual(concat(msg, nr, maced));
    const expected = prf(Prf.HMAC_SHA2_256, prf(Prf.HMAC_SHA2_256, psk, KEY_PAD), concat(msg, nr, maced));
    const auth = pskAuthData(Prf.HMAC_SHA2_256, psk, msg, nr, skP, idBody);
    expect(auth).toEqual(expected);
    expect(auth).toHaveLength(32);
  });

  it('the padded key kept per PSK and PRF gives the same AUTH each time, and another PSK or PRF its own', () => {
    const msg = rnd.bytes(300);
    const skP = rnd.bytes(64);
    const idBody = concat(Uint8Array.of(2, 0, 0, 0), new TextEncoder().encode('gw.example.com'));
    const formula = (id: number, psk: Uint8Array) =>
      prf(id, prf(id, psk, KEY_PAD), concat(msg, nr, prf(id, skP, idBody)));
    const a = new TextEncoder().encode('first secret');
    const b = new TextEncoder().encode('second secret');
    for (const id of [Prf.HMAC_SHA2_256, Prf.HMAC_SHA2_512, Prf.HMAC_SHA2_256]) {
      for (const psk of [a, b, a]) {
        expect(pskAuthData(id, psk, msg, nr, skP, idBody), `prf ${id}`).toEqual(formula(id, psk));
      }
    }
    expect(pskAuthData(Prf.HMAC_SHA2_256, a, msg, nr, skP, idBody)).not.toEqual(
      pskAuthData(Prf.HMAC_SHA2_256, b, msg, nr, skP, idBody),
    );
  });
});

describe('NAT detection hash (RFC 7296 §2.23)', () => {
  it('SHA-1 over SPIi | SPIr | IPv4 | port', () => {
    const want = createHash('sha1')
      .update(fromHex('0102030405060708 f1f2f3f4f5f6f7f8 c0000201 01f4'))
      .digest();
    expect(hex(natdHash(spiI, spiR, '192.0.2.1', 500))).toBe(want.toString('hex'));
    expect(natdHash(spiI, 0n, '192.0.2.1', 500)).toHaveLength(20);
  });

  it('IPv6 addresses are hashed as 16 bytes', () => {
    const want = createHash('sha1')
      .update(fromHex('0102030405060708 f1f2f3f4f5f6f7f8 20010db8000000000000000000000001 1194'))
      .digest();
    expect(hex(natdHash(spiI, spiR, '2001:db8::1', 4500))).toBe(want.toString('hex'));
  });

  it('parses textual addresses', () => {
    expect(hex(ipToBytes('10.1.2.3'))).toBe('0a010203');
    expect(hex(ipToBytes('::'))).toBe('0'.repeat(32));
    expect(hex(ipToBytes('::1'))).toBe(`${'0'.repeat(31)}1`);
    expect(hex(ipToBytes('fe80::'))).toBe(`fe80${'0'.repeat(28)}`);
    expect(hex(ipToBytes('2001:db8:1:2:3:4:5:6'))).toBe('20010db8000100020003000400050006');
    expect(hex(ipToBytes('2001:DB8::a:b'))).toBe('20010db8000000000000000000' + '0a000b');
    expect(hex(ipToBytes('::ffff:192.0.2.1'))).toBe('00000000000000000000ffffc0000201');
    expect(hex(ipToBytes('64:ff9b::198.51.100.7'))).toBe('0064ff9b0000000000000000c6336407');
    for (const bad of ['', '1.2.3', '256.1.1.1', 'host', 'fe80::1%eth0', '1::2::3']) {
      expect(() => ipToBytes(bad)).toThrow(DecodeError);
    }
    expect(() => natdHash(1n, 2n, '192.0.2.1', 70000)).toThrow(DecodeError);
  });
});
