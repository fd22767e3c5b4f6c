// Target `config`: the YAML configuration loader (loadConfig) on structure-aware mutations of
// valid configurations — keys and values of the parsed tree replaced with values of every kind
// (durations, addresses, selectors, proposals, identities, PSK blocks, numbers, booleans, lists,
// mappings, prototype names), keys renamed, removed, added and duplicated, subtrees copied and
// swapped — then written back as YAML (block or flow style) and mutated as text (anchors and
// aliases, tags, merge keys, indentation, lines, bytes). The files a configuration names (PSKs,
// certificates, keys) come from a fake file system; one of them holds mutated bytes of the input.
//
// Invariants: loadConfig never throws; it returns either a configuration whose numbers are all
// finite, or a non-empty list of ConfigErrors, each naming a field; neither the errors nor the
// warnings contain the PSK read from a file or the environment.
import { parse, stringify } from 'yaml';
import { ConfigError } from '../../common/errors.js';
import { loadConfig } from '../../daemon/config.js';
import { type FuzzInstance, type FuzzTarget, invariant } from '../harness.js';
import { concatBytes, getUint, havoc, putUint } from '../mutate.js';
import type { Rng } from '../rng.js';
import { FUZZ_CA_PEM, FUZZ_CRL_CA_PEM, FUZZ_CRL_PEM, FUZZ_EE_KEY_PEM, FUZZ_EE_PEM } from './config-pki.js';

/** The PSK behind files and the environment: must never show up in a message. */
const SECRET = 'Fz-SeCrEt-psk-4b1d5e9a';
const SECRET_HEX = Buffer.from(SECRET).toString('hex');

const BASES = [
  `
connections:
  onprem:
    remote_addrs: [198.51.100.1]
    psk: { file: /etc/ikegw/psk }
    children:
      cluster:
        local_ts: [10.10.0.0/16, 10.96.0.0/12]
        remote_ts: [192.168.100.0/24]
`,
  `
connections:
  onprem:
    remote_addrs: [198.51.100.1, 2001:db8::1]
    local_addrs: [172.30.0.2]
    remote_port: 4500
    local: { id: "@gw.example.com" }
    remote: { id: "198.51.100.1", auth: psk }
    psk: { env: IKEGW_PSK }
    proposals: [aes256gcm16-prfsha384-ecp384, default]
    encap: yes
    fragmentation: no
    fragment_size: 1400
    dpd_delay: 30s
    dpd_action: restart
    dpd_timeout: 2m
    rekey_time: 4h
    over_time: 10m
    unique: never
    version: 2
    children:
      cluster:
        local_ts: 10.10.0.0/16,10.96.0.0/12
        remote_ts: [192.168.100.0/24, "192.168.200.1-192.168.200.9", "10.200.0.0/16[tcp/443]"]
        esp_proposals: [aes128gcm16-modpnone-ecp256, aes256-sha256]
        start_action: trap
        close_action: start
        rekey_time: 1h
        life_time: 66m
        rekey_bytes: 1g
        life_bytes: 2g
        rekey_packets: 1000000
        replay_window: 128
        reqid: 7
        mode: tunnel
      v6:
        local_ts: ["fd00:10::/64"]
        remote_ts: ["fd00:20::/64"]
  backup:
    remote_addrs: ["%any"]
    psk: { file: /etc/ikegw/psk.hex }
    children:
      net:
        local_ts: [10.11.0.0/16]
        remote_ts: [192.168.101.0/24]
datapath: userspace
listen: { address: 0.0.0.0, port: 500, nat_port: 4500 }
retransmit: { timeout: 4s, base: 1.8, tries: 5, jitter: "20%", limit: 60s }
dos: { cookie_threshold: 10, half_open_timeout: 30s, half_open_per_ip: 5 }
keepalive: 20s
log: { level: info, format: json, subsystems: { ike: debug, kernel: warn } }
metrics: { listen: ":9100" }
control: { socket: /run/ikegw/ikegw.sock }
`,
  `
connections:
  pki:
    remote_addrs: [198.51.100.1]
    local: { auth: pubkey, certs: [/etc/ikegw/cert.pem], key: /etc/ikegw/key.pem }
    remote: { auth: pubkey, cacerts: [/etc/ikegw/ca.pem, /etc/ikegw/crlca.pem], crls: [/etc/ikegw/crl.pem], id: "@peer.example.com" }
    send_cert: always
    children:
      net:
        local_ts: [10.10.0.0/16]
        remote_ts: [192.168.100.0/24]
`,
  `
connections:
  mixed:
    remote_addrs: [2001:db8::1]
    local: { auth: psk }
    remote: { auth: pubkey, cacerts: /etc/ikegw/chain.pem }
    psk: { value: "inline-0123456789abcdef" }
    children:
      a: { local_ts: "2001:db8:1::/48", remote_ts: "::/0" }
      b: { local_ts: 10.0.0.0/8, remote_ts: 0.0.0.0/0 }
`,
];

