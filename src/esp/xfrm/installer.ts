// XfrmInstaller: the production data path — CHILD_SAs as Linux XFRM states and policies
// (strongSwan's kernel_netlink_ipsec.c behind kernel_ipsec_t; STYLE.md §2).
//
// What ikegw installs is recognisable as its own by the reqid: kernel reqid = reqidBase + the core's
// reqid (default base 0x49000000, "I", span 2^24), on states and on policy templates alike. A mark
// cannot do this job: XFRM uses marks for *matching* (a policy with mark 1/0xff only sees packets
// whose skb mark matches, an SA with a mark only matches such packets too), and Cilium owns the skb
// mark bits; an output mark (XFRMA_SET_MARK) would rewrite marks Cilium relies on. flush() removes
// exactly the states and policies in that reqid range: at shutdown, and at start-up for leftovers of
// a crashed run.
//
// States (addSa): tunnel mode, an all-zero selector with XFRM_STATE_AF_UNSPEC as strongSwan does (the
// policies do the selecting; the SA then also carries IPv4 in IPv6 and back); AEAD as XFRMA_ALG_AEAD,
// otherwise XFRMA_ALG_CRYPT + XFRMA_ALG_AUTH_TRUNC (algs.ts); ESP-in-UDP as XFRMA_ENCAP; byte and
// packet limits (0 = XFRM_INF) — time limits are the core's rekey timers; the replay window in the
// 8-bit replay_window field up to 32 packets without ESN, else XFRMA_REPLAY_ESN_VAL (bitmap of
// window/32 words, up to 4096; XFRM_STATE_ESN when negotiated). Outbound SAs need no window: 0, or 1
// with ESN because the kernel refuses an ESN state without one (strongSwan add_sa does the same).
//
// updateSa (MOBIKE / NAT mapping change): the kernel's SA key is (daddr, spi, proto) and UPDSA
// (xfrm_state_update) only refreshes lifetimes, the encap template and a few flags of the state with
// that key — it cannot change addresses. So, as strongSwan's update_sa: read the state (GETSA, with its
// keys) and its replay/lifetime counters (GETAE), and re-create it under the new addresses with the
// same keys, sequence numbers and counters. When only the encap ports change (both old and new use
// ESP-in-UDP) UPDSA is enough and the SA never disappears. When the destination changes, the new
// state is added before the old one is deleted (different keys); when only the source changes, the
// old one must go first and is re-added if the new one fails.
//
// Policies: one kernel policy per direction and selector (selectors.ts may split a range into
// several prefixes), with one template (ESP, tunnel, reqid, tunnel endpoints). They are reference-
// counted like kernel_ipsec.h's add_policy/del_policy describe: the same selector+direction installed
// again (the rekeyed CHILD_SA, a trap under an established CHILD_SA) adds a reference; the kernel
// keeps one policy, which is updated (UPDPOLICY) to the best remaining use — explicit priority, else
// regular before trap, the newest among equals — and deleted with the last reference. The first
// install uses NEWPOLICY (exclusive), so a policy someone else put there is reported (EEXIST), never
// overwritten. A trap policy is just a policy without a state: the first packet raises ACQUIRE.
//
// Kernel errors come back as KernelError with the kernel's errno (ESRCH for unknown states, as the
// contract allows; ENOENT for policies this installer does not hold); invalid specs fail with EINVAL
// before anything reaches the kernel. All operations are serialized.

import { KernelError } from '../../common/errors.js';
import type { AddSaSpec, KernelEvent, PolicySpec, SaCounters, SaId, SaInstaller } from '../../ike/ports.js';
import { keyProblem, xfrmAlgorithm } from './algs.js';
import { kernelError, type SaRecord, XfrmClient } from './client.js';
import { fromKernelReqid, type ReqidRange, toKernelReqid, XfrmListener } from './listener.js';
import { policyPriority, selectorKey, tsToSelectors } from './selectors.js';
import {
  addrToXfrm,
  encodeAlgo,
  encodeAlgoAead,
  encodeAlgoAuth,
  encodeReplayEsn,
  IPPROTO_ESP,
  type NlAttr,
  replayEsnFor,
  UDP_ENCAP_ESPINUDP,
  XFRM_INF,
  XFRM_MODE_TUNNEL,
  XFRM_POLICY_ALLOW,
  XFRM_SHARE_ANY,
  XfrmAe,
  Xfrma,
  XfrmEncapTmpl,
  XfrmLifetimeCur,
  XfrmPolicyDir,
  type XfrmSelector,
  XfrmStateFlag,
  XfrmUserpolicyInfo,
  type XfrmUsersaId,
  XfrmUsersaInfo,
  XfrmUserTmpl,
} from './structs.js';
import type { RelayTarget } from './transport.js';

