// RouteTable on rtnetlink (npm `netlink` 0.3.0, its rt structs for encoding and parsing).
// Message layouts: <linux/rtnetlink.h> (struct rtmsg, RTA_*), <linux/if_link.h> (IFLA_*),
// <linux/if_addr.h> (struct ifaddrmsg, IFA_*).
import { AttrStream, FlagsGet, FlagsNew, rt } from 'netlink';
import { bytesToIp, cidrText, ipToBytes, parseCidr } from './addr.js';
import {
  InProcessTransport,
  type NetlinkTransport,
  type NetnsRelayOptions,
  NetnsRelayTransport,
  type RawMessage,
} from './netlink-transport.js';
import type {
  AddressInfo,
  Family,
  LinkInfo,
  NetEvent,
  RouteEntry,
  RouteFilter,
  RouteSpec,
  RouteTable,
} from './route-table.js';

const AF_INET = 2;
const AF_INET6 = 10;
/** RTN_UNICAST */
const RTN_UNICAST = 1;
/** RT_SCOPE_UNIVERSE / RT_SCOPE_LINK */
const RT_SCOPE_UNIVERSE = 0;
const RT_SCOPE_LINK = 253;
/** Deletes say RT_SCOPE_NOWHERE: "any scope" to fib_table_delete, as iproute2 sends it. */
const RT_SCOPE_NOWHERE = 255;
/** RTNH_F_ONLINK, carried in rtm_flags (<linux/rtnetlink.h>). */
const RTNH_F_ONLINK = 4;
/** IFLA_INFO_KIND inside IFLA_LINKINFO (<linux/if_link.h>). */
const IFLA_INFO_KIND = 1;

/** RTNLGRP_* multicast groups this table listens to. */
const GROUPS = [
  rt.MulticastGroups.LINK,
  rt.MulticastGroups.IPV4_IFADDR,
  rt.MulticastGroups.IPV6_IFADDR,
  rt.MulticastGroups.IPV4_ROUTE,
  rt.MulticastGroups.IPV6_ROUTE,
];

function familyOf(af: number | undefined): Family | undefined {
  if (af === AF_INET) return 4;
  if (af === AF_INET6) return 6;
  return undefined;
}

function af(f: Family): number {
  return f === 4 ? AF_INET : AF_INET6;
}

/** The package maps known enum values to names ("STATIC", "UNIVERSE"); turn them back into numbers. */
function enumNumber(mapping: Record<string, string | number>, v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'string') {
    const n = mapping[v];
    if (typeof n === 'number') return n;
  }
  return 0;
}

function u32(b: Buffer | undefined): number | undefined {
  if (!b || b.length < 4) return undefined;
  // rtnetlink integers are in host byte order.
  return b.readUInt32LE(0);
}

function u32Buffer(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
}

/** Reads IFLA_INFO_KIND out of a raw IFLA_LINKINFO nest (struct nlattr TLVs, 4-byte aligned). */
function linkKind(linkinfo: Buffer | undefined): string | undefined {
  if (!linkinfo) return undefined;
  let off = 0;
  while (off + 4 <= linkinfo.length) {
    const len = linkinfo.readUInt16LE(off);
    const type = linkinfo.readUInt16LE(off + 2) & 0x3fff;
    if (len < 4 || off + len > linkinfo.length) break;
    if (type === IFLA_INFO_KIND)
      return linkinfo
        .subarray(off + 4, off + len)
        .toString('utf8')
        .replace(/\0+$/, '');
    off += (len + 3) & ~3;
  }
  return undefined;
}

function encode(msg: rt.Message): Buffer {
  const s = new AttrStream();
  switch (msg.kind) {
    case 'route':
      rt.formatRouteMessage(msg, s);
      break;
    case 'link':
      rt.formatLinkMessage(msg, s);
      break;
    case 'address':
      rt.formatAddressMessage(msg, s);
      break;
    default:
      throw new Error(`cannot encode ${msg.kind}`);
  }
  return Buffer.concat(s.bufs);
}

