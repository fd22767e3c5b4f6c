// ESP packets, tunnel mode (RFC 4303), for the userspace data path.
//
//  0                   1                   2                   3
//  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+ ----
// |               Security Parameters Index (SPI)                 | ^Int.
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+ |Cov-
// |                      Sequence Number                          | |ered
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+ | ----
// |                    IV (cipher specific)                       | |   ^
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+ |   |
// |                    Payload Data (the inner IP packet)         | |Conf.
// +               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+ |Cov-
// |               |     Padding (0-255 bytes): 1, 2, 3, ...       | |ered*
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+ |   |
// |                               |  Pad Length   | Next Header   | v   v
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+ ------
// |         Integrity Check Value-ICV   (variable)                |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//                                              (RFC 4303 §2, Figure 2)
//
// Transforms (one EspCrypto per SA and direction):
//   AES-GCM-16    RFC 4106: key||salt(4); 8-byte IV; nonce = salt||IV; AAD = SPI||seq
//                 (SPI||seqHi||seqLo with ESN, §5); ICV 16.
//   ChaCha20-Poly1305  RFC 7634: key(32)||salt(4); 8-byte IV; nonce = salt||IV; AAD as RFC 4106
//                 (§2.1); ICV 16.
//   AES-CBC       RFC 3602: 16-byte random IV; plaintext padded to 16 bytes.
//   HMAC-SHA1-96 (RFC 2404), HMAC-SHA2-256-128/384-192/512-256 (RFC 4868): ICV = truncated HMAC
//                 over SPI..ciphertext (encrypt-then-MAC); with ESN the high 32 bits of the
//                 sequence number are appended to the MAC input, not sent (RFC 4303 §2.2.1).
//   NULL          RFC 2410 (integrity only).
// The AEAD IV is the 64-bit sequence number (unique per SA since sequence numbers never wrap;
// RFC 4106 §3.1 asks only for uniqueness), so no random source is needed per packet; CBC IVs
// must be unpredictable and come from a pooled CSPRNG buffer.
//
// Padding (§2.4): the payload, padding, Pad Length and Next Header end on a 4-byte boundary (the
// block size for CBC); padding bytes are 1, 2, 3, ... and receivers check that.
//
// Hot-path rules: no closures or objects per packet beyond the Buffers node:crypto returns;
// failures are return codes, not exceptions (except inside node:crypto's final(), caught here).
import {
  type CipherGCMTypes,
  type Cipheriv,
  createCipheriv,
  createDecipheriv,
  createHmac,
  randomFillSync,
  timingSafeEqual,
} from 'node:crypto';
import { IkegwError } from '../../common/errors.js';
import { type NativeAddon, tryNative } from '../../common/native.js';
import type { EspAlgorithm } from '../../ike/ports.js';

/** Next Header values (IANA protocol numbers) carried in tunnel mode. */
export const NH_IPV4 = 4;
export const NH_IPV6 = 41;
/** RFC 4303 §2.6: a dummy packet, to be discarded. */
export const NH_NONE = 59;

export const ESP_HEADER_LEN = 8;

export class EspConfigError extends IkegwError {
  constructor(message: string) {
    super('ERR_ESP_CONFIG', message);
  }
}

interface IntegDef {
  hash: 'sha1' | 'sha256' | 'sha384' | 'sha512';
  keyLen: number;
  icvLen: number;
}

const INTEG: Record<Extract<EspAlgorithm, { kind: 'cipher+integ' }>['integ'], IntegDef> = {
  'hmac-sha1-96': { hash: 'sha1', keyLen: 20, icvLen: 12 },
  'hmac-sha2-256-128': { hash: 'sha256', keyLen: 32, icvLen: 16 },
  'hmac-sha2-384-192': { hash: 'sha384', keyLen: 48, icvLen: 24 },
  'hmac-sha2-512-256': { hash: 'sha512', keyLen: 64, icvLen: 32 },
};

