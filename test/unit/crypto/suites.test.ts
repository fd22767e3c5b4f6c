import { describe, expect, it } from 'vitest';
import {
  CryptoSuiteError,
  dhName,
  encrName,
  encrSuite,
  integMac,
  integName,
  integSuite,
  isAead,
  isSupportedEncr,
  isSupportedInteg,
  isSupportedPrf,
  keymatLen,
  prf,
  prfName,
  prfPlus,
  prfPlusMaxLength,
  prfSuite,
  suiteName,
} from '../../../src/ike/crypto/suites.js';
import { DhGroup, Encr, Integ, Prf } from '../../../src/ike/wire/constants.js';

describe('PRF table', () => {
  it('describes the four HMAC PRFs with keyLen = outLen', () => {
    expect(prfSuite(Prf.HMAC_SHA1)).toEqual({
      id: 2,
      name: 'PRF_HMAC_SHA1',
      hash: 'sha1',
      outLen: 20,
      keyLen: 20,
    });
    expect(prfSuite(Prf.HMAC_SHA2_256)).toMatchObject({ outLen: 32, keyLen: 32, name: 'PRF_HMAC_SHA2_256' });
    expect(prfSuite(Prf.HMAC_SHA2_384)).toMatchObject({ outLen: 48, keyLen: 48, name: 'PRF_HMAC_SHA2_384' });
    expect(prfSuite(Prf.HMAC_SHA2_512)).toMatchObject({ outLen: 64, keyLen: 64, name: 'PRF_HMAC_SHA2_512' });
  });
  it('rejects PRFs we do not implement', () => {
    for (const id of [Prf.HMAC_MD5, Prf.AES128_XCBC, Prf.AES128_CMAC, 99]) {
      expect(isSupportedPrf(id)).toBe(false);
      expect(() => prfSuite(id)).toThrow(CryptoSuiteError);
      expect(() => prf(id, new Uint8Array(16), new Uint8Array(1))).toThrow(CryptoSuiteError);
    }
  });
  it('prf+ limits and edge cases', () => {
    expect(prfPlusMaxLength(Prf.HMAC_SHA1)).toBe(255 * 20);
    expect(prfPlus(Prf.HMAC_SHA1, new Uint8Array(20), new Uint8Array(4), 0)).toHaveLength(0);
    expect(() => prfPlus(Prf.HMAC_SHA1, new Uint8Array(20), new Uint8Array(4), -1)).toThrow(CryptoSuiteError);
    expect(() => prfPlus(Prf.HMAC_SHA1, new Uint8Array(20), new Uint8Array(4), 1.5)).toThrow(
      CryptoSuiteError,
    );
  });
});

describe('INTEG table', () => {
  it('key and ICV lengths (RFC 2404, RFC 4868)', () => {
    const t = [
      Integ.HMAC_SHA1_96,
      Integ.HMAC_SHA2_256_128,
      Integ.HMAC_SHA2_384_192,
      Integ.HMAC_SHA2_512_256,
    ].map((id) => {
      const s = integSuite(id);
      return [s.name, s.keyLen, s.icvLen];
    });
    expect(t).toEqual([
      ['HMAC_SHA1_96', 20, 12],
      ['HMAC_SHA2_256_128', 32, 16],
      ['HMAC_SHA2_384_192', 48, 24],
      ['HMAC_SHA2_512_256', 64, 32],
    ]);
  });
  it('rejects unsupported algorithms and wrong key lengths', () => {
    for (const id of [Integ.NONE, Integ.HMAC_MD5_96, Integ.AES_XCBC_96, Integ.AES_CMAC_96]) {
      expect(isSupportedInteg(id)).toBe(false);
      expect(() => integSuite(id)).toThrow(CryptoSuiteError);
    }
    expect(() => integMac(Integ.HMAC_SHA2_256_128, new Uint8Array(31), [])).toThrow(/32-byte key/);
    expect(() => integMac(Integ.HMAC_SHA2_256_128, new Uint8Array(33), [])).toThrow(CryptoSuiteError);
  });
});

