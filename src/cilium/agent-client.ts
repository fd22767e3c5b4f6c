// Cilium agent API client: HTTP/1.1 over the agent's unix socket, basePath /v1.
//
// Only what is used is typed, from cilium/cilium api/v1/openapi.yaml (swagger 2.0, "Cilium API
// v1beta"; read at commit 0097d0105919973186ae8c6cbcb356fe4fd0f766):
//   GET   /endpoint/{id}         -> 200 Endpoint | 400 Invalid | 404 | 429
//   GET   /endpoint/{id}/config  -> 200 EndpointConfigurationStatus | 404 | 429
//   PATCH /endpoint/{id}/config  body EndpointConfigurationSpec -> 200 | 400 | 404 | 500 Failed | 429
// {id} is "[prefix:]id" (parameters.endpoint-id). Besides the prefixes that parameter lists,
// pkg/endpoint/id/id.go accepts "ipv4:<addr>" and "ipv6:<addr>" (IPv4Prefix, IPv6Prefix), which is
// how the reference sidecar finds its endpoint (`cilium endpoint get ipv4:<pod IP>`). The go-openapi
// client escapes path parameters with url.PathEscape, which leaves ':' alone; so does this one.
// 403 is what an agent answers for API calls disabled by its API access policy
// (enable-cilium-api-server-access); 429 comes from its API rate limiter, with or without Retry-After.
import { builtin } from '../common/builtin.js';
import { IkegwError } from '../common/errors.js';
import { isRecord, type Log, silentLog } from './log.js';

// node:http as a CommonJS object: its ESM namespace would load undici & co. (src/common/builtin.ts)
const { request } = builtin('node:http') as typeof import('node:http');

export const DEFAULT_CILIUM_SOCKET = '/var/run/cilium/cilium.sock';

/** definitions.AddressPair */
export interface AddressPair {
  ipv4?: string;
  ipv6?: string;
}

/** definitions.Endpoint, reduced. */
export interface CiliumEndpoint {
  /** The cilium-agent-local ID of the endpoint. */
  id?: number;
  status?: {
    state?: string;
    networking?: { addressing?: AddressPair[]; 'interface-name'?: string };
    'external-identifiers'?: { 'k8s-pod-name'?: string; 'k8s-namespace'?: string };
  };
}

/** definitions.ConfigurationMap: option name -> value ("Enabled" / "Disabled" for booleans). */
export type ConfigurationMap = Record<string, string>;

/** definitions.EndpointConfigurationSpec, reduced. */
export interface EndpointConfigurationSpec {
  options?: ConfigurationMap;
}

/** definitions.EndpointConfigurationStatus */
export interface EndpointConfigurationStatus {
  realized?: EndpointConfigurationSpec;
  immutable?: ConfigurationMap;
  error?: string;
}

export type AgentErrorKind =
  | 'forbidden'
  | 'rate-limited'
  | 'unavailable'
  | 'bad-request'
  | 'failed'
  | 'bad-response';

export class CiliumAgentError extends IkegwError {
  constructor(
    readonly kind: AgentErrorKind,
    /** HTTP status; 0 when the agent could not be reached. */
    readonly status: number,
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(`ERR_CILIUM_${kind.toUpperCase().replace('-', '_')}`, message);
  }
}

export interface AgentClientOptions {
  socketPath?: string;
  /** Per request. Default 10 s (a PATCH of the config regenerates the endpoint's BPF programs). */
  timeoutMs?: number;
  /** Attempts for 429 and for an unreachable agent (restarting). Default 6. */
  attempts?: number;
  /** Upper bound for one wait (Retry-After or backoff). Default 10 s. */
  maxWaitMs?: number;
  log?: Log;
  /** Injectable wait, for tests. */
  sleep?: (ms: number) => Promise<void>;
}

interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** Socket errors that mean "the agent is not there right now" (restarting, socket being recreated). */
const UNAVAILABLE = new Set(['ECONNREFUSED', 'ENOENT', 'ECONNRESET', 'EPIPE', 'EAGAIN', 'ETIMEDOUT']);

