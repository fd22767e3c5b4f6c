// IKEv2 key derivation (RFC 7296 §2.13-2.18), AUTH for shared keys (§2.15) and the NAT detection
// hash (§2.23). Key material lives in IkeKeys/ChildKeys, whose toJSON() and util.inspect() print
// "<redacted>", so an SA object that is logged by accident cannot leak keys (STYLE.md §5). The
// Uint8Array fields themselves must never be logged; the save-keys sink is the only way out.
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { ipv4Bytes } from '../../common/addr.js';
import { concat, u64ToBytes } from '../../common/bytes.js';
import { DecodeError } from '../../common/errors.js';
import { Integ } from '../wire/constants.js';
import {
  CryptoSuiteError,
  type EncrAlg,
  integSuite,
  isAead,
  keymatLen,
  prf,
  prfParts,
  prfPlus,
  prfSuite,
  toU8,
} from './suites.js';

const inspectCustom = Symbol.for('nodejs.util.inspect.custom');

/** The negotiated IKE SA transforms that matter for key derivation. */
export interface IkeSuite {
  prf: number;
  encr: EncrAlg;
  /** Integ.NONE (0) with an AEAD cipher. */
  integ: number;
}

/** Lengths, in bytes, of the seven SK_* keys for a suite (RFC 7296 §2.14). */
export interface IkeKeyLengths {
  /** SK_d, SK_pi, SK_pr: the PRF's preferred key length. */
  prf: number;
  /** SK_ai, SK_ar; 0 for AEAD. */
  integ: number;
  /** SK_ei, SK_er, salt included for AEAD (RFC 5282 §7.1, RFC 7634 §4). */
  encr: number;
}

export function ikeKeyLengths(suite: IkeSuite): IkeKeyLengths {
  const aead = isAead(suite.encr);
  if (aead && suite.integ !== Integ.NONE) {
    throw new CryptoSuiteError('an AEAD cipher must not be combined with an integrity algorithm');
  }
  if (!aead && suite.integ === Integ.NONE) {
    throw new CryptoSuiteError('a non-AEAD cipher needs an integrity algorithm');
  }
  return {
    prf: prfSuite(suite.prf).keyLen,
    integ: aead ? 0 : integSuite(suite.integ).keyLen,
    encr: keymatLen(suite.encr),
  };
}

/** SKEYSEED and the seven SK_* keys of an IKE SA. Never log the fields. */
export class IkeKeys {
  constructor(
    readonly skeyseed: Uint8Array,
    readonly skD: Uint8Array,
    readonly skAi: Uint8Array,
    readonly skAr: Uint8Array,
    readonly skEi: Uint8Array,
    readonly skEr: Uint8Array,
    readonly skPi: Uint8Array,
    readonly skPr: Uint8Array,
  ) {}

  /** Overwrite all key bytes with zeros (call when the IKE SA is deleted). */
  wipe(): void {
    for (const k of [
      this.skeyseed,
      this.skD,
      this.skAi,
      this.skAr,
      this.skEi,
      this.skEr,
      this.skPi,
      this.skPr,
    ]) {
      k.fill(0);
    }
  }
  toJSON(): string {
    return '<redacted>';
  }
  toString(): string {
    return 'IkeKeys <redacted>';
  }
  [inspectCustom](): string {
    return 'IkeKeys <redacted>';
  }
}

/** KEYMAT for one CHILD_SA, split per §2.17. Never log the fields. */
export class ChildKeys {
  constructor(
    /** Initiator -> responder encryption key (salt included for AEAD). */
    readonly encrI: Uint8Array,
    /** Initiator -> responder integrity key (empty for AEAD). */
    readonly integI: Uint8Array,
    readonly encrR: Uint8Array,
    readonly integR: Uint8Array,
  ) {}

  wipe(): void {
    for (const k of [this.encrI, this.integI, this.encrR, this.integR]) k.fill(0);
  }
  toJSON(): string {
    return '<redacted>';
  }
  toString(): string {
    return 'ChildKeys <redacted>';
  }
  [inspectCustom](): string {
    return 'ChildKeys <redacted>';
  }
}

