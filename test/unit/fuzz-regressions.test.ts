// What `npm run fuzz` found, each with its minimized input: every crash file in
// test/fixtures/fuzz-crashes replays on a fresh instance of its target without a crash (an
// exception or a violated invariant), and every fix has a readable test of its own below.
import { EventEmitter } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig, parseDuration } from '../../src/daemon/config.js';
import { ControlApi, ControlServer, MAX_LINE } from '../../src/daemon/control.js';
import { createLogs } from '../../src/daemon/log.js';
import { MemoryInstaller } from '../../src/esp/memory-installer.js';
import { EspDatapath } from '../../src/esp/userspace/datapath.js';
import { CRASH_DIR } from '../../src/fuzz/corpus.js';
import { replay, signatureOf } from '../../src/fuzz/harness.js';
import { FUZZ_CA_PEM } from '../../src/fuzz/targets/config-pki.js';
import { targetForFile } from '../../src/fuzz/targets/index.js';
import { CertError, parseCert } from '../../src/ike/crypto/x509.js';
import type { IkeEngine } from '../../src/ike/engine.js';
import { childConfig, connection, EnginePair, engineConfig } from '../helpers/engine-pair.js';
import { childPair } from './esp/helpers.js';

const files = readdirSync(CRASH_DIR()).filter((f) => f.endsWith('.bin'));

describe('fuzz crash files replay without a crash', () => {
  for (const f of files) {
    it(f, async () => {
      const target = targetForFile(f);
      expect(target, `no fuzz target for ${f}`).toBeDefined();
      const err = await replay(target!, new Uint8Array(readFileSync(join(CRASH_DIR(), f))));
      expect(err === undefined ? 'no crash' : signatureOf(err)).toBe('no crash');
    });
  }
});

const A = '198.51.100.2';
const B = '198.51.100.1';
const espSpis = (e: IkeEngine): Set<number> => (e as unknown as { espSpis: Set<number> }).espSpis;

describe('engine: inbound SPIs offered in a CREATE_CHILD_SA request', () => {
  async function pair(startBoth: boolean) {
    const child = (name: string, l: string, r: string) =>
      childConfig({ name, localTs: [l], remoteTs: [r], rekeyTime: 0, lifeTime: 0, startAction: 'start' });
    const a = connection({
      name: 'a',
      localAddrs: [A],
      remoteAddrs: [B],
      children: startBoth
        ? [child('one', '10.10.0.0/16', '192.168.100.0/24'), child('two', '10.11.0.0/16', '192.168.101.0/24')]
        : [child('one', '10.10.0.0/16', '192.168.100.0/24')],
    });
    const b = connection({
      name: 'b',
      localAddrs: [B],
      remoteAddrs: ['%any'],
      children: [
        childConfig({ localTs: ['192.168.0.0/16'], remoteTs: ['10.0.0.0/8'], rekeyTime: 0, lifeTime: 0 }),
      ],
    });
    b.psk = a.psk;
    const p = new EnginePair(
      engineConfig([a]),
      engineConfig([b]),
      { a: A, b: B },
      { a: new MemoryInstaller(), b: new MemoryInstaller() },
    );
    return p;
  }

  // Found by the engine target (engine-f5457752aa4c.bin): B rekeys a CHILD_SA, the peer deletes
  // the IKE_SA before answering, and the SPI B had offered stayed reserved for good.
  it('are freed when the IKE_SA is deleted before the answer (CHILD_SA rekey)', async () => {
    const p = await pair(false);
    p.feed(p.a, { kind: 'command', cmd: { cmd: 'initiate', conn: 'a' } });
    await p.settle();
    expect(espSpis(p.b.engine).size).toBe(1);
    p.drop = (d) => d.from === 'b'; // B's rekey request never arrives
    p.feed(p.b, { kind: 'command', cmd: { cmd: 'rekey', conn: 'b' } });
    await p.settle();
    expect(espSpis(p.b.engine).size).toBe(2);
    p.drop = () => false;
    p.feed(p.a, { kind: 'command', cmd: { cmd: 'terminate', conn: 'a' } });
    await p.settle();
    expect(p.b.engine.list()).toEqual([]);
    expect([...espSpis(p.b.engine)]).toEqual([]);
  });

  it('are freed when the IKE_SA is deleted before the answer (new CHILD_SA)', async () => {
    const p = await pair(true);
    // The second child's CREATE_CHILD_SA goes unanswered.
    p.drop = (d) => d.from === 'a' && d.bytes[18] === 36; // CREATE_CHILD_SA
    p.feed(p.a, { kind: 'command', cmd: { cmd: 'initiate', conn: 'a' } });
    await p.settle();
    expect(p.a.engine.list()[0]?.children.map((c) => c.name)).toEqual(['one']);
    expect(espSpis(p.a.engine).size).toBe(2);
    p.drop = () => false;
    p.feed(p.b, { kind: 'command', cmd: { cmd: 'terminate', conn: 'b' } });
    await p.settle();
    expect(p.a.engine.list()).toEqual([]);
    expect([...espSpis(p.a.engine)]).toEqual([]);
  });
});

