// The chart with ha.enabled: two frontend replicas on two nodes, the Lease, RBAC for exactly that
// Lease, the daemon's `ha:` config, the daemon-only API credentials, the routes sidecar gated on
// the daemon's role, the operator following the Lease — and with ha.enabled false (the default,
// also written out) exactly the objects of the chart without HA.
import { Deployment, type IDeployment, type IStatefulSet, StatefulSet } from 'kubernetes-models/apps/v1';
import { type ILease, Lease } from 'kubernetes-models/coordination.k8s.io/v1';
import {
  type IRole,
  type IRoleBinding,
  Role,
  RoleBinding,
} from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import {
  type IContainer,
  type IPodSpec,
  type ISecret,
  type IService,
  type IServiceAccount,
  Secret,
  Service,
  ServiceAccount,
} from 'kubernetes-models/v1';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { loadConfig } from '../../src/daemon/config.js';
import {
  cleanupScratch,
  detectRenderer,
  ensureRenderer,
  type K8sObject,
  type Rendered,
  render,
} from './render.js';

const renderer = detectRenderer();
if (renderer.kind === 'none') console.warn(`test/helm/chart-ha.test.ts skipped: ${renderer.reason}`);

const REFERENCE_CONFIG = `
podCIDR: "10.10.0.0/16"
serviceCIDR: "10.96.0.0/12"
peerCIDRs:
  - 192.168.0.0/16
mtu: 1300
ipsec:
  psk: "ha-test-psk-0123456789-abcdefghijklmnop"
  peer: "203.0.113.7"
`;

const VALIDATORS: Record<string, (o: K8sObject) => void> = {
  'v1/Secret': (o) => new Secret(o as unknown as ISecret).validate(),
  'v1/Service': (o) => new Service(o as unknown as IService).validate(),
  'v1/ServiceAccount': (o) => new ServiceAccount(o as unknown as IServiceAccount).validate(),
  'apps/v1/StatefulSet': (o) => new StatefulSet(o as unknown as IStatefulSet).validate(),
  'apps/v1/Deployment': (o) => new Deployment(o as unknown as IDeployment).validate(),
  'rbac.authorization.k8s.io/v1/Role': (o) => new Role(o as unknown as IRole).validate(),
  'rbac.authorization.k8s.io/v1/RoleBinding': (o) => new RoleBinding(o as unknown as IRoleBinding).validate(),
  'coordination.k8s.io/v1/Lease': (o) => new Lease(o as unknown as ILease).validate(),
};

function find<T>(r: Rendered, kind: string, name?: string): T {
  const hits = r.docs.filter(
    ({ obj }) => obj.kind === kind && (name === undefined || obj.metadata.name === name),
  );
  expect(hits.length, `${kind} ${name ?? ''}`).toBe(1);
  return hits[0]!.obj as unknown as T;
}
function all<T>(r: Rendered, kind: string): T[] {
  return r.docs.filter(({ obj }) => obj.kind === kind).map(({ obj }) => obj as unknown as T);
}
function container(pod: IPodSpec, name: string): IContainer {
  const c = pod.containers.find((x) => x.name === name);
  expect(c, `container ${name}`).toBeDefined();
  return c!;
}
function daemonConfig(r: Rendered): Record<string, unknown> {
  const s = find<ISecret>(r, 'Secret', 'vpn-config');
  return parseYaml(Buffer.from(s.data!['config.yaml']!, 'base64').toString('utf8')) as Record<
    string,
    unknown
  >;
}

