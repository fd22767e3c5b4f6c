// Prometheus metrics (./prom.ts), modelled on strongSwan's bus/alert_t: event counters are fed
// from the engine's BusEvents (Daemon.onBus), state gauges are computed at scrape time from the
// engine's SA list (Daemon.status) and the data path's per-SA counters (SaInstaller.querySa).
//
// Conventions (https://prometheus.io/docs/practices/naming/): one prefix `ikegw_`, base units
// (seconds, bytes), `_total` for counters, `_info` for constant-1 series that carry labels.
// Labels are bounded: connection and child names (from the configuration), exchange types, failure
// and drop reasons, directions and states — never SPIs, unique ids, addresses or anything that
// changes on every rekey. Free-form label values from the engine (exchange, drop reason) go
// through BoundedLabel, which folds values beyond a fixed number into "other".
//
// Secrets: nothing here reads key material; label values are names, algorithm names and selectors.
// docs/operations.md has the full table; keep it in step with this file.
import { X509Certificate } from 'node:crypto';
import { type Clock, monotonicClock } from '../common/clock.js';
import type { EngineConfig } from '../ike/config.js';
import { parseCert } from '../ike/crypto/x509.js';
import type { IkeSaInfo } from '../ike/engine.js';
import type { BusEvent, ChildState, FailureReason, IkeState, SaRef } from '../ike/events.js';
import type { SaCounters, SaId } from '../ike/ports.js';
import type { AnyBusEvent } from './log.js';
import { registerProcessMetrics } from './process-metrics.js';
import { Counter, Gauge, Histogram, type LabelValues, Registry } from './prom.js';

export const PREFIX = 'ikegw_';

/**
 * Bus events the lifecycle work (rekey collisions, DPD) is expected to add to src/ike/events.ts.
 * Metrics counts them as soon as the engine emits them; until then DPD is derived from `message`
 * and `ike-state` events (see `handle`). Shapes proposed here so the engine and metrics meet.
 */
export type LifecycleEvent =
  | { ev: 'rekey'; sa: SaRef; what: 'ike' | 'child'; child?: string }
  | { ev: 'rekey-collision'; sa: SaRef; what: 'ike' | 'child'; child?: string }
  | { ev: 'dpd'; sa: SaRef; result: 'sent' | 'failed' };

/** What the metrics need from the running daemon (Daemon satisfies it). */
export interface MetricsSource {
  status(): IkeSaInfo[];
  readonly stats?: {
    events: number;
    eventErrors: number;
    effectErrors: number;
    kernelOps: number;
    kernelErrors: number;
    transportErrors: number;
  };
}

/** What the metrics need from the data path: SaInstaller.querySa, plus optional error counters. */
export interface CounterSource {
  querySa(id: SaId): Promise<SaCounters>;
  /**
   * Optional: data-path drop counters since start, by reason (e.g. `replay`, `unknown_spi`,
   * `integrity`, `no_policy`). An installer that can count them implements this method; the
   * metric `ikegw_datapath_errors_total{reason}` then shows them.
   */
  datapathErrors?(): Record<string, number | bigint> | Promise<Record<string, number | bigint>>;
}

/** SA time fields the engine may add to IkeSaInfo/ChildSaInfo; used when present. */
interface ScheduledTimes {
  rekeyAtMs?: number;
  expireAtMs?: number;
}

export interface MetricsOptions {
  config: EngineConfig;
  clock?: Clock;
  /** Process metrics (CPU, memory, fds, event-loop lag; prefixed ikegw_); default true. */
  processMetrics?: boolean;
  version?: string;
  datapath?: string;
}

/** Folds label values beyond `max` distinct ones into "other" (cardinality guard). */
export class BoundedLabel {
  private readonly seen = new Set<string>();
  constructor(private readonly max: number) {}
  value(v: string): string {
    if (this.seen.has(v)) return v;
    if (this.seen.size >= this.max || !/^[A-Za-z0-9_.:()-]{1,64}$/.test(v)) return 'other';
    this.seen.add(v);
    return v;
  }
}

// ---- algorithm names -> info labels ----------------------------------------------------------

export interface AlgorithmLabels {
  encryption: string;
  encryption_key_bits: string;
  integrity: string;
  integrity_key_bits: string;
  prf: string;
  dh_group: string;
}

const FIXED_KEY_BITS: Record<string, number> = { CHACHA20_POLY1305: 256, '3DES': 192, NULL: 0 };
const INTEG_KEY_BITS: Record<string, number> = {
  HMAC_MD5_96: 128,
  HMAC_SHA1_96: 160,
  AES_XCBC_96: 128,
  AES_CMAC_96: 128,
  HMAC_SHA2_256_128: 256,
  HMAC_SHA2_384_192: 384,
  HMAC_SHA2_512_256: 512,
};

