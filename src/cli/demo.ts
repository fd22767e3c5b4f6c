// `npm run demo` (the README's `sudo ./dev demo`): a working tunnel in network namespaces, in a few
// seconds, with everything it creates removed at the end (also on Ctrl-C).
//
//   pod 10.10.1.10 ── cluster gateway: ikegw ── NAT ══ "internet" ══ on-prem gateway ── on-prem host
//                      172.30.0.2               198.51.100.254        198.51.100.1       192.168.100.10
//
// The on-prem gateway is strongSwan (charon + kernel-libipsec) when it is installed, otherwise a
// second ikegw (or when IKEGW_DEMO_PEER=ikegw). The cluster gateway uses `start_action: trap`: the first packet from the pod starts
// IKE, as with the Helm chart. With no data path that carries traffic (`datapath: memory`, or no
// TUN/native addon) the demo brings the tunnel up with `ikegw initiate` instead and says so.
//
// The namespaces have fixed, readable names (ikegw-demo-*); the demo refuses to run when any of
// them exists. It only sends traffic between the namespaces it created.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatPretty } from '../daemon/log.js';

/** The data path of both ikegw daemons. 'auto' = kernel XFRM if the kernel does ESP, else userspace
 * ESP over TUN; set 'memory' to see IKE only (no traffic). */
const DATAPATH: 'auto' | 'userspace' | 'xfrm' | 'memory' = 'auto';

const PREFIX = 'ikegw-demo-';
const NS = {
  pod: `${PREFIX}pod`,
  cluster: `${PREFIX}cluster`,
  nat: `${PREFIX}nat`,
  onprem: `${PREFIX}onprem`,
  onhost: `${PREFIX}onhost`,
} as const;
const ADDR = {
  pod: '10.10.1.10',
  clusterLan: '10.10.1.1',
  clusterWan: '172.30.0.2',
  natInside: '172.30.0.1',
  natOutside: '198.51.100.254',
  onpremWan: '198.51.100.1',
  onpremLan: '192.168.100.1',
  onhost: '192.168.100.10',
} as const;
const CLUSTER_TS = ['10.10.0.0/16', '10.96.0.0/12'];
const ONPREM_TS = '192.168.100.0/24';
const METRICS = '127.0.0.1:9090';

const CHARON = '/usr/lib/ipsec/charon';
const SWANCTL = '/usr/sbin/swanctl';
const LIBIPSEC = '/usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so';
const CLI = fileURLToPath(new URL('../bin/ikegw.js', import.meta.url));

// ---- output -------------------------------------------------------------------------------------

const tty = Boolean(process.stdout.isTTY);
const c = (code: string, s: string): string => (tty ? `\x1b[${code}m${s}\x1b[0m` : s);
const bold = (s: string): string => c('1', s);
const dim = (s: string): string => c('2', s);
const green = (s: string): string => c('32', s);
const red = (s: string): string => c('31', s);
const t0 = Date.now();
const secs = (): string => `${((Date.now() - t0) / 1000).toFixed(1)} s`;
let stepNo = 0;
const STEPS = 8;
function step(s: string): void {
  stepNo++;
  process.stdout.write(`\n${bold(`[${stepNo}/${STEPS}]`)} ${s}\n`);
}
function say(s: string): void {
  process.stdout.write(`      ${s.split('\n').join('\n      ')}\n`);
}

