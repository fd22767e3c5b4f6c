import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/common/errors.js';
import {
  type ConfigResult,
  formatIdentity,
  type LoadedConfig,
  loadConfig,
  loadEnvConfig,
  parseDuration,
  parseIdentity,
  parseTrafficSelector,
  SecretBytes,
} from '../../src/daemon/config.js';
import { parseProposal } from '../../src/ike/sa/proposal-syntax.js';
import { IdType } from '../../src/ike/wire/constants.js';

const PSK_TEXT = 'correct-horse-battery-staple-4711';
const files: Record<string, string> = {
  '/etc/ikegw/psk': `${PSK_TEXT}\n`,
  '/etc/ikegw/hexpsk': '0x00112233445566778899aabbccddeeff',
};
const readFile = (p: string): Uint8Array => {
  const f = files[p];
  if (f === undefined) throw Object.assign(new Error(`ENOENT: no such file '${p}'`), { code: 'ENOENT' });
  return new TextEncoder().encode(f);
};

function ok(r: ConfigResult): LoadedConfig {
  if (!r.ok) throw new Error(`expected ok, got:\n${r.errors.map((e) => e.message).join('\n')}`);
  return r.value;
}
function errors(r: ConfigResult): string[] {
  if (r.ok) throw new Error('expected errors, config was accepted');
  for (const e of r.errors) expect(e).toBeInstanceOf(ConfigError);
  return r.errors.map((e) => e.message);
}
const stringify = (v: unknown): string =>
  JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : x));
const load = (yaml: string, env: Record<string, string> = {}): ConfigResult =>
  loadConfig(yaml, env, { readFile });

/** A minimal valid connection, with `extra` lines spliced in at connection / child level. */
function conn(extraConn = '', extraChild = ''): string {
  return `
connections:
  onprem:
    remote_addrs: [198.51.100.1]
    psk: { file: /etc/ikegw/psk }
${extraConn}
    children:
      net:
        local_ts: [10.10.0.0/16]
        remote_ts: [192.168.100.0/24]
${extraChild}
`;
}

const FULL = `
connections:
  onprem:                       # connection name
    remote_addrs: [198.51.100.1]
    local_addrs: []
    remote_port: 500
    local: { id: 10.0.0.5 }
    remote: { id: '%any' }
    psk: { file: /etc/ikegw/psk }
    proposals: [default]
    encap: false
    fragmentation: true
    dpd_delay: 30s
    dpd_action: restart
    rekey_time: 4h
    over_time: 0
    children:
      net:
        local_ts: [10.10.0.0/16, 10.96.0.0/12]
        remote_ts: [192.168.100.0/24]
        esp_proposals: [default]
        start_action: trap
        close_action: none
        rekey_time: 1h
        life_time: 0
        replay_window: 64
datapath: auto
listen: { address: '0.0.0.0', port: 500, nat_port: 4500 }
retransmit: { timeout: 4s, base: 1.8, tries: 5, jitter: 0 }
dos: { cookie_threshold: 10, half_open_timeout: 30s }
keepalive: 20s
log: { level: info, format: auto, subsystems: { ike: debug } }
metrics: { listen: '0.0.0.0:9500' }
control: { socket: /run/ikegw/ikegw.sock }
`;