/** "AES_CBC_256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048" (engine's suiteName) -> labels. */
export function algorithmLabels(s: string): AlgorithmLabels {
  const parts = s.split('/').filter((p) => p !== '');
  const out: AlgorithmLabels = {
    encryption: parts[0] ?? '',
    encryption_key_bits: '',
    integrity: '',
    integrity_key_bits: '',
    prf: '',
    dh_group: '',
  };
  const enc = out.encryption;
  const fixed = FIXED_KEY_BITS[enc];
  const m = /_(\d+)$/.exec(enc);
  out.encryption_key_bits = fixed !== undefined ? String(fixed) : m ? m[1]! : '';
  for (const p of parts.slice(1)) {
    if (p.startsWith('PRF_')) out.prf = p;
    else if (/^(MODP|ECP|CURVE|KE)_/.test(p)) out.dh_group = p;
    else {
      out.integrity = p;
      const bits = INTEG_KEY_BITS[p];
      out.integrity_key_bits = bits === undefined ? '' : String(bits);
    }
  }
  return out;
}

// ---- the metrics ----------------------------------------------------------------------------------

const IKE_STATES: readonly IkeState[] = ['CONNECTING', 'ESTABLISHED', 'REKEYING', 'REKEYED', 'DELETING'];
const CHILD_STATES: readonly ChildState[] = [
  'CREATED',
  'INSTALLING',
  'INSTALLED',
  'REKEYING',
  'REKEYED',
  'DELETING',
];
/** CHILD_SA states in which the data path holds the SA (its counters can be read). */
const COUNTED_CHILD_STATES = new Set(['INSTALLED', 'REKEYING', 'REKEYED', 'DELETING']);

/** Buckets for IKE_SA set-up time (IKE_SA_INIT sent/received -> IKE_AUTH done), seconds. */
export const SETUP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

type Role = 'initiator' | 'responder' | 'unknown';

interface SaTrack {
  conn: string;
  role: Role;
  /** Saw its CONNECTING: a handshake (an IKE_SA created by a rekey has none). */
  handshake: boolean;
  established: boolean;
  lastFailure?: FailureReason;
}

interface ChildTrack {
  conn: string;
  child: string;
  last: { inBytes: bigint; inPackets: bigint; outBytes: bigint; outPackets: bigint };
}

const ZERO = (): ChildTrack['last'] => ({ inBytes: 0n, inPackets: 0n, outBytes: 0n, outPackets: 0n });

function isLifecycle(ev: AnyBusEvent | LifecycleEvent): ev is LifecycleEvent {
  return ev.ev === 'rekey' || ev.ev === 'rekey-collision' || ev.ev === 'dpd';
}

export class Metrics {
  readonly registry = new Registry();
  private config: EngineConfig;
  private readonly clock: Clock;
  private source: MetricsSource | undefined;
  private counters: CounterSource | undefined;
  private readonly sas = new Map<number, SaTrack>();
  private readonly children = new Map<string, ChildTrack>();
  private readonly retired = new Map<string, ChildTrack['last']>();
  private readonly exchange = new BoundedLabel(16);
  private readonly dropReason = new BoundedLabel(24);
  private readonly dpReason = new BoundedLabel(24);
  private readonly connLabel = new BoundedLabel(256);
  private sawCookieEvent = false;
  /**
   * Live CHILD_SA uids per (conn, child), and the generation last counted: when every CHILD_SA of
   * that generation is gone while newer ones live, a rekey (make-before-break) completed — once,
   * however many redundant CHILD_SAs a collision produced on the way.
   */
  private readonly liveChildren = new Map<string, { live: Set<number>; generation: Set<number> }>();

  // event counters
  private readonly handshakes: Counter<'conn' | 'role' | 'result'>;
  private readonly setup: Histogram<'conn' | 'role'>;
  private readonly failures: Counter<'conn' | 'reason' | 'cause'>;
  private readonly childSetups: Counter<'conn' | 'child'>;
  private readonly messages: Counter<'exchange' | 'direction' | 'type'>;
  private readonly messageBytes: Counter<'direction'>;
  private readonly retransmits: Counter<'conn' | 'exchange' | 'type'>;
  private readonly dropped: Counter<'reason'>;
  private readonly dpd: Counter<'conn' | 'result'>;
  private readonly rekeys: Counter<'conn' | 'sa'>;
  private readonly collisions: Counter<'conn' | 'sa'>;
  private readonly cookies: Counter<'direction'>;
  private readonly reloads: Counter<'result'>;
  // scrape-time
  private readonly configuredConns: Gauge;
  private readonly configuredChildren: Gauge;
  private readonly ikeSas: Gauge<'conn' | 'state'>;
  private readonly ikeEstablished: Gauge<'conn'>;
  private readonly ikeRekey: Gauge<'conn'>;
  private readonly ikeInfo: Gauge<string>;
  private readonly childSas: Gauge<'conn' | 'child' | 'state'>;
  private readonly tunnelUp: Gauge<'conn' | 'child'>;
  private readonly childEstablished: Gauge<'conn' | 'child'>;
  private readonly childRekey: Gauge<'conn' | 'child'>;
  private readonly childLifetime: Gauge<'conn' | 'child'>;
  private readonly childEncap: Gauge<'conn' | 'child'>;
  private readonly childInfo: Gauge<string>;
  private readonly childBytes: Counter<'conn' | 'child' | 'direction'>;
  private readonly childPackets: Counter<'conn' | 'child' | 'direction'>;
  private readonly dpErrors: Counter<'reason'>;
  private readonly daemonEvents: Counter;
  private readonly internalErrors: Counter<'where'>;
  private readonly kernelOps: Counter;
  private readonly kernelErrors: Counter;
  private readonly transportErrors: Counter;
  private readonly ready: Gauge;