const DICT: Record<string, unknown[]> = {
  duration: [
    '30s',
    '5m',
    '4h',
    '1d',
    '500ms',
    '0',
    '0s',
    '-1s',
    '1.5h',
    '10x',
    '',
    3600,
    -5,
    2 ** 53,
    '9'.repeat(400),
    '1e3s',
    ' 5 m ',
  ],
  address: [
    '198.51.100.1',
    '%any',
    '%any4',
    '%any6',
    '::1',
    '2001:db8::1',
    '0.0.0.0',
    '255.255.255.255',
    '1.2.3',
    '1.2.3.4.5',
    '::ffff:1.2.3.4',
    'fe80::1%eth0',
    'host.example.com',
    '',
    '10.0.0.0/8',
    '01.02.03.04',
    '1.2.3.256',
  ],
  cidr: [
    '10.10.0.0/16',
    '0.0.0.0/0',
    '::/0',
    '10.0.0.1-10.0.0.9',
    '10.0.0.9-10.0.0.1',
    '10.0.0.0/33',
    '10.10.0.0/16[tcp/443]',
    '[udp/1000-2000]',
    '10.0.0.0/8[icmp/8]',
    'dynamic',
    '2001:db8::/129',
    '1.2.3.4/24',
    '10.0.0.0/8[tcp/70000]',
    '10.0.0.0/8[300]',
    '10.0.0.0/8[tcp/443-80]',
    '10.0.0.0/8[]',
    '[',
    '10.0.0.0/8[sctp/%any]',
    '::-ffff::',
    '10.0.0.0-::1',
    '10.10.0.0/16, 10.96.0.0/12',
  ],
  proposal: [
    'default',
    'aes256gcm16-prfsha384-ecp384',
    'aes128-sha256-modp2048',
    'chacha20poly1305-prfsha256-x25519',
    'aes256-sha512-ecp521',
    'aes256gcm16-aes128gcm16-prfsha256-x25519-modpnone',
    'foo',
    'aes128--sha256',
    'aes128-sha256-ke1_ecp256',
    'aes999',
    '',
    'aes128gcm16-sha256',
    'aes128-prfsha256',
    'modpnone',
    'aes128-sha256-esn-noesn',
    '-',
    'aes256-sha1-modp1024',
  ],
  id: [
    '@gw.example.com',
    '@#0123ab',
    '@#0',
    'user@example.com',
    'C=CH, O=x, CN=y',
    'fqdn:x',
    'keyid:#00',
    '198.51.100.2',
    '%any',
    '',
    '@@x',
    'email:a@b',
    '2001:db8::1',
    'CN=gw.example.com',
    '@',
    'keyid:abc',
    'a b',
  ],
  count: ['1000', '1k', '5m', '2g', '-1', 1e20, '1.5k', 0, 2 ** 64, '18446744073709551616g'],
  bool: ['yes', 'no', 'true', 'false', 'maybe', 1, 0, true, false, 'YES'],
  enum: [
    'none',
    'trap',
    'start',
    'restart',
    'clear',
    'never',
    'always',
    'ifasked',
    'tunnel',
    'transport',
    'auto',
    'xfrm',
    'userspace',
    'memory',
    'kernel',
    'json',
    'pretty',
    'debug',
    'silent',
    'psk',
    'pubkey',
    'rsa/pss',
    'eap',
  ],
  number: [
    0,
    1,
    -1,
    500,
    4500,
    65535,
    65536,
    4096,
    4097,
    2 ** 32 - 1,
    2 ** 32,
    1.8,
    10,
    11,
    '500',
    '0x1f4',
    0.5,
    1e308,
    -0,
  ],
  path: [
    '/etc/ikegw/psk',
    '/etc/ikegw/psk.hex',
    '/etc/ikegw/psk.b64',
    '/etc/ikegw/cert.pem',
    '/etc/ikegw/key.pem',
    '/etc/ikegw/ca.pem',
    '/etc/ikegw/chain.pem',
    '/etc/ikegw/ca.der',
    '/etc/ikegw/crl.pem',
    '/etc/ikegw/crl.der',
    '/etc/ikegw/crlca.pem',
    '/etc/ikegw/fuzzed',
    '/etc/ikegw/empty',
    '/etc/ikegw/missing',
    'relative/path',
    '/run/ikegw/x.sock',
    '',
  ],
  name: [
    'onprem',
    'backup',
    'net',
    'a',
    '',
    'a b',
    '-x',
    'x'.repeat(70),
    '__proto__',
    'constructor',
    'toString',
    'hasOwnProperty',
    'é',
    '1',
    'net-net',
    'a.b_c',
  ],
};

