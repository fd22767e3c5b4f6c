// AUTH with digital signatures, all through node:crypto:
// - RFC 7427 "Digital Signature" (method 14): AUTH data = 1-byte length | AlgorithmIdentifier |
//   signature; hash algorithms negotiated with SIGNATURE_HASH_ALGORITHMS in IKE_SA_INIT (§4).
//   ECDSA (P-256/384/521, DER signatures), RSA PKCS#1 v1.5 and RSASSA-PSS, Ed25519 (RFC 8420:
//   hash "Identity").
// - The classic methods of RFC 7296 §3.8 for peers without RFC 7427: 1 = RSA PKCS#1 v1.5 with
//   SHA-1; 9/10/11 = ECDSA P-256/SHA-256, P-384/SHA-384, P-521/SHA-512 with r|s (RFC 4754).
// What is signed is the SignedOctets of RFC 7296 §2.15 (keymat.ts signedOctets()).
import { constants, type KeyObject, sign, verify } from 'node:crypto';
import { AuthMethod } from '../wire/constants.js';
import {
  algorithmIdentifier,
  encodePssParams,
  NULL_PARAMS,
  parseAlgorithmIdentifier,
  parsePssParams,
} from './der.js';

/** IKEv2 Hash Algorithm Transform IDs (RFC 7427 §7, RFC 8420). */
export const SigHash = { SHA1: 1, SHA2_256: 2, SHA2_384: 3, SHA2_512: 4, IDENTITY: 5 } as const;

/** What we announce and accept in SIGNATURE_HASH_ALGORITHMS (as strongSwan does by default). */
export const OUR_SIG_HASHES: readonly number[] = [
  SigHash.SHA2_256,
  SigHash.SHA2_384,
  SigHash.SHA2_512,
  SigHash.IDENTITY,
];

const HASHES: Record<number, { name: string; oid: string; len: number }> = {
  [SigHash.SHA1]: { name: 'sha1', oid: '1.3.14.3.2.26', len: 20 },
  [SigHash.SHA2_256]: { name: 'sha256', oid: '2.16.840.1.101.3.4.2.1', len: 32 },
  [SigHash.SHA2_384]: { name: 'sha384', oid: '2.16.840.1.101.3.4.2.2', len: 48 },
  [SigHash.SHA2_512]: { name: 'sha512', oid: '2.16.840.1.101.3.4.2.3', len: 64 },
};
function hashByOid(oid: string): number | undefined {
  const hit = Object.entries(HASHES).find(([, h]) => h.oid === oid);
  return hit ? Number(hit[0]) : undefined;
}

const OID = {
  RSA_PSS: '1.2.840.113549.1.1.10',
  ED25519: '1.3.101.112',
  RSA_SHA: {
    [SigHash.SHA1]: '1.2.840.113549.1.1.5',
    [SigHash.SHA2_256]: '1.2.840.113549.1.1.11',
    [SigHash.SHA2_384]: '1.2.840.113549.1.1.12',
    [SigHash.SHA2_512]: '1.2.840.113549.1.1.13',
  } as Record<number, string>,
  ECDSA_SHA: {
    [SigHash.SHA1]: '1.2.840.10045.4.1',
    [SigHash.SHA2_256]: '1.2.840.10045.4.3.2',
    [SigHash.SHA2_384]: '1.2.840.10045.4.3.3',
    [SigHash.SHA2_512]: '1.2.840.10045.4.3.4',
  } as Record<number, string>,
};

/** Signature failures carry a short cause for logs and the failure event. */
export class SignatureError extends Error {
  constructor(
    readonly code: 'bad-signature' | 'no-common-hash' | 'no-rfc7427' | 'unsupported-key',
    message: string,
  ) {
    super(message);
  }
}

export type KeyKind = 'rsa' | 'ecdsa-256' | 'ecdsa-384' | 'ecdsa-521' | 'ed25519';

