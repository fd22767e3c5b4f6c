// Logging: pino, JSON by default (one object per line for `kubectl logs` / Loki), a one-line human
// format when stdout is a terminal. One child logger per subsystem (strongSwan's DBG_* groups),
// each with its own level, changeable at run time.
//
// Secrets: three layers so that no PSK or key reaches a log line at any level —
//  1. the protocol core's BusEvents carry no key material by contract (src/ike/events.ts);
//  2. `scrub` (pino formatters.log) replaces any field whose name looks like a secret, at any depth,
//     and prints every byte array as its length only;
//  3. pino `redact` paths for the same names (belt and braces for fields pino adds itself).
import type { Writable } from 'node:stream';
import pino, { type Logger } from 'pino';
import { isSubsystem, type LogLevel, SUBSYSTEMS, type Subsystem } from '../common/log-levels.js';
import type { BusEvent, FailureReason, SaRef } from '../ike/events.js';
import type { Endpoint } from '../ike/ports.js';

// The level and subsystem names live in common/ (the CLI needs them without pino).
export {
  isLogLevel,
  isSubsystem,
  LOG_LEVELS,
  type LogLevel,
  SUBSYSTEMS,
  type Subsystem,
} from '../common/log-levels.js';

export type LogFormat = 'auto' | 'json' | 'pretty';

/** Field names that are never logged (case-insensitive, whole name). */
export const SECRET_FIELD =
  /^(psk|secret|secrets|password|key|keys|skd|sk[aep][ir]?|enckey|integkey|privatekey|sharedsecret|dhsecret|keymat|skeyseed)$/i;
const REDACT_NAMES = [
  'psk',
  'secret',
  'password',
  'key',
  'skD',
  'skAi',
  'skAr',
  'skEi',
  'skEr',
  'skPi',
  'skPr',
  'encKey',
  'integKey',
];
export const REDACT_PATHS = REDACT_NAMES.flatMap((n) => [n, `*.${n}`, `*.*.${n}`]);
const CENSOR = '[redacted]';

/** Deep copy of a log object with secret-named fields censored and byte arrays reduced to their length. */
export function scrub(v: unknown, depth = 0, seen = new WeakSet<object>()): unknown {
  if (typeof v === 'bigint') return v.toString();
  if (v === null || typeof v !== 'object') return v;
  if (v instanceof Error) return v;
  if (ArrayBuffer.isView(v)) return `[${v.byteLength} bytes]`;
  if (v instanceof ArrayBuffer) return `[${v.byteLength} bytes]`;
  if (seen.has(v)) return '[circular]';
  if (depth > 8) return '[deep]';
  seen.add(v);
  if (Array.isArray(v)) return v.map((x) => scrub(x, depth + 1, seen));
  if (v instanceof Map) return scrub(Object.fromEntries(v), depth, seen);
  if (v instanceof Set) return scrub([...v], depth, seen);
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) out[k] = SECRET_FIELD.test(k) ? CENSOR : scrub(x, depth + 1, seen);
  return out;
}

export interface LogOptions {
  /** Default level for every subsystem. */
  level?: LogLevel;
  format?: LogFormat;
  subsystems?: Partial<Record<Subsystem, LogLevel>>;
  /** Where lines go (default stdout). Tests pass a collector. */
  destination?: { write(s: string): unknown };
  /** Whether the destination is a terminal (decides `auto`); default process.stdout.isTTY. */
  isTty?: boolean;
  /** Colour the level in the pretty format (default: isTty). */
  color?: boolean;
}

/** The root logger plus one child per subsystem with independently settable levels. */
export class Logs {
  private readonly children = new Map<Subsystem, Logger>();
  readonly pretty: boolean;

  constructor(
    readonly root: Logger,
    private readonly defaults: Partial<Record<Subsystem, LogLevel>>,
    private readonly defaultLevel: LogLevel,
    pretty: boolean,
  ) {
    this.pretty = pretty;
  }

  get(subsys: Subsystem): Logger {
    let l = this.children.get(subsys);
    if (!l) {
      l = this.root.child({ subsys }, { level: this.defaults[subsys] ?? this.defaultLevel });
      this.children.set(subsys, l);
    }
    return l;
  }

  /** Change a subsystem's level at run time ('*' = all subsystems). */
  setLevel(subsys: Subsystem | '*', level: LogLevel): void {
    const targets = subsys === '*' ? SUBSYSTEMS : [subsys];
    for (const s of targets) this.get(s).level = level;
  }

  levels(): Record<Subsystem, LogLevel> {
    const out = {} as Record<Subsystem, LogLevel>;
    for (const s of SUBSYSTEMS) out[s] = this.get(s).level as LogLevel;
    return out;
  }
}

