// Proposals: configuration -> SA payload, and selection (RFC 7296 §2.7, §3.3).
import type { ProposalConfig } from '../config.js';
import { dhName, encrName, integName, prfName } from '../crypto/suites.js';
import { DhGroup, Encr, ProtocolId, TransformAttr, TransformType } from '../wire/constants.js';
import type { Proposal, Transform } from '../wire/types.js';

export interface EncrChoice {
  id: number;
  /** 0 for algorithms whose key size is fixed (ChaCha20-Poly1305). */
  keyBits: number;
}

export interface IkeSuite {
  encr: EncrChoice;
  prf: number;
  /** Integ.NONE (0) for AEAD. */
  integ: number;
  dh: number;
}

export interface EspSuite {
  encr: EncrChoice;
  integ: number;
  esn: boolean;
  /** DhGroup.NONE (0) without PFS. */
  dh: number;
}

export const AEAD_ENCR = new Set<number>([
  Encr.AES_GCM_8,
  Encr.AES_GCM_12,
  Encr.AES_GCM_16,
  Encr.AES_CCM_8,
  Encr.AES_CCM_12,
  Encr.AES_CCM_16,
  Encr.CHACHA20_POLY1305,
]);

/** Algorithms that carry a KEY_LENGTH attribute (RFC 7296 §3.3.5). */
const VARIABLE_KEY = new Set<number>([
  Encr.AES_CBC,
  Encr.AES_CTR,
  Encr.AES_GCM_8,
  Encr.AES_GCM_12,
  Encr.AES_GCM_16,
]);

function encrTransform(e: EncrChoice): Transform {
  return {
    type: TransformType.ENCR,
    id: e.id,
    attributes: VARIABLE_KEY.has(e.id) ? [{ type: TransformAttr.KEY_LENGTH, value: e.keyBits }] : [],
  };
}

function keyBitsOf(t: Transform): number {
  for (const a of t.attributes)
    if (a.type === TransformAttr.KEY_LENGTH && typeof a.value === 'number') return a.value;
  return 0;
}

/** Fixed-key algorithms (ChaCha20-Poly1305) carry no KEY_LENGTH: only the id has to match. */
function encrMatches(e: EncrChoice, t: Transform): boolean {
  return e.id === t.id && (!VARIABLE_KEY.has(t.id) || e.keyBits === keyBitsOf(t));
}

/** SA payload proposals for our configuration. `spi` is empty for IKE_SA_INIT, 4 bytes for ESP. */
export function toWireProposals(cfg: ProposalConfig[], protocolId: number, spi: Uint8Array): Proposal[] {
  return cfg.map((p, i) => {
    const transforms: Transform[] = [];
    for (const e of p.encr) transforms.push(encrTransform(e));
    if (protocolId === ProtocolId.IKE)
      for (const id of p.prf) transforms.push({ type: TransformType.PRF, id, attributes: [] });
    for (const id of p.integ) transforms.push({ type: TransformType.INTEG, id, attributes: [] });
    for (const id of p.dh) transforms.push({ type: TransformType.DH, id, attributes: [] });
    if (protocolId === ProtocolId.ESP) {
      for (const id of p.esn.length ? p.esn : [0])
        transforms.push({ type: TransformType.ESN, id, attributes: [] });
    }
    return { num: i + 1, protocolId, spi, transforms };
  });
}

/**
 * RFC 7296 §3.3.6: a proposal with a transform type we do not understand is rejected, not
 * accepted without it. The additional key exchanges of RFC 9370 (types 6..12, strongSwan 6's
 * `keN_`) are the one kind we can still accept: when a type lists NONE (`keN_none`) the peer made
 * it optional, and we choose NONE by leaving the type out of the answer.
 */
function understood(pp: Proposal): boolean {
  const byType = new Map<number, number[]>();
  for (const t of pp.transforms) {
    if (t.type >= TransformType.ENCR && t.type <= TransformType.ESN) continue;
    byType.set(t.type, [...(byType.get(t.type) ?? []), t.id]);
  }
  for (const [type, ids] of byType) {
    const additionalKe = type >= 6 && type <= 12;
    if (!additionalKe || !ids.includes(0)) return false;
  }
  return true;
}

function pick<T>(
  peer: Transform[],
  type: number,
  accept: (t: Transform) => T | undefined,
): T | undefined | null {
  const ofType = peer.filter((t) => t.type === type);
  if (ofType.length === 0) return null; // type absent in the peer's proposal
  for (const t of ofType) {
    const v = accept(t);
    if (v !== undefined) return v;
  }
  return undefined; // present, but nothing acceptable
}

