// Two IkeEngines back to back in memory for the engine fuzz target (the same idea as
// test/helpers/engine-pair.ts, which src/ cannot import): datagrams go straight to the other
// engine, kernel operations run on MemoryInstallers, time is a ManualClock, randomness is seeded.
// Either side may use several local addresses; a datagram goes to the other side whatever its
// destination address.
import { addrToBig, bigToAddr } from '../common/addr.js';
import { ManualClock } from '../common/clock.js';
import { SeededRandom } from '../common/random.js';
import { MemoryInstaller } from '../esp/memory-installer.js';
import type { ChildConfig, ConnectionConfig, EngineConfig } from '../ike/config.js';
import { IkeEngine } from '../ike/engine.js';
import type { BusEvent, Effect, IkeEvent, TimerKey } from '../ike/events.js';
import { applySaOp, type Endpoint, type TsRange } from '../ike/ports.js';
import { parseProposals } from '../ike/sa/proposal-syntax.js';

export function cidr(text: string): TsRange {
  const [a, lenS] = text.split('/');
  const family = a!.includes(':') ? 6 : 4;
  const bits = family === 4 ? 32 : 128;
  const len = lenS === undefined ? bits : Number(lenS);
  const base = addrToBig(a!);
  const host = (1n << BigInt(bits - len)) - 1n;
  return {
    family,
    protocol: 0,
    startPort: 0,
    endPort: 65535,
    startAddr: bigToAddr(base & ~host, family),
    endAddr: bigToAddr((base & ~host) | host, family),
  };
}

export function child(name: string, localTs: string[], remoteTs: string[], reqid: number): ChildConfig {
  return {
    name,
    localTs: localTs.map(cidr),
    remoteTs: remoteTs.map(cidr),
    espProposals: parseProposals(['default'], 'esp'),
    startAction: 'none',
    closeAction: 'none',
    // No timers of their own: the fuzzer decides when time passes and what gets rekeyed.
    rekeyTime: 0,
    lifeTime: 0,
    rekeyBytes: 0n,
    lifeBytes: 0n,
    rekeyPackets: 0n,
    lifePackets: 0n,
    replayWindow: 64,
    reqid,
  };
}

export function connection(
  name: string,
  localAddrs: string[],
  remoteAddrs: string[],
  children: ChildConfig[],
  proposals: string[] = ['default'],
): ConnectionConfig {
  return {
    name,
    localAddrs,
    remoteAddrs,
    remotePort: 500,
    psk: new TextEncoder().encode('fuzz-engine-psk-0123456789abcdef'),
    ikeProposals: parseProposals(proposals, 'ike'),
    encap: false,
    fragmentation: true,
    fragmentSize: 1280,
    dpdDelay: 0,
    dpdAction: 'clear',
    dpdTimeout: 0,
    rekeyTime: 0,
    overTime: 0,
    initialContact: false,
    children,
  };
}

export function engineConfig(connections: ConnectionConfig[]): EngineConfig {
  return {
    connections,
    retransmit: { timeoutMs: 4000, base: 1.8, tries: 5, jitter: 0, limitMs: 0 },
    // The daemon's defaults (config.ts): COOKIEs above 10 half-open SAs, 5 per address.
    cookieThreshold: 10,
    halfOpenPerIp: 5,
    halfOpenTimeoutMs: 30_000,
    keepalive: 20,
  };
}

export interface Side {
  name: 'a' | 'b';
  engine: IkeEngine;
  installer: MemoryInstaller;
  events: BusEvent[];
  timers: Map<string, { key: TimerKey; atMs: number }>;
  /** Datagrams this side sent (cleared by the user). */
  sent: Array<{ local: Endpoint; remote: Endpoint; bytes: Uint8Array }>;
}

export class EnginePair {
  readonly clock = new ManualClock(1_000_000);
  readonly a: Side;
  readonly b: Side;
  private readonly wire: Array<{ to: Side; local: Endpoint; remote: Endpoint; bytes: Uint8Array }> = [];
  private pendingKernel: Array<Promise<void>> = [];
  /** Drop datagrams instead of delivering them (the other side never sees them). */
  deliver = true;

  constructor(cfgA: EngineConfig, cfgB: EngineConfig, seed: number) {
    const mk = (name: 'a' | 'b', cfg: EngineConfig, s: number): Side => ({
      name,
      engine: new IkeEngine(cfg, { random: new SeededRandom(s) }),
      installer: new MemoryInstaller(),
      events: [],
      timers: new Map(),
      sent: [],
    });
    this.a = mk('a', cfgA, seed);
    this.b = mk('b', cfgB, seed + 1000);
  }

  other(s: Side): Side {
    return s === this.a ? this.b : this.a;
  }

  /** Feeds one event to a side and executes its effects (kernel ops complete asynchronously). */
  feed(side: Side, ev: IkeEvent): void {
    this.execute(side, side.engine.handle(ev, this.clock.now()));
  }

  private execute(side: Side, effects: Effect[]): void {
    for (const e of effects) {
      switch (e.kind) {
        case 'send': {
          side.sent.push({ local: e.local, remote: e.remote, bytes: e.bytes });
          if (!this.deliver) break;
          const to = this.other(side);
          this.wire.push({ to, local: { ...e.remote }, remote: { ...e.local }, bytes: e.bytes });
          break;
        }
        case 'keepalive':
          break;
        case 'arm':
          side.timers.set(`${e.key.sa}/${e.key.what}`, { key: e.key, atMs: e.atMs });
          break;
        case 'cancel': {
          const k = `${e.key.sa}/${e.key.what}`;
          if (side.timers.get(k)?.key.gen === e.key.gen) side.timers.delete(k);
          break;
        }
        case 'kernel':
          this.pendingKernel.push(
            applySaOp(side.installer, e.op).then(
              () => this.feed(side, { kind: 'kernel-done', opId: e.opId }),
              (err: Error) =>
                this.feed(side, { kind: 'kernel-done', opId: e.opId, error: { message: err.message } }),
            ),
          );
          break;
        case 'emit':
          side.events.push(e.ev);
          break;
      }
    }
  }

  get busy(): boolean {
    return this.pendingKernel.length > 0 || this.wire.length > 0;
  }

  /** Delivers datagrams and kernel completions until nothing moves. */
  async settle(maxSteps = 2000): Promise<void> {
    for (let i = 0; i < maxSteps; i++) {
      if (this.pendingKernel.length) {
        const p = this.pendingKernel;
        this.pendingKernel = [];
        await Promise.all(p);
        continue;
      }
      const d = this.wire.shift();
      if (!d) return;
      this.feed(d.to, { kind: 'datagram', local: d.local, remote: d.remote, bytes: d.bytes });
    }
    throw new Error(`the engines did not settle within ${maxSteps} steps (a message loop?)`);
  }

  /** Advances the clock by `ms`, firing every timer that falls due on the way (both sides). */
  async advance(ms: number): Promise<void> {
    const end = this.clock.now() + ms;
    for (;;) {
      let best: { side: Side; k: string; t: { key: TimerKey; atMs: number } } | undefined;
      for (const side of [this.a, this.b]) {
        for (const [k, t] of side.timers) if (!best || t.atMs < best.t.atMs) best = { side, k, t };
      }
      if (!best || best.t.atMs > end) break;
      best.side.timers.delete(best.k);
      if (best.t.atMs > this.clock.now()) this.clock.advance(best.t.atMs - this.clock.now());
      this.feed(best.side, { kind: 'timer', key: best.t.key });
      await this.settle();
    }
    if (end > this.clock.now()) this.clock.advance(end - this.clock.now());
  }
}
