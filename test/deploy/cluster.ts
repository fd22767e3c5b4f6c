// Several simulated Cilium nodes behind a cloud LoadBalancer, for the HA tests (test/deploy/ha.test.ts).
//
//                              ┌─ node-a (172.31.1.2; pods 10.10.2.0/24): frontend-0
//  on-prem ── NAT ── wan0 ─ router ─ node-b (172.31.2.2; pods 10.10.3.0/24): frontend-1
//   strongSwan       198.51.100.2 └─ node-w (172.31.3.2; pods 10.10.4.0/24): workload, operator
//                    (the LB VIP)
//
// The lab's `cluster` namespace is the cloud network: a router with the LoadBalancer's address on
// its WAN side, a point-to-point link to each node (native routing: each node's pod range is routed
// to it), and a NAT gateway that leaves with the VIP (so a frontend that initiates IKE reaches
// on-prem from the address on-prem knows). The LoadBalancer Service with externalTrafficPolicy
// Local is simulated as a cloud LB does it: UDP 500/4500 to the VIP go to the nodes whose health
// check passes — a node passes only while it has a READY local endpoint (kube-proxy's
// healthCheckNodePort) — and on that node to the local ready pod (kube-proxy's/Cilium's local DNAT).
// The control loop plays kubelet (readiness probes as rendered: every periodSeconds via the node),
// the endpoints controller, kube-proxy and the LB's health checks; a changed backend flushes the
// UDP conntrack entries of the VIP (as kube-proxy and Cilium do for UDP services).
//
// The routing of the on-prem CIDRs to the frontend: Cilium's ipcache puts the CIDRs of the
// CiliumEndpoint that carries them (the operator's patch) on the node of that endpoint: here the
// router routes PEER_CIDR to the node of the pod whose CEP claims it, read from the fake API server.
// On that node, the routes sidecar's route leads into the pod.
//
// One simplification: the LB and the NAT gateway share one address (the VIP). In a cloud they
// usually differ; the on-prem side then sees the active's IKE from the NAT gateway's address.
import { existsSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { FakeCiliumAgent } from '../fakes/cilium-agent.js';
import type { FakeKubeApiServer } from '../fakes/kube-apiserver.js';
import { waitFor } from '../fakes/wait.js';
import type { K8sObject } from '../helm/render.js';
import { type Lab, run } from '../interop/lab.js';
import { type PodSandbox, type PodSpec, type RunningPod, SimNode } from './kubelet.js';

export const API_IP = '10.96.0.1';

export interface NodeDef {
  name: string;
  /** The node's address on its link to the router (the router has .1 of the /30-ish /24). */
  ip: string;
  routerIp: string;
  podNet: string;
  /** cilium_host: the pods' gateway. */
  gateway: string;
}

export class ClusterNode {
  sim!: SimNode;
  ns!: string;
  cilium!: FakeCiliumAgent;
  probeSock = '';
  apiSock = '';

  constructor(
    readonly def: NodeDef,
    private readonly lab: Lab,
  ) {}

  /** GET from the node, as the kubelet's prober does: {status, body} or {error}. */
  get(url: string): Promise<{ status?: number; body?: string; error?: string }> {
    return new Promise((resolve) => {
      const req = request(
        { socketPath: this.probeSock, path: `/probe?url=${encodeURIComponent(url)}` },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (d) => {
            body += d;
          });
          res.on('end', () => {
            try {
              resolve(JSON.parse(body));
            } catch {
              resolve({ error: `bad prober answer ${body}` });
            }
          });
        },
      );
      req.on('error', (e) => resolve({ error: String(e) }));
      req.end();
    });
  }

  exec(cmd: string, args: readonly string[], opts: { input?: string; check?: boolean } = {}) {
    return this.lab.exec(this.ns, cmd, args, opts);
  }
}

export interface PodRef {
  name: string;
  node: ClusterNode;
  sb: PodSandbox;
  pod: RunningPod;
}

