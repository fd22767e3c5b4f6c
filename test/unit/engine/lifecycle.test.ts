// Liveness and resilience in memory: COOKIE challenges and per-address half-open limits under a
// spoofed flood, restart with backoff, dpd_timeout, and a NAT that rebinds the peer's port.
import { describe, expect, it } from 'vitest';
import { SeededRandom } from '../../../src/common/random.js';
import { MemoryInstaller } from '../../../src/esp/memory-installer.js';
import { IkeEngine } from '../../../src/ike/engine.js';
import { childConfig, connection, EnginePair, engineConfig } from '../../helpers/engine-pair.js';

const A = '198.51.100.2';
const B = '198.51.100.1';

function pair(
  over: { start?: boolean; dpd?: number; dpdTimeout?: number; cookieThreshold?: number; nat?: boolean } = {},
) {
  const a = connection({
    name: 'onprem',
    localAddrs: [A],
    remoteAddrs: [B],
    dpdDelay: over.dpd ?? 0,
    dpdTimeout: over.dpdTimeout ?? 0,
    children: [
      childConfig({
        name: 'cluster',
        localTs: ['10.10.0.0/16'],
        remoteTs: ['192.168.100.0/24'],
        startAction: over.start ? 'start' : 'none',
      }),
    ],
  });
  const b = connection({
    name: 'any',
    localAddrs: [B],
    remoteAddrs: ['%any'],
    children: [childConfig({ name: 'net', localTs: ['192.168.100.0/24'], remoteTs: ['10.0.0.0/8'] })],
  });
  b.psk = a.psk;
  const cb = engineConfig([b]);
  cb.cookieThreshold = over.cookieThreshold ?? -1;
  cb.halfOpenPerIp = 5;
  const p = new EnginePair(
    engineConfig([a]),
    cb,
    { a: A, b: B },
    { a: new MemoryInstaller(), b: new MemoryInstaller() },
  );
  if (over.nat) p.nat = { address: '203.0.113.7', portMap: new Map() };
  return p;
}

/** A spoofed IKE_SA_INIT from `addr`, built by a throwaway initiator engine. */
function spoofedInit(seed: number, addr: string): Uint8Array {
  const c = connection({
    name: 'x',
    localAddrs: [addr],
    remoteAddrs: [B],
    children: [childConfig({ localTs: ['10.1.0.0/16'], remoteTs: ['192.168.100.0/24'] })],
  });
  const e = new IkeEngine(engineConfig([c]), { random: new SeededRandom(seed) });
  const out = e.handle({ kind: 'command', cmd: { cmd: 'initiate', conn: 'x' } }, 0);
  const send = out.find((x) => x.kind === 'send');
  if (send?.kind !== 'send') throw new Error('no IKE_SA_INIT');
  return send.bytes;
}

