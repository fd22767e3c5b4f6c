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
// average of 20 echo requests pod -> onhost through the tunnel.
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
  readonly p = `ikgwu${process.pid % 10000}`;
  readonly ns = {
    pod: `${this.p}-pod`,
    cluster: `${this.p}-cluster`,
    nat: `${this.p}-nat`,
    onprem: `${this.p}-onprem`,
    onhost: `${this.p}-onhost`,
  };
  readonly dir = mkdtempSync(join(tmpdir(), 'ikegw-espbench-'));
  readonly procs: ChildProcess[] = [];

  constructor() {
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
  const server = t.spawn(t.ns.onhost, undefined, 'iperf3', ['-s', '-1', '-B', A.onhost], 'iperf3-s');
  await sleep(300);
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
  await waitFor(() => server.exitCode !== null || server.signalCode !== null, 5000, 'iperf3 server exit');
  const j = JSON.parse(out) as { end: { sum_received: { bits_per_second: number; bytes: number } } };
  return { bits: j.end.sum_received.bytes * 8, bps: j.end.sum_received.bits_per_second };
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

async function measure(
  t: Topology,
  gateway: RunResult['gateway'],
  pid: number,
  seconds: number,
): Promise<RunResult> {
  // warm-up: the first packets also bring the tunnel up where it is not yet
  for (let i = 0; i < 40; i++) {
    try {
      sh('ip', ['netns', 'exec', t.ns.pod, 'ping', '-n', '-q', '-c', '1', '-W', '1', A.onhost]);
      break;
    } catch {
      await sleep(100);
    }
  }
  const rttMs = pingRtt(t);
  const c0 = cpuSeconds(pid);
  const up = await iperf(t, seconds, false);
  const c1 = cpuSeconds(pid);
  const down = await iperf(t, seconds, true);
  const c2 = cpuSeconds(pid);
  return {
    gateway,
    mbitUp: up.bps / 1e6,
    mbitDown: down.bps / 1e6,
    cpuSecUp: c1 - c0,
    cpuSecDown: c2 - c1,
    gbitUp: up.bits / 1e9,
    gbitDown: down.bits / 1e9,
    rttMs,
  };
}

async function runIkegw(t: Topology, seconds: number): Promise<RunResult> {
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
  const r = await measure(t, 'ikegw', pid, seconds);
  await t.stopAll();
  return r;
}

async function runStrongswan(t: Topology, seconds: number): Promise<RunResult> {
  const onprem = new Charon(t, 'onprem', swanConf(A.onpremWan, A.natOut, ONPREM_TS, CLUSTER_TS));
  await onprem.start('0');
  const cluster = new Charon(t, 'cluster', swanConf(A.clusterWan, A.onpremWan, CLUSTER_TS, ONPREM_TS));
  await cluster.start('1');
  cluster.swanctl(['--initiate', '--child', 'net', '--timeout', '10']);
  const pid = cluster.pid();
  if (!pid) throw new Error('cluster charon process not found');
  const r = await measure(t, 'strongswan', pid, seconds);
  await t.stopAll();
  return r;
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

/** Runs both set-ups and returns report lines. */
export async function runUserspaceEspBench(o: UserspaceEspBenchOptions = {}): Promise<string[]> {
  const avail = userspaceEspBenchAvailable();
  if (!avail.ok) return [`userspace ESP bench skipped: ${avail.why}`];
  const seconds = o.seconds ?? Number(process.env.BENCH_ESP_SECONDS ?? 4);
  const t0 = Date.now();
  const results: RunResult[] = [];
  for (const which of ['strongswan', 'ikegw'] as const) {
    const t = new Topology();
    try {
      results.push(which === 'ikegw' ? await runIkegw(t, seconds) : await runStrongswan(t, seconds));
    } finally {
      await t.stopAll();
      t.destroy();
    }
  }
  const [sw, ik] = results as [RunResult, RunResult];
  const cpuPerGbit = (cpu: number, gbit: number): string => (gbit > 0 ? (cpu / gbit).toFixed(2) : 'n/a');
  const line = (r: RunResult): string =>
    `  ${r.gateway === 'ikegw' ? 'ikegw (userspace)  ' : 'strongSwan libipsec'}  up ${r.mbitUp.toFixed(0).padStart(4)} Mbit/s (${cpuPerGbit(r.cpuSecUp, r.gbitUp)} CPU-s/Gbit)   down ${r.mbitDown.toFixed(0).padStart(4)} Mbit/s (${cpuPerGbit(r.cpuSecDown, r.gbitDown)} CPU-s/Gbit)   ping RTT ${r.rttMs.toFixed(3)} ms`;
  return [
    `iperf3 TCP ${seconds} s each way, pod -> on-prem host ("up") and back ("down"), AES-GCM-16/128 ESP-in-UDP through NAT;`,
    '  cluster gateway pinned to CPU 1, on-prem strongSwan (kernel-libipsec) to CPU 0; CPU = cluster gateway process time',
    line(sw),
    line(ik),
    `  ratio ikegw/strongSwan: up ${(ik.mbitUp / sw.mbitUp).toFixed(2)}x, down ${(ik.mbitDown / sw.mbitDown).toFixed(2)}x (goal >= 1.0x); CPU/Gbit up ${(ik.cpuSecUp / ik.gbitUp / (sw.cpuSecUp / sw.gbitUp)).toFixed(2)}x, down ${(ik.cpuSecDown / ik.gbitDown / (sw.cpuSecDown / sw.gbitDown)).toFixed(2)}x`,
    `  (${((Date.now() - t0) / 1000).toFixed(0)} s)`,
  ];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const l of await runUserspaceEspBench()) console.log(l);
}
