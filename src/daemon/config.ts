// The daemon's configuration file (YAML; in Kubernetes the chart's Secret holds it) -> the core's
// EngineConfig plus the adapters' DaemonSettings. Field names follow swanctl.conf (snake_case) where
// a strongSwan user would look for them; see README "Configuration" for the reference.
//
// Everything is validated before anything starts: loadConfig returns either the whole config or the
// complete list of errors, each a ConfigError naming the dotted path of the field
// ("connections.onprem.children.net.remote_ts[0]: ..."). Unknown keys are errors (typos must not be
// silently ignored), with a "did you mean" hint.
//
// Secrets: PSKs are read into SecretBytes (a Uint8Array whose toJSON/inspect/toString print
// "[secret]"), so logging or dumping the config object never reveals them. A PSK can come from a
// file, an environment variable, or — only inside this file, which is itself a secret — a literal
// value; never from the command line.
import { readFileSync } from 'node:fs';
import { inspect } from 'node:util';
import { Address4, Address6 } from 'ip-address';
import { LineCounter, parseDocument } from 'yaml';
import { DEFAULT_CONFIG_PATH, DEFAULT_CONTROL_SOCKET } from '../common/control-protocol.js';
import { parseDuration } from '../common/duration.js';
import { ConfigError } from '../common/errors.js';
import {
  isLogLevel,
  isSubsystem,
  LOG_LEVELS,
  type LogLevel,
  SUBSYSTEMS,
  type Subsystem,
} from '../common/log-levels.js';
import { type HaSettings, parseHaSection } from '../ha/config.js';
import type {
  ChildConfig,
  CloseAction,
  ConnectionConfig,
  DpdAction,
  EngineConfig,
  IdConfig,
  ProposalConfig,
  RetransmitConfig,
  StartAction,
} from '../ike/config.js';
import { defaultRetransmit } from '../ike/config.js';
import { encodeDn, formatDn, parseDnString } from '../ike/crypto/der.js';
import { parseCert } from '../ike/crypto/x509.js';
import type { TsRange } from '../ike/ports.js';
import { ProposalSyntaxError, parseProposal } from '../ike/sa/proposal-syntax.js';
import { IdType } from '../ike/wire/constants.js';
import {
  certsFromFile,
  checkCrl,
  checkLocalChain,
  crlsFromFile,
  expiryWarnings,
  keyFromFile,
  localIdForCert,
} from './certs.js';
import type { LogFormat } from './log.js';

export { DEFAULT_CONFIG_PATH, DEFAULT_CONTROL_SOCKET } from '../common/control-protocol.js';
export { parseDuration } from '../common/duration.js';

// ---- secrets ---------------------------------------------------------------------------------

/** Bytes that print as "[secret]" in JSON, util.inspect, template strings and pino. */
export class SecretBytes extends Uint8Array {
  toJSON(): string {
    return '[secret]';
  }
  override toString(): string {
    return '[secret]';
  }
  [inspect.custom](): string {
    return 'SecretBytes([secret])';
  }
}

// ---- result types ----------------------------------------------------------------------------

export type Datapath = 'auto' | 'xfrm' | 'userspace' | 'memory';

/** What the reference Helm chart passes as VPN_* environment variables (for routes / Cilium). */
export interface ChartSettings {
  peerCidrs: string[];
  podCidr?: string;
  serviceCidr?: string;
  /** undefined = no MTU on the routes (path MTU discovery). */
  mtu?: number;
  frontendPod?: string;
}

export interface DaemonSettings {
  datapath: Datapath;
  listen: { address: string; port: number; natPort: number };
  log: { level: LogLevel; format: LogFormat; subsystems: Partial<Record<Subsystem, LogLevel>> };
  /** undefined = no metrics endpoint. */
  metrics?: { host: string; port: number };
  control: { socket: string };
  chart?: ChartSettings;
  /** `ha:` (src/ha/config.ts): leader election on a Lease; undefined = always active. */
  ha?: HaSettings;
  /** Connections whose PSK is written inline (psk.value): the file must then be kept secret. */
  inlinePsk: string[];
}

export interface LoadedConfig {
  engine: EngineConfig;
  daemon: DaemonSettings;
}

export type ConfigResult =
  | { ok: true; value: LoadedConfig; warnings: string[] }
  | { ok: false; errors: ConfigError[]; warnings: string[] };

export type Env = Record<string, string | undefined>;

export interface LoadOptions {
  /** Reads a PSK file (default fs.readFileSync). */
  readFile?: (path: string) => Uint8Array;
  /**
   * Told of every certificate, key or CRL file the load read (certs.ts), with the field that named
   * it: the daemon watches these files and reloads when they change (src/daemon/cert-watch.ts).
   */
  onCredentialFile?: (file: string, field: string, bytes: Uint8Array) => void;
}

/** Names the reference chart's swanctl.conf uses; --from-env builds the same shape. */
export const ENV_CONNECTION_NAME = 'net-net';

// ---- validation context -------------------------------------------------------------------------

type Obj = Record<string, unknown>;

class Ctx {
  readonly errors: ConfigError[] = [];
  readonly warnings: string[] = [];
  onCredentialFile?: LoadOptions['onCredentialFile'];
  constructor(
    readonly env: Env,
    readonly readFile: (path: string) => Uint8Array,
  ) {}
  err(path: string, msg: string): undefined {
    this.errors.push(new ConfigError(path, msg));
    return undefined;
  }
}

const join = (path: string, key: string): string => (path ? `${path}.${key}` : key);
const show = (v: unknown): string =>
  typeof v === 'string' ? JSON.stringify(v) : inspect(v, { depth: 1, breakLength: Infinity });

function levenshtein(a: string, b: string): number {
  const d = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0]!;
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = d[j]!;
      d[j] = Math.min(d[j]! + 1, d[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return d[b.length]!;
}

function suggest(key: string, allowed: readonly string[]): string {
  let best: string | undefined;
  let bestD = Number.POSITIVE_INFINITY;
  for (const a of allowed) {
    const dist = levenshtein(key.toLowerCase(), a);
    if (dist < bestD) {
      bestD = dist;
      best = a;
    }
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(key.length / 3))
    ? ` (did you mean "${best}"?)`
    : '';
}

function isPlainObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A mapping with only the allowed keys; null/absent = {}. */
function mapping(ctx: Ctx, path: string, v: unknown, allowed: readonly string[]): Obj | undefined {
  if (v === undefined || v === null) return {};
  if (!isPlainObject(v)) return ctx.err(path, `must be a mapping (key: value), got ${show(v)}`);
  for (const k of Object.keys(v)) {
    if (!allowed.includes(k))
      ctx.err(join(path, k), `unknown key${suggest(k, allowed)}; allowed: ${allowed.join(', ')}`);
  }
  return v;
}

function str(ctx: Ctx, path: string, v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return ctx.err(path, `must be a string, got ${show(v)}`);
}

/** A list given as a YAML sequence or, as in swanctl.conf, a comma-separated string. */
function list(ctx: Ctx, path: string, v: unknown): Array<{ value: unknown; path: string }> | undefined {
  if (v === undefined || v === null) return [];
  if (Array.isArray(v)) return v.map((value, i) => ({ value, path: `${path}[${i}]` }));
  if (typeof v === 'string') {
    return v
      .split(/[,\s]+/)
      .filter((x) => x !== '')
      .map((value, i) => ({ value, path: `${path}[${i}]` }));
  }
  return ctx.err(path, `must be a list, got ${show(v)}`);
}

function int(ctx: Ctx, path: string, v: unknown, min: number, max: number): number | undefined {
  const n = typeof v === 'string' && /^-?\d+$/.test(v.trim()) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n))
    return ctx.err(path, `must be an integer, got ${show(v)}`);
  if (n < min || n > max) return ctx.err(path, `must be between ${min} and ${max}, got ${n}`);
  return n;
}