describe('DoS protection (RFC 7296 §2.6)', () => {
  it('a spoofed flood triggers COOKIEs, half-open state stays bounded, the real peer still connects', async () => {
    const p = pair({ cookieThreshold: 10 });
    // 300 spoofed IKE_SA_INITs from 100 addresses (3 each), none ever answers.
    for (let i = 0; i < 300; i++) {
      const addr = `10.66.${Math.floor(i / 3) >> 8}.${Math.floor(i / 3) & 255}`;
      p.feed(p.b, {
        kind: 'datagram',
        local: { address: B, port: 500 },
        remote: { address: addr, port: 500 },
        bytes: spoofedInit(i, addr),
      });
    }
    p.wire.length = 0;
    expect(p.b.engine.list().length).toBe(10); // only up to the threshold got state (and a DH)
    expect(p.of(p.b, 'cookie').length).toBe(290);
    /* --> IKE_SA_INIT ; <-- N(COOKIE) ; --> N(COOKIE), IKE_SA_INIT ; <-- IKE_SA_INIT ; IKE_AUTH ... */
    p.feed(p.a, { kind: 'command', cmd: { cmd: 'initiate', conn: 'onprem' } });
    await p.settle();
    const mine = p.a.engine.list()[0]!;
    expect(mine.state).toBe('ESTABLISHED');
    expect(mine.children[0]?.state).toBe('INSTALLED');
    // the half-open SAs of the flood expire after half_open_timeout
    while (await p.fireNextTimer()) if (p.clock.now() > 60_000) break;
    expect(p.b.engine.list().map((s) => s.state)).toEqual(['ESTABLISHED']);
  });

  it('cookie_threshold_ip: a busy address must return COOKIEs before it is refused; the real peer behind it connects', async () => {
    const p = pair({ cookieThreshold: 10 });
    p.b.engine.cfg.cookieThresholdIp = 3;
    // 20 spoofed IKE_SA_INITs from the peer's own address, none ever answers
    for (let i = 0; i < 20; i++)
      p.feed(p.b, {
        kind: 'datagram',
        local: { address: B, port: 500 },
        remote: { address: A, port: 500 },
        // seeds apart from the pair's own (seed 1 would be A's real IKE_SA_INIT, byte for byte)
        bytes: spoofedInit(100 + i, A),
      });
    p.wire.length = 0;
    expect(p.b.engine.list().length).toBe(3);
    expect(p.of(p.b, 'cookie')).toHaveLength(17);
    expect(p.of(p.b, 'dropped').filter((d) => d.reason === 'half-open-limit')).toHaveLength(0);
    // the peer itself (same address) follows the COOKIE and gets its IKE_SA
    p.feed(p.a, { kind: 'command', cmd: { cmd: 'initiate', conn: 'onprem' } });
    await p.settle();
    expect(p.a.engine.list()[0]?.state).toBe('ESTABLISHED');
    expect(p.of(p.b, 'cookie')).toHaveLength(18);
  });

  it('limits half-open IKE_SAs per address', () => {
    const p = pair();
    for (let i = 0; i < 20; i++)
      p.feed(p.b, {
        kind: 'datagram',
        local: { address: B, port: 500 },
        remote: { address: '10.66.0.1', port: 500 },
        bytes: spoofedInit(i, '10.66.0.1'),
      });
    expect(p.b.engine.list().length).toBe(5);
    expect(p.of(p.b, 'dropped').filter((d) => d.reason === 'half-open-limit')).toHaveLength(15);
  });
});