export function keyKind(key: KeyObject): KeyKind {
  const t = key.asymmetricKeyType;
  if (t === 'rsa') return 'rsa';
  if (t === 'ed25519') return 'ed25519';
  if (t === 'ec') {
    const c = key.asymmetricKeyDetails?.namedCurve;
    if (c === 'prime256v1') return 'ecdsa-256';
    if (c === 'secp384r1') return 'ecdsa-384';
    if (c === 'secp521r1') return 'ecdsa-521';
    throw new SignatureError('unsupported-key', `ECDSA curve ${c} is not supported (P-256, P-384, P-521)`);
  }
  throw new SignatureError(
    'unsupported-key',
    `${t} keys are not supported (RSA, ECDSA P-256/P-384/P-521, Ed25519)`,
  );
}

/** A key in words for logs: "RSA-3072", "ECDSA P-256", "Ed25519". */
export function describeKey(key: KeyObject): string {
  const k = keyKind(key);
  if (k === 'rsa') return `RSA-${key.asymmetricKeyDetails?.modulusLength ?? '?'}`;
  if (k === 'ed25519') return 'Ed25519';
  return `ECDSA P-${k.slice(6)}`;
}

const ECDSA_CLASSIC: Record<string, { method: number; hash: number }> = {
  'ecdsa-256': { method: AuthMethod.ECDSA_256, hash: SigHash.SHA2_256 },
  'ecdsa-384': { method: AuthMethod.ECDSA_384, hash: SigHash.SHA2_384 },
  'ecdsa-521': { method: AuthMethod.ECDSA_521, hash: SigHash.SHA2_512 },
};

export interface SignOptions {
  /** The peer's SIGNATURE_HASH_ALGORITHMS, or undefined if it sent none (no RFC 7427). */
  peerHashes: readonly number[] | undefined;
  /** RSA keys: RSASSA-PSS instead of PKCS#1 v1.5 (RFC 7427 only). */
  rsaPss?: boolean;
}

export interface AuthSignature {
  method: number;
  data: Uint8Array;
  /** "RFC 7427 ecdsa-with-sha256", "RSA_SIG (SHA-1)": for logs. */
  scheme: string;
}

function pickHash(kind: KeyKind, peer: readonly number[]): number | undefined {
  const prefer: number[] =
    kind === 'ecdsa-384'
      ? [SigHash.SHA2_384, SigHash.SHA2_512, SigHash.SHA2_256]
      : kind === 'ecdsa-521'
        ? [SigHash.SHA2_512, SigHash.SHA2_384, SigHash.SHA2_256]
        : [SigHash.SHA2_256, SigHash.SHA2_384, SigHash.SHA2_512];
  return prefer.find((h) => peer.includes(h));
}

/** Our AUTH payload's method and data for `octets` (RFC 7296 §2.15 SignedOctets). */
export function signAuth(key: KeyObject, octets: Uint8Array, o: SignOptions): AuthSignature {
  const kind = keyKind(key);
  if (!o.peerHashes) {
    // RFC 7296 classic methods.
    if (kind === 'ed25519') {
      throw new SignatureError(
        'no-rfc7427',
        'the peer did not announce RFC 7427 signature authentication (SIGNATURE_HASH_ALGORITHMS), which Ed25519 needs',
      );
    }
    if (kind === 'rsa') {
      const data = sign('sha1', octets, { key, padding: constants.RSA_PKCS1_PADDING });
      return {
        method: AuthMethod.RSA_SIG,
        data: new Uint8Array(data),
        scheme: 'RSA_SIG (PKCS#1 v1.5, SHA-1)',
      };
    }
    const c = ECDSA_CLASSIC[kind]!;
    const data = sign(HASHES[c.hash]!.name, octets, { key, dsaEncoding: 'ieee-p1363' });
    return { method: c.method, data: new Uint8Array(data), scheme: `ECDSA_${kind.slice(6)} (RFC 4754)` };
  }
  let alg: Uint8Array;
  let sig: Buffer;
  let scheme: string;
  if (kind === 'ed25519') {
    if (!o.peerHashes.includes(SigHash.IDENTITY)) {
      throw new SignatureError(
        'no-common-hash',
        `Ed25519 needs hash "Identity" (RFC 8420), the peer announced ${describeHashes(o.peerHashes)}`,
      );
    }
    alg = algorithmIdentifier(OID.ED25519);
    sig = sign(null, octets, key);
    scheme = 'RFC 7427 Ed25519';
  } else {
    const h = pickHash(kind, o.peerHashes);
    if (h === undefined) {
      throw new SignatureError(
        'no-common-hash',
        `no common signature hash: the peer announced ${describeHashes(o.peerHashes)}, we sign with SHA-256/384/512`,
      );
    }
    const hash = HASHES[h]!;
    if (kind === 'rsa' && o.rsaPss) {
      alg = algorithmIdentifier(OID.RSA_PSS, encodePssParams(hash.oid, hash.len));
      sig = sign(hash.name, octets, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: hash.len });
      scheme = `RFC 7427 RSASSA-PSS ${hash.name}`;
    } else if (kind === 'rsa') {
      alg = algorithmIdentifier(OID.RSA_SHA[h]!, NULL_PARAMS);
      sig = sign(hash.name, octets, { key, padding: constants.RSA_PKCS1_PADDING });
      scheme = `RFC 7427 ${hash.name}WithRSAEncryption`;
    } else {
      alg = algorithmIdentifier(OID.ECDSA_SHA[h]!);
      sig = sign(hash.name, octets, { key, dsaEncoding: 'der' });
      scheme = `RFC 7427 ecdsa-with-${hash.name}`;
    }
  }
  const data = new Uint8Array(1 + alg.length + sig.length);
  data[0] = alg.length;
  data.set(alg, 1);
  data.set(sig, 1 + alg.length);
  return { method: AuthMethod.GENERIC_DIGITAL_SIGNATURE, data, scheme };
}

