// Runs the election core (src/ha/election.ts) for the daemon: executes its actions — Lease requests
// through a LeaseStore (src/ha/lease-client.ts), the wake timer, and becoming active / standby
// through the daemon's hooks — and feeds the results back, one event at a time.
//
// Order guarantees: become-active / become-standby run one after the other (a start that is still
// running when the step-down comes finishes first, then stops); a release is sent only after the
// step-down before it has finished (the Lease is given away once nothing acts on it any more).

import { type Clock, monotonicClock } from '../common/clock.js';
import { Counter, Gauge, type Registry } from '../daemon/prom.js';
import type { HaSettings } from './config.js';
import {
  Election,
  type ElectionStatus,
  type HaAction,
  type HaEvent,
  type Role,
  type TransitionReason,
} from './election.js';
import type { LeaseStore } from './lease-client.js';

export interface HaLog {
  info(fields: object, msg: string): void;
  warn(fields: object, msg: string): void;
  error(fields: object, msg: string): void;
  debug(fields: object, msg: string): void;
}

export interface HaHooks {
  /** Start acting: bind, install, initiate. A rejection gives the Lease away (start-failed). */
  activate(): Promise<void>;
  /** Stop acting: DELETEs to the peer (bounded), SAs and policies removed, sockets closed. */
  deactivate(): Promise<void>;
  /** Role changed (called when the decision is taken, before activate/deactivate run). */
  onRole?(role: Role): void;
}

/** `ikegw_ha_active` and `ikegw_ha_transitions_total{to, reason}` in the daemon's registry. */
export class HaMetrics {
  private readonly active: Gauge;
  private readonly transitions: Counter<'to' | 'reason'>;
  constructor(registry: Registry) {
    this.active = new Gauge({
      name: 'ikegw_ha_active',
      help: 'High availability: 1 while this replica holds the Lease and acts (binds UDP 500/4500, holds the tunnel), 0 on standby',
      registers: [registry],
    });
    this.transitions = new Counter({
      name: 'ikegw_ha_transitions_total',
      help: 'High availability role changes: to="active" (reason acquired | expired | released-by-peer) or to="standby" (renew-failed | lost | shutdown | start-failed)',
      labelNames: ['to', 'reason'],
      registers: [registry],
    });
    this.active.set(0);
  }
  transition(to: Role, reason: TransitionReason): void {
    this.active.set(to === 'active' ? 1 : 0);
    this.transitions.inc({ to, reason });
  }
}

export interface HaRunnerOptions {
  settings: HaSettings;
  store: LeaseStore;
  hooks: HaHooks;
  log: HaLog;
  metrics?: HaMetrics;
  clock?: Clock;
  /** Wall clock for the Lease's times (default Date.now). */
  wall?: () => number;
}

export class HaRunner {
  private readonly election: Election;
  private readonly clock: Clock;
  private readonly wall: () => number;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private readonly queue: HaEvent[] = [];
  private draining = false;
  private unitChain: Promise<void> = Promise.resolve();
  private resolveDone: (() => void) | undefined;
  private readonly done: Promise<void>;
  private stopped = false;
  private readFailures = 0;

  constructor(private readonly o: HaRunnerOptions) {
    this.clock = o.clock ?? monotonicClock;
    this.wall = o.wall ?? Date.now;
    this.election = new Election({
      identity: o.settings.identity,
      leaseDurationMs: o.settings.leaseDurationMs,
      renewDeadlineMs: o.settings.renewDeadlineMs,
      retryPeriodMs: o.settings.retryPeriodMs,
    });
    this.done = new Promise((r) => {
      this.resolveDone = r;
    });
  }

  get where(): string {
    return this.o.store.where;
  }

  start(): void {
    const s = this.o.settings;
    this.o.log.info(
      {
        identity: s.identity,
        lease: this.where,
        leaseDuration: s.leaseDurationMs / 1000,
        renewDeadline: s.renewDeadlineMs / 1000,
        retryPeriod: s.retryPeriodMs / 1000,
      },
      `ha: standby (candidate ${s.identity} for ${this.where}; lease ${s.leaseDurationMs / 1000} s, renew deadline ${s.renewDeadlineMs / 1000} s, retry ${s.retryPeriodMs / 1000} s)`,
    );
    this.feed({ kind: 'tick' });
  }

  status(): ElectionStatus & { lease: string } {
    return { ...this.election.status(this.clock.now()), lease: this.where };
  }

  get active(): boolean {
    return this.election.isActive;
  }