class DemoError extends Error {
  constructor(
    message: string,
    readonly detail = '',
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

// ---- what we create (and remove) ------------------------------------------------------------------

const created = { namespaces: [] as string[], procs: [] as ChildProcess[], dir: '' };
let cleaning: Promise<void> | undefined;
let interrupted = false;

function run(cmd: string, args: readonly string[], opts: { input?: string; check?: boolean } = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', input: opts.input, timeout: 20_000 });
  if ((opts.check ?? true) && r.status !== 0) {
    throw new DemoError(
      `${cmd} ${args.join(' ')} failed (exit ${r.status ?? r.signal})`,
      `${r.stdout}${r.stderr}`,
    );
  }
  return r;
}
const inNs = (
  ns: string,
  cmd: string,
  args: readonly string[],
  opts: { input?: string; check?: boolean } = {},
) => run('ip', ['netns', 'exec', ns, cmd, ...args], opts);

function startProc(
  ns: string,
  cmd: string,
  args: readonly string[],
  logFile: string,
  env: Record<string, string> = {},
): ChildProcess {
  const fd = openSync(logFile, 'a');
  try {
    const p = spawn('ip', ['netns', 'exec', ns, cmd, ...args], {
      detached: true, // own process group: Ctrl-C reaches the demo, which stops it in order
      stdio: ['ignore', fd, fd],
      env: { ...process.env, ...env },
    });
    created.procs.push(p);
    return p;
  } finally {
    closeSync(fd);
  }
}

const alive = (p: ChildProcess): boolean => p.exitCode === null && p.signalCode === null;

async function stopProc(p: ChildProcess): Promise<void> {
  if (!alive(p) || p.pid === undefined) return;
  const exited = new Promise<void>((r) => p.once('exit', () => r()));
  try {
    process.kill(-p.pid, 'SIGTERM');
  } catch {
    return;
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const done = await Promise.race([
    exited.then(() => true),
    new Promise<boolean>((r) => {
      timer = setTimeout(() => r(false), 4000);
    }),
  ]);
  clearTimeout(timer);
  if (!done) {
    try {
      process.kill(-p.pid, 'SIGKILL');
    } catch {
      // gone
    }
    await Promise.race([exited, sleep(1000)]);
  }
}

async function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    const n = created.procs.filter(alive).length;
    // ikegw first: it sends its DELETEs while the peer still listens.
    for (const p of [...created.procs].reverse()) await stopProc(p);
    for (const ns of [...created.namespaces].reverse()) run('ip', ['netns', 'del', ns], { check: false });
    const nns = created.namespaces.length;
    created.namespaces = [];
    if (created.dir && process.env.IKEGW_DEMO_KEEP !== '1')
      rmSync(created.dir, { recursive: true, force: true });
    if (n === 0 && nns === 0 && !created.dir) return;
    process.stdout.write(
      `\n${bold('cleaning up:')} stopped ${n} process${n === 1 ? '' : 'es'}, deleted ${nns} namespace${nns === 1 ? '' : 's'}${created.dir ? `, ${process.env.IKEGW_DEMO_KEEP === '1' ? 'kept' : 'removed'} ${created.dir}` : ''}\n`,
    );
  })();
  return cleaning;
}

/** Last resort at exit (e.g. an exception escaped): synchronous. */
process.on('exit', () => {
  for (const p of created.procs) {
    if (alive(p) && p.pid !== undefined) {
      try {
        process.kill(-p.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
  for (const ns of created.namespaces) spawnSync('ip', ['netns', 'del', ns]);
  if (created.dir && process.env.IKEGW_DEMO_KEEP !== '1')
    rmSync(created.dir, { recursive: true, force: true });
});
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    interrupted = true;
    process.stdout.write(`\n${sig}: stopping the demo\n`);
    void cleanup().then(() => process.exit(130));
  });
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function until<T>(
  what: string,
  f: () => T | undefined | false,
  ms: number,
  detail: () => string = () => '',
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new DemoError(`${what} (waited ${ms / 1000} s)`, detail());
    await sleep(50);
  }
}

// ---- checks ----------------------------------------------------------------------------------------------

function which(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).status === 0;
}

