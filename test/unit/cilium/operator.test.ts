// The operator against the fake API server (HTTPS, bearer token, list/watch/410, JSON patch with
// test) and the simulated Cilium agent that rewrites the endpoint status. Convergence is awaited
// by polling with generous deadlines; the periodic resync is set to 10 minutes so that anything
// converging within the deadlines was driven by watch events.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import {
  MANAGED_CIDRS_ANNOTATION,
  type Operator,
  type OperatorOptions,
  runOperator,
} from '../../../src/cilium/endpoint-reconciler.js';
import { FakeKubeApiServer, type KubeObj, SimulatedCiliumAgent } from '../../fakes/kube-apiserver.js';
import { waitFor } from '../../fakes/wait.js';

const NS = 'vpn';
const POD = 'vpn-frontend-0';
const CIDRS = ['192.168.0.0/16', 'fd00:99::/64'];
const WANT = [{ ipv4: '10.0.1.5' }, { ipv4: '192.168.0.0/16' }, { ipv6: 'fd00:99::/64' }];

function addressing(api: FakeKubeApiServer): unknown {
  const cep = api.get('ciliumendpoints', NS, POD);
  const st = cep?.status as { networking?: { addressing?: unknown } } | undefined;
  return st?.networking?.addressing;
}

function podObject(ip: string): KubeObj {
  return {
    metadata: { name: POD, namespace: NS, labels: { app: 'vpn' } },
    spec: { containers: [{ name: 'ikegw', image: 'ikegw' }] },
    status: { phase: 'Running', podIP: ip, podIPs: [{ ip }] },
  };
}

function masqConfig(api: FakeKubeApiServer): { text: string; parsed: Record<string, unknown>; cm: KubeObj } {
  const cm = api.get('configmaps', 'kube-system', 'ip-masq-agent');
  if (!cm) throw new Error('no configmap');
  const text = (cm.data as Record<string, string>).config ?? '';
  return { text, parsed: parseYaml(text) as Record<string, unknown>, cm };
}

