// The control socket and the CLI against real daemons (real IkeEngine, in-memory data path) on
// 127.0.0.1: initiate/sas/terminate between two ikegw, a wrong PSK, log levels, reload, stats,
// socket permissions, and the metrics/health endpoints of the same daemon.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliIo, cliMain } from '../../../src/cli/main.js';
import { planReload, type SaStatus } from '../../../src/daemon/control.js';
import { diffConnections } from '../../../src/ike/reconfigure.js';
import { config, ONE_CONN } from './helpers.js';

const PSK = 'control-test-psk-0a9b8c7d6e5f4a3b';
const WRONG = 'control-test-WRONG-9f8e7d6c5b4a';

const dir = mkdtempSync(join(tmpdir(), 'ikegw-ops-'));
chmodSync(dir, 0o755);
const stops: Array<() => Promise<unknown>> = [];

interface Running {
  name: string;
  cfgFile: string;
  socket: string;
  port: number;
  metrics: string;
  lines: string[];
}

async function until<T>(f: () => T | undefined, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error('timeout');
    await new Promise((r) => setTimeout(r, 10));
  }
}

function yamlFor(name: string, conns: string, extra = ''): string {
  return `${conns}datapath: memory
listen: { address: 127.0.0.1, port: 0, nat_port: 0 }
metrics: { listen: '127.0.0.1:0' }
control: { socket: ${join(dir, name, 'run', 'ikegw.sock')} }
log: { level: info, format: json }
${extra}`;
}

function conn(name: string, pskFile: string, port?: number, onprem = false): string {
  const [l, r] = onprem ? ['192.168.100.0/24', '10.10.0.0/16'] : ['10.10.0.0/16', '192.168.100.0/24'];
  return `  ${name}:
    remote_addrs: [127.0.0.1]
${port ? `    remote_port: ${port}\n` : ''}    psk: { file: ${pskFile} }
    children:
      net: { local_ts: [${l}], remote_ts: [${r}] }
`;
}

async function start(name: string, yaml: string): Promise<Running> {
  mkdirSync(join(dir, name), { recursive: true, mode: 0o755 });
  const cfgFile = join(dir, name, 'ikegw.yaml');
  writeFileSync(cfgFile, yaml);
  const lines: string[] = [];
  let stop: (v: string) => void = () => undefined;
  const stopP = new Promise<string>((r) => {
    stop = r;
  });
  let port = 0;
  const run = cliMain(['daemon', '-c', cfgFile], {
    stdout: () => undefined,
    stderr: (s) => lines.push(s),
    env: {},
    stop: stopP,
    logDestination: { write: (s: string) => lines.push(s) },
    onReady: (d) => {
      port = d.ports.port;
    },
  });
  stops.push(async () => {
    stop('test');
    await run;
  });
  const metrics = await until(() => {
    for (const l of lines.join('').split('\n')) {
      const m = /"listen":"(127\.0\.0\.1:\d+)".*metrics, \/healthz/.exec(l);
      if (m) return `http://${m[1]}`;
    }
    return undefined;
  });
  await until(() => (port ? port : undefined));
  await until(() => (lines.join('').includes('control socket') ? true : undefined));
  return { name, cfgFile, socket: join(dir, name, 'run', 'ikegw.sock'), port, metrics, lines };
}

async function cli(args: string[], env: Record<string, string> = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIo = { stdout: (s) => out.push(s), stderr: (s) => err.push(s), env };
  const code = await cliMain(args, io);
  return { code, out: out.join(''), err: err.join('') };
}

let a: Running;
let b: Running;
let c: Running;

beforeAll(async () => {
  const good = join(dir, 'good.psk');
  const wrong = join(dir, 'wrong.psk');
  writeFileSync(good, PSK, { mode: 0o600 });
  writeFileSync(wrong, WRONG, { mode: 0o600 });
  b = await start('b', yamlFor('b', `connections:\n${conn('cluster', good, undefined, true)}`));
  c = await start('c', yamlFor('c', `connections:\n${conn('cluster', wrong, undefined, true)}`));
  a = await start(
    'a',
    yamlFor('a', `connections:\n${conn('onprem', good, b.port)}${conn('badpsk', good, c.port)}`),
  );
});

