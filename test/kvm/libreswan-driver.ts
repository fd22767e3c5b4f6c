// The in-VM half of test/kvm/libreswan.test.ts: Libreswan 4.10 (pluto, kernel XFRM, real ESP) as the
// on-prem peer of ikegw (`ikegw daemon`, datapath: xfrm), every case of the matrix in one run.
//
//   node test/kvm/libreswan-driver.ts --out DIR --lsw LSW_ROOT --cli path/to/dist/cli.js
//
// Runs where the kernel has ESP (the kernel VM, or a host with ESP), as root. Node runs this file
// directly (type stripping): it imports nothing but node: modules. It records what it observes —
// ikegw's `sas` over its control socket, `whack --showstates`, `ip -s xfrm state` of both gateways,
// ping counts, log lines — into DIR/results.json after every case (and both daemons' logs into DIR
// at the end); the vitest file asserts on that. A case that throws is recorded with its error and
// the run goes on.
//
// Process starts are what costs in the emulated VM (~60 ms each, seconds for a Node process): one
// pluto for everything, one ikegw for every connection (restarted once, for the restart case), the
// control socket spoken here instead of `ikegw sas`, namespaces configured with `ip -batch`.
//
// Topology (one pair of outer addresses and one pair of inner ranges per connection, n = 1..7):
//
//   pod 10.1n.1.10 --- cl (ikegw) 198.51.10n.2 ====== 198.51.10n.1 op (pluto) --- oh 192.168.10n.10
//   pod 10.10.1.10 --- cl 172.30.0.2 --- nat 203.0.113.254 ==== 203.0.113.1 op --- oh 192.168.100.10
//   (+ 10.96.0.10 on the pod: a service IP)      (masquerade; UDP 500/4500 forwarded: the chart's LB)
//
// Connections (ikegw name = Libreswan conn name):
//   dflt   n=1  both at their defaults: both roles, rekeys by Libreswan, ikegw restart, SIGTERM
//   ikrc   n=2  defaults, ikegw's child rekey_time short: a CHILD_SA rekey started by ikegw
//   ikri   n=8  defaults, ikegw's IKE rekey_time short: an IKE_SA rekey started by ikegw
//   natI   n=3  encap: yes on ikegw (ikegw initiates)
//   natL   n=4  encapsulation=yes on Libreswan (Libreswan initiates)
//   cbc    n=5  ike=aes256-sha2_512;dh20 esp=aes256-sha2_256 (ikegw initiates, Libreswan rekeys)
//   chacha n=6  ike=chacha20_poly1305-sha2_512;dh31 esp=chacha20_poly1305 (Libreswan initiates)
//   wpsk   n=7  a wrong PSK on ikegw's side, initiated by each side
//   chart       the Helm chart's values (podCIDR + serviceCIDR, peerCIDRs 192.168.100.0/24) behind
//               the LB NAT, Libreswan configured for it (right=%any: the cluster's ID is its pod IP)
// natI, natL and wpsk are not about algorithms: Libreswan proposes only Curve25519 there, because
// Libreswan's default list makes MODP3072 the group, and ikegw blocks its event loop for seconds
// (tens of seconds in the emulated VM) setting up every MODP exchange.
import { type ChildProcess, spawn } from 'node:child_process';
import {
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { connect } from 'node:net';
import { release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

// ---- what the vitest file reads -------------------------------------------------------------------

export interface PingCount {
  tx: number;
  rx: number;
}

export interface PingRun extends PingCount {
  /** Echo requests that never got a reply (the last one, in flight when ping was stopped, excluded). */
  lost: number;
  /** Longest run of consecutive lost requests, in requests (100 ms apart). */
  longestGap: number;
  /** When the lost requests went out (ISO time, from the neighbouring replies; at most 40). */
  lostAt: string[];
  durationMs: number;
}

export interface IkegwChild {
  name: string;
  state: string;
  reqid: number;
  spiIn: string;
  spiOut: string;
  algorithms: string;
  encap: boolean;
  localTs: string[];
  remoteTs: string[];
}

export interface IkegwSa {
  uid: number;
  conn: string;
  state: string;
  role: string;
  spiI: string;
  spiR: string;
  local: string;
  remote: string;
  localId: string;
  remoteId: string;
  algorithms: string;
  natLocal: boolean;
  natRemote: boolean;
  children: IkegwChild[];
}

export interface LswState {
  serial: number;
  conn: string;
  port: number;
  kind: 'ike' | 'child' | 'other';
  state: string;
}

/** A snapshot of one connection from both sides. */
export interface Snapshot {
  ikegw: IkegwSa[];
  lsw: LswState[];
  lswRaw: string;
  /** `ip -s xfrm state` of the cluster / on-prem gateway, only this connection's outer addresses. */
  clXfrm: string;
  opXfrm: string;
  clStates: number;
  opStates: number;
}

export interface CaseResult {
  title: string;
  ok: boolean;
  error?: string;
  ms: number;
  obs: Record<string, unknown>;
}

export interface Results {
  meta: {
    kernel: string;
    libreswan: string;
    node: string;
    started: string;
    wallMs?: number;
    processStarts: number;
    nodeStarts: number;
    ikegwStartMs: number[];
    topologyMs?: number;
    plutoStartMs?: number;
    finished: boolean;
    fatal?: string;
  };
  cases: Record<string, CaseResult>;
}

// ---- arguments, paths -----------------------------------------------------------------------------

const { values: argv } = parseArgs({
  options: {
    out: { type: 'string' },
    lsw: { type: 'string' },
    cli: { type: 'string' },
    budget: { type: 'string' },
  },
});
if (!argv.out || !argv.lsw || !argv.cli) {
  console.error(
    'usage: libreswan-driver.ts --out DIR --lsw LIBRESWAN_ROOT --cli DIST_CLI_JS [--budget SECONDS]',
  );
  process.exit(2);
}
const OUT = argv.out;
const LSW = argv.lsw;
const CLI = argv.cli;
const T_START = Date.now();
const BUDGET_MS = Number(argv.budget ?? '840') * 1000;
const PLUTO = join(LSW, 'usr/libexec/ipsec/pluto');
const WHACK = join(LSW, 'usr/libexec/ipsec/whack');
const PSK = 'ikegw-libreswan-lab-psk-4c1d9a77e0';
const WRONG_PSK = 'not-the-psk-of-this-lab-0000';

// Sockets cannot live on the VM's 9p share: everything runs in a local directory, copied to OUT.
const WORK = mkdtempSync(join(tmpdir(), 'ikgwl-'));
const RUN = join(WORK, 'run');
const CTL = join(RUN, 'pluto.ctl');
const IKEGW_SOCK = join(WORK, 'ikegw.sock');
const PLUTO_LOG = join(WORK, 'pluto.log');

const P = `ikgwl${process.pid % 10000}`;
const NS = { cl: `${P}-cl`, op: `${P}-op`, pod: `${P}-pod`, oh: `${P}-oh`, nat: `${P}-nat` };

const results: Results = {
  meta: {
    kernel: release(),
    libreswan: '',
    node: process.version,
    started: new Date().toISOString(),
    processStarts: 0,
    nodeStarts: 1,
    ikegwStartMs: [],
    finished: false,
  },
  cases: {},
};

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const left = (): number => BUDGET_MS - (Date.now() - T_START);

// ---- processes ------------------------------------------------------------------------------------

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(
  cmd: string,
  args: string[],
  o: { timeoutMs?: number; input?: string } = {},
): Promise<RunResult> {
  results.meta.processStarts++;
  return new Promise((resolve) => {
    const c = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const timer = setTimeout(() => c.kill('SIGKILL'), o.timeoutMs ?? 30_000);
    c.stdout.on('data', (b: Buffer) => out.push(b));
    c.stderr.on('data', (b: Buffer) => err.push(b));
    c.on('error', (e) => {
      clearTimeout(timer);
      resolve({ code: -1, stdout: '', stderr: e.message });
    });
    c.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
    });
    c.stdin.on('error', () => undefined);
    c.stdin.end(o.input ?? '');
  });
}