describe('loadConfig: a good config', () => {
  it('turns the documented example into the expected EngineConfig and DaemonSettings', () => {
    const { engine, daemon } = ok(load(FULL));
    expect(engine.connections).toHaveLength(1);
    const c = engine.connections[0]!;
    expect(c).toMatchObject({
      name: 'onprem',
      localAddrs: [],
      remoteAddrs: ['198.51.100.1'],
      remotePort: 500,
      encap: false,
      fragmentation: true,
      fragmentSize: 1280,
      dpdDelay: 30,
      dpdAction: 'restart',
      rekeyTime: 14400,
      overTime: 0,
      initialContact: true,
    });
    expect(c.localId).toEqual({ type: IdType.IPV4_ADDR, data: new Uint8Array([10, 0, 0, 5]) });
    expect(c.remoteId).toBeUndefined();
    expect(Buffer.from(c.psk).toString()).toBe(PSK_TEXT); // trailing newline of the file stripped
    expect(c.ikeProposals).toEqual(parseProposal('default', 'ike'));
    expect(c.children).toEqual([
      {
        name: 'net',
        localTs: [
          {
            family: 4,
            protocol: 0,
            startPort: 0,
            endPort: 65535,
            startAddr: '10.10.0.0',
            endAddr: '10.10.255.255',
          },
          {
            family: 4,
            protocol: 0,
            startPort: 0,
            endPort: 65535,
            startAddr: '10.96.0.0',
            endAddr: '10.111.255.255',
          },
        ],
        remoteTs: [
          {
            family: 4,
            protocol: 0,
            startPort: 0,
            endPort: 65535,
            startAddr: '192.168.100.0',
            endAddr: '192.168.100.255',
          },
        ],
        espProposals: parseProposal('default', 'esp'),
        startAction: 'trap',
        closeAction: 'none',
        rekeyTime: 3600,
        lifeTime: 0,
        rekeyBytes: 0n,
        lifeBytes: 0n,
        rekeyPackets: 0n,
        lifePackets: 0n,
        replayWindow: 64,
        reqid: 1,
      },
    ]);
    expect(engine.retransmit).toEqual({ timeoutMs: 4000, base: 1.8, tries: 5, jitter: 0, limitMs: 0 });
    expect(engine.cookieThreshold).toBe(10);
    expect(engine.halfOpenTimeoutMs).toBe(30_000);
    expect(engine.keepalive).toBe(20);
    expect(daemon).toEqual({
      datapath: 'auto',
      listen: { address: '0.0.0.0', port: 500, natPort: 4500 },
      log: { level: 'info', format: 'auto', subsystems: { ike: 'debug' } },
      metrics: { host: '0.0.0.0', port: 9500 },
      control: { socket: '/run/ikegw/ikegw.sock' },
      inlinePsk: [],
    });
  });

  it('fills strongSwan defaults for a minimal connection', () => {
    const { engine, daemon } = ok(load(conn()));
    const c = engine.connections[0]!;
    expect(c).toMatchObject({
      remotePort: 500,
      dpdDelay: 0,
      dpdAction: 'clear',
      rekeyTime: 14400,
      overTime: 1440,
    });
    expect(c.localId).toBeUndefined();
    const ch = c.children[0]!;
    expect(ch).toMatchObject({
      startAction: 'none',
      closeAction: 'none',
      rekeyTime: 3600,
      lifeTime: 3960,
      replayWindow: 32,
    });
    expect(daemon).toMatchObject({
      datapath: 'auto',
      listen: { address: '0.0.0.0', port: 500, natPort: 4500 },
    });
    expect(daemon.metrics).toBeUndefined();
    expect(daemon.chart).toBeUndefined();
  });

  it('accepts swanctl-style comma lists, yes/no booleans and ID forms', () => {
    const y = conn(
      `    local: { id: '@vpn.example.com', auth: psk }\n    remote: { id: '@#0a0b0c' }\n    encap: yes\n    proposals: aes256gcm16-prfsha384-ecp384, aes128-sha256-x25519`,
      '        esp_proposals: [aes128gcm16, aes256-sha256-ecp384-esn]\n        local_ts: 10.10.0.0/16,10.96.0.0/12',
    );
    // local_ts given twice would be a YAML duplicate key; use a variant without the first one
    const c = ok(load(y.replace('        local_ts: [10.10.0.0/16]\n', ''))).engine.connections[0]!;
    expect(c.encap).toBe(true);
    expect(c.localId).toEqual({ type: IdType.FQDN, data: new TextEncoder().encode('vpn.example.com') });
    expect(c.remoteId).toEqual({ type: IdType.KEY_ID, data: new Uint8Array([10, 11, 12]) });
    expect(c.ikeProposals).toHaveLength(2);
    expect(c.children[0]!.espProposals).toHaveLength(2);
    expect(c.children[0]!.localTs.map((t) => t.startAddr)).toEqual(['10.10.0.0', '10.96.0.0']);
  });

  it('allocates reqids 1, 2, 3... in file order, skipping explicit ones', () => {
    const y = `
connections:
  a:
    remote_addrs: [198.51.100.1]
    psk: { file: /etc/ikegw/psk }
    children:
      c1: { local_ts: [10.0.1.0/24], remote_ts: [10.1.1.0/24] }
      c2: { local_ts: [10.0.2.0/24], remote_ts: [10.1.2.0/24], reqid: 1 }
  b:
    remote_addrs: [198.51.100.2]
    psk: { file: /etc/ikegw/psk }
    children:
      c3: { local_ts: [10.0.3.0/24], remote_ts: [10.1.3.0/24] }
      c4: { local_ts: [10.0.4.0/24], remote_ts: [10.1.4.0/24] }
`;
    const cs = ok(load(y)).engine.connections.flatMap((c) => c.children.map((ch) => [ch.name, ch.reqid]));
    expect(cs).toEqual([
      ['c1', 2],
      ['c2', 1],
      ['c3', 3],
      ['c4', 4],
    ]);
  });

  it('PSK from env, from a file in strongSwan 0x hex, or inline (noted in inlinePsk)', () => {
    const e = ok(load(conn().replace('{ file: /etc/ikegw/psk }', '{ env: MY_PSK }'), { MY_PSK: PSK_TEXT }));
    expect(Buffer.from(e.engine.connections[0]!.psk).toString()).toBe(PSK_TEXT);
    const h = ok(load(conn().replace('/etc/ikegw/psk', '/etc/ikegw/hexpsk')));
    expect(Buffer.from(h.engine.connections[0]!.psk).toString('hex')).toBe(
      '00112233445566778899aabbccddeeff',
    );
    const v = ok(
      load(
        conn().replace(
          '{ file: /etc/ikegw/psk }',
          `{ value: '0s${Buffer.from(PSK_TEXT).toString('base64')}' }`,
        ),
      ),
    );
    expect(Buffer.from(v.engine.connections[0]!.psk).toString()).toBe(PSK_TEXT);
    expect(v.daemon.inlinePsk).toEqual(['onprem']);
  });

  it('warns (does not fail) about a short PSK and selectors with host bits', () => {
    const r = load(
      conn()
        .replace('{ file: /etc/ikegw/psk }', "{ value: 'short' }")
        .replace('192.168.100.0/24', '192.168.100.7/24'),
    );
    expect(r.ok).toBe(true);
    expect(r.warnings).toEqual([
      'connections.onprem.psk.value: the pre-shared key is only 5 bytes; short keys can be guessed offline from one captured IKE_AUTH (RFC 7296 §2.15) — use 16+ random bytes',
      'connections.onprem.children.net.remote_ts[0]: 192.168.100.7/24 has host bits set; using 192.168.100.0/24',
    ]);
  });

  it('never reveals the PSK through JSON, inspect or string conversion', () => {
    const cfg = ok(load(FULL));
    const psk = cfg.engine.connections[0]!.psk;
    expect(psk).toBeInstanceOf(SecretBytes);
    expect(psk).toBeInstanceOf(Uint8Array);
    for (const s of [stringify(cfg), inspect(cfg, { depth: 10 }), String(psk), `${psk}`]) {
      expect(s).not.toContain(PSK_TEXT);
      expect(s).not.toContain(Array.from(new TextEncoder().encode(PSK_TEXT)).join(','));
    }
    expect(JSON.stringify({ psk })).toBe('{"psk":"[secret]"}');
    // still usable as key material
    expect(Buffer.from(psk).toString()).toBe(PSK_TEXT);
  });
});