describe('restart and liveness', () => {
  it('start_action=start retries with backoff until the peer answers', async () => {
    const p = pair({ start: true });
    let blocked = true;
    p.drop = () => blocked;
    p.feed(p.a, { kind: 'start' });
    await p.settle();
    // first attempt times out after the retransmit schedule (~165 s); then 0 s, 1 s, 2 s... backoff
    while (p.clock.now() < 400_000) if (!(await p.fireNextTimer())) break;
    const attempts = p.of(p.a, 'ike-state').filter((e) => e.state === 'CONNECTING').length;
    expect(attempts).toBe(3);
    blocked = false;
    for (let i = 0; i < 50 && p.a.engine.list()[0]?.state !== 'ESTABLISHED'; i++) await p.fireNextTimer();
    expect(p.a.engine.list()[0]?.children[0]?.state).toBe('INSTALLED');
  });

  it('dpd_timeout: a dead peer is noticed within dpd_delay + dpd_timeout and the tunnel comes back', async () => {
    const p = pair({ start: true, dpd: 10, dpdTimeout: 15 });
    p.feed(p.a, { kind: 'start' });
    await p.settle();
    const t0 = p.clock.now();
    // the peer "restarts": it forgets everything and drops what it cannot match
    (p as unknown as { b: { engine: IkeEngine } }).b.engine = new IkeEngine(p.b.engine.cfg, {
      random: new SeededRandom(99),
    });
    let noticed = 0;
    for (let i = 0; i < 200 && !noticed; i++) {
      if (!(await p.fireNextTimer())) break;
      if (p.of(p.a, 'failure').some((f) => f.reason === 'TIMEOUT')) noticed = p.clock.now() - t0;
    }
    expect(noticed).toBeLessThanOrEqual(10_000 + 15_000 + 1_000);
    // dpd_action=restart: re-established at once (the restart timer is due immediately)
    const t1 = p.clock.now();
    for (let i = 0; i < 20 && p.a.engine.list()[0]?.state !== 'ESTABLISHED'; i++) await p.fireNextTimer();
    expect(p.clock.now() - t1).toBeLessThan(1_000);
    expect(p.a.engine.list().map((s) => s.state)).toEqual(['ESTABLISHED']);
    expect(p.b.engine.list().map((s) => s.state)).toEqual(['ESTABLISHED']);
  });

  it('INITIAL_CONTACT (RFC 7296 §2.4): a restarted peer replaces its old IKE_SA; another identity keeps its own', async () => {
    const p = pair();
    const fqdn = (name: string) => ({ type: 2, data: new TextEncoder().encode(name) });
    const base = p.a.engine.cfg.connections[0]!;
    const x = { ...base, name: 'x', localId: fqdn('x.example') };
    const y = { ...base, name: 'y', localId: fqdn('y.example') };
    p.a.engine.cfg.connections = [x, y];
    for (const conn of ['x', 'y']) {
      p.feed(p.a, { kind: 'command', cmd: { cmd: 'initiate', conn } });
      await p.settle();
    }
    const before = p.b.engine.list();
    expect(before.map((s) => [s.remoteId, s.state])).toEqual([
      ['x.example', 'ESTABLISHED'],
      ['y.example', 'ESTABLISHED'],
    ]);
    // A restarts: it forgets everything; its first IKE_SA for x carries INITIAL_CONTACT
    (p as unknown as { a: { engine: IkeEngine } }).a.engine = new IkeEngine(p.a.engine.cfg, {
      random: new SeededRandom(7),
    });
    p.feed(p.a, { kind: 'command', cmd: { cmd: 'initiate', conn: 'x' } });
    await p.settle();
    const after = p.b.engine.list();
    const oldX = before.find((s) => s.remoteId === 'x.example')!;
    const oldY = before.find((s) => s.remoteId === 'y.example')!;
    expect(after.some((s) => s.uid === oldX.uid)).toBe(false);
    expect(after.find((s) => s.uid === oldY.uid)?.state).toBe('ESTABLISHED');
    expect(after.filter((s) => s.remoteId === 'x.example').map((s) => s.state)).toEqual(['ESTABLISHED']);
    expect(
      p
        .of(p.b, 'ike-state')
        .some((e) => e.state === 'DESTROYED' && e.detail === 'replaced after INITIAL_CONTACT'),
    ).toBe(true);
  });

  it('unique: never (initialContact false): a received INITIAL_CONTACT deletes nothing (one identity, many IKE_SAs)', async () => {
    const p = pair();
    p.b.engine.cfg.connections[0]!.initialContact = false;
    p.feed(p.a, { kind: 'command', cmd: { cmd: 'initiate', conn: 'onprem' } });
    await p.settle();
    // a second client with the same identity (A restarted, as the load-tester's many IKE_SAs look)
    (p as unknown as { a: { engine: IkeEngine } }).a.engine = new IkeEngine(p.a.engine.cfg, {
      random: new SeededRandom(8),
    });
    p.feed(p.a, { kind: 'command', cmd: { cmd: 'initiate', conn: 'onprem' } });
    await p.settle();
    expect(p.b.engine.list().map((s) => s.state)).toEqual(['ESTABLISHED', 'ESTABLISHED']);
    expect(p.of(p.b, 'ike-state').some((e) => e.detail === 'replaced after INITIAL_CONTACT')).toBe(false);
  });

  it('follows a NAT rebinding of the peer: IKE and ESP-in-UDP move to the new port', async () => {
    const p = pair({ nat: true, dpd: 10 });
    p.feed(p.a, { kind: 'command', cmd: { cmd: 'initiate', conn: 'onprem' } });
    await p.settle();
    const before = p.b.engine.list()[0]!.remote.port;
    p.nat!.portMap.set(4500, 41_000); // the NAT forgets the mapping and picks a new port
    await p.fireNextTimer(); // DPD from A through the new mapping
    const after = p.b.engine.list()[0]!;
    expect(before).not.toBe(41_000);
    expect(after.remote.port).toBe(41_000);
    const out = (p.b.installer as MemoryInstaller).snapshot().sas.filter((s) => !s.spec.inbound);
    expect(out.map((s) => s.spec.encap?.dport)).toEqual([41_000]);
  });
});