/** Why a key/algorithm combination is unusable, or undefined. */
export function checkEspKeys(
  alg: EspAlgorithm,
  encKey: Uint8Array,
  integKey: Uint8Array,
): string | undefined {
  if (alg.kind === 'aead') {
    if (alg.name === 'aes-gcm-16' && ![128, 192, 256].includes(alg.keyBits))
      return `AES-GCM key size ${alg.keyBits}`;
    if (alg.name === 'chacha20-poly1305' && alg.keyBits !== 256) return `ChaCha20 key size ${alg.keyBits}`;
    const want = alg.keyBits / 8 + 4;
    if (encKey.length !== want)
      return `${alg.name} needs a ${want}-byte key (with salt), got ${encKey.length}`;
    if (integKey.length !== 0) return 'an AEAD SA takes no integrity key';
    return undefined;
  }
  if (alg.cipher === 'aes-cbc' && ![128, 192, 256].includes(alg.keyBits))
    return `AES-CBC key size ${alg.keyBits}`;
  const encWant = alg.cipher === 'null' ? 0 : alg.keyBits / 8;
  if (encKey.length !== encWant)
    return `${alg.cipher}/${alg.keyBits} needs a ${encWant}-byte key, got ${encKey.length}`;
  const i = INTEG[alg.integ];
  if (!i) return `unknown integrity algorithm ${String(alg.integ)}`;
  if (integKey.length !== i.keyLen)
    return `${alg.integ} needs a ${i.keyLen}-byte key, got ${integKey.length}`;
  return undefined;
}

// ---- CBC IV source: a pooled CSPRNG buffer ------------------------------------------------------

const IV_POOL = Buffer.allocUnsafe(16 * 512);
let ivPoolPos = IV_POOL.length;

function nextRandomIv(out: Uint8Array, at: number): void {
  if (ivPoolPos + 16 > IV_POOL.length) {
    randomFillSync(IV_POOL);
    ivPoolPos = 0;
  }
  out.set(IV_POOL.subarray(ivPoolPos, ivPoolPos + 16), at);
  ivPoolPos += 16;
}

// ---- trailer ----------------------------------------------------------------------------------

/** Decoding failures of a decrypted payload (negative, so that lengths stay >= 0). */
export const TRAILER_BAD_PADDING = -1;
export const TRAILER_BAD_NEXT_HEADER = -2;
export const TRAILER_DUMMY = -3;

/**
 * Checks the ESP trailer of a decrypted payload `pt` (payload | padding | padLen | nextHeader).
 * Returns the inner packet length, or TRAILER_* when the padding is not 1,2,3,... (RFC 4303 §2.4),
 * the Next Header is not IPv4/IPv6 (tunnel mode), or the packet is a dummy (59, §2.6).
 */
export function checkTrailer(pt: Uint8Array, ptLen = pt.length, at = 0): number {
  if (ptLen < 2) return TRAILER_BAD_PADDING;
  const nh = pt[at + ptLen - 1]!;
  const padLen = pt[at + ptLen - 2]!;
  const innerLen = ptLen - 2 - padLen;
  if (innerLen < 0) return TRAILER_BAD_PADDING;
  for (let i = 0; i < padLen; i++) if (pt[at + innerLen + i] !== i + 1) return TRAILER_BAD_PADDING;
  if (nh === NH_NONE) return TRAILER_DUMMY;
  if (nh !== NH_IPV4 && nh !== NH_IPV6) return TRAILER_BAD_NEXT_HEADER;
  return innerLen;
}

/** Number of padding bytes for `innerLen` bytes of payload at alignment `align` (§2.4). */
export function padLength(innerLen: number, align: number): number {
  const r = (innerLen + 2) % align;
  return r === 0 ? 0 : align - r;
}

/** The Next Header of a decrypted payload (call after checkTrailer succeeded). */
export function trailerNextHeader(pt: Uint8Array, ptLen = pt.length, at = 0): number {
  return pt[at + ptLen - 1]!;
}

// ---- the transform ------------------------------------------------------------------------------