export function describeHashes(hs: readonly number[]): string {
  const names: Record<number, string> = {
    1: 'SHA1',
    2: 'SHA2_256',
    3: 'SHA2_384',
    4: 'SHA2_512',
    5: 'IDENTITY',
  };
  return hs.length ? hs.map((h) => names[h] ?? `#${h}`).join(', ') : 'none';
}

export function isSignatureMethod(method: number): boolean {
  return (
    method === AuthMethod.GENERIC_DIGITAL_SIGNATURE ||
    method === AuthMethod.RSA_SIG ||
    method === AuthMethod.ECDSA_256 ||
    method === AuthMethod.ECDSA_384 ||
    method === AuthMethod.ECDSA_521
  );
}

/**
 * Verifies the peer's AUTH (method and data) over `octets` with its certificate's public key.
 * Returns the scheme in words; throws SignatureError('bad-signature', why) otherwise.
 * `accepted` are the RFC 7427 hashes we announced (a signature with another hash is refused).
 */
export function verifyAuth(
  key: KeyObject,
  method: number,
  data: Uint8Array,
  octets: Uint8Array,
  accepted: readonly number[] = OUR_SIG_HASHES,
): string {
  const kind = keyKind(key);
  const bad = (why: string): never => {
    throw new SignatureError('bad-signature', why);
  };
  const check = (ok: boolean, scheme: string): string => {
    if (!ok) bad(`the ${scheme} signature does not verify with the public key of the peer's certificate`);
    return scheme;
  };
  if (method === AuthMethod.RSA_SIG) {
    if (kind !== 'rsa') bad(`AUTH method RSA_SIG, but the peer's certificate holds a ${kind} key`);
    return check(
      verify('sha1', octets, { key, padding: constants.RSA_PKCS1_PADDING }, data),
      'RSA_SIG (PKCS#1 v1.5, SHA-1)',
    );
  }
  for (const [k, c] of Object.entries(ECDSA_CLASSIC)) {
    if (c.method !== method) continue;
    if (kind !== k) bad(`AUTH method ECDSA_${k.slice(6)}, but the peer's certificate holds a ${kind} key`);
    return check(
      verify(HASHES[c.hash]!.name, octets, { key, dsaEncoding: 'ieee-p1363' }, data),
      `ECDSA_${k.slice(6)} (RFC 4754)`,
    );
  }
  if (method !== AuthMethod.GENERIC_DIGITAL_SIGNATURE)
    return bad(`AUTH method ${method} is not a signature method`);
  const len = data[0] ?? 0;
  if (data.length < 1 + len + 1) bad('RFC 7427 AUTH data is truncated');
  return verifyWithAlgorithm(
    key,
    data.subarray(1, 1 + len),
    data.subarray(1 + len),
    octets,
    accepted,
    'RFC 7427',
  );
}

