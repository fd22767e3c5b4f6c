// IkeEngine: the sans-IO IKEv2 core (STYLE.md Rule 0). Events in, effects out.
// It owns the IKE_SA table (by local SPI), message IDs and retransmits (window 1, RFC 7296 §2.3),
// the response cache for retransmitted requests, and the kernel-operation bookkeeping.

import { createHash } from 'node:crypto';
import { concat, equalBytes, spiHex, Writer } from '../common/bytes.js';
import { DecodeError, IkeProtocolError, IntegrityError } from '../common/errors.js';
import type { Random } from '../common/random.js';
import type { ChildConfig, ConnectionConfig, EngineConfig } from './config.js';
import { suiteName as algorithmName } from './crypto/suites.js';
import type { BusEvent, Command, Effect, IkeEvent, SaRef, TimerKey } from './events.js';
import type { Endpoint, KernelEvent, SaId, SaOp } from './ports.js';
import { carryReqids, diffConnections } from './reconfigure.js';
import { describeTs, installOutbound, trapPolicies, uninstallChild as uninstall } from './sa/child-sa.js';
import { type ChildSa, type IkeSa, localSpi } from './sa/ike-sa.js';
import type { EngineCtx, RequestOptions } from './task/context.js';
import {
  createChild,
  outboundTimeout,
  processCreateChildRequest,
  rekeyChild,
  rekeyIke,
} from './task/create-child.js';
import { processAuthRequest, sendAuthRequest } from './task/ike-auth.js';
import { processInitRequest, sendInitRequest } from './task/ike-init.js';
import {
  processInformationalRequest,
  sendChildDelete,
  sendDpd,
  sendIkeDelete,
} from './task/informational.js';
import { notify } from './task/payloads.js';
import { delayMs } from './task/retransmit.js';
import {
  ExchangeType,
  exchangeName,
  HeaderFlag,
  IKE_VERSION,
  Notify,
  PayloadType,
} from './wire/constants.js';
import { encodeHeader, UnsupportedVersionError } from './wire/header.js';
import {
  decodeMessage,
  decodePayloadChain,
  encodeMessage,
  encodePayloadChain,
  summarize,
} from './wire/message.js';
import { checkPayloadRules, findUnsupportedCritical } from './wire/rules.js';
import type { IkeMessage, Payload, SkfPayload, SkPayload } from './wire/types.js';

export interface EngineDeps {
  random: Random;
  /** Local IKE and NAT-T ports (500/4500 in production). */
  ikePort?: number;
  nattPort?: number;
}

/** Read-only view of one IKE_SA for `ikegw sas` and metrics (no secrets). */
export interface IkeSaInfo {
  uid: number;
  conn: string;
  state: string;
  initiator: boolean;
  spiI: string;
  spiR: string;
  local: Endpoint;
  remote: Endpoint;
  localId: string;
  remoteId: string;
  algorithms: string;
  natLocal: boolean;
  natRemote: boolean;
  establishedAtMs?: number;
  children: ChildSaInfo[];
}

export interface ChildSaInfo {
  uid: number;
  name: string;
  state: string;
  spiIn: number;
  spiOut: number;
  reqid: number;
  algorithms: string;
  encap: boolean;
  localTs: string[];
  remoteTs: string[];
  installedAtMs?: number;
}

const HEADER_LEN = 28;

/** The SK payload verified and decrypted, but what it carries does not parse. */
class AuthenticatedSyntaxError extends DecodeError {}

function decodeAuthenticated(firstType: number, plain: Uint8Array): Payload[] {
  try {
    return decodePayloadChain(firstType, plain, 0, plain.length);
  } catch (e) {
    if (e instanceof DecodeError) throw new AuthenticatedSyntaxError(e.message);
    throw e;
  }
}
const ENGINE_TIMERS = 'engine';
/** Reassembly bounds (tuning): fragments per message and bytes per reassembled message. */
const MAX_FRAGMENTS = 64;
const MAX_REASSEMBLED = 64 * 1024;
/** Old inbound SAs stay this long after a rekey, for packets in flight (tuning, not spec). */
export const INBOUND_LINGER_MS = 3_000;

function digest(b: Uint8Array): string {
  return createHash('sha1').update(b).digest('hex');
}

/** An IKE_SA_INIT response whose first payload is N(COOKIE): a COOKIE challenge. */
function isCookieChallenge(exchange: number, response: boolean, ps: readonly Payload[]): boolean {
  if (exchange !== ExchangeType.IKE_SA_INIT || !response) return false;
  const first = ps[0];
  return first?.type === PayloadType.NOTIFY && 'notifyType' in first && first.notifyType === Notify.COOKIE;
}

/** The `byPeer` key: a connection's name (kept across reloads) and the peer's identity. */
const peerKey = (sa: IkeSa): string => `${sa.conn.name}\0${sa.remoteIdText}`;

export class IkeEngine implements EngineCtx {
  cfg: EngineConfig;
  readonly random: Random;
  readonly ikePort: number;
  readonly nattPort: number;
  now = 0;

  private readonly bySpi = new Map<bigint, IkeSa>();
  /**
   * Established IKE_SAs by connection name and peer identity (`peerKey`), so that INITIAL_CONTACT
   * finds the peer's stale IKE_SAs without scanning every SA (quadratic under a set-up flood).
   */
  private readonly byPeer = new Map<string, Set<IkeSa>>();
  /** Responder SAs by (peer endpoint, SPIi) until IKE_AUTH completes: detects retransmitted IKE_SA_INIT. */
  private readonly halfOpen = new Map<string, IkeSa>();
  private readonly espSpis = new Set<number>();
  private readonly ops = new Map<number, (error?: string) => void>();
  private readonly queues = new Map<IkeSa, Array<() => void>>();
  private readonly engineTimers = new Map<string, { gen: number; run: () => void }>();
  private readonly halfOpenByIp = new Map<string, number>();
  private readonly restartBackoff = new Map<string, number>();
  private readonly cookieSecret: Uint8Array;
  private shuttingDown = false;
  private out: Effect[] = [];
  private uidSeq = 0;
  private opSeq = 0;
  private timerSeq = 0;

  constructor(config: EngineConfig, deps: EngineDeps) {
    this.cfg = config;
    this.random = deps.random;
    this.ikePort = deps.ikePort ?? 500;
    this.nattPort = deps.nattPort ?? 4500;
    this.cookieSecret = this.random.bytes(32);
  }

  /** The single entry point: process one event at time `nowMs`, return what to do. */
  handle(ev: IkeEvent, nowMs: number): Effect[] {
    this.now = nowMs;
    this.out = [];
    try {
      switch (ev.kind) {
        case 'datagram':
          this.onDatagram(ev.local, ev.remote, ev.bytes);
          break;
        case 'timer':
          this.onTimer(ev.key);
          break;
        case 'kernel-done':
          this.onKernelDone(ev.opId, ev.error?.message);
          break;
        case 'kernel':
          this.onKernelEvent(ev.ev);
          break;
        case 'command':
          this.onCommand(ev.cmd);
          break;
        case 'start':
          this.onStart();
          break;
      }
    } catch (e) {
      // A bug in one exchange must not take the daemon (or other SAs) down.
      this.log('error', 'ike', `internal error while handling ${ev.kind}: ${(e as Error).stack ?? e}`);
    }
    const out = this.out;
    this.out = [];
    return out;
  }

  /** The IKE_SA with this local SPI (status, tests); undefined if none. */
  peek(localSpi: bigint): IkeSa | undefined {
    return this.bySpi.get(localSpi);
  }

  list(): IkeSaInfo[] {
    return [...this.bySpi.values()].map((sa) => ({
      uid: sa.uid,
      conn: sa.conn.name,
      state: sa.state,
      initiator: sa.initiator,
      spiI: spiHex(sa.spiI),
      spiR: spiHex(sa.spiR),
      local: sa.local,
      remote: sa.remote,
      localId: sa.localIdText,
      remoteId: sa.remoteIdText,
      algorithms: sa.suite ? algorithmName(sa.suite) : '',
      natLocal: sa.natLocal,
      natRemote: sa.natRemote,
      establishedAtMs: sa.establishedAtMs,
      children: sa.children.map((c) => this.childInfo(c)),
    }));
  }

