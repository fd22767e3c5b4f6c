// Kernel data path benchmark (issue 3): iperf3 through ikegw-installed XFRM SAs vs strongSwan-
// installed XFRM SAs, same topology and algorithms (ESP AES-GCM-16/128). The kernel does the ESP
// work either way, so the two must be equal within noise; a real difference means ikegw installed a
// different SA (algorithm, replay window, flags, encap) — which the bench also compares directly.
//
// Runs where the kernel has ESP: natively if it does (probeKernelEsp), else inside the kernel VM
// (../shared/tools/kernel-vm/vm-run.sh, Debian 6.1 under qemu; CPU ~10x slower, so absolute numbers
// are VM numbers — only the ratio means something).
//
//   host-a ---- gw-a ========================= gw-b ---- host-b
//   198.51.100.10  .1 | 192.0.2.1   192.0.2.2 | 203.0.113.1  .10
//                 ikegw or charon          charon (responder, kernel-netlink)
//
// The same file is the in-VM part (`node kernel-path.js inner`); ikegw runs as `ikegw daemon` (bin/ikegw.js
// beside this file's directory) with `datapath: xfrm`. Everything runs in namespaces created here,
// inside the VM (or, natively, namespaces named ikgwx<pid>-*), and is removed at the end.
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { probeKernelEsp } from '../esp/xfrm/installer.js';
import { type Charon, Lab, median, must, run as sh, tailOf } from './lab.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const SELF = fileURLToPath(import.meta.url);
/** ../shared/tools/kernel-vm/vm-run.sh next to the checkout (found upwards from dist/, src/ or a build cache). */
function findVmRun(): string {
  for (let d = HERE; d !== dirname(d); d = dirname(d)) {
    const c = resolve(d, '../shared/tools/kernel-vm/vm-run.sh');
    if (existsSync(c)) return c;
  }
  return resolve(HERE, '../../../shared/tools/kernel-vm/vm-run.sh');
}
export const VM_RUN = process.env.KERNEL_VM_RUN ?? findVmRun();
export const ESP = 'aes128gcm16';
export const IKE = 'aes128gcm16-prfsha256-x25519';
export const PSK = 'kernel-path bench only 4f0c1e';
const RESULT_TAG = 'KERNEL-PATH-RESULT ';

// ---- the in-VM bench -----------------------------------------------------------------------------------

type Node = 'gwa' | 'gwb' | 'ha' | 'hb';
export type Topo = Lab<Node>;

/** host-a -- gw-a == gw-b -- host-b (shared with trap-latency.ts). */
export function topology(prefix: string): Promise<Topo> {
  return Lab.create<Node>({
    prefix,
    tmpPrefix: `${prefix}kp-`,
    nodes: {
      gwa: {
        sysctls: ['net.ipv4.ip_forward=1'],
        addrs: ['192.0.2.1/24 dev ab', '198.51.100.1/24 dev lan'],
        // gw-a routes the remote LAN itself (ikegw installs no routes); gw-b's charon installs its own.
        routes: ['203.0.113.0/24 via 192.0.2.2'],
      },
      gwb: { sysctls: ['net.ipv4.ip_forward=1'], addrs: ['192.0.2.2/24 dev ba', '203.0.113.1/24 dev lan'] },
      ha: { addrs: ['198.51.100.10/24 dev eth0'], routes: ['default via 198.51.100.1'] },
      hb: { addrs: ['203.0.113.10/24 dev eth0'], routes: ['default via 203.0.113.1'] },
    },
    links: [
      ['gwa', 'ab', 'gwb', 'ba'],
      ['gwa', 'lan', 'ha', 'eth0'],
      ['gwb', 'lan', 'hb', 'eth0'],
    ],
  });
}