describe('IKE fragmentation (RFC 7383)', () => {
  it('fragments large messages both ways when negotiated and reassembles them, also after a lost fragment', async () => {
    const p = pair();
    for (const side of [p.a, p.b]) side.engine.cfg.connections[0]!.fragmentSize = 220;
    let droppedOne = false;
    // lose the second fragment of B's IKE_AUTH response once: A retransmits, B resends all fragments
    p.drop = ({ from, bytes }) => {
      const skf = bytes[16] === 53 && bytes[18] === 35 && from === 'b';
      const second = skf && bytes[32] === 0 && bytes[33] === 2;
      if (second && !droppedOne) {
        droppedOne = true;
        return true;
      }
      return false;
    };
    p.feed(p.a, { kind: 'command', cmd: { cmd: 'initiate', conn: 'onprem' } });
    await p.settle();
    if (p.a.engine.list()[0]?.state !== 'ESTABLISHED') await p.fireNextTimer();
    expect(droppedOne).toBe(true);
    expect(p.a.engine.list()[0]?.state).toBe('ESTABLISHED');
    expect(p.a.engine.list()[0]?.children[0]?.state).toBe('INSTALLED');
    const skfFromA = p.sent.filter((s) => s.from === 'a' && s.bytes[16] === 53);
    expect(skfFromA.length).toBeGreaterThanOrEqual(2);
    // every protected datagram fits the fragment size (IKE_SA_INIT is never fragmented)
    expect(
      Math.max(...p.sent.filter((s) => s.bytes[18] !== 34).map((s) => s.bytes.length)),
    ).toBeLessThanOrEqual(220 - 28);
  });

  it('does not fragment when the peer did not announce support', async () => {
    const p = pair();
    p.a.engine.cfg.connections[0]!.fragmentSize = 300;
    p.b.engine.cfg.connections[0]!.fragmentation = false;
    p.feed(p.a, { kind: 'command', cmd: { cmd: 'initiate', conn: 'onprem' } });
    await p.settle();
    expect(p.a.engine.list()[0]?.state).toBe('ESTABLISHED');
    expect(p.sent.some((s) => s.bytes[16] === 53)).toBe(false);
  });
});

describe('dpd_action', () => {
  it('clear: a dead peer is not re-initiated even with start_action=start', async () => {
    const p = pair({ start: true, dpd: 10, dpdTimeout: 15 });
    p.a.engine.cfg.connections[0]!.dpdAction = 'clear';
    p.feed(p.a, { kind: 'start' });
    await p.settle();
    (p as unknown as { b: { engine: IkeEngine } }).b.engine = new IkeEngine(p.b.engine.cfg, {
      random: new SeededRandom(98),
    });
    for (let i = 0; i < 60 && !p.of(p.a, 'dpd').some((d) => d.result === 'failed'); i++)
      if (!(await p.fireNextTimer())) break;
    expect(p.of(p.a, 'dpd').some((d) => d.result === 'failed')).toBe(true);
    for (let i = 0; i < 5; i++) await p.fireNextTimer();
    expect(p.a.engine.list()).toEqual([]);
    expect(p.of(p.a, 'ike-state').filter((e) => e.state === 'CONNECTING')).toHaveLength(1);
  });
});