export function createLogs(opts: LogOptions = {}): Logs {
  const level = opts.level ?? 'info';
  const isTty = opts.isTty ?? Boolean(process.stdout.isTTY);
  const format = opts.format ?? 'auto';
  const pretty = format === 'pretty' || (format === 'auto' && isTty);
  const dest = opts.destination ?? (pino.destination({ dest: 1, sync: true }) as unknown as Writable);
  const color = opts.color ?? isTty;
  const stream = pretty ? { write: (s: string) => dest.write(prettyLines(s, color)) } : dest;
  const root = pino(
    {
      level: 'trace',
      base: undefined,
      messageKey: 'msg',
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: {
        level: (label) => ({ level: label }),
        log: (obj) => scrub(obj) as Record<string, unknown>,
      },
      redact: { paths: REDACT_PATHS, censor: CENSOR },
    },
    stream,
  );
  return new Logs(root, opts.subsystems ?? {}, level, pretty);
}

// ---- the human format ------------------------------------------------------------------------

const LEVEL_COLOR: Record<string, string> = {
  warn: '\x1b[33m',
  error: '\x1b[31m',
  fatal: '\x1b[31m',
  debug: '\x1b[90m',
  trace: '\x1b[90m',
};

function fmtValue(v: unknown): string {
  if (typeof v === 'string') return /^[\w.:/\-[\]@%+,]+$/.test(v) ? v : JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return JSON.stringify(v);
}

/** One JSON log line -> "12:00:01.234 INFO  [ike] msg key=value ...". */
export function formatPretty(o: Record<string, unknown>, color = false): string {
  const time = typeof o.time === 'string' ? o.time.slice(11, 23) : '';
  const level = String(o.level ?? '');
  const lv = level.toUpperCase().padEnd(5);
  const subsys = typeof o.subsys === 'string' ? `[${o.subsys}] ` : '';
  const msg = typeof o.msg === 'string' ? o.msg : '';
  const rest: string[] = [];
  for (const [k, v] of Object.entries(o)) {
    if (k === 'time' || k === 'level' || k === 'subsys' || k === 'msg') continue;
    if (k === 'err' && v && typeof v === 'object') {
      const e = v as { type?: string; message?: string; stack?: string };
      rest.push(`err=${JSON.stringify(`${e.type ?? 'Error'}: ${e.message ?? ''}`)}`);
      continue;
    }
    rest.push(`${k}=${fmtValue(v)}`);
  }
  const lvS = color && LEVEL_COLOR[level] ? `${LEVEL_COLOR[level]}${lv}\x1b[0m` : lv;
  return `${time} ${lvS} ${subsys}${msg}${rest.length ? `  ${rest.join(' ')}` : ''}`;
}

function prettyLines(chunk: string, color: boolean): string {
  let out = '';
  for (const line of chunk.split('\n')) {
    if (!line) continue;
    try {
      out += `${formatPretty(JSON.parse(line) as Record<string, unknown>, color)}\n`;
    } catch {
      out += `${line}\n`;
    }
  }
  return out;
}

// ---- BusEvent -> log lines -------------------------------------------------------------------