/** charon with the kernel's XFRM (kernel-netlink) on a gateway. */
export function startCharon(
  t: Topo,
  n: 'gwa' | 'gwb',
  o: {
    local: string;
    remote: string;
    localTs: string;
    remoteTs: string;
    routes: boolean;
    startAction?: 'none' | 'trap';
  },
): Promise<Charon> {
  return t.charon(n, {
    name: n,
    strongswanConf: ({ vici, log }) => `charon {
  load = random nonce openssl pem pkcs1 x509 pubkey revocation constraints aes sha1 sha2 hmac gcm kdf kernel-netlink socket-default vici
  install_routes = ${o.routes ? 'yes' : 'no'}
  install_virtual_ip = no
  plugins { vici { socket = unix://${vici} } }
  filelog { main { path = ${log}
    default = 1
    ike = 1
    knl = 1
    flush_line = yes } }
}
`,
    swanctlConf: `connections {
  kp {
    local_addrs = ${o.local}
    remote_addrs = ${o.remote}
    proposals = ${IKE}
    local { auth = psk }
    remote { auth = psk }
    children {
      net {
        local_ts = ${o.localTs}
        remote_ts = ${o.remoteTs}
        esp_proposals = ${ESP}
        start_action = ${o.startAction ?? 'none'}
      }
    }
  }
}
secrets { ike-kp { secret = "${PSK}" } }
`,
  });
}

/** ikegw on gw-a (`datapath: xfrm`), its control socket ikegw.sock in the lab directory. */
export function startIkegw(t: Topo, startAction: 'start' | 'trap') {
  return t.ikegw(
    'gwa',
    'ikegw',
    `connections:
  kp:
    local_addrs: ['192.0.2.1']
    remote_addrs: ['192.0.2.2']
    psk: { file: '${t.pskFile(PSK)}' }
    proposals: [${IKE}]
    dpd_delay: 0
    children:
      net:
        local_ts: [198.51.100.0/24]
        remote_ts: [203.0.113.0/24]
        esp_proposals: [${ESP}]
        start_action: ${startAction}
datapath: xfrm
listen: { address: '192.0.2.1', port: 500, nat_port: 4500 }
control: { socket: '${join(t.dir, 'ikegw.sock')}' }
log: { level: info, format: json }
`,
  );
}

async function waitPing(t: Topo, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const r = await sh('ip', ['netns', 'exec', t.ns.ha, 'ping', '-c', '1', '-W', '1', '203.0.113.10']);
    if (r.code === 0) return;
    if (Date.now() > end) throw new Error(`no connectivity through the tunnel after ${timeoutMs} ms`);
  }
}

async function iperf(t: Topo, seconds: number, reverse: boolean): Promise<number> {
  const args = ['netns', 'exec', t.ns.ha, 'iperf3', '-c', '203.0.113.10', '-t', String(seconds), '-J'];
  if (reverse) args.push('-R');
  const out = await must('ip', args, (seconds + 30) * 1000);
  const j = JSON.parse(out) as { end?: { sum_received?: { bits_per_second?: number } } };
  const bps = j.end?.sum_received?.bits_per_second;
  if (typeof bps !== 'number') throw new Error(`iperf3 gave no result: ${out.slice(0, 400)}`);
  return bps / 1e6;
}

/** `ip xfrm state` of gw-a without what differs by nature (SPIs, keys, reqids, counters). */
async function saShape(t: Topo): Promise<string> {
  const out = await t.exec('gwa', 'ip', ['xfrm', 'state']);
  return out
    .split('\n')
    .map((l) =>
      l
        .replace(/spi 0x[0-9a-f]+/, 'spi *')
        .replace(/reqid \d+/, 'reqid *')
        .replace(/0x[0-9a-f]{16,}/, '<key>')
        .replace(/seq 0x[0-9a-f]+, oseq 0x[0-9a-f]+, bitmap 0x[0-9a-f]+/, 'seq *'),
    )
    .filter((l) => l.trim() !== '')
    .sort()
    .join('\n');
}

export interface PairResult {
  pair: 'strongswan-strongswan' | 'ikegw-strongswan';
  /** Medians of the runs. */
  upMbit: number;
  downMbit: number;
  upRuns: number[];
  downRuns: number[];
  shape: string;
}

interface Pair {
  name: PairResult['pair'];
  t: Topo;
  gwAProc: ChildProcess;
}

