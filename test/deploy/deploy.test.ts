// The chart as Kubernetes runs it: the image built from this checkout, the chart rendered with the
// reference chart's values, and every container of the rendered StatefulSet and operator Deployment
// run with podman on a simulated Cilium node (test/deploy/kubelet.ts), against strongSwan on-prem.
//
//   workload pod ─┐                                     ┌─ on-prem NAT ── strongSwan ── on-prem host
//   frontend pod ─┼─ node (lxc veths, LB DNAT, SNAT) ───┤  (masquerade,     (172.30.0.2)  (192.168.100.10)
//   operator pod ─┘   198.51.100.2                      └─  UDP 500/4500 forwarded; 198.51.100.254)
//
// The node plays what Kubernetes and Cilium do there: the LoadBalancer Service with
// externalTrafficPolicy Local (nftables DNAT of UDP 500/4500 at the node's address to the frontend
// pod; its conntrack entries flushed when the endpoint changes, as kube-proxy and Cilium do), pod
// egress masqueraded to the node's address, a ClusterIP Service (10.96.0.10:80 → the workload pod)
// translated at the node, the `kubernetes` Service at 10.96.0.1:443 (the fake API server), the
// Cilium agent's socket, and the kubelet's probes. The fake API server serves the Pod, the
// CiliumEndpoint (written by a simulated Cilium agent) and the ip-masq-agent ConfigMap.
import { createPrivateKey } from 'node:crypto';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeCiliumAgent } from '../fakes/cilium-agent.js';
import { FakeKubeApiServer, type KubeObj, SimulatedCiliumAgent } from '../fakes/kube-apiserver.js';
import { waitFor } from '../fakes/wait.js';
import { detectRenderer, ensureRenderer, type K8sObject, render } from '../helm/render.js';
import { Pki } from '../helpers/pki.js';
import { type Charon, createLab, LAB_PSK, type Lab, run } from '../interop/lab.js';
import { deploySkipReason, ensureImage } from './image.js';
import { find, type PodSandbox, podTemplate, type RunningPod, SimNode } from './kubelet.js';

const renderer = detectRenderer();
const skipReason =
  deploySkipReason() ?? (renderer.kind === 'none' ? `no chart renderer: ${renderer.reason}` : undefined);
if (skipReason) console.warn(`test/deploy/deploy.test.ts skipped: ${skipReason}`);

const RELEASE = 'vpn';
const NAMESPACE = 'vpn';
const NODE_IP = '198.51.100.2';
const GATEWAY = '10.10.2.1';
const FRONTEND_IPS = ['10.10.2.5', '10.10.2.50', '10.10.2.77'];
const WORKLOAD_IP = '10.10.2.6';
const OPERATOR_IP = '10.10.2.7';
const SERVICE_IP = '10.96.0.10';
const API_IP = '10.96.0.1';
const PEER_CIDR = '192.168.100.0/24';

/** A bound ServiceAccount token as the API server would issue it (opaque to the pod). */
function saToken(namespace: string, serviceAccount: string): string {
  return `sa-token.${namespace}.${serviceAccount}.${process.pid}`;
}

/** The reference chart's values, as a user fills them in (`helm inspect values` + edits). */
function referenceValues(image: string, psk: string, peer: string, ipsecExtra = ''): string {
  return `podCIDR: "10.10.0.0/16"
serviceCIDR: "10.96.0.0/12"
peerCIDRs:
  - ${PEER_CIDR}
mtu: 1300
ipsec:
  psk: "${psk}"
  peer: "${peer}"
${ipsecExtra}image: "${image}"
`;
}

/** The on-prem side, mirror image of the chart's connection (the reference's own test peer). */
function onpremSwanctl(clusterAddr: string, psk: string): string {
  return `connections {
  cluster {
    remote_addrs = ${clusterAddr}
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
    secret = "${psk}"
  }
}
`;
}

