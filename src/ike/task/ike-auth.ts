// IKE_AUTH with pre-shared keys or certificates (pubkey-auth.ts) and the first CHILD_SA (RFC 7296
// §1.2, §2.15, §2.9), both roles; PSK and pubkey may differ per direction (local.auth/remote.auth).
//
//   HDR, SK { IDi, [CERT+], [N(INITIAL_CONTACT)], [CERTREQ], [IDr], AUTH, SAi2, TSi, TSr }  -->
//                               <--  HDR, SK { IDr, [CERT+], AUTH, SAr2, TSi, TSr }
import { addrToBytes, bytesToAddr } from '../../common/addr.js';
import { concat, equalBytes, hex } from '../../common/bytes.js';
import type { ChildConfig, ConnectionConfig, IdConfig } from '../config.js';
import { dnMatches, formatDn, parseDn } from '../crypto/der.js';
import { pskAuthData } from '../crypto/keymat.js';
import { failureCause } from '../events.js';
import { childKeysFor, installChild, installOutbound, newChild } from '../sa/child-sa.js';
import type { ChildSa, IkeSa } from '../sa/ike-sa.js';
import {
  acceptEspResponse,
  describeWireProposals,
  espSuiteProposal,
  selectEsp,
  toWireProposals,
} from '../sa/proposal.js';
import { formatProposal } from '../sa/proposal-syntax.js';
import { allWithin, formatTs, narrow, tsFromWire, tsToWire } from '../sa/traffic-selector.js';
import {
  AuthMethod,
  ExchangeType,
  IdType,
  Notify,
  notifyName,
  PayloadType,
  ProtocolId,
} from '../wire/constants.js';
import { rawBody } from '../wire/message.js';
import type { IdPayload, IkeMessage, Payload } from '../wire/types.js';
import type { EngineCtx } from './context.js';
import {
  auth,
  errorNotify,
  find,
  findNotify,
  id,
  notify,
  readU32,
  sa as saPayload,
  ts,
  u32,
} from './payloads.js';
import {
  AuthError,
  authRequestCertreqs,
  noteAuthRequest,
  signaturePayloads,
  verifySignature,
} from './pubkey-auth.js';

/** Notifies that fail only the CHILD_SA of an IKE_AUTH, not the IKE_SA (RFC 7296 §1.2). */
const CHILD_ERRORS = new Set<number>([
  Notify.NO_PROPOSAL_CHOSEN,
  Notify.TS_UNACCEPTABLE,
  Notify.SINGLE_PAIR_REQUIRED,
  Notify.INTERNAL_ADDRESS_FAILURE,
  Notify.FAILED_CP_REQUIRED,
  Notify.INVALID_SELECTORS,
]);

export function localIdOf(sa: IkeSa): IdConfig {
  if (sa.conn.localId) return sa.conn.localId;
  const b = addrToBytes(sa.local.address);
  return { type: b.length === 4 ? IdType.IPV4_ADDR : IdType.IPV6_ADDR, data: b };
}

export function idText(type: number, data: Uint8Array): string {
  switch (type) {
    case IdType.IPV4_ADDR:
    case IdType.IPV6_ADDR:
      return data.length === 4 || data.length === 16 ? bytesToAddr(data) : `<bad address ${hex(data)}>`;
    case IdType.FQDN:
    case IdType.RFC822_ADDR:
      return Buffer.from(data).toString('latin1');
    case IdType.KEY_ID:
      return `@#${hex(data)}`;
    case IdType.DER_ASN1_DN:
      return `"${formatDn(data)}"`;
    default:
      return `<id type ${type}: ${hex(data)}>`;
  }
}

function idBody(type: number, data: Uint8Array): Uint8Array {
  return concat(new Uint8Array([type, 0, 0, 0]), data);
}

/** The peer's ID payload body as it was on the wire (RESERVED bytes included), for AUTH. */
function peerIdBody(p: IdPayload): Uint8Array {
  return rawBody(p) ?? idBody(p.idType, p.data);
}

function idMatches(want: IdConfig | undefined, got: IdPayload): boolean {
  if (!want) return true;
  if (want.type !== got.idType) return false;
  if (want.type !== IdType.DER_ASN1_DN) return equalBytes(want.data, got.data);
  try {
    return dnMatches(parseDn(want.data), parseDn(got.data)); // string types may differ; "*" values match any
  } catch {
    return false;
  }
}

