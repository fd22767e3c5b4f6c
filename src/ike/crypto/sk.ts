// The Encrypted and Authenticated payload (SK, RFC 7296 §3.14) and encrypted fragments (SKF,
// RFC 7383 §2.5): both carry IV | ciphertext | ICV, and both authenticate everything before the
// IV ("prefix": IKE header + SK/SKF generic header, with the final length fields). Nothing here
// knows the payload type, so one cipher object serves SK and SKF.
//
//   CBC + HMAC (encrypt-then-MAC, RFC 7296 §3.14):  ICV = trunc(HMAC(SK_a, prefix | IV | C))
//   AEAD (RFC 5282 §5, RFC 7634 §4):                 AAD = prefix, nonce = salt | IV
//
// The plaintext is  inner payloads | Padding | Pad Length (1 byte). Our padding is all zeros and
// minimal; on input the padding content is not checked (RFC 7296 §3.14), only its length.
// The IV comes from the caller (an injected Random) so that known-answer vectors reproduce.
import { createCipheriv, createDecipheriv, timingSafeEqual } from 'node:crypto';
import { IntegrityError } from '../../common/errors.js';
import { Integ } from '../wire/constants.js';
import {
  CryptoSuiteError,
  type EncrAlg,
  type EncrSuite,
  encrSuite,
  integMac,
  integSuite,
  toU8,
} from './suites.js';

export interface SkCipher {
  readonly ivLen: number;
  readonly icvLen: number;
  readonly blockLen: number;
  /** Length of the SK payload body (IV | ciphertext incl. padding+padlen byte | ICV) for `plainLen` bytes of inner payloads. */
  bodyLength(plainLen: number): number;
  /**
   * prefix = the message bytes before the IV (IKE header + SK generic header, with FINAL length
   * fields). Returns IV | ciphertext | ICV. Padding bytes are zero and minimal.
   */
  seal(prefix: Uint8Array, plain: Uint8Array, iv: Uint8Array): Uint8Array;
  /** Verifies and decrypts; returns the inner payload bytes with padding removed. Throws IntegrityError on any failure. */
  open(prefix: Uint8Array, body: Uint8Array): Uint8Array;
}

/**
 * `encKey` is SK_e (for AEAD: key | salt, keymatLen() bytes); `integKey` is SK_a, empty with
 * Integ.NONE for AEAD. Wrong key lengths and invalid combinations throw CryptoSuiteError here,
 * never later.
 */
export function createSkCipher(
  encr: EncrAlg,
  integId: number,
  encKey: Uint8Array,
  integKey: Uint8Array,
): SkCipher {
  const s = encrSuite(encr);
  if (encKey.length !== s.keyLen + s.saltLen) {
    throw new CryptoSuiteError(
      `${s.name} needs ${s.keyLen + s.saltLen} bytes of key material, got ${encKey.length}`,
    );
  }
  if (s.kind === 'aead') {
    if (integId !== Integ.NONE || integKey.length !== 0) {
      throw new CryptoSuiteError(`${s.name} is an AEAD cipher: no integrity algorithm or key allowed`);
    }
    return new AeadSk(s, encKey);
  }
  const i = integSuite(integId);
  if (integKey.length !== i.keyLen) {
    throw new CryptoSuiteError(`${i.name} needs a ${i.keyLen}-byte key, got ${integKey.length}`);
  }
  return new CbcSk(s, encKey, integId, integKey, i.icvLen);
}

/** Plaintext length after appending minimal padding and the Pad Length byte. */
function paddedLength(plainLen: number, blockLen: number): number {
  return Math.ceil((plainLen + 1) / blockLen) * blockLen;
}

function pad(plain: Uint8Array, paddedLen: number): Uint8Array {
  const out = new Uint8Array(paddedLen); // zero padding
  out.set(plain);
  out[paddedLen - 1] = paddedLen - 1 - plain.length;
  return out;
}

/** Strip Padding and Pad Length from a decrypted plaintext; the pad length must fit. */
function unpad(padded: Uint8Array): Uint8Array {
  const padLen = padded[padded.length - 1];
  if (padLen === undefined || padLen + 1 > padded.length) throw new IntegrityError('bad padding length');
  return padded.subarray(0, padded.length - 1 - padLen);
}

