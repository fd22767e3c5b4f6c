// The Helm chart in helm/: renders it for a reference-chart user's config.yaml and for the new
// values, validates every object against the Kubernetes schemas (kubernetes-models), checks the
// fields that matter, and that bad values are rejected with a message naming the value.
import { createHash } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Deployment, type IDeployment, type IStatefulSet, StatefulSet } from 'kubernetes-models/apps/v1';
import {
  ClusterRole,
  ClusterRoleBinding,
  type IRole,
  type IRoleBinding,
  Role,
  RoleBinding,
} from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import {
  ConfigMap,
  type IConfigMap,
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
  chartDir,
  cleanupScratch,
  detectRenderer,
  ensureRenderer,
  type K8sObject,
  type Rendered,
  render,
  repoRoot,
} from './render.js';

const renderer = detectRenderer();
const skipReason = renderer.kind === 'none' ? renderer.reason : '';
if (skipReason) console.warn(`test/helm/chart.test.ts skipped: ${skipReason}`);

const PSK = 'Zm9vYmFyYmF6cXV4-a-long-test-psk-0123456789';

/** A config.yaml as a user of the reference chart has it: `helm inspect values`, then filled in. */
const REFERENCE_CONFIG = `
podCIDR: "10.10.0.0/16"
serviceCIDR: "10.96.0.0/12"
peerCIDRs:
  - 192.168.0.0/16
  - 172.16.0.0/12
mtu: 1300
ipsec:
  psk: "${PSK}"
  peer: "203.0.113.7"
`;
const REFERENCE_IMAGE =
  'ghcr.io/edgelesssys/constellation/vpn@sha256:0000000000000000000000000000000000000000000000000000000000000000';

/** Every new value set to something other than its default. */
const NEW_VALUES = {
  podCIDR: 'fd00:10::/56',
  serviceCIDR: '10.96.0.0/12',
  peerCIDRs: ['192.168.10.0/24', 'fd00:99::/64'],
  mtu: 1400,
  ipsec: {
    psk: '',
    peer: 'gw.example.com',
    existingSecret: 'my-psk',
    existingSecretKey: 'key',
    proposals: ['aes256gcm16-prfsha384-ecp384', 'aes256-sha384-modp3072'],
    espProposals: ['aes256gcm16-ecp384'],
    dpdDelay: '10s',
    dpdAction: 'clear',
  },
  image: 'registry.example.com/ikegw@sha256:1111111111111111111111111111111111111111111111111111111111111111',
  imagePullPolicy: 'Always',
  imagePullSecrets: [{ name: 'regcred' }],
  logLevel: 'debug',
  logFormat: 'text',
  datapath: 'userspace',
  metrics: {
    port: 9600,
    prometheusAnnotations: false,
    podMonitor: { enabled: true, interval: '15s', labels: { release: 'prom' } },
    serviceMonitor: { enabled: true, interval: '20s', labels: { release: 'prom' } },
  },
  service: {
    annotations: { 'service.beta.kubernetes.io/aws-load-balancer-type': 'nlb' },
    loadBalancerSourceRanges: ['203.0.113.7/32'],
    loadBalancerClass: 'service.k8s.aws/nlb',
  },
  resources: { requests: { cpu: '250m', memory: '200Mi' }, limits: { memory: '1Gi' } },
  nodeSelector: { 'node-role.example.com/vpn': 'true' },
  tolerations: [{ key: 'vpn', operator: 'Exists', effect: 'NoSchedule' }],
  affinity: {
    nodeAffinity: {
      requiredDuringSchedulingIgnoredDuringExecution: {
        nodeSelectorTerms: [{ matchExpressions: [{ key: 'zone', operator: 'In', values: ['a'] }] }],
      },
    },
  },
  priorityClassName: 'system-cluster-critical',
  podAnnotations: { 'example.com/a': 'b' },
  podLabels: { team: 'net' },
  routes: { nodeNetns: 'hostPID', privileged: false, resources: { requests: { cpu: '5m' } } },
  operator: {
    resources: { requests: { cpu: '20m', memory: '80Mi' }, limits: { memory: '300Mi' } },
    nodeSelector: { 'kubernetes.io/os': 'linux' },
    tolerations: [{ key: 'ops', operator: 'Exists' }],
    affinity: {},
  },
};

// --- helpers -------------------------------------------------------------------------------

type Validator = (o: K8sObject) => void;
const VALIDATORS: Record<string, Validator> = {
  'v1/Secret': (o) => new Secret(o as unknown as ISecret).validate(),
  'v1/Service': (o) => new Service(o as unknown as IService).validate(),
  'v1/ServiceAccount': (o) => new ServiceAccount(o as unknown as IServiceAccount).validate(),
  'v1/ConfigMap': (o) => new ConfigMap(o as unknown as IConfigMap).validate(),
  'apps/v1/StatefulSet': (o) => new StatefulSet(o as unknown as IStatefulSet).validate(),
  'apps/v1/Deployment': (o) => new Deployment(o as unknown as IDeployment).validate(),
  'rbac.authorization.k8s.io/v1/Role': (o) => new Role(o as unknown as IRole).validate(),
  'rbac.authorization.k8s.io/v1/RoleBinding': (o) => new RoleBinding(o as unknown as IRoleBinding).validate(),
  'rbac.authorization.k8s.io/v1/ClusterRole': (o) =>
    new ClusterRole(o as unknown as ConstructorParameters<typeof ClusterRole>[0]).validate(),
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': (o) =>
    new ClusterRoleBinding(o as unknown as ConstructorParameters<typeof ClusterRoleBinding>[0]).validate(),
  // Prometheus Operator CRDs: kubernetes-models has no models for them; check the shape we use.
  'monitoring.coreos.com/v1/PodMonitor': (o) => monitorShape(o, 'podMetricsEndpoints'),
  'monitoring.coreos.com/v1/ServiceMonitor': (o) => monitorShape(o, 'endpoints'),
};

