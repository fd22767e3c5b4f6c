// The core's view of configuration: already parsed and validated (src/daemon/config.ts turns the
// YAML file into this). Names follow swanctl.conf where a strongSwan user would look for them.
import type { TsRange } from './ports.js';

export interface IdConfig {
  /** IdType.* */
  type: number;
  /** Wire form: 4/16 address bytes, FQDN/KEY_ID bytes. */
  data: Uint8Array;
}

/** One IKE or ESP proposal after parsing strongSwan syntax ("aes128-sha256-x25519"). */
export interface ProposalConfig {
  /** [encrId, keyBits] pairs, in preference order. keyBits 0 = algorithm has a fixed key size. */
  encr: Array<{ id: number; keyBits: number }>;
  /** IKE only. */
  prf: number[];
  /** Empty for AEAD-only proposals. */
  integ: number[];
  /** Key exchange groups; for ESP empty = no PFS. */
  dh: number[];
  /** ESP only: [0] or [0,1] etc. */
  esn: number[];
}

export type StartAction = 'none' | 'trap' | 'start';
export type DpdAction = 'clear' | 'trap' | 'restart';
export type CloseAction = 'none' | 'trap' | 'start';

export interface ChildConfig {
  name: string;
  localTs: TsRange[];
  remoteTs: TsRange[];
  espProposals: ProposalConfig[];
  startAction: StartAction;
  closeAction: CloseAction;
  /** Seconds; 0 disables. */
  rekeyTime: number;
  lifeTime: number;
  /** Bytes/packets limits handed to the data path (0 = none). */
  rekeyBytes: bigint;
  lifeBytes: bigint;
  rekeyPackets: bigint;
  lifePackets: bigint;
  replayWindow: number;
  /** Reqid to use in the data path; allocated by the daemon if not configured. */
  reqid: number;
}

export interface RetransmitConfig {
  timeoutMs: number;
  base: number;
  tries: number;
  /** Fraction, e.g. 0.2 = up to 20% shorter. */
  jitter: number;
  /** Upper bound for one delay (0 = none). */
  limitMs: number;
}

export interface ConnectionConfig {
  name: string;
  /** Local addresses to use ("" or absent = any). */
  localAddrs: string[];
  /** Peer addresses; "%any" accepts any peer (responder only). */
  remoteAddrs: string[];
  remotePort: number;
  localId?: IdConfig;
  /** undefined = %any. */
  remoteId?: IdConfig;
  /** The pre-shared key (empty when neither side authenticates with it). Never logged. */
  psk: Uint8Array;
  /** How we authenticate (local.auth): pre-shared key (default) or certificate signature. */
  localAuth?: 'psk' | 'pubkey';
  /** How the peer must authenticate (remote.auth); default psk. */
  remoteAuth?: 'psk' | 'pubkey';
  /** local.auth pubkey: our certificate (DER) first, then intermediate CA certificates to send. */
  localCerts?: Uint8Array[];
  /** local.auth pubkey: our private key, PKCS#8 DER. Never logged. */
  localKey?: Uint8Array;
  /** local.auth pubkey with an RSA key: sign with RSASSA-PSS (local.auth rsa/pss). */
  rsaPss?: boolean;
  /** remote.auth pubkey: the trusted CA certificates (remote.cacerts, DER). */
  remoteCaCerts?: Uint8Array[];
  /** remote.auth pubkey: CRLs (remote.crls, DER) the peer's chain is checked against (RFC 5280). */
  remoteCrls?: Uint8Array[];
  /** When to send our certificates (strongSwan send_cert): default ifasked (the peer sent CERTREQ). */
  sendCert?: 'always' | 'ifasked' | 'never';
  ikeProposals: ProposalConfig[];
  /** Force UDP encapsulation (strongSwan encap = yes). */
  encap: boolean;
  /** RFC 7383 fragmentation: 'yes' negotiates it, 'no' never. */
  fragmentation: boolean;
  fragmentSize: number;
  /** Seconds; 0 disables. */
  dpdDelay: number;
  dpdAction: DpdAction;
  /** Seconds after which an unanswered liveness check declares the peer dead (0 = the retransmit schedule). */
  dpdTimeout: number;
  rekeyTime: number;
  overTime: number;
  /**
   * Send INITIAL_CONTACT on the first IKE_SA to this peer, and act on a received one (delete the
   * peer identity's other IKE_SAs). False with unique: never, as strongSwan.
   */
  initialContact: boolean;
  children: ChildConfig[];
}

export interface EngineConfig {
  connections: ConnectionConfig[];
  retransmit: RetransmitConfig;
  /** Half-open IKE_SAs before COOKIEs are required (0 = always, -1 = never). */
  cookieThreshold: number;
  /** Half-open IKE_SAs accepted from one address (0 = no limit); strongSwan's block_threshold. */
  halfOpenPerIp: number;
  /**
   * Half-open IKE_SAs from one address before that address must return a COOKIE (absent or 0 =
   * only the global threshold; cookieThreshold -1 turns both off); strongSwan's
   * cookie_threshold_ip. Checked before halfOpenPerIp, so a busy address is asked to prove it
   * receives before it is refused.
   */
  cookieThresholdIp?: number;
  halfOpenTimeoutMs: number;
  /** Default NAT keepalive interval in seconds. */
  keepalive: number;
  /**
   * Added to the core's monotonic `nowMs` gives wall-clock ms since the epoch, for certificate
   * validity. Absent: `nowMs` is taken as wall-clock time (tests with a ManualClock).
   */
  wallClockOffsetMs?: number;
}

export const defaultRetransmit: RetransmitConfig = {
  // strongSwan charon.retransmit_* defaults
  timeoutMs: 4000,
  base: 1.8,
  tries: 5,
  jitter: 0,
  limitMs: 0,
};
