// Secrets never leave ikegw: an ikegw <-> strongSwan tunnel through the NAT with every ikegw log
// subsystem at `trace`, traffic both ways over the userspace data path, and a second connection
// whose (inline) PSK is wrong. Then every ikegw log line, the /metrics text, and the CLI's
// `sas --json`, `stats --json` and `initiate` outputs are searched for
//   - both pre-shared keys (text, hex, base64, byte lists),
//   - every key strongSwan derived for the same SAs (its log at level 4 dumps SKEYSEED, SK_d,
//     SK_a/e/p, the DH shared secret and the ESP keys: they are ikegw's keys too),
//   - and any run of 32+ hex digits at all (16+ bytes), which ikegw has no reason to print: IKE
//     SPIs are 16 hex digits, ESP SPIs 8; nonces, NAT-D hashes and AUTH data are never logged.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, onTestFailed, test } from 'vitest';
import { CLI, type IkegwProcess, startIkegw } from './ikegw-daemon.js';
import { type Charon, createLab, LAB_PSK, type Lab, labAvailable, logHexDumps } from './lab.js';

const avail = labAvailable();
const WRONG_PSK = 'ops-wrong-psk-5e2d9c1b7a40';
const CLUSTER_TS = ['10.10.0.0/16', '10.96.0.0/12'];

function swanConf(remote: string): string {
  return `connections {
  cluster {
    remote_addrs = ${remote}
    local {
      auth = psk
    }
    remote {
      auth = psk
    }
    children {
      net {
        local_ts = 192.168.100.0/24
        remote_ts = ${CLUSTER_TS.join(',')}
      }
    }
  }
}
secrets {
  ike-lab {
    secret = "${LAB_PSK}"
  }
}
`;
}

function ikegwConf(local: string, remote: string, socket: string): string {
  const conn = (name: string, psk: string, start: string) => `  ${name}:
    remote_addrs: ['${remote}']
    local_addrs: ['${local}']
    psk: ${psk}
    dpd_delay: 0
    children:
      cluster:
        local_ts: [${CLUSTER_TS.join(', ')}]
        remote_ts: [192.168.100.0/24]
        start_action: ${start}
`;
  const all = ['daemon', 'ike', 'child', 'net', 'kernel', 'config', 'k8s']
    .map((s) => `${s}: trace`)
    .join(', ');
  return `connections:
${conn('onprem', "{ file: '@PSK_FILE@' }", 'trap')}${conn('wrongpsk', `{ value: '${WRONG_PSK}' }`, 'none')}datapath: userspace
listen: { address: '${local}', port: 500, nat_port: 4500 }
metrics: { listen: '127.0.0.1:9090' }
control: { socket: '${socket}' }
log: { level: trace, format: json, subsystems: { ${all} } }
`;
}

/** Every spelling of a secret that could end up in text. */
function spellings(bytes: Buffer): string[] {
  const hex = bytes.toString('hex');
  const out = [
    hex,
    hex.toUpperCase(),
    bytes.toString('base64').replace(/=+$/, ''),
    bytes.toString('base64url').replace(/=+$/, ''),
    // a Uint8Array printed as a list or by JSON.stringify
    Array.from(bytes.subarray(0, 8)).join(','),
    Array.from(bytes.subarray(0, 8)).join(', '),
    Array.from(bytes.subarray(0, 4))
      .map((b, i) => `"${i}":${b}`)
      .join(','),
    // hex with separators (strongSwan-style dumps, colon lists)
    Array.from(bytes.subarray(0, 8))
      .map((b) => b.toString(16).padStart(2, '0'))
      .join(':'),
    Array.from(bytes.subarray(0, 8))
      .map((b) => b.toString(16).padStart(2, '0'))
      .join(' '),
  ];
  const text = bytes.toString('utf8');
  if (/^[\x20-\x7e]+$/.test(text)) out.push(text);
  return out.filter((s) => s.length >= 8);
}