class CbcSk implements SkCipher {
  readonly ivLen: number;
  readonly blockLen: number;
  private readonly key: Uint8Array;
  private readonly integKey: Uint8Array;

  constructor(
    private readonly s: EncrSuite,
    encKey: Uint8Array,
    private readonly integId: number,
    integKey: Uint8Array,
    readonly icvLen: number,
  ) {
    this.ivLen = s.ivLen;
    this.blockLen = s.blockLen;
    // one copy for both keys (a typed array with its own ArrayBuffer costs ~0.5 KiB of RSS)
    const own = new Uint8Array(encKey.length + integKey.length);
    own.set(encKey);
    own.set(integKey, encKey.length);
    this.key = own.subarray(0, encKey.length);
    this.integKey = own.subarray(encKey.length);
  }

  bodyLength(plainLen: number): number {
    return this.ivLen + paddedLength(plainLen, this.blockLen) + this.icvLen;
  }

  seal(prefix: Uint8Array, plain: Uint8Array, iv: Uint8Array): Uint8Array {
    if (iv.length !== this.ivLen) throw new CryptoSuiteError(`${this.s.name} needs a ${this.ivLen}-byte IV`);
    const padded = pad(plain, paddedLength(plain.length, this.blockLen));
    const c = cbcEncrypt(this.s.cipher, this.key, iv, padded);
    const out = new Uint8Array(this.ivLen + c.length + this.icvLen);
    out.set(iv);
    out.set(c, this.ivLen);
    const icv = integMac(this.integId, this.integKey, [prefix, out.subarray(0, this.ivLen + c.length)]);
    out.set(icv, this.ivLen + c.length);
    return out;
  }

  open(prefix: Uint8Array, body: Uint8Array): Uint8Array {
    const cLen = body.length - this.ivLen - this.icvLen;
    if (cLen < this.blockLen || cLen % this.blockLen !== 0) throw new IntegrityError('bad SK payload length');
    const signed = body.subarray(0, this.ivLen + cLen);
    const icv = body.subarray(this.ivLen + cLen);
    const expect = integMac(this.integId, this.integKey, [prefix, signed]);
    if (!timingSafeEqual(expect, icv)) throw new IntegrityError('ICV mismatch');
    const padded = cbcDecrypt(
      this.s.cipher,
      this.key,
      body.subarray(0, this.ivLen),
      body.subarray(this.ivLen, this.ivLen + cLen),
    );
    return unpad(padded);
  }
}

class AeadSk implements SkCipher {
  readonly ivLen: number;
  readonly icvLen: number;
  readonly blockLen: number;
  private readonly key: Uint8Array;
  private readonly salt: Uint8Array;

  constructor(
    private readonly s: EncrSuite,
    keymat: Uint8Array,
  ) {
    this.ivLen = s.ivLen;
    this.icvLen = s.tagLen;
    this.blockLen = s.blockLen;
    const own = keymat.slice(); // one copy, two views (see CbcSk)
    this.key = own.subarray(0, s.keyLen);
    this.salt = own.subarray(s.keyLen);
  }

  bodyLength(plainLen: number): number {
    return this.ivLen + paddedLength(plainLen, this.blockLen) + this.icvLen;
  }

  seal(prefix: Uint8Array, plain: Uint8Array, iv: Uint8Array): Uint8Array {
    if (iv.length !== this.ivLen) throw new CryptoSuiteError(`${this.s.name} needs a ${this.ivLen}-byte IV`);
    const padded = pad(plain, paddedLength(plain.length, this.blockLen));
    const out = new Uint8Array(this.ivLen + padded.length + this.icvLen);
    out.set(iv);
    const ct = aeadRaw(this.s, this.key, this.salt, iv).encrypt(prefix, padded);
    out.set(ct, this.ivLen);
    return out;
  }

  open(prefix: Uint8Array, body: Uint8Array): Uint8Array {
    if (body.length < this.ivLen + 1 + this.icvLen) throw new IntegrityError('SK payload too short');
    const iv = body.subarray(0, this.ivLen);
    const padded = aeadRaw(this.s, this.key, this.salt, iv).decrypt(prefix, body.subarray(this.ivLen));
    return unpad(padded);
  }
}

// ---------------------------------------------------------------------------------------------
// Building blocks, exported for known-answer tests (and usable by a userspace ESP data path).