function checks(): { strongswan: boolean; why?: string } {
  if (process.platform !== 'linux') throw new DemoError('the demo needs Linux (network namespaces)', '', 2);
  if (process.getuid?.() !== 0)
    throw new DemoError(
      'the demo needs root (network namespaces, TUN): run  sudo npm run demo  (or sudo ./dev demo)',
      '',
      2,
    );
  const missing: string[] = [];
  if (!which('ip')) missing.push('ip (apt-get install iproute2)');
  if (!which('nft')) missing.push('nft (apt-get install nftables)');
  if (!which('ping')) missing.push('ping (apt-get install iputils-ping)');
  if (!existsSync(CLI)) missing.push(`${CLI} (run npm run build)`);
  if (missing.length) throw new DemoError(`missing: ${missing.join(', ')}`, '', 2);
  const r = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  if (r.status !== 0)
    throw new DemoError('`ip netns list` failed: network namespaces are not usable here', r.stderr, 2);
  const taken = r.stdout
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n.startsWith(PREFIX));
  if (taken.length) {
    throw new DemoError(
      `namespaces from another demo exist: ${taken.join(', ')}`,
      `Another demo is running, or one was killed. Remove them with:\n  ${taken.map((n) => `ip netns del ${n}`).join('; ')}`,
      2,
    );
  }
  if (process.env.IKEGW_DEMO_PEER === 'ikegw')
    return { strongswan: false, why: 'not used (IKEGW_DEMO_PEER=ikegw)' };
  const need = [CHARON, SWANCTL, LIBIPSEC].filter((p) => !existsSync(p));
  if (need.length) return { strongswan: false, why: `not installed: ${need.join(', ')}` };
  return { strongswan: true };
}

// ---- topology --------------------------------------------------------------------------------------------

function addNs(name: string): void {
  run('ip', ['netns', 'add', name]);
  created.namespaces.push(name);
  run('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  // IPv4 only: no IPv6 link-local addresses appearing mid-demo (strongSwan would announce them).
  inNs(name, 'sysctl', ['-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
}

function veth(a: string, ifA: string, b: string, ifB: string): void {
  run('ip', ['-n', a, 'link', 'add', ifA, 'type', 'veth', 'peer', 'name', ifB, 'netns', b]);
  run('ip', ['-n', a, 'link', 'set', ifA, 'up']);
  run('ip', ['-n', b, 'link', 'set', ifB, 'up']);
}

function addr(ns: string, cidr: string, dev: string): void {
  run('ip', ['-n', ns, 'addr', 'add', cidr, 'dev', dev]);
}

function router(ns: string): void {
  inNs(ns, 'sysctl', [
    '-qw',
    'net.ipv4.ip_forward=1',
    'net.ipv4.conf.all.rp_filter=0',
    'net.ipv4.conf.default.rp_filter=0',
  ]);
}

const NAT_RULES = `table ip ikegw_demo_nat {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    # like a cloud NAT gateway: the cluster's IKE arrives at on-prem from 198.51.100.254:<random port>
    iifname "in0" oifname "out0" masquerade random
  }
}
table inet ikegw_demo_filter {
  chain forward {
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    iifname "in0" oifname "out0" accept
  }
}
`;

function buildLab(): void {
  for (const ns of Object.values(NS)) addNs(ns);
  veth(NS.pod, 'eth0', NS.cluster, 'lan0');
  veth(NS.cluster, 'wan0', NS.nat, 'in0');
  veth(NS.nat, 'out0', NS.onprem, 'wan0');
  veth(NS.onprem, 'lan0', NS.onhost, 'eth0');
  addr(NS.pod, `${ADDR.pod}/24`, 'eth0');
  run('ip', ['-n', NS.pod, 'route', 'add', 'default', 'via', ADDR.clusterLan]);
  addr(NS.cluster, `${ADDR.clusterLan}/24`, 'lan0');
  addr(NS.cluster, `${ADDR.clusterWan}/24`, 'wan0');
  run('ip', ['-n', NS.cluster, 'route', 'add', 'default', 'via', ADDR.natInside]);
  addr(NS.nat, `${ADDR.natInside}/24`, 'in0');
  addr(NS.nat, `${ADDR.natOutside}/24`, 'out0');
  addr(NS.onprem, `${ADDR.onpremWan}/24`, 'wan0');
  addr(NS.onprem, `${ADDR.onpremLan}/24`, 'lan0');
  addr(NS.onhost, `${ADDR.onhost}/24`, 'eth0');
  run('ip', ['-n', NS.onhost, 'route', 'add', 'default', 'via', ADDR.onpremLan]);
  for (const ns of [NS.cluster, NS.nat, NS.onprem]) router(ns);
  inNs(NS.nat, 'nft', ['-f', '-'], { input: NAT_RULES });
}

// ---- the gateways ------------------------------------------------------------------------------------------

function ikegwYaml(o: {
  conn: string;
  child: string;
  remote: string;
  local: string;
  localTs: string[];
  remoteTs: string[];
  start: 'trap' | 'none';
  pskFile: string;
  socket: string;
  extra?: string;
}): string {
  return `connections:
  ${o.conn}:
    remote_addrs: [${o.remote}]
    local_addrs: [${o.local}]
    psk: { file: ${o.pskFile} }
    dpd_delay: 30s
    dpd_action: restart
    children:
      ${o.child}:
        local_ts: [${o.localTs.join(', ')}]
        remote_ts: [${o.remoteTs.join(', ')}]
        start_action: ${o.start}
${o.extra ?? ''}datapath: ${DATAPATH}
listen: { address: ${o.local} }
metrics: { listen: '${METRICS}' }
control: { socket: ${o.socket} }
log: { level: info, format: json }
`;
}

interface JsonLine {
  msg?: string;
  level?: string;
  [k: string]: unknown;
}

function logLines(file: string): JsonLine[] {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  const out: JsonLine[] = [];
  for (const l of text.split('\n')) {
    if (!l.startsWith('{')) continue;
    try {
      out.push(JSON.parse(l) as JsonLine);
    } catch {
      // partial line
    }
  }
  return out;
}

function tailText(file: string, n = 30): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-n).join('\n');
  } catch {
    return '';
  }
}

