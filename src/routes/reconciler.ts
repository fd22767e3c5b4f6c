// The routes agent: keeps the routes the VPN needs in place, level-triggered.
//
// Desired state, recomputed on every pass from what the kernel reports:
//  - NODE namespace, for each on-prem CIDR:
//      <cidr> via <pod IP of that family> dev <host-side veth of the pod> onlink proto <P> [mtu <mtu>]
//    `dev` binds the route to the pod's host-side interface, so the kernel deletes it when the
//    pod's veth goes away; `onlink` because with Cilium the host-side lxc device carries no prefix
//    covering the pod IP (without it the kernel answers ENETUNREACH).
//  - POD namespace, depending on the data path (`podRoutes`):
//      'none' (kernel XFRM: the policies steer the traffic) -> no routes;
//      'dev'  (userspace ESP over TUN) -> <cidr> dev <tun> proto <P> [mtu <mtu>].
//
// Ownership rule (the only routes this agent ever changes or deletes): rtm_protocol == P and, in the
// node namespace, output interface == this pod's host-side veth. Everything else is foreign.
// Foreign-route rule: the kernel keys a route by (table, dst, tos, metric); a replace at a key held
// by a foreign route would overwrite it. With foreignRoutes = 'yield' (default) the agent leaves such
// a route alone, reports a conflict in its status/log, and installs its own route as soon as the
// foreign one is gone (route events trigger a pass). With 'replace' it overwrites the foreign route,
// which then becomes the agent's (use this to take over routes left by the reference chart's
// `ip route replace`, which carry proto boot). Routes for the same CIDR with another metric are
// different keys: they coexist and the kernel prefers the lowest metric.
//
// Triggers: rtnetlink link/address/route notifications in both namespaces (debounced), a slow
// periodic resync, a reopen when a namespace helper dies, and setPeerCidrs(). On stop, the agent
// deletes the routes it owns (unless cleanupOnStop is false).

import { ConfigError } from '../common/errors.js';
import { PassLoop } from '../common/pass-loop.js';
import { canonicalIp, ipFamily, parseCidr } from './addr.js';
import {
  DEFAULT_ROUTE_PROTOCOL,
  defaultMetric,
  type Family,
  type LinkInfo,
  type NetEvent,
  type RouteEntry,
  RouteError,
  type RouteSpec,
  type RouteTable,
  RT_TABLE_MAIN,
  routeKey,
} from './route-table.js';
import { openRtnetlinkTable } from './rtnetlink.js';

