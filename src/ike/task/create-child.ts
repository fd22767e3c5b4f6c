// CREATE_CHILD_SA (RFC 7296 §1.3): an additional CHILD_SA, a CHILD_SA rekey (§1.3.3) and an IKE_SA
// rekey (§1.3.2), both roles, with the collision rules of §2.8.1 (the SA created with the lowest
// of the four nonces is redundant and is deleted by whoever initiated it).
//
//   CHILD_SA rekey:  HDR, SK { N(REKEY_SA), SA, Ni, [KEi], TSi, TSr }  -->
//                                       <--  HDR, SK { SA, Nr, [KEr], TSi, TSr }
//   IKE_SA rekey:    HDR, SK { SA, Ni, KEi }  -->  <--  HDR, SK { SA, Nr, KEr }
//
// Make-before-break: the rekey initiator installs the new CHILD_SA (both directions) when the
// response arrives, then deletes the old one. The responder installs the new inbound SA before it
// answers, but holds the new outbound SA back until the initiator deletes the old CHILD_SA, so it
// never sends on an SA the initiator cannot decrypt yet.
import { compareBytes } from '../../common/bytes.js';
import type { ChildConfig, ProposalConfig } from '../config.js';
import { createKeyExchange, type KeyExchange, publicKeyLength } from '../crypto/dh.js';
import { deriveRekeyedIkeKeys } from '../crypto/keymat.js';
import { createSkCipher } from '../crypto/sk.js';
import { dhName } from '../crypto/suites.js';
import { childKeysFor, installChild, installOutbound, newChild } from '../sa/child-sa.js';
import type { ChildSa, IkeSa } from '../sa/ike-sa.js';
import {
  acceptEspResponse,
  acceptIkeResponse,
  allowsNoPfs,
  describeWireProposals,
  espSuiteProposal,
  ikeSuiteProposal,
  selectEsp,
  selectIke,
  toWireProposals,
} from '../sa/proposal.js';
import { formatProposal } from '../sa/proposal-syntax.js';
import { allWithin, formatTs, narrow, tsFromWire, tsToWire } from '../sa/traffic-selector.js';
import { DhGroup, ExchangeType, Notify, notifyName, PayloadType, ProtocolId } from '../wire/constants.js';
import type { IkeMessage, Payload, Proposal } from '../wire/types.js';
import type { EngineCtx } from './context.js';
import { NONCE_LEN } from './ike-init.js';
import { sendChildDelete } from './informational.js';
import {
  errorNotify,
  find,
  findNotify,
  ke,
  nonce,
  notify,
  readU32,
  sa as saPayload,
  ts,
  u16,
  u32,
} from './payloads.js';

/** How long the responder of a rekey waits for the old CHILD_SA's DELETE before switching anyway. */
export const OUTBOUND_SWITCH_TIMEOUT_MS = 10_000;
/** Retry delay after TEMPORARY_FAILURE (RFC 7296 §2.25): strongSwan waits a random 0..5 s. */
const RETRY_MAX_MS = 5_000;

function spi8(v: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, v);
  return b;
}
function readSpi8(b: Uint8Array): bigint {
  return new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0);
}

/** The lowest of the four nonces decides which of two colliding exchanges created the redundant SA. */
function lowest(a: Uint8Array[], b: Uint8Array[]): 'a' | 'b' {
  const minA = a.reduce((m, x) => (compareBytes(x, m) < 0 ? x : m));
  const minB = b.reduce((m, x) => (compareBytes(x, m) < 0 ? x : m));
  return compareBytes(minA, minB) <= 0 ? 'a' : 'b';
}

// ------------------------------------------------------------------------------------ PFS choice

/**
 * The ESP proposals of one CREATE_CHILD_SA attempt: those of ours that allow `group`, with that
 * group first and no NONE (the KE payload we send is for it), or — for DhGroup.NONE — those that
 * allow no PFS, without DH transforms.
 */
export function espAttempt(cfg: ChildConfig, group: number): ProposalConfig[] {
  return cfg.espProposals.flatMap((p) => {
    if (group === DhGroup.NONE) return allowsNoPfs(p) ? [{ ...p, dh: [] }] : [];
    if (!p.dh.includes(group)) return [];
    return [{ ...p, dh: [group, ...p.dh.filter((g) => g !== group && g !== DhGroup.NONE)] }];
  });
}

/**
 * The PFS choices (DhGroup.NONE = without PFS) for a CREATE_CHILD_SA we start, most preferred
 * first: the configuration's order, with the IKE_SA's own group first among the groups (the group
 * Libreswan uses for PFS unless told otherwise); a rekey keeps what the CHILD_SA has (`current`).
 */
