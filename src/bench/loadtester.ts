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
// BENCH_LT_DOS=1 (then both keep their defaults and the COOKIE behaviour is reported).
//
// Per responder: idle RSS (after start and a settle), then the generator runs N IKE_SAs +
// CHILD_SAs (`initiators` threads × `iterations`, `init_limit` in flight); rate = established /
// (last `established` − first `initiating`) from the generator's log; CPU = utime+stime of the
// responder process over the run / established; RSS growth per SA = (RSS after a settle − idle
// RSS) / established.
//
// Knobs: BENCH_LT_COUNT (2000), BENCH_LT_PROPOSALS (x25519,ecp256,modp2048), BENCH_LT_RESPONDERS
// (charon-libipsec,ikegw-userspace,charon-fake,ikegw-memory), BENCH_LT_SETTLE_MS (3000),
// BENCH_LT_REPEAT (1), BENCH_LT_IKEGW_ARGS (extra node flags, e.g. --cpu-prof
// --cpu-prof-dir=/tmp/p), BENCH_KEEP=1 keeps the lab directory.
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import {
  CHARON,
  type Charon,
  CLI,
  cpuSeconds,
  findDescendant,
  Lab,
  LIBIPSEC,
  rss,
  sleep,
  tailOf,
} from './lab.js';

const PREFIX = process.env.BENCH_LT_PREFIX ?? '/var/tmp/strongswan-lt';
const LT_CHARON = join(PREFIX, 'libexec/ipsec/charon');
const LT_PLUGIN = join(PREFIX, 'lib/ipsec/plugins/libstrongswan-load-tester.so');
const PSK = 'bench-lt-psk-4c1d9e7a0b3f5a62';
const INIT = '192.0.2.1';
const RESP = '192.0.2.2';
const TSI = '10.201.0.0/16';
const TSR = '10.202.0.0/16';
const ESP = 'aes128gcm16';

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
}

const load = (): string =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');

function generatorConf(o: { proposal: string; count: number; log: string; threads: number }): string {
  const iterations = Math.ceil(o.count / o.threads);
  return `charon {
  load = random nonce aes sha1 sha2 hmac openssl gmp curve25519 pem pkcs1 x509 pubkey kdf gcm load-tester kernel-netlink socket-default
  ikesa_table_size = 1024
  ikesa_table_segments = 16
  reuse_ikesa = no
  install_routes = no
  plugins { load-tester { enable = yes
    initiators = ${o.threads}
    iterations = ${iterations}
    delay = 1
    init_limit = 128
    fake_kernel = yes
    initiator = ${INIT}
    responder = ${RESP}
    proposal = ${o.proposal}
    esp = ${ESP}
    initiator_auth = psk
    responder_auth = psk
    preshared_key = ${PSK}
    initiator_tsi = ${TSI}
    initiator_tsr = ${TSR} } }
  filelog { main { path = ${o.log}
    time_format = %s
    time_add_ms = yes
    flush_line = yes
    default = 0
    ike = 1 } }
  syslog { daemon { default = -1 } }
}
`;
}

function charonConf(fake: boolean, dos: boolean) {
  return (p: { vici: string; log: string }): string =>
    fake
      ? `charon {
  load = random nonce aes sha1 sha2 hmac openssl gmp curve25519 pem pkcs1 x509 pubkey kdf gcm load-tester kernel-netlink socket-default vici
  dos_protection = ${dos ? 'yes' : 'no'}
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
    default = 0 } }
  syslog { daemon { default = -1 } }
}
`
      : `charon {
  load_modular = yes
  dos_protection = ${dos ? 'yes' : 'no'}
  ikesa_table_size = 1024
  ikesa_table_segments = 16
  plugins {
    include /etc/strongswan.d/charon/*.conf
    kernel-libipsec { load = yes }
    bypass-lan { load = no }
    vici { socket = unix://${p.vici} }
  }
  filelog { main { path = ${p.log}
    default = 0 } }
  syslog { daemon { default = -1 } }
}
`;
}

