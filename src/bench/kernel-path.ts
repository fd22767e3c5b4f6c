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
// The same file is the in-VM part (`node kernel-path.js inner`); ikegw runs as `ikegw daemon` (cli.js
// next to this file's directory) with `datapath: xfrm`. Everything runs in namespaces created here,
// inside the VM (or, natively, namespaces named ikgwx<pid>-*), and is removed at the end.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { probeKernelEsp } from '../esp/xfrm/installer.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const SELF = fileURLToPath(import.meta.url);
const CLI = resolve(HERE, '../cli.js');
/** ../shared/tools/kernel-vm/vm-run.sh next to the checkout (found upwards from dist/, src/ or a build cache). */
function findVmRun(): string {
  for (let d = HERE; d !== dirname(d); d = dirname(d)) {
    const c = resolve(d, '../shared/tools/kernel-vm/vm-run.sh');
    if (existsSync(c)) return c;
  }
  return resolve(HERE, '../../../shared/tools/kernel-vm/vm-run.sh');
}
export const VM_RUN = process.env.KERNEL_VM_RUN ?? findVmRun();
const CHARON = '/usr/lib/ipsec/charon';
const SWANCTL = '/usr/sbin/swanctl';
const ESP = 'aes128gcm16';
const IKE = 'aes128gcm16-prfsha256-x25519';
const PSK = 'kernel-path bench only 4f0c1e';
const RESULT_TAG = 'KERNEL-PATH-RESULT ';

// ---- small process helpers ---------------------------------------------------------------------------

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function sh(cmd: string, args: string[], timeoutMs = 30_000, input?: string): Promise<Run> {
  return new Promise((res) => {
    const child = execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      res({ code, stdout, stderr });
    });
    child.stdin?.on('error', () => {}); // a command that exits without reading its input
    if (input !== undefined) child.stdin?.end(input);
    else child.stdin?.end();
  });
}

async function must(cmd: string, args: string[], timeoutMs?: number, input?: string): Promise<string> {
  const r = await sh(cmd, args, timeoutMs, input);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.code}\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

const ns = (n: string, ...args: string[]): Promise<string> => must('ip', ['netns', 'exec', n, ...args]);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---- the in-VM bench -----------------------------------------------------------------------------------

interface Topo {
  gwA: string;
  gwB: string;
  hostA: string;
  hostB: string;
  dir: string;
  procs: ChildProcess[];
}

async function topology(prefix: string): Promise<Topo> {
  const t: Topo = {
    gwA: `${prefix}gwa`,
    gwB: `${prefix}gwb`,
    hostA: `${prefix}ha`,
    hostB: `${prefix}hb`,
    dir: mkdtempSync(join(tmpdir(), `${prefix}kp-`)),
    procs: [],
  };
  // Few process starts (each costs ~60 ms and more in the VM): one `ip -batch` for the namespaces
  // and links, one per namespace for addresses and routes.
  await must(
    'ip',
    ['-b', '-'],
    undefined,
    [
      ...[t.gwA, t.gwB, t.hostA, t.hostB].map((n) => `netns add ${n}`),
      `link add ab netns ${t.gwA} type veth peer name ba netns ${t.gwB}`,
      `link add lan netns ${t.gwA} type veth peer name eth0 netns ${t.hostA}`,
      `link add lan netns ${t.gwB} type veth peer name eth0 netns ${t.hostB}`,
    ].join('\n'),
  );
  const inNs = (n: string, forward: boolean, lines: string[]): Promise<string> =>
    must(
      'ip',
      [
        'netns',
        'exec',
        n,
        'sh',
        '-c',
        `${forward ? 'echo 1 > /proc/sys/net/ipv4/ip_forward && ' : ''}exec ip -b -`,
      ],
      undefined,
      ['link set lo up', ...lines].join('\n'),
    );
  await inNs(t.gwA, true, [
    'addr add 192.0.2.1/24 dev ab',
    'addr add 198.51.100.1/24 dev lan',
    'link set ab up',
    'link set lan up',
    // gw-a routes the remote LAN itself (ikegw installs no routes); gw-b's charon installs its own.
    'route add 203.0.113.0/24 via 192.0.2.2',
  ]);
  await inNs(t.gwB, true, [
    'addr add 192.0.2.2/24 dev ba',
    'addr add 203.0.113.1/24 dev lan',
    'link set ba up',
    'link set lan up',
  ]);
  await inNs(t.hostA, false, [
    'addr add 198.51.100.10/24 dev eth0',
    'link set eth0 up',
    'route add default via 198.51.100.1',
  ]);
  await inNs(t.hostB, false, [
    'addr add 203.0.113.10/24 dev eth0',
    'link set eth0 up',
    'route add default via 203.0.113.1',
  ]);
  return t;
}