function num(ctx: Ctx, path: string, v: unknown, min: number, max: number): number | undefined {
  const n = typeof v === 'string' && /^-?\d+(\.\d+)?$/.test(v.trim()) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isFinite(n)) return ctx.err(path, `must be a number, got ${show(v)}`);
  if (n < min || n > max) return ctx.err(path, `must be between ${min} and ${max}, got ${n}`);
  return n;
}

function bool(ctx: Ctx, path: string, v: unknown): boolean | undefined {
  if (typeof v === 'boolean') return v;
  if (typeof v === 'string') {
    const s = v.toLowerCase();
    if (s === 'yes' || s === 'true') return true;
    if (s === 'no' || s === 'false') return false;
  }
  return ctx.err(path, `must be true/false (or yes/no), got ${show(v)}`);
}

function oneOf<T extends string>(ctx: Ctx, path: string, v: unknown, allowed: readonly T[]): T | undefined {
  if (typeof v === 'string' && (allowed as readonly string[]).includes(v)) return v as T;
  return ctx.err(path, `must be one of ${allowed.join(' | ')}, got ${show(v)}`);
}

function duration(ctx: Ctx, path: string, v: unknown): number | undefined {
  const d = parseDuration(v);
  if (d === undefined)
    return ctx.err(path, `must be a duration like 30s, 5m, 4h, 1d (plain number = seconds), got ${show(v)}`);
  return d;
}

/** Byte/packet counts: integer with optional k/m/g suffix (x1024), as strongSwan accepts. */
function count(ctx: Ctx, path: string, v: unknown): bigint | undefined {
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return BigInt(v);
  if (typeof v === 'string') {
    const m = /^(\d+)\s*([kmg])?$/i.exec(v.trim());
    if (m) {
      const mult =
        { k: 1n << 10n, m: 1n << 20n, g: 1n << 30n }[(m[2] ?? '').toLowerCase() as 'k' | 'm' | 'g'] ?? 1n;
      return BigInt(m[1]!) * mult;
    }
  }
  return ctx.err(path, `must be a non-negative integer (optionally with k/m/g), got ${show(v)}`);
}

// ---- addresses, selectors, identities ----------------------------------------------------------

const V4 = /^\d{1,3}(\.\d{1,3}){3}$/;

/** Canonical text of an IP address, or undefined if it is not one. */
export function canonicalIp(s: string): { family: 4 | 6; text: string } | undefined {
  if (V4.test(s) && Address4.isValid(s)) return { family: 4, text: new Address4(s).correctForm() };
  if (s.includes(':') && !s.includes('/') && !s.includes('%') && Address6.isValid(s)) {
    return { family: 6, text: new Address6(s).correctForm() };
  }
  return undefined;
}

const PROTOCOLS: Record<string, number> = { icmp: 1, tcp: 6, udp: 17, icmp6: 58, 'ipv6-icmp': 58, sctp: 132 };
const PORT_PROTOCOLS = new Set([6, 17, 132]);

export type TsParse = { ok: true; ts: TsRange; warning?: string } | { ok: false; error: string };

/**
 * A traffic selector as swanctl writes it: a CIDR ("10.0.0.0/8"), a single address, an address
 * range ("10.0.0.1-10.0.0.9"), optionally with "[proto/port]" ("10.0.0.0/8[tcp/443]",
 * "[udp/1000-2000]", "[tcp]").
 */
export function parseTrafficSelector(input: string): TsParse {
  const s = input.trim();
  const m = /^([^[\]]+?)(?:\[([^\]]*)\])?$/.exec(s);
  if (!m) return { ok: false, error: `${JSON.stringify(input)} is not a valid traffic selector` };
  const net = m[1]!;
  if (net === 'dynamic' || net === '%dynamic') {
    return { ok: false, error: '"dynamic" is not supported; give CIDRs (e.g. 10.10.0.0/16)' };
  }
  let family: 4 | 6;
  let startAddr: string;
  let endAddr: string;
  let warning: string | undefined;
  const range = /^([^-/]+)-([^-/]+)$/.exec(net);
  if (range) {
    const a = canonicalIp(range[1]!);
    const b = canonicalIp(range[2]!);
    if (!a || !b || a.family !== b.family) {
      return { ok: false, error: `${JSON.stringify(input)} is not a valid address range` };
    }
    const big = (t: string, f: 4 | 6): bigint =>
      f === 4 ? new Address4(t).bigInt() : new Address6(t).bigInt();
    if (big(a.text, a.family) > big(b.text, b.family)) {
      return { ok: false, error: `${JSON.stringify(input)}: range start is above its end` };
    }
    family = a.family;
    startAddr = a.text;
    endAddr = b.text;
  } else {
    const cm = /^([0-9a-fA-F:.]+)(?:\/(\d{1,3}))?$/.exec(net);
    const host = cm?.[1];
    const ip = host ? canonicalIp(host) : undefined;
    if (!cm || !ip) return { ok: false, error: `${JSON.stringify(input)} is not a valid CIDR` };
    family = ip.family;
    const bits = cm[2] === undefined ? (family === 4 ? 32 : 128) : Number(cm[2]);
    if (bits > (family === 4 ? 32 : 128))
      return { ok: false, error: `${JSON.stringify(input)} is not a valid CIDR` };
    const a = family === 4 ? new Address4(`${ip.text}/${bits}`) : new Address6(`${ip.text}/${bits}`);
    startAddr = a.startAddress().correctForm();
    endAddr = a.endAddress().correctForm();
    if (startAddr !== ip.text) warning = `${net} has host bits set; using ${startAddr}/${bits}`;
  }
  let protocol = 0;
  let startPort = 0;
  let endPort = 65535;
  if (m[2] !== undefined) {
    const [protoS = '', portS = ''] = m[2].split('/');
    if (protoS !== '' && protoS !== '%any') {
      const p = PROTOCOLS[protoS.toLowerCase()] ?? (/^\d+$/.test(protoS) ? Number(protoS) : Number.NaN);
      if (!(p >= 0 && p <= 255))
        return { ok: false, error: `${JSON.stringify(input)}: unknown protocol "${protoS}"` };
      protocol = p;
    }
    if (portS !== '' && portS !== '%any') {
      const pm = /^(\d+)(?:-(\d+))?$/.exec(portS);
      const a = pm ? Number(pm[1]) : Number.NaN;
      const b = pm?.[2] !== undefined ? Number(pm[2]) : a;
      if (!(a >= 0 && b <= 65535 && a <= b))
        return { ok: false, error: `${JSON.stringify(input)}: invalid port "${portS}"` };
      if (!PORT_PROTOCOLS.has(protocol)) {
        return { ok: false, error: `${JSON.stringify(input)}: a port needs protocol tcp, udp or sctp` };
      }
      startPort = a;
      endPort = b;
    }
  }
  const ts: TsRange = { family, protocol, startPort, endPort, startAddr, endAddr };
  return warning ? { ok: true, ts, warning } : { ok: true, ts };
}

function ipBytes(text: string, family: 4 | 6): Uint8Array {
  const big = family === 4 ? new Address4(text).bigInt() : new Address6(text).bigInt();
  const n = family === 4 ? 4 : 16;
  const out = new Uint8Array(n);
  let x = big;
  for (let i = n - 1; i >= 0; i--) {
    out[i] = Number(x & 0xffn);
    x >>= 8n;
  }
  return out;
}

const HOSTNAME =
  /^[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?)*\.?$/;
const ascii = (s: string): Uint8Array => new TextEncoder().encode(s);

export type IdParse = { ok: true; id: IdConfig | undefined } | { ok: false; error: string };

/**
 * An IKE identity as strongSwan writes it: IPv4/IPv6 address, FQDN ("vpn.example.com" or
 * "@vpn.example.com"), KEY_ID ("@#0123ab"), RFC822 ("user@example.com"), or "%any" (= undefined).
 * The prefixes "fqdn:", "email:", "keyid:" force a type.
 */