/** The subset of pino's logger used here. */
export interface Log {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

const silentLog: Log = { debug() {}, info() {}, warn() {}, error() {} };

export type PodRoutesMode = { kind: 'none' } | { kind: 'dev'; ifname: string };
export type ForeignRoutePolicy = 'yield' | 'replace';

export interface RoutesAgentOptions {
  /** On-prem CIDRs (IPv4 and/or IPv6), canonical network addresses. */
  peerCidrs: string[];
  /** MTU metric on every route; undefined = none (path MTU discovery). */
  mtu?: number | undefined;
  /** Namespace file of the node. Default /proc/1/ns/net (requires hostPID). */
  nodeNetns?: string;
  /** Namespace file of the pod; undefined (default) = this process's own namespace. */
  podNetns?: string | undefined;
  /** The pod's end of the veth pair. Default "eth0". */
  podInterface?: string;
  /** Next hops for the node routes; default: the global addresses of podInterface. */
  podIps?: string[] | undefined;
  /** The host-side interface by name; default: found as the peer (IFLA_LINK) of podInterface. */
  hostInterface?: string | undefined;
  /** Routes inside the pod. Default { kind: 'none' }. */
  podRoutes?: PodRoutesMode;
  /** rtm_protocol marking the agent's routes. Default 211. */
  routeProtocol?: number;
  /** Routing table (both namespaces). Default main (254). */
  table?: number;
  /** Route metric; default 0 for IPv4, 1024 for IPv6 (the kernel's defaults). */
  metric?: number | undefined;
  foreignRoutes?: ForeignRoutePolicy;
  /** Full resync period. Default 30 s. */
  resyncIntervalMs?: number;
  /** Coalescing delay for bursts of netlink events. Default 100 ms. */
  debounceMs?: number;
  /** Delete the agent's routes on stop(). Default true. */
  cleanupOnStop?: boolean;
  /** nsenter binary used to reach other namespaces. */
  nsenter?: string;
  log?: Log;
  signal?: AbortSignal;
  /** Replaces how tables are opened (tests with MemoryRouteTable). */
  openTable?: (which: 'node' | 'pod', netnsPath: string | undefined) => Promise<RouteTable>;
}

export interface RouteConflict {
  dst: string;
  protocol: number;
  gateway?: string;
  oif?: number;
}

export interface TableStatus {
  /** CIDRs of the routes this agent currently has installed in that namespace. */
  installed: string[];
  conflicts: RouteConflict[];
}

export interface RoutesStatus {
  converged: boolean;
  /** What the last pass could not find (pod interface, host interface, tun device, pod IP of a family). */
  waitingFor: string[];
  hostInterface?: { name: string; index: number };
  podIps: string[];
  node: TableStatus;
  pod: TableStatus;
  passes: number;
  /** Number of replace/delete operations in the last pass (0 once converged). */
  lastPassChanges: number;
  lastError?: string;
}

export interface RoutesAgent {
  /** Runs a full pass now (after any pass in flight) and resolves with the status after it. */
  reconcileNow(): Promise<RoutesStatus>;
  setPeerCidrs(cidrs: string[]): void;
  status(): RoutesStatus;
  /** Stops, removes the agent's routes (unless cleanupOnStop is false), closes the namespaces. */
  stop(): Promise<void>;
}

export interface RoutePlan {
  replace: RouteSpec[];
  delete: RouteEntry[];
  conflicts: RouteEntry[];
}

function sameAttrs(a: RouteEntry, b: RouteSpec): boolean {
  return (
    a.protocol === b.protocol &&
    a.oif === b.oif &&
    (a.gateway === undefined ? undefined : canonicalIp(a.gateway)) ===
      (b.gateway === undefined ? undefined : canonicalIp(b.gateway)) &&
    (a.mtu ?? 0) === (b.mtu ?? 0) &&
    (b.gateway === undefined || (a.onlink ?? false) === (b.onlink ?? false))
  );
}

/**
 * Pure planning step: given what should be and what is, which routes to replace and delete.
 * `isOurs` decides ownership; foreign routes are never deleted, and replaced only under 'replace'.
 */
export function planRoutes(
  desired: RouteSpec[],
  current: RouteEntry[],
  isOurs: (r: RouteEntry) => boolean,
  foreign: ForeignRoutePolicy,
): RoutePlan {
  const plan: RoutePlan = { replace: [], delete: [], conflicts: [] };
  const byKey = new Map<string, RouteEntry[]>();
  for (const c of current) {
    const k = routeKey(c);
    const list = byKey.get(k) ?? [];
    list.push(c);
    byKey.set(k, list);
  }
  const wanted = new Set<string>();
  for (const d of desired) {
    const k = routeKey(d);
    wanted.add(k);
    const at = byKey.get(k) ?? [];
    const mine = at.filter(isOurs);
    const theirs = at.filter((r) => !isOurs(r));
    if (theirs.length > 0 && foreign === 'yield') {
      plan.conflicts.push(...theirs);
      continue;
    }
    if (theirs.length === 0 && mine.length === 1 && sameAttrs(mine[0]!, d)) continue;
    plan.replace.push(d);
  }
  for (const c of current) {
    if (isOurs(c) && !wanted.has(routeKey(c))) plan.delete.push(c);
  }
  return plan;
}

function validateCidrs(cidrs: string[]): { family: Family; text: string }[] {
  const seen = new Set<string>();
  const out: { family: Family; text: string }[] = [];
  cidrs.forEach((c, i) => {
    const p = parseCidr(c, `peerCidrs[${i}]`);
    if (seen.has(p.text)) return;
    seen.add(p.text);
    out.push({ family: p.family, text: p.text });
  });
  return out;
}

function isLinkLocal6(ip: string): boolean {
  return /^fe[89ab][0-9a-f]:/i.test(canonicalIp(ip));
}

class RoutesReconciler implements RoutesAgent {
  private readonly log: Log;
  private cidrs: { family: Family; text: string }[];
  private readonly proto: number;
  private readonly table: number;
  private readonly foreign: ForeignRoutePolicy;
  private node: RouteTable | undefined;
  private pod: RouteTable | undefined;
  private unsubs: (() => void)[] = [];
  private needReopen = true;
  private resyncTimer: NodeJS.Timeout | undefined;
  private readonly loop: PassLoop;
  private lastHostIf: LinkInfo | undefined;
  /** Interfaces the last pass depended on, per namespace (for event filtering). */
  private watchedIndexes = { node: new Set<number>(), pod: new Set<number>() };
  private readonly reportedConflicts = new Set<string>();
  private st: RoutesStatus = {
    converged: false,
    waitingFor: [],
    podIps: [],
    node: { installed: [], conflicts: [] },
    pod: { installed: [], conflicts: [] },
    passes: 0,
    lastPassChanges: 0,
  };