  private childInfo(c: ChildSa): ChildSaInfo {
    return {
      uid: c.uid,
      name: c.cfg.name,
      state: c.state,
      spiIn: c.spiIn,
      spiOut: c.spiOut,
      reqid: c.reqid,
      algorithms: algorithmName(c.suite),
      encap: c.encap,
      localTs: describeTs(c.localTs),
      remoteTs: describeTs(c.remoteTs),
      installedAtMs: c.installedAtMs,
    };
  }

  // ------------------------------------------------------------------------------ EngineCtx

  newUid(): number {
    return ++this.uidSeq;
  }

  ref(sa: IkeSa): SaRef {
    return {
      conn: sa.conn.name,
      uid: sa.uid,
      spiI: spiHex(sa.spiI),
      spiR: spiHex(sa.spiR),
      local: sa.local,
      remote: sa.remote,
    };
  }

  emit(ev: BusEvent): void {
    this.out.push({ kind: 'emit', ev });
  }

  log(
    level: 'debug' | 'info' | 'warn' | 'error',
    subsys: string,
    msg: string,
    sa?: IkeSa,
    fields?: Record<string, unknown>,
  ): void {
    this.emit({ ev: 'log', level, subsys, msg, sa: sa ? this.ref(sa) : undefined, fields });
  }

  all(): IkeSa[] {
    return [...this.bySpi.values()];
  }

  peerSas(connName: string, remoteId: string): IkeSa[] {
    const peer = this.byPeer.get(`${connName}\0${remoteId}`);
    return peer ? [...peer] : [];
  }

  register(sa: IkeSa): void {
    this.bySpi.set(localSpi(sa), sa);
  }

  newEspSpi(): number {
    for (;;) {
      const b = this.random.bytes(4);
      const spi = ((b[0]! << 24) >>> 0) + ((b[1]! << 16) | (b[2]! << 8) | b[3]!);
      // SPIs 0..255 are reserved (RFC 4303 §2.1).
      if (spi >= 0x100 && !this.espSpis.has(spi)) {
        this.espSpis.add(spi);
        return spi;
      }
    }
  }

  releaseEspSpi(spi: number): void {
    this.espSpis.delete(spi);
  }

  cloneSa(from: IkeSa, initiator: boolean): IkeSa {
    const n = this.newSa(from.conn, initiator, from.local, from.remote);
    n.natLocal = from.natLocal;
    n.natRemote = from.natRemote;
    n.peerFragmentation = from.peerFragmentation;
    n.localIdText = from.localIdText;
    n.remoteIdText = from.remoteIdText;
    n.lastInboundMs = this.now;
    return n;
  }

  moveChildren(from: IkeSa, to: IkeSa): void {
    for (const c of from.children) {
      for (const what of ['rekey-child', 'expire-child', 'outbound']) {
        const key = `${what}:${c.uid}`;
        if (from.timers.has(key)) this.cancel(from, key);
      }
      to.children.push(c);
      if (c.rekeyAtMs !== undefined && c.state === 'INSTALLED')
        this.arm(to, `rekey-child:${c.uid}`, c.rekeyAtMs);
      if (c.expireAtMs !== undefined) this.arm(to, `expire-child:${c.uid}`, c.expireAtMs);
      if (c.pendingOutbound) this.arm(to, `outbound:${c.uid}`, this.now + 10_000);
    }
    from.children = [];
  }

  /**
   * `child` goes: a CHILD_SA of a peer's reauthentication that held its outbound SA back for it
   * (src/ike/task/ike-auth.ts) sends from now on — installed before the old one is removed, as
   * after a CHILD_SA rekey.
   */
  private releaseReauthSuccessors(child: ChildSa): void {
    const next = child.reauthedBy;
    if (!next) return; // the common case: nothing to look for
    child.reauthedBy = undefined;
    next.reauthOf = undefined;
    if (!next.pendingOutbound || next.state !== 'INSTALLED') return; // its install completes it
    const o = this.all().find((s) => s.children.includes(next));
    if (!o) return;
    this.cancel(o, `outbound:${next.uid}`);
    installOutbound(this, o, next);
  }

  removeChild(sa: IkeSa, child: ChildSa, reason: string): void {
    if (child.state === 'DELETED') return;
    this.releaseReauthSuccessors(child);
    for (const what of ['rekey-child', 'expire-child', 'outbound']) this.cancel(sa, `${what}:${child.uid}`);
    const linger = reason === 'rekeyed' || reason === 'deleted by peer';
    uninstall(this, sa, child, linger ? (id) => this.lingerInbound(id, child.spiIn) : undefined);
    if (!linger) this.espSpis.delete(child.spiIn);
    sa.children = sa.children.filter((c) => c !== child);
    this.emit({
      ev: 'child-state',
      sa: this.ref(sa),
      child: child.cfg.name,
      uid: child.uid,
      state: 'DELETED',
      spiIn: child.spiIn,
      spiOut: child.spiOut,
      detail: reason,
    });
    // A CHILD_SA that the peer closed (not replaced by a rekey) may need to come back.
    const replaced = sa.children.some(
      (c) => c.replaces === child || child.rekeyedByPeer?.newChild === c || child.rekey?.newChild === c,
    );
    if (replaced || reason === 'rekeyed')
      this.emit({ ev: 'rekey', sa: this.ref(sa), what: 'child', child: child.cfg.name });
    // A redundant CHILD_SA of a rekey collision (it replaces something) is not "closed".
    else if (!child.replaces && reason === 'deleted by peer' && sa.state === 'ESTABLISHED')
      this.afterClose(sa.conn, child.cfg, sa);
  }

  private lingerInbound(id: SaId, spi: number): void {
    this.armEngine(`linger:${spi}`, this.now + INBOUND_LINGER_MS, () => {
      this.espSpis.delete(spi);
      this.kernel({ op: 'delSa', id }, (err) => {
        if (err) this.log('debug', 'kernel', `removing lingering inbound SA ${spi.toString(16)}: ${err}`);
      });
    });
  }

  /** close_action after the peer deleted a CHILD_SA (swanctl semantics). */
  private afterClose(conn: ConnectionConfig, child: ChildConfig, sa?: IkeSa): void {
    if (child.closeAction === 'start') {
      if (sa && sa.state === 'ESTABLISHED') createChild(this, sa, child);
      else this.initiate(conn, child);
    }
    // 'trap': the trap policies stay installed (they are never removed while the daemon runs).
  }

  kernel(op: SaOp, onDone: (error?: string) => void): void {
    const opId = ++this.opSeq;
    this.ops.set(opId, onDone);
    this.out.push({ kind: 'kernel', opId, op });
  }

  arm(sa: IkeSa, what: string, atMs: number): void {
    const gen = ++this.timerSeq;
    sa.timers.set(what, gen);
    this.out.push({ kind: 'arm', key: { sa: spiHex(localSpi(sa)), what, gen }, atMs });
  }

  cancel(sa: IkeSa, what: string): void {
    const gen = sa.timers.get(what);
    if (gen === undefined) return;
    sa.timers.delete(what);
    this.out.push({ kind: 'cancel', key: { sa: spiHex(localSpi(sa)), what, gen } });
  }

  request(sa: IkeSa, exchange: number, payloads: Payload[], opts: RequestOptions): void {
    if (sa.pending && exchange !== ExchangeType.IKE_SA_INIT) {
      // Window size 1 (RFC 7296 §2.3): queue until the outstanding request is answered.
      const q = this.queues.get(sa) ?? [];
      q.push(() => this.request(sa, exchange, payloads, opts));
      this.queues.set(sa, q);
      return;
    }
    const msgId = exchange === ExchangeType.IKE_SA_INIT ? 0 : sa.nextMsgId;
    const packets = this.encode(sa, exchange, false, msgId, payloads);
    if (exchange === ExchangeType.IKE_SA_INIT) sa.initRequest = packets[0];
    sa.pending = {
      msgId,
      exchange,
      packets,
      attempt: 0,
      sentAtMs: this.now,
      what: opts.what,
      onResponse: opts.onResponse,
      onTimeout: opts.onTimeout,
      deadlineMs: opts.deadlineMs,
    };
    this.sendPackets(sa, packets, exchange, false, msgId, payloads);
    this.armRetransmit(sa, 0, opts.deadlineMs);
  }

