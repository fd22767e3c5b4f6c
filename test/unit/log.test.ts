import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/daemon/config.js';
import { busToLog, createLogs, formatPretty, type LogOptions, scrub } from '../../src/daemon/log.js';
import type { BusEvent, SaRef } from '../../src/ike/events.js';

function collect(opts: LogOptions = {}) {
  const lines: string[] = [];
  const logs = createLogs({ format: 'json', ...opts, destination: { write: (s: string) => lines.push(s) } });
  const json = () =>
    lines
      .join('')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { logs, lines, json };
}

const sa: SaRef = {
  conn: 'onprem',
  uid: 3,
  spiI: '0123456789abcdef',
  spiR: 'fedcba9876543210',
  local: { address: '10.0.0.5', port: 4500 },
  remote: { address: '198.51.100.1', port: 4500 },
};

describe('secrets never reach the log', () => {
  const PSK = 'super-secret-psk-value-0815';
  const keyBytes = new Uint8Array([0xde, 0xad, 0xbe, 0xef, 0x11, 0x22, 0x33, 0x44]);

  it('at the most verbose level, in JSON and pretty format', () => {
    for (const format of ['json', 'pretty'] as const) {
      const { logs, lines } = collect({ level: 'trace', format });
      const l = logs.get('ike');
      l.trace({ psk: PSK, secret: PSK, key: PSK }, 'top-level');
      l.debug(
        {
          sa: {
            keys: { skD: PSK, skAi: keyBytes, skAr: keyBytes, skEi: PSK, skEr: PSK, skPi: PSK, skPr: PSK },
          },
        },
        'nested',
      );
      l.info(
        { spec: { encKey: keyBytes, integKey: keyBytes, deeper: { a: { b: { c: { psk: PSK } } } } } },
        'installer spec',
      );
      l.info({ blob: keyBytes, list: [{ Psk: PSK }], m: new Map([['secret', PSK]]) }, 'misc');
      // a whole parsed config object, as someone might log it
      const cfg = loadConfig(
        `connections:\n  c:\n    remote_addrs: [192.0.2.1]\n    psk: { value: '${PSK}' }\n    children:\n      x: { local_ts: [10.0.0.0/8], remote_ts: [172.16.0.0/16] }\n`,
        {},
      );
      expect(cfg.ok).toBe(true);
      l.info({ config: cfg.ok ? cfg.value : undefined }, 'config');
      const out = lines.join('');
      expect(out).not.toContain(PSK);
      expect(out).not.toMatch(/deadbeef|222,173,190,239|de:ad:be:ef/i);
      expect(out).toContain('[redacted]');
      expect(out).toContain('[8 bytes]');
    }
  });

  it('scrub keeps harmless fields and marks cycles', () => {
    const o: Record<string, unknown> = { spiI: 'abc', n: 5n, keyBits: 256 };
    o.self = o;
    expect(scrub(o)).toEqual({ spiI: 'abc', n: '5', keyBits: 256, self: '[circular]' });
  });
});

describe('levels per subsystem', () => {
  it('are set at start and changeable at run time', () => {
    const { logs, json } = collect({ level: 'info', subsystems: { ike: 'debug', k8s: 'warn' } });
    logs.get('ike').debug('ike debug shown');
    logs.get('child').debug('child debug hidden');
    logs.get('k8s').info('k8s info hidden');
    logs.setLevel('child', 'debug');
    logs.get('child').debug('child debug shown');
    logs.setLevel('*', 'error');
    logs.get('ike').warn('ike warn hidden');
    expect(json().map((o) => o.msg)).toEqual(['ike debug shown', 'child debug shown']);
    expect(logs.levels().net).toBe('error');
  });

  it('JSON lines carry level label, ISO time and subsys', () => {
    const { logs, json } = collect();
    logs.get('net').warn({ port: 500 }, 'hello');
    const [o] = json();
    expect(o).toMatchObject({ level: 'warn', subsys: 'net', port: 500, msg: 'hello' });
    expect(String(o?.time)).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  });
});

describe('pretty format', () => {
  it('formats one line per entry', () => {
    const line = formatPretty({
      level: 'info',
      time: '2024-05-01T12:00:01.234Z',
      subsys: 'ike',
      msg: 'IKE_SA onprem[3] ESTABLISHED',
      peer: '198.51.100.1:4500',
      detail: 'has spaces',
    });
    expect(line).toBe(
      '12:00:01.234 INFO  [ike] IKE_SA onprem[3] ESTABLISHED  peer=198.51.100.1:4500 detail="has spaces"',
    );
  });
  it('is chosen by format auto on a TTY', () => {
    const { logs, lines } = collect({ format: 'auto', isTty: true, color: false });
    expect(logs.pretty).toBe(true);
    logs.get('config').error('bad');
    expect(lines.join('')).toMatch(/^\d\d:\d\d:\d\d\.\d{3} ERROR \[config\] bad\n$/);
    expect(collect({ format: 'auto', isTty: false }).logs.pretty).toBe(false);
  });
});