  constructor(opts: MetricsOptions) {
    this.config = opts.config;
    this.clock = opts.clock ?? monotonicClock;
    const r = [this.registry];
    const counter = <L extends string>(name: string, help: string, labelNames: readonly L[] = []) =>
      new Counter<L>({ name: PREFIX + name, help, labelNames, registers: r });
    const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[] = []) =>
      new Gauge<L>({ name: PREFIX + name, help, labelNames, registers: r });

    this.handshakes = counter(
      'ike_handshakes_total',
      'IKE_SA set-ups by outcome: result="established", or the failure reason in lower case (authentication_failed, no_proposal_chosen, ts_unacceptable, timeout, ...), or "aborted"',
      ['conn', 'role', 'result'],
    );
    this.setup = new Histogram({
      name: `${PREFIX}ike_sa_setup_duration_seconds`,
      help: 'Time from the first IKE_SA_INIT to the established IKE_SA',
      labelNames: ['conn', 'role'],
      buckets: SETUP_BUCKETS,
      registers: r,
    });
    this.failures = counter(
      'failures_total',
      'Failures by reason (every failure the engine reports, during set-up or later) and, for AUTHENTICATION_FAILED, cause (untrusted-ca, expired, revoked, id-mismatch, bad-signature, no-cert, psk-mismatch, peer-rejected, ...; "" when none); conn="" when no connection matched',
      ['conn', 'reason', 'cause'],
    );
    this.childSetups = counter('child_sa_installs_total', 'CHILD_SAs installed in the data path', [
      'conn',
      'child',
    ]);
    this.messages = counter(
      'ike_messages_total',
      'IKE messages sent (direction="out") and received ("in"), first transmissions only',
      ['exchange', 'direction', 'type'],
    );
    this.messageBytes = counter('ike_message_bytes_total', 'Bytes of IKE messages (UDP payload)', [
      'direction',
    ]);
    this.retransmits = counter(
      'ike_retransmits_total',
      'Retransmitted requests (type="request") and responses repeated for a retransmitted request ("response")',
      ['conn', 'exchange', 'type'],
    );
    this.dropped = counter(
      'ike_dropped_total',
      'Received IKE packets dropped, by reason (malformed, integrity, unknown-spi, message-id, ...)',
      ['reason'],
    );
    this.dpd = counter(
      'dpd_total',
      'Dead peer detection: liveness checks sent (result="sent") and peers declared dead ("failed")',
      ['conn', 'result'],
    );
    this.rekeys = counter('rekeys_total', 'Completed rekeyings (sa="ike" or "child")', ['conn', 'sa']);
    this.collisions = counter('rekey_collisions_total', 'Rekey collisions (RFC 7296 §2.8.1)', ['conn', 'sa']);
    this.cookies = counter(
      'ike_cookie_challenges_total',
      'COOKIE challenges sent to initiators (direction="out") and received from responders ("in")',
      ['direction'],
    );
    this.reloads = counter('config_reloads_total', 'Configuration reloads by result', ['result']);