export interface EspCrypto {
  readonly ivLen: number;
  readonly icvLen: number;
  /** Padding alignment (4, or the cipher block size). */
  readonly align: number;
  /** Smallest packet that can be valid: header + IV + one aligned block + ICV. */
  readonly minLength: number;
  /** Which implementation does the cipher work (for logs and the benchmark). */
  readonly impl: 'native' | 'node';
  /** Length of the ESP packet (header..ICV) for an inner packet of `innerLen` bytes. */
  packetLength(innerLen: number): number;
  /**
   * Writes SPI | seq | IV | encrypted(inner | padding | padLen | nextHeader) | ICV into
   * out[at .. at + packetLength(innerLen)) and returns that length. `iv` overrides the IV
   * (known-answer tests); otherwise the AEAD IV is seqHi||seqLo and the CBC IV comes from the
   * CSPRNG pool.
   */
  sealInto(
    out: Uint8Array,
    at: number,
    spi: number,
    seqLo: number,
    seqHi: number,
    inner: Uint8Array,
    innerOff: number,
    innerLen: number,
    nextHeader: number,
    iv?: Uint8Array,
  ): number;
  /**
   * Verifies the ICV of `pkt` (SPI..ICV, at least minLength bytes, checked by the caller) and
   * decrypts it in place: the plaintext (payload | padding | padLen | nextHeader) is then at
   * pkt[ESP_HEADER_LEN + ivLen ..) and its length is returned; -1 when the ICV does not verify or
   * the ciphertext is not a whole number of blocks (pkt may then be garbled).
   */
  openInPlace(pkt: Uint8Array, seqHi: number): number;
}

/** sealInto into a new Buffer. */
export function espSeal(
  c: EspCrypto,
  spi: number,
  seqLo: number,
  seqHi: number,
  inner: Uint8Array,
  nextHeader: number,
  iv?: Uint8Array,
): Buffer {
  const out = Buffer.allocUnsafe(c.packetLength(inner.length));
  c.sealInto(out, 0, spi, seqLo, seqHi, inner, 0, inner.length, nextHeader, iv);
  return out;
}

/** openInPlace on a copy: the plaintext, or null. */
export function espOpen(c: EspCrypto, pkt: Uint8Array, seqHi: number): Uint8Array | null {
  const copy = Uint8Array.from(pkt);
  const n = c.openInPlace(copy, seqHi);
  const at = ESP_HEADER_LEN + c.ivLen;
  return n < 0 ? null : copy.subarray(at, at + n);
}

export type EspCryptoImpl = 'auto' | 'native' | 'node';

/**
 * AEAD runs in the native addon (OpenSSL EVP with a per-SA context, in place) when it is built,
 * else — and for CBC/HMAC always — through node:crypto. Both give identical bytes.
 */
export function createEspCrypto(
  alg: EspAlgorithm,
  encKey: Uint8Array,
  integKey: Uint8Array,
  esn: boolean,
  impl: EspCryptoImpl = 'auto',
  /** The SA's direction, when known: only that direction's native context is made up front. */
  direction?: 'in' | 'out',
): EspCrypto {
  const bad = checkEspKeys(alg, encKey, integKey);
  if (bad) throw new EspConfigError(bad);
  if (alg.kind === 'aead') {
    const n = impl === 'node' ? undefined : tryNative();
    if (n && typeof n.aeadNew === 'function') return new NativeAeadEsp(n, alg, encKey, esn, direction);
    if (impl === 'native') throw new EspConfigError('the native addon (AEAD) is not available');
    return new AeadEsp(alg, encKey, esn);
  }
  return new CbcHmacEsp(alg, encKey, integKey, esn);
}

function writeU32(b: Uint8Array, at: number, v: number): void {
  b[at] = v >>> 24;
  b[at + 1] = (v >>> 16) & 0xff;
  b[at + 2] = (v >>> 8) & 0xff;
  b[at + 3] = v & 0xff;
}

function readU32(b: Uint8Array, at: number): number {
  return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
}

function fillPadding(b: Uint8Array, at: number, padLen: number, nextHeader: number): void {
  for (let i = 0; i < padLen; i++) b[at + i] = i + 1;
  b[at + padLen] = padLen;
  b[at + padLen + 1] = nextHeader;
}

/** What AES-GCM and ChaCha20-Poly1305 cipher objects of node:crypto have in common. */
interface AeadSealer {
  setAAD(aad: Uint8Array, o: { plaintextLength: number }): unknown;
  update(data: Uint8Array): Buffer;
  final(): Buffer;
  getAuthTag(): Buffer;
}
interface AeadOpener {
  setAAD(aad: Uint8Array, o: { plaintextLength: number }): unknown;
  setAuthTag(tag: Uint8Array): unknown;
  update(data: Uint8Array): Buffer;
  final(): Buffer;
}