export const DEFAULT_REQID_RANGE: ReqidRange = { base: 0x4900_0000, span: 0x0100_0000 };
/** Largest anti-replay window the kernel takes (XFRMA_REPLAY_ESN_MAX: a 4096-bit bitmap). */
export const MAX_REPLAY_WINDOW = 4096;

const ENOENT = 2;
const ESRCH = 3;
const EINVAL = 22;

/** What the installer logs through (a pino logger fits). */
export interface XfrmLog {
  info(obj: Record<string, unknown>, msg: string): void;
  warn(obj: Record<string, unknown>, msg: string): void;
  debug?(obj: Record<string, unknown>, msg: string): void;
}

export interface XfrmInstallerOptions {
  /** Namespace to manage: this one (default), a netns path through a helper, or a fresh one. */
  netns?: RelayTarget;
  reqidRange?: ReqidRange;
  /** Netlink request timeout (default 15 000 ms). */
  timeoutMs?: number;
  /** Remove ikegw-owned leftovers (a crashed previous run) before returning (default true). */
  flushOnStart?: boolean;
  /** Open the event socket (acquire/expire/mapping) (default true). */
  listen?: boolean;
  log?: XfrmLog;
}

function einval(op: string, detail: string): KernelError {
  return kernelError(op, EINVAL, detail);
}

function spiHex(spi: number): string {
  return (spi >>> 0).toString(16).padStart(8, '0');
}

interface PolicyUse {
  spec: PolicySpec;
  kernelReqid: number;
  priority: number;
}

interface PolicyEntry {
  dir: PolicySpec['direction'];
  sel: XfrmSelector;
  /** Every add still referenced, oldest first. */
  refs: PolicyUse[];
  /** What the kernel currently has. */
  installed: PolicyUse;
}

function effRank(u: PolicyUse): number {
  return u.spec.priority ?? (u.spec.trap ? 2 : 1);
}

function bestUse(refs: PolicyUse[]): PolicyUse {
  let best = refs[0]!;
  for (const r of refs) if (effRank(r) <= effRank(best)) best = r;
  return best;
}

function sameUse(a: PolicySpec, b: PolicySpec): boolean {
  return (
    a.reqid === b.reqid && a.tunnelSrc === b.tunnelSrc && a.tunnelDst === b.tunnelDst && a.trap === b.trap
  );
}

function sameKernelPolicy(a: PolicyUse, b: PolicyUse): boolean {
  return (
    a.kernelReqid === b.kernelReqid &&
    a.priority === b.priority &&
    a.spec.tunnelSrc === b.spec.tunnelSrc &&
    a.spec.tunnelDst === b.spec.tunnelDst
  );
}

export class XfrmInstaller implements SaInstaller {
  readonly kind = 'xfrm' as const;
  private readonly policies = new Map<string, PolicyEntry>();
  private chain: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(
    readonly client: XfrmClient,
    readonly range: ReqidRange = DEFAULT_REQID_RANGE,
    private readonly listener?: XfrmListener,
    private readonly log?: XfrmLog,
  ) {}

  /** Receives acquire/expire/mapping events for ikegw's own objects (kernel_listener_t). */
  setListener(fn: ((ev: KernelEvent) => void) | undefined): void {
    this.listener?.setListener(fn);
  }

