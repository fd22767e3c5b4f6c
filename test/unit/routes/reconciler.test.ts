// Reconciler logic against MemoryRouteTable (no root needed). The kernel-level behaviour is in
// test/netns/routes.test.ts.
import { afterEach, describe, expect, it } from 'vitest';
import { parseCidr } from '../../../src/routes/addr.js';
import { MemoryRouteTable } from '../../../src/routes/memory.js';
import { planRoutes, type RoutesAgent, runRoutesAgent } from '../../../src/routes/reconciler.js';
import type { RouteEntry, RouteSpec } from '../../../src/routes/route-table.js';
import { waitFor } from '../../fakes/wait.js';

const P = 211;

function spec(dst: string, extra: Partial<RouteSpec> = {}): RouteSpec {
  return {
    family: 4,
    dst,
    table: 254,
    protocol: P,
    metric: 0,
    gateway: '10.10.1.5',
    oif: 7,
    onlink: true,
    ...extra,
  };
}

describe('planRoutes', () => {
  const ours = (r: RouteEntry) => r.protocol === P && r.oif === 7;

  it('installs missing, keeps equal, replaces changed, deletes stale own routes', () => {
    const current: RouteEntry[] = [
      spec('10.1.0.0/16'),
      spec('10.2.0.0/16', { mtu: 1500 }),
      spec('10.3.0.0/16'),
      spec('10.4.0.0/16', { oif: 9 }), // another instance's
      spec('10.5.0.0/16', { protocol: 4 }), // foreign, not desired: untouched
    ];
    const plan = planRoutes(
      [spec('10.1.0.0/16'), spec('10.2.0.0/16', { mtu: 1300 }), spec('10.6.0.0/16')],
      current,
      ours,
      'yield',
    );
    expect(plan.replace.map((r) => r.dst)).toEqual(['10.2.0.0/16', '10.6.0.0/16']);
    expect(plan.delete.map((r) => r.dst)).toEqual(['10.3.0.0/16']);
    expect(plan.conflicts).toEqual([]);
  });

  it('yield: a foreign route at the same key is a conflict; replace: it is overwritten', () => {
    const current: RouteEntry[] = [spec('10.1.0.0/16', { protocol: 3 })];
    const y = planRoutes([spec('10.1.0.0/16')], current, ours, 'yield');
    expect(y.replace).toEqual([]);
    expect(y.conflicts.map((r) => r.protocol)).toEqual([3]);
    const r = planRoutes([spec('10.1.0.0/16')], current, ours, 'replace');
    expect(r.replace.map((x) => x.dst)).toEqual(['10.1.0.0/16']);
    expect(r.delete).toEqual([]);
  });

  it('a foreign route with another metric is another key and coexists', () => {
    const current: RouteEntry[] = [spec('10.1.0.0/16', { protocol: 3, metric: 100 })];
    const plan = planRoutes([spec('10.1.0.0/16')], current, ours, 'yield');
    expect(plan.replace.map((x) => x.dst)).toEqual(['10.1.0.0/16']);
    expect(plan.conflicts).toEqual([]);
  });
});

describe('parseCidr', () => {
  it('canonicalizes and rejects host bits', () => {
    expect(parseCidr('fd00:0:0::/64').text).toBe('fd00::/64');
    expect(parseCidr('10.0.0.0/8').text).toBe('10.0.0.0/8');
    expect(() => parseCidr('10.1.2.3/8', 'peerCidrs[0]')).toThrow(
      /peerCidrs\[0\].*host bits.*10\.0\.0\.0\/8/,
    );
    expect(() => parseCidr('10.0.0.0/33')).toThrow(/prefix length/);
    expect(() => parseCidr('nope')).toThrow(/not a CIDR/);
  });
});

