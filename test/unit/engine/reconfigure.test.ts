// Live reconfiguration (`ikegw reload`): connection by connection, as swanctl --load-conns does.
// Two engines back to back; A has two connections to B, whose one connection has a child for each.
import { describe, expect, it } from 'vitest';
import { MemoryInstaller } from '../../../src/esp/memory-installer.js';
import type { ConnectionConfig, EngineConfig } from '../../../src/ike/config.js';
import { carryReqids, diffConnections } from '../../../src/ike/reconfigure.js';
import { childConfig, connection, EnginePair, engineConfig } from '../../helpers/engine-pair.js';

const A = '198.51.100.2';
const B = '198.51.100.1';

function connA(
  name: string,
  remoteTs: string,
  over: Partial<ConnectionConfig> = {},
  reqid = 1,
): ConnectionConfig {
  return connection({
    name,
    localAddrs: [A],
    remoteAddrs: [B],
    rekeyTime: 0,
    // both connections come from one address and ID: INITIAL_CONTACT would make B drop the other
    initialContact: false,
    ...over,
    children: [
      childConfig({
        name: `${name}-net`,
        localTs: ['10.10.0.0/16'],
        remoteTs: [remoteTs],
        startAction: 'start',
        rekeyTime: 0,
        lifeTime: 0,
        reqid,
      }),
    ],
  });
}

function configA(conns: ConnectionConfig[]): EngineConfig {
  return engineConfig(conns);
}

async function setup() {
  const b = connection({
    name: 'cluster',
    localAddrs: [B],
    remoteAddrs: ['%any'],
    rekeyTime: 0,
    children: [
      childConfig({
        name: 'n1',
        localTs: ['192.168.1.0/24'],
        remoteTs: ['10.10.0.0/16'],
        reqid: 1,
        rekeyTime: 0,
        lifeTime: 0,
      }),
      childConfig({
        name: 'n2',
        localTs: ['192.168.2.0/24'],
        remoteTs: ['10.10.0.0/16'],
        reqid: 2,
        rekeyTime: 0,
        lifeTime: 0,
      }),
    ],
  });
  const one = connA('one', '192.168.1.0/24', {}, 1);
  const two = connA('two', '192.168.2.0/24', {}, 2);
  b.psk = one.psk;
  const p = new EnginePair(
    configA([one, two]),
    engineConfig([b]),
    { a: A, b: B },
    { a: new MemoryInstaller(), b: new MemoryInstaller() },
    3,
  );
  p.feed(p.a, { kind: 'start' } as never);
  await p.settle();
  return p;
}

const byConn = (p: EnginePair) => new Map(p.a.engine.list().map((s) => [s.conn, s]));

async function reload(p: EnginePair, conns: ConnectionConfig[]) {
  p.feed(p.a, { kind: 'command', cmd: { cmd: 'reconfigure', config: configA(conns) } });
  await p.settle();
}

describe('reload: connections compared one by one', () => {
  it('classifies changes (pure): added, removed, updated, re-established, unchanged', () => {
    const cur = configA([
      connA('one', '192.168.1.0/24'),
      connA('two', '192.168.2.0/24', {}, 2),
      connA('three', '192.168.3.0/24', {}, 3),
    ]);
    const next = configA([
      connA('one', '192.168.1.0/24', { dpdDelay: 10 }),
      connA('two', '192.168.22.0/24', {}, 2),
      connA('four', '192.168.4.0/24', {}, 3),
    ]);
    carryReqids(cur, next);
    expect(next.connections[2]!.children[0]!.reqid).toBe(4); // 3 stays three's until its SAs are gone
    expect(diffConnections(cur, next)).toEqual([
      { conn: 'one', action: 'updated', fields: ['dpd_delay'] },
      { conn: 'two', action: 're-established', fields: ['children.two-net.remote_ts'] },
      { conn: 'four', action: 'added' },
      { conn: 'three', action: 'removed' },
    ]);
    const psk = configA([
      connA('one', '192.168.1.0/24', { psk: new TextEncoder().encode('another-psk-0123456789') }),
    ]);
    expect(diffConnections(configA([connA('one', '192.168.1.0/24')]), psk)).toEqual([
      { conn: 'one', action: 're-established', fields: ['psk'] },
    ]);
    const one = () => connA('one', '192.168.1.0/24');
    expect(
      diffConnections(
        configA([one()]),
        configA([{ ...one(), remoteAuth: 'pubkey', remoteCaCerts: [new Uint8Array([1])] }]),
      ),
    ).toEqual([{ conn: 'one', action: 're-established', fields: ['remote.auth', 'remote.cacerts'] }]);
    expect(
      diffConnections(configA([one()]), configA([{ ...one(), localCerts: [new Uint8Array([2])] }])),
    ).toEqual([{ conn: 'one', action: 'updated', fields: ['local.certs'] }]);
    expect(diffConnections(cur, structuredClone(cur))).toEqual(
      cur.connections.map((c) => ({ conn: c.name, action: 'unchanged' })),
    );
  });

  it('removes, adds, updates and re-establishes, leaving the other connection untouched', async () => {
    const p = await setup();
    const before = byConn(p);
    expect([...before.keys()].sort()).toEqual(['one', 'two']);
    expect(before.get('one')!.children[0]!.state).toBe('INSTALLED');

    /* remove "two", change DPD of "one": --> INFORMATIONAL { D(IKE) } for two only */
    await reload(p, [connA('one', '192.168.1.0/24', { dpdDelay: 30 })]);
    let now = byConn(p);
    expect([...now.keys()]).toEqual(['one']);
    expect(now.get('one')!.spiI).toBe(before.get('one')!.spiI);
    expect(now.get('one')!.children[0]!.spiIn).toBe(before.get('one')!.children[0]!.spiIn);
    expect(p.b.engine.list()).toHaveLength(1);

    /* add "two" back (start_action start) --> IKE_SA_INIT, IKE_AUTH */
    const sent = p.sent.length;
    await reload(p, [
      connA('one', '192.168.1.0/24', { dpdDelay: 30 }),
      connA('two', '192.168.2.0/24', {}, 2),
    ]);
    now = byConn(p);
    expect([...now.keys()].sort()).toEqual(['one', 'two']);
    expect(now.get('two')!.children[0]!.state).toBe('INSTALLED');
    expect(now.get('one')!.spiI).toBe(before.get('one')!.spiI);
    expect(p.sent.length).toBeGreaterThan(sent);

    /* change the selectors of "one": its IKE_SA is deleted and set up again; "two" stays */
    const twoSpi = now.get('two')!.spiI;
    await reload(p, [
      connA('one', '192.168.1.128/25', { dpdDelay: 30 }),
      connA('two', '192.168.2.0/24', {}, 2),
    ]);
    now = byConn(p);
    expect(now.get('one')!.spiI).not.toBe(before.get('one')!.spiI);
    expect(now.get('one')!.children[0]!.remoteTs).toEqual(['192.168.1.128/25']);
    expect(now.get('one')!.children[0]!.state).toBe('INSTALLED');
    expect(now.get('two')!.spiI).toBe(twoSpi);
    expect(p.b.engine.list()).toHaveLength(2);

    /* the same file again: nothing is sent */
    const quiet = p.sent.length;
    await reload(p, [
      connA('one', '192.168.1.128/25', { dpdDelay: 30 }),
      connA('two', '192.168.2.0/24', {}, 2),
    ]);
    expect(p.sent.length).toBe(quiet);
    expect(byConn(p).get('two')!.spiI).toBe(twoSpi);
  });
});