async function must(cmd: string, args: string[], o: { timeoutMs?: number; input?: string } = {}) {
  const r = await run(cmd, args, o);
  if (r.code !== 0)
    throw new Error(`${cmd} ${args.join(' ')}: exit ${r.code}\n${r.stdout}${r.stderr}`.slice(0, 4000));
  return r;
}

/** A long-running process with its output in a file. */
interface Daemon {
  child: ChildProcess;
  log: string;
  exited: Promise<number | null>;
  running: () => boolean;
}

function daemon(cmd: string, args: string[], log: string): Daemon {
  results.meta.processStarts++;
  const fd = openSync(log, 'a');
  const child = spawn(cmd, args, { stdio: ['ignore', fd, fd], env: process.env });
  closeSync(fd);
  let done = false;
  const exited = new Promise<number | null>((r) => {
    child.on('exit', (code) => {
      done = true;
      r(code);
    });
    child.on('error', () => {
      done = true;
      r(null);
    });
  });
  return { child, log, exited, running: () => !done };
}

async function until<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs: number,
  intervalMs = 250,
  last?: () => Promise<string> | string,
): Promise<T> {
  const end = Date.now() + Math.min(timeoutMs, Math.max(5_000, left()));
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last ? `; last: ${await last()}` : ''}`,
      );
    await sleep(intervalMs);
  }
}

// ---- topology ------------------------------------------------------------------------------------

interface Conn {
  name: string;
  /** 1..7: outer 198.51.(100+n).x, inner 10.(10+n).0.0/16 and 192.168.(100+n).0/24; 0: the chart. */
  n: number;
  clAddr: string;
  opAddr: string;
  /** The address ikegw sees Libreswan at / Libreswan sees ikegw at (the LB for the chart). */
  podSrc: string;
  hostDst: string;
  podNets: string[];
  lanNet: string;
}

function pairConn(name: string, n: number): Conn {
  return {
    name,
    n,
    clAddr: `198.51.${100 + n}.2`,
    opAddr: `198.51.${100 + n}.1`,
    podSrc: `10.${10 + n}.1.10`,
    hostDst: `192.168.${100 + n}.10`,
    podNets: [`10.${10 + n}.0.0/16`],
    lanNet: `192.168.${100 + n}.0/24`,
  };
}

const C = {
  dflt: pairConn('dflt', 1),
  ikrc: pairConn('ikrc', 2),
  ikri: pairConn('ikri', 8),
  natI: pairConn('natI', 3),
  natL: pairConn('natL', 4),
  cbc: pairConn('cbc', 5),
  chacha: pairConn('chacha', 6),
  wpsk: pairConn('wpsk', 7),
  chart: {
    name: 'chart',
    n: 0,
    clAddr: '172.30.0.2',
    opAddr: '203.0.113.1',
    podSrc: '10.10.1.10',
    hostDst: '192.168.100.10',
    podNets: ['10.10.0.0/16', '10.96.0.0/12'],
    lanNet: '192.168.100.0/24',
  } satisfies Conn,
};
const LB = '203.0.113.254';
const SERVICE_IP = '10.96.0.10';
const PAIRS = [C.dflt, C.ikrc, C.ikri, C.natI, C.natL, C.cbc, C.chacha, C.wpsk];

async function topology(): Promise<void> {
  const t0 = Date.now();
  const root = [
    ...Object.values(NS).map((n) => `netns add ${n}`),
    `link add c-wan netns ${NS.cl} type veth peer name o-wan netns ${NS.op}`,
    `link add c-pod netns ${NS.cl} type veth peer name eth0 netns ${NS.pod}`,
    `link add o-lan netns ${NS.op} type veth peer name eth0 netns ${NS.oh}`,
    `link add c-nat netns ${NS.cl} type veth peer name n-in netns ${NS.nat}`,
    `link add n-out netns ${NS.nat} type veth peer name o-nat netns ${NS.op}`,
  ];
  await must('ip', ['-batch', '-'], { input: `${root.join('\n')}\n` });
  const up = (...devs: string[]) => ['link set lo up', ...devs.map((d) => `link set ${d} up`)];
  const cl = [
    ...up('c-wan', 'c-pod', 'c-nat'),
    'addr add 172.30.0.2/24 dev c-nat',
    'addr add 10.10.1.1/24 dev c-pod',
    `route add 10.96.0.0/12 via 10.10.1.10`,
    `route add ${C.chart.lanNet} via 172.30.0.1`,
    `route add 203.0.113.0/24 via 172.30.0.1`,
  ];
  const op = [
    ...up('o-wan', 'o-lan', 'o-nat'),
    'addr add 203.0.113.1/24 dev o-nat',
    'addr add 192.168.100.1/24 dev o-lan',
    `route add 10.10.0.0/16 via ${LB}`,
    `route add 10.96.0.0/12 via ${LB}`,
  ];
  const pod = [...up('eth0'), 'addr add 10.10.1.10/24 dev eth0', `addr add ${SERVICE_IP}/32 dev lo`];
  const oh = [...up('eth0'), 'addr add 192.168.100.10/24 dev eth0'];
  const nat = [...up('n-in', 'n-out'), 'addr add 172.30.0.1/24 dev n-in', `addr add ${LB}/24 dev n-out`];
  for (const c of PAIRS) {
    cl.push(`addr add ${c.clAddr}/24 dev c-wan`, `addr add 10.${10 + c.n}.1.1/24 dev c-pod`);
    cl.push(`route add ${c.lanNet} via ${c.opAddr}`);
    op.push(`addr add ${c.opAddr}/24 dev o-wan`, `addr add 192.168.${100 + c.n}.1/24 dev o-lan`);
    op.push(`route add ${c.podNets[0]} via ${c.clAddr}`);
    pod.push(`addr add ${c.podSrc}/24 dev eth0`);
    oh.push(`addr add ${c.hostDst}/24 dev eth0`);
  }
  pod.push('route add default via 10.10.1.1');
  oh.push('route add default via 192.168.100.1');
  for (const [ns, lines] of [
    [NS.cl, cl],
    [NS.op, op],
    [NS.pod, pod],
    [NS.oh, oh],
    [NS.nat, nat],
  ] as const)
    await must('ip', ['-n', ns, '-batch', '-'], { input: `${lines.join('\n')}\n` });
  for (const ns of [NS.cl, NS.op, NS.nat])
    await must('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
  // The LoadBalancer: UDP 500/4500 to its address go to the pod, the pod's traffic leaves from it.
  await must('ip', ['netns', 'exec', NS.nat, 'nft', '-f', '-'], {
    input: `table ip lb {
  chain pre {
    type nat hook prerouting priority dstnat;
    iifname "n-out" udp dport { 500, 4500 } dnat to 172.30.0.2
  }
  chain post {
    type nat hook postrouting priority srcnat;
    oifname "n-out" masquerade
  }
}
`,
  });
  results.meta.topologyMs = Date.now() - t0;
}

async function teardown(): Promise<void> {
  await run('ip', ['-batch', '-'], {
    input: `${Object.values(NS)
      .map((n) => `netns del ${n}`)
      .join('\n')}\n`,
  });
}

// ---- Libreswan -----------------------------------------------------------------------------------

/** natI, natL, wpsk: Curve25519 only (see the top). */
const FAST = 'ike=aes_gcm256-sha2_256;dh31';

function ipsecConf(): string {
  const pair = (c: Conn, extra: string[]) =>
    [
      `conn ${c.name}`,
      `  left=${c.opAddr}`,
      `  leftsubnet=${c.lanNet}`,
      `  right=${c.clAddr}`,
      `  rightsubnet=${c.podNets[0]}`,
      ...extra.map((l) => `  ${l}`),
      '',
    ].join('\n');
  return `config setup
  logfile=${PLUTO_LOG}
  logtime=yes
  logappend=yes
  plutodebug=none
  nssdir=${WORK}/nss
  ipsecdir=${WORK}/ipsec.d
  secretsfile=${WORK}/ipsec.secrets
  dumpdir=${RUN}