function monitorShape(o: K8sObject, endpointsKey: string): void {
  const spec = o.spec as Record<string, unknown> | undefined;
  if (!spec || typeof spec !== 'object') throw new Error(`${o.kind}: no spec`);
  const sel = spec.selector as { matchLabels?: Record<string, string> } | undefined;
  if (!sel?.matchLabels || Object.keys(sel.matchLabels).length === 0)
    throw new Error(`${o.kind}: no selector`);
  const eps = spec[endpointsKey];
  if (!Array.isArray(eps) || eps.length === 0) throw new Error(`${o.kind}: no ${endpointsKey}`);
  for (const ep of eps as Array<Record<string, unknown>>) {
    if (typeof ep.port !== 'string') throw new Error(`${o.kind}: endpoint without named port`);
    if (typeof ep.interval !== 'string' || !/^[0-9]+(ms|s|m|h)$/.test(ep.interval)) {
      throw new Error(`${o.kind}: bad interval ${String(ep.interval)}`);
    }
  }
}

/** Field names of a kubernetes-models interface, read from its .d.ts (catches typos in templates). */
function modelKeys(dts: string, iface: string): Set<string> {
  const text = readFileSync(join(repoRoot, 'node_modules/kubernetes-models', dts), 'utf8');
  const start = text.indexOf(`export interface ${iface} `);
  if (start < 0) throw new Error(`${iface} not in ${dts}`);
  const end = text.indexOf('\n}', start);
  const keys = new Set<string>();
  for (const m of text.slice(start, end).matchAll(/^ {4}"([A-Za-z0-9]+)"\??:/gm)) keys.add(m[1]!);
  return keys;
}

function expectKnownKeys(obj: object | undefined, known: Set<string>, where: string): void {
  if (!obj) return;
  const unknown = Object.keys(obj).filter((k) => !known.has(k));
  expect(unknown, `unknown fields in ${where}`).toEqual([]);
}

function validateAll(r: Rendered): void {
  expect(r.docs.length).toBeGreaterThan(0);
  for (const { obj } of r.docs) {
    const key = `${obj.apiVersion}/${obj.kind}`;
    const v = VALIDATORS[key];
    expect(v, `no validator for ${key}`).toBeDefined();
    try {
      v!(obj);
    } catch (e) {
      throw new Error(`${key} ${obj.metadata?.name}: ${(e as Error).message}`);
    }
    expect(obj.metadata.name).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
  }
  // Names must be unique per kind and namespace.
  const ids = r.docs.map(({ obj }) => `${obj.kind}/${obj.metadata.namespace ?? ''}/${obj.metadata.name}`);
  expect(new Set(ids).size).toBe(ids.length);
}

function find<T>(r: Rendered, kind: string, name?: string): T {
  const hits = r.docs.filter(
    ({ obj }) => obj.kind === kind && (name === undefined || obj.metadata.name === name),
  );
  expect(hits.length, `${kind} ${name ?? ''}: ${hits.map((h) => h.obj.metadata.name).join(', ')}`).toBe(1);
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

function envOf(c: IContainer): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of c.env ?? []) if (e.value !== undefined) out[e.name] = e.value;
  return out;
}

function b64(s: string): string {
  return Buffer.from(s, 'base64').toString('utf8');
}

interface DaemonConfig {
  connections: Record<
    string,
    {
      remote_addrs: string[];
      psk: { file: string };
      proposals: string[];
      dpd_delay: string;
      dpd_action: string;
      children: Record<
        string,
        { local_ts: string[]; remote_ts: string[]; esp_proposals: string[]; start_action: string }
      >;
    }
  >;
  datapath: string;
  listen: { address: string; port: number; nat_port: number };
  log: { level: string; format: string };
  metrics: { listen: string };
}

function daemonConfig(r: Rendered, secretName: string): DaemonConfig {
  const s = find<ISecret>(r, 'Secret', secretName);
  return parseYaml(b64(s.data!['config.yaml']!)) as DaemonConfig;
}

/** The mounted path of a file that a projected volume takes from secret `secret`, key `key`. */
function projectedPath(pod: IPodSpec, c: IContainer, secret: string, key: string): string | undefined {
  for (const v of pod.volumes ?? []) {
    for (const src of v.projected?.sources ?? []) {
      if (src.secret?.name !== secret) continue;
      const item = src.secret.items?.find((i) => i.key === key);
      if (!item) continue;
      const mount = c.volumeMounts?.find((m) => m.name === v.name);
      if (mount) return `${mount.mountPath}/${item.path}`;
    }
  }
  return undefined;
}

/** Checks that the error output names the value, in helmlite/gojsonschema or newer Helm form. */
function expectNamesValue(res: Rendered, dotted: string): void {
  expect(res.ok, `render should fail for ${dotted}`).toBe(false);
  const parts = dotted.split('.');
  const pointer = `/${parts.join('/')}`;
  const parent = `/${parts.slice(0, -1).join('/')}`;
  const last = parts[parts.length - 1]!;
  const forms = [
    `${dotted}:`, // gojsonschema (helmlite, Helm < 3.18): "peerCIDRs.0: ..."
    `'${pointer}'`, // santhosh-tekuri/jsonschema (Helm >= 3.18): "at '/peerCIDRs/0': ..."
    `'${parent === '/' ? '' : parent}': missing property '${last}'`,
    `${parts.slice(0, -1).join('.')}: ${last} is required`, // gojsonschema "required"
    `${dotted} `, // the chart's own fail messages
  ];
  expect(
    forms.some((f) => res.stderr.includes(f)),
    `stderr should name ${dotted}:\n${res.stderr}`,
  ).toBe(true);
}

function notesChart(): string {
  // NOTES.txt is not part of `helm template` output; render it through a ConfigMap in a copy.
  const dir = mkdtempSync(join(tmpdir(), 'ikegw-chart-notes-'));
  cpSync(chartDir, dir, { recursive: true });
  writeFileSync(
    join(dir, 'templates', 'zz-notes-under-test.yaml'),
    'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes-under-test\ndata:\n' +
      '  notes: {{ include "ikegw-vpn/templates/NOTES.txt" . | toJson }}\n',
  );
  return dir;
}
function notesOf(r: Rendered): string {
  expect(r.ok, r.stderr).toBe(true);
  return find<IConfigMap>(r, 'ConfigMap', 'notes-under-test').data!.notes!;
}