function swanctlConf(proposal: string): string {
  return `connections { lt {
  local_addrs = ${RESP}
  proposals = ${proposal}
  local { auth = psk
    id = srv.strongswan.org }
  remote { auth = psk }
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
): string {
  return `connections:
  lt:
    remote_addrs: ['%any']
    local_addrs: ['${RESP}']
    local: { id: '@srv.strongswan.org' }
    psk: { file: '${pskFile}' }
    proposals: [${proposal}]
    children:
      lt:
        local_ts: [${TSR}]
        remote_ts: [${TSI}]
        esp_proposals: [${ESP}]
        start_action: none
datapath: ${datapath}
listen: { address: '${RESP}', port: 500, nat_port: 4500 }
${dos ? '' : 'dos: { cookie_threshold: -1, half_open_per_ip: 0 }\n'}log: { level: warn, format: json }
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

/** The node flags in dist/cli.js's `#!/usr/bin/env -S node ...` line: what `ikegw daemon` runs with. */
function shebangNodeFlags(): string[] {
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
  cookies: number;
  retransmits: number;
}

function parseGenLog(text: string): GenLog {
  let established = 0;
  let cookies = 0;
  let retransmits = 0;
  let firstInit: number | undefined;
  let lastEst: number | undefined;
  for (const line of text.split('\n')) {
    const t = /^(\d+)\.(\d{3}) /.exec(line);
    const ms = t ? Number(t[1]) * 1000 + Number(t[2]) : undefined;
    if (line.includes('established between')) {
      established++;
      if (ms !== undefined) lastEst = ms;
    } else if (firstInit === undefined && line.includes('initiating IKE_SA')) firstInit = ms;
    else if (line.includes('N(COOKIE)') && line.includes('received')) cookies++;
    else if (line.includes('retransmit ')) retransmits++;
  }
  return {
    established,
    cookies,
    retransmits,
    ...(firstInit !== undefined ? { firstInit } : {}),
    ...(lastEst !== undefined ? { lastEst } : {}),
  };
}

async function one(
  responder: Responder,
  proposalName: string,
  count: number,
  o: { settleMs: number; dos: boolean; threads: number },
): Promise<LtResult> {
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
    if (responder.startsWith('charon')) {
      charon = await lab.charon('resp', {
        name: 'resp',
        cpu: '1',
        strongswanConf: charonConf(responder === 'charon-fake', o.dos),
        swanctlConf: swanctlConf(proposal),
      });
      pid = charon.pid();
    } else {
      const extra = [
        ...shebangNodeFlags(),
        ...(process.env.BENCH_LT_IKEGW_ARGS?.split(' ').filter(Boolean) ?? []),
      ];
      const ik = lab.ikegw(
        'resp',
        'ikegw',
        ikegwYaml(
          responder === 'ikegw-userspace' ? 'userspace' : 'memory',
          o.dos,
          proposal,
          lab.pskFile(PSK),
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
    const idleRss = rss(pid);
    const genDir = join(lab.dir, 'gen');
    const genLog = join(lab.dir, 'gen.log');
    const genRun = join(genDir, 'run');
    await lab.exec('init', 'mkdir', ['-p', genRun]);
    const conf = join(genDir, 'strongswan.conf');
    writeFileSync(conf, generatorConf({ proposal, count, log: genLog, threads: o.threads }));
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
    // wait for all established, or no progress for 15 s
    const total = Math.ceil(count / o.threads) * o.threads;
    let last = -1;
    let lastChange = Date.now();
    let g: GenLog = { established: 0, cookies: 0, retransmits: 0 };
    let lastSize = -1;
    for (;;) {
      await sleep(200);
      const size = existsSync(genLog) ? statSync(genLog).size : -1;
      if (size >= 0 && size !== lastSize) {
        lastSize = size;
        g = parseGenLog(readFileSync(genLog, 'utf8'));
      }
      if (g.established >= total) break;
      if (g.established !== last) {
        last = g.established;
        lastChange = Date.now();
      } else if (Date.now() - lastChange > 15_000) break;
      if (gen.exitCode !== null) break;
    }
    const c1 = cpuSeconds(pid);
    const rcvbufDrops = udpRcvbufErrors(pid) - drops0;
    const waitS = runqueueWaitSeconds(pid) - wait0;
    const loadAfter = load();
    await sleep(o.settleMs);
    const rssAfter = rss(pid);
    const seconds =
      g.firstInit !== undefined && g.lastEst !== undefined ? (g.lastEst - g.firstInit) / 1000 : NaN;
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
      retransmits: g.retransmits,
      waitShare: waitS / seconds,
      load: `${loadBefore} -> ${loadAfter}`,
    };
  } finally {
    await lab.stopAll();
    await lab.destroy();
  }
}

function line(r: LtResult): string {
  return `  ${r.proposal.padEnd(9)} ${r.responder.padEnd(16)} ${r.rate.toFixed(0).padStart(5)} IKE_SA/s  (${r.established}/${r.total} in ${r.seconds.toFixed(2)} s)  CPU ${r.cpuMsPerSa.toFixed(2)} ms/SA (${(r.cpuShare * 100).toFixed(0)}% of a core, ${(r.waitShare * 100).toFixed(0)}% waiting for it)  RSS idle ${(r.idleRss / 1048576).toFixed(1)} MiB, +${(r.rssPerSa / 1024).toFixed(1)} KiB/SA  ${r.retransmits} retransmits, ${r.rcvbufDrops} rcvbuf drops${r.cookies ? `, ${r.cookies} COOKIEs` : ''}  [load ${r.load}]`;
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
  const dos = process.env.BENCH_LT_DOS === '1';
  const threads = 4;
  const proposals = (process.env.BENCH_LT_PROPOSALS ?? 'x25519,ecp256,modp2048').split(',');
  const responders = (
    process.env.BENCH_LT_RESPONDERS ?? 'charon-libipsec,ikegw-userspace,charon-fake,ikegw-memory'
  ).split(',') as Responder[];
  const lines = [
    `responders driven by strongSwan's load-tester (${count} IKE_SAs + CHILD_SAs, ${threads} threads, 128 in flight; generator CPU 0, responder CPU 1; DoS protection ${dos ? 'defaults' : 'off'}):`,
  ];
  console.log(lines[0]);
  const pairs: Array<[Responder, Responder, string]> = [
    ['charon-libipsec', 'ikegw-userspace', 'userspace ESP: ikegw userspace vs charon kernel-libipsec'],
    ['charon-fake', 'ikegw-memory', 'IKE only: ikegw memory vs charon load-tester fake kernel'],
  ];
  for (const proposal of proposals) {
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
      }
    }
  }
  return lines;
}