    this.configuredConns = gauge('configured_connections', 'Connections in the configuration');
    this.configuredChildren = gauge(
      'configured_children',
      'CHILD_SA configurations (children) in the configuration',
    );
    this.ikeSas = gauge('ike_sas', 'IKE_SAs by connection and state', ['conn', 'state']);
    this.ikeEstablished = gauge(
      'ike_sa_established_seconds',
      'Seconds since the newest established IKE_SA of the connection was established',
      ['conn'],
    );
    this.ikeRekey = gauge(
      'ike_sa_rekey_seconds',
      'Seconds until the newest established IKE_SA is due for rekeying (0 when due)',
      ['conn'],
    );
    this.ikeInfo = gauge(
      'ike_sa_info',
      'Algorithms, key sizes, role and NAT situation of the newest established IKE_SA (value 1)',
      [
        'conn',
        'role',
        'encryption',
        'encryption_key_bits',
        'integrity',
        'integrity_key_bits',
        'prf',
        'dh_group',
        'nat_local',
        'nat_remote',
      ],
    );
    this.childSas = gauge('child_sas', 'CHILD_SAs by connection, child and state', [
      'conn',
      'child',
      'state',
    ]);
    this.tunnelUp = gauge(
      'tunnel_up',
      '1 when the child has an INSTALLED CHILD_SA in an ESTABLISHED IKE_SA, else 0',
      ['conn', 'child'],
    );
    this.childEstablished = gauge(
      'child_sa_established_seconds',
      'Seconds since the newest installed CHILD_SA of the child was installed',
      ['conn', 'child'],
    );
    this.childRekey = gauge(
      'child_sa_rekey_seconds',
      'Seconds until the newest CHILD_SA is due for rekeying (0 when due)',
      ['conn', 'child'],
    );
    this.childLifetime = gauge(
      'child_sa_lifetime_seconds',
      'Seconds until the newest CHILD_SA reaches its hard lifetime',
      ['conn', 'child'],
    );
    this.childEncap = gauge(
      'child_sa_encapsulated',
      '1 when the newest CHILD_SA uses UDP encapsulation (NAT-T, RFC 3948)',
      ['conn', 'child'],
    );
    this.childInfo = gauge(
      'child_sa_info',
      'Algorithms, key sizes, encapsulation and selectors of the newest installed CHILD_SA (value 1)',
      [
        'conn',
        'child',
        'encryption',
        'encryption_key_bits',
        'integrity',
        'integrity_key_bits',
        'dh_group',
        'encap',
        'local_ts',
        'remote_ts',
      ],
    );
    this.childBytes = counter(
      'child_sa_bytes_total',
      'Bytes through the CHILD_SAs of the child (inner packets, as the data path counts them), summed over rekeys',
      ['conn', 'child', 'direction'],
    );
    this.childPackets = counter(
      'child_sa_packets_total',
      'Packets through the CHILD_SAs of the child, summed over rekeys',
      ['conn', 'child', 'direction'],
    );
    this.dpErrors = counter(
      'datapath_errors_total',
      'Packets the data path dropped, by reason (replay, unknown_spi, integrity, ...), where the data path counts them',
      ['reason'],
    );
    this.daemonEvents = counter(
      'events_total',
      'Events processed by the engine (datagrams, timers, kernel, commands)',
    );
    this.internalErrors = counter(
      'internal_errors_total',
      'Exceptions caught while handling an event or executing an effect (bugs; see the daemon log)',
      ['where'],
    );
    this.kernelOps = counter(
      'kernel_operations_total',
      'Data-path operations (add/update/delete SA and policy)',
    );
    this.kernelErrors = counter('kernel_operation_errors_total', 'Data-path operations that failed');
    this.transportErrors = counter(
      'transport_errors_total',
      'UDP socket errors (send failures, socket errors)',
    );
    this.ready = gauge('ready', '1 when /readyz reports ready');
    const build = gauge<'version' | 'nodejs' | 'datapath'>('build_info', 'Version information (value 1)', [
      'version',
      'nodejs',
      'datapath',
    ]);
    build.set(
      { version: opts.version ?? 'unknown', nodejs: process.version, datapath: opts.datapath ?? '' },
      1,
    );
    if (opts.processMetrics ?? true) registerProcessMetrics(this.registry, PREFIX);
    this.reset();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** Subscribes to a daemon's bus and reads its status and data-path counters at scrape time. */
  attach(
    source: MetricsSource & { onBus(fn: (ev: BusEvent) => void): () => void },
    counters?: CounterSource,
  ): () => void {
    this.source = source;
    this.counters = counters;
    const off = source.onBus((ev) => this.handle(ev));
    return () => {
      off();
      if (this.source === source) {
        this.source = undefined;
        this.counters = undefined;
      }
    };
  }

  /** A new configuration (reload): configured counts and zero rows follow it. */
  setConfig(config: EngineConfig): void {
    this.config = config;
    this.reset();
  }

  setReady(ready: boolean): void {
    this.ready.set(ready ? 1 : 0);
  }

  reloaded(result: 'applied' | 'invalid' | 'restart_needed' | 'failed'): void {
    this.reloads.inc({ result });
  }

