// CREATE_CHILD_SA: CHILD_SA and IKE_SA rekeying, both roles, collisions (RFC 7296 §2.8.1), rekey
// versus delete, lifetimes and keepalives. Two engines back to back in memory with real
// MemoryInstallers; the make-before-break invariant is checked after every single step: every
// outbound SA one side has installed has its inbound twin installed on the other side.
import { describe, expect, it } from 'vitest';
import { MemoryInstaller } from '../../../src/esp/memory-installer.js';
import { parseProposals } from '../../../src/ike/sa/proposal-syntax.js';
import { childConfig, connection, EnginePair, engineConfig } from '../../helpers/engine-pair.js';

const A = '198.51.100.2';
const B = '198.51.100.1';

function sas(inst: MemoryInstaller) {
  return inst.snapshot().sas.map((s) => s.spec);
}

async function established(
  seed = 1,
  opts: { esp?: string[]; childRekey?: number; ikeRekey?: number; nat?: boolean } = {},
) {
  const esp = parseProposals(opts.esp ?? ['aes128gcm16'], 'esp');
  const a = connection({
    name: 'onprem',
    localAddrs: [A],
    remoteAddrs: [B],
    rekeyTime: opts.ikeRekey ?? 0,
    children: [
      childConfig({
        name: 'cluster',
        localTs: ['10.10.0.0/16'],
        remoteTs: ['192.168.100.0/24'],
        espProposals: esp,
        rekeyTime: opts.childRekey ?? 0,
        lifeTime: 0,
      }),
    ],
  });
  const b = connection({
    name: 'cluster',
    localAddrs: [B],
    remoteAddrs: ['%any'],
    rekeyTime: opts.ikeRekey ?? 0,
    children: [
      childConfig({
        name: 'net',
        localTs: ['192.168.100.0/24'],
        remoteTs: ['10.10.0.0/16'],
        espProposals: esp,
        rekeyTime: opts.childRekey ?? 0,
        lifeTime: 0,
      }),
    ],
  });
  b.psk = a.psk;
  const ia = new MemoryInstaller();
  const ib = new MemoryInstaller();
  const p = new EnginePair(engineConfig([a]), engineConfig([b]), { a: A, b: B }, { a: ia, b: ib }, seed);
  if (opts.nat) p.nat = { address: '203.0.113.7', portMap: new Map() };
  p.feed(p.a, { kind: 'command', cmd: { cmd: 'initiate', conn: 'onprem' } });
  await p.settle();
  // Make-before-break: nobody ever sends on an SA the other side cannot receive on.
  p.invariant = () => {
    for (const [x, y] of [
      [ia, ib],
      [ib, ia],
    ] as const) {
      const inbound = new Set(
        sas(y)
          .filter((s) => s.inbound)
          .map((s) => s.spi),
      );
      for (const o of sas(x).filter((s) => !s.inbound))
        expect(inbound.has(o.spi), `outbound SPI ${o.spi.toString(16)} has no inbound twin`).toBe(true);
    }
    // and there is always an outbound SA on each side while the CHILD_SA exists
    if (p.a.engine.list()[0]?.children.length && p.b.engine.list()[0]?.children.length) {
      expect(sas(ia).some((s) => !s.inbound)).toBe(true);
      expect(sas(ib).some((s) => !s.inbound)).toBe(true);
    }
  };
  return { p, ia, ib };
}

/** Let lingering inbound SAs expire (engine timers). */
async function drainTimers(p: EnginePair, untilMs: number) {
  const end = p.clock.now() + untilMs;
  for (;;) {
    const next = [...p.a.timers.values(), ...p.b.timers.values()]
      .filter((t) => t.atMs <= end)
      .sort((x, y) => x.atMs - y.atMs)[0];
    if (!next) break;
    await p.fireNextTimer();
  }
}