const KEY_KIND: Record<string, keyof typeof DICT> = {
  remote_addrs: 'address',
  local_addrs: 'address',
  address: 'address',
  local_ts: 'cidr',
  remote_ts: 'cidr',
  proposals: 'proposal',
  esp_proposals: 'proposal',
  id: 'id',
  dpd_delay: 'duration',
  dpd_timeout: 'duration',
  rekey_time: 'duration',
  over_time: 'duration',
  life_time: 'duration',
  timeout: 'duration',
  limit: 'duration',
  half_open_timeout: 'duration',
  keepalive: 'duration',
  rekey_bytes: 'count',
  life_bytes: 'count',
  rekey_packets: 'count',
  life_packets: 'count',
  encap: 'bool',
  fragmentation: 'bool',
  start_action: 'enum',
  close_action: 'enum',
  dpd_action: 'enum',
  unique: 'enum',
  mode: 'enum',
  datapath: 'enum',
  format: 'enum',
  level: 'enum',
  auth: 'enum',
  send_cert: 'enum',
  remote_port: 'number',
  fragment_size: 'number',
  replay_window: 'number',
  reqid: 'number',
  port: 'number',
  nat_port: 'number',
  base: 'number',
  tries: 'number',
  jitter: 'number',
  cookie_threshold: 'number',
  half_open_per_ip: 'number',
  version: 'number',
  file: 'path',
  certs: 'path',
  key: 'path',
  cacerts: 'path',
  crls: 'path',
  socket: 'path',
};

const NAMES = DICT.name as string[];

const ALL_KEYS = [
  ...Object.keys(KEY_KIND),
  'connections',
  'children',
  'psk',
  'local',
  'remote',
  'env',
  'value',
  'listen',
  'retransmit',
  'dos',
  'log',
  'subsystems',
  'metrics',
  'control',
  'ike',
  'kernel',
];

function typo(rng: Rng, k: string): string {
  if (k.length === 0) return 'x';
  const i = rng.int(k.length);
  switch (rng.int(5)) {
    case 0:
      return k.slice(0, i) + k.slice(i + 1);
    case 1:
      return k.slice(0, i) + k[i] + k.slice(i);
    case 2:
      return k.toUpperCase();
    case 3:
      return k.replace(/_/g, '-');
    default:
      return `${k}s`;
  }
}