# Only what a PSK tunnel needs; everything else (ike=, esp=, pfs, lifetimes, margins, DPD,
# encapsulation) is Libreswan's default unless a case is about it. No updown script: the routes
# are the lab's (and it would cost process starts).
conn %default
  authby=secret
  leftupdown=%disabled
  auto=add

${pair(C.dflt, [])}
${pair(C.ikrc, [])}
${pair(C.ikri, [])}
${pair(C.natI, [FAST])}
${pair(C.natL, [FAST, 'encapsulation=yes'])}
${pair(C.cbc, ['ike=aes256-sha2_512;dh20', 'esp=aes256-sha2_256'])}
${pair(C.chacha, ['ike=chacha20_poly1305-sha2_512;dh31', 'esp=chacha20_poly1305'])}
${pair(C.wpsk, [FAST, 'keyingtries=1'])}
# The on-prem side of the Helm chart: the cluster behind its LoadBalancer identifies itself with
# its pod IP, which Libreswan only accepts from a right=%any connection (with right=<LB address>
# the ID defaults to that address and a rightid=%any is ignored: AUTHENTICATION_FAILED, "Peer ID
# '172.30.0.2' mismatched"). So Libreswan answers; the cluster side starts the tunnel (trap).
conn chart
  left=${C.chart.opAddr}
  leftsubnet=${C.chart.lanNet}
  right=%any
  rightid=%any
  rightsubnets={${C.chart.podNets.join(' ')}}
