// Target `control`: the control socket's request handling in process, without a daemon or a
// socket — ControlServer's line framing (chunks, newlines, the 64 KiB line limit, UTF-8 split
// across chunks), JSON parsing, and ControlApi's dispatch of every command, against a fake daemon
// that answers initiate/terminate at once (success, failure or a destroyed IKE_SA).
//
// Requests are mutated as JSON values (commands, keys and values of every type, prototype keys,
// huge numbers and strings) and as text (truncation, junk, CR, invalid UTF-8, very long lines),
// then cut into chunks at input-chosen points.
//
// Invariants: nothing throws out of the data handler; every complete non-empty line gets exactly
// one final answer ({"ok":true,...} or {"ok":false,...}) and every written line is JSON; no
// request ends in an "internal" error (an exception other than ControlError); nothing is written
// after the server ended the connection; a call never waits for its timeout.
import { EventEmitter } from 'node:events';
import { StringDecoder } from 'node:string_decoder';
import { ManualClock } from '../../common/clock.js';
import { loadConfig } from '../../daemon/config.js';
import {
  ControlApi,
  ControlError,
  ControlServer,
  type ControlTarget,
  MAX_LINE,
} from '../../daemon/control.js';
import { createLogs, type Logs } from '../../daemon/log.js';
import type { IkeSaInfo } from '../../ike/engine.js';
import type { BusEvent, Command } from '../../ike/events.js';
import type { SaCounters } from '../../ike/ports.js';
import { type FuzzInstance, type FuzzTarget, invariant, ReportedError } from '../harness.js';
import { concatBytes, havoc } from '../mutate.js';
import type { Rng } from '../rng.js';

const CONFIG = `
connections:
  onprem:
    remote_addrs: [198.51.100.1]
    psk: { value: "fuzz-control-psk-0123456789" }
    children:
      net:
        local_ts: [10.10.0.0/16]
        remote_ts: [192.168.100.0/24]
      svc:
        local_ts: [10.96.0.0/12]
        remote_ts: [192.168.101.0/24]
  backup:
    remote_addrs: [198.51.100.2]
    psk: { value: "fuzz-control-psk-0123456789" }
    children:
      net:
        local_ts: [10.20.0.0/16]
        remote_ts: [192.168.102.0/24]
`;

function saInfo(uid: number, conn: string, state: string, children: string[]): IkeSaInfo {
  return {
    uid,
    conn,
    state,
    initiator: true,
    spiI: '0102030405060708',
    spiR: '1112131415161718',
    local: { address: '172.30.0.2', port: 4500 },
    remote: { address: '198.51.100.1', port: 4500 },
    localId: '172.30.0.2',
    remoteId: '198.51.100.1',
    algorithms: 'AES_GCM_16_256/PRF_HMAC_SHA2_256/CURVE_25519',
    natLocal: true,
    natRemote: false,
    establishedAtMs: 1000,
    children: children.map((name, i) => ({
      uid: uid * 10 + i,
      name,
      state: 'INSTALLED',
      spiIn: 0xc0000000 + i,
      spiOut: 0xd0000000 + i,
      reqid: i + 1,
      algorithms: 'AES_GCM_16_256',
      encap: true,
      localTs: ['10.10.0.0/16'],
      remoteTs: ['192.168.100.0/24'],
      installedAtMs: 2000,
    })),
  };
}

/** The daemon as the API sees it; commands are answered synchronously by `mode`. */
class FakeDaemon implements ControlTarget {
  private listeners = new Set<(ev: BusEvent) => void>();
  readonly stats = { events: 3, errors: 0 };
  mode = 0;
  sas: IkeSaInfo[] = [];
  commands = 0;

  status(): IkeSaInfo[] {
    return this.sas;
  }

