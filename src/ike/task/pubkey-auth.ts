// Certificate authentication for IKE_SA_INIT and IKE_AUTH (RFC 7296 §2.15, §3.6-3.8, RFC 7427):
// what the exchanges add when local.auth or remote.auth is pubkey — SIGNATURE_HASH_ALGORITHMS and
// CERTREQ in IKE_SA_INIT, CERT/CERTREQ and signature AUTH in IKE_AUTH — and the verification of
// the peer's certificate, identity and signature, each refusal with a cause (`untrusted-ca`,
// `expired`, `id-mismatch`, `bad-signature`, ...).
import { createPrivateKey, type KeyObject } from 'node:crypto';
import type { ConnectionConfig } from '../config.js';
import { signedOctets } from '../crypto/keymat.js';
import {
  describeHashes,
  describeKey,
  isSignatureMethod,
  OUR_SIG_HASHES,
  SignatureError,
  signAuth,
  verifyAuth,
} from '../crypto/signature.js';
import {
  type Cert,
  CertError,
  certHasId,
  certIds,
  certreqData,
  isSelfSigned,
  parseCert,
  parseCrl,
  verifyChain,
} from '../crypto/x509.js';
import type { IkeSa } from '../sa/ike-sa.js';
import { AuthMethod, Notify, PayloadType } from '../wire/constants.js';
import type { CertPayload, IdPayload, Payload } from '../wire/types.js';
import type { EngineCtx } from './context.js';
import { auth, find, findAll, findNotify, notify } from './payloads.js';

/** Certificate encoding 4: X.509 Certificate - Signature (RFC 7296 §3.6). */
export const CERT_X509 = 4;

/** What IKE_SA_INIT told us about the peer's certificate authentication. */
interface SigState {
  /** The peer's SIGNATURE_HASH_ALGORITHMS (undefined: it sent none, no RFC 7427). */
  peerHashes?: number[];
  /** The peer sent a CERTREQ (IKE_SA_INIT response or IKE_AUTH request). */
  peerCertreq: boolean;
  /** We announced SIGNATURE_HASH_ALGORITHMS. */
  sentHashes: boolean;
}

// Kept beside the IKE_SA (the SA object is shared plain data; this is only IKE_SA_INIT -> IKE_AUTH).
const states = new WeakMap<IkeSa, SigState>();
function state(sa: IkeSa): SigState {
  let s = states.get(sa);
  if (!s) {
    s = { peerCertreq: false, sentHashes: false, peerHashes: undefined };
    states.set(sa, s);
  }
  return s;
}

export const usesPubkey = (c: ConnectionConfig): boolean =>
  c.localAuth === 'pubkey' || c.remoteAuth === 'pubkey';

function certPayload(type: 37 | 38, data: Uint8Array): CertPayload {
  return { type, critical: false, encoding: CERT_X509, data };
}

function hashesNotify(): Payload {
  const d = new Uint8Array(2 * OUR_SIG_HASHES.length);
  OUR_SIG_HASHES.forEach((h, i) => {
    d[2 * i] = h >> 8;
    d[2 * i + 1] = h & 0xff;
  });
  return notify(Notify.SIGNATURE_HASH_ALGORITHMS, d);
}

function readHashes(ps: Payload[]): number[] | undefined {
  const n = findNotify(ps, Notify.SIGNATURE_HASH_ALGORITHMS);
  if (!n) return undefined;
  const out: number[] = [];
  for (let i = 0; i + 1 < n.data.length; i += 2) out.push((n.data[i]! << 8) | n.data[i + 1]!);
  return out;
}

const trustedCas = (c: ConnectionConfig): Cert[] => (c.remoteCaCerts ?? []).map(parseCert);
const crls = (c: ConnectionConfig) => (c.remoteCrls ?? []).map(parseCrl);

function certreqs(conn: ConnectionConfig): Payload[] {
  if (conn.remoteAuth !== 'pubkey') return [];
  return [certPayload(PayloadType.CERTREQ, certreqData(trustedCas(conn)))];
}

