// IKE_SA_INIT (RFC 7296 §1.2, §2.6 cookies, §2.10 nonces, §2.23 NAT detection), both roles.
//
//   Initiator                         Responder
//   HDR, SAi1, KEi, Ni, N(NATD_S), N(NATD_D), [N(FRAG_SUP)]  -->
//                      <--  HDR, SAr1, KEr, Nr, N(NATD_S), N(NATD_D), [N(FRAG_SUP)]
import { concat, equalBytes } from '../../common/bytes.js';
import { IkeProtocolError } from '../../common/errors.js';
import type { ConnectionConfig } from '../config.js';
import { createKeyExchange, publicKeyLength } from '../crypto/dh.js';
import { deriveIkeKeys, natdHash } from '../crypto/keymat.js';
import { createSkCipher } from '../crypto/sk.js';
import type { Endpoint } from '../ports.js';
import type { IkeSa } from '../sa/ike-sa.js';
import {
  acceptIkeResponse,
  describeWireProposals,
  ikeSuiteProposal,
  selectIke,
  toWireProposals,
} from '../sa/proposal.js';
import { formatProposal } from '../sa/proposal-syntax.js';
import { ExchangeType, Notify, notifyName, PayloadType, ProtocolId } from '../wire/constants.js';
import type { IkeMessage, Payload } from '../wire/types.js';
import type { EngineCtx } from './context.js';
import {
  errorNotify,
  find,
  findNotify,
  ke,
  nonce,
  notifies,
  notify,
  sa as saPayload,
  u16,
} from './payloads.js';
import { initRequestPayloads, initResponsePayloads, noteInitResponse } from './pubkey-auth.js';

/** RFC 7296 §2.10: at least half the PRF key size, and >= 128 bits. 32 bytes covers every PRF we offer. */
export const NONCE_LEN = 32;
/** How often we follow INVALID_KE_PAYLOAD / COOKIE before giving up. */
const MAX_INIT_RETRIES = 3;

/**
 * Both nonces, copied into one ArrayBuffer: they live as long as the IKE_SA, and a typed array
 * with its own ArrayBuffer costs ~0.5 KiB of RSS (the received one would also keep the whole
 * IKE_SA_INIT datagram's buffer alive).
 */
function nonceViews(ni: Uint8Array, nr: Uint8Array): [Uint8Array, Uint8Array] {
  const both = concat(ni, nr);
  return [both.subarray(0, ni.length), both.subarray(ni.length)];
}
function natdPayloads(ctx: EngineCtx, sa: IkeSa, spiR: bigint, forceEncap: boolean): Payload[] {
  const src = forceEncap ? ctx.random.bytes(20) : natdHash(sa.spiI, spiR, sa.local.address, sa.local.port);
  const dst = natdHash(sa.spiI, spiR, sa.remote.address, sa.remote.port);
  return [notify(Notify.NAT_DETECTION_SOURCE_IP, src), notify(Notify.NAT_DETECTION_DESTINATION_IP, dst)];
}

/**
 * NAT detection from the peer's NATD notifies. `from` is where the message came from, `to` where it
 * arrived. Returns undefined if the peer sent no NATD notifies (no NAT-T support).
 */
function detectNat(ps: Payload[], spiI: bigint, spiR: bigint, from: Endpoint, to: Endpoint) {
  const srcs = notifies(ps).filter((n) => n.notifyType === Notify.NAT_DETECTION_SOURCE_IP);
  const dst = findNotify(ps, Notify.NAT_DETECTION_DESTINATION_IP);
  if (srcs.length === 0 || !dst) return undefined;
  const expectSrc = natdHash(spiI, spiR, from.address, from.port);
  const expectDst = natdHash(spiI, spiR, to.address, to.port);
  return {
    natRemote: !srcs.some((n) => equalBytes(n.data, expectSrc)),
    natLocal: !equalBytes(dst.data, expectDst),
  };
}

function setupKeys(sa: IkeSa, shared: Uint8Array): void {
  const s = sa.suite!;
  const keys = deriveIkeKeys(s, sa.nonceI, sa.nonceR, shared, sa.spiI, sa.spiR);
  sa.keys = keys;
  const i = createSkCipher(s.encr, s.integ, keys.skEi, keys.skAi);
  const r = createSkCipher(s.encr, s.integ, keys.skEr, keys.skAr);
  sa.cipherOut = sa.initiator ? i : r;
  sa.cipherIn = sa.initiator ? r : i;
}

// ------------------------------------------------------------------------------------ initiator

