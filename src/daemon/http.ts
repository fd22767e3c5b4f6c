// The operations HTTP endpoint (config `metrics.listen`, the chart's probes and scrapes):
//   GET /metrics  Prometheus text format (src/daemon/metrics.ts)
//   GET /healthz  liveness: the process answers and its event loop has not been blocked for long
//   GET /readyz   readiness: see Readiness below
// Plain node:http, no framework. Answers are small JSON documents (except /metrics).
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type ELDHistogram, monitorEventLoopDelay } from 'node:perf_hooks';
import { builtin } from '../common/builtin.js';
import type { Metrics } from './metrics.js';

// node:http as a CommonJS object: its ESM namespace would load undici & co. (src/common/builtin.ts)
const { createServer } = builtin('node:http') as typeof import('node:http');

export interface ReadinessCheck {
  name: string;
  ok: boolean;
  detail: string;
}

/**
 * Readiness of the gateway for the load balancer.
 *
 * The chart's Service uses `externalTrafficPolicy: Local`: a pod that is not ready is taken out of
 * the load balancer, and then the on-prem peer can never reach it to bring a tunnel up. So ready
 * does NOT mean "a tunnel is established"; it means the gateway is able to take part:
 *   - config:  the configuration was loaded and validated;
 *   - sockets: UDP 500 and 4500 are bound;
 *   - startup: the start-up work ran — trap policies of `start_action: trap` children are installed
 *              in the data path (a failure here makes the pod unready: traffic could never start a
 *              tunnel) and `start_action: start` connections were initiated (their outcome does not
 *              matter: a peer that is down must not take us out of the load balancer);
 *   - not shutting down (after SIGTERM the pod leaves the load balancer while it sends DELETEs).
 */
export class Readiness {
  private readonly checks = new Map<string, ReadinessCheck>();
  private stopping = false;

  constructor() {
    this.set('config', false, 'not loaded yet');
    this.set('sockets', false, 'UDP sockets not bound yet');
    this.set('startup', false, 'start-up not finished');
  }

  set(name: string, ok: boolean, detail: string): void {
    this.checks.set(name, { name, ok, detail });
  }

  shuttingDown(): void {
    this.stopping = true;
  }

  get ready(): boolean {
    return !this.stopping && [...this.checks.values()].every((c) => c.ok);
  }

  report(): { ready: boolean; checks: ReadinessCheck[] } {
    const checks = [...this.checks.values()];
    if (this.stopping) checks.push({ name: 'shutdown', ok: false, detail: 'shutting down' });
    return { ready: this.ready, checks };
  }
}

export interface OpsServerOptions {
  host: string;
  port: number;
  metrics?: Metrics;
  readiness: Readiness;
  /** HA (src/ha): the election's state for GET /ha; undefined = no `ha:` (404). */
  ha?: () => { role: 'active' | 'standby'; [k: string]: unknown } | undefined;
  /** /healthz fails when the event loop was blocked longer than this since the last probe (default 10 s). */
  maxLoopDelayMs?: number;
}

export class OpsServer {
  private readonly server: Server;
  private readonly loop: ELDHistogram;

  constructor(private readonly o: OpsServerOptions) {
    this.loop = monitorEventLoopDelay({ resolution: 20 });
    this.server = createServer((req, res) => {
      this.route(req, res).catch((e: unknown) => {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`internal error: ${e instanceof Error ? e.message : String(e)}\n`);
      });
    });
    // Probes and scrapers open short connections; do not let idle ones hold shutdown up.
    this.server.keepAliveTimeout = 5000;
  }

  async start(): Promise<AddressInfo> {
    this.loop.enable();
    try {
      await new Promise<void>((resolve, reject) => {
        const onError = (e: Error): void => reject(e);
        this.server.once('error', onError);
        this.server.listen(this.o.port, this.o.host, () => {
          this.server.off('error', onError);
          resolve();
        });
      });
    } catch (e) {
      this.loop.disable();
      throw e;
    }
    return this.server.address() as AddressInfo;
  }

  async close(): Promise<void> {
    this.loop.disable();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' });
      res.end('method not allowed\n');
      return;
    }
    switch (path) {
      case '/metrics': {
        if (!this.o.metrics) return json(res, 404, { error: 'metrics disabled' });
        const body = await this.o.metrics.render();
        res.writeHead(200, { 'content-type': this.o.metrics.contentType });
        res.end(req.method === 'HEAD' ? undefined : body);
        return;
      }
      case '/healthz': {
        const maxMs = this.loop.max / 1e6;
        const p99Ms = this.loop.percentile(99) / 1e6;
        this.loop.reset();
        const limit = this.o.maxLoopDelayMs ?? 10_000;
        const ok = !(maxMs > limit);
        return json(res, ok ? 200 : 503, {
          status: ok ? 'ok' : 'event loop blocked',
          eventLoopDelayMs: { max: round(maxMs), p99: round(p99Ms) },
        });
      }
      case '/readyz': {
        const r = this.o.readiness.report();
        this.o.metrics?.setReady(r.ready);
        return json(res, r.ready ? 200 : 503, r);
      }
      case '/ha': {
        // the routes sidecar polls this (IKEGW_HA_STATUS_URL): 200 only while active
        const ha = this.o.ha?.();
        if (!ha) return json(res, 404, { error: 'ha is not configured' });
        return json(res, ha.role === 'active' ? 200 : 503, ha);
      }
      case '/':
        return json(res, 200, { endpoints: ['/metrics', '/healthz', '/readyz', '/ha'] });
      default:
        return json(res, 404, { error: `no such endpoint ${path}` });
    }
  }
}

function round(n: number): number {
  return Number.isFinite(n) ? Math.round(n * 10) / 10 : 0;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(`${JSON.stringify(body)}\n`);
}