/**
 * Responder selection for IKE: the first of the peer's proposals (in the peer's order) that one of
 * our proposals fully covers. Within a proposal, the first acceptable transform of each type in the
 * peer's order wins.
 */
export function selectIke(
  peer: Proposal[],
  cfg: ProposalConfig[],
): { num: number; suite: IkeSuite } | undefined {
  for (const pp of peer) {
    if (pp.protocolId !== ProtocolId.IKE || !understood(pp)) continue;
    for (const c of cfg) {
      const encr = pick(pp.transforms, TransformType.ENCR, (t) =>
        c.encr.some((e) => encrMatches(e, t)) ? { id: t.id, keyBits: keyBitsOf(t) } : undefined,
      );
      if (!encr) continue;
      const aead = AEAD_ENCR.has(encr.id);
      const prf = pick(pp.transforms, TransformType.PRF, (t) => (c.prf.includes(t.id) ? t.id : undefined));
      if (!prf) continue;
      let integ: number | undefined | null = 0;
      if (!aead) {
        integ = pick(pp.transforms, TransformType.INTEG, (t) =>
          t.id !== 0 && c.integ.includes(t.id) ? t.id : undefined,
        );
        if (!integ) continue;
      } else if (pp.transforms.some((t) => t.type === TransformType.INTEG && t.id !== 0)) {
        continue; // AEAD with an integrity algorithm is invalid (RFC 5282 §8)
      }
      const dh = pick(pp.transforms, TransformType.DH, (t) =>
        t.id !== 0 && c.dh.includes(t.id) ? t.id : undefined,
      );
      if (!dh) continue;
      return { num: pp.num, suite: { encr, prf, integ, dh } };
    }
  }
  return undefined;
}

/** Whether an ESP proposal of ours may be negotiated without PFS (no group listed, or NONE among them). */
export function allowsNoPfs(p: ProposalConfig): boolean {
  return p.dh.length === 0 || p.dh.includes(DhGroup.NONE);
}

export interface EspSelectOptions {
  /**
   * The group of the KE payload the peer sent with its CREATE_CHILD_SA request, if any: preferred
   * when both sides allow it, so an optional-PFS configuration follows the peer's choice.
   */
  keGroup?: number;
  /** IKE_AUTH carries no KE: DH transforms in the peer's proposals are ignored (RFC 7296 §1.2). */
  ignoreDh?: boolean;
}

/**
 * Responder selection for ESP (IKE_AUTH / CREATE_CHILD_SA). Also returns the peer's SPI.
 *
 * PFS (the DH transform): a proposal of ours without groups, or with NONE (`modpnone`) among
 * them, accepts a peer proposal without PFS (no DH transform, or NONE — RFC 7296 §3.3.2 lets
 * CHILD_SA proposals list NONE beside real groups); one with groups accepts a peer proposal
 * offering one of them. When both are possible the peer's KE payload decides: its group if it
 * sent one we accept, no PFS if it sent none.
 */
export function selectEsp(
  peer: Proposal[],
  cfg: ProposalConfig[],
  opts: EspSelectOptions = {},
): { num: number; spi: Uint8Array; suite: EspSuite } | undefined {
  for (const pp of peer) {
    if (pp.protocolId !== ProtocolId.ESP || pp.spi.length !== 4 || !understood(pp)) continue;
    for (const c of cfg) {
      const encr = pick(pp.transforms, TransformType.ENCR, (t) =>
        c.encr.some((e) => encrMatches(e, t)) ? { id: t.id, keyBits: keyBitsOf(t) } : undefined,
      );
      if (!encr) continue;
      const aead = AEAD_ENCR.has(encr.id);
      let integ: number | undefined | null = 0;
      if (!aead) {
        integ = pick(pp.transforms, TransformType.INTEG, (t) =>
          t.id !== 0 && c.integ.includes(t.id) ? t.id : undefined,
        );
        if (!integ) continue;
      }
      const esnChoices = c.esn.length ? c.esn : [0];
      const esn = pick(pp.transforms, TransformType.ESN, (t) =>
        esnChoices.includes(t.id) ? t.id : undefined,
      );
      if (esn === undefined) continue;
      const dh = opts.ignoreDh ? DhGroup.NONE : selectPfs(pp, c, opts.keGroup);
      if (dh === undefined) continue;
      return { num: pp.num, spi: pp.spi, suite: { encr, integ, esn: esn === 1, dh } };
    }
  }
  return undefined;
}

