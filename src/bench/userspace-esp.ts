// Userspace ESP throughput: iperf3 TCP through ikegw (datapath: userspace) <-> strongSwan, against
// strongSwan <-> strongSwan, both ends kernel-libipsec, same topology, same ESP (AES-GCM-16/128,
// ESP-in-UDP through a masquerading NAT), in one run. Needs root, strongSwan (kernel-libipsec) and
// iperf3; namespaces `ikgwu<pid%10000>-*` live only for the run (bounded, ~30 s).
//
//   pod 10.10.1.10 -- cluster gw 172.30.0.2 -- nat 198.51.100.254 -- onprem gw 198.51.100.1 -- onhost 192.168.100.10
//
// The cluster gateway under test (ikegw or charon) is pinned to CPU 1, the on-prem charon to CPU 0;
// iperf3 runs unpinned. CPU per Gbit is the cluster gateway's process CPU time (user + system,
// /proc/<pid>/stat, all threads) during the transfer divided by the Gbit moved. Ping RTT is the
// median over the rounds of the average of 10 echo requests pod -> onhost through the tunnel.
import { existsSync } from 'node:fs';
import {
  CHARON,
  type Charon,
  CLI,
  cpuSeconds,
  findDescendant,
  Lab,
  LIBIPSEC,
  median,
  SWANCTL,
  sh,
  sleep,
  tailOf,
  waitFor,
} from './lab.js';

const PSK = 'bench-psk-userspace-esp-5c1d';
const CLUSTER_TS = '10.10.0.0/16,10.96.0.0/12';
const ONPREM_TS = '192.168.100.0/24';
const A = {
  pod: '10.10.1.10',
  clusterLan: '10.10.1.1',
  clusterSvc: '10.96.0.1',
  clusterWan: '172.30.0.2',
  natIn: '172.30.0.1',
  natOut: '198.51.100.254',
  onpremWan: '198.51.100.1',
  onpremLan: '192.168.100.1',
  onhost: '192.168.100.10',
};

export interface UserspaceEspBenchOptions {
  /** Seconds per iperf3 run (default 4). */
  seconds?: number;
}

interface RunResult {
  gateway: 'ikegw' | 'strongswan';
  mbitUp: number;
  mbitDown: number;
  cpuSecUp: number;
  cpuSecDown: number;
  gbitUp: number;
  gbitDown: number;
  rttMs: number;
  /** Drops on the cluster gateway that limit TCP: UDP receive buffer errors, TUN tx drops. */
  diag: string;
}

type Node = 'pod' | 'cluster' | 'nat' | 'onprem' | 'onhost';
type Topology = Lab<Node>;

const NO_IPV6 = ['net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1'];
const ROUTER = [
  'net.ipv4.ip_forward=1',
  'net.ipv4.conf.all.rp_filter=0',
  'net.ipv4.conf.default.rp_filter=0',
];

async function topology(tag: string): Promise<Topology> {
  const t = await Lab.create<Node>({
    prefix: `ikgwu${process.pid % 10000}-${tag}-`,
    tmpPrefix: 'ikegw-espbench-',
    nodes: {
      pod: {
        sysctlsFirst: NO_IPV6,
        addrs: [`${A.pod}/24 dev eth0`],
        routes: [`default via ${A.clusterLan}`],
      },
      cluster: {
        sysctlsFirst: NO_IPV6,
        sysctls: ROUTER,
        addrs: [`${A.clusterLan}/24 dev lan0`, `${A.clusterSvc}/32 dev lan0`, `${A.clusterWan}/24 dev wan0`],
        routes: [`default via ${A.natIn}`],
      },
      nat: {
        sysctlsFirst: NO_IPV6,
        sysctls: ROUTER,
        addrs: [`${A.natIn}/24 dev in0`, `${A.natOut}/24 dev out0`],
      },
      onprem: {
        sysctlsFirst: NO_IPV6,
        sysctls: ROUTER,
        addrs: [`${A.onpremWan}/24 dev wan0`, `${A.onpremLan}/24 dev lan0`],
      },
      onhost: {
        sysctlsFirst: NO_IPV6,
        addrs: [`${A.onhost}/24 dev eth0`],
        routes: [`default via ${A.onpremLan}`],
      },
    },
    links: [
      ['pod', 'eth0', 'cluster', 'lan0'],
      ['cluster', 'wan0', 'nat', 'in0'],
      ['nat', 'out0', 'onprem', 'wan0'],
      ['onprem', 'lan0', 'onhost', 'eth0'],
    ],
  });
  try {
    await t.exec(
      'nat',
      'nft',
      ['-f', '-'],
      `table ip ikgwu_nat {\n  chain post {\n    type nat hook postrouting priority srcnat; policy accept;\n    oifname "out0" masquerade random\n  }\n}\n`,
    );
  } catch (e) {
    await t.destroy();
    throw e;
  }
  return t;
}