`;
}

async function startPluto(): Promise<Daemon> {
  const t0 = Date.now();
  mkdirSync(join(WORK, 'nss'), { recursive: true });
  mkdirSync(join(WORK, 'ipsec.d'), { recursive: true });
  mkdirSync(RUN, { recursive: true });
  writeFileSync(join(WORK, 'ipsec.conf'), ipsecConf());
  writeFileSync(join(WORK, 'ipsec.secrets'), `: PSK "${PSK}"\n`, { mode: 0o600 });
  await must('certutil', ['-N', '-d', `sql:${WORK}/nss`, '--empty-password']);
  results.meta.libreswan = (await run(PLUTO, ['--version'])).stdout.trim().split('\n')[0] ?? '';
  if (!existsSync('/usr/libexec'))
    throw new Error('/usr/libexec is missing (pluto runs /usr/libexec/ipsec/addconn)');
  // pluto runs /usr/libexec/ipsec/addconn (compiled in): in a private mount namespace a tmpfs over
  // /usr/libexec holds only a link to the unpacked Libreswan; nothing outside sees it.
  const sh = `mount -t tmpfs lsw /usr/libexec && ln -s '${LSW}/usr/libexec/ipsec' /usr/libexec/ipsec && exec "$0" "$@"`;
  const d = daemon(
    'ip',
    [
      ...['netns', 'exec', NS.op, 'unshare', '-m', '--propagation', 'private', 'sh', '-c', sh],
      ...[PLUTO, '--nofork', '--config', join(WORK, 'ipsec.conf'), '--rundir', RUN],
    ],
    join(WORK, 'pluto.out'),
  );
  const names = ['dflt', 'ikrc', 'ikri', 'natI', 'natL', 'cbc', 'chacha', 'wpsk', 'chart/0x1', 'chart/0x2'];
  await until(
    'pluto to load its connections',
    async () => {
      if (!d.running()) throw new Error(`pluto exited: ${readText(join(WORK, 'pluto.out'))}`);
      const log = readText(PLUTO_LOG);
      return existsSync(CTL) && names.every((n) => log.includes(`"${n}": added IKEv2 connection`))
        ? true
        : undefined;
    },
    60_000,
    250,
    () => readText(PLUTO_LOG).slice(-2000),
  );
  results.meta.plutoStartMs = Date.now() - t0;
  return d;
}

const whack = (args: string[], timeoutMs = 30_000) =>
  run(WHACK, ['--ctlsocket', CTL, ...args], { timeoutMs });

function parseLswStates(text: string): LswState[] {
  const out: LswState[] = [];
  for (const line of text.split('\n')) {
    const m = /^\d+ #(\d+): "([^"]+)"(?:\[\d+\])?(?: [^:]*)?:(\d+) (STATE_\S+)/.exec(line);
    if (!m) continue;
    const state = m[4]!;
    out.push({
      serial: Number(m[1]),
      conn: m[2]!,
      port: Number(m[3]),
      state,
      kind: /_IKE_SA$|PARENT/.test(state) ? 'ike' : /CHILD_SA$/.test(state) ? 'child' : 'other',
    });
  }
  return out;
}

async function lswStates(): Promise<{ raw: string; states: LswState[] }> {
  const r = await whack(['--showstates']);
  return { raw: r.stdout, states: parseLswStates(r.stdout) };
}

const ofConn = (s: LswState[], c: Conn) =>
  s.filter((x) => x.conn === c.name || x.conn.startsWith(`${c.name}/`));

// ---- ikegw ---------------------------------------------------------------------------------------

function ikegwYaml(): string {
  const pskFile = join(WORK, 'ikegw.psk');
  const wrongFile = join(WORK, 'ikegw-wrong.psk');
  writeFileSync(pskFile, PSK, { mode: 0o600 });
  writeFileSync(wrongFile, WRONG_PSK, { mode: 0o600 });
  const conn = (
    c: Conn,
    o: {
      proposals?: string;
      esp?: string;
      start?: string;
      encap?: boolean;
      psk?: string;
      extra?: string[];
      childExtra?: string[];
    } = {},
  ) =>
    [
      `  ${c.name}:`,
      `    remote_addrs: ['${c.opAddr}']`,
      `    local_addrs: ['${c.clAddr}']`,
      `    psk: { file: '${o.psk ?? pskFile}' }`,
      `    proposals: [${o.proposals ?? 'default'}]`,
      ...(o.encap ? ['    encap: yes'] : []),
      ...(o.extra ?? []).map((l) => `    ${l}`),
      '    children:',
      `      ${c.name}:`,
      `        local_ts: [${c.podNets.join(', ')}]`,
      `        remote_ts: [${c.lanNet}]`,
      `        esp_proposals: [${o.esp ?? 'default'}]`,
      `        start_action: ${o.start ?? 'trap'}`,
      ...(o.childExtra ?? []).map((l) => `        ${l}`),
    ].join('\n');
  return `connections:
${conn(C.dflt)}
${conn(C.ikrc, { start: 'none', childExtra: ['rekey_time: 30s', 'life_time: 600s'] })}
${conn(C.ikri, { start: 'none', extra: ['rekey_time: 30s', 'over_time: 300s'] })}
${conn(C.natI, { encap: true })}
${conn(C.natL, { start: 'none' })}
${conn(C.cbc, { proposals: 'aes256-sha512-ecp384', esp: 'aes256-sha256-ecp384' })}
${conn(C.chacha, { start: 'none', proposals: 'chacha20poly1305-prfsha512-curve25519', esp: 'chacha20poly1305-curve25519' })}
${conn(C.wpsk, { start: 'none', psk: wrongFile })}
${conn(C.chart, { extra: ['dpd_delay: 30s', 'dpd_action: restart'] })}
datapath: xfrm
listen: { address: 0.0.0.0, port: 500, nat_port: 4500 }
control: { socket: '${IKEGW_SOCK}' }
log: { level: debug, format: json }
`;
}

interface Ikegw extends Daemon {
  n: number;
}

async function startIkegw(n: number): Promise<Ikegw> {
  const cfg = join(WORK, 'ikegw.yaml');
  writeFileSync(cfg, ikegwYaml());
  const t0 = Date.now();
  results.meta.nodeStarts++;
  const d = daemon(
    'ip',
    ['netns', 'exec', NS.cl, process.execPath, CLI, 'daemon', '-c', cfg],
    join(WORK, `ikegw-${n}.log`),
  );
  const p: Ikegw = { ...d, n };
  await until(
    `ikegw #${n} to answer on its control socket with its traps installed`,
    async () => {
      if (!d.running()) throw new Error(`ikegw exited:\n${readText(d.log).slice(-3000)}`);
      if (!existsSync(IKEGW_SOCK)) return undefined;
      const r = await ctl({ cmd: 'sas' }, 5_000).catch(() => undefined);
      if (!r?.ok) return undefined;
      const traps = lines(p).filter((l) => /^addPolicy out \(trap\)/.test(String(l.msg))).length;
      return traps >= 5 ? true : undefined; // dflt, natI, cbc and the chart's two ranges
    },
    300_000,
    500,
  );
  results.meta.ikegwStartMs.push(Date.now() - t0);
  return p;
}

interface CtlReply {
  ok: boolean;
  result?: unknown;
  error?: string;
  code?: string;
  progress: string[];
}

function ctl(req: Record<string, unknown>, timeoutMs = 150_000): Promise<CtlReply> {
  return new Promise((resolve, reject) => {
    const s = connect(IKEGW_SOCK);
    const progress: string[] = [];
    let buf = '';
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`control ${JSON.stringify(req)}: no answer in ${timeoutMs} ms`));
    }, timeoutMs);
    s.setEncoding('utf8');
    s.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    s.on('connect', () => s.write(`${JSON.stringify(req)}\n`));
    s.on('data', (d: string) => {
      buf += d;
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const o = JSON.parse(line) as {
          progress?: string;
          ok?: boolean;
          result?: unknown;
          error?: string;
          code?: string;
        };
        if (o.progress !== undefined) {
          progress.push(o.progress);
          continue;
        }
        clearTimeout(timer);
        s.end();
        resolve({ ok: o.ok === true, result: o.result, error: o.error, code: o.code, progress });
      }
    });
  });
}