  /** Closes the netlink sockets (after flush() at shutdown). */
  close(): void {
    this.closed = true;
    this.listener?.close();
    this.client.close();
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  private kreqid(op: string, reqid: number): number {
    const k = toKernelReqid(this.range, reqid);
    if (k === undefined)
      throw einval(op, `reqid ${reqid} is outside ikegw's range 0..${this.range.span - 1}`);
    return k;
  }

  // ---- SAs ---------------------------------------------------------------------------------------

  /** The NEWSA body and attributes for a spec; throws EINVAL KernelErrors for what the kernel would refuse. */
  buildSa(spec: AddSaSpec): { info: ReturnType<typeof XfrmUsersaInfo.zero>; attrs: NlAttr[] } {
    const op = 'addSa';
    if (!Number.isInteger(spec.spi) || spec.spi <= 0 || spec.spi > 0xffffffff)
      throw einval(op, `SPI ${spec.spi} out of range`);
    let src: ReturnType<typeof addrToXfrm>;
    let dst: ReturnType<typeof addrToXfrm>;
    try {
      src = addrToXfrm(spec.src);
      dst = addrToXfrm(spec.dst);
    } catch (e) {
      throw einval(op, (e as Error).message);
    }
    if (src.family !== dst.family) throw einval(op, `${spec.src} -> ${spec.dst} are not one IP family`);
    const alg = xfrmAlgorithm(spec.alg);
    if (typeof alg === 'string') throw einval(op, alg);
    const bad = keyProblem(alg, spec.encKey, spec.integKey);
    if (bad) throw einval(op, bad);
    const win = spec.replayWindow;
    if (!Number.isInteger(win) || win < 0 || win > MAX_REPLAY_WINDOW)
      throw einval(op, `replay window ${win} (0..${MAX_REPLAY_WINDOW})`);

    const info = XfrmUsersaInfo.zero();
    info.id = { daddr: dst.bytes, spi: spec.spi >>> 0, proto: IPPROTO_ESP };
    info.saddr = src.bytes;
    info.family = dst.family;
    info.mode = XFRM_MODE_TUNNEL;
    info.reqid = this.kreqid(op, spec.reqid);
    info.flags = XfrmStateFlag.AF_UNSPEC | (spec.esn ? XfrmStateFlag.ESN : 0);
    const lim = (x: bigint | undefined): bigint => (x && x > 0n ? x : XFRM_INF);
    info.lft.soft_byte_limit = lim(spec.lifetime.softBytes);
    info.lft.hard_byte_limit = lim(spec.lifetime.hardBytes);
    info.lft.soft_packet_limit = lim(spec.lifetime.softPackets);
    info.lft.hard_packet_limit = lim(spec.lifetime.hardPackets);

    const attrs: NlAttr[] = [];
    if (alg.kind === 'aead') {
      attrs.push({
        type: Xfrma.ALG_AEAD,
        data: encodeAlgoAead({ name: alg.name, key: spec.encKey, icvBits: alg.icvBits }),
      });
    } else {
      attrs.push({ type: Xfrma.ALG_CRYPT, data: encodeAlgo({ name: alg.crypt.name, key: spec.encKey }) });
      attrs.push({
        type: Xfrma.ALG_AUTH_TRUNC,
        data: encodeAlgoAuth({ name: alg.auth.name, key: spec.integKey, truncBits: alg.auth.truncBits }),
      });
    }
    if (spec.encap) attrs.push({ type: Xfrma.ENCAP, data: this.encapTmpl(spec.encap) });
    const window = spec.inbound ? win : spec.esn ? 1 : 0;
    if (window > 0 && (spec.esn || window > 32)) {
      attrs.push({ type: Xfrma.REPLAY_ESN_VAL, data: encodeReplayEsn(replayEsnFor(window)) });
    } else {
      info.replay_window = window;
    }
    return { info, attrs };
  }

  private encapTmpl(e: { sport: number; dport: number }): Uint8Array {
    return XfrmEncapTmpl.encode({
      encap_type: UDP_ENCAP_ESPINUDP,
      encap_sport: e.sport,
      encap_dport: e.dport,
      encap_oa: new Uint8Array(16),
    });
  }

  addSa(spec: AddSaSpec): Promise<void> {
    return this.serial(async () => {
      const { info, attrs } = this.buildSa(spec);
      await this.client.newSa(info, attrs);
      this.log?.debug?.(
        { spi: spiHex(spec.spi), reqid: spec.reqid, dir: spec.inbound ? 'in' : 'out', child: spec.name },
        `added SAD entry SPI ${spiHex(spec.spi)} ${spec.src} -> ${spec.dst}${spec.encap ? ` (UDP ${spec.encap.sport} -> ${spec.encap.dport})` : ''}`,
      );
    });
  }

  private saId(op: string, id: SaId): ReturnType<typeof XfrmUsersaId.zero> {
    let dst: ReturnType<typeof addrToXfrm>;
    try {
      dst = addrToXfrm(id.dst);
    } catch (e) {
      throw einval(op, (e as Error).message);
    }
    return { daddr: dst.bytes, spi: id.spi >>> 0, family: dst.family, proto: IPPROTO_ESP };
  }

  querySa(id: SaId): Promise<SaCounters> {
    return this.serial(async () => {
      const sa = await this.client.getSa('querySa', this.saId('querySa', id));
      return { bytes: sa.info.curlft.bytes, packets: sa.info.curlft.packets };
    });
  }

  delSa(id: SaId): Promise<void> {
    return this.serial(async () => {
      await this.client.delSa('delSa', this.saId('delSa', id));
    });
  }

  updateSa(
    id: SaId,
    newSrc: string,
    newDst: string,
    encap?: { sport: number; dport: number },
  ): Promise<void> {
    return this.serial(() => this.doUpdateSa(id, newSrc, newDst, encap));
  }

  private async doUpdateSa(
    id: SaId,
    newSrc: string,
    newDst: string,
    encap?: { sport: number; dport: number },
  ): Promise<void> {
    const op = 'updateSa';
    const oldId = this.saId(op, id);
    let src: ReturnType<typeof addrToXfrm>;
    let dst: ReturnType<typeof addrToXfrm>;
    try {
      src = addrToXfrm(newSrc);
      dst = addrToXfrm(newDst);
    } catch (e) {
      throw einval(op, (e as Error).message);
    }
    if (src.family !== dst.family) throw einval(op, `${newSrc} -> ${newDst} are not one IP family`);
    const old = await this.client.getSa(op, oldId);
    // Sequence numbers and counters: GETAE (strongSwan get_replay_state); GETSA's own copy otherwise.
    let ae: NlAttr[] = [];
    try {
      ae = await this.client.getAe(op, {
        sa_id: oldId,
        saddr: old.info.saddr,
        flags: XfrmAe.RVAL | XfrmAe.LVAL,
        reqid: old.info.reqid,
      });
    } catch (e) {
      this.log?.warn(
        { spi: spiHex(id.spi), err: (e as Error).message },
        'cannot read the replay state; using GETSA',
      );
    }
    const pick = (t: number): NlAttr | undefined =>
      ae.find((a) => a.type === t) ?? old.attrs.find((a) => a.type === t);
    const replay = pick(Xfrma.REPLAY_ESN_VAL) ?? pick(Xfrma.REPLAY_VAL);
    const ltime = pick(Xfrma.LTIME_VAL) ?? {
      type: Xfrma.LTIME_VAL,
      data: XfrmLifetimeCur.encode(old.info.curlft),
    };
    const DROP = new Set<number>([
      Xfrma.ENCAP,
      Xfrma.REPLAY_VAL,
      Xfrma.REPLAY_ESN_VAL,
      Xfrma.LTIME_VAL,
      Xfrma.LASTUSED,
    ]);
    const attrs: NlAttr[] = old.attrs.filter((a) => !DROP.has(a.type));
    if (encap) attrs.push({ type: Xfrma.ENCAP, data: this.encapTmpl(encap) });
    if (replay) attrs.push(replay);
    attrs.push(ltime);
    const info = {
      ...old.info,
      saddr: src.bytes,
      family: dst.family,
      id: { ...old.info.id, daddr: dst.bytes },
    };

    const sameDst = Buffer.from(oldId.daddr).equals(Buffer.from(dst.bytes)) && oldId.family === dst.family;
    const sameSrc =
      Buffer.from(old.info.saddr).equals(Buffer.from(src.bytes)) && old.info.family === src.family;
    const hadEncap = old.attrs.some((a) => a.type === Xfrma.ENCAP);
    if (sameDst && sameSrc && hadEncap && encap) {
      await this.client.newSa(info, attrs, true); // UPDSA: new encap ports in place
    } else if (!sameDst) {
      await this.client.newSa(info, attrs);
      await this.client.delSa(op, oldId);
    } else {
      await this.client.delSa(op, oldId);
      try {
        await this.client.newSa(info, attrs);
      } catch (e) {
        await this.client.newSa(old.info, restoreAttrs(old)).catch(() => undefined);
        throw e;
      }
    }
    this.log?.info(
      { spi: spiHex(id.spi) },
      `updated SAD entry SPI ${spiHex(id.spi)}: ${id.src} -> ${id.dst} is now ${newSrc} -> ${newDst}${encap ? ` (UDP ${encap.sport} -> ${encap.dport})` : ''}`,
    );
  }

  // ---- policies ------------------------------------------------------------------------------------

  private tmplFor(u: PolicyUse): ReturnType<typeof XfrmUserTmpl.zero> {
    const s = addrToXfrm(u.spec.tunnelSrc);
    const d = addrToXfrm(u.spec.tunnelDst);
    const t = XfrmUserTmpl.zero();
    t.id = { daddr: d.bytes, spi: 0, proto: IPPROTO_ESP };
    t.family = d.family;
    t.saddr = s.bytes;
    t.reqid = u.kernelReqid;
    t.mode = XFRM_MODE_TUNNEL;
    t.share = XFRM_SHARE_ANY;
    t.aalgos = 0xffffffff;
    t.ealgos = 0xffffffff;
    t.calgos = 0xffffffff;
    return t;
  }

  private policyInfo(e: { dir: PolicySpec['direction']; sel: XfrmSelector }, u: PolicyUse) {
    const info = XfrmUserpolicyInfo.zero();
    info.sel = e.sel;
    info.lft.soft_byte_limit = XFRM_INF;
    info.lft.hard_byte_limit = XFRM_INF;
    info.lft.soft_packet_limit = XFRM_INF;
    info.lft.hard_packet_limit = XFRM_INF;
    info.priority = u.priority;
    info.dir = XfrmPolicyDir[e.dir];
    info.action = XFRM_POLICY_ALLOW;
    info.share = XFRM_SHARE_ANY;
    return info;
  }

  private selectors(op: string, p: PolicySpec): XfrmSelector[] {
    try {
      addrToXfrm(p.tunnelSrc);
      addrToXfrm(p.tunnelDst);
      return tsToSelectors(p.src, p.dst);
    } catch (e) {
      throw einval(op, (e as Error).message);
    }
  }

  addPolicy(p: PolicySpec): Promise<void> {
    return this.serial(async () => {
      const op = 'addPolicy';
      const kernelReqid = this.kreqid(op, p.reqid);
      const sels = this.selectors(op, p);
      const done: Array<{ key: string; sel: XfrmSelector }> = [];
      try {
        for (const sel of sels) {
          const key = selectorKey(p.direction, sel);
          const use: PolicyUse = {
            spec: { ...p },
            kernelReqid,
            priority: p.priority ?? policyPriority(sel, p.trap),
          };
          const e = this.policies.get(key);
          if (!e) {
            const entry: PolicyEntry = { dir: p.direction, sel, refs: [use], installed: use };
            await this.client.newPolicy(op, this.policyInfo(entry, use), [this.tmplFor(use)]);
            this.policies.set(key, entry);
          } else {
            e.refs.push(use);
            await this.reinstall(op, e);
          }
          done.push({ key, sel });
        }
      } catch (err) {
        // Undo this call's references so a failed add leaves nothing behind.
        for (const d of done.reverse()) await this.dropRef(op, d.key, p).catch(() => undefined);
        throw err;
      }
    });
  }

  /** Makes the kernel policy match the best remaining use (UPDPOLICY) if it changed. */
  private async reinstall(op: string, e: PolicyEntry): Promise<void> {
    const best = bestUse(e.refs);
    if (sameKernelPolicy(best, e.installed)) {
      e.installed = best;
      return;
    }
    await this.client.newPolicy(op, this.policyInfo(e, best), [this.tmplFor(best)], true);
    e.installed = best;
  }

  private async dropRef(op: string, key: string, p: PolicySpec): Promise<void> {
    const e = this.policies.get(key);
    if (!e) return;
    let i = e.refs.length - 1;
    while (i >= 0 && !sameUse(e.refs[i]!.spec, p)) i--;
    if (i < 0) return;
    e.refs.splice(i, 1);
    if (e.refs.length > 0) {
      await this.reinstall(op, e);
      return;
    }
    this.policies.delete(key);
    try {
      await this.client.delPolicy(op, { sel: e.sel, index: 0, dir: XfrmPolicyDir[e.dir] });
    } catch (err) {
      // Someone else removed it (ip xfrm policy flush?): it is gone either way.
      if (err instanceof KernelError && (err.errno === ENOENT || err.errno === ESRCH)) {
        this.log?.warn({ dir: e.dir }, `policy ${key} was already gone from the kernel`);
        return;
      }
      throw err;
    }
  }

  delPolicy(p: PolicySpec): Promise<void> {
    return this.serial(async () => {
      const op = 'delPolicy';
      const sels = this.selectors(op, p);
      const keys = sels.map((s) => selectorKey(p.direction, s));
      for (const k of keys) {
        const e = this.policies.get(k);
        if (!e?.refs.some((r) => sameUse(r.spec, p)))
          throw kernelError(op, ENOENT, `no ${p.direction} policy ${describe(p)} for reqid ${p.reqid}`);
      }
      let first: unknown;
      for (const k of keys) {
        try {
          await this.dropRef(op, k, p);
        } catch (e) {
          first ??= e;
        }
      }
      if (first) throw first;
    });
  }

  // ---- flush ---------------------------------------------------------------------------------------

  flush(): Promise<void> {
    return this.serial(async () => {
      await this.flushOwned();
    });
  }

  /** Removes every state and policy in ikegw's reqid range; returns what it removed. */
  async flushOwned(): Promise<{ states: number; policies: number }> {
    const op = 'flush';
    let policies = 0;
    let states = 0;
    const gone = (e: unknown): boolean =>
      e instanceof KernelError && (e.errno === ENOENT || e.errno === ESRCH);
    for (const p of await this.client.dumpPolicy(op)) {
      if (!p.tmpls.some((t) => fromKernelReqid(this.range, t.reqid) !== undefined)) continue;
      const extra = p.attrs.filter(
        (a) => a.type === Xfrma.MARK || a.type === Xfrma.POLICY_TYPE || a.type === Xfrma.IF_ID,
      );
      try {
        await this.client.delPolicy(op, { sel: p.info.sel, index: 0, dir: p.info.dir }, extra);
        policies++;
      } catch (e) {
        if (!gone(e)) throw e;
      }
    }
    for (const s of await this.client.dumpSa(op)) {
      if (fromKernelReqid(this.range, s.info.reqid) === undefined) continue;
      if (s.info.id.spi === 0) continue; // a larval ACQUIRE state: not addressable, expires by itself
      const extra = s.attrs.filter((a) => a.type === Xfrma.MARK || a.type === Xfrma.IF_ID);
      try {
        await this.client.delSa(
          op,
          { daddr: s.info.id.daddr, spi: s.info.id.spi, family: s.info.family, proto: s.info.id.proto },
          extra,
        );
        states++;
      } catch (e) {
        if (!gone(e)) throw e;
      }
    }
    this.policies.clear();
    return { states, policies };
  }

  /** Installed kernel policies with their reference counts (for status and tests). */
  policyRefs(): Array<{ key: string; dir: string; refs: number; trap: boolean; reqid: number }> {
    return [...this.policies.entries()].map(([key, e]) => ({
      key,
      dir: e.dir,
      refs: e.refs.length,
      trap: e.installed.spec.trap,
      reqid: e.installed.spec.reqid,
    }));
  }

  get isClosed(): boolean {
    return this.closed;
  }
}

function describe(p: PolicySpec): string {
  return `${p.src.startAddr}-${p.src.endAddr} === ${p.dst.startAddr}-${p.dst.endAddr}`;
}

/** The attributes to re-add a state exactly as GETSA returned it (rollback of updateSa). */
function restoreAttrs(old: SaRecord): NlAttr[] {
  const attrs = old.attrs.filter((a) => a.type !== Xfrma.LASTUSED && a.type !== Xfrma.LTIME_VAL);
  attrs.push({ type: Xfrma.LTIME_VAL, data: XfrmLifetimeCur.encode(old.info.curlft) });
  return attrs;
}

/**
 * Opens the XFRM sockets (requests, events), removes leftovers of a previous run (reqid range) and
 * returns the installer. Rejects with a KernelError when XFRM netlink is not usable (EPERM without
 * CAP_NET_ADMIN, EPROTONOSUPPORT without XFRM).
 */
export async function createXfrmInstaller(opts: XfrmInstallerOptions = {}): Promise<XfrmInstaller> {
  const range = opts.reqidRange ?? DEFAULT_REQID_RANGE;
  if (range.base + range.span > 0x1_0000_0000 || range.base <= 0 || range.span <= 0)
    throw einval('open', `reqid range ${range.base}+${range.span} does not fit 32 bits`);
  const warn = (msg: string): void => opts.log?.warn({ subsys: 'knl' }, msg);
  const client = await XfrmClient.open({
    ...(opts.netns ? { netns: opts.netns } : {}),
    ...(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}),
    onWarning: warn,
  });
  let listener: XfrmListener | undefined;
  try {
    if (opts.listen ?? true)
      listener = await XfrmListener.open(range, {
        ...(opts.netns ? { netns: opts.netns } : {}),
        onWarning: warn,
      });
    const inst = new XfrmInstaller(client, range, listener, opts.log);
    if (opts.flushOnStart ?? true) {
      const r = await inst.flushOwned();
      if (r.states || r.policies)
        opts.log?.info(
          r,
          `removed ${r.states} state(s) and ${r.policies} policy(ies) left over by a previous run`,
        );
    }
    return inst;
  } catch (e) {
    listener?.close();
    client.close();
    throw e;
  }
}