export function pfsChoices(cfg: ChildConfig, ikeGroup: number | undefined, current?: number): number[] {
  const order: number[] = [];
  for (const p of cfg.espProposals)
    for (const g of p.dh.length ? p.dh : [DhGroup.NONE]) if (!order.includes(g)) order.push(g);
  const groups = order.filter((g) => g !== DhGroup.NONE);
  if (ikeGroup !== undefined && groups.includes(ikeGroup)) {
    groups.splice(groups.indexOf(ikeGroup), 1);
    groups.unshift(ikeGroup);
  }
  const none = order.includes(DhGroup.NONE);
  const out =
    order[0] === DhGroup.NONE ? [DhGroup.NONE, ...groups] : [...groups, ...(none ? [DhGroup.NONE] : [])];
  if (current !== undefined && out.includes(current)) {
    out.splice(out.indexOf(current), 1);
    out.unshift(current);
  }
  return out;
}

/**
 * After the peer refused an attempt: the next PFS choice, or undefined. NO_PROPOSAL_CHOSEN flips
 * once between with and without PFS (when the configuration allows both); INVALID_KE_PAYLOAD
 * names the group the peer wants, tried if we allow it and have not yet.
 */
function nextPfsChoice(
  choices: number[],
  tried: number[],
  notifyType: number,
  data: Uint8Array,
): number | undefined {
  const last = tried[tried.length - 1];
  if (notifyType === Notify.INVALID_KE_PAYLOAD && data.length >= 2) {
    const want = (data[0]! << 8) | data[1]!;
    return want !== DhGroup.NONE && choices.includes(want) && !tried.includes(want) ? want : undefined;
  }
  if (notifyType !== Notify.NO_PROPOSAL_CHOSEN || last === undefined) return undefined;
  const flipped = tried.some((g) => (g === DhGroup.NONE) !== (last === DhGroup.NONE));
  if (flipped) return undefined;
  return choices.find((g) => (g === DhGroup.NONE) !== (last === DhGroup.NONE));
}

function pfsText(g: number): string {
  return g === DhGroup.NONE ? 'without PFS' : `with PFS (${dhName(g)})`;
}

/** Why a CREATE_CHILD_SA we started ended in NO_PROPOSAL_CHOSEN, and what to check. */
function refusedDetail(cfg: ChildConfig, tried: number[]): { detail: string; hint?: string } {
  const choices = pfsChoices(cfg, undefined);
  const detail = `tried ${tried.map(pfsText).join(', then ')}; ours [${cfg.espProposals.map((p) => formatProposal(p, 'esp')).join(', ')}]`;
  if (!choices.includes(DhGroup.NONE))
    return {
      detail,
      hint: 'our esp_proposals require PFS: if the peer does not do PFS, add "modpnone" beside the groups (PFS optional) or compare the groups with the peer\'s',
    };
  if (choices.every((g) => g === DhGroup.NONE))
    return {
      detail,
      hint: 'our esp_proposals have no PFS group: if the peer requires PFS (Libreswan does by default), add its group, e.g. aes256gcm16-modp3072, or "default" (PFS optional)',
    };
  return { detail };
}

function retryLater(ctx: EngineCtx, sa: IkeSa, what: string): void {
  ctx.arm(sa, what, ctx.now + Math.round(ctx.random.float() * RETRY_MAX_MS) + 500);
}

/** SA, Ni, [KEi], TSi, TSr of a CHILD_SA request; with N(REKEY_SA) first when it rekeys `rekeySpi`. */
function childRequest(
  proposals: ProposalConfig[],
  spiIn: number,
  ni: Uint8Array,
  exchangeKe: KeyExchange | undefined,
  localTs: ChildSa['localTs'],
  remoteTs: ChildSa['remoteTs'],
  rekeySpi?: number,
): Payload[] {
  const payloads: Payload[] = [];
  if (rekeySpi !== undefined)
    payloads.push(notify(Notify.REKEY_SA, new Uint8Array(0), ProtocolId.ESP, u32(rekeySpi)));
  payloads.push(saPayload(toWireProposals(proposals, ProtocolId.ESP, u32(spiIn))), nonce(ni));
  if (exchangeKe) payloads.push(ke(exchangeKe.group, exchangeKe.publicKey));
  payloads.push(ts(PayloadType.TSi, localTs.map(tsToWire)), ts(PayloadType.TSr, remoteTs.map(tsToWire)));
  return payloads;
}

// ------------------------------------------------------------------------------------ CHILD rekey, initiator

/**
 * A new inbound SPI for a CREATE_CHILD_SA request, remembered on the IKE_SA until the answer comes:
 * if the IKE_SA goes first (deleted, timed out), destroy() frees it.
 */
function offerSpi(ctx: EngineCtx, sa: IkeSa): number {
  const spi = ctx.newEspSpi();
  sa.offeredChildSpis ??= new Set();
  sa.offeredChildSpis.add(spi);
  return spi;
}

