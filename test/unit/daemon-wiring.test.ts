// The daemon's effect executor with real parts: UDP on 127.0.0.1, the MemoryInstaller, real timers
// (short), pino writing into an array. Only the engine is a scripted stand-in (FakeEngine) for the
// executor tests; the last tests run the real IkeEngine through `ikegw daemon`.
import dgram from 'node:dgram';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseLogLevelFlag } from '../../src/cli/commands/daemon.js';
import { cliMain } from '../../src/cli/main.js';
import { monotonicClock } from '../../src/common/clock.js';
import { version } from '../../src/common/version.js';
import { createLogs } from '../../src/daemon/log.js';
import { Daemon } from '../../src/daemon/main.js';
import { MemoryInstaller } from '../../src/esp/memory-installer.js';
import type { Effect, IkeEvent } from '../../src/ike/events.js';
import type { Endpoint } from '../../src/ike/ports.js';
import { UdpTransport } from '../../src/net/udp-transport.js';
import { idOf, samplePolicy, sampleSa } from '../contract/sa-installer.contract.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timeout waiting for condition');
    await new Promise((r) => setTimeout(r, 2));
  }
}

async function peer() {
  const sock = dgram.createSocket('udp4');
  const got: Array<{ bytes: Buffer; from: number }> = [];
  sock.on('message', (m, r) => got.push({ bytes: m, from: r.port }));
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => sock.close(() => r())));
  const ep: Endpoint = { address: '127.0.0.1', port: sock.address().port };
  const send = (b: Uint8Array, port: number) =>
    new Promise<void>((r, j) => sock.send(b, port, '127.0.0.1', (e) => (e ? j(e) : r())));
  return { sock, ep, got, send };
}

/** A stand-in engine: records events and answers each with scripted effects. */
class FakeEngine {
  readonly events: IkeEvent[] = [];
  constructor(private readonly script: (ev: IkeEvent, now: number) => Effect[]) {}
  handle(ev: IkeEvent, nowMs: number): Effect[] {
    this.events.push(ev);
    return this.script(ev, nowMs);
  }
}

async function rig(script: (ev: IkeEvent, now: number) => Effect[]) {
  const lines: string[] = [];
  const logs = createLogs({
    level: 'debug',
    format: 'json',
    destination: { write: (s: string) => lines.push(s) },
  });
  const installer = new MemoryInstaller();
  const engine = new FakeEngine(script);
  let daemon: Daemon | undefined;
  const transport = new UdpTransport({
    address: '127.0.0.1',
    port: 0,
    natPort: 0,
    onIke: (local, remote, bytes) => daemon?.feed({ kind: 'datagram', local, remote, bytes }),
    onError: (e) => daemon?.transportError(e),
  });
  const ports = await transport.start();
  daemon = new Daemon({ engine, installer, transport, logs, clock: monotonicClock });
  const d = daemon;
  cleanups.push(() => d.shutdown(200));
  const json = () =>
    lines
      .join('')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { daemon: d, engine, installer, transport, ports, lines, json };
}