describe('loadConfig: each bad field gives one error naming it', () => {
  it.each([
    [
      'an invalid CIDR',
      conn().replace('192.168.100.0/24', '10.0.0.0/33'),
      'connections.onprem.children.net.remote_ts[0]: "10.0.0.0/33" is not a valid CIDR',
    ],
    [
      'a typo in a key',
      conn('    dpd_dealy: 30s'),
      'connections.onprem.dpd_dealy: unknown key (did you mean "dpd_delay"?); allowed: remote_addrs, local_addrs, remote_port, local, remote, psk, send_cert, proposals, encap, fragmentation, fragment_size, dpd_delay, dpd_action, dpd_timeout, rekey_time, over_time, unique, version, children',
    ],
    [
      'a missing peer address',
      conn().replace('    remote_addrs: [198.51.100.1]\n', ''),
      "connections.onprem.remote_addrs: is required (the peer's address, or ['%any'] to only respond)",
    ],
    [
      'a host name as peer',
      conn().replace('198.51.100.1', 'vpn.example.com'),
      'connections.onprem.remote_addrs[0]: "vpn.example.com" is not an IP address or %any (host names and ranges are not supported)',
    ],
    [
      'a bad duration',
      conn('    dpd_delay: 30 seconds'),
      'connections.onprem.dpd_delay: must be a duration like 30s, 5m, 4h, 1d (plain number = seconds), got "30 seconds"',
    ],
    [
      'a bad enum',
      conn('    dpd_action: hold'),
      'connections.onprem.dpd_action: must be one of clear | trap | restart, got "hold"',
    ],
    [
      'a forbidden proposal keyword',
      conn('    proposals: [aes128-sha256-modp1024]'),
      'connections.onprem.proposals[0]: "modp1024": MODP group 2 (1024 bit) is too weak (RFC 8247 §2.4: SHOULD NOT; Logjam); not supported',
    ],
    [
      'a bad ESP proposal',
      conn('', '        esp_proposals: [aes128gcm16-sha256]'),
      'connections.onprem.children.net.esp_proposals[0]: "aes128gcm16-sha256": an AEAD algorithm (aes128gcm16) takes no integrity algorithm (sha256); RFC 7296 §3.3 — use prfXXX for the IKE PRF instead',
    ],
    [
      'a port out of range',
      conn('    remote_port: 70000'),
      'connections.onprem.remote_port: must be between 1 and 65535, got 70000',
    ],
    [
      'a non-boolean',
      conn('    encap: maybe'),
      'connections.onprem.encap: must be true/false (or yes/no), got "maybe"',
    ],
    [
      'a PSK env var that is not set',
      conn().replace('{ file: /etc/ikegw/psk }', '{ env: NOPE }'),
      'connections.onprem.psk.env: environment variable NOPE is not set or empty',
    ],
    [
      'an unreadable PSK file',
      conn().replace('/etc/ikegw/psk', '/nonexistent'),
      'connections.onprem.psk.file: cannot read "/nonexistent": ENOENT',
    ],
    [
      'two PSK sources',
      conn().replace('{ file: /etc/ikegw/psk }', "{ file: /etc/ikegw/psk, value: 'x' }"),
      'connections.onprem.psk: give exactly one of file, env, value (got file, value)',
    ],
    [
      'an unquoted numeric inline PSK',
      conn().replace('{ file: /etc/ikegw/psk }', '{ value: 0x1234 }'),
      'connections.onprem.psk.value: must be a quoted string (YAML turned the value into a non-string; quote it)',
    ],
    [
      'a missing PSK',
      conn().replace('    psk: { file: /etc/ikegw/psk }\n', ''),
      'connections.onprem.psk: is required: { file: /path } or { env: VAR } or { value: ... }',
    ],
    [
      'a local %any id',
      conn("    local: { id: '%any' }"),
      'connections.onprem.local.id: %any is only allowed for the remote identity; omit local.id to use the local address',
    ],
    [
      'a bad DN identity',
      conn("    remote: { id: 'C=CH, XX=strongSwan, CN=moon' }"),
      'connections.onprem.remote.id: "C=CH, XX=strongSwan, CN=moon" is not a valid distinguished name: unknown DN attribute "XX"',
    ],
    [
      'pubkey without a certificate',
      conn('    local: { auth: pubkey }'),
      'connections.onprem.local.certs: is required with local.auth pubkey: our certificate file (PEM or DER), intermediates after it',
    ],
    [
      'an unknown auth',
      conn('    local: { auth: eap }'),
      'connections.onprem.local.auth: must be one of psk, pubkey, rsa/pss, got "eap"',
    ],
    ['IKEv1', conn('    version: 1'), 'connections.onprem.version: only IKEv2 (2) is supported, got 1'],
    [
      'no children',
      conn().replace(/ {4}children:[\s\S]*$/, ''),
      'connections.onprem.children: at least one child (CHILD_SA) is required',
    ],
    [
      'missing remote_ts',
      conn().replace('        remote_ts: [192.168.100.0/24]\n', ''),
      'connections.onprem.children.net.remote_ts: is required (one or more CIDRs)',
    ],
    [
      'dynamic selectors',
      conn().replace('[10.10.0.0/16]', '[dynamic]'),
      'connections.onprem.children.net.local_ts[0]: "dynamic" is not supported; give CIDRs (e.g. 10.10.0.0/16)',
    ],
    [
      'a port without protocol',
      conn().replace('[10.10.0.0/16]', "['10.10.0.0/16[/443]']"),
      'connections.onprem.children.net.local_ts[0]: "10.10.0.0/16[/443]": a port needs protocol tcp, udp or sctp',
    ],
    [
      'life_time not above rekey_time',
      conn('', '        rekey_time: 1h\n        life_time: 30m'),
      'connections.onprem.children.net.life_time: (1800s) must be longer than rekey_time (3600s)',
    ],
    [
      'transport mode',
      conn('', '        mode: transport'),
      'connections.onprem.children.net.mode: only "tunnel" is supported, got "transport"',
    ],
    [
      'trap with %any peer',
      conn('', '        start_action: trap').replace('[198.51.100.1]', "['%any']"),
      'connections.onprem.children.net.start_action: "trap" needs a concrete peer address, but remote_addrs is %any',
    ],
    [
      'differing child dpd_action',
      conn('    dpd_action: clear', '        dpd_action: restart'),
      'connections.onprem.children.net.dpd_action: "restart" differs from the connection\'s "clear"; ikegw applies one dpd_action per connection',
    ],
    [
      'a bad connection name',
      conn().replace('onprem:', '"on prem":'),
      'connections.on prem: connection names may use letters, digits, ".", "_" and "-" (max 64)',
    ],
    [
      `equal ports`,
      `${conn()}listen: { port: 4500 }`,
      'listen.nat_port: must differ from listen.port (4500)',
    ],
    [
      'a bad listen address',
      `${conn()}listen: { address: localhost }`,
      'listen.address: "localhost" is not an IP address (use 0.0.0.0 or :: for all)',
    ],
    [
      'a bad datapath',
      `${conn()}datapath: dpdk`,
      'datapath: must be one of auto | xfrm | userspace | memory, got "dpdk"',
    ],
    [
      'a bad jitter',
      `${conn()}retransmit: { jitter: 150 }`,
      'retransmit.jitter: must be between 0 and 100, got 150',
    ],
    [
      'an unknown log subsystem',
      `${conn()}log: { subsystems: { ikee: debug } }`,
      'log.subsystems.ikee: unknown key (did you mean "ike"?); allowed: daemon, ike, child, net, kernel, config, k8s',
    ],
    [
      'a bad log level',
      `${conn()}log: { subsystems: { ike: loud } }`,
      'log.subsystems.ike: must be one of trace | debug | info | warn | error | fatal | silent, got "loud"',
    ],
    [
      'a bad metrics address',
      `${conn()}metrics: { listen: 9500 }`,
      'metrics.listen: "9500" must be host:port, [v6]:port or :port',
    ],
    [
      'a relative control socket',
      `${conn()}control: { socket: ikegw.sock }`,
      'control.socket: must be an absolute path',
    ],
    [
      'a top-level typo',
      `${conn()}keepalve: 10s`,
      'keepalve: unknown key (did you mean "keepalive"?); allowed: connections, datapath, listen, retransmit, dos, keepalive, log, metrics, control, ha',
    ],
    [
      'a remote_ts overlapping local_ts',
      conn().replace('192.168.100.0/24', '10.10.5.0/24'),
      'connections.onprem.children.net.remote_ts[0]: 10.10.5.0/24 overlaps local_ts 10.10.0.0/16',
    ],
    ['no connections', 'datapath: memory\n', 'connections: is required (at least one connection)'],
    ['an empty file', '', 'connections: is required (the file is empty)'],
  ])('%s', (_what, yaml, expected) => {
    expect(errors(load(yaml))).toEqual([expected]);
  });

  it('reports every error at once, nothing half-way', () => {
    const y = conn('    dpd_delay: soon\n    remote_port: 0', '        replay_window: -1').replace(
      '192.168.100.0/24',
      '300.1.1.1/24',
    );
    expect(errors(load(y))).toEqual([
      'connections.onprem.remote_port: must be between 1 and 65535, got 0',
      'connections.onprem.dpd_delay: must be a duration like 30s, 5m, 4h, 1d (plain number = seconds), got "soon"',
      'connections.onprem.children.net.remote_ts[0]: "300.1.1.1/24" is not a valid CIDR',
      'connections.onprem.children.net.replay_window: must be between 0 and 4096, got -1',
    ]);
  });

  it('remote_ts within or partly over local_ts: each such entry, by address only', () => {
    const child = (local: string, remote: string): string =>
      conn().replace('[10.10.0.0/16]', `[${local}]`).replace('[192.168.100.0/24]', `[${remote}]`);
    expect(
      errors(load(child('10.10.0.0/16, 10.96.0.0/12', '192.168.0.0/16, 10.100.0.0/16, 0.0.0.0/0'))),
    ).toEqual(['connections.onprem.children.net.remote_ts[1]: 10.100.0.0/16 overlaps local_ts 10.96.0.0/12']);
    // a remote range wholly containing the local ones is a full tunnel, allowed as in strongSwan
    ok(load(child('10.10.0.0/16, 10.96.0.0/12', '0.0.0.0/0')));
    expect(errors(load(child('fd00:10::/56', 'fd00:10:0:ff::/64')))).toEqual([
      'connections.onprem.children.net.remote_ts[0]: fd00:10:0:ff::/64 overlaps local_ts fd00:10::/56',
    ]);
    // a range, and selectors that differ only in protocol/ports still share addresses
    expect(errors(load(child('"10.10.0.0/16[tcp/443]"', '"10.10.255.250-10.11.0.5[udp]"')))).toEqual([
      'connections.onprem.children.net.remote_ts[0]: 10.10.255.250-10.11.0.5[udp] overlaps local_ts 10.10.0.0/16[tcp/443]',
    ]);
    // adjacent ranges and other families do not overlap
    ok(load(child('10.10.0.0/16, 10.96.0.0/12', '10.9.255.0/24, 10.11.0.0/16, 10.112.0.0/12, fd00::/8')));
    ok(load(child('fd00:10::/56', 'fd00:10:0:100::/56, 10.10.0.0/16')));
  });

  it('duplicate explicit reqids', () => {
    const y = conn('', '        reqid: 7').replace(
      '    children:\n',
      '    children:\n      other: { local_ts: [10.0.0.0/8], remote_ts: [172.16.0.0/16], reqid: 7 }\n',
    );
    expect(errors(load(y))).toEqual([
      'connections.onprem.children.net.reqid: 7 is already used by connections.onprem.children.other',
    ]);
  });

  it('YAML syntax errors and duplicate keys carry the line', () => {
    const dup = errors(load(conn('    encap: true\n    encap: false')));
    expect(dup).toHaveLength(1);
    expect(dup[0]).toMatch(/^yaml:\d+:\d+: Map keys must be unique/);
    const syn = errors(load('connections: [\n'));
    expect(syn[0]).toMatch(/^yaml:\d+:\d+: /);
  });
});