export function rekeyChild(ctx: EngineCtx, sa: IkeSa, old: ChildSa, tried: number[] = []): void {
  if (sa.state !== 'ESTABLISHED' || old.state !== 'INSTALLED' || old.rekey) return;
  const cfg = old.cfg;
  // The first attempt keeps the CHILD_SA's own PFS choice; later ones come from nextPfsChoice.
  const choices = pfsChoices(cfg, sa.suite?.dh, old.viaAuth ? undefined : old.suite.dh);
  const group = tried.length ? tried[tried.length - 1]! : choices[0]!;
  if (!tried.length) tried = [group];
  const proposals = espAttempt(cfg, group);
  const exchangeKe = group ? createKeyExchange(group, ctx.random) : undefined;
  const ni = ctx.random.bytes(NONCE_LEN);
  const spiIn = offerSpi(ctx, sa);
  old.rekey = { nonceI: ni };
  old.state = 'REKEYING';
  ctx.emit({
    ev: 'child-state',
    sa: ctx.ref(sa),
    child: cfg.name,
    uid: old.uid,
    state: 'REKEYING',
    spiIn: old.spiIn,
    spiOut: old.spiOut,
  });
  const payloads = childRequest(proposals, spiIn, ni, exchangeKe, old.localTs, old.remoteTs, old.spiIn);
  ctx.request(sa, ExchangeType.CREATE_CHILD_SA, payloads, {
    what: `CREATE_CHILD_SA (rekey ${cfg.name})`,
    onResponse: (_m, ps) => {
      sa.offeredChildSpis?.delete(spiIn);
      rekeyChildResponse(ctx, sa, old, spiIn, ni, exchangeKe, ps, proposals, tried);
    },
  });
}

function rekeyChildResponse(
  ctx: EngineCtx,
  sa: IkeSa,
  old: ChildSa,
  spiIn: number,
  ni: Uint8Array,
  exchangeKe: KeyExchange | undefined,
  ps: Payload[],
  proposals: ProposalConfig[],
  tried: number[],
): void {
  const cfg = old.cfg;
  const abort = (why: string, retry: boolean) => {
    ctx.log('info', 'child', `rekeying CHILD_SA ${cfg.name} failed: ${why}`, sa);
    old.rekey = undefined;
    if (old.state === 'REKEYING') old.state = 'INSTALLED';
    ctx.releaseEspSpi(spiIn);
    if (retry && old.state === 'INSTALLED') retryLater(ctx, sa, `rekey-child:${old.uid}`);
  };
  const err = errorNotify(ps);
  if (err) {
    const next = nextPfsChoice(pfsChoices(cfg, sa.suite?.dh), tried, err.notifyType, err.data);
    if (next !== undefined) {
      old.rekey = undefined;
      old.state = 'INSTALLED';
      ctx.releaseEspSpi(spiIn);
      ctx.log(
        'info',
        'child',
        `rekeying CHILD_SA ${cfg.name}: the peer answered ${notifyName(err.notifyType)} to our proposals ${pfsText(tried[tried.length - 1]!)}; retrying ${pfsText(next)}`,
        sa,
      );
      return rekeyChild(ctx, sa, old, [...tried, next]);
    }
    if (err.notifyType === Notify.INVALID_KE_PAYLOAD)
      return abort('the peer wants a PFS group we do not allow', false);
    if (err.notifyType === Notify.TEMPORARY_FAILURE)
      return abort('the peer is busy (TEMPORARY_FAILURE), retrying', true);
    if (err.notifyType === Notify.CHILD_SA_NOT_FOUND) {
      abort('the peer does not know the CHILD_SA (CHILD_SA_NOT_FOUND)', false);
      return ctx.removeChild(sa, old, 'unknown to the peer');
    }
    const refused = err.notifyType === Notify.NO_PROPOSAL_CHOSEN ? refusedDetail(cfg, tried) : undefined;
    ctx.emit({
      ev: 'failure',
      sa: ctx.ref(sa),
      conn: sa.conn.name,
      reason:
        err.notifyType === Notify.NO_PROPOSAL_CHOSEN
          ? 'NO_PROPOSAL_CHOSEN'
          : err.notifyType === Notify.TS_UNACCEPTABLE
            ? 'TS_UNACCEPTABLE'
            : 'PEER_ERROR',
      detail: `rekeying CHILD_SA ${cfg.name}: the peer answered ${notifyName(err.notifyType)}${refused ? ` (${refused.detail})` : ''}`,
      ...(refused?.hint ? { hint: refused.hint } : {}),
    });
    return abort(notifyName(err.notifyType), false);
  }
  const sap = find(ps, PayloadType.SA);
  const nr = find(ps, PayloadType.NONCE);
  const kep = find(ps, PayloadType.KE);
  const tsi = find(ps, PayloadType.TSi);
  const tsr = find(ps, PayloadType.TSr);
  const acc = sap ? acceptEspResponse(sap.proposals, proposals, false, exchangeKe?.group) : undefined;
  if (!acc || !nr || !tsi || !tsr)
    return abort('the response lacks SA, Nonce or TS, or chose a proposal we did not offer', false);
  let shared: Uint8Array | undefined;
  if (acc.suite.dh) {
    if (!exchangeKe || !kep || kep.group !== exchangeKe.group)
      return abort('PFS key exchange missing or for another group', false);
    try {
      shared = exchangeKe.computeSecret(kep.data);
    } catch (e) {
      return abort(`invalid KE: ${(e as Error).message}`, false);
    }
  }
  const localTs = tsi.selectors.map(tsFromWire);
  const remoteTs = tsr.selectors.map(tsFromWire);
  if (!allWithin(localTs, cfg.localTs) || !allWithin(remoteTs, cfg.remoteTs))
    return abort('the peer narrowed outside our selectors', false);
  const child = newChild(ctx, sa, cfg, acc.suite, spiIn, readU32(acc.spi), localTs, remoteTs);
  child.replaces = old;
  old.rekey = { nonceI: ni, nonceR: nr.data, newChild: child };
  sa.children.push(child);
  const oldDeletedMeanwhile = old.state === 'DELETED';
  child.onInstalled = (error) => {
    ctx.childInstalled(sa, child, error);
    if (error) return;
    if (oldDeletedMeanwhile || old.state === 'DELETED') {
      // Rekey collided with the peer's DELETE of the old CHILD_SA: the new one replaces nothing.
      ctx.log(
        'info',
        'child',
        `CHILD_SA ${cfg.name} was deleted by the peer while we rekeyed it; closing the new one`,
        sa,
      );
      return sendChildDelete(ctx, sa, child);
    }
    const peer = old.rekeyedByPeer;
    if (peer) {
      // Both ends rekeyed the same CHILD_SA (RFC 7296 §2.8.1).
      const redundant = lowest([ni, nr.data], [peer.nonceI, peer.nonceR]) === 'a' ? 'ours' : 'theirs';
      ctx.emit({
        ev: 'log',
        level: 'info',
        subsys: 'child',
        sa: ctx.ref(sa),
        msg: `CHILD_SA rekey collision for ${cfg.name}: ${redundant === 'ours' ? 'our' : "the peer's"} new CHILD_SA is redundant`,
        fields: { collision: 'child-rekey' },
      });
      ctx.emit({ ev: 'rekey-collision', sa: ctx.ref(sa), what: 'child', child: cfg.name });
      if (redundant === 'ours') {
        // The peer (winner) deletes the old CHILD_SA once it has installed its new one; its DELETE
        // switches us to the peer's new CHILD_SA (see processInformationalRequest). We close ours.
        child.replaces = undefined;
        return sendChildDelete(ctx, sa, child);
      }
      // The peer closes its redundant CHILD_SA; we delete the old one as usual.
    }
    old.state = 'REKEYED';
    sendChildDelete(ctx, sa, old);
  };
  installChild(ctx, sa, child, childKeysFor(sa, acc.suite, true, ni, nr.data, shared));
}