  respond(sa: IkeSa, req: IkeMessage, reqBytes: Uint8Array, payloads: Payload[]): void {
    const ex = req.header.exchange;
    const packets = this.encode(sa, ex, true, req.header.msgId, payloads);
    if (ex === ExchangeType.IKE_SA_INIT) sa.initResponse = packets[0];
    sa.lastResponse = { msgId: req.header.msgId, requestDigest: digest(reqBytes), packets };
    this.sendPackets(sa, packets, ex, true, req.header.msgId, payloads);
  }

  destroy(sa: IkeSa, reason: string): void {
    if (sa.state === 'DESTROYED') return;
    for (const c of sa.children) {
      if (c.state !== 'DELETED') {
        this.releaseReauthSuccessors(c);
        uninstall(this, sa, c);
        this.emit({
          ev: 'child-state',
          sa: this.ref(sa),
          child: c.cfg.name,
          uid: c.uid,
          state: 'DELETED',
          spiIn: c.spiIn,
          spiOut: c.spiOut,
          detail: reason,
        });
      }
      this.espSpis.delete(c.spiIn);
    }
    if (sa.offeredSpiIn !== undefined) this.espSpis.delete(sa.offeredSpiIn);
    for (const spi of sa.offeredChildSpis ?? []) this.espSpis.delete(spi);
    sa.children = [];
    for (const what of [...sa.timers.keys()]) this.cancel(sa, what);
    sa.state = 'DESTROYED';
    sa.pending = undefined;
    this.queues.delete(sa);
    if (this.bySpi.get(localSpi(sa)) === sa) this.bySpi.delete(localSpi(sa));
    const peer = this.byPeer.get(peerKey(sa));
    if (peer?.delete(sa) && peer.size === 0) this.byPeer.delete(peerKey(sa));
    this.leaveHalfOpen(sa);
    this.emit({
      ev: 'ike-state',
      sa: this.ref(sa),
      state: 'DESTROYED',
      initiator: sa.initiator,
      detail: reason,
    });
    if (reason.startsWith('rekeyed')) this.emit({ ev: 'rekey', sa: this.ref(sa), what: 'ike' });
    this.maybeRestart(sa, reason);
  }

  established(sa: IkeSa): void {
    sa.state = 'ESTABLISHED';
    const key = peerKey(sa);
    const peer = this.byPeer.get(key);
    if (peer) peer.add(sa);
    else this.byPeer.set(key, new Set([sa]));
    sa.establishedAtMs = this.now;
    // What only IKE_SA_INIT/IKE_AUTH needed (the DH private key, the signed messages) goes now.
    sa.ke = undefined;
    sa.initRequest = undefined;
    sa.initResponse = undefined;
    sa.cookie = undefined;
    this.leaveHalfOpen(sa);
    this.cancel(sa, 'half-open');
    this.restartBackoff.delete(sa.conn.name);
    this.emit({
      ev: 'ike-established',
      sa: this.ref(sa),
      initiator: sa.initiator,
      algorithms: algorithmName(sa.suite!),
      natLocal: sa.natLocal,
      natRemote: sa.natRemote,
      localId: sa.localIdText,
      remoteId: sa.remoteIdText,
      setupMs: this.now - sa.createdAtMs,
    });
    if (sa.conn.dpdDelay > 0) this.arm(sa, 'dpd', this.now + sa.conn.dpdDelay * 1000);
    // The other children with start_action=start follow with CREATE_CHILD_SA (one per request).
    if (sa.initiator && sa.rekeyedFrom === undefined) {
      for (const c of sa.conn.children) {
        if (c.startAction === 'start' && c !== sa.firstChildCfg && !sa.children.some((x) => x.cfg === c))
          createChild(this, sa, c);
      }
    }
    // Rekey a little before rekey_time, at a random point in the last 10%, so that both ends
    // rarely start at once (strongSwan's rand_time); collisions are still handled (§2.8.1).
    if (sa.conn.rekeyTime > 0) this.arm(sa, 'rekey-ike', this.now + this.jittered(sa.conn.rekeyTime * 1000));
    // RFC 3948 §4: behind a NAT we keep the mapping alive.
    if (sa.natLocal && this.cfg.keepalive > 0)
      this.arm(sa, 'keepalive', this.now + this.cfg.keepalive * 1000);
  }

  /**
   * RFC 7296 §2.23: when the peer is behind a NAT, an authenticated message from a new address or
   * port moves the IKE_SA there, and the CHILD_SAs' ESP-in-UDP encapsulation follows.
   */
  private followPeer(sa: IkeSa, local: Endpoint, remote: Endpoint): void {
    const moved = remote.address !== sa.remote.address || remote.port !== sa.remote.port;
    const first = sa.state === 'CONNECTING';
    sa.local = local;
    if (!moved) return;
    const old = sa.remote;
    sa.remote = remote;
    if (first || (!sa.natRemote && !sa.natLocal)) return;
    this.log(
      'info',
      'ike',
      `peer moved from ${old.address}:${old.port} to ${remote.address}:${remote.port} (NAT mapping changed); updating the CHILD_SAs`,
      sa,
    );
    for (const c of sa.children) {
      const encap = c.encap ? { sport: local.port, dport: remote.port } : undefined;
      const note = (err?: string) => {
        if (err)
          this.log(
            'warn',
            'kernel',
            `updating CHILD_SA ${c.cfg.name} for the new peer address failed: ${err}`,
            sa,
          );
      };
      if (c.installedOut) {
        this.kernel(
          {
            op: 'updateSa',
            id: { ...c.installedOut, spi: c.spiOut, protocol: 'esp' },
            newSrc: local.address,
            newDst: remote.address,
            encap,
          },
          note,
        );
        c.installedOut = { src: local.address, dst: remote.address };
      }
      if (c.installedIn) {
        this.kernel(
          {
            op: 'updateSa',
            id: { ...c.installedIn, spi: c.spiIn, protocol: 'esp' },
            newSrc: remote.address,
            newDst: local.address,
            encap: encap && { sport: remote.port, dport: local.port },
          },
          note,
        );
        c.installedIn = { src: remote.address, dst: local.address };
      }
    }
  }

  private leaveHalfOpen(sa: IkeSa): void {
    if (sa.initiator || sa.halfOpenKey === undefined) return;
    if (this.halfOpen.get(sa.halfOpenKey) === sa) {
      this.halfOpen.delete(sa.halfOpenKey);
      const n = (this.halfOpenByIp.get(sa.remote.address) ?? 1) - 1;
      if (n > 0) this.halfOpenByIp.set(sa.remote.address, n);
      else this.halfOpenByIp.delete(sa.remote.address);
    }
    sa.halfOpenKey = undefined;
  }

  /** RFC 7296 §2.6: Cookie = <VersionIDofSecret> | Hash(Ni | IPi | SPIi | <secret>). */
  private cookieFor(msg: IkeMessage, remote: Endpoint): Uint8Array {
    const ni = msg.payloads.find((p) => p.type === PayloadType.NONCE && 'data' in p) as
      | { data: Uint8Array }
      | undefined;
    const h = createHash('sha256');
    h.update(ni?.data ?? new Uint8Array(0));
    h.update(remote.address);
    h.update(spiHex(msg.header.spiI));
    h.update(this.cookieSecret);
    return concat(new Uint8Array([1]), new Uint8Array(h.digest()));
  }

  /** Intentional ends of an IKE_SA after which nothing is re-established. */
  private static readonly FINAL =
    /^(terminated by command|shutting down|rekeyed|redundant|replaced after INITIAL_CONTACT|half-open timeout)/;