/**
 * Our AUTH payload (and CERTs before it): PSK MAC or a signature (local.auth). `real` is our
 * IKE_SA_INIT message, `peerNonce` the peer's nonce, `skP` our SK_p.
 */
function ourAuth(
  ctx: EngineCtx,
  sa: IkeSa,
  real: Uint8Array,
  peerNonce: Uint8Array,
  skP: Uint8Array,
  me: IdConfig,
): Payload[] {
  const conn = sa.conn;
  if (conn.localAuth === 'pubkey')
    return signaturePayloads(ctx, sa, real, peerNonce, skP, idBody(me.type, me.data));
  return [
    auth(
      AuthMethod.SHARED_KEY_MIC,
      pskAuthData(sa.suite!.prf, conn.psk, real, peerNonce, skP, idBody(me.type, me.data)),
    ),
  ];
}

/**
 * Verifies the peer's AUTH (remote.auth); returns undefined or [cause, sentence]. `real` is the
 * peer's IKE_SA_INIT message, `ourNonce` our nonce, `skP` the peer's SK_p.
 */
function checkPeerAuth(
  ctx: EngineCtx,
  sa: IkeSa,
  ps: Payload[],
  idp: IdPayload,
  real: Uint8Array,
  ourNonce: Uint8Array,
  skP: Uint8Array,
): [string, string] | undefined {
  const conn = sa.conn;
  const authp = find(ps, PayloadType.AUTH)!;
  if (conn.remoteAuth === 'pubkey') {
    try {
      const how = verifySignature(ctx, sa, ps, idp, sa.remoteIdText, real, ourNonce, skP, peerIdBody(idp));
      ctx.log('info', 'ike', how, sa);
      return undefined;
    } catch (e) {
      if (e instanceof AuthError) return [e.code, e.message];
      throw e;
    }
  }
  if (authp.method !== AuthMethod.SHARED_KEY_MIC) {
    return [
      'auth-method',
      `the peer authenticated with method ${authp.method}${authp.method === AuthMethod.SHARED_KEY_MIC ? '' : ' (a signature)'}, but remote.auth is psk`,
    ];
  }
  const expect = pskAuthData(sa.suite!.prf, conn.psk, real, ourNonce, skP, peerIdBody(idp));
  if (!equalBytes(expect, authp.data)) {
    return [
      'psk-mismatch',
      `the peer's AUTH does not verify with our pre-shared key — the PSK (or the peer's ID) differs (our ID ${sa.localIdText}, peer ID ${sa.remoteIdText})`,
    ];
  }
  return undefined;
}

/** The failure sentence's hint for a certificate cause. */
function certHint(cause: string, conn: ConnectionConfig): string | undefined {
  if (cause === 'psk-mismatch' || (cause === 'id-mismatch' && conn.remoteAuth !== 'pubkey')) return undefined;
  const hints: Record<string, string> = {
    'untrusted-ca':
      "remote.cacerts must hold the CA that issued the peer's certificate (or its root, with the peer sending the intermediates)",
    expired: "the certificate's validity period has ended (or the clock is wrong): renew it",
    'not-yet-valid': 'the certificate is not valid yet: check both clocks',
    'id-mismatch':
      "the peer's ID must be its certificate's subject DN or one of its subjectAltNames, and match remote.id",
    'bad-signature':
      "the peer's private key does not belong to the certificate it sent, or the message was altered",
    'no-cert':
      'the peer must send its certificate: send_cert = always on the peer, or remote.cacerts naming its CA',
    'auth-method': 'local.auth on one side must match remote.auth on the other (psk or pubkey)',
    'not-a-ca': 'an issuing certificate lacks basicConstraints CA:TRUE',
    revoked:
      'a CRL in remote.crls lists the certificate: the peer needs a new certificate (or remove the CRL if it is wrong)',
    'key-usage':
      "a certificate's keyUsage forbids this use (digitalSignature for end entities, keyCertSign for CAs)",
  };
  return hints[cause];
}

// ------------------------------------------------------------------------------------ initiator