// ---- probing ---------------------------------------------------------------------------------------

export interface EspProbe {
  ok: boolean;
  /** Where the probe ran and why it failed. */
  detail: string;
}

/**
 * Does this kernel do ESP (with AES-GCM)? Adds an ESP state in a fresh network namespace
 * (`unshare --net`, needs CAP_SYS_ADMIN) — nothing real is touched. Where no namespace can be
 * created, it tries in this namespace with a state in ikegw's reqid range towards 127.0.0.1 and
 * deletes it at once.
 */
export async function probeKernelEspDetail(): Promise<EspProbe> {
  const probeSa = (inst: XfrmInstaller): AddSaSpec => ({
    reqid: 0,
    src: '127.0.0.1',
    dst: '127.0.0.1',
    spi: 0x4947_0001,
    protocol: 'esp',
    mode: 'tunnel',
    alg: { kind: 'aead', name: 'aes-gcm-16', keyBits: 128 },
    encKey: new Uint8Array(20).fill(0x5a),
    integKey: new Uint8Array(0),
    esn: false,
    replayWindow: 64,
    inbound: true,
    srcTs: [],
    dstTs: [],
    lifetime: {},
    name: `probe/${inst.kind}`,
  });
  const attempt = async (netns: RelayTarget | undefined): Promise<EspProbe> => {
    const inst = await createXfrmInstaller({
      ...(netns ? { netns } : {}),
      listen: false,
      flushOnStart: false,
      timeoutMs: 30_000,
    });
    const where = netns ? 'a scratch network namespace' : 'this network namespace';
    try {
      const spec = probeSa(inst);
      await inst.addSa(spec);
      await inst
        .delSa({ src: spec.src, dst: spec.dst, spi: spec.spi, protocol: 'esp' })
        .catch(() => undefined);
      return { ok: true, detail: `added an ESP (rfc4106(gcm(aes))) state in ${where}` };
    } catch (e) {
      return { ok: false, detail: `adding an ESP state in ${where} failed: ${(e as Error).message}` };
    } finally {
      inst.close();
    }
  };
  let first: string;
  try {
    return await attempt({ kind: 'fresh' });
  } catch (e) {
    first = (e as Error).message;
  }
  try {
    const r = await attempt(undefined);
    return { ok: r.ok, detail: `${r.detail} (no scratch namespace: ${first})` };
  } catch (e) {
    return {
      ok: false,
      detail: `XFRM netlink unusable: ${(e as Error).message}; scratch namespace: ${first}`,
    };
  }
}

export async function probeKernelEsp(): Promise<boolean> {
  return (await probeKernelEspDetail()).ok;
}
