// Metrics from a sequence of bus events and a scripted SA list: exact exposition lines.
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/common/clock.js';
import { datapathErrorSource } from '../../../src/daemon/control.js';
import {
  algorithmLabels,
  BoundedLabel,
  Metrics,
  MonotonicDrops,
  xfrmStatErrors,
} from '../../../src/daemon/metrics.js';
import type { IkeSaInfo } from '../../../src/ike/engine.js';
import type { BusEvent } from '../../../src/ike/events.js';
import type { SaCounters, SaId } from '../../../src/ike/ports.js';
import { config, ONE_CONN, saInfo, saRef } from './helpers.js';

function rig(list: () => IkeSaInfo[] = () => []) {
  const cfg = config(ONE_CONN);
  const clock = new ManualClock(61_000);
  const m = new Metrics({
    config: cfg.engine,
    clock,
    processMetrics: false,
    version: '0.1.0',
    datapath: 'memory',
  });
  const listeners: Array<(ev: BusEvent) => void> = [];
  const counters = new Map<string, SaCounters>();
  const source = {
    status: list,
    stats: { events: 7, eventErrors: 0, effectErrors: 1, kernelOps: 4, kernelErrors: 1, transportErrors: 0 },
    onBus(fn: (ev: BusEvent) => void) {
      listeners.push(fn);
      return () => undefined;
    },
  };
  const installer = {
    async querySa(id: SaId): Promise<SaCounters> {
      const c = counters.get(`${id.dst}/${id.spi.toString(16)}`);
      if (!c) throw new Error('ENOENT');
      return c;
    },
  };
  m.attach(source, installer);
  const emit = (ev: BusEvent) => {
    for (const l of listeners) l(ev);
  };
  const lines = async (prefix: string) => (await m.render()).split('\n').filter((l) => l.startsWith(prefix));
  return { m, emit, lines, counters, clock };
}

const remote = { address: '198.51.100.1', port: 500 };

function handshake(emit: (ev: BusEvent) => void, uid: number, setupMs: number): void {
  const sa = saRef(uid);
  emit({ ev: 'ike-state', sa, state: 'CONNECTING', initiator: true });
  emit({
    ev: 'message',
    sa,
    dir: 'out',
    exchange: 'IKE_SA_INIT',
    response: false,
    msgId: 0,
    summary: '[ SA KE No N(NATD_S_IP) N(NATD_D_IP) ]',
    bytes: 300,
    remote,
  });
  emit({
    ev: 'message',
    sa,
    dir: 'in',
    exchange: 'IKE_SA_INIT',
    response: true,
    msgId: 0,
    summary: '[ SA KE No ]',
    bytes: 280,
    remote,
  });
  emit({ ev: 'retransmit', sa, exchange: 'IKE_AUTH', msgId: 1, attempt: 1 });
  emit({
    ev: 'ike-established',
    sa,
    initiator: true,
    algorithms: 'AES_GCM_16_256/PRF_HMAC_SHA2_384/ECP_384',
    natLocal: true,
    natRemote: false,
    localId: '172.30.0.2',
    remoteId: '198.51.100.1',
    setupMs,
  });
  emit({
    ev: 'child-state',
    sa,
    child: 'cluster',
    uid: 1,
    state: 'INSTALLED',
    spiIn: 0xc1000001,
    spiOut: 0xc2000001,
  });
}