  constructor(private readonly opts: RoutesAgentOptions) {
    this.log = opts.log ?? silentLog;
    this.cidrs = validateCidrs(opts.peerCidrs);
    this.proto = opts.routeProtocol ?? DEFAULT_ROUTE_PROTOCOL;
    if (!Number.isInteger(this.proto) || this.proto <= 4 || this.proto > 255) {
      throw new ConfigError('routeProtocol', `must be 5..255 (got ${this.proto})`);
    }
    this.table = opts.table ?? RT_TABLE_MAIN;
    this.foreign = opts.foreignRoutes ?? 'yield';
    if (opts.mtu !== undefined && (!Number.isInteger(opts.mtu) || opts.mtu < 68 || opts.mtu > 65535)) {
      throw new ConfigError('mtu', `must be 68..65535 (got ${opts.mtu})`);
    }
    this.loop = new PassLoop({
      pass: () => this.pass(),
      debounceMs: opts.debounceMs ?? 100,
      backoff: { baseMs: 250, maxExp: 7, maxMs: 30_000 },
      onScheduled: (reason) => this.log.debug({ reason }, 'routes: pass scheduled'),
      onSuccess: () => {
        delete this.st.lastError;
      },
      onError: (e, retryInMs) => {
        const msg = e instanceof Error ? e.message : String(e);
        this.st.lastError = msg;
        this.st.converged = false;
        this.log.warn({ err: msg, retryInMs }, 'routes: pass failed');
        if (e instanceof RouteError && e.errno === 'ENETNS') this.needReopen = true;
      },
    });
  }

  status(): RoutesStatus {
    return structuredClone(this.st);
  }

  async start(): Promise<void> {
    this.resyncTimer = setInterval(() => this.kick('resync'), this.opts.resyncIntervalMs ?? 30_000);
    this.opts.signal?.addEventListener('abort', () => void this.stop(), { once: true });
    try {
      await this.loop.run();
    } catch (e) {
      this.loop.failed(e);
    }
  }

  setPeerCidrs(cidrs: string[]): void {
    this.cidrs = validateCidrs(cidrs);
    this.kick('peer CIDRs changed');
  }

  reconcileNow(): Promise<RoutesStatus> {
    return this.loop.run().then(() => this.status());
  }

  private kick(reason: string): void {
    this.loop.kick(reason);
  }

  private onEvent(which: 'node' | 'pod', ev: NetEvent): void {
    if (ev.kind === 'lost') {
      this.log.warn({ table: which, reason: ev.reason }, 'routes: lost connection to namespace; reopening');
      this.needReopen = true;
      this.kick('lost');
      return;
    }
    if (!this.relevant(which, ev)) return;
    this.kick(`${which} ${ev.kind} ${ev.change}`);
  }

  /**
   * A node running Cilium sees a steady stream of link and route notifications (every pod's veth and
   * routes). Only the ones that can change this agent's desired or actual state trigger a pass; the
   * periodic resync covers anything this filter misjudges.
   */
  private relevant(which: 'node' | 'pod', ev: Exclude<NetEvent, { kind: 'lost' }>): boolean {
    if (this.st.waitingFor.length > 0 || this.st.passes === 0) return true;
    switch (ev.kind) {
      case 'route':
        return ev.route.protocol === this.proto || this.cidrs.some((c) => c.text === ev.route.dst);
      case 'link':
        return which === 'pod' || this.watchedIndexes.node.has(ev.link.index);
      case 'address':
        return which === 'pod' && this.watchedIndexes.pod.has(ev.address.index);
    }
  }

  private async closeTables(): Promise<void> {
    for (const u of this.unsubs) u();
    this.unsubs = [];
    const tables = [this.node, this.pod];
    this.node = undefined;
    this.pod = undefined;
    await Promise.all(tables.map((t) => t?.close().catch(() => undefined)));
  }

  private async openTables(): Promise<{ node: RouteTable; pod: RouteTable }> {
    if (!this.needReopen && this.node && this.pod) return { node: this.node, pod: this.pod };
    await this.closeTables();
    const open =
      this.opts.openTable ??
      ((which: 'node' | 'pod', netnsPath: string | undefined) =>
        openRtnetlinkTable({
          name: which,
          netnsPath,
          ...(this.opts.nsenter !== undefined ? { nsenter: this.opts.nsenter } : {}),
          onHelperStderr: (line) => this.log.warn({ table: which, line }, 'routes: namespace helper stderr'),
        }));
    const node = await open('node', this.opts.nodeNetns ?? '/proc/1/ns/net');
    let pod: RouteTable;
    try {
      pod = await open('pod', this.opts.podNetns);
    } catch (e) {
      await node.close().catch(() => undefined);
      throw e;
    }
    this.node = node;
    this.pod = pod;
    this.unsubs.push(node.watch((ev) => this.onEvent('node', ev)));
    this.unsubs.push(pod.watch((ev) => this.onEvent('pod', ev)));
    this.needReopen = false;
    return { node, pod };
  }