function expectOneChildPair(p: EnginePair, ia: MemoryInstaller, ib: MemoryInstaller) {
  const ca = p.a.engine.list()[0]!.children;
  const cb = p.b.engine.list()[0]!.children;
  expect(ca).toHaveLength(1);
  expect(cb).toHaveLength(1);
  expect(ca[0]!.state).toBe('INSTALLED');
  expect(cb[0]!.state).toBe('INSTALLED');
  expect(ca[0]!.spiIn).toBe(cb[0]!.spiOut);
  expect(ca[0]!.spiOut).toBe(cb[0]!.spiIn);
  // exactly the two SAs of that one CHILD_SA remain in each data path
  expect(
    sas(ia)
      .map((s) => s.spi)
      .sort(),
  ).toEqual([ca[0]!.spiIn, ca[0]!.spiOut].sort());
  expect(
    sas(ib)
      .map((s) => s.spi)
      .sort(),
  ).toEqual([cb[0]!.spiIn, cb[0]!.spiOut].sort());
  // policies: one set (out/in/fwd) per selector pair, not leaked across rekeys
  expect(ia.snapshot().policies.length).toBe(3);
  expect(ib.snapshot().policies.length).toBe(3);
}

describe('CHILD_SA rekey', () => {
  it.each(['a', 'b'] as const)('rekeyed by %s: make-before-break, new SPIs, old SAs gone', async (who) => {
    const { p, ia, ib } = await established();
    const before = p.a.engine.list()[0]!.children[0]!;
    /* --> CREATE_CHILD_SA { N(REKEY_SA), SA, Ni, TSi, TSr }   <-- { SA, Nr, TSi, TSr } */
    /* --> INFORMATIONAL { D(old) }                              <-- { D(old) } */
    p.feed(who === 'a' ? p.a : p.b, {
      kind: 'command',
      cmd: { cmd: 'rekey', conn: who === 'a' ? 'onprem' : 'cluster' },
    });
    await p.settle();
    await drainTimers(p, 5_000);
    const after = p.a.engine.list()[0]!.children[0]!;
    expect(after.spiIn).not.toBe(before.spiIn);
    expect(after.spiOut).not.toBe(before.spiOut);
    expectOneChildPair(p, ia, ib);
    const initiator = who === 'a' ? p.a : p.b;
    const ex = p
      .of(initiator, 'message')
      .filter((m) => m.dir === 'out' && !m.response)
      .map((m) => m.exchange);
    expect(ex.slice(-2)).toEqual(['CREATE_CHILD_SA', 'INFORMATIONAL']);
  });

  it('with PFS: KE in CREATE_CHILD_SA', async () => {
    const { p, ia, ib } = await established(1, { esp: ['aes128gcm16-ecp256'] });
    p.feed(p.a, { kind: 'command', cmd: { cmd: 'rekey', conn: 'onprem' } });
    await p.settle();
    await drainTimers(p, 5_000);
    const rekeyReq = p.of(p.a, 'message').find((m) => m.exchange === 'CREATE_CHILD_SA' && m.dir === 'out');
    expect(rekeyReq?.summary).toMatch(/KE/);
    expectOneChildPair(p, ia, ib);
  });

  it('both ends rekey at once: exactly one CHILD_SA survives, for every nonce order', async () => {
    const outcomes = new Set<string>();
    for (let seed = 1; seed <= 12; seed++) {
      const { p, ia, ib } = await established(seed);
      /* --> CREATE_CHILD_SA (A rekeys)  and  <-- CREATE_CHILD_SA (B rekeys), crossing */
      p.feed(p.a, { kind: 'command', cmd: { cmd: 'rekey', conn: 'onprem' } });
      p.feed(p.b, { kind: 'command', cmd: { cmd: 'rekey', conn: 'cluster' } });
      await p.settle();
      await drainTimers(p, 5_000);
      expectOneChildPair(p, ia, ib);
      const col = [...p.a.events, ...p.b.events].filter(
        (e) => e.ev === 'log' && e.fields?.collision === 'child-rekey',
      );
      expect(col).toHaveLength(2); // both ends saw the collision and agreed
      outcomes.add(String((col[0] as { msg: string }).msg.includes('our new')));
    }
    expect(outcomes.size).toBe(2); // both outcomes of the nonce comparison were exercised
  });

  it('rekey collides with the peer deleting the CHILD_SA: nothing is left over', async () => {
    const { p, ia, ib } = await established();
    p.feed(p.a, { kind: 'command', cmd: { cmd: 'rekey', conn: 'onprem' } });
    // B deletes the CHILD_SA at the same moment (e.g. its hard lifetime)
    const child = p.b.engine.list()[0]!.children[0]!;
    p.feed(p.b, { kind: 'kernel', ev: { kind: 'expire', spi: child.spiIn, dst: B, hard: true } });
    await p.settle();
    await drainTimers(p, 5_000);
    expect(p.a.engine.list()[0]!.children).toEqual([]);
    expect(p.b.engine.list()[0]!.children).toEqual([]);
    expect(sas(ia)).toEqual([]);
    expect(sas(ib)).toEqual([]);
  });

  it('a lost rekey response is retransmitted and answered from the cache', async () => {
    const { p, ia, ib } = await established();
    let dropped = 0;
    p.drop = ({ from, bytes }) => from === 'b' && bytes[18] === 36 && dropped++ === 0;
    p.feed(p.a, { kind: 'command', cmd: { cmd: 'rekey', conn: 'onprem' } });
    await p.settle();
    await p.fireNextTimer(); // retransmit
    await drainTimers(p, 5_000);
    expectOneChildPair(p, ia, ib);
  });

  it('rekey_time drives periodic rekeys from both ends; state stays bounded', async () => {
    const { p, ia, ib } = await established(3, { childRekey: 60, ikeRekey: 300 });
    const t0 = p.clock.now();
    while (p.clock.now() - t0 < 20 * 60_000) if (!(await p.fireNextTimer())) break;
    const rekeys = [...p.a.events, ...p.b.events].filter(
      (e) => e.ev === 'child-state' && e.state === 'REKEYING',
    ).length;
    expect(rekeys).toBeGreaterThan(15);
    await drainTimers(p, 5_000);
    expect(p.a.engine.list()).toHaveLength(1);
    expect(p.b.engine.list()).toHaveLength(1);
    expectOneChildPair(p, ia, ib);
  });
});