interface Ikegw {
  ns: string;
  log: string;
  socket: string;
  proc: ChildProcess;
}

function startIkegw(ns: string, name: string, yaml: string, psk: string): Ikegw {
  const cfg = join(created.dir, `${name}.yaml`);
  const pskFile = join(created.dir, `${name}.psk`);
  const socket = join(created.dir, `${name}.sock`);
  writeFileSync(pskFile, psk, { mode: 0o600 });
  writeFileSync(join(created.dir, `${name}-wrong.psk`), `not-${psk}`, { mode: 0o600 });
  writeFileSync(cfg, yaml.replaceAll('@PSK@', pskFile).replaceAll('@SOCK@', socket), { mode: 0o600 });
  const log = join(created.dir, `${name}.log`);
  // each daemon gets its own TUN device name; the names are per namespace anyway
  const proc = startProc(ns, process.execPath, [CLI, 'daemon', '-c', cfg], log, { IKEGW_TUN_NAME: 'ikegw0' });
  return { ns, log, socket, proc };
}

async function waitReady(g: Ikegw, what: string): Promise<JsonLine[]> {
  await until(
    `${what} did not become ready`,
    () => {
      if (!alive(g.proc)) throw new DemoError(`${what} exited`, tailText(g.log));
      return logLines(g.log).some((l) => typeof l.msg === 'string' && l.msg.startsWith('ikegw started'));
    },
    10_000,
    () => tailText(g.log),
  );
  // /readyz: config loaded, sockets bound, trap policies installed
  await until(
    `${what}: /readyz did not turn ready`,
    () => httpGet(g.ns, `http://${METRICS}/readyz`).status === 200,
    10_000,
    () => `${httpGet(g.ns, `http://${METRICS}/readyz`).body}\n${tailText(g.log)}`,
  );
  return logLines(g.log);
}

/** GET from inside a namespace (curl when present, else node's fetch). */
function httpGet(ns: string, url: string): { status: number; body: string } {
  const script = `fetch(${JSON.stringify(url)}).then(async r=>{process.stdout.write(r.status+'\\n'+await r.text())}).catch(e=>{process.stdout.write('0\\n'+e.message)})`;
  const r = inNs(ns, process.execPath, ['-e', script], { check: false });
  const [first = '0', ...rest] = (r.stdout ?? '').split('\n');
  return { status: Number(first), body: rest.join('\n') };
}

interface Charon {
  proc: ChildProcess;
  log: string;
  swanctl(args: string[]): { status: number | null; stdout: string; stderr: string };
}