describe('operator: CiliumEndpoint addressing', () => {
  let api: FakeKubeApiServer;
  let agent: SimulatedCiliumAgent;
  let op: Operator | undefined;

  const start = (extra: Partial<OperatorOptions> = {}) =>
    runOperator({
      kubeConfig: api.kubeConfig(),
      namespace: NS,
      podName: POD,
      peerCidrs: CIDRS,
      resyncIntervalMs: 600_000,
      debounceMs: 20,
      ...extra,
    });

  beforeEach(async () => {
    api = await FakeKubeApiServer.start();
    api.create('pods', podObject('10.0.1.5'));
    agent = new SimulatedCiliumAgent(api, { namespace: NS, podName: POD });
    agent.start();
    await waitFor(() => api.get('ciliumendpoints', NS, POD), { what: 'simulated agent to create the CEP' });
  });
  afterEach(async () => {
    await op?.stop();
    op = undefined;
    agent.stop();
    await api.stop();
  });

  it('patches the addressing with a JSON patch guarded by a test op, over HTTPS with the bearer token', async () => {
    op = await start();
    await waitFor(() => addressing(api), {
      what: 'addressing patched',
      ok: (a) => JSON.stringify(a) === JSON.stringify(WANT),
    });
    const patches = api.requests.filter(
      (r) => r.method === 'PATCH' && r.path.endsWith(`/ciliumendpoints/${POD}`),
    );
    expect(patches.length).toBe(1);
    expect(patches[0]?.path).toBe(`/apis/cilium.io/v2/namespaces/${NS}/ciliumendpoints/${POD}`);
    expect(patches[0]?.contentType).toBe('application/json-patch+json');
    expect(patches[0]?.body).toEqual([
      { op: 'test', path: '/status/networking/addressing', value: [{ ipv4: '10.0.1.5' }] },
      { op: 'replace', path: '/status/networking/addressing', value: WANT },
    ]);
    // Watches are by field selector on the one object.
    const watches = api.requests.filter((r) => r.query.watch === 'true');
    expect(watches.map((w) => w.query.fieldSelector)).toContain(`metadata.name=${POD}`);
    // Other status fields are untouched (no status subresource: the object itself is patched).
    const cep = api.get('ciliumendpoints', NS, POD);
    expect((cep?.status as Record<string, unknown> | undefined)?.identity).toEqual({
      id: 54321,
      labels: ['k8s:app.kubernetes.io/name=vpn'],
    });

    const st = await op.reconcileNow();
    expect(st.converged).toBe(true);
    expect(api.requests.filter((r) => r.method === 'PATCH').length).toBe(1); // in sync: no further patch
  });

  it('re-applies within about a second after the Cilium agent rewrites the status', async () => {
    op = await start();
    await waitFor(() => addressing(api), {
      ok: (a) => JSON.stringify(a) === JSON.stringify(WANT),
      what: 'first patch',
    });
    for (let i = 0; i < 3; i++) {
      agent.rewriteStatus();
      expect(addressing(api)).toEqual([{ ipv4: '10.0.1.5' }]);
      await waitFor(() => addressing(api), {
        timeoutMs: 1500,
        what: 're-applied after the agent rewrote the status (event-driven, resync is 10 min)',
        ok: (a) => JSON.stringify(a) === JSON.stringify(WANT),
      });
    }
    expect(agent.rewrites).toBe(3);
  });

  it('follows a pod IP change', async () => {
    op = await start();
    await waitFor(() => addressing(api), { ok: (a) => JSON.stringify(a) === JSON.stringify(WANT) });
    api.update('pods', NS, POD, (p) => {
      p.status = { phase: 'Running', podIP: '10.0.2.9', podIPs: [{ ip: '10.0.2.9' }] };
    });
    await waitFor(() => addressing(api), {
      what: 'addressing with the new pod IP',
      ok: (a) => JSON.stringify(a) === JSON.stringify([{ ipv4: '10.0.2.9' }, ...WANT.slice(1)]),
    });
  });

  it('waits for the pod and its endpoint, then converges when they appear', async () => {
    agent.stop();
    api.delete('ciliumendpoints', NS, POD);
    api.delete('pods', NS, POD);
    op = await start();
    await waitFor(() => op?.status().passes, { ok: (n) => (n ?? 0) > 0, what: 'a first pass' });
    expect(op.status().endpoint).toBe('waiting-for-pod');
    api.create('pods', podObject('10.0.1.5'));
    await waitFor(() => op?.status().endpoint, { ok: (s) => s === 'waiting-for-endpoint' });
    agent = new SimulatedCiliumAgent(api, { namespace: NS, podName: POD });
    agent.start();
    await waitFor(() => addressing(api), {
      ok: (a) => JSON.stringify(a) === JSON.stringify(WANT),
      what: 'converged',
    });
  });

  it('retries with a fresh GET when the test op fails because the agent wrote in between (422)', async () => {
    let raced = false;
    api.onRequest(async (r) => {
      if (raced || r.method !== 'PATCH' || !r.path.includes('/ciliumendpoints/')) return;
      raced = true;
      // The agent's write lands between the operator's read and its patch.
      api.update('ciliumendpoints', NS, POD, (o) => {
        (o.status as { networking: { addressing: unknown } }).networking.addressing = [
          { ipv4: '10.0.1.5' },
          { ipv4: '10.0.1.77' },
        ];
      });
    });
    op = await start();
    await waitFor(() => addressing(api), {
      ok: (a) => JSON.stringify(a) === JSON.stringify(WANT),
      what: 'converged after 422',
    });
    const patches = api.requests.filter((r) => r.method === 'PATCH');
    expect(patches.map((p) => p.status)).toEqual([422, 200]);
    expect(
      api.requests.some(
        (r) => r.method === 'GET' && r.path.endsWith(`/ciliumendpoints/${POD}`) && !r.query.watch,
      ),
    ).toBe(true);
    expect(op.status().retries).toBeGreaterThanOrEqual(1);
  });

  it('retries on 409 Conflict', async () => {
    api.injectFault('ciliumendpoints', 'PATCH', 409, 2);
    op = await start();
    await waitFor(() => addressing(api), {
      ok: (a) => JSON.stringify(a) === JSON.stringify(WANT),
      what: 'converged after 409s',
    });
    expect(api.requests.filter((r) => r.method === 'PATCH').map((p) => p.status)).toEqual([409, 409, 200]);
  });

  for (const goneAs of ['event', 'http'] as const) {
    it(`relists after 410 Gone (${goneAs === 'event' ? 'ERROR event in the watch stream' : 'HTTP 410'}) and keeps converging`, async () => {
      await api.stop();
      api = await FakeKubeApiServer.start({ goneAs });
      api.create('pods', podObject('10.0.1.5'));
      agent = new SimulatedCiliumAgent(api, { namespace: NS, podName: POD });
      agent.start();
      op = await start();
      await waitFor(() => addressing(api), { ok: (a) => JSON.stringify(a) === JSON.stringify(WANT) });
      const lists = () =>
        api.requests.filter(
          (r) => r.method === 'GET' && r.path.endsWith('/ciliumendpoints') && !r.query.watch,
        ).length;
      const before = lists();
      // The streams end; before the operator resumes them, the pod changes and the history is
      // compacted away, so the resumed watches ask for a resourceVersion the server no longer has.
      await waitFor(() => api.openWatches, { ok: (n) => n >= 3, what: 'watches open' });
      agent.stop();
      const mark = api.requests.length;
      api.closeWatches();
      api.update('pods', NS, POD, (p) => {
        p.status = { phase: 'Running', podIP: '10.0.3.3', podIPs: [{ ip: '10.0.3.3' }] };
      });
      const compactedAt = api.resourceVersion;
      api.compact();
      await waitFor(lists, { ok: (n) => n > before, what: 'a relist of CiliumEndpoints after 410' });
      // The resumed watches asked for a resourceVersion from before the compaction and got 410.
      const stale = await waitFor(
        () =>
          api.requests
            .slice(mark)
            .filter((r) => r.query.watch === 'true' && Number(r.query.resourceVersion) < compactedAt),
        {
          ok: (xs) => xs.length >= 3 && xs.every((r) => r.status !== 0),
          what: 'three resumed watches with a stale resourceVersion',
        },
      );
      expect(stale.every((r) => r.status === (goneAs === 'http' ? 410 : 200))).toBe(true);
      const firstStale = api.requests.indexOf(stale[0]!);
      expect(
        api.requests
          .slice(firstStale)
          .some((r) => r.method === 'GET' && !r.query.watch && r.path.endsWith('/ciliumendpoints')),
      ).toBe(true);
      // The pod change made while watches were down is seen through the relist.
      await waitFor(() => op?.status().podIps, {
        ok: (ips) => ips?.[0] === '10.0.3.3',
        what: 'new pod IP seen after relist',
      });
      agent = new SimulatedCiliumAgent(api, { namespace: NS, podName: POD });
      agent.start();
      await waitFor(() => addressing(api), {
        what: 'converged after the relist',
        ok: (a) => JSON.stringify(a) === JSON.stringify([{ ipv4: '10.0.3.3' }, ...WANT.slice(1)]),
      });
    });
  }

  it('resumes watches from the last resourceVersion when a stream ends normally (no relist)', async () => {
    op = await start();
    await waitFor(() => addressing(api), { ok: (a) => JSON.stringify(a) === JSON.stringify(WANT) });
    await waitFor(() => api.openWatches, { ok: (n) => n >= 3 });
    const lists = api.requests.filter(
      (r) => r.method === 'GET' && !r.query.watch && !r.path.includes(`/${POD}`),
    ).length;
    api.closeWatches();
    agent.rewriteStatus();
    await waitFor(() => addressing(api), {
      ok: (a) => JSON.stringify(a) === JSON.stringify(WANT),
      what: 're-applied after rewatch',
    });
    const resumed = api.requests.filter(
      (r) => r.query.watch === 'true' && r.query.resourceVersion !== '' && r.query.resourceVersion !== '0',
    );
    expect(resumed.length).toBeGreaterThan(0);
    expect(
      api.requests.filter((r) => r.method === 'GET' && !r.query.watch && !r.path.includes(`/${POD}`)).length,
    ).toBe(lists);
  });

  it('reports 401 from the API server and does not patch', async () => {
    op = await runOperator({
      kubeConfig: api.kubeConfig('wrong-token'),
      namespace: NS,
      podName: POD,
      peerCidrs: CIDRS,
    });
    await waitFor(() => op?.status().apiErrors.join(' '), {
      ok: (e) => /401/.test(e ?? ''),
      what: 'a 401 in the status',
    });
    expect(api.requests.filter((r) => r.method === 'PATCH')).toEqual([]);
  });

  it('rejects a CIDR with host bits set', async () => {
    await expect(start({ peerCidrs: ['192.168.1.1/16'] })).rejects.toThrow(/host bits.*192\.168\.0\.0\/16/);
  });
});