export function parseIdentity(input: string): IdParse {
  const s = input.trim();
  if (s === '' || s === '%any' || s === '%any6') return { ok: true, id: undefined };
  const bad = (why: string): IdParse => ({ ok: false, error: `${JSON.stringify(input)} ${why}` });
  const printable = (t: string): boolean => /^[\x21-\x7e]+$/.test(t);
  const fqdn = (t: string): IdParse =>
    printable(t)
      ? { ok: true, id: { type: IdType.FQDN, data: ascii(t) } }
      : bad('is not a valid FQDN identity');
  const keyId = (hexS: string): IdParse =>
    /^([0-9a-fA-F]{2})+$/.test(hexS)
      ? { ok: true, id: { type: IdType.KEY_ID, data: new Uint8Array(Buffer.from(hexS, 'hex')) } }
      : bad('is not a valid KEY_ID (expected @# followed by an even number of hex digits)');
  if (s.startsWith('fqdn:')) return fqdn(s.slice(5));
  if (s.startsWith('email:') || s.startsWith('rfc822:')) {
    const t = s.slice(s.indexOf(':') + 1);
    return printable(t)
      ? { ok: true, id: { type: IdType.RFC822_ADDR, data: ascii(t) } }
      : bad('is not a valid email identity');
  }
  if (s.startsWith('keyid:')) {
    const t = s.slice(6);
    return t.startsWith('#')
      ? keyId(t.slice(1))
      : printable(t)
        ? { ok: true, id: { type: IdType.KEY_ID, data: ascii(t) } }
        : bad('is not a valid KEY_ID');
  }
  if (s.startsWith('@#')) return keyId(s.slice(2));
  if (s.startsWith('@@')) {
    const t = s.slice(2);
    return printable(t)
      ? { ok: true, id: { type: IdType.RFC822_ADDR, data: ascii(t) } }
      : bad('is not a valid email identity');
  }
  if (s.startsWith('@')) return fqdn(s.slice(1));
  const ip = canonicalIp(s);
  if (ip)
    return {
      ok: true,
      id: { type: ip.family === 4 ? IdType.IPV4_ADDR : IdType.IPV6_ADDR, data: ipBytes(ip.text, ip.family) },
    };
  if (s.includes('=') || s.startsWith('asn1dn:')) {
    // a distinguished name, as strongSwan writes it: "C=CH, O=example, CN=gw" (certificates)
    try {
      return {
        ok: true,
        id: { type: IdType.DER_ASN1_DN, data: encodeDn(parseDnString(s.replace(/^asn1dn:/, ''))) },
      };
    } catch (e) {
      return bad(`is not a valid distinguished name: ${(e as Error).message}`);
    }
  }
  if (s.includes('@')) {
    return printable(s)
      ? { ok: true, id: { type: IdType.RFC822_ADDR, data: ascii(s) } }
      : bad('is not a valid email identity');
  }
  if (V4.test(s) || /^[0-9a-fA-F:]+$/.test(s)) return bad('is not a valid IP address');
  return HOSTNAME.test(s)
    ? { ok: true, id: { type: IdType.FQDN, data: ascii(s) } }
    : bad('is not a valid identity (IP address, FQDN, @#KEY_ID or user@domain)');
}

/** An identity as strongSwan prints it (for logs and `ikegw sas`). */
export function formatIdentity(id: IdConfig | undefined): string {
  if (!id) return '%any';
  const text = (): string => new TextDecoder().decode(id.data);
  switch (id.type) {
    case IdType.IPV4_ADDR:
      return id.data.length === 4 ? Array.from(id.data).join('.') : '(bad IPv4 id)';
    case IdType.IPV6_ADDR: {
      if (id.data.length !== 16) return '(bad IPv6 id)';
      let v = 0n;
      for (const b of id.data) v = (v << 8n) | BigInt(b);
      return Address6.fromBigInt(v).correctForm();
    }
    case IdType.FQDN:
    case IdType.RFC822_ADDR:
      return text();
    case IdType.KEY_ID:
      return `@#${Buffer.from(id.data).toString('hex')}`;
    case IdType.DER_ASN1_DN:
      return formatDn(id.data);
    default:
      return `(ID type ${id.type}, ${id.data.length} bytes)`;
  }
}

// ---- PSK -------------------------------------------------------------------------------------

/** strongSwan's secret encodings: "0x<hex>", "0s<base64>", otherwise the raw bytes. */
function decodeSecret(ctx: Ctx, path: string, raw: Uint8Array): SecretBytes | undefined {
  const isText = raw.length >= 2 && raw[0] === 0x30 && (raw[1] === 0x78 || raw[1] === 0x73);
  if (isText) {
    const t = new TextDecoder().decode(raw.subarray(2)).trim();
    if (raw[1] === 0x78) {
      if (!/^([0-9a-fA-F]{2})+$/.test(t))
        return ctx.err(path, 'starts with 0x but is not valid hex (strongSwan encoding)');
      return new SecretBytes(Buffer.from(t, 'hex'));
    }
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(t))
      return ctx.err(path, 'starts with 0s but is not valid base64 (strongSwan encoding)');
    return new SecretBytes(Buffer.from(t, 'base64'));
  }
  return new SecretBytes(raw);
}

function stripNewline(b: Uint8Array): Uint8Array {
  let n = b.length;
  if (n > 0 && b[n - 1] === 0x0a) n--;
  if (n > 0 && b[n - 1] === 0x0d) n--;
  return b.subarray(0, n);
}

const MIN_PSK_BYTES = 16;

function psk(ctx: Ctx, path: string, v: unknown, conn: string, inline: string[]): SecretBytes | undefined {
  if (v === undefined || v === null)
    return ctx.err(path, 'is required: { file: /path } or { env: VAR } or { value: ... }');
  if (typeof v === 'string') {
    return ctx.err(
      path,
      'must be { file: /path }, { env: VAR } or { value: ... } (a bare string is ambiguous)',
    );
  }
  const o = mapping(ctx, path, v, ['file', 'env', 'value']);
  if (!o) return undefined;
  const given = ['file', 'env', 'value'].filter((k) => o[k] !== undefined);
  if (given.length !== 1)
    return ctx.err(
      path,
      `give exactly one of file, env, value (got ${given.length ? given.join(', ') : 'none'})`,
    );
  let raw: Uint8Array | undefined;
  let where: string;
  if (o.file !== undefined) {
    where = join(path, 'file');
    const f = str(ctx, where, o.file);
    if (f === undefined) return undefined;
    try {
      // A trailing newline (echo psk > file) is not part of the key.
      raw = stripNewline(ctx.readFile(f));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
      return ctx.err(where, `cannot read ${JSON.stringify(f)}: ${code}`);
    }
  } else if (o.env !== undefined) {
    where = join(path, 'env');
    const name = str(ctx, where, o.env);
    if (name === undefined) return undefined;
    const val = ctx.env[name];
    if (val === undefined || val === '')
      return ctx.err(where, `environment variable ${name} is not set or empty`);
    raw = new TextEncoder().encode(val);
  } else {
    where = join(path, 'value');
    if (typeof o.value !== 'string') {
      return ctx.err(where, 'must be a quoted string (YAML turned the value into a non-string; quote it)');
    }
    raw = new TextEncoder().encode(o.value);
    inline.push(conn);
  }
  const secret = decodeSecret(ctx, where, raw);
  if (!secret) return undefined;
  if (secret.length === 0) return ctx.err(where, 'the pre-shared key is empty');
  if (secret.length < MIN_PSK_BYTES) {
    ctx.warnings.push(
      `${where}: the pre-shared key is only ${secret.length} bytes; short keys can be guessed offline from one captured IKE_AUTH (RFC 7296 §2.15) — use ${MIN_PSK_BYTES}+ random bytes`,
    );
  }
  return secret;
}

// ---- sections ------------------------------------------------------------------------------------

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