function randomValue(rng: Rng, key: string, depth = 0): unknown {
  const kind = Object.hasOwn(KEY_KIND, key) ? KEY_KIND[key] : undefined;
  const r = rng.int(10);
  if (kind && r < 6) return rng.pick(DICT[kind]!);
  if (r === 6) return rng.pick(DICT[rng.pick(Object.keys(DICT))]!);
  if (r === 7) return rng.pick([null, [], {}, '', '~', ' ']);
  if (r === 8 && depth < 2)
    return Array.from({ length: rng.int(3) + 1 }, () => randomValue(rng, key, depth + 1));
  if (depth < 2) return { [rng.pick(ALL_KEYS)]: randomValue(rng, rng.pick(ALL_KEYS), depth + 1) };
  return rng.pick(NAMES);
}

type Node = Record<string, unknown> | unknown[];

/** Every container in the tree with the path to it. */
function containers(
  root: unknown,
  out: Array<{ node: Node; key: string }> = [],
  key = '',
): Array<{ node: Node; key: string }> {
  if (root && typeof root === 'object') {
    out.push({ node: root as Node, key });
    for (const [k, v] of Object.entries(root)) containers(v, out, Array.isArray(root) ? key : k);
  }
  return out;
}

function mutateTree(rng: Rng, root: Record<string, unknown>): void {
  const all = containers(root);
  const { node, key } = rng.pick(all);
  if (Array.isArray(node)) {
    const i = rng.int(node.length + 1);
    switch (rng.int(4)) {
      case 0:
        node.splice(i, 0, randomValue(rng, key));
        break;
      case 1:
        if (node.length) node.splice(rng.int(node.length), 1);
        break;
      case 2:
        if (node.length) node[rng.int(node.length)] = randomValue(rng, key);
        break;
      default:
        if (node.length) node.push(structuredClone(node[rng.int(node.length)]));
    }
    return;
  }
  const keys = Object.keys(node);
  const k = keys.length ? rng.pick(keys) : rng.pick(ALL_KEYS);
  switch (rng.int(8)) {
    case 0:
    case 1:
    case 2: // a new value for a key
      node[k] = randomValue(rng, k);
      break;
    case 3: // remove
      delete node[k];
      break;
    case 4: {
      // rename (typo, or another known key)
      const v = node[k];
      delete node[k];
      node[rng.chance(0.5) ? typo(rng, k) : rng.pick(rng.chance(0.8) ? ALL_KEYS : NAMES)] = v;
      break;
    }
    case 5: // add a key
      node[rng.pick(rng.chance(0.8) ? ALL_KEYS : NAMES)] = randomValue(rng, k);
      break;
    case 6: {
      // copy a subtree here (another connection/child under a new name, or a section elsewhere)
      const src = rng.pick(all).node;
      node[rng.chance(0.5) ? `${k}${rng.int(10)}` : rng.pick(NAMES)] = structuredClone(src);
      break;
    }
    default: {
      // swap two values
      const other = rng.pick(all).node;
      const ok = Object.keys(other);
      if (!Array.isArray(other) && ok.length) {
        const k2 = rng.pick(ok);
        const t = node[k];
        node[k] = (other as Record<string, unknown>)[k2];
        (other as Record<string, unknown>)[k2] = t;
      }
    }
  }
}

const TAGS = [
  '!!binary ',
  '!!set ',
  '!!omap ',
  '!!timestamp ',
  '!!float ',
  '!!int ',
  '!!str ',
  '!!bool ',
  '!!null ',
  '!!map ',
  '!!seq ',
  '!x ',
  '!<tag:yaml.org,2002:str> ',
  '!!pairs ',
];