describe('Metrics from bus events', () => {
  it('counts a successful handshake, its set-up time, messages and retransmits', async () => {
    const { emit, lines } = rig();
    handshake(emit, 1, 12);
    expect(await lines('ikegw_ike_handshakes_total')).toEqual([
      'ikegw_ike_handshakes_total{conn="onprem",role="initiator",result="established"} 1',
    ]);
    expect(await lines('ikegw_ike_sa_setup_duration_seconds')).toEqual([
      'ikegw_ike_sa_setup_duration_seconds_bucket{le="0.005",conn="onprem",role="initiator"} 0',
      'ikegw_ike_sa_setup_duration_seconds_bucket{le="0.01",conn="onprem",role="initiator"} 0',
      'ikegw_ike_sa_setup_duration_seconds_bucket{le="0.025",conn="onprem",role="initiator"} 1',
      'ikegw_ike_sa_setup_duration_seconds_bucket{le="0.05",conn="onprem",role="initiator"} 1',
      'ikegw_ike_sa_setup_duration_seconds_bucket{le="0.1",conn="onprem",role="initiator"} 1',
      'ikegw_ike_sa_setup_duration_seconds_bucket{le="0.25",conn="onprem",role="initiator"} 1',
      'ikegw_ike_sa_setup_duration_seconds_bucket{le="0.5",conn="onprem",role="initiator"} 1',
      'ikegw_ike_sa_setup_duration_seconds_bucket{le="1",conn="onprem",role="initiator"} 1',
      'ikegw_ike_sa_setup_duration_seconds_bucket{le="2.5",conn="onprem",role="initiator"} 1',
      'ikegw_ike_sa_setup_duration_seconds_bucket{le="5",conn="onprem",role="initiator"} 1',
      'ikegw_ike_sa_setup_duration_seconds_bucket{le="10",conn="onprem",role="initiator"} 1',
      'ikegw_ike_sa_setup_duration_seconds_bucket{le="30",conn="onprem",role="initiator"} 1',
      'ikegw_ike_sa_setup_duration_seconds_bucket{le="60",conn="onprem",role="initiator"} 1',
      'ikegw_ike_sa_setup_duration_seconds_bucket{le="+Inf",conn="onprem",role="initiator"} 1',
      'ikegw_ike_sa_setup_duration_seconds_sum{conn="onprem",role="initiator"} 0.012',
      'ikegw_ike_sa_setup_duration_seconds_count{conn="onprem",role="initiator"} 1',
    ]);
    expect(await lines('ikegw_ike_messages_total')).toEqual([
      'ikegw_ike_messages_total{exchange="IKE_SA_INIT",direction="out",type="request"} 1',
      'ikegw_ike_messages_total{exchange="IKE_SA_INIT",direction="in",type="response"} 1',
    ]);
    expect(await lines('ikegw_ike_message_bytes_total')).toEqual([
      'ikegw_ike_message_bytes_total{direction="out"} 300',
      'ikegw_ike_message_bytes_total{direction="in"} 280',
    ]);
    expect(await lines('ikegw_ike_retransmits_total')).toEqual([
      'ikegw_ike_retransmits_total{conn="onprem",exchange="IKE_AUTH",type="request"} 1',
    ]);
    expect(await lines('ikegw_child_sa_installs_total')).toEqual([
      'ikegw_child_sa_installs_total{conn="onprem",child="cluster"} 1',
    ]);
  });

  it('counts failed handshakes once, by their last failure reason, and every failure', async () => {
    const { emit, lines } = rig();
    // responder: AUTH fails, the SA is destroyed
    const sa = saRef(2);
    emit({ ev: 'ike-state', sa, state: 'CONNECTING', initiator: false });
    emit({
      ev: 'failure',
      sa,
      conn: 'onprem',
      reason: 'AUTHENTICATION_FAILED',
      cause: 'psk-mismatch',
      detail: 'AUTHENTICATION_FAILED: pre-shared key or IDs differ',
    });
    emit({ ev: 'ike-state', sa, state: 'DESTROYED', initiator: false, detail: 'authentication failed' });
    // an IKE_SA_INIT from an unknown peer: no SA, no connection
    emit({
      ev: 'failure',
      reason: 'NO_PROPOSAL_CHOSEN',
      detail: 'no connection configured for peer 203.0.113.9',
    });
    // initiator: no answer
    const sa3 = saRef(3);
    emit({ ev: 'ike-state', sa: sa3, state: 'CONNECTING', initiator: true });
    emit({ ev: 'failure', sa: sa3, conn: 'onprem', reason: 'TIMEOUT', detail: 'no response' });
    emit({ ev: 'ike-state', sa: sa3, state: 'DESTROYED', initiator: true, detail: 'IKE_SA_INIT timed out' });
    // terminated while connecting, no failure
    const sa4 = saRef(4);
    emit({ ev: 'ike-state', sa: sa4, state: 'CONNECTING', initiator: true });
    emit({ ev: 'ike-state', sa: sa4, state: 'DESTROYED', initiator: true, detail: 'terminated by command' });
    expect(await lines('ikegw_ike_handshakes_total')).toEqual([
      'ikegw_ike_handshakes_total{conn="onprem",role="initiator",result="established"} 0',
      'ikegw_ike_handshakes_total{conn="onprem",role="responder",result="authentication_failed"} 1',
      'ikegw_ike_handshakes_total{conn="",role="responder",result="no_proposal_chosen"} 1',
      'ikegw_ike_handshakes_total{conn="onprem",role="initiator",result="timeout"} 1',
      'ikegw_ike_handshakes_total{conn="onprem",role="initiator",result="aborted"} 1',
    ]);
    expect(await lines('ikegw_failures_total')).toEqual([
      'ikegw_failures_total{conn="onprem",reason="AUTHENTICATION_FAILED",cause="psk-mismatch"} 1',
      'ikegw_failures_total{conn="",reason="NO_PROPOSAL_CHOSEN",cause=""} 1',
      'ikegw_failures_total{conn="onprem",reason="TIMEOUT",cause=""} 1',
    ]);
  });

  it('counts the engine dpd, cookie, rekey and collision events once (no derived double counts)', async () => {
    const sa = saRef(1);
    const dpd: BusEvent = {
      ev: 'message',
      sa,
      dir: 'out',
      exchange: 'INFORMATIONAL',
      response: false,
      msgId: 2,
      summary: '[ ]',
      bytes: 80,
      remote,
    };
    // once the engine emits explicit events, the derivation stops (no double counting)
    const m = rig();
    m.m.handle({ ev: 'dpd', sa, result: 'sent' });
    m.m.handle({ ev: 'cookie', remote, halfOpen: 10 });
    m.emit({
      ev: 'message',
      dir: 'out',
      exchange: 'IKE_SA_INIT',
      response: true,
      msgId: 0,
      summary: '[ N(COOKIE) ]',
      cookie: true,
      bytes: 60,
      remote,
    });
    m.emit({
      ev: 'message',
      dir: 'in',
      exchange: 'IKE_SA_INIT',
      response: true,
      msgId: 0,
      summary: '[ N(COOKIE) ]',
      cookie: true,
      bytes: 60,
      remote,
    });
    m.m.handle({ ev: 'rekey-collision', sa, what: 'child', child: 'cluster' });
    m.m.handle({ ev: 'rekey', sa, what: 'child', child: 'cluster' });
    m.emit({ ev: 'child-state', sa, child: 'cluster', uid: 9, state: 'DELETED', detail: 'rekeyed' });
    handshake(m.emit, 5, 5);
    m.emit({ ...dpd, sa: saRef(5) });
    expect(await m.lines('ikegw_dpd_total')).toEqual(['ikegw_dpd_total{conn="onprem",result="sent"} 1']);
    expect(await m.lines('ikegw_ike_cookie_challenges_total')).toEqual([
      'ikegw_ike_cookie_challenges_total{direction="out"} 1',
      'ikegw_ike_cookie_challenges_total{direction="in"} 1',
    ]);
    expect(await m.lines('ikegw_rekey_collisions_total')).toEqual([
      'ikegw_rekey_collisions_total{conn="onprem",sa="child"} 1',
    ]);
    expect(await m.lines('ikegw_rekeys_total')).toEqual(['ikegw_rekeys_total{conn="onprem",sa="child"} 1']);
  });

  it('counts rekeys (not as handshakes), collisions and drops by reason', async () => {
    const { emit, lines } = rig();
    handshake(emit, 1, 5);
    const sa = saRef(1);
    // CHILD_SA rekey, we initiate: new one installed, old one deleted by us
    emit({ ev: 'child-state', sa, child: 'cluster', uid: 2, state: 'INSTALLED' });
    emit({ ev: 'child-state', sa, child: 'cluster', uid: 1, state: 'DELETED', detail: 'rekeyed' });
    emit({ ev: 'rekey', sa, what: 'child', child: 'cluster' });
    // CHILD_SA rekey, the peer initiates: new one installed, the peer deletes the old one
    emit({ ev: 'child-state', sa, child: 'cluster', uid: 3, state: 'INSTALLED' });
    emit({ ev: 'child-state', sa, child: 'cluster', uid: 2, state: 'DELETED', detail: 'deleted by peer' });
    emit({ ev: 'rekey', sa, what: 'child', child: 'cluster' });
    // the peer deletes the last one: not a rekey
    emit({ ev: 'child-state', sa, child: 'cluster', uid: 3, state: 'DELETED', detail: 'deleted by peer' });
    // IKE_SA rekey: the new IKE_SA is established without a CONNECTING, the old one goes "rekeyed"
    const next = saRef(4);
    emit({
      ev: 'log',
      level: 'info',
      subsys: 'ike',
      sa,
      msg: 'IKE_SA rekey collision: our new IKE_SA is redundant',
      fields: { collision: 'ike-rekey' },
    });
    emit({ ev: 'rekey-collision', sa, what: 'ike' });
    emit({
      ev: 'ike-established',
      sa: next,
      initiator: true,
      algorithms: 'AES_GCM_16_256/PRF_HMAC_SHA2_384/ECP_384',
      natLocal: false,
      natRemote: false,
      localId: 'a',
      remoteId: 'b',
      setupMs: 3_600_000,
    });
    emit({ ev: 'ike-state', sa, state: 'DESTROYED', initiator: true, detail: 'rekeyed' });
    emit({ ev: 'rekey', sa, what: 'ike' });
    expect(await lines('ikegw_ike_handshakes_total')).toEqual([
      'ikegw_ike_handshakes_total{conn="onprem",role="initiator",result="established"} 1',
    ]);
    expect(await lines('ikegw_ike_sa_setup_duration_seconds_count')).toEqual([
      'ikegw_ike_sa_setup_duration_seconds_count{conn="onprem",role="initiator"} 1',
    ]);
    expect(await lines('ikegw_rekey_collisions_total')).toEqual([
      'ikegw_rekey_collisions_total{conn="onprem",sa="ike"} 1',
    ]);
    emit({ ev: 'dropped', reason: 'malformed', remote, detail: 'truncated header' });
    emit({ ev: 'dropped', reason: 'malformed', remote, detail: 'truncated header' });
    emit({ ev: 'dropped', reason: 'unknown-spi', remote, detail: 'no IKE_SA for SPIs' });
    expect(await lines('ikegw_rekeys_total')).toEqual([
      'ikegw_rekeys_total{conn="onprem",sa="child"} 2',
      'ikegw_rekeys_total{conn="onprem",sa="ike"} 1',
    ]);
    expect(await lines('ikegw_ike_dropped_total')).toEqual([
      'ikegw_ike_dropped_total{reason="malformed"} 2',
      'ikegw_ike_dropped_total{reason="unknown-spi"} 1',
    ]);
  });
});

