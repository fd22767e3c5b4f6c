// Key exchange (transform type 4) on node:crypto. The private value always comes from the injected
// Random, so exchanges (and RFC 5903 / RFC 7748 vectors) reproduce byte for byte in tests.
//
// Wire encodings of the KE payload data and of the shared secret g^ir:
//   MODP 14/15/16 (RFC 3526): public value and g^ir zero-padded to the prime length (RFC 7296 §3.4).
//   ECP 19/20/21 (RFC 5903 §7): public value x | y, each padded to the field size, no 0x04 prefix;
//                                g^ir = x coordinate only.
//   Curve25519/448 (RFC 8031 §3.1): 32/56-byte u-coordinates; g^ir raw, all-zero result rejected.
// A bad peer value (wrong length, out of range, not on the curve) throws
// IkeProtocolError('INVALID_SYNTAX').
import {
  createDiffieHellman,
  createECDH,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  getDiffieHellman,
  type KeyObject,
} from 'node:crypto';
import { IkeProtocolError } from '../../common/errors.js';
import type { Random } from '../../common/random.js';
import { DhGroup } from '../wire/constants.js';
import { CryptoSuiteError, dhName, toU8 } from './suites.js';

export interface KeyExchange {
  readonly group: number;
  /** Our KE payload data. */
  readonly publicKey: Uint8Array;
  /** g^ir from the peer's KE payload data; throws IkeProtocolError('INVALID_SYNTAX') on a bad value. */
  computeSecret(peer: Uint8Array): Uint8Array;
}

/**
 * MODP private exponent length: 512 bits for every MODP group. RFC 3526 §8 estimates at most 240
 * bits of strength for the 4096-bit group and asks for an exponent of at least twice the
 * strength, so 512 bits covers groups 14-16 with margin while costing 1/4 to 1/8 of a full-length
 * exponent.
 */
export const MODP_EXPONENT_BYTES = 64;

type GroupDef =
  | { kind: 'modp'; nodeName: 'modp14' | 'modp15' | 'modp16'; len: number }
  | { kind: 'ecp'; curve: string; coordLen: number; topBits: number }
  | { kind: 'ecx'; type: 'x25519' | 'x448'; len: number; pkcs8: string };

const GROUPS: ReadonlyMap<number, GroupDef> = new Map<number, GroupDef>([
  [
    DhGroup.CURVE25519,
    {
      kind: 'ecx',
      type: 'x25519',
      len: 32,
      // DER prefix of a PKCS#8 PrivateKeyInfo for id-X25519 (RFC 8410 §7), for the fallback import.
      pkcs8: '302e020100300506032b656e04220420',
    },
  ],
  [
    DhGroup.CURVE448,
    {
      kind: 'ecx',
      type: 'x448',
      len: 56,
      pkcs8: '3046020100300506032b656f043a0438',
    },
  ],
  [DhGroup.ECP_256, { kind: 'ecp', curve: 'prime256v1', coordLen: 32, topBits: 8 }],
  [DhGroup.ECP_384, { kind: 'ecp', curve: 'secp384r1', coordLen: 48, topBits: 8 }],
  [DhGroup.ECP_521, { kind: 'ecp', curve: 'secp521r1', coordLen: 66, topBits: 1 }],
  [DhGroup.MODP_2048, { kind: 'modp', nodeName: 'modp14', len: 256 }],
  [DhGroup.MODP_3072, { kind: 'modp', nodeName: 'modp15', len: 384 }],
  [DhGroup.MODP_4096, { kind: 'modp', nodeName: 'modp16', len: 512 }],
]);

/** Supported groups, in our order of preference. */
export const supportedGroups: readonly number[] = [...GROUPS.keys()];

export function isSupportedGroup(group: number): boolean {
  return GROUPS.has(group);
}

function groupDef(group: number): GroupDef {
  const g = GROUPS.get(group);
  if (!g) throw new CryptoSuiteError(`unsupported key exchange method ${dhName(group)}`);
  return g;
}

/** Length of the KE payload data for a group, for the engine's length check. */
export function publicKeyLength(group: number): number {
  const g = groupDef(group);
  return g.kind === 'ecp' ? 2 * g.coordLen : g.len;
}

export function createKeyExchange(group: number, random: Random): KeyExchange {
  const g = groupDef(group);
  switch (g.kind) {
    case 'modp':
      return new ModpExchange(group, g.nodeName, g.len, random);
    case 'ecp':
      return new EcpExchange(group, g.curve, g.coordLen, g.topBits, random);
    case 'ecx':
      return new EcxExchange(group, g, random);
  }
}

function invalid(group: number, why: string): IkeProtocolError {
  return new IkeProtocolError('INVALID_SYNTAX', `invalid ${dhName(group)} public value: ${why}`);
}