const CONN_KEYS = [
  'remote_addrs',
  'local_addrs',
  'remote_port',
  'local',
  'remote',
  'psk',
  'send_cert',
  'proposals',
  'encap',
  'fragmentation',
  'fragment_size',
  'dpd_delay',
  'dpd_action',
  'dpd_timeout',
  'rekey_time',
  'over_time',
  'unique',
  'version',
  'children',
] as const;

const CHILD_KEYS = [
  'local_ts',
  'remote_ts',
  'esp_proposals',
  'start_action',
  'close_action',
  'dpd_action',
  'rekey_time',
  'life_time',
  'rekey_bytes',
  'life_bytes',
  'rekey_packets',
  'life_packets',
  'replay_window',
  'reqid',
  'mode',
] as const;

const DPD_ACTIONS: readonly DpdAction[] = ['clear', 'trap', 'restart'];
const START_ACTIONS: readonly StartAction[] = ['none', 'trap', 'start'];
const CLOSE_ACTIONS: readonly CloseAction[] = ['none', 'trap', 'start'];

function proposals(ctx: Ctx, path: string, v: unknown, proto: 'ike' | 'esp'): ProposalConfig[] | undefined {
  const items = list(ctx, path, v ?? ['default']);
  if (!items) return undefined;
  if (items.length === 0) return ctx.err(path, 'must not be empty (use [default])');
  const out: ProposalConfig[] = [];
  let failed = false;
  for (const it of items) {
    const s = str(ctx, it.path, it.value);
    if (s === undefined) {
      failed = true;
      continue;
    }
    try {
      out.push(...parseProposal(s, proto));
    } catch (e) {
      if (!(e instanceof ProposalSyntaxError)) throw e;
      ctx.err(it.path, e.message);
      failed = true;
    }
  }
  return failed ? undefined : out;
}

/** A parsed traffic selector with the text it was written as and the path it came from. */
interface Selector {
  ts: TsRange;
  text: string;
  path: string;
}

function selectors(ctx: Ctx, path: string, v: unknown): Selector[] | undefined {
  if (v === undefined || v === null) return ctx.err(path, 'is required (one or more CIDRs)');
  const items = list(ctx, path, v);
  if (!items) return undefined;
  if (items.length === 0) return ctx.err(path, 'must list at least one CIDR');
  const out: Selector[] = [];
  for (const it of items) {
    const s = str(ctx, it.path, it.value);
    if (s === undefined) continue;
    const r = parseTrafficSelector(s);
    if (!r.ok) ctx.err(it.path, r.error);
    else {
      if (r.warning) ctx.warnings.push(`${it.path}: ${r.warning}`);
      out.push({ ts: r.ts, text: s.trim(), path: it.path });
    }
  }
  return out.length === items.length ? out : undefined;
}

const addrValue = (text: string, family: 4 | 6): bigint =>
  family === 4 ? new Address4(text).bigInt() : new Address6(text).bigInt();

/**
 * Whether two traffic selectors share an address. Protocol and ports are not considered: the
 * remote ranges are routed into the tunnel whatever the protocol, so a remote range that overlaps
 * a local one captures traffic to the local addresses.
 */
export function addressesOverlap(a: TsRange, b: TsRange): boolean {
  if (a.family !== b.family) return false;
  return (
    addrValue(a.startAddr, a.family) <= addrValue(b.endAddr, b.family) &&
    addrValue(b.startAddr, b.family) <= addrValue(a.endAddr, a.family)
  );
}

/** Whether every address of `inner` is in `outer` (same family). */
export function addressesContain(outer: TsRange, inner: TsRange): boolean {
  if (outer.family !== inner.family) return false;
  return (
    addrValue(outer.startAddr, outer.family) <= addrValue(inner.startAddr, inner.family) &&
    addrValue(inner.endAddr, inner.family) <= addrValue(outer.endAddr, outer.family)
  );
}

function identity(ctx: Ctx, path: string, v: unknown, allowAny: boolean): IdConfig | undefined | null {
  if (v === undefined || v === null) return undefined;
  const s = str(ctx, path, v);
  if (s === undefined) return null;
  const r = parseIdentity(s);
  if (!r.ok) {
    ctx.err(path, r.error);
    return null;
  }
  if (!r.id && !allowAny) {
    ctx.err(path, '%any is only allowed for the remote identity; omit local.id to use the local address');
    return null;
  }
  return r.id;
}

interface Side {
  id: IdConfig | undefined | null;
  auth: 'psk' | 'pubkey';
  rsaPss: boolean;
  /** local: our certificate first, then intermediates; remote: trusted CAs. */
  certs?: Uint8Array[];
  /** local: PKCS#8 DER of the private key. */
  key?: SecretBytes;
  /** remote: CRLs (remote.crls, and CRL blocks in remote.cacerts files), DER. */
  crls?: Uint8Array[];
}

const fileList = (ctx: Ctx, path: string, v: unknown): string[] | undefined => {
  const items = list(ctx, path, v);
  if (!items) return undefined;
  const out = items.map((it) => str(ctx, it.path, it.value));
  return out.every((x) => x !== undefined) ? (out as string[]) : undefined;
};

/**
 * local / remote: id, auth (psk | pubkey, local also rsa/pss), and for pubkey local.certs +
 * local.key (files; the key never inline) or remote.cacerts + remote.crls (files).
 */
function endpointSide(ctx: Ctx, path: string, v: unknown, remote: boolean, nowMs: number, cas?: Side): Side {
  const o = mapping(
    ctx,
    path,
    v,
    remote ? ['id', 'auth', 'cacerts', 'crls'] : ['id', 'auth', 'certs', 'key'],
  );
  const side: Side = { id: null, auth: 'psk', rsaPss: false };
  if (!o) return side;
  const authOk = remote ? ['psk', 'pubkey'] : ['psk', 'pubkey', 'rsa/pss'];
  if (o.auth !== undefined && !(typeof o.auth === 'string' && authOk.includes(o.auth))) {
    ctx.err(join(path, 'auth'), `must be one of ${authOk.join(', ')}, got ${show(o.auth)}`);
  }
  side.auth = o.auth === 'pubkey' || o.auth === 'rsa/pss' ? 'pubkey' : 'psk';
  side.rsaPss = o.auth === 'rsa/pss';
  side.id = identity(ctx, join(path, 'id'), o.id, remote);
  const certKey = remote ? 'cacerts' : 'certs';
  if (side.auth !== 'pubkey') {
    for (const k of [certKey, 'key', 'crls']) {
      if (o[k] !== undefined) ctx.err(join(path, k), `needs ${join(path, 'auth')}: pubkey`);
    }
    return side;
  }
  const files = fileList(ctx, join(path, certKey), o[certKey]);
  if (files && files.length === 0) {
    ctx.err(
      join(path, certKey),
      remote
        ? "is required with remote.auth pubkey: the CA certificate(s) the peer's certificate must chain to"
        : 'is required with local.auth pubkey: our certificate file (PEM or DER), intermediates after it',
    );
  }
  const certs = files?.flatMap((f, i) => certsFromFile(ctx, `${join(path, certKey)}[${i}]`, f) ?? []);
  if (!certs || certs.length === 0) return side;
  for (const c of certs) expiryWarnings(ctx, join(path, certKey), c, nowMs);
  side.certs = certs.map((c) => c.der);
  if (remote) {
    for (const c of certs) {
      if (!c.x509.ca) ctx.warnings.push(`${join(path, 'cacerts')}: "${c.subject}" is not a CA certificate`);
    }
    // CRLs: remote.crls files, and "X509 CRL" blocks in the cacerts files (as one PEM bundle)
    const crlPaths: Array<[string, string, boolean]> = (files ?? []).map((f, i) => [
      `${join(path, certKey)}[${i}]`,
      f,
      true,
    ]);
    if (o.crls !== undefined) {
      const crlFiles = fileList(ctx, join(path, 'crls'), o.crls);
      for (const [i, f] of (crlFiles ?? []).entries())
        crlPaths.push([`${join(path, 'crls')}[${i}]`, f, false]);
    }
    const crls: Uint8Array[] = [];
    for (const [p, f, inCacerts] of crlPaths) {
      for (const crl of crlsFromFile(ctx, p, f, inCacerts) ?? []) {
        checkCrl(ctx, p, crl, certs, nowMs);
        crls.push(crl.der);
      }
    }
    if (crls.length) side.crls = crls;
    return side;
  }
  if (o.key === undefined || o.key === null) {
    ctx.err(
      join(path, 'key'),
      'is required with local.auth pubkey: the private key file (PEM or DER; never inline)',
    );
    return side;
  }
  if (typeof o.key !== 'string' || o.key.includes('-----BEGIN')) {
    ctx.err(
      join(path, 'key'),
      'must be the path of the private key file (the key is never written in the configuration)',
    );
    return side;
  }
  const key = keyFromFile(ctx, join(path, 'key'), o.key);
  if (!key) return side;
  if (side.rsaPss && key.asymmetricKeyType !== 'rsa') {
    ctx.err(join(path, 'auth'), `rsa/pss needs an RSA key, local.key is ${key.asymmetricKeyType}`);
  }
  const anchors = (cas?.certs ?? []).map(parseCert);
  if (!checkLocalChain(ctx, join(path, 'certs'), certs, key, join(path, 'key'), anchors)) return side;
  side.key = new SecretBytes(key.export({ format: 'der', type: 'pkcs8' }));
  const id = localIdForCert(ctx, join(path, 'id'), certs[0]!, side.id ?? undefined);
  if (side.id !== null || o.id === undefined) side.id = id ?? null;
  return side;
}