const note = (msg: string): void => {
  if (process.env.BENCH_KP_VERBOSE === '1')
    process.stderr.write(`[kernel-path ${new Date().toISOString().slice(11, 23)}] ${msg}\n`);
};

async function bringUp(prefix: string, name: PairResult['pair']): Promise<Pair> {
  const t = await topology(prefix);
  try {
    note(`${name}: topology ${prefix}* up`);
    t.spawn('hb', 'iperf3', ['-s'], { log: 'iperf3-server.log' });
    const gwb = await startCharon(t, 'gwb', {
      local: '192.0.2.2',
      remote: '192.0.2.1',
      localTs: '203.0.113.0/24',
      remoteTs: '198.51.100.0/24',
      routes: true,
    });
    note(`${name}: gw-b charon up`);
    let a: ChildProcess;
    let aLog: string;
    if (name === 'strongswan-strongswan') {
      const c = await startCharon(t, 'gwa', {
        local: '192.0.2.1',
        remote: '192.0.2.2',
        localTs: '198.51.100.0/24',
        remoteTs: '203.0.113.0/24',
        routes: false,
      });
      a = c.proc!;
      aLog = join(c.dir, 'charon.out');
      await c.swanctl(['--initiate', '--child', 'net', '--timeout', '30']);
    } else {
      const ikegw = startIkegw(t, 'start');
      a = ikegw.proc;
      aLog = ikegw.log!;
    }
    try {
      await waitPing(t, 90_000);
    } catch (e) {
      throw new Error(
        `${name}: ${(e as Error).message}\n--- gw-a log ---\n${tailOf(aLog)}\n--- gw-b charon ---\n${tailOf(gwb.logFile)}`,
      );
    }
    note(`${name}: tunnel up`);
    return { name, t, gwAProc: a };
  } catch (e) {
    await t.destroy();
    throw e;
  }
}

/**
 * The in-VM (or ESP-host) part: both tunnels up side by side (two copies of the topology), then
 * iperf3 runs interleaved (A up, B up, A down, B down, repeated) so drift of the VM hits both alike.
 */
export async function kernelPathInner(
  opts: { seconds?: number; rounds?: number } = {},
): Promise<PairResult[]> {
  const seconds = opts.seconds ?? Number(process.env.BENCH_KP_SECONDS ?? 4);
  const rounds = opts.rounds ?? Number(process.env.BENCH_KP_ROUNDS ?? 3);
  const base = `ikgwx${process.pid % 10000}-`;
  const pairs: Pair[] = [];
  try {
    pairs.push(await bringUp(`${base}s`, 'strongswan-strongswan'));
    pairs.push(await bringUp(`${base}i`, 'ikegw-strongswan'));
    const up = new Map<string, number[]>();
    const down = new Map<string, number[]>();
    for (let r = 0; r < rounds; r++) {
      for (const reverse of [false, true]) {
        for (const p of r % 2 ? [...pairs].reverse() : pairs) {
          const v = await iperf(p.t, seconds, reverse);
          const m = reverse ? down : up;
          m.set(p.name, [...(m.get(p.name) ?? []), v]);
          note(`${p.name} ${reverse ? 'down' : 'up'} ${v.toFixed(1)} Mbit/s`);
        }
      }
    }
    const out: PairResult[] = [];
    for (const p of pairs) {
      out.push({
        pair: p.name,
        upMbit: median(up.get(p.name) ?? []),
        downMbit: median(down.get(p.name) ?? []),
        upRuns: up.get(p.name) ?? [],
        downRuns: down.get(p.name) ?? [],
        shape: await saShape(p.t),
      });
      await p.t.stop(p.gwAProc, 5000);
    }
    return out;
  } finally {
    for (const p of pairs) await p.t.destroy();
  }
}

// ---- the host part -----------------------------------------------------------------------------------

/** Median of the ratios of runs made back to back (round k of one pair against round k of the other). */
export function pairedRatio(a: number[], b: number[]): number {
  const rs = a.map((x, k) => x / (b[k] ?? Number.NaN)).filter((x) => Number.isFinite(x));
  return rs.length ? median(rs) : Number.NaN;
}