/** charon with kernel-libipsec on a gateway of the topology. */
function startCharon(
  t: Topology,
  node: 'cluster' | 'onprem',
  cpu: string,
  swanctlConf: string,
): Promise<Charon> {
  return t.charon(node, {
    name: node,
    cpu,
    strongswanConf: ({ vici, log }) => `charon {
  load_modular = yes
  plugins {
    include /etc/strongswan.d/charon/*.conf
    kernel-libipsec { load = yes }
    vici { socket = unix://${vici} }
  }
  filelog { main { path = ${log}
    flush_line = yes
    default = 0
    ike = 1 } }
  syslog { daemon { default = -1 } }
}
`,
    swanctlConf,
  });
}

function swanConf(local: string, remote: string, localTs: string, remoteTs: string): string {
  return `connections { gw {
  local_addrs = ${local}
  remote_addrs = ${remote}
  local { auth = psk }
  remote { auth = psk }
  children { net { local_ts = ${localTs}
    remote_ts = ${remoteTs}
    esp_proposals = aes128gcm16 } }
} }
secrets { ike-gw { secret = "${PSK}" } }
`;
}

async function iperf(t: Topology, seconds: number, reverse: boolean): Promise<{ bits: number; bps: number }> {
  const out = sh('ip', [
    'netns',
    'exec',
    t.ns.pod,
    'iperf3',
    '-c',
    A.onhost,
    '-t',
    String(seconds),
    '-J',
    ...(reverse ? ['-R'] : []),
  ]);
  const j = JSON.parse(out) as { end: { sum_received: { bits_per_second: number; bytes: number } } };
  return { bits: j.end.sum_received.bytes * 8, bps: j.end.sum_received.bits_per_second };
}

function gatewayDrops(t: Topology): string {
  try {
    const snmp = sh('ip', ['netns', 'exec', t.ns.cluster, 'cat', '/proc/net/snmp']).split('\n');
    const udp = snmp.filter((l) => l.startsWith('Udp:'));
    const keys = (udp[0] ?? '').split(/\s+/);
    const vals = (udp[1] ?? '').split(/\s+/);
    const rcvbuf = vals[keys.indexOf('RcvbufErrors')] ?? '?';
    const links = sh('ip', ['-n', t.ns.cluster, '-s', 'link']);
    const tun = /ikegw0|ipsec0/.exec(links)
      ? (/(?:ikegw0|ipsec0)[\s\S]*?TX:[^\n]*\n\s*\d+\s+\d+\s+\d+\s+(\d+)/.exec(links)?.[1] ?? '?')
      : 'n/a';
    return `UDP rcvbuf errors ${rcvbuf}, TUN tx drops ${tun}`;
  } catch {
    return '';
  }
}

function pingRtt(t: Topology): number {
  const r = sh('ip', [
    'netns',
    'exec',
    t.ns.pod,
    'ping',
    '-n',
    '-q',
    '-c',
    '20',
    '-i',
    '0.05',
    '-W',
    '1',
    A.onhost,
  ]);
  const m = /= [\d.]+\/([\d.]+)\//.exec(r);
  return m ? Number(m[1]) : Number.NaN;
}

async function warmUp(t: Topology): Promise<void> {
  // one iperf3 server per topology for all runs
  t.spawn('onhost', 'iperf3', ['-s', '-B', A.onhost], { log: 'iperf3-s.log' });
  // the first packets also bring the tunnel up where it is not yet
  for (let i = 0; i < 40; i++) {
    try {
      sh('ip', ['netns', 'exec', t.ns.pod, 'ping', '-n', '-q', '-c', '1', '-W', '1', A.onhost]);
      return;
    } catch {
      await sleep(100);
    }
  }
}