  /**
   * start_action=start (and dpd_action/close_action=restart|start): bring the connection back after
   * an unintended end, with exponential backoff (1 s doubling up to 60 s, reset once established).
   */
  private maybeRestart(sa: IkeSa, reason: string): void {
    const conn = sa.conn;
    if (IkeEngine.FINAL.test(reason) || this.shuttingDown) return;
    // A dead peer is handled by dpd_action alone (clear/trap mean: do not re-initiate), as in
    // strongSwan; other unintended ends follow start_action/close_action.
    const wanted = reason.startsWith('peer unreachable')
      ? conn.dpdAction === 'restart'
      : conn.children.some((c) => c.startAction === 'start' || c.closeAction === 'start');
    if (!wanted || !conn.remoteAddrs.some((a) => a !== '%any')) return;
    if (this.all().some((o) => o !== sa && o.conn === conn && o.state !== 'DESTROYED')) return;
    const delay = this.restartBackoff.get(conn.name) ?? 0;
    this.restartBackoff.set(conn.name, Math.min(60_000, Math.max(1_000, delay * 2)));
    this.log('info', 'ike', `${conn.name}: re-establishing in ${(delay / 1000).toFixed(0)} s (${reason})`);
    this.armEngine(`restart:${conn.name}`, this.now + delay, () => this.initiate(conn));
  }

  private jittered(ms: number): number {
    return Math.round(ms - ms * 0.1 * this.random.float());
  }

  childInstalled(sa: IkeSa, child: ChildSa, error?: string): void {
    if (error) {
      this.emit({
        ev: 'failure',
        sa: this.ref(sa),
        conn: sa.conn.name,
        reason: 'KERNEL',
        detail: `installing CHILD_SA ${child.cfg.name} failed: ${error}`,
      });
      uninstall(this, sa, child);
      sa.children = sa.children.filter((c) => c !== child);
      this.espSpis.delete(child.spiIn);
      return;
    }
    this.emit({
      ev: 'child-state',
      sa: this.ref(sa),
      child: child.cfg.name,
      uid: child.uid,
      state: 'INSTALLED',
      spiIn: child.spiIn,
      spiOut: child.spiOut,
      algorithms: algorithmName(child.suite),
      // formatted when read (the log line, `ikegw sas`), not for every CHILD_SA under a flood
      get localTs() {
        return describeTs(child.localTs);
      },
      get remoteTs() {
        return describeTs(child.remoteTs);
      },
      encap: child.encap,
    });
    const cfg = child.cfg;
    if (cfg.rekeyTime > 0) {
      child.rekeyAtMs = this.now + this.jittered(cfg.rekeyTime * 1000);
      this.arm(sa, `rekey-child:${child.uid}`, child.rekeyAtMs);
    }
    if (cfg.lifeTime > 0) {
      child.expireAtMs = this.now + cfg.lifeTime * 1000;
      this.arm(sa, `expire-child:${child.uid}`, child.expireAtMs);
    }
  }

  // ------------------------------------------------------------------------------ messages

  /** Encode a message; protected ones are fragmented (RFC 7383) when negotiated and too large. */
  private encode(
    sa: IkeSa,
    exchange: number,
    response: boolean,
    msgId: number,
    payloads: Payload[],
  ): Uint8Array[] {
    const flags = (sa.initiator ? HeaderFlag.INITIATOR : 0) | (response ? HeaderFlag.RESPONSE : 0);
    const header = {
      spiI: sa.spiI,
      spiR: sa.spiR,
      nextPayload: 0,
      version: IKE_VERSION,
      exchange,
      flags,
      msgId,
      length: 0,
    };
    if (exchange === ExchangeType.IKE_SA_INIT) return [encodeMessage({ header, payloads })];
    const cipher = sa.cipherOut!;
    const inner = encodePayloadChain(payloads);
    const firstType = payloads[0]?.type ?? PayloadType.NONE;
    const seal = (type: number, genericExtra: number[], plain: Uint8Array, innerType: number): Uint8Array => {
      const bodyLen = cipher.bodyLength(plain.length);
      const hdrLen = 4 + genericExtra.length;
      const w = new Writer(HEADER_LEN + hdrLen);
      encodeHeader(w, { ...header, nextPayload: type, length: HEADER_LEN + hdrLen + bodyLen });
      w.u8(innerType)
        .u8(0)
        .u16(hdrLen + bodyLen);
      for (const b of genericExtra) w.u8(b);
      const prefix = w.finish();
      return concat(prefix, cipher.seal(prefix, plain, this.random.bytes(cipher.ivLen)));
    };
    // Room for payload bytes in one datagram: IP+UDP (IPv4: 28, IPv6: 48), non-ESP marker, IKE
    // header, SKF header, IV, ICV and worst-case padding.
    const ipUdp = sa.remote.address.includes(':') ? 48 : 28;
    const overhead = ipUdp + 4 + HEADER_LEN + 8 + cipher.ivLen + cipher.icvLen + cipher.blockLen;
    const whole = ipUdp + 4 + HEADER_LEN + 4 + cipher.bodyLength(inner.length);
    if (
      !(
        sa.peerFragmentation &&
        sa.conn.fragmentation &&
        whole > sa.conn.fragmentSize &&
        exchange !== ExchangeType.IKE_SA_INIT
      )
    ) {
      return [seal(PayloadType.SK, [], inner, firstType)];
    }
    const room = Math.max(64, sa.conn.fragmentSize - overhead);
    const total = Math.ceil(inner.length / room);
    const out: Uint8Array[] = [];
    for (let i = 0; i < total; i++) {
      const num = i + 1;
      // RFC 7383 §2.5: Next Payload is the first inner payload's type in fragment 1, 0 in the others.
      out.push(
        seal(
          PayloadType.SKF,
          [num >> 8, num & 0xff, total >> 8, total & 0xff],
          inner.subarray(i * room, (i + 1) * room),
          i === 0 ? firstType : 0,
        ),
      );
    }
    return out;
  }

  /**
   * Verify and decrypt SK, or collect SKF fragments (RFC 7383 §2.6) until the message is complete.
   * Returns undefined while fragments are missing. `first` is the datagram that identifies the
   * request for retransmission detection (fragment 1 for fragmented ones).
   */
  private unprotect(
    sa: IkeSa,
    msg: IkeMessage,
    bytes: Uint8Array,
  ): { inner: Payload[]; first: Uint8Array } | undefined {
    const last = msg.payloads[msg.payloads.length - 1];
    if (!sa.cipherIn || !last || (last.type !== PayloadType.SK && last.type !== PayloadType.SKF)) {
      throw new DecodeError(`${exchangeName(msg.header.exchange)} without SK payload`);
    }
    if (last.type === PayloadType.SK) {
      const sk = last as SkPayload;
      const plain = sa.cipherIn.open(bytes.subarray(0, bytes.length - sk.data.length), sk.data);
      return { inner: decodeAuthenticated(sk.innerType, plain), first: bytes };
    }
    const f = last as SkfPayload;
    if (f.totalFragments > MAX_FRAGMENTS)
      throw new DecodeError(`${f.totalFragments} fragments is more than we reassemble (${MAX_FRAGMENTS})`);
    const plain = sa.cipherIn.open(bytes.subarray(0, bytes.length - f.data.length), f.data);
    const response = (msg.header.flags & HeaderFlag.RESPONSE) !== 0;
    let r = sa.reassembly;
    if (!r || r.msgId !== msg.header.msgId || r.response !== response || r.total !== f.totalFragments) {
      r = {
        msgId: msg.header.msgId,
        response,
        total: f.totalFragments,
        parts: new Map(),
        innerType: 0,
        first: bytes,
        size: 0,
      };
      sa.reassembly = r;
    }
    if (r.parts.has(f.fragmentNumber)) return undefined;
    r.parts.set(f.fragmentNumber, plain);
    r.size += plain.length;
    if (f.fragmentNumber === 1) {
      r.innerType = f.innerType;
      r.first = bytes;
    }
    if (r.size > MAX_REASSEMBLED) {
      sa.reassembly = undefined;
      throw new DecodeError(`reassembled message would exceed ${MAX_REASSEMBLED} bytes`);
    }
    if (r.parts.size < r.total) return undefined;
    sa.reassembly = undefined;
    const whole = concat(...Array.from({ length: r.total }, (_, i) => r!.parts.get(i + 1)!));
    return { inner: decodeAuthenticated(r.innerType, whole), first: r.first };
  }