describe('ENCR table', () => {
  it('AES-CBC, AES-GCM-16 and ChaCha20-Poly1305 parameters', () => {
    expect(encrSuite({ id: Encr.AES_CBC, keyBits: 192 })).toMatchObject({
      name: 'AES_CBC_192',
      kind: 'cbc',
      cipher: 'aes-192-cbc',
      keyLen: 24,
      saltLen: 0,
      ivLen: 16,
      blockLen: 16,
      tagLen: 0,
    });
    expect(encrSuite({ id: Encr.AES_GCM_16, keyBits: 256 })).toMatchObject({
      name: 'AES_GCM_16_256',
      kind: 'aead',
      cipher: 'aes-256-gcm',
      keyLen: 32,
      saltLen: 4,
      ivLen: 8,
      blockLen: 1,
      tagLen: 16,
    });
    const chacha = encrSuite({ id: Encr.CHACHA20_POLY1305, keyBits: 0 });
    expect(chacha).toMatchObject({
      name: 'CHACHA20_POLY1305',
      keyBits: 256,
      keyLen: 32,
      saltLen: 4,
      ivLen: 8,
    });
    expect(chacha.keyLengthAttribute).toBe(false);
    expect(encrSuite({ id: Encr.CHACHA20_POLY1305, keyBits: 256 })).toEqual(chacha);
  });
  it('keymatLen includes the salt', () => {
    expect(keymatLen({ id: Encr.AES_CBC, keyBits: 128 })).toBe(16);
    expect(keymatLen({ id: Encr.AES_CBC, keyBits: 256 })).toBe(32);
    expect(keymatLen({ id: Encr.AES_GCM_16, keyBits: 128 })).toBe(20);
    expect(keymatLen({ id: Encr.AES_GCM_16, keyBits: 192 })).toBe(28);
    expect(keymatLen({ id: Encr.AES_GCM_16, keyBits: 256 })).toBe(36);
    expect(keymatLen({ id: Encr.CHACHA20_POLY1305, keyBits: 0 })).toBe(36);
  });
  it('rejects unsupported algorithms and key lengths up front', () => {
    const bad = [
      { id: Encr.AES_CBC, keyBits: 0 },
      { id: Encr.AES_CBC, keyBits: 64 },
      { id: Encr.AES_GCM_16, keyBits: 512 },
      { id: Encr.CHACHA20_POLY1305, keyBits: 128 },
      { id: Encr['3DES'], keyBits: 0 },
      { id: Encr.AES_GCM_8, keyBits: 128 },
      { id: Encr.AES_CTR, keyBits: 128 },
      { id: Encr.NULL, keyBits: 0 },
    ];
    for (const alg of bad) {
      expect(isSupportedEncr(alg)).toBe(false);
      expect(() => encrSuite(alg)).toThrow(CryptoSuiteError);
    }
    expect(isAead({ id: Encr.AES_GCM_16, keyBits: 128 })).toBe(true);
    expect(isAead({ id: Encr.AES_CBC, keyBits: 128 })).toBe(false);
  });
});

describe('names for logs (strongSwan style)', () => {
  it('names algorithms, known or not', () => {
    expect(encrName({ id: Encr.AES_GCM_16, keyBits: 256 })).toBe('AES_GCM_16_256');
    expect(encrName({ id: Encr.AES_CBC, keyBits: 128 })).toBe('AES_CBC_128');
    expect(encrName({ id: Encr.CHACHA20_POLY1305, keyBits: 0 })).toBe('CHACHA20_POLY1305');
    expect(encrName({ id: Encr.AES_CTR, keyBits: 128 })).toBe('AES_CTR_128');
    expect(encrName({ id: 1234, keyBits: 0 })).toBe('ENCR_1234');
    expect(integName(Integ.HMAC_SHA2_256_128)).toBe('HMAC_SHA2_256_128');
    expect(integName(77)).toBe('INTEG_77');
    expect(prfName(Prf.HMAC_SHA2_384)).toBe('PRF_HMAC_SHA2_384');
    expect(prfName(Prf.AES128_XCBC)).toBe('PRF_AES128_XCBC');
    expect(dhName(DhGroup.ECP_384)).toBe('ECP_384');
    expect(dhName(DhGroup.CURVE25519)).toBe('CURVE_25519');
    expect(dhName(DhGroup.MODP_2048)).toBe('MODP_2048');
    expect(dhName(1000)).toBe('KE_1000');
  });
  it('names a whole suite', () => {
    expect(
      suiteName({ encr: { id: Encr.AES_GCM_16, keyBits: 256 }, prf: Prf.HMAC_SHA2_384, dh: DhGroup.ECP_384 }),
    ).toBe('AES_GCM_16_256/PRF_HMAC_SHA2_384/ECP_384');
    expect(
      suiteName({
        encr: { id: Encr.AES_CBC, keyBits: 128 },
        integ: Integ.HMAC_SHA2_256_128,
        prf: Prf.HMAC_SHA2_256,
        dh: DhGroup.CURVE25519,
      }),
    ).toBe('AES_CBC_128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/CURVE_25519');
    expect(
      suiteName({ encr: { id: Encr.CHACHA20_POLY1305, keyBits: 0 }, integ: Integ.NONE, dh: DhGroup.NONE }),
    ).toBe('CHACHA20_POLY1305');
  });
});