interface Gateway {
  gateway: RunResult['gateway'];
  t: Topology;
  pid: number;
}

async function startIkegwSide(t: Topology): Promise<Gateway> {
  const onprem = await startCharon(t, 'onprem', '0', swanConf(A.onpremWan, A.natOut, ONPREM_TS, CLUSTER_TS));
  const extra = process.env.IKEGW_BENCH_NODE_ARGS ? process.env.IKEGW_BENCH_NODE_ARGS.split(' ') : [];
  const ikegw = t.ikegw(
    'cluster',
    'ikegw',
    `connections:
  onprem:
    remote_addrs: ['${A.onpremWan}']
    local_addrs: ['${A.clusterWan}']
    psk: { file: '${t.pskFile(PSK)}' }
    dpd_delay: 0
    children:
      cluster:
        local_ts: [10.10.0.0/16, 10.96.0.0/12]
        remote_ts: [${ONPREM_TS}]
        esp_proposals: [aes128gcm16]
        start_action: start
datapath: userspace
listen: { address: '${A.clusterWan}', port: 500, nat_port: 4500 }
log: { level: warn, format: json }
`,
    { cpu: '1', nodeArgs: extra },
  );
  try {
    await waitFor(() => /CHILD_SA net\{\d+\} established/.test(onprem.log()), 15_000, 'ikegw CHILD_SA');
  } catch (e) {
    throw new Error(
      `${(e as Error).message}\n--- ikegw ---\n${tailOf(ikegw.log!, 60).slice(-3000)}\n--- charon ---\n${onprem.log().slice(-3000)}`,
    );
  }
  const pid = ikegw.proc.pid === undefined ? undefined : findDescendant(ikegw.proc.pid, 'node');
  if (!pid) throw new Error('ikegw process not found');
  await warmUp(t);
  return { gateway: 'ikegw', t, pid };
}

async function startStrongswanSide(t: Topology): Promise<Gateway> {
  await startCharon(t, 'onprem', '0', swanConf(A.onpremWan, A.natOut, ONPREM_TS, CLUSTER_TS));
  const cluster = await startCharon(
    t,
    'cluster',
    '1',
    swanConf(A.clusterWan, A.onpremWan, CLUSTER_TS, ONPREM_TS),
  );
  await cluster.swanctl(['--initiate', '--child', 'net', '--timeout', '10'], 20_000);
  const pid = cluster.pid();
  if (!pid) throw new Error('cluster charon process not found');
  await warmUp(t);
  return { gateway: 'strongswan', t, pid };
}

interface Sample {
  bits: number;
  bps: number;
  cpu: number;
}

async function sample(g: Gateway, seconds: number, reverse: boolean): Promise<Sample> {
  const c0 = cpuSeconds(g.pid);
  const r = await iperf(g.t, seconds, reverse);
  return { ...r, cpu: cpuSeconds(g.pid) - c0 };
}

function summarize(g: Gateway, up: Sample[], down: Sample[], rtts: number[]): RunResult {
  const sum = (xs: Sample[], k: 'bits' | 'cpu'): number => xs.reduce((a, x) => a + x[k], 0);
  return {
    gateway: g.gateway,
    mbitUp: median(up.map((x) => x.bps)) / 1e6,
    mbitDown: median(down.map((x) => x.bps)) / 1e6,
    cpuSecUp: sum(up, 'cpu'),
    cpuSecDown: sum(down, 'cpu'),
    gbitUp: sum(up, 'bits') / 1e9,
    gbitDown: sum(down, 'bits') / 1e9,
    rttMs: median(rtts),
    diag: gatewayDrops(g.t),
  };
}

export function userspaceEspBenchAvailable(): { ok: boolean; why?: string } {
  if (process.getuid?.() !== 0) return { ok: false, why: 'needs root (network namespaces, TUN)' };
  for (const f of [CHARON, SWANCTL, LIBIPSEC, '/usr/bin/iperf3'])
    if (!existsSync(f)) return { ok: false, why: `missing ${f}` };
  if (!existsSync(CLI)) return { ok: false, why: `missing ${CLI} (npm run build)` };
  return { ok: true };
}

