// A flapping API server (30 % of requests fail: HTTP 500 or a reset connection) must not make the
// active replica step down while it can still renew within its deadline: two daemons (runDaemon in
// this process, memory data path, loopback) at the production timings 15 s / 10 s / 2 s, 40 s of
// flapping, no transition after the first acquisition, on either replica.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { runDaemon } from '../../src/daemon/main.js';
import { FakeKubeApiServer, type KubeObj } from '../fakes/kube-apiserver.js';

const NS = 'vpn';
const LEASE = 'ikegw-leader';

describe('ha: flapping API server', () => {
  let api: FakeKubeApiServer;
  let dir: string;
  const stops: Array<() => void> = [];
  const exits: Promise<number>[] = [];
  const logs: Record<string, string[]> = {};
  const urls: Record<string, string> = {};

  function start(name: string): void {
    const token = api.addToken(name);
    const kc = join(dir, `${name}.kubeconfig`);
    writeFileSync(kc, api.kubeConfig(token).exportConfig());
    const cfg = join(dir, `${name}.yaml`);
    writeFileSync(
      cfg,
      `connections:
  onprem:
    remote_addrs: [127.0.0.1]
    remote_port: 9
    psk: { value: "ha-flap-test-psk-0123456789" }
    children:
      net: { local_ts: [10.10.0.0/16], remote_ts: [192.168.100.0/24] }
datapath: memory
listen: { address: 127.0.0.1, port: 0, nat_port: 0 }
metrics: { listen: "127.0.0.1:0" }
control: { socket: ${join(dir, `${name}.sock`)} }
log: { format: json }
ha:
  lease: { name: ${LEASE}, namespace: ${NS} }
`,
      { mode: 0o600 },
    );
    logs[name] = [];
    let stop: () => void = () => undefined;
    const stopped = new Promise<void>((r) => {
      stop = r;
    });
    stops.push(stop);
    exits.push(
      runDaemon({
        configPath: cfg,
        env: { IKEGW_KUBECONFIG: kc, POD_NAME: name },
        stderr: (s) => logs[name]!.push(s),
        logDestination: {
          write: (s: string) => {
            logs[name]!.push(s);
            const m = /on http:\/\/(127\.0\.0\.1:\d+)/.exec(s);
            if (m) urls[name] = `http://${m[1]}`;
            return true;
          },
        },
        stop: stopped,
      }),
    );
  }

  const transitions = async (name: string): Promise<string[]> => {
    const text = await (await fetch(`${urls[name]}/metrics`)).text();
    return text.split('\n').filter((l) => l.startsWith('ikegw_ha_transitions_total{'));
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ikegw-ha-flap-'));
    api = await FakeKubeApiServer.start();
    api.create('leases', {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: LEASE, namespace: NS },
      spec: {},
    } as KubeObj);
  });

  afterAll(async () => {
    for (const s of stops) s();
    await Promise.all(exits);
    await api?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('30 % of requests failing for 40 s: no transition after the first acquisition', async () => {
    onTestFailed(() => {
      for (const [n, l] of Object.entries(logs)) console.log(`--- ${n} ---\n${l.join('').slice(-6000)}`);
    });
    start('frontend-0');
    const t0 = Date.now();
    for (;;) {
      if (urls['frontend-0'] && (await fetch(`${urls['frontend-0']}/ha`)).status === 200) break;
      if (Date.now() - t0 > 15_000) throw new Error('frontend-0 never became active');
      await new Promise((r) => setTimeout(r, 100));
    }
    start('frontend-1');
    api.setFailureRatio(0.3);
    const tFlap = Date.now();
    while (Date.now() - tFlap < 40_000) {
      await new Promise((r) => setTimeout(r, 1000));
      if (!urls['frontend-1']) continue;
      const [a, b] = await Promise.all([
        fetch(`${urls['frontend-0']}/ha`),
        fetch(`${urls['frontend-1']}/ha`),
      ]);
      expect(a.status).toBe(200);
      expect(b.status).toBe(503);
    }
    api.setFailureRatio(0);
    const failed = api.requests.filter(
      (r) => r.at >= tFlap && (r.fault === 'failed' || r.fault === 'reset'),
    ).length;
    const all = api.requests.filter((r) => r.at >= tFlap).length;
    console.log(`ha: 40 s with ${failed} of ${all} Lease requests failing: no transitions`);
    expect(failed / all).toBeGreaterThan(0.05); // failures did happen (30 % expected)
    expect(await transitions('frontend-0')).toEqual([
      'ikegw_ha_transitions_total{to="active",reason="acquired"} 1',
    ]);
    expect(await transitions('frontend-1')).toEqual([]);
  }, 90_000);
});