afterAll(async () => {
  for (const s of stops.reverse()) await s();
  rmSync(dir, { recursive: true, force: true });
});

describe('control socket', () => {
  it('is only for the daemon user: socket 0600, its directory 0700', () => {
    expect(statSync(a.socket).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'a', 'run')).mode & 0o777).toBe(0o700);
  });

  it('keeps other users out even where the directory is open', () => {
    if (process.getuid?.() !== 0) return; // needs root to switch to another user
    chmodSync(join(dir, 'a', 'run'), 0o755);
    try {
      const script = `const s=require('node:net').connect(${JSON.stringify(a.socket)});s.on('connect',()=>{console.log('CONNECTED');process.exit(0)});s.on('error',e=>{console.log(e.code);process.exit(0)})`;
      const r = spawnSync(process.execPath, ['-e', script], { uid: 65534, gid: 65534, encoding: 'utf8' });
      expect(r.stdout.trim()).toBe('EACCES');
    } finally {
      chmodSync(join(dir, 'a', 'run'), 0o700);
    }
  });

  it('initiate waits for the CHILD_SA and prints the progress; sas lists it', async () => {
    const r = await cli(['initiate', 'onprem', '--socket', a.socket]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^IKE_SA onprem\[\d+\] CONNECTING: initiating to 127\.0\.0\.1$/m);
    expect(r.out).toMatch(
      /^IKE_SA onprem\[\d+\] established between 127\.0\.0\.1:\d+\[127\.0\.0\.1\]\.\.\.127\.0\.0\.1:\d+\[127\.0\.0\.1\] /m,
    );
    expect(r.out).toMatch(/^CHILD_SA net\{\d+\} established$/m);

    const again = await cli(['initiate', 'onprem', '--socket', a.socket]);
    expect(again.code).toBe(0);
    expect(again.out).toMatch(/^onprem is already up \(IKE_SA onprem\[\d+\]\)$/m);

    const s = await cli(['sas', '--socket', a.socket]);
    expect(s.code).toBe(0);
    const text = s.out;
    expect(text).toMatch(/^onprem: #\d+, ESTABLISHED, IKEv2, [0-9a-f]{16}_i\* [0-9a-f]{16}_r$/m);
    expect(text).toMatch(/^ {2}local {2}'127\.0\.0\.1' @ 127\.0\.0\.1:\d+$/m);
    expect(text).toMatch(/^ {2}remote '127\.0\.0\.1' @ 127\.0\.0\.1:\d+$/m);
    expect(text).toMatch(/^ {2}AES_\w+\/PRF_\w+\/\w+$/m);
    expect(text).toMatch(/^ {2}established \d+s ago, rekeying in \d+s$/m);
    expect(text).toMatch(/^ {2}net: #\d+, reqid 1, INSTALLED, TUNNEL, ESP:\w+$/m);
    expect(text).toMatch(/^ {4}installed \d+s ago, rekeying in \d+s, expires in \d+s$/m);
    expect(text).toMatch(/^ {4}in {2}[0-9a-f]{8}, 0 bytes, 0 packets$/m);
    expect(text).toMatch(/^ {4}out [0-9a-f]{8}, 0 bytes, 0 packets$/m);
    expect(text).toMatch(/^ {4}local {2}10\.10\.0\.0\/16$/m);
    expect(text).toMatch(/^ {4}remote 192\.168\.100\.0\/24$/m);

    const j = await cli(['sas', '--json', '--socket', a.socket]);
    const list = JSON.parse(j.out) as SaStatus[];
    expect(list).toHaveLength(1);
    expect(list[0]).toMatchObject({ conn: 'onprem', state: 'ESTABLISHED', role: 'initiator' });
    expect(list[0]!.children[0]).toMatchObject({
      name: 'net',
      state: 'INSTALLED',
      bytesIn: 0,
      packetsOut: 0,
    });
    expect(j.out).not.toContain(PSK);

    // the responder sees it too
    const sb = await cli(['sas', '--json', '--socket', b.socket]);
    expect((JSON.parse(sb.out) as SaStatus[])[0]).toMatchObject({ conn: 'cluster', role: 'responder' });
  });

  it('a wrong PSK fails with the cause and what to check, exit 1', async () => {
    const r = await cli(['initiate', 'badpsk', '--socket', a.socket, '--timeout', '10']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^ikegw initiate: .*AUTHENTICATION_FAILED|^ikegw initiate: .*authentication/im);
    expect(r.out).toMatch(/check: both sides must use the same pre-shared key/);
    expect(r.out + r.err).not.toContain(PSK);
    expect(r.out + r.err).not.toContain(WRONG);
  });

  it('unknown connections and usage errors', async () => {
    const r = await cli(['initiate', 'nope', '--socket', a.socket]);
    expect(r.code).toBe(1);
    expect(r.err).toBe('ikegw initiate: no connection named "nope" (configured: onprem, badpsk)\n');
    expect((await cli(['initiate', '--socket', a.socket])).code).toBe(2);
    expect((await cli(['log-level', 'loud', '--socket', a.socket])).code).toBe(2);
  });

  it('log-level shows and sets the levels at run time', async () => {
    const r = await cli(['log-level', 'ike', 'debug', '--socket', a.socket]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^ike {5}debug$/m);
    expect(r.out).toMatch(/^net {5}info$/m);
    const all = await cli(['log-level', 'warn', '--socket', a.socket]);
    expect(all.out).toMatch(/^ike {5}warn$/m);
    const bad = await cli(['log-level', 'ikee', 'debug', '--socket', a.socket]);
    expect(bad.code).toBe(2);
    expect(bad.err).toBe('ikegw log-level: unknown subsystem "ikee"\n');
    await cli(['log-level', 'info', '--socket', a.socket]);
  });

  it('stats reports counters and readiness', async () => {
    const r = await cli(['stats', '--json', '--socket', a.socket]);
    expect(r.code).toBe(0);
    const s = JSON.parse(r.out) as { ready: boolean; datapath: string; daemon: { events: number } };
    expect(s.ready).toBe(true);
    expect(s.datapath).toBe('memory');
    expect(s.daemon.events).toBeGreaterThan(0);
  });

  it('serves /metrics, /healthz and /readyz of the same daemon', async () => {
    const m = await (await fetch(`${a.metrics}/metrics`)).text();
    expect(m).toContain('ikegw_ike_handshakes_total{conn="onprem",role="initiator",result="established"} 1');
    expect(m).toContain('ikegw_tunnel_up{conn="onprem",child="net"} 1');
    expect(m).toMatch(
      /ikegw_ike_handshakes_total\{conn="badpsk",role="initiator",result="authentication_failed"\} 1/,
    );
    expect(m).toContain('ikegw_process_cpu_seconds_total');
    expect(m).not.toContain(PSK);
    const mb = await (await fetch(`${b.metrics}/metrics`)).text();
    expect(mb).toContain(
      'ikegw_ike_handshakes_total{conn="cluster",role="responder",result="established"} 1',
    );
    const h = await fetch(`${a.metrics}/healthz`);
    expect(h.status).toBe(200);
    const r = await fetch(`${a.metrics}/readyz`);
    expect(r.status).toBe(200);
    const body = (await r.json()) as { ready: boolean; checks: Array<{ name: string; ok: boolean }> };
    expect(body.checks.map((x) => [x.name, x.ok])).toEqual([
      ['config', true],
      ['sockets', true],
      ['startup', true],
    ]);
    expect((await fetch(`${a.metrics}/nope`)).status).toBe(404);
  });

  it('reload: log levels and connection changes live, per connection; invalid config rejected', async () => {
    const base = yamlFor(
      'a',
      `connections:\n${conn('onprem', join(dir, 'good.psk'), b.port)}${conn('badpsk', join(dir, 'good.psk'), c.port)}`,
    );
    writeFileSync(
      a.cfgFile,
      base.replace(
        'log: { level: info, format: json }',
        'log: { level: info, format: json, subsystems: { net: debug } }',
      ),
    );
    const r1 = await cli(['reload', '--socket', a.socket]);
    expect(r1.code).toBe(0);
    expect(r1.out).toBe(
      'configuration valid\n  onprem: unchanged\n  badpsk: unchanged\napplied: log levels (default info, net=debug)\n',
    );
    expect((await cli(['log-level', '--socket', a.socket])).out).toMatch(/^net {5}debug$/m);

    writeFileSync(a.cfgFile, base.replace('    remote_port: ', '    dpd_delay: 30s\n    remote_port: '));
    const before = JSON.parse((await cli(['sas', '--json', '--socket', a.socket])).out) as SaStatus[];
    const r2 = await cli(['reload', '--socket', a.socket]);
    expect(r2.code).toBe(0);
    expect(r2.out).toContain('  onprem: updated (dpd_delay)\n');
    // the running tunnel was not touched: the same IKE_SA
    const s = JSON.parse((await cli(['sas', '--json', '--socket', a.socket])).out) as SaStatus[];
    const sa = s.find((x) => x.conn === 'onprem');
    expect(sa?.state).toBe('ESTABLISHED');
    expect(sa?.spiI).toBe(before.find((x) => x.conn === 'onprem')?.spiI);

    writeFileSync(a.cfgFile, base.replace('datapath: memory', 'datapath: warp'));
    const r3 = await cli(['reload', '--socket', a.socket]);
    expect(r3.code).toBe(2);
    expect(r3.err).toContain('datapath: must be one of auto | xfrm | userspace | memory, got "warp"');
    writeFileSync(a.cfgFile, base);
    expect(await (await fetch(`${a.metrics}/metrics`)).text()).toMatch(
      /ikegw_config_reloads_total\{result="invalid"\} 1/,
    );
  });

  it('terminate deletes the IKE_SA on both sides', async () => {
    const r = await cli(['terminate', 'onprem', '--socket', a.socket]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^IKE_SA onprem\[\d+\] DESTROYED/m);
    expect(r.out).toMatch(/^connection onprem terminated$/m);
    expect((await cli(['sas', '--socket', a.socket])).out).toBe('no IKE_SAs\n');
    const again = await cli(['terminate', 'onprem', '--socket', a.socket]);
    expect(again.code).toBe(1);
    expect(again.err).toBe('ikegw terminate: no IKE_SA of connection onprem\n');
  });

  it('exit 3 and a clear message when no daemon answers', async () => {
    const r = await cli(['sas', '--socket', join(dir, 'none.sock')]);
    expect(r.code).toBe(3);
    expect(r.err).toContain('no control socket at');
    const env = await cli(['sas'], { IKEGW_SOCKET: join(dir, 'env.sock') });
    expect(env.err).toContain(join(dir, 'env.sock'));
    const fromCfg = await cli(['sas', '-c', a.cfgFile]);
    expect(fromCfg.code).toBe(0);
  });
});