// ------------------------------------------------------------------------------------ IKE_SA_INIT

/** Initiator: what IKE_SA_INIT request adds (SIGNATURE_HASH_ALGORITHMS). */
export function initRequestPayloads(sa: IkeSa): Payload[] {
  if (!usesPubkey(sa.conn)) return [];
  state(sa).sentHashes = true;
  return [hashesNotify()];
}

/** Initiator: note the response's SIGNATURE_HASH_ALGORITHMS and CERTREQ. */
export function noteInitResponse(sa: IkeSa, ps: Payload[]): void {
  const s = state(sa);
  s.peerHashes = readHashes(ps);
  s.peerCertreq = findAll(ps, PayloadType.CERTREQ).length > 0;
}

/** Responder: note the request, and what the response adds (CERTREQ, SIGNATURE_HASH_ALGORITHMS). */
export function initResponsePayloads(sa: IkeSa, conn: ConnectionConfig, reqPs: Payload[]): Payload[] {
  const s = state(sa);
  s.peerHashes = readHashes(reqPs);
  if (!usesPubkey(conn)) return [];
  const out = certreqs(conn);
  if (s.peerHashes) {
    s.sentHashes = true;
    out.push(hashesNotify());
  }
  return out;
}

// ------------------------------------------------------------------------------------ IKE_AUTH

export class AuthError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const keys = new WeakMap<Uint8Array, KeyObject>();
function privateKey(der: Uint8Array): KeyObject {
  let k = keys.get(der);
  if (!k) {
    k = createPrivateKey({ key: Buffer.from(der), format: 'der', type: 'pkcs8' });
    keys.set(der, k);
  }
  return k;
}

/** Initiator: CERTREQ for IKE_AUTH (the peer's CERTREQ, if any, came in IKE_SA_INIT). */
export function authRequestCertreqs(sa: IkeSa): Payload[] {
  return certreqs(sa.conn);
}

/** Responder: note the request's CERTREQ (send_cert ifasked). */
export function noteAuthRequest(sa: IkeSa, ps: Payload[]): void {
  if (findAll(ps, PayloadType.CERTREQ).length > 0) state(sa).peerCertreq = true;
}

/**
 * Our AUTH for local.auth pubkey, with the CERT payloads that go before it (send_cert). `real` is
 * our IKE_SA_INIT message, `peerNonce` the peer's nonce, `skP` our SK_p, `idBody` our ID body.
 * Throws AuthError when no signature can be made (Ed25519 without RFC 7427, no common hash).
 */
export function signaturePayloads(
  ctx: EngineCtx,
  sa: IkeSa,
  real: Uint8Array,
  peerNonce: Uint8Array,
  skP: Uint8Array,
  idBody: Uint8Array,
): Payload[] {
  const conn = sa.conn;
  const s = state(sa);
  const key = privateKey(conn.localKey!);
  const octets = signedOctets(sa.suite!.prf, real, peerNonce, skP, idBody);
  let sig: ReturnType<typeof signAuth>;
  try {
    sig = signAuth(key, octets, { peerHashes: s.sentHashes ? s.peerHashes : undefined, rsaPss: conn.rsaPss });
  } catch (e) {
    if (e instanceof SignatureError) throw new AuthError(e.code, e.message);
    throw e;
  }
  const send = conn.sendCert ?? 'ifasked';
  const out: Payload[] = [];
  const certs = (conn.localCerts ?? []).map(parseCert);
  if (send === 'always' || (send === 'ifasked' && s.peerCertreq)) {
    for (const [i, c] of certs.entries()) {
      if (i > 0 && isSelfSigned(c)) continue; // a root is never sent
      out.push(certPayload(PayloadType.CERT, c.der));
    }
  }
  ctx.log(
    'debug',
    'ike',
    `authenticating with ${describeKey(key)} certificate "${certs[0]?.subject}" (${sig.scheme}), ${
      out.length ? `sending ${out.length} CERT payload(s)` : 'no CERT (send_cert)'
    }`,
    sa,
  );
  out.push(auth(sig.method, sig.data));
  return out;
}