function splitIkeKeys(skeyseed: Uint8Array, keymat: Uint8Array, len: IkeKeyLengths): IkeKeys {
  // SKEYSEED and the seven keys are views of one copy: a typed array with its own ArrayBuffer costs
  // ~0.5 KiB of RSS however small (measured); eight per IKE_SA were ~15% of ikegw's per-SA memory.
  const own = new Uint8Array(skeyseed.length + 3 * len.prf + 2 * len.integ + 2 * len.encr);
  own.set(skeyseed);
  own.set(keymat.subarray(0, own.length - skeyseed.length), skeyseed.length);
  const seed = own.subarray(0, skeyseed.length);
  skeyseed.fill(0);
  let off = skeyseed.length;
  const take = (n: number): Uint8Array => {
    const k = own.subarray(off, off + n);
    off += n;
    return k;
  };
  // {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr} (RFC 7296 §2.14)
  const skD = take(len.prf);
  const skAi = take(len.integ);
  const skAr = take(len.integ);
  const skEi = take(len.encr);
  const skEr = take(len.encr);
  const skPi = take(len.prf);
  const skPr = take(len.prf);
  keymat.fill(0);
  return new IkeKeys(seed, skD, skAi, skAr, skEi, skEr, skPi, skPr);
}

function checkSecret(sharedSecret: Uint8Array): void {
  if (sharedSecret.length === 0) throw new CryptoSuiteError('empty key exchange shared secret');
}

/**
 * RFC 7296 §2.14:
 *   SKEYSEED = prf(Ni | Nr, g^ir)
 *   {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr} = prf+ (SKEYSEED, Ni | Nr | SPIi | SPIr)
 */
export function deriveIkeKeys(
  suite: IkeSuite,
  nonceI: Uint8Array,
  nonceR: Uint8Array,
  sharedSecret: Uint8Array,
  spiI: bigint,
  spiR: bigint,
): IkeKeys {
  const len = ikeKeyLengths(suite);
  checkSecret(sharedSecret);
  const skeyseed = prf(suite.prf, concat(nonceI, nonceR), sharedSecret);
  return expandIkeKeys(suite.prf, skeyseed, len, nonceI, nonceR, spiI, spiR);
}

/**
 * Rekeying an IKE SA (RFC 7296 §2.18): SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr), computed
 * with the OLD SA's PRF; the new keys then come from prf+ of the NEW suite's PRF over
 * Ni | Nr | SPIi | SPIr, with the nonces and SPIs of the CREATE_CHILD_SA exchange.
 */
export function deriveRekeyedIkeKeys(
  oldPrf: number,
  oldSkD: Uint8Array,
  newSuite: IkeSuite,
  sharedSecret: Uint8Array,
  nonceI: Uint8Array,
  nonceR: Uint8Array,
  spiI: bigint,
  spiR: bigint,
): IkeKeys {
  const len = ikeKeyLengths(newSuite);
  checkSecret(sharedSecret);
  const skeyseed = prfParts(oldPrf, oldSkD, [sharedSecret, nonceI, nonceR]);
  return expandIkeKeys(newSuite.prf, skeyseed, len, nonceI, nonceR, spiI, spiR);
}

function expandIkeKeys(
  prfId: number,
  skeyseed: Uint8Array,
  len: IkeKeyLengths,
  nonceI: Uint8Array,
  nonceR: Uint8Array,
  spiI: bigint,
  spiR: bigint,
): IkeKeys {
  const total = 3 * len.prf + 2 * len.integ + 2 * len.encr;
  const seed = concat(nonceI, nonceR, u64ToBytes(spiI), u64ToBytes(spiR));
  return splitIkeKeys(skeyseed, prfPlus(prfId, skeyseed, seed, total), len);
}

/**
 * CHILD_SA keys (RFC 7296 §2.17): KEYMAT = prf+(SK_d, [g^ir (new) |] Ni | Nr). Initiator->responder
 * keys come first (encryption, then integrity), then responder->initiator.
 * `encrKeymatLen` includes the salt for AEAD (keymatLen()); `integKeyLen` is 0 for AEAD.
 */
export function deriveChildKeys(
  prfId: number,
  skD: Uint8Array,
  nonceI: Uint8Array,
  nonceR: Uint8Array,
  sharedSecret: Uint8Array | undefined,
  encrKeymatLen: number,
  integKeyLen: number,
): ChildKeys {
  if (sharedSecret !== undefined) checkSecret(sharedSecret);
  if (encrKeymatLen < 0 || integKeyLen < 0) throw new CryptoSuiteError('negative key length');
  const seed = sharedSecret ? concat(sharedSecret, nonceI, nonceR) : concat(nonceI, nonceR);
  const keymat = prfPlus(prfId, skD, seed, 2 * (encrKeymatLen + integKeyLen));
  const a = encrKeymatLen;
  const b = a + integKeyLen;
  const c = b + encrKeymatLen;
  const keys = new ChildKeys(keymat.slice(0, a), keymat.slice(a, b), keymat.slice(b, c), keymat.slice(c));
  keymat.fill(0);
  return keys;
}

// ---------------------------------------------------------------------------------------------
// AUTH (RFC 7296 §2.15)