async function startCharon(psk: string): Promise<Charon> {
  const dir = join(created.dir, 'strongswan');
  const runDir = join(dir, 'run');
  const swanDir = join(dir, 'swanctl');
  for (const d of [
    runDir,
    ...['x509', 'x509ca', 'private', 'pubkey', 'rsa', 'ecdsa', 'pkcs8', 'pkcs12'].map((x) =>
      join(swanDir, x),
    ),
  ])
    spawnSync('mkdir', ['-p', d]);
  const socket = join(runDir, 'charon.vici');
  const log = join(dir, 'charon.log');
  const conf = join(dir, 'strongswan.conf');
  writeFileSync(
    conf,
    `charon {
  load_modular = yes
  plugins {
    include /etc/strongswan.d/charon/*.conf
    kernel-libipsec {
      load = yes
    }
    vici {
      socket = unix://${socket}
    }
  }
  filelog {
    main {
      path = ${log}
      time_format = %H:%M:%S
      ike_name = yes
      default = 1
      ike = 1
      flush_line = yes
    }
  }
  syslog {
    daemon {
      default = -1
    }
  }
}
`,
  );
  const client = join(dir, 'swanctl-client.conf');
  writeFileSync(client, 'swanctl {\n  load = random nonce pem pkcs1 pkcs8 x509 pubkey openssl\n}\n');
  const swanctlConf = join(swanDir, 'swanctl.conf');
  writeFileSync(
    swanctlConf,
    `# the on-prem side, as in the reference chart's set-up: PSK, mirror-image selectors
connections {
  cluster {
    remote_addrs = ${ADDR.natOutside}
    local {
      auth = psk
    }
    remote {
      auth = psk
    }
    children {
      cluster {
        local_ts = ${ONPREM_TS}
        remote_ts = ${CLUSTER_TS.join(',')}
      }
    }
  }
}
secrets {
  ike-demo {
    secret = "${psk}"
  }
}
`,
    { mode: 0o600 },
  );
  // charon's pid file and plugin sockets are compiled-in paths under /run: give it its own /run
  // inside the private mount namespace `ip netns exec` creates.
  const proc = startProc(
    NS.onprem,
    'env',
    [
      `STRONGSWAN_CONF=${conf}`,
      'sh',
      '-c',
      'mount --bind "$1" /run && shift && exec "$@"',
      'charon',
      runDir,
      CHARON,
    ],
    join(dir, 'charon.stdout'),
  );
  await until(
    'strongSwan did not start',
    () => {
      if (!alive(proc))
        throw new DemoError('strongSwan (charon) exited', tailText(join(dir, 'charon.stdout')));
      return existsSync(socket);
    },
    10_000,
    () => tailText(log),
  );
  const swanctl = (args: string[]) =>
    spawnSync(SWANCTL, [...args, '--uri', `unix://${socket}`], {
      encoding: 'utf8',
      env: { ...process.env, STRONGSWAN_CONF: client, SWANCTL_DIR: swanDir },
      timeout: 20_000,
    });
  const r = swanctl(['--load-all', '--file', swanctlConf]);
  if (r.status !== 0)
    throw new DemoError('swanctl --load-all failed', `${r.stdout}${r.stderr}\n${tailText(log)}`);
  return { proc, log, swanctl };
}

function ping(ns: string, dst: string, count: number): number {
  const r = inNs(ns, 'ping', ['-n', '-q', '-c', String(count), '-i', '0.2', '-W', '2', dst], {
    check: false,
  });
  const m = /(\d+) (?:packets )?received/.exec(r.stdout);
  return m ? Number(m[1]) : 0;
}

function cli(args: string[]): { status: number; out: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 30_000 });
  return { status: r.status ?? 1, out: `${r.stdout}${r.stderr}` };
}

function showLog(file: string, pred: (l: JsonLine) => boolean, max = 8): void {
  const lines = logLines(file).filter(pred).slice(0, max);
  for (const l of lines) {
    const { hint: _hint, ...rest } = l;
    const short = Object.fromEntries(
      Object.entries(rest).filter(([k]) => ['time', 'level', 'subsys', 'msg'].includes(k)),
    );
    say(dim(formatPretty(short)));
  }
}

// ---- the demo ----------------------------------------------------------------------------------------------