/** The rendered probe of a container (port by name), as a URL from the node. */
export function probeUrl(p: PodRef, container: string, kind: 'readinessProbe' | 'livenessProbe'): string {
  const c = p.pod.container(container).spec;
  const get = c[kind]?.httpGet;
  if (!get) throw new Error(`${container} has no ${kind}`);
  const port =
    typeof get.port === 'number' ? get.port : c.ports?.find((x) => x.name === get.port)?.containerPort;
  return `http://${p.sb.ip}:${port}${get.path}`;
}

export interface ClusterOptions {
  lab: Lab;
  api: FakeKubeApiServer;
  dir: string;
  nodes: NodeDef[];
  /** The LB address: the router's WAN address. */
  vip: string;
  peerCidr: string;
  tokenFor(namespace: string, serviceAccount: string): string;
  log?: (line: string) => void;
}

export class SimCluster {
  readonly nodes = new Map<string, ClusterNode>();
  /** Pods whose readiness decides the LoadBalancer (the frontend replicas). */
  readonly backends = new Map<string, PodRef>();
  /** Readiness as the kubelet last probed it. */
  readonly ready = new Map<string, boolean>();
  /** The most frontend pods that were ready (in the LB) at once. */
  maxReady = 0;
  /** Every readiness change: [ms since epoch, pod, ready]. */
  readonly readinessLog: [number, string, boolean][] = [];
  private loop: NodeJS.Timeout | undefined;
  private programmed = '';
  private ipcacheRoute = '';
  private ipcacheBusy: Promise<void> = Promise.resolve();
  private unsubscribe: (() => void) | undefined;
  private probing = false;

  constructor(readonly o: ClusterOptions) {}

  private log(line: string): void {
    this.o.log?.(line);
  }

  node(name: string): ClusterNode {
    const n = this.nodes.get(name);
    if (!n) throw new Error(`no node ${name}`);
    return n;
  }