// Found by the engine target (engine-9f11034b4027.bin): a peer that proposed, in a CHILD_SA rekey,
// an SPI one of its CHILD_SAs towards us already used: we accepted, and when the old CHILD_SA was
// deleted the new outbound SA did not go in (EEXIST), the CHILD_SA INSTALLED without it.
describe('engine: a CREATE_CHILD_SA with an SPI the peer already uses towards us', () => {
  it('is refused with NO_PROPOSAL_CHOSEN', async () => {
    const a = connection({
      name: 'a',
      localAddrs: [A],
      remoteAddrs: [B],
      children: [
        childConfig({ localTs: ['10.10.0.0/16'], remoteTs: ['192.168.100.0/24'], rekeyTime: 0, lifeTime: 0 }),
      ],
    });
    const b = connection({
      name: 'b',
      localAddrs: [B],
      remoteAddrs: ['%any'],
      children: [
        childConfig({ localTs: ['192.168.0.0/16'], remoteTs: ['10.0.0.0/8'], rekeyTime: 0, lifeTime: 0 }),
      ],
    });
    b.psk = a.psk;
    const p = new EnginePair(
      engineConfig([a]),
      engineConfig([b]),
      { a: A, b: B },
      { a: new MemoryInstaller(), b: new MemoryInstaller() },
    );
    p.feed(p.a, { kind: 'command', cmd: { cmd: 'initiate', conn: 'a' } });
    await p.settle();
    const used = p.a.engine.list()[0]!.children[0]!.spiIn;
    // A misbehaving peer: the rekey offers the SPI of the CHILD_SA it rekeys.
    (p.a.engine as unknown as { newEspSpi: () => number }).newEspSpi = () => used;
    p.b.events.length = 0;
    p.feed(p.a, { kind: 'command', cmd: { cmd: 'rekey', conn: 'a' } });
    await p.settle();
    const out = p.of(p.b, 'message').filter((m) => m.dir === 'out');
    // (A tries once more with the other PFS choice, and the same SPI.)
    expect(out.length).toBeGreaterThan(0);
    expect(new Set(out.map((m) => m.summary))).toEqual(new Set(['[ N(NO_PROP) ]']));
    expect(new Set(p.of(p.b, 'failure').map((f) => f.reason))).toEqual(new Set(['PEER_ERROR']));
    expect(p.b.engine.list()[0]!.children.map((c) => c.spiOut)).toEqual([used]);
    expect(p.b.events.filter((e) => e.ev === 'log' && e.level === 'error')).toEqual([]);
  });
});

// Found by the config target (config-c26e88c03c43.bin, config-0a48a714e4cd.bin): the yaml package
// throws from toJS() for these instead of listing them in doc.errors, and loadConfig threw.
describe('config: YAML aliases the yaml package cannot resolve', () => {
  it.each([
    ['an alias without its anchor', ': [*c]\ns:\n', 'Unresolved alias'],
    [
      'an alias bomb',
      'a: &a\nb: &b [*a,*a,*a,*a]: &c [*b,*b]\nd: [*c,*c,*c,*c,*c,*c]\ne:\n',
      'Excessive alias count',
    ],
  ])('%s is an error, not an exception', (_what, text, msg) => {
    const r = loadConfig(text, {});
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.errors.map((e) => e.field)).toEqual(['yaml']);
    expect(r.errors[0]!.message).toContain(msg);
  });
});

// Found by the config target (config-57ff7889a271.bin): `auth` was turned into a string with
// String(), which throws for a mapping whose toString is not a function.
describe('config: an auth that is not a string', () => {
  it.each([
    ['{ toString: null }', 'toString: null'],
    ['a list', '[psk]'],
  ])('%s is an error, not an exception', (_what, auth) => {
    const r = loadConfig(
      `connections:\n  c:\n    remote_addrs: [192.0.2.1]\n    remote: { auth: { ${auth} } }\n`,
      {},
    );
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.errors.map((e) => e.field)).toContain('connections.c.remote.auth');
  });
});