describe.skipIf(skipReason !== undefined)('the chart as deployed (image + pods on a simulated node)', () => {
  let lab: Lab;
  let charon: Charon;
  let api: FakeKubeApiServer;
  let cilium: FakeCiliumAgent;
  let ciliumSim: SimulatedCiliumAgent;
  let node: SimNode;
  let dir: string;
  let objects: K8sObject[];
  let image: string;
  let frontend: RunningPod | undefined;
  let operator: RunningPod | undefined;
  let frontendSb: PodSandbox;
  let ipIndex = 0;
  /** The workload pod's network namespace. */
  let workload: string;
  /** The StatefulSet's pod: `<statefulset>-0`. */
  let frontendName: string;

  function renderChart(psk: string, ipsecExtra = ''): K8sObject[] {
    const r = render(renderer, referenceValues(image, psk, lab.addr.onpremPublic, ipsecExtra), {
      release: RELEASE,
      namespace: NAMESPACE,
    });
    if (!r.ok) throw new Error(`render failed: ${r.stderr}`);
    return r.docs.map((d) => d.obj);
  }

  /** GET from the node, as the kubelet's prober and a Prometheus on the pod network do. */
  function fromNode(url: string): Promise<{ status?: number; body?: string; error?: string }> {
    return new Promise((resolve, reject) => {
      const req = request(
        { socketPath: join(dir, 'probe.sock'), path: `/probe?url=${encodeURIComponent(url)}` },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (d) => {
            body += d;
          });
          res.on('end', () => resolve(JSON.parse(body)));
        },
      );
      req.on('error', reject);
      req.end();
    });
  }

  /** The rendered probe of a container, queried at its rendered port (by name) and path. */
  async function probe(pod: RunningPod, container: string, kind: 'readinessProbe' | 'livenessProbe') {
    const c = pod.container(container).spec;
    const get = c[kind]?.httpGet;
    if (!get) throw new Error(`${container} has no ${kind}`);
    const port =
      typeof get.port === 'number' ? get.port : c.ports?.find((p) => p.name === get.port)?.containerPort;
    return fromNode(`http://${pod.sandbox.ip}:${port}${get.path}`);
  }

  async function nodeRoutes(): Promise<
    Array<{ dst: string; gateway?: string; dev: string; metrics?: unknown }>
  > {
    const r = await lab.exec('cluster', 'ip', ['-j', '-d', 'route', 'show', 'proto', '211']);
    return JSON.parse(r.stdout || '[]');
  }

  /** What the Kubernetes API and Cilium do when the frontend pod (re)appears with an IP. */
  function announcePod(sb: PodSandbox): void {
    if (api.get('pods', NAMESPACE, frontendName)) api.delete('pods', NAMESPACE, frontendName);
    api.create('pods', {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: frontendName, namespace: NAMESPACE, uid: sb.uid, labels: {} },
      spec: { nodeName: 'node-1' },
      status: { phase: 'Running', podIP: sb.ip, podIPs: [{ ip: sb.ip }], hostIP: NODE_IP },
    } as KubeObj);
    cilium.addEndpoint({ ipv4: sb.ip, podName: frontendName, namespace: NAMESPACE });
  }

  /** The LoadBalancer's backend is the frontend pod; a changed backend flushes its UDP conntrack. */
  async function pointLoadBalancer(podIp: string): Promise<void> {
    await lab.exec('cluster', 'nft', ['-f', '-'], {
      input: `flush chain ip k8s lb
add rule ip k8s lb iifname "wan0" ip daddr ${NODE_IP} udp dport { 500, 4500 } dnat to ${podIp}
`,
    });
    await lab.exec('cluster', 'conntrack', ['-D', '-p', 'udp', '--orig-dst', NODE_IP], { check: false });
  }

  /**
   * Starts the frontend pod from the chart rendered with the reference values (and `ipsecExtra`,
   * indented lines under ipsec:); `extraObjects` are objects the cluster already has (Secrets).
   */
  async function startFrontend(
    psk = LAB_PSK,
    ipsecExtra = '',
    extraObjects: K8sObject[] = [],
  ): Promise<RunningPod> {
    objects = [...renderChart(psk, ipsecExtra), ...extraObjects];
    const ip = FRONTEND_IPS[ipIndex++ % FRONTEND_IPS.length]!;
    frontendSb = await node.createSandbox(frontendName, NAMESPACE, ip);
    announcePod(frontendSb);
    await pointLoadBalancer(ip);
    const sts = find(objects, 'StatefulSet');
    const t0 = Date.now();
    frontend = await node.runPod(frontendSb, podTemplate(sts).spec, objects);
    const pod = frontend;
    await waitFor(async () => (await probe(pod, 'ikegw', 'readinessProbe')).status === 200, {
      timeoutMs: 30_000,
      intervalMs: 200,
      what: `frontend ${ip} ready (/readyz 200)`,
    }).catch(async (e) => {
      throw new Error(
        `${(e as Error).message}\n--- ikegw logs ---\n${(await pod.logs('ikegw')).slice(-3000)}`,
      );
    });
    console.log(
      `deploy: frontend pod ${ip}: containers started -> /readyz 200 in ${((Date.now() - t0) / 1000).toFixed(1)} s`,
    );
    return pod;
  }

  async function stopFrontend(): Promise<Record<string, number>> {
    const pod = frontend;
    frontend = undefined;
    if (!pod) return {};
    const codes = await pod.stop();
    await node.deleteSandbox(pod.sandbox);
    return codes;
  }

  async function pingUntil(from: string, to: string, timeoutMs: number): Promise<number> {
    const t0 = Date.now();
    await waitFor(() => lab.ping(from, to, { count: 1, waitS: 1 }), {
      timeoutMs,
      intervalMs: 100,
      ok: (n) => n > 0,
      what: `ping ${from} -> ${to}`,
    });
    return (Date.now() - t0) / 1000;
  }

  beforeAll(async () => {
    ensureRenderer(renderer, 240_000);
    const img = ensureImage();
    image = img.tag;
    console.log(`deploy: image ${image} (${img.built ? `built in ${img.seconds.toFixed(0)} s` : 'reused'})`);
    dir = mkdtempSync(join(tmpdir(), 'ikegw-deploy-'));

    lab = await createLab({ nat: true, natSide: 'onprem', endHosts: true });
    charon = await lab.startCharon('onprem', { swanctlConf: onpremSwanctl(NODE_IP, LAB_PSK) });

    // The API server accepts only the token of the operator's ServiceAccount as rendered: a pod
    // mounting another account's token (or none) gets 401.
    const operatorSa = podTemplate(find(renderChart(LAB_PSK), 'Deployment')).spec.serviceAccountName;
    api = await FakeKubeApiServer.start({
      token: saToken(NAMESPACE, operatorSa ?? 'default'),
      socketPath: join(dir, 'apiserver.sock'),
      certNames: [API_IP, 'kubernetes.default.svc', 'localhost'],
    });
    api.create('configmaps', {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'ip-masq-agent', namespace: 'kube-system' },
      data: { config: 'nonMasqueradeCIDRs:\n  - 10.10.0.0/16\nmasqLinkLocal: false\n' },
    } as KubeObj);
    frontendName = `${find(renderChart(LAB_PSK), 'StatefulSet').metadata.name}-0`;
    ciliumSim = new SimulatedCiliumAgent(api, {
      namespace: NAMESPACE,
      podName: frontendName,
      nodeIp: NODE_IP,
    });
    ciliumSim.start();
    cilium = await FakeCiliumAgent.start();

    node = new SimNode(lab, {
      nodeNs: lab.ns.cluster,
      nodeName: 'node-1',
      gateway: GATEWAY,
      dir,
      label: lab.prefix,
      hostPaths: {
        '/proc/1/ns/net': `/run/netns/${lab.ns.cluster}`,
        '/var/run/cilium': cilium.dir,
        '/dev/net/tun': '/dev/net/tun',
      },
      apiServer: { host: API_IP, port: 443, caPem: api.caPem },
      tokenFor: saToken,
    });
    await node.init();
    // The node's Kubernetes plumbing: LB, pod egress SNAT, a ClusterIP service, the API service.
    await lab.exec('cluster', 'nft', ['-f', '-'], {
      input: `table ip k8s {
  chain lb { }
  chain svc {
    ip daddr ${SERVICE_IP} tcp dport 80 dnat to ${WORKLOAD_IP}:8080
  }
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    jump lb
    jump svc
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan0" ip saddr 10.10.0.0/16 masquerade
  }
}
table inet apicut {
  chain input {
    type filter hook input priority filter; policy accept;
  }
}
`,
    });
    await run('ip', ['-n', lab.ns.cluster, 'addr', 'add', `${API_IP}/32`, 'dev', 'cilium_host'], {
      check: false,
    });
    lab.spawn('cluster', process.execPath, [
      join(import.meta.dirname, 'node-services.mjs'),
      join(dir, 'apiserver.sock'),
      API_IP,
      '443',
      join(dir, 'probe.sock'),
    ]);
    await waitFor(() => existsSync(join(dir, 'probe.sock')), {
      timeoutMs: 10_000,
      what: 'node services',
    });

    // A workload pod with an HTTP server behind the ClusterIP service.
    const wl = await node.createSandbox('workload', 'default', WORKLOAD_IP);
    workload = wl.netns;
    lab.spawn(wl.netns, process.execPath, [
      '-e',
      `require('node:http').createServer((q, s) => s.end('hello from the workload pod')).listen(8080, '${WORKLOAD_IP}')`,
    ]);

    await startFrontend();
    const deployment = find(objects, 'Deployment');
    const op = await node.createSandbox(
      `${deployment.metadata.name}-5d4f8b7c9-x2x7q`,
      NAMESPACE,
      OPERATOR_IP,
    );
    operator = await node.runPod(op, podTemplate(deployment).spec, objects);
  }, 900_000);

  afterAll(async () => {
    if (skipReason) return;
    await node?.removeAll();
    await lab?.teardown();
    ciliumSim?.stop();
    await cilium?.stop();
    await api?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 120_000);

  it('carries traffic workload pod <-> on-prem host; the tunnel came up through the LB and the NAT', async () => {
    const s = await pingUntil(workload, lab.addr.onhost, 30_000);
    console.log(`deploy: first packet -> reply through a new tunnel in ${s.toFixed(1)} s`);
    expect(await lab.ping('onhost', WORKLOAD_IP, { count: 3 })).toBe(3);
    const sas = await charon.listSas();
    expect(sas).toHaveLength(1);
    const sa = sas[0]!;
    expect(sa.state).toBe('ESTABLISHED');
    // strongSwan talks to the LB address; both sides are behind a NAT (the node's SNAT/DNAT, and
    // the on-prem NAT), so the tunnel runs ESP-in-UDP on 4500.
    expect(sa.remoteHost).toBe(NODE_IP);
    expect(sa.localHost).toBe(lab.addr.onpremWan);
    expect(sa.natLocal).toBe(true);
    expect(sa.natRemote).toBe(true);
    expect(sa.children[0]?.encap).toBe(true);
    expect(sa.children[0]?.remoteTs.sort()).toEqual(['10.10.0.0/16', '10.96.0.0/12']);
  }, 60_000);

  it('lets the on-prem host reach a service IP (translated at the node, answered through the tunnel)', async () => {
    await pingUntil(workload, lab.addr.onhost, 30_000);
    const r = await lab.exec('onhost', process.execPath, [
      '-e',
      `fetch('http://${SERVICE_IP}/').then(async (r) => console.log(r.status, await r.text()))`,
    ]);
    expect(r.stdout.trim()).toBe('200 hello from the workload pod');
  }, 60_000);

  it('installs node routes via the frontend pod with the MTU, patches the CiliumEndpoint and ip-masq-agent', async () => {
    const routes = await waitFor(nodeRoutes, {
      timeoutMs: 20_000,
      ok: (r) => r.length > 0,
      what: 'node routes',
    });
    expect(routes).toHaveLength(1);
    expect(routes[0]).toMatchObject({ dst: PEER_CIDR, gateway: frontendSb.ip, dev: frontendSb.lxc });
    expect(JSON.stringify(routes[0]?.metrics)).toContain('"mtu":1300');

    const cep = await waitFor(() => api.get('ciliumendpoints', NAMESPACE, frontendName), {
      timeoutMs: 20_000,
      what: 'CiliumEndpoint patched with the peer CIDR',
      ok: (o) => JSON.stringify(o?.status).includes(PEER_CIDR),
    });
    const addressing = (cep!.status as { networking: { addressing: unknown[] } }).networking.addressing;
    expect(addressing).toEqual(expect.arrayContaining([{ ipv4: frontendSb.ip }, { ipv4: PEER_CIDR }]));

    const cm = await waitFor(() => api.get('configmaps', 'kube-system', 'ip-masq-agent'), {
      timeoutMs: 20_000,
      what: 'ip-masq-agent has the peer CIDR',
      ok: (o) => String((o?.data as Record<string, string>)?.config).includes(PEER_CIDR),
    });
    expect((cm!.data as Record<string, string>).config).toContain('10.10.0.0/16');
    // ... with the rendered ServiceAccount's token, as mounted (every request authenticated).
    expect(api.requests.filter((r) => r.status === 401)).toEqual([]);
    // The agent on the node turned source IP verification off for the frontend's endpoint.
    await waitFor(() => cilium.requests.some((r) => r.method === 'PATCH' && r.status === 200), {
      timeoutMs: 20_000,
      what: 'SourceIPVerification disabled through the Cilium agent API',
    });
  }, 60_000);

  it('answers `kubectl exec … ikegw sas` and serves ikegw_tunnel_up 1 at the scrape port and path', async () => {
    await pingUntil(workload, lab.addr.onhost, 30_000);
    const pod = frontend!;
    // The image ships the Node this suite runs on (both come from package-lock.json).
    expect((await pod.exec('ikegw', ['ikegw', 'version'])).stdout).toContain(`(node ${process.version})`);
    const sas = await pod.exec('ikegw', ['ikegw', 'sas']);
    expect(sas.stdout).toMatch(/onprem.*ESTABLISHED/);
    expect(sas.stdout).toMatch(/cluster.*INSTALLED/);
    const ann = (
      find(objects, 'StatefulSet').spec as { template: { metadata: { annotations: Record<string, string> } } }
    ).template.metadata.annotations;
    const m = await fromNode(
      `http://${pod.sandbox.ip}:${ann['prometheus.io/port']}${ann['prometheus.io/path']}`,
    );
    expect(m.status).toBe(200);
    expect(m.body).toMatch(/^ikegw_tunnel_up\{[^}]*\} 1$/m);
    expect((await probe(pod, 'ikegw', 'livenessProbe')).status).toBe(200);
  }, 60_000);

  it('keeps the operator at it while the API server is unreachable for 30 s, and catches up after', async () => {
    await waitFor(
      () => JSON.stringify(api.get('ciliumendpoints', NAMESPACE, frontendName)?.status).includes(PEER_CIDR),
      {
        timeoutMs: 20_000,
        what: 'CiliumEndpoint patched',
      },
    );
    // Cut the node (and so the operator pod) off the API server, then let Cilium rewrite the
    // endpoint, dropping the operator's addressing: the operator cannot see or repair it.
    await lab.exec('cluster', 'nft', [
      'add',
      'rule',
      'inet',
      'apicut',
      'input',
      'ip',
      'daddr',
      API_IP,
      'tcp',
      'dport',
      '443',
      'drop',
    ]);
    const cutAt = Date.now();
    ciliumSim.rewriteStatus();
    expect(JSON.stringify(api.get('ciliumendpoints', NAMESPACE, frontendName)?.status)).not.toContain(
      PEER_CIDR,
    );
    await waitFor(() => Date.now() - cutAt >= 30_000, { timeoutMs: 35_000, intervalMs: 500 });
    expect(JSON.stringify(api.get('ciliumendpoints', NAMESPACE, frontendName)?.status)).not.toContain(
      PEER_CIDR,
    );
    await lab.exec('cluster', 'nft', ['flush', 'chain', 'inet', 'apicut', 'input']);
    const back = Date.now();
    await waitFor(
      () => JSON.stringify(api.get('ciliumendpoints', NAMESPACE, frontendName)?.status).includes(PEER_CIDR),
      {
        timeoutMs: 60_000,
        intervalMs: 100,
        what: 'operator re-applies the CiliumEndpoint addressing after the API server is back',
      },
    );
    console.log(
      `deploy: operator caught up ${((Date.now() - back) / 1000).toFixed(1)} s after the API server came back`,
    );
    const st = await operator!.state('operator');
    expect(st.running).toBe(true);
  }, 120_000);

  it('follows a pod restart with a new IP: routes move, nothing stale is left, traffic is back', async () => {
    await pingUntil(workload, lab.addr.onhost, 30_000);
    const old = frontendSb;
    const t0 = Date.now();
    await stopFrontend();
    await startFrontend();
    expect(frontendSb.ip).not.toBe(old.ip);
    await pingUntil(workload, lab.addr.onhost, 60_000);
    const s = (Date.now() - t0) / 1000;
    console.log(
      `deploy: pod restart (stop, new sandbox ${old.ip} -> ${frontendSb.ip}, start) -> traffic back in ${s.toFixed(1)} s`,
    );
    const routes = await waitFor(nodeRoutes, {
      timeoutMs: 20_000,
      ok: (r) => r.length === 1 && r[0]?.gateway === frontendSb.ip,
      what: 'node route via the new pod',
    });
    expect(routes[0]).toMatchObject({ dst: PEER_CIDR, dev: frontendSb.lxc });
    expect((await nodeRoutes()).filter((r) => r.gateway === old.ip || r.dev === old.lxc)).toEqual([]);
    // Userspace data path: no XFRM state or policy anywhere on the node.
    expect((await lab.exec('cluster', 'ip', ['xfrm', 'state'])).stdout.trim()).toBe('');
    expect((await lab.exec('cluster', 'ip', ['xfrm', 'policy'])).stdout.trim()).toBe('');
    // INITIAL_CONTACT: strongSwan dropped the old pod's IKE_SA.
    await waitFor(async () => (await charon.listSas()).length, {
      timeoutMs: 20_000,
      ok: (n) => n === 1,
      what: 'one IKE_SA at strongSwan',
    });
  }, 180_000);

  it('shuts down on SIGTERM within the rendered grace period: DELETE to strongSwan, routes removed, exit 0', async () => {
    await pingUntil(workload, lab.addr.onhost, 30_000);
    await waitFor(nodeRoutes, { timeoutMs: 20_000, ok: (r) => r.length === 1, what: 'node route' });
    const before = charon.log().length;
    const codes = await stopFrontend();
    expect(codes).toEqual({ ikegw: 0, routes: 0 });
    expect(charon.log().slice(before)).toMatch(/received DELETE for IKE_SA/);
    expect(await nodeRoutes()).toEqual([]);
    await waitFor(async () => (await charon.listSas()).length, {
      timeoutMs: 10_000,
      ok: (n) => n === 0,
      what: 'no SA at strongSwan',
    });
  }, 120_000);

  it('with a wrong PSK in the Secret: the pod stays up and ready, the log names the cause', async () => {
    const pod = await startFrontend('this-is-not-the-psk-strongswan-has');
    // the workload's packets reach the pod once the sidecar has put the node route in place
    await waitFor(nodeRoutes, {
      timeoutMs: 20_000,
      ok: (r) => r.some((x) => x.gateway === pod.sandbox.ip),
      what: 'node route via the new pod',
    });
    const logs = await waitFor(
      async () => {
        await lab.ping(workload, lab.addr.onhost, { count: 1, waitS: 1 });
        return pod.logs('ikegw');
      },
      {
        timeoutMs: 30_000,
        ok: (l) => /AUTHENTICATION_FAILED/.test(l),
        what: 'AUTHENTICATION_FAILED in the ikegw log',
      },
    );
    const line = logs.split('\n').find((l) => /AUTHENTICATION_FAILED/.test(l))!;
    expect(() => JSON.parse(line)).not.toThrow();
    expect(line).toMatch(/pre-shared key|PSK/);
    expect(logs).not.toContain('this-is-not-the-psk-strongswan-has');
    expect((await pod.state('ikegw')).running).toBe(true);
    // Ready means "configured and listening", not "tunnel up" (docs/operations.md): a pod that
    // left the LB on a failed tunnel could never be reached by the peer again.
    expect((await probe(pod, 'ikegw', 'readinessProbe')).status).toBe(200);
    const m = await fromNode(`http://${pod.sandbox.ip}:9500/metrics`);
    expect(m.body).toMatch(/^ikegw_tunnel_up\{[^}]*\} 0$/m);
    await stopFrontend();
  }, 120_000);
  it('with ipsec.auth cert: a kubernetes.io/tls Secret, strongSwan on-prem with certificates — tunnel up, traffic flows', async () => {
    if (frontend) await stopFrontend();
    // The cluster's certificate from an intermediate (tls.crt = ours + intermediate, as
    // cert-manager writes it), the on-prem gateway's from another CA (ipsec.peerCa).
    const pki = new Pki(join(dir, 'pki'));
    const clusterDn = 'C=CH, O=ikegw test, CN=vpn.vpn';
    const onpremDn = 'C=CH, O=onprem, CN=gw.onprem.example';
    const ours = pki.issue({
      name: 'cluster',
      keyType: 'p256',
      subject: clusterDn,
      issuer: pki.intermediate,
    });
    const gw = pki.issue({ name: 'onprem-gw', keyType: 'p256', subject: onpremDn, issuer: pki.otherRoot });
    const pem = (f: string) => readFileSync(f, 'latin1');
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    const tls: K8sObject = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'ikegw-tls', namespace: NAMESPACE },
      type: 'kubernetes.io/tls',
      data: {
        'tls.crt': b64(pem(ours.cert) + pem(pki.intermediate.cert)),
        // cert-manager's default encoding for ECDSA (PKCS1): a SEC1 "EC PRIVATE KEY"
        'tls.key': b64(
          createPrivateKey(readFileSync(ours.key)).export({ format: 'pem', type: 'sec1' }).toString(),
        ),
        'ca.crt': b64(pem(pki.root.cert)),
      },
    };
    const onpremCa: K8sObject = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'onprem-ca', namespace: NAMESPACE },
      data: { 'ca.crt': pem(pki.otherRoot.cert) },
    };
    // strongSwan: the same connection, now with certificates (swanctl --load-all replaces it)
    copyFileSync(gw.key, join(charon.dir, 'swanctl', 'private', 'onprem-gw.key'));
    const conf = join(charon.dir, 'swanctl', 'swanctl.conf');
    writeFileSync(
      conf,
      `connections {
  cluster {
    remote_addrs = ${NODE_IP}
    local {
      auth = pubkey
      certs = ${gw.cert}
      id = "${onpremDn}"
    }
    remote {
      auth = pubkey
      cacerts = ${pki.root.cert}
      id = "${clusterDn}"
    }
    children {
      cluster {
        local_ts = ${PEER_CIDR}
        remote_ts = 10.10.0.0/16,10.96.0.0/12
        start_action = trap
      }
    }
  }
}
`,
    );
    await charon.swanctl(['--load-all', '--noprompt', '--file', conf]);
    await waitFor(async () => (await charon.listSas()).length, {
      timeoutMs: 20_000,
      ok: (n) => n === 0,
      what: 'no SA at strongSwan',
    });
    const before = charon.log().length;

    const pod = await startFrontend(
      '',
      `  auth: cert\n  certSecret: ikegw-tls\n  remoteId: "${onpremDn}"\n  peerCa:\n    configMap: onprem-ca\n`,
      [tls, onpremCa],
    );
    // no PSK anywhere in what the chart rendered for this pod
    const cfgSecret = objects.find((o) => o.kind === 'Secret' && o.metadata.name.endsWith('-config'))!;
    expect(Object.keys(cfgSecret.data as Record<string, string>)).toEqual(['config.yaml']);

    const s = await pingUntil(workload, lab.addr.onhost, 60_000);
    console.log(`deploy: certificate tunnel: first packet -> reply in ${s.toFixed(1)} s`);
    expect(await lab.ping('onhost', WORKLOAD_IP, { count: 3 })).toBe(3);
    const sas = await charon.listSas();
    expect(sas).toHaveLength(1);
    expect(sas[0]!.state).toBe('ESTABLISHED');
    expect(sas[0]!.remoteId).toBe(clusterDn);
    const log = charon.log().slice(before);
    // strongSwan verified our certificate chain (intermediate sent in CERT) and our signature
    expect(log).toMatch(/received end entity cert "C=CH, O=ikegw test, CN=vpn\.vpn"/);
    expect(log).toMatch(/received issuer cert "C=CH, O=ikegw test, CN=ikegw Intermediate CA"/);
    expect(log).toMatch(/authentication of 'C=CH, O=ikegw test, CN=vpn\.vpn' with [^ ]+ successful/);
    const logs = await pod.logs('ikegw');
    expect(logs).not.toContain('PRIVATE KEY');
    expect((await pod.exec('ikegw', ['ikegw', 'sas'])).stdout).toMatch(/onprem.*ESTABLISHED/);
    await stopFrontend();
  }, 180_000);
});
