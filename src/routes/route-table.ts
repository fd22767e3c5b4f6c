// The route port: strongSwan's kernel_net_t (src/libcharon/kernel/kernel_net.h) reduced to what the
// routes agent needs — list links and addresses, list/replace/delete routes in one network
// namespace, and a stream of link/route change events. Implementations: rtnetlink.ts (the kernel,
// in this process's namespace or another one) and memory.ts (tests).
import { IkegwError } from '../common/errors.js';

export type Family = 4 | 6;

/** The kernel's main routing table (RT_TABLE_MAIN in <linux/rtnetlink.h>). */
export const RT_TABLE_MAIN = 254;

/** rtm_protocol values are an 8-bit field; the kernel only interprets values below RTPROT_STATIC (4). */
export const RTPROT_STATIC = 4;

/**
 * The default rtm_protocol ikegw marks its routes with. Not registered anywhere (iproute2's
 * /etc/iproute2/rt_protos and <linux/rtnetlink.h> use 0–18, 42, 99, 186–192); configurable.
 */
export const DEFAULT_ROUTE_PROTOCOL = 211;

/** IPv6 routes without an explicit metric get 1024 (IP6_RT_PRIO_USER); IPv4 ones get 0. */
export function defaultMetric(family: Family): number {
  return family === 6 ? 1024 : 0;
}

/** What the caller wants installed. `dst` is canonical CIDR text ("192.168.0.0/16", "fd00::/64"). */
export interface RouteSpec {
  family: Family;
  dst: string;
  table: number;
  /** rtm_protocol; the owner mark. */
  protocol: number;
  /** RTA_PRIORITY (metric). Part of the kernel's key for a route together with table, dst and tos. */
  metric: number;
  /** Next hop address; absent for a device route (scope link). */
  gateway?: string;
  /** Output interface index (RTA_OIF). */
  oif: number;
  /** RTNH_F_ONLINK: the gateway is on the link even though no prefix on the link covers it. */
  onlink?: boolean;
  /** RTAX_MTU; absent = no MTU metric (path MTU discovery decides). */
  mtu?: number;
}

/** A unicast route as read back from a table. Fields the kernel did not report are absent. */
export interface RouteEntry extends Omit<RouteSpec, 'oif'> {
  oif?: number;
}

export interface LinkInfo {
  index: number;
  name: string;
  up: boolean;
  /** IFLA_LINK: for a veth, the peer's ifindex in the peer's namespace. */
  peerIndex?: number;
  /** IFLA_LINK_NETNSID: the peer namespace's id as seen from this namespace (veth pairs across namespaces). */
  peerNetnsId?: number;
  /** IFLA_INFO_KIND ("veth", "tun", "dummy", …) when the kernel reports it. */
  kind?: string;
}

export interface AddressInfo {
  family: Family;
  index: number;
  address: string;
  prefixLen: number;
  /** RT_SCOPE_*: 0 universe (global), 253 link, 254 host. */
  scope: number;
}

export type NetEvent =
  | { kind: 'link'; change: 'new' | 'del'; link: LinkInfo }
  | { kind: 'route'; change: 'new' | 'del'; route: RouteEntry }
  | { kind: 'address'; change: 'new' | 'del'; address: AddressInfo }
  /** The table's connection to its namespace is gone (helper process died, socket closed). */
  | { kind: 'lost'; reason: string };

export interface RouteFilter {
  family?: Family;
  table?: number;
  protocol?: number;
  dst?: string;
}

export interface RouteTable {
  /** A label for logs ("node", "pod", or the namespace path). */
  readonly name: string;
  listLinks(): Promise<LinkInfo[]>;
  listAddresses(family?: Family): Promise<AddressInfo[]>;
  listRoutes(filter?: RouteFilter): Promise<RouteEntry[]>;
  /** NLM_F_CREATE|NLM_F_REPLACE: installs, or replaces the route with the same (table, dst, tos, metric). */
  replaceRoute(r: RouteSpec): Promise<void>;
  /** Deletes the route matching table, dst, metric, protocol (and oif/gateway when given). */
  deleteRoute(r: RouteEntry | RouteSpec): Promise<void>;
  /** Subscribes to link, address and route changes; returns the unsubscribe function. */
  watch(listener: (ev: NetEvent) => void): () => void;
  close(): Promise<void>;
}

/** A failed kernel request, keeping the errno (the netlink package throws a plain Error). */
export class RouteError extends IkegwError {
  constructor(
    readonly op: string,
    /** errno name such as "EEXIST", "ENETUNREACH", "ESRCH"; "ENETNS" when the namespace helper is gone. */
    readonly errno: string,
    message: string,
  ) {
    super(`ERR_ROUTE_${errno}`, `${op}: ${message}`);
  }
}

/** Identity of a route in the kernel: table, family, destination, metric (tos is always 0 here). */
export function routeKey(r: { family: Family; table: number; dst: string; metric: number }): string {
  return `${r.family}|${r.table}|${r.dst}|${r.metric}`;
}