/** The ESP framing shared by both AEAD implementations (RFC 4106 / RFC 7634). */
abstract class AeadBase {
  readonly ivLen = 8;
  readonly icvLen = 16;
  readonly align = 4;
  readonly minLength = ESP_HEADER_LEN + 8 + 4 + 16;
  /** SPI || seq  or  SPI || seqHi || seqLo (RFC 4106 §5 / RFC 7634 §2.1). */
  protected readonly aad: Buffer;
  /** `tailLen` bytes after the AAD in the same allocation, for the subclass (its key copy). */
  protected readonly tail: Buffer;

  constructor(
    protected readonly esn: boolean,
    tailLen = 0,
  ) {
    const b = Buffer.alloc((esn ? 12 : 8) + tailLen);
    this.aad = b.subarray(0, esn ? 12 : 8);
    this.tail = b.subarray(esn ? 12 : 8);
  }

  packetLength(innerLen: number): number {
    return ESP_HEADER_LEN + 8 + innerLen + padLength(innerLen, 4) + 2 + 16;
  }

  protected setAad(spi: number, seqLo: number, seqHi: number): void {
    const a = this.aad;
    writeU32(a, 0, spi);
    if (this.esn) {
      writeU32(a, 4, seqHi);
      writeU32(a, 8, seqLo);
    } else {
      writeU32(a, 4, seqLo);
    }
  }

  /** Header, IV and plaintext (with trailer) in place; returns the plaintext length. */
  protected frame(
    out: Uint8Array,
    at: number,
    spi: number,
    seqLo: number,
    seqHi: number,
    inner: Uint8Array,
    innerOff: number,
    innerLen: number,
    nextHeader: number,
    iv: Uint8Array | undefined,
  ): number {
    const padLen = padLength(innerLen, 4);
    writeU32(out, at, spi);
    writeU32(out, at + 4, seqLo);
    if (iv) out.set(iv.subarray(0, 8), at + 8);
    else {
      writeU32(out, at + 8, seqHi);
      writeU32(out, at + 12, seqLo);
    }
    this.setAad(spi, seqLo, seqHi);
    out.set(inner.subarray(innerOff, innerOff + innerLen), at + 16);
    fillPadding(out, at + 16 + innerLen, padLen, nextHeader);
    return innerLen + padLen + 2;
  }

  /** Checks the length and sets the AAD from the packet; returns the ciphertext length or -1. */
  protected prepareOpen(pkt: Uint8Array, seqHi: number): number {
    const ctLen = pkt.length - 16 - 16;
    if (ctLen < 4 || ctLen % 4 !== 0) return -1;
    this.setAad(readU32(pkt, 0), readU32(pkt, 4), seqHi);
    return ctLen;
  }
}

/** AEAD through the native addon: one EVP_CIPHER_CTX per SA, encryption in place. */
class NativeAeadEsp extends AeadBase implements EspCrypto {
  readonly impl = 'native' as const;
  private readonly chacha: 0 | 1;
  /** key || salt, copied: a context for the other direction is made from it if ever needed. */
  private readonly keymat: Uint8Array;
  // An OpenSSL context either encrypts or decrypts, and an SA carries one direction: the SA's own
  // context is made at installation, the other only on use (each costs native memory).
  private hSeal: object | undefined;
  private hOpen: object | undefined;

  constructor(
    private readonly n: NativeAddon,
    alg: Extract<EspAlgorithm, { kind: 'aead' }>,
    keymat: Uint8Array,
    esn: boolean,
    direction: 'in' | 'out' = 'out',
  ) {
    super(esn, keymat.length);
    this.chacha = alg.name === 'chacha20-poly1305' ? 1 : 0;
    this.keymat = this.tail;
    this.keymat.set(keymat);
    // one context now: OpenSSL refusing the key fails the installation, not the first packet
    if (direction === 'in') this.hOpen = this.context(false);
    else this.hSeal = this.context(true);
  }

  private context(encrypt: boolean): object {
    const keyLen = this.keymat.length - 4;
    return this.n.aeadNew(
      this.chacha,
      this.keymat.subarray(0, keyLen),
      this.keymat.subarray(keyLen),
      encrypt,
    );
  }