  // ---- certificates: when each configured certificate expires (read at scrape time) --------------
  // One series per certificate in the running configuration: conn; which = local (our end entity,
  // local.certs[0]), intermediate (the rest of local.certs) or cacert (remote.cacerts); the
  // certificate's subject and serial. Bounded by the configuration; a rotated certificate replaces
  // its series (new serial). Alert on `ikegw_certificate_not_after_seconds - time() < 14 * 86400`.
  private readonly certCache = new WeakMap<
    Uint8Array,
    { subject: string; serial: string; notAfter: number }
  >();
  private readonly certNotAfter = new Gauge<'conn' | 'which' | 'subject' | 'serial'>({
    name: `${PREFIX}certificate_not_after_seconds`,
    help: 'Expiry (notAfter, Unix seconds) of each certificate in the configuration: which="local" (ours), "intermediate" (sent with it), "cacert" (trusted for the peer)',
    labelNames: ['conn', 'which', 'subject', 'serial'],
    registers: [this.registry],
    collect: () => {
      this.certNotAfter.reset();
      for (const c of this.config.connections) {
        const conn = this.conn(c.name);
        const all: [string, Uint8Array][] = [
          ...(c.localCerts ?? []).map((d, i): [string, Uint8Array] => [
            i === 0 ? 'local' : 'intermediate',
            d,
          ]),
          ...(c.remoteCaCerts ?? []).map((d): [string, Uint8Array] => ['cacert', d]),
        ];
        for (const [which, der] of all) {
          let info = this.certCache.get(der);
          if (!info) {
            try {
              const x = new X509Certificate(der);
              info = {
                subject: parseCert(der).subject,
                serial: x.serialNumber,
                notAfter: x.validToDate.getTime() / 1000,
              };
            } catch {
              continue; // the loader refuses such a certificate; nothing to show
            }
            this.certCache.set(der, info);
          }
          this.certNotAfter.set({ conn, which, subject: info.subject, serial: info.serial }, info.notAfter);
        }
      }
    },
  });

  /** Zero rows for every configured connection and child, so dashboards see 0 rather than nothing. */
  private reset(): void {
    for (const c of this.config.connections) {
      const conn = this.connLabel.value(c.name);
      this.handshakes.inc({ conn, role: 'initiator', result: 'established' }, 0);
      for (const ch of c.children) this.childSetups.inc({ conn, child: ch.name }, 0);
    }
  }

  private conn(name: string | undefined): string {
    return name === undefined ? '' : this.connLabel.value(name);
  }

  /** One bus event (called for every BusEvent the engine emits). */
  handle(ev: AnyBusEvent | LifecycleEvent): void {
    if (isLifecycle(ev)) return this.lifecycle(ev);
    switch (ev.ev) {
      case 'ike-state': {
        const t = this.track(ev.sa, ev.initiator ? 'initiator' : 'responder');
        if (ev.state === 'CONNECTING') t.handshake = true;
        if (ev.state === 'DESTROYED') {
          if (t.handshake && !t.established) {
            const result = t.lastFailure ? t.lastFailure.toLowerCase() : 'aborted';
            this.handshakes.inc({ conn: t.conn, role: t.role, result });
          }
          this.sas.delete(ev.sa.uid);
        }
        return;
      }
      case 'ike-established': {
        const t = this.track(ev.sa, ev.initiator ? 'initiator' : 'responder');
        if (!t.established) {
          t.established = true;
          if (t.handshake) {
            this.handshakes.inc({ conn: t.conn, role: t.role, result: 'established' });
            this.setup.observe({ conn: t.conn, role: t.role }, Math.max(0, ev.setupMs) / 1000);
          }
        }
        return;
      }
      case 'child-state': {
        const conn = this.conn(ev.sa.conn);
        const child = this.connLabel.value(ev.child);
        const key = `${ev.sa.conn}\u0000${ev.child}`;
        let g = this.liveChildren.get(key);
        if (ev.state === 'INSTALLED') {
          this.childSetups.inc({ conn, child });
          if (!g) {
            g = { live: new Set(), generation: new Set([ev.uid]) };
            this.liveChildren.set(key, g);
          }
          g.live.add(ev.uid);
        }
        if (ev.state === 'DELETED' && g) {
          g.live.delete(ev.uid);
          if (g.live.size === 0) this.liveChildren.delete(key);
          else if (!anyIn(g.generation, g.live)) g.generation = new Set(g.live);
        }
        return;
      }
      case 'message': {
        const exchange = this.exchange.value(ev.exchange);
        const type = ev.response ? 'response' : 'request';
        if (ev.retransmit) {
          if (ev.dir === 'out') this.retransmits.inc({ conn: this.conn(ev.sa?.conn), exchange, type });
          return;
        }
        this.messages.inc({ exchange, direction: ev.dir, type });
        this.messageBytes.inc({ direction: ev.dir }, ev.bytes);
        // COOKIEs we receive are only visible in messages; the ones we send also come as `cookie`
        // events, and once one was seen the message-derived count of sent ones stops.
        // (ev.cookie, not the summary: that string is built only when a debug line asks for it)
        if (ev.cookie && (ev.dir === 'in' || !this.sawCookieEvent)) this.cookies.inc({ direction: ev.dir });
        return;
      }
      case 'failure': {
        const conn = this.conn(ev.sa?.conn ?? ev.conn);
        // cause: a fixed set (events.ts FAILURE_CAUSES, else "other"), so the label stays bounded
        this.failures.inc({ conn, reason: ev.reason, cause: ev.cause ?? '' });
        if (ev.sa) {
          const t = this.track(ev.sa, 'unknown');
          if (!t.established) t.lastFailure = ev.reason;
        } else {
          // No IKE_SA was created (a responder refusing an IKE_SA_INIT): the attempt ends here.
          this.handshakes.inc({ conn, role: 'responder', result: ev.reason.toLowerCase() });
        }
        return;
      }
      case 'retransmit':
        this.retransmits.inc({
          conn: this.conn(ev.sa.conn),
          exchange: this.exchange.value(ev.exchange),
          type: 'request',
        });
        return;
      case 'dropped':
        this.dropped.inc({ reason: this.dropReason.value(ev.reason) });
        return;
      case 'cookie':
        // emitted just before the COOKIE response's `message` event, which then is not counted
        this.sawCookieEvent = true;
        this.cookies.inc({ direction: 'out' });
        return;
      case 'log':
        return;
    }
  }