export function sendInitRequest(
  ctx: EngineCtx,
  sa: IkeSa,
  group: number,
  onEstablishedInit: (sa: IkeSa) => void,
): void {
  const conn = sa.conn;
  // A COOKIE retry repeats the same request (RFC 7296 §2.6: the cookie covers Ni); a new group needs a new KE.
  if (!sa.ke || sa.ke.group !== group) sa.ke = createKeyExchange(group, ctx.random);
  if (sa.nonceI.length === 0) sa.nonceI = ctx.random.bytes(NONCE_LEN);
  const payloads: Payload[] = [];
  if (sa.cookie) payloads.push(notify(Notify.COOKIE, sa.cookie));
  payloads.push(saPayload(toWireProposals(conn.ikeProposals, ProtocolId.IKE, new Uint8Array(0))));
  payloads.push(ke(group, sa.ke.publicKey));
  payloads.push(nonce(sa.nonceI));
  payloads.push(...natdPayloads(ctx, sa, 0n, conn.encap));
  if (conn.fragmentation) payloads.push(notify(Notify.IKEV2_FRAGMENTATION_SUPPORTED));
  payloads.push(...initRequestPayloads(sa));
  sa.nextMsgId = 0;
  ctx.request(sa, ExchangeType.IKE_SA_INIT, payloads, {
    what: 'IKE_SA_INIT',
    onResponse: (msg, ps) => processInitResponse(ctx, sa, msg, ps, onEstablishedInit),
  });
}

function processInitResponse(
  ctx: EngineCtx,
  sa: IkeSa,
  msg: IkeMessage,
  ps: Payload[],
  next: (sa: IkeSa) => void,
): void {
  const conn = sa.conn;
  const cookie = findNotify(ps, Notify.COOKIE);
  if (cookie) {
    // RFC 7296 §2.6: repeat the request with the cookie first; the responder keeps no state.
    if (sa.keRetries++ >= MAX_INIT_RETRIES)
      return failInit(ctx, sa, 'PEER_ERROR', 'the peer keeps asking for COOKIEs');
    sa.cookie = cookie.data;
    ctx.log('info', 'ike', 'received COOKIE, repeating IKE_SA_INIT with it', sa);
    return sendInitRequest(ctx, sa, sa.ke!.group, next);
  }
  const invalidKe = findNotify(ps, Notify.INVALID_KE_PAYLOAD);
  if (invalidKe) {
    const g = invalidKe.data.length === 2 ? (invalidKe.data[0]! << 8) | invalidKe.data[1]! : -1;
    const offered = conn.ikeProposals.some((p) => p.dh.includes(g));
    if (!offered || sa.keRetries++ >= MAX_INIT_RETRIES) {
      return failInit(
        ctx,
        sa,
        'INVALID_KE_PAYLOAD',
        `the peer wants key exchange group ${g}, which we did not propose`,
      );
    }
    ctx.log('info', 'ike', `peer requested key exchange group ${g} (INVALID_KE_PAYLOAD), retrying`, sa);
    sa.cookie = undefined;
    return sendInitRequest(ctx, sa, g, next);
  }
  const err = errorNotify(ps);
  if (err) {
    const name = notifyName(err.notifyType);
    if (err.notifyType === Notify.NO_PROPOSAL_CHOSEN) {
      return failInit(
        ctx,
        sa,
        'NO_PROPOSAL_CHOSEN',
        `NO_PROPOSAL_CHOSEN: the peer accepted none of our IKE proposals [${conn.ikeProposals.map((p) => formatProposal(p)).join(', ')}] — compare with the peer's IKE proposals`,
      );
    }
    return failInit(ctx, sa, 'PEER_ERROR', `the peer answered IKE_SA_INIT with ${name}`);
  }
  const sap = find(ps, PayloadType.SA);
  const kep = find(ps, PayloadType.KE);
  const nr = find(ps, PayloadType.NONCE);
  if (!sap || !kep || !nr || msg.header.spiR === 0n) {
    return failInit(
      ctx,
      sa,
      'INVALID_SYNTAX',
      'IKE_SA_INIT response lacks SA, KE, Nonce or the responder SPI',
    );
  }
  const suite = acceptIkeResponse(sap.proposals, conn.ikeProposals);
  if (!suite) {
    return failInit(
      ctx,
      sa,
      'NO_PROPOSAL_CHOSEN',
      `the peer chose a proposal we did not offer: ${describeWireProposals(sap.proposals)}`,
    );
  }
  if (kep.group !== suite.dh || kep.group !== sa.ke!.group) {
    return failInit(
      ctx,
      sa,
      'INVALID_SYNTAX',
      `KE group ${kep.group} does not match the chosen group ${suite.dh}`,
    );
  }
  if (nr.data.length < 16 || nr.data.length > 256)
    return failInit(ctx, sa, 'INVALID_SYNTAX', 'nonce length out of range');
  sa.spiR = msg.header.spiR;
  sa.suite = suite;
  [sa.nonceI, sa.nonceR] = nonceViews(sa.nonceI, nr.data);
  let shared: Uint8Array;
  try {
    shared = sa.ke!.computeSecret(kep.data);
  } catch (e) {
    return failInit(ctx, sa, 'INVALID_SYNTAX', `invalid KE from peer: ${(e as Error).message}`);
  }
  setupKeys(sa, shared);
  const nat = detectNat(ps, sa.spiI, sa.spiR, sa.remote, sa.local);
  if (nat) {
    sa.natLocal = nat.natLocal;
    sa.natRemote = nat.natRemote;
  }
  sa.peerFragmentation = !!findNotify(ps, Notify.IKEV2_FRAGMENTATION_SUPPORTED);
  noteInitResponse(sa, ps);
  ctx.register(sa);
  // RFC 7296 §2.23: float to 4500 when a NAT is detected (or when forced), for all later messages.
  if (nat && (sa.natLocal || sa.natRemote || conn.encap)) {
    sa.local = { address: sa.local.address, port: ctx.nattPort };
    sa.remote = { address: sa.remote.address, port: ctx.nattPort };
  }
  next(sa);
}

