// The routes agent against the real kernel, in two network namespaces created here: "node" and
// "pod", joined by a veth pair the way Cilium joins a pod to its node (lxc* on the node side, no
// address on it; eth0 with a /32 and a /128 in the pod). The independent judge is iproute2:
// `ip -j -d route show` parsed as JSON.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type RoutesAgent, type RoutesAgentOptions, runRoutesAgent } from '../../src/routes/reconciler.js';
import { waitFor } from '../fakes/wait.js';

const isRoot = process.getuid?.() === 0;
const haveTools = ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip'].some(existsSync) && hasNsenter();
const skipReason = !isRoot
  ? 'needs root (creates network namespaces)'
  : !haveTools
    ? 'needs iproute2 (ip) and util-linux (nsenter)'
    : '';

function hasNsenter(): boolean {
  try {
    execFileSync('nsenter', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const PREFIX = `ikgwr${process.pid % 10000}-`;
const NODE = `${PREFIX}node`;
const POD = `${PREFIX}pod`;
const LXC = `lxc${process.pid % 10000}`;
const PROTO = 211;

function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8' });
}
function ipQuiet(...args: string[]): void {
  try {
    execFileSync('ip', args, { stdio: 'ignore' });
  } catch {
    /* cleanup of something already gone */
  }
}

interface IpRoute {
  dst: string;
  gateway?: string;
  dev?: string;
  protocol?: string;
  flags?: string[];
  metrics?: { mtu?: number }[];
  metric?: number;
}

function routes(ns: string, family: '-4' | '-6', proto?: number): IpRoute[] {
  const args = ['-n', ns, family, '-j', '-d', 'route', 'show', 'table', 'main'];
  if (proto !== undefined) args.push('proto', String(proto));
  return JSON.parse(ip(...args) || '[]') as IpRoute[];
}

/** The fields the agent controls, normalized for comparison. */
function view(r: IpRoute): Record<string, unknown> {
  const mtu = r.metrics?.find((m) => m.mtu !== undefined)?.mtu;
  return {
    dst: r.dst,
    ...(r.gateway ? { gateway: r.gateway } : {}),
    dev: r.dev,
    onlink: (r.flags ?? []).includes('onlink'),
    ...(mtu !== undefined ? { mtu } : {}),
  };
}

function sortByDst<T extends { dst: unknown }>(xs: T[]): T[] {
  return [...xs].sort((a, b) => String(a.dst).localeCompare(String(b.dst)));
}

function nodeView(family: '-4' | '-6' = '-4'): Record<string, unknown>[] {
  return sortByDst(routes(NODE, family, PROTO).map(view) as { dst: unknown }[]);
}
function podView(family: '-4' | '-6' = '-4'): Record<string, unknown>[] {
  return sortByDst(routes(POD, family, PROTO).map(view) as { dst: unknown }[]);
}

function createTopology(): void {
  ip('netns', 'add', NODE);
  ip('netns', 'add', POD);
  ip('-n', NODE, 'link', 'set', 'lo', 'up');
  ip('-n', POD, 'link', 'set', 'lo', 'up');
  createVeth();
  // The userspace data path's TUN device inside the pod.
  ip('-n', POD, 'tuntap', 'add', 'dev', 'ikegw0', 'mode', 'tun');
  ip('-n', POD, 'link', 'set', 'ikegw0', 'up');
}

function createVeth(): void {
  ip('-n', NODE, 'link', 'add', LXC, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', POD);
  ip('-n', NODE, 'link', 'set', LXC, 'up');
  ip('-n', POD, 'link', 'set', 'eth0', 'up');
  ip('-n', POD, 'addr', 'add', '10.10.1.5/32', 'dev', 'eth0');
  ip('-n', POD, 'addr', 'add', 'fd00:10::5/128', 'dev', 'eth0', 'nodad');
}

function destroyTopology(): void {
  ipQuiet('netns', 'del', NODE);
  ipQuiet('netns', 'del', POD);
}

const base: Omit<RoutesAgentOptions, 'peerCidrs'> = {
  nodeNetns: `/run/netns/${NODE}`,
  podNetns: `/run/netns/${POD}`,
  podInterface: 'eth0',
  podRoutes: { kind: 'dev', ifname: 'ikegw0' },
  routeProtocol: PROTO,
  debounceMs: 20,
  resyncIntervalMs: 60_000, // long: convergence below must come from netlink events
};

describe.skipIf(skipReason !== '')(
  `routes agent in network namespaces${skipReason ? ` (skipped: ${skipReason})` : ''}`,
  () => {
    let agent: RoutesAgent | undefined;

    beforeAll(() => {
      destroyTopology();
    });
    beforeEach(() => {
      createTopology();
    });
    afterEach(async () => {
      await agent?.stop();
      agent = undefined;
      destroyTopology();
    });
    afterAll(() => {
      destroyTopology();
    });

    it('installs exactly the expected node and pod routes, with MTU, and is idempotent', async () => {
      agent = await runRoutesAgent({
        ...base,
        peerCidrs: ['192.168.0.0/16', '172.20.0.0/24', 'fd00:99::/64'],
        mtu: 1300,
      });
      const st = await agent.reconcileNow();
      expect(st.converged).toBe(true);
      expect(st.hostInterface?.name).toBe(LXC);
      expect(st.podIps.sort()).toEqual(['10.10.1.5', 'fd00:10::5']);

      expect(nodeView('-4')).toEqual([
        { dst: '172.20.0.0/24', gateway: '10.10.1.5', dev: LXC, onlink: true, mtu: 1300 },
        { dst: '192.168.0.0/16', gateway: '10.10.1.5', dev: LXC, onlink: true, mtu: 1300 },
      ]);
      expect(nodeView('-6')).toEqual([
        { dst: 'fd00:99::/64', gateway: 'fd00:10::5', dev: LXC, onlink: true, mtu: 1300 },
      ]);
      expect(podView('-4')).toEqual([
        { dst: '172.20.0.0/24', dev: 'ikegw0', onlink: false, mtu: 1300 },
        { dst: '192.168.0.0/16', dev: 'ikegw0', onlink: false, mtu: 1300 },
      ]);
      expect(podView('-6')).toEqual([{ dst: 'fd00:99::/64', dev: 'ikegw0', onlink: false, mtu: 1300 }]);
      // No duplicates for any CIDR, whatever the protocol.
      const all = routes(NODE, '-4').filter((r) => r.dst === '192.168.0.0/16');
      expect(all).toHaveLength(1);
      expect(all[0]?.protocol).toBe(String(PROTO));

      // A second pass changes nothing.
      const again = await agent.reconcileNow();
      expect(again.lastPassChanges).toBe(0);
      expect(routes(NODE, '-4', PROTO)).toHaveLength(2);
    });

    it('installs no mtu attribute when mtu is not set', async () => {
      agent = await runRoutesAgent({ ...base, peerCidrs: ['192.168.0.0/16'] });
      await agent.reconcileNow();
      const r = routes(NODE, '-4', PROTO);
      expect(r).toHaveLength(1);
      expect(r[0]?.metrics).toBeUndefined();
      expect(view(r[0]!)).toEqual({ dst: '192.168.0.0/16', gateway: '10.10.1.5', dev: LXC, onlink: true });
    });

    it('xfrm data path (podRoutes none) installs node routes only', async () => {
      agent = await runRoutesAgent({ ...base, podRoutes: { kind: 'none' }, peerCidrs: ['192.168.0.0/16'] });
      await agent.reconcileNow();
      expect(routes(NODE, '-4', PROTO)).toHaveLength(1);
      expect(routes(POD, '-4', PROTO)).toHaveLength(0);
    });

    it('converges when the CIDR list changes (added and removed)', async () => {
      agent = await runRoutesAgent({ ...base, peerCidrs: ['192.168.0.0/16', '172.20.0.0/24'], mtu: 1300 });
      await agent.reconcileNow();
      agent.setPeerCidrs(['172.20.0.0/24', '10.99.0.0/16']);
      const want = JSON.stringify(['10.99.0.0/16', '172.20.0.0/24']);
      await waitFor(() => [nodeView('-4').map((r) => r.dst), podView('-4').map((r) => r.dst)], {
        what: 'node and pod routes to follow the CIDR list',
        ok: ([n, p]) => JSON.stringify(n) === want && JSON.stringify(p) === want,
      });
      agent.setPeerCidrs([]);
      await waitFor(() => routes(NODE, '-4', PROTO).length === 0 && routes(POD, '-4', PROTO).length === 0, {
        what: 'all routes removed for an empty CIDR list',
      });
    });

    it('the kernel removes the node routes with the veth; the agent reinstalls them when the pod is back', async () => {
      agent = await runRoutesAgent({ ...base, peerCidrs: ['192.168.0.0/16', 'fd00:99::/64'], mtu: 1400 });
      await agent.reconcileNow();
      expect(routes(NODE, '-4', PROTO)).toHaveLength(1);
      ip('-n', NODE, 'link', 'del', LXC);
      expect(routes(NODE, '-4', PROTO)).toHaveLength(0);
      expect(routes(NODE, '-6', PROTO)).toHaveLength(0);
      await waitFor(() => agent?.status().waitingFor.some((w) => w.includes('eth0')), {
        what: 'agent to notice the interface is gone',
      });
      expect(routes(NODE, '-4', PROTO)).toHaveLength(0);

      createVeth();
      await waitFor(() => nodeView('-4'), {
        what: 'routes back after the veth returns (link events, not the 60 s resync)',
        ok: (v) => v.length === 1 && v[0]?.dev === LXC && v[0]?.mtu === 1400,
      });
      await waitFor(() => nodeView('-6').length === 1, { what: 'IPv6 route back' });
    });

    it('puts back a route deleted behind its back', async () => {
      agent = await runRoutesAgent({ ...base, peerCidrs: ['192.168.0.0/16'], mtu: 1300 });
      await agent.reconcileNow();
      ip('-n', NODE, 'route', 'del', '192.168.0.0/16', 'proto', String(PROTO));
      await waitFor(() => nodeView('-4'), {
        what: 'route restored after an external delete',
        ok: (v) => v.length === 1 && v[0]?.mtu === 1300,
      });
    });

    it('foreign route, foreignRoutes=yield: leaves it alone, reports it, installs its own once it is gone', async () => {
      ip(
        '-n',
        NODE,
        'route',
        'add',
        '192.168.0.0/16',
        'via',
        '10.10.1.5',
        'dev',
        LXC,
        'onlink',
        'proto',
        'static',
      );
      agent = await runRoutesAgent({ ...base, peerCidrs: ['192.168.0.0/16', '172.20.0.0/24'], mtu: 1300 });
      const st = await agent.reconcileNow();
      expect(st.converged).toBe(false);
      expect(st.node.conflicts).toEqual([
        expect.objectContaining({ dst: '192.168.0.0/16', protocol: 4, gateway: '10.10.1.5' }),
      ]);
      const at = routes(NODE, '-4').filter((r) => r.dst === '192.168.0.0/16');
      expect(at).toHaveLength(1);
      expect(at[0]?.protocol).toBe('static');
      expect(at[0]?.metrics).toBeUndefined();
      expect(nodeView('-4').map((r) => r.dst)).toEqual(['172.20.0.0/24']);

      ip('-n', NODE, 'route', 'del', '192.168.0.0/16', 'proto', 'static');
      await waitFor(() => nodeView('-4').map((r) => r.dst), {
        what: 'own route installed after the foreign one went away',
        ok: (d) => d.length === 2,
      });
      const after = await agent.reconcileNow();
      expect(after.node.conflicts).toEqual([]);
      expect(after.converged).toBe(true);
    });

    it('foreign route, foreignRoutes=replace: takes it over', async () => {
      ip('-n', NODE, 'route', 'add', '192.168.0.0/16', 'via', '10.10.1.5', 'dev', LXC, 'onlink');
      agent = await runRoutesAgent({
        ...base,
        foreignRoutes: 'replace',
        peerCidrs: ['192.168.0.0/16'],
        mtu: 1300,
      });
      await agent.reconcileNow();
      const at = routes(NODE, '-4').filter((r) => r.dst === '192.168.0.0/16');
      expect(at).toHaveLength(1);
      expect(at[0]?.protocol).toBe(String(PROTO));
      expect(view(at[0]!)).toMatchObject({ mtu: 1300 });
    });

    it('never touches routes with its protocol on another interface (another instance), and cleans up its own on stop', async () => {
      ip('-n', NODE, 'link', 'add', 'lxcother', 'type', 'veth', 'peer', 'name', 'lxcother-p');
      ip('-n', NODE, 'link', 'set', 'lxcother', 'up');
      ip(
        '-n',
        NODE,
        'route',
        'add',
        '10.77.0.0/16',
        'via',
        '10.10.9.9',
        'dev',
        'lxcother',
        'onlink',
        'proto',
        String(PROTO),
      );
      agent = await runRoutesAgent({ ...base, peerCidrs: ['192.168.0.0/16'] });
      await agent.reconcileNow();
      expect(nodeView('-4').map((r) => r.dst)).toEqual(['10.77.0.0/16', '192.168.0.0/16']);
      await agent.stop();
      agent = undefined;
      expect(nodeView('-4').map((r) => r.dst)).toEqual(['10.77.0.0/16']);
      expect(routes(POD, '-4', PROTO)).toHaveLength(0);
    });

    it('installs pod routes once the TUN device appears', async () => {
      ip('-n', POD, 'link', 'del', 'ikegw0');
      agent = await runRoutesAgent({ ...base, peerCidrs: ['192.168.0.0/16'] });
      const st = await agent.reconcileNow();
      expect(st.waitingFor).toContain('pod device ikegw0');
      expect(routes(NODE, '-4', PROTO)).toHaveLength(1);
      ip('-n', POD, 'tuntap', 'add', 'dev', 'ikegw0', 'mode', 'tun');
      ip('-n', POD, 'link', 'set', 'ikegw0', 'up');
      await waitFor(() => podView('-4'), {
        what: 'pod route after the tun appears',
        ok: (v) => v.length === 1 && v[0]?.dev === 'ikegw0',
      });
    });

    it('reports a namespace path that does not exist, without throwing from runRoutesAgent', async () => {
      agent = await runRoutesAgent({
        ...base,
        nodeNetns: `/run/netns/${PREFIX}missing`,
        peerCidrs: ['192.168.0.0/16'],
      });
      expect(agent.status().lastError).toMatch(/missing|No such file|exited/);
    });
  },
);

describe('rtnetlink table in this process’s own namespace (read-only)', () => {
  it('lists links, addresses and routes through the in-process socket', async () => {
    const { openRtnetlinkTable } = await import('../../src/routes/rtnetlink.js');
    const t = await openRtnetlinkTable({ name: 'self' });
    try {
      const links = await t.listLinks();
      expect(links.find((l) => l.name === 'lo')?.index).toBe(1);
      const addrs = await t.listAddresses(4);
      expect(addrs.some((a) => a.address === '127.0.0.1')).toBe(true);
      const routes = await t.listRoutes({ family: 4 });
      expect(Array.isArray(routes)).toBe(true);
    } finally {
      await t.close();
    }
  });
});
