// Two IkeEngines wired back to back in memory (strongSwan's exchange_test_helper, wireguard-go's
// bindtest): datagrams go straight to the other engine, kernel ops run on a real SaInstaller,
// time is a ManualClock, randomness is seeded. Optionally a "NAT" rewrites A's source address.
import { canonicalAddr } from '../../src/common/addr.js';
import { ManualClock } from '../../src/common/clock.js';
import { SeededRandom } from '../../src/common/random.js';
import { cidr } from '../../src/fuzz/engine-pair.js';
import type { ChildConfig, ConnectionConfig, EngineConfig } from '../../src/ike/config.js';
import { defaultRetransmit } from '../../src/ike/config.js';
import { IkeEngine } from '../../src/ike/engine.js';
import type { BusEvent, Effect, IkeEvent, TimerKey } from '../../src/ike/events.js';
import { applySaOp, type Endpoint, type SaInstaller } from '../../src/ike/ports.js';
import { parseProposals } from '../../src/ike/sa/proposal-syntax.js';

/** A CIDR as a traffic selector (shared with the engine fuzz target). */
export { cidr };

export function childConfig(
  over: Omit<Partial<ChildConfig>, 'localTs' | 'remoteTs'> & { localTs: string[]; remoteTs: string[] },
): ChildConfig {
  return {
    name: 'net',
    espProposals: parseProposals(['default'], 'esp'),
    startAction: 'none',
    closeAction: 'none',
    rekeyTime: 3600,
    lifeTime: 3960,
    rekeyBytes: 0n,
    lifeBytes: 0n,
    rekeyPackets: 0n,
    lifePackets: 0n,
    replayWindow: 64,
    reqid: 1,
    ...over,
    localTs: over.localTs.map(cidr),
    remoteTs: over.remoteTs.map(cidr),
  };
}

export function connection(
  over: Partial<ConnectionConfig> & { name: string; localAddrs: string[]; remoteAddrs: string[] },
): ConnectionConfig {
  return {
    remotePort: 500,
    psk: new TextEncoder().encode('engine-test-psk-0123456789'),
    ikeProposals: parseProposals(['default'], 'ike'),
    encap: false,
    fragmentation: true,
    fragmentSize: 1280,
    dpdDelay: 0,
    dpdAction: 'restart',
    dpdTimeout: 0,
    rekeyTime: 14400,
    overTime: 1440,
    initialContact: true,
    children: [],
    ...over,
  };
}

export function engineConfig(connections: ConnectionConfig[]): EngineConfig {
  return {
    connections,
    retransmit: { ...defaultRetransmit },
    cookieThreshold: -1,
    halfOpenPerIp: 0,
    halfOpenTimeoutMs: 30_000,
    keepalive: 20,
  };
}

interface Side {
  name: string;
  engine: IkeEngine;
  address: string;
  installer: SaInstaller;
  events: BusEvent[];
  timers: Map<string, { key: TimerKey; atMs: number }>;
}

export class EnginePair {
  readonly clock = new ManualClock(1_000);
  readonly a: Side;
  readonly b: Side;
  /** Datagrams in flight, delivered by `run()` in order. */
  readonly wire: Array<{ to: Side; local: Endpoint; remote: Endpoint; bytes: Uint8Array }> = [];
  /** Drop filter for loss tests: return true to drop. */
  drop: (d: { from: string; bytes: Uint8Array }) => boolean = () => false;
  /** A NAT in front of A: A's packets appear to B from this endpoint (port per A port). */
  nat?: { address: string; portMap: Map<number, number> };
  readonly sent: Array<{ from: string; bytes: Uint8Array }> = [];
  readonly keepalives: Array<{ from: string }> = [];
  private pendingKernel: Array<Promise<void>> = [];