function failInit(
  ctx: EngineCtx,
  sa: IkeSa,
  reason: 'NO_PROPOSAL_CHOSEN' | 'INVALID_KE_PAYLOAD' | 'PEER_ERROR' | 'INVALID_SYNTAX',
  detail: string,
): void {
  ctx.emit({ ev: 'failure', sa: ctx.ref(sa), conn: sa.conn.name, reason, detail });
  ctx.destroy(sa, detail);
}

// ------------------------------------------------------------------------------------ responder

export interface InitRequestResult {
  /** The new half-open SA, or undefined if we answered with an error (or not at all). */
  sa?: IkeSa;
  /** Unprotected response to send when there is no SA (errors). */
  reply?: Payload[];
}

/**
 * Process an IKE_SA_INIT request for connection `conn`. Creates the responder SA (not yet
 * registered by SPI; the caller does). Errors that the RFC answers are thrown as IkeProtocolError.
 */
export function processInitRequest(
  ctx: EngineCtx,
  conn: ConnectionConfig,
  msg: IkeMessage,
  bytes: Uint8Array,
  local: Endpoint,
  remote: Endpoint,
  sa: IkeSa,
): Payload[] {
  const ps = msg.payloads;
  const sap = find(ps, PayloadType.SA);
  const kep = find(ps, PayloadType.KE);
  const ni = find(ps, PayloadType.NONCE);
  if (!sap || !kep || !ni)
    throw new IkeProtocolError('INVALID_SYNTAX', 'IKE_SA_INIT request lacks SA, KE or Nonce');
  if (ni.data.length < 16 || ni.data.length > 256)
    throw new IkeProtocolError('INVALID_SYNTAX', 'nonce length out of range');
  const sel = selectIke(sap.proposals, conn.ikeProposals);
  if (!sel) {
    throw new IkeProtocolError(
      'NO_PROPOSAL_CHOSEN',
      `NO_PROPOSAL_CHOSEN: ours [${conn.ikeProposals.map((p) => formatProposal(p)).join(', ')}], theirs ${describeWireProposals(sap.proposals)}`,
    );
  }
  if (kep.group !== sel.suite.dh) {
    // RFC 7296 §1.3: tell the initiator which group we want; keep no state.
    throw new IkeProtocolError(
      'INVALID_KE_PAYLOAD',
      `peer sent KE for group ${kep.group}, we chose ${sel.suite.dh}`,
      u16(sel.suite.dh),
    );
  }
  if (kep.data.length !== publicKeyLength(kep.group)) {
    throw new IkeProtocolError(
      'INVALID_SYNTAX',
      `KE data of ${kep.data.length} bytes is wrong for group ${kep.group}`,
    );
  }
  sa.suite = sel.suite;
  [sa.nonceI, sa.nonceR] = nonceViews(ni.data, ctx.random.bytes(NONCE_LEN));
  sa.ke = createKeyExchange(sel.suite.dh, ctx.random);
  let shared: Uint8Array;
  try {
    shared = sa.ke.computeSecret(kep.data);
  } catch (e) {
    throw new IkeProtocolError('INVALID_SYNTAX', `invalid KE from peer: ${(e as Error).message}`);
  }
  sa.initRequest = bytes;
  const nat = detectNat(ps, sa.spiI, 0n, remote, local);
  if (nat) {
    sa.natLocal = nat.natLocal;
    sa.natRemote = nat.natRemote;
  }
  sa.peerFragmentation = !!findNotify(ps, Notify.IKEV2_FRAGMENTATION_SUPPORTED);
  setupKeys(sa, shared);
  const out: Payload[] = [
    saPayload([ikeSuiteProposal(sel.num, sel.suite)]),
    ke(sel.suite.dh, sa.ke.publicKey),
    nonce(sa.nonceR),
  ];
  if (nat) out.push(...natdPayloads(ctx, sa, sa.spiR, conn.encap));
  if (conn.fragmentation && sa.peerFragmentation) out.push(notify(Notify.IKEV2_FRAGMENTATION_SUPPORTED));
  out.push(...initResponsePayloads(sa, conn, ps));
  return out;
}
