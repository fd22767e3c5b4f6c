// IANA transform ids -> node:crypto parameters (STYLE.md §5). Each table rejects unsupported ids
// and wrong key lengths up front, as ssh2's createCipher does, so nothing downstream has to.
// Names for logs follow strongSwan ("AES_GCM_16_256/PRF_HMAC_SHA2_384/ECP_384").
import { createHmac } from 'node:crypto';
import { IkegwError } from '../../common/errors.js';
import { DhGroup, Encr, Integ, Prf } from '../wire/constants.js';

/** An algorithm id or key length we do not implement, or a key of the wrong size. */
export class CryptoSuiteError extends IkegwError {
  constructor(message: string) {
    super('ERR_CRYPTO_SUITE', message);
  }
}

export type HashName = 'sha1' | 'sha256' | 'sha384' | 'sha512';

// ---------------------------------------------------------------------------------------------
// PRF (RFC 7296 §3.3.2 transform type 2; HMAC-SHA-2 per RFC 4868)

export interface PrfSuite {
  readonly id: number;
  readonly name: string;
  readonly hash: HashName;
  /** Output length of prf() in bytes. */
  readonly outLen: number;
  /** Preferred key length (RFC 7296 §2.13: for HMAC PRFs, the output length). Used for SK_d, SK_pi, SK_pr. */
  readonly keyLen: number;
}

const PRFS: ReadonlyMap<number, PrfSuite> = new Map(
  (
    [
      [Prf.HMAC_SHA1, 'PRF_HMAC_SHA1', 'sha1', 20],
      [Prf.HMAC_SHA2_256, 'PRF_HMAC_SHA2_256', 'sha256', 32],
      [Prf.HMAC_SHA2_384, 'PRF_HMAC_SHA2_384', 'sha384', 48],
      [Prf.HMAC_SHA2_512, 'PRF_HMAC_SHA2_512', 'sha512', 64],
    ] as const
  ).map(([id, name, hash, outLen]) => [id, { id, name, hash, outLen, keyLen: outLen }]),
);

export function isSupportedPrf(id: number): boolean {
  return PRFS.has(id);
}

export function prfSuite(id: number): PrfSuite {
  const s = PRFS.get(id);
  if (!s) throw new CryptoSuiteError(`unsupported PRF ${prfName(id)}`);
  return s;
}

/** prf(K, S) (RFC 7296 §2.13). HMAC accepts keys of any length. */
export function prf(id: number, key: Uint8Array, data: Uint8Array): Uint8Array {
  const h = createHmac(prfSuite(id).hash, key);
  h.update(data);
  return toU8(h.digest());
}

/** prf with the data given in parts (saves concatenating nonces and SPIs). */
export function prfParts(id: number, key: Uint8Array, parts: readonly Uint8Array[]): Uint8Array {
  const h = createHmac(prfSuite(id).hash, key);
  for (const p of parts) h.update(p);
  return toU8(h.digest());
}

/** Largest prf+ output: the counter octet runs from 0x01 to 0xff (RFC 7296 §2.13). */
export function prfPlusMaxLength(id: number): number {
  return 255 * prfSuite(id).outLen;
}

/**
 * prf+ (K, S) = T1 | T2 | T3 | ...  where T1 = prf(K, S | 0x01), Tn = prf(K, Tn-1 | S | n)
 * (RFC 7296 §2.13). Returns exactly `length` bytes.
 */