describe('Metrics at scrape time', () => {
  it('shows SA state, times, algorithms and traffic like the strongSwan exporter', async () => {
    let list = [saInfo(1)];
    const { lines, counters, clock } = rig(() => list);
    counters.set('172.30.0.2/c1000001', { bytes: 1000n, packets: 10n });
    counters.set('198.51.100.1/c2000001', { bytes: 2000n, packets: 20n });
    expect(await lines('ikegw_ike_sas')).toEqual([
      'ikegw_ike_sas{conn="onprem",state="CONNECTING"} 0',
      'ikegw_ike_sas{conn="onprem",state="ESTABLISHED"} 1',
      'ikegw_ike_sas{conn="onprem",state="REKEYING"} 0',
      'ikegw_ike_sas{conn="onprem",state="REKEYED"} 0',
      'ikegw_ike_sas{conn="onprem",state="DELETING"} 0',
    ]);
    expect(await lines('ikegw_tunnel_up')).toEqual(['ikegw_tunnel_up{conn="onprem",child="cluster"} 1']);
    expect(await lines('ikegw_ike_sa_established_seconds')).toEqual([
      'ikegw_ike_sa_established_seconds{conn="onprem"} 60',
    ]);
    expect(await lines('ikegw_ike_sa_rekey_seconds')).toEqual([
      'ikegw_ike_sa_rekey_seconds{conn="onprem"} 14340',
    ]);
    expect(await lines('ikegw_ike_sa_info')).toEqual([
      'ikegw_ike_sa_info{conn="onprem",role="initiator",encryption="AES_GCM_16_256",encryption_key_bits="256",integrity="",integrity_key_bits="",prf="PRF_HMAC_SHA2_384",dh_group="ECP_384",nat_local="true",nat_remote="false"} 1',
    ]);
    expect(await lines('ikegw_child_sa_info')).toEqual([
      'ikegw_child_sa_info{conn="onprem",child="cluster",encryption="AES_GCM_16_256",encryption_key_bits="256",integrity="",integrity_key_bits="",dh_group="",encap="true",local_ts="10.10.0.0/16,10.96.0.0/12",remote_ts="192.168.100.0/24"} 1',
    ]);
    expect(await lines('ikegw_child_sa_established_seconds')).toEqual([
      'ikegw_child_sa_established_seconds{conn="onprem",child="cluster"} 59.99',
    ]);
    expect(await lines('ikegw_child_sa_rekey_seconds')).toEqual([
      'ikegw_child_sa_rekey_seconds{conn="onprem",child="cluster"} 3540.01',
    ]);
    expect(await lines('ikegw_child_sa_lifetime_seconds')).toEqual([
      'ikegw_child_sa_lifetime_seconds{conn="onprem",child="cluster"} 3900.01',
    ]);
    expect(await lines('ikegw_child_sa_encapsulated')).toEqual([
      'ikegw_child_sa_encapsulated{conn="onprem",child="cluster"} 1',
    ]);
    expect(await lines('ikegw_child_sa_bytes_total')).toEqual([
      'ikegw_child_sa_bytes_total{conn="onprem",child="cluster",direction="in"} 1000',
      'ikegw_child_sa_bytes_total{conn="onprem",child="cluster",direction="out"} 2000',
    ]);
    expect(await lines('ikegw_child_sa_packets_total')).toEqual([
      'ikegw_child_sa_packets_total{conn="onprem",child="cluster",direction="in"} 10',
      'ikegw_child_sa_packets_total{conn="onprem",child="cluster",direction="out"} 20',
    ]);
    expect(await lines('ikegw_configured_connections')).toEqual(['ikegw_configured_connections 1']);
    expect(await lines('ikegw_kernel_operation_errors_total')).toEqual([
      'ikegw_kernel_operation_errors_total 1',
    ]);
    expect(await lines('ikegw_internal_errors_total')).toEqual([
      'ikegw_internal_errors_total{where="event"} 0',
      'ikegw_internal_errors_total{where="effect"} 1',
    ]);
    expect(await lines('ikegw_build_info')).toEqual([
      `ikegw_build_info{version="0.1.0",nodejs="${process.version}",datapath="memory"} 1`,
    ]);

    // rekey: a new CHILD_SA replaces the old one; the traffic counters stay monotonic
    const next = saInfo(1);
    const kid = next.children[0]!;
    next.children = [{ ...kid, uid: 2, spiIn: 0xc1000002, spiOut: 0xc2000002, installedAtMs: 60_000 }];
    counters.set('172.30.0.2/c1000001', { bytes: 1500n, packets: 15n });
    await lines('');
    list = [next];
    counters.set('172.30.0.2/c1000002', { bytes: 100n, packets: 1n });
    clock.advance(1000);
    expect(await lines('ikegw_child_sa_bytes_total')).toEqual([
      'ikegw_child_sa_bytes_total{conn="onprem",child="cluster",direction="in"} 1600',
      'ikegw_child_sa_bytes_total{conn="onprem",child="cluster",direction="out"} 2000',
    ]);
    // tunnel down: zeros, not missing series
    list = [];
    expect(await lines('ikegw_tunnel_up')).toEqual(['ikegw_tunnel_up{conn="onprem",child="cluster"} 0']);
    expect(await lines('ikegw_ike_sa_info')).toEqual([]);
    expect(await lines('ikegw_child_sa_bytes_total')).toEqual([
      'ikegw_child_sa_bytes_total{conn="onprem",child="cluster",direction="in"} 1600',
      'ikegw_child_sa_bytes_total{conn="onprem",child="cluster",direction="out"} 2000',
    ]);
  });

  it('reads data-path error counters where the installer offers them', async () => {
    const cfg = config(ONE_CONN);
    const m = new Metrics({ config: cfg.engine, processMetrics: false });
    m.attach(
      { status: () => [], onBus: () => () => undefined },
      {
        querySa: () => Promise.reject(new Error('none')),
        datapathErrors: () => ({ replay: 3n, unknown_spi: 1 }),
      },
    );
    const text = await m.render();
    expect(text).toContain('ikegw_datapath_errors_total{reason="replay"} 3');
    expect(text).toContain('ikegw_datapath_errors_total{reason="unknown_spi"} 1');
  });
});