describe('Daemon effect executor', () => {
  it('start -> send, arm, kernel ops; kernel-done is fed back in order, with the errno on failure', async () => {
    const p = await peer();
    let local: Endpoint = { address: '127.0.0.1', port: 0 };
    const r = await rig((ev, now) => {
      if (ev.kind !== 'start') return [];
      return [
        { kind: 'send', local, remote: p.ep, bytes: new Uint8Array([1, 2, 3, 4, 5]) },
        { kind: 'arm', key: { sa: 'engine', what: 'tick', gen: 1 }, atMs: now + 10 },
        { kind: 'kernel', opId: 1, op: { op: 'addSa', spec: sampleSa() } },
        { kind: 'kernel', opId: 2, op: { op: 'addSa', spec: sampleSa() } }, // duplicate -> EEXIST
        { kind: 'kernel', opId: 3, op: { op: 'addPolicy', policy: samplePolicy() } },
        { kind: 'kernel', opId: 4, op: { op: 'delSa', id: { ...idOf(sampleSa()), spi: 0x1234 } } }, // ENOENT
        { kind: 'emit', ev: { ev: 'log', level: 'info', subsys: 'ike', msg: 'hello from the engine' } },
      ];
    });
    local = { address: '127.0.0.1', port: r.ports.port };
    r.daemon.start();
    await r.daemon.idle();
    await until(() => p.got.length === 1 && r.engine.events.some((e) => e.kind === 'timer'));
    expect(p.got[0]).toEqual({ bytes: Buffer.from([1, 2, 3, 4, 5]), from: r.ports.port });
    const done = r.engine.events.filter((e) => e.kind === 'kernel-done');
    expect(done).toEqual([
      { kind: 'kernel-done', opId: 1 },
      {
        kind: 'kernel-done',
        opId: 2,
        error: { errno: 17, message: expect.stringMatching(/^addSa failed: EEXIST \(17\)/) },
      },
      { kind: 'kernel-done', opId: 3 },
      {
        kind: 'kernel-done',
        opId: 4,
        error: { errno: 2, message: expect.stringMatching(/^delSa failed: ENOENT \(2\)/) },
      },
    ]);
    expect(r.engine.events.find((e) => e.kind === 'timer')).toEqual({
      kind: 'timer',
      key: { sa: 'engine', what: 'tick', gen: 1 },
    });
    expect(r.installer.hasSa(idOf(sampleSa()))).toBe(true);
    expect(r.daemon.stats).toMatchObject({ kernelOps: 4, kernelErrors: 2, eventErrors: 0 });
    const logged = r.json();
    expect(logged.find((o) => o.msg === 'hello from the engine')).toMatchObject({
      level: 'info',
      subsys: 'ike',
    });
    expect(logged.filter((o) => o.subsys === 'kernel' && o.level === 'warn')).toHaveLength(2);
  });

  it('datagrams reach the engine with local/remote endpoints; replies go out', async () => {
    const p = await peer();
    const r = await rig((ev) =>
      ev.kind === 'datagram'
        ? [{ kind: 'send', local: ev.local, remote: ev.remote, bytes: Uint8Array.from(ev.bytes).reverse() }]
        : [],
    );
    await p.send(Buffer.from([0, 0, 0, 0, 9, 8, 7]), r.ports.natPort); // NAT-T with non-ESP marker
    await until(() => p.got.length === 1);
    expect(r.engine.events[0]).toEqual({
      kind: 'datagram',
      local: { address: '127.0.0.1', port: r.ports.natPort },
      remote: p.ep,
      bytes: expect.anything(),
    });
    expect(Buffer.from((r.engine.events[0] as { bytes: Uint8Array }).bytes)).toEqual(Buffer.from([9, 8, 7]));
    // reply from 4500 carries the marker again
    expect(p.got[0]).toEqual({ bytes: Buffer.from([0, 0, 0, 0, 7, 8, 9]), from: r.ports.natPort });
  });

  it('an exception in one event is caught, logged with its cause and counted; the daemon goes on', async () => {
    const p = await peer();
    const r = await rig((ev) => {
      if (ev.kind === 'command' && ev.cmd.cmd === 'initiate' && ev.cmd.conn === 'boom')
        throw new Error('engine bug');
      if (ev.kind === 'command' && ev.cmd.cmd === 'initiate') {
        return [
          {
            kind: 'send',
            local: { address: '127.0.0.1', port: 4242 },
            remote: p.ep,
            bytes: new Uint8Array([1]),
          }, // no such socket
          { kind: 'emit', ev: { ev: 'log', level: 'info', subsys: 'ike', msg: 'initiated' } },
        ];
      }
      return [];
    });
    const bus: string[] = [];
    r.daemon.onBus((ev) => bus.push(ev.ev));
    r.daemon.onBus(() => {
      throw new Error('listener bug');
    });
    r.daemon.command({ cmd: 'initiate', conn: 'boom' });
    r.daemon.command({ cmd: 'initiate', conn: 'ok' });
    expect(r.daemon.stats.eventErrors).toBe(1);
    expect(r.daemon.stats.effectErrors).toBe(1); // the throwing bus listener
    expect(r.daemon.stats.transportErrors).toBe(1); // send from an unbound port, reported not thrown
    expect(bus).toEqual(['log']);
    const logged = r.json();
    expect(logged.find((o) => o.subsys === 'daemon' && o.level === 'error')).toMatchObject({
      msg: 'internal error handling a command event: engine bug',
      err: { message: 'engine bug' },
    });
    expect(logged.find((o) => o.subsys === 'net')).toMatchObject({ level: 'warn', errno: 'ENOSOCK' });
    expect(logged.some((o) => o.msg === 'initiated')).toBe(true);
  });

  it('events fed while one is processed are queued, not nested', async () => {
    const order: string[] = [];
    let d: Daemon | undefined;
    const r = await rig((ev) => {
      order.push(`begin ${ev.kind}`);
      if (ev.kind === 'start') d?.command({ cmd: 'shutdown' });
      order.push(`end ${ev.kind}`);
      return [];
    });
    d = r.daemon;
    r.daemon.start();
    expect(order).toEqual(['begin start', 'end start', 'begin command', 'end command']);
  });

  it('shutdown feeds the shutdown command, sends its DELETE, flushes the installer and closes', async () => {
    const p = await peer();
    let natLocal: Endpoint = { address: '127.0.0.1', port: 0 };
    const r = await rig((ev) => {
      if (ev.kind === 'start')
        return [{ kind: 'kernel', opId: 1, op: { op: 'addPolicy', policy: samplePolicy({ trap: true }) } }];
      if (ev.kind === 'command' && ev.cmd.cmd === 'shutdown') {
        return [{ kind: 'send', local: natLocal, remote: p.ep, bytes: new Uint8Array([0xde, 0x1e, 0x7e]) }];
      }
      return [];
    });
    natLocal = { address: '127.0.0.1', port: r.ports.natPort };
    r.daemon.start();
    r.daemon.timers.arm({ sa: 'x', what: 'y', gen: 1 }, monotonicClock.now() + 60_000);
    await r.daemon.idle();
    expect(r.installer.snapshot().policies).toHaveLength(1);
    await r.daemon.shutdown(500);
    await until(() => p.got.length === 1);
    expect(p.got[0]!.bytes).toEqual(Buffer.from([0, 0, 0, 0, 0xde, 0x1e, 0x7e]));
    expect(r.engine.events.map((e) => e.kind)).toEqual(['start', 'kernel-done', 'command']);
    expect(r.installer.snapshot()).toEqual({ sas: [], policies: [] });
    expect(r.daemon.timers.size).toBe(0);
    // stopped: further events are ignored, sends would fail
    r.daemon.feed({ kind: 'start' });
    expect(r.engine.events).toHaveLength(3);
    expect(r.json().map((o) => o.msg)).toContain('stopped');
  });

  it('kernel events from the installer are fed as kernel events', async () => {
    const r = await rig(() => []);
    r.installer.raise({ kind: 'acquire', reqid: 1, src: '10.10.0.5', dst: '192.168.100.7' });
    expect(r.engine.events).toEqual([
      { kind: 'kernel', ev: { kind: 'acquire', reqid: 1, src: '10.10.0.5', dst: '192.168.100.7' } },
    ]);
  });
});