  onBus(fn: (ev: BusEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  get listening(): number {
    return this.listeners.size;
  }

  private emit(ev: BusEvent): void {
    for (const l of [...this.listeners]) l(ev);
  }

  command(cmd: Command): void {
    this.commands++;
    if (cmd.cmd !== 'initiate' && cmd.cmd !== 'terminate') return;
    const ref = (uid: number) => ({
      conn: cmd.conn,
      uid,
      spiI: '0102030405060708',
      spiR: '0000000000000000',
      local: { address: '172.30.0.2', port: 500 },
      remote: { address: '198.51.100.1', port: 500 },
    });
    if (cmd.cmd === 'terminate') {
      for (const sa of this.sas.filter((s) => s.conn === cmd.conn))
        this.emit({
          ev: 'ike-state',
          sa: ref(sa.uid),
          state: 'DESTROYED',
          initiator: true,
          detail: 'terminated',
        });
      return;
    }
    const sa = ref(99);
    this.emit({ ev: 'ike-state', sa, state: 'CONNECTING', initiator: true, detail: 'initiating' });
    this.emit({ ev: 'log', level: 'debug', subsys: 'ike', sa, msg: 'a debug line' });
    switch (this.mode % 3) {
      case 0:
        this.emit({
          ev: 'child-state',
          sa,
          child: cmd.child ?? 'net',
          uid: 990,
          state: 'INSTALLED',
          spiIn: 1,
          spiOut: 2,
        });
        return;
      case 1:
        this.emit({
          ev: 'failure',
          sa,
          conn: cmd.conn,
          reason: 'AUTHENTICATION_FAILED',
          detail: 'PSK mismatch',
        });
        return;
      default:
        this.emit({ ev: 'ike-state', sa, state: 'DESTROYED', initiator: true, detail: 'peer unreachable' });
    }
  }
}

/** The parts of a net.Socket that ControlServer.serve uses. */
class FakeSocket extends EventEmitter {
  readonly out: string[] = [];
  destroyed = false;
  ended = false;
  writesAfterEnd = 0;
  setEncoding(): this {
    return this;
  }
  write(s: string): boolean {
    if (this.ended) this.writesAfterEnd++;
    this.out.push(s);
    return true;
  }
  end(): this {
    this.ended = true;
    return this;
  }
  destroy(): this {
    this.destroyed = true;
    return this;
  }
}

const REQUESTS: Array<Record<string, unknown>> = [
  { cmd: 'sas' },
  { cmd: 'initiate', conn: 'onprem' },
  { cmd: 'initiate', conn: 'onprem', child: 'svc', timeoutMs: 10000 },
  { cmd: 'terminate', conn: 'onprem' },
  { cmd: 'terminate', conn: 'backup', timeoutMs: 5000 },
  { cmd: 'reload' },
  { cmd: 'log-level' },
  { cmd: 'log-level', subsys: 'ike', level: 'debug' },
  { cmd: 'log-level', subsys: '*', level: 'info' },
  { cmd: 'stats' },
  { cmd: 'version' },
];

const KEYS = [
  'cmd',
  'conn',
  'child',
  'timeoutMs',
  'subsys',
  'level',
  '__proto__',
  'constructor',
  'toString',
  'x',
  '',
];
const STRINGS = [
  'sas',
  'initiate',
  'terminate',
  'reload',
  'log-level',
  'stats',
  'version',
  'onprem',
  'backup',
  'net',
  'svc',
  'ike',
  'daemon',
  '*',
  'all',
  'debug',
  'trace',
  'silent',
  'info',
  '',
  ' ',
  'ONPREM',
  'constructor',
  '__proto__',
  'hasOwnProperty',
  '\u0000',
  '\u2028',
  '\ud800',
  'é',
  '%any',
  '../../etc',
  'x'.repeat(300),
];

function randomValue(rng: Rng, depth = 0): unknown {
  switch (rng.int(depth > 2 ? 6 : 8)) {
    case 0:
      return rng.pick(STRINGS);
    case 1:
      return rng.pick([0, -1, 1, 15000, 600000, 600001, 1e308, -1e308, 0.5, 2 ** 53, -0, 1e-300]);
    case 2:
      return rng.chance(0.5);
    case 3:
      return null;
    case 4:
      return rng.pick(STRINGS).repeat(rng.range(1, 3));
    case 5:
      return rng.int(100000);
    case 6:
      return Array.from({ length: rng.int(4) }, () => randomValue(rng, depth + 1));
    default: {
      const o: Record<string, unknown> = {};
      for (let i = rng.int(4); i > 0; i--) o[rng.pick(KEYS)] = randomValue(rng, depth + 1);
      return o;
    }
  }
}

function mutateRequest(rng: Rng, r: Record<string, unknown>): unknown {
  const o: Record<string, unknown> = { ...r };
  for (let k = rng.small(3); k > 0; k--) {
    const keys = Object.keys(o);
    switch (rng.int(6)) {
      case 0: // change a value
        if (keys.length) o[rng.pick(keys)] = randomValue(rng);
        break;
      case 1: // add a key
        o[rng.pick(KEYS)] = randomValue(rng);
        break;
      case 2: // remove a key
        if (keys.length) delete o[rng.pick(keys)];
        break;
      case 3: // another command, same arguments
        o.cmd = rng.pick(STRINGS);
        break;
      case 4: // a value of the right name from another request
        Object.assign(o, rng.pick(REQUESTS), { cmd: o.cmd });
        break;
      default:
        return rng.pick([[o], 'sas', 42, null, true, [], { cmd: o }]);
    }
  }
  return o;
}

/** Input: mode byte, chunk size byte, then the bytes the client sends. */
const IN_HDR = 2;

class ControlInstance implements FuzzInstance {
  private readonly daemon = new FakeDaemon();
  private readonly logLines: string[] = [];
  private readonly logs: Logs;
  private readonly server: ControlServer;
  private withDaemon = true;
  private countersFail = false;
  private reloadFails = false;
  private readonly counts = { lines: 0, ok: 0, errors: 0, progress: 0, overlong: 0 };

  constructor() {
    const cfg = loadConfig(CONFIG, {});
    if (!cfg.ok) throw new Error(`control target config: ${cfg.errors.map((e) => e.message).join('; ')}`);
    this.logs = createLogs({
      destination: { write: (s: string) => this.logLines.push(s) },
      format: 'json',
      isTty: false,
    });
    const clock = new ManualClock(5000);
    const api = new ControlApi({
      daemon: () => (this.withDaemon ? this.daemon : undefined),
      counters: () => ({
        querySa: (): Promise<SaCounters> =>
          this.countersFail
            ? Promise.reject(new Error('ENOENT'))
            : Promise.resolve({ bytes: 10n ** 20n, packets: 7n }),
      }),
      config: () => cfg.value,
      logs: this.logs,
      clock,
      reload: async () => {
        if (this.reloadFails) throw new ControlError('invalid-config', 'connections.onprem: bad');
        return { applied: ['log levels'], connections: [], pending: [], warnings: ['w'] };
      },
      info: () => ({ datapath: 'memory', ready: true }),
      version: '0.0.0-fuzz',
    });
    this.server = new ControlServer({ path: '/nonexistent/ikegw-fuzz.sock', api, logs: this.logs });
  }

  generate(rng: Rng): Uint8Array {
    const h = new Uint8Array(IN_HDR);
    h[0] = rng.int(256);
    h[1] = rng.chance(0.6) ? 0 : rng.int(256);
    const lines: string[] = [];
    for (let i = rng.small(4); i > 0; i--) {
      const base = rng.pick(REQUESTS);
      const v = rng.chance(0.2) ? base : mutateRequest(rng, base);
      lines.push(JSON.stringify(v) ?? 'null');
    }
    let text = lines.join(rng.chance(0.9) ? '\n' : rng.pick(['\r\n', '\n\n', ' \n', '\n\u2028']));
    if (rng.chance(0.9)) text += '\n';
    let b: Uint8Array = new TextEncoder().encode(text);
    const r = rng.int(20);
    if (r === 0)
      b = concatBytes(
        new Uint8Array(MAX_LINE + rng.int(100)).fill(0x61),
        rng.chance(0.5) ? b : new Uint8Array(0),
      );
    else if (r === 1) b = concatBytes(b, Uint8Array.of(0xff, 0xfe, 0xc3), b);
    else if (r < 5) b = havoc(rng, b, [], 3);
    else if (r === 5) b = concatBytes(new TextEncoder().encode(`${'['.repeat(rng.range(10, 20000))}\n`), b);
    return concatBytes(h, b);
  }

  async run(input: Uint8Array): Promise<void> {
    if (input.length < IN_HDR) return;
    const mode = input[0]!;
    this.withDaemon = (mode & 3) !== 0;
    this.daemon.mode = mode >> 2;
    this.countersFail = (mode & 0x40) !== 0;
    this.reloadFails = (mode & 0x80) !== 0;
    this.daemon.sas =
      (mode & 0x10) !== 0
        ? []
        : [saInfo(1, 'onprem', 'ESTABLISHED', ['net']), saInfo(2, 'backup', 'CONNECTING', [])];
    this.logLines.length = 0;
    const data = input.subarray(IN_HDR);
    const chunk = input[1]! === 0 ? data.length || 1 : input[1]! * 7;
    const sock = new FakeSocket();
    (this.server as unknown as { serve(s: unknown): void }).serve(sock);
    const dec = new StringDecoder('utf8');
    let text = '';
    for (let at = 0; at < data.length; at += chunk) {
      const s = dec.write(Buffer.from(data.subarray(at, at + chunk)));
      text += s;
      if (s === '') continue;
      try {
        sock.emit('data', s);
      } catch (e) {
        throw new ReportedError(
          'DataHandlerThrew',
          `the data handler threw: ${(e as Error)?.stack ?? e}`,
          `data handler threw: ${(e as Error)?.name}`,
        );
      }
    }
    for (let i = 0; i < 6; i++) await new Promise<void>((r) => setImmediate(r));
    sock.emit('close');
    this.check(text, sock);
  }

  private check(text: string, sock: FakeSocket): void {
    invariant(
      sock.writesAfterEnd === 0,
      'wrote after ending the connection',
      () => `${sock.writesAfterEnd} writes`,
    );
    const answers = sock.out.map((l) => {
      invariant(l.endsWith('\n') && !l.slice(0, -1).includes('\n'), 'an answer is not one line', () =>
        l.slice(0, 200),
      );
      try {
        return JSON.parse(l) as Record<string, unknown>;
      } catch {
        throw new ReportedError(
          'InvariantError',
          `an answer is not JSON: ${l.slice(0, 200)}`,
          'InvariantError: an answer is not JSON',
        );
      }
    });
    const finals = answers.filter((a) => 'ok' in a);
    this.counts.progress += answers.length - finals.length;
    for (const a of finals) {
      invariant(a.code !== 'internal', 'a request failed with an internal error', () => String(a.error));
      if (a.ok === true) this.counts.ok++;
      else this.counts.errors++;
    }
    const internal = this.logLines.filter((l) => /"level":"(error|fatal)"/.test(l));
    invariant(internal.length === 0, 'the server logged an error', () => internal[0]!.slice(0, 300));
    invariant(this.daemon.listening === 0, 'a bus listener was left registered');
    if (sock.ended) {
      this.counts.overlong++;
      return;
    }
    // Exactly one final answer per complete, non-empty line.
    const complete = text
      .slice(0, text.lastIndexOf('\n') + 1)
      .split('\n')
      .slice(0, -1);
    const expected = complete.filter((l) => l.trim() !== '').length;
    this.counts.lines += expected;
    invariant(
      finals.length === expected,
      'not one answer per request line',
      () => `${expected} lines, ${finals.length} answers`,
    );
  }

  stats(): Record<string, number> {
    return { ...this.counts };
  }
}

export const controlTarget: FuzzTarget = {
  name: 'control',
  about: 'control socket framing, JSON requests and ControlApi dispatch, in process with a fake daemon',
  stateless: true,
  create: () => new ControlInstance(),
};