async function demo(): Promise<void> {
  process.stdout.write(
    `${bold('ikegw demo')} — an IPsec tunnel from a cluster to an on-prem site, in network namespaces\n\n` +
      `  pod ${ADDR.pod} ── cluster gateway (ikegw) ${ADDR.clusterWan} ── NAT ${ADDR.natOutside} ══ ${ADDR.onpremWan} on-prem gateway ── on-prem host ${ADDR.onhost}\n`,
  );
  step('checking the machine');
  const have = checks();
  say(`root, ip, nft, ping: ${green('ok')}`);
  say(
    have.strongswan
      ? `on-prem gateway: strongSwan (${CHARON} with kernel-libipsec) ${green('ok')}`
      : `on-prem gateway: a second ikegw (strongSwan ${have.why})`,
  );

  step(`building the lab: namespaces ${Object.values(NS).join(', ')}`);
  created.dir = mkdtempSync(join(tmpdir(), PREFIX));
  buildLab();
  say(`veth links, addresses, routes, nftables masquerade on the NAT ${green('done')} ${dim(`(${secs()})`)}`);

  const psk = randomBytes(24).toString('base64url');
  step(`starting the on-prem gateway (${have.strongswan ? 'strongSwan 5.9' : 'ikegw'}, responder, PSK)`);
  let charon: Charon | undefined;
  let onprem: Ikegw | undefined;
  if (have.strongswan) {
    charon = await startCharon(psk);
    say(`charon running in ${NS.onprem}; swanctl --load-all ${green('ok')} ${dim(`(${secs()})`)}`);
  } else {
    onprem = startIkegw(
      NS.onprem,
      'onprem',
      ikegwYaml({
        conn: 'cluster',
        child: 'cluster',
        remote: ADDR.natOutside,
        local: ADDR.onpremWan,
        localTs: [ONPREM_TS],
        remoteTs: CLUSTER_TS,
        start: 'none',
        pskFile: '@PSK@',
        socket: '@SOCK@',
      }),
      psk,
    );
    await waitReady(onprem, 'the on-prem ikegw');
    say(`ikegw running in ${NS.onprem} ${green('ok')} ${dim(`(${secs()})`)}`);
  }

  step('starting ikegw on the cluster gateway (start_action: trap, as the Helm chart does)');
  const gw = startIkegw(
    NS.cluster,
    'cluster',
    ikegwYaml({
      conn: 'onprem',
      child: 'cluster',
      remote: ADDR.onpremWan,
      local: ADDR.clusterWan,
      localTs: CLUSTER_TS,
      remoteTs: [ONPREM_TS],
      start: 'trap',
      pskFile: '@PSK@',
      socket: '@SOCK@',
      // the same peer with a wrong pre-shared key, to show what a failure looks like (step 8)
      extra: `  wrongpsk:
    remote_addrs: [${ADDR.onpremWan}]
    local_addrs: [${ADDR.clusterWan}]
    psk: { file: ${join(created.dir, 'cluster-wrong.psk')} }
    children:
      cluster:
        local_ts: [${CLUSTER_TS.join(', ')}]
        remote_ts: [${ONPREM_TS}]
`,
    }),
    psk,
  );
  const startLines = await waitReady(gw, 'ikegw');
  const dp = startLines.find((l) => typeof l.msg === 'string' && /data path|in-memory installer/.test(l.msg));
  const traffic =
    !startLines.some((l) => typeof l.msg === 'string' && /in-memory installer/.test(l.msg)) &&
    DATAPATH !== 'memory';
  say(`config: ${join(created.dir, 'cluster.yaml')}`);
  if (dp?.msg) say(`data path: ${dp.msg}`);
  say(`/readyz: 200 — config loaded, UDP 500/4500 bound, trap policy installed ${dim(`(${secs()})`)}`);
  say(dim('(ready does not wait for the tunnel: the peer must be able to reach the pod to bring it up)'));

  step(
    traffic ? `the first packet from the pod to ${ADDR.onhost} starts IKE (trap)` : 'bringing the tunnel up',
  );
  if (traffic) {
    const n = ping(NS.pod, ADDR.onhost, 3);
    await until(
      'the CHILD_SA was not installed',
      () => logLines(gw.log).some((l) => l.state === 'INSTALLED'),
      10_000,
      () => tailText(gw.log),
    );
    showLog(
      gw.log,
      (l) =>
        typeof l.msg === 'string' &&
        /^(acquire|IKE_SA .* (established|CONNECTING)|CHILD_SA .* INSTALLED)/.test(l.msg),
    );
    say(
      `ping pod -> on-prem host: ${n === 3 ? green(`${n}/3 replies`) : red(`${n}/3 replies`)} (the trap queues the first packet while IKE runs)`,
    );
  } else {
    say(
      red(
        `no data path that carries traffic (datapath ${DATAPATH}${dp?.msg ? `: ${dp.msg}` : ''}): IKE only, no pings`,
      ),
    );
    say('running: ikegw initiate onprem');
    const r = cli(['initiate', 'onprem', '--socket', gw.socket]);
    say(r.out.trimEnd());
    if (r.status !== 0) throw new DemoError('ikegw initiate failed', tailText(gw.log));
  }

  step('ikegw sas (the CLI talks to the daemon over its control socket)');
  const sas = cli(['sas', '--socket', gw.socket]);
  say(sas.out.trimEnd());
  if (charon) {
    const r = charon.swanctl(['--list-sas']);
    say(dim(`strongSwan's view (swanctl --list-sas):\n${r.stdout.trimEnd()}`));
  }
  if (traffic) {
    const back = ping(NS.onhost, ADDR.pod, 3);
    say(`ping on-prem host -> pod: ${back === 3 ? green(`${back}/3 replies`) : red(`${back}/3 replies`)}`);
    const again = cli(['sas', '--socket', gw.socket]).out;
    const counters = again.split('\n').filter((l) => /^\s+(in|out) /.test(l));
    say(`CHILD_SA counters now:\n${counters.map((l) => l.trim()).join('\n')}`);
  }

  step(`a few metrics (GET http://${METRICS}/metrics in ${NS.cluster})`);
  const m = httpGet(NS.cluster, `http://${METRICS}/metrics`);
  const pick = [
    /^ikegw_tunnel_up/,
    /^ikegw_ike_handshakes_total\{.*result="established"/,
    /^ikegw_ike_sa_setup_duration_seconds_(sum|count)/,
    /^ikegw_ike_messages_total/,
    /^ikegw_child_sa_(bytes|packets)_total/,
    /^ikegw_ike_sa_info/,
    /^ikegw_datapath_errors_total/,
  ];
  const shown = m.body
    .split('\n')
    .filter((l) => pick.some((re) => re.test(l)) && !l.includes('conn="wrongpsk"'));
  say(shown.join('\n') || red(`no metrics (HTTP ${m.status})`));
  say(
    dim(
      `(${m.body.split('\n').filter((l) => l.startsWith('ikegw_')).length} series in all; docs/operations.md lists them)`,
    ),
  );

  step('what a failure looks like: ikegw initiate wrongpsk (same peer, wrong pre-shared key)');
  const bad = cli(['initiate', 'wrongpsk', '--socket', gw.socket, '--timeout', '10']);
  say(
    `${bad.out.trimEnd()}\n${dim(`(exit code ${bad.status}; the log line carries the same text, plus reason and hint fields)`)}`,
  );
  const still = cli(['sas', '--socket', gw.socket]).out.split('\n')[0] ?? '';
  say(`the working tunnel is untouched: ${still}`);
  say(dim(`IKEGW_DEMO_KEEP=1 npm run demo keeps ${created.dir} (configs and logs) for a look afterwards`));
}

async function main(): Promise<number> {
  try {
    await demo();
    await cleanup();
    process.stdout.write(`\n${green('done')} in ${secs()}\n`);
    return 0;
  } catch (e) {
    const err =
      e instanceof DemoError ? e : new DemoError(e instanceof Error ? (e.stack ?? e.message) : String(e));
    if (interrupted) {
      await cleanup();
      return 130;
    }
    process.stderr.write(`\n${red('demo failed:')} ${err.message}\n${err.detail ? `${err.detail}\n` : ''}`);
    await cleanup();
    return err.exitCode;
  }
}

process.exitCode = await main();