/** Hashes a CRL's (or certificate's) signature may use: SHA-1 too (old CAs), and Ed25519's. */
export const X509_SIG_HASHES: readonly number[] = [SigHash.SHA1, ...OUR_SIG_HASHES];

/**
 * A signature given by its DER AlgorithmIdentifier (RFC 7427 AUTH data, an X.509 signature such as
 * a CRL's) over `octets` with `key`; `label` starts the scheme's words, `signer` names who signed
 * and whose key it is in messages. Throws
 * SignatureError('bad-signature', why) when it does not verify or the algorithm is not accepted.
 */
export function verifyWithAlgorithm(
  key: KeyObject,
  algDer: Uint8Array,
  sig: Uint8Array,
  octets: Uint8Array,
  accepted: readonly number[],
  label: string,
  signer: { who: string; keyOf: string } = { who: 'the peer', keyOf: "the peer's certificate" },
): string {
  const kind = keyKind(key);
  const bad = (why: string): never => {
    throw new SignatureError('bad-signature', why);
  };
  const check = (ok: boolean, scheme: string): string => {
    if (!ok) bad(`the ${scheme} signature does not verify with the public key of ${signer.keyOf}`);
    return scheme;
  };
  let alg: ReturnType<typeof parseAlgorithmIdentifier>;
  try {
    alg = parseAlgorithmIdentifier(algDer);
  } catch (e) {
    return bad(`${label} AlgorithmIdentifier does not parse: ${(e as Error).message}`);
  }
  const hashOk = (h: number | undefined, what: string): number => {
    if (h === undefined || !accepted.includes(h)) {
      bad(
        `${signer.who} signed with ${what}, whose hash ${signer.who === 'the peer' ? 'we did not announce' : 'is not accepted'} (${describeHashes(accepted)})`,
      );
    }
    return h!;
  };
  if (alg.oid === OID.ED25519) {
    if (kind !== 'ed25519') bad(`${signer.who} signed with Ed25519, but ${signer.keyOf} holds a ${kind} key`);
    hashOk(SigHash.IDENTITY, 'Ed25519');
    return check(verify(null, octets, key, sig), `${label} Ed25519`);
  }
  if (alg.oid === OID.RSA_PSS) {
    if (kind !== 'rsa') bad(`${signer.who} signed with RSASSA-PSS, but ${signer.keyOf} holds a ${kind} key`);
    let p: ReturnType<typeof parsePssParams>;
    try {
      p = parsePssParams(alg.params);
    } catch (e) {
      return bad(`RSASSA-PSS parameters: ${(e as Error).message}`);
    }
    if (p.mgfHashOid !== p.hashOid) bad('RSASSA-PSS with an MGF1 hash other than the message hash');
    const h = hashOk(hashByOid(p.hashOid), `RSASSA-PSS (${p.hashOid})`);
    return check(
      verify(
        HASHES[h]!.name,
        octets,
        { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: p.saltLength },
        sig,
      ),
      `${label} RSASSA-PSS ${HASHES[h]!.name}`,
    );
  }
  for (const [hs, oid] of Object.entries(OID.RSA_SHA)) {
    if (oid !== alg.oid) continue;
    if (kind !== 'rsa') bad(`${signer.who} signed with RSA, but ${signer.keyOf} holds a ${kind} key`);
    const h = hashOk(Number(hs), `RSA ${HASHES[Number(hs)]!.name}`);
    return check(
      verify(HASHES[h]!.name, octets, { key, padding: constants.RSA_PKCS1_PADDING }, sig),
      `${label} ${HASHES[h]!.name}WithRSAEncryption`,
    );
  }
  for (const [hs, oid] of Object.entries(OID.ECDSA_SHA)) {
    if (oid !== alg.oid) continue;
    if (!kind.startsWith('ecdsa'))
      bad(`${signer.who} signed with ECDSA, but ${signer.keyOf} holds a ${kind} key`);
    const h = hashOk(Number(hs), `ECDSA ${HASHES[Number(hs)]!.name}`);
    return check(
      verify(HASHES[h]!.name, octets, { key, dsaEncoding: 'der' }, sig),
      `${label} ecdsa-with-${HASHES[h]!.name}`,
    );
  }
  return bad(`${label} signature algorithm ${alg.oid} is not supported`);
}