  private sendPackets(
    sa: IkeSa,
    packets: Uint8Array[],
    exchange: number,
    response: boolean,
    msgId: number,
    payloads: Payload[],
    retransmit?: number,
  ): void {
    for (const bytes of packets) this.out.push({ kind: 'send', local: sa.local, remote: sa.remote, bytes });
    this.emit({
      ev: 'message',
      sa: this.ref(sa),
      dir: 'out',
      exchange: exchangeName(exchange),
      response,
      msgId,
      get summary() {
        return summarize(payloads);
      },
      cookie: isCookieChallenge(exchange, response, payloads),
      bytes: packets.reduce((n, p) => n + p.length, 0),
      remote: sa.remote,
      retransmit,
    });
  }

  private dropped(remote: Endpoint, reason: string, detail: string): void {
    this.emit({ ev: 'dropped', reason, remote, detail });
  }

  private onDatagram(local: Endpoint, remote: Endpoint, bytes: Uint8Array): void {
    let msg: IkeMessage;
    try {
      msg = decodeMessage(bytes);
    } catch (e) {
      if (
        e instanceof UnsupportedVersionError &&
        (e.header.flags & HeaderFlag.RESPONSE) === 0 &&
        e.header.exchange === ExchangeType.IKE_SA_INIT
      ) {
        // RFC 7296 §2.5: answer with INVALID_MAJOR_VERSION carrying the highest version we support.
        const header = {
          ...e.header,
          spiR: 0n,
          version: IKE_VERSION,
          flags: HeaderFlag.RESPONSE,
          nextPayload: 0,
          length: 0,
        };
        const bytes = encodeMessage({ header, payloads: [notify(Notify.INVALID_MAJOR_VERSION)] });
        this.out.push({ kind: 'send', local, remote, bytes });
      }
      return this.dropped(remote, 'malformed', (e as Error).message);
    }
    const h = msg.header;
    const response = (h.flags & HeaderFlag.RESPONSE) !== 0;
    const fromInitiator = (h.flags & HeaderFlag.INITIATOR) !== 0;
    if (h.exchange === ExchangeType.IKE_SA_INIT && !response) {
      if (!fromInitiator || h.spiR !== 0n || h.msgId !== 0)
        return this.dropped(remote, 'malformed', 'IKE_SA_INIT request with bad flags, SPIr or message ID');
      return this.onInitRequest(local, remote, msg, bytes);
    }
    const sa = this.bySpi.get(fromInitiator ? h.spiR : h.spiI);
    if (
      !sa ||
      sa.initiator === fromInitiator ||
      (sa.spiR !== 0n && h.spiR !== sa.spiR && h.exchange !== ExchangeType.IKE_SA_INIT) ||
      h.spiI !== sa.spiI
    ) {
      return this.dropped(
        remote,
        'unknown-spi',
        `no IKE_SA for SPIs ${spiHex(h.spiI)}_i ${spiHex(h.spiR)}_r`,
      );
    }
    if (response) this.onResponse(sa, msg, bytes, remote);
    else this.onRequest(sa, msg, bytes, local, remote);
  }

  private emitIn(
    sa: IkeSa | undefined,
    msg: IkeMessage,
    inner: Payload[],
    bytes: Uint8Array,
    remote: Endpoint,
  ): void {
    this.emit({
      ev: 'message',
      sa: sa ? this.ref(sa) : undefined,
      dir: 'in',
      exchange: exchangeName(msg.header.exchange),
      response: (msg.header.flags & HeaderFlag.RESPONSE) !== 0,
      msgId: msg.header.msgId,
      get summary() {
        return summarize(inner);
      },
      cookie: isCookieChallenge(msg.header.exchange, (msg.header.flags & HeaderFlag.RESPONSE) !== 0, inner),
      bytes: bytes.length,
      remote,
    });
  }

  private onResponse(sa: IkeSa, msg: IkeMessage, bytes: Uint8Array, remote: Endpoint): void {
    const p = sa.pending;
    if (!p || p.msgId !== msg.header.msgId || p.exchange !== msg.header.exchange) {
      return this.dropped(
        remote,
        'unexpected-response',
        `${exchangeName(msg.header.exchange)} response ${msg.header.msgId} matches no request of IKE_SA ${sa.uid}`,
      );
    }
    let inner: Payload[];
    if (msg.header.exchange === ExchangeType.IKE_SA_INIT) {
      inner = msg.payloads;
    } else {
      try {
        const u = this.unprotect(sa, msg, bytes);
        if (!u) return; // more fragments to come
        inner = u.inner;
      } catch (e) {
        return this.dropped(
          remote,
          e instanceof IntegrityError ? 'integrity' : 'malformed',
          (e as Error).message,
        );
      }
    }
    try {
      checkPayloadRules(
        msg.header.exchange,
        true,
        msg.payloads,
        msg.header.exchange === ExchangeType.IKE_SA_INIT ? undefined : inner,
      );
    } catch (e) {
      return this.dropped(remote, 'malformed', (e as Error).message);
    }
    this.emitIn(sa, msg, inner, bytes, remote);
    if (msg.header.exchange === ExchangeType.IKE_SA_INIT) sa.initResponse = bytes;
    else if (sa.natRemote) this.followPeer(sa, sa.local, remote);
    sa.pending = undefined;
    this.cancel(sa, 'retransmit');
    sa.nextMsgId = msg.header.msgId + 1;
    sa.lastInboundMs = this.now;
    p.onResponse(msg, inner);
    this.runQueue(sa);
  }

  private runQueue(sa: IkeSa): void {
    const q = this.queues.get(sa);
    while (q?.length && !sa.pending && sa.state !== 'DESTROYED') q.shift()!();
  }

  private onRequest(sa: IkeSa, msg: IkeMessage, bytes: Uint8Array, local: Endpoint, remote: Endpoint): void {
    const id = msg.header.msgId;
    if (id !== sa.nextPeerMsgId) {
      const cached = sa.lastResponse;
      if (cached && cached.msgId === id && cached.requestDigest === digest(bytes)) {
        // RFC 7296 §2.1: a retransmitted request gets the same response, not a second processing.
        for (const b of cached.packets)
          this.out.push({ kind: 'send', local: sa.local, remote: sa.remote, bytes: b });
        this.emit({
          ev: 'message',
          sa: this.ref(sa),
          dir: 'out',
          exchange: exchangeName(msg.header.exchange),
          response: true,
          msgId: id,
          summary: '(retransmitted response)',
          bytes: cached.packets.reduce((n, b) => n + b.length, 0),
          remote: sa.remote,
          retransmit: 1,
        });
        return;
      }
      return this.dropped(
        remote,
        'message-id',
        `request ${id} on IKE_SA ${sa.uid}, expected ${sa.nextPeerMsgId}`,
      );
    }
    let inner: Payload[];
    try {
      const u = this.unprotect(sa, msg, bytes);
      if (!u) return; // more fragments to come
      inner = u.inner;
      bytes = u.first;
    } catch (e) {
      if (e instanceof AuthenticatedSyntaxError) {
        // RFC 7296 §3.10.1: authentic (ID and ICV valid) but malformed: answer INVALID_SYNTAX.
        sa.nextPeerMsgId = id + 1;
        this.log(
          'warn',
          'ike',
          `malformed ${exchangeName(msg.header.exchange)} request ${id}: ${e.message}`,
          sa,
        );
        this.respond(sa, msg, bytes, [notify(Notify.INVALID_SYNTAX)]);
        if (sa.state === 'CONNECTING') this.destroy(sa, 'invalid syntax');
        return;
      }
      return this.dropped(
        remote,
        e instanceof IntegrityError ? 'integrity' : 'malformed',
        (e as Error).message,
      );
    }
    this.emitIn(sa, msg, inner, bytes, remote);
    sa.nextPeerMsgId = id + 1;
    sa.lastInboundMs = this.now;
    // The peer's authenticated request tells us where it is now (NAT-T float, NAT rebinding).
    this.followPeer(sa, local, remote);
    const critical = findUnsupportedCritical(inner);
    if (critical !== undefined) {
      this.respond(sa, msg, bytes, [notify(Notify.UNSUPPORTED_CRITICAL_PAYLOAD, new Uint8Array([critical]))]);
      if (msg.header.exchange === ExchangeType.IKE_AUTH) this.destroy(sa, 'unsupported critical payload');
      return;
    }
    try {
      checkPayloadRules(msg.header.exchange, false, msg.payloads, inner);
    } catch (e) {
      this.log(
        'warn',
        'ike',
        `malformed ${exchangeName(msg.header.exchange)} request: ${(e as Error).message}`,
        sa,
      );
      this.respond(sa, msg, bytes, [notify(Notify.INVALID_SYNTAX)]);
      if (msg.header.exchange === ExchangeType.IKE_AUTH) this.destroy(sa, 'invalid syntax');
      return;
    }
    switch (msg.header.exchange) {
      case ExchangeType.IKE_AUTH:
        if (sa.initiator || sa.state !== 'CONNECTING')
          return this.dropped(remote, 'unexpected', 'IKE_AUTH request in wrong state');
        return processAuthRequest(this, sa, msg, bytes, inner);
      case ExchangeType.INFORMATIONAL:
        return processInformationalRequest(this, sa, msg, bytes, inner);
      case ExchangeType.CREATE_CHILD_SA:
        return processCreateChildRequest(this, sa, msg, bytes, inner);
      default:
        this.respond(sa, msg, bytes, [notify(Notify.INVALID_SYNTAX)]);
    }
  }

