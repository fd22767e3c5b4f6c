// The operator with ha.enabled (VPN_HA_LEASE): the frontend pod it addresses is the holder of the
// Lease. Against the fake API server (leases with real semantics) and two simulated Cilium agents,
// one per replica: a holder change moves the on-prem CIDRs from one CiliumEndpoint to the other
// (never left on the former holder's), a released Lease leaves them on none, and CIDRs found on a
// non-holder at start are taken away. Resync is 10 minutes: everything here is driven by watches.
import { KubeConfig } from '@kubernetes/client-node';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Operator, runOperator } from '../../../src/cilium/endpoint-reconciler.js';
import { operatorOptionsFromEnv } from '../../../src/cilium/env.js';
import { FakeKubeApiServer, type KubeObj, SimulatedCiliumAgent } from '../../fakes/kube-apiserver.js';
import { waitFor } from '../../fakes/wait.js';

const NS = 'vpn';
const LEASE = 'vpn-leader';
const PODS = { 'vpn-frontend-0': '10.0.1.5', 'vpn-frontend-1': '10.0.2.7' } as const;
type PodName = keyof typeof PODS;
const CIDRS = ['192.168.0.0/16', 'fd00:99::/64'];
const CIDR_ENTRIES = [{ ipv4: '192.168.0.0/16' }, { ipv6: 'fd00:99::/64' }];

function addressing(api: FakeKubeApiServer, pod: PodName): unknown {
  const st = api.get('ciliumendpoints', NS, pod)?.status as
    | { networking?: { addressing?: unknown } }
    | undefined;
  return st?.networking?.addressing;
}

const claims = (pod: PodName) => [{ ipv4: PODS[pod] }, ...CIDR_ENTRIES];
const own = (pod: PodName) => [{ ipv4: PODS[pod] }];
const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

