// PFS in CREATE_CHILD_SA: the default ESP proposals make PFS optional (accepted when the peer's
// request has a KE, used when the peer requires it); a rekey the peer refuses is retried once with
// the other PFS choice (and with the group an INVALID_KE_PAYLOAD names); explicit proposals stay
// strict, and a PFS mismatch is named as such. Two engines back to back in memory.
import { describe, expect, it } from 'vitest';
import { MemoryInstaller } from '../../../src/esp/memory-installer.js';
import type { BusEvent } from '../../../src/ike/events.js';
import { parseProposals } from '../../../src/ike/sa/proposal-syntax.js';
import { childConfig, connection, EnginePair, engineConfig } from '../../helpers/engine-pair.js';

const A = '198.51.100.2';
const B = '198.51.100.1';

async function pair(
  espA: string[],
  espB: string[],
  opts: { ikeB?: string[]; startA?: 'none' | 'start'; lifeA?: [number, number] } = {},
) {
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
        espProposals: parseProposals(espA, 'esp'),
        rekeyTime: opts.lifeA?.[0] ?? 0,
        lifeTime: opts.lifeA?.[1] ?? 0,
        startAction: opts.startA ?? 'none',
      }),
    ],
  });
  const b = connection({
    name: 'cluster',
    localAddrs: [B],
    remoteAddrs: ['%any'],
    rekeyTime: 0,
    ...(opts.ikeB ? { ikeProposals: parseProposals(opts.ikeB, 'ike') } : {}),
    children: [
      childConfig({
        name: 'net',
        localTs: ['192.168.100.0/24'],
        remoteTs: ['10.10.0.0/16'],
        espProposals: parseProposals(espB, 'esp'),
        rekeyTime: 0,
        lifeTime: 0,
      }),
    ],
  });
  b.psk = a.psk;
  const p = new EnginePair(
    engineConfig([a]),
    engineConfig([b]),
    { a: A, b: B },
    { a: new MemoryInstaller(), b: new MemoryInstaller() },
    7,
  );
  p.feed(p.a, { kind: 'command', cmd: { cmd: 'initiate', conn: 'onprem' } });
  await p.settle();
  expect(p.a.engine.list()[0]?.children[0]?.state).toBe('INSTALLED');
  return p;
}

async function rekey(p: EnginePair, who: 'a' | 'b') {
  p.feed(who === 'a' ? p.a : p.b, {
    kind: 'command',
    cmd: { cmd: 'rekey', conn: who === 'a' ? 'onprem' : 'cluster' },
  });
  await p.settle();
}

const child = (p: EnginePair, side: 'a' | 'b') => (side === 'a' ? p.a : p.b).engine.list()[0]!.children;

/** The KE group of each CREATE_CHILD_SA request `side` sent (0 = none), from its summaries. */
function requests(p: EnginePair, side: 'a' | 'b'): string[] {
  return p
    .of(side === 'a' ? p.a : p.b, 'message')
    .filter((m) => m.dir === 'out' && !m.response && m.exchange === 'CREATE_CHILD_SA')
    .map((m) => m.summary);
}

function failures(p: EnginePair, side: 'a' | 'b') {
  return p.of(side === 'a' ? p.a : p.b, 'failure') as Extract<BusEvent, { ev: 'failure' }>[];
}

