// The daemon as a process (`node dist/bin/ikegw.js daemon`), in a lab namespace: what it writes to
// stdout and stderr, and how it answers signals.
//
//   - Its output is a JSON log stream: a collector (kubectl logs, Loki, journald) must be able to
//     parse every line of both streams. Node's own warnings (e.g. DEP0112 for reading a dgram
//     socket's `_handle`) would be plain text on stderr.
//   - SIGHUP means `ikegw reload` (as for charon and most daemons), not Node's default: death.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, onTestFailed, test } from 'vitest';
import { nativeAvailable } from '../../src/common/native.js';
import { CLI, IkegwProcess } from './ikegw-daemon.js';
import { type Charon, createLab, LAB_PSK, type Lab, labAvailable, run } from './lab.js';
import { until } from './wait.js';

const lab0 = labAvailable();
// The userspace data path needs the native addon (TUN): skip locally without it, fail in CI.
const native = nativeAvailable();
const avail = !lab0.ok ? lab0 : native.ok || process.env.CI ? { ok: true } : { ok: false, why: native.why };
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
        esp_proposals = aes128gcm16
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

function ikegwConf(o: {
  local: string;
  remote: string;
  datapath: string;
  socket: string;
  pskFile: string;
  log?: string;
}): string {
  return `connections:
  onprem:
    remote_addrs: ['${o.remote}']
    local_addrs: ['${o.local}']
    psk: { file: '${o.pskFile}' }
    dpd_delay: 0
    children:
      cluster:
        local_ts: [${CLUSTER_TS.join(', ')}]
        remote_ts: [192.168.100.0/24]
        esp_proposals: [aes128gcm16]
        start_action: trap
datapath: ${o.datapath}
listen: { address: '${o.local}', port: 500, nat_port: 4500 }
control: { socket: '${o.socket}' }
log: ${o.log ?? '{ level: info, format: json }'}
`;
}

interface Daemon {
  ikegw: IkegwProcess;
  cfg: string;
  socket: string;
  stderrFile: string;
  stderr(): string;
}

/**
 * Starts `node dist/bin/ikegw.js daemon -c <cfg>` in the cluster namespace with stdout (the log) and
 * stderr in separate files: `sh -c 'exec …'` only redirects stderr; the process is the daemon.
 */
function startDaemon(lab: Lab, name: string, yaml: (pskFile: string, socket: string) => string): Daemon {
  const pskFile = join(lab.dir, `${name}.psk`);
  writeFileSync(pskFile, LAB_PSK, { mode: 0o600 });
  const socket = join(lab.dir, `${name}.sock`);
  const cfg = join(lab.dir, `${name}.yaml`);
  writeFileSync(cfg, yaml(pskFile, socket));
  const logFile = join(lab.dir, `${name}.log`);
  const stderrFile = join(lab.dir, `${name}.stderr`);
  writeFileSync(stderrFile, '');
  const proc = lab.spawn(
    'cluster',
    '/bin/sh',
    ['-c', 'exec "$0" "$@" 2>>"$IKEGW_STDERR_FILE"', process.execPath, CLI, 'daemon', '-c', cfg],
    { logFile, env: { IKEGW_STDERR_FILE: stderrFile } },
  );
  return {
    ikegw: new IkegwProcess(proc, logFile),
    cfg,
    socket,
    stderrFile,
    stderr: () => readFileSync(stderrFile, 'utf8'),
  };
}

/** Every non-empty line that does not parse as a JSON object. */
function nonJsonLines(text: string): string[] {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .filter((l) => {
      try {
        const v: unknown = JSON.parse(l);
        return typeof v !== 'object' || v === null || Array.isArray(v);
      } catch {
        return true;
      }
    });
}

