// HA as processes, without Kubernetes pods: two `ikegw daemon` processes (dist/bin/ikegw.js) in
// two network namespaces ("frontend-0", "frontend-1"), each with `ha:` at the production numbers
// (lease 15 s, renew 10 s, retry 2 s), electing through the fake API server's Lease (test/fakes/kube-apiserver.ts
// on a unix socket, relayed into each namespace at 127.0.0.1:6443 by test/deploy/node-services.mjs,
// as a pod reaches the `kubernetes` service), and one strongSwan 5.9.8 peer (kernel-libipsec, DPD
// 10 s, otherwise defaults) that accepts either gateway under the same identity.
//
//   frontend-0 (203.0.113.2) ──┐
//                              ├── onprem 198.51.100.1 ── onhost 192.168.100.10
//   frontend-1 (203.0.113.6) ──┘
//
// The tunnel is "up" for a frontend when a ping from its namespace (source 10.10.1.1, inside
// local_ts) reaches the on-prem host: only the active one has the TUN route, and strongSwan sends the
// replies into the one CHILD_SA it has.
//  - kill -9 of the active one: the standby takes over when the Lease expires (≤ 15 s + one retry)
//    and brings the tunnel up with INITIAL_CONTACT; must be back within lease duration + 5 s;
//  - SIGTERM of the active one: it steps down and releases the Lease; the standby acquires at its
//    next read (≤ retry period) — an immediate handover.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, onTestFailed, test } from 'vitest';
import { nativeAvailable } from '../../src/common/native.js';
import { FakeKubeApiServer, type KubeObj } from '../fakes/kube-apiserver.js';
import { CLI, IkegwProcess, NODE_FLAGS } from './ikegw-daemon.js';
import { type Charon, createLab, LAB_PSK, type Lab, labAvailable } from './lab.js';

const lab0 = labAvailable();
const native = nativeAvailable();
const avail = !lab0.ok ? lab0 : native.ok ? { ok: true } : { ok: false, why: native.why };
const NODE_SERVICES = join(import.meta.dirname, '../deploy/node-services.mjs');
const GW_ID = 'gw.cluster.example';
const INNER = '10.10.1.1';
const NS = 'vpn';
const LEASE = 'ikegw-leader';
/** Kill -9 failovers to measure (IKEGW_HA_RUNS, default 1). */
const RUNS = Math.max(1, Number(process.env.IKEGW_HA_RUNS ?? 1) || 1);

const FRONTENDS = [
  { role: 'fe0', name: 'frontend-0', onprem: '203.0.113.1', addr: '203.0.113.2' },
  { role: 'fe1', name: 'frontend-1', onprem: '203.0.113.5', addr: '203.0.113.6' },
] as const;

function swanConf(): string {
  return `connections {
  cluster {
    remote_addrs = %any
    dpd_delay = 10s
    local { auth = psk }
    remote { auth = psk
      id = ${GW_ID} }
    children {
      net {
        local_ts = 192.168.100.0/24
        remote_ts = 10.10.0.0/16
        esp_proposals = aes128gcm16
        dpd_action = clear
      }
    }
  }
}
secrets { ike-lab { secret = "${LAB_PSK}" } }
`;
}

function ikegwConf(fe: (typeof FRONTENDS)[number], dir: string): string {
  return `connections:
  onprem:
    remote_addrs: ['198.51.100.1']
    local_addrs: ['${fe.addr}']
    local: { id: '${GW_ID}' }
    psk: { file: '${join(dir, 'psk')}' }
    children:
      cluster:
        local_ts: [10.10.0.0/16]
        remote_ts: [192.168.100.0/24]
        esp_proposals: [aes128gcm16]
        start_action: start
datapath: userspace
listen: { address: '${fe.addr}', port: 500, nat_port: 4500 }
metrics: { listen: '127.0.0.1:9500' }
control: { socket: '${join(dir, `${fe.name}.sock`)}' }
log: { level: info, format: json }
ha:
  lease: { name: ${LEASE}, namespace: ${NS} }
  lease_duration: 15s
  renew_deadline: 10s
  retry_period: 2s
`;
}

