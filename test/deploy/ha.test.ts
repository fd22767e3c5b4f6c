// High availability as deployed (issue 10): the chart rendered with ha.enabled, its two frontend
// replicas run from the image on two simulated nodes (plus a third node with a workload pod and the
// operator), a cloud LoadBalancer with externalTrafficPolicy Local in front (test/deploy/cluster.ts:
// UDP 500/4500 of the VIP go only to the node whose frontend pod is READY), the fake API server
// serving the chart's Lease with real semantics, strongSwan 5.9.8 on-prem behind a NAT at its
// defaults except DPD 10 s.
//
// Each replica's role is read from the daemon (GET /ha on the metrics port) every 100 ms during the
// disruptive tests; at no sample may both be active.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { FakeKubeApiServer, type KubeObj, SimulatedCiliumAgent } from '../fakes/kube-apiserver.js';
import { waitFor } from '../fakes/wait.js';
import { detectRenderer, ensureRenderer, type K8sObject, render, repoRoot } from '../helm/render.js';
import { type Charon, createLab, LAB_PSK, type Lab } from '../interop/lab.js';
import { type ClusterNode, type NodeDef, type PodRef, SimCluster } from './cluster.js';
import { deploySkipReason, ensureImage } from './image.js';
import { find, podman, podTemplate } from './kubelet.js';

const renderer = detectRenderer();
// The daemon's side of HA (the election runner in the daemon, /ha, the routes sidecar gating).
// Without it only the infrastructure test runs: the chart's objects with the daemon's `ha:` section
// and the sidecar's IKEGW_HA_STATUS_URL taken out, one replica at a time, the Lease holder set by
// the test.
const haDaemon = existsSync(join(repoRoot, 'src/ha/runner.ts')) && process.env.IKEGW_HA_INFRA !== '1';
const noHaReason = 'the daemon has no HA yet (src/ha/runner.ts missing)';
const skipReason =
  deploySkipReason() ?? (renderer.kind === 'none' ? `no chart renderer: ${renderer.reason}` : undefined);
if (skipReason) console.warn(`test/deploy/ha.test.ts skipped: ${skipReason}`);
else if (!haDaemon) console.warn(`test/deploy/ha.test.ts: HA tests skipped: ${noHaReason}`);

const RELEASE = 'vpn';
const NAMESPACE = 'vpn';
const VIP = '198.51.100.2';
const PEER_CIDR = '192.168.100.0/24';
const LEASE_DURATION_S = 15;
const RENEW_DEADLINE_S = 10;
const NODES: NodeDef[] = [
  { name: 'node-a', ip: '172.31.1.2', routerIp: '172.31.1.1', podNet: '10.10.2.0/24', gateway: '10.10.2.1' },
  { name: 'node-b', ip: '172.31.2.2', routerIp: '172.31.2.1', podNet: '10.10.3.0/24', gateway: '10.10.3.1' },
  { name: 'node-w', ip: '172.31.3.2', routerIp: '172.31.3.1', podNet: '10.10.4.0/24', gateway: '10.10.4.1' },
];
const WORKLOAD_IP = '10.10.4.6';
const OPERATOR_IP = '10.10.4.7';

function saToken(namespace: string, serviceAccount: string): string {
  return `sa-token.${namespace}.${serviceAccount}.${process.pid}`;
}

function values(image: string, peer: string): string {
  return `podCIDR: "10.10.0.0/16"
serviceCIDR: "10.96.0.0/12"
peerCIDRs:
  - ${PEER_CIDR}
mtu: 1300
ipsec:
  psk: "${LAB_PSK}"
  peer: "${peer}"
image: "${image}"
ha:
  enabled: true
`;
}

/** strongSwan on-prem: defaults, DPD 10 s; the cluster side initiates (start_action start). */
function onpremSwanctl(clusterAddr: string): string {
  return `connections {
  cluster {
    remote_addrs = ${clusterAddr}
    dpd_delay = 10s
    local { auth = psk }
    remote { auth = psk }
    children {
      cluster {
        local_ts = ${PEER_CIDR}
        remote_ts = 10.10.0.0/16,10.96.0.0/12
        start_action = trap
      }
    }
  }
}
secrets {
  ike-cluster {
    secret = "${LAB_PSK}"
  }
}
`;
}

type Role = 'active' | 'standby' | 'down';