function mutateText(rng: Rng, text: string): string {
  const lines = text.split('\n');
  const i = rng.int(lines.length);
  switch (rng.int(10)) {
    case 0: // a tag in front of a value
      lines[i] = lines[i]!.replace(/: /, `: ${rng.pick(TAGS)}`);
      break;
    case 1: {
      // an anchor and an alias to it (maybe a merge key)
      const j = rng.int(lines.length);
      lines[i] = lines[i]!.replace(/: /, ': &a ');
      lines[j] = rng.chance(0.5)
        ? lines[j]!.replace(/: .*/, ': *a')
        : `${lines[j]!.match(/^\s*/)?.[0] ?? ''}<<: *a`;
      break;
    }
    case 2: // alias bomb
      return `a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n${text}`;
    case 3: // duplicate a line (duplicate keys)
      lines.splice(i, 0, lines[i]!);
      break;
    case 4: // delete a line
      lines.splice(i, 1);
      break;
    case 5: // indentation
      lines[i] = rng.chance(0.5) ? ` ${lines[i]}` : lines[i]!.replace(/^ /, '');
      break;
    case 6: // tab, BOM, document markers, comments
      lines[i] = rng.pick(['\t', '\ufeff', '--- ', '... ', '# ', '%YAML 1.2\n---\n', '? ']) + lines[i];
      break;
    case 7: // swap two lines
      {
        const j = rng.int(lines.length);
        const t = lines[i]!;
        lines[i] = lines[j]!;
        lines[j] = t;
      }
      break;
    default: {
      const b = havoc(rng, new TextEncoder().encode(text), [], 3);
      return Buffer.from(b).toString('utf8');
    }
  }
  return lines.join('\n');
}

/** Input: flags, the length of the fuzzed file (u16) and its bytes, then the YAML text. */
const IN_HDR = 3;

class ConfigInstance implements FuzzInstance {
  private readonly trees = BASES.map((b) => parse(b) as Record<string, unknown>);
  private readonly files: Record<string, Uint8Array>;
  private readonly counts = { ok: 0, rejected: 0, errors: 0, warnings: 0 };

  constructor() {
    const t = (s: string) => new TextEncoder().encode(s);
    const caDer = Buffer.from(FUZZ_CA_PEM.replace(/-----[^-]+-----|\s+/g, ''), 'base64');
    this.files = {
      '/etc/ikegw/psk': t(`${SECRET}\n`),
      '/etc/ikegw/psk.hex': t(`0x${SECRET_HEX}`),
      '/etc/ikegw/psk.b64': t(`0s${Buffer.from(SECRET).toString('base64')}`),
      '/etc/ikegw/cert.pem': t(FUZZ_EE_PEM),
      '/etc/ikegw/key.pem': t(FUZZ_EE_KEY_PEM),
      '/etc/ikegw/ca.pem': t(FUZZ_CA_PEM),
      '/etc/ikegw/chain.pem': t(FUZZ_EE_PEM + FUZZ_CA_PEM),
      '/etc/ikegw/ca.der': new Uint8Array(caDer),
      '/etc/ikegw/crl.pem': t(FUZZ_CRL_PEM),
      '/etc/ikegw/crl.der': new Uint8Array(
        Buffer.from(FUZZ_CRL_PEM.replace(/-----[^-]+-----|\s+/g, ''), 'base64'),
      ),
      '/etc/ikegw/crlca.pem': t(FUZZ_CRL_CA_PEM + FUZZ_CRL_PEM),
      '/etc/ikegw/empty': new Uint8Array(0),
    };
    for (const b of BASES) {
      const r = loadConfig(b, this.env(0), { readFile: (p) => this.read(p, new Uint8Array(0)) });
      if (!r.ok)
        throw new Error(
          `config target: a base configuration does not load: ${r.errors.map((e) => e.message).join('; ')}`,
        );
    }
  }

  private env(flags: number): Record<string, string | undefined> {
    const e: Record<string, string | undefined> = { IKEGW_PSK: SECRET };
    if (flags & 1) e.IKEGW_PSK = '';
    if (flags & 2) {
      e.VPN_PEER_CIDRS = '192.168.100.0/24 10.10.0.0/16';
      e.VPN_POD_CIDR = '10.10.0.0/16';
      e.VPN_SERVICE_CIDR = '10.96.0.0/12';
      e.VPN_MTU = flags & 4 ? '1400' : 'x';
      e.VPN_FRONTEND_POD = flags & 8 ? 'ikegw-0' : 'Bad_Name';
    }
    return e;
  }