// ------------------------------------------------------------------------------------ CHILD_SA, responder

export function processCreateChildRequest(
  ctx: EngineCtx,
  sa: IkeSa,
  req: IkeMessage,
  reqBytes: Uint8Array,
  ps: Payload[],
): void {
  const reply = (payloads: Payload[]) => ctx.respond(sa, req, reqBytes, payloads);
  const sap = find(ps, PayloadType.SA);
  const ni = find(ps, PayloadType.NONCE);
  const kep = find(ps, PayloadType.KE);
  const tsi = find(ps, PayloadType.TSi);
  const tsr = find(ps, PayloadType.TSr);
  if (!sap || !ni) return reply([notify(Notify.INVALID_SYNTAX)]);
  if (!tsi || !tsr) return processIkeRekeyRequest(ctx, sa, req, reqBytes, ps);
  if (sa.state !== 'ESTABLISHED') return reply([notify(Notify.TEMPORARY_FAILURE)]); // RFC 7296 §2.25

  const rekeyN = findNotify(ps, Notify.REKEY_SA);
  let old: ChildSa | undefined;
  let cfg: ChildConfig | undefined;
  const theirI = tsi.selectors.map(tsFromWire);
  const theirR = tsr.selectors.map(tsFromWire);
  let localTs = theirR;
  let remoteTs = theirI;
  if (rekeyN) {
    const spi = rekeyN.spi.length === 4 ? readU32(rekeyN.spi) : -1;
    old = sa.children.find((c) => c.spiOut === spi && c.state !== 'DELETED');
    if (!old)
      return reply([notify(Notify.CHILD_SA_NOT_FOUND, new Uint8Array(0), ProtocolId.ESP, rekeyN.spi)]);
    if (old.state === 'DELETING' || old.state === 'REKEYED') return reply([notify(Notify.TEMPORARY_FAILURE)]);
    cfg = old.cfg;
    remoteTs = narrow(theirI, cfg.remoteTs);
    localTs = narrow(theirR, cfg.localTs);
  } else {
    for (const c of sa.conn.children) {
      remoteTs = narrow(theirI, c.remoteTs);
      localTs = narrow(theirR, c.localTs);
      if (remoteTs.length && localTs.length) {
        cfg = c;
        break;
      }
    }
  }
  if (!cfg || !remoteTs.length || !localTs.length) {
    ctx.emit({
      ev: 'failure',
      sa: ctx.ref(sa),
      conn: sa.conn.name,
      reason: 'TS_UNACCEPTABLE',
      detail: `TS_UNACCEPTABLE (CREATE_CHILD_SA): theirs ${theirI.map(formatTs).join(',')} === ${theirR.map(formatTs).join(',')}`,
    });
    return reply([notify(Notify.TS_UNACCEPTABLE)]);
  }
  const sel = selectEsp(sap.proposals, cfg.espProposals, kep ? { keGroup: kep.group } : {});
  if (!sel) {
    // Would the algorithms agree if PFS were left out? Then PFS is the mismatch: say so.
    const pfsOnly = selectEsp(sap.proposals, cfg.espProposals, { ignoreDh: true }) !== undefined;
    const theirPfs = kep ? `with PFS (KE ${dhName(kep.group)})` : 'without PFS';
    ctx.emit({
      ev: 'failure',
      sa: ctx.ref(sa),
      conn: sa.conn.name,
      reason: 'NO_PROPOSAL_CHOSEN',
      detail: `NO_PROPOSAL_CHOSEN (CREATE_CHILD_SA)${pfsOnly ? `: PFS mismatch, the peer proposes ${theirPfs}` : ''}: ours [${cfg.espProposals.map((p) => formatProposal(p, 'esp')).join(', ')}], theirs ${describeWireProposals(sap.proposals)}`,
      ...(pfsOnly
        ? {
            hint: kep
              ? `the peer requires PFS and our esp_proposals do not allow ${dhName(kep.group)}: add its group to esp_proposals (e.g. aes256gcm16-modp3072), or use "default", which accepts PFS when the peer offers it`
              : 'our esp_proposals require PFS and the peer proposes none: add "modpnone" beside the groups to make PFS optional, or enable PFS on the peer',
          }
        : {}),
    });
    return reply([notify(Notify.NO_PROPOSAL_CHOSEN)]);
  }
  // The peer picks our outbound SPI. One its other CHILD_SAs towards us still use would collide in
  // the kernel (SAs are keyed by destination and SPI) — for a rekey only when the old CHILD_SA is
  // deleted and the new outbound SA goes in: refuse it now, as a CHILD_SA we cannot install.
  const spiOut = readU32(sel.spi);
  const inUse = ctx
    .all()
    .some(
      (s) =>
        s.remote.address === sa.remote.address &&
        s.children.some((c) => c.spiOut === spiOut && c.state !== 'DELETED'),
    );
  if (inUse) {
    ctx.emit({
      ev: 'failure',
      sa: ctx.ref(sa),
      conn: sa.conn.name,
      reason: 'PEER_ERROR',
      detail: `CREATE_CHILD_SA: the peer's SPI ${spiOut.toString(16).padStart(8, '0')} is already used by another of its CHILD_SAs`,
    });
    return reply([notify(Notify.NO_PROPOSAL_CHOSEN)]);
  }
  let shared: Uint8Array | undefined;
  let ourKe: KeyExchange | undefined;
  if (sel.suite.dh) {
    if (!kep || kep.group !== sel.suite.dh)
      return reply([notify(Notify.INVALID_KE_PAYLOAD, u16(sel.suite.dh))]);
    ourKe = createKeyExchange(sel.suite.dh, ctx.random);
    try {
      shared = ourKe.computeSecret(kep.data);
    } catch {
      return reply([notify(Notify.INVALID_SYNTAX)]);
    }
  }
  const nr = ctx.random.bytes(NONCE_LEN);
  const spiIn = ctx.newEspSpi();
  const child = newChild(ctx, sa, cfg, sel.suite, spiIn, spiOut, localTs, remoteTs);
  if (old) {
    child.replaces = old;
    old.rekeyedByPeer = { nonceI: ni.data, nonceR: nr, newChild: child };
  }
  sa.children.push(child);
  child.onInstalled = (error) => {
    ctx.childInstalled(sa, child, error);
    if (error) return reply([notify(Notify.NO_PROPOSAL_CHOSEN)]);
    const out: Payload[] = [saPayload([espSuiteProposal(sel.num, sel.suite, u32(spiIn))]), nonce(nr)];
    if (ourKe) out.push(ke(ourKe.group, ourKe.publicKey));
    out.push(ts(PayloadType.TSi, remoteTs.map(tsToWire)), ts(PayloadType.TSr, localTs.map(tsToWire)));
    reply(out);
    if (old) ctx.arm(sa, `outbound:${child.uid}`, ctx.now + OUTBOUND_SWITCH_TIMEOUT_MS);
  };
  installChild(ctx, sa, child, childKeysFor(sa, sel.suite, false, ni.data, nr, shared), { outbound: !old });
}