// Found by the esp-input target (esp-input-c534efd76f4e.bin): the data path remembered which drop
// kinds it had logged per SA in one set of its own, keyed by the SA, and never forgot them: one
// more entry per deleted SA that had dropped something (every rekey), and an SA added again under
// the same SPI never logged its drops.
describe('userspace ESP: what was logged once per SA', () => {
  it('goes with the SA', () => {
    const warnings: string[] = [];
    const log = {
      debug() {},
      info() {},
      error() {},
      warn: (_o: object, msg: string) => void warnings.push(msg),
    };
    const dp = new EspDatapath({ clock: { now: () => 0 }, emit: () => undefined, log });
    const spec = childPair().a.in;
    const forged = new Uint8Array(64); // ICV does not verify: an 'auth' drop
    new DataView(forged.buffer).setUint32(0, spec.spi);
    new DataView(forged.buffer).setUint32(4, 1);
    for (let i = 0; i < 3; i++) {
      const sa = dp.table.addSa(spec);
      dp.inbound({ address: spec.dst, port: 4500 }, { address: spec.src, port: 4500 }, forged.slice());
      expect(sa.drops.auth).toBe(1);
      dp.table.delSa(sa.key);
    }
    expect(warnings).toHaveLength(3);
    expect((dp as unknown as { logged: Set<string> }).logged.size).toBe(0);
  });
});

// Found by the config target (config-0b21834193a9.bin): a duration of 400 digits is a number to
// JavaScript — Infinity — and a configuration with life_time: Infinity loaded.
describe('config: a duration too large to be a number', () => {
  it('is an error, not Infinity', () => {
    const digits = '9'.repeat(400);
    expect(parseDuration(digits)).toBeUndefined();
    expect(parseDuration(`${digits}d`)).toBeUndefined();
    expect(parseDuration('4h')).toBe(14400);
    const r = loadConfig(
      `connections:\n  c:\n    remote_addrs: [192.0.2.1]\n    psk: { value: "0123456789abcdef0123" }\n    children:\n      n: { local_ts: 10.0.0.0/8, remote_ts: 192.168.0.0/16, life_time: "${digits}" }\n`,
      {},
    );
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.errors.map((e) => e.field)).toEqual(['connections.c.children.n.life_time']);
  });
});

// Found by the config target (config-95c595146cdd.bin): a certificate whose public key does not
// decode parses (X509Certificate decodes the key only when asked), and the chain check then threw
// out of loadConfig; a peer's CERT in IKE_AUTH would have thrown out of the exchange the same way.
describe('a certificate whose public key does not decode', () => {
  const der = Buffer.from(FUZZ_CA_PEM.replace(/-----[^-]+-----|\s+/g, ''), 'base64');
  const bad = new Uint8Array(der);
  bad[der.indexOf(Buffer.from('034200', 'hex')) + 3] = 0x05; // EC point form 5: no such thing

  it('does not parse', () => {
    expect(() => parseCert(bad)).toThrow(CertError);
  });

  it('is a configuration error, not an exception', () => {
    const files: Record<string, Uint8Array> = { '/ca.der': bad };
    const r = loadConfig(
      'connections:\n  c:\n    remote_addrs: [192.0.2.1]\n    psk: { value: "0123456789abcdef0123" }\n    remote: { auth: pubkey, cacerts: [/ca.der] }\n    children:\n      n: { local_ts: 10.0.0.0/8, remote_ts: 192.168.0.0/16 }\n',
      {},
      { readFile: (p) => files[p]! },
    );
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.errors.map((e) => e.field)).toEqual(['connections.c.remote.cacerts[0]']);
  });
});

// Found by the control target (control-5580a9288c32.bin): after refusing a request longer than
// MAX_LINE the server went on buffering what the client sent (without bound) and wrote another
// refusal for every further chunk, after it had ended the connection; an answer to an earlier
// request on the same connection came after the end too.
describe('control: a request longer than MAX_LINE', () => {
  it('is refused once, after the answers before it, and nothing more is read', async () => {
    const sock = Object.assign(new EventEmitter(), {
      out: [] as string[],
      ended: false,
      writesAfterEnd: 0,
      destroyed: false,
      setEncoding: () => undefined,
      write(s: string) {
        if (sock.ended) sock.writesAfterEnd++;
        sock.out.push(s);
        return true;
      },
      end() {
        sock.ended = true;
      },
    });
    const logs = createLogs({ destination: { write: () => undefined }, isTty: false });
    const api = new ControlApi({
      daemon: () => undefined,
      counters: () => undefined,
      config: () => {
        throw new Error('not used');
      },
      logs,
      clock: { now: () => 0 },
      reload: () => Promise.reject(new Error('not used')),
      version: '1.2.3',
    });
    const server = new ControlServer({ path: '/nonexistent', api, logs });
    (server as unknown as { serve(s: unknown): void }).serve(sock);
    sock.emit('data', '{"cmd":"version"}\n');
    for (let i = 0; i < 4; i++) sock.emit('data', 'a'.repeat(MAX_LINE / 2));
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    expect(sock.out.map((l) => JSON.parse(l))).toEqual([
      { ok: true, result: { version: '1.2.3', node: process.version } },
      { ok: false, code: 'bad-request', error: `request longer than ${MAX_LINE} bytes` },
    ]);
    expect(sock.ended).toBe(true);
    expect(sock.writesAfterEnd).toBe(0);
  });
});
