// IKE_SA + CHILD_SA set-up rate: ikegw as responder vs strongSwan's charon as responder, driven by
// the same load generator (loadgen.ts) in the same run, for each proposal. Needs root (network
// namespaces) and Debian's strongSwan; the namespaces live only for the run.
//
// Topology: ns <p>-lt-init (192.0.2.1, load generator, CPU 0) -- veth -- ns <p>-lt-resp
// (192.0.2.2, responder, CPU 1). dos_protection is off on charon (as in LAB.md's anchor figures)
// and ikegw's cookie threshold is off, since all SAs come from one address.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CHARON, cpuSeconds, findDescendant, Lab, rss, sleep } from './lab.js';

const LOADGEN = resolve(dirname(fileURLToPath(import.meta.url)), 'loadgen.js');
const PSK = 'bench-psk-6f1e0c9a2b7d4e33';
const INIT = '192.0.2.1';
const RESP = '192.0.2.2';

export interface RateResult {
  responder: 'ikegw' | 'strongswan';
  proposal: string;
  established: number;
  failed: number;
  seconds: number;
  rate: number;
  /** Responder CPU time per IKE_SA (user+system), ms. */
  cpuMsPerSa: number;
  cpuShare: number;
  setupMsP50?: number;
  /** Responder resident memory before and after the run (bytes). */
  rssBefore: number;
  rssAfter: number;
}

type Topology = Lab<'lt-init' | 'lt-resp'>;

function topology(): Promise<Topology> {
  return Lab.create({
    prefix: `ikgwb${process.pid % 10000}-`,
    tmpPrefix: 'ikegw-bench-',
    nodes: {
      'lt-init': { addrs: [`${INIT}/24 dev lt0`] },
      // kernel-libipsec wants a local address inside the local traffic selector.
      'lt-resp': { addrs: [`${RESP}/24 dev lt0`, '10.202.0.1/32 dev lo'] },
    },
    links: [['lt-init', 'lt0', 'lt-resp', 'lt0']],
  });
}

function startIkegw(t: Topology, psk: string, proposals: string[]) {
  const prof = process.env.BENCH_CPU_PROF
    ? [`--cpu-prof`, `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`]
    : [];
  return t.ikegw(
    'lt-resp',
    'ikegw',
    `connections:
  lt:
    remote_addrs: ['%any']
    local_addrs: ['${RESP}']
    psk: { file: '${psk}' }
    proposals: [${proposals.join(', ')}]
    dpd_delay: 0
    children:
      lt:
        local_ts: [10.202.0.0/16]
        remote_ts: [10.201.0.0/16]
        esp_proposals: [aes128gcm16]
        start_action: none
datapath: memory
listen: { address: '${RESP}', port: 500, nat_port: 4500 }
dos: { cookie_threshold: -1, half_open_per_ip: 0 }
log: { level: warn, format: json }
`,
    { cpu: '1', nodeArgs: prof, log: false, inheritStderr: true },
  ).proc;
}

function startCharon(t: Topology, proposals: string[]) {
  return t.charon('lt-resp', {
    name: 'resp',
    cpu: '1',
    strongswanConf: ({ vici, log }) => `charon {
  load_modular = yes
  dos_protection = no
  ikesa_table_size = 1024
  ikesa_table_segments = 16
  plugins {
    include /etc/strongswan.d/charon/*.conf
    kernel-libipsec { load = yes }
    vici { socket = unix://${vici} }
  }
  filelog { main { path = ${log}
    default = 0
    ike = 0 } }
  syslog { daemon { default = -1 } }
}
`,
    swanctlConf: `connections { lt {
  local_addrs = ${RESP}
  proposals = ${proposals.join(',')}
  local { auth = psk }
  remote { auth = psk }
  children { lt { local_ts = 10.202.0.0/16
    remote_ts = 10.201.0.0/16
    esp_proposals = aes128gcm16 } }
} }
secrets { ike-lt { secret = "${PSK}" } }
`,
  });
}

