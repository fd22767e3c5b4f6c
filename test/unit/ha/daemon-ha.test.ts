// Two daemons (runDaemon in this process, memory data path, loopback ports) electing through the
// fake API server's Lease (test/fakes/kube-apiserver.ts): one active, the other standby (/readyz 503
// "standby", /ha 503, no UDP bound, `ikegw sas` says standby); the active one stopped (SIGTERM path)
// releases the Lease and the standby takes over at once; the active one cut off from the API server
// steps down by itself before the other acquires — both replicas' /ha checked every 100 ms.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { controlRequest } from '../../../src/cli/control-client.js';
import { runDaemon } from '../../../src/daemon/main.js';
import { FakeKubeApiServer, type KubeObj } from '../../fakes/kube-apiserver.js';

const NS = 'vpn';
const LEASE = 'ikegw-leader';

interface Replica {
  name: string;
  socket: string;
  logs: string[];
  metricsUrl?: string;
  stop: () => void;
  exited: Promise<number>;
}

async function get(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await fetch(url);
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
}

async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 20_000,
): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('daemon with ha: two replicas on the fake API server', () => {
  let api: FakeKubeApiServer;
  let dir: string;
  const replicas: Replica[] = [];

  const config = (name: string): string => `
connections:
  onprem:
    remote_addrs: [127.0.0.1]
    remote_port: 9
    psk: { value: "ha-test-psk-0123456789" }
    children:
      net:
        local_ts: [10.10.0.0/16]
        remote_ts: [192.168.100.0/24]
datapath: memory
listen: { address: 127.0.0.1, port: 0, nat_port: 0 }
metrics: { listen: "127.0.0.1:0" }
control: { socket: ${join(dir, `${name}.sock`)} }
log: { format: json }
ha:
  lease: { name: ${LEASE}, namespace: ${NS} }
  lease_duration: 6s
  renew_deadline: 3s
  retry_period: 1s
`;

  function start(name: string): Replica {
    const token = api.addToken(name);
    const kc = join(dir, `${name}.kubeconfig`);
    writeFileSync(kc, api.kubeConfig(token).exportConfig());
    const cfg = join(dir, `${name}.yaml`);
    writeFileSync(cfg, config(name), { mode: 0o600 });
    let stop: () => void = () => undefined;
    const stopped = new Promise<void>((r) => {
      stop = r;
    });
    const rep: Replica = {
      name,
      socket: join(dir, `${name}.sock`),
      logs: [],
      stop,
      exited: Promise.resolve(0),
    };
    rep.exited = runDaemon({
      configPath: cfg,
      env: { IKEGW_KUBECONFIG: kc, POD_NAME: name },
      stderr: (s) => rep.logs.push(s),
      logDestination: {
        write: (s: string) => {
          rep.logs.push(s);
          const m = /on http:\/\/(127\.0\.0\.1:\d+)/.exec(s);
          if (m) rep.metricsUrl = `http://${m[1]}`;
          return true;
        },
      },
      stop: stopped,
    });
    replicas.push(rep);
    return rep;
  }

  const ha = async (r: Replica): Promise<number> => (await get(`${r.metricsUrl}/ha`)).status;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ikegw-ha-'));
    api = await FakeKubeApiServer.start();
    // the chart renders the Lease (RBAC allows no create)
    api.create('leases', {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: LEASE, namespace: NS },
      spec: {},
    } as KubeObj);
  });

  afterAll(async () => {
    for (const r of replicas) r.stop();
    await Promise.all(replicas.map((r) => r.exited));
    await api?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('one active, one standby; stop → release → the other takes over at once; cut off → steps down before the other acquires', async () => {
    onTestFailed(() => {
      for (const r of replicas) console.log(`--- ${r.name} ---\n${r.logs.join('').slice(-6000)}`);
    });
    const a = start('frontend-0');
    await waitFor('a active', async () => a.metricsUrl && (await ha(a)) === 200);
    const b = start('frontend-1');
    await waitFor('b metrics', () => b.metricsUrl);
    // standby: not ready, names standby, /ha 503, nothing bound, sas says standby
    const rz = await get(`${b.metricsUrl}/readyz`);
    expect(rz.status).toBe(503);
    expect(JSON.stringify(rz.body)).toMatch(/standby/);
    expect((await get(`${b.metricsUrl}/ha`)).body).toMatchObject({ role: 'standby', holder: 'frontend-0' });
    await waitFor('a ready', async () => (await get(`${a.metricsUrl}/readyz`)).status === 200, 5000);
    expect(b.logs.join('')).not.toMatch(/ikegw started/);
    expect(await controlRequest(b.socket, { cmd: 'sas' })).toMatchObject({
      ok: false,
      error: expect.stringMatching(/standby \(HA\).*held by frontend-0/),
    });
    const lines: string[] = [];
    expect(await controlRequest(a.socket, { cmd: 'sas' }, (t) => lines.push(t))).toMatchObject({ ok: true });
    expect(lines).toEqual([`HA: active (this replica holds Lease ${NS}/${LEASE})`]);
    const stats = await controlRequest(b.socket, { cmd: 'stats' });
    expect(stats).toMatchObject({ ok: true, result: { ha: { role: 'standby', holder: 'frontend-0' } } });
    const metrics = await (await fetch(`${a.metricsUrl}/metrics`)).text();
    expect(metrics).toMatch(/^ikegw_ha_active 1$/m);
    expect(metrics).toMatch(/^ikegw_ha_transitions_total\{to="active",reason="acquired"\} 1$/m);
    expect(api.get('leases', NS, LEASE)?.spec).toMatchObject({
      holderIdentity: 'frontend-0',
      leaseDurationSeconds: 6,
    });

    // graceful: a stops (SIGTERM path) → releases → b active well before the lease would expire
    const t0 = Date.now();
    a.stop();
    expect(await a.exited).toBe(0);
    expect(a.logs.join('')).toMatch(/ha: standby \(shutdown\)/);
    await waitFor('b active', async () => (await ha(b)) === 200, 4000);
    const handover = (Date.now() - t0) / 1000;
    console.log(`ha: SIGTERM of the active replica -> the standby active in ${handover.toFixed(2)} s`);
    expect(handover).toBeLessThan(3);
    expect(b.logs.join('')).toMatch(/ha: active \(released-by-peer\)/);

    // a comes back as standby; then b is cut off from the API server (requests hang)
    const a2 = start('frontend-0b');
    await waitFor('a2 metrics', () => a2.metricsUrl);
    await waitFor('a2 standby', async () => (await ha(a2)) === 503);
    const heal = await api.cut((r) => r.user === 'frontend-1', 'hang');
    const tCut = Date.now();
    const both: number[] = [];
    let stepDown: number | undefined;
    let takeOver: number | undefined;
    while (Date.now() - tCut < 12_000 && takeOver === undefined) {
      const [sb, sa] = await Promise.all([ha(b), ha(a2)]);
      const t = (Date.now() - tCut) / 1000;
      if (sb === 200 && sa === 200) both.push(t);
      if (sb !== 200 && stepDown === undefined) stepDown = t;
      if (sa === 200) takeOver = t;
      await new Promise((r) => setTimeout(r, 100));
    }
    console.log(`ha: cut off at 0 s: stepped down at ${stepDown} s, the other active at ${takeOver} s`);
    expect(both).toEqual([]);
    expect(stepDown).toBeDefined();
    expect(takeOver).toBeDefined();
    expect(stepDown!).toBeLessThan(takeOver!);
    expect(stepDown!).toBeLessThanOrEqual(3.5);
    expect(b.logs.join('')).toMatch(/ha: standby \(renew-failed\): no successful renewal/);
    expect(a2.logs.join('')).toMatch(/ha: active \(expired\)/);
    await heal();
    // b sees a2 as the holder and stays standby
    await waitFor('b sees a2', async () => (await get(`${b.metricsUrl}/ha`)).body.holder === 'frontend-0b');
    expect(await ha(b)).toBe(503);
    // a2 stops: b, which stepped down earlier in this same process, becomes active again (new
    // data path, new sockets) and answers `ikegw sas`
    a2.stop();
    await a2.exited;
    await waitFor('b active again', async () => (await ha(b)) === 200, 5000);
    await waitFor('b ready again', async () => (await get(`${b.metricsUrl}/readyz`)).status === 200, 5000);
    expect(b.logs.join('').match(/ikegw started/g)).toHaveLength(2);
    expect(await controlRequest(b.socket, { cmd: 'sas' })).toMatchObject({ ok: true });
  }, 60_000);
});