function micro(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

/** What a daemon's election writes when it takes the Lease (or releases it with holder ""). */
function setHolder(api: FakeKubeApiServer, holder: string): void {
  api.update('leases', NS, LEASE, (o) => {
    const spec = (o.spec ?? {}) as Record<string, unknown>;
    const now = micro(Date.now());
    if (holder !== spec.holderIdentity) {
      spec.leaseTransitions = Number(spec.leaseTransitions ?? 0) + 1;
      spec.acquireTime = now;
    }
    spec.holderIdentity = holder;
    spec.renewTime = now;
    spec.leaseDurationSeconds = holder ? 15 : 1;
    o.spec = spec;
  });
}

describe('operator with HA: follows the Lease holder', () => {
  let api: FakeKubeApiServer;
  let agents: SimulatedCiliumAgent[];
  let op: Operator | undefined;

  const start = () =>
    runOperator({
      kubeConfig: api.kubeConfig(),
      namespace: NS,
      podName: 'vpn-frontend-0',
      haLease: LEASE,
      peerCidrs: CIDRS,
      resyncIntervalMs: 600_000,
      debounceMs: 20,
      ipMasqAgent: false,
    });

  beforeEach(async () => {
    api = await FakeKubeApiServer.start();
    agents = [];
    for (const [name, ip] of Object.entries(PODS)) {
      api.create('pods', {
        metadata: { name, namespace: NS },
        spec: {},
        status: { phase: 'Running', podIP: ip, podIPs: [{ ip }] },
      } as KubeObj);
      const a = new SimulatedCiliumAgent(api, { namespace: NS, podName: name });
      a.start();
      agents.push(a);
    }
    // An unrelated pod in the namespace (the operator's own) with a CEP: never touched.
    api.create('ciliumendpoints', {
      metadata: { name: 'vpn-operator-abc', namespace: NS },
      status: { networking: { addressing: [{ ipv4: '10.0.3.3' }] } },
    });
    api.create('leases', { metadata: { name: LEASE, namespace: NS }, spec: { leaseDurationSeconds: 15 } });
    await waitFor(() => addressing(api, 'vpn-frontend-1'), { what: 'CEPs created' });
  });
  afterEach(async () => {
    await op?.stop();
    op = undefined;
    for (const a of agents) a.stop();
    await api.stop();
  });

  it('addresses no pod until the Lease has a holder, then the holder; a takeover moves the CIDRs', async () => {
    op = await start();
    await waitFor(() => op!.status(), {
      what: 'waiting for a leader',
      ok: (s) => s.endpoint === 'waiting-for-leader',
    });
    expect(addressing(api, 'vpn-frontend-0')).toEqual(own('vpn-frontend-0'));
    expect(addressing(api, 'vpn-frontend-1')).toEqual(own('vpn-frontend-1'));

    setHolder(api, 'vpn-frontend-0');
    await waitFor(() => addressing(api, 'vpn-frontend-0'), {
      what: 'CEP 0 patched',
      ok: (a) => same(a, claims('vpn-frontend-0')),
    });
    // (The patch lands before the operator has read its answer: wait for its status, too.)
    await waitFor(() => op!.status(), {
      what: 'status in sync',
      ok: (st) => st.target === 'vpn-frontend-0' && st.endpoint === 'in-sync',
    });
    expect(addressing(api, 'vpn-frontend-1')).toEqual(own('vpn-frontend-1'));

    // vpn-frontend-1 takes over: its CEP gets the CIDRs, the former holder's loses them.
    const t0 = Date.now();
    setHolder(api, 'vpn-frontend-1');
    await waitFor(() => [addressing(api, 'vpn-frontend-0'), addressing(api, 'vpn-frontend-1')], {
      what: 'CIDRs moved to CEP 1',
      ok: ([a0, a1]) => same(a0, own('vpn-frontend-0')) && same(a1, claims('vpn-frontend-1')),
    });
    const moveMs = Date.now() - t0;
    console.log(
      `operator HA: CIDRs moved to the new holder's CiliumEndpoint ${moveMs} ms after the Lease changed`,
    );
    expect(moveMs).toBeLessThan(2000);
    await waitFor(() => op!.status(), {
      what: 'status in sync',
      ok: (st) => st.target === 'vpn-frontend-1' && st.endpoint === 'in-sync' && st.endpointReleases === 1,
    });
    // The unrelated CEP was never patched.
    expect(api.requests.filter((r) => r.method === 'PATCH' && r.path.endsWith('/vpn-operator-abc'))).toEqual(
      [],
    );

    // Released (the holder shut down): no CEP claims the CIDRs until the next one is elected.
    setHolder(api, '');
    await waitFor(() => addressing(api, 'vpn-frontend-1'), {
      what: 'CIDRs released',
      ok: (a) => same(a, own('vpn-frontend-1')),
    });
    await waitFor(() => op!.status().endpoint, { what: 'no leader', ok: (e) => e === 'waiting-for-leader' });
    setHolder(api, 'vpn-frontend-0');
    await waitFor(() => addressing(api, 'vpn-frontend-0'), {
      what: 'back on 0',
      ok: (a) => same(a, claims('vpn-frontend-0')),
    });
    // A renewal (same holder, new renewTime) patches nothing.
    const patches = api.requests.filter((r) => r.method === 'PATCH').length;
    setHolder(api, 'vpn-frontend-0');
    const st = await op.reconcileNow();
    expect(st.converged).toBe(true);
    expect(api.requests.filter((r) => r.method === 'PATCH').length).toBe(patches);
  });

  it("re-applies after the agent rewrites the holder's status; takes stale CIDRs off a non-holder at start", async () => {
    setHolder(api, 'vpn-frontend-0');
    // Left over from before (an operator that was down during a failover).
    api.update('ciliumendpoints', NS, 'vpn-frontend-1', (o) => {
      (o.status as { networking: { addressing: unknown } }).networking.addressing = claims('vpn-frontend-1');
    });
    op = await start();
    await waitFor(() => [addressing(api, 'vpn-frontend-0'), addressing(api, 'vpn-frontend-1')], {
      what: 'only the holder claims the CIDRs',
      ok: ([a0, a1]) => same(a0, claims('vpn-frontend-0')) && same(a1, own('vpn-frontend-1')),
    });
    agents[0]!.rewriteStatus();
    expect(addressing(api, 'vpn-frontend-0')).toEqual(own('vpn-frontend-0'));
    await waitFor(() => addressing(api, 'vpn-frontend-0'), {
      what: 're-applied',
      ok: (a) => same(a, claims('vpn-frontend-0')),
    });
  });

  it('keeps following when the Lease watch breaks (API flapping) and reads only that Lease', async () => {
    setHolder(api, 'vpn-frontend-0');
    op = await start();
    await waitFor(() => addressing(api, 'vpn-frontend-0'), {
      what: 'CEP 0 patched',
      ok: (a) => same(a, claims('vpn-frontend-0')),
    });
    api.closeWatches();
    setHolder(api, 'vpn-frontend-1');
    await waitFor(() => addressing(api, 'vpn-frontend-1'), {
      what: 'CIDRs moved after the watch resumed',
      ok: (a) => same(a, claims('vpn-frontend-1')),
      timeoutMs: 10_000,
    });
    const leaseReqs = api.requests.filter((r) => r.path.includes('/leases'));
    expect(leaseReqs.length).toBeGreaterThan(0);
    for (const r of leaseReqs) {
      expect(r.method).toBe('GET');
      expect(r.path).toBe(`/apis/coordination.k8s.io/v1/namespaces/${NS}/leases`);
      expect(r.query.fieldSelector).toBe(`metadata.name=${LEASE}`);
    }
  });

  it('VPN_HA_LEASE in the environment turns it on', () => {
    const env = { VPN_PEER_CIDRS: '10.0.0.0/8', VPN_FRONTEND_POD: 'vpn-frontend-0', POD_NAMESPACE: NS };
    expect(operatorOptionsFromEnv(env, new KubeConfig()).haLease).toBeUndefined();
    expect(operatorOptionsFromEnv({ ...env, VPN_HA_LEASE: LEASE }, new KubeConfig()).haLease).toBe(LEASE);
  });
});