function addrList(ctx: Ctx, path: string, v: unknown, allowAny: boolean): string[] | undefined {
  const items = list(ctx, path, v);
  if (!items) return undefined;
  const out: string[] = [];
  let ok = true;
  for (const it of items) {
    const s = str(ctx, it.path, it.value);
    if (s === undefined) {
      ok = false;
      continue;
    }
    if (s === '%any' || s === '%any4' || s === '%any6') {
      if (allowAny) out.push('%any');
      continue; // local %any = no restriction
    }
    const ip = canonicalIp(s.trim());
    if (!ip) {
      ctx.err(
        it.path,
        `${JSON.stringify(s)} is not an IP address${allowAny ? ' or %any' : ''} (host names and ranges are not supported)`,
      );
      ok = false;
      continue;
    }
    out.push(ip.text);
  }
  return ok ? out : undefined;
}

interface ChildDraft {
  path: string;
  cfg: ChildConfig;
  reqidGiven: boolean;
  dpdAction?: DpdAction;
}

function child(ctx: Ctx, path: string, name: string, v: unknown): ChildDraft | undefined {
  if (!NAME.test(name)) ctx.err(path, 'child names may use letters, digits, ".", "_" and "-" (max 64)');
  const o = mapping(ctx, path, v, CHILD_KEYS);
  if (!o) return undefined;
  const at = (k: string): string => join(path, k);
  const before = ctx.errors.length;
  const localTs = selectors(ctx, at('local_ts'), o.local_ts);
  const remoteTs = selectors(ctx, at('remote_ts'), o.remote_ts);
  // A range on both sides of the tunnel: the routes to the remote side would capture traffic to
  // the local one (in the chart: on-prem CIDRs overlapping the cluster's pod or service range).
  // A remote range that wholly contains a local one (a full tunnel, remote_ts 0.0.0.0/0) is a
  // deliberate choice strongSwan allows too, and stays allowed.
  for (const r of remoteTs ?? []) {
    const l = localTs?.find((x) => addressesOverlap(r.ts, x.ts) && !addressesContain(r.ts, x.ts));
    if (l) ctx.err(r.path, `${r.text} overlaps local_ts ${l.text}`);
  }
  const espProposals = proposals(ctx, at('esp_proposals'), o.esp_proposals, 'esp');
  const startAction =
    o.start_action === undefined ? 'none' : oneOf(ctx, at('start_action'), o.start_action, START_ACTIONS);
  const closeAction =
    o.close_action === undefined ? 'none' : oneOf(ctx, at('close_action'), o.close_action, CLOSE_ACTIONS);
  const dpdAction =
    o.dpd_action === undefined ? undefined : oneOf(ctx, at('dpd_action'), o.dpd_action, DPD_ACTIONS);
  const rekeyTime = o.rekey_time === undefined ? 3600 : duration(ctx, at('rekey_time'), o.rekey_time);
  let lifeTime = o.life_time === undefined ? undefined : duration(ctx, at('life_time'), o.life_time);
  const rekeyBytes = o.rekey_bytes === undefined ? 0n : count(ctx, at('rekey_bytes'), o.rekey_bytes);
  let lifeBytes = o.life_bytes === undefined ? undefined : count(ctx, at('life_bytes'), o.life_bytes);
  const rekeyPackets = o.rekey_packets === undefined ? 0n : count(ctx, at('rekey_packets'), o.rekey_packets);
  let lifePackets = o.life_packets === undefined ? undefined : count(ctx, at('life_packets'), o.life_packets);
  const replayWindow =
    o.replay_window === undefined ? 32 : int(ctx, at('replay_window'), o.replay_window, 0, 4096);
  const reqid = o.reqid === undefined ? 0 : int(ctx, at('reqid'), o.reqid, 1, 0xffffffff);
  if (o.mode !== undefined && o.mode !== 'tunnel')
    ctx.err(at('mode'), `only "tunnel" is supported, got ${show(o.mode)}`);

  // strongSwan: life_time defaults to rekey_time + 10%; byte/packet limits likewise.
  if (rekeyTime !== undefined && lifeTime === undefined && o.life_time === undefined)
    lifeTime = Math.round(rekeyTime * 1.1);
  if (rekeyTime && lifeTime && lifeTime <= rekeyTime) {
    ctx.err(at('life_time'), `(${lifeTime}s) must be longer than rekey_time (${rekeyTime}s)`);
  }
  if (rekeyBytes !== undefined && lifeBytes === undefined && o.life_bytes === undefined)
    lifeBytes = (rekeyBytes * 11n) / 10n;
  if (rekeyPackets !== undefined && lifePackets === undefined && o.life_packets === undefined) {
    lifePackets = (rekeyPackets * 11n) / 10n;
  }
  if (ctx.errors.length > before) return undefined;
  const cfg: ChildConfig = {
    name,
    localTs: localTs!.map((x) => x.ts),
    remoteTs: remoteTs!.map((x) => x.ts),
    espProposals: espProposals!,
    startAction: startAction!,
    closeAction: closeAction!,
    rekeyTime: rekeyTime!,
    lifeTime: lifeTime!,
    rekeyBytes: rekeyBytes!,
    lifeBytes: lifeBytes!,
    rekeyPackets: rekeyPackets!,
    lifePackets: lifePackets!,
    replayWindow: replayWindow!,
    reqid: reqid!,
  };
  return dpdAction
    ? { path, cfg, reqidGiven: reqid !== 0, dpdAction }
    : { path, cfg, reqidGiven: reqid !== 0 };
}