describe.skipIf(!avail.ok)(
  `the daemon process: JSON-only output, signals${avail.ok ? '' : ` (skipped: ${avail.why})`}`,
  () => {
    let lab: Lab;
    const running: Daemon[] = [];
    const charons: Charon[] = [];
    afterEach(async () => {
      for (const d of running.splice(0)) await d.ikegw.proc.stop('SIGTERM', 10_000);
      for (const c of charons.splice(0)) await c.stop();
    });
    beforeAll(async () => {
      lab = await createLab({ nat: true, endHosts: true });
    }, 30_000);
    afterAll(async () => {
      await lab?.teardown();
    });

    const dump = (d: Daemon, charon?: Charon): void => {
      onTestFailed(() => {
        console.log(`--- ikegw log ---\n${d.ikegw.text().slice(-8000)}`);
        console.log(`--- ikegw stderr ---\n${d.stderr().slice(-4000)}`);
        if (charon) console.log(`--- strongSwan log ---\n${charon.logTail(60)}`);
      });
    };

    test('a NAT-T tunnel over the userspace data path: stdout and stderr carry JSON log lines only', async () => {
      const charon = await lab.startCharon('onprem', { swanctlConf: swanConf(lab.addr.clusterPublic) });
      charons.push(charon);
      const d = startDaemon(lab, 'userspace', (pskFile, socket) =>
        ikegwConf({
          local: lab.addr.clusterWan,
          remote: lab.addr.onpremWan,
          datapath: 'userspace',
          socket,
          pskFile,
        }),
      );
      running.push(d);
      dump(d, charon);
      await d.ikegw.waitFor((l) => /userspace ESP data path on TUN device/.test(l.msg));
      await until('the trap route into ikegw0', async () => {
        const r = await lab.exec('cluster', 'ip', ['route', 'show', 'dev', 'ikegw0'], { check: false });
        return r.stdout.includes('192.168.100.0/24') ? true : undefined;
      });
      // the first packet raises the acquire; behind the NAT both sides float to UDP 4500, and
      // ESP goes out in sendmmsg batches on the daemon's NAT-T socket
      const first = await lab.exec('pod', 'ping', ['-n', '-c', '1', '-W', '8', lab.addr.onhost], {
        check: false,
        timeoutMs: 15_000,
      });
      expect(first.stdout).toMatch(/1 received/);
      const child = await d.ikegw.waitFor((l) => l.state === 'INSTALLED');
      expect(child.encap).toBe(true);
      expect(await lab.ping('pod', lab.addr.onhost, { count: 5 })).toBe(5);
      expect(await lab.ping('onhost', lab.addr.pod, { count: 5 })).toBe(5);
      await d.ikegw.proc.stop('SIGTERM', 10_000);
      expect(await d.ikegw.proc.exited).toBe(0);
      expect(nonJsonLines(d.stderr())).toEqual([]);
      expect(nonJsonLines(d.ikegw.text())).toEqual([]);
      expect(d.ikegw.lines().some((l) => l.msg === 'stopped')).toBe(true);
    }, 60_000);

    test('the xfrm data path: UDP_ENCAP is set on the NAT-T socket (ESP-in-UDP goes to the kernel), JSON-only output', async () => {
      const d = startDaemon(lab, 'xfrm', (pskFile, socket) =>
        ikegwConf({
          local: lab.addr.clusterWan,
          remote: lab.addr.onpremWan,
          datapath: 'xfrm',
          socket,
          pskFile,
        }),
      );
      running.push(d);
      dump(d);
      await d.ikegw.waitFor((l) => /^ikegw started/.test(l.msg));
      // With UDP_ENCAP_ESPINUDP on the socket the kernel takes ESP-in-UDP (non-zero SPI) away from
      // the daemon: for an SPI it has no state for it counts XfrmInNoStates, or, where no ESP
      // protocol handler is loaded (this host's kernel), answers with ICMP port unreachable.
      // Without the option the datagram would just reach the daemon and neither counter moves.
      const counters = async (): Promise<{ noStates: number; unreach: number }> => {
        const x = await lab.exec('cluster', 'cat', ['/proc/net/xfrm_stat']);
        const n = /^XfrmInNoStates\s+(\d+)/m.exec(x.stdout);
        if (!n) throw new Error(`no XfrmInNoStates in /proc/net/xfrm_stat:\n${x.stdout}`);
        const snmp = (await lab.exec('cluster', 'cat', ['/proc/net/snmp'])).stdout.split('\n');
        const [head, vals] = snmp.filter((l) => l.startsWith('Icmp: '));
        const i = head?.split(' ').indexOf('OutDestUnreachs') ?? -1;
        if (i < 0 || !vals) throw new Error(`no Icmp OutDestUnreachs in /proc/net/snmp`);
        return { noStates: Number(n[1]), unreach: Number(vals.split(' ')[i]) };
      };
      const before = await counters();
      const esp = 'c0de00010000000100112233445566778899aabbccddeeff';
      const script = `const s=require('dgram').createSocket('udp4');s.send(Buffer.from('${esp}','hex'),4500,'${lab.addr.clusterWan}',()=>s.close());`;
      await lab.exec('cluster', process.execPath, ['-e', script], { timeoutMs: 10_000 });
      await until(
        'the kernel to take the ESP-in-UDP datagram (XfrmInNoStates or ICMP unreachable)',
        async () => {
          const now = await counters();
          return now.noStates > before.noStates || now.unreach > before.unreach ? true : undefined;
        },
      );
      expect(d.ikegw.lines().filter((l) => /UDP_ENCAP/.test(l.msg))).toEqual([]);
      await d.ikegw.proc.stop('SIGTERM', 10_000);
      expect(await d.ikegw.proc.exited).toBe(0);
      expect(nonJsonLines(d.stderr())).toEqual([]);
      expect(nonJsonLines(d.ikegw.text())).toEqual([]);
    }, 30_000);

    test('SIGHUP reloads the configuration like `ikegw reload`: the daemon stays up and applies log levels', async () => {
      const yaml = (log?: string) => (pskFile: string, socket: string) =>
        ikegwConf({
          local: lab.addr.clusterWan,
          remote: lab.addr.onpremWan,
          datapath: 'memory',
          socket,
          pskFile,
          ...(log ? { log } : {}),
        });
      const d = startDaemon(lab, 'sighup', yaml());
      running.push(d);
      dump(d);
      await d.ikegw.waitFor((l) => /^ikegw started/.test(l.msg));
      const levels = async (): Promise<Record<string, string>> => {
        const r = await run(process.execPath, [CLI, 'log-level', '--socket', d.socket], { check: false });
        expect(r.code, r.stderr).toBe(0);
        return Object.fromEntries(
          r.stdout
            .trim()
            .split('\n')
            .map((l) => l.trim().split(/\s+/) as [string, string]),
        );
      };
      await until('the control socket', async () => {
        const r = await run(process.execPath, [CLI, 'log-level', '--socket', d.socket], { check: false });
        return r.code === 0 ? true : undefined;
      });
      expect((await levels()).ike).toBe('info');

      // a changed log section in the file, then SIGHUP
      const pskFile = join(lab.dir, 'sighup.psk');
      writeFileSync(
        d.cfg,
        yaml('{ level: debug, format: json, subsystems: { net: warn } }')(pskFile, d.socket),
      );
      d.ikegw.proc.kill('SIGHUP');
      const reloaded = await d.ikegw.waitFor((l) => /^reload: applied/.test(l.msg));
      expect(reloaded.msg).toBe('reload: applied log levels (default debug, net=warn)');
      expect(d.ikegw.lines().some((l) => l.msg === 'reload requested (SIGHUP)')).toBe(true);
      expect(d.ikegw.proc.running).toBe(true);
      expect(await levels()).toMatchObject({ daemon: 'debug', ike: 'debug', net: 'warn' });

      // an invalid file: nothing changes, the daemon stays up
      writeFileSync(d.cfg, 'connections: {}\nlisten: 5\n');
      d.ikegw.proc.kill('SIGHUP');
      await d.ikegw.waitFor((l) => /^reload: configuration invalid, nothing changed/.test(l.msg));
      expect(d.ikegw.proc.running).toBe(true);
      expect(await levels()).toMatchObject({ ike: 'debug', net: 'warn' });

      await d.ikegw.proc.stop('SIGTERM', 10_000);
      expect(await d.ikegw.proc.exited).toBe(0);
      expect(nonJsonLines(d.stderr())).toEqual([]);
    }, 30_000);
  },
);