  sealInto(
    out: Uint8Array,
    at: number,
    spi: number,
    seqLo: number,
    seqHi: number,
    inner: Uint8Array,
    innerOff: number,
    innerLen: number,
    nextHeader: number,
    iv?: Uint8Array,
  ): number {
    const ptLen = this.frame(out, at, spi, seqLo, seqHi, inner, innerOff, innerLen, nextHeader, iv);
    this.hSeal ??= this.context(true);
    if (!this.n.aeadSeal(this.hSeal, this.aad, out, at + 8, at + 16, ptLen, at + 16 + ptLen))
      throw new EspConfigError('AEAD encryption failed');
    return 16 + ptLen + 16;
  }

  openInPlace(pkt: Uint8Array, seqHi: number): number {
    const ctLen = this.prepareOpen(pkt, seqHi);
    if (ctLen < 0) return -1;
    this.hOpen ??= this.context(false);
    return this.n.aeadOpen(this.hOpen, this.aad, pkt, 8, 16, ctLen, 16 + ctLen) ? ctLen : -1;
  }
}

/** AEAD through node:crypto (one cipher object per packet). */
class AeadEsp extends AeadBase implements EspCrypto {
  readonly impl = 'node' as const;
  private readonly gcm: CipherGCMTypes | undefined;
  private readonly key: Buffer;
  /** salt || IV, rewritten per packet (createCipheriv copies it). */
  private readonly nonce = Buffer.alloc(12);
  private readonly opts = { authTagLength: 16 } as const;

  constructor(alg: Extract<EspAlgorithm, { kind: 'aead' }>, keymat: Uint8Array, esn: boolean) {
    super(esn);
    const keyLen = keymat.length - 4;
    this.gcm =
      alg.name === 'chacha20-poly1305'
        ? undefined
        : alg.keyBits === 256
          ? 'aes-256-gcm'
          : alg.keyBits === 192
            ? 'aes-192-gcm'
            : 'aes-128-gcm';
    this.key = Buffer.from(keymat.subarray(0, keyLen));
    this.nonce.set(keymat.subarray(keyLen), 0);
  }

  private cipherFor(nonce: Buffer): AeadSealer {
    return this.gcm
      ? createCipheriv(this.gcm, this.key, nonce, this.opts)
      : createCipheriv('chacha20-poly1305', this.key, nonce, this.opts);
  }

  private decipherFor(nonce: Buffer): AeadOpener {
    return this.gcm
      ? createDecipheriv(this.gcm, this.key, nonce, this.opts)
      : createDecipheriv('chacha20-poly1305', this.key, nonce, this.opts);
  }

  sealInto(
    out: Uint8Array,
    at: number,
    spi: number,
    seqLo: number,
    seqHi: number,
    inner: Uint8Array,
    innerOff: number,
    innerLen: number,
    nextHeader: number,
    iv?: Uint8Array,
  ): number {
    const ptLen = this.frame(out, at, spi, seqLo, seqHi, inner, innerOff, innerLen, nextHeader, iv);
    const nonce = this.nonce;
    for (let i = 0; i < 8; i++) nonce[4 + i] = out[at + 8 + i]!;
    const c = this.cipherFor(nonce);
    c.setAAD(this.aad, { plaintextLength: ptLen });
    out.set(c.update(out.subarray(at + 16, at + 16 + ptLen)), at + 16);
    c.final();
    out.set(c.getAuthTag(), at + 16 + ptLen);
    return 16 + ptLen + 16;
  }

  openInPlace(pkt: Uint8Array, seqHi: number): number {
    const ctLen = this.prepareOpen(pkt, seqHi);
    if (ctLen < 0) return -1;
    const nonce = this.nonce;
    for (let i = 0; i < 8; i++) nonce[4 + i] = pkt[8 + i]!;
    const d = this.decipherFor(nonce);
    d.setAAD(this.aad, { plaintextLength: ctLen });
    d.setAuthTag(pkt.subarray(16 + ctLen));
    const pt = d.update(pkt.subarray(16, 16 + ctLen));
    try {
      d.final();
    } catch {
      return -1;
    }
    pkt.set(pt, 16);
    return ctLen;
  }
}

class CbcHmacEsp implements EspCrypto {
  readonly impl = 'node' as const;
  readonly ivLen: number;
  readonly icvLen: number;
  readonly align: number;
  readonly minLength: number;
  private readonly cipher: string | undefined;
  private readonly key: Buffer;
  private readonly integKey: Buffer;
  private readonly hash: string;
  private readonly hiBuf = Buffer.alloc(4);