describe('IKE_SA rekey', () => {
  it.each(['a', 'b'] as const)(
    'rekeyed by %s: new SPIs, CHILD_SAs move over, old IKE_SA deleted',
    async (who) => {
      const { p, ia, ib } = await established();
      const old = p.a.engine.list()[0]!;
      /* --> CREATE_CHILD_SA { SA(spi), Ni, KEi }   <-- { SA(spi), Nr, KEr } ;  --> INFORMATIONAL { D(IKE) } on the old SA */
      p.feed(who === 'a' ? p.a : p.b, {
        kind: 'command',
        cmd: { cmd: 'rekey', conn: who === 'a' ? 'onprem' : 'cluster', ike: true },
      });
      await p.settle();
      const [na] = p.a.engine.list();
      const [nb] = p.b.engine.list();
      expect(p.a.engine.list()).toHaveLength(1);
      expect(p.b.engine.list()).toHaveLength(1);
      expect(na!.spiI).not.toBe(old.spiI);
      expect(na!.spiI).toBe(nb!.spiI);
      expect(na!.spiR).toBe(nb!.spiR);
      expect(na!.initiator).toBe(who === 'a');
      expect(na!.children[0]!.spiIn).toBe(old.children[0]!.spiIn); // CHILD_SAs unchanged, just moved
      expectOneChildPair(p, ia, ib);
      // the new IKE_SA works: rekey a CHILD_SA on it
      p.feed(p.a, { kind: 'command', cmd: { cmd: 'rekey', conn: 'onprem' } });
      await p.settle();
      await drainTimers(p, 5_000);
      expectOneChildPair(p, ia, ib);
    },
  );

  it('both ends rekey the IKE_SA at once: one IKE_SA survives on both sides, for every nonce order', async () => {
    const outcomes = new Set<string>();
    for (let seed = 1; seed <= 12; seed++) {
      const { p, ia, ib } = await established(seed);
      p.feed(p.a, { kind: 'command', cmd: { cmd: 'rekey', conn: 'onprem', ike: true } });
      p.feed(p.b, { kind: 'command', cmd: { cmd: 'rekey', conn: 'cluster', ike: true } });
      await p.settle();
      await drainTimers(p, 5_000);
      const la = p.a.engine.list();
      const lb = p.b.engine.list();
      expect(la, `seed ${seed}`).toHaveLength(1);
      expect(lb, `seed ${seed}`).toHaveLength(1);
      expect(la[0]!.spiI).toBe(lb[0]!.spiI);
      expect(la[0]!.state).toBe('ESTABLISHED');
      expectOneChildPair(p, ia, ib);
      const col = [...p.a.events, ...p.b.events].filter(
        (e) => e.ev === 'log' && e.fields?.collision === 'ike-rekey',
      );
      expect(col.length).toBe(2);
      outcomes.add(String((col[0] as { msg: string }).msg.includes('our new')));
    }
    expect(outcomes.size).toBe(2);
  });
});