async function sas(c?: Conn): Promise<IkegwSa[]> {
  const r = await ctl({ cmd: 'sas' });
  if (!r.ok) throw new Error(`ikegw sas: ${r.error}`);
  const all = (r.result as Array<Record<string, unknown>>).map((s) => ({
    uid: s.uid as number,
    conn: s.conn as string,
    state: s.state as string,
    role: s.role as string,
    spiI: s.spiI as string,
    spiR: s.spiR as string,
    local: s.local as string,
    remote: s.remote as string,
    localId: s.localId as string,
    remoteId: s.remoteId as string,
    algorithms: s.algorithms as string,
    natLocal: s.natLocal as boolean,
    natRemote: s.natRemote as boolean,
    children: (s.children as Array<Record<string, unknown>>).map((ch) => ({
      name: ch.name as string,
      state: ch.state as string,
      reqid: ch.reqid as number,
      spiIn: ch.spiIn as string,
      spiOut: ch.spiOut as string,
      algorithms: ch.algorithms as string,
      encap: ch.encap as boolean,
      localTs: ch.localTs as string[],
      remoteTs: ch.remoteTs as string[],
    })),
  }));
  return c ? all.filter((s) => s.conn === c.name) : all;
}

interface LogLine {
  time?: string;
  level?: string | number;
  subsys?: string;
  conn?: string;
  msg?: string;
  [k: string]: unknown;
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

function lines(p: Daemon): LogLine[] {
  const out: LogLine[] = [];
  for (const l of readText(p.log).split('\n')) {
    if (!l.startsWith('{')) continue;
    try {
      out.push(JSON.parse(l) as LogLine);
    } catch {
      // a partial last line
    }
  }
  return out;
}

/** ikegw's log lines at info and above about a connection, since a time (ms epoch). */
function ikegwLines(p: Daemon, c: Conn, sinceMs: number): string[] {
  return lines(p)
    .filter(
      (l) =>
        l.conn === c.name &&
        l.level !== 'debug' &&
        l.level !== 'trace' &&
        Date.parse(String(l.time)) >= sinceMs,
    )
    .map((l) => `${l.level} ${l.msg}${l.hint ? ` [hint: ${String(l.hint)}]` : ''}`);
}

function plutoLines(since: number, re: RegExp): string[] {
  // pluto's logtime is local time without a year: compare by position instead, from a byte offset
  return readText(PLUTO_LOG)
    .slice(since)
    .split('\n')
    .filter((l) => re.test(l));
}
const plutoMark = (): number => readText(PLUTO_LOG).length;
/** Without pluto's "Dec  6 21:25:53.465266: " prefix. */
const noTime = (l: string): string => l.replace(/^\w{3} +\d+ [\d:.]+: /, '');

// ---- observations --------------------------------------------------------------------------------

/** `ip -s xfrm state` blocks whose outer addresses are this connection's (either direction). */
function xfrmBlocks(text: string, a: string, b: string): string[] {
  const blocks: string[] = [];
  let cur: string[] | undefined;
  for (const raw of text.split('\n')) {
    if (raw.startsWith('src ')) {
      cur = [raw];
      blocks.push('');
      const m = /^src (\S+) dst (\S+)/.exec(raw);
      if (!m || !((m[1] === a && m[2] === b) || (m[1] === b && m[2] === a))) cur = undefined;
    } else if (cur) cur.push(raw);
    if (cur) blocks[blocks.length - 1] = cur.join('\n');
  }
  return blocks.filter((x) => x !== '');
}

async function xfrm(ns: string, a: string, b: string): Promise<string[]> {
  const r = await must('ip', ['-n', ns, '-s', 'xfrm', 'state']);
  return xfrmBlocks(r.stdout, a, b).filter((x) => /proto esp spi 0x0*[1-9a-f]/.test(x));
}

/** The outer addresses as each gateway sees them. */
const outerCl = (c: Conn): [string, string] => [c.clAddr, c.opAddr];
const outerOp = (c: Conn): [string, string] => (c.n === 0 ? [c.opAddr, LB] : [c.opAddr, c.clAddr]);

async function snapshot(c: Conn): Promise<Snapshot> {
  const [ikegw, lsw, cl, op] = [
    await sas(c),
    await lswStates(),
    await xfrm(NS.cl, ...outerCl(c)),
    await xfrm(NS.op, ...outerOp(c)),
  ];
  return {
    ikegw,
    lsw: ofConn(lsw.states, c),
    lswRaw: lsw.raw
      .split('\n')
      .filter((l) => l.includes(`"${c.name}"`) || l.includes(`"${c.name}/`))
      .join('\n'),
    clXfrm: cl.join('\n'),
    opXfrm: op.join('\n'),
    clStates: cl.length,
    opStates: op.length,
  };
}

/**
 * Settled: one IKE_SA with one INSTALLED CHILD_SA in ikegw, one of each in pluto, two SAs in each
 * kernel. `staleIkeOk`: pluto may still list more IKE SAs (it keeps the old one after a peer's
 * INITIAL_CONTACT).
 */
async function settled(c: Conn, timeoutMs = 120_000, o: { staleIkeOk?: boolean } = {}): Promise<Snapshot> {
  let last: Snapshot | undefined;
  return until(
    `${c.name}: exactly one IKE_SA and one IPsec SA pair on both sides`,
    async () => {
      const s = await snapshot(c);
      last = s;
      const ikes = s.lsw.filter((x) => x.kind === 'ike' && x.state.includes('ESTABLISHED')).length;
      const ok =
        s.ikegw.length === 1 &&
        s.ikegw[0]!.state === 'ESTABLISHED' &&
        s.ikegw[0]!.children.length === 1 &&
        s.ikegw[0]!.children[0]!.state === 'INSTALLED' &&
        (o.staleIkeOk ? ikes >= 1 : ikes === 1 && s.lsw.filter((x) => x.kind === 'ike').length === 1) &&
        s.lsw.filter((x) => x.kind === 'child').length === 1 &&
        s.clStates === 2 &&
        s.opStates === 2;
      return ok ? s : undefined;
    },
    timeoutMs,
    700,
    () => JSON.stringify(last, null, 1)?.slice(0, 3000) ?? '',
  );
}

async function ping(
  ns: string,
  src: string,
  dst: string,
  count: number,
  intervalS = 0.2,
): Promise<PingCount> {
  const r = await run('ip', [
    ...['netns', 'exec', ns, 'ping', '-n', '-q', '-c', String(count), '-i', String(intervalS)],
    ...['-W', '2', '-I', src, dst],
  ]);
  const m = /(\d+) packets transmitted, (\d+) received/.exec(r.stdout);
  return { tx: Number(m?.[1] ?? 0), rx: Number(m?.[2] ?? 0) };
}

/** Pings until one reply comes back (the first packets may start the tunnel). */
async function pingUntil(ns: string, src: string, dst: string, timeoutMs: number): Promise<number> {
  const t0 = Date.now();
  await until(
    `a reply ${src} -> ${dst}`,
    async () => ((await ping(ns, src, dst, 1)).rx === 1 ? true : undefined),
    timeoutMs,
    100,
  );
  return Date.now() - t0;
}

async function bothWays(c: Conn, count = 5): Promise<{ out: PingCount; in: PingCount }> {
  return {
    out: await ping(NS.pod, c.podSrc, c.hostDst, count),
    in: await ping(NS.oh, c.hostDst, c.podSrc, count),
  };
}

/** ping -i 0.1 in the background; stop() ends it and counts the requests that got no reply. */
function pingBg(ns: string, src: string, dst: string): { stop: () => Promise<PingRun> } {
  results.meta.processStarts++;
  const t0 = Date.now();
  const c = spawn('ip', ['netns', 'exec', ns, 'ping', '-n', '-D', '-i', '0.1', '-W', '1', '-I', src, dst], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  c.stdout.on('data', (b: Buffer) => {
    out += b.toString();
  });
  const closed = new Promise<void>((r) => c.on('close', () => r()));
  return {
    stop: async () => {
      c.kill('SIGINT');
      await Promise.race([closed, sleep(5000)]);
      const tx = Number(/(\d+) packets transmitted/.exec(out)?.[1] ?? 0);
      const seen = new Map<number, number>();
      for (const m of out.matchAll(/^\[(\d+\.\d+)\] .*icmp_seq=(\d+) ttl/gm))
        seen.set(Number(m[2]), Number(m[1]));
      let lost = 0;
      let gap = 0;
      let longestGap = 0;
      const lostAt: string[] = [];
      let prev: number | undefined;
      for (let s = 1; s < tx; s++) {
        const at = seen.get(s);
        if (at !== undefined) {
          gap = 0;
          prev = at;
          continue;
        }
        lost++;
        gap++;
        longestGap = Math.max(longestGap, gap);
        if (lostAt.length < 40 && prev !== undefined)
          lostAt.push(new Date((prev + 0.1 * gap) * 1000).toISOString());
      }
      return { tx, rx: seen.size, lost, longestGap, lostAt, durationMs: Date.now() - t0 };
    },
  };
}

// ---- the cases -----------------------------------------------------------------------------------

function flush(): void {
  writeFileSync(join(OUT, 'results.json'), JSON.stringify(results, null, 1));
}

async function kase(
  id: string,
  title: string,
  fn: (obs: Record<string, unknown>) => Promise<void>,
): Promise<void> {
  const obs: Record<string, unknown> = {};
  const t0 = Date.now();
  console.log(`[${((t0 - T_START) / 1000).toFixed(0)} s] ${id}: ${title}`);
  if (left() < 20_000) {
    results.cases[id] = {
      title,
      ok: false,
      error: 'skipped: the driver ran out of its time budget',
      ms: 0,
      obs,
    };
    flush();
    return;
  }
  try {
    await fn(obs);
    results.cases[id] = { title, ok: true, ms: Date.now() - t0, obs };
  } catch (e) {
    const error = e instanceof Error ? (e.stack ?? e.message) : String(e);
    console.log(`  ${id} failed: ${error.split('\n')[0]}`);
    results.cases[id] = { title, ok: false, error, ms: Date.now() - t0, obs };
  }
  console.log(`  ${id}: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  flush();
}

/** Waits for ikegw to hold no IKE_SA of the connection and its kernel to have no SA of it. */
async function gone(c: Conn, timeoutMs = 60_000): Promise<void> {
  await until(
    `${c.name} to be gone from ikegw and its kernel`,
    async () =>
      (await sas(c)).length === 0 && (await xfrm(NS.cl, ...outerCl(c))).length === 0 ? true : undefined,
    timeoutMs,
    500,
  );
}

/** A rekey under traffic: ping -i 0.1 around `start`, until `done` says the rekey is over and settled. */
async function underTraffic(
  c: Conn,
  obs: Record<string, unknown>,
  start: () => Promise<void>,
  done: (s: IkegwSa) => boolean,
  timeoutMs: number,
): Promise<void> {
  const bg = pingBg(NS.pod, c.podSrc, c.hostDst);
  await sleep(1000);
  const t0 = Date.now();
  try {
    await start();
    await until(
      `${c.name}: the rekey`,
      async () => {
        const s = await sas(c);
        return s.length === 1 && done(s[0]!) ? true : undefined;
      },
      timeoutMs,
      250,
      async () => JSON.stringify(await sas(c)),
    );
    obs.rekeyMs = Date.now() - t0;
    obs.after = await settled(c);
    await sleep(1000);
  } finally {
    obs.ping = await bg.stop();
  }
  obs.traffic = await bothWays(c, 3);
}

async function main(): Promise<void> {
  mkdirSync(OUT, { recursive: true });
  await topology();
  const pluto = await startPluto();
  let ikegw = await startIkegw(1);
  try {
    await kase(
      'defaults-ikegw-initiator',
      'both at defaults, ikegw initiates (trap: the first packet)',
      async (obs) => {
        const c = C.dflt;
        obs.firstReplyMs = await pingUntil(NS.pod, c.podSrc, c.hostDst, 240_000);
        obs.s = await settled(c);
        obs.traffic = await bothWays(c);
      },
    );

    await kase(
      'defaults-libreswan-initiator',
      'both at defaults, Libreswan initiates (whack --initiate)',
      async (obs) => {
        const c = C.dflt;
        obs.terminate = (await whack(['--name', c.name, '--terminate'])).stdout.trim().split('\n').slice(-3);
        await gone(c);
        const t0 = Date.now();
        const r = await whack(['--name', c.name, '--initiate'], 180_000);
        obs.initiateMs = Date.now() - t0;
        obs.whack = r.stdout.trim().split('\n').slice(-4);
        obs.s = await settled(c);
        obs.traffic = await bothWays(c);
      },
    );

    let before = (await sas(C.dflt))[0];
    await kase(
      'libreswan-rekeys-child',
      'CHILD_SA rekey by Libreswan (whack --rekey-ipsec), pings every 100 ms',
      async (obs) => {
        const c = C.dflt;
        const old = before?.children[0]?.spiIn;
        obs.oldSpiIn = old;
        await underTraffic(
          c,
          obs,
          async () => {
            obs.whack = (await whack(['--name', c.name, '--rekey-ipsec'], 180_000)).stdout
              .trim()
              .split('\n')
              .slice(-4);
          },
          (s) =>
            s.children.length === 1 && s.children[0]!.state === 'INSTALLED' && s.children[0]!.spiIn !== old,
          180_000,
        );
      },
    );

    before = (await sas(C.dflt))[0];
    await kase(
      'libreswan-rekeys-ike',
      'IKE_SA rekey by Libreswan (whack --rekey-ike), pings every 100 ms',
      async (obs) => {
        const c = C.dflt;
        const old = `${before?.spiI}_${before?.spiR}`;
        obs.oldSpis = old;
        await underTraffic(
          c,
          obs,
          async () => {
            obs.whack = (await whack(['--name', c.name, '--rekey-ike'], 180_000)).stdout
              .trim()
              .split('\n')
              .slice(-4);
          },
          (s) => s.state === 'ESTABLISHED' && `${s.spiI}_${s.spiR}` !== old && s.children.length === 1,
          180_000,
        );
      },
    );

    // ikegw's own rekeys, both connections at once (they only wait for timers): ikrc's CHILD_SA
    // rekey_time and ikri's IKE_SA rekey_time are 30 s (jitter: up to 10 % earlier); each is
    // terminated after its first rekey, before the next one.
    const ikegwRekey = (id: string, c: Conn, what: 'child' | 'ike') =>
      kase(
        id,
        `${what === 'child' ? 'CHILD_SA' : 'IKE_SA'} rekey by ikegw (rekey_time), pings every 100 ms`,
        async (obs) => {
          const t0 = Date.now();
          const r = await ctl({ cmd: 'initiate', conn: c.name, timeoutMs: 240_000 }, 250_000);
          obs.initiate = { ok: r.ok, error: r.error, ms: Date.now() - t0 };
          if (!r.ok) throw new Error(`initiate ${c.name}: ${r.error}`);
          const up = (await sas(c))[0]!;
          const oldChild = up.children[0]?.spiIn;
          const oldIke = `${up.spiI}_${up.spiR}`;
          obs.old = what === 'child' ? oldChild : oldIke;
          const since = Date.now();
          try {
            await underTraffic(
              c,
              obs,
              async () => undefined,
              what === 'child'
                ? (s) =>
                    s.children.length === 1 &&
                    s.children[0]!.state === 'INSTALLED' &&
                    s.children[0]!.spiIn !== oldChild
                : (s) =>
                    s.state === 'ESTABLISHED' && `${s.spiI}_${s.spiR}` !== oldIke && s.children.length === 1,
              240_000,
            );
          } finally {
            obs.log = ikegwLines(ikegw, c, since).filter((l) =>
              /rekey|PFS|CHILD_SA|IKE_SA|NO_PROPOSAL/i.test(l),
            );
            obs.terminate = await ctl({ cmd: 'terminate', conn: c.name, timeoutMs: 120_000 }).then(
              (x) => x.error ?? 'ok',
              (e: Error) => e.message,
            );
          }
        },
      );
    await Promise.all([
      ikegwRekey('ikegw-rekeys-child', C.ikrc, 'child'),
      ikegwRekey('ikegw-rekeys-ike', C.ikri, 'ike'),
    ]);

    await kase('natt-forced-by-ikegw', 'forced NAT-T: encap: yes on ikegw (ikegw initiates)', async (obs) => {
      const c = C.natI;
      obs.firstReplyMs = await pingUntil(NS.pod, c.podSrc, c.hostDst, 240_000);
      obs.s = await settled(c);
      obs.traffic = await bothWays(c);
    });

    await kase(
      'natt-forced-by-libreswan',
      'forced NAT-T: encapsulation=yes on Libreswan (Libreswan initiates)',
      async (obs) => {
        const c = C.natL;
        obs.whack = (await whack(['--name', c.name, '--initiate'], 180_000)).stdout
          .trim()
          .split('\n')
          .slice(-4);
        obs.s = await settled(c);
        obs.traffic = await bothWays(c);
      },
    );

    await kase(
      'algorithms-aes-cbc-sha2-ecp384',
      'ike=aes256-sha2_512;dh20 esp=aes256-sha2_256 (ikegw initiates, Libreswan rekeys with PFS)',
      async (obs) => {
        const c = C.cbc;
        obs.firstReplyMs = await pingUntil(NS.pod, c.podSrc, c.hostDst, 240_000);
        const s = await settled(c);
        obs.s = s;
        const old = s.ikegw[0]!.children[0]!.spiIn;
        obs.whack = (await whack(['--name', c.name, '--rekey-ipsec'], 180_000)).stdout
          .trim()
          .split('\n')
          .slice(-4);
        await until(
          `${c.name}: the rekeyed CHILD_SA`,
          async () =>
            (await sas(c))[0]?.children.some((x) => x.state === 'INSTALLED' && x.spiIn !== old)
              ? true
              : undefined,
          120_000,
        );
        obs.after = await settled(c);
        obs.traffic = await bothWays(c);
      },
    );

    await kase(
      'algorithms-chacha20-curve25519',
      'ike=chacha20_poly1305-sha2_512;dh31 esp=chacha20_poly1305 (Libreswan initiates and rekeys)',
      async (obs) => {
        const c = C.chacha;
        obs.whack = (await whack(['--name', c.name, '--initiate'], 180_000)).stdout
          .trim()
          .split('\n')
          .slice(-4);
        const s = await settled(c);
        obs.s = s;
        const old = s.ikegw[0]!.children[0]!.spiIn;
        obs.whackRekey = (await whack(['--name', c.name, '--rekey-ipsec'], 180_000)).stdout
          .trim()
          .split('\n')
          .slice(-4);
        await until(
          `${c.name}: the rekeyed CHILD_SA`,
          async () =>
            (await sas(c))[0]?.children.some((x) => x.state === 'INSTALLED' && x.spiIn !== old)
              ? true
              : undefined,
          120_000,
        );
        obs.after = await settled(c);
        obs.traffic = await bothWays(c);
      },
    );

    await kase(
      'wrong-psk',
      "a wrong PSK, initiated by each side: the failure named in ikegw's log",
      async (obs) => {
        const c = C.wpsk;
        const since = Date.now();
        const mark = plutoMark();
        const r = await ctl({ cmd: 'initiate', conn: c.name, timeoutMs: 120_000 });
        obs.ikegwInitiate = { ok: r.ok, code: r.code, error: r.error, progress: r.progress };
        obs.ikegwInitiatorLog = ikegwLines(ikegw, c, since);
        const since2 = Date.now();
        obs.whack = (await whack(['--name', c.name, '--initiate', '--asynchronous'])).stdout
          .trim()
          .split('\n');
        obs.ikegwResponderLog = await until(
          "ikegw's failure line as responder",
          async () => {
            const l = ikegwLines(ikegw, c, since2);
            return l.some((x) => /AUTHENTICATION_FAILED/.test(x)) ? l : undefined;
          },
          120_000,
        ).catch(() => ikegwLines(ikegw, c, since2));
        // pluto revives an initiated connection after AUTHENTICATION_FAILED every few seconds, despite
        // keyingtries=1 and --terminate: only deleting the connection stops it
        await whack(['--delete', '--name', c.name]);
        obs.plutoLog = plutoLines(mark, /"wpsk"/).map(noTime);
        obs.sas = await sas(c);
        obs.clStates = (await xfrm(NS.cl, ...outerCl(c))).length;
      },
    );

    await kase(
      'chart-pod-cidr',
      "the chart's values behind the LB's NAT: the pod range both ways (ikegw starts it by trap)",
      async (obs) => {
        const c = C.chart;
        obs.firstReplyMs = await pingUntil(NS.pod, c.podSrc, c.hostDst, 240_000);
        obs.s = await until(
          'the chart connection to settle',
          async () => {
            const s = await snapshot(c);
            return s.ikegw.length === 1 && s.clStates === 2 && s.opStates === 2 ? s : undefined;
          },
          120_000,
          700,
        );
        obs.traffic = await bothWays(c);
      },
    );

    await kase(
      'chart-service-cidr',
      "the chart's values: the service range (Libreswan 4 puts one subnet pair in each CHILD_SA)",
      async (obs) => {
        const c = C.chart;
        const mark = plutoMark();
        const tries: Array<Record<string, PingCount>> = [];
        for (let i = 0; i < 3; i++) {
          const t = {
            svcOut: await ping(NS.pod, SERVICE_IP, c.hostDst, 3),
            svcIn: await ping(NS.oh, c.hostDst, SERVICE_IP, 3),
            podOut: await ping(NS.pod, c.podSrc, c.hostDst, 3),
            podIn: await ping(NS.oh, c.hostDst, c.podSrc, 3),
          };
          tries.push(t);
          if (Object.values(t).every((p) => p.rx === p.tx)) break;
          await sleep(3000);
        }
        obs.tries = tries;
        obs.s = await snapshot(c);
        obs.ikegwLog = ikegwLines(ikegw, c, T_START).slice(-12);
        obs.plutoLog = plutoLines(mark, /"chart/).map(noTime);
      },
    );

    await kase(
      'ikegw-restart',
      'ikegw killed (SIGKILL) and started again: INITIAL_CONTACT, traffic back, one SA pair',
      async (obs) => {
        const c = C.dflt;
        obs.before = await settled(c);
        const bg = pingBg(NS.pod, c.podSrc, c.hostDst);
        const mark = plutoMark();
        try {
          await sleep(1000);
          ikegw.child.kill('SIGKILL');
          await ikegw.exited;
          const t0 = Date.now();
          ikegw = await startIkegw(2);
          obs.startMs = Date.now() - t0;
          await until(
            `${c.name} up again in the new ikegw`,
            async () =>
              (await sas(c)).some(
                (x) => x.state === 'ESTABLISHED' && x.children.some((y) => y.state === 'INSTALLED'),
              )
                ? true
                : undefined,
            240_000,
          );
          obs.backMs = Date.now() - t0;
          obs.s = await settled(c, 120_000, { staleIkeOk: true });
          await sleep(1000);
        } finally {
          obs.ping = await bg.stop();
        }
        obs.traffic = await bothWays(c);
        // pluto deletes the old IPsec SAs on INITIAL_CONTACT but keeps the old IKE SA (no DPD by
        // default: until it next uses it)
        obs.lswIkeSas = ofConn((await lswStates()).states, c).filter((x) => x.kind === 'ike').length;
        obs.plutoLog = plutoLines(mark, /"dflt"/).map(noTime);
      },
    );

    await kase(
      'ikegw-sigterm',
      'SIGTERM: ikegw deletes its SAs at Libreswan and leaves nothing in the kernel',
      async (obs) => {
        const c = C.dflt;
        obs.before = await snapshot(c);
        obs.lswBefore = ofConn((await lswStates()).states, c);
        const mark = plutoMark();
        const t0 = Date.now();
        ikegw.child.kill('SIGTERM');
        obs.exitCode = await Promise.race([ikegw.exited, sleep(60_000).then(() => 'timeout')]);
        obs.exitMs = Date.now() - t0;
        obs.lswLeft = await until(
          'Libreswan to drop the deleted SAs',
          async () => {
            const s = ofConn((await lswStates()).states, c);
            return s.some((x) => x.kind === 'child' && x.state.includes('ESTABLISHED')) ? undefined : s;
          },
          30_000,
          500,
        ).catch(async () => ofConn((await lswStates()).states, c));
        obs.plutoLog = plutoLines(mark, /"dflt"|"chart/).map(noTime);
        obs.clStates = (await must('ip', ['-n', NS.cl, 'xfrm', 'state'])).stdout;
        obs.clPolicies = (await must('ip', ['-n', NS.cl, 'xfrm', 'policy'])).stdout;
        obs.opXfrm = (await xfrm(NS.op, ...outerOp(c))).join('\n');
      },
    );
  } finally {
    if (ikegw.running()) {
      ikegw.child.kill('SIGKILL');
      await Promise.race([ikegw.exited, sleep(5000)]);
    }
    pluto.child.kill('SIGTERM');
    await Promise.race([pluto.exited, sleep(5000)]);
    if (pluto.running()) pluto.child.kill('SIGKILL');
  }
}

try {
  await main();
  results.meta.finished = true;
} catch (e) {
  results.meta.fatal = e instanceof Error ? (e.stack ?? e.message) : String(e);
  console.error(`fatal: ${results.meta.fatal}`);
} finally {
  results.meta.wallMs = Date.now() - T_START;
  flush();
  for (const f of ['ikegw-1.log', 'ikegw-2.log', 'pluto.log', 'pluto.out', 'ipsec.conf', 'ikegw.yaml'])
    if (existsSync(join(WORK, f))) copyFileSync(join(WORK, f), join(OUT, f));
  await teardown();
  rmSync(WORK, { recursive: true, force: true });
}
process.exit(results.meta.fatal ? 1 : 0);