/** RFC 9110 §10.2.3: Retry-After is delay-seconds or an HTTP-date. */
export function parseRetryAfter(v: string | string[] | undefined, nowMs = Date.now()): number | undefined {
  const s = Array.isArray(v) ? v[0] : v;
  if (s === undefined || s.trim() === '') return undefined;
  if (/^\d+$/.test(s.trim())) return Number(s.trim()) * 1000;
  const t = Date.parse(s);
  return Number.isNaN(t) ? undefined : Math.max(0, t - nowMs);
}

export type EnsureOutcome = 'disabled' | 'already-disabled' | 'endpoint-not-found';

export interface EnsureResult {
  outcome: EnsureOutcome;
  endpointId?: number;
  /** The value before it was changed (usually "Enabled"). */
  previous?: string;
}

export class CiliumAgentClient {
  readonly socketPath: string;
  private readonly log: Log;
  private readonly sleep: (ms: number) => Promise<void>;

  constructor(private readonly opts: AgentClientOptions = {}) {
    this.socketPath = opts.socketPath ?? DEFAULT_CILIUM_SOCKET;
    this.log = opts.log ?? silentLog;
    this.sleep = opts.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
  }

  private once(method: string, path: string, body?: unknown): Promise<RawResponse> {
    return new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const req = request(
        {
          socketPath: this.socketPath,
          method,
          path: `/v1${path}`,
          headers: {
            Accept: 'application/json',
            Host: 'localhost',
            ...(payload !== undefined
              ? { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) }
              : {}),
          },
          timeout: this.opts.timeoutMs ?? 10_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({
              status: res.statusCode ?? 0,
              headers: res.headers,
              body: Buffer.concat(chunks).toString('utf8'),
            }),
          );
          res.on('error', reject);
        },
      );
      req.on('timeout', () =>
        req.destroy(Object.assign(new Error('request timed out'), { code: 'ETIMEDOUT' })),
      );
      req.on('error', reject);
      if (payload !== undefined) req.write(payload);
      req.end();
    });
  }

  /** One API call with the retry policy: 429 and an unreachable agent are retried, the rest returned/thrown. */
  private async call(method: string, path: string, body?: unknown): Promise<RawResponse> {
    const attempts = this.opts.attempts ?? 6;
    const maxWait = this.opts.maxWaitMs ?? 10_000;
    for (let attempt = 1; ; attempt++) {
      let res: RawResponse;
      try {
        res = await this.once(method, path, body);
      } catch (e) {
        const code = isRecord(e) && typeof e.code === 'string' ? e.code : '';
        const msg = e instanceof Error ? e.message : String(e);
        if (!UNAVAILABLE.has(code)) throw new CiliumAgentError('unavailable', 0, `${method} ${path}: ${msg}`);
        if (attempt >= attempts) {
          throw new CiliumAgentError(
            'unavailable',
            0,
            `${method} ${path}: agent unreachable at ${this.socketPath} (${code})`,
          );
        }
        const wait = Math.min(maxWait, 100 * 2 ** attempt);
        this.log.debug({ code, attempt, waitMs: wait }, 'cilium: agent unreachable, retrying');
        await this.sleep(wait);
        continue;
      }
      if (res.status === 429) {
        const ra = parseRetryAfter(res.headers['retry-after']);
        if (attempt >= attempts) {
          throw new CiliumAgentError('rate-limited', 429, `${method} ${path}: rate limited by the agent`, ra);
        }
        const wait = Math.min(maxWait, ra ?? 250 * 2 ** attempt);
        this.log.debug(
          { attempt, waitMs: wait, retryAfter: res.headers['retry-after'] },
          'cilium: rate limited, waiting',
        );
        await this.sleep(wait);
        continue;
      }
      if (res.status === 403) {
        throw new CiliumAgentError(
          'forbidden',
          403,
          `${method} ${path}: forbidden by the agent's API access policy${res.body ? `: ${res.body.trim()}` : ''}`,
        );
      }
      return res;
    }
  }

  private json(res: RawResponse, what: string): unknown {
    try {
      return JSON.parse(res.body);
    } catch {
      throw new CiliumAgentError('bad-response', res.status, `${what}: response is not JSON`);
    }
  }

  private unexpected(res: RawResponse, what: string): CiliumAgentError {
    const kind: AgentErrorKind =
      res.status === 400 ? 'bad-request' : res.status >= 500 ? 'failed' : 'bad-response';
    return new CiliumAgentError(
      kind,
      res.status,
      `${what}: HTTP ${res.status}${res.body ? `: ${res.body.trim().slice(0, 300)}` : ''}`,
    );
  }

  /** Endpoint ID for path use: "ipv4:10.0.0.1", "ipv6:fd00::1" (':' is not escaped, as url.PathEscape). */
  static idForIp(ip: string): string {
    return ip.includes(':') ? `ipv6:${ip}` : `ipv4:${ip}`;
  }

  private static pathId(id: string): string {
    return encodeURIComponent(id).replace(/%3A/gi, ':');
  }

  /** GET /endpoint/{id}; undefined on 404 (endpoint not (yet) there). */
  async getEndpoint(id: string): Promise<CiliumEndpoint | undefined> {
    const what = `GET /endpoint/${id}`;
    const res = await this.call('GET', `/endpoint/${CiliumAgentClient.pathId(id)}`);
    if (res.status === 404) return undefined;
    if (res.status !== 200) throw this.unexpected(res, what);
    const v = this.json(res, what);
    // Some agents/CLI paths wrap it in a list; accept both.
    const ep = Array.isArray(v) ? v[0] : v;
    if (!isRecord(ep)) throw new CiliumAgentError('bad-response', 200, `${what}: not an Endpoint`);
    return ep as CiliumEndpoint;
  }

  getEndpointByIp(ip: string): Promise<CiliumEndpoint | undefined> {
    return this.getEndpoint(CiliumAgentClient.idForIp(ip));
  }

  /** GET /endpoint/{id}/config; undefined on 404. */
  async getEndpointConfig(id: string | number): Promise<EndpointConfigurationStatus | undefined> {
    const what = `GET /endpoint/${id}/config`;
    const res = await this.call('GET', `/endpoint/${CiliumAgentClient.pathId(String(id))}/config`);
    if (res.status === 404) return undefined;
    if (res.status !== 200) throw this.unexpected(res, what);
    const v = this.json(res, what);
    if (!isRecord(v))
      throw new CiliumAgentError('bad-response', 200, `${what}: not an EndpointConfigurationStatus`);
    return v as EndpointConfigurationStatus;
  }

  /** PATCH /endpoint/{id}/config; false on 404. */
  async patchEndpointConfig(id: string | number, spec: EndpointConfigurationSpec): Promise<boolean> {
    const what = `PATCH /endpoint/${id}/config`;
    const res = await this.call('PATCH', `/endpoint/${CiliumAgentClient.pathId(String(id))}/config`, spec);
    if (res.status === 404) return false;
    if (res.status !== 200) throw this.unexpected(res, what);
    return true;
  }

  /**
   * Finds the endpoint of `podIp` and makes sure SourceIPVerification is Disabled on it (otherwise
   * Cilium drops the decapsulated packets, whose source addresses are on-prem ones).
   */
  async ensureSourceIpVerificationDisabled(podIp: string): Promise<EnsureResult> {
    const ep = await this.getEndpointByIp(podIp);
    if (!ep || typeof ep.id !== 'number') return { outcome: 'endpoint-not-found' };
    const id = ep.id;
    const cfg = await this.getEndpointConfig(id);
    if (!cfg) return { outcome: 'endpoint-not-found', endpointId: id };
    const previous = cfg.realized?.options?.SourceIPVerification;
    if (previous === 'Disabled') return { outcome: 'already-disabled', endpointId: id };
    const ok = await this.patchEndpointConfig(id, { options: { SourceIPVerification: 'Disabled' } });
    if (!ok) return { outcome: 'endpoint-not-found', endpointId: id };
    const r: EnsureResult = { outcome: 'disabled', endpointId: id };
    if (previous !== undefined) r.previous = previous;
    return r;
  }
}