function connection(
  ctx: Ctx,
  path: string,
  name: string,
  v: unknown,
  inline: string[],
): { cfg: ConnectionConfig; children: ChildDraft[] } | undefined {
  if (!NAME.test(name)) ctx.err(path, 'connection names may use letters, digits, ".", "_" and "-" (max 64)');
  const o = mapping(ctx, path, v, CONN_KEYS);
  if (!o) return undefined;
  const at = (k: string): string => join(path, k);
  const before = ctx.errors.length;

  let remoteAddrs: string[] | undefined;
  if (o.remote_addrs === undefined)
    ctx.err(at('remote_addrs'), "is required (the peer's address, or ['%any'] to only respond)");
  else {
    remoteAddrs = addrList(ctx, at('remote_addrs'), o.remote_addrs, true);
    if (remoteAddrs && remoteAddrs.length === 0)
      ctx.err(at('remote_addrs'), 'must list at least one address or %any');
  }
  const localAddrs = addrList(ctx, at('local_addrs'), o.local_addrs, false);
  const remotePort = o.remote_port === undefined ? 500 : int(ctx, at('remote_port'), o.remote_port, 1, 65535);
  const nowMs = Date.now();
  const remoteSide = endpointSide(ctx, at('remote'), o.remote, true, nowMs);
  const localSide = endpointSide(ctx, at('local'), o.local, false, nowMs, remoteSide);
  const localId = localSide.id;
  const remoteId = remoteSide.id;
  const needPsk = localSide.auth === 'psk' || remoteSide.auth === 'psk';
  const key = needPsk || o.psk !== undefined ? psk(ctx, at('psk'), o.psk, name, inline) : new SecretBytes(0);
  const sendCert =
    o.send_cert === undefined
      ? 'ifasked'
      : oneOf(ctx, at('send_cert'), o.send_cert, ['always', 'ifasked', 'never'] as const);
  const ikeProposals = proposals(ctx, at('proposals'), o.proposals, 'ike');
  const encap = o.encap === undefined ? false : bool(ctx, at('encap'), o.encap);
  const fragmentation =
    o.fragmentation === undefined ? true : bool(ctx, at('fragmentation'), o.fragmentation);
  const fragmentSize =
    o.fragment_size === undefined ? 1280 : int(ctx, at('fragment_size'), o.fragment_size, 256, 65535);
  const dpdDelay = o.dpd_delay === undefined ? 0 : duration(ctx, at('dpd_delay'), o.dpd_delay);
  const dpdTimeout = o.dpd_timeout === undefined ? 0 : duration(ctx, at('dpd_timeout'), o.dpd_timeout);
  let dpdAction =
    o.dpd_action === undefined ? undefined : oneOf(ctx, at('dpd_action'), o.dpd_action, DPD_ACTIONS);
  const rekeyTime = o.rekey_time === undefined ? 4 * 3600 : duration(ctx, at('rekey_time'), o.rekey_time);
  // strongSwan: over_time defaults to 10% of rekey_time when not given.
  const overTime =
    o.over_time === undefined
      ? rekeyTime === undefined
        ? undefined
        : Math.round(rekeyTime / 10)
      : duration(ctx, at('over_time'), o.over_time);
  const unique =
    o.unique === undefined
      ? 'no'
      : oneOf(ctx, at('unique'), o.unique, ['no', 'never', 'keep', 'replace'] as const);
  if (o.version !== undefined && o.version !== 2 && o.version !== 0 && o.version !== '2') {
    ctx.err(at('version'), `only IKEv2 (2) is supported, got ${show(o.version)}`);
  }

  const childDrafts: ChildDraft[] = [];
  const cPath = at('children');
  const ch = mapping(ctx, cPath, o.children, Object.keys(isPlainObject(o.children) ? o.children : {}));
  if (ch && Object.keys(ch).length === 0) ctx.err(cPath, 'at least one child (CHILD_SA) is required');
  if (ch) {
    for (const [cname, cv] of Object.entries(ch)) {
      const d = child(ctx, join(cPath, cname), cname, cv);
      if (d) childDrafts.push(d);
    }
  }
  // dpd_action lives in the children in swanctl.conf; ikegw keeps one per connection.
  for (const d of childDrafts) {
    if (!d.dpdAction) continue;
    if (dpdAction && dpdAction !== d.dpdAction) {
      ctx.err(
        join(d.path, 'dpd_action'),
        `"${d.dpdAction}" differs from the connection's "${dpdAction}"; ikegw applies one dpd_action per connection`,
      );
    }
    dpdAction = d.dpdAction;
  }
  if (remoteAddrs?.includes('%any')) {
    for (const d of childDrafts) {
      if (d.cfg.startAction !== 'none') {
        ctx.err(
          join(d.path, 'start_action'),
          `"${d.cfg.startAction}" needs a concrete peer address, but remote_addrs is %any`,
        );
      }
    }
  }
  if (ctx.errors.length > before) return undefined;
  const cfg: ConnectionConfig = {
    name,
    localAddrs: localAddrs!,
    remoteAddrs: remoteAddrs!,
    remotePort: remotePort!,
    psk: key!,
    ikeProposals: ikeProposals!,
    encap: encap!,
    fragmentation: fragmentation!,
    fragmentSize: fragmentSize!,
    dpdDelay: dpdDelay!,
    dpdTimeout: dpdTimeout!,
    dpdAction: dpdAction ?? 'clear',
    rekeyTime: rekeyTime!,
    overTime: overTime!,
    initialContact: unique !== 'never',
    children: childDrafts.map((d) => d.cfg),
  };
  if (localId) cfg.localId = localId;
  if (remoteId) cfg.remoteId = remoteId;
  if (localSide.auth === 'pubkey') {
    cfg.localAuth = 'pubkey';
    cfg.localCerts = localSide.certs!;
    cfg.localKey = localSide.key!;
    if (localSide.rsaPss) cfg.rsaPss = true;
  }
  if (remoteSide.auth === 'pubkey') {
    cfg.remoteAuth = 'pubkey';
    cfg.remoteCaCerts = remoteSide.certs!;
    if (remoteSide.crls) cfg.remoteCrls = remoteSide.crls;
  }
  if (localSide.auth === 'pubkey' || remoteSide.auth === 'pubkey') cfg.sendCert = sendCert!;
  return { cfg, children: childDrafts };
}

/** Reqids 1, 2, 3... per child in file order, skipping the ones given explicitly. */
function assignReqids(ctx: Ctx, drafts: ChildDraft[]): void {
  const used = new Map<number, string>();
  for (const d of drafts) {
    if (!d.reqidGiven) continue;
    const other = used.get(d.cfg.reqid);
    if (other) ctx.err(join(d.path, 'reqid'), `${d.cfg.reqid} is already used by ${other}`);
    else used.set(d.cfg.reqid, d.path);
  }
  let next = 1;
  for (const d of drafts) {
    if (d.reqidGiven) continue;
    while (used.has(next)) next++;
    d.cfg.reqid = next;
    used.set(next, d.path);
  }
}

function listenAddr(s: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([0-9.]*)):(\d{1,5})$/.exec(s.trim());
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  const hostRaw = m[1] ?? m[2] ?? '';
  if (hostRaw === '') return { host: '0.0.0.0', port };
  const ip = canonicalIp(hostRaw);
  return ip ? { host: ip.text, port } : undefined;
}