  private sendUnprotected(local: Endpoint, remote: Endpoint, req: IkeMessage, payloads: Payload[]): void {
    const header = { ...req.header, spiR: 0n, flags: HeaderFlag.RESPONSE, nextPayload: 0, length: 0 };
    const bytes = encodeMessage({ header, payloads });
    this.out.push({ kind: 'send', local, remote, bytes });
    this.emit({
      ev: 'message',
      dir: 'out',
      exchange: 'IKE_SA_INIT',
      response: true,
      msgId: 0,
      get summary() {
        return summarize(payloads);
      },
      cookie: isCookieChallenge(ExchangeType.IKE_SA_INIT, true, payloads),
      bytes: bytes.length,
      remote,
    });
  }

  private connectionFor(remote: Endpoint): ConnectionConfig | undefined {
    return (
      this.cfg.connections.find((c) => c.remoteAddrs.includes(remote.address)) ??
      this.cfg.connections.find((c) => c.remoteAddrs.includes('%any'))
    );
  }

  private onInitRequest(local: Endpoint, remote: Endpoint, msg: IkeMessage, bytes: Uint8Array): void {
    const key = `${remote.address}|${remote.port}|${spiHex(msg.header.spiI)}`;
    const existing = this.halfOpen.get(key);
    if (existing) {
      const c = existing.lastResponse;
      if (c && c.msgId === 0 && c.requestDigest === digest(bytes)) {
        for (const b of c.packets)
          this.out.push({ kind: 'send', local: existing.local, remote: existing.remote, bytes: b });
        return;
      }
      return this.dropped(remote, 'duplicate', 'second, different IKE_SA_INIT with the same SPIi');
    }
    this.emitIn(undefined, msg, msg.payloads, bytes, remote);
    // DoS protection (RFC 7296 §2.6): a per-address half-open limit, and stateless COOKIEs once
    // the half-open count reaches the threshold, so a flood costs us no state and no DH.
    const perIp = this.halfOpenByIp.get(remote.address) ?? 0;
    const ipThreshold = this.cfg.cookieThresholdIp ?? 0;
    // cookieThreshold -1: no COOKIEs at all (nor per address)
    if (
      this.cfg.cookieThreshold >= 0 &&
      (this.halfOpen.size >= this.cfg.cookieThreshold || (ipThreshold > 0 && perIp >= ipThreshold))
    ) {
      const want = this.cookieFor(msg, remote);
      const first = msg.payloads[0];
      const ok =
        first?.type === PayloadType.NOTIFY &&
        'notifyType' in first &&
        first.notifyType === Notify.COOKIE &&
        equalBytes(first.data, want);
      if (!ok) {
        this.emit({ ev: 'cookie', remote, halfOpen: this.halfOpen.size });
        return this.sendUnprotected(local, remote, msg, [notify(Notify.COOKIE, want)]);
      }
    }
    if (this.cfg.halfOpenPerIp > 0 && perIp >= this.cfg.halfOpenPerIp) {
      return this.dropped(
        remote,
        'half-open-limit',
        `${perIp} half-open IKE_SAs from ${remote.address} already`,
      );
    }
    const critical = findUnsupportedCritical(msg.payloads);
    if (critical !== undefined) {
      return this.sendUnprotected(local, remote, msg, [
        notify(Notify.UNSUPPORTED_CRITICAL_PAYLOAD, new Uint8Array([critical])),
      ]);
    }
    try {
      checkPayloadRules(ExchangeType.IKE_SA_INIT, false, msg.payloads, undefined);
    } catch (e) {
      this.dropped(remote, 'malformed', (e as Error).message);
      return this.sendUnprotected(local, remote, msg, [notify(Notify.INVALID_SYNTAX)]);
    }
    const conn = this.connectionFor(remote);
    if (!conn) {
      this.emit({
        ev: 'failure',
        reason: 'NO_PROPOSAL_CHOSEN',
        detail: `no connection configured for peer ${remote.address} (remote_addrs)`,
      });
      return this.sendUnprotected(local, remote, msg, [notify(Notify.NO_PROPOSAL_CHOSEN)]);
    }
    const sa = this.newSa(conn, false, local, remote);
    sa.spiI = msg.header.spiI;
    sa.spiR = this.newIkeSpi();
    try {
      const payloads = processInitRequest(this, conn, msg, bytes, local, remote, sa);
      this.register(sa);
      this.halfOpen.set(key, sa);
      sa.halfOpenKey = key;
      this.halfOpenByIp.set(remote.address, perIp + 1);
      this.emit({ ev: 'ike-state', sa: this.ref(sa), state: 'CONNECTING', initiator: false });
      this.respond(sa, msg, bytes, payloads);
      sa.nextPeerMsgId = 1;
      this.arm(sa, 'half-open', this.now + this.cfg.halfOpenTimeoutMs);
    } catch (e) {
      if (!(e instanceof IkeProtocolError)) throw e;
      if (e.notify === 'INVALID_KE_PAYLOAD') {
        this.log('info', 'ike', `${e.message}: sending INVALID_KE_PAYLOAD`, undefined, {
          peer: remote.address,
        });
      } else {
        this.emit({
          ev: 'failure',
          conn: conn.name,
          reason: e.notify === 'NO_PROPOSAL_CHOSEN' ? 'NO_PROPOSAL_CHOSEN' : 'INVALID_SYNTAX',
          detail: e.message,
          fields: { peer: remote.address },
        });
      }
      const type = Notify[e.notify as keyof typeof Notify] ?? Notify.INVALID_SYNTAX;
      this.sendUnprotected(local, remote, msg, [notify(type, e.notifyData)]);
    }
  }

  // ------------------------------------------------------------------------------ SAs

  newIkeSpi(): bigint {
    for (;;) {
      const b = this.random.bytes(8);
      let v = 0n;
      for (const x of b) v = (v << 8n) | BigInt(x);
      if (v !== 0n && !this.bySpi.has(v)) return v;
    }
  }