  private read(path: string, fuzzed: Uint8Array): Uint8Array {
    if (path === '/etc/ikegw/fuzzed') return fuzzed;
    const f = Object.hasOwn(this.files, path) ? this.files[path] : undefined;
    if (f) return f;
    throw Object.assign(new Error(`ENOENT: no such file or directory, open '${path}'`), { code: 'ENOENT' });
  }

  generate(rng: Rng): Uint8Array {
    const tree = structuredClone(rng.pick(this.trees));
    for (let k = rng.chance(0.1) ? 0 : rng.small(5); k > 0; k--) mutateTree(rng, tree);
    let text = stringify(tree, {
      collectionStyle: rng.chance(0.8) ? 'any' : rng.pick(['block', 'flow'] as const),
      defaultStringType: rng.pick(['PLAIN', 'QUOTE_DOUBLE', 'QUOTE_SINGLE'] as const),
    });
    for (let k = rng.chance(0.6) ? 0 : rng.small(3); k > 0; k--) text = mutateText(rng, text);
    // The fuzzed file: a mutated certificate, key, CRL or PSK file.
    const base = rng.pick(Object.values(this.files));
    const file = rng.chance(0.5) ? havoc(rng, base, Object.values(this.files), 4) : base;
    const h = new Uint8Array(IN_HDR);
    h[0] = rng.int(16);
    putUint(h, 1, 2, Math.min(file.length, 0xffff));
    return concatBytes(h, file.subarray(0, 0xffff), new TextEncoder().encode(text));
  }

  run(input: Uint8Array): void {
    if (input.length < IN_HDR) return;
    const flen = getUint(input, 1, 2);
    const fuzzed = input.subarray(IN_HDR, IN_HDR + flen);
    const text = Buffer.from(input.subarray(IN_HDR + flen)).toString('utf8');
    const r = loadConfig(text, this.env(input[0]!), { readFile: (p) => this.read(p, fuzzed) });
    invariant(
      Array.isArray(r.warnings) && r.warnings.every((w) => typeof w === 'string'),
      'warnings are not strings',
    );
    const said = [...r.warnings, ...(r.ok ? [] : r.errors.map((e) => `${e.field} ${e.message}`))].join('\n');
    invariant(
      !said.includes(SECRET) && !said.toLowerCase().includes(SECRET_HEX),
      'a message contains the PSK',
      () => said.slice(0, 500),
    );
    this.counts.warnings += r.warnings.length;
    if (r.ok) {
      this.counts.ok++;
      const v = r.value;
      invariant(v.engine.connections.length > 0, 'a loaded configuration has no connection');
      for (const c of v.engine.connections)
        invariant(c.children.length > 0, 'a loaded connection has no child', () => c.name);
      const bad: string[] = [];
      const walk = (x: unknown, path: string): void => {
        if (typeof x === 'number' && !Number.isFinite(x)) bad.push(`${path}=${x}`);
        else if (x && typeof x === 'object' && !(x instanceof Uint8Array) && path.split('.').length < 8)
          for (const [k, y] of Object.entries(x)) walk(y, `${path}.${k}`);
      };
      walk(v, 'config');
      invariant(bad.length === 0, 'a loaded configuration holds a non-finite number', () => bad.join(', '));
      return;
    }
    this.counts.rejected++;
    this.counts.errors += r.errors.length;
    invariant(r.errors.length > 0, 'rejected without an error');
    for (const e of r.errors) {
      invariant(
        e instanceof ConfigError && typeof e.field === 'string' && e.message.length > 0,
        'an error is not a ConfigError with a field',
        () => String(e),
      );
    }
  }

  stats(): Record<string, number> {
    return { ...this.counts };
  }
}

export const configTarget: FuzzTarget = {
  name: 'config',
  about: 'YAML configuration loader (loadConfig) on mutated configurations: never throws, only errors',
  stateless: true,
  create: () => new ConfigInstance(),
};