describe('PFS in CREATE_CHILD_SA', () => {
  it('default proposals: a rekey without PFS from a peer at strongSwan defaults stays without PFS', async () => {
    const p = await pair(['default'], ['aes256gcm16']);
    /* --> CREATE_CHILD_SA { N(REKEY_SA), SA, Ni, TSi, TSr }  <-- { SA, Nr, TSi, TSr } */
    await rekey(p, 'a');
    expect(child(p, 'a')).toHaveLength(1);
    expect(child(p, 'a')[0]!.algorithms).not.toMatch(/MODP|ECP|CURVE/);
    expect(requests(p, 'a')).toHaveLength(1);
    expect(requests(p, 'a')[0]).not.toMatch(/\bKE\b/);
  });

  it('default proposals accept the PFS rekey of a peer that requires it (Libreswan default)', async () => {
    const p = await pair(['default'], ['aes256gcm16-modp3072']);
    /* <-- CREATE_CHILD_SA { N(REKEY_SA), SA, Ni, KEi(MODP_3072), TSi, TSr }  --> { SA, Nr, KEr, TSi, TSr } */
    await rekey(p, 'b');
    expect(child(p, 'a')).toHaveLength(1);
    expect(child(p, 'a')[0]!.state).toBe('INSTALLED');
    expect(child(p, 'a')[0]!.algorithms).toContain('MODP_3072');
    expect(failures(p, 'a')).toEqual([]);
    // and our next rekey keeps PFS with that group: one request, with KE, accepted at once
    await rekey(p, 'a');
    expect(requests(p, 'a')).toHaveLength(1);
    expect(requests(p, 'a')[0]).toMatch(/\bKE\b/);
    expect(child(p, 'a')[0]!.algorithms).toContain('MODP_3072');
  });

  it('our rekey refused without PFS is retried with PFS, following INVALID_KE_PAYLOAD to the peer group', async () => {
    const p = await pair(['default'], ['aes256gcm16-modp3072']);
    /* --> CREATE_CHILD_SA { SA(no KE), ... }           <-- N(NO_PROPOSAL_CHOSEN) */
    /* --> CREATE_CHILD_SA { SA, KEi(CURVE_25519) ... } <-- N(INVALID_KE_PAYLOAD, MODP_3072) */
    /* --> CREATE_CHILD_SA { SA, KEi(MODP_3072) ... }   <-- { SA, Nr, KEr, TSi, TSr } */
    await rekey(p, 'a');
    const sent = requests(p, 'a');
    expect(sent).toHaveLength(3);
    expect(sent[0]).not.toMatch(/\bKE\b/);
    expect(sent[1]).toMatch(/\bKE\b/);
    expect(sent[2]).toMatch(/\bKE\b/);
    expect(child(p, 'a')).toHaveLength(1);
    expect(child(p, 'a')[0]!.state).toBe('INSTALLED');
    expect(child(p, 'a')[0]!.algorithms).toContain('MODP_3072');
    expect(child(p, 'b')[0]!.spiIn).toBe(child(p, 'a')[0]!.spiOut);
    expect(failures(p, 'a').filter((f) => f.reason !== 'INVALID_KE_PAYLOAD')).toEqual([]);
    // the refusing side named the cause
    const nop = failures(p, 'b').find((f) => f.reason === 'NO_PROPOSAL_CHOSEN');
    expect(nop?.detail).toMatch(/PFS mismatch, the peer proposes without PFS/);
    expect(nop?.hint).toMatch(/modpnone/);
  });

  it('when the peer requires no PFS and the rekey started with PFS, it is retried without', async () => {
    const p = await pair(['aes256gcm16-modp3072-modpnone'], ['aes256gcm16']);
    await rekey(p, 'a');
    const sent = requests(p, 'a');
    expect(sent).toHaveLength(2);
    expect(sent[0]).toMatch(/\bKE\b/);
    expect(sent[1]).not.toMatch(/\bKE\b/);
    expect(child(p, 'a')[0]!.state).toBe('INSTALLED');
    expect(child(p, 'a')[0]!.algorithms).not.toMatch(/MODP/);
  });

  it('explicit proposals stay strict: no PFS against a peer requiring it fails, with a PFS hint on both sides', async () => {
    const p = await pair(['aes256gcm16'], ['aes256gcm16-modp3072']);
    const before = child(p, 'a')[0]!;
    await rekey(p, 'a');
    expect(requests(p, 'a')).toHaveLength(1);
    const f = failures(p, 'a').find((x) => x.reason === 'NO_PROPOSAL_CHOSEN');
    expect(f?.detail).toMatch(/tried without PFS/);
    expect(f?.hint).toMatch(/requires PFS.*add its group/);
    // the old CHILD_SA is still there
    expect(child(p, 'a')[0]!.spiIn).toBe(before.spiIn);

    await rekey(p, 'b');
    const g = failures(p, 'a')
      .filter((x) => x.reason === 'NO_PROPOSAL_CHOSEN')
      .at(-1);
    expect(g?.detail).toMatch(/PFS mismatch, the peer proposes with PFS \(KE MODP_3072\)/);
    expect(g?.hint).toMatch(/requires PFS/);
  });

  it('a CHILD_SA that could not be rekeyed is created anew at its hard lifetime', async () => {
    const p = await pair(['aes256gcm16'], ['aes256gcm16-modp3072'], { startA: 'start', lifeA: [60, 120] });
    // the peer refuses the rekey at ~60 s; at the hard lifetime (120 s) the CHILD_SA is deleted and
    // negotiated anew, which the peer refuses the same way (strict proposals): the line says why
    const done = () => failures(p, 'a').some((f) => /creating CHILD_SA cluster failed/.test(f.detail));
    for (let i = 0; i < 50 && !done(); i++) await p.fireNextTimer();
    const logs = p.of(p.a, 'log').map((l) => (l as { msg: string }).msg);
    expect(logs.some((m) => /hard lifetime without a rekey; deleting it and creating it anew/.test(m))).toBe(
      true,
    );
    expect(
      failures(p, 'a').some((f) =>
        /rekeying CHILD_SA cluster: the peer answered NO_PROPOSAL_CHOSEN/.test(f.detail),
      ),
    ).toBe(true);
    expect(done()).toBe(true);
  });
});