export function sendAuthRequest(ctx: EngineCtx, sa: IkeSa): void {
  const conn = sa.conn;
  const me = localIdOf(sa);
  sa.localIdText = idText(me.type, me.data);
  let authPs: Payload[];
  try {
    authPs = ourAuth(ctx, sa, sa.initRequest!, sa.nonceR, sa.keys!.skPi, me);
  } catch (e) {
    if (!(e instanceof AuthError)) throw e;
    return authFailed(
      ctx,
      sa,
      `AUTHENTICATION_FAILED (${e.code}): cannot sign our AUTH: ${e.message}`,
      e.code,
    );
  }
  const payloads: Payload[] = [id(PayloadType.IDi, me.type, me.data)];
  // CERT payloads go right after IDi (RFC 7296 §1.2); AUTH stays where it was
  payloads.push(...authPs.filter((p) => p.type === PayloadType.CERT));
  if (
    conn.initialContact &&
    !ctx.all().some((o) => o !== sa && o.conn === conn && o.state === 'ESTABLISHED')
  ) {
    payloads.push(notify(Notify.INITIAL_CONTACT));
    sa.sentInitialContact = true;
  }
  payloads.push(...authRequestCertreqs(sa));
  if (conn.remoteId) payloads.push(id(PayloadType.IDr, conn.remoteId.type, conn.remoteId.data));
  payloads.push(...authPs.filter((p) => p.type !== PayloadType.CERT));
  const child = sa.firstChild;
  if (child) {
    sa.offeredSpiIn = ctx.newEspSpi();
    payloads.push(
      saPayload(
        toWireProposals(
          child.espProposals.map((p) => ({ ...p, dh: [] })),
          ProtocolId.ESP,
          u32(sa.offeredSpiIn),
        ),
      ),
    );
    payloads.push(ts(PayloadType.TSi, child.localTs.map(tsToWire)));
    payloads.push(ts(PayloadType.TSr, child.remoteTs.map(tsToWire)));
  }
  ctx.request(sa, ExchangeType.IKE_AUTH, payloads, {
    what: 'IKE_AUTH',
    onResponse: (_msg, inner) => processAuthResponse(ctx, sa, inner),
  });
}