describe('chart environment (VPN_*)', () => {
  const env = {
    VPN_PEER_CIDRS: '192.168.100.0/24 172.16.0.0/12',
    VPN_POD_CIDR: '10.10.0.0/16',
    VPN_SERVICE_CIDR: '10.96.0.0/12',
    VPN_MTU: '1300',
    VPN_FRONTEND_POD: 'vpn-frontend-0',
  };

  it('is picked up next to a config file', () => {
    expect(ok(load(conn(), env)).daemon.chart).toEqual({
      peerCidrs: ['192.168.100.0/24', '172.16.0.0/12'],
      podCidr: '10.10.0.0/16',
      serviceCidr: '10.96.0.0/12',
      mtu: 1300,
      frontendPod: 'vpn-frontend-0',
    });
    expect(ok(load(conn(), { ...env, VPN_MTU: '' })).daemon.chart?.mtu).toBeUndefined();
  });

  it('--from-env builds the chart connection "net-net"', () => {
    const r = loadEnvConfig(
      { ...env, IKEGW_PEER: '198.51.100.1', IKEGW_PSK_FILE: '/etc/ikegw/psk' },
      { readFile },
    );
    const { engine, daemon } = ok(r);
    const c = engine.connections[0]!;
    expect(c.name).toBe('net-net');
    expect(c.remoteAddrs).toEqual(['198.51.100.1']);
    expect(c.remoteId).toBeUndefined();
    expect(Buffer.from(c.psk).toString()).toBe(PSK_TEXT);
    expect(c.ikeProposals).toEqual(parseProposal('default', 'ike'));
    const ch = c.children[0]!;
    expect(ch.name).toBe('net-net');
    expect(ch.startAction).toBe('trap');
    expect(ch.reqid).toBe(1);
    expect(ch.localTs.map((t) => `${t.startAddr}-${t.endAddr}`)).toEqual([
      '10.10.0.0-10.10.255.255',
      '10.96.0.0-10.111.255.255',
    ]);
    expect(ch.remoteTs.map((t) => `${t.startAddr}-${t.endAddr}`)).toEqual([
      '192.168.100.0-192.168.100.255',
      '172.16.0.0-172.31.255.255',
    ]);
    expect(daemon.chart?.mtu).toBe(1300);
    expect(daemon.datapath).toBe('auto');
  });

  it('refuses peer CIDRs overlapping the pod or service CIDR, naming the variables', () => {
    const overlapping = { ...env, VPN_PEER_CIDRS: '10.10.5.0/24 192.168.0.0/16 10.100.0.0/16' };
    const expected = [
      'VPN_PEER_CIDRS[0]: 10.10.5.0/24 overlaps VPN_POD_CIDR 10.10.0.0/16',
      'VPN_PEER_CIDRS[2]: 10.100.0.0/16 overlaps VPN_SERVICE_CIDR 10.96.0.0/12',
    ];
    // --from-env: the child's local_ts/remote_ts come from these variables; the errors name them.
    expect(
      errors(
        loadEnvConfig({ ...overlapping, IKEGW_PEER: '198.51.100.1', IKEGW_PSK: PSK_TEXT }, { readFile }),
      ),
    ).toEqual(expected);
    // next to a config file (the chart's frontend pod): the routes would capture cluster traffic
    expect(errors(load(conn(), overlapping))).toEqual(expected);
    expect(
      errors(
        loadEnvConfig(
          {
            ...env,
            VPN_POD_CIDR: 'fd00:10::/56',
            VPN_PEER_CIDRS: 'fd00::/8',
            IKEGW_PEER: '198.51.100.1',
            IKEGW_PSK: PSK_TEXT,
          },
          { readFile },
        ),
      ),
    ).toEqual(['VPN_PEER_CIDRS[0]: fd00::/8 overlaps VPN_POD_CIDR fd00:10::/56']);
  });

  it('--from-env with IKEGW_PSK', () => {
    const r = loadEnvConfig(
      { ...env, IKEGW_PEER: '198.51.100.1', IKEGW_PSK: PSK_TEXT, IKEGW_DATAPATH: 'memory' },
      { readFile },
    );
    const v = ok(r);
    expect(Buffer.from(v.engine.connections[0]!.psk).toString()).toBe(PSK_TEXT);
    expect(v.daemon.datapath).toBe('memory');
    expect(stringify(v)).not.toContain(PSK_TEXT);
  });

  it('--from-env errors name the variable', () => {
    expect(
      errors(
        loadEnvConfig({ ...env, VPN_PEER_CIDRS: '192.168.100.0/24 nonsense', VPN_MTU: 'big' }, { readFile }),
      ),
    ).toEqual([
      "IKEGW_PEER: is required in --from-env mode (the on-prem gateway's IP address)",
      'IKEGW_PSK_FILE: set exactly one of IKEGW_PSK_FILE and IKEGW_PSK',
      'VPN_PEER_CIDRS[1]: "nonsense" is not a valid CIDR',
      'VPN_MTU: must be an integer, got "big"',
    ]);
    expect(
      errors(
        loadEnvConfig({ IKEGW_PEER: 'gw.example.com', IKEGW_PSK: 'x', IKEGW_PSK_FILE: '/f' }, { readFile }),
      ),
    ).toEqual([
      'IKEGW_PEER: "gw.example.com" is not an IP address',
      'IKEGW_PSK: set exactly one of IKEGW_PSK_FILE and IKEGW_PSK',
      'VPN_PEER_CIDRS: is required in --from-env mode',
      'VPN_POD_CIDR: is required in --from-env mode',
      'VPN_SERVICE_CIDR: is required in --from-env mode',
    ]);
  });
});

