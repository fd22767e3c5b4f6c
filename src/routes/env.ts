// The environment contract of `ikegw routes`, with the reference chart's variable names
// (VPN_PEER_CIDRS space-separated, VPN_MTU empty = no MTU) plus ikegw's own IKEGW_* settings.
// The CLI may also map flags onto RoutesAgentOptions directly.
import { ConfigError } from '../common/errors.js';
import type { PodRoutesMode, RoutesAgentOptions } from './reconciler.js';

export type Env = Record<string, string | undefined>;

export function splitList(v: string | undefined): string[] {
  return (v ?? '')
    .split(/[\s,]+/)
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

export function parseMtu(v: string | undefined, field = 'VPN_MTU'): number | undefined {
  const s = (v ?? '').trim();
  if (s === '') return undefined;
  if (!/^\d+$/.test(s)) throw new ConfigError(field, `not a number: ${JSON.stringify(v)}`);
  return Number(s);
}

export function parsePodRoutes(v: string | undefined): PodRoutesMode {
  const s = (v ?? '').trim();
  if (s === '' || s === 'none') return { kind: 'none' };
  const m = /^dev:(\S+)$/.exec(s);
  if (m) return { kind: 'dev', ifname: m[1]! };
  throw new ConfigError('IKEGW_POD_ROUTES', `expected "none" or "dev:<ifname>", got ${JSON.stringify(v)}`);
}

/**
 * VPN_PEER_CIDRS   on-prem CIDRs (required)
 * VPN_MTU          MTU on the routes; empty = none
 * IKEGW_NODE_NETNS namespace file of the node (default /proc/1/ns/net, needs hostPID)
 * IKEGW_POD_NETNS  namespace file of the pod (default: the process's own)
 * IKEGW_POD_INTERFACE  the pod's veth end (default eth0)
 * IKEGW_POD_IPS    next hops (default: the pod interface's global addresses; POD_IPS/POD_IP also read)
 * IKEGW_POD_ROUTES "none" (XFRM data path) or "dev:<tun>" (userspace ESP), default none
 * IKEGW_ROUTE_PROTOCOL  rtm_protocol owner mark (default 211)
 * IKEGW_FOREIGN_ROUTES  "yield" (default) or "replace"
 */
export function routesOptionsFromEnv(env: Env): RoutesAgentOptions {
  const peerCidrs = splitList(env.VPN_PEER_CIDRS);
  if (peerCidrs.length === 0)
    throw new ConfigError('VPN_PEER_CIDRS', 'at least one on-prem CIDR is required');
  const opts: RoutesAgentOptions = {
    peerCidrs,
    mtu: parseMtu(env.VPN_MTU),
    podRoutes: parsePodRoutes(env.IKEGW_POD_ROUTES),
  };
  if (env.IKEGW_NODE_NETNS) opts.nodeNetns = env.IKEGW_NODE_NETNS;
  if (env.IKEGW_POD_NETNS) opts.podNetns = env.IKEGW_POD_NETNS;
  if (env.IKEGW_POD_INTERFACE) opts.podInterface = env.IKEGW_POD_INTERFACE;
  const ips = splitList(env.IKEGW_POD_IPS ?? env.POD_IPS ?? env.POD_IP);
  if (ips.length > 0) opts.podIps = ips;
  if (env.IKEGW_ROUTE_PROTOCOL) {
    const p = Number(env.IKEGW_ROUTE_PROTOCOL);
    if (!Number.isInteger(p)) throw new ConfigError('IKEGW_ROUTE_PROTOCOL', 'not an integer');
    opts.routeProtocol = p;
  }
  const f = env.IKEGW_FOREIGN_ROUTES;
  if (f !== undefined && f !== '') {
    if (f !== 'yield' && f !== 'replace')
      throw new ConfigError('IKEGW_FOREIGN_ROUTES', 'expected yield or replace');
    opts.foreignRoutes = f;
  }
  return opts;
}