/** The key pad for shared-key AUTH: the ASCII string, no terminating NUL (RFC 7296 §2.15). */
export const KEY_PAD = new TextEncoder().encode('Key Pad for IKEv2');

/**
 * MACedIDForI = prf(SK_pi, RestOfInitIDPayload) (and likewise for R). `idBody` is the ID payload
 * body after the generic header: ID type, 3 reserved bytes, identification data.
 */
export function macedId(prfId: number, skP: Uint8Array, idBody: Uint8Array): Uint8Array {
  return prf(prfId, skP, idBody);
}

/**
 * InitiatorSignedOctets = RealMessage1 | NonceRData | MACedIDForI (responder: RealMessage2 |
 * NonceIData | MACedIDForR). `peerNonce` is the other side's nonce data, `skP` our own SK_p.
 */
export function signedOctets(
  prfId: number,
  realMessage: Uint8Array,
  peerNonce: Uint8Array,
  skP: Uint8Array,
  idBody: Uint8Array,
): Uint8Array {
  return concat(realMessage, peerNonce, macedId(prfId, skP, idBody));
}

/**
 * AUTH = prf( prf(Shared Secret, "Key Pad for IKEv2"), <SignedOctets>) for SHARED_KEY_MIC.
 * To verify the peer's AUTH, pass the peer's message, our nonce, the peer's SK_p and the peer's
 * ID body, and compare with equalBytes().
 */
export function pskAuthData(
  prfId: number,
  psk: Uint8Array,
  realMessage: Uint8Array,
  peerNonce: Uint8Array,
  skP: Uint8Array,
  idBody: Uint8Array,
): Uint8Array {
  // the signed octets in parts: no copy of the message to concatenate them
  return prfParts(prfId, keyPadded(prfId, psk), [realMessage, peerNonce, macedId(prfId, skP, idBody)]);
}

/**
 * prf(Shared Secret, "Key Pad for IKEv2"), once per PSK and PRF: the same for every IKE_SA of a
 * connection, and two HMACs per IKE_AUTH otherwise. Kept as long as the PSK's own bytes (a
 * reload's new configuration brings new ones, and the old entries go with the old arrays).
 */
const keyPads = new WeakMap<Uint8Array, Map<number, Uint8Array>>();
function keyPadded(prfId: number, psk: Uint8Array): Uint8Array {
  let byPrf = keyPads.get(psk);
  if (!byPrf) {
    byPrf = new Map();
    keyPads.set(psk, byPrf);
  }
  let padded = byPrf.get(prfId);
  if (!padded) {
    padded = prf(prfId, psk, KEY_PAD);
    byPrf.set(prfId, padded);
  }
  return padded;
}

// ---------------------------------------------------------------------------------------------
// NAT detection (RFC 7296 §2.23)

/** SHA-1(SPIi | SPIr | IP | Port): the data of NAT_DETECTION_SOURCE_IP / _DESTINATION_IP. */
export function natdHash(spiI: bigint, spiR: bigint, address: string, port: number): Uint8Array {
  if (!Number.isInteger(port) || port < 0 || port > 0xffff) throw new DecodeError(`bad port ${port}`);
  const h = createHash('sha1');
  h.update(u64ToBytes(spiI));
  h.update(u64ToBytes(spiR));
  h.update(ipToBytes(address));
  h.update(Uint8Array.of(port >>> 8, port & 0xff));
  return toU8(h.digest());
}

/** Textual IPv4 / IPv6 address to its 4 / 16 network-order bytes. */
export function ipToBytes(address: string): Uint8Array {
  const v4 = ipv4Bytes(address);
  if (v4) return v4;
  const family = isIP(address);
  if (family === 4) throw new DecodeError(`not an IP address: ${address}`);
  if (family !== 6 || address.includes('%')) throw new DecodeError(`not an IP address: ${address}`);
  let text = address;
  const tail: number[] = [];
  const lastColon = text.lastIndexOf(':');
  if (text.includes('.', lastColon)) {
    // Embedded IPv4 in the last 32 bits (e.g. ::ffff:192.0.2.1).
    for (const o of text.slice(lastColon + 1).split('.')) tail.push(Number(o));
    text = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const [head = '', rest] = text.split('::') as [string, string | undefined];
  const groups = (s: string): number[] => (s === '' ? [] : s.split(':').map((g) => Number.parseInt(g, 16)));
  const left = groups(head);
  const right = rest === undefined ? [] : groups(rest);
  const words = [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  const out = new Uint8Array(16);
  words.forEach((w, i) => {
    out[2 * i] = w >>> 8;
    out[2 * i + 1] = w & 0xff;
  });
  if (tail.length === 4) out.set(tail, 12);
  return out;
}