/** The chart's objects as a daemon without HA can run them (infrastructure test only). */
function withoutDaemonHa(objects: K8sObject[]): K8sObject[] {
  return objects.map((o) => {
    if (o.kind === 'Secret' && (o.data as Record<string, string> | undefined)?.['config.yaml']) {
      const data = o.data as Record<string, string>;
      const cfg = parseYaml(Buffer.from(data['config.yaml']!, 'base64').toString('utf8')) as Record<
        string,
        unknown
      >;
      delete cfg.ha;
      return { ...o, data: { ...data, 'config.yaml': Buffer.from(stringifyYaml(cfg)).toString('base64') } };
    }
    if (o.kind === 'StatefulSet') {
      const copy = structuredClone(o);
      for (const c of podTemplate(copy).spec.containers)
        c.env = c.env?.filter((e) => e.name !== 'IKEGW_HA_STATUS_URL');
      return copy;
    }
    return o;
  });
}

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}

describe.skipIf(skipReason !== undefined)('HA: two frontend replicas on two nodes behind the LB', () => {
  let lab: Lab;
  let charon: Charon;
  let api: FakeKubeApiServer;
  let cluster: SimCluster;
  let dir: string;
  let objects: K8sObject[];
  let image: string;
  let workload: PodRef;
  const replicas = new Map<string, PodRef>();
  const agents: SimulatedCiliumAgent[] = [];
  let stsName: string;
  let metricsPort: number;
  let ipSeq = 5;
  const events: string[] = [];
  const log = (l: string) => events.push(`${new Date().toISOString().slice(11, 23)} ${l}`);

  function replicaOn(index: number): { node: string; name: string } {
    return { node: NODES[index]!.name, name: `${stsName}-${index}` };
  }

  /** What the API server and Cilium do when a frontend pod (re)appears with an IP. */
  function announcePod(p: PodRef): void {
    if (api.get('pods', NAMESPACE, p.name)) api.delete('pods', NAMESPACE, p.name);
    api.create('pods', {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: p.name, namespace: NAMESPACE, uid: p.sb.uid, labels: {} },
      spec: { nodeName: p.node.def.name },
      status: { phase: 'Running', podIP: p.sb.ip, podIPs: [{ ip: p.sb.ip }], hostIP: p.node.def.ip },
    } as KubeObj);
    p.node.cilium.addEndpoint({ ipv4: p.sb.ip, podName: p.name, namespace: NAMESPACE });
  }

  /** The StatefulSet controller: (re)creates replica `index` on its node with a new pod IP. */
  async function startReplica(index: number): Promise<PodRef> {
    const { node, name } = replicaOn(index);
    const def = NODES[index]!;
    const ip = def.podNet.replace(/0\/24$/, String(ipSeq++));
    const n = cluster.node(node);
    const sb = await n.sim.createSandbox(name, NAMESPACE, ip);
    const ref: PodRef = { name, node: n, sb, pod: undefined as never };
    announcePod(ref);
    ref.pod = await n.sim.runPod(sb, podTemplate(find(objects, 'StatefulSet')).spec, objects);
    replicas.set(name, ref);
    cluster.addBackend(ref);
    return ref;
  }

  async function role(p: PodRef): Promise<Role> {
    const r = await p.node.get(`http://${p.sb.ip}:${metricsPort}/ha`);
    if (r.status === undefined || r.body === undefined) return 'down';
    try {
      const j = JSON.parse(r.body) as { role?: string };
      return j.role === 'active' ? 'active' : j.role === 'standby' ? 'standby' : 'down';
    } catch {
      return 'down';
    }
  }

  async function roles(): Promise<Record<string, Role>> {
    const out: Record<string, Role> = {};
    await Promise.all([...replicas.values()].map(async (p) => (out[p.name] = await role(p))));
    return out;
  }

  async function activeReplica(timeoutMs = 60_000): Promise<PodRef> {
    const r = await waitFor(roles, {
      timeoutMs,
      intervalMs: 200,
      what: 'one active replica and one standby',
      ok: (x) => Object.values(x).filter((v) => v === 'active').length === 1,
    });
    const name = Object.entries(r).find(([, v]) => v === 'active')![0];
    return replicas.get(name)!;
  }

  /** Both replicas' roles every 100 ms until stopped; fails the test on a sample with two active. */
  function sampler() {
    const samples: { t: number; r: Record<string, Role> }[] = [];
    let on = true;
    const done = (async () => {
      while (on) {
        const t = Date.now();
        samples.push({ t, r: await roles() });
        await new Promise((res) => setTimeout(res, Math.max(0, 100 - (Date.now() - t))));
      }
    })();
    return {
      samples,
      async stop() {
        on = false;
        await done;
        const both = samples.filter((s) => Object.values(s.r).filter((v) => v === 'active').length > 1);
        expect(both, 'samples with two active replicas').toEqual([]);
        // ... nor two ready ones, i.e. in the LoadBalancer.
        expect(cluster.maxReady).toBeLessThanOrEqual(1);
        return samples;
      },
      /** First sample time at which `pod` had role `r`. */
      first(pod: string, r: Role, after = 0): number | undefined {
        return samples.find((s) => s.t >= after && s.r[pod] === r)?.t;
      },
    };
  }

  const ping = (timeoutMs: number) =>
    waitFor(() => lab.ping(workload.sb.netns, lab.addr.onhost, { count: 1, waitS: 1 }), {
      timeoutMs,
      intervalMs: 50,
      ok: (n) => n > 0,
      what: `ping workload -> on-prem host`,
    });

  /**
   * With the tunnel up: the active replica and the standby, a role sampler started, and the time
   * the active's ikegw container got SIGKILL.
   */
  async function killActive() {
    await ping(60_000);
    const active = await activeReplica();
    const standby = [...replicas.values()].find((p) => p !== active)!;
    const smp = sampler();
    const c = active.pod.container('ikegw');
    const t0 = Date.now();
    await podman(['kill', '-s', 'KILL', c.id]);
    return { active, standby, smp, c, t0 };
  }

  /** Pings every 100 ms for `ms`, returns the gaps (s) between replies longer than 0.5 s. */
  async function pingGaps(from: string, to: string, run: Promise<unknown>): Promise<number[]> {
    const gaps: number[] = [];
    let last = Date.now();
    let finished = false;
    void run.finally(() => {
      finished = true;
    });
    while (!finished) {
      const n = await lab.ping(from, to, { count: 1, waitS: 0.4 });
      const now = Date.now();
      if (n > 0) {
        if (now - last > 500) gaps.push((now - last) / 1000);
        last = now;
      }
    }
    // ... and until the traffic is back after the last step.
    await ping(60_000);
    const now = Date.now();
    if (now - last > 500) gaps.push((now - last) / 1000);
    return gaps;
  }

  async function nodeRoutes(n: ClusterNode): Promise<{ dst: string; gateway?: string }[]> {
    const r = await n.exec('ip', ['-j', 'route', 'show', 'proto', '211']);
    return JSON.parse(r.stdout || '[]');
  }

  async function transitions(p: PodRef): Promise<string> {
    const r = await p.node.get(`http://${p.sb.ip}:${metricsPort}/metrics`);
    return (r.body ?? '')
      .split('\n')
      .filter((l) => l.startsWith('ikegw_ha_transitions_total'))
      .join('\n');
  }

  beforeAll(async () => {
    ensureRenderer(renderer, 240_000);
    const img = ensureImage();
    image = img.tag;
    console.log(`ha: image ${image} (${img.built ? `built in ${img.seconds.toFixed(0)} s` : 'reused'})`);
    dir = mkdtempSync(join(tmpdir(), 'ikegw-ha-'));
    lab = await createLab({ nat: true, natSide: 'onprem', endHosts: true });
    charon = await lab.startCharon('onprem', { swanctlConf: onpremSwanctl(VIP) });

    const r = render(renderer, values(image, lab.addr.onpremPublic), {
      release: RELEASE,
      namespace: NAMESPACE,
    });
    if (!r.ok) throw new Error(`render failed: ${r.stderr}`);
    objects = r.docs.map((d) => d.obj);
    if (!haDaemon) objects = withoutDaemonHa(objects);
    const sts = find(objects, 'StatefulSet');
    stsName = sts.metadata.name;
    const daemon = podTemplate(sts).spec.containers.find((c) => c.name === 'ikegw')!;
    metricsPort = daemon.ports!.find((p) => p.name === 'metrics')!.containerPort;
    const operatorSa = podTemplate(find(objects, 'Deployment')).spec.serviceAccountName ?? 'default';

    api = await FakeKubeApiServer.start({
      token: saToken(NAMESPACE, operatorSa),
      socketPath: join(dir, 'apiserver.sock'),
      certNames: ['10.96.0.1', 'kubernetes.default.svc', 'localhost'],
    });
    api.addToken('frontend', saToken(NAMESPACE, podTemplate(sts).spec.serviceAccountName ?? 'default'));
    // What `helm install` creates that the pods use: the Lease.
    const lease = structuredClone(find(objects, 'Lease')) as unknown as KubeObj;
    lease.metadata.namespace = NAMESPACE;
    api.create('leases', lease);
    api.create('configmaps', {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'ip-masq-agent', namespace: 'kube-system' },
      data: { config: 'nonMasqueradeCIDRs:\n  - 10.10.0.0/16\nmasqLinkLocal: false\n' },
    } as KubeObj);
    for (const i of [0, 1]) {
      const a = new SimulatedCiliumAgent(api, {
        namespace: NAMESPACE,
        podName: `${stsName}-${i}`,
        nodeIp: NODES[i]!.ip,
      });
      a.start();
      agents.push(a);
    }

    cluster = new SimCluster({
      lab,
      api,
      dir,
      nodes: NODES,
      vip: VIP,
      peerCidr: PEER_CIDR,
      tokenFor: saToken,
      log,
    });
    await cluster.setup();
    workload = await cluster.runPod(
      'node-w',
      'workload',
      'default',
      WORKLOAD_IP,
      { containers: [] },
      objects,
    );
    const deployment = find(objects, 'Deployment');
    await cluster.runPod(
      'node-w',
      `${deployment.metadata.name}-5d4f8b7c9-x2x7q`,
      NAMESPACE,
      OPERATOR_IP,
      podTemplate(deployment).spec,
      objects,
    );
    // The kubelet's probe period as rendered.
    const period = (daemon.readinessProbe as { periodSeconds?: number } | undefined)?.periodSeconds ?? 10;
    cluster.start(period * 1000);
    if (haDaemon) {
      await startReplica(0);
      await startReplica(1);
    }
  }, 900_000);

  /** What a failed test needs to be understood: pod logs, routes, LB and node rules, SAs. */
  async function dump(): Promise<string> {
    const out: string[] = [`--- events\n${events.slice(-60).join('\n')}`];
    const sh = async (label: string, ns: string, cmd: string, args: string[]) => {
      const r = await lab.exec(ns, cmd, args, { check: false });
      out.push(`--- ${label}: ${cmd} ${args.join(' ')}\n${(r.stdout + r.stderr).trim()}`);
    };
    await sh('router', 'cluster', 'ip', ['route']);
    await sh('router', 'cluster', 'nft', ['list', 'table', 'ip', 'cloud']);
    await sh('router', 'cluster', 'conntrack', ['-L', '-p', 'udp']);
    for (const n of cluster?.nodes.values() ?? []) {
      await sh(n.def.name, n.ns, 'ip', ['route']);
      await sh(n.def.name, n.ns, 'nft', ['list', 'chain', 'ip', 'k8s', 'local']);
    }
    for (const p of replicas.values()) {
      for (const c of p.pod.containers)
        out.push(`--- ${p.name}/${c.name}\n${(await p.pod.logs(c.name)).slice(-4000)}`);
      await sh(p.name, p.sb.netns, 'ip', ['route']);
      await sh(p.name, p.sb.netns, 'ss', ['-lnu']);
    }
    out.push(`--- charon\n${charon.log().slice(-4000)}`);
    return out.join('\n');
  }

  beforeEach((ctx) => {
    ctx.onTestFailed(async () => {
      console.log(`ha: diagnostics\n${await dump()}`);
    });
  });

  afterAll(async () => {
    if (skipReason) return;
    if (events.length > 0) console.log(`ha: events\n${events.slice(-80).join('\n')}`);
    await cluster?.stop();
    for (const a of agents) a.stop();
    await lab?.teardown();
    await api?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 120_000);

  /** The LB sends the VIP's IKE traffic to `p`'s node only, and that node to `p` only. */
  async function lbPointsTo(p: PodRef): Promise<void> {
    await waitFor(() => lab.exec('cluster', 'nft', ['list', 'chain', 'ip', 'cloud', 'lb']), {
      what: `LB -> ${p.node.def.name}`,
      ok: (r) =>
        r.stdout.includes(`dnat to ${p.node.def.ip}`) && (r.stdout.match(/dnat/g) ?? []).length === 1,
    });
    for (const n of cluster.nodes.values()) {
      const local = await n.exec('nft', ['list', 'chain', 'ip', 'k8s', 'local']);
      if (n === p.node) expect(local.stdout).toContain(`dnat to ${p.sb.ip}`);
      else expect(local.stdout).not.toContain('dnat');
    }
  }

  /** The holder a daemon's election would write (the infrastructure test plays the election). */
  function setHolder(holder: string): void {
    api.update('leases', NAMESPACE, `${RELEASE}-leader`, (o) => {
      const now = new Date().toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
      o.spec = {
        holderIdentity: holder,
        leaseDurationSeconds: LEASE_DURATION_S,
        acquireTime: now,
        renewTime: now,
      };
    });
  }

  async function deleteReplica(p: PodRef): Promise<Record<string, number>> {
    const codes = await cluster.deletePod(p);
    replicas.delete(p.name);
    if (api.get('pods', NAMESPACE, p.name)) api.delete('pods', NAMESPACE, p.name);
    return codes;
  }

  it.skipIf(haDaemon)(
    'infrastructure: the LB sends the peer to the node with the ready pod; the operator follows the Lease',
    async () => {
      for (const index of [0, 1]) {
        const p = await startReplica(index);
        setHolder(p.name);
        await waitFor(() => cluster.ready.get(p.name), { timeoutMs: 60_000, what: `${p.name} ready` });
        const t0 = Date.now();
        await ping(60_000);
        console.log(
          `ha infra: ${p.name} on ${p.node.def.name}: traffic on-prem <-> workload in ${((Date.now() - t0) / 1000).toFixed(1)} s`,
        );
        // Only this node gets the VIP's traffic, and on it only this pod.
        await lbPointsTo(p);
        expect(JSON.stringify(api.get('ciliumendpoints', NAMESPACE, p.name)?.status)).toContain(PEER_CIDR);
        const sas = await waitFor(() => charon.listSas(), {
          ok: (x) => x.length === 1,
          timeoutMs: 30_000,
          what: 'one SA',
        });
        expect(sas[0]!.remoteHost).toBe(VIP);
        const codes = await deleteReplica(p);
        expect(codes.ikegw).toBe(0);
      }
    },
    400_000,
  );

  it.skipIf(!haDaemon)(
    'one active, one standby: only the active is ready, in the LB, routed to and holds the tunnel',
    async () => {
      const active = await activeReplica();
      const standby = [...replicas.values()].find((p) => p !== active)!;
      const s = await ping(60_000);
      console.log(`ha: first ping through ${active.name} after ${s}`);
      const lease = api.get('leases', NAMESPACE, `${RELEASE}-leader`)!;
      expect((lease.spec as { holderIdentity: string }).holderIdentity).toBe(active.name);
      expect((lease.spec as { renewTime: string }).renewTime).toMatch(
        /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/,
      );
      await waitFor(
        () => cluster.ready.get(standby.name) === false && cluster.ready.get(active.name) === true,
        {
          what: 'kubelet: active ready, standby not',
        },
      );
      await lbPointsTo(active);
      const sr = await standby.node.get(`http://${standby.sb.ip}:${metricsPort}/readyz`);
      expect(sr.status).toBe(503);
      expect(sr.body).toMatch(/standby/);
      // The standby binds nothing the peer could reach, has no routes on its node, no XFRM.
      const udp = await lab.exec(standby.sb.netns, 'ss', ['-Hlnu']);
      expect(udp.stdout).not.toMatch(/:(500|4500)\b/);
      expect(await nodeRoutes(standby.node)).toEqual([]);
      expect((await lab.exec(standby.sb.netns, 'ip', ['xfrm', 'state'])).stdout.trim()).toBe('');
      expect(await nodeRoutes(active.node)).toEqual([
        expect.objectContaining({ dst: PEER_CIDR, gateway: active.sb.ip }),
      ]);
      // The operator follows the Lease: only the active's CiliumEndpoint carries the on-prem CIDR.
      await waitFor(() => JSON.stringify(api.get('ciliumendpoints', NAMESPACE, active.name)?.status), {
        what: "active's CEP has the CIDR",
        ok: (s2) => String(s2).includes(PEER_CIDR),
      });
      expect(JSON.stringify(api.get('ciliumendpoints', NAMESPACE, standby.name)?.status)).not.toContain(
        PEER_CIDR,
      );
      const sas = await charon.listSas();
      expect(sas).toHaveLength(1);
      expect(sas[0]!.remoteHost).toBe(VIP);
    },
    180_000,
  );

  it.skipIf(!haDaemon)(
    `SIGKILL of the active: traffic is back within lease duration + 5 s`,
    async () => {
      const runs = Number(process.env.IKEGW_HA_FAILOVER_RUNS ?? '1');
      const times: number[] = [];
      for (let i = 0; i < runs; i++) {
        const { active, standby, smp, c, t0 } = await killActive();
        log(`test: SIGKILL ${active.name}`);
        await ping((LEASE_DURATION_S + 30) * 1000);
        const s = (Date.now() - t0) / 1000;
        times.push(s);
        const activeAt = smp.first(standby.name, 'active', t0);
        console.log(
          `ha: failover run ${i + 1}: SIGKILL -> first ping through ${standby.name} ${s.toFixed(1)} s` +
            (activeAt ? ` (it was active after ${((activeAt - t0) / 1000).toFixed(1)} s)` : ''),
        );
        // The kubelet restarts the container; it comes back as the standby.
        await podman(['start', c.id]);
        await waitFor(() => role(active), {
          timeoutMs: 60_000,
          what: 'restarted replica standby',
          ok: (r) => r === 'standby',
        });
        await smp.stop();
        expect(s).toBeLessThan(LEASE_DURATION_S + 5);
      }
      if (runs > 1)
        console.log(
          `ha: failover over ${runs} runs: p50 ${quantile(times, 0.5).toFixed(1)} s, p90 ${quantile(times, 0.9).toFixed(1)} s`,
        );
      // strongSwan keeps one IKE_SA: the new active's INITIAL_CONTACT replaced the old one.
      await waitFor(async () => (await charon.listSas()).length, {
        timeoutMs: 30_000,
        ok: (n) => n === 1,
        what: 'one IKE_SA',
      });
    },
    600_000,
  );

  it.skipIf(!haDaemon)(
    'SIGKILL of the active, restarted at once by the kubelet: it takes its own Lease back',
    async () => {
      const runs = Number(process.env.IKEGW_HA_RESTART_RUNS ?? '1');
      for (let i = 0; i < runs; i++) {
        const { active, standby, smp, c, t0 } = await killActive();
        // restartPolicy Always: the first restart of a crashed container is immediate.
        await podman(['start', c.id]);
        log(`test: SIGKILL ${active.name}, container restarted`);
        await ping((LEASE_DURATION_S + 30) * 1000);
        const s = (Date.now() - t0) / 1000;
        // Roles read now: the sampler's last sample may predate the take-over the ping just
        // went through (reading both replicas' /ha takes up to a few hundred ms).
        const now = await roles();
        const samples = await smp.stop();
        console.log(
          `ha: SIGKILL + immediate container restart${runs > 1 ? ` (run ${i + 1})` : ''} -> first ping ${s.toFixed(1)} s; active now: ${Object.entries(
            now,
          )
            .filter(([, r]) => r === 'active')
            .map(([n]) => n)
            .join(', ')}`,
        );
        // The Lease still names it: it does not wait for the Lease to expire, and the other
        // replica never acts meanwhile.
        expect(now[active.name]).toBe('active');
        expect(samples.filter((x) => x.r[standby.name] === 'active')).toEqual([]);
        expect(s).toBeLessThan(LEASE_DURATION_S);
      }
    },
    240_000 * Number(process.env.IKEGW_HA_RESTART_RUNS ?? '1'),
  );

  it.skipIf(!haDaemon)(
    'the active loses the API server: it steps down by itself before the standby acquires; never two active',
    async () => {
      await ping(60_000);
      const active = await activeReplica();
      const standby = [...replicas.values()].find((p) => p !== active)!;
      const smp = sampler();
      const t0 = Date.now();
      // The active's node loses its network to the API server: requests hang unanswered.
      const heal = await api.cut(active.node.def.name, 'hang');
      log(`test: API cut for ${active.node.def.name}`);
      await waitFor(() => smp.first(standby.name, 'active', t0), {
        timeoutMs: 60_000,
        what: 'standby takes over',
      });
      await ping(60_000);
      await heal();
      await waitFor(() => role(active), {
        timeoutMs: 30_000,
        what: 'former active standby',
        ok: (r) => r === 'standby',
      });
      const samples = await smp.stop();
      const down = smp.first(active.name, 'standby', t0)!;
      const up = smp.first(standby.name, 'active', t0)!;
      console.log(
        `ha: API cut: active stepped down after ${((down - t0) / 1000).toFixed(1)} s, the standby took over after ${((up - t0) / 1000).toFixed(1)} s (${samples.length} samples)`,
      );
      expect(down).toBeLessThan(up);
    },
    240_000,
  );

  it.skipIf(!haDaemon)(
    'rollout restart, one replica at a time (standby first): at most one short interruption',
    async () => {
      await ping(60_000);
      const active = await activeReplica();
      const standby = [...replicas.values()].find((p) => p !== active)!;
      const smp = sampler();
      const t0 = Date.now();
      const steps = (async () => {
        for (const p of [standby, active]) {
          const index = Number(p.name.split('-').pop());
          log(`test: delete pod ${p.name}`);
          const codes = await cluster.deletePod(p);
          expect(codes.ikegw).toBe(0);
          replicas.delete(p.name);
          const fresh = await startReplica(index);
          await waitFor(() => role(fresh), {
            timeoutMs: 60_000,
            what: `${fresh.name} up again`,
            ok: (r) => r !== 'down',
          });
        }
      })();
      const gaps = await pingGaps(workload.sb.netns, lab.addr.onhost, steps);
      await steps;
      await smp.stop();
      console.log(
        `ha: rollout restart in ${((Date.now() - t0) / 1000).toFixed(1)} s: interruptions ${gaps.map((g) => `${g.toFixed(1)} s`).join(', ') || 'none'}`,
      );
      expect(gaps.length).toBeLessThanOrEqual(1);
      expect(gaps[0] ?? 0).toBeLessThan(LEASE_DURATION_S);
    },
    400_000,
  );

  it.skipIf(!haDaemon)(
    '30% of API requests fail: no transitions while the active can renew within its deadline',
    async () => {
      await ping(60_000);
      const active = await activeReplica();
      const before = await Promise.all([...replicas.values()].map(transitions));
      const smp = sampler();
      let seed = 20261207;
      const random = () => {
        seed = (seed + 0x6d2b79f5) | 0;
        let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
        t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
      };
      const frontendNodes = new Set([...replicas.values()].map((p) => p.node.def.name));
      const from = api.requests.length;
      api.setFailureRatio(0.3, { match: (r) => frontendNodes.has(r.client), random });
      const t0 = Date.now();
      await waitFor(() => Date.now() - t0 >= 4 * LEASE_DURATION_S * 1000, {
        timeoutMs: 120_000,
        intervalMs: 500,
      });
      api.setFailureRatio(0);
      const samples = await smp.stop();
      const reqs = api.requests.slice(from).filter((r) => r.client === active.node.def.name);
      const failed = reqs.filter((r) => r.fault).length;
      console.log(
        `ha: flapping API: ${reqs.length} requests of the active, ${failed} failed (${((100 * failed) / Math.max(1, reqs.length)).toFixed(0)}%), ${samples.length} samples`,
      );
      expect(failed).toBeGreaterThan(0);
      // Could the active renew within its deadline all the time? The longest stretch without a
      // successful Lease write of the active (its renewals) decides whether a step-down was allowed.
      const renewals = reqs
        .filter(
          (r) =>
            (r.method === 'PUT' || r.method === 'PATCH') && r.path.includes('/leases/') && r.status === 200,
        )
        .map((r) => r.at);
      let longest = 0;
      for (let i = 1; i < renewals.length; i++) longest = Math.max(longest, renewals[i]! - renewals[i - 1]!);
      console.log(
        `ha: flapping API: ${renewals.length} successful renewals, longest gap ${(longest / 1000).toFixed(1)} s (renew deadline ${RENEW_DEADLINE_S} s)`,
      );
      expect(renewals.length).toBeGreaterThan(0);
      if (longest < (RENEW_DEADLINE_S - 1) * 1000) {
        for (const s of samples) expect(s.r[active.name]).toBe('active');
        expect(await Promise.all([...replicas.values()].map(transitions))).toEqual(before);
      }
      await ping(10_000);
    },
    240_000,
  );
});