/** The responder's outbound switch timer: the initiator never deleted the old CHILD_SA. */
export function outboundTimeout(ctx: EngineCtx, sa: IkeSa, child: ChildSa): void {
  if (child.pendingOutbound && child.state === 'INSTALLED') {
    ctx.log(
      'info',
      'child',
      `no DELETE for the ${child.reauthOf ? 'CHILD_SA the reauthentication replaces' : 'rekeyed CHILD_SA'} ${child.cfg.name} arrived; using the new outbound SA`,
      sa,
    );
    installOutbound(ctx, sa, child);
  }
}

// ------------------------------------------------------------------------------------ new CHILD_SA, initiator

/** Create an additional CHILD_SA on an established IKE_SA (e.g. a second child, or after a failure). */
export function createChild(ctx: EngineCtx, sa: IkeSa, cfg: ChildConfig, tried: number[] = []): void {
  if (sa.state !== 'ESTABLISHED') return;
  const group = tried.length ? tried[tried.length - 1]! : pfsChoices(cfg, sa.suite?.dh)[0]!;
  if (!tried.length) tried = [group];
  const proposals = espAttempt(cfg, group);
  const exchangeKe = group ? createKeyExchange(group, ctx.random) : undefined;
  const ni = ctx.random.bytes(NONCE_LEN);
  const spiIn = offerSpi(ctx, sa);
  const payloads = childRequest(proposals, spiIn, ni, exchangeKe, cfg.localTs, cfg.remoteTs);
  ctx.request(sa, ExchangeType.CREATE_CHILD_SA, payloads, {
    what: `CREATE_CHILD_SA (${cfg.name})`,
    onResponse: (_m, ps) => {
      sa.offeredChildSpis?.delete(spiIn);
      const err = errorNotify(ps);
      const sap = find(ps, PayloadType.SA);
      const nr = find(ps, PayloadType.NONCE);
      const kep = find(ps, PayloadType.KE);
      const tsi = find(ps, PayloadType.TSi);
      const tsr = find(ps, PayloadType.TSr);
      if (err) {
        const next = nextPfsChoice(pfsChoices(cfg, sa.suite?.dh), tried, err.notifyType, err.data);
        if (next !== undefined) {
          ctx.releaseEspSpi(spiIn);
          ctx.log(
            'info',
            'child',
            `creating CHILD_SA ${cfg.name}: the peer answered ${notifyName(err.notifyType)} to our proposals ${pfsText(tried[tried.length - 1]!)}; retrying ${pfsText(next)}`,
            sa,
          );
          return createChild(ctx, sa, cfg, [...tried, next]);
        }
      }
      const acc = sap ? acceptEspResponse(sap.proposals, proposals, false, exchangeKe?.group) : undefined;
      const localTs = tsi?.selectors.map(tsFromWire) ?? [];
      const remoteTs = tsr?.selectors.map(tsFromWire) ?? [];
      let shared: Uint8Array | undefined;
      let problem = err
        ? `the peer answered ${notifyName(err.notifyType)}`
        : !acc || !nr
          ? 'no acceptable SA/Nonce in the response'
          : '';
      if (!problem && !(allWithin(localTs, cfg.localTs) && allWithin(remoteTs, cfg.remoteTs)))
        problem = 'selectors outside ours';
      if (!problem && acc?.suite.dh) {
        try {
          if (!kep || !exchangeKe || kep.group !== exchangeKe.group) throw new Error('PFS KE missing');
          shared = exchangeKe.computeSecret(kep.data);
        } catch (e) {
          problem = (e as Error).message;
        }
      }
      if (problem) {
        ctx.releaseEspSpi(spiIn);
        const refused = err?.notifyType === Notify.NO_PROPOSAL_CHOSEN ? refusedDetail(cfg, tried) : undefined;
        ctx.emit({
          ev: 'failure',
          sa: ctx.ref(sa),
          conn: sa.conn.name,
          reason:
            err?.notifyType === Notify.TS_UNACCEPTABLE
              ? 'TS_UNACCEPTABLE'
              : err?.notifyType === Notify.NO_PROPOSAL_CHOSEN
                ? 'NO_PROPOSAL_CHOSEN'
                : 'PEER_ERROR',
          detail: `creating CHILD_SA ${cfg.name} failed: ${problem}${refused ? ` (${refused.detail})` : ''}`,
          ...(refused?.hint ? { hint: refused.hint } : {}),
        });
        return;
      }
      const child = newChild(ctx, sa, cfg, acc!.suite, spiIn, readU32(acc!.spi), localTs, remoteTs);
      sa.children.push(child);
      child.onInstalled = (error) => ctx.childInstalled(sa, child, error);
      installChild(ctx, sa, child, childKeysFor(sa, acc!.suite, true, ni, nr!.data, shared));
    },
  });
}

