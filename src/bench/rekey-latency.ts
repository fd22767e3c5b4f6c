// Rekey latency against strongSwan in the same run: CHILD_SA rekeys started by ikegw (request ->
// new CHILD_SA installed, from ikegw's log) and started by strongSwan (REKEYING -> new CHILD_SA
// established, from charon's log), over ~20 s, each end rekeying one of two CHILD_SAs every ~3 s. Direct link, two
// namespaces, strongSwan with kernel-libipsec, ikegw with the memory data path.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

const HERE = dirname(new URL(import.meta.url).pathname);
const CLI = resolve(HERE, '../cli.js');
const CHARON = '/usr/lib/ipsec/charon';
const PSK = 'bench-rekey-psk-0a1b2c3d4e5f';
const I = '192.0.2.1';
const R = '192.0.2.2';

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function stats(ms: number[]): string {
  if (!ms.length) return 'none observed';
  const s = [...ms].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
  return `n=${s.length} median ${q(0.5).toFixed(1)} ms, p90 ${q(0.9).toFixed(1)} ms`;
}

export async function runRekeyLatency(seconds = 20): Promise<string[]> {
  if (process.getuid?.() !== 0 || !existsSync(CHARON))
    return ['rekey latency: skipped (needs root and strongSwan)'];
  const p = `ikgwk${process.pid % 10000}`;
  const nsI = `${p}-i`;
  const nsR = `${p}-r`;
  const dir = mkdtempSync(join(tmpdir(), 'ikegw-rekey-'));
  const procs: ChildProcess[] = [];
  try {
    for (const ns of [nsI, nsR]) {
      sh('ip', ['netns', 'add', ns]);
      sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    sh('ip', ['-n', nsI, 'link', 'add', 'k0', 'type', 'veth', 'peer', 'name', 'k0', 'netns', nsR]);
    sh('ip', ['-n', nsI, 'addr', 'add', `${I}/24`, 'dev', 'k0']);
    sh('ip', ['-n', nsR, 'addr', 'add', `${R}/24`, 'dev', 'k0']);
    for (const a of ['10.202.1.1/32', '10.202.2.1/32']) sh('ip', ['-n', nsR, 'addr', 'add', a, 'dev', 'lo']);
    for (const ns of [nsI, nsR]) sh('ip', ['-n', ns, 'link', 'set', 'k0', 'up']);
    writeFileSync(join(dir, 'psk'), PSK, { mode: 0o600 });
    // strongSwan responder
    const run = join(dir, 'run');
    mkdirSync(run);
    writeFileSync(
      join(dir, 'strongswan.conf'),
      `charon {\n load_modular = yes\n plugins {\n  include /etc/strongswan.d/charon/*.conf\n  kernel-libipsec { load = yes }\n  vici { socket = unix://${run}/charon.vici }\n }\n filelog { main { path = ${dir}/charon.log\n  time_format = %s\n  time_add_ms = yes\n  default = 1\n } }\n syslog { daemon { default = -1 } }\n}\n`,
    );
    writeFileSync(
      join(dir, 'swanctl.conf'),
      // Two CHILD_SAs: strongSwan rekeys "sw" every ~3 s, ikegw rekeys "ik" every ~3 s; the other end's
      // timer for each is long, so each end starts its own rekeys.
      `connections { lt { local_addrs = ${R}\n remote_addrs = ${I}\n local { auth = psk }\n remote { auth = psk }\n children {\n` +
        ` ik { local_ts = 10.202.1.0/24\n remote_ts = 10.201.1.0/24\n rekey_time = 60s\n life_time = 90s }\n` +
        ` sw { local_ts = 10.202.2.0/24\n remote_ts = 10.201.2.0/24\n rekey_time = 3s\n rand_time = 0s\n life_time = 30s } } } }\n` +
        `secrets { ike { secret = "${PSK}" } }\n`,
    );
    procs.push(
      spawn(
        'ip',
        [
          'netns',
          'exec',
          nsR,
          'sh',
          '-c',
          'mount --bind "$1" /run && shift && exec "$@"',
          'wrap',
          run,
          CHARON,
        ],
        {
          stdio: 'ignore',
          env: { ...process.env, STRONGSWAN_CONF: join(dir, 'strongswan.conf') },
        },
      ),
    );
    for (let i = 0; i < 100 && !existsSync(join(run, 'charon.vici')); i++)
      await new Promise((r) => setTimeout(r, 50));
    writeFileSync(
      join(dir, 'cli.conf'),
      'swanctl { load = random nonce pem pkcs1 pkcs8 x509 pubkey openssl }\n',
    );
    for (const d of ['x509', 'x509ca', 'private', 'rsa', 'ecdsa', 'pkcs8', 'pubkey']) mkdirSync(join(dir, d));
    execFileSync(
      'swanctl',
      ['--load-all', '--file', join(dir, 'swanctl.conf'), '--uri', `unix://${run}/charon.vici`],
      {
        env: { ...process.env, STRONGSWAN_CONF: join(dir, 'cli.conf') },
        stdio: 'ignore',
      },
    );
    // ikegw initiator
    writeFileSync(
      join(dir, 'ikegw.yaml'),
      `connections:\n  lt:\n    remote_addrs: ['${R}']\n    local_addrs: ['${I}']\n    psk: { file: '${dir}/psk' }\n    children:\n` +
        `      ik:\n        local_ts: [10.201.1.0/24]\n        remote_ts: [10.202.1.0/24]\n        start_action: start\n        rekey_time: 3s\n        life_time: 30s\n` +
        `      sw:\n        local_ts: [10.201.2.0/24]\n        remote_ts: [10.202.2.0/24]\n        start_action: start\n        rekey_time: 60s\n        life_time: 90s\n` +
        `datapath: memory\nlisten: { address: '${I}', port: 500, nat_port: 4500 }\nlog: { level: info, format: json }\n`,
    );
    const logFd = join(dir, 'ikegw.log');
    const ik = spawn(
      'sh',
      [
        '-c',
        `exec ip netns exec ${nsI} ${process.execPath} ${CLI} daemon -c ${dir}/ikegw.yaml > ${logFd} 2>&1`,
      ],
      { stdio: 'ignore' },
    );
    procs.push(ik);
    await new Promise((r) => setTimeout(r, seconds * 1000));
    // ikegw-initiated: REKEYING of a CHILD_SA -> the next INSTALLED
    const ours: number[] = [];
    let t0: number | undefined;
    for (const l of readFileSync(logFd, 'utf8').split('\n')) {
      if (!l.startsWith('{')) continue;
      const j = JSON.parse(l) as { time: string; state?: string; child?: string };
      if (j.child !== 'ik') continue;
      const t = Date.parse(j.time);
      if (j.state === 'REKEYING') t0 = t;
      else if (j.state === 'INSTALLED' && t0 !== undefined) {
        ours.push(t - t0);
        t0 = undefined;
      }
    }
    // strongSwan-initiated: "INSTALLED => REKEYING" -> the next "CHILD_SA ... established"
    const theirs: number[] = [];
    let s0: number | undefined;
    for (const l of readFileSync(join(dir, 'charon.log'), 'utf8').split('\n')) {
      const t = Number.parseFloat(l) * 1000;
      if (/generating CREATE_CHILD_SA request \d+ \[ N\(REKEY_SA\)/.test(l)) s0 = t;
      else if (/inbound CHILD_SA sw\{\d+\} established/.test(l) && s0 !== undefined) {
        theirs.push(t - s0);
        s0 = undefined;
      }
    }
    return [
      `CHILD_SA rekey latency (request -> new CHILD_SA installed), ${seconds} s, each end rekeying its own CHILD_SA every ~3 s, same run:`,
      `  started by ikegw      ${stats(ours)}  (timestamps ms-resolution from ikegw's log)`,
      `  started by strongSwan ${stats(theirs)}  (from charon's log, ms resolution)`,
    ];
  } finally {
    for (const c of procs) c.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 500));
    for (const ns of [nsI, nsR]) {
      try {
        sh('ip', ['netns', 'del', ns]);
      } catch {
        /* gone */
      }
    }
    if (process.env.BENCH_KEEP) console.log(`kept ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
}