export function parseLink(m: rt.LinkMessage): LinkInfo | undefined {
  const index = m.data.index;
  const name = m.attrs.ifname;
  if (index === undefined || name === undefined) return undefined;
  const out: LinkInfo = { index, name, up: m.data.flags?.up === true };
  const peer = u32(m.attrs.link);
  if (peer !== undefined) out.peerIndex = peer;
  if (m.attrs.linkNetnsid !== undefined) out.peerNetnsId = m.attrs.linkNetnsid;
  const kind = linkKind(m.attrs.linkinfo);
  if (kind !== undefined) out.kind = kind;
  return out;
}

export function parseAddress(m: rt.AddressMessage): AddressInfo | undefined {
  const family = familyOf(m.data.family);
  const raw = m.attrs.local ?? m.attrs.address;
  if (!family || !raw || m.data.index === undefined) return undefined;
  return {
    family,
    index: m.data.index,
    address: bytesToIp(new Uint8Array(raw)),
    prefixLen: m.data.prefixlen ?? 0,
    scope: m.data.scope ?? 0,
  };
}

export function parseRoute(m: rt.RouteMessage): RouteEntry | undefined {
  const family = familyOf(m.data.family);
  if (!family) return undefined;
  if (enumNumber(rt.RouteType as unknown as Record<string, number>, m.data.type) !== RTN_UNICAST)
    return undefined;
  const dst = m.attrs.dst ? new Uint8Array(m.attrs.dst) : undefined;
  const out: RouteEntry = {
    family,
    dst: cidrText(family, dst, m.data.dstLen ?? 0),
    table: m.attrs.table ?? m.data.table ?? 0,
    protocol: enumNumber(rt.RouteProtocol as unknown as Record<string, number>, m.data.protocol),
    metric: m.attrs.priority ?? 0,
  };
  if (m.attrs.gateway) out.gateway = bytesToIp(new Uint8Array(m.attrs.gateway));
  if (m.attrs.oif !== undefined) out.oif = m.attrs.oif;
  const flags = m.data.flags?.__unknown ?? 0;
  if (flags & RTNH_F_ONLINK) out.onlink = true;
  const mtu = u32(m.attrs.metrics?.mtu);
  if (mtu !== undefined && mtu > 0) out.mtu = mtu;
  return out;
}

function routeMessage(r: RouteSpec | RouteEntry, forDelete: boolean): rt.RouteMessage {
  const c = parseCidr(r.dst, 'route.dst');
  const data: rt.Route = {
    family: af(r.family),
    dstLen: c.prefixLen,
    // rtm_table is 8 bits; RTA_TABLE carries the full id.
    table: r.table < 256 ? r.table : 252,
    protocol: r.protocol,
    scope: forDelete ? RT_SCOPE_NOWHERE : r.gateway ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK,
    type: RTN_UNICAST,
  };
  if (r.onlink && !forDelete) data.flags = { __unknown: RTNH_F_ONLINK };
  const attrs: rt.RouteAttrs = { table: r.table, priority: r.metric };
  if (c.prefixLen > 0) attrs.dst = Buffer.from(c.bytes);
  if (r.gateway) attrs.gateway = Buffer.from(ipToBytes(r.gateway));
  if (r.oif !== undefined) attrs.oif = r.oif;
  if (r.mtu !== undefined && !forDelete) attrs.metrics = { mtu: u32Buffer(r.mtu) };
  return { kind: 'route', data, attrs };
}

export class RtnetlinkRouteTable implements RouteTable {
  private listeners = new Set<(ev: NetEvent) => void>();
  private joined = false;

  constructor(
    readonly name: string,
    private readonly transport: NetlinkTransport,
  ) {
    transport.onNotification((msgs) => this.onNotification(msgs));
    transport.onLost((reason) => this.emit({ kind: 'lost', reason }));
  }

  private emit(ev: NetEvent): void {
    for (const l of this.listeners) l(ev);
  }

  private onNotification(msgs: RawMessage[]): void {
    for (const raw of msgs) {
      let m: rt.Message;
      try {
        m = rt.parseMessage(raw.type, raw.data);
      } catch {
        continue;
      }
      const del =
        raw.type === rt.MessageType.DELLINK ||
        raw.type === rt.MessageType.DELROUTE ||
        raw.type === rt.MessageType.DELADDR;
      const change = del ? 'del' : 'new';
      if (m.kind === 'link') {
        const link = parseLink(m);
        if (link) this.emit({ kind: 'link', change, link });
      } else if (m.kind === 'route') {
        const route = parseRoute(m);
        if (route) this.emit({ kind: 'route', change, route });
      } else if (m.kind === 'address') {
        const address = parseAddress(m);
        if (address) this.emit({ kind: 'address', change, address });
      }
    }
  }