describe('operator: ip-masq-agent ConfigMap', () => {
  let api: FakeKubeApiServer;
  let agent: SimulatedCiliumAgent;
  let op: Operator | undefined;

  const YAML_CONFIG = `# managed by the platform team
nonMasqueradeCIDRs:
  - 10.0.0.0/8
  - 192.168.0.0/16 # a duplicate of a VPN CIDR
  - 192.168.0.0/16
masqLinkLocal: true
resyncInterval: 60s
`;

  beforeEach(async () => {
    api = await FakeKubeApiServer.start();
    api.create('pods', podObject('10.0.1.5'));
    agent = new SimulatedCiliumAgent(api, { namespace: NS, podName: POD });
    agent.start();
  });
  afterEach(async () => {
    await op?.stop();
    op = undefined;
    agent.stop();
    await api.stop();
  });

  const start = (cidrs = ['192.168.0.0/16', '172.20.0.0/24']) =>
    runOperator({
      kubeConfig: api.kubeConfig(),
      namespace: NS,
      podName: POD,
      peerCidrs: cidrs,
      resyncIntervalMs: 600_000,
      debounceMs: 20,
    });

  function createMasq(config: string | undefined, extra: Record<string, string> = {}): void {
    api.create('configmaps', {
      metadata: {
        name: 'ip-masq-agent',
        namespace: 'kube-system',
        labels: { app: 'cilium' },
        annotations: { owner: 'platform' },
      },
      data: { ...(config !== undefined ? { config } : {}), ...extra },
    });
  }

  it('merges the CIDRs into YAML without duplicates and keeps every other key, field and comment', async () => {
    createMasq(YAML_CONFIG, { 'other-key': 'keep me' });
    op = await start();
    const done = await waitFor(() => masqConfig(api), {
      what: 'ConfigMap updated',
      ok: (c) => (c.parsed.nonMasqueradeCIDRs as string[]).includes('172.20.0.0/24'),
    });
    expect(done.parsed.nonMasqueradeCIDRs).toEqual(['10.0.0.0/8', '192.168.0.0/16', '172.20.0.0/24']);
    expect(done.parsed.masqLinkLocal).toBe(true);
    expect(done.parsed.resyncInterval).toBe('60s');
    expect(done.text).toContain('# managed by the platform team');
    expect((done.cm.data as Record<string, string>)['other-key']).toBe('keep me');
    expect(done.cm.metadata.labels).toEqual({ app: 'cilium' });
    expect(done.cm.metadata.annotations?.owner).toBe('platform');
    // 192.168.0.0/16 was already there: only 172.20.0.0/24 is the operator's.
    expect(JSON.parse(done.cm.metadata.annotations?.[MANAGED_CIDRS_ANNOTATION] ?? '')).toEqual([
      '172.20.0.0/24',
    ]);
    const patch = api.requests.find(
      (r) => r.method === 'PATCH' && r.path.endsWith('/configmaps/ip-masq-agent'),
    );
    expect(patch?.contentType).toBe('application/json-patch+json');
    expect(patch?.body).toEqual(
      expect.arrayContaining([{ op: 'test', path: '/data/config', value: YAML_CONFIG }]),
    );

    // Shrinking the list removes what the operator added, never what was there before.
    op.setPeerCidrs(['192.168.0.0/16']);
    const after = await waitFor(() => masqConfig(api), {
      what: 'operator-added CIDR removed',
      ok: (c) => !(c.parsed.nonMasqueradeCIDRs as string[]).includes('172.20.0.0/24'),
    });
    expect(after.parsed.nonMasqueradeCIDRs).toEqual(['10.0.0.0/8', '192.168.0.0/16']);
    op.setPeerCidrs([]);
    await waitFor(() => op?.reconcileNow(), { ok: (s) => s?.ipMasqAgent === 'in-sync' });
    expect(masqConfig(api).parsed.nonMasqueradeCIDRs).toEqual(['10.0.0.0/8', '192.168.0.0/16']);
  });

  it('keeps JSON as JSON, with other fields', async () => {
    createMasq('{"nonMasqueradeCIDRs":["10.0.0.0/8"],"masqLinkLocal":false,"masqLinkLocalIPv6":true}');
    op = await start();
    const c = await waitFor(() => masqConfig(api), {
      ok: (x) => (x.parsed.nonMasqueradeCIDRs as string[]).length === 3,
      what: 'JSON config updated',
    });
    expect(JSON.parse(c.text)).toEqual({
      nonMasqueradeCIDRs: ['10.0.0.0/8', '192.168.0.0/16', '172.20.0.0/24'],
      masqLinkLocal: false,
      masqLinkLocalIPv6: true,
    });
  });

  it('re-applies when something (a Cilium upgrade) rewrites the ConfigMap, and picks up one created later', async () => {
    op = await start();
    await waitFor(() => op?.status().passes, { ok: (n) => (n ?? 0) > 0 });
    expect(op.status().ipMasqAgent).toBe('absent');
    createMasq('nonMasqueradeCIDRs: [10.0.0.0/8]\n');
    await waitFor(() => masqConfig(api).parsed.nonMasqueradeCIDRs, {
      ok: (l) => JSON.stringify(l) === JSON.stringify(['10.0.0.0/8', '192.168.0.0/16', '172.20.0.0/24']),
      what: 'ConfigMap created later is updated',
    });
    api.update('configmaps', 'kube-system', 'ip-masq-agent', (cm) => {
      cm.data = { config: 'nonMasqueradeCIDRs: [10.0.0.0/8]\n' };
      cm.metadata.annotations = {};
    });
    await waitFor(() => masqConfig(api).parsed.nonMasqueradeCIDRs, {
      timeoutMs: 1500,
      ok: (l) => JSON.stringify(l) === JSON.stringify(['10.0.0.0/8', '192.168.0.0/16', '172.20.0.0/24']),
      what: 'ConfigMap re-applied after the rewrite',
    });
  });

  it('an empty config gets the ip-masq-agent defaults plus the VPN CIDRs', async () => {
    createMasq(undefined);
    op = await start(['172.20.0.0/24', '10.0.0.0/8']);
    const c = await waitFor(
      () => api.get('configmaps', 'kube-system', 'ip-masq-agent')?.data as Record<string, string> | undefined,
      {
        ok: (d) => d?.config !== undefined,
        what: 'config key written',
      },
    );
    const list = JSON.parse(c?.config ?? '').nonMasqueradeCIDRs as string[];
    expect(list).toContain('100.64.0.0/10');
    expect(list.filter((x) => x === '10.0.0.0/8')).toHaveLength(1);
    expect(list.at(-1)).toBe('172.20.0.0/24');
  });

  it('retries the ConfigMap patch on 409', async () => {
    createMasq(YAML_CONFIG);
    api.injectFault('configmaps', 'PATCH', 409, 1);
    op = await start();
    await waitFor(() => masqConfig(api).parsed.nonMasqueradeCIDRs as string[], {
      ok: (l) => l.includes('172.20.0.0/24'),
    });
    expect(
      api.requests.filter((r) => r.method === 'PATCH' && r.path.includes('configmaps')).map((r) => r.status),
    ).toEqual([409, 200]);
  });
});