describe('runRoutesAgent with memory tables', () => {
  let agent: RoutesAgent | undefined;
  afterEach(async () => {
    await agent?.stop();
    agent = undefined;
  });

  function topology() {
    const node = new MemoryRouteTable('node');
    const pod = new MemoryRouteTable('pod');
    pod.addLink({ index: 2, name: 'eth0', up: true, peerIndex: 7 });
    pod.addLink({ index: 3, name: 'ikegw0', up: true, kind: 'tun' });
    pod.addAddress({ family: 4, index: 2, address: '10.10.1.5', prefixLen: 32, scope: 0 });
    pod.addAddress({ family: 6, index: 2, address: 'fe80::1', prefixLen: 64, scope: 253 });
    node.addLink({ index: 7, name: 'lxc1234', up: true, peerIndex: 2, kind: 'veth' });
    return { node, pod, openTable: async (w: 'node' | 'pod') => (w === 'node' ? node : pod) };
  }

  it('computes routes from the discovered pod IP and host interface, then stays quiet', async () => {
    const t = topology();
    agent = await runRoutesAgent({
      peerCidrs: ['192.168.0.0/16', 'fd00:99::/64'],
      mtu: 1300,
      podRoutes: { kind: 'dev', ifname: 'ikegw0' },
      openTable: t.openTable,
      debounceMs: 5,
    });
    const st = agent.status();
    expect(st.hostInterface).toEqual({ name: 'lxc1234', index: 7 });
    expect(st.podIps).toEqual(['10.10.1.5']);
    // No global IPv6 on the pod: the v6 node route waits, the pod-side v6 route does not need one.
    expect(st.waitingFor).toEqual(['an IPv6 pod address for fd00:99::/64']);
    expect(await t.node.listRoutes()).toEqual([
      {
        family: 4,
        dst: '192.168.0.0/16',
        table: 254,
        protocol: P,
        metric: 0,
        gateway: '10.10.1.5',
        oif: 7,
        onlink: true,
        mtu: 1300,
      },
    ]);
    expect((await t.pod.listRoutes()).map((r) => [r.dst, r.oif, r.metric])).toEqual([
      ['192.168.0.0/16', 3, 0],
      ['fd00:99::/64', 3, 1024],
    ]);
    const before = t.node.ops.length + t.pod.ops.length;
    const again = await agent.reconcileNow();
    expect(again.lastPassChanges).toBe(0);
    expect(t.node.ops.length + t.pod.ops.length).toBe(before);
  });

  it('does not adopt an ifindex in the node namespace that is not the veth peer', async () => {
    const t = topology();
    t.node.deleteLink(7);
    t.node.addLink({ index: 7, name: 'eth9', up: true, peerIndex: 42 });
    agent = await runRoutesAgent({ peerCidrs: ['192.168.0.0/16'], openTable: t.openTable });
    expect(agent.status().waitingFor).toContain('host-side interface of eth0');
    expect(await t.node.listRoutes()).toEqual([]);
  });

  it('reopens the tables after a lost event and recovers', async () => {
    const t = topology();
    let opens = 0;
    agent = await runRoutesAgent({
      peerCidrs: ['192.168.0.0/16'],
      debounceMs: 5,
      openTable: async (w) => {
        if (w === 'node') opens++;
        return w === 'node' ? t.node : t.pod;
      },
    });
    expect(opens).toBe(1);
    t.node.loseConnection();
    await waitFor(() => opens, { ok: (n) => n === 2, what: 'reopen after lost' });
  });

  it('rejects invalid configuration up front', async () => {
    await expect(runRoutesAgent({ peerCidrs: ['10.1.2.3/8'] })).rejects.toThrow(/host bits/);
    await expect(runRoutesAgent({ peerCidrs: ['10.0.0.0/8'], mtu: 10 })).rejects.toThrow(/mtu/);
    await expect(runRoutesAgent({ peerCidrs: ['10.0.0.0/8'], routeProtocol: 2 })).rejects.toThrow(
      /routeProtocol/,
    );
  });
});