export interface CiliumSetupOptions {
  /** The frontend pod's IP (downward API status.podIP). */
  podIp: string;
  socketPath?: string;
  /** Re-check period: the setting is lost when Cilium recreates the endpoint. Default 10 s. */
  intervalMs?: number;
  /** Re-check period while the endpoint does not exist yet or the agent is away. Default 1 s. */
  retryMs?: number;
  log?: Log;
  signal?: AbortSignal;
  /** Injectable client (tests). */
  client?: CiliumAgentClient;
}

export interface CiliumSetupStatus {
  checks: number;
  lastOutcome?: EnsureOutcome;
  endpointId?: number;
  /** How many times it found SourceIPVerification enabled and disabled it. */
  disabledCount: number;
  lastError?: string;
  lastErrorKind?: AgentErrorKind;
}

export interface CiliumSetup {
  checkNow(): Promise<CiliumSetupStatus>;
  status(): CiliumSetupStatus;
  stop(): Promise<void>;
}

class CiliumSetupLoop implements CiliumSetup {
  private readonly client: CiliumAgentClient;
  private readonly log: Log;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private chain: Promise<unknown> = Promise.resolve();
  private lastLoggedError: string | undefined;
  private st: CiliumSetupStatus = { checks: 0, disabledCount: 0 };