  private newSa(conn: ConnectionConfig, initiator: boolean, local: Endpoint, remote: Endpoint): IkeSa {
    return {
      uid: this.newUid(),
      conn,
      initiator,
      spiI: 0n,
      spiR: 0n,
      state: 'CONNECTING',
      local,
      remote,
      natLocal: false,
      natRemote: false,
      nonceI: new Uint8Array(0),
      nonceR: new Uint8Array(0),
      nextMsgId: 0,
      nextPeerMsgId: 0,
      children: [],
      createdAtMs: this.now,
      keRetries: 0,
      peerFragmentation: false,
      localIdText: '',
      remoteIdText: '',
      timers: new Map(),
      lastInboundMs: this.now,
      sentInitialContact: false,
      // Every optional field too, so that all IKE_SAs share one V8 object shape with every field
      // in the object: added later, each would move the SA through a chain of shapes (property
      // accesses on SAs in different stages then miss their inline caches) and into an extra
      // out-of-object property array (~110 bytes per IKE_SA in a heap snapshot of 2000).
      suite: undefined,
      ke: undefined,
      initRequest: undefined,
      initResponse: undefined,
      keys: undefined,
      cipherOut: undefined,
      cipherIn: undefined,
      pending: undefined,
      lastResponse: undefined,
      establishedAtMs: undefined,
      cookie: undefined,
      firstChild: undefined,
      firstChildCfg: undefined,
      offeredSpiIn: undefined,
      offeredChildSpis: undefined,
      ikeRekey: undefined,
      ikeRekeyedByPeer: undefined,
      reassembly: undefined,
      halfOpenKey: undefined,
      rekeyedReason: undefined,
      predecessor: undefined,
      rekeyedFrom: undefined,
    };
  }

  private initiate(conn: ConnectionConfig, child?: ChildConfig): void {
    // A restart, close_action or acquire armed before a reload may name a connection the reload
    // removed or replaced: it is not set up again from the old settings.
    if (!this.cfg.connections.includes(conn)) {
      this.log('debug', 'ike', `${conn.name}: not initiating, the connection was reloaded`);
      return;
    }
    const remote = conn.remoteAddrs.find((a) => a !== '%any');
    if (!remote) {
      this.log('error', 'ike', `cannot initiate ${conn.name}: remote_addrs has no concrete address`);
      return;
    }
    const active = this.all().find(
      (s) => s.conn === conn && (s.state === 'CONNECTING' || s.state === 'ESTABLISHED'),
    );
    if (active) {
      this.log(
        'debug',
        'ike',
        `${conn.name}: IKE_SA ${active.uid} already ${active.state.toLowerCase()}`,
        active,
      );
      return;
    }
    const sa = this.newSa(
      conn,
      true,
      { address: conn.localAddrs[0] ?? '0.0.0.0', port: this.ikePort },
      { address: remote, port: conn.remotePort },
    );
    sa.spiI = this.newIkeSpi();
    sa.firstChild = child ?? conn.children[0];
    sa.firstChildCfg = sa.firstChild;
    this.register(sa);
    this.emit({
      ev: 'ike-state',
      sa: this.ref(sa),
      state: 'CONNECTING',
      initiator: true,
      detail: `initiating to ${remote}`,
    });
    const group = conn.ikeProposals[0]?.dh[0];
    if (group === undefined) {
      this.log('error', 'ike', `cannot initiate ${conn.name}: no key exchange group configured`);
      return this.destroy(sa, 'no key exchange group');
    }
    sendInitRequest(this, sa, group, (s) => sendAuthRequest(this, s));
  }

  // ------------------------------------------------------------------------------ events

  private onStart(): void {
    for (const conn of this.cfg.connections) {
      let started = false;
      for (const child of conn.children) {
        if (child.startAction === 'trap') this.installTraps(conn, child);
        if (child.startAction === 'start' && !started) {
          started = true;
          this.initiate(conn, child);
        }
      }
    }
  }

  private installTraps(conn: ConnectionConfig, child: ChildConfig, remove = false): void {
    const remote = conn.remoteAddrs.find((a) => a !== '%any');
    if (!remote) return;
    for (const p of trapPolicies(conn.localAddrs[0] ?? '0.0.0.0', remote, child)) {
      this.kernel({ op: remove ? 'delPolicy' : 'addPolicy', policy: p }, (err) => {
        if (err)
          this.log(
            'error',
            'kernel',
            `${remove ? 'removing' : 'installing'} trap policy for ${conn.name}/${child.name} failed: ${err}`,
          );
      });
    }
  }

  private onKernelDone(opId: number, error?: string): void {
    const cb = this.ops.get(opId);
    if (!cb) return;
    this.ops.delete(opId);
    cb(error);
  }

  private onKernelEvent(ev: KernelEvent): void {
    if (ev.kind === 'acquire') {
      for (const conn of this.cfg.connections) {
        const child = conn.children.find((c) => c.reqid === ev.reqid);
        if (child) {
          this.log(
            'info',
            'ike',
            `acquire for ${conn.name}/${child.name} (reqid ${ev.reqid}): traffic waits for the tunnel`,
          );
          return this.initiate(conn, child);
        }
      }
      return;
    }
    if (ev.kind === 'expire') {
      for (const sa of this.all()) {
        const child = sa.children.find((c) => c.spiIn === ev.spi || c.spiOut === ev.spi);
        if (!child) continue;
        if (!ev.hard) {
          this.log(
            'info',
            'child',
            `CHILD_SA ${child.cfg.name} reached its soft byte/packet limit: rekeying`,
            sa,
          );
          return rekeyChild(this, sa, child);
        }
        this.log(
          'info',
          'child',
          `CHILD_SA ${child.cfg.name} reached its hard byte/packet limit: deleting`,
          sa,
        );
        return sendChildDelete(this, sa, child);
      }
      return;
    }
    if (ev.kind === 'mapping') {
      // The data path saw ESP-in-UDP from a new port (XFRM_MSG_MAPPING): follow it like IKE would.
      for (const sa of this.all()) {
        if (sa.children.some((c) => c.spiIn === ev.spi) && sa.natRemote)
          return this.followPeer(sa, sa.local, ev.newRemote);
      }
      return;
    }
    this.log('debug', 'kernel', `kernel event not handled`);
  }

  private onCommand(cmd: Command): void {
    switch (cmd.cmd) {
      case 'initiate': {
        const conn = this.cfg.connections.find((c) => c.name === cmd.conn);
        if (!conn) return this.log('warn', 'ike', `initiate: no connection named ${cmd.conn}`);
        return this.initiate(
          conn,
          conn.children.find((c) => c.name === cmd.child),
        );
      }
      case 'terminate':
        for (const sa of this.all())
          if (sa.conn.name === cmd.conn) sendIkeDelete(this, sa, 'terminated by command');
        return;
      case 'shutdown':
        this.shuttingDown = true;
        for (const sa of this.all()) sendIkeDelete(this, sa, 'shutting down');
        for (const conn of this.cfg.connections)
          for (const child of conn.children)
            if (child.startAction === 'trap') this.installTraps(conn, child, true);
        return;
      case 'reconfigure':
        return this.reconfigure(cmd.config, cmd.quiet === true);
      case 'rekey':
        for (const sa of this.all()) {
          if (sa.conn.name !== cmd.conn || sa.state !== 'ESTABLISHED') continue;
          if (cmd.ike) rekeyIke(this, sa);
          else
            for (const c of [...sa.children])
              if (!cmd.child || c.cfg.name === cmd.child) rekeyChild(this, sa, c);
        }
        return;
    }
  }