async function teardown(t: Topo): Promise<void> {
  for (const p of t.procs) if (p.exitCode === null) p.kill('SIGKILL');
  for (const n of [t.gwA, t.gwB, t.hostA, t.hostB]) await sh('ip', ['netns', 'del', n]);
  rmSync(t.dir, { recursive: true, force: true });
}

function spawnIn(t: Topo, n: string, log: string, cmd: string, args: string[]): ChildProcess {
  const out = join(t.dir, log);
  const p = spawn('sh', ['-c', `exec ip netns exec "$0" "$@" >>"${out}" 2>&1`, n, cmd, ...args], {
    stdio: 'ignore',
  });
  t.procs.push(p);
  return p;
}

function stop(p: ChildProcess, timeoutMs = 5000): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
  return new Promise((res) => {
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.once('exit', () => {
      clearTimeout(timer);
      res();
    });
    p.kill('SIGTERM');
  });
}

async function startCharon(
  t: Topo,
  n: string,
  o: { local: string; remote: string; localTs: string; remoteTs: string; routes: boolean },
): Promise<{ proc: ChildProcess; swanctl: (args: string[]) => Promise<string> }> {
  const d = join(t.dir, `charon-${n}`);
  const run = join(d, 'run');
  const sw = join(d, 'swanctl');
  for (const x of ['x509', 'x509ca', 'private', 'pubkey', 'rsa', 'ecdsa', 'pkcs8'])
    mkdirSync(join(sw, x), { recursive: true });
  mkdirSync(run, { recursive: true });
  writeFileSync(
    join(d, 'strongswan.conf'),
    `charon {
  load = random nonce openssl pem pkcs1 x509 pubkey revocation constraints aes sha1 sha2 hmac gcm kdf kernel-netlink socket-default vici
  install_routes = ${o.routes ? 'yes' : 'no'}
  install_virtual_ip = no
  plugins { vici { socket = unix://${run}/charon.vici } }
  filelog { main { path = ${d}/charon.log
    default = 1
    ike = 1
    knl = 1
    flush_line = yes } }
}
`,
  );
  writeFileSync(join(d, 'client.conf'), 'swanctl { load = random nonce pem pkcs1 x509 pubkey openssl }\n');
  writeFileSync(
    join(sw, 'swanctl.conf'),
    `connections {
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
      }
    }
  }
}
secrets { ike-kp { secret = "${PSK}" } }
`,
  );
  const proc = spawnIn(t, n, `charon-${n}.out`, 'env', [
    `STRONGSWAN_CONF=${d}/strongswan.conf`,
    'sh',
    '-c',
    'mount --bind "$1" /run && shift && exec "$@"',
    'charon-wrap',
    run,
    CHARON,
  ]);
  const sock = join(run, 'charon.vici');
  const swanctl = (args: string[]): Promise<string> =>
    must(
      'env',
      [`STRONGSWAN_CONF=${d}/client.conf`, `SWANCTL_DIR=${sw}`, SWANCTL, ...args, '--uri', `unix://${sock}`],
      60_000,
    );
  for (let i = 0; !existsSync(sock); i++) {
    if (i > 300) throw new Error(`charon in ${n} did not start:\n${tailOf(join(t.dir, `charon-${n}.out`))}`);
    await sleep(50);
  }
  await swanctl(['--load-all', '--file', join(sw, 'swanctl.conf')]);
  return { proc, swanctl };
}