export function fmtEndpoint(e: Endpoint): string {
  return e.address.includes(':') ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`;
}

function saName(sa: SaRef): string {
  return `${sa.conn}[${sa.uid}]`;
}

function saFields(sa: SaRef): Record<string, unknown> {
  return {
    conn: sa.conn,
    sa: saName(sa),
    spiI: sa.spiI,
    spiR: sa.spiR,
    local: fmtEndpoint(sa.local),
    peer: fmtEndpoint(sa.remote),
  };
}

function spi32(v: number | undefined): string | undefined {
  return v === undefined ? undefined : (v >>> 0).toString(16).padStart(8, '0');
}

const SUBSYS_ALIAS: Record<string, Subsystem> = {
  chd: 'child',
  knl: 'kernel',
  cfg: 'config',
  enc: 'ike',
  mgr: 'ike',
  dmn: 'daemon',
};

function subsysOf(s: string): Subsystem {
  if (isSubsystem(s)) return s;
  return SUBSYS_ALIAS[s] ?? 'ike';
}

/** Failures the engine recovers from by itself are warnings; the rest end an attempt: errors. */
const WARN_REASONS = new Set<FailureReason>(['INVALID_KE_PAYLOAD', 'INVALID_SYNTAX', 'PEER_ERROR']);

/**
 * What to check, per failure reason — added to failure lines as the `hint` field (and shown by the
 * CLI). The engine's detail sentence names the cause; the hint says where to look. README
 * "Troubleshooting" is keyed by the same reasons.
 */
export const FAILURE_HINTS: Record<FailureReason, string> = {
  AUTHENTICATION_FAILED:
    'both sides must use the same pre-shared key (psk.file/env: no trailing spaces; 0x/0s prefixes decode) and matching IDs (local.id / remote.id; the default ID is the local IP address — behind NAT that is the private one, not the public address the peer may expect)',
  NO_PROPOSAL_CHOSEN:
    'the proposals (proposals / esp_proposals) of both sides share no algorithm combination; compare "ours" and "theirs" in this line, or use [default] on both sides',
  TS_UNACCEPTABLE:
    "local_ts/remote_ts must mirror the peer's remote_ts/local_ts (the peer's may be wider, ikegw narrows; never disjoint)",
  INVALID_KE_PAYLOAD: 'harmless when followed by a retry: the peer prefers another key exchange group',
  TIMEOUT:
    "the peer did not answer: check UDP 500 and 4500 reach it (firewall, security group, load balancer with externalTrafficPolicy: Local), the peer's address (remote_addrs) and that its IKE daemon runs",
  INVALID_SYNTAX:
    'the peer sent a message ikegw could not parse; capture it (tcpdump udp port 500 or 4500) and report it',
  PEER_ERROR: 'the peer reported an error; its log names the cause',
  KERNEL:
    'the data path refused an SA or policy: check the datapath setting, NET_ADMIN capability, and the kernel log line just before this one',
  INTERNAL: 'a bug in ikegw; the line before names the exception — please report it',
};

/**
 * The COOKIE challenge event of the DoS work (src/ike/events.ts). Named here too, so this file
 * compiles whether or not the engine's BusEvent union has it yet.
 */
export type CookieEvent = { ev: 'cookie'; remote: Endpoint; halfOpen: number };
/** Every event busLine understands. */
export type AnyBusEvent = BusEvent | CookieEvent;

/** One log line: which subsystem logger, at which level, with which fields and message. */
export interface LogLine {
  subsys: Subsystem;
  level: 'trace' | 'debug' | 'info' | 'warn' | 'error';
  fields: Record<string, unknown>;
  msg: string;
}

/**
 * Turns one BusEvent into (at most) one log line: state changes at info with connection name, IKE
 * SPIs, peer and child; exchanged messages at debug in strongSwan's form
 * ("received IKE_AUTH request 1 [ IDi AUTH SA TSi TSr ]"); failures at warn/error with their cause
 * and a hint of what to check. Pure: the CLI uses it to print progress of `ikegw initiate`.
 */
export function busLine(ev: AnyBusEvent): LogLine | undefined {
  switch (ev.ev) {
    case 'ike-state': {
      const role = ev.initiator ? 'initiator' : 'responder';
      return {
        subsys: 'ike',
        level: 'info',
        fields: { ...saFields(ev.sa), state: ev.state, role, ...(ev.detail ? { detail: ev.detail } : {}) },
        msg: `IKE_SA ${saName(ev.sa)} ${ev.state}${ev.detail ? `: ${ev.detail}` : ''}`,
      };
    }
    case 'ike-established': {
      const s = ev.sa;
      const nat =
        ev.natLocal || ev.natRemote
          ? ` (NAT: ${[ev.natLocal && 'local', ev.natRemote && 'remote'].filter(Boolean).join('+')})`
          : '';
      return {
        subsys: 'ike',
        level: 'info',
        fields: {
          ...saFields(s),
          state: 'ESTABLISHED',
          role: ev.initiator ? 'initiator' : 'responder',
          localId: ev.localId,
          remoteId: ev.remoteId,
          algorithms: ev.algorithms,
          natLocal: ev.natLocal,
          natRemote: ev.natRemote,
          setupMs: ev.setupMs,
        },
        msg: `IKE_SA ${saName(s)} established between ${fmtEndpoint(s.local)}[${ev.localId}]...${fmtEndpoint(s.remote)}[${ev.remoteId}] ${ev.algorithms}${nat}`,
      };
    }
    case 'child-state': {
      const fields: Record<string, unknown> = {
        ...saFields(ev.sa),
        child: ev.child,
        childUid: ev.uid,
        state: ev.state,
      };
      const spiIn = spi32(ev.spiIn);
      const spiOut = spi32(ev.spiOut);
      if (spiIn) fields.spiIn = spiIn;
      if (spiOut) fields.spiOut = spiOut;
      if (ev.algorithms) fields.algorithms = ev.algorithms;
      if (ev.localTs) fields.localTs = ev.localTs;
      if (ev.remoteTs) fields.remoteTs = ev.remoteTs;
      if (ev.encap !== undefined) fields.encap = ev.encap;
      if (ev.detail) fields.detail = ev.detail;
      let msg = `CHILD_SA ${ev.child}{${ev.uid}} ${ev.state} in IKE_SA ${saName(ev.sa)}`;
      if (spiIn && spiOut) msg += `, SPIs ${spiIn}_i ${spiOut}_o`;
      if (ev.localTs && ev.remoteTs) msg += `, TS ${ev.localTs.join(' ')} === ${ev.remoteTs.join(' ')}`;
      if (ev.detail) msg += `: ${ev.detail}`;
      return { subsys: 'child', level: 'info', fields, msg };
    }
    case 'message': {
      const what = `${ev.exchange} ${ev.response ? 'response' : 'request'} ${ev.msgId}`;
      const verb =
        ev.dir === 'in' ? 'received' : ev.retransmit ? `retransmit ${ev.retransmit} of` : 'sending';
      const dir = ev.dir === 'in' ? 'from' : 'to';
      return {
        subsys: 'ike',
        level: 'debug',
        fields: {
          ...(ev.sa ? saFields(ev.sa) : {}),
          peer: fmtEndpoint(ev.remote),
          bytes: ev.bytes,
          ...(ev.retransmit ? { retransmit: ev.retransmit } : {}),
        },
        msg: `${verb} ${what} ${ev.summary} ${dir} ${fmtEndpoint(ev.remote)} (${ev.bytes} bytes)`,
      };
    }
    case 'failure': {
      const subsys: Subsystem =
        ev.reason === 'KERNEL' ? 'kernel' : ev.reason === 'TS_UNACCEPTABLE' ? 'child' : 'ike';
      const msg = ev.detail.startsWith(ev.reason) ? ev.detail : `${ev.reason}: ${ev.detail}`;
      const fields = {
        ...(ev.sa ? saFields(ev.sa) : ev.conn ? { conn: ev.conn } : {}),
        reason: ev.reason,
        ...(ev.cause ? { cause: ev.cause } : {}),
        ...(ev.fields ?? {}),
        hint: ev.hint ?? FAILURE_HINTS[ev.reason],
      };
      return { subsys, level: WARN_REASONS.has(ev.reason) ? 'warn' : 'error', fields, msg };
    }
    case 'retransmit':
      return {
        subsys: 'ike',
        level: 'info',
        fields: { ...saFields(ev.sa), exchange: ev.exchange, msgId: ev.msgId, attempt: ev.attempt },
        msg: `retransmit ${ev.attempt} of ${ev.exchange} request ${ev.msgId} to ${fmtEndpoint(ev.sa.remote)}`,
      };
    case 'dropped':
      // Debug only: a flood of junk must not flood the log (it is counted in metrics).
      return {
        subsys: 'net',
        level: 'debug',
        fields: { peer: fmtEndpoint(ev.remote), reason: ev.reason },
        msg: `dropped packet from ${fmtEndpoint(ev.remote)}: ${ev.reason}: ${ev.detail}`,
      };
    case 'cookie':
      // Debug only: cookies are sent during floods (counted in metrics).
      return {
        subsys: 'ike',
        level: 'debug',
        fields: { peer: fmtEndpoint(ev.remote), halfOpen: ev.halfOpen },
        msg: `COOKIE challenge to ${fmtEndpoint(ev.remote)} (${ev.halfOpen} half-open IKE_SAs)`,
      };
    case 'log':
      return {
        subsys: subsysOf(ev.subsys),
        level: ev.level,
        fields: { ...(ev.sa ? saFields(ev.sa) : {}), ...(ev.fields ?? {}) },
        msg: ev.msg,
      };
  }
  return undefined;
}

/** Writes busLine(ev) to its subsystem logger (nothing when that level is off). */
export function busToLog(ev: BusEvent, logs: Logs): void {
  // The hot events (one per IKE message, kernel op and drop) are debug lines: skip building them
  // when that level is off (a measurable share of the CPU per IKE_SA otherwise).
  if (ev.ev === 'message' && !logs.get('ike').isLevelEnabled('debug')) return;
  if (ev.ev === 'dropped' && !logs.get('net').isLevelEnabled('debug')) return;
  // state changes are info lines (four per IKE_SA set-up): nothing to build at warn
  if ((ev.ev === 'ike-state' || ev.ev === 'ike-established') && !logs.get('ike').isLevelEnabled('info'))
    return;
  if (ev.ev === 'child-state' && !logs.get('child').isLevelEnabled('info')) return;
  if (ev.ev === 'log' && !logs.get(subsysOf(ev.subsys)).isLevelEnabled(ev.level)) return;
  const line = busLine(ev);
  if (!line) return;
  const l = logs.get(line.subsys);
  if (!l.isLevelEnabled(line.level)) return;
  l[line.level](line.fields, line.msg);
}
