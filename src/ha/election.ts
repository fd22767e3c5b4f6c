// Leader election on a coordination.k8s.io/v1 Lease, as a pure state machine (STYLE.md Rule 0: no
// I/O, no timers, no Date.now). The adapter (src/ha/lease-client.ts, src/ha/runner.ts) feeds it
// events — tick, the results of the Lease reads and writes it asked for, shutdown — and executes the
// actions it returns: read / write the Lease, become active / standby, wake me at atMs, done.
//
// Semantics follow client-go's leaderelection:
//  - a candidate takes the Lease only when it is empty (no holder), ours, or when the record it
//    observed has not changed for the record's leaseDurationSeconds on ITS OWN monotonic clock
//    (observedAtMs: when the resourceVersion it saw last changed); writes carry the resourceVersion
//    that was read, so of two candidates writing at once one gets 409 Conflict;
//  - the holder renews every retry period and, when no renewal succeeded within renew deadline of
//    the SEND time of its last successful one, steps down on its own. A rival observes that write no
//    earlier than it was sent and then waits lease duration, so with
//        lease duration > renew deadline + clock-rate skew + step-down time
//    the holder has stopped acting before a rival can start (src/daemon/config.ts enforces a margin
//    of at least 2 s);
//  - a Lease that does not exist counts as an observed record "absent": a candidate creates it only
//    after it was absent for lease duration (a deleted Lease must not let a rival in while the
//    holder still acts), the holder re-creates it at once;
//  - on shutdown the holder steps down first and then releases the Lease (holder "", duration 1 s)
//    so that the standby takes over at its next read instead of waiting for expiry.
//
// Only one Lease request is in flight at a time; its result names its id, a stale result (an id that
// is not the one in flight) is ignored.

/** spec of a coordination.k8s.io/v1 Lease, as far as the election uses it. Times are RFC 3339 text. */
export interface LeaseRecord {
  holderIdentity: string;
  leaseDurationSeconds: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions: number;
}

export interface ElectionConfig {
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
}

export type ActiveReason = 'acquired' | 'expired' | 'released-by-peer';
export type StandbyReason = 'renew-failed' | 'lost' | 'shutdown' | 'start-failed';
export type TransitionReason = ActiveReason | StandbyReason;

export type LeaseOpPurpose = 'acquire' | 'renew' | 'release';

export type HaEvent =
  | { kind: 'tick' }
  | { kind: 'read-ok'; id: number; lease: { record: LeaseRecord; resourceVersion: string } | 'absent' }
  | { kind: 'read-failed'; id: number; error: string }
  | { kind: 'write-ok'; id: number; resourceVersion: string; record: LeaseRecord }
  /** conflict: 409 (stale resourceVersion, or the create found the Lease); absent: 404 on update. */
  | { kind: 'write-failed'; id: number; error: string; conflict?: boolean; absent?: boolean }
  /** The adapter could not start the active side (sockets, data path): give the Lease away. */
  | { kind: 'start-failed'; error: string }
  | { kind: 'shutdown' };

export type HaAction =
  | { kind: 'read'; id: number; timeoutMs: number }
  /** resourceVersion undefined: create the Lease (POST); else replace it (PUT) with that version. */
  | {
      kind: 'write';
      id: number;
      purpose: LeaseOpPurpose;
      record: LeaseRecord;
      resourceVersion: string | undefined;
      timeoutMs: number;
    }
  | { kind: 'become-active'; reason: ActiveReason; detail: string }
  | { kind: 'become-standby'; reason: StandbyReason; detail: string }
  /** Feed a tick at (or after) this time. Replaces any earlier wake. */
  | { kind: 'wake'; atMs: number }
  /** Shutdown finished (the Lease is released, or there was nothing to release). */
  | { kind: 'done' };

export type Role = 'active' | 'standby';

/** What `ikegw sas` / stats and metrics show. */
export interface ElectionStatus {
  role: Role;
  identity: string;
  /** The holder in the last record seen ('' = none, undefined = never read / absent). */
  holder: string | undefined;
  /** ms since the last successful renewal (while we hold the Lease). */
  lastRenewAgoMs?: number;
  /** The last Lease request error, if the last attempt failed. */
  lastError?: string;
  transitions: number;
}