  private lifecycle(ev: LifecycleEvent): void {
    switch (ev.ev) {
      case 'rekey':
        this.rekeys.inc({ conn: this.conn(ev.sa.conn), sa: ev.what });
        return;
      case 'rekey-collision':
        this.collisions.inc({ conn: this.conn(ev.sa.conn), sa: ev.what });
        return;
      case 'dpd':
        this.dpd.inc({ conn: this.conn(ev.sa.conn), result: ev.result });
        return;
    }
  }

  private track(sa: SaRef, role: Role): SaTrack {
    let t = this.sas.get(sa.uid);
    if (!t) {
      t = { conn: this.conn(sa.conn), role, handshake: false, established: false };
      this.sas.set(sa.uid, t);
    } else if (t.role === 'unknown' && role !== 'unknown') t.role = role;
    return t;
  }

  // ---- scrape time ------------------------------------------------------------------------------

  /** Reads the SA list and data-path counters into the gauges; then `registry.metrics()`. */
  async render(): Promise<string> {
    await this.refresh();
    return this.registry.metrics();
  }

  async refresh(): Promise<void> {
    const now = this.clock.now();
    const list = this.source?.status() ?? [];
    const cfg = this.config;
    this.configuredConns.set(cfg.connections.length);
    this.configuredChildren.set(cfg.connections.reduce((n, c) => n + c.children.length, 0));

    for (const g of [
      this.ikeSas,
      this.ikeEstablished,
      this.ikeRekey,
      this.ikeInfo,
      this.childSas,
      this.tunnelUp,
      this.childEstablished,
      this.childRekey,
      this.childLifetime,
      this.childEncap,
      this.childInfo,
    ]) {
      g.reset();
    }
    const conns = new Map<string, Map<string, true>>();
    for (const c of cfg.connections) {
      const kids = new Map<string, true>();
      for (const ch of c.children) kids.set(ch.name, true);
      conns.set(c.name, kids);
    }
    for (const sa of list) {
      const kids = conns.get(sa.conn) ?? new Map<string, true>();
      for (const ch of sa.children) kids.set(ch.name, true);
      conns.set(sa.conn, kids);
    }
    for (const [name, kids] of conns) {
      const conn = this.conn(name);
      for (const state of IKE_STATES) this.ikeSas.set({ conn, state }, 0);
      for (const k of kids.keys()) {
        const child = this.connLabel.value(k);
        for (const state of CHILD_STATES) this.childSas.set({ conn, child, state }, 0);
        this.tunnelUp.set({ conn, child }, 0);
      }
    }

    const connCfg = new Map(cfg.connections.map((c) => [c.name, c]));
    const newestIke = new Map<string, IkeSaInfo>();
    const newestChild = new Map<string, { sa: IkeSaInfo; child: IkeSaInfo['children'][number] }>();
    for (const sa of list) {
      const conn = this.conn(sa.conn);
      if (sa.state !== 'DESTROYED') this.ikeSas.inc({ conn, state: sa.state });
      if (sa.state === 'ESTABLISHED' && sa.establishedAtMs !== undefined) {
        const prev = newestIke.get(sa.conn);
        if (!prev || (prev.establishedAtMs ?? 0) < sa.establishedAtMs) newestIke.set(sa.conn, sa);
      }
      for (const ch of sa.children) {
        const child = this.connLabel.value(ch.name);
        if (ch.state !== 'DELETED') this.childSas.inc({ conn, child, state: ch.state });
        if (ch.state === 'INSTALLED' && sa.state === 'ESTABLISHED') this.tunnelUp.set({ conn, child }, 1);
        if (ch.state === 'INSTALLED' && ch.installedAtMs !== undefined) {
          const key = `${sa.conn}\u0000${ch.name}`;
          const prev = newestChild.get(key);
          if (!prev || (prev.child.installedAtMs ?? 0) < ch.installedAtMs)
            newestChild.set(key, { sa, child: ch });
        }
      }
    }
    const secs = (ms: number): number => Math.max(0, ms) / 1000;
    for (const [name, sa] of newestIke) {
      const conn = this.conn(name);
      const at = sa.establishedAtMs ?? now;
      this.ikeEstablished.set({ conn }, secs(now - at));
      const times = sa as IkeSaInfo & ScheduledTimes;
      const rekeyTime = connCfg.get(name)?.rekeyTime ?? 0;
      const rekeyAt = times.rekeyAtMs ?? (rekeyTime > 0 ? at + rekeyTime * 1000 : undefined);
      if (rekeyAt !== undefined) this.ikeRekey.set({ conn }, secs(rekeyAt - now));
      const alg = algorithmLabels(sa.algorithms);
      this.ikeInfo.set(
        {
          conn,
          role: sa.initiator ? 'initiator' : 'responder',
          ...alg,
          nat_local: String(sa.natLocal),
          nat_remote: String(sa.natRemote),
        },
        1,
      );
    }
    for (const { sa, child: ch } of newestChild.values()) {
      const conn = this.conn(sa.conn);
      const child = this.connLabel.value(ch.name);
      const at = ch.installedAtMs ?? now;
      this.childEstablished.set({ conn, child }, secs(now - at));
      const cc = connCfg.get(sa.conn)?.children.find((c) => c.name === ch.name);
      const times = ch as typeof ch & ScheduledTimes;
      const rekeyAt = times.rekeyAtMs ?? (cc && cc.rekeyTime > 0 ? at + cc.rekeyTime * 1000 : undefined);
      const expireAt = times.expireAtMs ?? (cc && cc.lifeTime > 0 ? at + cc.lifeTime * 1000 : undefined);
      if (rekeyAt !== undefined) this.childRekey.set({ conn, child }, secs(rekeyAt - now));
      if (expireAt !== undefined) this.childLifetime.set({ conn, child }, secs(expireAt - now));
      this.childEncap.set({ conn, child }, ch.encap ? 1 : 0);
      const alg = algorithmLabels(ch.algorithms);
      this.childInfo.set(
        {
          conn,
          child,
          encryption: alg.encryption,
          encryption_key_bits: alg.encryption_key_bits,
          integrity: alg.integrity,
          integrity_key_bits: alg.integrity_key_bits,
          dh_group: alg.dh_group,
          encap: String(ch.encap),
          local_ts: ch.localTs.join(','),
          remote_ts: ch.remoteTs.join(','),
        },
        1,
      );
    }

    await this.refreshTraffic(list);
    await this.refreshDatapathErrors();
    const st = this.source?.stats;
    if (st) {
      setCounter(this.daemonEvents, {}, st.events);
      setCounter(this.internalErrors, { where: 'event' }, st.eventErrors);
      setCounter(this.internalErrors, { where: 'effect' }, st.effectErrors, true);
      setCounter(this.kernelOps, {}, st.kernelOps);
      setCounter(this.kernelErrors, {}, st.kernelErrors);
      setCounter(this.transportErrors, {}, st.transportErrors);
    }
  }