// ------------------------------------------------------------------------------------ IKE rekey

function ikeProposalsWithSpi(sa: IkeSa, spi: bigint): Proposal[] {
  return toWireProposals(sa.conn.ikeProposals, ProtocolId.IKE, spi8(spi));
}

function keysForRekeyedSa(old: IkeSa, n: IkeSa, shared: Uint8Array): void {
  const s = n.suite!;
  const keys = deriveRekeyedIkeKeys(
    old.suite!.prf,
    old.keys!.skD,
    s,
    shared,
    n.nonceI,
    n.nonceR,
    n.spiI,
    n.spiR,
  );
  n.keys = keys;
  const i = createSkCipher(s.encr, s.integ, keys.skEi, keys.skAi);
  const r = createSkCipher(s.encr, s.integ, keys.skEr, keys.skAr);
  n.cipherOut = n.initiator ? i : r;
  n.cipherIn = n.initiator ? r : i;
}

export function rekeyIke(ctx: EngineCtx, sa: IkeSa): void {
  if (sa.state !== 'ESTABLISHED' || sa.ikeRekey) return;
  const group = sa.suite!.dh;
  const exchangeKe = createKeyExchange(group, ctx.random);
  const ni = ctx.random.bytes(NONCE_LEN);
  const spi = ctx.newIkeSpi();
  sa.ikeRekey = { nonceI: ni, ke: exchangeKe, spi };
  sa.state = 'REKEYING';
  ctx.emit({ ev: 'ike-state', sa: ctx.ref(sa), state: 'REKEYING', initiator: sa.initiator });
  ctx.request(
    sa,
    ExchangeType.CREATE_CHILD_SA,
    [saPayload(ikeProposalsWithSpi(sa, spi)), nonce(ni), ke(group, exchangeKe.publicKey)],
    {
      what: 'CREATE_CHILD_SA (rekey IKE_SA)',
      onResponse: (_m, ps) => rekeyIkeResponse(ctx, sa, ps),
    },
  );
}

