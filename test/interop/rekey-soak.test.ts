// Rekey soak against strongSwan 5.9.8 through the lab's masquerading NAT: short lifetimes on both
// sides (CHILD_SA rekey every ~10 s, IKE_SA every ~30 s, each end initiating some of them) while
// the pod pings an on-prem host every 50 ms through the tunnel (ikegw's userspace ESP data path,
// strongSwan's kernel-libipsec). Then: zero lost pings, and exactly one IKE_SA and one CHILD_SA on
// each side with matching SPIs. IKEGW_SOAK_SECONDS sets the length (default 120).
import { afterAll, beforeAll, describe, expect, onTestFailed, test } from 'vitest';
import { type IkegwProcess, startIkegw } from './ikegw-daemon.js';
import { type Charon, createLab, LAB_PSK, type Lab, labAvailable } from './lab.js';

const avail = labAvailable();
const SECONDS = Number(process.env.IKEGW_SOAK_SECONDS ?? 120);

describe.skipIf(!avail.ok)(
  `rekey soak with strongSwan, ${SECONDS} s${avail.ok ? '' : ` (skipped: ${avail.why})`}`,
  () => {
    let lab: Lab;
    let onprem: Charon;
    let ikegw: IkegwProcess;

    beforeAll(async () => {
      lab = await createLab({ nat: true, endHosts: true });
      onprem = await lab.startCharon('onprem', {
        swanctlConf: `connections {
  cluster {
    remote_addrs = ${lab.addr.clusterPublic}
    rekey_time = 30s
    over_time = 10s
    rand_time = 5s
    local { auth = psk }
    remote { auth = psk }
    children {
      net {
        local_ts = ${lab.nets.onpremLan}
        remote_ts = 10.10.0.0/16,10.96.0.0/12
        rekey_time = 10s
        life_time = 20s
        rand_time = 3s
        esp_proposals = aes128gcm16
      }
    }
  }
}
secrets { ike-lab { secret = "${LAB_PSK}" } }
`,
      });
      ikegw = startIkegw(
        lab,
        'cluster',
        'ikegw',
        `connections:
  onprem:
    remote_addrs: ['${lab.addr.onpremWan}']
    local_addrs: ['${lab.addr.clusterWan}']
    psk: { file: '@PSK_FILE@' }
    # IKE_SA: ikegw's timer (18-20 s) fires before strongSwan's (25-30 s); CHILD_SA: strongSwan's
    # (7-10 s) usually before ikegw's (9-10 s) — so both ends start rekeys.
    rekey_time: 20s
    dpd_delay: 5s
    children:
      cluster:
        local_ts: [10.10.0.0/16, 10.96.0.0/12]
        remote_ts: [${lab.nets.onpremLan}]
        start_action: start
        rekey_time: 10s
        life_time: 20s
        esp_proposals: [aes128gcm16]
datapath: userspace
listen: { address: '${lab.addr.clusterWan}', port: 500, nat_port: 4500 }
log: { level: debug, format: json }
`,
        LAB_PSK,
      );
      await ikegw.waitFor((l) => l.state === 'INSTALLED');
    });

    afterAll(async () => {
      await lab?.teardown();
    });

    test(
      'CHILD_SA and IKE_SA rekeys from both ends leave exactly one of each, SPIs matching',
      async () => {
        onTestFailed(() => {
          console.log(`--- ikegw log (tail) ---\n${ikegw.text().slice(-12000)}`);
          console.log(`--- strongSwan log ---\n${onprem.logTail(200)}`);
        });
        // ping every 50 ms for the whole soak; -W waits for late replies, the summary counts them
        const count = Math.floor((SECONDS * 1000) / 50);
        const ping = await lab.exec(
          'pod',
          'ping',
          ['-n', '-q', '-i', '0.05', '-W', '2', '-c', String(count), lab.addr.onhost],
          {
            timeoutMs: (SECONDS + 30) * 1000,
          },
        );
        const m = /(\d+) packets transmitted, (\d+) received/.exec(ping.stdout);
        expect(m, ping.stdout + ping.stderr).not.toBeNull();
        const [sent, got] = [Number(m![1]), Number(m![2])];
        console.log(`soak: ${sent} pings sent, ${got} answered`);
        expect(sent).toBe(count);
        expect(got).toBe(sent);
        // Let an exchange in flight finish, then require a quiet, consistent state.
        let ok = false;
        for (let i = 0; i < 40 && !ok; i++) {
          const sas = await onprem.listSas();
          const one =
            sas.length === 1 &&
            sas[0]!.state === 'ESTABLISHED' &&
            sas[0]!.children.length === 1 &&
            sas[0]!.children[0]!.state === 'INSTALLED';
          if (one) ok = true;
          else await new Promise((r) => setTimeout(r, 250));
        }
        const sas = await onprem.listSas();
        expect(sas).toHaveLength(1);
        expect(sas[0]!.children).toHaveLength(1);
        const lines = ikegw.lines();
        // Rekeys ikegw started (IKE_SA or CHILD_SA; whoever's timer fires first wins, so no split is fixed).
        const rekeysByIkegw = lines.filter((l) => l.state === 'REKEYING').length;
        const ikeSas = lines.filter(
          (l) => l.state === 'ESTABLISHED' && typeof l.algorithms === 'string',
        ).length;
        const strongswanRekeys = (
          onprem
            .log()
            .match(/rekeying CHILD_SA|initiating IKE_SA .* rekey|CHILD_SA .* rekeyed|IKE_SA .* rekeyed/g) ??
          []
        ).length;
        expect(rekeysByIkegw).toBeGreaterThan(0);
        expect(strongswanRekeys).toBeGreaterThan(0);
        expect(ikeSas).toBeGreaterThanOrEqual(1 + Math.floor(SECONDS / 40));
        // ikegw's view: the latest installed CHILD_SA is strongSwan's only one, crosswise.
        const installed = lines.filter((l) => l.state === 'INSTALLED');
        const deleted = new Set(lines.filter((l) => l.state === 'DELETED').map((l) => l.spiIn));
        const live = installed.filter((l) => !deleted.has(l.spiIn));
        expect(live).toHaveLength(1);
        expect(sas[0]!.children[0]!.spiIn).toBe(String(live[0]!.spiOut));
        expect(sas[0]!.children[0]!.spiOut).toBe(String(live[0]!.spiIn));
        const internal = lines.filter((l) => typeof l.msg === 'string' && /internal error/.test(l.msg));
        expect(internal).toEqual([]);
      },
      (SECONDS + 60) * 1000,
    );
  },
);