/**
 * Verifies the peer's certificate authentication (remote.auth pubkey): certificate chain to a
 * trusted CA, the ID against the certificate, the signature over the peer's SignedOctets (`real`
 * its IKE_SA_INIT message, `ourNonce`, `skP` the peer's SK_p, `idBody` its ID body as received).
 * Returns a sentence for the log; throws AuthError naming the cause.
 */
export function verifySignature(
  ctx: EngineCtx,
  sa: IkeSa,
  ps: Payload[],
  idp: IdPayload,
  idText: string,
  real: Uint8Array,
  ourNonce: Uint8Array,
  skP: Uint8Array,
  idBody: Uint8Array,
): string {
  const conn = sa.conn;
  const authp = find(ps, PayloadType.AUTH)!;
  if (!isSignatureMethod(authp.method)) {
    throw new AuthError(
      'auth-method',
      authp.method === AuthMethod.SHARED_KEY_MIC
        ? 'the peer authenticated with a pre-shared key, but remote.auth is pubkey'
        : `the peer authenticated with method ${authp.method}, remote.auth pubkey accepts signatures (1, 9-11, 14)`,
    );
  }
  const certs = findAll(ps, PayloadType.CERT).filter((c) => c.encoding === CERT_X509);
  if (certs.length === 0) {
    throw new AuthError(
      'no-cert',
      'the peer sent no X.509 certificate (CERT payload) — it must send its certificate (strongSwan: send_cert, or our CERTREQ names no CA it knows)',
    );
  }
  let ee: Cert;
  let chain: Cert[];
  try {
    ee = parseCert(certs[0]!.data);
    const ims = certs.slice(1).map((c) => parseCert(c.data));
    chain = verifyChain(
      ee,
      ims,
      trustedCas(conn),
      ctx.now + (ctx.cfg.wallClockOffsetMs ?? 0),
      crls(conn),
      (level, msg) => ctx.log(level, 'ike', msg, sa),
    );
  } catch (e) {
    if (e instanceof CertError) throw new AuthError(e.code, e.message);
    throw e;
  }
  // RFC 5280 §4.2.1.13, §4.2.2.1: where revocation information could be fetched; ikegw does not
  for (const c of chain.length > 1 ? chain.slice(0, -1) : chain) {
    const { crlUris, ocspUris } = c.parts;
    if (crlUris.length || ocspUris.length) {
      ctx.log(
        'debug',
        'ike',
        `certificate "${c.subject}" names ${[
          crlUris.length ? `CRL distribution point(s) ${crlUris.join(', ')}` : '',
          ocspUris.length ? `OCSP responder(s) ${ocspUris.join(', ')}` : '',
        ]
          .filter(Boolean)
          .join('; ')} — not fetched (ikegw checks the CRL files in remote.crls only)`,
        sa,
      );
    }
  }
  if (!certHasId(ee, idp.idType, idp.data)) {
    throw new AuthError(
      'id-mismatch',
      `the peer identified as ${idText}, which its certificate does not contain (it has ${certIds(ee)})`,
    );
  }
  const s = state(sa);
  let scheme: string;
  try {
    scheme = verifyAuth(
      ee.x509.publicKey,
      authp.method,
      authp.data,
      signedOctets(sa.suite!.prf, real, ourNonce, skP, idBody),
    );
  } catch (e) {
    if (e instanceof SignatureError) throw new AuthError(e.code, e.message);
    throw e;
  }
  return `peer authenticated with ${describeKey(ee.x509.publicKey)} certificate "${ee.subject}" (${scheme}${
    s.peerHashes ? `, peer hashes ${describeHashes(s.peerHashes)}` : ', no RFC 7427'
  }), chain ${chain.map((c) => `"${c.subject}"`).join(' <- ')}`;
}