function processAuthResponse(ctx: EngineCtx, sa: IkeSa, ps: Payload[]): void {
  const conn = sa.conn;
  const idr = find(ps, PayloadType.IDr);
  const authp = find(ps, PayloadType.AUTH);
  if (!idr || !authp) {
    const err = errorNotify(ps);
    if (err?.notifyType === Notify.AUTHENTICATION_FAILED) {
      return authFailed(
        ctx,
        sa,
        conn.localAuth === 'pubkey'
          ? `AUTHENTICATION_FAILED: the peer rejected our AUTH — it does not trust our certificate or ID, or expects other auth; its log names the cause (our ID ${sa.localIdText}, expected peer ID ${conn.remoteId ? idText(conn.remoteId.type, conn.remoteId.data) : '%any'})`
          : `AUTHENTICATION_FAILED: the peer rejected our AUTH — pre-shared key or IDs differ (our ID ${sa.localIdText}, expected peer ID ${conn.remoteId ? idText(conn.remoteId.type, conn.remoteId.data) : '%any'})`,
        'peer-rejected',
      );
    }
    const what = err ? notifyName(err.notifyType) : 'no IDr/AUTH';
    ctx.emit({
      ev: 'failure',
      sa: ctx.ref(sa),
      conn: conn.name,
      reason: 'PEER_ERROR',
      detail: `IKE_AUTH failed: the peer answered with ${what}`,
    });
    return ctx.destroy(sa, `IKE_AUTH failed: ${what}`);
  }
  sa.remoteIdText = idText(idr.idType, idr.data);
  if (!idMatches(conn.remoteId, idr)) {
    return authFailed(
      ctx,
      sa,
      `AUTHENTICATION_FAILED (id-mismatch): the peer identified as ${sa.remoteIdText}, but remote.id is ${idText(conn.remoteId!.type, conn.remoteId!.data)}`,
      'id-mismatch',
    );
  }
  const bad = checkPeerAuth(ctx, sa, ps, idr, sa.initResponse!, sa.nonceI, sa.keys!.skPr);
  if (bad) return authFailed(ctx, sa, `AUTHENTICATION_FAILED (${bad[0]}): ${bad[1]}`, bad[0]);
  ctx.established(sa);
  const cfg = sa.firstChild;
  sa.firstChild = undefined;
  if (!cfg) return;
  const childErr = errorNotify(ps);
  if (childErr && CHILD_ERRORS.has(childErr.notifyType)) {
    const name = notifyName(childErr.notifyType);
    const detail =
      childErr.notifyType === Notify.TS_UNACCEPTABLE
        ? `TS_UNACCEPTABLE: the peer accepts none of our traffic selectors: ours ${cfg.localTs.map(formatTs).join(',')} === ${cfg.remoteTs.map(formatTs).join(',')} — compare with the peer's local_ts/remote_ts`
        : childErr.notifyType === Notify.NO_PROPOSAL_CHOSEN
          ? `NO_PROPOSAL_CHOSEN: the peer accepted none of our ESP proposals [${cfg.espProposals.map((p) => formatProposal(p)).join(', ')}]`
          : `CHILD_SA ${cfg.name} refused by the peer: ${name}`;
    ctx.emit({
      ev: 'failure',
      sa: ctx.ref(sa),
      conn: conn.name,
      reason:
        childErr.notifyType === Notify.TS_UNACCEPTABLE
          ? 'TS_UNACCEPTABLE'
          : childErr.notifyType === Notify.NO_PROPOSAL_CHOSEN
            ? 'NO_PROPOSAL_CHOSEN'
            : 'PEER_ERROR',
      detail,
    });
    return;
  }
  const sap = find(ps, PayloadType.SA);
  const tsi = find(ps, PayloadType.TSi);
  const tsr = find(ps, PayloadType.TSr);
  if (!sap || !tsi || !tsr) {
    ctx.emit({
      ev: 'failure',
      sa: ctx.ref(sa),
      conn: conn.name,
      reason: 'PEER_ERROR',
      detail: `the peer created no CHILD_SA ${cfg.name} (no SA/TS in IKE_AUTH response)`,
    });
    return;
  }
  const acc = acceptEspResponse(sap.proposals, cfg.espProposals, true);
  if (!acc) {
    ctx.emit({
      ev: 'failure',
      sa: ctx.ref(sa),
      conn: conn.name,
      reason: 'NO_PROPOSAL_CHOSEN',
      detail: `the peer chose an ESP proposal we did not offer`,
    });
    return; // the IKE_SA stays up: a CHILD_SA failure does not tear it down (RFC 7296 §1.2)
  }
  const localTs = tsi.selectors.map(tsFromWire);
  const remoteTs = tsr.selectors.map(tsFromWire);
  if (!allWithin(localTs, cfg.localTs) || !allWithin(remoteTs, cfg.remoteTs)) {
    ctx.emit({
      ev: 'failure',
      sa: ctx.ref(sa),
      conn: conn.name,
      reason: 'TS_UNACCEPTABLE',
      detail: `TS_UNACCEPTABLE: the peer narrowed to selectors outside ours: theirs ${localTs.map(formatTs).join(',')} === ${remoteTs.map(formatTs).join(',')}, ours ${cfg.localTs.map(formatTs).join(',')} === ${cfg.remoteTs.map(formatTs).join(',')}`,
    });
    return;
  }
  const child = newChild(ctx, sa, cfg, acc.suite, sa.offeredSpiIn!, readU32(acc.spi), localTs, remoteTs);
  child.viaAuth = true;
  sa.children.push(child);
  child.onInstalled = (error) => ctx.childInstalled(sa, child, error);
  installChild(ctx, sa, child, childKeysFor(sa, acc.suite, true, sa.nonceI, sa.nonceR));
}

function authFailed(ctx: EngineCtx, sa: IkeSa, detail: string, cause: string): void {
  ctx.emit(failureEvent(ctx, sa, detail, cause));
  ctx.destroy(sa, 'authentication failed');
}

function failureEvent(ctx: EngineCtx, sa: IkeSa, detail: string, cause: string) {
  const hint = certHint(cause, sa.conn);
  return {
    ev: 'failure' as const,
    sa: ctx.ref(sa),
    conn: sa.conn.name,
    reason: 'AUTHENTICATION_FAILED' as const,
    cause: failureCause(cause),
    detail,
    ...(hint ? { hint } : {}),
  };
}