  async setup(): Promise<void> {
    const { lab } = this.o;
    const router = lab.ns.cluster;
    for (const def of this.o.nodes) {
      const n = new ClusterNode(def, lab);
      n.ns = await lab.addNamespace(def.name);
      await lab.exec(n.ns, 'sysctl', [
        '-qw',
        'net.ipv4.ip_forward=1',
        'net.ipv4.conf.all.rp_filter=0',
        'net.ipv4.conf.default.rp_filter=0',
      ]);
      const rIf = `to-${def.name}`.slice(0, 15);
      await run('ip', [
        '-n',
        router,
        'link',
        'add',
        rIf,
        'type',
        'veth',
        'peer',
        'name',
        'up0',
        'netns',
        n.ns,
      ]);
      await run('ip', ['-n', router, 'link', 'set', rIf, 'up']);
      await run('ip', ['-n', n.ns, 'link', 'set', 'up0', 'up']);
      await run('ip', ['-n', router, 'addr', 'add', `${def.routerIp}/24`, 'dev', rIf]);
      await run('ip', ['-n', n.ns, 'addr', 'add', `${def.ip}/24`, 'dev', 'up0']);
      await run('ip', ['-n', n.ns, 'route', 'add', 'default', 'via', def.routerIp]);
      await run('ip', ['-n', router, 'route', 'add', def.podNet, 'via', def.ip]);
      n.cilium = await FakeCiliumAgent.start();
      n.apiSock = join(this.o.dir, `api-${def.name}.sock`);
      n.probeSock = join(this.o.dir, `probe-${def.name}.sock`);
      // This node's way to the API server: its own listener, so the API server can tell the
      // requests of this node's pods apart (and cut them off).
      await this.o.api.listen(def.name, { socketPath: n.apiSock });
      n.sim = new SimNode(lab, {
        nodeNs: n.ns,
        nodeName: def.name,
        gateway: def.gateway,
        dir: join(this.o.dir, def.name),
        label: lab.prefix,
        hostPaths: {
          '/proc/1/ns/net': `/run/netns/${n.ns}`,
          '/var/run/cilium': n.cilium.dir,
          '/dev/net/tun': '/dev/net/tun',
        },
        apiServer: { host: API_IP, port: 443, caPem: this.o.api.caPem },
        tokenFor: this.o.tokenFor,
      });
      await n.sim.init();
      await run('ip', ['-n', n.ns, 'addr', 'add', `${API_IP}/32`, 'dev', 'cilium_host']);
      // Pod egress is masqueraded to the node's address, except to pods and to the on-prem CIDRs
      // (ip-masq-agent's nonMasqueradeCIDRs, which the operator extends).
      await lab.exec(n.ns, 'nft', ['-f', '-'], {
        input: `table ip k8s {
  chain local { }
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    jump local
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "up0" ip saddr 10.10.0.0/16 ip daddr != { 10.10.0.0/16, ${this.o.peerCidr} } masquerade
  }
}
`,
      });
      lab.spawn(n.ns, process.execPath, [
        join(import.meta.dirname, 'node-services.mjs'),
        n.apiSock,
        API_IP,
        '443',
        n.probeSock,
      ]);
      await waitFor(() => existsSync(n.probeSock), {
        timeoutMs: 10_000,
        what: `node services on ${def.name}`,
      });
      this.nodes.set(def.name, n);
    }
    // The cloud side: the LB (DNAT of the VIP to the healthy nodes) and the NAT gateway.
    await lab.exec(router, 'nft', ['-f', '-'], {
      input: `table ip cloud {
  chain lb { }
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    iifname "wan0" ip daddr ${this.o.vip} udp dport { 500, 4500 } jump lb
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan0" ip saddr { 172.31.0.0/16, 10.10.0.0/16 } masquerade
  }
}
`,
    });
    await run('ip', ['-n', router, 'route', 'add', 'unreachable', this.o.peerCidr]);
    this.ipcacheRoute = 'unreachable';
    this.unsubscribe = this.o.api.onWrite((resource) => {
      if (resource === 'ciliumendpoints') this.syncIpcache();
    });
    this.syncIpcache();
  }

  /** Cilium's ipcache: the on-prem CIDR to the node of the endpoint whose CEP claims it. */
  syncIpcache(): void {
    this.ipcacheBusy = this.ipcacheBusy.then(async () => {
      const want = this.ipcacheTarget();
      if (want === this.ipcacheRoute) return;
      const router = this.o.lab.ns.cluster;
      const args =
        want === 'unreachable'
          ? ['-n', router, 'route', 'replace', 'unreachable', this.o.peerCidr]
          : ['-n', router, 'route', 'replace', this.o.peerCidr, 'via', want];
      await run('ip', args, { check: false });
      this.log(`ipcache: ${this.o.peerCidr} -> ${want}`);
      this.ipcacheRoute = want;
    });
  }

  private ipcacheTarget(): string {
    for (const ref of this.backends.values()) {
      const cep = this.o.api.get('ciliumendpoints', ref.sb.namespace, ref.name);
      if (JSON.stringify(cep?.status ?? {}).includes(`"${this.o.peerCidr}"`)) return ref.node.def.ip;
    }
    return 'unreachable';
  }

  /** Runs `spec` as pod `name` on `node` (a new sandbox with `ip`). */
  async runPod(
    node: string,
    name: string,
    namespace: string,
    ip: string,
    spec: PodSpec,
    objects: readonly K8sObject[],
  ): Promise<PodRef> {
    const n = this.node(node);
    const sb = await n.sim.createSandbox(name, namespace, ip);
    const pod = await n.sim.runPod(sb, spec, objects);
    return { name, node: n, sb, pod };
  }

  /** Adds a frontend replica to the LoadBalancer's candidates (its readiness decides). */
  addBackend(p: PodRef): void {
    this.backends.set(p.name, p);
    this.ready.set(p.name, false);
  }

