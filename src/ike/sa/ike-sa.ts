// State of one IKE_SA and its CHILD_SAs. Plain data; the exchanges in task/ operate on it.
import type { ChildConfig, ConnectionConfig } from '../config.js';
import type { KeyExchange } from '../crypto/dh.js';
import type { SkCipher } from '../crypto/sk.js';
import type { ChildState, IkeState } from '../events.js';
import type { AddSaSpec, Endpoint, TsRange } from '../ports.js';
import type { IkeMessage, Payload } from '../wire/types.js';
import type { EspSuite, IkeSuite } from './proposal.js';

/** IKE keys (RFC 7296 §2.14). Never logged: inspect/JSON print a placeholder. */
export interface IkeKeyMaterial {
  skD: Uint8Array;
  skAi: Uint8Array;
  skAr: Uint8Array;
  skEi: Uint8Array;
  skEr: Uint8Array;
  skPi: Uint8Array;
  skPr: Uint8Array;
}

/** Our outstanding request (window size 1, RFC 7296 §2.3). */
export interface PendingRequest {
  msgId: number;
  exchange: number;
  /** One datagram, or several when fragmented (RFC 7383). */
  packets: Uint8Array[];
  attempt: number;
  sentAtMs: number;
  /** What the request is for, in logs. */
  what: string;
  onResponse: (msg: IkeMessage, inner: Payload[]) => void;
  /** Called when retransmits are exhausted. */
  onTimeout?: () => void;
  deadlineMs?: number;
}

export interface CachedResponse {
  msgId: number;
  /** Digest of the request this answered, so only true retransmits get the cached reply. */
  requestDigest: string;
  packets: Uint8Array[];
}

export interface ChildSa {
  uid: number;
  cfg: ChildConfig;
  state: ChildState;
  /** Our inbound SPI (chosen by us), and the peer's inbound SPI = our outbound. */
  spiIn: number;
  spiOut: number;
  reqid: number;
  suite: EspSuite;
  /** Negotiated in IKE_AUTH, which has no KE: its suite says nothing about the peer's PFS wishes. */
  viaAuth?: boolean;
  localTs: TsRange[];
  remoteTs: TsRange[];
  encap: boolean;
  /** Kernel operations still in flight for installation. */
  pendingOps: number;
  installError?: string;
  onInstalled?: (error?: string) => void;
  installedAtMs?: number;
  rekeyAtMs?: number;
  expireAtMs?: number;
  /** Inbound and outbound SA specs as installed, for deletion. */
  installedIn?: { src: string; dst: string };
  installedOut?: { src: string; dst: string };
  policiesInstalled: boolean;
  /** Outbound SA held back until the rekey initiator deletes the old CHILD_SA. */
  pendingOutbound?: AddSaSpec;
  /** We are rekeying this CHILD_SA: our exchange's nonces and the SA it creates (collisions, §2.8.1). */
  rekey?: { nonceI: Uint8Array; nonceR?: Uint8Array; newChild?: ChildSa };
  /** The peer rekeyed this CHILD_SA (we responded): the nonces and the SA its exchange created. */
  rekeyedByPeer?: { nonceI: Uint8Array; nonceR: Uint8Array; newChild: ChildSa };
  /** The CHILD_SA this one replaces (set on the new SA of a rekey). */
  replaces?: ChildSa;
  /**
   * Set on a CHILD_SA we created as the responder of a peer's make-before-break reauthentication
   * (an IKE_AUTH for traffic an INSTALLED CHILD_SA of another IKE_SA carries): that older CHILD_SA.
   * Our outbound SA is held back until it goes (src/ike/task/ike-auth.ts).
   */
  reauthOf?: ChildSa;
  /** The other direction of `reauthOf`: set on the older CHILD_SA. */
  reauthedBy?: ChildSa;
}

export interface IkeSa {
  uid: number;
  conn: ConnectionConfig;
  /** Original initiator of this IKE_SA (RFC 7296 §2.2: the I flag). */
  initiator: boolean;
  spiI: bigint;
  spiR: bigint;
  state: IkeState;
  local: Endpoint;
  remote: Endpoint;
  /** We are behind a NAT (NAT_DETECTION_DESTINATION_IP mismatch). */
  natLocal: boolean;
  /** The peer is behind a NAT (NAT_DETECTION_SOURCE_IP mismatch). */
  natRemote: boolean;
  suite?: IkeSuite;
  ke?: KeyExchange;
  nonceI: Uint8Array;
  nonceR: Uint8Array;
  /** Raw IKE_SA_INIT request and response: signed in AUTH (RFC 7296 §2.15). */
  initRequest?: Uint8Array;
  initResponse?: Uint8Array;
  keys?: IkeKeyMaterial;
  cipherOut?: SkCipher;
  cipherIn?: SkCipher;
  /** Our next request's message ID. */
  nextMsgId: number;
  pending?: PendingRequest;
  /** The next request ID we expect from the peer. */
  nextPeerMsgId: number;
  lastResponse?: CachedResponse;
  children: ChildSa[];
  createdAtMs: number;
  establishedAtMs?: number;
  /** Initiator: COOKIE the responder asked us to return (RFC 7296 §2.6). */
  cookie?: Uint8Array;
  keRetries: number;
  /** Initiator: the child to create with IKE_AUTH (cleared once handled). */
  firstChild?: ChildConfig;
  /** Initiator: the child that was requested in IKE_AUTH. */
  firstChildCfg?: ChildConfig;
  /** Initiator: the ESP proposals and SPI we offered in IKE_AUTH. */
  offeredSpiIn?: number;
  /** Our inbound SPIs offered in CREATE_CHILD_SA requests not answered yet (freed with the SA). */
  offeredChildSpis?: Set<number>;
  peerFragmentation: boolean;
  localIdText: string;
  remoteIdText: string;
  /** Timer generations by purpose: a firing timer with an older generation is stale. */
  timers: Map<string, number>;
  lastInboundMs: number;
  /** Whether we told the peer INITIAL_CONTACT. */
  sentInitialContact: boolean;
  /** We are rekeying this IKE_SA (RFC 7296 §1.3.2): our nonce, KE and new SPI, then the new SA. */
  ikeRekey?: { nonceI: Uint8Array; ke: KeyExchange; spi: bigint; nonceR?: Uint8Array; newSa?: IkeSa };
  /** The peer rekeyed this IKE_SA (we responded): its nonces and the new SA (collisions, §2.8.2). */
  ikeRekeyedByPeer?: { nonceI: Uint8Array; nonceR: Uint8Array; newSa: IkeSa };
  /** RFC 7383 fragments of the message being received. */
  reassembly?: {
    msgId: number;
    response: boolean;
    total: number;
    parts: Map<number, Uint8Array>;
    innerType: number;
    first: Uint8Array;
    size: number;
  };
  /** Key in the engine's half-open table while a responder SA awaits IKE_AUTH. */
  halfOpenKey?: string;
  /** Why a REKEYED IKE_SA is destroyed if the peer's DELETE never comes. */
  rekeyedReason?: string;
  /** The IKE_SA this one replaced by a rekey. */
  predecessor?: IkeSa;
  /** The IKE_SA this one replaced by a rekey (for logs). */
  rekeyedFrom?: number;
}

export function localSpi(sa: IkeSa): bigint {
  return sa.initiator ? sa.spiI : sa.spiR;
}
