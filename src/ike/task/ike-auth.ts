// IKE_AUTH with pre-shared keys and the first CHILD_SA (RFC 7296 §1.2, §2.15, §2.9), both roles.
//
//   HDR, SK { IDi, [N(INITIAL_CONTACT)], [IDr], AUTH, SAi2, TSi, TSr }  -->
//                               <--  HDR, SK { IDr, AUTH, SAr2, TSi, TSr }
import { addrToBytes, bytesToAddr } from '../../common/addr.js';
import { concat, equalBytes, hex } from '../../common/bytes.js';
import type { ChildConfig, IdConfig } from '../config.js';
import { pskAuthData } from '../crypto/keymat.js';
import { childKeysFor, installChild, newChild } from '../sa/child-sa.js';
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
  return !want || (want.type === got.idType && equalBytes(want.data, got.data));
}

// ------------------------------------------------------------------------------------ initiator

export function sendAuthRequest(ctx: EngineCtx, sa: IkeSa): void {
  const conn = sa.conn;
  const me = localIdOf(sa);
  sa.localIdText = idText(me.type, me.data);
  const authData = pskAuthData(
    sa.suite!.prf,
    conn.psk,
    sa.initRequest!,
    sa.nonceR,
    sa.keys!.skPi,
    idBody(me.type, me.data),
  );
  const payloads: Payload[] = [id(PayloadType.IDi, me.type, me.data)];
  if (
    conn.initialContact &&
    !ctx.all().some((o) => o !== sa && o.conn === conn && o.state === 'ESTABLISHED')
  ) {
    payloads.push(notify(Notify.INITIAL_CONTACT));
    sa.sentInitialContact = true;
  }
  if (conn.remoteId) payloads.push(id(PayloadType.IDr, conn.remoteId.type, conn.remoteId.data));
  payloads.push(auth(AuthMethod.SHARED_KEY_MIC, authData));
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
        `AUTHENTICATION_FAILED: the peer rejected our AUTH — pre-shared key or IDs differ (our ID ${sa.localIdText}, expected peer ID ${conn.remoteId ? idText(conn.remoteId.type, conn.remoteId.data) : '%any'})`,
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
      `AUTHENTICATION_FAILED: the peer identified as ${sa.remoteIdText}, but remote.id is ${idText(conn.remoteId!.type, conn.remoteId!.data)}`,
    );
  }
  if (authp.method !== AuthMethod.SHARED_KEY_MIC) {
    return authFailed(
      ctx,
      sa,
      `AUTHENTICATION_FAILED: the peer authenticated with method ${authp.method}, we only accept pre-shared keys`,
    );
  }
  const expect = pskAuthData(
    sa.suite!.prf,
    conn.psk,
    sa.initResponse!,
    sa.nonceI,
    sa.keys!.skPr,
    peerIdBody(idr),
  );
  if (!equalBytes(expect, authp.data)) {
    return authFailed(
      ctx,
      sa,
      `AUTHENTICATION_FAILED: the peer's AUTH does not verify with our pre-shared key — the PSK differs (our ID ${sa.localIdText}, peer ID ${sa.remoteIdText})`,
    );
  }
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

function authFailed(ctx: EngineCtx, sa: IkeSa, detail: string): void {
  ctx.emit({ ev: 'failure', sa: ctx.ref(sa), conn: sa.conn.name, reason: 'AUTHENTICATION_FAILED', detail });
  ctx.destroy(sa, 'authentication failed');
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
  const fail = (detail: string) => {
    ctx.emit({ ev: 'failure', sa: ctx.ref(sa), conn: conn.name, reason: 'AUTHENTICATION_FAILED', detail });
    reply([notify(Notify.AUTHENTICATION_FAILED)]);
    ctx.destroy(sa, 'authentication failed');
  };
  if (!idMatches(conn.remoteId, idi)) {
    return fail(
      `AUTHENTICATION_FAILED: the peer identified as ${sa.remoteIdText}, but remote.id is ${idText(conn.remoteId!.type, conn.remoteId!.data)}`,
    );
  }
  if (authp.method !== AuthMethod.SHARED_KEY_MIC) {
    return fail(
      `AUTHENTICATION_FAILED: the peer authenticated with method ${authp.method}, we only accept pre-shared keys`,
    );
  }
  const expect = pskAuthData(
    sa.suite!.prf,
    conn.psk,
    sa.initRequest!,
    sa.nonceR,
    sa.keys!.skPi,
    peerIdBody(idi),
  );
  if (!equalBytes(expect, authp.data)) {
    return fail(
      `AUTHENTICATION_FAILED: the peer's AUTH does not verify with our pre-shared key — the PSK (or the peer's ID) differs (our ID ${sa.localIdText}, peer ID ${sa.remoteIdText})`,
    );
  }
  if (findNotify(ps, Notify.INITIAL_CONTACT)) {
    // RFC 7296 §2.4: the peer has no other SAs with us; delete what we still hold for it.
    for (const o of ctx.all()) {
      if (o !== sa && o.conn === conn && o.remoteIdText === sa.remoteIdText && o.state !== 'DESTROYED') {
        ctx.log('info', 'ike', `INITIAL_CONTACT: deleting stale IKE_SA ${o.uid} of the same peer`, sa);
        ctx.destroy(o, 'replaced after INITIAL_CONTACT');
      }
    }
  }
  const myAuth = pskAuthData(
    sa.suite!.prf,
    conn.psk,
    sa.initResponse!,
    sa.nonceI,
    sa.keys!.skPr,
    idBody(me.type, me.data),
  );
  const out: Payload[] = [id(PayloadType.IDr, me.type, me.data), auth(AuthMethod.SHARED_KEY_MIC, myAuth)];
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
  child.onInstalled = (error) => {
    ctx.childInstalled(sa, child, error);
    if (error) return reply([...out, notify(Notify.NO_PROPOSAL_CHOSEN)]);
    reply([
      ...out,
      saPayload([espSuiteProposal(sel.num, sel.suite, u32(spiIn))]),
      ts(PayloadType.TSi, remoteTs.map(tsToWire)),
      ts(PayloadType.TSr, localTs.map(tsToWire)),
    ]);
  };
  installChild(ctx, sa, child, childKeysFor(sa, sel.suite, false, sa.nonceI, sa.nonceR));
}