export function prfPlus(id: number, key: Uint8Array, seed: Uint8Array, length: number): Uint8Array {
  const s = prfSuite(id);
  if (!Number.isInteger(length) || length < 0) throw new CryptoSuiteError(`bad prf+ length ${length}`);
  if (length > 255 * s.outLen) {
    throw new CryptoSuiteError(`prf+ cannot produce ${length} bytes with ${s.name} (max ${255 * s.outLen})`);
  }
  const out = new Uint8Array(length);
  let prev: Uint8Array = new Uint8Array(0);
  const counter = new Uint8Array(1);
  for (let off = 0, n = 1; off < length; n++) {
    counter[0] = n;
    const h = createHmac(s.hash, key);
    h.update(prev);
    h.update(seed);
    h.update(counter);
    prev = toU8(h.digest());
    const take = Math.min(prev.length, length - off);
    out.set(prev.subarray(0, take), off);
    off += take;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// INTEG (transform type 3): HMAC truncated to icvLen (RFC 2404, RFC 4868)

export interface IntegSuite {
  readonly id: number;
  readonly name: string;
  readonly hash: HashName;
  readonly keyLen: number;
  /** Truncated ICV length in bytes. */
  readonly icvLen: number;
}

const INTEGS: ReadonlyMap<number, IntegSuite> = new Map(
  (
    [
      [Integ.HMAC_SHA1_96, 'HMAC_SHA1_96', 'sha1', 20, 12],
      [Integ.HMAC_SHA2_256_128, 'HMAC_SHA2_256_128', 'sha256', 32, 16],
      [Integ.HMAC_SHA2_384_192, 'HMAC_SHA2_384_192', 'sha384', 48, 24],
      [Integ.HMAC_SHA2_512_256, 'HMAC_SHA2_512_256', 'sha512', 64, 32],
    ] as const
  ).map(([id, name, hash, keyLen, icvLen]) => [id, { id, name, hash, keyLen, icvLen }]),
);

export function isSupportedInteg(id: number): boolean {
  return INTEGS.has(id);
}

export function integSuite(id: number): IntegSuite {
  const s = INTEGS.get(id);
  if (!s) throw new CryptoSuiteError(`unsupported integrity algorithm ${integName(id)}`);
  return s;
}

/** Truncated HMAC over the parts. Rejects a key of the wrong length. */
export function integMac(id: number, key: Uint8Array, parts: readonly Uint8Array[]): Uint8Array {
  const s = integSuite(id);
  if (key.length !== s.keyLen) {
    throw new CryptoSuiteError(`${s.name} needs a ${s.keyLen}-byte key, got ${key.length}`);
  }
  const h = createHmac(s.hash, key);
  for (const p of parts) h.update(p);
  return toU8(h.digest()).subarray(0, s.icvLen);
}

// ---------------------------------------------------------------------------------------------
// ENCR (transform type 1) for the SK payload

export type EncrKind = 'cbc' | 'aead';

export interface EncrSuite {
  readonly id: number;
  /** Key length in bits (never 0 here: fixed-size algorithms are normalised to their size). */
  readonly keyBits: number;
  readonly name: string;
  readonly kind: EncrKind;
  /** node:crypto cipher name. */
  readonly cipher: string;
  /** Cipher key length in bytes (without salt). */
  readonly keyLen: number;
  /** Salt taken from KEYMAT after the key (RFC 5282 §7.1, RFC 7634 §4). */
  readonly saltLen: number;
  /** IV carried in each SK payload. */
  readonly ivLen: number;
  /** Padding granularity of the plaintext (RFC 7296 §3.14); 1 for the AEAD stream modes. */
  readonly blockLen: number;
  /** AEAD tag length; 0 for CBC (its ICV comes from the INTEG transform). */
  readonly tagLen: number;
  /** Whether the Key Length attribute is sent in the transform (absent for ChaCha20, RFC 7634 §2). */
  readonly keyLengthAttribute: boolean;
}

interface EncrFamily {
  name: string;
  kind: EncrKind;
  keyBits: readonly number[];
  cipher: (keyBits: number) => string;
  saltLen: number;
  ivLen: number;
  blockLen: number;
  tagLen: number;
  keyLengthAttribute: boolean;
}

const ENCRS: ReadonlyMap<number, EncrFamily> = new Map<number, EncrFamily>([
  // RFC 3602 (and RFC 7296 §3.14): 16-byte random IV, block-aligned padding.
  [
    Encr.AES_CBC,
    {
      name: 'AES_CBC',
      kind: 'cbc',
      keyBits: [128, 192, 256],
      cipher: (b) => `aes-${b}-cbc`,
      saltLen: 0,
      ivLen: 16,
      blockLen: 16,
      tagLen: 0,
      keyLengthAttribute: true,
    },
  ],
  // RFC 5282 §7.1: KEYMAT = key | 4-byte salt; 8-byte explicit IV; 16-byte ICV.
  [
    Encr.AES_GCM_16,
    {
      name: 'AES_GCM_16',
      kind: 'aead',
      keyBits: [128, 192, 256],
      cipher: (b) => `aes-${b}-gcm`,
      saltLen: 4,
      ivLen: 8,
      blockLen: 1,
      tagLen: 16,
      keyLengthAttribute: true,
    },
  ],
  // RFC 7634 §2-4: 32-byte key | 4-byte salt, 8-byte IV, 16-byte tag, no Key Length attribute.
  [
    Encr.CHACHA20_POLY1305,
    {
      name: 'CHACHA20_POLY1305',
      kind: 'aead',
      keyBits: [256],
      cipher: () => 'chacha20-poly1305',
      saltLen: 4,
      ivLen: 8,
      blockLen: 1,
      tagLen: 16,
      keyLengthAttribute: false,
    },
  ],
]);

export interface EncrAlg {
  id: number;
  /** 0 = key length attribute absent (only valid for fixed-size algorithms, i.e. ChaCha20). */
  keyBits: number;
}

export function isSupportedEncr(alg: EncrAlg): boolean {
  const f = ENCRS.get(alg.id);
  if (!f) return false;
  if (alg.keyBits === 0) return !f.keyLengthAttribute && f.keyBits.length === 1;
  return f.keyBits.includes(alg.keyBits);
}

/** One EncrSuite per (algorithm, key length): every SA of a suite shares it. */
const SUITES = new Map<number, EncrSuite>();

export function encrSuite(alg: EncrAlg): EncrSuite {
  const key = alg.id * 0x10000 + alg.keyBits;
  let s = SUITES.get(key);
  if (!s) {
    s = Object.freeze(makeEncrSuite(alg));
    SUITES.set(key, s);
  }
  return s;
}

function makeEncrSuite(alg: EncrAlg): EncrSuite {
  const f = ENCRS.get(alg.id);
  if (!f) throw new CryptoSuiteError(`unsupported encryption algorithm ${encrName(alg)}`);
  let keyBits = alg.keyBits;
  if (keyBits === 0 && !f.keyLengthAttribute && f.keyBits.length === 1) keyBits = f.keyBits[0]!;
  if (!f.keyBits.includes(keyBits)) {
    throw new CryptoSuiteError(`${f.name}: unsupported key length ${alg.keyBits} bits`);
  }
  return {
    id: alg.id,
    keyBits,
    name: f.keyLengthAttribute ? `${f.name}_${keyBits}` : f.name,
    kind: f.kind,
    cipher: f.cipher(keyBits),
    keyLen: keyBits / 8,
    saltLen: f.saltLen,
    ivLen: f.ivLen,
    blockLen: f.blockLen,
    tagLen: f.tagLen,
    keyLengthAttribute: f.keyLengthAttribute,
  };
}

export function isAead(alg: EncrAlg): boolean {
  return ENCRS.get(alg.id)?.kind === 'aead';
}

/** Bytes of KEYMAT one direction's encryption key takes, salt included (SK_e length, ESP enc key). */
export function keymatLen(alg: EncrAlg): number {
  const s = encrSuite(alg);
  return s.keyLen + s.saltLen;
}

// ---------------------------------------------------------------------------------------------
// Key exchange groups (transform type 4): the table lives in dh.ts; names are here.

const DH_NAMES: ReadonlyMap<number, string> = new Map([
  [DhGroup.MODP_768, 'MODP_768'],
  [DhGroup.MODP_1024, 'MODP_1024'],
  [DhGroup.MODP_1536, 'MODP_1536'],
  [DhGroup.MODP_2048, 'MODP_2048'],
  [DhGroup.MODP_3072, 'MODP_3072'],
  [DhGroup.MODP_4096, 'MODP_4096'],
  [DhGroup.MODP_6144, 'MODP_6144'],
  [DhGroup.MODP_8192, 'MODP_8192'],
  [DhGroup.ECP_256, 'ECP_256'],
  [DhGroup.ECP_384, 'ECP_384'],
  [DhGroup.ECP_521, 'ECP_521'],
  [DhGroup.ECP_224, 'ECP_224'],
  [DhGroup.BRAINPOOL_224, 'ECP_224_BP'],
  [DhGroup.BRAINPOOL_256, 'ECP_256_BP'],
  [DhGroup.BRAINPOOL_384, 'ECP_384_BP'],
  [DhGroup.BRAINPOOL_512, 'ECP_512_BP'],
  [DhGroup.CURVE25519, 'CURVE_25519'],
  [DhGroup.CURVE448, 'CURVE_448'],
]);

// ---------------------------------------------------------------------------------------------
// Names for logs (never throw: a peer may propose anything)

const encrIana = new Map(Object.entries(Encr).map(([k, v]) => [v as number, k]));
const prfIana = new Map(Object.entries(Prf).map(([k, v]) => [v as number, k]));
const integIana = new Map(Object.entries(Integ).map(([k, v]) => [v as number, k]));

export function encrName(alg: EncrAlg): string {
  const f = ENCRS.get(alg.id);
  if (f && !f.keyLengthAttribute) return f.name;
  const base = f?.name ?? encrIana.get(alg.id) ?? `ENCR_${alg.id}`;
  return alg.keyBits > 0 ? `${base}_${alg.keyBits}` : base;
}

export function prfName(id: number): string {
  const n = prfIana.get(id);
  return n ? `PRF_${n}` : `PRF_${id}`;
}

export function integName(id: number): string {
  return integIana.get(id) ?? `INTEG_${id}`;
}

export function dhName(id: number): string {
  return DH_NAMES.get(id) ?? `KE_${id}`;
}

/** "AES_GCM_16_256/PRF_HMAC_SHA2_384/ECP_384" (strongSwan order: ENCR/INTEG/PRF/KE; NONE parts omitted). */
export function suiteName(s: { encr: EncrAlg; integ?: number; prf?: number; dh?: number }): string {
  const parts = [encrName(s.encr)];
  if (s.integ !== undefined && s.integ !== Integ.NONE) parts.push(integName(s.integ));
  if (s.prf !== undefined) parts.push(prfName(s.prf));
  if (s.dh !== undefined && s.dh !== DhGroup.NONE) parts.push(dhName(s.dh));
  return parts.join('/');
}

// ---------------------------------------------------------------------------------------------

/** A Buffer viewed as a plain Uint8Array (same memory), so callers and tests see one type. */
export function toU8(b: Uint8Array): Uint8Array {
  return b.constructor === Uint8Array ? b : new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}