describe.skipIf(!avail.ok)(
  `HA failover of two ikegw daemons${avail.ok ? '' : ` (skipped: ${avail.why})`}`,
  () => {
    let lab: Lab;
    let api: FakeKubeApiServer;
    let charon: Charon;
    let dir: string;
    const procs: IkegwProcess[] = [];

    function startFrontend(i: 0 | 1, identity: string): IkegwProcess {
      const fe = FRONTENDS[i];
      const token = api.addToken(identity);
      const kc = join(dir, `${identity}.kubeconfig`);
      writeFileSync(kc, api.kubeConfig(token, 'https://127.0.0.1:6443').exportConfig());
      const cfg = join(dir, `${fe.name}.yaml`);
      writeFileSync(cfg, ikegwConf(fe, dir), { mode: 0o600 });
      const logFile = join(dir, `${identity}-${procs.length}.log`);
      const proc = lab.spawn(fe.role, process.execPath, [...NODE_FLAGS, CLI, 'daemon', '-c', cfg], {
        logFile,
        env: {
          IKEGW_KUBECONFIG: kc,
          POD_NAME: identity,
          IKEGW_TUN_NAME: 'ikegw0',
        },
      });
      const p = new IkegwProcess(proc, logFile);
      procs.push(p);
      return p;
    }

    /** One ping from the frontend's namespace to the on-prem host through the tunnel. */
    async function pingFrom(i: 0 | 1): Promise<boolean> {
      const r = await lab.exec(
        FRONTENDS[i].role,
        'ping',
        ['-n', '-q', '-c', '1', '-W', '1', '-I', INNER, lab.addr.onhost],
        { check: false, timeoutMs: 5000 },
      );
      return /1 (packets )?received/.test(r.stdout);
    }

    async function until(
      what: string,
      fn: () => Promise<boolean> | boolean,
      timeoutMs: number,
    ): Promise<number> {
      const t0 = Date.now();
      for (;;) {
        if (await fn()) return (Date.now() - t0) / 1000;
        if (Date.now() - t0 > timeoutMs)
          throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }

    const logHas = (p: IkegwProcess, re: RegExp): boolean => p.lines().some((l) => re.test(l.msg));

    async function udpBound(i: 0 | 1): Promise<boolean> {
      const r = await lab.exec(FRONTENDS[i].role, 'ss', ['-Hlun'], { check: false });
      return /:500\b|:4500\b/.test(r.stdout);
    }

    async function tunExists(i: 0 | 1): Promise<boolean> {
      const r = await lab.exec(FRONTENDS[i].role, 'ip', ['link', 'show', 'ikegw0'], { check: false });
      return r.code === 0;
    }

    async function onpremIkeSas(): Promise<number> {
      return (await charon.listSas()).filter((s) => s.state === 'ESTABLISHED').length;
    }

    beforeAll(async () => {
      lab = await createLab({ nat: false, endHosts: true });
      dir = mkdtempSync(join(lab.dir, 'ha-'));
      writeFileSync(join(dir, 'psk'), LAB_PSK, { mode: 0o600 });
      api = await FakeKubeApiServer.start({ socketPath: join(dir, 'api.sock') });
      api.create('leases', {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name: LEASE, namespace: NS },
        spec: {},
      } as KubeObj);
      for (const fe of FRONTENDS) {
        const ns = await lab.addNamespace(fe.role);
        const onIf = `to-${fe.role}`;
        await lab.exec('onprem', 'ip', [
          'link',
          'add',
          onIf,
          'type',
          'veth',
          'peer',
          'name',
          'wan0',
          'netns',
          ns,
        ]);
        await lab.exec('onprem', 'ip', ['addr', 'add', `${fe.onprem}/30`, 'dev', onIf]);
        await lab.exec('onprem', 'ip', ['link', 'set', onIf, 'up']);
        await lab.exec(fe.role, 'ip', ['addr', 'add', `${fe.addr}/30`, 'dev', 'wan0']);
        await lab.exec(fe.role, 'ip', ['link', 'set', 'wan0', 'up']);
        await lab.exec(fe.role, 'ip', ['route', 'add', 'default', 'via', fe.onprem]);
        await lab.exec(fe.role, 'ip', ['addr', 'add', `${INNER}/32`, 'dev', 'lo']);
        lab.spawn(fe.role, process.execPath, [
          NODE_SERVICES,
          join(dir, 'api.sock'),
          '127.0.0.1',
          '6443',
          join(dir, `${fe.role}-probe.sock`),
        ]);
      }
      charon = await lab.startCharon('onprem', { swanctlConf: swanConf() });
    }, 60_000);

    afterAll(async () => {
      await lab?.teardown();
      await api?.stop();
    });

    test(
      'kill -9 of the active daemon: the standby takes over, tunnel back within lease duration + 5 s; SIGTERM: immediate handover',
      async () => {
        onTestFailed(() => {
          for (const p of procs) console.log(`--- ${p.logFile} ---\n${p.text().slice(-5000)}`);
          console.log(`--- strongSwan ---\n${charon.logTail(80)}`);
        });
        const a = startFrontend(0, 'frontend-0');
        await a.waitFor((l) => /^ha: now active/.test(l.msg), 30_000);
        await until('tunnel through frontend-0', () => pingFrom(0), 20_000);
        const b = startFrontend(1, 'frontend-1');
        await b.waitFor((l) => /^ha: standby \(candidate/.test(l.msg), 30_000);
        // the standby keeps reading the Lease, binds nothing, has no TUN and no route
        await until('frontend-1 has read the Lease', () => api.requestsOf('frontend-1').length >= 2, 10_000);
        expect(await udpBound(1)).toBe(false);
        expect(await tunExists(1)).toBe(false);
        expect(await udpBound(0)).toBe(true);
        expect(logHas(b, /ikegw started/)).toBe(false);
        expect(api.get('leases', NS, LEASE)?.spec).toMatchObject({ holderIdentity: 'frontend-0' });

        // --- kill -9 of the active one
        a.proc.kill('SIGKILL');
        const tKill = Date.now();
        await a.proc.exited;
        const back = await until('tunnel through frontend-1', () => pingFrom(1), 30_000);
        const active = b.lines().find((l) => /^ha: active/.test(l.msg));
        console.log(
          `ha: kill -9 of the active daemon -> first ping through the new active after ${back.toFixed(1)} s (lease 15 s; took the Lease after ${((Date.parse(String(active?.time)) - tKill) / 1000).toFixed(1)} s: ${active?.msg})`,
        );
        expect(back).toBeLessThan(15 + 5);
        expect(active?.msg).toMatch(/^ha: active \(expired\)/);
        await until(
          'one IKE_SA on the peer (INITIAL_CONTACT replaced the dead one)',
          async () => (await onpremIkeSas()) === 1,
          10_000,
        );

        // --- frontend-0 comes back (same pod name): standby
        const a2 = startFrontend(0, 'frontend-0');
        await a2.waitFor((l) => /^ha: standby \(candidate/.test(l.msg), 30_000);
        await until(
          'frontend-0 has read the Lease twice',
          () => api.requestsOf('frontend-0').length >= 2,
          10_000,
        );
        expect(await udpBound(0)).toBe(false);

        // --- SIGTERM of the active one: steps down, releases, the standby takes over at its next read
        b.proc.kill('SIGTERM');
        const tTerm = Date.now();
        await b.proc.exited;
        expect(logHas(b, /^ha: standby \(shutdown\)/)).toBe(true);
        expect(api.get('leases', NS, LEASE)?.spec).not.toMatchObject({ holderIdentity: 'frontend-1' });
        const handover = await until('tunnel through frontend-0 again', () => pingFrom(0), 15_000);
        const total = (Date.now() - tTerm) / 1000;
        console.log(
          `ha: SIGTERM of the active daemon -> first ping through the new active after ${total.toFixed(1)} s (${handover.toFixed(1)} s after it had exited; retry 2 s)`,
        );
        expect(total).toBeLessThan(8);
        expect(a2.lines().find((l) => /^ha: active/.test(l.msg))?.msg).toMatch(
          /^ha: active \(released-by-peer\)/,
        );
        await until('one IKE_SA on the peer', async () => (await onpremIkeSas()) === 1, 10_000);

        // IKEGW_HA_RUNS=N: N-1 more kill -9 cycles for the distribution of the failover time
        const times = [back];
        let cur: { p: IkegwProcess; i: 0 | 1 } = { p: a2, i: 0 };
        for (let run = 1; run < RUNS; run++) {
          const other: 0 | 1 = cur.i === 0 ? 1 : 0;
          const name = FRONTENDS[other].name;
          const t0 = Date.now();
          const standby = startFrontend(other, name);
          await standby.waitFor((l) => /^ha: standby \(candidate/.test(l.msg), 30_000);
          await until(
            `${name} has read the Lease twice`,
            () => api.requestsOf((r) => r.user === name && r.at >= t0).length >= 2,
            10_000,
          );
          cur.p.proc.kill('SIGKILL');
          await cur.p.proc.exited;
          const t = await until(`tunnel through ${name}`, () => pingFrom(other), 30_000);
          times.push(t);
          expect(t).toBeLessThan(15 + 5);
          await until('one IKE_SA on the peer', async () => (await onpremIkeSas()) === 1, 10_000);
          cur = { p: standby, i: other };
        }
        if (times.length > 1) {
          const sorted = [...times].sort((x, y) => x - y);
          const q = (p: number): number =>
            sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]!;
          console.log(
            `ha: kill -9 -> first ping through the new active, ${times.length} runs: p50 ${q(0.5).toFixed(1)} s, p90 ${q(0.9).toFixed(1)} s, min ${sorted[0]!.toFixed(1)} s, max ${sorted.at(-1)!.toFixed(1)} s (${times.map((x) => x.toFixed(1)).join(', ')})`,
          );
        }

        // --- the active one loses the API server (its requests hang): it steps down by itself
        // (renew deadline 10 s) and has closed its sockets before the other takes the Lease (15 s);
        // both namespaces' UDP sockets are looked at every 100 ms throughout
        const other: 0 | 1 = cur.i === 0 ? 1 : 0;
        const otherName = FRONTENDS[other].name;
        const t0 = Date.now();
        const standby = startFrontend(other, otherName);
        await standby.waitFor((l) => /^ha: standby \(candidate/.test(l.msg), 30_000);
        await until(
          `${otherName} has read the Lease twice`,
          () => api.requestsOf((r) => r.user === otherName && r.at >= t0).length >= 2,
          10_000,
        );
        const cutName = FRONTENDS[cur.i].name;
        const heal = await api.cut((r) => r.user === cutName, 'hang');
        const tCut = Date.now();
        const bothBound: number[] = [];
        let stepDownAt: number | undefined;
        let takeOverAt: number | undefined;
        while (Date.now() - tCut < 25_000) {
          const [u0, u1] = await Promise.all([udpBound(cur.i), udpBound(other)]);
          const t = (Date.now() - tCut) / 1000;
          if (u0 && u1) bothBound.push(t);
          if (!u0 && stepDownAt === undefined) stepDownAt = t;
          if (u1 && takeOverAt === undefined) takeOverAt = t;
          if (takeOverAt !== undefined && (await pingFrom(other))) break;
          await new Promise((r) => setTimeout(r, 100));
        }
        const backCut = (Date.now() - tCut) / 1000;
        const downLine = cur.p.lines().find((l) => /^ha: stepped down/.test(l.msg));
        const upLine = standby.lines().find((l) => /^ha: active/.test(l.msg));
        console.log(
          `ha: API server cut off from the active one: sockets closed at ${stepDownAt} s, the other bound at ${takeOverAt} s, tunnel back at ${backCut.toFixed(1)} s (log: stepped down ${(Date.parse(String(downLine?.time)) - tCut) / 1000} s, other active ${(Date.parse(String(upLine?.time)) - tCut) / 1000} s)`,
        );
        expect(bothBound).toEqual([]);
        expect(stepDownAt).toBeDefined();
        expect(takeOverAt).toBeDefined();
        expect(stepDownAt!).toBeLessThan(takeOverAt!);
        expect(stepDownAt!).toBeLessThan(11);
        expect(Date.parse(String(downLine?.time))).toBeLessThan(Date.parse(String(upLine?.time)));
        expect(cur.p.lines().some((l) => /^ha: standby \(renew-failed\)/.test(l.msg))).toBe(true);
        expect(upLine?.msg).toMatch(/^ha: active \(expired\)/);
        expect(await pingFrom(other)).toBe(true);
        await heal();
        // the cut-off one reads the Lease again, sees the other holder and stays standby
        await until(
          `${cutName} reads the Lease again`,
          () =>
            api.requestsOf((r) => r.user === cutName && r.at > Date.now() - 3000 && r.status === 200).length >
            0,
          15_000,
        );
        expect(await udpBound(cur.i)).toBe(false);
        expect(await tunExists(cur.i)).toBe(false);
        await until('one IKE_SA on the peer', async () => (await onpremIkeSas()) === 1, 10_000);

        // --- the other one is stopped: the one that stepped down becomes active again in the same
        // process (a new TUN device, new sockets) and the tunnel comes back through it
        standby.proc.kill('SIGTERM');
        await standby.proc.exited;
        const again = await until(`tunnel through ${cutName} again`, () => pingFrom(cur.i), 15_000);
        console.log(
          `ha: the replica that had stepped down is active again in the same process: ping after ${again.toFixed(1)} s`,
        );
        expect(cur.p.lines().filter((l) => /^ikegw started/.test(l.msg))).toHaveLength(2);
        await until('one IKE_SA on the peer', async () => (await onpremIkeSas()) === 1, 10_000);
      },
      240_000 + RUNS * 40_000,
    );
  },
);