describe('label cardinality', () => {
  it('never uses SPIs, unique ids or addresses as label values', async () => {
    const list = [saInfo(1), saInfo(2, { state: 'CONNECTING', children: [] })];
    const { emit, lines } = rig(() => list);
    for (let uid = 1; uid <= 200; uid++) handshake(emit, uid, uid);
    const all = await lines('ikegw_');
    const labelValues = all.flatMap((l) => [...l.matchAll(/="([^"]*)"/g)].map((m) => m[1]!));
    for (const v of labelValues) {
      expect(v).not.toMatch(/^[0-9a-f]{8,}$/); // SPIs
      expect(v).not.toMatch(/^\d+\.\d+\.\d+\.\d+$/); // addresses
      expect(v).not.toMatch(/aabbccddeeff|c1000001/);
    }
    // 200 handshakes -> the same series, not 200 of them
    expect(all.filter((l) => l.startsWith('ikegw_ike_handshakes_total'))).toEqual([
      'ikegw_ike_handshakes_total{conn="onprem",role="initiator",result="established"} 200',
    ]);
    expect(new Set(all.map((l) => l.replace(/ [^ ]+$/, ''))).size).toBeLessThan(120);
  });

  it('folds unbounded label values into "other"', () => {
    const b = new BoundedLabel(3);
    expect(['a', 'b', 'c', 'd', 'a', 'x y'].map((v) => b.value(v))).toEqual([
      'a',
      'b',
      'c',
      'other',
      'a',
      'other',
    ]);
    const m = rig();
    for (let i = 0; i < 100; i++) m.emit({ ev: 'dropped', reason: `r${i}`, remote, detail: '' });
    return m.lines('ikegw_ike_dropped_total').then((l) => expect(l.length).toBe(25));
  });
});

describe('algorithmLabels', () => {
  it('splits the engine suite names into algorithm and key-size labels', () => {
    expect(algorithmLabels('AES_CBC_128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048')).toEqual({
      encryption: 'AES_CBC_128',
      encryption_key_bits: '128',
      integrity: 'HMAC_SHA2_256_128',
      integrity_key_bits: '256',
      prf: 'PRF_HMAC_SHA2_256',
      dh_group: 'MODP_2048',
    });
    expect(algorithmLabels('CHACHA20_POLY1305/PRF_HMAC_SHA2_256/CURVE_25519')).toMatchObject({
      encryption_key_bits: '256',
      dh_group: 'CURVE_25519',
    });
    expect(algorithmLabels('AES_CBC_256/HMAC_SHA1_96').integrity_key_bits).toBe('160');
  });
});

describe('data-path error sources', () => {
  it('per-SA drop counts stay monotonic when their SA goes away', () => {
    const m = new MonotonicDrops();
    const snap = (sas: Array<[string, Record<string, number>]>, global: Record<string, number> = {}) =>
      m.update({ perSa: new Map(sas), global });
    expect(snap([['in/1', { replay: 2 }]], { 'unknown-spi': 1 })).toEqual({ replay: 2, 'unknown-spi': 1 });
    expect(snap([['in/1', { replay: 3, auth: 1 }]], { 'unknown-spi': 1 })).toEqual({
      replay: 3,
      auth: 1,
      'unknown-spi': 1,
    });
    // rekey: SA 1 deleted, SA 2 new
    expect(snap([['in/2', { replay: 1 }]], { 'unknown-spi': 4 })).toEqual({
      replay: 4,
      auth: 1,
      'unknown-spi': 4,
    });
  });

  it('reads the userspace status() shape and the kernel xfrm_stat', async () => {
    let sas = [{ spi: 0xc1, dir: 'in', dst: '10.0.0.1', drops: { replay: 5 } }];
    const fake = {
      kind: 'userspace',
      querySa: () => Promise.reject(new Error('x')),
      status: () => ({ sas, drops: { 'no-policy': 2 } }),
    };
    const src = datapathErrorSource(fake);
    expect(await src?.()).toEqual({ replay: 5, 'no-policy': 2 });
    sas = [];
    expect(await src?.()).toEqual({ replay: 5, 'no-policy': 2 });
    expect(
      xfrmStatErrors(
        'XfrmInError             \t0\nXfrmInNoStates          \t7\nXfrmInStateSeqError     \t3\nXfrmOutPolBlock 1\n',
      ),
    ).toEqual({ in_error: 0, 'unknown-spi': 7, replay: 3, out_pol_block: 1 });
    expect(
      datapathErrorSource({ kind: 'memory', querySa: () => Promise.reject(new Error('x')) }),
    ).toBeUndefined();
  });
});
