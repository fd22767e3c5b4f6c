// IKE_SA_INIT + IKE_AUTH between two engines in memory: both roles, proposals, NAT, errors,
// retransmits. Each step is annotated with the exchange it drives.
import { describe, expect, it } from 'vitest';
import { MemoryInstaller } from '../../../src/esp/memory-installer.js';
import { parseProposals } from '../../../src/ike/sa/proposal-syntax.js';
import { IdType } from '../../../src/ike/wire/constants.js';
import { childConfig, connection, EnginePair, engineConfig } from '../../helpers/engine-pair.js';

const A = '198.51.100.2';
const B = '198.51.100.1';

function pair(
  opts: {
    aIke?: string[];
    bIke?: string[];
    aEsp?: string[];
    bEsp?: string[];
    pskB?: string;
    bRemoteTs?: string[];
    nat?: boolean;
    encap?: boolean;
  } = {},
) {
  const a = connection({
    name: 'onprem',
    localAddrs: [A],
    remoteAddrs: [B],
    ikeProposals: parseProposals(opts.aIke ?? ['default'], 'ike'),
    encap: opts.encap ?? false,
    children: [
      childConfig({
        name: 'cluster',
        localTs: ['10.10.0.0/16', '10.96.0.0/12'],
        remoteTs: ['192.168.100.0/24'],
        espProposals: parseProposals(opts.aEsp ?? ['default'], 'esp'),
      }),
    ],
  });
  const b = connection({
    name: 'cluster',
    localAddrs: [B],
    remoteAddrs: ['%any'],
    ikeProposals: parseProposals(opts.bIke ?? ['default'], 'ike'),
    psk: opts.pskB ? new TextEncoder().encode(opts.pskB) : undefined!,
    children: [
      childConfig({
        name: 'net',
        localTs: ['192.168.100.0/24'],
        remoteTs: opts.bRemoteTs ?? ['10.0.0.0/8'],
        espProposals: parseProposals(opts.bEsp ?? ['default'], 'esp'),
      }),
    ],
  });
  if (!opts.pskB) b.psk = a.psk;
  const p = new EnginePair(
    engineConfig([a]),
    engineConfig([b]),
    { a: A, b: B },
    { a: new MemoryInstaller(), b: new MemoryInstaller() },
  );
  if (opts.nat) p.nat = { address: '203.0.113.7', portMap: new Map() };
  return p;
}