describe('building blocks', () => {
  it('parseDuration', () => {
    expect(parseDuration('30s')).toBe(30);
    expect(parseDuration('5m')).toBe(300);
    expect(parseDuration('4h')).toBe(14400);
    expect(parseDuration('1d')).toBe(86400);
    expect(parseDuration(45)).toBe(45);
    expect(parseDuration('2.5')).toBe(2.5);
    expect(parseDuration('250ms')).toBe(0.25);
    expect(parseDuration('-1s')).toBeUndefined();
    expect(parseDuration('1w')).toBeUndefined();
    expect(parseDuration(-3)).toBeUndefined();
  });

  it('parseTrafficSelector: CIDR, host, range, IPv6, [proto/port]', () => {
    const ts = (s: string) => {
      const r = parseTrafficSelector(s);
      if (!r.ok) throw new Error(r.error);
      return r.ts;
    };
    expect(ts('10.0.0.1')).toEqual({
      family: 4,
      protocol: 0,
      startPort: 0,
      endPort: 65535,
      startAddr: '10.0.0.1',
      endAddr: '10.0.0.1',
    });
    expect(ts('10.0.0.0/8[tcp/443]')).toEqual({
      family: 4,
      protocol: 6,
      startPort: 443,
      endPort: 443,
      startAddr: '10.0.0.0',
      endAddr: '10.255.255.255',
    });
    expect(ts('10.0.0.0/8[udp/1000-2000]')).toMatchObject({ protocol: 17, startPort: 1000, endPort: 2000 });
    expect(ts('10.0.0.0/8[icmp]')).toMatchObject({ protocol: 1, startPort: 0, endPort: 65535 });
    expect(ts('10.0.0.5-10.0.0.9')).toMatchObject({ startAddr: '10.0.0.5', endAddr: '10.0.0.9' });
    expect(ts('2001:DB8::/32')).toEqual({
      family: 6,
      protocol: 0,
      startPort: 0,
      endPort: 65535,
      startAddr: '2001:db8::',
      endAddr: '2001:db8:ffff:ffff:ffff:ffff:ffff:ffff',
    });
    expect(ts('0.0.0.0/0')).toMatchObject({ startAddr: '0.0.0.0', endAddr: '255.255.255.255' });
    for (const bad of [
      '10.0.0.0/33',
      '10.0.0',
      '010.0.0.1',
      '2001:db8::/129',
      'fe80::1%eth0',
      '10.0.0.9-10.0.0.5',
      '10.0.0.0/8[foo]',
      '10.0.0.0/8[tcp/70000]',
      '10.0.0.0/8[tcp/443',
    ]) {
      expect(parseTrafficSelector(bad).ok, bad).toBe(false);
    }
  });

  it('parseIdentity / formatIdentity', () => {
    const id = (s: string) => {
      const r = parseIdentity(s);
      if (!r.ok) throw new Error(r.error);
      return r.id;
    };
    expect(id('%any')).toBeUndefined();
    expect(id('2001:db8::1')).toEqual({
      type: IdType.IPV6_ADDR,
      data: new Uint8Array([0x20, 1, 0x0d, 0xb8, ...new Array(11).fill(0), 1]),
    });
    expect(id('vpn.example.com')?.type).toBe(IdType.FQDN);
    expect(id('fqdn:10.0.0.1')).toEqual({ type: IdType.FQDN, data: new TextEncoder().encode('10.0.0.1') });
    expect(id('user@example.com')?.type).toBe(IdType.RFC822_ADDR);
    expect(id('@@user@example.com')).toEqual(id('user@example.com'));
    for (const s of ['10.0.0.5', '2001:db8::1', 'vpn.example.com', '@#0a0b', 'user@example.com']) {
      expect(formatIdentity(id(s))).toBe(s);
    }
    expect(formatIdentity(undefined)).toBe('%any');
    expect(parseIdentity('@#abc').ok).toBe(false);
    expect(parseIdentity('300.1.1.1').ok).toBe(false);
    expect(parseIdentity('has space').ok).toBe(false);
  });
});