  /**
   * SIGTERM: steps down (DELETEs, SAs removed, unbound) and releases the Lease; resolves when that
   * is done or after timeoutMs (then the Lease simply expires).
   */
  async shutdown(timeoutMs: number): Promise<void> {
    this.feed({ kind: 'shutdown' });
    let t: ReturnType<typeof setTimeout> | undefined;
    const ok = await Promise.race([
      this.done.then(() => true),
      new Promise<boolean>((r) => {
        t = setTimeout(() => r(false), timeoutMs);
      }),
    ]);
    clearTimeout(t);
    if (!ok)
      this.o.log.warn(
        { lease: this.where },
        `ha: the Lease was not released within ${timeoutMs} ms; the standby takes over when it expires`,
      );
    await this.unitChain;
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private feed(ev: HaEvent): void {
    if (this.stopped) return;
    this.queue.push(ev);
    if (this.draining) return;
    this.draining = true;
    try {
      for (let e = this.queue.shift(); e; e = this.queue.shift()) {
        let acts: HaAction[];
        try {
          acts = this.election.handle(e, this.clock.now(), this.wall());
        } catch (err) {
          this.o.log.error({ err }, `ha: internal error handling ${e.kind}: ${(err as Error).message}`);
          continue;
        }
        for (const a of acts) this.execute(a);
      }
    } finally {
      this.draining = false;
    }
  }

  private execute(a: HaAction): void {
    const { store, log } = this.o;
    switch (a.kind) {
      case 'wake': {
        clearTimeout(this.timer);
        this.timer = setTimeout(
          () => this.feed({ kind: 'tick' }),
          Math.max(0, Math.ceil(a.atMs - this.clock.now())),
        );
        return;
      }
      case 'read':
        store.read(a.timeoutMs).then(
          (lease) => {
            if (this.readFailures > 0)
              log.info(
                { lease: this.where },
                `ha: ${this.where} readable again after ${this.readFailures} failed read(s)`,
              );
            this.readFailures = 0;
            this.feed({ kind: 'read-ok', id: a.id, lease });
          },
          (e: unknown) => {
            // the first failure of a series is a warning, the rest debug (a standby cut off from
            // the API server would otherwise log every second)
            (this.readFailures++ === 0 ? log.warn : log.debug).call(
              log,
              { lease: this.where },
              `ha: ${(e as Error).message}`,
            );
            this.feed({ kind: 'read-failed', id: a.id, error: (e as Error).message });
          },
        );
        return;
      case 'write': {
        // a release waits for the step-down before it (nothing may act once the Lease is free)
        const before = a.purpose === 'release' ? this.unitChain : Promise.resolve();
        before
          .then(() => store.write(a.record, a.resourceVersion, a.timeoutMs))
          .then(
            (r) =>
              this.feed({ kind: 'write-ok', id: a.id, resourceVersion: r.resourceVersion, record: a.record }),
            (e: unknown) => {
              const err = e as { message?: string; conflict?: boolean; absent?: boolean };
              (err.conflict ? log.debug : log.warn).call(
                log,
                { lease: this.where },
                `ha: ${err.message ?? String(e)}`,
              );
              this.feed({
                kind: 'write-failed',
                id: a.id,
                error: err.message ?? String(e),
                ...(err.conflict ? { conflict: true } : {}),
                ...(err.absent ? { absent: true } : {}),
              });
            },
          );
        return;
      }
      case 'become-active':
      case 'become-standby': {
        const to: Role = a.kind === 'become-active' ? 'active' : 'standby';
        const st = this.election.status(this.clock.now());
        log.info(
          { ha: to, reason: a.reason, holder: st.holder, identity: st.identity, lease: this.where },
          `ha: ${to} (${a.reason}): ${a.detail}`,
        );
        this.o.metrics?.transition(to, a.reason);
        this.o.hooks.onRole?.(to);
        const t0 = this.clock.now();
        this.unitChain = this.unitChain.then(async () => {
          try {
            if (to === 'active') await this.o.hooks.activate();
            else await this.o.hooks.deactivate();
            log.info(
              { ha: to },
              `ha: ${to === 'active' ? 'now active: sockets bound, connections started' : 'stepped down: DELETEs sent, SAs removed, sockets closed'} (${Math.round(this.clock.now() - t0)} ms)`,
            );
          } catch (e) {
            log.error(
              { ha: to },
              `ha: ${to === 'active' ? 'becoming active' : 'stepping down'} failed: ${(e as Error).message}`,
            );
            if (to === 'active') this.feed({ kind: 'start-failed', error: (e as Error).message });
          }
        });
        return;
      }
      case 'done':
        this.resolveDone?.();
        return;
    }
  }
}