// --- tests ---------------------------------------------------------------------------------

describe.skipIf(renderer.kind === 'none')(`helm chart (${renderer.kind})`, () => {
  let ref: Rendered;
  let dirs: string[] = [];
  let notesDir: string;

  beforeAll(() => {
    ensureRenderer(renderer, 170_000);
    ref = render(renderer, REFERENCE_CONFIG);
    expect(ref.ok, ref.stderr).toBe(true);
    notesDir = notesChart();
    dirs = [notesDir];
  }, 180_000);
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
    cleanupScratch();
  });

  describe('a reference-chart config.yaml', () => {
    it('renders objects that all validate against the Kubernetes schemas', () => {
      validateAll(ref);
      const kinds = ref.docs.map(({ obj }) => obj.kind).sort();
      expect(kinds).toEqual(
        [
          'Deployment',
          'Role',
          'Role',
          'RoleBinding',
          'RoleBinding',
          'Secret',
          'Service',
          'Service',
          'ServiceAccount',
          'ServiceAccount',
          'StatefulSet',
        ].sort(),
      );
    });

    it('keeps the reference object names and selector labels', () => {
      const sts = find<IStatefulSet>(ref, 'StatefulSet', 'vpn-frontend');
      expect(sts.spec!.replicas).toBe(1);
      expect(sts.spec!.selector.matchLabels).toEqual({
        'app.kubernetes.io/name': 'vpn',
        'app.kubernetes.io/instance': 'vpn',
        component: 'frontend',
      });
      const op = find<IDeployment>(ref, 'Deployment', 'vpn-operator');
      expect(op.spec!.replicas).toBe(1);
      expect(op.spec!.selector.matchLabels).toEqual({
        'app.kubernetes.io/name': 'vpn',
        'app.kubernetes.io/instance': 'vpn',
        component: 'operator',
      });
      find<IService>(ref, 'Service', 'vpn-lb');

      const other = render(renderer, REFERENCE_CONFIG, { release: 'prod' });
      expect(other.ok, other.stderr).toBe(true);
      find<IStatefulSet>(other, 'StatefulSet', 'prod-vpn-frontend');
      find<IService>(other, 'Service', 'prod-vpn-lb');
      find<IDeployment>(other, 'Deployment', 'prod-vpn-operator');
      const env = envOf(container(find<IDeployment>(other, 'Deployment').spec!.template.spec!, 'operator'));
      expect(env.VPN_FRONTEND_POD).toBe('prod-vpn-frontend-0');
    });

    it('exposes UDP 500/4500 through a LoadBalancer with externalTrafficPolicy Local', () => {
      const svc = find<IService>(ref, 'Service', 'vpn-lb');
      const spec = svc.spec!;
      expect(spec.type).toBe('LoadBalancer');
      expect(spec.externalTrafficPolicy).toBe('Local');
      expect(spec.ports!.map((p) => [p.name, p.protocol, p.port])).toEqual([
        ['isakmp', 'UDP', 500],
        ['ipsec-nat-t', 'UDP', 4500],
      ]);
      const pod = find<IStatefulSet>(ref, 'StatefulSet').spec!.template;
      for (const [k, v] of Object.entries(spec.selector!)) expect(pod.metadata!.labels![k]).toBe(v);
      // Named target ports resolve to the daemon's container ports.
      const daemon = container(pod.spec!, 'ikegw');
      for (const p of spec.ports!) {
        const cp = daemon.ports!.find((x) => x.name === p.targetPort);
        expect(cp?.containerPort).toBe(p.port);
        expect(cp?.protocol).toBe('UDP');
      }
      expectKnownKeys(spec, modelKeys('v1/ServiceSpec.d.ts', 'IServiceSpec'), 'Service spec');
    });

    it('runs the daemon with NET_ADMIN and NET_BIND_SERVICE only, probes on /healthz and /readyz', () => {
      const sts = find<IStatefulSet>(ref, 'StatefulSet');
      const pod = sts.spec!.template.spec!;
      expect(sts.spec!.serviceName).toBeUndefined();
      find<IService>(ref, 'Service', 'vpn-frontend');
      expect(pod.hostPID ?? false).toBe(false);
      expect(pod.hostNetwork ?? false).toBe(false);
      expect(pod.automountServiceAccountToken).toBe(false);
      expect(pod.containers.map((c) => c.name)).toEqual(['ikegw', 'routes']);
      const d = container(pod, 'ikegw');
      expect(d.image).toBe('ikegw:0.1.0');
      expect(d.args).toEqual(['daemon', '-c', '/etc/ikegw/config.yaml']);
      const sc = d.securityContext!;
      expect(sc.privileged).toBe(false);
      expect(sc.allowPrivilegeEscalation).toBe(false);
      expect(sc.readOnlyRootFilesystem).toBe(true);
      expect(sc.capabilities!.drop).toEqual(['ALL']);
      expect([...sc.capabilities!.add!].sort()).toEqual(['NET_ADMIN', 'NET_BIND_SERVICE']);

      const metrics = d.ports!.find((p) => p.name === 'metrics');
      expect(metrics).toMatchObject({ containerPort: 9500, protocol: 'TCP' });
      expect(d.livenessProbe!.httpGet).toMatchObject({ path: '/healthz', port: 'metrics' });
      expect(d.readinessProbe!.httpGet).toMatchObject({ path: '/readyz', port: 'metrics' });
      expect(d.startupProbe!.httpGet).toMatchObject({ path: '/healthz', port: 'metrics' });

      // config.yaml and the PSK file are where config.yaml says.
      expect(projectedPath(pod, d, 'vpn-config', 'config.yaml')).toBe('/etc/ikegw/config.yaml');
      const cfg = daemonConfig(ref, 'vpn-config');
      expect(projectedPath(pod, d, 'vpn-config', 'psk')).toBe(cfg.connections.onprem!.psk.file);
      expect(cfg.metrics.listen).toBe('0.0.0.0:9500');

      const known = modelKeys('v1/Container.d.ts', 'IContainer');
      const knownSc = modelKeys('v1/SecurityContext.d.ts', 'ISecurityContext');
      for (const c of pod.containers) {
        expectKnownKeys(c, known, `container ${c.name}`);
        expectKnownKeys(c.securityContext, knownSc, `container ${c.name} securityContext`);
      }
      expectKnownKeys(pod, modelKeys('v1/PodSpec.d.ts', 'IPodSpec'), 'pod spec');
      expectKnownKeys(sts.spec, modelKeys('apps/v1/StatefulSetSpec.d.ts', 'IStatefulSetSpec'), 'sts spec');
    });

    it('gives the routes sidecar the node netns file and the Cilium socket dir, not privileged/hostPID', () => {
      const pod = find<IStatefulSet>(ref, 'StatefulSet').spec!.template.spec!;
      const r = container(pod, 'routes');
      expect(r.args).toEqual(['routes', '--node-netns', '/host/proc/1/ns/net']);
      const sc = r.securityContext!;
      expect(sc.privileged).toBe(false);
      expect(sc.allowPrivilegeEscalation).toBe(false);
      expect(sc.capabilities!.drop).toEqual(['ALL']);
      expect([...sc.capabilities!.add!].sort()).toEqual(['NET_ADMIN', 'SYS_ADMIN']);
      const mountOf = (path: string) => {
        const m = r.volumeMounts!.find((x) => x.mountPath === path);
        expect(m, `mount ${path}`).toBeDefined();
        return pod.volumes!.find((v) => v.name === m!.name)!;
      };
      expect(mountOf('/host/proc/1/ns/net').hostPath!.path).toBe('/proc/1/ns/net');
      expect(mountOf('/var/run/cilium').hostPath).toEqual({ path: '/var/run/cilium', type: 'Directory' });
      expect(r.volumeMounts!.find((x) => x.mountPath === '/var/run/cilium')!.readOnly).toBe(true);
      // These two hostPath volumes for the sidecar; the daemon gets only the TUN device, which
      // datapath auto falls back to where the node's kernel has no ESP.
      expect(pod.volumes!.filter((v) => v.hostPath).map((v) => v.hostPath!.path)).toEqual([
        '/var/run/cilium',
        '/proc/1/ns/net',
        '/dev/net/tun',
      ]);
      const d = container(pod, 'ikegw');
      const hostVols = new Set(pod.volumes!.filter((v) => v.hostPath).map((v) => v.name));
      expect(d.volumeMounts!.filter((m) => hostVols.has(m.name)).map((m) => m.mountPath)).toEqual([
        '/dev/net/tun',
      ]);
    });

    it('passes the reference helpers environment to the sidecar and the operator', () => {
      const pod = find<IStatefulSet>(ref, 'StatefulSet').spec!.template.spec!;
      const op = find<IDeployment>(ref, 'Deployment').spec!.template.spec!;
      const want = {
        VPN_PEER_CIDRS: '192.168.0.0/16 172.16.0.0/12',
        VPN_POD_CIDR: '10.10.0.0/16',
        VPN_SERVICE_CIDR: '10.96.0.0/12',
        VPN_FRONTEND_POD: 'vpn-frontend-0',
        VPN_MTU: '1300',
      };
      for (const c of [container(pod, 'ikegw'), container(pod, 'routes'), container(op, 'operator')]) {
        expect(envOf(c), c.name).toMatchObject(want);
      }
      const noMtu = render(renderer, REFERENCE_CONFIG, { sets: ['mtu=null'] });
      expect(noMtu.ok, noMtu.stderr).toBe(true);
      const r = container(find<IStatefulSet>(noMtu, 'StatefulSet').spec!.template.spec!, 'routes');
      expect(envOf(r).VPN_MTU).toBe('');
      const emptyMtu = render(renderer, `${REFERENCE_CONFIG}\nmtu: ""\n`.replace('mtu: 1300\n', ''));
      expect(emptyMtu.ok, emptyMtu.stderr).toBe(true);
      const r2 = container(find<IStatefulSet>(emptyMtu, 'StatefulSet').spec!.template.spec!, 'routes');
      expect(envOf(r2).VPN_MTU).toBe('');
    });

    it('renders the daemon config and the PSK into the Secret', () => {
      const s = find<ISecret>(ref, 'Secret', 'vpn-config');
      expect(Object.keys(s.data!).sort()).toEqual(['config.yaml', 'psk']);
      expect(b64(s.data!.psk!)).toBe(PSK);
      const cfg = daemonConfig(ref, 'vpn-config');
      expect(Object.keys(cfg.connections)).toEqual(['onprem']);
      const conn = cfg.connections.onprem!;
      expect(conn.remote_addrs).toEqual(['203.0.113.7']);
      expect(conn.psk).toEqual({ file: '/etc/ikegw/secrets/psk' });
      expect(conn.proposals).toEqual(['default']);
      expect(conn.dpd_delay).toBe('30s');
      expect(conn.dpd_action).toBe('restart');
      expect(conn.children).toEqual({
        cluster: {
          local_ts: ['10.10.0.0/16', '10.96.0.0/12'],
          remote_ts: ['192.168.0.0/16', '172.16.0.0/12'],
          esp_proposals: ['default'],
          start_action: 'trap',
        },
      });
      expect(cfg.datapath).toBe('auto');
      expect(cfg.listen).toEqual({ address: '0.0.0.0', port: 500, nat_port: 4500 });
      expect(cfg.log).toEqual({ level: 'info', format: 'json' });
      expect(b64(s.data!['config.yaml']!)).not.toContain(PSK);
    });

    it('keeps the PSK (and its plain hashes) out of every non-Secret object', () => {
      const forbidden = [
        PSK,
        Buffer.from(PSK).toString('base64'),
        createHash('sha256').update(PSK).digest('hex'),
        createHash('sha1').update(PSK).digest('hex'),
        createHash('md5').update(PSK).digest('hex'),
      ];
      for (const { obj, text } of ref.docs) {
        if (obj.kind === 'Secret') continue;
        for (const f of forbidden) expect(text, `${obj.kind}/${obj.metadata.name}`).not.toContain(f);
      }
      const notes = notesOf(render(renderer, REFERENCE_CONFIG, { chart: notesDir }));
      for (const f of forbidden) expect(notes).not.toContain(f);
    });

    it('restarts the frontend when the config or the PSK changes (checksum annotations)', () => {
      const ann = (r: Rendered) => find<IStatefulSet>(r, 'StatefulSet').spec!.template.metadata!.annotations!;
      const a = ann(ref);
      expect(a['checksum/config']).toMatch(/^[0-9a-f]{64}$/);
      expect(a['checksum/psk']).toMatch(/^[0-9a-f]{64}$/);
      const again = render(renderer, REFERENCE_CONFIG);
      expect(ann(again)).toEqual(a); // deterministic
      const cidr = render(renderer, REFERENCE_CONFIG, { sets: ['podCIDR=10.20.0.0/16'] });
      expect(ann(cidr)['checksum/config']).not.toBe(a['checksum/config']);
      expect(ann(cidr)['checksum/psk']).toBe(a['checksum/psk']);
      const psk = render(renderer, REFERENCE_CONFIG, { sets: ['ipsec.psk=another-long-pre-shared-key-42'] });
      expect(ann(psk)['checksum/psk']).not.toBe(a['checksum/psk']);
      expect(ann(psk)['checksum/config']).toBe(a['checksum/config']);
    });

    it('grants least-privilege RBAC: namespaced Roles, patch and ip-masq-agent by resourceNames', () => {
      expect(all(ref, 'ClusterRole')).toEqual([]);
      expect(all(ref, 'ClusterRoleBinding')).toEqual([]);
      const op = find<IRole>(ref, 'Role', 'vpn-operator');
      expect(op.metadata!.namespace).toBeUndefined(); // the release namespace
      expect(op.rules).toEqual([
        { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: ['cilium.io'], resources: ['ciliumendpoints'], verbs: ['get', 'list', 'watch'] },
        {
          apiGroups: ['cilium.io'],
          resources: ['ciliumendpoints', 'ciliumendpoints/status'],
          resourceNames: ['vpn-frontend-0'],
          verbs: ['patch'],
        },
      ]);
      const masq = find<IRole>(ref, 'Role', 'vpn-ip-masq-agent');
      expect(masq.metadata!.namespace).toBe('kube-system');
      expect(masq.rules).toEqual([
        {
          apiGroups: [''],
          resources: ['configmaps'],
          resourceNames: ['ip-masq-agent'],
          verbs: ['get', 'list', 'watch', 'patch'],
        },
      ]);
      for (const role of all<IRole>(ref, 'Role')) {
        for (const rule of role.rules ?? []) {
          expect(rule.verbs).not.toContain('*');
          expect(rule.resources).not.toContain('*');
          expect(rule.verbs).not.toContain('create');
          expect(rule.verbs).not.toContain('delete');
        }
      }
      for (const [name, ns] of [
        ['vpn-operator', undefined],
        ['vpn-ip-masq-agent', 'kube-system'],
      ] as const) {
        const rb = find<IRoleBinding>(ref, 'RoleBinding', name);
        expect(rb.metadata!.namespace).toBe(ns);
        expect(rb.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name });
        expect(rb.subjects).toEqual([{ kind: 'ServiceAccount', name: 'vpn-operator', namespace: 'vpn' }]);
      }
      const opPod = find<IDeployment>(ref, 'Deployment').spec!.template.spec!;
      expect(opPod.serviceAccountName).toBe('vpn-operator');
      expect(opPod.automountServiceAccountToken).toBe(true);
      const fePod = find<IStatefulSet>(ref, 'StatefulSet').spec!.template.spec!;
      expect(fePod.serviceAccountName).toBe('vpn-frontend');
      for (const sa of all<IServiceAccount>(ref, 'ServiceAccount'))
        expect(sa.automountServiceAccountToken).toBe(false);
    });

    it('runs the operator unprivileged', () => {
      const pod = find<IDeployment>(ref, 'Deployment').spec!.template.spec!;
      const c = container(pod, 'operator');
      expect(c.args).toEqual(['operator']);
      expect(pod.securityContext!.runAsNonRoot).toBe(true);
      expect(c.securityContext).toMatchObject({
        privileged: false,
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ['ALL'] },
      });
      expect(c.securityContext!.capabilities!.add).toBeUndefined();
      expect(pod.hostPID ?? false).toBe(false);
      expect(pod.volumes!.filter((v) => v.hostPath)).toEqual([]);
    });

    it('replaces the reference chart image from an unchanged `helm inspect values` file', () => {
      const r = render(renderer, `${REFERENCE_CONFIG}\nimage: "${REFERENCE_IMAGE}"\n`, { chart: notesDir });
      expect(r.ok, r.stderr).toBe(true);
      for (const c of find<IStatefulSet>(r, 'StatefulSet').spec!.template.spec!.containers) {
        expect(c.image).toBe('ikegw:0.1.0');
      }
      expect(notesOf(r)).toContain("reference chart's strongSwan image");
    });

    it('prints the on-prem side settings in NOTES.txt', () => {
      const notes = notesOf(render(renderer, REFERENCE_CONFIG, { chart: notesDir }));
      expect(notes).toContain('remote_ts = 10.10.0.0/16,10.96.0.0/12');
      expect(notes).toContain('local_ts = 192.168.0.0/16,172.16.0.0/12');
      expect(notes).toContain('auth = psk');
      expect(notes).toContain('version = 2');
      expect(notes).toContain('proposals = default');
      expect(notes).toContain('esp_proposals = default');
      expect(notes).toContain('dpd_delay = 30s');
      expect(notes).toContain('get service vpn-lb');
      expect(notes).toContain("get secret vpn-config -o jsonpath='{.data.psk}'");
      expect(notes).toContain('remote_addrs = <LB_ADDRESS>');
      expect(notes).toContain('MTU 1300');
      expect(notes).not.toContain("reference chart's strongSwan image");
      expect(notes).not.toContain('WARNING');
      const weak = notesOf(
        render(renderer, REFERENCE_CONFIG, { chart: notesDir, sets: ['ipsec.psk=short'] }),
      );
      expect(weak).toContain('WARNING: ipsec.psk is shorter than 20 characters');
    });
  });

  it.each([
    ['auto', 'auto', true],
    ['kernel', 'xfrm', false],
    ['userspace', 'userspace', true],
  ])(
    'datapath %s: the daemon accepts the rendered config.yaml (datapath %s), TUN mounted: %s',
    (value, want, tun) => {
      const r = render(renderer, REFERENCE_CONFIG, { sets: [`datapath=${value}`] });
      expect(r.ok, r.stderr).toBe(true);
      const secret = find<ISecret>(r, 'Secret');
      const loaded = loadConfig(
        b64(secret.data!['config.yaml']!),
        {},
        { readFile: () => new TextEncoder().encode(PSK) },
      );
      expect(loaded.ok ? [] : loaded.errors).toEqual([]);
      expect(loaded.ok && loaded.value.daemon.datapath).toBe(want);
      const pod = find<IStatefulSet>(r, 'StatefulSet').spec!.template.spec!;
      expect(container(pod, 'ikegw').volumeMounts!.some((m) => m.mountPath === '/dev/net/tun')).toBe(tun);
    },
  );

  describe('the new values', () => {
    let r: Rendered;
    beforeAll(() => {
      r = render(renderer, NEW_VALUES);
      expect(r.ok, r.stderr).toBe(true);
    });

    it('renders objects that all validate, including PodMonitor and ServiceMonitor', () => {
      validateAll(r);
      const pm = find<K8sObject>(r, 'PodMonitor');
      const sm = find<K8sObject>(r, 'ServiceMonitor');
      expect(pm.metadata.labels!.release).toBe('prom');
      expect(sm.metadata.labels!.release).toBe('prom');
      const pod = find<IStatefulSet>(r, 'StatefulSet').spec!.template;
      const pmSpec = pm.spec as {
        selector: { matchLabels: Record<string, string> };
        podMetricsEndpoints: Array<Record<string, string>>;
      };
      for (const [k, v] of Object.entries(pmSpec.selector.matchLabels))
        expect(pod.metadata!.labels![k]).toBe(v);
      expect(pmSpec.podMetricsEndpoints).toEqual([{ port: 'metrics', path: '/metrics', interval: '15s' }]);
      const headless = find<IService>(r, 'Service', 'vpn-frontend');
      const smSpec = sm.spec as {
        selector: { matchLabels: Record<string, string> };
        endpoints: Array<Record<string, string>>;
      };
      for (const [k, v] of Object.entries(smSpec.selector.matchLabels))
        expect(headless.metadata!.labels![k]).toBe(v);
      const lb = find<IService>(r, 'Service', 'vpn-lb');
      expect(
        Object.entries(smSpec.selector.matchLabels).every(([k, v]) => lb.metadata!.labels![k] === v),
      ).toBe(false);
      expect(smSpec.endpoints).toEqual([{ port: 'metrics', path: '/metrics', interval: '20s' }]);
      expect(headless.spec!.ports).toEqual([
        { name: 'metrics', protocol: 'TCP', port: 9600, targetPort: 'metrics' },
      ]);
    });

    it('puts proposals, DPD, log and metrics settings into the daemon config', () => {
      const cfg = daemonConfig(r, 'vpn-config');
      const conn = cfg.connections.onprem!;
      expect(conn.remote_addrs).toEqual(['gw.example.com']);
      expect(conn.proposals).toEqual(['aes256gcm16-prfsha384-ecp384', 'aes256-sha384-modp3072']);
      expect(conn.dpd_delay).toBe('10s');
      expect(conn.dpd_action).toBe('clear');
      expect(conn.children.cluster).toEqual({
        local_ts: ['fd00:10::/56', '10.96.0.0/12'],
        remote_ts: ['192.168.10.0/24', 'fd00:99::/64'],
        esp_proposals: ['aes256gcm16-ecp384'],
        start_action: 'trap',
      });
      expect(cfg.log).toEqual({ level: 'debug', format: 'text' });
      expect(cfg.metrics.listen).toBe('0.0.0.0:9600');
      expect(cfg.datapath).toBe('userspace');
    });

    it('takes the PSK from ipsec.existingSecret', () => {
      const s = find<ISecret>(r, 'Secret', 'vpn-config');
      expect(Object.keys(s.data!)).toEqual(['config.yaml']);
      const pod = find<IStatefulSet>(r, 'StatefulSet').spec!.template;
      const d = container(pod.spec!, 'ikegw');
      expect(projectedPath(pod.spec!, d, 'my-psk', 'key')).toBe('/etc/ikegw/secrets/psk');
      expect(pod.metadata!.annotations!['checksum/psk']).toBeUndefined();
      expect(pod.metadata!.annotations!['checksum/config']).toMatch(/^[0-9a-f]{64}$/);
    });

    it('applies image, scheduling, resources and pod metadata values', () => {
      const sts = find<IStatefulSet>(r, 'StatefulSet');
      const tpl = sts.spec!.template;
      const pod = tpl.spec!;
      const op = find<IDeployment>(r, 'Deployment').spec!.template.spec!;
      for (const c of [...pod.containers, ...op.containers]) {
        expect(c.image).toBe(NEW_VALUES.image);
        expect(c.imagePullPolicy).toBe('Always');
      }
      expect(pod.imagePullSecrets).toEqual([{ name: 'regcred' }]);
      expect(op.imagePullSecrets).toEqual([{ name: 'regcred' }]);
      expect(pod.nodeSelector).toEqual(NEW_VALUES.nodeSelector);
      expect(pod.tolerations).toEqual(NEW_VALUES.tolerations);
      expect(pod.affinity).toEqual(NEW_VALUES.affinity);
      expect(pod.priorityClassName).toBe('system-cluster-critical');
      expect(container(pod, 'ikegw').resources).toEqual(NEW_VALUES.resources);
      // Maps merge with the defaults (Helm semantics): only requests.cpu was overridden.
      expect(container(pod, 'routes').resources).toEqual({
        requests: { cpu: '5m', memory: '64Mi' },
        limits: { memory: '256Mi' },
      });
      expect(container(op, 'operator').resources).toEqual(NEW_VALUES.operator.resources);
      expect(op.nodeSelector).toEqual(NEW_VALUES.operator.nodeSelector);
      expect(op.tolerations).toEqual(NEW_VALUES.operator.tolerations);
      expect(op.affinity).toBeUndefined();
      expect(tpl.metadata!.labels!.team).toBe('net');
      expect(sts.spec!.selector.matchLabels!.team).toBeUndefined();
      expect(tpl.metadata!.annotations!['example.com/a']).toBe('b');
      expect(tpl.metadata!.annotations!['prometheus.io/scrape']).toBeUndefined();
      const d = container(pod, 'ikegw');
      expect(d.ports!.find((p) => p.name === 'metrics')!.containerPort).toBe(9600);
      expect(d.readinessProbe!.httpGet!.port).toBe('metrics');
      for (const c of [...pod.containers, ...op.containers]) {
        expect(envOf(c).IKEGW_LOG_LEVEL).toBe('debug');
        expect(envOf(c).VPN_MTU).toBe('1400');
      }
    });

    it('configures the LoadBalancer from service.*', () => {
      const lb = find<IService>(r, 'Service', 'vpn-lb');
      expect(lb.metadata!.annotations).toEqual(NEW_VALUES.service.annotations);
      expect(lb.spec!.loadBalancerSourceRanges).toEqual(['203.0.113.7/32']);
      expect(lb.spec!.loadBalancerClass).toBe('service.k8s.aws/nlb');
      expect(lb.spec!.externalTrafficPolicy).toBe('Local');
    });

    it('supports hostPID mode for the routes sidecar and mounts /dev/net/tun for the userspace datapath', () => {
      const pod = find<IStatefulSet>(r, 'StatefulSet').spec!.template.spec!;
      expect(pod.hostPID).toBe(true);
      const rt = container(pod, 'routes');
      expect(rt.args).toEqual(['routes', '--node-netns', '/proc/1/ns/net']);
      expect(pod.volumes!.filter((v) => v.hostPath).map((v) => v.hostPath)).toEqual([
        { path: '/var/run/cilium', type: 'Directory' },
        { path: '/dev/net/tun', type: 'CharDevice' },
      ]);
      const tun = container(pod, 'ikegw').volumeMounts!.find((m) => m.mountPath === '/dev/net/tun');
      expect(tun?.name).toBe('tun');
      expect(container(pod, 'ikegw').securityContext!.capabilities!.add!.sort()).toEqual([
        'NET_ADMIN',
        'NET_BIND_SERVICE',
      ]);
    });

    it('runs the routes sidecar privileged only when asked to', () => {
      const p = render(renderer, REFERENCE_CONFIG, { sets: ['routes.privileged=true'] });
      expect(p.ok, p.stderr).toBe(true);
      validateAll(p);
      const rt = container(find<IStatefulSet>(p, 'StatefulSet').spec!.template.spec!, 'routes');
      expect(rt.securityContext).toEqual({ privileged: true });
    });

    it('prints the new settings in NOTES.txt', () => {
      const notes = notesOf(render(renderer, NEW_VALUES, { chart: notesDir }));
      expect(notes).toContain('proposals = aes256gcm16-prfsha384-ecp384,aes256-sha384-modp3072');
      expect(notes).toContain('esp_proposals = aes256gcm16-ecp384');
      expect(notes).toContain('dpd_delay = 10s');
      expect(notes).toContain('remote_ts = fd00:10::/56,10.96.0.0/12');
      expect(notes).toContain("get secret my-psk -o jsonpath='{.data.key}'");
    });
  });

  describe('values.schema.json', () => {
    const bad: Array<[string, string[], string]> = [
      ['a bad podCIDR', ['podCIDR=10.10.0.0/33'], 'podCIDR'],
      ['a podCIDR without prefix', ['podCIDR=10.10.0.0'], 'podCIDR'],
      ['a bad serviceCIDR', ['serviceCIDR=fd00::1::/64'], 'serviceCIDR'],
      ['a bad peer CIDR', ['peerCIDRs={192.168.0.0/16,192.168.300.0/24}'], 'peerCIDRs.1'],
      ['an empty peerCIDRs', ['peerCIDRs={}'], 'peerCIDRs'],
      ['an empty psk', ['ipsec.psk='], 'ipsec.psk'],
      ['an empty peer', ['ipsec.peer='], 'ipsec.peer'],
      ['a bad peer', ['ipsec.peer=300.1.2.3'], 'ipsec.peer'],
      ['an MTU out of range', ['mtu=100000'], 'mtu'],
      ['an MTU that is not a number', ['mtu=big'], 'mtu'],
      ['a bad dpdAction', ['ipsec.dpdAction=explode'], 'ipsec.dpdAction'],
      ['a bad dpdDelay', ['ipsec.dpdDelay=soon'], 'ipsec.dpdDelay'],
      ['an empty proposal list', ['ipsec.proposals={}'], 'ipsec.proposals'],
      ['a bad routes.nodeNetns', ['routes.nodeNetns=hostNetwork'], 'routes.nodeNetns'],
    ];
    it.each(bad)('rejects %s', (_what, sets, value) => {
      expectNamesValue(render(renderer, REFERENCE_CONFIG, { sets }), value);
    });

    it('rejects the chart defaults (no peer, PSK or peer CIDRs)', () => {
      const res = render(renderer, null);
      expectNamesValue(res, 'peerCIDRs');
      expectNamesValue(res, 'ipsec.psk');
      expectNamesValue(res, 'ipsec.peer');
    });

    it('rejects a config without ipsec.psk key unless ipsec.existingSecret is set', () => {
      const noPsk = 'peerCIDRs: [192.168.0.0/16]\nipsec:\n  psk: null\n  peer: 203.0.113.7\n';
      expectNamesValue(render(renderer, noPsk), 'ipsec.psk');
      const ok = render(renderer, noPsk, { sets: ['ipsec.existingSecret=vpn-psk'] });
      expect(ok.ok, ok.stderr).toBe(true);
    });

    it('accepts IPv6, hostnames and an empty MTU', () => {
      for (const sets of [
        ['podCIDR=fd00:10::/56', 'serviceCIDR=fd00:96::/108'],
        ['peerCIDRs={fd00:1::/64,172.16.0.0/12}'],
        ['ipsec.peer=2001:db8::7'],
        ['ipsec.peer=vpn.example.com'],
        ['mtu='],
        ['mtu=null'],
        ['mtu=9000'],
      ]) {
        const res = render(renderer, REFERENCE_CONFIG, { sets });
        expect(res.ok, `${sets.join(' ')}: ${res.stderr}`).toBe(true);
      }
    });

    it('fails with a named value in the templates too when the schema is skipped', () => {
      const dir = mkdtempSync(join(tmpdir(), 'ikegw-chart-noschema-'));
      dirs.push(dir);
      cpSync(chartDir, dir, { recursive: true });
      rmSync(join(dir, 'values.schema.json'));
      const res = render(renderer, null, { chart: dir });
      expect(res.ok).toBe(false);
      expect(res.stderr).toContain('peerCIDRs: at least one on-prem CIDR is required');
      const noPeer = render(renderer, null, { chart: dir, sets: ['peerCIDRs={10.0.0.0/8}'] });
      expect(noPeer.stderr).toContain('ipsec.peer: the address of the on-prem gateway is required');
      const noPsk = render(renderer, null, {
        chart: dir,
        sets: ['peerCIDRs={10.0.0.0/8}', 'ipsec.peer=1.2.3.4'],
      });
      expect(noPsk.stderr).toContain('ipsec.psk: a pre-shared key is required');
    });
  });

  describe('peerCIDRs overlapping the cluster ranges', () => {
    // podCIDR 10.10.0.0/16 and serviceCIDR 10.96.0.0/12 (10.96.0.0-10.111.255.255) unless set.
    const refused: Array<[string, string[], string]> = [
      [
        'inside podCIDR',
        ['peerCIDRs={10.10.5.0/24}'],
        'peerCIDRs[0]: 10.10.5.0/24 overlaps podCIDR 10.10.0.0/16',
      ],
      [
        'around podCIDR',
        ['peerCIDRs={10.0.0.0/8}'],
        'peerCIDRs[0]: 10.0.0.0/8 overlaps podCIDR 10.10.0.0/16',
      ],
      ['equal to podCIDR', ['peerCIDRs={10.10.0.0/16}'], 'peerCIDRs[0]: 10.10.0.0/16 overlaps podCIDR'],
      [
        'inside serviceCIDR, as the second entry',
        ['peerCIDRs={192.168.0.0/16,10.100.0.0/16}'],
        'peerCIDRs[1]: 10.100.0.0/16 overlaps serviceCIDR 10.96.0.0/12',
      ],
      [
        'with host bits set',
        ['peerCIDRs={10.111.255.1/32}'],
        'peerCIDRs[0]: 10.111.255.1/32 overlaps serviceCIDR 10.96.0.0/12',
      ],
      [
        'in IPv6',
        ['podCIDR=fd00:10::/56', 'peerCIDRs={fd00:10:0:ff::/64}'],
        'peerCIDRs[0]: fd00:10:0:ff::/64 overlaps podCIDR fd00:10::/56',
      ],
      [
        'in IPv6, everything',
        ['serviceCIDR=fd00:96::/108', 'peerCIDRs={::/0}'],
        'peerCIDRs[0]: ::/0 overlaps serviceCIDR fd00:96::/108',
      ],
    ];
    it.each(refused)('refuses a peer CIDR %s, naming both ranges', (_what, sets, message) => {
      const res = render(renderer, REFERENCE_CONFIG, { sets });
      expect(res.ok, `render should fail for ${sets.join(' ')}`).toBe(false);
      expect(res.stderr).toContain(message);
    });

    it('accepts adjacent ranges and other families', () => {
      for (const sets of [
        ['peerCIDRs={10.9.255.0/24,10.11.0.0/16,10.112.0.0/12,10.95.255.255/32}'],
        ['peerCIDRs={fd00:10::/64}'], // IPv6 next to IPv4 cluster ranges
        ['podCIDR=fd00:10::/56', 'peerCIDRs={fd00:10:0:100::/56,fd00:f::/32}'],
      ]) {
        const res = render(renderer, REFERENCE_CONFIG, { sets });
        expect(res.ok, `${sets.join(' ')}: ${res.stderr}`).toBe(true);
      }
    });

    it('refuses them when the schema is skipped too', () => {
      const dir = mkdtempSync(join(tmpdir(), 'ikegw-chart-noschema-'));
      dirs.push(dir);
      cpSync(chartDir, dir, { recursive: true });
      rmSync(join(dir, 'values.schema.json'));
      const res = render(renderer, REFERENCE_CONFIG, { chart: dir, sets: ['peerCIDRs={10.96.0.0/16}'] });
      expect(res.ok).toBe(false);
      expect(res.stderr).toContain('peerCIDRs[0]: 10.96.0.0/16 overlaps serviceCIDR 10.96.0.0/12');
    });
  });

  it('has a values.yaml with the reference defaults unchanged', () => {
    const v = parseYaml(readFileSync(join(chartDir, 'values.yaml'), 'utf8')) as Record<string, unknown>;
    expect(v.podCIDR).toBe('10.10.0.0/16');
    expect(v.serviceCIDR).toBe('10.96.0.0/12');
    expect(v.peerCIDRs).toEqual([]);
    expect(v.mtu).toBe(1300);
    expect(v.ipsec).toMatchObject({ psk: '', peer: '' });
    expect(typeof v.image).toBe('string');
  });
});