function leftPad(b: Uint8Array, len: number): Uint8Array {
  if (b.length === len) return toU8(b);
  if (b.length > len) throw new CryptoSuiteError(`value longer than ${len} bytes`);
  const out = new Uint8Array(len);
  out.set(b, len - b.length);
  return out;
}

function toBigInt(b: Uint8Array): bigint {
  return b.length === 0
    ? 0n
    : BigInt(`0x${Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')}`);
}

// ---------------------------------------------------------------------------------------------

// createDiffieHellman(prime) runs OpenSSL's DH_check (a primality test of the 2048-4096-bit
// prime): ~0.5 s per call at 2048 bits, which turned every MODP IKE_SA_INIT into half a second of
// blocked event loop. One DiffieHellman per group is created (and checked) once; every exchange
// sets its own private exponent on it right before generateKeys()/computeSecret(). The engine
// is synchronous, so nothing runs between the two calls.
const modpGroups = new Map<string, { dh: ReturnType<typeof createDiffieHellman>; p: bigint }>();
function modpGroup(name: 'modp14' | 'modp15' | 'modp16'): {
  dh: ReturnType<typeof createDiffieHellman>;
  p: bigint;
} {
  let v = modpGroups.get(name);
  if (!v) {
    // node's built-in groups are the RFC 3526 primes (generator 2).
    const prime = getDiffieHellman(name).getPrime();
    v = { dh: createDiffieHellman(prime, 2), p: toBigInt(prime) };
    modpGroups.set(name, v);
  }
  return v;
}

class ModpExchange implements KeyExchange {
  readonly publicKey: Uint8Array;
  private readonly dh: ReturnType<typeof createDiffieHellman>;
  private readonly p: bigint;
  private readonly x: Uint8Array;

  constructor(
    readonly group: number,
    name: 'modp14' | 'modp15' | 'modp16',
    private readonly len: number,
    random: Random,
  ) {
    const { dh, p } = modpGroup(name);
    this.p = p;
    this.dh = dh;
    let x = random.bytes(MODP_EXPONENT_BYTES);
    for (let i = 0; toBigInt(x) < 2n; i++) {
      if (i > 16) throw new CryptoSuiteError('random source returns degenerate values');
      x = random.bytes(MODP_EXPONENT_BYTES);
    }
    this.x = x;
    this.dh.setPrivateKey(x);
    // With the private key set, generateKeys() only computes g^x mod p.
    this.publicKey = leftPad(this.dh.generateKeys(), len);
  }

  computeSecret(peer: Uint8Array): Uint8Array {
    if (peer.length !== this.len) throw invalid(this.group, `length ${peer.length}, expected ${this.len}`);
    // RFC 7296 §5 / RFC 8247: reject 0, 1, p-1 and anything >= p.
    const y = toBigInt(peer);
    if (y <= 1n || y >= this.p - 1n) throw invalid(this.group, 'out of range');
    this.dh.setPrivateKey(this.x);
    return leftPad(this.dh.computeSecret(peer), this.len);
  }
}

class EcpExchange implements KeyExchange {
  readonly publicKey: Uint8Array;
  private readonly ecdh: ReturnType<typeof createECDH>;

  constructor(
    readonly group: number,
    curve: string,
    private readonly coordLen: number,
    topBits: number,
    random: Random,
  ) {
    this.ecdh = createECDH(curve);
    // Rejection sampling into [1, n-1]: node refuses 0 and values >= n, so draw again then.
    // The top byte is masked to the order's bit length (521 bits = 65 bytes + 1 bit for P-521).
    for (let i = 0; ; i++) {
      const d = random.bytes(coordLen);
      d[0] = d[0]! & ((1 << topBits) - 1);
      try {
        this.ecdh.setPrivateKey(d);
        break;
      } catch {
        if (i > 16) throw new CryptoSuiteError('random source returns degenerate values');
      }
    }
    // Uncompressed SEC 1 point is 0x04 | x | y; the IKE encoding drops the 0x04 (RFC 5903 §7).
    this.publicKey = toU8(this.ecdh.getPublicKey()).subarray(1);
  }

  computeSecret(peer: Uint8Array): Uint8Array {
    if (peer.length !== 2 * this.coordLen) {
      throw invalid(this.group, `length ${peer.length}, expected ${2 * this.coordLen}`);
    }
    const point = new Uint8Array(1 + peer.length);
    point[0] = 0x04;
    point.set(peer, 1);
    let x: Buffer;
    try {
      x = this.ecdh.computeSecret(point);
    } catch {
      throw invalid(this.group, 'not a point on the curve');
    }
    return leftPad(x, this.coordLen);
  }
}