  /** Deletes a pod as the kubelet does (SIGTERM, grace period) and removes its sandbox. */
  async deletePod(p: PodRef): Promise<Record<string, number>> {
    const codes = await p.pod.stop();
    if (this.backends.get(p.name) === p) {
      this.backends.delete(p.name);
      this.ready.delete(p.name);
      await this.program();
    }
    await p.node.sim.deleteSandbox(p.sb);
    return codes;
  }

  /** The control loop: readiness probes every `periodMs`, then LB/kube-proxy programming. */
  start(periodMs: number): void {
    const tick = async () => {
      if (this.probing) return;
      this.probing = true;
      try {
        await Promise.all(
          [...this.backends.values()].map(async (p) => {
            const r = await p.node.get(probeUrl(p, 'ikegw', 'readinessProbe'));
            const ok = r.status !== undefined && r.status >= 200 && r.status < 400;
            if (this.backends.get(p.name) !== p) return;
            if (this.ready.get(p.name) !== ok) {
              this.ready.set(p.name, ok);
              this.readinessLog.push([Date.now(), p.name, ok]);
              this.log(`kubelet: ${p.name} ${ok ? 'ready' : 'not ready'}`);
            }
          }),
        );
        await this.program();
      } finally {
        this.probing = false;
      }
    };
    this.loop = setInterval(() => void tick(), periodMs);
  }

  async stop(): Promise<void> {
    clearInterval(this.loop);
    this.unsubscribe?.();
    await this.ipcacheBusy;
    for (const n of this.nodes.values()) {
      await n.sim.removeAll();
      await n.cilium.stop();
    }
  }

  /** kube-proxy on each node (local DNAT to the ready local pod) and the LB (ready nodes only). */
  async program(): Promise<void> {
    const readyPods = [...this.backends.values()].filter((p) => this.ready.get(p.name));
    this.maxReady = Math.max(this.maxReady, readyPods.length);
    const key = readyPods.map((p) => `${p.node.def.name}=${p.sb.ip}`).join(',');
    if (key === this.programmed) return;
    this.programmed = key;
    for (const n of this.nodes.values()) {
      const local = readyPods.find((p) => p.node === n);
      const rule = local
        ? `add rule ip k8s local iifname "up0" ip daddr ${n.def.ip} udp dport { 500, 4500 } dnat to ${local.sb.ip}\n`
        : '';
      await n.exec('nft', ['-f', '-'], { input: `flush chain ip k8s local\n${rule}` });
      await n.exec('conntrack', ['-D', '-p', 'udp', '--orig-dst', n.def.ip], { check: false });
    }
    const nodes = [...new Set(readyPods.map((p) => p.node.def.ip))];
    let rule = '';
    if (nodes.length === 1) rule = `add rule ip cloud lb dnat to ${nodes[0]}\n`;
    else if (nodes.length > 1) {
      // Several healthy nodes: the LB spreads flows over them by hash (what split brain would get).
      const map = nodes.map((ip, i) => `${i} : ${ip}`).join(', ');
      rule = `add rule ip cloud lb dnat to jhash ip saddr . udp sport mod ${nodes.length} map { ${map} }\n`;
    }
    await this.o.lab.exec('cluster', 'nft', ['-f', '-'], { input: `flush chain ip cloud lb\n${rule}` });
    // The LB's flows (inbound, to the VIP) only: the NAT gateway's mappings of the pods' own
    // outbound flows stay, as a cloud NAT gateway keeps them (a new active's flow that finds the
    // old one's mapping still there gets another public port, and the peer follows it).
    await this.o.lab.exec('cluster', 'conntrack', ['-D', '-p', 'udp', '--orig-dst', this.o.vip], {
      check: false,
    });
    this.log(`lb: backends [${nodes.join(', ')}] (${key || 'no ready pod'})`);
  }
}
