// HA for the routes sidecar (`ikegw routes` with IKEGW_HA_STATUS_URL): routes only while this pod's
// daemon is the active replica. The daemon answers GET /ha on its metrics port (same pod, so
// 127.0.0.1): 200 {"role":"active"} while it holds the Lease, 503 {"role":"standby"} otherwise.
//
// The gate polls it every interval (default 1 s) and calls start() when the daemon turns active and
// stop() when it turns standby. An explicit standby answer stops at once; no answer (the daemon
// restarting, a timeout) stops after two polls in a row — a daemon that does not answer holds no
// tunnel, and routes towards this pod would only swallow the traffic.

export interface HaGateOptions {
  url: string;
  intervalMs?: number;
  /** Begin routing (start the routes agent). */
  start(): Promise<void>;
  /** Stop routing (the agent removes its routes). */
  stop(): Promise<void>;
  log: {
    info(o: object, msg: string): void;
    warn(o: object, msg: string): void;
  };
  /** GET for tests; default fetch with a timeout. */
  get?: (url: string, timeoutMs: number) => Promise<{ status: number; body: unknown }>;
}

export type GateState = 'active' | 'standby' | 'unknown';

async function defaultGet(url: string, timeoutMs: number): Promise<{ status: number; body: unknown }> {
  const r = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  let body: unknown;
  try {
    body = await r.json();
  } catch {
    body = undefined;
  }
  return { status: r.status, body };
}

export class HaGate {
  private routing = false;
  private misses = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private closed = false;
  private busy: Promise<void> = Promise.resolve();

  constructor(private readonly o: HaGateOptions) {}

  get isRouting(): boolean {
    return this.routing;
  }

  /** Polls now and then every interval. */
  start(): void {
    this.o.log.info(
      { url: this.o.url },
      `routes follow the daemon's HA role (${this.o.url}): none until it is active`,
    );
    void this.poll();
  }

  /** One poll; the next one is scheduled after it. */
  async poll(): Promise<void> {
    if (this.closed) return;
    const interval = this.o.intervalMs ?? 1000;
    let state: GateState;
    let detail = '';
    try {
      const r = await (this.o.get ?? defaultGet)(this.o.url, Math.max(500, interval));
      const role = (r.body as { role?: unknown } | undefined)?.role;
      state = r.status === 200 && role === 'active' ? 'active' : 'standby';
      const holder = (r.body as { holder?: unknown } | undefined)?.holder;
      detail = `HTTP ${r.status}${typeof holder === 'string' ? `, Lease holder ${holder || 'none'}` : ''}`;
    } catch (e) {
      state = 'unknown';
      detail = (e as Error).message;
    }
    await this.apply(state, detail);
    if (!this.closed) this.timer = setTimeout(() => void this.poll(), interval);
  }

  private async apply(state: GateState, detail: string): Promise<void> {
    if (state === 'unknown') {
      this.misses++;
      if (this.misses < 2) return;
    } else this.misses = 0;
    const want = state === 'active';
    if (want === this.routing) return;
    this.routing = want;
    this.busy = this.busy.then(async () => {
      if (want) {
        this.o.log.info({ ha: 'active' }, `the daemon is active (${detail}): installing routes`);
        try {
          await this.o.start();
        } catch (e) {
          // tried again at the next poll
          this.o.log.warn({ ha: 'active' }, `installing routes failed: ${(e as Error).message}`);
          this.routing = false;
        }
      } else {
        this.o.log.info(
          { ha: state },
          `the daemon is ${state === 'unknown' ? 'not answering' : 'on standby'} (${detail}): removing routes`,
        );
        await this.o.stop();
      }
    });
    await this.busy;
  }

  /** Stops polling; the caller stops routing itself (SIGTERM removes the routes anyway). */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    await this.busy;
  }
}