  /**
   * Traffic counters per (conn, child, direction), monotonic across rekeys: the last value read
   * from each CHILD_SA is kept, and when the SA disappears its last value moves into `retired`.
   * Traffic between the last scrape and an SA's deletion is not counted (bounded by the scrape
   * interval and one rekey).
   */
  private async refreshTraffic(list: IkeSaInfo[]): Promise<void> {
    const seen = new Set<string>();
    const src = this.counters;
    for (const sa of list) {
      for (const ch of sa.children) {
        if (!COUNTED_CHILD_STATES.has(ch.state)) continue;
        // by CHILD_SA uid: an IKE_SA rekey moves CHILD_SAs (same SPIs, same counters) to the new IKE_SA
        const key = String(ch.uid);
        seen.add(key);
        let t = this.children.get(key);
        if (!t) {
          t = { conn: sa.conn, child: ch.name, last: ZERO() };
          this.children.set(key, t);
        }
        if (!src) continue;
        const inId: SaId = { src: sa.remote.address, dst: sa.local.address, spi: ch.spiIn, protocol: 'esp' };
        const outId: SaId = {
          src: sa.local.address,
          dst: sa.remote.address,
          spi: ch.spiOut,
          protocol: 'esp',
        };
        const [i, o] = await Promise.all([
          src.querySa(inId).catch(() => undefined),
          src.querySa(outId).catch(() => undefined),
        ]);
        if (i) {
          t.last.inBytes = i.bytes;
          t.last.inPackets = i.packets;
        }
        if (o) {
          t.last.outBytes = o.bytes;
          t.last.outPackets = o.packets;
        }
      }
    }
    for (const [key, t] of this.children) {
      if (seen.has(key)) continue;
      const r = this.retiredFor(t.conn, t.child);
      r.inBytes += t.last.inBytes;
      r.inPackets += t.last.inPackets;
      r.outBytes += t.last.outBytes;
      r.outPackets += t.last.outPackets;
      this.children.delete(key);
    }
    const sums = new Map<string, { conn: string; child: string; v: ChildTrack['last'] }>();
    const add = (conn: string, child: string, v: ChildTrack['last']): void => {
      const k = `${conn}\u0000${child}`;
      const s = sums.get(k) ?? { conn, child, v: ZERO() };
      s.v.inBytes += v.inBytes;
      s.v.inPackets += v.inPackets;
      s.v.outBytes += v.outBytes;
      s.v.outPackets += v.outPackets;
      sums.set(k, s);
    };
    for (const c of this.config.connections) for (const ch of c.children) add(c.name, ch.name, ZERO());
    for (const [k, v] of this.retired) {
      const [conn = '', child = ''] = k.split('\u0000');
      add(conn, child, v);
    }
    for (const t of this.children.values()) add(t.conn, t.child, t.last);
    this.childBytes.reset();
    this.childPackets.reset();
    for (const { conn: c, child: ch, v } of sums.values()) {
      const conn = this.conn(c);
      const child = this.connLabel.value(ch);
      this.childBytes.inc({ conn, child, direction: 'in' }, Number(v.inBytes));
      this.childBytes.inc({ conn, child, direction: 'out' }, Number(v.outBytes));
      this.childPackets.inc({ conn, child, direction: 'in' }, Number(v.inPackets));
      this.childPackets.inc({ conn, child, direction: 'out' }, Number(v.outPackets));
    }
  }