/**
 * Runs both set-ups side by side (separate namespaces, both tunnels up) and alternates short
 * iperf3 runs between them, so that background load on the machine hits both alike; reports the
 * median per direction and CPU over all runs.
 */
export async function runUserspaceEspBench(o: UserspaceEspBenchOptions = {}): Promise<string[]> {
  const avail = userspaceEspBenchAvailable();
  if (!avail.ok) return [`userspace ESP bench skipped: ${avail.why}`];
  const seconds = o.seconds ?? Number(process.env.BENCH_ESP_SECONDS ?? 2);
  const rounds = Number(process.env.BENCH_ESP_ROUNDS ?? 3);
  const t0 = Date.now();
  const tops: Topology[] = [];
  try {
    const ts = await topology('s');
    tops.push(ts);
    const ti = await topology('i');
    tops.push(ti);
    const sw = await startStrongswanSide(ts);
    const ik = await startIkegwSide(ti);
    const up = new Map<Gateway, Sample[]>([
      [sw, []],
      [ik, []],
    ]);
    const down = new Map<Gateway, Sample[]>([
      [sw, []],
      [ik, []],
    ]);
    const rtt = new Map<Gateway, number[]>([
      [sw, []],
      [ik, []],
    ]);
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 === 0 ? [sw, ik] : [ik, sw];
      for (const g of order) up.get(g)!.push(await sample(g, seconds, false));
      for (const g of order) down.get(g)!.push(await sample(g, seconds, true));
      for (const g of order) rtt.get(g)!.push(pingRtt(g.t));
    }
    const rs = summarize(sw, up.get(sw)!, down.get(sw)!, rtt.get(sw)!);
    const ri = summarize(ik, up.get(ik)!, down.get(ik)!, rtt.get(ik)!);
    const cpuPerGbit = (cpu: number, gbit: number): string => (gbit > 0 ? (cpu / gbit).toFixed(2) : 'n/a');
    const line = (x: RunResult): string =>
      `  ${x.gateway === 'ikegw' ? 'ikegw (userspace)  ' : 'strongSwan libipsec'}  up ${x.mbitUp.toFixed(0).padStart(4)} Mbit/s (${cpuPerGbit(x.cpuSecUp, x.gbitUp)} CPU-s/Gbit)   down ${x.mbitDown.toFixed(0).padStart(4)} Mbit/s (${cpuPerGbit(x.cpuSecDown, x.gbitDown)} CPU-s/Gbit)   ping RTT ${x.rttMs.toFixed(3)} ms   [${x.diag}]`;
    const ratio = (a: number, b: number): string => (b > 0 ? (a / b).toFixed(2) : 'n/a');
    return [
      `iperf3 TCP, ${rounds} x ${seconds} s each way per gateway, alternating; pod -> on-prem host ("up") and back ("down");`,
      '  AES-GCM-16/128 ESP-in-UDP through NAT, kernel-libipsec on-prem; cluster gateway pinned to CPU 1, on-prem charon to CPU 0;',
      '  Mbit/s = median of the runs, CPU = cluster gateway process time (user+sys) over all runs per Gbit moved,',
      '  ping RTT = median over the rounds of 10 echo requests pod -> on-prem host; [drop counters of the cluster namespace]',
      line(rs),
      line(ri),
      `  ratio ikegw/strongSwan: throughput up ${ratio(ri.mbitUp, rs.mbitUp)}x, down ${ratio(ri.mbitDown, rs.mbitDown)}x (goal >= 1.0x); CPU per Gbit up ${ratio(ri.cpuSecUp / ri.gbitUp, rs.cpuSecUp / rs.gbitUp)}x, down ${ratio(ri.cpuSecDown / ri.gbitDown, rs.cpuSecDown / rs.gbitDown)}x (lower is better)`,
      `  (${((Date.now() - t0) / 1000).toFixed(0)} s)`,
    ];
  } finally {
    for (const t of tops) {
      await t.stopAll();
      await t.destroy();
    }
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const l of await runUserspaceEspBench()) console.log(l);
}