class EcxExchange implements KeyExchange {
  readonly publicKey: Uint8Array;
  private readonly privateKey: KeyObject;
  private readonly len: number;
  private readonly def: { type: 'x25519' | 'x448'; len: number; pkcs8: string };

  constructor(
    readonly group: number,
    def: { type: 'x25519' | 'x448'; len: number; pkcs8: string },
    random: Random,
  ) {
    this.len = def.len;
    this.def = def;
    // Any 32/56 random bytes are a valid private key: clamping happens inside X25519/X448 (RFC 7748 §5).
    const raw = random.bytes(def.len);
    try {
      this.privateKey = importPrivate(def, raw);
    } finally {
      raw.fill(0);
    }
    // OpenSSL derives the public key from the private one; JWK export hands it out raw.
    this.publicKey = fromB64u(this.privateKey.export({ format: 'jwk' }).x, def.len);
  }

  computeSecret(peer: Uint8Array): Uint8Array {
    if (peer.length !== this.len) throw invalid(this.group, `length ${peer.length}, expected ${this.len}`);
    let secret: Buffer;
    try {
      secret = diffieHellman({ privateKey: this.privateKey, publicKey: importPublic(this.def.type, peer) });
    } catch {
      // OpenSSL refuses an all-zero result (small-order point) by failing the derivation.
      throw invalid(this.group, 'key agreement failed (small-order point?)');
    }
    // RFC 8031 §2 / RFC 7748 §6: MUST check for the all-zero value and abort.
    if (secret.every((b) => b === 0)) throw invalid(this.group, 'all-zero shared secret');
    return toU8(secret);
  }
}

/**
 * Whether this Node imports raw X25519/X448 keys (`format: 'raw-private'` / `'raw-public'`, Node
 * 24.22 here). Measured on it, per key exchange: private key import 34 µs raw vs 56 µs as PKCS#8
 * DER (both derive the public key), peer's public key 2.5 µs raw vs 7.1 µs as SPKI DER. A Node
 * without them (an older 24.x in a Nix build) takes the DER forms, with the same results.
 */
let rawKeys: boolean | undefined;

/** Tests: force the DER forms (false), or detect again (undefined). */
export function setRawKeyImport(on: false | undefined): void {
  rawKeys = on;
}

function hasRawKeys(): boolean {
  if (rawKeys === undefined) {
    try {
      createPublicKey({ key: Buffer.alloc(32, 9), format: 'raw-public', asymmetricKeyType: 'x25519' });
      rawKeys = true;
    } catch {
      rawKeys = false;
    }
  }
  return rawKeys;
}

/** A Buffer over the same bytes (node:crypto's raw-key types ask for a Buffer). */
function bufferView(u: Uint8Array): Buffer {
  return Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

function importPrivate(def: { type: 'x25519' | 'x448'; pkcs8: string }, raw: Uint8Array): KeyObject {
  if (hasRawKeys()) {
    return createPrivateKey({ key: bufferView(raw), format: 'raw-private', asymmetricKeyType: def.type });
  }
  return importPkcs8(def.pkcs8, raw);
}

function importPublic(type: 'x25519' | 'x448', peer: Uint8Array): KeyObject {
  if (hasRawKeys()) {
    return createPublicKey({ key: bufferView(peer), format: 'raw-public', asymmetricKeyType: type });
  }
  // SubjectPublicKeyInfo DER (RFC 8410)
  return createPublicKey({
    key: Buffer.concat([type === 'x25519' ? SPKI_X25519 : SPKI_X448, peer]),
    format: 'der',
    type: 'spki',
  });
}

/** DER prefixes of a SubjectPublicKeyInfo for id-X25519 / id-X448 (RFC 8410 §4). */
const SPKI_X25519 = Buffer.from('302a300506032b656e032100', 'hex');
const SPKI_X448 = Buffer.from('3042300506032b656f033900', 'hex');

function fromB64u(s: string | undefined, len: number): Uint8Array {
  const b = toU8(Buffer.from(s ?? '', 'base64url'));
  if (b.length !== len) throw new CryptoSuiteError(`unexpected public key length ${b.length}`);
  return b;
}

/**
 * Raw X25519/X448 private key -> KeyObject, as PKCS#8 DER, where Node has no raw import. (A JWK
 * import with a placeholder `x` used to be ~10x faster on OpenSSL 3.0, but Node 24 checks `x`
 * against `d` and throws: every key exchange paid for the exception and then the DER import.)
 */
function importPkcs8(pkcs8Prefix: string, raw: Uint8Array): KeyObject {
  const der = Buffer.concat([Buffer.from(pkcs8Prefix, 'hex'), raw]);
  try {
    return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  } finally {
    der.fill(0);
  }
}