  constructor(private readonly opts: CiliumSetupOptions) {
    this.log = opts.log ?? silentLog;
    this.client =
      opts.client ??
      new CiliumAgentClient({
        ...(opts.socketPath !== undefined ? { socketPath: opts.socketPath } : {}),
        log: this.log,
      });
  }

  status(): CiliumSetupStatus {
    return { ...this.st };
  }

  checkNow(): Promise<CiliumSetupStatus> {
    const p = this.chain.then(() => this.check());
    this.chain = p.catch(() => undefined);
    return p;
  }

  private async check(): Promise<CiliumSetupStatus> {
    this.st.checks++;
    try {
      const r = await this.client.ensureSourceIpVerificationDisabled(this.opts.podIp);
      if (
        r.endpointId !== undefined &&
        this.st.endpointId !== undefined &&
        r.endpointId !== this.st.endpointId
      ) {
        this.log.info({ old: this.st.endpointId, new: r.endpointId }, 'cilium: endpoint was recreated');
      }
      this.st.lastOutcome = r.outcome;
      if (r.endpointId !== undefined) this.st.endpointId = r.endpointId;
      if (r.outcome === 'disabled') {
        this.st.disabledCount++;
        this.log.info(
          { endpointId: r.endpointId, podIp: this.opts.podIp, previous: r.previous },
          'cilium: SourceIPVerification disabled on the frontend endpoint',
        );
      } else if (r.outcome === 'endpoint-not-found') {
        this.log.debug({ podIp: this.opts.podIp }, 'cilium: endpoint not found (yet)');
      }
      delete this.st.lastError;
      delete this.st.lastErrorKind;
      this.lastLoggedError = undefined;
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      this.st.lastError = msg;
      if (e instanceof CiliumAgentError) this.st.lastErrorKind = e.kind;
      else delete this.st.lastErrorKind;
      if (msg !== this.lastLoggedError) {
        this.lastLoggedError = msg;
        const level = e instanceof CiliumAgentError && e.kind === 'forbidden' ? 'error' : 'warn';
        this.log[level]({ err: msg }, 'cilium: could not check SourceIPVerification');
      }
    }
    return this.status();
  }

  private schedule(): void {
    if (this.stopped) return;
    const healthy = this.st.lastError === undefined && this.st.lastOutcome !== 'endpoint-not-found';
    const delay = healthy ? (this.opts.intervalMs ?? 10_000) : (this.opts.retryMs ?? 1000);
    this.timer = setTimeout(() => {
      this.checkNow().finally(() => this.schedule());
    }, delay);
  }

  async start(): Promise<void> {
    this.opts.signal?.addEventListener('abort', () => void this.stop(), { once: true });
    await this.checkNow();
    this.schedule();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.chain;
  }
}

/**
 * Starts the Cilium setup loop (`ikegw cilium-setup`): checks at once, then every intervalMs (every
 * retryMs while the endpoint is missing or the agent errs). Resolves after the first check.
 */
export async function runCiliumSetup(opts: CiliumSetupOptions): Promise<CiliumSetup> {
  const loop = new CiliumSetupLoop(opts);
  await loop.start();
  return loop;
}