function chartEnv(ctx: Ctx): ChartSettings | undefined {
  const env = ctx.env;
  const names = ['VPN_PEER_CIDRS', 'VPN_POD_CIDR', 'VPN_SERVICE_CIDR', 'VPN_MTU', 'VPN_FRONTEND_POD'];
  if (!names.some((n) => env[n] !== undefined)) return undefined;
  const parsed = new Map<string, TsRange>();
  const cidr = (field: string, s: string): string | undefined => {
    const r = parseTrafficSelector(s);
    if (!r.ok || r.ts.protocol !== 0 || s.includes('-') || s.includes('[')) {
      return ctx.err(field, `${JSON.stringify(s)} is not a valid CIDR`);
    }
    parsed.set(field, r.ts);
    return s.trim();
  };
  const out: ChartSettings = { peerCidrs: [] };
  const peers: Array<{ field: string; text: string }> = [];
  (env.VPN_PEER_CIDRS ?? '')
    .split(/\s+/)
    .filter((x) => x !== '')
    .forEach((s, i) => {
      const field = `VPN_PEER_CIDRS[${i}]`;
      const c = cidr(field, s);
      if (c) {
        out.peerCidrs.push(c);
        peers.push({ field, text: c });
      }
    });
  if (env.VPN_POD_CIDR) {
    const c = cidr('VPN_POD_CIDR', env.VPN_POD_CIDR);
    if (c) out.podCidr = c;
  }
  if (env.VPN_SERVICE_CIDR) {
    const c = cidr('VPN_SERVICE_CIDR', env.VPN_SERVICE_CIDR);
    if (c) out.serviceCidr = c;
  }
  // The on-prem ranges must not overlap the cluster's: the routes to them would capture the
  // cluster's own traffic (the chart refuses this at render time too).
  for (const p of peers) {
    for (const [field, text] of [
      ['VPN_POD_CIDR', out.podCidr],
      ['VPN_SERVICE_CIDR', out.serviceCidr],
    ] as const) {
      const local = parsed.get(field);
      if (text !== undefined && local && addressesOverlap(parsed.get(p.field)!, local)) {
        ctx.err(p.field, `${p.text} overlaps ${field} ${text}`);
        break;
      }
    }
  }
  if (env.VPN_MTU !== undefined && env.VPN_MTU.trim() !== '') {
    const m = int(ctx, 'VPN_MTU', env.VPN_MTU.trim(), 68, 65535);
    if (m !== undefined) out.mtu = m;
  }
  if (env.VPN_FRONTEND_POD) {
    if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(env.VPN_FRONTEND_POD)) {
      ctx.err('VPN_FRONTEND_POD', `${JSON.stringify(env.VPN_FRONTEND_POD)} is not a valid pod name`);
    } else out.frontendPod = env.VPN_FRONTEND_POD;
  }
  return out;
}

const TOP_KEYS = [
  'connections',
  'datapath',
  'listen',
  'retransmit',
  'dos',
  'keepalive',
  'log',
  'metrics',
  'control',
  'ha',
] as const;

function validate(ctx: Ctx, doc: unknown): LoadedConfig | undefined {
  const root = mapping(ctx, '', doc, TOP_KEYS);
  if (!root) return undefined;
  const inline: string[] = [];

  const conns: ConnectionConfig[] = [];
  const drafts: ChildDraft[] = [];
  if (root.connections === undefined || root.connections === null)
    ctx.err('connections', 'is required (at least one connection)');
  else if (!isPlainObject(root.connections))
    ctx.err('connections', `must be a mapping of connection names, got ${show(root.connections)}`);
  else {
    if (Object.keys(root.connections).length === 0)
      ctx.err('connections', 'at least one connection is required');
    for (const [name, cv] of Object.entries(root.connections)) {
      const c = connection(ctx, join('connections', name), name, cv, inline);
      if (c) {
        conns.push(c.cfg);
        drafts.push(...c.children);
      }
    }
  }
  assignReqids(ctx, drafts);

  const datapath =
    root.datapath === undefined
      ? 'auto'
      : oneOf(ctx, 'datapath', root.datapath, ['auto', 'xfrm', 'userspace', 'memory'] as const);

  const lo = mapping(ctx, 'listen', root.listen, ['address', 'port', 'nat_port']);
  let listen: DaemonSettings['listen'] | undefined;
  if (lo) {
    const addrS = lo.address === undefined ? '0.0.0.0' : str(ctx, 'listen.address', lo.address);
    const ip = addrS === undefined ? undefined : canonicalIp(addrS);
    if (addrS !== undefined && !ip)
      ctx.err('listen.address', `${JSON.stringify(addrS)} is not an IP address (use 0.0.0.0 or :: for all)`);
    const port = lo.port === undefined ? 500 : int(ctx, 'listen.port', lo.port, 0, 65535);
    const natPort = lo.nat_port === undefined ? 4500 : int(ctx, 'listen.nat_port', lo.nat_port, 0, 65535);
    if (port !== undefined && natPort !== undefined && port !== 0 && port === natPort) {
      ctx.err('listen.nat_port', `must differ from listen.port (${port})`);
    }
    if (ip && port !== undefined && natPort !== undefined) listen = { address: ip.text, port, natPort };
  }

  const ro = mapping(ctx, 'retransmit', root.retransmit, ['timeout', 'base', 'tries', 'jitter', 'limit']);
  let retransmit: RetransmitConfig | undefined;
  if (ro) {
    const timeout =
      ro.timeout === undefined
        ? defaultRetransmit.timeoutMs / 1000
        : duration(ctx, 'retransmit.timeout', ro.timeout);
    if (timeout === 0) ctx.err('retransmit.timeout', 'must be greater than 0');
    const base = ro.base === undefined ? defaultRetransmit.base : num(ctx, 'retransmit.base', ro.base, 1, 10);
    const tries =
      ro.tries === undefined ? defaultRetransmit.tries : int(ctx, 'retransmit.tries', ro.tries, 0, 100);
    // strongSwan's retransmit_jitter is a percentage.
    const jitterRaw = typeof ro.jitter === 'string' ? ro.jitter.replace(/%$/, '') : ro.jitter;
    const jitter =
      ro.jitter === undefined
        ? defaultRetransmit.jitter * 100
        : num(ctx, 'retransmit.jitter', jitterRaw, 0, 100);
    const limit =
      ro.limit === undefined ? defaultRetransmit.limitMs / 1000 : duration(ctx, 'retransmit.limit', ro.limit);
    if (timeout && base !== undefined && tries !== undefined && jitter !== undefined && limit !== undefined) {
      retransmit = {
        timeoutMs: Math.round(timeout * 1000),
        base,
        tries,
        jitter: jitter / 100,
        limitMs: Math.round(limit * 1000),
      };
    }
  }

  const dos = mapping(ctx, 'dos', root.dos, [
    'cookie_threshold',
    'cookie_threshold_ip',
    'half_open_timeout',
    'half_open_per_ip',
  ]);
  // strongSwan's block_threshold: half-open IKE_SAs accepted from one address.
  const halfOpenPerIp =
    dos?.half_open_per_ip === undefined
      ? 5
      : int(ctx, 'dos.half_open_per_ip', dos.half_open_per_ip, 0, 1_000_000);
  const cookieThreshold =
    dos?.cookie_threshold === undefined
      ? 10
      : int(ctx, 'dos.cookie_threshold', dos.cookie_threshold, -1, 1_000_000);
  // strongSwan's cookie_threshold_ip: half-open IKE_SAs from one address before it gets COOKIEs.
  const cookieThresholdIp =
    dos?.cookie_threshold_ip === undefined
      ? 3
      : int(ctx, 'dos.cookie_threshold_ip', dos.cookie_threshold_ip, 0, 1_000_000);
  const halfOpen =
    dos?.half_open_timeout === undefined ? 30 : duration(ctx, 'dos.half_open_timeout', dos.half_open_timeout);
  const keepalive = root.keepalive === undefined ? 20 : duration(ctx, 'keepalive', root.keepalive);

  const lg = mapping(ctx, 'log', root.log, ['level', 'format', 'subsystems']);
  let log: DaemonSettings['log'] | undefined;
  if (lg) {
    const level = lg.level === undefined ? 'info' : oneOf(ctx, 'log.level', lg.level, LOG_LEVELS);
    const format =
      lg.format === undefined
        ? 'auto'
        : oneOf(ctx, 'log.format', lg.format, ['auto', 'json', 'pretty'] as const);
    const subsystems: Partial<Record<Subsystem, LogLevel>> = {};
    const so = mapping(ctx, 'log.subsystems', lg.subsystems, SUBSYSTEMS);
    if (so) {
      for (const [k, v] of Object.entries(so)) {
        if (!isSubsystem(k)) continue;
        if (typeof v === 'string' && isLogLevel(v)) subsystems[k] = v;
        else ctx.err(`log.subsystems.${k}`, `must be one of ${LOG_LEVELS.join(' | ')}, got ${show(v)}`);
      }
    }
    if (level && format) log = { level, format, subsystems };
  }

  let metrics: DaemonSettings['metrics'];
  const mo = mapping(ctx, 'metrics', root.metrics, ['listen']);
  if (mo && mo.listen !== undefined) {
    const s = str(ctx, 'metrics.listen', mo.listen);
    if (s !== undefined) {
      metrics = listenAddr(s);
      if (!metrics) ctx.err('metrics.listen', `${JSON.stringify(s)} must be host:port, [v6]:port or :port`);
    }
  }
  const co = mapping(ctx, 'control', root.control, ['socket']);
  let socket: string | undefined = DEFAULT_CONTROL_SOCKET;
  if (co?.socket !== undefined) {
    socket = str(ctx, 'control.socket', co.socket);
    if (socket !== undefined && !socket.startsWith('/'))
      socket = ctx.err('control.socket', 'must be an absolute path');
  }
  const chart = chartEnv(ctx);
  const ha = root.ha === undefined ? undefined : parseHaSection(root.ha, ctx.env, (f, m) => ctx.err(f, m));

  if (ctx.errors.length > 0) return undefined;
  const engine: EngineConfig = {
    connections: conns,
    retransmit: retransmit!,
    cookieThreshold: cookieThreshold!,
    cookieThresholdIp: cookieThresholdIp!,
    halfOpenPerIp: halfOpenPerIp!,
    halfOpenTimeoutMs: Math.round(halfOpen! * 1000),
    keepalive: keepalive!,
    wallClockOffsetMs: WALL_CLOCK_OFFSET_MS,
  };
  const daemon: DaemonSettings = {
    datapath: datapath!,
    listen: listen!,
    log: log!,
    control: { socket: socket! },
    inlinePsk: inline,
  };
  if (metrics) daemon.metrics = metrics;
  if (chart) daemon.chart = chart;
  if (ha) daemon.ha = ha;
  return { engine, daemon };
}