  private retiredFor(conn: string, child: string): ChildTrack['last'] {
    const k = `${conn}\u0000${child}`;
    let r = this.retired.get(k);
    if (!r) {
      r = ZERO();
      this.retired.set(k, r);
    }
    return r;
  }

  private async refreshDatapathErrors(): Promise<void> {
    const fn = this.counters?.datapathErrors;
    if (!fn) return;
    let errs: Record<string, number | bigint>;
    try {
      errs = await fn.call(this.counters);
    } catch {
      return;
    }
    this.dpErrors.reset();
    for (const [reason, v] of Object.entries(errs)) {
      this.dpErrors.inc({ reason: this.dpReason.value(reason) }, Number(v));
    }
  }
}

/** Sets a counter to an externally maintained monotonic value. */
function setCounter<L extends string>(
  c: Counter<L>,
  labels: LabelValues<L>,
  value: number,
  keep = false,
): void {
  if (!keep) c.reset();
  c.inc(labels, value);
}

// ---- data-path error sources ------------------------------------------------------------------------

/** Drop counters of one SA that disappear with the SA (the userspace data path's status()). */
export interface DropSnapshot {
  /** Per SA (key unique per SA, e.g. "in/c1234567/10.0.0.1"), counts since the SA was added. */
  perSa: Map<string, Record<string, number>>;
  /** Drops that belong to no SA, since start. */
  global: Record<string, number>;
}

/** Turns per-SA drop counts, which vanish with their SA, into totals that never go down. */
export class MonotonicDrops {
  private readonly last = new Map<string, Record<string, number>>();
  private readonly retired: Record<string, number> = {};

  update(s: DropSnapshot): Record<string, number> {
    for (const [key, old] of this.last) {
      if (s.perSa.has(key)) continue;
      for (const [r, n] of Object.entries(old)) this.retired[r] = (this.retired[r] ?? 0) + n;
      this.last.delete(key);
    }
    const out: Record<string, number> = { ...this.retired };
    for (const [key, d] of s.perSa) {
      this.last.set(key, { ...d });
      for (const [r, n] of Object.entries(d)) out[r] = (out[r] ?? 0) + n;
    }
    for (const [r, n] of Object.entries(s.global)) out[r] = (out[r] ?? 0) + n;
    return out;
  }
}

/** /proc/net/xfrm_stat names -> the reasons the userspace data path uses (others: snake case). */
const XFRM_STAT_REASON: Record<string, string> = {
  XfrmInNoStates: 'unknown-spi',
  XfrmInStateSeqError: 'replay',
  XfrmInStateProtoError: 'auth',
  XfrmInTmplMismatch: 'selector',
  XfrmInNoPols: 'no-policy',
  XfrmInStateExpired: 'expired',
  XfrmOutStateExpired: 'expired',
  XfrmOutNoStates: 'no-sa',
  XfrmOutStateSeqError: 'seq-exhausted',
  XfrmInHdrError: 'malformed',
};

/** Parses /proc/net/xfrm_stat (the kernel's XFRM MIB of this network namespace). */
export function xfrmStatErrors(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const m = /^(Xfrm\w+)\s+(\d+)\s*$/.exec(line);
    if (!m) continue;
    const name = m[1]!;
    const reason =
      XFRM_STAT_REASON[name] ??
      name
        .slice(4)
        .replace(/([a-z])([A-Z])/g, '$1_$2')
        .toLowerCase();
    out[reason] = (out[reason] ?? 0) + Number(m[2]);
  }
  return out;
}

/**
 * Whether any of `a` is in `b`, stopping at the first (no array of `a` per call: thousands of
 * CHILD_SAs of one child config end at a shutdown).
 */
function anyIn<T>(a: Set<T>, b: Set<T>): boolean {
  for (const x of a) if (b.has(x)) return true;
  return false;
}
