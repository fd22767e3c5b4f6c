// Responder set-up rate and memory with strongSwan's own load generator (the load-tester plugin,
// /work/shared/tools/strongswan-load-tester, built into BENCH_LT_PREFIX, default
// /var/tmp/strongswan-lt) driving, in the same run and the same topology:
//   - charon 5.9.8 with kernel-libipsec (userspace ESP, like ikegw's `datapath: userspace`)
//   - ikegw with `datapath: userspace` (TUN device, userspace SAD/SPD)
//   - labelled separately: charon with the load-tester's fake kernel interface vs ikegw with
//     `datapath: memory` (IKE only on both sides).
// `BENCH_ONLY=loadtester npm run bench`. Needs root (network namespaces).
//
// Topology: ns <p>init (192.0.2.1, generator, CPU 0) -- veth -- ns <p>resp (192.0.2.2, responder,
// CPU 1). DoS protection off on both responders (all SAs come from one address), unless
// BENCH_LT_DOS=1 (then both keep their defaults and the COOKIE behaviour is reported), or
// BENCH_LT_DOS=cookies (the defaults without the per-address half-open limit, which otherwise
// stops a one-address flood before ikegw's COOKIE threshold: charon block_threshold = 1000000,
// as charon raises 0 to cookie_threshold_ip + 1; ikegw dos.half_open_per_ip: 0).
//
// Per responder: idle RSS (after start and a settle), then the generator runs N IKE_SAs +
// CHILD_SAs (`initiators` threads × `iterations`, `init_limit` in flight); rate = established /
// (last `established` − first `initiating`) from the generator's log; CPU = utime+stime of the
// responder process over the run / established; RSS growth per SA = (RSS after a settle − idle
// RSS) / established.
//
// Knobs: BENCH_LT_COUNT (2000), BENCH_LT_PROPOSALS (x25519,ecp256,modp2048), BENCH_LT_RESPONDERS
// (charon-libipsec,ikegw-userspace,charon-fake,ikegw-memory), BENCH_LT_SETTLE_MS (3000),
// BENCH_LT_REPEAT (1; above 1 also the median ratios), BENCH_LT_WARMUP (0: IKE_SAs of an unmeasured
// first generator run),
// BENCH_LT_IKEGW_ARGS (extra node flags, e.g. --cpu-prof --cpu-prof-dir=/tmp/p;
// --heapsnapshot-signal=SIGUSR2 with BENCH_LT_HEAP_SNAPSHOT=dir writes a heap snapshot of ikegw
// holding its SAs), BENCH_LT_ALLOC_PROFILE=dir (where ikegw's allocated bytes come from, GC'd ones
// included), BENCH_LT_IKEGW_LOG (ikegw's log level, warn), BENCH_KEEP=1 keeps the lab
// directory.
import {
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { type BenchKey, type BenchPki, makeBenchPki } from './bench-pki.js';
import {
  CHARON,
  type Charon,
  CLI,
  cpuSeconds,
  findDescendant,
  Lab,
  LIBIPSEC,
  median,
  must,
  rss,
  run,
  SWANCTL,
  sleep,
  tailOf,
} from './lab.js';

const PREFIX = process.env.BENCH_LT_PREFIX ?? '/var/tmp/strongswan-lt';

/** A first generator run of `count` IKE_SAs, unmeasured; returns when they are established (or 30 s). */
async function warmUp(lab: Lab<string>, proposal: string, count: number, threads: number): Promise<void> {
  const dir = join(lab.dir, 'warm');
  const log = join(dir, 'gen.log');
  const run = join(dir, 'run');
  await lab.exec('init', 'mkdir', ['-p', run]);
  const conf = join(dir, 'strongswan.conf');
  writeFileSync(conf, generatorConf({ proposal, count, log, threads, messages: false }));
  const gen = lab.spawn(
    'init',
    'sh',
    ['-c', 'mount --bind "$1" "$2" && shift 2 && exec "$@"', 'wrap', run, join(PREFIX, 'run'), LT_CHARON],
    { cpu: '0', env: { STRONGSWAN_CONF: conf }, log: 'warm.out' },
  );
  const total = Math.ceil(count / threads) * threads;
  for (let i = 0; i < 300 && gen.exitCode === null; i++) {
    await sleep(100);
    const done = existsSync(log) ? readFileSync(log, 'utf8').split('established between').length - 1 : 0;
    if (done >= total) break;
  }
  await lab.stop(gen);
  await sleep(1000);
}

/** BENCH_LT_ALLOC_PROFILE=dir: where ikegw's bytes allocated come from (src/bench/alloc-profile.ts). */
const ALLOC_DIR = process.env.BENCH_LT_ALLOC_PROFILE;
const BENCH_DIR = dirname(fileURLToPath(import.meta.url));

async function allocProfile(pid: number, name: string): Promise<void> {
  mkdirSync(ALLOC_DIR!, { recursive: true });
  const file = `${ALLOC_DIR}/alloc-${pid}.heapprofile`;
  process.kill(pid, 'SIGUSR2');
  for (let i = 0; i < 600 && !existsSync(file); i++) await sleep(100);
  if (!existsSync(file)) return console.log('  allocation profile: none written');
  const p = JSON.parse(readFileSync(file, 'utf8')) as { head: { selfSize: number; children: unknown[] } };
  let bytes = 0;
  const walk = (n: { selfSize: number; children: unknown[] }): void => {
    bytes += n.selfSize;
    for (const c of n.children) walk(c as typeof n);
  };
  walk(p.head);
  renameSync(file, `${ALLOC_DIR}/${name}.heapprofile`);
  console.log(
    `  allocation profile: ${ALLOC_DIR}/${name}.heapprofile (${(bytes / 1048576).toFixed(1)} MiB allocated since start, sampled)`,
  );
}

/** Writes a heap snapshot of the ikegw process (started with --heapsnapshot-signal=SIGUSR2) to dir. */
async function heapSnapshot(pid: number, dir: string, name: string): Promise<void> {
  const cwd = `/proc/${pid}/cwd`;
  const before = new Set(readdirSync(cwd).filter((f) => f.endsWith('.heapsnapshot')));
  process.kill(pid, 'SIGUSR2');
  for (let i = 0; i < 1200; i++) {
    await sleep(100);
    const f = readdirSync(cwd).find((x) => x.endsWith('.heapsnapshot') && !before.has(x));
    // written when its size stops changing
    if (f && statSync(`${cwd}/${f}`).size > 0) {
      let size = -1;
      while (size !== statSync(`${cwd}/${f}`).size) {
        size = statSync(`${cwd}/${f}`).size;
        await sleep(500);
      }
      mkdirSync(dir, { recursive: true });
      copyFileSync(`${cwd}/${f}`, `${dir}/${name}.heapsnapshot`);
      rmSync(`${cwd}/${f}`);
      console.log(`  heap snapshot: ${dir}/${name}.heapsnapshot`);
      return;
    }
  }
  console.log(
    '  heap snapshot: none written (start ikegw with BENCH_LT_IKEGW_ARGS=--heapsnapshot-signal=SIGUSR2)',
  );
}
const LT_CHARON = join(PREFIX, 'libexec/ipsec/charon');
const LT_PLUGIN = join(PREFIX, 'lib/ipsec/plugins/libstrongswan-load-tester.so');
const PSK = 'bench-lt-psk-4c1d9e7a0b3f5a62';
const INIT = '192.0.2.1';
const RESP = '192.0.2.2';
const TSI = '10.201.0.0/16';
const TSR = '10.202.0.0/16';
const ESP = 'aes128gcm16';
const INIT_LIMIT = 128;
const METRICS_PORT = 9464;
/** BENCH_LT_DOS=cookies: DoS defaults except the per-address half-open limit. */
const NO_PER_IP_LIMIT = process.env.BENCH_LT_DOS === 'cookies';

export type Responder = 'charon-libipsec' | 'ikegw-userspace' | 'charon-fake' | 'ikegw-memory';

const PROPOSALS: Record<string, string> = {
  x25519: 'aes128-sha256-x25519',
  ecp256: 'aes128-sha256-ecp256',
  modp2048: 'aes128-sha256-modp2048',
};

export interface LtResult {
  responder: Responder;
  proposal: string;
  total: number;
  established: number;
  seconds: number;
  rate: number;
  cpuMsPerSa: number;
  cpuShare: number;
  idleRss: number;
  rssAfter: number;
  rssPerSa: number;
  /** COOKIE notifies the generator received (BENCH_LT_DOS=1). */
  cookies: number;
  /** Datagrams the responder's namespace dropped for a full socket receive buffer. */
  rcvbufDrops: number;
  /** Retransmissions the generator logged. */
  retransmits: number;
  /** Share of the run the responder was runnable but waiting for its CPU (other load). */
  waitShare: number;
  load: string;
  /** BENCH_LT_DOS=1: the responder's own count of what its DoS protection did. */
  dosNote: string;
  /** IKE_SAs the responder holds after the settle (swanctl --stats, ikegw sas). */
  held: number;
  /** Authentication: 'psk', or the certificates' key type. */
  auth: string;
  /** Held back until the generator was ready (its rate counts from the gate's opening). */
  gated: boolean;
  /** Per IKE_SA, initiation (or the gate's opening) to established, ms: median and 95th percentile. */
  latencyMs: { p50: number; p95: number };
  /** The generator's CPU time per IKE_SA, ms (is the generator the bottleneck?). */
  genCpuMsPerSa: number;
}

const load = (): string =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');

/**
 * The generator's strongswan.conf. With certificates (`pki`) it authenticates with the fixed
 * lt-client certificate (one identity for all IKE_SAs: the responders run with unique = never),
 * loaded over vici by runGenerator() before the gate opens; the load-tester's own credentials
 * (certificates issued on the fly with its RSA issuer key, for every identity it is asked about)
 * are switched off by pointing issuer_cert/issuer_key at nothing, so that the generator signs
 * with the same key type as the responder and issues nothing.
 */
function generatorConf(o: {
  proposal: string;
  count: number;
  log: string;
  threads: number;
  pki?: BenchPki | undefined;
  vici?: string;
  /** Log the parsed messages too (COOKIE notifies show only there). */
  messages?: boolean;
  /** ms between initiations per thread (1). */
  delay?: number;
  /** IKE_SAs in flight at most (INIT_LIMIT). */
  initLimit?: number;
}): string {
  const iterations = Math.ceil(o.count / o.threads);
  const auth = o.pki
    ? `initiator_auth = pubkey
    responder_auth = pubkey
    initiator_id = "${o.pki.client.dn}"
    responder_id = "${o.pki.server.dn}"
    issuer_cert = /nonexistent/ikegw-bench
    issuer_key = /nonexistent/ikegw-bench`
    : `initiator_auth = psk
    responder_auth = psk
    preshared_key = ${PSK}`;
  return `charon {
  load = random nonce aes sha1 sha2 hmac openssl gmp curve25519 pem pkcs1 pkcs8 x509 pubkey kdf gcm ${o.pki ? 'vici ' : ''}load-tester kernel-netlink socket-default
  ikesa_table_size = 1024
  ikesa_table_segments = 16
  reuse_ikesa = no
  install_routes = no
  plugins { load-tester { enable = yes
    initiators = ${o.threads}
    iterations = ${iterations}
    delay = ${o.delay ?? 1}
    init_limit = ${o.initLimit ?? INIT_LIMIT}
    fake_kernel = yes
    initiator = ${INIT}
    responder = ${RESP}
    proposal = ${o.proposal}
    esp = ${ESP}
    ${auth}
    initiator_tsi = ${TSI}
    initiator_tsr = ${TSR} }${o.vici ? `\n    vici { socket = unix://${o.vici} }` : ''} }
  filelog { main { path = ${o.log}
    time_format = %s
    time_add_ms = yes
    flush_line = yes
    default = 0
    ike = 1${o.messages ? '\n    enc = 1' : ''} } }
  syslog { daemon { default = -1 } }
}
`;
}

function charonConf(fake: boolean, dos: boolean) {
  return (p: { vici: string; log: string }): string =>
    fake
      ? `charon {
  load = random nonce aes sha1 sha2 hmac openssl gmp curve25519 pem pkcs1 pkcs8 x509 pubkey kdf gcm load-tester kernel-netlink socket-default vici
  dos_protection = ${dos ? 'yes' : 'no'}${dos && NO_PER_IP_LIMIT ? '\n  block_threshold = 1000000' : ''}
  ikesa_table_size = 1024
  ikesa_table_segments = 16
  install_routes = no
  plugins {
    # only its fake kernel interface: no initiators, and its own peer config bound to addresses
    # that never occur here, so the swanctl connection (same as charon-libipsec's) answers
    load-tester { enable = yes
      initiators = 0
      fake_kernel = yes
      initiator = 203.0.113.1
      responder = 203.0.113.2 }
    vici { socket = unix://${p.vici} }
  }
  filelog { main { path = ${p.log}
    default = 0${dos ? '\n    net = 1\n    ike = 1' : ''} } }
  syslog { daemon { default = -1 } }
}
`
      : `charon {
  load_modular = yes
  dos_protection = ${dos ? 'yes' : 'no'}${dos && NO_PER_IP_LIMIT ? '\n  block_threshold = 1000000' : ''}
  ikesa_table_size = 1024
  ikesa_table_segments = 16
  plugins {
    include /etc/strongswan.d/charon/*.conf
    kernel-libipsec { load = yes }
    bypass-lan { load = no }
    vici { socket = unix://${p.vici} }
  }
  filelog { main { path = ${p.log}
    default = 0${dos ? '\n    net = 1\n    ike = 1' : ''} } }
  syslog { daemon { default = -1 } }
}
`;
}

function swanctlConf(proposal: string, pki?: BenchPki): string {
  const auth = pki
    ? `unique = never
  local { auth = pubkey
    certs = ${pki.server.cert} }
  remote { auth = pubkey
    cacerts = ${pki.ca.cert} }`
    : `local { auth = psk
    id = srv.strongswan.org }
  remote { auth = psk }`;
  return `connections { lt {
  local_addrs = ${RESP}
  proposals = ${proposal}
  ${auth}
  children { lt { local_ts = ${TSR}
    remote_ts = ${TSI}
    esp_proposals = ${ESP} } }
} }
secrets { ike-lt { secret = "${PSK}" } }
`;
}

function ikegwYaml(
  datapath: 'userspace' | 'memory',
  dos: boolean,
  proposal: string,
  pskFile: string,
  socket: string,
  pki?: BenchPki,
): string {
  const auth = pki
    ? `    unique: never
    local: { auth: pubkey, certs: ['${pki.server.cert}'], key: '${pki.server.key}' }
    remote: { auth: pubkey, cacerts: ['${pki.ca.cert}'] }`
    : `    local: { id: '@srv.strongswan.org' }
    psk: { file: '${pskFile}' }`;
  return `connections:
  lt:
    remote_addrs: ['%any']
    local_addrs: ['${RESP}']
${auth}
    proposals: [${proposal}]
    children:
      lt:
        local_ts: [${TSR}]
        remote_ts: [${TSI}]
        esp_proposals: [${ESP}]
        start_action: none
datapath: ${datapath}
listen: { address: '${RESP}', port: 500, nat_port: 4500 }
control: { socket: '${socket}' }
${dos ? `metrics: { listen: '${RESP}:${METRICS_PORT}' }\n${NO_PER_IP_LIMIT ? 'dos: { half_open_per_ip: 0 }\n' : ''}` : 'dos: { cookie_threshold: -1, half_open_per_ip: 0 }\n'}log: { level: ${process.env.BENCH_LT_IKEGW_LOG ?? 'warn'}, format: json }
`;
}

/**
 * Time the process's threads spent runnable but waiting for a CPU, seconds (schedstat field 2):
 * tells a responder that is starved by other load on its CPU from one that serializes itself.
 */
function runqueueWaitSeconds(pid: number): number {
  let ns = 0;
  try {
    for (const t of readdirSync(`/proc/${pid}/task`))
      ns += Number(readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[1] ?? 0);
  } catch {
    /* gone */
  }
  return ns / 1e9;
}

/** UDP receive-buffer drops (RcvbufErrors) in the process's network namespace. */
function udpRcvbufErrors(pid: number): number {
  try {
    const l = readFileSync(`/proc/${pid}/net/snmp`, 'utf8')
      .split('\n')
      .filter((x) => x.startsWith('Udp:'));
    const h = l[0]?.split(/\s+/) ?? [];
    const v = l[1]?.split(/\s+/) ?? [];
    return Number(v[h.indexOf('RcvbufErrors')] ?? 0);
  } catch {
    return 0;
  }
}

/** The node flags in the executable's `#!/usr/bin/env -S node ...` line: what `ikegw daemon` runs with. */
export function shebangNodeFlags(): string[] {
  const first = readFileSync(CLI, 'utf8').split('\n', 1)[0] ?? '';
  const m = /^#!\S*env -S node (.*)$/.exec(first);
  return m?.[1] ? m[1].split(' ').filter(Boolean) : [];
}

/** Whether a UDP socket on :500 is bound in the process's namespace. */
function udp500Bound(pid: number): boolean {
  try {
    return / [0-9A-F]{8}:01F4 /.test(readFileSync(`/proc/${pid}/net/udp`, 'utf8'));
  } catch {
    return false;
  }
}

interface GenLog {
  established: number;
  firstInit?: number;
  lastEst?: number;
  /** The first retransmission (a gated run: when the datagrams held back by the gate went out). */
  firstRetransmit?: number;
  cookies: number;
  retransmits: number;
  /** Per IKE_SA (the generator's unique id): initiation and establishment times, ms. */
  initAt: Map<string, number>;
  estAt: Map<string, number>;
}

function parseGenLog(text: string): GenLog {
  let established = 0;
  let cookies = 0;
  let retransmits = 0;
  let firstInit: number | undefined;
  let lastEst: number | undefined;
  let firstRetransmit: number | undefined;
  const initAt = new Map<string, number>();
  const estAt = new Map<string, number>();
  for (const line of text.split('\n')) {
    const t = /^(\d+)\.(\d{3}) /.exec(line);
    const ms = t ? Number(t[1]) * 1000 + Number(t[2]) : undefined;
    const id = /load-test\[(\d+)\]/.exec(line)?.[1];
    if (line.includes('established between')) {
      established++;
      if (ms !== undefined) lastEst = ms;
      if (id && ms !== undefined) estAt.set(id, ms);
    } else if (line.includes('initiating IKE_SA')) {
      if (firstInit === undefined) firstInit = ms;
      if (id && ms !== undefined) initAt.set(id, ms);
    } else if (line.includes('N(COOKIE)') && line.includes('parsed IKE_SA_INIT response')) cookies++;
    else if (line.includes('retransmit ')) {
      retransmits++;
      if (firstRetransmit === undefined) firstRetransmit = ms;
    }
  }
  return {
    established,
    cookies,
    retransmits,
    initAt,
    estAt,
    ...(firstInit !== undefined ? { firstInit } : {}),
    ...(lastEst !== undefined ? { lastEst } : {}),
    ...(firstRetransmit !== undefined ? { firstRetransmit } : {}),
  };
}

/** Set-up latency per IKE_SA, counted from `start` for those initiated before it (the gate). */
function latencies(g: GenLog, start: number): { p50: number; p95: number } {
  const xs: number[] = [];
  for (const [id, e] of g.estAt) {
    const i = g.initAt.get(id);
    if (i !== undefined) xs.push(e - Math.max(i, start));
  }
  if (!xs.length) return { p50: NaN, p95: NaN };
  xs.sort((a, b) => a - b);
  return { p50: median(xs), p95: xs[Math.min(xs.length - 1, Math.floor(xs.length * 0.95))]! };
}

async function one(
  responder: Responder,
  proposalName: string,
  count: number,
  o: {
    settleMs: number;
    dos: boolean;
    threads: number;
    /** Certificates instead of the PSK. */
    pki?: BenchPki | undefined;
    /**
     * Hold the generator's datagrams back (its link down) until it is ready (certificates loaded),
     * then count from the moment they went out (the first retransmission). Always with `pki`.
     */
    gate?: boolean;
    /** ms between initiations per thread (1). */
    delay?: number;
    /** IKE_SAs in flight at most (INIT_LIMIT). */
    initLimit?: number;
  },
): Promise<LtResult> {
  const gate = o.gate || o.pki !== undefined;
  const proposal = PROPOSALS[proposalName] ?? proposalName;
  const lab = await Lab.create({
    prefix: `iklt${process.pid % 10000}`,
    tmpPrefix: 'ikegw-bench-lt-',
    nodes: {
      init: { addrs: [`${INIT}/24 dev lt0`] },
      // kernel-libipsec wants a local address inside the local traffic selector
      resp: { addrs: [`${RESP}/24 dev lt0`, '10.202.0.1/32 dev lo'] },
    },
    links: [['init', 'lt0', 'resp', 'lt0']],
  });
  try {
    let pid: number | undefined;
    let charon: Charon | undefined;
    let ikegwLog: string | undefined;
    const ikegwSocket = join(lab.dir, 'ikegw.sock');
    if (responder.startsWith('charon')) {
      if (o.pki) {
        // the responder's key from swanctl's private directory (swanctl --load-all loads it)
        const priv = join(lab.dir, 'charon-resp', 'swanctl', 'private');
        mkdirSync(priv, { recursive: true });
        copyFileSync(o.pki.server.key, join(priv, 'lt-server.key'));
      }
      charon = await lab.charon('resp', {
        name: 'resp',
        cpu: '1',
        strongswanConf: charonConf(responder === 'charon-fake', o.dos),
        swanctlConf: swanctlConf(proposal, o.pki),
      });
      pid = charon.pid();
    } else {
      const extra = [
        ...shebangNodeFlags(),
        ...(process.env.BENCH_LT_IKEGW_ARGS?.split(' ').filter(Boolean) ?? []),
        ...(ALLOC_DIR
          ? ['--import', `${pathToFileURL(join(BENCH_DIR, 'alloc-profile.js')).href}?dir=${ALLOC_DIR}`]
          : []),
      ];
      const ik = lab.ikegw(
        'resp',
        'ikegw',
        ikegwYaml(
          responder === 'ikegw-userspace' ? 'userspace' : 'memory',
          o.dos,
          proposal,
          lab.pskFile(PSK),
          ikegwSocket,
          o.pki,
        ),
        { cpu: '1', nodeArgs: extra },
      );
      ikegwLog = ik.log;
      for (let i = 0; i < 200 && !pid; i++) {
        pid = findDescendant(ik.proc.pid!, 'node');
        if (!pid) await sleep(50);
      }
      for (let i = 0; pid && i < 400 && !udp500Bound(pid); i++) await sleep(50);
      if (!pid || !udp500Bound(pid)) throw new Error(`ikegw did not start:\n${tailOf(ik.log ?? '')}`);
    }
    if (!pid) throw new Error(`${responder} did not start`);
    await sleep(Math.max(1000, o.settleMs));
    // BENCH_LT_WARMUP=N: N IKE_SAs from a first generator before the measured run (not with
    // certificates), the same for both responders — a long-running responder is warm (ikegw's JIT
    // compiles its hot paths during the first thousand or so); that generator deletes them as it
    // stops, so the RSS columns of such a run mean nothing.
    const warm = o.pki ? 0 : Number(process.env.BENCH_LT_WARMUP ?? 0);
    if (warm > 0) await warmUp(lab, proposal, warm, o.threads);
    const idleRss = rss(pid);
    const genDir = join(lab.dir, 'gen');
    const genLog = join(lab.dir, 'gen.log');
    const genRun = join(genDir, 'run');
    await lab.exec('init', 'mkdir', ['-p', genRun]);
    const conf = join(genDir, 'strongswan.conf');
    const genVici = join(genDir, 'vici');
    writeFileSync(
      conf,
      generatorConf({
        proposal,
        count,
        log: genLog,
        threads: o.threads,
        pki: o.pki,
        ...(o.pki ? { vici: genVici } : {}),
        messages: o.dos,
        ...(o.delay !== undefined ? { delay: o.delay } : {}),
        ...(o.initLimit !== undefined ? { initLimit: o.initLimit } : {}),
      }),
    );
    if (gate) await lab.exec('init', 'ip', ['link', 'set', 'lt0', 'down']);
    const loadBefore = load();
    const c0 = cpuSeconds(pid);
    const drops0 = udpRcvbufErrors(pid);
    const wait0 = runqueueWaitSeconds(pid);
    const gen = lab.spawn(
      'init',
      'sh',
      [
        '-c',
        'mount --bind "$1" "$2" && shift 2 && exec "$@"',
        'wrap',
        genRun,
        join(PREFIX, 'run'),
        LT_CHARON,
      ],
      { cpu: '0', env: { STRONGSWAN_CONF: conf }, log: 'gen.out' },
    );
    const total = Math.ceil(count / o.threads) * o.threads;
    let gateOpen = 0;
    let heldBack = 0;
    if (gate) {
      if (o.pki) await loadGeneratorCreds(genDir, genVici, o.pki, () => gen.exitCode !== null);
      // open when the generator holds as many IKE_SAs in flight as it may (init_limit): then every
      // one of them goes out with the first retransmissions, a start like a normal run's
      const full = Math.min(total, (o.initLimit ?? INIT_LIMIT) + 1);
      for (let i = 0; i < 300; i++) {
        heldBack = existsSync(genLog) ? parseGenLog(readFileSync(genLog, 'utf8')).initAt.size : 0;
        if (heldBack >= full || gen.exitCode !== null) break;
        await sleep(20);
      }
      await lab.exec('init', 'ip', ['link', 'set', 'lt0', 'up']);
      gateOpen = Date.now();
    }
    let genPid: number | undefined;
    // wait for all established, or no progress for 15 s (with DoS protection, whose dropped
    // IKE_SA_INITs wait for the generator's retransmissions, 4 s x 1.8^n: 50 s, and at most 90 s
    // in all). The log is read incrementally (the bench shares the CPUs it measures).
    const quiet = o.dos ? 50_000 : 15_000;
    const began = Date.now();
    let last = -1;
    let lastChange = Date.now();
    let established = 0;
    let offset = 0;
    let rest = '';
    for (;;) {
      await sleep(250);
      genPid ??= gen.pid === undefined ? undefined : findDescendant(gen.pid, 'charon');
      const size = existsSync(genLog) ? statSync(genLog).size : 0;
      if (size > offset) {
        const fd = openSync(genLog, 'r');
        const buf = Buffer.alloc(size - offset);
        readSync(fd, buf, 0, buf.length, offset);
        closeSync(fd);
        offset = size;
        const text = rest + buf.toString('utf8');
        const cut = text.lastIndexOf('\n') + 1;
        rest = text.slice(cut);
        established += text.slice(0, cut).split('established between').length - 1;
      }
      if (established >= total) break;
      if (established !== last) {
        last = established;
        lastChange = Date.now();
      } else if (Date.now() - lastChange > quiet) break;
      if (o.dos && Date.now() - began > 90_000) break;
      if (gen.exitCode !== null) break;
    }
    const c1 = cpuSeconds(pid);
    const g = parseGenLog(readFileSync(genLog, 'utf8'));
    let genCpuS = NaN;
    try {
      if (genPid) genCpuS = cpuSeconds(genPid);
    } catch {
      /* gone */
    }
    const rcvbufDrops = udpRcvbufErrors(pid) - drops0;
    const waitS = runqueueWaitSeconds(pid) - wait0;
    const loadAfter = load();
    await sleep(o.settleMs);
    const rssAfter = rss(pid);
    // BENCH_LT_HEAP_SNAPSHOT=dir: a heap snapshot of ikegw holding the SAs (what one SA keeps)
    const snapDir = process.env.BENCH_LT_HEAP_SNAPSHOT;
    if (snapDir && !charon) await heapSnapshot(pid, snapDir, `${proposalName}-${total}`);
    if (ALLOC_DIR && !charon) await allocProfile(pid, `${proposalName}-${total}`);
    // the IKE_SAs the responder still holds (all of them, unless something replaced or lost some)
    let held = NaN;
    if (charon) {
      const st = await charon.swanctl(['--stats']).catch(() => '');
      const m = /IKE_SAs:\s+(\d+) total/.exec(st);
      if (m) held = Number(m[1]);
    } else {
      const r = await run(process.execPath, [CLI, 'sas', '--json', '--socket', ikegwSocket], 60_000);
      try {
        held = (JSON.parse(r.stdout) as Array<{ state: string }>).filter(
          (x) => x.state === 'ESTABLISHED',
        ).length;
      } catch {
        /* no answer */
      }
    }
    // DoS defaults: what the responder says it did about the flood
    let dosNote = '';
    if (o.dos) {
      if (charon) {
        const t = charon.log();
        const perIp = t.split('\n').filter((l) => l.includes('half-open IKE_SA limit')).length;
        const cookie = t.split('\n').filter((l) => /COOKIE|cookie/.test(l)).length;
        dosNote = `responder log: ${perIp} IKE_SA_INITs ignored at the per-IP half-open limit, ${cookie} COOKIE lines`;
      } else {
        const m = await lab
          .exec('init', 'curl', ['-s', `http://${RESP}:${METRICS_PORT}/metrics`])
          .catch(() => '');
        dosNote = `responder metrics: ${
          m
            .split('\n')
            .filter(
              (l) =>
                /^ikegw_ike_(cookie_challenges_total|dropped_total)\{/.test(l) || /^ikegw_ike_cookie/.test(l),
            )
            .map((l) => l.replace(/^ikegw_/, ''))
            .join(', ') || '(none)'
        }`;
      }
    }
    // gated: from when the held-back datagrams went out (the first retransmission after the gate
    // opened, or the opening itself)
    const start = gate
      ? Math.max(
          gateOpen,
          g.firstRetransmit !== undefined && g.firstRetransmit >= gateOpen - 1000
            ? g.firstRetransmit
            : gateOpen,
        )
      : g.firstInit;
    const seconds = start !== undefined && g.lastEst !== undefined ? (g.lastEst - start) / 1000 : NaN;
    const cpuS = c1 - c0;
    if (g.established === 0) {
      console.error(
        `  ${responder} ${proposalName}: nothing established; generator log:\n${tailOf(genLog, 30)}`,
      );
      if (charon) console.error(tailOf(charon.logFile, 30));
      if (ikegwLog) console.error(tailOf(ikegwLog, 30));
    }
    return {
      responder,
      proposal: proposalName,
      total,
      established: g.established,
      seconds,
      rate: g.established / seconds,
      cpuMsPerSa: (cpuS * 1000) / Math.max(1, g.established),
      cpuShare: cpuS / seconds,
      idleRss,
      rssAfter,
      rssPerSa: (rssAfter - idleRss) / Math.max(1, g.established),
      cookies: g.cookies,
      rcvbufDrops,
      // a gated run's held-back IKE_SA_INITs are retransmitted once by design
      retransmits: Math.max(0, g.retransmits - heldBack),
      waitShare: waitS / seconds,
      load: `${loadBefore} -> ${loadAfter}`,
      held,
      auth: o.pki ? o.pki.keyType : 'psk',
      gated: gate,
      dosNote,
      latencyMs: latencies(g, start ?? 0),
      genCpuMsPerSa: (genCpuS * 1000) / Math.max(1, g.established),
    };
  } finally {
    await lab.stopAll();
    await lab.destroy();
  }
}

/**
 * Loads the generator's certificate, key and CA over vici (swanctl --load-creds) once its vici
 * socket is up.
 */
async function loadGeneratorCreds(
  genDir: string,
  vici: string,
  pki: BenchPki,
  exited: () => boolean,
): Promise<void> {
  const sw = join(genDir, 'swanctl');
  for (const d of ['x509', 'x509ca', 'private']) mkdirSync(join(sw, d), { recursive: true });
  copyFileSync(pki.client.cert, join(sw, 'x509', 'lt-client.pem'));
  copyFileSync(pki.ca.cert, join(sw, 'x509ca', 'ca.pem'));
  copyFileSync(pki.client.key, join(sw, 'private', 'lt-client.key'));
  writeFileSync(join(sw, 'swanctl.conf'), '');
  const client = join(genDir, 'client.conf');
  writeFileSync(client, 'swanctl { load = random nonce pem pkcs1 pkcs8 x509 pubkey openssl }\n');
  for (let i = 0; !existsSync(vici); i++) {
    if (i > 300 || exited())
      throw new Error(`generator did not start:\n${tailOf(join(genDir, '..', 'gen.out'))}`);
    await sleep(20);
  }
  await must('env', [
    `STRONGSWAN_CONF=${client}`,
    `SWANCTL_DIR=${sw}`,
    SWANCTL,
    '--load-creds',
    '--noprompt',
    '--uri',
    `unix://${vici}`,
  ]);
}

function line(r: LtResult): string {
  const auth = r.auth === 'psk' && !r.gated ? '' : `${r.auth.padEnd(8)}`;
  const lat = r.gated
    ? `  latency ${r.latencyMs.p50.toFixed(0)}/${r.latencyMs.p95.toFixed(0)} ms (median/p95), generator ${r.genCpuMsPerSa.toFixed(2)} ms/SA`
    : '';
  return `  ${auth}${r.proposal.padEnd(9)} ${r.responder.padEnd(16)} ${r.rate.toFixed(0).padStart(5)} IKE_SA/s  (${r.established}/${r.total} in ${r.seconds.toFixed(2)} s, responder holds ${r.held})  CPU ${r.cpuMsPerSa.toFixed(2)} ms/SA (${(r.cpuShare * 100).toFixed(0)}% of a core, ${(r.waitShare * 100).toFixed(0)}% waiting for it)  RSS idle ${(r.idleRss / 1048576).toFixed(1)} MiB, +${(r.rssPerSa / 1024).toFixed(1)} KiB/SA  ${r.retransmits} retransmits, ${r.rcvbufDrops} rcvbuf drops${r.cookies ? `, ${r.cookies} COOKIEs` : ''}${lat}  [load ${r.load}]${r.dosNote ? `\n      ${r.dosNote}` : ''}`;
}

export async function runLoadTester(): Promise<string[]> {
  if (process.getuid?.() !== 0) return ['load-tester: skipped (needs root for network namespaces)'];
  if (!existsSync(CHARON) || !existsSync(LIBIPSEC))
    return ['load-tester: skipped (strongSwan/kernel-libipsec not installed)'];
  if (!existsSync(LT_PLUGIN))
    return [
      `load-tester: skipped (no load-tester in ${PREFIX}; run /work/shared/tools/strongswan-load-tester/build.sh)`,
    ];
  const count = Number(process.env.BENCH_LT_COUNT ?? 2000);
  const settleMs = Number(process.env.BENCH_LT_SETTLE_MS ?? 3000);
  const repeat = Number(process.env.BENCH_LT_REPEAT ?? 1);
  const dos = process.env.BENCH_LT_DOS === '1' || NO_PER_IP_LIMIT;
  const threads = 4;
  const proposals = (process.env.BENCH_LT_PROPOSALS ?? 'x25519,ecp256,modp2048').split(',');
  const responders = (
    process.env.BENCH_LT_RESPONDERS ?? 'charon-libipsec,ikegw-userspace,charon-fake,ikegw-memory'
  ).split(',') as Responder[];
  const lines = [
    `responders driven by strongSwan's load-tester (${count} IKE_SAs + CHILD_SAs, ${threads} threads, 128 in flight; generator CPU 0, responder CPU 1; DoS protection ${dos ? (NO_PER_IP_LIMIT ? 'defaults without the per-address half-open limit' : 'defaults') : 'off'}):`,
  ];
  console.log(lines[0]);
  const pairs: Array<[Responder, Responder, string]> = [
    ['charon-libipsec', 'ikegw-userspace', 'userspace ESP: ikegw userspace vs charon kernel-libipsec'],
    ['charon-fake', 'ikegw-memory', 'IKE only: ikegw memory vs charon load-tester fake kernel'],
  ];
  for (const proposal of proposals) {
    // per pair, every run's rate and CPU ratios: with BENCH_LT_REPEAT > 1 their medians follow
    const ratios = new Map<string, { rate: number[]; cpu: number[] }>();
    for (let rep = 0; rep < repeat; rep++) {
      const rs = new Map<Responder, LtResult>();
      for (const responder of responders) {
        const r = await one(responder, proposal, count, { settleMs, dos, threads });
        rs.set(responder, r);
        const l = line(r);
        lines.push(l);
        console.log(l);
      }
      for (const [sw, ik, what] of pairs) {
        const a = rs.get(sw);
        const b = rs.get(ik);
        if (!a || !b) continue;
        const l = `  ${proposal.padEnd(9)} ratio (${what}): rate ${(b.rate / a.rate).toFixed(2)}x, CPU/SA ${(a.cpuMsPerSa / b.cpuMsPerSa).toFixed(2)}x as efficient, RSS/SA ${(b.rssPerSa / a.rssPerSa).toFixed(2)}x, idle RSS ${(b.idleRss / a.idleRss).toFixed(2)}x`;
        lines.push(l);
        console.log(l);
        const r = ratios.get(what) ?? { rate: [], cpu: [] };
        r.rate.push(b.rate / a.rate);
        r.cpu.push(a.cpuMsPerSa / b.cpuMsPerSa);
        ratios.set(what, r);
      }
    }
    if (repeat > 1) {
      for (const [what, r] of ratios) {
        const l = `  ${proposal.padEnd(9)} median of ${r.cpu.length} (${what}): rate ${median(r.rate).toFixed(2)}x, CPU/SA ${median(r.cpu).toFixed(2)}x as efficient (CPU ratios ${r.cpu.map((x) => x.toFixed(2)).join(', ')})`;
        lines.push(l);
        console.log(l);
      }
    }
  }
  return lines;
}

/**
 * Certificates (issue: certificate authentication): IKE_SA set-up rate, latency and responder CPU
 * per IKE_SA with ECDSA P-256 and RSA-3072 certificates against the PSK, ikegw against charon as
 * responders, same generator, same run. Both ends of each run authenticate with the key type
 * (one CA, the generator's and the responder's certificates, made by openssl); the generator
 * asks for the responder's certificate (CERTREQ) and sends its own when asked (the load-tester's
 * send_cert ifasked). Every run, the PSK ones too, is gated (see `one`) so that all count alike.
 * `BENCH_ONLY=certs npm run bench`; BENCH_CERT_COUNT (2000), BENCH_CERT_AUTHS (psk,p256,rsa3072),
 * BENCH_CERT_PROPOSAL (x25519), BENCH_CERT_RESPONDERS (charon-libipsec,ikegw-userspace). Then, per case,
 * the set-up latency unloaded: BENCH_CERT_LATENCY_COUNT (100) IKE_SAs one at a time (1 thread, 20 ms
 * apart, at most 2 in flight), against a fresh responder.
 */
export async function runLoadTesterCerts(): Promise<string[]> {
  if (process.getuid?.() !== 0) return ['certs: skipped (needs root for network namespaces)'];
  if (!existsSync(CHARON) || !existsSync(LIBIPSEC))
    return ['certs: skipped (strongSwan/kernel-libipsec not installed)'];
  if (!existsSync(LT_PLUGIN))
    return [
      `certs: skipped (no load-tester in ${PREFIX}; run /work/shared/tools/strongswan-load-tester/build.sh)`,
    ];
  const count = Number(process.env.BENCH_CERT_COUNT ?? 2000);
  const settleMs = Number(process.env.BENCH_LT_SETTLE_MS ?? 3000);
  const threads = 4;
  const proposal = process.env.BENCH_CERT_PROPOSAL ?? 'x25519';
  const auths = (process.env.BENCH_CERT_AUTHS ?? 'psk,p256,rsa3072').split(',');
  const responders = (process.env.BENCH_CERT_RESPONDERS ?? 'charon-libipsec,ikegw-userspace').split(
    ',',
  ) as Responder[];
  const dir = mkdtempSync(join(tmpdir(), 'ikegw-bench-pki-'));
  const lines = [
    `certificates vs PSK, responders driven by strongSwan's load-tester (${count} IKE_SAs + CHILD_SAs, ${proposal}, ${threads} threads, 128 in flight; generator CPU 0, responder CPU 1; both ends sign with the key type shown):`,
  ];
  console.log(lines[0]);
  const out = (l: string) => {
    lines.push(l);
    console.log(l);
  };
  try {
    const results = new Map<string, LtResult>();
    const unloaded = new Map<string, LtResult>();
    const latencyCount = Number(process.env.BENCH_CERT_LATENCY_COUNT ?? 100);
    for (const auth of auths) {
      const pki = auth === 'psk' ? undefined : makeBenchPki(join(dir, auth), auth as BenchKey);
      for (const responder of responders) {
        const r = await one(responder, proposal, count, { settleMs, dos: false, threads, pki, gate: true });
        results.set(`${auth}/${responder}`, r);
        out(line(r));
        // set-up latency unloaded: one IKE_SA at a time (1 thread, 20 ms apart, at most 2 in flight)
        const u = await one(responder, proposal, latencyCount, {
          settleMs: 1000,
          dos: false,
          threads: 1,
          pki,
          gate: true,
          delay: 20,
          initLimit: 1,
        });
        unloaded.set(`${auth}/${responder}`, u);
        out(
          `  ${auth.padEnd(8)}${proposal.padEnd(9)} ${responder.padEnd(16)} unloaded: ${u.established}/${u.total} IKE_SAs one at a time, latency ${u.latencyMs.p50.toFixed(1)}/${u.latencyMs.p95.toFixed(1)} ms (median/p95), CPU ${u.cpuMsPerSa.toFixed(2)} ms/SA  [load ${u.load}]`,
        );
      }
    }
    out('');
    out(
      `  ${'auth'.padEnd(8)} ${'responder'.padEnd(16)} ${'IKE_SA/s'.padStart(8)} ${'CPU ms/SA'.padStart(9)} ${'latency p50/p95 ms'.padStart(18)} ${'vs psk (CPU/SA)'.padStart(15)} ${'unloaded p50/p95 ms'.padStart(19)}`,
    );
    for (const auth of auths)
      for (const responder of responders) {
        const r = results.get(`${auth}/${responder}`);
        const p = results.get(`psk/${responder}`);
        const u = unloaded.get(`${auth}/${responder}`);
        if (!r) continue;
        out(
          `  ${auth.padEnd(8)} ${responder.padEnd(16)} ${r.rate.toFixed(0).padStart(8)} ${r.cpuMsPerSa.toFixed(2).padStart(9)} ${`${r.latencyMs.p50.toFixed(0)}/${r.latencyMs.p95.toFixed(0)}`.padStart(18)} ${(p ? `${(r.cpuMsPerSa / p.cpuMsPerSa).toFixed(2)}x` : '').padStart(15)} ${(u ? `${u.latencyMs.p50.toFixed(1)}/${u.latencyMs.p95.toFixed(1)}` : '').padStart(19)}`,
        );
      }
    for (const auth of auths) {
      const a = results.get(`${auth}/charon-libipsec`);
      const b = results.get(`${auth}/ikegw-userspace`);
      if (a && b)
        out(
          `  ${auth.padEnd(8)} ratio ikegw userspace / charon kernel-libipsec: rate ${(b.rate / a.rate).toFixed(2)}x, CPU/SA ${(a.cpuMsPerSa / b.cpuMsPerSa).toFixed(2)}x as efficient, latency p50 ${(b.latencyMs.p50 / a.latencyMs.p50).toFixed(2)}x${(() => {
            const ua = unloaded.get(`${auth}/charon-libipsec`);
            const ub = unloaded.get(`${auth}/ikegw-userspace`);
            return ua && ub
              ? `, unloaded latency p50 ${(ub.latencyMs.p50 / ua.latencyMs.p50).toFixed(2)}x`
              : '';
          })()}`,
        );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return lines;
}

/**
 * Memory per SA (issue: efficiency): the responders' RSS per IKE_SA + CHILD_SA at 2k and 10k SAs
 * (x25519, the load-tester as generator, all SAs kept), each measured after a settle
 * (BENCH_MEM_SETTLE_MS, 10 s), and per additional SA between the two runs:
 * (RSS at 10k - RSS at 2k) / (10k - 2k). `BENCH_ONLY=memory npm run bench`; BENCH_MEM_COUNTS
 * (2000,10000), BENCH_MEM_RESPONDERS (charon-libipsec,ikegw-userspace).
 */
export async function runLoadTesterMemory(): Promise<string[]> {
  if (process.getuid?.() !== 0) return ['memory: skipped (needs root for network namespaces)'];
  if (!existsSync(CHARON) || !existsSync(LIBIPSEC) || !existsSync(LT_PLUGIN))
    return ['memory: skipped (strongSwan/kernel-libipsec or the load-tester not installed)'];
  const settleMs = Number(process.env.BENCH_MEM_SETTLE_MS ?? 10_000);
  const counts = (process.env.BENCH_MEM_COUNTS ?? '2000,10000').split(',').map(Number);
  const responders = (process.env.BENCH_MEM_RESPONDERS ?? 'charon-libipsec,ikegw-userspace').split(
    ',',
  ) as Responder[];
  const lines = [
    `RSS per IKE_SA + CHILD_SA (x25519, load-tester generator, settled ${settleMs / 1000} s after the last SA):`,
  ];
  console.log(lines[0]);
  const out = (l: string) => {
    lines.push(l);
    console.log(l);
  };
  const rs = new Map<string, LtResult>();
  for (const count of counts)
    for (const responder of responders) {
      const r = await one(responder, 'x25519', count, { settleMs, dos: false, threads: 4 });
      rs.set(`${responder}/${count}`, r);
      out(line(r));
    }
  const [lo, hi] = [counts[0]!, counts[counts.length - 1]!];
  for (const responder of responders) {
    const a = rs.get(`${responder}/${lo}`);
    const b = rs.get(`${responder}/${hi}`);
    if (!a || !b) continue;
    const per = (x: LtResult) => `${(x.rssPerSa / 1024).toFixed(1)} KiB/SA at ${x.established}`;
    const marginal =
      hi > lo
        ? ` — ${((b.rssAfter - a.rssAfter) / (b.established - a.established) / 1024).toFixed(1)} KiB per additional SA ${lo}->${hi}`
        : '';
    out(
      `  ${responder.padEnd(16)} idle ${(a.idleRss / 1048576).toFixed(1)} MiB, ${(a.rssAfter / 1048576).toFixed(1)} MiB at ${a.established}, ${(b.rssAfter / 1048576).toFixed(1)} MiB at ${b.established}: ${per(a)}, ${per(b)}${marginal}`,
    );
  }
  return lines;
}