function finish(ctx: Ctx, value: LoadedConfig | undefined): ConfigResult {
  if (value && ctx.errors.length === 0) return { ok: true, value, warnings: ctx.warnings };
  return { ok: false, errors: ctx.errors, warnings: ctx.warnings };
}

/**
 * The daemon's core runs on performance.now(); certificate validity needs the date. Taken once per
 * process, so that every load (and reload) of the file gives the same value.
 */
const WALL_CLOCK_OFFSET_MS = Date.now() - performance.now();

const defaultReadFile = (p: string): Uint8Array => new Uint8Array(readFileSync(p));

/** Parses and validates a YAML config file's text. `env` supplies psk.env values and VPN_* settings. */
export function loadConfig(text: string, env: Env, opts: LoadOptions = {}): ConfigResult {
  const ctx = new Ctx(env, opts.readFile ?? defaultReadFile);
  ctx.onCredentialFile = opts.onCredentialFile;
  const lines = new LineCounter();
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: false, lineCounter: lines });
  if (doc.errors.length > 0) {
    for (const e of doc.errors) {
      const pos = lines.linePos(e.pos[0]);
      ctx.err(`yaml:${pos.line}:${pos.col}`, e.message.split('\n')[0] ?? e.message);
    }
    return finish(ctx, undefined);
  }
  let js: unknown;
  try {
    js = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    // yaml throws (ReferenceError) for an alias without its anchor and for an alias bomb (more than
    // maxAliasCount expansions) instead of listing them in doc.errors.
    ctx.err('yaml', (e as Error).message);
    return finish(ctx, undefined);
  }
  if (js === null || js === undefined) {
    ctx.err('connections', 'is required (the file is empty)');
    return finish(ctx, undefined);
  }
  return finish(ctx, validate(ctx, js));
}

/**
 * Config-file-free mode (`ikegw daemon --from-env`): the reference chart's single connection,
 * built from its environment —
 *   IKEGW_PEER        peer gateway address (required)
 *   IKEGW_PSK_FILE    file holding the PSK, or IKEGW_PSK with the PSK itself (exactly one)
 *   VPN_PEER_CIDRS    space-separated on-prem CIDRs -> remote_ts (required)
 *   VPN_POD_CIDR, VPN_SERVICE_CIDR -> local_ts (required)
 *   VPN_MTU, VPN_FRONTEND_POD       -> daemon.chart (routes / Cilium)
 *   IKEGW_DATAPATH    auto | xfrm | userspace | memory (optional)
 * The connection and child are both named "net-net" with start_action trap, default proposals and
 * IDs, like the chart's swanctl.conf. Errors name the environment variable.
 */
export function loadEnvConfig(env: Env, opts: LoadOptions = {}): ConfigResult {
  const ctx = new Ctx(env, opts.readFile ?? defaultReadFile);
  const peer = env.IKEGW_PEER?.trim();
  if (!peer) ctx.err('IKEGW_PEER', "is required in --from-env mode (the on-prem gateway's IP address)");
  else if (!canonicalIp(peer)) ctx.err('IKEGW_PEER', `${JSON.stringify(peer)} is not an IP address`);
  const hasFile = Boolean(env.IKEGW_PSK_FILE);
  const hasVal = Boolean(env.IKEGW_PSK);
  if (hasFile === hasVal)
    ctx.err(hasFile ? 'IKEGW_PSK' : 'IKEGW_PSK_FILE', 'set exactly one of IKEGW_PSK_FILE and IKEGW_PSK');
  for (const n of ['VPN_PEER_CIDRS', 'VPN_POD_CIDR', 'VPN_SERVICE_CIDR']) {
    if (!env[n]?.trim()) ctx.err(n, 'is required in --from-env mode');
  }
  const chart = chartEnv(ctx);
  if (env.IKEGW_DATAPATH !== undefined)
    oneOf(ctx, 'IKEGW_DATAPATH', env.IKEGW_DATAPATH, ['auto', 'xfrm', 'userspace', 'memory'] as const);
  if (ctx.errors.length > 0 || !chart || !peer) return finish(ctx, undefined);

  const raw = {
    connections: {
      [ENV_CONNECTION_NAME]: {
        remote_addrs: [peer],
        psk: hasFile ? { file: env.IKEGW_PSK_FILE } : { env: 'IKEGW_PSK' },
        children: {
          [ENV_CONNECTION_NAME]: {
            local_ts: [chart.podCidr, chart.serviceCidr],
            remote_ts: chart.peerCidrs,
            start_action: 'trap',
          },
        },
      },
    },
    datapath: env.IKEGW_DATAPATH ?? 'auto',
  };
  return finish(ctx, validate(ctx, raw));
}

/** Where a configuration comes from: a file (default DEFAULT_CONFIG_PATH) or the environment. */
export interface ConfigSource {
  configPath?: string;
  fromEnv?: boolean;
  env: Env;
}

/** Loads the configuration `ikegw daemon` / `ikegw config check` were pointed at. */
export function loadFromOptions(
  o: ConfigSource,
  opts: LoadOptions = {},
): ConfigResult | { ok: false; fatal: string } {
  if (o.fromEnv) return loadEnvConfig(o.env, opts);
  const path = o.configPath ?? DEFAULT_CONFIG_PATH;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    return {
      ok: false,
      fatal: `cannot read config file ${path}: ${(e as NodeJS.ErrnoException).code ?? (e instanceof Error ? e.message : String(e))}`,
    };
  }
  return loadConfig(text, o.env, opts);
}

/** Warnings and errors of a load, one line each (before any logging exists). */
export function printConfigProblems(
  r: ConfigResult | { ok: false; fatal: string },
  stderr: (s: string) => void,
): void {
  if ('fatal' in r) {
    stderr(`ikegw: ${r.fatal}\n`);
    return;
  }
  for (const w of r.warnings) stderr(`warning: ${w}\n`);
  if (!r.ok) {
    for (const e of r.errors) stderr(`error: ${e.message}\n`);
    stderr(
      `ikegw: configuration invalid (${r.errors.length} error${r.errors.length === 1 ? '' : 's'}); nothing started\n`,
    );
  }
}