describe.skipIf(!avail.ok)(
  `secrets stay out of logs, metrics and CLI output${avail.ok ? '' : ` (skipped: ${avail.why})`}`,
  () => {
    let lab: Lab | undefined;
    afterAll(async () => {
      await lab?.teardown();
    });

    test('ikegw at trace, strongSwan at level 4: no PSK, no key, no long hex anywhere', async () => {
      lab = await createLab({ nat: true, endHosts: true });
      const onprem: Charon = await lab.startCharon('onprem', {
        swanctlConf: swanConf(lab.addr.clusterPublic),
        logLevel: 4, // ike and chd at 4: strongSwan logs every derived key
      });
      const socket = join(lab.dir, 'ikegw.sock');
      const ikegw: IkegwProcess = startIkegw(
        lab,
        'cluster',
        'ikegw',
        ikegwConf(lab.addr.clusterWan, lab.addr.onpremWan, socket),
        LAB_PSK,
      );
      onTestFailed(() => {
        console.log(`--- ikegw log ---\n${ikegw.text().slice(-8000)}`);
        console.log(`--- strongSwan log ---\n${onprem.logTail(60)}`);
      });
      await ikegw.waitFor((l) => typeof l.msg === 'string' && l.msg.startsWith('ikegw started'));
      const l = lab;
      const cli = async (...args: string[]) =>
        l.exec('cluster', process.execPath, [CLI, ...args, '--socket', socket], {
          check: false,
          timeoutMs: 30_000,
        });
      const get = async (path: string) =>
        (
          await l.exec(
            'cluster',
            process.execPath,
            [
              '-e',
              `fetch('http://127.0.0.1:9090${path}').then(r=>r.text()).then(t=>process.stdout.write(t))`,
            ],
            { timeoutMs: 10_000 },
          )
        ).stdout;

      // the tunnel, by traffic (trap), and traffic both ways
      const deadline = Date.now() + 5000;
      while (!(await get('/readyz')).includes('"ready":true')) {
        if (Date.now() > deadline) throw new Error(`not ready: ${await get('/readyz')}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      await lab.exec('pod', 'ping', ['-n', '-c', '1', '-W', '8', lab.addr.onhost], {
        check: false,
        timeoutMs: 15_000,
      });
      await ikegw.waitFor((x) => x.state === 'INSTALLED');
      expect(await lab.ping('pod', lab.addr.onhost, { count: 3, intervalS: 0.1 })).toBe(3);
      expect(await lab.ping('onhost', lab.addr.pod, { count: 3, intervalS: 0.1 })).toBe(3);

      // the wrong PSK: strongSwan refuses our AUTH
      const bad = await cli('initiate', 'wrongpsk', '--timeout', '10');
      expect(bad.code).toBe(1);
      expect(bad.stderr).toMatch(/AUTHENTICATION_FAILED/);
      await ikegw.waitFor((x) => x.reason === 'AUTHENTICATION_FAILED');

      const outputs: Record<string, string> = {
        'ikegw log': ikegw.text(),
        '/metrics': await get('/metrics'),
        '/readyz': await get('/readyz'),
        'ikegw sas --json': (await cli('sas', '--json')).stdout,
        'ikegw sas': (await cli('sas')).stdout,
        'ikegw stats --json': (await cli('stats', '--json')).stdout,
        'ikegw initiate wrongpsk': `${bad.stdout}${bad.stderr}`,
      };
      expect(outputs['ikegw sas']).toMatch(/onprem: #\d+, ESTABLISHED/);
      expect(outputs['/metrics']).toMatch(
        /ikegw_ike_handshakes_total\{conn="wrongpsk",role="initiator",result="authentication_failed"\} 1/,
      );
      const lines = outputs['ikegw log']!.split('\n').filter((x) => x.startsWith('{'));
      expect(lines.length).toBeGreaterThan(20);
      expect(lines.some((x) => x.includes('"level":"trace"') || x.includes('"level":"debug"'))).toBe(true);

      // what must not appear
      const forbidden = new Map<string, string[]>();
      forbidden.set('the PSK', spellings(Buffer.from(LAB_PSK)));
      forbidden.set('the wrong PSK', spellings(Buffer.from(WRONG_PSK)));
      const dumps = logHexDumps(onprem.log());
      const keyLabels = [...dumps.keys()].filter((k) => /secret|SKEYSEED|Sk_|key|nonce|prf/i.test(k));
      expect(keyLabels).toEqual(
        expect.arrayContaining(['SKEYSEED', 'Sk_d secret', 'encryption initiator key']),
      );
      let keys = 0;
      for (const label of keyLabels) {
        for (const hex of dumps.get(label) ?? []) {
          if (hex.length < 16) continue;
          forbidden.set(`strongSwan's "${label}" #${keys++}`, spellings(Buffer.from(hex, 'hex')));
        }
      }
      expect(keys).toBeGreaterThan(10);

      const leaks: string[] = [];
      for (const [where, text] of Object.entries(outputs)) {
        for (const [what, forms] of forbidden) {
          for (const f of forms)
            if (text.includes(f)) leaks.push(`${what} (as ${JSON.stringify(f.slice(0, 24))}) in ${where}`);
        }
        for (const m of text.matchAll(/[0-9a-fA-F]{32,}/g))
          leaks.push(`${m[0].length / 2}-byte hex run in ${where}: ${m[0].slice(0, 24)}...`);
      }
      expect(leaks).toEqual([]);

      // the config file held the wrong PSK inline: it is not echoed back by the daemon either
      expect(readFileSync(join(lab.dir, 'ikegw.yaml'), 'utf8')).toContain(WRONG_PSK);
    }, 90_000);
  },
);