describe('planReload', () => {
  it('names each change; PSK changes are detected without printing the key', () => {
    const cur = config(ONE_CONN);
    const next = config(ONE_CONN.replace('rekey_time: 4h', 'rekey_time: 2h'), {
      IKEGW_PSK: 'another-psk-value-123456',
    });
    // connections are compared by src/ike/reconfigure.ts and applied live, not listed here
    expect(planReload(cur, next)).toEqual({ live: [], pending: [] });
    expect(diffConnections(cur.engine, next.engine)).toEqual([
      { conn: 'onprem', action: 're-established', fields: ['psk'] },
    ]);
    expect(JSON.stringify(diffConnections(cur.engine, next.engine))).not.toContain('another-psk');
    expect(planReload(cur, config(ONE_CONN))).toEqual({ live: [], pending: [] });
    const more = config(
      `${ONE_CONN}  second:\n    remote_addrs: [198.51.100.7]\n    psk: { env: IKEGW_PSK }\n    children:\n      x: { local_ts: [10.0.0.0/8], remote_ts: [172.16.0.0/16] }\nlog: { level: debug }\n`,
    );
    expect(planReload(cur, more)).toEqual({ live: ['log levels (default debug)'], pending: [] });
    expect(diffConnections(cur.engine, more.engine).map((c) => `${c.conn} ${c.action}`)).toEqual([
      'onprem unchanged',
      'second added',
    ]);
  });
});