function rekeyIkeResponse(ctx: EngineCtx, sa: IkeSa, ps: Payload[]): void {
  const r = sa.ikeRekey!;
  const abort = (why: string, retry: boolean) => {
    ctx.log('info', 'ike', `rekeying IKE_SA failed: ${why}`, sa);
    sa.ikeRekey = undefined;
    if (sa.state === 'REKEYING') sa.state = 'ESTABLISHED';
    if (retry && sa.state === 'ESTABLISHED') retryLater(ctx, sa, 'rekey-ike');
  };
  if (sa.state === 'DELETING' || sa.state === 'DESTROYED' || sa.state === 'REKEYED')
    return abort('the IKE_SA was replaced or deleted meanwhile', false);
  const err = errorNotify(ps);
  if (err)
    return abort(
      `the peer answered ${notifyName(err.notifyType)}`,
      err.notifyType === Notify.TEMPORARY_FAILURE || err.notifyType === Notify.INVALID_KE_PAYLOAD,
    );
  const sap = find(ps, PayloadType.SA);
  const nr = find(ps, PayloadType.NONCE);
  const kep = find(ps, PayloadType.KE);
  const suite = sap ? acceptIkeResponse(sap.proposals, sa.conn.ikeProposals) : undefined;
  const peerSpi = sap?.proposals[0]?.spi;
  if (
    !suite ||
    !nr ||
    !kep ||
    !peerSpi ||
    peerSpi.length !== 8 ||
    kep.group !== r.ke.group ||
    suite.dh !== r.ke.group
  ) {
    return abort('the response lacks SA/Nonce/KE or does not match our proposal', false);
  }
  let shared: Uint8Array;
  try {
    shared = r.ke.computeSecret(kep.data);
  } catch (e) {
    return abort(`invalid KE: ${(e as Error).message}`, false);
  }
  const n = ctx.cloneSa(sa, true);
  n.rekeyedFrom = sa.uid;
  n.predecessor = sa;
  n.spiI = r.spi;
  n.spiR = readSpi8(peerSpi);
  n.suite = suite;
  n.nonceI = r.nonceI;
  n.nonceR = nr.data;
  keysForRekeyedSa(sa, n, shared);
  r.nonceR = nr.data;
  r.newSa = n;
  ctx.register(n);
  const peer = sa.ikeRekeyedByPeer;
  if (peer) {
    // Both ends rekeyed the IKE_SA (RFC 7296 §2.8.2): the SA with the lowest nonce is redundant.
    const redundant = lowest([r.nonceI, nr.data], [peer.nonceI, peer.nonceR]) === 'a' ? 'ours' : 'theirs';
    ctx.log(
      'info',
      'ike',
      `IKE_SA rekey collision: ${redundant === 'ours' ? 'our' : "the peer's"} new IKE_SA is redundant`,
      sa,
      { collision: 'ike-rekey' },
    );
    ctx.emit({ ev: 'rekey-collision', sa: ctx.ref(sa), what: 'ike' });
    if (redundant === 'ours') {
      // The peer deletes the old IKE_SA; the CHILD_SAs already went to the peer's new IKE_SA.
      ctx.established(n);
      awaitPeerDelete(ctx, sa, 'rekeyed (the peer never deleted it)');
      return sendRedundantIkeDelete(ctx, n);
    }
    // The CHILD_SAs went to the peer's new IKE_SA — or back to the old one if the peer deleted it.
    ctx.moveChildren(peer.newSa, n);
    ctx.moveChildren(sa, n);
    awaitPeerDelete(ctx, peer.newSa, 'redundant after rekey collision (the peer never deleted it)');
  } else {
    ctx.moveChildren(sa, n);
  }
  n.rekeyedFrom = sa.uid;
  ctx.established(n);
  sa.state = 'REKEYED';
  // Delete the old IKE_SA; its CHILD_SAs now belong to the new one.
  ctx.request(
    sa,
    ExchangeType.INFORMATIONAL,
    [{ type: PayloadType.DELETE, critical: false, protocolId: ProtocolId.IKE, spiSize: 0, spis: [] }],
    {
      what: 'DELETE (rekeyed IKE_SA)',
      onResponse: () => ctx.destroy(sa, 'rekeyed'),
      onTimeout: () => ctx.destroy(sa, 'rekeyed (no answer to DELETE)'),
    },
  );
}

