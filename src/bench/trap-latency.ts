// Initiator side (issue: efficiency): from the first packet that hits a trap policy to the first
// reply through the new CHILD_SA — ikegw (`datapath: xfrm`, start_action trap) against charon 5.9.8
// (kernel-netlink, start_action = trap) on gw-a, both with the kernel's XFRM and the same responder
// (charon on gw-b), same run. Like for like needs real kernel ESP (charon's kernel-libipsec raises
// no acquire for its trap policies), so it runs in the kernel VM unless this kernel has ESP; the
// VM's CPU is ~10x slower, so only the ratio means something.
//
// host-a pings host-b every 10 ms; the time is first reply − ping start: the acquire, IKE_SA_INIT,
// IKE_AUTH, the installation and one round trip (the kernel drops packets while the SA is larval,
// for both alike; the 10 ms spacing bounds the error). Between rounds the IKE_SA is terminated on
// gw-a and both ends are waited for to hold no SA; the trap policies stay.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { probeKernelEsp } from '../esp/xfrm/installer.js';
import { startCharon, startIkegw, type Topo, topology, VM_RUN } from './kernel-path.js';
import { CLI, median, must, run as sh, sleep, tailOf } from './lab.js';

const SELF = fileURLToPath(import.meta.url);
const RESULT_TAG = 'TRAP-LATENCY-RESULT ';

/** Pings every 10 ms until the first reply; ms from the start to that reply (undefined: none in 20 s). */
function firstReply(t: Topo): Promise<number | undefined> {
  return new Promise((done) => {
    const t0 = performance.now();
    const p = spawn(
      'ip',
      ['netns', 'exec', t.ns.ha, 'ping', '-n', '-i', '0.01', '-W', '1', '-w', '20', '203.0.113.10'],
      { stdio: ['ignore', 'pipe', 'ignore'] },
    );
    let seen = false;
    p.stdout.setEncoding('utf8');
    p.stdout.on('data', (d: string) => {
      if (!seen && d.includes('bytes from')) {
        seen = true;
        done(performance.now() - t0);
        p.kill();
      }
    });
    p.on('exit', () => {
      if (!seen) done(undefined);
    });
  });
}

async function until(pred: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const states = async (t: Topo, n: 'gwa' | 'gwb'): Promise<number> =>
  (await t.exec(n, 'ip', ['xfrm', 'state'])).split('\n').filter((l) => l.startsWith('src ')).length;
const policies = async (t: Topo): Promise<number> =>
  (await t.exec('gwa', 'ip', ['xfrm', 'policy']))
    .split('\n')
    .filter((l) => /^src (198\.51\.100|203\.0\.113)\.0\/24 /.test(l)).length;

export interface TrapResult {
  who: 'strongswan' | 'ikegw';
  ms: number[];
  lost: number;
}

async function measure(who: TrapResult['who'], rounds: number): Promise<TrapResult> {
  const t = await topology(`ikgwt${process.pid % 10000}${who[0]}-`);
  try {
    await startCharon(t, 'gwb', {
      local: '192.0.2.2',
      remote: '192.0.2.1',
      localTs: '203.0.113.0/24',
      remoteTs: '198.51.100.0/24',
      routes: true,
    });
    let terminate: () => Promise<unknown>;
    let log: string;
    if (who === 'strongswan') {
      const c = await startCharon(t, 'gwa', {
        local: '192.0.2.1',
        remote: '192.0.2.2',
        localTs: '198.51.100.0/24',
        remoteTs: '203.0.113.0/24',
        routes: false,
        startAction: 'trap',
      });
      terminate = () => c.swanctl(['--terminate', '--ike', 'kp']);
      log = c.logFile;
    } else {
      const sock = join(t.dir, 'ikegw.sock');
      const ikegw = startIkegw(t, 'trap');
      terminate = () =>
        must('ip', ['netns', 'exec', t.ns.gwa, process.execPath, CLI, 'terminate', 'kp', '--socket', sock]);
      log = ikegw.log!;
    }
    const r: TrapResult = { who, ms: [], lost: 0 };
    try {
      await until(async () => (await policies(t)) >= 1, 90_000, `${who}: trap policies on gw-a`);
      for (let k = 0; k < rounds; k++) {
        const ms = await firstReply(t);
        if (ms === undefined) r.lost++;
        else r.ms.push(ms);
        await terminate();
        await until(
          async () => (await states(t, 'gwa')) === 0 && (await states(t, 'gwb')) === 0,
          30_000,
          `${who}: no SA left after terminate`,
        );
        await until(async () => (await policies(t)) >= 1, 30_000, `${who}: trap policies back`);
      }
    } catch (e) {
      throw new Error(`${(e as Error).message}\n--- gw-a log ---\n${tailOf(log)}`);
    }
    return r;
  } finally {
    await t.stopAll();
    await t.destroy();
  }
}

export async function trapInner(rounds = Number(process.env.BENCH_TRAP_ROUNDS ?? 10)): Promise<TrapResult[]> {
  return [await measure('strongswan', rounds), await measure('ikegw', rounds)];
}

function format(rs: TrapResult[], where: string): string[] {
  const line = (r: TrapResult) => {
    const s = [...r.ms].sort((a, b) => a - b);
    const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? Number.NaN;
    return `  ${(r.who === 'ikegw' ? 'ikegw (datapath: xfrm)' : 'charon 5.9.8 (kernel-netlink)').padEnd(30)} p50 ${q(0.5).toFixed(0).padStart(5)} ms  p90 ${q(0.9).toFixed(0).padStart(5)} ms  (${s.length} rounds${r.lost ? `, ${r.lost} without a reply` : ''})`;
  };
  const [s, i] = [rs.find((r) => r.who === 'strongswan')!, rs.find((r) => r.who === 'ikegw')!];
  return [
    `trap -> first reply through the new CHILD_SA, initiator on gw-a, responder charon on gw-b (${where}):`,
    line(s),
    line(i),
    `  ratio of medians (charon / ikegw): ${(median(s.ms) / median(i.ms)).toFixed(2)}x  (above 1: ikegw sooner)`,
  ];
}

export async function runTrapLatency(): Promise<string[]> {
  if (process.getuid?.() !== 0) return ['trap latency: skipped (needs root)'];
  if (await probeKernelEsp()) return format(await trapInner(), 'native kernel');
  if (!existsSync(VM_RUN)) return [`trap latency: skipped — ${VM_RUN} not found and this kernel has no ESP`];
  const r = await sh(
    VM_RUN,
    [
      `modprobe -a esp4 xfrm_user gcm aesni_intel veth 2>/dev/null; exec ${JSON.stringify(process.execPath)} ${JSON.stringify(SELF)} inner`,
    ],
    900_000,
  );
  const out = r.stdout.split('\n').find((l) => l.startsWith(RESULT_TAG));
  if (r.code !== 0 || !out)
    return [
      `trap latency: the VM run failed (exit ${r.code})`,
      ...`${r.stderr}\n${r.stdout}`.trim().split('\n').slice(-30),
    ];
  return format(JSON.parse(out.slice(RESULT_TAG.length)) as TrapResult[], 'kernel VM, ~10x slower CPU');
}

if (process.argv[1] && resolve(process.argv[1]) === SELF && process.argv[2] === 'inner') {
  try {
    process.stdout.write(`${RESULT_TAG}${JSON.stringify(await trapInner())}\n`);
  } catch (e) {
    process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
    process.exitCode = 1;
  }
}