  private async dump(op: string, type: number, msg: rt.Message): Promise<rt.Message[]> {
    const replies = await this.transport.request(op, type, FlagsGet.DUMP, encode(msg));
    const out: rt.Message[] = [];
    for (const r of replies) {
      try {
        out.push(rt.parseMessage(r.type, r.data));
      } catch {
        // The package throws on message types it has no struct for; those are not ours.
      }
    }
    return out;
  }

  async listLinks(): Promise<LinkInfo[]> {
    const msgs = await this.dump('listLinks', rt.MessageType.GETLINK, { kind: 'link', data: {}, attrs: {} });
    const out: LinkInfo[] = [];
    for (const m of msgs) {
      if (m.kind !== 'link') continue;
      const l = parseLink(m);
      if (l) out.push(l);
    }
    return out;
  }

  async listAddresses(family?: Family): Promise<AddressInfo[]> {
    const msgs = await this.dump('listAddresses', rt.MessageType.GETADDR, {
      kind: 'address',
      data: family ? { family: af(family) } : {},
      attrs: {},
    });
    const out: AddressInfo[] = [];
    for (const m of msgs) {
      if (m.kind !== 'address') continue;
      const a = parseAddress(m);
      if (a && (!family || a.family === family)) out.push(a);
    }
    return out;
  }

  async listRoutes(filter: RouteFilter = {}): Promise<RouteEntry[]> {
    const msgs = await this.dump('listRoutes', rt.MessageType.GETROUTE, {
      kind: 'route',
      data: filter.family ? { family: af(filter.family) } : {},
      attrs: {},
    });
    const out: RouteEntry[] = [];
    for (const m of msgs) {
      if (m.kind !== 'route') continue;
      const r = parseRoute(m);
      if (!r) continue;
      if (filter.family && r.family !== filter.family) continue;
      if (filter.table !== undefined && r.table !== filter.table) continue;
      if (filter.protocol !== undefined && r.protocol !== filter.protocol) continue;
      if (filter.dst !== undefined && r.dst !== filter.dst) continue;
      out.push(r);
    }
    return out;
  }

  async replaceRoute(r: RouteSpec): Promise<void> {
    await this.transport.request(
      `replace ${r.dst}`,
      rt.MessageType.NEWROUTE,
      FlagsNew.CREATE | FlagsNew.REPLACE,
      encode(routeMessage(r, false)),
    );
  }

  async deleteRoute(r: RouteEntry | RouteSpec): Promise<void> {
    await this.transport.request(
      `delete ${r.dst}`,
      rt.MessageType.DELROUTE,
      0,
      encode(routeMessage(r, true)),
    );
  }

  watch(listener: (ev: NetEvent) => void): () => void {
    this.listeners.add(listener);
    if (!this.joined) {
      this.joined = true;
      this.transport.join(GROUPS).catch((e: unknown) => {
        this.emit({ kind: 'lost', reason: `cannot join rtnetlink groups: ${String(e)}` });
      });
    }
    return () => {
      this.listeners.delete(listener);
    };
  }

  async close(): Promise<void> {
    this.listeners.clear();
    await this.transport.close();
  }
}

export interface OpenRouteTableOptions {
  /** Label for logs. */
  name: string;
  /** Namespace file to operate in; undefined = this process's own namespace. */
  netnsPath?: string;
  nsenter?: string;
  onHelperStderr?: (line: string) => void;
}

/** Opens a RouteTable in this process's namespace, or in another one through an nsenter helper. */
export async function openRtnetlinkTable(opts: OpenRouteTableOptions): Promise<RtnetlinkRouteTable> {
  if (opts.netnsPath === undefined) return new RtnetlinkRouteTable(opts.name, new InProcessTransport());
  const relayOpts: NetnsRelayOptions = { netnsPath: opts.netnsPath };
  if (opts.nsenter !== undefined) relayOpts.nsenter = opts.nsenter;
  if (opts.onHelperStderr !== undefined) relayOpts.onStderr = opts.onHelperStderr;
  return new RtnetlinkRouteTable(opts.name, await NetnsRelayTransport.open(relayOpts));
}