describe('IKE_SA_INIT + IKE_AUTH', () => {
  it('establishes IKE_SA and CHILD_SA with default proposals; SPIs and selectors agree', async () => {
    const p = pair();
    /* --> IKE_SA_INIT { SA, KE, Ni, N(NATD_S), N(NATD_D), N(FRAG_SUP) } */
    /* <-- IKE_SA_INIT { SA, KE, Nr, N(NATD_S), N(NATD_D), N(FRAG_SUP) } */
    /* --> IKE_AUTH { IDi, N(INIT_CONTACT), AUTH, SA, TSi, TSr } */
    /* <-- IKE_AUTH { IDr, AUTH, SA, TSi, TSr } */
    p.feed(p.a, { kind: 'command', cmd: { cmd: 'initiate', conn: 'onprem' } });
    await p.settle();
    const [ia] = p.a.engine.list();
    const [ib] = p.b.engine.list();
    expect(ia?.state).toBe('ESTABLISHED');
    expect(ib?.state).toBe('ESTABLISHED');
    expect(ia?.spiI).toBe(ib?.spiI);
    expect(ia?.spiR).toBe(ib?.spiR);
    expect(ia?.algorithms).toBe('AES_GCM_16_256/PRF_HMAC_SHA2_256/CURVE_25519');
    const ca = ia!.children[0]!;
    const cb = ib!.children[0]!;
    expect(ca.state).toBe('INSTALLED');
    expect(cb.state).toBe('INSTALLED');
    expect(ca.spiIn).toBe(cb.spiOut);
    expect(ca.spiOut).toBe(cb.spiIn);
    expect(ca.localTs).toEqual(['10.10.0.0/16', '10.96.0.0/12']);
    expect(ca.remoteTs).toEqual(['192.168.100.0/24']);
    expect(cb.remoteTs).toEqual(['10.10.0.0/16', '10.96.0.0/12']);
    expect(ca.encap).toBe(false);
    // Exactly four messages crossed the wire.
    expect(p.sent.length).toBe(4);
  });

  it.each([
    ['aes256gcm16-prfsha384-ecp384', 'AES_GCM_16_256/PRF_HMAC_SHA2_384/ECP_384'],
    ['aes128-sha256-modp2048', 'AES_CBC_128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048'],
    ['chacha20poly1305-prfsha256-x25519', 'CHACHA20_POLY1305/PRF_HMAC_SHA2_256/CURVE_25519'],
    ['aes256-sha512-ecp521', 'AES_CBC_256/HMAC_SHA2_512_256/PRF_HMAC_SHA2_512/ECP_521'],
    ['aes256gcm16-prfsha512-curve448', 'AES_GCM_16_256/PRF_HMAC_SHA2_512/CURVE_448'],
  ])('negotiates %s', async (prop, name) => {
    const p = pair({ aIke: [prop], bIke: [prop] });
    p.feed(p.a, { kind: 'command', cmd: { cmd: 'initiate', conn: 'onprem' } });
    await p.settle();
    expect(p.b.engine.list()[0]?.algorithms).toBe(name);
    expect(p.a.engine.list()[0]?.children[0]?.state).toBe('INSTALLED');
  });

  it('follows INVALID_KE_PAYLOAD to the group the responder wants', async () => {
    const p = pair({ aIke: ['aes128-sha256-x25519-ecp256'], bIke: ['aes128-sha256-ecp256'] });
    p.feed(p.a, { kind: 'command', cmd: { cmd: 'initiate', conn: 'onprem' } });
    await p.settle();
    expect(p.a.engine.list()[0]?.state).toBe('ESTABLISHED');
    expect(p.a.engine.list()[0]?.algorithms).toContain('ECP_256');
    // INIT (x25519) -> INVALID_KE, INIT (ecp256) -> response, AUTH, AUTH
    expect(p.sent.length).toBe(6);
  });

  it('NO_PROPOSAL_CHOSEN both ways names both sides proposals', async () => {
    const p = pair({ aIke: ['aes128-sha256-x25519'], bIke: ['aes256-sha512-ecp521'] });
    p.feed(p.a, { kind: 'command', cmd: { cmd: 'initiate', conn: 'onprem' } });
    await p.settle();
    expect(p.a.engine.list()).toEqual([]);
    expect(p.b.engine.list()).toEqual([]);
    const fa = p.of(p.a, 'failure');
    const fb = p.of(p.b, 'failure');
    expect(fa[0]?.reason).toBe('NO_PROPOSAL_CHOSEN');
    expect(fa[0]?.detail).toContain('aes128-sha256-x25519');
    expect(fb[0]?.reason).toBe('NO_PROPOSAL_CHOSEN');
    expect(fb[0]?.detail).toMatch(/ours \[aes256-sha512-ecp521\], theirs/);
  });

  it('wrong PSK: AUTHENTICATION_FAILED on both sides, nothing installed', async () => {
    const p = pair({ pskB: 'a-different-key-entirely' });
    p.feed(p.a, { kind: 'command', cmd: { cmd: 'initiate', conn: 'onprem' } });
    await p.settle();
    expect(p.of(p.b, 'failure')[0]?.reason).toBe('AUTHENTICATION_FAILED');
    expect(p.of(p.b, 'failure')[0]?.detail).toMatch(/PSK/);
    expect(p.of(p.a, 'failure')[0]?.reason).toBe('AUTHENTICATION_FAILED');
    expect(p.of(p.a, 'failure')[0]?.detail).toMatch(/pre-shared key or IDs differ/);
    expect(p.a.engine.list()).toEqual([]);
    expect(p.b.engine.list()).toEqual([]);
    expect((p.a.installer as MemoryInstaller).snapshot().sas.length).toBe(0);
    expect((p.b.installer as MemoryInstaller).snapshot().sas.length).toBe(0);
  });

  it('no overlapping selectors: TS_UNACCEPTABLE, IKE_SA stays up without CHILD_SA', async () => {
    const p = pair({ bRemoteTs: ['172.16.0.0/12'] });
    p.feed(p.a, { kind: 'command', cmd: { cmd: 'initiate', conn: 'onprem' } });
    await p.settle();
    expect(p.of(p.a, 'failure')[0]?.reason).toBe('TS_UNACCEPTABLE');
    expect(p.of(p.b, 'failure')[0]?.detail).toMatch(
      /TS_UNACCEPTABLE: theirs 10\.10\.0\.0\/16,10\.96\.0\.0\/12 === 192\.168\.100\.0\/24/,
    );
    expect(p.a.engine.list()[0]?.state).toBe('ESTABLISHED');
    expect(p.a.engine.list()[0]?.children).toEqual([]);
  });

  it('narrows to the responder configuration (RFC 7296 §2.9)', async () => {
    const p = pair({ bRemoteTs: ['10.10.5.0/24', '10.96.0.0/16'] });
    p.feed(p.a, { kind: 'command', cmd: { cmd: 'initiate', conn: 'onprem' } });
    await p.settle();
    const c = p.a.engine.list()[0]!.children[0]!;
    expect(c.localTs).toEqual(['10.10.5.0/24', '10.96.0.0/16']);
  });

  it('behind a NAT: floats to 4500 and installs UDP-encapsulated SAs', async () => {
    const p = pair({ nat: true });
    p.feed(p.a, { kind: 'command', cmd: { cmd: 'initiate', conn: 'onprem' } });
    await p.settle();
    const ia = p.a.engine.list()[0]!;
    expect(ia.natLocal).toBe(true);
    expect(ia.remote.port).toBe(4500);
    expect(p.b.engine.list()[0]!.natRemote).toBe(true);
    expect(ia.children[0]!.encap).toBe(true);
    const sas = (p.b.installer as MemoryInstaller).snapshot().sas;
    expect(sas.every((s) => s.spec.encap?.dport === p.nat!.portMap.get(4500))).toBe(true);
  });

  it('encap = yes forces UDP encapsulation without a NAT', async () => {
    const p = pair({ encap: true });
    p.feed(p.a, { kind: 'command', cmd: { cmd: 'initiate', conn: 'onprem' } });
    await p.settle();
    expect(p.b.engine.list()[0]!.natRemote).toBe(true);
    expect(p.a.engine.list()[0]!.children[0]!.encap).toBe(true);
  });

  it('retransmits a lost IKE_AUTH request and answers a retransmitted request from the cache', async () => {
    const p = pair();
    let authResponsesDropped = 0;
    // Drop B's first IKE_AUTH response: A retransmits, B must answer from its cache (not process twice).
    p.drop = ({ from, bytes }) => from === 'b' && bytes[18] === 35 && authResponsesDropped++ === 0;
    p.feed(p.a, { kind: 'command', cmd: { cmd: 'initiate', conn: 'onprem' } });
    await p.settle();
    expect(p.a.engine.list()[0]?.state).toBe('CONNECTING');
    expect(await p.fireNextTimer()).toBe(true); // retransmit after 4 s
    expect(p.a.engine.list()[0]?.state).toBe('ESTABLISHED');
    expect(p.of(p.a, 'retransmit')).toHaveLength(1);
    // B processed IKE_AUTH once: one CHILD_SA, two SAs in its installer.
    expect((p.b.installer as MemoryInstaller).snapshot().sas.length).toBe(2);
    expect(p.of(p.b, 'ike-established')).toHaveLength(1);
  });

  it('gives up after 5 retransmits with a clear reason', async () => {
    const p = pair();
    p.drop = ({ from }) => from === 'a';
    p.feed(p.a, { kind: 'command', cmd: { cmd: 'initiate', conn: 'onprem' } });
    await p.settle();
    const t0 = p.clock.now();
    while (await p.fireNextTimer()) {}
    expect(p.of(p.a, 'retransmit')).toHaveLength(5);
    // 4 + 7.2 + 12.96 + 23.3 + 42 + 75.6 s (strongSwan's schedule)
    expect(Math.round((p.clock.now() - t0) / 1000)).toBe(165);
    const f = p.of(p.a, 'failure')[0]!;
    expect(f.reason).toBe('TIMEOUT');
    expect(f.detail).toMatch(/no response from 198\.51\.100\.1:500 to IKE_SA_INIT after 5 retransmits/);
    expect(p.a.engine.list()).toEqual([]);
  });

  it('DPD: answers liveness checks and deletes on peer DELETE', async () => {
    const p = pair();
    p.a.engine.cfg.connections[0]!.dpdDelay = 30;
    p.feed(p.a, { kind: 'command', cmd: { cmd: 'initiate', conn: 'onprem' } });
    await p.settle();
    /* --> INFORMATIONAL { } after 30 s of silence;  <-- INFORMATIONAL { } */
    await p.fireNextTimer();
    const infos = p.of(p.a, 'message').filter((m) => m.exchange === 'INFORMATIONAL');
    expect(infos.map((m) => `${m.dir}:${m.response}`)).toEqual(['out:false', 'in:true']);
    /* --> INFORMATIONAL { D(IKE) } */
    p.feed(p.a, { kind: 'command', cmd: { cmd: 'terminate', conn: 'onprem' } });
    await p.settle();
    expect(p.a.engine.list()).toEqual([]);
    expect(p.b.engine.list()).toEqual([]);
    expect((p.b.installer as MemoryInstaller).snapshot().sas.length).toBe(0);
  });
});