  constructor(
    cfgA: EngineConfig,
    cfgB: EngineConfig,
    addrs: { a: string; b: string },
    installers: { a: SaInstaller; b: SaInstaller },
    seed = 1,
  ) {
    const mk = (
      name: string,
      cfg: EngineConfig,
      address: string,
      installer: SaInstaller,
      s: number,
    ): Side => ({
      name,
      engine: new IkeEngine(cfg, { random: new SeededRandom(s) }),
      address: canonicalAddr(address),
      installer,
      events: [],
      timers: new Map(),
    });
    this.a = mk('a', cfgA, addrs.a, installers.a, seed);
    this.b = mk('b', cfgB, addrs.b, installers.b, seed + 1000);
  }

  other(s: Side): Side {
    return s === this.a ? this.b : this.a;
  }

  /** Feed one event to a side and execute its effects (kernel ops complete asynchronously). */
  feed(side: Side, ev: IkeEvent): void {
    this.execute(side, side.engine.handle(ev, this.clock.now()));
  }

  private execute(side: Side, effects: Effect[]): void {
    for (const e of effects) {
      switch (e.kind) {
        case 'send': {
          this.sent.push({ from: side.name, bytes: e.bytes });
          if (this.drop({ from: side.name, bytes: e.bytes })) break;
          const to = this.other(side);
          let src: Endpoint = { address: side.address, port: e.local.port };
          if (side === this.a && this.nat) {
            const mapped = this.nat.portMap.get(e.local.port) ?? 30_000 + e.local.port;
            this.nat.portMap.set(e.local.port, mapped);
            src = { address: this.nat.address, port: mapped };
          }
          let dstPort = e.remote.port;
          if (to === this.a && this.nat) {
            // reverse NAT mapping
            for (const [inner, outer] of this.nat.portMap) if (outer === e.remote.port) dstPort = inner;
          }
          this.wire.push({ to, local: { address: to.address, port: dstPort }, remote: src, bytes: e.bytes });
          break;
        }
        case 'keepalive':
          this.keepalives.push({ from: side.name });
          break;
        case 'arm':
          side.timers.set(`${e.key.sa}/${e.key.what}`, { key: e.key, atMs: e.atMs });
          break;
        case 'cancel': {
          const k = `${e.key.sa}/${e.key.what}`;
          if (side.timers.get(k)?.key.gen === e.key.gen) side.timers.delete(k);
          break;
        }
        case 'kernel': {
          this.pendingKernel.push(
            applySaOp(side.installer, e.op).then(
              () => this.feed(side, { kind: 'kernel-done', opId: e.opId }),
              (err: Error) =>
                this.feed(side, { kind: 'kernel-done', opId: e.opId, error: { message: err.message } }),
            ),
          );
          break;
        }
        case 'emit':
          side.events.push(e.ev);
          break;
      }
    }
  }

  /** Checked after every delivered datagram and kernel completion (e.g. make-before-break). */
  invariant?: () => void;

  /** Deliver datagrams and kernel completions until nothing moves. */
  async settle(maxSteps = 5000): Promise<void> {
    for (let i = 0; i < maxSteps; i++) {
      if (this.pendingKernel.length) {
        const p = this.pendingKernel;
        this.pendingKernel = [];
        await Promise.all(p);
        this.invariant?.();
        continue;
      }
      const d = this.wire.shift();
      if (!d) return;
      this.feed(d.to, { kind: 'datagram', local: d.local, remote: d.remote, bytes: d.bytes });
      this.invariant?.();
    }
    throw new Error('exchange did not settle');
  }

  /** Advance time to the next armed timer of either side and fire it. */
  async fireNextTimer(): Promise<boolean> {
    let best: { side: Side; k: string; t: { key: TimerKey; atMs: number } } | undefined;
    for (const side of [this.a, this.b]) {
      for (const [k, t] of side.timers) if (!best || t.atMs < best.t.atMs) best = { side, k, t };
    }
    if (!best) return false;
    best.side.timers.delete(best.k);
    if (best.t.atMs > this.clock.now()) this.clock.advance(best.t.atMs - this.clock.now());
    this.feed(best.side, { kind: 'timer', key: best.t.key });
    await this.settle();
    return true;
  }

  of<E extends BusEvent['ev']>(side: Side, ev: E): Extract<BusEvent, { ev: E }>[] {
    return side.events.filter((e) => e.ev === ev) as Extract<BusEvent, { ev: E }>[];
  }
}