describe('busToLog', () => {
  function one(ev: BusEvent, level: LogOptions['level'] = 'debug') {
    const { logs, json } = collect({ level });
    busToLog(ev, logs);
    return json();
  }

  it('IKE state change: info with conn, SPIs, peer', () => {
    const [o] = one({ ev: 'ike-state', sa, state: 'CONNECTING', initiator: true });
    expect(o).toMatchObject({
      level: 'info',
      subsys: 'ike',
      msg: 'IKE_SA onprem[3] CONNECTING',
      conn: 'onprem',
      sa: 'onprem[3]',
      spiI: '0123456789abcdef',
      spiR: 'fedcba9876543210',
      peer: '198.51.100.1:4500',
      local: '10.0.0.5:4500',
      state: 'CONNECTING',
      role: 'initiator',
    });
  });

  it('IKE established', () => {
    const [o] = one({
      ev: 'ike-established',
      sa,
      initiator: false,
      algorithms: 'AES_GCM_16_256/PRF_HMAC_SHA2_384/ECP_384',
      natLocal: true,
      natRemote: false,
      localId: '10.0.0.5',
      remoteId: '198.51.100.1',
      setupMs: 42,
    });
    expect(o?.msg).toBe(
      'IKE_SA onprem[3] established between 10.0.0.5:4500[10.0.0.5]...198.51.100.1:4500[198.51.100.1] AES_GCM_16_256/PRF_HMAC_SHA2_384/ECP_384 (NAT: local)',
    );
    expect(o).toMatchObject({ level: 'info', state: 'ESTABLISHED', setupMs: 42, role: 'responder' });
  });

  it('CHILD_SA state with child name, SPIs and selectors', () => {
    const [o] = one({
      ev: 'child-state',
      sa,
      child: 'net',
      uid: 5,
      state: 'INSTALLED',
      spiIn: 0xc1234567,
      spiOut: 0x0000abcd,
      localTs: ['10.10.0.0/16', '10.96.0.0/12'],
      remoteTs: ['192.168.100.0/24'],
      encap: true,
    });
    expect(o).toMatchObject({
      level: 'info',
      subsys: 'child',
      child: 'net',
      conn: 'onprem',
      spiI: '0123456789abcdef',
      peer: '198.51.100.1:4500',
      spiIn: 'c1234567',
      spiOut: '0000abcd',
      msg: 'CHILD_SA net{5} INSTALLED in IKE_SA onprem[3], SPIs c1234567_i 0000abcd_o, TS 10.10.0.0/16 10.96.0.0/12 === 192.168.100.0/24',
    });
  });

  it('messages at debug, as strongSwan prints them; hidden at info', () => {
    const ev: BusEvent = {
      ev: 'message',
      sa,
      dir: 'in',
      exchange: 'IKE_AUTH',
      response: false,
      msgId: 1,
      summary: '[ IDi AUTH SA TSi TSr ]',
      bytes: 320,
      remote: sa.remote,
    };
    const [o] = one(ev);
    expect(o).toMatchObject({
      level: 'debug',
      msg: 'received IKE_AUTH request 1 [ IDi AUTH SA TSi TSr ] from 198.51.100.1:4500 (320 bytes)',
    });
    expect(one(ev, 'info')).toEqual([]);
    const [r] = one({
      ...ev,
      dir: 'out',
      response: true,
      msgId: 0,
      exchange: 'IKE_SA_INIT',
      summary: '[ SA KE No ]',
      remote: { address: '2001:db8::1', port: 500 },
    });
    expect(r?.msg).toBe('sending IKE_SA_INIT response 0 [ SA KE No ] to [2001:db8::1]:500 (320 bytes)');
  });

  it('failures at error (or warn when recovered) with their detail sentence', () => {
    const [a] = one({
      ev: 'failure',
      sa,
      reason: 'AUTHENTICATION_FAILED',
      detail:
        'the peer rejected our AUTH — pre-shared key or IDs differ (our ID 10.0.0.5, peer ID 198.51.100.1)',
    });
    expect(a).toMatchObject({
      level: 'error',
      subsys: 'ike',
      reason: 'AUTHENTICATION_FAILED',
      msg: 'AUTHENTICATION_FAILED: the peer rejected our AUTH — pre-shared key or IDs differ (our ID 10.0.0.5, peer ID 198.51.100.1)',
    });
    const [b] = one({
      ev: 'failure',
      conn: 'onprem',
      reason: 'INVALID_KE_PAYLOAD',
      detail: 'INVALID_KE_PAYLOAD: peer wants ECP_256, retrying',
    });
    expect(b).toMatchObject({
      level: 'warn',
      conn: 'onprem',
      msg: 'INVALID_KE_PAYLOAD: peer wants ECP_256, retrying',
    });
    const [c] = one({
      ev: 'failure',
      sa,
      reason: 'KERNEL',
      detail: 'addSa failed: EEXIST',
      fields: { errno: 17 },
    });
    expect(c).toMatchObject({ level: 'error', subsys: 'kernel', errno: 17 });
  });

  it('retransmit, dropped and free log events', () => {
    expect(one({ ev: 'retransmit', sa, exchange: 'IKE_SA_INIT', msgId: 0, attempt: 2 })[0]).toMatchObject({
      level: 'info',
      msg: 'retransmit 2 of IKE_SA_INIT request 0 to 198.51.100.1:4500',
    });
    expect(
      one({ ev: 'dropped', reason: 'malformed', remote: sa.remote, detail: 'truncated header' })[0],
    ).toMatchObject({
      level: 'debug',
      subsys: 'net',
      msg: 'dropped packet from 198.51.100.1:4500: malformed: truncated header',
    });
    expect(one({ ev: 'log', level: 'warn', subsys: 'knl', msg: 'hello', fields: { x: 1 } })[0]).toMatchObject(
      {
        level: 'warn',
        subsys: 'kernel',
        msg: 'hello',
        x: 1,
      },
    );
  });
});
