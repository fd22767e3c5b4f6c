// A peer's make-before-break reauthentication (strongSwan's make_before_break: a new IKE_SA with
// its CHILD_SA for the same traffic, then DELETE of the old IKE_SA), with ikegw (B) as the
// responder: B holds the new CHILD_SA's outbound SA back until the old one goes, because the peer
// installs the new CHILD_SA only when B's IKE_AUTH response arrives (a packet B sent on it earlier
// was dropped there — seen against strongSwan 5.9.8 in test/interop/cert-rotation.test.ts).
import { describe, expect, it } from 'vitest';
import { MemoryInstaller } from '../../../src/esp/memory-installer.js';
import { REAUTH_OUTBOUND_TIMEOUT_MS } from '../../../src/ike/task/ike-auth.js';
import { childConfig, connection, EnginePair, engineConfig } from '../../helpers/engine-pair.js';

const A = '198.51.100.2';
const B = '198.51.100.1';

/** A has two identical connections: initiating the second while the first is up is what a reauthentication looks like to B. */
function pair() {
  const mk = (name: string) =>
    connection({
      name,
      localAddrs: [A],
      remoteAddrs: [B],
      initialContact: false,
      children: [childConfig({ name: 'net', localTs: ['10.10.0.0/16'], remoteTs: ['192.168.100.0/24'] })],
    });
  const b = connection({
    name: 'any',
    localAddrs: [B],
    remoteAddrs: ['%any'],
    children: [childConfig({ name: 'net', localTs: ['192.168.100.0/24'], remoteTs: ['10.10.0.0/16'] })],
  });
  const x = mk('old');
  const y = mk('new');
  b.psk = x.psk;
  y.psk = x.psk;
  const bInstaller = new MemoryInstaller();
  const p = new EnginePair(
    engineConfig([x, y]),
    engineConfig([b]),
    { a: A, b: B },
    { a: new MemoryInstaller(), b: bInstaller },
  );
  /** Whether B has its outbound SA (towards A) with this SPI. */
  const outbound = (spi: number) =>
    bInstaller.querySa({ src: B, dst: A, spi, protocol: 'esp' }).then(
      () => true,
      () => false,
    );
  const children = () => p.b.engine.list().flatMap((s) => s.children.map((c) => ({ sa: s.uid, ...c })));
  return { p, outbound, children };
}

describe('make-before-break reauthentication by the peer, ikegw responding', () => {
  it('the new outbound SA waits for the DELETE of the old IKE_SA, then replaces it', async () => {
    const { p, outbound, children } = pair();
    p.feed(p.a, { kind: 'command', cmd: { cmd: 'initiate', conn: 'old' } });
    await p.settle();
    const [c1] = children();
    expect(c1?.state).toBe('INSTALLED');
    expect(await outbound(c1!.spiOut)).toBe(true);

    /* --> IKE_SA_INIT, IKE_AUTH { ..., SA, TSi, TSr } for the same traffic on a new IKE_SA */
    p.feed(p.a, { kind: 'command', cmd: { cmd: 'initiate', conn: 'new' } });
    await p.settle();
    const c2 = children().find((c) => c.uid !== c1!.uid)!;
    expect(c2.state).toBe('INSTALLED');
    expect(c2.sa).not.toBe(c1!.sa);
    // B answers and receives on the new CHILD_SA, but goes on sending on the old one
    expect(await outbound(c2.spiOut)).toBe(false);
    expect(await outbound(c1!.spiOut)).toBe(true);

    /* --> INFORMATIONAL { D(IKE) } for the old IKE_SA */
    p.feed(p.a, { kind: 'command', cmd: { cmd: 'terminate', conn: 'old' } });
    await p.settle();
    expect(children().map((c) => c.uid)).toEqual([c2.uid]);
    expect(await outbound(c2.spiOut)).toBe(true);
    expect(await outbound(c1!.spiOut)).toBe(false);
  });

  it('without a DELETE the new outbound SA is used after 2 s (a peer restarted without INITIAL_CONTACT)', async () => {
    const { p, outbound, children } = pair();
    p.feed(p.a, { kind: 'command', cmd: { cmd: 'initiate', conn: 'old' } });
    await p.settle();
    p.feed(p.a, { kind: 'command', cmd: { cmd: 'initiate', conn: 'new' } });
    await p.settle();
    const [c1, c2] = children();
    expect(await outbound(c2!.spiOut)).toBe(false);
    const t0 = p.clock.now();
    while (!(await outbound(c2!.spiOut))) {
      expect(await p.fireNextTimer()).toBe(true);
      expect(p.clock.now() - t0).toBeLessThanOrEqual(REAUTH_OUTBOUND_TIMEOUT_MS);
    }
    expect(p.clock.now() - t0).toBe(REAUTH_OUTBOUND_TIMEOUT_MS);
    expect(await outbound(c1!.spiOut)).toBe(true); // the old CHILD_SA stays until the peer deletes it
    expect(
      p.of(p.b, 'log').some((e) => /no DELETE for the CHILD_SA the reauthentication replaces/.test(e.msg)),
    ).toBe(true);
  });

  it('an IKE_AUTH whose traffic no other CHILD_SA carries installs its outbound SA at once', async () => {
    const { p, outbound, children } = pair();
    p.feed(p.a, { kind: 'command', cmd: { cmd: 'initiate', conn: 'old' } });
    await p.settle();
    p.feed(p.a, { kind: 'command', cmd: { cmd: 'terminate', conn: 'old' } });
    await p.settle();
    p.feed(p.a, { kind: 'command', cmd: { cmd: 'initiate', conn: 'new' } });
    await p.settle();
    const [c] = children();
    expect(await outbound(c!.spiOut)).toBe(true);
  });
});
