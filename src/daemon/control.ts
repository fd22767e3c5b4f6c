// The control socket's server: how `ikegw sas|initiate|terminate|reload|log-level|stats` reach the
// daemon. The protocol (line-delimited JSON, request and result types) is in
// src/common/control-protocol.ts; the client and the output of the commands are in src/cli/.
//
// Access control is the file system: the socket is created with mode 0600 (umask while binding,
// chmod after), and its directory, when the daemon creates it, with 0700 — only the daemon's user
// (root in the chart) can connect. There is no other authentication.
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { type Clock, monotonicClock } from '../common/clock.js';
import {
  type ChildStatus,
  type ControlErrorCode,
  MAX_LINE,
  type ReloadOutcome,
  type SaStatus,
} from '../common/control-protocol.js';
import type { IkeSaInfo } from '../ike/engine.js';
import type { BusEvent, Command, FailureReason } from '../ike/events.js';
import type { SaCounters, SaId } from '../ike/ports.js';
import { type ConnChange, carryReqids, diffConnections } from '../ike/reconfigure.js';
import type { ConfigResult, LoadedConfig } from './config.js';
import { OpsServer, Readiness } from './http.js';
import {
  type AnyBusEvent,
  busLine,
  isLogLevel,
  isSubsystem,
  type LogLevel,
  type Logs,
  SUBSYSTEMS,
  type Subsystem,
} from './log.js';
import { type CounterSource, Metrics, MonotonicDrops, xfrmStatErrors } from './metrics.js';

/** The client moved to src/cli/control-client.ts; re-exported for tests that still import it here. */
export { controlRequest } from '../cli/control-client.js';
export {
  type ChildStatus,
  type ControlErrorCode,
  type ControlRequest,
  type ControlResponse,
  MAX_LINE,
  type ReloadOutcome,
  type SaStatus,
} from '../common/control-protocol.js';

export class ControlError extends Error {
  constructor(
    readonly code: ControlErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'ControlError';
  }
}

// ---- what the API needs from the daemon -----------------------------------------------------------

/** The running daemon (Daemon satisfies it). */
export interface ControlTarget {
  status(): IkeSaInfo[];
  command(cmd: Command): void;
  onBus(fn: (ev: BusEvent) => void): () => void;
  readonly stats: object;
}

export interface ControlDeps {
  /** The current daemon (changes when a reload restarts the IKE side). */
  daemon(): ControlTarget | undefined;
  /** The current data path, for per-SA byte/packet counters. */
  counters(): { querySa(id: SaId): Promise<SaCounters> } | undefined;
  config(): LoadedConfig;
  logs: Logs;
  clock: Clock;
  /** Re-reads the configuration and applies it; throws ControlError('invalid-config') with every error. */
  reload(): Promise<ReloadOutcome>;
  /** HA role and Lease holder, when `ha:` is configured. */
  ha?(): { role: 'active' | 'standby'; holder?: string | undefined } | undefined;
  /** Extra fields for `stats` (readiness, datapath kind, uptime...). */
  info?(): Record<string, unknown>;
  version: string;
}

// ---- `ikegw sas` data ------------------------------------------------------------------------------

