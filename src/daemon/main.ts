// The daemon: wires the sans-IO IKE engine to its adapters and runs the event loop (`ikegw daemon`;
// the command line itself is src/cli/).
//
//   UDP datagrams ─┐                       ┌─ send   -> UdpTransport
//   timers due ────┤                       ├─ arm/cancel -> TimerRunner
//   kernel-done ───┼─> engine.handle(ev) ──┼─ kernel -> SaInstaller, then `kernel-done` back in
//   kernel events ─┤      (one at a time)  └─ emit   -> busToLog + bus listeners (metrics)
//   commands ──────┘
//
// Every event is handled to completion before the next (a queue; no re-entrancy). An exception
// from one event or one effect is caught, logged with its cause and counted — it never stops the
// daemon. Kernel operations run strictly in the order the engine asked for them (one queue), as
// the XFRM installer will need (SA before policy, in before out).
//
// Operations (src/daemon/control.ts `Operations`): metrics subscribe through Daemon.onBus; the
// control socket uses Daemon.command / Daemon.status and Logs.setLevel; runDaemon attaches them
// before start() and reports readiness (config, sockets, start-up) to /readyz.
import { statSync } from 'node:fs';
import { type Clock, monotonicClock } from '../common/clock.js';
import { KernelError } from '../common/errors.js';
import type { LogLevel, Subsystem } from '../common/log-levels.js';
import { systemRandom } from '../common/random.js';
import { version } from '../common/version.js';
import { MemoryInstaller } from '../esp/memory-installer.js';
import { UserspaceInstaller } from '../esp/userspace/installer.js';
import { nativeAvailable } from '../esp/userspace/tun.js';
import { createXfrmInstaller, probeKernelEspDetail } from '../esp/xfrm/installer.js';
import type { EngineConfig } from '../ike/config.js';
import { IkeEngine, type IkeSaInfo } from '../ike/engine.js';
import type { BusEvent, Command, Effect, IkeEvent } from '../ike/events.js';
import { applySaOp, type Endpoint, type KernelEvent, type SaInstaller, type SaOp } from '../ike/ports.js';
import { enableEspInUdp } from '../net/udp-encap.js';
import { LocalAddressResolver, TransportError, UdpTransport } from '../net/udp-transport.js';
import { CertWatcher, recordCredentialFiles } from './cert-watch.js';
import {
  type DaemonSettings,
  type Datapath,
  type Env,
  loadFromOptions,
  printConfigProblems,
} from './config.js';
import { ControlError, Operations } from './control.js';
import { busToLog, createLogs, type Logs } from './log.js';
import { type Scheduler, TimerRunner } from './timers.js';

/** What the daemon needs from the engine (IkeEngine, or a fake in tests). */
export interface EngineLike {
  handle(ev: IkeEvent, nowMs: number): Effect[];
  list?(): IkeSaInfo[];
}

/** What the daemon needs from the transport (UdpTransport). */
export interface TransportLike {
  send(local: Endpoint, remote: Endpoint, bytes: Uint8Array): void;
  sendKeepalive(local: Endpoint, remote: Endpoint): void;
  flush(timeoutMs: number): Promise<boolean>;
  close(): Promise<void>;
}

/** An installer that reports data-path events (acquire, expire, mapping): kernel_listener_t. */
interface KernelEventSource {
  setListener(fn: ((ev: KernelEvent) => void) | undefined): void;
}
function hasListener(x: object): x is KernelEventSource {
  return typeof (x as Partial<KernelEventSource>).setListener === 'function';
}

export interface DaemonParts {
  engine: EngineLike;
  installer: SaInstaller;
  transport: TransportLike;
  logs: Logs;
  clock?: Clock;
  /** Timer scheduler (default setTimeout). */
  scheduler?: Scheduler;
}

export interface DaemonStats {
  events: number;
  /** Exceptions thrown by engine.handle (the engine is expected to catch its own). */
  eventErrors: number;
  /** Exceptions while executing an effect. */
  effectErrors: number;
  kernelOps: number;
  kernelErrors: number;
  transportErrors: number;
}