describe('more collisions (cases from strongSwan test_child_rekey.c / test_ike_rekey.c)', () => {
  it('IKE rekey by one end while the other rekeys the CHILD_SA: TEMPORARY_FAILURE, both retried, one of each left', async () => {
    for (let seed = 1; seed <= 6; seed++) {
      const { p, ia, ib } = await established(seed);
      p.feed(p.a, { kind: 'command', cmd: { cmd: 'rekey', conn: 'onprem', ike: true } });
      p.feed(p.b, { kind: 'command', cmd: { cmd: 'rekey', conn: 'cluster' } });
      await p.settle();
      for (let i = 0; i < 10; i++) await p.fireNextTimer(); // retries after TEMPORARY_FAILURE, lingers
      await drainTimers(p, 10_000);
      expect(p.a.engine.list()).toHaveLength(1);
      expect(p.b.engine.list()).toHaveLength(1);
      expect(p.a.engine.list()[0]!.spiI).toBe(p.b.engine.list()[0]!.spiI);
      expectOneChildPair(p, ia, ib);
    }
  });

  it('both ends rekey at once and a CREATE_CHILD_SA response is lost: still exactly one CHILD_SA', async () => {
    for (let seed = 1; seed <= 8; seed++) {
      const { p, ia, ib } = await established(seed);
      let dropped = 0;
      p.drop = ({ from, bytes }) =>
        from === 'b' && bytes[18] === 36 && (bytes[19]! & 0x20) !== 0 && dropped++ === 0;
      p.feed(p.a, { kind: 'command', cmd: { cmd: 'rekey', conn: 'onprem' } });
      p.feed(p.b, { kind: 'command', cmd: { cmd: 'rekey', conn: 'cluster' } });
      await p.settle();
      for (let i = 0; i < 10; i++) await p.fireNextTimer();
      await drainTimers(p, 10_000);
      expect(dropped, `seed ${seed}`).toBeGreaterThanOrEqual(1); // the first one was dropped
      expectOneChildPair(p, ia, ib);
    }
  });

  it.each(['a', 'b'])(
    'both ends rekey the IKE_SA at once and the response from %s is lost: one IKE_SA survives',
    async (lose) => {
      for (let seed = 1; seed <= 8; seed++) {
        const { p, ia, ib } = await established(seed);
        let seen = 0;
        p.drop = ({ from, bytes }) =>
          from === lose && bytes[18] === 36 && (bytes[19]! & 0x20) !== 0 && seen++ === 0;
        p.feed(p.a, { kind: 'command', cmd: { cmd: 'rekey', conn: 'onprem', ike: true } });
        p.feed(p.b, { kind: 'command', cmd: { cmd: 'rekey', conn: 'cluster', ike: true } });
        await p.settle();
        for (let i = 0; i < 10; i++) await p.fireNextTimer();
        await drainTimers(p, 10_000);
        const la = p.a.engine.list();
        const lb = p.b.engine.list();
        expect(
          la.map((x) => x.state),
          `seed ${seed}`,
        ).toEqual(['ESTABLISHED']);
        expect(
          lb.map((x) => x.state),
          `seed ${seed}`,
        ).toEqual(['ESTABLISHED']);
        expect(la[0]!.spiI).toBe(lb[0]!.spiI);
        expectOneChildPair(p, ia, ib);
      }
    },
  );

  it('both ends delete the same CHILD_SA at once (crossing DELETEs): nothing left, no error', async () => {
    const { p, ia, ib } = await established();
    p.invariant = undefined; // a deletion, not a rekey: in-flight packets may be dropped
    const ca = p.a.engine.list()[0]!.children[0]!;
    const cb = p.b.engine.list()[0]!.children[0]!;
    p.feed(p.a, { kind: 'kernel', ev: { kind: 'expire', spi: ca.spiIn, dst: A, hard: true } });
    p.feed(p.b, { kind: 'kernel', ev: { kind: 'expire', spi: cb.spiIn, dst: B, hard: true } });
    await p.settle();
    await drainTimers(p, 5_000);
    expect(p.a.engine.list()[0]!.children).toEqual([]);
    expect(p.b.engine.list()[0]!.children).toEqual([]);
    expect(sas(ia)).toEqual([]);
    expect(sas(ib)).toEqual([]);
    expect([...p.a.events, ...p.b.events].filter((e) => e.ev === 'log' && e.level === 'error')).toEqual([]);
  });

  it('the IKE_SA is deleted while a CHILD_SA rekey is in flight: everything goes, nothing leaks', async () => {
    const { p, ia, ib } = await established();
    p.invariant = undefined;
    p.feed(p.a, { kind: 'command', cmd: { cmd: 'rekey', conn: 'onprem' } });
    p.feed(p.b, { kind: 'command', cmd: { cmd: 'terminate', conn: 'cluster' } });
    await p.settle();
    await drainTimers(p, 5_000);
    expect(p.a.engine.list()).toEqual([]);
    expect(p.b.engine.list()).toEqual([]);
    expect(sas(ia)).toEqual([]);
    expect(sas(ib)).toEqual([]);
  });
});