describe('identities', () => {
  const fqdn = (s: string) => ({ type: IdType.FQDN, data: new TextEncoder().encode(s) });
  const keyId = (hexs: string) => ({ type: IdType.KEY_ID, data: Uint8Array.from(Buffer.from(hexs, 'hex')) });

  it.each([
    ['FQDN', fqdn('gw.cluster.example'), fqdn('vpn.onprem.example'), 'gw.cluster.example'],
    ['KEY_ID', keyId('c0ffee01'), keyId('0badf00d'), '@#c0ffee01'],
    [
      'IPv6 address',
      {
        type: IdType.IPV6_ADDR,
        data: Uint8Array.from(Buffer.from('20010db8000000000000000000000002', 'hex')),
      },
      undefined,
      '2001:db8::2',
    ],
  ])('authenticates with %s IDs and checks the configured remote ID', async (_n, idA, idB, text) => {
    const p = pair();
    const a = p.a.engine.cfg.connections[0]!;
    const b = p.b.engine.cfg.connections[0]!;
    a.localId = idA;
    b.remoteId = idA;
    if (idB) {
      b.localId = idB;
      a.remoteId = idB;
    }
    p.feed(p.a, { kind: 'command', cmd: { cmd: 'initiate', conn: 'onprem' } });
    await p.settle();
    expect(p.b.engine.list()[0]?.remoteId).toBe(text);
    expect(p.a.engine.list()[0]?.state).toBe('ESTABLISHED');
  });

  it('a peer with another ID than remote.id is refused', async () => {
    const p = pair();
    p.a.engine.cfg.connections[0]!.localId = fqdn('intruder.example');
    p.b.engine.cfg.connections[0]!.remoteId = fqdn('gw.cluster.example');
    p.feed(p.a, { kind: 'command', cmd: { cmd: 'initiate', conn: 'onprem' } });
    await p.settle();
    expect(p.of(p.b, 'failure')[0]?.detail).toMatch(
      /identified as intruder\.example, but remote\.id is gw\.cluster\.example/,
    );
    expect(p.a.engine.list()).toEqual([]);
  });
});