interface Observation {
  /** null: the Lease does not exist. */
  resourceVersion: string | null;
  record: LeaseRecord | undefined;
  /** Our monotonic time when this resourceVersion was first seen. */
  atMs: number;
}

interface InFlight {
  id: number;
  op: 'read' | 'write';
  purpose: LeaseOpPurpose | 'observe';
  sentMs: number;
  record?: LeaseRecord;
}

/** Kubernetes MicroTime text: RFC 3339 with six fractional digits. */
export function microTime(wallMs: number): string {
  return new Date(wallMs).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

/** Per-request timeout: half the retry period, at least 1 s (a Lease PUT is small). */
export function requestTimeoutMs(cfg: ElectionConfig): number {
  return Math.max(1000, Math.round(cfg.retryPeriodMs / 2));
}

/**
 * After a failed request the next one starts a quarter of the retry period (at least 500 ms) after
 * the failed one did: with 30 % of requests failing, the holder still gets ~16 tries before its
 * renew deadline (a timed-out try has used up its time already).
 */
export function failureRetryMs(cfg: ElectionConfig): number {
  return Math.max(500, Math.round(cfg.retryPeriodMs / 4));
}

export class Election {
  private role: Role = 'standby';
  private observed: Observation | undefined;
  /** resourceVersion of our last successful write (renew without reading first). */
  private knownRv: string | undefined;
  /** Send time of our last successful acquire/renew. */
  private lastRenewMs: number | undefined;
  private inflight: InFlight | undefined;
  private nextAttemptMs = 0;
  private nextId = 1;
  private shuttingDown = false;
  private finished = false;
  /** A holder seen other than us (for the reason "released-by-peer"). */
  private sawOtherHolder = false;
  /** After start-failed: do not take the Lease again before this time. */
  private holdOffUntilMs = 0;
  private lastError: string | undefined;
  private transitions = 0;
  /**
   * Our last acquire/renew whose answer was lost (timeout, 5xx): the server may have stored it. A
   * later read that finds exactly that record proves it was, and it counts as a renewal sent then.
   */
  private unconfirmed: Array<{ sentMs: number; record: LeaseRecord }> = [];

  constructor(readonly cfg: ElectionConfig) {
    if (!(cfg.leaseDurationMs > cfg.renewDeadlineMs && cfg.renewDeadlineMs > cfg.retryPeriodMs))
      throw new RangeError('lease duration > renew deadline > retry period is required');
  }

  get isActive(): boolean {
    return this.role === 'active';
  }

  get isDone(): boolean {
    return this.finished;
  }

  status(nowMs: number): ElectionStatus {
    const s: ElectionStatus = {
      role: this.role,
      identity: this.cfg.identity,
      holder: this.observed?.record?.holderIdentity,
      transitions: this.transitions,
    };
    if (this.lastRenewMs !== undefined && this.holdsLease()) s.lastRenewAgoMs = nowMs - this.lastRenewMs;
    if (this.lastError !== undefined) s.lastError = this.lastError;
    return s;
  }

  /**
   * Handles one event at monotonic time nowMs; wallMs (the wall clock) only stamps acquireTime and
   * renewTime in the records it writes — no decision depends on it.
   */
  handle(ev: HaEvent, nowMs: number, wallMs: number = nowMs): HaAction[] {
    const out: HaAction[] = [];
    if (this.finished) return out;
    switch (ev.kind) {
      case 'tick':
        break;
      case 'shutdown':
        this.onShutdown(out, nowMs);
        break;
      case 'start-failed':
        if (this.role === 'active') {
          this.stepDown(out, 'start-failed', `could not start the active side: ${ev.error}`);
          this.holdOffUntilMs = nowMs + this.cfg.leaseDurationMs;
          // give the Lease away at once so the other replica need not wait for it to expire
          if (this.holdsLease() && this.knownRv !== undefined) this.release(out, nowMs, wallMs, this.knownRv);
        }
        break;
      case 'read-ok':
        if (!this.matches(ev.id)) return out;
        this.inflight = undefined;
        this.lastError = undefined;
        this.onRead(out, ev.lease, nowMs, wallMs);
        break;
      case 'read-failed':
        if (!this.matches(ev.id)) return out;
        this.failed(ev.error, nowMs);
        break;
      case 'write-ok':
        if (!this.matches(ev.id)) return out;
        this.onWritten(out, ev, nowMs);
        break;
      case 'write-failed': {
        if (!this.matches(ev.id)) return out;
        const f = this.inflight!;
        if (!ev.conflict && !ev.absent && f.purpose !== 'release' && f.record) {
          this.unconfirmed.push({ sentMs: f.sentMs, record: f.record });
          if (this.unconfirmed.length > 32) this.unconfirmed.shift();
        }
        this.failed(ev.error, nowMs);
        if (ev.conflict || ev.absent) {
          // someone else wrote (or deleted) the Lease: read it again right away
          this.knownRv = undefined;
          this.nextAttemptMs = nowMs;
        }
        // a failed release is tried again (attempt) until the adapter's shutdown budget ends
        break;
      }
    }
    this.checkDeadline(out, nowMs);
    if (!this.finished && !this.inflight && nowMs >= this.nextAttemptMs) this.attempt(out, nowMs, wallMs);
    const wake = this.wakeAt();
    if (!this.finished && Number.isFinite(wake)) out.push({ kind: 'wake', atMs: wake });
    return out;
  }

  // ---- internals -------------------------------------------------------------------------------

  private matches(id: number): boolean {
    return this.inflight !== undefined && this.inflight.id === id;
  }

  private holdsLease(): boolean {
    return this.observed?.record?.holderIdentity === this.cfg.identity;
  }

  private failed(error: string, nowMs: number): void {
    const sent = this.inflight?.sentMs ?? nowMs;
    this.inflight = undefined;
    this.lastError = error;
    this.nextAttemptMs = Math.max(nowMs, sent + failureRetryMs(this.cfg));
    if (this.shuttingDown && !this.holdsLease()) this.nextAttemptMs = nowMs;
  }

  private observe(rv: string | null, record: LeaseRecord | undefined, nowMs: number): void {
    if (this.observed && this.observed.resourceVersion === rv) {
      this.observed.record = record;
      return;
    }
    this.observed = { resourceVersion: rv, record, atMs: nowMs };
    if (record && record.holderIdentity !== '' && record.holderIdentity !== this.cfg.identity)
      this.sawOtherHolder = true;
  }

  private durationOf(record: LeaseRecord | undefined): number {
    const s = record?.leaseDurationSeconds;
    return s !== undefined && s > 0 ? s * 1000 : this.cfg.leaseDurationMs;
  }

  private checkDeadline(out: HaAction[], nowMs: number): void {
    if (this.role !== 'active' || this.lastRenewMs === undefined) return;
    if (nowMs < this.lastRenewMs + this.cfg.renewDeadlineMs) return;
    const ago = ((nowMs - this.lastRenewMs) / 1000).toFixed(1);
    this.stepDown(
      out,
      'renew-failed',
      `no successful renewal for ${ago} s (renew deadline ${this.cfg.renewDeadlineMs / 1000} s)${this.lastError ? `; last error: ${this.lastError}` : ''}`,
    );
  }

  private stepDown(out: HaAction[], reason: StandbyReason, detail: string): void {
    if (this.role !== 'active') return;
    this.role = 'standby';
    this.transitions++;
    out.push({ kind: 'become-standby', reason, detail });
  }

  private becomeActive(out: HaAction[], reason: ActiveReason, detail: string): void {
    if (this.role === 'active') return;
    this.role = 'active';
    this.transitions++;
    out.push({ kind: 'become-active', reason, detail });
  }

  /** Next time a tick is needed: the next attempt (none while a request is in flight — its result
   * comes as an event, the adapter times it out) and, while active, the renew deadline. */
  private wakeAt(): number {
    let at = this.inflight ? Number.POSITIVE_INFINITY : this.nextAttemptMs;
    if (this.role === 'active' && this.lastRenewMs !== undefined)
      at = Math.min(at, this.lastRenewMs + this.cfg.renewDeadlineMs);
    return at;
  }

  private attempt(out: HaAction[], nowMs: number, wallMs: number): void {
    if (this.shuttingDown) {
      if (!this.holdsLease()) {
        this.finished = true;
        out.push({ kind: 'done' });
      } else if (this.knownRv !== undefined) this.release(out, nowMs, wallMs, this.knownRv);
      else this.read(out, nowMs);
      return;
    }
    if (this.role === 'active' && this.knownRv !== undefined && this.holdsLease()) {
      this.write(out, 'renew', this.renewRecord(wallMs), this.knownRv, nowMs);
      return;
    }
    this.read(out, nowMs);
  }

  private read(out: HaAction[], nowMs: number): void {
    const id = this.nextId++;
    this.inflight = { id, op: 'read', purpose: 'observe', sentMs: nowMs };
    out.push({ kind: 'read', id, timeoutMs: requestTimeoutMs(this.cfg) });
  }

  private write(
    out: HaAction[],
    purpose: LeaseOpPurpose,
    record: LeaseRecord,
    rv: string | undefined,
    nowMs: number,
  ): void {
    const id = this.nextId++;
    this.inflight = { id, op: 'write', purpose, sentMs: nowMs, record };
    out.push({
      kind: 'write',
      id,
      purpose,
      record,
      resourceVersion: rv,
      timeoutMs: requestTimeoutMs(this.cfg),
    });
  }

  private renewRecord(wallMs: number): LeaseRecord {
    const prev = this.observed?.record;
    const now = microTime(wallMs);
    return {
      holderIdentity: this.cfg.identity,
      leaseDurationSeconds: Math.ceil(this.cfg.leaseDurationMs / 1000),
      acquireTime: prev?.acquireTime ?? now,
      renewTime: now,
      leaseTransitions: prev?.leaseTransitions ?? 0,
    };
  }

  private acquireRecord(wallMs: number): LeaseRecord {
    const prev = this.observed?.record;
    const now = microTime(wallMs);
    return {
      holderIdentity: this.cfg.identity,
      leaseDurationSeconds: Math.ceil(this.cfg.leaseDurationMs / 1000),
      acquireTime: now,
      renewTime: now,
      leaseTransitions: (prev?.leaseTransitions ?? 0) + 1,
    };
  }

  private onRead(
    out: HaAction[],
    lease: { record: LeaseRecord; resourceVersion: string } | 'absent',
    nowMs: number,
    wallMs: number,
  ): void {
    this.nextAttemptMs = this.shuttingDown ? nowMs : nowMs + this.cfg.retryPeriodMs;
    if (lease === 'absent') {
      this.observe(null, undefined, nowMs);
      this.knownRv = undefined;
      if (this.shuttingDown) return;
      // the holder re-creates a deleted Lease at once; a candidate only after lease duration
      if (this.role === 'active' || nowMs >= this.observed!.atMs + this.cfg.leaseDurationMs) {
        if (nowMs < this.holdOffUntilMs) return;
        this.write(out, 'acquire', this.acquireRecord(wallMs), undefined, nowMs);
      } else {
        this.nextAttemptMs = Math.min(this.nextAttemptMs, this.observed!.atMs + this.cfg.leaseDurationMs);
      }
      return;
    }
    const { record, resourceVersion } = lease;
    this.observe(resourceVersion, record, nowMs);
    const holder = record.holderIdentity;
    const u =
      holder === this.cfg.identity
        ? this.unconfirmed.find(
            (x) => x.record.renewTime === record.renewTime && x.record.acquireTime === record.acquireTime,
          )
        : undefined;
    this.unconfirmed = [];
    if (u && (this.lastRenewMs === undefined || u.sentMs > this.lastRenewMs)) {
      // our write whose answer was lost did land: a renewal sent at u.sentMs
      this.lastRenewMs = u.sentMs;
      this.checkDeadline(out, nowMs);
    }
    if (holder === this.cfg.identity) {
      this.knownRv = resourceVersion;
      if (this.shuttingDown) return; // attempt() releases it
      if (this.role !== 'active' && nowMs < this.holdOffUntilMs) return;
      // ours: renew (keeps acquireTime and leaseTransitions)
      this.write(
        out,
        this.role === 'active' ? 'renew' : 'acquire',
        this.renewRecord(wallMs),
        resourceVersion,
        nowMs,
      );
      return;
    }
    if (this.role === 'active') {
      this.stepDown(out, 'lost', `the Lease is held by ${holder === '' ? 'nobody' : holder} now`);
      this.knownRv = undefined;
      return;
    }
    if (this.shuttingDown || nowMs < this.holdOffUntilMs) return;
    if (holder === '') {
      this.write(out, 'acquire', this.acquireRecord(wallMs), resourceVersion, nowMs);
      return;
    }
    const expiresAt = this.observed!.atMs + this.durationOf(record);
    if (nowMs >= expiresAt) {
      this.write(out, 'acquire', this.acquireRecord(wallMs), resourceVersion, nowMs);
      return;
    }
    // read again exactly when it would expire (or at the next retry, whichever is first)
    this.nextAttemptMs = Math.min(this.nextAttemptMs, expiresAt);
  }

  private onWritten(out: HaAction[], ev: Extract<HaEvent, { kind: 'write-ok' }>, nowMs: number): void {
    const f = this.inflight!;
    this.inflight = undefined;
    this.lastError = undefined;
    const prevHolder = this.observed?.record?.holderIdentity;
    const prevObserved = this.observed;
    this.observe(ev.resourceVersion, ev.record, nowMs);
    this.nextAttemptMs = nowMs + this.cfg.retryPeriodMs;
    if (f.purpose === 'release') {
      this.knownRv = undefined;
      this.lastRenewMs = undefined;
      if (this.shuttingDown) {
        this.finished = true;
        out.push({ kind: 'done' });
      }
      return;
    }
    this.knownRv = ev.resourceVersion;
    this.lastRenewMs = f.sentMs;
    this.unconfirmed = [];
    if (this.shuttingDown) {
      this.nextAttemptMs = nowMs; // acquired while shutting down: release it right away
      return;
    }
    if (this.role === 'active') return;
    if (nowMs >= f.sentMs + this.cfg.renewDeadlineMs) return; // too late to act on; renew first
    let reason: ActiveReason = 'acquired';
    if (prevHolder !== undefined && prevHolder !== '' && prevHolder !== this.cfg.identity) reason = 'expired';
    else if (prevHolder === '' && this.sawOtherHolder) reason = 'released-by-peer';
    const was =
      prevObserved === undefined || prevObserved.resourceVersion === null
        ? 'the Lease did not exist'
        : prevHolder === ''
          ? 'the Lease had no holder'
          : prevHolder === this.cfg.identity
            ? 'the Lease named us already'
            : `the Lease of ${prevHolder} was not renewed for ${((nowMs - prevObserved.atMs) / 1000).toFixed(1)} s`;
    this.becomeActive(out, reason, `${was}; leaseTransitions ${ev.record.leaseTransitions}`);
  }

  private onShutdown(out: HaAction[], nowMs: number): void {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    this.stepDown(out, 'shutdown', 'shutting down: releasing the Lease');
    // A request in flight is overridden when we hold the Lease (its result is then ignored; a
    // renewal that still lands makes the release fail with 409 and the re-read retries it);
    // otherwise its result is awaited (an acquisition that succeeded is released right after).
    if (this.holdsLease() || !this.inflight) {
      this.inflight = undefined;
      this.nextAttemptMs = nowMs;
    }
  }

  private release(out: HaAction[], nowMs: number, wallMs: number, rv: string): void {
    const prev = this.observed?.record;
    const record: LeaseRecord = {
      holderIdentity: '',
      leaseDurationSeconds: 1,
      acquireTime: prev?.acquireTime ?? microTime(wallMs),
      renewTime: microTime(wallMs),
      leaseTransitions: prev?.leaseTransitions ?? 0,
    };
    this.write(out, 'release', record, rv, nowMs);
  }
}