describe('ikegw command line', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ikegw-cli-'));
  const pskFile = join(dir, 'psk');
  writeFileSync(pskFile, 'a-long-enough-pre-shared-key-4711\n', { mode: 0o600 });

  function io(extra: Partial<Parameters<typeof cliMain>[1]> = {}) {
    const out: string[] = [];
    const err: string[] = [];
    return {
      out,
      err,
      io: { stdout: (s: string) => out.push(s), stderr: (s: string) => err.push(s), env: {}, ...extra },
    };
  }

  function configFile(body: string): string {
    const f = join(dir, `c${Math.random().toString(16).slice(2)}.yaml`);
    writeFileSync(f, body, { mode: 0o600 });
    return f;
  }

  it('version', async () => {
    const t = io();
    expect(await cliMain(['version'], t.io)).toBe(0);
    expect(t.out.join('')).toBe(`ikegw ${version()} (node ${process.version})\n`);
    expect(version()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('config check: OK / every error with exit 2', async () => {
    const good = configFile(
      `connections:\n  onprem:\n    remote_addrs: [198.51.100.1]\n    psk: { file: ${pskFile} }\n    children:\n      net: { local_ts: [10.10.0.0/16, 10.96.0.0/12], remote_ts: [192.168.100.0/24] }\n`,
    );
    const a = io();
    expect(await cliMain(['config', 'check', good], a.io)).toBe(0);
    expect(a.out.join('')).toBe(`${good}: OK (1 connection: onprem; 1 child)\n`);
    const bad = configFile(
      `connections:\n  onprem:\n    remote_addrs: [198.51.100.1]\n    psk: { file: ${pskFile} }\n    dpd_delay: soon\n    children:\n      net: { local_ts: [10.10.0.0/16], remote_ts: [10.0.0.0/33] }\n`,
    );
    const b = io();
    expect(await cliMain(['config', 'check', bad], b.io)).toBe(2);
    expect(b.err.join('')).toBe(
      [
        'error: connections.onprem.dpd_delay: must be a duration like 30s, 5m, 4h, 1d (plain number = seconds), got "soon"',
        'error: connections.onprem.children.net.remote_ts[0]: "10.0.0.0/33" is not a valid CIDR',
        'ikegw: configuration invalid (2 errors); nothing started',
        '',
      ].join('\n'),
    );
    const c = io();
    expect(await cliMain(['config', 'check', join(dir, 'missing.yaml')], c.io)).toBe(2);
    expect(c.err.join('')).toMatch(/cannot read config file .*missing\.yaml: ENOENT/);
  });

  it('daemon with a bad config exits 2 and starts nothing', async () => {
    const bad = configFile('connections: {}\nlisten: { port: 0, nat_port: 0 }\n');
    const t = io();
    let ready = false;
    const code = await cliMain(['daemon', '-c', bad], {
      ...t.io,
      onReady: () => (ready = true),
      stop: new Promise(() => {}),
    });
    expect(code).toBe(2);
    expect(ready).toBe(false);
    expect(t.err.join('')).toContain('error: connections: at least one connection is required');
  });

  it('usage errors', async () => {
    const t = io();
    expect(await cliMain(['frobnicate'], t.io)).toBe(2);
    expect(await cliMain(['daemon', '--psk', 'x'], t.io)).toBe(2);
    expect(t.err.join('')).toContain('unknown option --psk');
    expect(await cliMain(['daemon', '--log-level', 'loud'], t.io)).toBe(2);
    expect(await cliMain(['--help'], t.io)).toBe(0);
    expect(parseLogLevelFlag('info,ike=debug,net=trace')).toEqual({
      level: 'info',
      subsystems: { ike: 'debug', net: 'trace' },
    });
    expect(parseLogLevelFlag('ikee=debug')).toBe('unknown subsystem "ikee"');
  });

  it('daemon runs the real IkeEngine: start_action=start sends IKE_SA_INIT to the peer; stops cleanly', async () => {
    const p = await peer();
    const f = configFile(`
connections:
  onprem:
    remote_addrs: [127.0.0.1]
    remote_port: ${p.ep.port}
    psk: { file: ${pskFile} }
    children:
      net: { local_ts: [10.10.0.0/16], remote_ts: [192.168.100.0/24], start_action: start }
datapath: memory
listen: { address: 127.0.0.1, port: 0, nat_port: 0 }
`);
    const lines: string[] = [];
    let stop: (v: string) => void = () => {};
    const stopP = new Promise<string>((r) => {
      stop = r;
    });
    let ports: { port: number; natPort: number } | undefined;
    const t = io({
      stop: stopP,
      logDestination: { write: (s: string) => lines.push(s) },
      onReady: (d) => (ports = d.ports),
    });
    const run = cliMain(['daemon', '-c', f, '--log-level', 'info,ike=debug'], t.io);
    await until(() => p.got.length >= 1);
    const init = p.got[0]!;
    expect(init.from).toBe(ports?.port);
    expect(init.bytes[17]).toBe(0x20); // IKEv2
    expect(init.bytes[18]).toBe(34); // IKE_SA_INIT
    expect(init.bytes[19]! & 0x08).toBe(0x08); // initiator flag
    stop('test');
    expect(await run).toBe(0);
    const out = lines.join('');
    expect(out).toContain('ikegw started: 1 connection(s)');
    expect(out).toContain('sending IKE_SA_INIT request 0');
    expect(out).toContain('stop requested (test)');
    expect(out).not.toContain('a-long-enough-pre-shared-key-4711');
  });
});