function tailOf(f: string, n = 40): string {
  return existsSync(f) ? readFileSync(f, 'utf8').trimEnd().split('\n').slice(-n).join('\n') : '';
}

async function waitPing(t: Topo, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const r = await sh('ip', ['netns', 'exec', t.hostA, 'ping', '-c', '1', '-W', '1', '203.0.113.10']);
    if (r.code === 0) return;
    if (Date.now() > end) throw new Error(`no connectivity through the tunnel after ${timeoutMs} ms`);
  }
}

async function iperf(t: Topo, seconds: number, reverse: boolean): Promise<number> {
  const args = ['netns', 'exec', t.hostA, 'iperf3', '-c', '203.0.113.10', '-t', String(seconds), '-J'];
  if (reverse) args.push('-R');
  const out = await must('ip', args, (seconds + 30) * 1000);
  const j = JSON.parse(out) as { end?: { sum_received?: { bits_per_second?: number } } };
  const bps = j.end?.sum_received?.bits_per_second;
  if (typeof bps !== 'number') throw new Error(`iperf3 gave no result: ${out.slice(0, 400)}`);
  return bps / 1e6;
}

/** `ip xfrm state` of gw-a without what differs by nature (SPIs, keys, reqids, counters). */
async function saShape(t: Topo): Promise<string> {
  const out = await ns(t.gwA, 'ip', 'xfrm', 'state');
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
  note(`${name}: topology ${prefix}* up`);
  spawnIn(t, t.hostB, 'iperf3-server.log', 'iperf3', ['-s']);
  await startCharon(t, t.gwB, {
    local: '192.0.2.2',
    remote: '192.0.2.1',
    localTs: '203.0.113.0/24',
    remoteTs: '198.51.100.0/24',
    routes: true,
  });
  note(`${name}: gw-b charon up`);
  let a: ChildProcess;
  if (name === 'strongswan-strongswan') {
    const c = await startCharon(t, t.gwA, {
      local: '192.0.2.1',
      remote: '192.0.2.2',
      localTs: '198.51.100.0/24',
      remoteTs: '203.0.113.0/24',
      routes: false,
    });
    a = c.proc;
    await c.swanctl(['--initiate', '--child', 'net', '--timeout', '30']);
  } else {
    const cfg = join(t.dir, 'ikegw.yaml');
    writeFileSync(join(t.dir, 'psk'), PSK, { mode: 0o600 });
    writeFileSync(
      cfg,
      `connections:
  kp:
    local_addrs: ['192.0.2.1']
    remote_addrs: ['192.0.2.2']
    psk: { file: '${join(t.dir, 'psk')}' }
    proposals: [${IKE}]
    dpd_delay: 0
    children:
      net:
        local_ts: [198.51.100.0/24]
        remote_ts: [203.0.113.0/24]
        esp_proposals: [${ESP}]
        start_action: start
datapath: xfrm
listen: { address: '192.0.2.1', port: 500, nat_port: 4500 }
control: { socket: '${join(t.dir, 'ikegw.sock')}' }
log: { level: info, format: json }
`,
    );
    a = spawnIn(t, t.gwA, 'ikegw.log', process.execPath, [CLI, 'daemon', '-c', cfg]);
  }
  try {
    await waitPing(t, 90_000);
  } catch (e) {
    throw new Error(
      `${name}: ${(e as Error).message}\n--- gw-a log ---\n${tailOf(join(t.dir, name === 'ikegw-strongswan' ? 'ikegw.log' : `charon-${t.gwA}.out`))}\n--- gw-b charon ---\n${tailOf(join(t.dir, `charon-${t.gwB}`, 'charon.log'))}`,
    );
  }
  note(`${name}: tunnel up`);
  return { name, t, gwAProc: a };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
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
      await stop(p.gwAProc);
    }
    return out;
  } finally {
    for (const p of pairs) await teardown(p.t);
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