// ------------------------------------------------------------------------------------ responder

export function processAuthRequest(
  ctx: EngineCtx,
  sa: IkeSa,
  req: IkeMessage,
  reqBytes: Uint8Array,
  ps: Payload[],
): void {
  const conn = sa.conn;
  const idi = find(ps, PayloadType.IDi);
  const authp = find(ps, PayloadType.AUTH);
  const reply = (payloads: Payload[]) => ctx.respond(sa, req, reqBytes, payloads);
  noteAuthRequest(sa, ps);
  if (!idi || !authp) {
    ctx.emit({
      ev: 'failure',
      sa: ctx.ref(sa),
      conn: conn.name,
      reason: 'AUTHENTICATION_FAILED',
      detail:
        'AUTHENTICATION_FAILED: the peer sent no AUTH payload (EAP is not supported, configure PSK on the peer)',
    });
    reply([notify(Notify.AUTHENTICATION_FAILED)]);
    return ctx.destroy(sa, 'authentication failed');
  }
  sa.remoteIdText = idText(idi.idType, idi.data);
  const me = localIdOf(sa);
  sa.localIdText = idText(me.type, me.data);
  const fail = (detail: string, cause: string) => {
    ctx.emit(failureEvent(ctx, sa, detail, cause));
    reply([notify(Notify.AUTHENTICATION_FAILED)]);
    ctx.destroy(sa, 'authentication failed');
  };
  if (!idMatches(conn.remoteId, idi)) {
    return fail(
      `AUTHENTICATION_FAILED (id-mismatch): the peer identified as ${sa.remoteIdText}, but remote.id is ${idText(conn.remoteId!.type, conn.remoteId!.data)}`,
      'id-mismatch',
    );
  }
  const bad = checkPeerAuth(ctx, sa, ps, idi, sa.initRequest!, sa.nonceR, sa.keys!.skPi);
  if (bad) return fail(`AUTHENTICATION_FAILED (${bad[0]}): ${bad[1]}`, bad[0]);
  if (conn.initialContact && findNotify(ps, Notify.INITIAL_CONTACT)) {
    // RFC 7296 §2.4: the peer has no other SAs with us; delete what we still hold for it — unless
    // unique: never (strongSwan's "never": ignore INITIAL_CONTACT; many clients may share one ID).
    for (const o of ctx.peerSas(conn.name, sa.remoteIdText)) {
      if (o !== sa && o.state !== 'DESTROYED') {
        ctx.log('info', 'ike', `INITIAL_CONTACT: deleting stale IKE_SA ${o.uid} of the same peer`, sa);
        ctx.destroy(o, 'replaced after INITIAL_CONTACT');
      }
    }
  }
  let authPs: Payload[];
  try {
    authPs = ourAuth(ctx, sa, sa.initResponse!, sa.nonceI, sa.keys!.skPr, me);
  } catch (e) {
    if (!(e instanceof AuthError)) throw e;
    return fail(`AUTHENTICATION_FAILED (${e.code}): cannot sign our AUTH: ${e.message}`, e.code);
  }
  const out: Payload[] = [id(PayloadType.IDr, me.type, me.data), ...authPs];
  ctx.established(sa);

  const sap = find(ps, PayloadType.SA);
  const tsi = find(ps, PayloadType.TSi);
  const tsr = find(ps, PayloadType.TSr);
  if (!sap || !tsi || !tsr) return reply(out); // childless (RFC 6023) or no child wanted
  if (findNotify(ps, Notify.USE_TRANSPORT_MODE)) {
    ctx.emit({
      ev: 'failure',
      sa: ctx.ref(sa),
      conn: conn.name,
      reason: 'NO_PROPOSAL_CHOSEN',
      detail: 'the peer asked for transport mode; ikegw does tunnel mode only',
    });
    return reply([...out, notify(Notify.NO_PROPOSAL_CHOSEN)]);
  }
  const theirI = tsi.selectors.map(tsFromWire);
  const theirR = tsr.selectors.map(tsFromWire);
  let cfg: ChildConfig | undefined;
  let remoteTs: ChildSa['remoteTs'] = [];
  let localTs: ChildSa['localTs'] = [];
  for (const c of conn.children) {
    remoteTs = narrow(theirI, c.remoteTs);
    localTs = narrow(theirR, c.localTs);
    if (remoteTs.length && localTs.length) {
      cfg = c;
      break;
    }
  }
  if (!cfg) {
    ctx.emit({
      ev: 'failure',
      sa: ctx.ref(sa),
      conn: conn.name,
      reason: 'TS_UNACCEPTABLE',
      detail: `TS_UNACCEPTABLE: theirs ${theirI.map(formatTs).join(',')} === ${theirR.map(formatTs).join(',')}, ours ${conn.children.map((c) => `${c.remoteTs.map(formatTs).join(',')} === ${c.localTs.map(formatTs).join(',')}`).join('; ')}`,
    });
    return reply([...out, notify(Notify.TS_UNACCEPTABLE)]);
  }
  const sel = selectEsp(sap.proposals, cfg.espProposals, { ignoreDh: true });
  if (!sel) {
    ctx.emit({
      ev: 'failure',
      sa: ctx.ref(sa),
      conn: conn.name,
      reason: 'NO_PROPOSAL_CHOSEN',
      detail: `NO_PROPOSAL_CHOSEN (ESP): ours [${cfg.espProposals.map((p) => formatProposal(p)).join(', ')}], theirs ${describeWireProposals(sap.proposals)}`,
    });
    return reply([...out, notify(Notify.NO_PROPOSAL_CHOSEN)]);
  }
  const spiIn = ctx.newEspSpi();
  const child = newChild(ctx, sa, cfg, sel.suite, spiIn, readU32(sel.spi), localTs, remoteTs);
  child.viaAuth = true;
  sa.children.push(child);
  // A make-before-break reauthentication by the peer (strongSwan's make_before_break, e.g. to see
  // a rotated certificate): the peer installs this CHILD_SA only when our response arrives, so a
  // packet we sent on it before would be dropped there. As the responder of a CHILD_SA rekey does
  // (RFC 7296 §2.8), we go on sending on the older CHILD_SA until the peer deletes it.
  const older = reauthPredecessor(ctx, sa, cfg);
  if (older) {
    child.reauthOf = older;
    older.reauthedBy = child;
  }
  child.onInstalled = (error) => {
    ctx.childInstalled(sa, child, error);
    if (error) return reply([...out, notify(Notify.NO_PROPOSAL_CHOSEN)]);
    reply([
      ...out,
      saPayload([espSuiteProposal(sel.num, sel.suite, u32(spiIn))]),
      ts(PayloadType.TSi, remoteTs.map(tsToWire)),
      ts(PayloadType.TSr, localTs.map(tsToWire)),
    ]);
    if (!older) return;
    if (older.state === 'DELETED') installOutbound(ctx, sa, child);
    else ctx.arm(sa, `outbound:${child.uid}`, ctx.now + REAUTH_OUTBOUND_TIMEOUT_MS);
  };
  installChild(ctx, sa, child, childKeysFor(sa, sel.suite, false, sa.nonceI, sa.nonceR), {
    outbound: !older,
  });
}

/**
 * How long the responder of a reauthentication waits for the DELETE of the old IKE_SA before it
 * sends on the new CHILD_SA anyway. A reauthenticating peer sends it one round trip after our
 * IKE_AUTH response; a peer that restarted without INITIAL_CONTACT (strongSwan's unique = never)
 * never does, and we would be sending into the old SA until then — so shorter than a rekey's.
 */
export const REAUTH_OUTBOUND_TIMEOUT_MS = 2_000;

/**
 * The INSTALLED CHILD_SA of the same connection and child, with the same peer (identity and
 * address), on another established IKE_SA: what a make-before-break reauthentication replaces.
 */
function reauthPredecessor(ctx: EngineCtx, sa: IkeSa, cfg: ChildConfig): ChildSa | undefined {
  for (const o of ctx.peerSas(sa.conn.name, sa.remoteIdText)) {
    if (o === sa || o.state !== 'ESTABLISHED' || o.remote.address !== sa.remote.address) continue;
    const c = o.children.find(
      (x) => x.cfg.name === cfg.name && x.state === 'INSTALLED' && !x.pendingOutbound,
    );
    if (c) return c;
  }
  return undefined;
}