describe.skipIf(renderer.kind === 'none')(`helm chart with ha.enabled (${renderer.kind})`, () => {
  let off: Rendered;
  let ha: Rendered;
  beforeAll(() => {
    ensureRenderer(renderer, 170_000);
    off = render(renderer, REFERENCE_CONFIG);
    expect(off.ok, off.stderr).toBe(true);
    ha = render(renderer, REFERENCE_CONFIG, { sets: ['ha.enabled=true'] });
    expect(ha.ok, ha.stderr).toBe(true);
  }, 180_000);
  afterAll(() => cleanupScratch());

  it('ha.enabled false, written out or with other ha values, renders exactly what the default does', () => {
    for (const sets of [['ha.enabled=false'], ['ha.enabled=false', 'ha.leaseDuration=30s']]) {
      const r = render(renderer, REFERENCE_CONFIG, { sets });
      expect(r.ok, r.stderr).toBe(true);
      expect(r.stdout).toBe(off.stdout);
    }
    expect(all(off, 'Lease')).toEqual([]);
    const sts = find<IStatefulSet>(off, 'StatefulSet');
    expect(sts.spec!.replicas).toBe(1);
    expect(sts.spec!.updateStrategy).toBeUndefined();
    expect(sts.spec!.template.spec!.affinity).toBeUndefined();
    expect(daemonConfig(off).ha).toBeUndefined();
  });

  it('renders objects that all validate, names unique', () => {
    for (const { obj } of ha.docs) {
      const key = `${obj.apiVersion}/${obj.kind}`;
      const v = VALIDATORS[key];
      expect(v, `no validator for ${key}`).toBeDefined();
      v!(obj);
    }
    const ids = ha.docs.map(({ obj }) => `${obj.kind}/${obj.metadata.name}`);
    expect(new Set(ids).size).toBe(ids.length);
    const kinds = ha.docs.map(({ obj }) => obj.kind);
    const offKinds = off.docs.map(({ obj }) => obj.kind);
    expect(kinds.sort()).toEqual([...offKinds, 'Lease', 'Role', 'RoleBinding'].sort());
  });

  it('runs two replicas on different nodes, restarted one at a time by hand (OnDelete)', () => {
    const sts = find<IStatefulSet>(ha, 'StatefulSet', 'vpn-frontend');
    expect(sts.spec!.replicas).toBe(2);
    expect(sts.spec!.updateStrategy).toEqual({ type: 'OnDelete' });
    // Immutable fields stay as without HA, so `helm upgrade` can turn HA on.
    const offSts = find<IStatefulSet>(off, 'StatefulSet', 'vpn-frontend');
    expect(sts.spec!.selector).toEqual(offSts.spec!.selector);
    expect(sts.spec!.serviceName).toEqual(offSts.spec!.serviceName);
    expect(sts.spec!.podManagementPolicy).toEqual(offSts.spec!.podManagementPolicy);
    expect(sts.spec!.template.spec!.affinity).toEqual({
      podAntiAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: [
          {
            labelSelector: { matchLabels: { ...sts.spec!.selector.matchLabels } },
            topologyKey: 'kubernetes.io/hostname',
          },
        ],
      },
    });
    // The user's affinity is kept, the anti-affinity term added to theirs.
    const userAff = {
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [{ matchExpressions: [{ key: 'zone', operator: 'In', values: ['a'] }] }],
        },
      },
      podAntiAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: [
          { labelSelector: { matchLabels: { x: 'y' } }, topologyKey: 'topology.kubernetes.io/zone' },
        ],
      },
    };
    const r = render(renderer, { ...parseYaml(REFERENCE_CONFIG), affinity: userAff, ha: { enabled: true } });
    expect(r.ok, r.stderr).toBe(true);
    const aff = find<IStatefulSet>(r, 'StatefulSet').spec!.template.spec!.affinity!;
    expect(aff.nodeAffinity).toEqual(userAff.nodeAffinity);
    expect(
      aff.podAntiAffinity!.requiredDuringSchedulingIgnoredDuringExecution!.map((t) => t.topologyKey),
    ).toEqual(['topology.kubernetes.io/zone', 'kubernetes.io/hostname']);
  });

  it('renders the Lease and grants the frontend get/update/patch on exactly it', () => {
    const lease = find<ILease>(ha, 'Lease', 'vpn-leader');
    expect(lease.metadata!.namespace).toBeUndefined(); // the release namespace
    expect(lease.spec).toEqual({ leaseDurationSeconds: 15 });
    const role = find<IRole>(ha, 'Role', 'vpn-frontend-leader-election');
    expect(role.rules).toEqual([
      {
        apiGroups: ['coordination.k8s.io'],
        resources: ['leases'],
        resourceNames: ['vpn-leader'],
        verbs: ['get', 'update', 'patch'],
      },
    ]);
    const rb = find<IRoleBinding>(ha, 'RoleBinding', 'vpn-frontend-leader-election');
    expect(rb.roleRef).toEqual({
      apiGroup: 'rbac.authorization.k8s.io',
      kind: 'Role',
      name: 'vpn-frontend-leader-election',
    });
    expect(rb.subjects).toEqual([{ kind: 'ServiceAccount', name: 'vpn-frontend', namespace: 'vpn' }]);
    // The operator: the Lease read-only, the CiliumEndpoints of both replicas.
    const op = find<IRole>(ha, 'Role', 'vpn-operator');
    expect(op.rules).toEqual([
      { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: ['cilium.io'], resources: ['ciliumendpoints'], verbs: ['get', 'list', 'watch'] },
      {
        apiGroups: ['cilium.io'],
        resources: ['ciliumendpoints', 'ciliumendpoints/status'],
        resourceNames: ['vpn-frontend-0', 'vpn-frontend-1'],
        verbs: ['patch'],
      },
      {
        apiGroups: ['coordination.k8s.io'],
        resources: ['leases'],
        resourceNames: ['vpn-leader'],
        verbs: ['get', 'list', 'watch'],
      },
    ]);
    for (const r of all<IRole>(ha, 'Role'))
      for (const rule of r.rules ?? []) {
        expect(rule.verbs).not.toContain('create');
        expect(rule.verbs).not.toContain('delete');
        expect(rule.verbs).not.toContain('*');
      }
    for (const sa of all<IServiceAccount>(ha, 'ServiceAccount'))
      expect(sa.automountServiceAccountToken).toBe(false);
  });

  it('gives the token to the daemon container only (no automount: the routes sidecar has none)', () => {
    const pod = find<IStatefulSet>(ha, 'StatefulSet').spec!.template.spec!;
    expect(pod.serviceAccountName).toBe('vpn-frontend');
    expect(pod.automountServiceAccountToken).toBe(false);
    const vol = pod.volumes!.find((v) => v.name === 'kube-api-access');
    expect(vol?.projected?.sources).toEqual([
      { serviceAccountToken: { path: 'token', expirationSeconds: 3607 } },
      { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
      { downwardAPI: { items: [{ path: 'namespace', fieldRef: { fieldPath: 'metadata.namespace' } }] } },
    ]);
    expect(container(pod, 'ikegw').volumeMounts).toContainEqual({
      name: 'kube-api-access',
      mountPath: '/var/run/secrets/kubernetes.io/serviceaccount',
      readOnly: true,
    });
    expect(container(pod, 'routes').volumeMounts!.map((m) => m.name)).not.toContain('kube-api-access');
  });

  it('passes the identity and the role to the containers; readiness decides the LoadBalancer', () => {
    const pod = find<IStatefulSet>(ha, 'StatefulSet').spec!.template.spec!;
    const daemon = container(pod, 'ikegw');
    const env = new Map(daemon.env!.map((e) => [e.name, e]));
    expect(env.get('POD_NAME')?.valueFrom).toEqual({ fieldRef: { fieldPath: 'metadata.name' } });
    expect(env.get('POD_NAMESPACE')?.valueFrom).toEqual({ fieldRef: { fieldPath: 'metadata.namespace' } });
    expect(daemon.readinessProbe).toEqual({
      httpGet: { path: '/readyz', port: 'metrics' },
      periodSeconds: 1,
      timeoutSeconds: 1,
      failureThreshold: 1,
    });
    expect(daemon.livenessProbe!.httpGet!.path).toBe('/healthz');
    const routes = container(pod, 'routes');
    expect(routes.env).toContainEqual({ name: 'IKEGW_HA_STATUS_URL', value: 'http://127.0.0.1:9500/ha' });
    expect(
      container(find<IStatefulSet>(off, 'StatefulSet').spec!.template.spec!, 'routes').env!.map(
        (e) => e.name,
      ),
    ).not.toContain('IKEGW_HA_STATUS_URL');
    const svc = find<IService>(ha, 'Service', 'vpn-lb');
    expect(svc.spec!.externalTrafficPolicy).toBe('Local');
    expect(svc.spec!.publishNotReadyAddresses).toBeFalsy();
    const opEnv = container(find<IDeployment>(ha, 'Deployment').spec!.template.spec!, 'operator').env!;
    expect(opEnv).toContainEqual({ name: 'VPN_HA_LEASE', value: 'vpn-leader' });
  });

  it('writes the ha section of the daemon config; the connection starts itself', () => {
    const cfg = daemonConfig(ha) as {
      ha: unknown;
      connections: { onprem: { children: { cluster: { start_action: string } } } };
    };
    expect(cfg.ha).toEqual({
      lease: { name: 'vpn-leader', namespace: 'vpn' },
      lease_duration: '15s',
      renew_deadline: '10s',
      retry_period: '2s',
    });
    expect(cfg.connections.onprem.children.cluster.start_action).toBe('start');
    // Both replicas present the same IKE identity (with a PSK the default would be the pod IP), so
    // the peer drops the old replica's IKE_SA on the new one's INITIAL_CONTACT.
    expect((cfg.connections.onprem as unknown as { local: unknown }).local).toEqual({ id: 'vpn.vpn' });
    expect(
      (daemonConfig(off).connections as { onprem: Record<string, unknown> }).onprem.local,
    ).toBeUndefined();
    const own = render(renderer, REFERENCE_CONFIG, {
      sets: ['ha.enabled=true', 'ipsec.localId=gw.example.com'],
    });
    expect(own.ok, own.stderr).toBe(true);
    expect(
      ((daemonConfig(own).connections as { onprem: Record<string, unknown> }).onprem.local as { id: string })
        .id,
    ).toBe('gw.example.com');
    const r = render(renderer, REFERENCE_CONFIG, {
      namespace: 'gw',
      release: 'edge',
      sets: ['ha.enabled=true', 'ha.leaseDuration=20s', 'ha.renewDeadline=15s', 'ha.retryPeriod=500ms'],
    });
    expect(r.ok, r.stderr).toBe(true);
    expect(find<ILease>(r, 'Lease').metadata!.name).toBe('edge-vpn-leader');
    expect(find<ILease>(r, 'Lease').spec!.leaseDurationSeconds).toBe(20);
    const s = find<ISecret>(r, 'Secret', 'edge-vpn-config');
    expect(
      (parseYaml(Buffer.from(s.data!['config.yaml']!, 'base64').toString()) as { ha: unknown }).ha,
    ).toEqual({
      lease: { name: 'edge-vpn-leader', namespace: 'gw' },
      lease_duration: '20s',
      renew_deadline: '15s',
      retry_period: '500ms',
    });
  });

  it("loads with the daemon's own config loader: the Lease, POD_NAME as identity, the timings", () => {
    const s = find<ISecret>(ha, 'Secret', 'vpn-config');
    const text = Buffer.from(s.data!['config.yaml']!, 'base64').toString('utf8');
    const loaded = loadConfig(
      text,
      { POD_NAME: 'vpn-frontend-1', POD_NAMESPACE: 'vpn' },
      { readFile: () => new TextEncoder().encode('ha-test-psk-0123456789-abcdefghijklmnop') },
    );
    expect(loaded.ok ? [] : loaded.errors).toEqual([]);
    expect(loaded.ok && loaded.value.daemon.ha).toEqual({
      lease: { name: 'vpn-leader', namespace: 'vpn' },
      identity: 'vpn-frontend-1',
      leaseDurationMs: 15_000,
      renewDeadlineMs: 10_000,
      retryPeriodMs: 2_000,
    });
    // The chart's own check and the daemon's agree: what the chart accepts, the daemon loads.
    const r = render(renderer, REFERENCE_CONFIG, {
      sets: ['ha.enabled=true', 'ha.leaseDuration=13s', 'ha.retryPeriod=500ms'],
    });
    expect(r.ok, r.stderr).toBe(true);
    const s2 = find<ISecret>(r, 'Secret', 'vpn-config');
    const l2 = loadConfig(
      Buffer.from(s2.data!['config.yaml']!, 'base64').toString('utf8'),
      { POD_NAME: 'p' },
      {
        readFile: () => new TextEncoder().encode('x'.repeat(32)),
      },
    );
    expect(l2.ok ? [] : l2.errors).toEqual([]);
  });

  it('refuses unsafe or malformed election timings, naming the value', () => {
    const bad: Array<[string[], RegExp]> = [
      [['ha.leaseDuration=12s'], /ha\.leaseDuration 12s must be longer than ha\.renewDeadline 10s plus 2s/],
      [['ha.leaseDuration=10s'], /ha\.leaseDuration 10s must be longer/],
      [['ha.retryPeriod=10s'], /ha\.retryPeriod 10s must be shorter than ha\.renewDeadline 10s/],
      [['ha.leaseDuration=soon'], /ha\.leaseDuration/],
      [['ha.renewDeadline=0s'], /ha\.renewDeadline/],
      [['ha.replicas=3'], /ha: Additional property replicas is not allowed|replicas/],
    ];
    for (const [sets, msg] of bad) {
      const r = render(renderer, REFERENCE_CONFIG, { sets: ['ha.enabled=true', ...sets] });
      expect(r.ok, sets.join(' ')).toBe(false);
      expect(r.stderr).toMatch(msg);
    }
    // 17s > 10s + 2s + ... fine; 1m with 50s fine.
    for (const sets of [['ha.leaseDuration=13s'], ['ha.leaseDuration=1m', 'ha.renewDeadline=50s']]) {
      const r = render(renderer, REFERENCE_CONFIG, { sets: ['ha.enabled=true', ...sets] });
      expect(r.ok, r.stderr).toBe(true);
    }
  });
});