  private metricFor(f: Family): number {
    return this.opts.metric ?? defaultMetric(f);
  }

  private async pass(): Promise<void> {
    const { node, pod } = await this.openTables();
    const waiting: string[] = [];
    let changes = 0;

    // --- where things are -----------------------------------------------------------------
    const podIfName = this.opts.podInterface ?? 'eth0';
    const [podLinks, nodeLinks] = await Promise.all([pod.listLinks(), node.listLinks()]);
    const podIf = podLinks.find((l) => l.name === podIfName);
    let podIps: string[] = [];
    if (this.opts.podIps && this.opts.podIps.length > 0) {
      podIps = this.opts.podIps.map(canonicalIp);
    } else if (podIf) {
      const addrs = await pod.listAddresses();
      podIps = addrs
        .filter(
          (a) => a.index === podIf.index && a.scope === 0 && !(a.family === 6 && isLinkLocal6(a.address)),
        )
        .map((a) => a.address);
    }
    if (!podIf) waiting.push(`pod interface ${podIfName}`);

    let hostIf: LinkInfo | undefined;
    if (this.opts.hostInterface) {
      hostIf = nodeLinks.find((l) => l.name === this.opts.hostInterface);
    } else if (podIf?.peerIndex !== undefined) {
      const cand = nodeLinks.find((l) => l.index === podIf.peerIndex);
      // Guard against an ifindex that merely exists in the node namespace too: a veth's peer must
      // point back at the pod's interface.
      if (cand && (cand.peerIndex === undefined || cand.peerIndex === podIf.index)) hostIf = cand;
    }
    if (!hostIf) waiting.push(`host-side interface of ${podIfName}`);
    if (hostIf && (this.lastHostIf?.index !== hostIf.index || this.lastHostIf.name !== hostIf.name)) {
      this.log.info({ hostInterface: hostIf.name, index: hostIf.index }, 'routes: host-side interface found');
    }
    this.lastHostIf = hostIf;
    this.watchedIndexes = {
      node: new Set(hostIf ? [hostIf.index] : []),
      pod: new Set(podIf ? [podIf.index] : []),
    };

    // --- node namespace ---------------------------------------------------------------------
    const nodeStatus: TableStatus = { installed: [], conflicts: [] };
    if (hostIf) {
      const hostIndex = hostIf.index;
      const desired: RouteSpec[] = [];
      for (const c of this.cidrs) {
        const gw = podIps.find((ip) => ipFamily(ip) === c.family);
        if (!gw) {
          waiting.push(`an IPv${c.family} pod address for ${c.text}`);
          continue;
        }
        const r: RouteSpec = {
          family: c.family,
          dst: c.text,
          table: this.table,
          protocol: this.proto,
          metric: this.metricFor(c.family),
          gateway: gw,
          oif: hostIndex,
          onlink: true,
        };
        if (this.opts.mtu !== undefined) r.mtu = this.opts.mtu;
        desired.push(r);
      }
      const current = await node.listRoutes({ table: this.table });
      const isOurs = (r: RouteEntry) => r.protocol === this.proto && r.oif === hostIndex;
      changes += await this.apply(
        'node',
        node,
        planRoutes(desired, current, isOurs, this.foreign),
        nodeStatus,
      );
    }

    // --- pod namespace ----------------------------------------------------------------------
    const podStatus: TableStatus = { installed: [], conflicts: [] };
    {
      const mode = this.opts.podRoutes ?? { kind: 'none' };
      const desired: RouteSpec[] = [];
      if (mode.kind === 'dev') {
        const dev = podLinks.find((l) => l.name === mode.ifname);
        if (!dev) waiting.push(`pod device ${mode.ifname}`);
        else {
          for (const c of this.cidrs) {
            const r: RouteSpec = {
              family: c.family,
              dst: c.text,
              table: this.table,
              protocol: this.proto,
              metric: this.metricFor(c.family),
              oif: dev.index,
            };
            if (this.opts.mtu !== undefined) r.mtu = this.opts.mtu;
            desired.push(r);
          }
        }
      }
      // The pod namespace is this pod's alone: every route with our protocol is ours.
      const current = await pod.listRoutes({ table: this.table });
      const isOurs = (r: RouteEntry) => r.protocol === this.proto;
      changes += await this.apply('pod', pod, planRoutes(desired, current, isOurs, this.foreign), podStatus);
    }

    this.st = {
      converged:
        waiting.length === 0 && nodeStatus.conflicts.length === 0 && podStatus.conflicts.length === 0,
      waitingFor: waiting,
      podIps,
      node: nodeStatus,
      pod: podStatus,
      passes: this.st.passes + 1,
      lastPassChanges: changes,
    };
    if (hostIf) this.st.hostInterface = { name: hostIf.name, index: hostIf.index };
  }