/** The DH group (NONE = no PFS) for one pair of proposals, or undefined when they do not agree. */
function selectPfs(pp: Proposal, c: ProposalConfig, keGroup: number | undefined): number | undefined {
  const theirs = pp.transforms.filter((t) => t.type === TransformType.DH).map((t) => t.id);
  const ours = c.dh.filter((g) => g !== DhGroup.NONE);
  const bothAllowNone = allowsNoPfs(c) && (theirs.length === 0 || theirs.includes(DhGroup.NONE));
  if (keGroup !== undefined && keGroup !== DhGroup.NONE && ours.includes(keGroup) && theirs.includes(keGroup))
    return keGroup;
  if (bothAllowNone) return DhGroup.NONE;
  // a group both accept; if the peer's KE was for another one, the caller answers INVALID_KE_PAYLOAD
  return theirs.find((g) => g !== DhGroup.NONE && ours.includes(g));
}

/** The single-transform proposal we answer with. */
export function ikeSuiteProposal(num: number, s: IkeSuite, spi: Uint8Array = new Uint8Array(0)): Proposal {
  const transforms: Transform[] = [
    encrTransform(s.encr),
    { type: TransformType.PRF, id: s.prf, attributes: [] },
  ];
  if (s.integ) transforms.push({ type: TransformType.INTEG, id: s.integ, attributes: [] });
  transforms.push({ type: TransformType.DH, id: s.dh, attributes: [] });
  return { num, protocolId: ProtocolId.IKE, spi, transforms };
}

export function espSuiteProposal(num: number, s: EspSuite, spi: Uint8Array): Proposal {
  const transforms: Transform[] = [encrTransform(s.encr)];
  if (s.integ) transforms.push({ type: TransformType.INTEG, id: s.integ, attributes: [] });
  if (s.dh) transforms.push({ type: TransformType.DH, id: s.dh, attributes: [] });
  transforms.push({ type: TransformType.ESN, id: s.esn ? 1 : 0, attributes: [] });
  return { num, protocolId: ProtocolId.ESP, spi, transforms };
}

/** Initiator: the responder's answer must be a single-transform-per-type subset of one of ours. */
export function acceptIkeResponse(resp: Proposal[], cfg: ProposalConfig[]): IkeSuite | undefined {
  if (resp.length !== 1) return undefined;
  const sel = selectIke(resp, cfg);
  const p = resp[0]!;
  for (const type of [TransformType.ENCR, TransformType.PRF, TransformType.INTEG, TransformType.DH]) {
    if (p.transforms.filter((t) => t.type === type).length > 1) return undefined;
  }
  return sel?.suite;
}

export function acceptEspResponse(
  resp: Proposal[],
  cfg: ProposalConfig[],
  ignoreDh = false,
  /** The group of the KE payload we sent, if any. */
  keGroup?: number,
): { spi: Uint8Array; suite: EspSuite } | undefined {
  if (resp.length !== 1) return undefined;
  const p = resp[0]!;
  for (const type of [TransformType.ENCR, TransformType.INTEG, TransformType.DH, TransformType.ESN]) {
    if (p.transforms.filter((t) => t.type === type).length > 1) return undefined;
  }
  const sel = selectEsp(resp, cfg, { ignoreDh, ...(keGroup !== undefined ? { keGroup } : {}) });
  return sel ? { spi: sel.spi, suite: sel.suite } : undefined;
}

/** Readable list of what a peer offered, for NO_PROPOSAL_CHOSEN log lines (strongSwan's names). */
export function describeWireProposals(ps: Proposal[]): string {
  const name = (t: Transform): string => {
    switch (t.type) {
      case TransformType.ENCR:
        return encrName({ id: t.id, keyBits: keyBitsOf(t) });
      case TransformType.PRF:
        return prfName(t.id);
      case TransformType.INTEG:
        return integName(t.id);
      case TransformType.DH:
        return dhName(t.id);
      case TransformType.ESN:
        return t.id ? 'ESN' : 'NO_EXT_SEQ';
      default:
        return `T${t.type}:${t.id}`;
    }
  };
  return ps.map((p) => `[${p.transforms.map(name).join('/')}]`).join(' ');
}
