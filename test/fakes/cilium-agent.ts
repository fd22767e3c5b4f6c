// A fake cilium-agent API on a unix socket, answering like the real one for the calls ikegw makes
// (cilium/cilium api/v1/openapi.yaml; endpoint IDs parsed as pkg/endpoint/id/id.go does):
//   GET   /v1/endpoint/{id}         200 Endpoint | 400 (unknown prefix / bad id) | 404 (no body) | 429
//   GET   /v1/endpoint/{id}/config  200 EndpointConfigurationStatus | 404 | 429
//   PATCH /v1/endpoint/{id}/config  200 | 400 (unknown option or value) | 404 | 429
// plus the failure modes the client must survive: 429 with or without Retry-After, 403 from the API
// access policy, and restarts (socket closed and re-created; endpoints re-created with new IDs
// and default options, i.e. SourceIPVerification Enabled again).
import { mkdtempSync, rmSync, unlinkSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Mutable endpoint options an agent reports by default (pkg/option endpoint options). */
const DEFAULT_OPTIONS: Record<string, string> = {
  Conntrack: 'Enabled',
  ConntrackAccounting: 'Enabled',
  ConntrackLocal: 'Disabled',
  Debug: 'Disabled',
  DebugLB: 'Disabled',
  DebugPolicy: 'Disabled',
  DropNotification: 'Enabled',
  MonitorAggregationLevel: 'None',
  PolicyAuditMode: 'Disabled',
  PolicyVerdictNotification: 'Enabled',
  SourceIPVerification: 'Enabled',
  TraceNotification: 'Enabled',
};

interface FakeEndpoint {
  id: number;
  ipv4?: string;
  ipv6?: string;
  podName: string;
  namespace: string;
  options: Record<string, string>;
}

export interface AgentRequest {
  method: string;
  path: string;
  status: number;
  body?: unknown;
}

export class FakeCiliumAgent {
  readonly dir: string;
  readonly socketPath: string;
  readonly requests: AgentRequest[] = [];
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private endpoints = new Map<number, FakeEndpoint>();
  private nextId = 100;
  private rateLimit: { remaining: number; retryAfter: string | undefined } | undefined;
  private forbidden: { method: string | undefined; remaining: number } | undefined;

  private constructor() {
    this.dir = mkdtempSync(join(tmpdir(), 'ikegw-cilium-'));
    this.socketPath = join(this.dir, 'cilium.sock');
  }

  static async start(): Promise<FakeCiliumAgent> {
    const a = new FakeCiliumAgent();
    await a.listen();
    return a;
  }

  private listen(): Promise<void> {
    const server = createServer((req, res) => this.handle(req, res));
    server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.socketPath, () => resolve());
    });
  }

  private async close(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    for (const sock of this.sockets) sock.destroy();
    await new Promise<void>((resolve) => s.close(() => resolve()));
    try {
      unlinkSync(this.socketPath);
    } catch {
      /* already gone */
    }
  }

  async stop(): Promise<void> {
    await this.close();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /**
   * The agent restarts: the socket disappears for `downMs`, then the agent comes back and restores
   * its endpoints with new IDs and default options (SourceIPVerification Enabled).
   */
  async restart(downMs = 300): Promise<void> {
    await this.close();
    await new Promise((r) => setTimeout(r, downMs));
    const old = [...this.endpoints.values()];
    this.endpoints = new Map();
    for (const e of old) this.addEndpoint({ ...e, options: undefined });
    await this.listen();
  }

  addEndpoint(e: {
    ipv4?: string;
    ipv6?: string;
    podName?: string;
    namespace?: string;
    options?: Record<string, string> | undefined;
  }): number {
    const id = this.nextId++;
    const ep: FakeEndpoint = {
      id,
      podName: e.podName ?? 'vpn-frontend-0',
      namespace: e.namespace ?? 'vpn',
      options: { ...DEFAULT_OPTIONS, ...(e.options ?? {}) },
    };
    if (e.ipv4) ep.ipv4 = e.ipv4;
    if (e.ipv6) ep.ipv6 = e.ipv6;
    this.endpoints.set(id, ep);
    return id;
  }

  removeEndpoint(id: number): void {
    this.endpoints.delete(id);
  }

  option(id: number, name: string): string | undefined {
    return this.endpoints.get(id)?.options[name];
  }

  endpointIdFor(ip: string): number | undefined {
    return [...this.endpoints.values()].find((e) => e.ipv4 === ip || e.ipv6 === ip)?.id;
  }

  /** The next `count` requests get 429, with this Retry-After header value (or none). */
  rateLimitNext(count: number, retryAfter?: string): void {
    this.rateLimit = { remaining: count, retryAfter };
  }

  /** The next `count` requests (of `method`, or any) get 403. */
  forbidNext(count: number, method?: string): void {
    this.forbidden = { method: method?.toUpperCase(), remaining: count };
  }

  private reply(
    res: ServerResponse,
    rec: AgentRequest,
    status: number,
    body?: unknown,
    headers: Record<string, string> = {},
  ): void {
    rec.status = status;
    const text = body === undefined ? '' : JSON.stringify(body);
    res.writeHead(status, {
      'Content-Type': 'application/json',
      'Content-Length': Buffer.byteLength(text),
      ...headers,
    });
    res.end(text);
  }

  /** pkg/endpoint/id: "[prefix:]id", default prefix cilium-local. */
  private lookup(rawId: string): FakeEndpoint | undefined | 'bad' {
    const idx = rawId.indexOf(':');
    const prefix = idx < 0 ? 'cilium-local' : rawId.slice(0, idx);
    const value = idx < 0 ? rawId : rawId.slice(idx + 1);
    const eps = [...this.endpoints.values()];
    switch (prefix) {
      case 'cilium-local': {
        if (!/^\d+$/.test(value)) return 'bad';
        return this.endpoints.get(Number(value));
      }
      case 'ipv4':
        return eps.find((e) => e.ipv4 === value);
      case 'ipv6':
        return eps.find((e) => e.ipv6 === value);
      case 'pod-name':
        return eps.find(
          (e) => `${e.namespace}:${e.podName}` === value || `${e.namespace}/${e.podName}` === value,
        );
      case 'cilium-global':
      case 'cni-attachment-id':
      case 'container-id':
      case 'docker-endpoint':
      case 'container-name':
        return undefined;
      default:
        return 'bad';
    }
  }

  private endpointJson(e: FakeEndpoint): unknown {
    const addr: Record<string, string> = {};
    if (e.ipv4) addr.ipv4 = e.ipv4;
    if (e.ipv6) addr.ipv6 = e.ipv6;
    return {
      id: e.id,
      spec: { options: { ...e.options } },
      status: {
        state: 'ready',
        'external-identifiers': { 'k8s-pod-name': e.podName, 'k8s-namespace': e.namespace },
        networking: { addressing: [addr], 'interface-name': `lxc${e.id}` },
        realized: { options: { ...e.options } },
      },
    };
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const method = (req.method ?? 'GET').toUpperCase();
      const path = decodeURIComponent(new URL(req.url ?? '/', 'http://localhost').pathname);
      const rec: AgentRequest = { method, path, status: 0 };
      this.requests.push(rec);
      const text = Buffer.concat(chunks).toString('utf8');
      if (this.rateLimit && this.rateLimit.remaining > 0) {
        this.rateLimit.remaining--;
        const h: Record<string, string> = {};
        if (this.rateLimit.retryAfter !== undefined) h['Retry-After'] = this.rateLimit.retryAfter;
        this.reply(res, rec, 429, undefined, h);
        return;
      }
      if (
        this.forbidden &&
        this.forbidden.remaining > 0 &&
        (!this.forbidden.method || this.forbidden.method === method)
      ) {
        this.forbidden.remaining--;
        this.reply(res, rec, 403, 'API access to this endpoint is forbidden');
        return;
      }
      const m = /^\/v1\/endpoint\/([^/]+)(\/config)?$/.exec(path);
      if (!m) {
        this.reply(res, rec, 404, `path ${path} was not found`);
        return;
      }
      const ep = this.lookup(m[1]!);
      if (ep === 'bad') {
        this.reply(res, rec, 400, `unknown endpoint ID prefix "${m[1]!.split(':')[0]}"`);
        return;
      }
      if (!m[2]) {
        if (method !== 'GET') return this.reply(res, rec, 405, 'method not allowed');
        if (!ep) return this.reply(res, rec, 404);
        return this.reply(res, rec, 200, this.endpointJson(ep));
      }
      if (method === 'GET') {
        if (!ep) return this.reply(res, rec, 404);
        return this.reply(res, rec, 200, {
          realized: { options: { ...ep.options }, 'label-configuration': {} },
          immutable: { Policy: 'Enabled' },
        });
      }
      if (method === 'PATCH') {
        let body: unknown;
        try {
          body = JSON.parse(text);
        } catch {
          return this.reply(res, rec, 400, 'invalid JSON');
        }
        rec.body = body;
        if (!ep) return this.reply(res, rec, 404);
        const opts = (body as { options?: unknown }).options;
        if (typeof opts !== 'object' || opts === null) return this.reply(res, rec, 400, 'missing options');
        for (const [k, v] of Object.entries(opts)) {
          if (!(k in DEFAULT_OPTIONS)) return this.reply(res, rec, 400, `unknown option ${k}`);
          if (typeof v !== 'string' || !['Enabled', 'Disabled'].includes(v)) {
            return this.reply(res, rec, 400, `invalid value ${String(v)} for option ${k}`);
          }
        }
        Object.assign(ep.options, opts);
        return this.reply(res, rec, 200);
      }
      this.reply(res, rec, 405, 'method not allowed');
    });
  }
}