  private async apply(
    which: 'node' | 'pod',
    t: RouteTable,
    plan: RoutePlan,
    out: TableStatus,
  ): Promise<number> {
    let changes = 0;
    const errors: string[] = [];
    for (const d of plan.replace) {
      try {
        await t.replaceRoute(d);
        changes++;
        this.log.info(
          { table: which, dst: d.dst, via: d.gateway, oif: d.oif, mtu: d.mtu, proto: d.protocol },
          'routes: installed',
        );
      } catch (e) {
        // ENETDOWN/ENODEV: the device went down or away in between; its link event brings us back.
        errors.push(`${d.dst}: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    for (const r of plan.delete) {
      try {
        await t.deleteRoute(r);
        changes++;
        this.log.info({ table: which, dst: r.dst }, 'routes: removed');
      } catch (e) {
        if (e instanceof RouteError && e.errno === 'ESRCH') continue; // already gone
        errors.push(`delete ${r.dst}: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    const conflictKeys = new Set<string>();
    for (const c of plan.conflicts) {
      const k = `${which}|${routeKey(c)}|${c.protocol}|${c.gateway ?? ''}|${c.oif ?? ''}`;
      conflictKeys.add(k);
      if (!this.reportedConflicts.has(k)) {
        this.reportedConflicts.add(k);
        this.log.warn(
          { table: which, dst: c.dst, foreignProtocol: c.protocol, gateway: c.gateway, oif: c.oif },
          'routes: a route this agent does not own holds the same destination and metric; leaving it (foreignRoutes=yield)',
        );
      }
      const rc: RouteConflict = { dst: c.dst, protocol: c.protocol };
      if (c.gateway !== undefined) rc.gateway = c.gateway;
      if (c.oif !== undefined) rc.oif = c.oif;
      out.conflicts.push(rc);
    }
    for (const k of [...this.reportedConflicts]) {
      if (k.startsWith(`${which}|`) && !conflictKeys.has(k)) this.reportedConflicts.delete(k);
    }
    const after = await t.listRoutes({ table: this.table });
    for (const r of after) {
      if (r.protocol !== this.proto) continue;
      if (which === 'node' && r.oif !== this.lastHostIf?.index) continue;
      out.installed.push(r.dst);
    }
    out.installed.sort();
    if (errors.length > 0) throw new RouteError(`reconcile ${which}`, 'EIO', errors.join('; '));
    return changes;
  }

  async stop(): Promise<void> {
    if (this.loop.isStopped) return;
    clearInterval(this.resyncTimer);
    await this.loop.stop();
    if ((this.opts.cleanupOnStop ?? true) && this.node && this.pod && !this.needReopen) {
      const hostIndex = this.lastHostIf?.index;
      for (const [which, t] of [
        ['node', this.node],
        ['pod', this.pod],
      ] as const) {
        try {
          const current = await t.listRoutes({ table: this.table });
          for (const r of current) {
            if (r.protocol !== this.proto) continue;
            if (which === 'node' && (hostIndex === undefined || r.oif !== hostIndex)) continue;
            await t.deleteRoute(r).catch((e: unknown) => {
              if (!(e instanceof RouteError && e.errno === 'ESRCH')) throw e;
            });
            this.log.info({ table: which, dst: r.dst }, 'routes: removed on shutdown');
          }
        } catch (e) {
          this.log.warn(
            { table: which, err: e instanceof Error ? e.message : String(e) },
            'routes: cleanup failed',
          );
        }
      }
    }
    await this.closeTables();
  }
}

/**
 * Starts the routes agent (`ikegw routes`). Resolves once the first pass has run (successfully or
 * not — failures are retried with backoff and visible in status()).
 */
export async function runRoutesAgent(opts: RoutesAgentOptions): Promise<RoutesAgent> {
  const r = new RoutesReconciler(opts);
  await r.start();
  return r;
}