/** AES-CBC without padding; data must be block aligned. */
export function cbcEncrypt(cipher: string, key: Uint8Array, iv: Uint8Array, data: Uint8Array): Uint8Array {
  const c = createCipheriv(cipher, key, iv);
  c.setAutoPadding(false);
  return toU8(Buffer.concat([c.update(data), c.final()]));
}

export function cbcDecrypt(cipher: string, key: Uint8Array, iv: Uint8Array, data: Uint8Array): Uint8Array {
  const d = createDecipheriv(cipher, key, iv);
  d.setAutoPadding(false);
  return toU8(Buffer.concat([d.update(data), d.final()]));
}

interface AeadOps {
  /** Returns ciphertext | tag. */
  encrypt(aad: Uint8Array, plain: Uint8Array): Uint8Array;
  /** `sealed` = ciphertext | tag. Throws IntegrityError if the tag does not verify. */
  decrypt(aad: Uint8Array, sealed: Uint8Array): Uint8Array;
}

function aeadRaw(s: EncrSuite, key: Uint8Array, salt: Uint8Array, iv: Uint8Array): AeadOps {
  const nonce = new Uint8Array(salt.length + iv.length);
  nonce.set(salt);
  nonce.set(iv, salt.length);
  const tagLen = s.tagLen;
  return {
    encrypt(aad, plain) {
      // The cast selects the CipherGCM/CipherChaCha20Poly1305 overloads (both AEAD, same methods).
      const c = createCipheriv(s.cipher as 'aes-128-gcm', key, nonce, { authTagLength: tagLen });
      c.setAAD(aad);
      const head = c.update(plain);
      const tail = c.final();
      return toU8(Buffer.concat([head, tail, c.getAuthTag()]));
    },
    decrypt(aad, sealed) {
      if (sealed.length < tagLen) throw new IntegrityError('AEAD input shorter than its tag');
      const ctLen = sealed.length - tagLen;
      const d = createDecipheriv(s.cipher as 'aes-128-gcm', key, nonce, { authTagLength: tagLen });
      d.setAuthTag(sealed.subarray(ctLen));
      d.setAAD(aad);
      const head = d.update(sealed.subarray(0, ctLen));
      try {
        return toU8(Buffer.concat([head, d.final()]));
      } catch {
        head.fill(0);
        throw new IntegrityError('AEAD tag mismatch');
      }
    },
  };
}

/**
 * AEAD encryption with IKEv2/ESP key material (RFC 5282 §7.1 / RFC 4106 §8.1 / RFC 7634 §4):
 * `keymat` = key | 4-byte salt, nonce = salt | 8-byte IV. Returns ciphertext | 16-byte tag.
 */
export function aeadEncrypt(
  encr: EncrAlg,
  keymat: Uint8Array,
  iv: Uint8Array,
  aad: Uint8Array,
  plain: Uint8Array,
): Uint8Array {
  const s = aeadSuite(encr, keymat, iv);
  return aeadRaw(s, keymat.subarray(0, s.keyLen), keymat.subarray(s.keyLen), iv).encrypt(aad, plain);
}

/** Inverse of aeadEncrypt(); throws IntegrityError when the tag does not verify. */
export function aeadDecrypt(
  encr: EncrAlg,
  keymat: Uint8Array,
  iv: Uint8Array,
  aad: Uint8Array,
  sealed: Uint8Array,
): Uint8Array {
  const s = aeadSuite(encr, keymat, iv);
  return aeadRaw(s, keymat.subarray(0, s.keyLen), keymat.subarray(s.keyLen), iv).decrypt(aad, sealed);
}

function aeadSuite(encr: EncrAlg, keymat: Uint8Array, iv: Uint8Array): EncrSuite {
  const s = encrSuite(encr);
  if (s.kind !== 'aead') throw new CryptoSuiteError(`${s.name} is not an AEAD cipher`);
  if (keymat.length !== s.keyLen + s.saltLen) {
    throw new CryptoSuiteError(
      `${s.name} needs ${s.keyLen + s.saltLen} bytes of key material, got ${keymat.length}`,
    );
  }
  if (iv.length !== s.ivLen) throw new CryptoSuiteError(`${s.name} needs a ${s.ivLen}-byte IV`);
  return s;
}