function describeOp(op: SaOp): string {
  const spi = (n: number): string => (n >>> 0).toString(16).padStart(8, '0');
  switch (op.op) {
    case 'addSa':
      return `addSa ${op.spec.inbound ? 'in' : 'out'} SPI ${spi(op.spec.spi)} ${op.spec.src} -> ${op.spec.dst} reqid ${op.spec.reqid}`;
    case 'delSa':
      return `delSa SPI ${spi(op.id.spi)} ${op.id.src} -> ${op.id.dst}`;
    case 'updateSa':
      return `updateSa SPI ${spi(op.id.spi)} -> ${op.newSrc} -> ${op.newDst}`;
    case 'addPolicy':
    case 'delPolicy': {
      const p = op.policy;
      return `${op.op} ${p.direction}${p.trap ? ' (trap)' : ''} ${p.src.startAddr}-${p.src.endAddr} === ${p.dst.startAddr}-${p.dst.endAddr} reqid ${p.reqid}`;
    }
  }
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export class Daemon {
  readonly stats: DaemonStats = {
    events: 0,
    eventErrors: 0,
    effectErrors: 0,
    kernelOps: 0,
    kernelErrors: 0,
    transportErrors: 0,
  };
  readonly timers: TimerRunner;
  private readonly clock: Clock;
  private readonly queue: IkeEvent[] = [];
  private running = false;
  private stopped = false;
  private stopping: Promise<void> | undefined;
  private kernelChain: Promise<void> = Promise.resolve();
  private readonly busListeners = new Set<(ev: BusEvent) => void>();

  constructor(private readonly parts: DaemonParts) {
    this.clock = parts.clock ?? monotonicClock;
    this.timers = new TimerRunner(this.clock, (key) => this.feed({ kind: 'timer', key }), parts.scheduler);
    if (hasListener(parts.installer)) parts.installer.setListener((ev) => this.feed({ kind: 'kernel', ev }));
  }

  /** Feeds one event; processed now, or right after the event being processed. */
  feed(ev: IkeEvent): void {
    if (this.stopped) return;
    this.queue.push(ev);
    if (this.running) return;
    this.running = true;
    try {
      for (let next = this.queue.shift(); next; next = this.queue.shift()) this.process(next);
    } finally {
      this.running = false;
    }
  }

  /** Feeds `start` (installs traps, initiates start_action=start connections). */
  start(): void {
    this.feed({ kind: 'start' });
  }

  /** Seam for the control socket: initiate / terminate / rekey. */
  command(cmd: Command): void {
    this.feed({ kind: 'command', cmd });
  }

  /** Seam for `ikegw sas`. */
  status(): IkeSaInfo[] {
    return this.parts.engine.list?.() ?? [];
  }

  /** Seam for metrics: receives every BusEvent. Returns an unsubscribe function. */
  onBus(fn: (ev: BusEvent) => void): () => void {
    this.busListeners.add(fn);
    return () => this.busListeners.delete(fn);
  }

  /** Counts and logs a transport error (UdpTransport's onError). */
  transportError(e: TransportError): void {
    this.stats.transportErrors++;
    const l = this.parts.logs.get('net');
    const fields = {
      errno: e.errno,
      kind: e.kind,
      ...(e.remote ? { peer: `${e.remote.address}:${e.remote.port}` } : {}),
    };
    if (e.kind === 'send') l.warn(fields, e.message);
    else l.error(fields, e.message);
  }

  /** Resolves when all kernel operations asked for so far are done (tests, shutdown). */
  async idle(): Promise<void> {
    let seen: Promise<void> | undefined;
    while (seen !== this.kernelChain) {
      seen = this.kernelChain;
      await seen;
    }
  }

  /**
   * Orderly stop: feed the `shutdown` command (IKE DELETEs, trap removal), let the kernel queue and
   * the sends drain for up to timeoutMs, then stop timers, flush the installer, close the sockets.
   */
  shutdown(timeoutMs = 2000): Promise<void> {
    this.stopping ??= this.doShutdown(timeoutMs);
    return this.stopping;
  }

  private async doShutdown(timeoutMs: number): Promise<void> {
    const log = this.parts.logs.get('daemon');
    const t0 = this.clock.now();
    log.info('shutting down: deleting IKE_SAs and policies');
    this.command({ cmd: 'shutdown' });
    const left = (): number => Math.max(0, timeoutMs - (this.clock.now() - t0));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const drained = await Promise.race([
      this.idle().then(() => true),
      new Promise<boolean>((r) => {
        timer = setTimeout(() => r(false), left());
      }),
    ]);
    clearTimeout(timer);
    if (!drained) log.warn('kernel operations still pending at shutdown; flushing anyway');
    if (!(await this.parts.transport.flush(left())))
      log.warn('some datagrams were still being sent at shutdown');
    this.stopped = true;
    this.timers.cancelAll();
    try {
      await this.parts.installer.flush();
    } catch (e) {
      log.error({ err: e }, `flushing the ${this.parts.installer.kind} data path failed: ${errorText(e)}`);
    }
    if (hasListener(this.parts.installer)) this.parts.installer.setListener(undefined);
    await this.parts.transport.close();
    log.info('stopped');
  }

  private process(ev: IkeEvent): void {
    this.stats.events++;
    let effects: Effect[];
    try {
      effects = this.parts.engine.handle(ev, this.clock.now());
    } catch (e) {
      this.stats.eventErrors++;
      this.parts.logs
        .get('daemon')
        .error({ err: e, event: ev.kind }, `internal error handling a ${ev.kind} event: ${errorText(e)}`);
      return;
    }
    for (const eff of effects) {
      try {
        this.execute(eff);
      } catch (e) {
        this.stats.effectErrors++;
        this.parts.logs
          .get('daemon')
          .error(
            { err: e, effect: eff.kind },
            `internal error executing a ${eff.kind} effect: ${errorText(e)}`,
          );
      }
    }
  }

  private execute(eff: Effect): void {
    switch (eff.kind) {
      case 'send':
        this.parts.transport.send(eff.local, eff.remote, eff.bytes);
        return;
      case 'keepalive':
        this.parts.transport.sendKeepalive(eff.local, eff.remote);
        return;
      case 'arm':
        this.timers.arm(eff.key, eff.atMs);
        return;
      case 'cancel':
        this.timers.cancel(eff.key);
        return;
      case 'kernel':
        this.kernel(eff.opId, eff.op);
        return;
      case 'emit':
        busToLog(eff.ev, this.parts.logs);
        for (const l of this.busListeners) {
          try {
            l(eff.ev);
          } catch (e) {
            this.stats.effectErrors++;
            this.parts.logs.get('daemon').error({ err: e }, `bus listener failed: ${errorText(e)}`);
          }
        }
        return;
    }
  }

  private kernel(opId: number, op: SaOp): void {
    this.stats.kernelOps++;
    const log = this.parts.logs.get('kernel');
    this.kernelChain = this.kernelChain.then(async () => {
      let error: { errno?: number; message: string } | undefined;
      try {
        await applySaOp(this.parts.installer, op);
        if (log.isLevelEnabled('debug')) log.debug({ opId }, `${describeOp(op)}: ok`);
      } catch (e) {
        this.stats.kernelErrors++;
        error = e instanceof KernelError ? { errno: e.errno, message: e.message } : { message: errorText(e) };
        log.warn(
          { opId, ...(error.errno !== undefined ? { errno: error.errno } : {}) },
          `${describeOp(op)}: ${error.message}`,
        );
      }
      this.feed(error ? { kind: 'kernel-done', opId, error } : { kind: 'kernel-done', opId });
    });
  }
}

// ---- composition -----------------------------------------------------------------------------------

/** TUN settings of the userspace data path (environment, until the config file has a section). */
function tunOptions(env: Env): { name: string; mtu: number } {
  const mtu = Number(env.IKEGW_TUN_MTU ?? 1400);
  return { name: env.IKEGW_TUN_NAME ?? 'ikegw0', mtu: Number.isInteger(mtu) && mtu >= 576 ? mtu : 1400 };
}

/**
 * The one place that picks the data path:
 *  - `xfrm`: kernel ESP through XFRM netlink (needs a kernel with ESP);
 *  - `userspace`: ESP in this process over a TUN device (src/esp/userspace; needs /dev/net/tun,
 *    CAP_NET_ADMIN and the native addon), for kernels without ESP — strongSwan's kernel-libipsec;
 *  - `auto`: xfrm when the kernel does ESP (probe: an ESP state in a scratch namespace), else
 *    userspace, else (no TUN either) the in-memory installer with a warning;
 *  - `memory`: no traffic, IKE only (tests).
 * Rejects when an explicitly chosen data path cannot be set up.
 * TUN name and MTU: IKEGW_TUN_NAME (default ikegw0), IKEGW_TUN_MTU (default 1400).
 */
export async function createInstaller(
  datapath: Datapath,
  logs: Logs,
  env: Env = process.env,
): Promise<SaInstaller> {
  const log = logs.get('kernel');
  const userspace = (): UserspaceInstaller => {
    const tun = tunOptions(env);
    const inst = UserspaceInstaller.open(tun, { log });
    log.info(
      { datapath: 'userspace', tun: tun.name, mtu: tun.mtu },
      `userspace ESP data path on TUN device ${tun.name} (MTU ${tun.mtu})`,
    );
    return inst;
  };
  const xfrm = (): Promise<SaInstaller> => createXfrmInstaller({ log });
  switch (datapath) {
    case 'memory':
      return new MemoryInstaller();
    case 'userspace':
      return userspace();
    case 'xfrm':
      return xfrm();
    case 'auto': {
      const probe = await probeKernelEspDetail().catch((e: unknown) => ({ ok: false, detail: errorText(e) }));
      if (probe.ok) {
        log.info({ datapath: 'auto', probe: probe.detail }, 'kernel ESP available: using the xfrm data path');
        return xfrm();
      }
      const why = probe.detail;
      const native = nativeAvailable();
      if (native.ok) {
        try {
          log.info({ datapath: 'auto', probe: why }, 'no kernel ESP: using the userspace data path');
          return userspace();
        } catch (e) {
          log.warn({ datapath: 'auto' }, `userspace data path unavailable: ${errorText(e)}`);
        }
      } else {
        log.warn({ datapath: 'auto' }, native.why);
      }
      log.warn(
        { datapath: 'auto', probe: why },
        'no kernel ESP and no userspace data path: using the in-memory installer — IKE and CHILD_SAs are negotiated, but no ESP traffic flows',
      );
      return new MemoryInstaller();
    }
  }
}

/** UdpTransport's onEsp for the chosen data path (ESP-in-UDP that reaches the daemon). */
export function espInput(
  installer: SaInstaller,
): ((local: Endpoint, remote: Endpoint, bytes: Uint8Array) => void) | undefined {
  if (installer instanceof UserspaceInstaller) return (l, r, b) => installer.receiveEsp(l, r, b);
  return undefined;
}

/** Connects the data path to the bound sockets: userspace sends ESP-in-UDP; XFRM needs UDP_ENCAP. */
export function attachDatapath(installer: SaInstaller, transport: UdpTransport, logs: Logs): void {
  if (installer instanceof UserspaceInstaller) {
    installer.attachTransport(transport);
    return;
  }
  if (installer.kind !== 'xfrm') return;
  if (!transport.natSocket) {
    logs
      .get('kernel')
      .warn('cannot set UDP_ENCAP on the NAT-T socket: the kernel will not decapsulate ESP-in-UDP');
    return;
  }
  try {
    enableEspInUdp(transport.natFd);
  } catch (e) {
    logs
      .get('kernel')
      .error(
        `setting UDP_ENCAP on the NAT-T socket failed, the kernel will not decapsulate ESP-in-UDP: ${errorText(e)}`,
      );
  }
}

const isWildcard = (a: string): boolean => a === '0.0.0.0' || a === '::';

/**
 * The engine uses a connection's first local address as the source of what it initiates (NAT
 * detection hashes, trap policies). When local_addrs is empty, fill in the address the kernel
 * would use towards the peer (or the listen address, if it is a specific one).
 */
export async function resolveLocalAddrs(
  cfg: EngineConfig,
  listenAddress: string,
  resolver: LocalAddressResolver,
  logs: Logs,
): Promise<void> {
  const log = logs.get('config');
  for (const conn of cfg.connections) {
    if (conn.localAddrs.length > 0) continue;
    if (!isWildcard(listenAddress)) {
      conn.localAddrs = [listenAddress];
      continue;
    }
    const remote = conn.remoteAddrs.find((a) => a !== '%any');
    if (!remote) continue;
    try {
      const local = await resolver.resolve(remote, conn.remotePort);
      conn.localAddrs = [local];
      log.info(
        { conn: conn.name, local, peer: remote },
        `${conn.name}: using local address ${local} towards ${remote} (route lookup)`,
      );
    } catch (e) {
      log.warn(
        { conn: conn.name, peer: remote },
        `${conn.name}: no route to ${remote} yet (${errorText(e)}); initiating will fail until there is one`,
      );
    }
  }
}

/** The active side of the daemon (see runDaemonWith): started and stopped as one. */
interface ActiveUnit {
  daemon: Daemon;
  ports: { port: number; natPort: number };
  /** Resolves when the start-up kernel work is done (readiness). */
  started: Promise<void>;
  /** DELETEs to the peers (bounded by timeoutMs), SAs and policies removed, sockets closed. */
  stop(timeoutMs: number): Promise<void>;
}

class UnitStartError extends Error {
  constructor(
    readonly fields: Record<string, unknown>,
    message: string,
  ) {
    super(message);
  }
}

/** Closes the TUN device / netlink sockets of a data path that is no longer used. */
function closeInstaller(installer: SaInstaller): void {
  try {
    (installer as { close?: () => void }).close?.();
  } catch {
    // already closed
  }
}

export interface RunOptions {
  configPath?: string;
  fromEnv?: boolean;
  /** --log-level: overrides the configured default and per-subsystem levels. */
  logLevel?: { level?: LogLevel; subsystems: Partial<Record<Subsystem, LogLevel>> };
  env: Env;
  /** Error output for config errors (before logging exists). */
  stderr: (s: string) => void;
  /** Log destination (default stdout). */
  logDestination?: { write(s: string): unknown };
  /** Resolves when the daemon should stop (default: SIGTERM or SIGINT). */
  stop?: Promise<unknown>;
  /** Called once the daemon runs (tests). */
  onReady?: (d: {
    daemon: Daemon;
    ports: { port: number; natPort: number };
    settings: DaemonSettings;
  }) => void;
}

function signalStop(): Promise<string> {
  return new Promise((resolve) => {
    const on = (sig: string): void => {
      process.off('SIGTERM', onTerm);
      process.off('SIGINT', onInt);
      resolve(sig);
    };
    const onTerm = (): void => on('SIGTERM');
    const onInt = (): void => on('SIGINT');
    process.on('SIGTERM', onTerm);
    process.on('SIGINT', onInt);
  });
}

/**
 * `ikegw daemon`: returns the exit code (0 after a clean stop, 1 on start-up failure, 2 on bad config).
 *
 * SIGHUP means `ikegw reload` (as for charon, nginx, sshd). Node's default action for SIGHUP ends
 * the process, so the listener goes on first, before the configuration is read; a SIGHUP during
 * start-up does nothing (the file is being read right then).
 */
export async function runDaemon(o: RunOptions): Promise<number> {
  const hup: { reload?: () => void } = {};
  const onHup = (): void => hup.reload?.();
  process.on('SIGHUP', onHup);
  try {
    return await runDaemonWith(o, hup);
  } finally {
    process.off('SIGHUP', onHup);
  }
}

async function runDaemonWith(o: RunOptions, hup: { reload?: () => void }): Promise<number> {
  // every load records the certificate/key files it reads: they are watched (cert-watch.ts)
  const load = () => recordCredentialFiles((opts) => loadFromOptions(o, opts));
  let certWatch: CertWatcher | undefined;
  const r = load();
  if (!r.ok) {
    printConfigProblems(r, o.stderr);
    return 2;
  }
  const { engine: engineCfg, daemon: settings } = r.value;
  const logs = createLogs({
    level: o.logLevel?.level ?? settings.log.level,
    format: settings.log.format,
    subsystems: { ...settings.log.subsystems, ...(o.logLevel?.subsystems ?? {}) },
    ...(o.logDestination ? { destination: o.logDestination, isTty: false } : {}),
  });
  const log = logs.get('daemon');
  for (const w of r.warnings) logs.get('config').warn(w);
  if (settings.inlinePsk.length > 0 && o.configPath && !o.fromEnv) {
    try {
      if ((statSync(o.configPath).mode & 0o077) !== 0) {
        logs
          .get('config')
          .warn(
            `${o.configPath} contains an inline PSK (connections ${settings.inlinePsk.join(', ')}) and is readable by group/others; chmod 600 it or use psk.file / psk.env`,
          );
      }
    } catch {
      // the file was readable a moment ago; nothing to add
    }
  }
  // Metrics + /healthz + /readyz (metrics.listen) and the control socket (src/daemon/control.ts).
  let ops: Operations;
  try {
    ops = await Operations.start({
      config: r.value,
      logs,
      version: version(),
      load,
      onApplied: (loaded) => certWatch?.applied(loaded, loaded.value.engine),
    });
  } catch (e) {
    log.fatal(`cannot start the metrics endpoint: ${errorText(e)}`);
    return 1;
  }
  hup.reload = () => {
    log.info('reload requested (SIGHUP)');
    // the outcome (applied, pending, or an invalid file: nothing changed) is logged by reload()
    ops.reload().catch((e: unknown) => {
      if (!(e instanceof ControlError)) log.error(`reload after SIGHUP failed: ${errorText(e)}`);
    });
  };

  // The active side — data path, UDP 500/4500, engine — as one unit: started once here, or (with
  // `ha:`) each time this replica takes the Lease and stopped each time it steps down (src/ha).
  const startUnit = async (): Promise<ActiveUnit> => {
    const engineCfg = ops.engineConfig;
    let installer: SaInstaller;
    try {
      installer = await createInstaller(settings.datapath, logs, o.env);
    } catch (e) {
      throw new UnitStartError(
        { datapath: settings.datapath },
        `cannot set up the ${settings.datapath} data path: ${errorText(e)}`,
      );
    }
    let daemon: Daemon | undefined;
    const resolver = new LocalAddressResolver();
    const transport = new UdpTransport({
      address: settings.listen.address,
      port: settings.listen.port,
      natPort: settings.listen.natPort,
      resolver,
      onIke: (local, remote, bytes) => daemon?.feed({ kind: 'datagram', local, remote, bytes }),
      onEsp: espInput(installer),
      onError: (e) =>
        daemon ? daemon.transportError(e) : logs.get('net').error({ errno: e.errno }, e.message),
    });
    let ports: { port: number; natPort: number };
    try {
      ports = await transport.start();
    } catch (e) {
      closeInstaller(installer);
      throw new UnitStartError(
        { errno: e instanceof TransportError ? e.errno : undefined },
        `cannot start: ${errorText(e)}`,
      );
    }
    ops.socketsBound(ports);
    attachDatapath(installer, transport, logs);
    await resolveLocalAddrs(engineCfg, settings.listen.address, resolver, logs);
    const engine = new IkeEngine(engineCfg, {
      random: systemRandom,
      ikePort: ports.port,
      nattPort: ports.natPort,
    });
    daemon = new Daemon({ engine, installer, transport, logs });
    ops.attach(daemon, installer, (next) => resolveLocalAddrs(next, settings.listen.address, resolver, logs));
    log.info(
      {
        listen: settings.listen.address,
        port: ports.port,
        natPort: ports.natPort,
        datapath: settings.datapath,
        connections: engineCfg.connections.map((c) => c.name),
      },
      `ikegw started: ${engineCfg.connections.length} connection(s), UDP ${ports.port}/${ports.natPort} on ${settings.listen.address}`,
    );
    daemon.start();
    const started = ops.startupDone();
    const d = daemon;
    return {
      daemon: d,
      ports,
      started,
      stop: async (timeoutMs) => {
        await d.shutdown(timeoutMs);
        closeInstaller(installer);
      },
    };
  };

  let unit: ActiveUnit | undefined;
  let ha: { shutdown(): Promise<void> } | undefined;
  if (settings.ha) {
    // Leader election on a Lease: the Kubernetes client is loaded only here.
    const { startHa } = await import('../ha/daemon.js');
    try {
      ha = await startHa({
        settings: settings.ha,
        env: o.env,
        logs,
        ops,
        // readiness follows the start-up work by itself (ops.startupDone); a step-down must not
        // wait for it
        activate: async () => {
          unit = await startUnit();
        },
        deactivate: async () => {
          const u = unit;
          unit = undefined;
          if (!u) return;
          // DELETEs get 1 s; the whole step-down is bounded so that the election goes on
          let timer: ReturnType<typeof setTimeout> | undefined;
          const done = await Promise.race([
            u.stop(1000).then(() => true),
            new Promise<boolean>((r) => {
              timer = setTimeout(() => r(false), 3000);
            }),
          ]);
          clearTimeout(timer);
          if (!done)
            log.error('stepping down took longer than 3 s (the data path does not answer); standby anyway');
        },
      });
    } catch (e) {
      log.fatal({ ha: settings.ha.lease }, `cannot start the HA election: ${errorText(e)}`);
      await ops.close();
      return 1;
    }
  } else {
    try {
      unit = await startUnit();
    } catch (e) {
      const f = e instanceof UnitStartError ? e.fields : {};
      log.fatal(f, errorText(e));
      await ops.close();
      return 1;
    }
  }
  // certificate rotation: changed certificate/key files are applied as by `ikegw reload`
  const running = ops;
  certWatch = new CertWatcher({ apply: () => running.reload({ quiet: true }), log: logs.get('config') });
  certWatch.applied(r, engineCfg);
  certWatch.start();
  if (unit) o.onReady?.({ daemon: unit.daemon, ports: unit.ports, settings });
  const why = await (o.stop ?? signalStop());
  log.info(`stop requested${typeof why === 'string' ? ` (${why})` : ''}`);
  ops.shuttingDown();
  certWatch.close();
  if (ha) await ha.shutdown();
  else await unit?.stop(2000);
  await ops.close();
  return 0;
}