const ep = (e: { address: string; port: number }): string =>
  e.address.includes(':') ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`;
const hex32 = (n: number): string => (n >>> 0).toString(16).padStart(8, '0');
const secs = (ms: number): number => Math.max(0, Math.round(ms / 1000));

/** IkeSaInfo list + data-path counters + times -> what `ikegw sas` shows (no key material). */
export async function saStatus(
  list: IkeSaInfo[],
  cfg: LoadedConfig,
  nowMs: number,
  counters?: { querySa(id: SaId): Promise<SaCounters> },
): Promise<SaStatus[]> {
  const out: SaStatus[] = [];
  for (const sa of list) {
    const conn = cfg.engine.connections.find((c) => c.name === sa.conn);
    const s: SaStatus = {
      uid: sa.uid,
      conn: sa.conn,
      state: sa.state,
      role: sa.initiator ? 'initiator' : 'responder',
      spiI: sa.spiI,
      spiR: sa.spiR,
      local: ep(sa.local),
      remote: ep(sa.remote),
      localId: sa.localId,
      remoteId: sa.remoteId,
      algorithms: sa.algorithms,
      natLocal: sa.natLocal,
      natRemote: sa.natRemote,
      children: [],
    };
    if (sa.establishedAtMs !== undefined) {
      s.establishedSecondsAgo = secs(nowMs - sa.establishedAtMs);
      if (conn && conn.rekeyTime > 0)
        s.rekeyInSeconds = secs(sa.establishedAtMs + conn.rekeyTime * 1000 - nowMs);
    }
    for (const ch of sa.children) {
      const cc = conn?.children.find((c) => c.name === ch.name);
      const c: ChildStatus = {
        uid: ch.uid,
        name: ch.name,
        state: ch.state,
        reqid: ch.reqid,
        spiIn: hex32(ch.spiIn),
        spiOut: hex32(ch.spiOut),
        algorithms: ch.algorithms,
        encap: ch.encap,
        localTs: ch.localTs,
        remoteTs: ch.remoteTs,
      };
      if (ch.installedAtMs !== undefined) {
        c.installedSecondsAgo = secs(nowMs - ch.installedAtMs);
        if (cc && cc.rekeyTime > 0) c.rekeyInSeconds = secs(ch.installedAtMs + cc.rekeyTime * 1000 - nowMs);
        if (cc && cc.lifeTime > 0) c.expiresInSeconds = secs(ch.installedAtMs + cc.lifeTime * 1000 - nowMs);
      }
      if (counters && ch.spiIn && ch.spiOut) {
        const inId: SaId = { src: sa.remote.address, dst: sa.local.address, spi: ch.spiIn, protocol: 'esp' };
        const outId: SaId = {
          src: sa.local.address,
          dst: sa.remote.address,
          spi: ch.spiOut,
          protocol: 'esp',
        };
        const [i, o] = await Promise.all([
          counters.querySa(inId).catch(() => undefined),
          counters.querySa(outId).catch(() => undefined),
        ]);
        if (i) {
          c.bytesIn = Number(i.bytes);
          c.packetsIn = Number(i.packets);
        }
        if (o) {
          c.bytesOut = Number(o.bytes);
          c.packetsOut = Number(o.packets);
        }
      }
      s.children.push(c);
    }
    out.push(s);
  }
  return out;
}

// ---- the API ----------------------------------------------------------------------------------------

/** Failure reasons that end an attempt (the others are followed by a retry inside the engine). */
const TERMINAL = new Set<FailureReason>([
  'AUTHENTICATION_FAILED',
  'NO_PROPOSAL_CHOSEN',
  'TS_UNACCEPTABLE',
  'TIMEOUT',
  'KERNEL',
  'INTERNAL',
]);

function busConn(ev: AnyBusEvent): string | undefined {
  switch (ev.ev) {
    case 'failure':
      return ev.sa?.conn ?? ev.conn;
    case 'dropped':
    case 'cookie':
      return undefined;
    case 'message':
    case 'log':
      return ev.sa?.conn;
    default:
      return ev.sa.conn;
  }
}

/** Progress text for the CLI: state changes and failures of the connection (not messages/debug). */
function progressText(ev: AnyBusEvent): string | undefined {
  if (ev.ev === 'message' || ev.ev === 'dropped') return undefined;
  if (ev.ev === 'log' && ev.level === 'debug') return undefined;
  const line = busLine(ev);
  if (!line) return undefined;
  const hint = typeof line.fields.hint === 'string' ? `\n  check: ${line.fields.hint}` : '';
  return `${line.msg}${hint}`;
}

export class ControlApi {
  constructor(private readonly d: ControlDeps) {}

  private target(): ControlTarget {
    const t = this.d.daemon();
    const ha = this.d.ha?.();
    if (!t && ha?.role === 'standby')
      throw new ControlError(
        'failed',
        `this replica is on standby (HA): it holds no IKE_SAs; the Lease is held by ${ha.holder || 'nobody'}`,
      );
    if (!t) throw new ControlError('failed', 'the daemon is (re)starting; try again in a moment');
    return t;
  }

  private knownConn(name: unknown): string {
    if (typeof name !== 'string' || name === '') throw new ControlError('bad-request', 'conn is required');
    const names = this.d.config().engine.connections.map((c) => c.name);
    if (!names.includes(name)) {
      throw new ControlError(
        'unknown-connection',
        `no connection named "${name}" (configured: ${names.join(', ') || 'none'})`,
      );
    }
    return name;
  }

  async handle(req: unknown, progress: (text: string) => void): Promise<unknown> {
    if (typeof req !== 'object' || req === null || typeof (req as { cmd?: unknown }).cmd !== 'string')
      throw new ControlError('bad-request', 'expected a JSON object with "cmd"');
    const r = req as Record<string, unknown>;
    const timeout = (): number => {
      const t = r.timeoutMs;
      return typeof t === 'number' && t > 0 && t <= 600_000 ? t : 15_000;
    };
    switch (r.cmd) {
      case 'sas': {
        // with HA, a first line names the role (a standby answers with an error in target())
        const t = this.target();
        const ha = this.d.ha?.();
        if (ha?.role === 'active')
          progress(
            `HA: active (this replica holds ${String((ha as { lease?: unknown }).lease ?? 'the Lease')})`,
          );
        return saStatus(t.status(), this.d.config(), this.d.clock.now(), this.d.counters());
      }
      case 'initiate': {
        const conn = this.knownConn(r.conn);
        const child = typeof r.child === 'string' ? r.child : undefined;
        if (child !== undefined) {
          const c = this.d.config().engine.connections.find((x) => x.name === conn);
          if (!c?.children.some((x) => x.name === child))
            throw new ControlError(
              'unknown-connection',
              `connection ${conn} has no child "${child}" (children: ${c?.children.map((x) => x.name).join(', ')})`,
            );
        }
        return this.initiate(conn, child, timeout(), progress);
      }
      case 'terminate':
        return this.terminate(this.knownConn(r.conn), timeout(), progress);
      case 'reload':
        return this.d.reload();
      case 'log-level': {
        const subsys = r.subsys === undefined || r.subsys === '*' || r.subsys === 'all' ? '*' : r.subsys;
        if (r.level !== undefined) {
          if (typeof r.level !== 'string' || !isLogLevel(r.level))
            throw new ControlError('bad-request', `unknown log level ${JSON.stringify(r.level)}`);
          if (subsys !== '*' && (typeof subsys !== 'string' || !isSubsystem(subsys)))
            throw new ControlError('bad-request', `unknown subsystem ${JSON.stringify(subsys)}`);
          this.d.logs.setLevel(subsys as Subsystem | '*', r.level as LogLevel);
        }
        return this.d.logs.levels();
      }
      case 'stats':
        return {
          version: this.d.version,
          ...(this.d.info?.() ?? {}),
          daemon: this.d.daemon()?.stats,
          logLevels: this.d.logs.levels(),
        };
      case 'version':
        return { version: this.d.version, node: process.version };
      default:
        throw new ControlError('bad-request', `unknown command ${JSON.stringify(r.cmd)}`);
    }
  }

  /** Like `swanctl --initiate`: starts the connection and reports until its CHILD_SA is installed. */
  private initiate(
    conn: string,
    child: string | undefined,
    timeoutMs: number,
    progress: (t: string) => void,
  ): Promise<unknown> {
    const t = this.target();
    const up = t
      .status()
      .find(
        (sa) =>
          sa.conn === conn &&
          sa.state === 'ESTABLISHED' &&
          sa.children.some((c) => c.state === 'INSTALLED' && (child === undefined || c.name === child)),
      );
    if (up)
      return Promise.resolve({ message: `${conn} is already up (IKE_SA ${conn}[${up.uid}])`, uid: up.uid });
    return this.watch(
      t,
      conn,
      timeoutMs,
      progress,
      { cmd: 'initiate', conn, ...(child ? { child } : {}) },
      (ev) => {
        if (
          ev.ev === 'child-state' &&
          ev.state === 'INSTALLED' &&
          (child === undefined || ev.child === child)
        )
          return { ok: { message: `CHILD_SA ${ev.child}{${ev.uid}} established`, uid: ev.sa.uid } };
        if (ev.ev === 'failure' && TERMINAL.has(ev.reason)) return { fail: ev.detail };
        if (ev.ev === 'ike-state' && ev.state === 'DESTROYED')
          return { fail: `IKE_SA ${conn}[${ev.sa.uid}] was destroyed${ev.detail ? `: ${ev.detail}` : ''}` };
        return undefined;
      },
    );
  }

  private terminate(conn: string, timeoutMs: number, progress: (t: string) => void): Promise<unknown> {
    const t = this.target();
    const live = new Set(
      t
        .status()
        .filter((sa) => sa.conn === conn && sa.state !== 'DESTROYED')
        .map((sa) => sa.uid),
    );
    if (live.size === 0)
      return Promise.reject(new ControlError('not-found', `no IKE_SA of connection ${conn}`));
    return this.watch(t, conn, timeoutMs, progress, { cmd: 'terminate', conn }, (ev) => {
      if (ev.ev === 'ike-state' && ev.state === 'DESTROYED') live.delete(ev.sa.uid);
      return live.size === 0 ? { ok: { message: `connection ${conn} terminated` } } : undefined;
    });
  }

  private watch(
    t: ControlTarget,
    conn: string,
    timeoutMs: number,
    progress: (text: string) => void,
    cmd: Command,
    decide: (ev: BusEvent) => { ok: unknown } | { fail: string } | undefined,
  ): Promise<unknown> {
    return new Promise((resolve, reject) => {
      let done = false;
      let off: () => void = () => undefined;
      const finish = (f: () => void): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        off();
        f();
      };
      const timer = setTimeout(
        () =>
          finish(() =>
            reject(
              new ControlError(
                'timeout',
                `no result for ${conn} after ${Math.round(timeoutMs / 1000)} s; the daemon keeps trying in the background (see its log)`,
              ),
            ),
          ),
        timeoutMs,
      );
      off = t.onBus((ev) => {
        if (done || busConn(ev) !== conn) return;
        const text = progressText(ev);
        if (text) progress(text);
        const d = decide(ev);
        if (!d) return;
        if ('ok' in d) finish(() => resolve(d.ok));
        else finish(() => reject(new ControlError('failed', d.fail)));
      });
      t.command(cmd);
    });
  }
}

// ---- the server -------------------------------------------------------------------------------------

export interface ControlServerOptions {
  path: string;
  api: ControlApi;
  logs: Logs;
}

/** Whether something answers on a unix socket path. */
function probe(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export class ControlServer {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();

  constructor(private readonly o: ControlServerOptions) {}

  async start(): Promise<void> {
    const { path } = this.o;
    const dir = dirname(path);
    if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (existsSync(path)) {
      if (!lstatSync(path).isSocket())
        throw new Error(
          `control socket path ${path} exists and is not a socket; remove it or set control.socket`,
        );
      if (await probe(path))
        throw new Error(`another ikegw daemon answers on ${path}; stop it or set another control.socket`);
      unlinkSync(path); // stale, from a daemon that was killed
    }
    const server = createServer((sock) => this.serve(sock));
    this.server = server;
    const old = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(path, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } finally {
      process.umask(old);
    }
    chmodSync(path, 0o600);
  }

  async close(): Promise<void> {
    const s = this.server;
    if (!s) return;
    this.server = undefined;
    for (const sock of this.sockets) sock.destroy();
    await new Promise<void>((resolve) => s.close(() => resolve()));
    try {
      unlinkSync(this.o.path);
    } catch {
      // already gone
    }
  }

  private serve(sock: Socket): void {
    this.sockets.add(sock);
    sock.setEncoding('utf8');
    let buf = '';
    let chain = Promise.resolve();
    const write = (o: unknown): void => {
      if (!sock.destroyed) sock.write(`${JSON.stringify(o)}\n`);
    };
    let rejected = false;
    sock.on('data', (chunk: string) => {
      if (rejected) return; // the connection is ending: nothing more is buffered or answered
      buf += chunk;
      if (buf.length > MAX_LINE && !buf.includes('\n')) {
        rejected = true;
        buf = '';
        // After the answers to the requests before it; then the connection ends.
        chain = chain.then(() => {
          write({ ok: false, code: 'bad-request', error: `request longer than ${MAX_LINE} bytes` });
          sock.end();
        });
        return;
      }
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (line === '') continue;
        chain = chain.then(() => this.answer(line, write));
      }
    });
    sock.on('error', () => undefined);
    sock.on('close', () => this.sockets.delete(sock));
  }

  private async answer(line: string, write: (o: unknown) => void): Promise<void> {
    let req: unknown;
    try {
      req = JSON.parse(line);
    } catch {
      write({ ok: false, code: 'bad-request', error: 'request is not valid JSON' });
      return;
    }
    const cmd = (req as { cmd?: unknown } | null)?.cmd;
    if (typeof cmd === 'string' && cmd !== 'sas' && cmd !== 'stats' && cmd !== 'version')
      this.o.logs.get('daemon').info({ cmd }, `control: ${cmd}${describeArgs(req)}`);
    try {
      const result = await this.o.api.handle(req, (text) => write({ progress: text }));
      write({ ok: true, result });
    } catch (e) {
      if (e instanceof ControlError) write({ ok: false, code: e.code, error: e.message });
      else {
        this.o.logs
          .get('daemon')
          .error({ err: e }, `control command failed: ${e instanceof Error ? e.message : String(e)}`);
        write({ ok: false, code: 'internal', error: e instanceof Error ? e.message : String(e) });
      }
    }
  }
}

function describeArgs(req: unknown): string {
  const r = req as Record<string, unknown>;
  const parts: string[] = [];
  for (const k of ['conn', 'child', 'subsys', 'level']) {
    const v = r[k];
    if (typeof v === 'string' || typeof v === 'boolean') parts.push(`${k}=${v}`);
  }
  return parts.length ? ` (${parts.join(' ')})` : '';
}

// ---- reload ------------------------------------------------------------------------------------------

/** Canonical text of a config value for comparison; byte arrays (PSKs) become a digest, never text. */
function canonical(v: unknown): string {
  return JSON.stringify(v, function (this: Record<string, unknown>, k: string, val: unknown) {
    const raw = k === '' ? val : this[k];
    if (raw instanceof Uint8Array) return `bytes:${createHash('sha256').update(raw).digest('hex')}`;
    if (typeof raw === 'bigint') return `n:${raw}`;
    return val;
  });
}

/**
 * What a reload applies besides the connections (which src/ike/reconfigure.ts compares, as
 * `swanctl --load-conns` does): log levels and the engine's globals (retransmit, DoS, keepalive)
 * live; what the process set up at start (sockets, data path, metrics and control endpoints, log
 * format, the chart's routes settings) at the next start only.
 */
export function planReload(cur: LoadedConfig, next: LoadedConfig): { live: string[]; pending: string[] } {
  const live: string[] = [];
  const pending: string[] = [];
  const a = cur.daemon;
  const b = next.daemon;
  if (a.log.level !== b.log.level || canonical(a.log.subsystems) !== canonical(b.log.subsystems))
    live.push(
      `log levels (default ${b.log.level}${
        Object.keys(b.log.subsystems).length
          ? `, ${Object.entries(b.log.subsystems)
              .map(([k, v]) => `${k}=${v}`)
              .join(',')}`
          : ''
      })`,
    );
  if (a.log.format !== b.log.format) pending.push(`log.format (${a.log.format} -> ${b.log.format})`);
  if (a.datapath !== b.datapath) pending.push(`datapath (${a.datapath} -> ${b.datapath})`);
  if (canonical(a.listen) !== canonical(b.listen)) pending.push('listen');
  if (canonical(a.metrics) !== canonical(b.metrics)) pending.push('metrics.listen');
  if (a.control.socket !== b.control.socket) pending.push('control.socket');
  if (canonical(a.chart) !== canonical(b.chart)) pending.push('VPN_* chart settings');
  if (canonical(a.ha) !== canonical(b.ha)) pending.push('ha');
  const globals = (e: LoadedConfig['engine']): string => canonical({ ...e, connections: undefined });
  if (globals(cur.engine) !== globals(next.engine)) live.push('retransmit / dos / keepalive settings');
  return { live, pending: [...new Set(pending)] };
}

// ---- wiring: metrics, HTTP, readiness, control socket -------------------------------------------------

interface StatusShape {
  sas?: Array<{ spi?: number; dir?: string; dst?: string; drops?: Record<string, number> }>;
  drops?: Record<string, number>;
}

/**
 * Where the data path's drop counters (replay, unknown SPI, ICV failures, ...) come from: the
 * installer's own `datapathErrors()`, else the userspace data path's `status()` (per-SA drops made
 * monotonic), else for XFRM the kernel's /proc/net/xfrm_stat of this network namespace.
 */
export function datapathErrorSource(
  installer: CounterSource & { kind?: string },
): (() => Promise<Record<string, number | bigint>> | Record<string, number | bigint>) | undefined {
  if (typeof installer.datapathErrors === 'function') return () => installer.datapathErrors!();
  const status = (installer as { status?: unknown }).status;
  if (typeof status === 'function') {
    const mono = new MonotonicDrops();
    return () => {
      const st = status.call(installer) as StatusShape;
      const perSa = new Map<string, Record<string, number>>();
      for (const sa of st.sas ?? []) perSa.set(`${sa.dir}/${sa.spi}/${sa.dst}`, sa.drops ?? {});
      return mono.update({ perSa, global: st.drops ?? {} });
    };
  }
  if (installer.kind === 'xfrm')
    return async () => xfrmStatErrors(await readFile('/proc/net/xfrm_stat', 'utf8'));
  return undefined;
}

type LoadResult = ConfigResult | { ok: false; fatal: string };

export interface OperationsOptions {
  config: LoadedConfig;
  logs: Logs;
  version: string;
  /** Re-reads the configuration the daemon was started from (file or environment). */
  load: () => LoadResult;
  clock?: Clock;
  /** Node.js process metrics (default true). */
  processMetrics?: boolean;
  /** A reload's configuration (the result `load` returned) is now running. */
  onApplied?: (result: LoadResult & { ok: true }) => void;
}

/** The daemon as the operations side sees it (Daemon satisfies it). */
export interface OperatedDaemon extends ControlTarget {
  readonly stats: {
    kernelErrors: number;
    events: number;
    eventErrors: number;
    effectErrors: number;
    kernelOps: number;
    transportErrors: number;
  };
  idle(): Promise<void>;
}

/**
 * Everything the operations issue adds to a running daemon, started by runDaemon: the metrics
 * registry, the HTTP endpoint (metrics.listen), readiness, the control socket (control.socket).
 */
export class Operations {
  readonly readiness = new Readiness();
  readonly metrics: Metrics;
  private http: OpsServer | undefined;
  private control: ControlServer | undefined;
  private daemon: OperatedDaemon | undefined;
  private installer: (CounterSource & { kind?: string }) | undefined;
  private detach: (() => void) | undefined;
  /** HA (src/ha): the election's state for /ha, `ikegw stats` and `ikegw sas`; set by runDaemon. */
  haStatus:
    | (() => { role: 'active' | 'standby'; holder?: string | undefined; [k: string]: unknown })
    | undefined;
  private prepare: ((engine: LoadedConfig['engine']) => Promise<void>) | undefined;
  private kernelErrorsAtStart = 0;
  private readonly startedAt = Date.now();
  private readonly clock: Clock;
  private cfg: LoadedConfig;
  /** The configuration as loaded (runDaemon later fills in local addresses): what reload compares with. */
  private baseline: LoadedConfig;

  private constructor(private readonly o: OperationsOptions) {
    this.cfg = o.config;
    this.baseline = structuredClone(o.config);
    this.clock = o.clock ?? monotonicClock;
    this.metrics = new Metrics({
      config: o.config.engine,
      clock: this.clock,
      version: o.version,
      datapath: o.config.daemon.datapath,
      processMetrics: o.processMetrics ?? true,
    });
    this.readiness.set(
      'config',
      true,
      `${o.config.engine.connections.length} connection(s): ${o.config.engine.connections.map((c) => c.name).join(', ')}`,
    );
  }

  /** Starts the HTTP endpoint (when metrics.listen is set) and the control socket. */
  static async start(o: OperationsOptions): Promise<Operations> {
    const ops = new Operations(o);
    const s = o.config.daemon;
    const log = o.logs.get('daemon');
    try {
      if (s.metrics) {
        ops.http = new OpsServer({
          host: s.metrics.host,
          port: s.metrics.port,
          metrics: ops.metrics,
          readiness: ops.readiness,
          ha: () => ops.haStatus?.(),
        });
        const a = await ops.http.start();
        log.info(
          { listen: `${a.address}:${a.port}` },
          `metrics, /healthz and /readyz on http://${a.address.includes(':') ? `[${a.address}]` : a.address}:${a.port}`,
        );
      }
      const api = new ControlApi({
        daemon: () => ops.daemon,
        counters: () => ops.installer,
        config: () => ops.cfg,
        logs: o.logs,
        clock: ops.clock,
        reload: () => ops.reload(),
        info: () => ops.info(),
        ha: () => ops.haStatus?.(),
        version: o.version,
      });
      const control = new ControlServer({ path: s.control.socket, api, logs: o.logs });
      try {
        await control.start();
        ops.control = control;
        log.info(
          { socket: s.control.socket },
          `control socket ${s.control.socket} (ikegw sas, initiate, terminate, reload, log-level)`,
        );
      } catch (e) {
        // Not fatal: the tunnels matter more than the CLI. `ikegw sas` will say it cannot connect.
        log.error(
          { socket: s.control.socket },
          `control socket unavailable, the ikegw CLI cannot reach this daemon: ${e instanceof Error ? e.message : String(e)}`,
        );
      }
    } catch (e) {
      await ops.close();
      throw e;
    }
    return ops;
  }

  /** UDP 500/4500 are bound. */
  socketsBound(ports: { port: number; natPort: number }): void {
    this.readiness.set('sockets', true, `UDP ${ports.port} and ${ports.natPort} bound`);
  }

  /**
   * Call right after the Daemon is built, before daemon.start(). `prepare` completes a reloaded
   * engine configuration the way the running one was (local addresses by route lookup).
   */
  attach(
    daemon: OperatedDaemon,
    installer: CounterSource & { kind?: string },
    prepare?: (engine: LoadedConfig['engine']) => Promise<void>,
  ): void {
    this.detach?.();
    this.prepare = prepare;
    this.daemon = daemon;
    this.installer = installer;
    this.kernelErrorsAtStart = daemon.stats.kernelErrors;
    const errors = datapathErrorSource(installer);
    this.detach = this.metrics.attach(daemon, {
      querySa: (id) => installer.querySa(id),
      ...(errors ? { datapathErrors: errors } : {}),
    });
  }

  /** Call right after daemon.start(): readiness follows once the start-up kernel work is done. */
  async startupDone(): Promise<void> {
    const d = this.daemon;
    if (!d) return;
    await d.idle();
    const failed = d.stats.kernelErrors - this.kernelErrorsAtStart;
    const traps = this.cfg.engine.connections.flatMap((c) =>
      c.children.filter((ch) => ch.startAction === 'trap').map((ch) => `${c.name}/${ch.name}`),
    );
    const starts = this.cfg.engine.connections.filter((c) =>
      c.children.some((ch) => ch.startAction === 'start'),
    );
    if (failed > 0) {
      this.readiness.set(
        'startup',
        false,
        `${failed} data-path operation(s) failed at start-up, so trap policies (${traps.join(', ') || 'none'}) may be missing: see the kernel log lines`,
      );
    } else {
      const parts = [];
      if (traps.length) parts.push(`trap policies installed for ${traps.join(', ')}`);
      if (starts.length) parts.push(`initiated ${starts.map((c) => c.name).join(', ')}`);
      this.readiness.set('startup', true, parts.join('; ') || 'no connection to start (responder only)');
    }
    this.metrics.setReady(this.readiness.ready);
  }

  /** The engine configuration to start with (the loaded one, or the last reload's). */
  get engineConfig(): LoadedConfig['engine'] {
    return this.cfg.engine;
  }

  /**
   * HA step-down: the daemon is gone until the next attach(); until then reloads keep the new
   * configuration for it, `ikegw sas` says standby, /readyz is 503.
   */
  standby(detail: string): void {
    this.detach?.();
    this.detach = undefined;
    this.daemon = undefined;
    this.installer = undefined;
    this.readiness.set('ha', false, `standby: ${detail}`);
    this.readiness.set('sockets', false, 'UDP 500/4500 not bound (standby)');
    this.readiness.set('startup', false, 'standby: nothing started');
    this.metrics.setReady(this.readiness.ready);
  }

  shuttingDown(): void {
    this.readiness.shuttingDown();
    this.metrics.setReady(false);
  }

  async close(): Promise<void> {
    this.detach?.();
    this.detach = undefined;
    await this.control?.close();
    await this.http?.close();
  }

  private info(): Record<string, unknown> {
    const r = this.readiness.report();
    return {
      datapath: this.installer?.kind ?? this.cfg.daemon.datapath,
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
      connections: this.cfg.engine.connections.map((c) => c.name),
      ready: r.ready,
      readiness: r.checks,
      ...(this.haStatus ? { ha: this.haStatus() } : {}),
    };
  }

  /**
   * `ikegw reload` and SIGHUP: re-reads the configuration; throws ControlError when it is invalid.
   * `quiet` (the certificate watcher, src/daemon/cert-watch.ts): the caller logs the outcome in
   * its own line, so neither this nor the engine logs one at info.
   */
  async reload(opts: { quiet?: boolean } = {}): Promise<ReloadOutcome> {
    const log = this.o.logs.get('config');
    const r = this.o.load();
    if (!r.ok) {
      this.metrics.reloaded('invalid');
      const text = 'fatal' in r ? r.fatal : r.errors.map((e) => e.message).join('\n');
      if (!opts.quiet) log.warn(`reload: configuration invalid, nothing changed:\n${text}`);
      throw new ControlError('invalid-config', `configuration invalid, nothing changed:\n${text}`);
    }
    const next = r.value;
    const plan = planReload(this.baseline, next);
    // Connections: completed like the running ones, compared, and handed to the engine, which
    // adds, removes, updates or re-establishes each one and leaves the unchanged ones alone.
    let connections: ConnChange[] = [];
    // The engine takes the loaded objects (PSKs stay SecretBytes); the baseline, as before, is a
    // copy taken before local addresses are filled in, for comparing the next reload with.
    const baselineEngine = structuredClone(next.engine);
    const engine = next.engine;
    if (this.daemon) {
      try {
        await this.prepare?.(engine);
      } catch (e) {
        throw new ControlError('invalid-config', `reload: ${(e as Error).message}; nothing changed`);
      }
      carryReqids(this.cfg.engine, engine);
      connections = diffConnections(this.cfg.engine, engine);
      this.daemon.command({ cmd: 'reconfigure', config: engine, ...(opts.quiet ? { quiet: true } : {}) });
      this.metrics.setConfig(engine);
    }
    const l = next.daemon.log;
    for (const s of SUBSYSTEMS) this.o.logs.setLevel(s, l.subsystems[s] ?? l.level);
    const log2 = { ...this.cfg.daemon.log, level: l.level, subsystems: l.subsystems };
    const keep = this.daemon !== undefined || this.haStatus !== undefined;
    this.cfg = { engine: keep ? engine : this.cfg.engine, daemon: { ...this.cfg.daemon, log: log2 } };
    this.baseline = {
      engine: keep ? baselineEngine : this.baseline.engine,
      daemon: { ...this.baseline.daemon, log: log2 },
    };
    this.metrics.reloaded(plan.pending.length > 0 ? 'restart_needed' : 'applied');
    const changed = connections.filter((c) => c.action !== 'unchanged');
    const applied = [
      ...plan.live,
      ...changed.map(
        (c) => `connection ${c.conn} ${c.action}${'fields' in c ? ` (${c.fields.join(', ')})` : ''}`,
      ),
    ];
    if (applied.length === 0) applied.push('nothing changed');
    for (const w of r.warnings) log.warn(`reload: ${w}`);
    if (this.daemon) this.o.onApplied?.(r);
    if (!opts.quiet)
      log.info(
        { applied, pending: plan.pending },
        `reload: applied ${applied.join('; ')}${plan.pending.length ? `; needs a restart: ${plan.pending.join('; ')}` : ''}`,
      );
    return { applied, connections, pending: plan.pending, warnings: r.warnings };
  }
}
