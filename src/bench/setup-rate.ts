// IKE_SA + CHILD_SA set-up rate: ikegw as responder vs strongSwan's charon as responder, driven by
// the same load generator (loadgen.ts) in the same run, for each proposal. Needs root (network
// namespaces) and Debian's strongSwan; the namespaces live only for the run.
//
// Topology: ns <p>-lt-init (192.0.2.1, load generator, CPU 0) -- veth -- ns <p>-lt-resp
// (192.0.2.2, responder, CPU 1). dos_protection is off on charon (as in LAB.md's anchor figures)
// and ikegw's cookie threshold is off, since all SAs come from one address.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

const HERE = dirname(new URL(import.meta.url).pathname);
const CLI = resolve(HERE, '../cli.js');
const LOADGEN = resolve(HERE, 'loadgen.js');
const CHARON = '/usr/lib/ipsec/charon';
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

function rss(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function cpuTicks(pid: number): number {
  // Sum over the process's threads is in /proc/<pid>/stat fields 14+15 (utime, stime).
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return Number(rest[11]) + Number(rest[12]);
}

function descendantPid(pid: number, name: string): number | undefined {
  // The responder runs under `ip netns exec` (and a sh for charon's private /run): find the real process.
  const q = [pid];
  while (q.length) {
    const p = q.shift()!;
    try {
      const comm = readFileSync(`/proc/${p}/comm`, 'utf8').trim();
      if (comm === name || (name === 'node' && comm.startsWith('node'))) return p;
      const kids = readFileSync(`/proc/${p}/task/${p}/children`, 'utf8').trim();
      if (kids) q.push(...kids.split(/\s+/).map(Number));
    } catch {
      /* gone */
    }
  }
  return undefined;
}

async function waitFor(pred: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

class Topology {
  readonly init: string;
  readonly resp: string;
  readonly dir: string;
  constructor() {
    const p = `ikgwb${process.pid % 10000}`;
    this.init = `${p}-lt-init`;
    this.resp = `${p}-lt-resp`;
    this.dir = mkdtempSync(join(tmpdir(), 'ikegw-bench-'));
    for (const ns of [this.init, this.resp]) {
      sh('ip', ['netns', 'add', ns]);
      sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    sh('ip', [
      '-n',
      this.init,
      'link',
      'add',
      'lt0',
      'type',
      'veth',
      'peer',
      'name',
      'lt0',
      'netns',
      this.resp,
    ]);
    sh('ip', ['-n', this.init, 'addr', 'add', `${INIT}/24`, 'dev', 'lt0']);
    sh('ip', ['-n', this.resp, 'addr', 'add', `${RESP}/24`, 'dev', 'lt0']);
    // kernel-libipsec wants a local address inside the local traffic selector.
    sh('ip', ['-n', this.resp, 'addr', 'add', '10.202.0.1/32', 'dev', 'lo']);
    for (const ns of [this.init, this.resp]) sh('ip', ['-n', ns, 'link', 'set', 'lt0', 'up']);
    writeFileSync(join(this.dir, 'psk'), PSK, { mode: 0o600 });
  }
  destroy(): void {
    for (const ns of [this.init, this.resp]) {
      try {
        sh('ip', ['netns', 'del', ns]);
      } catch {
        /* already gone */
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function startIkegw(t: Topology, proposals: string[]): ChildProcess {
  const cfg = join(t.dir, 'ikegw.yaml');
  writeFileSync(
    cfg,
    `connections:
  lt:
    remote_addrs: ['%any']
    local_addrs: ['${RESP}']
    psk: { file: '${join(t.dir, 'psk')}' }
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
  );
  const prof = process.env.BENCH_CPU_PROF
    ? [`--cpu-prof`, `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`]
    : [];
  return spawn(
    'ip',
    ['netns', 'exec', t.resp, 'taskset', '-c', '1', process.execPath, ...prof, CLI, 'daemon', '-c', cfg],
    {
      stdio: ['ignore', 'ignore', 'inherit'],
    },
  );
}

function startCharon(t: Topology, proposals: string[]): ChildProcess {
  const run = join(t.dir, 'run');
  mkdirSync(run, { recursive: true });
  const conf = join(t.dir, 'strongswan.conf');
  writeFileSync(
    conf,
    `charon {
  load_modular = yes
  dos_protection = no
  ikesa_table_size = 1024
  ikesa_table_segments = 16
  plugins {
    include /etc/strongswan.d/charon/*.conf
    kernel-libipsec { load = yes }
    vici { socket = unix://${run}/charon.vici }
  }
  filelog { main { path = ${t.dir}/charon.log
    default = 0
    ike = 0 } }
  syslog { daemon { default = -1 } }
}
`,
  );
  const swanctl = join(t.dir, 'swanctl.conf');
  writeFileSync(
    swanctl,
    `connections { lt {
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
  );
  const p = spawn(
    'ip',
    [
      'netns',
      'exec',
      t.resp,
      'taskset',
      '-c',
      '1',
      'sh',
      '-c',
      'mount --bind "$1" /run && shift && exec "$@"',
      'wrap',
      run,
      CHARON,
    ],
    { stdio: 'ignore', env: { ...process.env, STRONGSWAN_CONF: conf } },
  );
  return p;
}

async function loadSwanctl(t: Topology): Promise<void> {
  const run = join(t.dir, 'run');
  await waitFor(() => existsSync(join(run, 'charon.vici')), 10_000, 'charon vici socket');
  const cliConf = join(t.dir, 'swanctl-cli.conf');
  writeFileSync(cliConf, 'swanctl { load = random nonce pem pkcs1 pkcs8 x509 pubkey openssl }\n');
  for (const d of ['x509', 'x509ca', 'private', 'rsa', 'ecdsa', 'pkcs8', 'pubkey'])
    mkdirSync(join(t.dir, d), { recursive: true });
  execFileSync(
    'swanctl',
    ['--load-all', '--file', join(t.dir, 'swanctl.conf'), '--uri', `unix://${join(run, 'charon.vici')}`],
    {
      env: { ...process.env, STRONGSWAN_CONF: cliConf },
      stdio: 'ignore',
    },
  );
}

async function stop(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null) return;
  p.kill('SIGTERM');
  await Promise.race([new Promise((r) => p.once('exit', r)), new Promise((r) => setTimeout(r, 3000))]);
  if (p.exitCode === null) p.kill('SIGKILL');
}

export async function one(
  responder: 'ikegw' | 'strongswan',
  proposal: string,
  count: number,
  concurrency: number,
): Promise<RateResult> {
  const t = new Topology();
  let resp: ChildProcess | undefined;
  try {
    const props = [proposal];
    resp = responder === 'ikegw' ? startIkegw(t, props) : startCharon(t, props);
    if (responder === 'strongswan') await loadSwanctl(t);
    else await new Promise((r) => setTimeout(r, 700));
    const pid = descendantPid(resp.pid!, responder === 'ikegw' ? 'node' : 'charon');
    if (!pid) throw new Error(`${responder} did not start`);
    const rssBefore = rss(pid);
    const c0 = cpuTicks(pid);
    const out = execFileSync(
      'ip',
      [
        'netns',
        'exec',
        t.init,
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
        join(t.dir, 'psk'),
      ],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const c1 = cpuTicks(pid);
    const rssAfter = rss(pid);
    const r = JSON.parse(out.trim().split('\n').pop()!) as {
      established: number;
      failed: number;
      seconds: number;
      rate: number;
      setupMsP50?: number;
    };
    const cpuS = (c1 - c0) / 100; // USER_HZ
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
    if (resp) await stop(resp);
    t.destroy();
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