  constructor(
    alg: Extract<EspAlgorithm, { kind: 'cipher+integ' }>,
    encKey: Uint8Array,
    integKey: Uint8Array,
    private readonly esn: boolean,
  ) {
    const i = INTEG[alg.integ];
    this.icvLen = i.icvLen;
    this.hash = i.hash;
    this.cipher = alg.cipher === 'null' ? undefined : `aes-${alg.keyBits}-cbc`;
    this.ivLen = this.cipher ? 16 : 0;
    this.align = this.cipher ? 16 : 4;
    this.key = Buffer.from(encKey);
    this.integKey = Buffer.from(integKey);
    this.minLength = ESP_HEADER_LEN + this.ivLen + this.align + this.icvLen;
  }

  packetLength(innerLen: number): number {
    return ESP_HEADER_LEN + this.ivLen + innerLen + padLength(innerLen, this.align) + 2 + this.icvLen;
  }

  private mac(pkt: Uint8Array, from: number, end: number, seqHi: number): Buffer {
    const h = createHmac(this.hash, this.integKey);
    h.update(pkt.subarray(from, end));
    if (this.esn) {
      writeU32(this.hiBuf, 0, seqHi);
      h.update(this.hiBuf);
    }
    return h.digest();
  }

  sealInto(
    out: Uint8Array,
    at: number,
    spi: number,
    seqLo: number,
    _seqHi: number,
    inner: Uint8Array,
    innerOff: number,
    innerLen: number,
    nextHeader: number,
    iv?: Uint8Array,
  ): number {
    const padLen = padLength(innerLen, this.align);
    const ptLen = innerLen + padLen + 2;
    const ctAt = at + ESP_HEADER_LEN + this.ivLen;
    writeU32(out, at, spi);
    writeU32(out, at + 4, seqLo);
    out.set(inner.subarray(innerOff, innerOff + innerLen), ctAt);
    fillPadding(out, ctAt + innerLen, padLen, nextHeader);
    if (this.cipher) {
      if (iv) out.set(iv.subarray(0, 16), at + ESP_HEADER_LEN);
      else nextRandomIv(out, at + ESP_HEADER_LEN);
      const c: Cipheriv = createCipheriv(this.cipher, this.key, out.subarray(at + ESP_HEADER_LEN, ctAt));
      c.setAutoPadding(false);
      out.set(c.update(out.subarray(ctAt, ctAt + ptLen)), ctAt);
      c.final();
    }
    const icv = this.mac(out, at, ctAt + ptLen, _seqHi);
    out.set(icv.subarray(0, this.icvLen), ctAt + ptLen);
    return ctAt + ptLen + this.icvLen - at;
  }

  openInPlace(pkt: Uint8Array, seqHi: number): number {
    const ctAt = ESP_HEADER_LEN + this.ivLen;
    const ctEnd = pkt.length - this.icvLen;
    const ctLen = ctEnd - ctAt;
    if (ctLen < this.align || ctLen % this.align !== 0) return -1;
    const want = this.mac(pkt, 0, ctEnd, seqHi);
    if (!timingSafeEqual(want.subarray(0, this.icvLen), pkt.subarray(ctEnd))) return -1;
    if (this.cipher) {
      const d = createDecipheriv(this.cipher, this.key, pkt.subarray(ESP_HEADER_LEN, ctAt));
      d.setAutoPadding(false);
      pkt.set(d.update(pkt.subarray(ctAt, ctEnd)), ctAt);
      d.final();
    }
    return ctLen;
  }
}

/** SPI of an ESP packet (first 4 bytes), as an unsigned number. */
export function espSpi(pkt: Uint8Array, at = 0): number {
  return ((pkt[at]! << 24) | (pkt[at + 1]! << 16) | (pkt[at + 2]! << 8) | pkt[at + 3]!) >>> 0;
}

/** Sequence number (low 32 bits) of an ESP packet. */
export function espSeq(pkt: Uint8Array, at = 0): number {
  return ((pkt[at + 4]! << 24) | (pkt[at + 5]! << 16) | (pkt[at + 6]! << 8) | pkt[at + 7]!) >>> 0;
}