function formatResults(rs: PairResult[], where: string, wallS: number): string[] {
  const s = rs.find((r) => r.pair === 'strongswan-strongswan');
  const i = rs.find((r) => r.pair === 'ikegw-strongswan');
  if (!s || !i) return ['kernel path: incomplete results'];
  const f = (x: number): string => x.toFixed(1).padStart(7);
  const runs = (xs: number[]): string => xs.map((x) => x.toFixed(1)).join(' ');
  return [
    `kernel path (${where}): iperf3 TCP host-a <-> host-b through ESP ${ESP} tunnel-mode XFRM SAs,`,
    `  ${s.upRuns.length} interleaved runs per direction, medians; ${wallS.toFixed(0)} s in all`,
    '  SAs on gw-a installed by      host-a->host-b  host-b->host-a  (Mbit/s)',
    `  strongSwan 5.9.8 (charon)       ${f(s.upMbit)}         ${f(s.downMbit)}     runs: ${runs(s.upRuns)} / ${runs(s.downRuns)}`,
    `  ikegw (XFRM installer)          ${f(i.upMbit)}         ${f(i.downMbit)}     runs: ${runs(i.upRuns)} / ${runs(i.downRuns)}`,
    `  ratio ikegw / strongSwan        ${pairedRatio(i.upRuns, s.upRuns).toFixed(2).padStart(6)}x         ${pairedRatio(i.downRuns, s.downRuns).toFixed(2).padStart(6)}x     (median of per-round ratios)`,
    s.shape === i.shape
      ? '  SA parameters on gw-a (`ip xfrm state`, SPIs/keys/reqids masked): identical'
      : `  SA parameters on gw-a DIFFER:\n--- strongSwan ---\n${s.shape}\n--- ikegw ---\n${i.shape}`,
  ];
}

/**
 * The benchmark: natively when this kernel has ESP, else in the kernel VM; a line saying why when
 * neither is possible. Returns printable lines.
 */
export async function runKernelPathBench(): Promise<string[]> {
  const t0 = Date.now();
  if (await probeKernelEsp()) {
    const rs = await kernelPathInner();
    return formatResults(rs, 'native kernel', (Date.now() - t0) / 1000);
  }
  if (!existsSync(VM_RUN)) return [`kernel path: skipped — ${VM_RUN} not found and this kernel has no ESP`];
  const q = await sh('sh', ['-c', 'command -v qemu-system-x86_64']);
  if (q.code !== 0)
    return [
      'kernel path: skipped — this kernel has no ESP and qemu is missing (apt-get install --no-install-recommends qemu-system-x86)',
    ];
  const r = await sh(
    VM_RUN,
    [`modprobe -a esp4 xfrm_user gcm aesni_intel veth 2>/dev/null; exec node ${JSON.stringify(SELF)} inner`],
    600_000,
  );
  const line = r.stdout.split('\n').find((l) => l.startsWith(RESULT_TAG));
  if (r.code !== 0 || !line)
    return [
      `kernel path: the VM run failed (exit ${r.code})`,
      ...`${r.stderr}\n${r.stdout}`.trim().split('\n').slice(-30),
    ];
  const rs = JSON.parse(line.slice(RESULT_TAG.length)) as PairResult[];
  return formatResults(rs, 'Debian 6.1 kernel in qemu/TCG, ~10x slower CPU', (Date.now() - t0) / 1000);
}

// ---- entry points ----------------------------------------------------------------------------------------

if (process.argv[1] && resolve(process.argv[1]) === SELF) {
  const [mode] = process.argv.slice(2);
  if (mode === 'inner') {
    try {
      const rs = await kernelPathInner();
      process.stdout.write(`${RESULT_TAG}${JSON.stringify(rs)}\n`);
    } catch (e) {
      process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
      process.exitCode = 1;
    }
  } else if (mode === 'bench') {
    for (const l of await runKernelPathBench()) console.log(l);
  } else {
    process.stderr.write('usage: kernel-path.js inner | bench\n');
    process.exitCode = 2;
  }
}
