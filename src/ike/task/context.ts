// What exchanges need from the engine. The engine implements it; exchanges never do I/O.
import type { Random } from '../../common/random.js';
import type { EngineConfig } from '../config.js';
import type { BusEvent, SaRef } from '../events.js';
import type { SaOp } from '../ports.js';
import type { ChildSa, IkeSa } from '../sa/ike-sa.js';
import type { IkeMessage, Payload } from '../wire/types.js';

export interface RequestOptions {
  what: string;
  onResponse: (msg: IkeMessage, inner: Payload[]) => void;
  onTimeout?: () => void;
  /** Give up at this time even if retransmits remain (dpd_timeout). */
  deadlineMs?: number;
}

export interface EngineCtx {
  readonly cfg: EngineConfig;
  readonly random: Random;
  readonly ikePort: number;
  readonly nattPort: number;
  /** Time of the event being handled. */
  readonly now: number;
  newUid(): number;
  ref(sa: IkeSa): SaRef;
  emit(ev: BusEvent): void;
  log(
    level: 'debug' | 'info' | 'warn' | 'error',
    subsys: string,
    msg: string,
    sa?: IkeSa,
    fields?: Record<string, unknown>,
  ): void;
  /** Encode, protect (except IKE_SA_INIT), send and track for retransmission. */
  request(sa: IkeSa, exchange: number, payloads: Payload[], opts: RequestOptions): void;
  /** Encode, protect, send and cache as the answer to request `req`. */
  respond(sa: IkeSa, req: IkeMessage, reqBytes: Uint8Array, payloads: Payload[]): void;
  /** Queue a kernel operation; `onDone` runs when the adapter reports completion. */
  kernel(op: SaOp, onDone: (error?: string) => void): void;
  arm(sa: IkeSa, what: string, atMs: number): void;
  cancel(sa: IkeSa, what: string): void;
  /** Make the SA reachable by its local SPI (after SPIs are known). */
  register(sa: IkeSa): void;
  /** Remove all state of the SA: children (kernel), timers, tables. */
  destroy(sa: IkeSa, reason: string): void;
  /** All IKE_SAs (for duplicates). */
  all(): IkeSa[];
  /** The established IKE_SAs of a connection with a peer identity (for INITIAL_CONTACT). */
  peerSas(connName: string, remoteId: string): IkeSa[];
  /** Allocate a fresh IKE SPI unique among our SAs. */
  newIkeSpi(): bigint;
  /** A new IKE_SA object (not registered) sharing `from`'s connection and endpoints. */
  cloneSa(from: IkeSa, initiator: boolean): IkeSa;
  /** Move the CHILD_SAs (and their timers) of an IKE_SA that is being replaced by a rekey. */
  moveChildren(from: IkeSa, to: IkeSa): void;
  /** Take a CHILD_SA out of its IKE_SA and remove it from the data path (inbound after a linger). */
  removeChild(sa: IkeSa, child: ChildSa, reason: string): void;
  /** Allocate a fresh inbound ESP SPI unique among our SAs. */
  newEspSpi(): number;
  /** Give back an SPI that was offered but never installed. */
  releaseEspSpi(spi: number): void;
  /** The IKE_SA completed IKE_AUTH: emit, arm DPD/rekey timers. */
  established(sa: IkeSa): void;
  /** A CHILD_SA finished installing (or failed to): emit, arm its timers. */
  childInstalled(sa: IkeSa, child: ChildSa, error?: string): void;
}