describe('liveness', () => {
  it('sends NAT keepalives every 20 s when behind a NAT, none otherwise', async () => {
    const { p } = await established(1, { nat: true });
    const t0 = p.clock.now();
    while (p.clock.now() - t0 < 100_000) if (!(await p.fireNextTimer())) break;
    expect(p.keepalives.filter((k) => k.from === 'a').length).toBeGreaterThanOrEqual(4);
    expect(p.keepalives.filter((k) => k.from === 'b')).toHaveLength(0);
  });
});

describe('several CHILD_SAs', () => {
  it('start_action=start children beyond the first follow with CREATE_CHILD_SA', async () => {
    const a = connection({
      name: 'onprem',
      localAddrs: [A],
      remoteAddrs: [B],
      children: [
        childConfig({
          name: 'pods',
          localTs: ['10.10.0.0/16'],
          remoteTs: ['192.168.100.0/24'],
          startAction: 'start',
          reqid: 1,
        }),
        childConfig({
          name: 'services',
          localTs: ['10.96.0.0/12'],
          remoteTs: ['192.168.100.0/24'],
          startAction: 'start',
          reqid: 2,
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
    const p = new EnginePair(
      engineConfig([a]),
      engineConfig([b]),
      { a: A, b: B },
      { a: new MemoryInstaller(), b: new MemoryInstaller() },
    );
    p.feed(p.a, { kind: 'start' });
    await p.settle();
    const kids = p.a.engine.list()[0]!.children;
    expect(kids.map((c) => `${c.name}:${c.state}:${c.localTs.join(',')}`)).toEqual([
      'pods:INSTALLED:10.10.0.0/16',
      'services:INSTALLED:10.96.0.0/12',
    ]);
    expect(p.b.engine.list()[0]!.children).toHaveLength(2);
  });
});
