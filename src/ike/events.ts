import type { EngineConfig } from './config.js';
// What flows into and out of the protocol core (STYLE.md §2, Rule 0).
import type { Endpoint, KernelEvent, SaOp } from './ports.js';

/** Identifies one armed timer. A timer whose generation is stale does nothing when it fires. */
export interface TimerKey {
  /** Local IKE SPI of the SA the timer belongs to (hex), or 'engine' for engine-wide timers. */
  sa: string;
  /** What it is for: 'retransmit', 'dpd', 'rekey-ike', 'rekey-child:<spi>', 'half-open', ... */
  what: string;
  gen: number;
}

export type Command =
  | { cmd: 'initiate'; conn: string; child?: string }
  | { cmd: 'terminate'; conn: string; ikeSpi?: string }
  | { cmd: 'rekey'; conn: string; child?: string; ike?: boolean }
  | { cmd: 'shutdown' }
  /** A reloaded configuration (src/ike/reconfigure.ts says what changes for each connection). */
  | {
      cmd: 'reconfigure';
      config: EngineConfig;
      /** The daemon logs the outcome in one line of its own (certificate rotation): debug here. */
      quiet?: boolean;
    };

export type IkeEvent =
  | { kind: 'datagram'; local: Endpoint; remote: Endpoint; bytes: Uint8Array }
  | { kind: 'timer'; key: TimerKey }
  | { kind: 'kernel'; ev: KernelEvent }
  | { kind: 'kernel-done'; opId: number; error?: { errno?: number; message: string } }
  | { kind: 'command'; cmd: Command }
  | { kind: 'start' };

export type Effect =
  | { kind: 'send'; local: Endpoint; remote: Endpoint; bytes: Uint8Array }
  /** RFC 3948 NAT keepalive (one 0xFF octet on the NAT-T port, no non-ESP marker). */
  | { kind: 'keepalive'; local: Endpoint; remote: Endpoint }
  | { kind: 'arm'; key: TimerKey; atMs: number }
  | { kind: 'cancel'; key: TimerKey }
  | { kind: 'kernel'; opId: number; op: SaOp }
  | { kind: 'emit'; ev: BusEvent };

export type IkeState = 'CONNECTING' | 'ESTABLISHED' | 'REKEYING' | 'REKEYED' | 'DELETING' | 'DESTROYED';
export type ChildState =
  | 'CREATED'
  | 'INSTALLING'
  | 'INSTALLED'
  | 'REKEYING'
  | 'REKEYED'
  | 'DELETING'
  | 'DELETED';

/** Identity of an IKE_SA in events (no secrets). */
export interface SaRef {
  conn: string;
  /** Unique id of this IKE_SA within the process (like strongSwan's "[3]"). */
  uid: number;
  spiI: string;
  spiR: string;
  local: Endpoint;
  remote: Endpoint;
}

export type FailureReason =
  | 'AUTHENTICATION_FAILED'
  | 'NO_PROPOSAL_CHOSEN'
  | 'TS_UNACCEPTABLE'
  | 'INVALID_KE_PAYLOAD'
  | 'TIMEOUT'
  | 'INVALID_SYNTAX'
  | 'PEER_ERROR'
  | 'KERNEL'
  | 'INTERNAL';

/**
 * Why an authentication failed, beyond AUTHENTICATION_FAILED: a fixed set, so that it can be a
 * metric label (ikegw_failures_total{cause}). Certificate refusals (x509.ts CertFailure),
 * signature refusals (signature.ts SignatureError), and the PSK / method / peer cases.
 */
export const FAILURE_CAUSES = [
  'no-cert',
  'bad-cert',
  'untrusted-ca',
  'expired',
  'not-yet-valid',
  'not-a-ca',
  'key-usage',
  'id-mismatch',
  'revoked',
  'bad-signature',
  'no-common-hash',
  'no-rfc7427',
  'unsupported-key',
  'auth-method',
  'psk-mismatch',
  'peer-rejected',
] as const;
export type FailureCause = (typeof FAILURE_CAUSES)[number];

/** A cause from the task code as the bounded type ('other' for anything not in the set). */
export function failureCause(code: string): FailureCause | 'other' {
  return (FAILURE_CAUSES as readonly string[]).includes(code) ? (code as FailureCause) : 'other';
}

/** Events for logs and metrics (strongSwan bus/alert_t). Must never carry key material. */
export type BusEvent =
  | { ev: 'ike-state'; sa: SaRef; state: IkeState; initiator: boolean; detail?: string }
  | {
      ev: 'ike-established';
      sa: SaRef;
      initiator: boolean;
      /** e.g. "AES_GCM_16_256/PRF_HMAC_SHA2_384/ECP_384" */
      algorithms: string;
      natLocal: boolean;
      natRemote: boolean;
      localId: string;
      remoteId: string;
      setupMs: number;
    }
  | {
      ev: 'child-state';
      sa: SaRef;
      child: string;
      uid: number;
      state: ChildState;
      spiIn?: number;
      spiOut?: number;
      algorithms?: string;
      localTs?: string[];
      remoteTs?: string[];
      encap?: boolean;
      detail?: string;
    }
  | {
      ev: 'message';
      sa?: SaRef;
      dir: 'in' | 'out';
      exchange: string;
      response: boolean;
      msgId: number;
      /** "[ SA KE No N(NATD_S_IP) ]" as strongSwan prints it (computed when read: debug logs only). */
      readonly summary: string;
      /** An IKE_SA_INIT response that is a COOKIE challenge (RFC 7296 §2.6), for the metrics. */
      cookie?: boolean;
      bytes: number;
      remote: Endpoint;
      retransmit?: number;
    }
  | {
      ev: 'failure';
      sa?: SaRef;
      conn?: string;
      reason: FailureReason;
      /** Why, for AUTHENTICATION_FAILED: `untrusted-ca`, `revoked`, `psk-mismatch`, ... (bounded). */
      cause?: FailureCause | 'other';
      /** Human sentence naming the cause and what to check. */
      detail: string;
      /** What to check, when the engine knows better than the reason's generic hint. */
      hint?: string;
      fields?: Record<string, unknown>;
    }
  | { ev: 'retransmit'; sa: SaRef; exchange: string; msgId: number; attempt: number }
  | { ev: 'dropped'; reason: string; remote: Endpoint; detail: string }
  /** A rekey completed: the old SA was replaced (emitted once per side per rekey). */
  | { ev: 'rekey'; sa: SaRef; what: 'ike' | 'child'; child?: string }
  /** Both ends rekeyed the same SA at once (RFC 7296 §2.8.1); the nonce rule decided. */
  | { ev: 'rekey-collision'; sa: SaRef; what: 'ike' | 'child'; child?: string }
  /** A liveness check was sent, or its retransmits ran out. */
  | { ev: 'dpd'; sa: SaRef; result: 'sent' | 'failed' }
  /** We answered an IKE_SA_INIT with a COOKIE challenge (RFC 7296 §2.6). */
  | { ev: 'cookie'; remote: Endpoint; halfOpen: number }
  | {
      ev: 'log';
      level: 'debug' | 'info' | 'warn' | 'error';
      subsys: string;
      sa?: SaRef;
      msg: string;
      fields?: Record<string, unknown>;
    };