  /**
   * A reloaded configuration (src/ike/reconfigure.ts): removed connections go, added ones start,
   * changed ones are updated in place or set up again, untouched ones are not touched at all.
   */
  private reconfigure(next: EngineConfig, quiet = false): void {
    const cur = this.cfg;
    carryReqids(cur, next);
    const changes = diffConnections(cur, next);
    const oldByName = new Map(cur.connections.map((c) => [c.name, c]));
    const newByName = new Map(next.connections.map((c) => [c.name, c]));
    const stop = (conn: ConnectionConfig, why: string) => {
      for (const sa of this.all()) if (sa.conn === conn) sendIkeDelete(this, sa, why);
      for (const child of conn.children)
        if (child.startAction === 'trap') this.installTraps(conn, child, true);
    };
    const start = (conn: ConnectionConfig) => {
      let started = false;
      for (const child of conn.children) {
        if (child.startAction === 'trap') this.installTraps(conn, child);
        if (child.startAction === 'start' && !started) {
          started = true;
          this.initiate(conn, child);
        }
      }
    };
    // Globals (retransmit, DoS limits, keepalive) are read when used: they apply from now on.
    this.cfg = next;
    for (const ch of changes) {
      if (ch.action !== 'unchanged' && ch.action !== 'updated') this.restartBackoff.delete(ch.conn);
      const o = oldByName.get(ch.conn);
      const n = newByName.get(ch.conn);
      switch (ch.action) {
        case 'removed':
          stop(o!, 'connection removed by reload');
          break;
        case 'added':
          start(n!);
          break;
        case 're-established':
          stop(o!, `connection changed by reload (${ch.fields.join(', ')})`);
          start(n!);
          break;
        case 'updated':
          for (const oc of o!.children) {
            const nc = n!.children.find((c) => c.name === oc.name)!;
            if (oc.startAction === 'trap' && nc.startAction !== 'trap') this.installTraps(o!, oc, true);
            if (oc.startAction !== 'trap' && nc.startAction === 'trap') this.installTraps(n!, nc);
          }
          for (const sa of this.all()) {
            if (sa.conn !== o) continue;
            sa.conn = n!;
            const map = (c: ChildConfig | undefined) => (c ? n!.children.find((x) => x.name === c.name) : c);
            sa.firstChild = map(sa.firstChild);
            sa.firstChildCfg = map(sa.firstChildCfg);
            for (const child of sa.children) child.cfg = map(child.cfg) ?? child.cfg;
          }
          break;
        case 'unchanged':
          // the same settings: keep the running objects, which the SAs point at
          next.connections[next.connections.indexOf(n!)] = o!;
          break;
      }
      this.emit({
        ev: 'log',
        level: ch.action === 'unchanged' || quiet ? 'debug' : 'info',
        subsys: 'ike',
        msg: `reload: connection ${ch.conn} ${ch.action}${'fields' in ch ? ` (${ch.fields.join(', ')})` : ''}`,
        fields: { conn: ch.conn, reload: ch.action },
      });
    }
  }

  private onTimer(key: TimerKey): void {
    if (key.sa === ENGINE_TIMERS) return this.onEngineTimer(key);
    let spi: bigint;
    try {
      spi = BigInt(`0x${key.sa}`);
    } catch {
      return;
    }
    const sa = this.bySpi.get(spi);
    if (!sa || sa.timers.get(key.what) !== key.gen) return; // stale
    sa.timers.delete(key.what);
    const [what, arg] = key.what.split(':') as [string, string | undefined];
    const child = arg !== undefined ? sa.children.find((c) => c.uid === Number(arg)) : undefined;
    switch (what) {
      case 'retransmit':
        return this.retransmit(sa);
      case 'half-open':
        if (sa.state === 'CONNECTING') {
          this.emit({
            ev: 'failure',
            sa: this.ref(sa),
            conn: sa.conn.name,
            reason: 'TIMEOUT',
            detail: `half-open IKE_SA from ${sa.remote.address} timed out without IKE_AUTH`,
          });
          this.destroy(sa, 'half-open timeout');
        }
        return;
      case 'dpd':
        return this.dpd(sa);
      case 'keepalive':
        return this.keepalive(sa);
      case 'rekeyed-timeout':
        if (sa.state === 'REKEYED') this.destroy(sa, sa.rekeyedReason ?? 'rekeyed');
        return;
      case 'rekey-ike':
        if (sa.state === 'ESTABLISHED') rekeyIke(this, sa);
        return;
      case 'rekey-child':
        if (child?.state === 'INSTALLED') rekeyChild(this, sa, child);
        return;
      case 'expire-child':
        if (child && child.state !== 'DELETED' && child.state !== 'DELETING') {
          // A CHILD_SA that could not be rekeyed (the reason was logged with the rekey's failure)
          // is not left down: a new one is negotiated on the same IKE_SA, as for start_action start.
          const recreate = child.cfg.startAction !== 'none' && sa.state === 'ESTABLISHED';
          this.log(
            'info',
            'child',
            `CHILD_SA ${child.cfg.name} reached its hard lifetime without a rekey; deleting it${recreate ? ' and creating it anew' : ''}`,
            sa,
          );
          sendChildDelete(this, sa, child);
          if (recreate) createChild(this, sa, child.cfg);
        }
        return;
      case 'outbound':
        if (child) outboundTimeout(this, sa, child);
        return;
    }
  }

  private onEngineTimer(key: TimerKey): void {
    const t = this.engineTimers.get(key.what);
    if (!t || t.gen !== key.gen) return;
    this.engineTimers.delete(key.what);
    t.run();
  }

  /** A timer that belongs to no IKE_SA (it outlives the SA that armed it). */
  private armEngine(what: string, atMs: number, run: () => void): void {
    const gen = ++this.timerSeq;
    this.engineTimers.set(what, { gen, run });
    this.out.push({ kind: 'arm', key: { sa: ENGINE_TIMERS, what, gen }, atMs });
  }

  private retransmit(sa: IkeSa): void {
    const p = sa.pending;
    if (!p) return;
    p.attempt++;
    const pastDeadline = p.deadlineMs !== undefined && this.now >= p.deadlineMs;
    if (p.attempt > this.cfg.retransmit.tries || pastDeadline) {
      sa.pending = undefined;
      const after = pastDeadline
        ? `within ${((this.now - p.sentAtMs) / 1000).toFixed(0)} s (dpd_timeout)`
        : `after ${this.cfg.retransmit.tries} retransmits`;
      this.emit({
        ev: 'failure',
        sa: this.ref(sa),
        conn: sa.conn.name,
        reason: 'TIMEOUT',
        detail: `no response from ${sa.remote.address}:${sa.remote.port} to ${p.what} ${after} (UDP 500/4500 blocked, or the peer is down?)`,
      });
      if (p.onTimeout) return p.onTimeout();
      return this.destroy(sa, `${p.what} timed out`);
    }
    this.emit({
      ev: 'retransmit',
      sa: this.ref(sa),
      exchange: exchangeName(p.exchange),
      msgId: p.msgId,
      attempt: p.attempt,
    });
    for (const bytes of p.packets) this.out.push({ kind: 'send', local: sa.local, remote: sa.remote, bytes });
    this.armRetransmit(sa, p.attempt, p.deadlineMs);
  }

  /** strongSwan's schedule; with a deadline (dpd_timeout) the gaps shrink so several tries still fit. */
  private armRetransmit(sa: IkeSa, attempt: number, deadlineMs?: number): void {
    let d = delayMs(this.cfg.retransmit, attempt, this.random.float());
    if (deadlineMs !== undefined) d = Math.min(d, Math.max(1_000, (deadlineMs - this.now) / 2));
    this.arm(sa, 'retransmit', this.now + d);
  }

  private dpd(sa: IkeSa): void {
    if (sa.state !== 'ESTABLISHED') return;
    const delay = sa.conn.dpdDelay * 1000;
    if (!sa.pending && this.now - sa.lastInboundMs >= delay) {
      this.emit({ ev: 'dpd', sa: this.ref(sa), result: 'sent' });
      sendDpd(this, sa, sa.conn.dpdTimeout > 0 ? this.now + sa.conn.dpdTimeout * 1000 : undefined, () => {
        this.emit({ ev: 'dpd', sa: this.ref(sa), result: 'failed' });
        const conn = sa.conn;
        this.emit({
          ev: 'log',
          level: 'warn',
          subsys: 'ike',
          msg: `${conn.name}: peer ${sa.remote.address} unreachable (DPD), dpd_action=${conn.dpdAction}`,
          fields: { dpd: 'failed' },
        });
        // dpd_action: restart re-establishes (destroy -> maybeRestart, first try at once); trap relies
        // on the trap policies, which stay; clear does nothing more.
        this.destroy(sa, 'peer unreachable (DPD)');
      });
    }
    this.arm(sa, 'dpd', this.now + delay);
  }

  private keepalive(sa: IkeSa): void {
    if (sa.state === 'DESTROYED' || !sa.natLocal) return;
    // RFC 3948 §2.3: a single 0xFF octet, only when nothing else was sent (we send it unconditionally; cheap).
    this.out.push({ kind: 'keepalive', local: sa.local, remote: sa.remote });
    this.arm(sa, 'keepalive', this.now + this.cfg.keepalive * 1000);
  }
}
