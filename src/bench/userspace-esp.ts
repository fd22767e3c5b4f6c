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
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

const HERE = dirname(new URL(import.meta.url).pathname);
const CLI = resolve(HERE, '../cli.js');
const CHARON = '/usr/lib/ipsec/charon';
const SWANCTL = '/usr/sbin/swanctl';
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

function sh(cmd: string, args: string[], input?: string): string {
  return execFileSync(cmd, args, {
    encoding: 'utf8',
    stdio: ['pipe', 'pipe', 'pipe'],
    timeout: 20_000,
    ...(input !== undefined ? { input } : {}),
  });
}

function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[11]) + Number(rest[12])) / 100; // USER_HZ
}

function findDescendant(pid: number, name: string): number | undefined {
  const q = [pid];
  while (q.length) {
    const p = q.shift()!;
    try {
      const comm = readFileSync(`/proc/${p}/comm`, 'utf8').trim();
      if (comm === name || (name === 'node' && comm.startsWith('node'))) return p;
      for (const t of readFileSync(`/proc/${p}/task/${p}/children`, 'utf8').trim().split(/\s+/))
        if (t) q.push(Number(t));
    } catch {
      /* gone */
    }
  }
  return undefined;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitFor(pred: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

class Topology {
  readonly p: string;
  readonly ns: { pod: string; cluster: string; nat: string; onprem: string; onhost: string };
  readonly dir = mkdtempSync(join(tmpdir(), 'ikegw-espbench-'));
  readonly procs: ChildProcess[] = [];

  constructor(tag: string) {
    this.p = `ikgwu${process.pid % 10000}-${tag}`;
    this.ns = {
      pod: `${this.p}-pod`,
      cluster: `${this.p}-cluster`,
      nat: `${this.p}-nat`,
      onprem: `${this.p}-onprem`,
      onhost: `${this.p}-onhost`,
    };
    try {
      this.build();
    } catch (e) {
      this.destroy();
      throw e;
    }
  }

  private ip(args: string[]): void {
    sh('ip', args);
  }

  private veth(a: string, ia: string, b: string, ib: string): void {
    this.ip(['-n', a, 'link', 'add', ia, 'type', 'veth', 'peer', 'name', ib, 'netns', b]);
    this.ip(['-n', a, 'link', 'set', ia, 'up']);
    this.ip(['-n', b, 'link', 'set', ib, 'up']);
  }

  private build(): void {
    const n = this.ns;
    for (const ns of Object.values(n)) {
      this.ip(['netns', 'add', ns]);
      this.ip(['-n', ns, 'link', 'set', 'lo', 'up']);
      sh('ip', [
        'netns',
        'exec',
        ns,
        'sysctl',
        '-qw',
        'net.ipv6.conf.all.disable_ipv6=1',
        'net.ipv6.conf.default.disable_ipv6=1',
      ]);
    }
    this.veth(n.pod, 'eth0', n.cluster, 'lan0');
    this.veth(n.cluster, 'wan0', n.nat, 'in0');
    this.veth(n.nat, 'out0', n.onprem, 'wan0');
    this.veth(n.onprem, 'lan0', n.onhost, 'eth0');
    this.ip(['-n', n.pod, 'addr', 'add', `${A.pod}/24`, 'dev', 'eth0']);
    this.ip(['-n', n.pod, 'route', 'add', 'default', 'via', A.clusterLan]);
    this.ip(['-n', n.cluster, 'addr', 'add', `${A.clusterLan}/24`, 'dev', 'lan0']);
    this.ip(['-n', n.cluster, 'addr', 'add', `${A.clusterSvc}/32`, 'dev', 'lan0']);
    this.ip(['-n', n.cluster, 'addr', 'add', `${A.clusterWan}/24`, 'dev', 'wan0']);
    this.ip(['-n', n.cluster, 'route', 'add', 'default', 'via', A.natIn]);
    this.ip(['-n', n.nat, 'addr', 'add', `${A.natIn}/24`, 'dev', 'in0']);
    this.ip(['-n', n.nat, 'addr', 'add', `${A.natOut}/24`, 'dev', 'out0']);
    this.ip(['-n', n.onprem, 'addr', 'add', `${A.onpremWan}/24`, 'dev', 'wan0']);
    this.ip(['-n', n.onprem, 'addr', 'add', `${A.onpremLan}/24`, 'dev', 'lan0']);
    this.ip(['-n', n.onhost, 'addr', 'add', `${A.onhost}/24`, 'dev', 'eth0']);
    this.ip(['-n', n.onhost, 'route', 'add', 'default', 'via', A.onpremLan]);
    for (const r of [n.cluster, n.nat, n.onprem])
      sh('ip', [
        'netns',
        'exec',
        r,
        'sysctl',
        '-qw',
        'net.ipv4.ip_forward=1',
        'net.ipv4.conf.all.rp_filter=0',
        'net.ipv4.conf.default.rp_filter=0',
      ]);
    sh(
      'ip',
      ['netns', 'exec', n.nat, 'nft', '-f', '-'],
      `table ip ikgwu_nat {\n  chain post {\n    type nat hook postrouting priority srcnat; policy accept;\n    oifname "out0" masquerade random\n  }\n}\n`,
    );
    writeFileSync(join(this.dir, 'psk'), PSK, { mode: 0o600 });
  }

  spawn(ns: string, cpu: string | undefined, cmd: string, args: string[], log: string): ChildProcess {
    const pre = cpu ? ['taskset', '-c', cpu] : [];
    const fd = openSync(join(this.dir, `${log}.log`), 'a');
    const p = spawn('ip', ['netns', 'exec', ns, ...pre, cmd, ...args], {
      stdio: ['ignore', fd, fd],
      detached: true,
    });
    closeSync(fd);
    this.procs.push(p);
    return p;
  }

  async stopAll(): Promise<void> {
    for (const p of this.procs.splice(0)) {
      if (p.exitCode !== null || p.signalCode !== null || p.pid === undefined) continue;
      try {
        process.kill(-p.pid, 'SIGTERM');
      } catch {
        /* gone */
      }
      const t = Date.now();
      while (p.exitCode === null && p.signalCode === null && Date.now() - t < 3000) await sleep(50);
      try {
        if (p.exitCode === null && p.signalCode === null) process.kill(-p.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }

  destroy(): void {
    for (const p of this.procs) {
      try {
        if (p.pid !== undefined) process.kill(-p.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    for (const ns of Object.values(this.ns)) {
      try {
        sh('ip', ['netns', 'del', ns]);
      } catch {
        /* not there */
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

class Charon {
  readonly dir: string;
  readonly sock: string;
  proc: ChildProcess | undefined;
  constructor(
    private readonly t: Topology,
    readonly role: 'cluster' | 'onprem',
    private readonly swanctlConf: string,
  ) {
    this.dir = join(t.dir, `charon-${role}-${Date.now() % 100000}`);
    this.sock = join(this.dir, 'run', 'charon.vici');
  }

  async start(cpu: string): Promise<void> {
    const run = join(this.dir, 'run');
    mkdirSync(run, { recursive: true });
    const conf = join(this.dir, 'strongswan.conf');
    writeFileSync(
      conf,
      `charon {
  load_modular = yes
  plugins {
    include /etc/strongswan.d/charon/*.conf
    kernel-libipsec { load = yes }
    vici { socket = unix://${this.sock} }
  }
  filelog { main { path = ${this.dir}/charon.log
    flush_line = yes
    default = 0
    ike = 1 } }
  syslog { daemon { default = -1 } }
}
`,
    );
    writeFileSync(join(this.dir, 'swanctl.conf'), this.swanctlConf);
    writeFileSync(join(this.dir, 'client.conf'), 'swanctl { load = random nonce openssl }\n');
    this.proc = spawn(
      'ip',
      [
        'netns',
        'exec',
        this.t.ns[this.role],
        'env',
        `STRONGSWAN_CONF=${conf}`,
        'taskset',
        '-c',
        cpu,
        'sh',
        '-c',
        'mount --bind "$1" /run && shift && exec "$@"',
        'wrap',
        run,
        CHARON,
      ],
      { stdio: 'ignore', detached: true },
    );
    this.t.procs.push(this.proc);
    await waitFor(() => existsSync(this.sock), 10_000, `charon (${this.role}) vici socket`);
    this.swanctl(['--load-all', '--file', join(this.dir, 'swanctl.conf')]);
  }

  swanctl(args: string[]): string {
    return execFileSync(SWANCTL, [...args, '--uri', `unix://${this.sock}`], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 20_000,
      env: { ...process.env, STRONGSWAN_CONF: join(this.dir, 'client.conf'), SWANCTL_DIR: this.dir },
    });
  }

  log(): string {
    try {
      return readFileSync(join(this.dir, 'charon.log'), 'utf8');
    } catch {
      return '';
    }
  }

  pid(): number | undefined {
    return this.proc?.pid === undefined ? undefined : findDescendant(this.proc.pid, 'charon');
  }
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
  t.spawn(t.ns.onhost, undefined, 'iperf3', ['-s', '-B', A.onhost], 'iperf3-s');
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
  const onprem = new Charon(t, 'onprem', swanConf(A.onpremWan, A.natOut, ONPREM_TS, CLUSTER_TS));
  await onprem.start('0');
  const cfg = join(t.dir, 'ikegw.yaml');
  writeFileSync(
    cfg,
    `connections:
  onprem:
    remote_addrs: ['${A.onpremWan}']
    local_addrs: ['${A.clusterWan}']
    psk: { file: '${join(t.dir, 'psk')}' }
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
  );
  const extra = process.env.IKEGW_BENCH_NODE_ARGS ? process.env.IKEGW_BENCH_NODE_ARGS.split(' ') : [];
  const p = t.spawn(t.ns.cluster, '1', process.execPath, [...extra, CLI, 'daemon', '-c', cfg], 'ikegw');
  try {
    await waitFor(() => /CHILD_SA net\{\d+\} established/.test(onprem.log()), 15_000, 'ikegw CHILD_SA');
  } catch (e) {
    const tail = (f: string): string => (existsSync(f) ? readFileSync(f, 'utf8').slice(-3000) : '');
    throw new Error(
      `${(e as Error).message}\n--- ikegw ---\n${tail(join(t.dir, 'ikegw.log'))}\n--- charon ---\n${onprem.log().slice(-3000)}`,
    );
  }
  const pid = p.pid === undefined ? undefined : findDescendant(p.pid, 'node');
  if (!pid) throw new Error('ikegw process not found');
  await warmUp(t);
  return { gateway: 'ikegw', t, pid };
}

async function startStrongswanSide(t: Topology): Promise<Gateway> {
  const onprem = new Charon(t, 'onprem', swanConf(A.onpremWan, A.natOut, ONPREM_TS, CLUSTER_TS));
  await onprem.start('0');
  const cluster = new Charon(t, 'cluster', swanConf(A.clusterWan, A.onpremWan, CLUSTER_TS, ONPREM_TS));
  await cluster.start('1');
  cluster.swanctl(['--initiate', '--child', 'net', '--timeout', '10']);
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

function median(xs: number[]): number {
  const v = [...xs].sort((a, b) => a - b);
  const m = v.length >> 1;
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
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
  for (const f of [
    CHARON,
    SWANCTL,
    '/usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so',
    '/usr/bin/iperf3',
  ])
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
    const ts = new Topology('s');
    tops.push(ts);
    const ti = new Topology('i');
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
      t.destroy();
    }
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const l of await runUserspaceEspBench()) console.log(l);
}
