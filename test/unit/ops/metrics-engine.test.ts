// Metrics fed by two real IkeEngines back to back (test/helpers/engine-pair.ts): set-up, CHILD_SA
// and IKE_SA rekeys from either end, and collisions, as the engine reports them on its bus today.
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/common/clock.js';
import { Metrics } from '../../../src/daemon/metrics.js';
import { MemoryInstaller } from '../../../src/esp/memory-installer.js';
import type { EngineConfig } from '../../../src/ike/config.js';
import { parseProposals } from '../../../src/ike/sa/proposal-syntax.js';
import { childConfig, connection, EnginePair, engineConfig } from '../../helpers/engine-pair.js';

const A = '198.51.100.2';
const B = '198.51.100.1';

async function pair(seed = 1) {
  const esp = parseProposals(['aes128gcm16'], 'esp');
  const a = connection({
    name: 'onprem',
    localAddrs: [A],
    remoteAddrs: [B],
    rekeyTime: 0,
    children: [
      childConfig({
        name: 'cluster',
        localTs: ['10.10.0.0/16'],
        remoteTs: ['192.168.100.0/24'],
        espProposals: esp,
        rekeyTime: 0,
        lifeTime: 0,
      }),
    ],
  });
  const b = connection({
    name: 'cluster',
    localAddrs: [B],
    remoteAddrs: ['%any'],
    rekeyTime: 0,
    children: [
      childConfig({
        name: 'net',
        localTs: ['192.168.100.0/24'],
        remoteTs: ['10.10.0.0/16'],
        espProposals: esp,
        rekeyTime: 0,
        lifeTime: 0,
      }),
    ],
  });
  b.psk = a.psk;
  const cfgA = engineConfig([a]);
  const cfgB = engineConfig([b]);
  const p = new EnginePair(
    cfgA,
    cfgB,
    { a: A, b: B },
    { a: new MemoryInstaller(), b: new MemoryInstaller() },
    seed,
  );
  p.feed(p.a, { kind: 'command', cmd: { cmd: 'initiate', conn: 'onprem' } });
  await p.settle();
  return { p, cfgA, cfgB };
}

async function drainTimers(p: EnginePair, ms: number) {
  const end = p.clock.now() + ms;
  for (;;) {
    const next = [...p.a.timers.values(), ...p.b.timers.values()].filter((t) => t.atMs <= end);
    if (next.length === 0) break;
    await p.fireNextTimer();
  }
}

async function metricsOf(events: Parameters<Metrics['handle']>[0][], cfg: EngineConfig, prefix: string) {
  const m = new Metrics({ config: cfg, clock: new ManualClock(0), processMetrics: false });
  for (const ev of events) m.handle(ev);
  return (await m.render()).split('\n').filter((l) => l.startsWith(prefix));
}

describe('metrics from the real engine', () => {
  it('a CHILD_SA rekey and an IKE_SA rekey count once on each side, never as handshakes', async () => {
    const { p, cfgA, cfgB } = await pair();
    p.feed(p.a, { kind: 'command', cmd: { cmd: 'rekey', conn: 'onprem' } });
    await p.settle();
    await drainTimers(p, 5_000);
    p.feed(p.b, { kind: 'command', cmd: { cmd: 'rekey', conn: 'cluster', ike: true } });
    await p.settle();
    await drainTimers(p, 5_000);
    expect(await metricsOf(p.a.events, cfgA, 'ikegw_ike_handshakes_total')).toEqual([
      'ikegw_ike_handshakes_total{conn="onprem",role="initiator",result="established"} 1',
    ]);
    expect(await metricsOf(p.b.events, cfgB, 'ikegw_ike_handshakes_total')).toEqual([
      'ikegw_ike_handshakes_total{conn="cluster",role="initiator",result="established"} 0',
      'ikegw_ike_handshakes_total{conn="cluster",role="responder",result="established"} 1',
    ]);
    expect(await metricsOf(p.a.events, cfgA, 'ikegw_rekeys_total')).toEqual([
      'ikegw_rekeys_total{conn="onprem",sa="child"} 1',
      'ikegw_rekeys_total{conn="onprem",sa="ike"} 1',
    ]);
    expect(await metricsOf(p.b.events, cfgB, 'ikegw_rekeys_total')).toEqual([
      'ikegw_rekeys_total{conn="cluster",sa="child"} 1',
      'ikegw_rekeys_total{conn="cluster",sa="ike"} 1',
    ]);
    expect(await metricsOf(p.a.events, cfgA, 'ikegw_ike_messages_total{exchange="CREATE_CHILD_SA"')).toEqual([
      'ikegw_ike_messages_total{exchange="CREATE_CHILD_SA",direction="out",type="request"} 1',
      'ikegw_ike_messages_total{exchange="CREATE_CHILD_SA",direction="in",type="response"} 1',
      'ikegw_ike_messages_total{exchange="CREATE_CHILD_SA",direction="in",type="request"} 1',
      'ikegw_ike_messages_total{exchange="CREATE_CHILD_SA",direction="out",type="response"} 1',
    ]);
  });

  it('a CHILD_SA rekey collision counts as one collision and one rekey on each side', async () => {
    for (let seed = 1; seed <= 6; seed++) await collision(seed);
  });
});

async function collision(seed: number) {
  const { p, cfgA, cfgB } = await pair(seed);
  p.feed(p.a, { kind: 'command', cmd: { cmd: 'rekey', conn: 'onprem' } });
  p.feed(p.b, { kind: 'command', cmd: { cmd: 'rekey', conn: 'cluster' } });
  await p.settle();
  await drainTimers(p, 5_000);
  expect(await metricsOf(p.a.events, cfgA, 'ikegw_rekey_collisions_total')).toEqual([
    'ikegw_rekey_collisions_total{conn="onprem",sa="child"} 1',
  ]);
  expect(await metricsOf(p.b.events, cfgB, 'ikegw_rekey_collisions_total')).toEqual([
    'ikegw_rekey_collisions_total{conn="cluster",sa="child"} 1',
  ]);
  for (const [side, cfg] of [
    [p.a, cfgA],
    [p.b, cfgB],
  ] as const) {
    const lines = await metricsOf(side.events, cfg, 'ikegw_rekeys_total');
    expect(lines, `seed ${seed}`).toEqual([
      `ikegw_rekeys_total{conn="${cfg.connections[0]!.name}",sa="child"} 1`,
    ]);
  }
}