/** How long an IKE_SA replaced by a rekey waits for the peer's DELETE before it goes anyway (tuning). */
export const REKEYED_IKE_SA_TIMEOUT_MS = 10_000;

/**
 * An IKE_SA the peer is expected to delete (the old one after its rekey, or the redundant one of a
 * collision). If the peer's exchange never completed (a lost response), no DELETE will come: it
 * goes after a timeout, without a DELETE of our own (the peer may not even know it).
 */
function awaitPeerDelete(ctx: EngineCtx, sa: IkeSa, reason: string): void {
  sa.state = 'REKEYED';
  sa.rekeyedReason = reason;
  ctx.arm(sa, 'rekeyed-timeout', ctx.now + REKEYED_IKE_SA_TIMEOUT_MS);
}

function sendRedundantIkeDelete(ctx: EngineCtx, n: IkeSa): void {
  n.state = 'DELETING';
  ctx.request(
    n,
    ExchangeType.INFORMATIONAL,
    [{ type: PayloadType.DELETE, critical: false, protocolId: ProtocolId.IKE, spiSize: 0, spis: [] }],
    {
      what: 'DELETE (redundant IKE_SA after rekey collision)',
      onResponse: () => ctx.destroy(n, 'redundant after rekey collision'),
      onTimeout: () => ctx.destroy(n, 'redundant after rekey collision'),
    },
  );
}

function processIkeRekeyRequest(
  ctx: EngineCtx,
  sa: IkeSa,
  req: IkeMessage,
  reqBytes: Uint8Array,
  ps: Payload[],
): void {
  const reply = (payloads: Payload[]) => ctx.respond(sa, req, reqBytes, payloads);
  const sap = find(ps, PayloadType.SA)!;
  const ni = find(ps, PayloadType.NONCE)!;
  const kep = find(ps, PayloadType.KE);
  // RFC 7296 §2.25.2: an IKE_SA being rekeyed/deleted, or with CHILD_SA rekeys in flight, answers TEMPORARY_FAILURE.
  if (
    (sa.state !== 'ESTABLISHED' && sa.state !== 'REKEYING') ||
    sa.ikeRekeyedByPeer ||
    sa.children.some((c) => c.state === 'REKEYING' || c.state === 'INSTALLING')
  ) {
    return reply([notify(Notify.TEMPORARY_FAILURE)]);
  }
  const withSpi = sap.proposals.filter((p) => p.protocolId === ProtocolId.IKE && p.spi.length === 8);
  const sel = selectIke(withSpi, sa.conn.ikeProposals);
  if (!sel) {
    ctx.emit({
      ev: 'failure',
      sa: ctx.ref(sa),
      conn: sa.conn.name,
      reason: 'NO_PROPOSAL_CHOSEN',
      detail: `NO_PROPOSAL_CHOSEN (IKE rekey): theirs ${describeWireProposals(sap.proposals)}`,
    });
    return reply([notify(Notify.NO_PROPOSAL_CHOSEN)]);
  }
  if (!kep || kep.group !== sel.suite.dh || kep.data.length !== publicKeyLength(kep.group))
    return reply([notify(Notify.INVALID_KE_PAYLOAD, u16(sel.suite.dh))]);
  const ourKe = createKeyExchange(sel.suite.dh, ctx.random);
  let shared: Uint8Array;
  try {
    shared = ourKe.computeSecret(kep.data);
  } catch {
    return reply([notify(Notify.INVALID_SYNTAX)]);
  }
  const peerSpi = withSpi.find((p) => p.num === sel.num)!.spi;
  const n = ctx.cloneSa(sa, false);
  n.spiI = readSpi8(peerSpi);
  n.spiR = ctx.newIkeSpi();
  n.suite = sel.suite;
  n.nonceI = ni.data;
  n.nonceR = ctx.random.bytes(NONCE_LEN);
  keysForRekeyedSa(sa, n, shared);
  n.rekeyedFrom = sa.uid;
  n.predecessor = sa;
  ctx.register(n);
  sa.ikeRekeyedByPeer = { nonceI: ni.data, nonceR: n.nonceR, newSa: n };
  reply([
    saPayload([ikeSuiteProposal(sel.num, sel.suite, spi8(n.spiR))]),
    nonce(n.nonceR),
    ke(ourKe.group, ourKe.publicKey),
  ]);
  if (sa.ikeRekey && !sa.ikeRekey.newSa) {
    // Collision: our own rekey is still outstanding; the outcome is decided when its answer arrives.
    ctx.established(n);
    ctx.moveChildren(sa, n);
    return;
  }
  ctx.moveChildren(sa, n);
  ctx.established(n);
  awaitPeerDelete(ctx, sa, 'rekeyed (the peer never deleted it)');
}