export async function one(
  responder: 'ikegw' | 'strongswan',
  proposal: string,
  count: number,
  concurrency: number,
): Promise<RateResult> {
  const t = await topology();
  try {
    const props = [proposal];
    const psk = t.pskFile(PSK);
    let pid: number | undefined;
    if (responder === 'strongswan') pid = (await startCharon(t, props)).pid();
    else {
      const p = startIkegw(t, psk, props);
      await sleep(700);
      pid = p.pid === undefined ? undefined : findDescendant(p.pid, 'node');
    }
    if (!pid) throw new Error(`${responder} did not start`);
    const rssBefore = rss(pid);
    const c0 = cpuSeconds(pid);
    const out = execFileSync(
      'ip',
      [
        'netns',
        'exec',
        t.ns['lt-init'],
        'taskset',
        '-c',
        '0',
        process.execPath,
        LOADGEN,
        '--local',
        INIT,
        '--target',
        RESP,
        '--count',
        String(count),
        '--concurrency',
        String(concurrency),
        '--proposal',
        proposal,
        '--psk-file',
        psk,
      ],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const cpuS = cpuSeconds(pid) - c0;
    const rssAfter = rss(pid);
    const r = JSON.parse(out.trim().split('\n').pop()!) as {
      established: number;
      failed: number;
      seconds: number;
      rate: number;
      setupMsP50?: number;
    };
    return {
      responder,
      proposal,
      established: r.established,
      failed: r.failed,
      seconds: r.seconds,
      rate: r.rate,
      cpuMsPerSa: (cpuS * 1000) / Math.max(1, r.established),
      cpuShare: cpuS / r.seconds,
      setupMsP50: r.setupMsP50,
      rssBefore,
      rssAfter,
    };
  } finally {
    await t.stopAll();
    await t.destroy();
  }
}

export async function runSetupRate(
  opts: { count?: number; concurrency?: number; proposals?: string[] } = {},
): Promise<string[]> {
  if (process.getuid?.() !== 0) return ['IKE set-up rate: skipped (needs root for network namespaces)'];
  if (!existsSync(CHARON)) return ['IKE set-up rate: skipped (strongSwan charon not installed)'];
  const count = opts.count ?? 2000;
  const concurrency = opts.concurrency ?? 64;
  const lines = [
    `IKE_SA+CHILD_SA set-ups per second, responder pinned to CPU 1, load generator (ikegw bulk initiator) on CPU 0, ${count} SAs, ${concurrency} in flight:`,
  ];
  for (const proposal of opts.proposals ?? ['aes128-sha256-x25519', 'aes128-sha256-modp2048']) {
    const rs: RateResult[] = [];
    for (const responder of ['strongswan', 'ikegw'] as const) {
      const r = await one(responder, proposal, count, concurrency);
      rs.push(r);
      lines.push(
        `  ${proposal.padEnd(26)} ${responder.padEnd(10)} ${r.rate.toFixed(0).padStart(6)} SA/s  (${r.established}/${count} ok, ${r.failed} failed, ${r.seconds.toFixed(2)} s)  responder CPU ${r.cpuMsPerSa.toFixed(2)} ms/SA, ${(r.cpuShare * 100).toFixed(0)}% of a core`,
      );
    }
    const [sw, ik] = rs as [RateResult, RateResult];
    lines.push(
      `  ${proposal.padEnd(26)} ratio ikegw/strongSwan: rate ${(ik.rate / sw.rate).toFixed(2)}x, CPU per SA ${(sw.cpuMsPerSa / ik.cpuMsPerSa).toFixed(2)}x more efficient`,
    );
  }
  return lines;
}

/** Responder memory with `count` IKE_SAs (each with a CHILD_SA) established, both daemons, same run. */
export async function runMemory(count = 10_000): Promise<string[]> {
  if (process.getuid?.() !== 0 || !existsSync(CHARON))
    return ['responder memory: skipped (needs root and strongSwan)'];
  const lines = [
    `responder memory with ${count} IKE_SAs + CHILD_SAs (aes128-sha256-x25519, CHILD_SAs in the memory data path / kernel-libipsec):`,
  ];
  const rs: RateResult[] = [];
  for (const responder of ['strongswan', 'ikegw'] as const) {
    const r = await one(responder, 'aes128-sha256-x25519', count, 64);
    rs.push(r);
    const per = (r.rssAfter - r.rssBefore) / Math.max(1, r.established);
    lines.push(
      `  ${responder.padEnd(10)} RSS ${(r.rssBefore / 1e6).toFixed(1)} MB -> ${(r.rssAfter / 1e6).toFixed(1)} MB with ${r.established} SAs: ${(per / 1024).toFixed(1)} KiB per IKE_SA`,
    );
  }
  const [sw, ik] = rs as [RateResult, RateResult];
  const per = (r: RateResult) => (r.rssAfter - r.rssBefore) / Math.max(1, r.established);
  lines.push(
    `  ratio ikegw/strongSwan per IKE_SA: ${(per(ik) / per(sw)).toFixed(2)}x (total RSS ${(ik.rssAfter / sw.rssAfter).toFixed(2)}x)`,
  );
  return lines;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  runSetupRate({ count: Number(process.env.BENCH_COUNT ?? 2000) }).then((l) => console.log(l.join('\n')));
}
