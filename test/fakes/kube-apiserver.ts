// An in-process Kubernetes API server for the operator's tests — the only cluster they see, so it
// follows the real one where the operator could notice:
//  - HTTPS with a self-signed certificate, bearer-token authentication (401 Status otherwise), like
//    a pod's in-cluster config (token + CA);
//  - pods and configmaps (core/v1) and ciliumendpoints (cilium.io/v2), namespaced: GET, LIST,
//    WATCH, POST, PUT, PATCH, DELETE;
//  - one resourceVersion counter for the whole store, bumped on every write; LIST returns it in
//    metadata.resourceVersion; a no-op write bumps nothing and emits no event;
//  - WATCH (`?watch=true&resourceVersion=N`): replays history after N, then streams chunked JSON
//    lines {"type":"ADDED|MODIFIED|DELETED|BOOKMARK|ERROR","object":…}; with N older than the
//    bounded history it answers like the watch cache: HTTP 200 and one ERROR event carrying a 410
//    "Expired" Status (or an HTTP 410 Status with `goneAs: 'http'`); resourceVersion "" or "0"
//    starts with synthetic ADDED events for the current objects; timeoutSeconds ends the stream;
//    allowWatchBookmarks sends BOOKMARKs; fieldSelector metadata.name / metadata.namespace and
//    equality labelSelectors filter;
//  - PATCH: application/json-patch+json (RFC 6902 incl. test; failure -> 422 Invalid, as
//    apiserver's jsonPatcher.applyJSPatch does), application/merge-patch+json, and
//    application/strategic-merge-patch+json for the built-in types only (415 for custom resources);
//    a patch that sets a stale metadata.resourceVersion -> 409 Conflict;
//  - status subresource for pods (the main resource ignores status changes; /status takes only
//    status); none for ciliumendpoints (…/status is 404), as the CRD defines none;
//  - Status bodies: kind Status, apiVersion v1, status Failure, message, reason, details, code;
//  - leases (coordination.k8s.io/v1) as the apiserver's lease registry has them: an update (PUT)
//    must carry metadata.resourceVersion (none -> 422 "must be specified for an update", a stale one
//    -> 409 Conflict: Lease's strategy allows no unconditional update); acquireTime/renewTime are
//    MicroTime: only RFC 3339 with exactly six fraction digits is accepted (Go parses them with
//    "2006-01-02T15:04:05.000000Z07:00": a JavaScript toISOString() with milliseconds is a 400),
//    stored and returned in UTC, null clears them; leaseDurationSeconds > 0, leaseTransitions >= 0
//    (422 Invalid otherwise);
//  - clients: more bearer tokens (addToken) and more listeners (listen: one per simulated node, so a
//    test can tell the requests of two pods with the same ServiceAccount token apart, and refuse
//    connections for one of them); fault injection per client: an outage (every request hangs
//    unanswered, or its connection is reset, or the client's listener refuses connections) and a
//    random failure ratio (HTTP 500 InternalError or a reset connection), switchable at run time.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import { KubeConfig } from '@kubernetes/client-node';
import { applyJsonPatch, applyMergePatch, deepEqual, PatchError } from './json-patch.js';
import { selfSignedCert } from './self-signed.js';

export type ResourceName = 'pods' | 'configmaps' | 'ciliumendpoints' | 'leases';

interface ResourceDef {
  group: string;
  version: string;
  kind: string;
  listKind: string;
  statusSubresource: boolean;
  /** Strategic merge patch needs Go struct tags: only built-in types have them. */
  strategicMerge: boolean;
  /** The registry strategy's AllowUnconditionalUpdate: may a PUT omit metadata.resourceVersion? */
  unconditionalUpdate: boolean;
}

const RESOURCES: Record<ResourceName, ResourceDef> = {
  pods: {
    group: '',
    version: 'v1',
    kind: 'Pod',
    listKind: 'PodList',
    statusSubresource: true,
    strategicMerge: true,
    unconditionalUpdate: true,
  },
  configmaps: {
    group: '',
    version: 'v1',
    kind: 'ConfigMap',
    listKind: 'ConfigMapList',
    statusSubresource: false,
    strategicMerge: true,
    unconditionalUpdate: true,
  },
  ciliumendpoints: {
    group: 'cilium.io',
    version: 'v2',
    kind: 'CiliumEndpoint',
    listKind: 'CiliumEndpointList',
    statusSubresource: false,
    strategicMerge: false,
    unconditionalUpdate: true,
  },
  leases: {
    group: 'coordination.k8s.io',
    version: 'v1',
    kind: 'Lease',
    listKind: 'LeaseList',
    statusSubresource: false,
    strategicMerge: true,
    unconditionalUpdate: false,
  },
};

export interface KubeObj {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    resourceVersion?: string;
    uid?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    [k: string]: unknown;
  };
  [k: string]: unknown;
}

type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

interface HistoryEntry {
  rv: number;
  resource: ResourceName;
  type: EventType;
  object: KubeObj;
}

interface Watcher {
  rec: RequestRecord;
  /** Frozen by a 'hang' outage of its client: nothing more reaches it (the network is gone). */
  frozen: boolean;
  resource: ResourceName;
  namespace: string | undefined;
  matches: (o: KubeObj) => boolean;
  res: ServerResponse;
  send: (type: string, object: unknown) => void;
  close: () => void;
}

export interface RequestRecord {
  method: string;
  path: string;
  query: Record<string, string>;
  contentType?: string;
  /** 0 while unanswered; stays 0 for a hung or reset request. */
  status: number;
  body?: unknown;
  /** The listener the request came in through ('default': the one `url` names; see listen()). */
  client: string;
  /** Whose bearer token it carried ('default': `token`; see addToken()); '' when none matched. */
  user: string;
  /** What fault injection did to it. */
  fault?: 'hung' | 'reset' | 'failed';
  /** When it arrived (Date.now()). */
  at: number;
  headers: IncomingMessage['headers'];
}

/**
 * Which requests a fault applies to: a client's name (a listener's from listen(), or a token's from
 * addToken()), or a predicate on the request.
 */
export type ClientMatch = string | ((r: RequestRecord) => boolean);

/**
 * How a client's outage looks to it:
 *  - 'hang': requests are read and never answered (packets lost): the client's timeout decides;
 *    its open watches deliver nothing more. When the outage ends, the hung requests' and frozen
 *    watches' connections are reset (a dead TCP connection breaks);
 *  - 'reset': every request's connection is reset at once (ECONNRESET), open watches too;
 *  - 'refuse': the client's listener (a name from listen()) closes: new connections are refused
 *    (ECONNREFUSED), open ones are reset; it listens again at the same address when healed.
 */
export type OutageMode = 'hang' | 'reset' | 'refuse';

/** A random failure: HTTP 500 InternalError, or the connection reset before any answer. */
export type FailureMode = '500' | 'reset';

export interface FailureRatioOptions {
  /** Only these requests (default: all). */
  match?: ClientMatch;
  /** Default both, chosen at random per failure. */
  modes?: FailureMode[];
  /** A random source in [0, 1) (default Math.random); pass a seeded one for a reproducible run. */
  random?: () => number;
}

interface Outage {
  match: ClientMatch;
  mode: OutageMode;
}

interface Listener {
  name: string;
  server: Server;
  /** Where it listens: a port on 127.0.0.1 or a unix socket path. */
  address: { port: number } | { path: string };
  url: string;
  closed: boolean;
}

export interface FakeApiServerOptions {
  token?: string;
  /** How many events the watch history keeps (the watch cache's window). */
  historyLimit?: number;
  /** How a too-old watch resourceVersion is answered. Default 'event' (HTTP 200 + ERROR 410). */
  goneAs?: 'event' | 'http';
  bookmarkIntervalMs?: number;
  /** Names (IPs or DNS names) in the serving certificate; default 127.0.0.1 and localhost. */
  certNames?: string[];
  /**
   * Listen on this unix socket instead of 127.0.0.1:<random> (for a relay that serves it inside a
   * network namespace, e.g. at a simulated `kubernetes` service IP).
   */
  socketPath?: string;
}

type Fault = { resource: ResourceName | '*'; method: string; status: number; remaining: number };

class HttpError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function statusBody(
  code: number,
  reason: string,
  message: string,
  details?: Record<string, unknown>,
): object {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    ...(details ? { details } : {}),
    code,
  };
}

function qualified(resource: ResourceName): string {
  const g = RESOURCES[resource].group;
  return g ? `${resource}.${g}` : resource;
}

/** fieldSelector / labelSelector with =, == and != terms joined by commas (what the operator uses). */
function selectorMatcher(
  sel: string | undefined,
  get: (o: KubeObj, key: string) => string | undefined,
): (o: KubeObj) => boolean {
  if (!sel) return () => true;
  const terms = sel.split(',').map((t) => {
    const m = /^\s*([^!=\s]+)\s*(==|=|!=)\s*(.*?)\s*$/.exec(t);
    if (!m) throw new HttpError(400, 'BadRequest', `unable to parse requirement: ${t}`);
    return { key: m[1]!, neg: m[2] === '!=', value: m[3]! };
  });
  return (o) => terms.every((t) => (get(o, t.key) === t.value) !== t.neg);
}

function fieldValue(o: KubeObj, key: string): string | undefined {
  if (key === 'metadata.name') return o.metadata.name;
  if (key === 'metadata.namespace') return o.metadata.namespace;
  throw new HttpError(
    400,
    'BadRequest',
    `"${key}" is not a known field selector: only "metadata.name", "metadata.namespace"`,
  );
}

// --- Lease (coordination.k8s.io/v1) as the apiserver decodes and validates it ---------------------

const RFC3339_MICRO = '2006-01-02T15:04:05.000000Z07:00';
const MICRO_TIME = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\.(\d{6})(Z|[+-]\d{2}:\d{2})$/;

/**
 * metav1.MicroTime as the apiserver reads it (time.Parse with RFC3339Micro: exactly six fraction
 * digits) and writes it back (UTC, six digits). undefined: not a MicroTime.
 */
export function parseMicroTime(v: string): string | undefined {
  const m = MICRO_TIME.exec(v);
  if (!m) return undefined;
  const ms = Date.parse(`${m[1]}${m[3]}`);
  if (Number.isNaN(ms)) return undefined;
  return `${new Date(ms).toISOString().slice(0, 19)}.${m[2]}Z`;
}

function decodeError(kind: string, version: string, message: string): HttpError {
  return new HttpError(
    400,
    'BadRequest',
    `${kind} in version "${version}" cannot be handled as a ${kind}: ${message}`,
  );
}

function invalid(
  kind: string,
  group: string,
  name: string,
  causes: { field: string; message: string }[],
): HttpError {
  return new HttpError(
    422,
    'Invalid',
    `${kind}${group ? `.${group}` : ''} "${name}" is invalid: ${causes.map((c) => `${c.field}: ${c.message}`).join(', ')}`,
    {
      name,
      group,
      kind,
      causes: causes.map((c) => ({ reason: 'FieldValueInvalid', message: c.message, field: c.field })),
    },
  );
}

/**
 * Decodes (400 on what Go's JSON decoding of a v1.Lease rejects; `decodeStatus` 422 for the result
 * of a patch, which the apiserver reports as an invalid patch) and validates (422) a Lease in place:
 * MicroTimes normalized to UTC, nulls of pointer fields dropped.
 */
function decodeLease(obj: KubeObj, decodeStatus: 400 | 422): void {
  const fail = (message: string): HttpError =>
    decodeStatus === 400
      ? decodeError('Lease', 'v1', message)
      : new HttpError(422, 'Invalid', `the server rejected our request due to an error in our request`, {
          causes: [{ reason: 'FieldValueInvalid', message, field: 'patch' }],
        });
  if (obj.spec === null || obj.spec === undefined) {
    delete obj.spec;
    return;
  }
  if (!isObj(obj.spec))
    throw fail('json: cannot unmarshal into Go struct field Lease.spec of type v1.LeaseSpec');
  const spec = obj.spec;
  for (const f of ['acquireTime', 'renewTime'] as const) {
    const v = spec[f];
    if (v === null) delete spec[f];
    else if (typeof v === 'string') {
      const t = parseMicroTime(v);
      if (t === undefined) {
        const frac = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(.*)$/.exec(v)?.[1];
        throw fail(
          `parsing time "${v}" as "${RFC3339_MICRO}": cannot parse "${frac ?? v}" as "${frac === undefined ? '2006' : '.000000'}"`,
        );
      }
      spec[f] = t;
    } else if (v !== undefined) {
      throw fail(
        `json: cannot unmarshal ${typeof v} into Go struct field LeaseSpec.spec.${f} of type string`,
      );
    }
  }
  for (const f of ['leaseDurationSeconds', 'leaseTransitions'] as const) {
    const v = spec[f];
    if (v === null) delete spec[f];
    else if (
      v !== undefined &&
      (typeof v !== 'number' || !Number.isInteger(v) || Math.abs(v) > 2 ** 31 - 1)
    ) {
      throw fail(
        `json: cannot unmarshal ${JSON.stringify(v)} into Go struct field LeaseSpec.spec.${f} of type int32`,
      );
    }
  }
  for (const f of ['holderIdentity', 'preferredHolder', 'strategy'] as const) {
    const v = spec[f];
    if (v === null) delete spec[f];
    else if (v !== undefined && typeof v !== 'string') {
      throw fail(
        `json: cannot unmarshal ${typeof v} into Go struct field LeaseSpec.spec.${f} of type string`,
      );
    }
  }
  const causes: { field: string; message: string }[] = [];
  const d = spec.leaseDurationSeconds;
  if (typeof d === 'number' && d <= 0)
    causes.push({
      field: 'spec.leaseDurationSeconds',
      message: `Invalid value: ${d}: must be greater than 0`,
    });
  const t = spec.leaseTransitions;
  if (typeof t === 'number' && t < 0)
    causes.push({
      field: 'spec.leaseTransitions',
      message: `Invalid value: ${t}: must be greater than or equal to 0`,
    });
  if (spec.preferredHolder !== undefined && spec.strategy === undefined)
    causes.push({
      field: 'spec.strategy',
      message: 'Forbidden: Strategy must be set if PreferredHolder is set',
    });
  if (causes.length > 0) throw invalid('Lease', 'coordination.k8s.io', obj.metadata.name, causes);
}

export class FakeKubeApiServer {
  readonly token: string;
  readonly caPem: string;
  url = '';
  readonly requests: RequestRecord[] = [];
  private server: Server;
  private rv = 1;
  /** Oldest resourceVersion a watch may resume from; older ones get 410. */
  private compactedRv = 1;
  private readonly store = new Map<string, KubeObj>();
  private history: HistoryEntry[] = [];
  private readonly watchers = new Set<Watcher>();
  private readonly writeListeners = new Set<
    (resource: ResourceName, type: EventType, obj: KubeObj) => void
  >();
  private faults: Fault[] = [];
  private requestHooks: ((r: RequestRecord) => void | Promise<void>)[] = [];
  private readonly historyLimit: number;
  private readonly goneAs: 'event' | 'http';
  private readonly bookmarkIntervalMs: number;
  private readonly cert: { certPem: string; keyPem: string };
  /** Bearer token -> client name. */
  private readonly tokens = new Map<string, string>();
  private readonly listeners = new Map<string, Listener>();
  private outages: Outage[] = [];
  private failure: (Required<FailureRatioOptions> & { ratio: number }) | undefined;
  /** Requests a 'hang' outage holds unanswered, with the outage. */
  private readonly hung = new Map<ServerResponse, { rec: RequestRecord; outage: Outage }>();

  private constructor(opts: FakeApiServerOptions) {
    this.token = opts.token ?? `test-token-${randomUUID()}`;
    this.tokens.set(this.token, 'default');
    this.historyLimit = opts.historyLimit ?? 500;
    this.goneAs = opts.goneAs ?? 'event';
    this.bookmarkIntervalMs = opts.bookmarkIntervalMs ?? 1000;
    this.cert = selfSignedCert(opts.certNames ?? ['127.0.0.1', 'localhost']);
    this.caPem = this.cert.certPem;
    this.server = this.httpsServer('default');
  }

  private httpsServer(client: string): Server {
    return createServer({ cert: this.cert.certPem, key: this.cert.keyPem }, (req, res) => {
      this.handle(req, res, client).catch((e: unknown) => {
        if (!res.headersSent) this.sendStatus(res, 500, 'InternalError', String(e));
      });
    });
  }

  private static async listenOn(
    server: Server,
    address: { port: number } | { path: string },
  ): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      const done = () => {
        server.off('error', reject);
        resolve();
      };
      if ('path' in address) server.listen(address.path, done);
      else server.listen(address.port, '127.0.0.1', done);
    });
    if ('path' in address) return `unix:${address.path}`;
    const addr = server.address();
    if (!isObj(addr) || typeof addr.port !== 'number') throw new Error('no port');
    return `https://127.0.0.1:${addr.port}`;
  }

  static async start(opts: FakeApiServerOptions = {}): Promise<FakeKubeApiServer> {
    const s = new FakeKubeApiServer(opts);
    const address = opts.socketPath ? { path: opts.socketPath } : { port: 0 };
    s.url = await FakeKubeApiServer.listenOn(s.server, address);
    const port = /:(\d+)$/.exec(s.url)?.[1];
    s.listeners.set('default', {
      name: 'default',
      server: s.server,
      address: port ? { port: Number(port) } : address,
      url: s.url,
      closed: false,
    });
    return s;
  }

  /**
   * Another way in for a named client (a simulated node, a replica): the same API server on its own
   * address (127.0.0.1:<random port>, or a unix socket), so its requests are told apart
   * (RequestRecord.client) and an outage can refuse its connections alone. Returns the URL.
   */
  async listen(client: string, opts: { socketPath?: string } = {}): Promise<string> {
    if (this.listeners.has(client)) throw new Error(`listener ${client} exists`);
    const server = this.httpsServer(client);
    const address = opts.socketPath ? { path: opts.socketPath } : { port: 0 };
    const url = await FakeKubeApiServer.listenOn(server, address);
    const port = /:(\d+)$/.exec(url)?.[1];
    this.listeners.set(client, {
      name: client,
      server,
      address: port ? { port: Number(port) } : address,
      url,
      closed: false,
    });
    return url;
  }

  /** The URL of a listener (listen()). */
  listenerUrl(client: string): string {
    const l = this.listeners.get(client);
    if (!l) throw new Error(`no listener ${client}`);
    return l.url;
  }

  /** Another bearer token the server accepts, for the client `name` (RequestRecord.user). */
  addToken(name: string, token = `test-token-${name}-${randomUUID()}`): string {
    this.tokens.set(token, name);
    return token;
  }

  /** A KubeConfig like a pod's in-cluster one: server URL, CA, bearer token. */
  kubeConfig(token = this.token, url = this.url): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [
        {
          name: 'fake',
          server: url,
          caData: Buffer.from(this.caPem).toString('base64'),
          skipTLSVerify: false,
        },
      ],
      users: [{ name: 'sa', token }],
      contexts: [{ name: 'fake', cluster: 'fake', user: 'sa', namespace: 'default' }],
      currentContext: 'fake',
    });
    return kc;
  }

  async stop(): Promise<void> {
    this.outages = [];
    this.failure = undefined;
    for (const w of this.watchers) w.close();
    this.watchers.clear();
    for (const res of this.hung.keys()) res.socket?.destroy();
    this.hung.clear();
    for (const l of this.listeners.values()) {
      l.server.closeAllConnections();
      if (!l.closed) await new Promise<void>((resolve) => l.server.close(() => resolve()));
      l.closed = true;
    }
  }

  // --- fault injection --------------------------------------------------------------------------

  private static matches(m: ClientMatch, r: RequestRecord): boolean {
    return typeof m === 'string' ? r.client === m || r.user === m : m(r);
  }

  /**
   * The client stops reaching the API server (see OutageMode) until the returned function (or
   * heal()) ends the outage. 'refuse' needs a listener's name (listen()).
   */
  async cut(match: ClientMatch, mode: OutageMode = 'hang'): Promise<() => Promise<void>> {
    const outage: Outage = { match, mode };
    if (mode === 'refuse') {
      const l = typeof match === 'string' ? this.listeners.get(match) : undefined;
      if (!l) throw new Error(`'refuse' needs a listener's name, not ${String(match)}`);
      if (!l.closed) {
        l.closed = true;
        const closed = new Promise<void>((resolve) => l.server.close(() => resolve()));
        for (const w of [...this.watchers]) if (w.rec.client === l.name) w.close();
        l.server.closeAllConnections();
        await closed;
      }
    } else {
      for (const w of [...this.watchers]) {
        if (!FakeKubeApiServer.matches(match, w.rec)) continue;
        if (mode === 'reset') {
          w.res.socket?.destroy();
          w.close();
        } else w.frozen = true;
      }
    }
    this.outages.push(outage);
    return () => this.endOutage(outage);
  }

  /** Ends every outage. */
  async heal(): Promise<void> {
    for (const o of [...this.outages]) await this.endOutage(o);
  }

  private async endOutage(outage: Outage): Promise<void> {
    if (!this.outages.includes(outage)) return;
    this.outages = this.outages.filter((o) => o !== outage);
    const stillOut = (r: RequestRecord) => this.outages.some((o) => FakeKubeApiServer.matches(o.match, r));
    for (const [res, h] of [...this.hung]) {
      if (h.outage !== outage) continue;
      this.hung.delete(res);
      res.socket?.destroy();
    }
    for (const w of [...this.watchers]) {
      if (w.frozen && FakeKubeApiServer.matches(outage.match, w.rec) && !stillOut(w.rec)) {
        w.res.socket?.destroy();
        w.close();
      }
    }
    if (outage.mode === 'refuse' && typeof outage.match === 'string') {
      const l = this.listeners.get(outage.match);
      if (l?.closed && !this.outages.some((o) => o.mode === 'refuse' && o.match === l.name)) {
        l.server = this.httpsServer(l.name);
        await FakeKubeApiServer.listenOn(l.server, l.address);
        l.closed = false;
      }
    }
  }

  /**
   * From now on, each request (of `match`, default all) fails with probability `ratio`: an HTTP
   * 500 InternalError Status or a reset connection (FailureRatioOptions.modes). 0 turns it off.
   */
  setFailureRatio(ratio: number, opts: FailureRatioOptions = {}): void {
    if (!(ratio >= 0 && ratio <= 1)) throw new Error(`failure ratio ${ratio} is not in [0, 1]`);
    this.failure =
      ratio === 0
        ? undefined
        : {
            ratio,
            match: opts.match ?? (() => true),
            modes: opts.modes ?? ['500', 'reset'],
            random: opts.random ?? Math.random,
          };
  }

  /** Requests of this client (by name or predicate) so far. */
  requestsOf(match: ClientMatch): RequestRecord[] {
    return this.requests.filter((r) => FakeKubeApiServer.matches(match, r));
  }

  // --- direct access (another client writing, without HTTP) -----------------------------------

  get resourceVersion(): number {
    return this.rv;
  }

  get(resource: ResourceName, namespace: string, name: string): KubeObj | undefined {
    const o = this.store.get(this.key(resource, namespace, name));
    return o ? structuredClone(o) : undefined;
  }

  create(resource: ResourceName, obj: KubeObj): KubeObj {
    return structuredClone(this.doCreate(resource, obj.metadata.namespace ?? 'default', obj));
  }

  /** Read-modify-write as another client would. Returns the stored object. */
  update(resource: ResourceName, namespace: string, name: string, mutate: (o: KubeObj) => void): KubeObj {
    const cur = this.store.get(this.key(resource, namespace, name));
    if (!cur) throw new Error(`${resource} ${namespace}/${name} not found`);
    const next = structuredClone(cur);
    mutate(next);
    if (resource === 'leases') decodeLease(next, 400);
    return structuredClone(this.write(resource, cur, next));
  }

  delete(resource: ResourceName, namespace: string, name: string): void {
    this.doDelete(resource, namespace, name);
  }

  /** Drops the watch history: any watch resuming from an older resourceVersion gets 410 Gone. */
  compact(): void {
    this.history = [];
    this.compactedRv = this.rv;
  }

  /** Ends every open watch stream (as an API server restart or a load balancer timeout does). */
  closeWatches(): void {
    for (const w of [...this.watchers]) w.close();
  }

  get openWatches(): number {
    return this.watchers.size;
  }

  /** The next `count` requests with this method on this resource fail with `status`. */
  injectFault(resource: ResourceName | '*', method: string, status: number, count = 1): void {
    this.faults.push({ resource, method: method.toUpperCase(), status, remaining: count });
  }

  /**
   * Runs before a request is handled (after authentication): lets a test make another client's
   * write land between the operator's read and its write, i.e. a real race.
   */
  onRequest(hook: (r: RequestRecord) => void | Promise<void>): () => void {
    this.requestHooks.push(hook);
    return () => {
      this.requestHooks = this.requestHooks.filter((h) => h !== hook);
    };
  }

  onWrite(cb: (resource: ResourceName, type: EventType, obj: KubeObj) => void): () => void {
    this.writeListeners.add(cb);
    return () => this.writeListeners.delete(cb);
  }

  // --- store ----------------------------------------------------------------------------------

  private key(resource: ResourceName, namespace: string, name: string): string {
    return `${resource}/${namespace}/${name}`;
  }

  private record(resource: ResourceName, type: EventType, obj: KubeObj): void {
    this.history.push({ rv: this.rv, resource, type, object: structuredClone(obj) });
    while (this.history.length > this.historyLimit) {
      const dropped = this.history.shift();
      if (dropped) this.compactedRv = dropped.rv;
    }
    for (const w of this.watchers) {
      if (w.resource !== resource) continue;
      if (w.namespace !== undefined && w.namespace !== obj.metadata.namespace) continue;
      if (!w.matches(obj)) continue;
      w.send(type, obj);
    }
    for (const l of this.writeListeners) l(resource, type, structuredClone(obj));
  }

  private doCreate(resource: ResourceName, namespace: string, input: KubeObj): KubeObj {
    const def = RESOURCES[resource];
    const name = input.metadata?.name;
    if (!name)
      throw new HttpError(
        422,
        'Invalid',
        `${def.kind} "" is invalid: metadata.name: Required value: name is required`,
      );
    const k = this.key(resource, namespace, name);
    if (this.store.has(k)) {
      throw new HttpError(409, 'AlreadyExists', `${qualified(resource)} "${name}" already exists`, {
        name,
        group: def.group,
        kind: resource,
      });
    }
    const obj = structuredClone(input);
    if (resource === 'leases') decodeLease(obj, 400);
    obj.apiVersion = def.group ? `${def.group}/${def.version}` : def.version;
    obj.kind = def.kind;
    this.rv++;
    obj.metadata = {
      ...obj.metadata,
      namespace,
      uid: randomUUID(),
      resourceVersion: String(this.rv),
      creationTimestamp: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    };
    this.store.set(k, obj);
    this.record(resource, 'ADDED', obj);
    return obj;
  }

  /** Stores `next` as the new version of `cur` (same key); no-op writes change nothing. */
  private write(resource: ResourceName, cur: KubeObj, next: KubeObj): KubeObj {
    const md = cur.metadata;
    // Immutable and server-owned metadata.
    next.metadata = {
      ...next.metadata,
      name: md.name,
      namespace: md.namespace,
      uid: md.uid,
      creationTimestamp: md.creationTimestamp,
      resourceVersion: md.resourceVersion,
    };
    next.apiVersion = cur.apiVersion;
    next.kind = cur.kind;
    if (deepEqual(cur, next)) return cur;
    this.rv++;
    next.metadata.resourceVersion = String(this.rv);
    this.store.set(this.key(resource, md.namespace ?? '', md.name), next);
    this.record(resource, 'MODIFIED', next);
    return next;
  }

  private doDelete(resource: ResourceName, namespace: string, name: string): KubeObj {
    const k = this.key(resource, namespace, name);
    const cur = this.store.get(k);
    if (!cur) throw this.notFound(resource, name);
    this.store.delete(k);
    this.rv++;
    const gone = structuredClone(cur);
    gone.metadata.resourceVersion = String(this.rv);
    this.record(resource, 'DELETED', gone);
    return gone;
  }

  private notFound(resource: ResourceName, name: string): HttpError {
    return new HttpError(404, 'NotFound', `${qualified(resource)} "${name}" not found`, {
      name,
      group: RESOURCES[resource].group,
      kind: resource,
    });
  }

  private conflict(resource: ResourceName, name: string): HttpError {
    return new HttpError(
      409,
      'Conflict',
      `Operation cannot be fulfilled on ${qualified(resource)} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
      { name, group: RESOURCES[resource].group, kind: resource },
    );
  }

  // --- HTTP -----------------------------------------------------------------------------------

  private sendJson(res: ServerResponse, code: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  }

  private sendStatus(
    res: ServerResponse,
    code: number,
    reason: string,
    message: string,
    details?: Record<string, unknown>,
  ): void {
    this.sendJson(res, code, statusBody(code, reason, message, details));
  }

  private async readBody(req: IncomingMessage): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(typeof c === 'string' ? Buffer.from(c) : (c as Buffer));
    return Buffer.concat(chunks).toString('utf8');
  }

  private parsePath(pathname: string):
    | {
        resource: ResourceName;
        namespace: string | undefined;
        name: string | undefined;
        sub: string | undefined;
      }
    | undefined {
    const m =
      /^\/(?:api\/(v1)|apis\/([^/]+)\/([^/]+))\/(?:namespaces\/([^/]+)\/)?([a-z]+)(?:\/([^/]+))?(?:\/([a-z]+))?$/.exec(
        pathname,
      );
    if (!m) return undefined;
    const group = m[1] ? '' : (m[2] ?? '');
    const version = m[1] ?? m[3] ?? '';
    const resource = m[5] as ResourceName;
    if (!Object.hasOwn(RESOURCES, resource)) return undefined;
    if (RESOURCES[resource].group !== group || RESOURCES[resource].version !== version) return undefined;
    return {
      resource,
      namespace: m[4] ? decodeURIComponent(m[4]) : undefined,
      name: m[6] ? decodeURIComponent(m[6]) : undefined,
      sub: m[7],
    };
  }

  private async handle(req: IncomingMessage, res: ServerResponse, client: string): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://fake');
    const query = Object.fromEntries(url.searchParams.entries());
    const method = (req.method ?? 'GET').toUpperCase();
    const contentType = req.headers['content-type']?.split(';')[0]?.trim();
    const auth = req.headers.authorization;
    const user = auth?.startsWith('Bearer ') ? (this.tokens.get(auth.slice(7)) ?? '') : '';
    const rec: RequestRecord = {
      method,
      path: url.pathname,
      query,
      status: 0,
      client,
      user,
      at: Date.now(),
      headers: req.headers,
    };
    if (contentType) rec.contentType = contentType;
    this.requests.push(rec);
    const origWriteHead = res.writeHead.bind(res);
    res.writeHead = ((code: number, ...rest: unknown[]) => {
      rec.status = code;
      return (origWriteHead as (c: number, ...r: unknown[]) => ServerResponse)(code, ...rest);
    }) as typeof res.writeHead;

    // The network first: an outage or a random failure happens before the server sees anything.
    const outage = this.outages.find((o) => FakeKubeApiServer.matches(o.match, rec));
    if (outage) {
      if (outage.mode === 'hang') {
        rec.fault = 'hung';
        this.hung.set(res, { rec, outage });
        req.resume();
        res.on('close', () => this.hung.delete(res));
      } else {
        rec.fault = 'reset';
        req.socket.destroy();
      }
      return;
    }
    const f = this.failure;
    if (f && FakeKubeApiServer.matches(f.match, rec) && f.random() < f.ratio) {
      const mode = f.modes[Math.floor(f.random() * f.modes.length)] ?? '500';
      if (mode === 'reset') {
        rec.fault = 'reset';
        req.socket.destroy();
      } else {
        rec.fault = 'failed';
        req.resume();
        this.sendStatus(
          res,
          500,
          'InternalError',
          'Internal error occurred: injected failure (the fake API server is flapping)',
        );
      }
      return;
    }

    if (!user) {
      this.sendStatus(res, 401, 'Unauthorized', 'Unauthorized');
      return;
    }
    const p = this.parsePath(url.pathname);
    if (!p) {
      this.sendStatus(res, 404, 'NotFound', 'the server could not find the requested resource');
      return;
    }
    const body = ['POST', 'PUT', 'PATCH'].includes(method) ? await this.readBody(req) : '';
    for (const h of this.requestHooks) await h(rec);
    try {
      const faultIdx = this.faults.findIndex(
        (f) => f.remaining > 0 && f.method === method && (f.resource === '*' || f.resource === p.resource),
      );
      const fault = this.faults[faultIdx];
      if (fault) {
        fault.remaining--;
        if (fault.remaining === 0) this.faults.splice(faultIdx, 1);
        if (fault.status === 409) throw this.conflict(p.resource, p.name ?? '');
        if (fault.status === 429)
          throw new HttpError(
            429,
            'TooManyRequests',
            'the server has received too many requests and has asked us to try again later',
          );
        throw new HttpError(
          fault.status,
          fault.status >= 500 ? 'InternalError' : 'BadRequest',
          `injected fault ${fault.status}`,
        );
      }
      await this.route(method, p, query, contentType, body, req, res, rec);
    } catch (e) {
      if (e instanceof HttpError) this.sendStatus(res, e.code, e.reason, e.message, e.details);
      else throw e;
    }
  }

  private async route(
    method: string,
    p: {
      resource: ResourceName;
      namespace: string | undefined;
      name: string | undefined;
      sub: string | undefined;
    },
    query: Record<string, string>,
    contentType: string | undefined,
    body: string,
    req: IncomingMessage,
    res: ServerResponse,
    rec: RequestRecord,
  ): Promise<void> {
    const { resource, namespace, name, sub } = p;
    const def = RESOURCES[resource];
    if (sub !== undefined && !(sub === 'status' && def.statusSubresource)) {
      throw new HttpError(404, 'NotFound', 'the server could not find the requested resource');
    }
    if (name === undefined) {
      if (method === 'GET' && (query.watch === 'true' || query.watch === '1')) {
        this.serveWatch(resource, namespace, query, req, res, rec);
        return;
      }
      if (method === 'GET') {
        const matchField = selectorMatcher(query.fieldSelector, fieldValue);
        const matchLabel = selectorMatcher(query.labelSelector, (o, k) => o.metadata.labels?.[k]);
        const items = [...this.store.entries()]
          .filter(([k]) => k.startsWith(`${resource}/${namespace === undefined ? '' : `${namespace}/`}`))
          .map(([, o]) => o)
          .filter((o) => matchField(o) && matchLabel(o))
          .sort((a, b) =>
            `${a.metadata.namespace}/${a.metadata.name}`.localeCompare(
              `${b.metadata.namespace}/${b.metadata.name}`,
            ),
          );
        this.sendJson(res, 200, {
          kind: def.listKind,
          apiVersion: def.group ? `${def.group}/${def.version}` : def.version,
          metadata: { resourceVersion: String(this.rv) },
          items,
        });
        return;
      }
      if (method === 'POST' && namespace !== undefined) {
        const obj = this.parseJson(body);
        if (!isObj(obj) || !isObj(obj.metadata))
          throw new HttpError(400, 'BadRequest', 'body is not an object');
        this.sendJson(res, 201, this.doCreate(resource, namespace, obj as KubeObj));
        return;
      }
      throw new HttpError(
        405,
        'MethodNotAllowed',
        `the server does not allow this method on the requested resource`,
      );
    }
    if (namespace === undefined)
      throw new HttpError(404, 'NotFound', 'the server could not find the requested resource');
    const k = this.key(resource, namespace, name);
    const cur = this.store.get(k);
    switch (method) {
      case 'GET':
        if (!cur) throw this.notFound(resource, name);
        this.sendJson(res, 200, cur);
        return;
      case 'DELETE':
        this.sendJson(res, 200, this.doDelete(resource, namespace, name));
        return;
      case 'PUT': {
        if (!cur) throw this.notFound(resource, name);
        const obj = this.parseJson(body);
        if (!isObj(obj) || !isObj(obj.metadata))
          throw new HttpError(400, 'BadRequest', 'body is not an object');
        const next = obj as KubeObj;
        if (resource === 'leases') decodeLease(next, 400);
        const sentRv = next.metadata.resourceVersion;
        if ((sentRv === undefined || sentRv === '') && !def.unconditionalUpdate) {
          // registry.Store.Update: no resourceVersion and no unconditional update allowed.
          throw invalid(resource, def.group, name, [
            {
              field: 'metadata.resourceVersion',
              message: 'Invalid value: 0x0: must be specified for an update',
            },
          ]);
        }
        if (sentRv !== undefined && sentRv !== '' && sentRv !== cur.metadata.resourceVersion) {
          throw this.conflict(resource, name);
        }
        this.sendJson(res, 200, this.write(resource, cur, this.applySubresource(def, cur, next, sub)));
        return;
      }
      case 'PATCH': {
        if (!cur) throw this.notFound(resource, name);
        const patch = this.parseJson(body);
        let patched: unknown;
        try {
          if (contentType === 'application/json-patch+json') patched = applyJsonPatch(cur, patch);
          else if (contentType === 'application/merge-patch+json') patched = applyMergePatch(cur, patch);
          else if (contentType === 'application/strategic-merge-patch+json' && def.strategicMerge) {
            // ConfigMap and the Pod fields tests touch have no list merge keys: SMP == merge patch.
            patched = applyMergePatch(cur, patch);
          } else {
            throw new HttpError(
              415,
              'UnsupportedMediaType',
              `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml${def.strategicMerge ? ', application/strategic-merge-patch+json' : ''}`,
            );
          }
        } catch (e) {
          if (e instanceof PatchError) {
            if (e.malformed) throw new HttpError(400, 'BadRequest', e.message);
            // apiserver: errors.NewGenericServerResponse(http.StatusUnprocessableEntity, "", …, err.Error(), 0, false)
            throw new HttpError(
              422,
              'Invalid',
              'the server rejected our request due to an error in our request',
              {
                causes: [{ message: e.message }],
              },
            );
          }
          throw e;
        }
        if (!isObj(patched) || !isObj(patched.metadata))
          throw new HttpError(422, 'Invalid', 'patch removed metadata');
        const next = patched as KubeObj;
        if (resource === 'leases') decodeLease(next, 422);
        if (next.metadata.name !== name)
          throw new HttpError(400, 'BadRequest', 'the name of the object does not match');
        const rv = next.metadata.resourceVersion;
        if (rv !== undefined && rv !== cur.metadata.resourceVersion) throw this.conflict(resource, name);
        rec.body = patch;
        this.sendJson(res, 200, this.write(resource, cur, this.applySubresource(def, cur, next, sub)));
        return;
      }
      default:
        throw new HttpError(
          405,
          'MethodNotAllowed',
          'the server does not allow this method on the requested resource',
        );
    }
  }

  /** With a status subresource, the main resource keeps the old status and /status changes only status. */
  private applySubresource(def: ResourceDef, cur: KubeObj, next: KubeObj, sub: string | undefined): KubeObj {
    if (!def.statusSubresource) return next;
    if (sub === 'status') {
      const out = structuredClone(cur);
      if (next.status === undefined) delete out.status;
      else out.status = next.status;
      return out;
    }
    const out = structuredClone(next);
    if (cur.status === undefined) delete out.status;
    else out.status = structuredClone(cur.status);
    return out;
  }

  private parseJson(body: string): unknown {
    try {
      return JSON.parse(body);
    } catch (e) {
      throw new HttpError(400, 'BadRequest', `invalid JSON: ${String(e)}`);
    }
  }

  private serveWatch(
    resource: ResourceName,
    namespace: string | undefined,
    query: Record<string, string>,
    req: IncomingMessage,
    res: ServerResponse,
    rec: RequestRecord,
  ): void {
    const matchField = selectorMatcher(query.fieldSelector, fieldValue);
    const matchLabel = selectorMatcher(query.labelSelector, (o, k) => o.metadata.labels?.[k]);
    const matches = (o: KubeObj) => matchField(o) && matchLabel(o);
    const rvParam = query.resourceVersion ?? '';
    const fromRv = rvParam === '' || rvParam === '0' ? undefined : Number(rvParam);
    if (fromRv !== undefined && !Number.isFinite(fromRv)) {
      throw new HttpError(400, 'BadRequest', `invalid resourceVersion: ${rvParam}`);
    }
    const tooOld = fromRv !== undefined && fromRv < this.compactedRv;
    const goneMsg = `too old resource version: ${fromRv} (${this.compactedRv})`;
    if (tooOld && this.goneAs === 'http') throw new HttpError(410, 'Expired', goneMsg);

    res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
    res.flushHeaders();
    let closed = false;
    let lastRv = fromRv ?? this.rv;
    const timers: NodeJS.Timeout[] = [];
    const w: Watcher = {
      rec,
      frozen: false,
      resource,
      namespace,
      matches,
      res,
      send: (type, object) => {
        if (closed || w.frozen) return;
        if (isObj(object) && isObj(object.metadata) && typeof object.metadata.resourceVersion === 'string') {
          lastRv = Number(object.metadata.resourceVersion);
        }
        res.write(`${JSON.stringify({ type, object })}\n`);
      },
      close: () => {
        if (closed) return;
        closed = true;
        for (const t of timers) clearTimeout(t);
        this.watchers.delete(w);
        res.end();
      },
    };
    req.on('close', () => w.close());
    if (tooOld) {
      w.send('ERROR', statusBody(410, 'Expired', goneMsg));
      w.close();
      return;
    }
    if (fromRv === undefined) {
      for (const [k, o] of this.store) {
        if (!k.startsWith(`${resource}/`)) continue;
        if (namespace !== undefined && o.metadata.namespace !== namespace) continue;
        if (matches(o)) w.send('ADDED', o);
      }
    } else {
      for (const h of this.history) {
        if (h.rv <= fromRv || h.resource !== resource) continue;
        if (namespace !== undefined && h.object.metadata.namespace !== namespace) continue;
        if (matches(h.object)) w.send(h.type, h.object);
      }
    }
    this.watchers.add(w);
    const timeoutSeconds = Number(query.timeoutSeconds ?? '0');
    if (timeoutSeconds > 0) timers.push(setTimeout(() => w.close(), timeoutSeconds * 1000));
    if (query.allowWatchBookmarks === 'true') {
      const def = RESOURCES[resource];
      const tick = () => {
        w.send('BOOKMARK', {
          kind: def.kind,
          apiVersion: def.group ? `${def.group}/${def.version}` : def.version,
          metadata: { resourceVersion: String(Math.max(lastRv, this.rv)) },
        });
        timers.push(setTimeout(tick, this.bookmarkIntervalMs));
      };
      timers.push(setTimeout(tick, this.bookmarkIntervalMs));
    }
  }
}

// --- the Cilium agent as the API server sees it -------------------------------------------------

export interface SimulatedCiliumAgentOptions {
  namespace: string;
  podName: string;
  /** Cilium's node IP written to status.networking.node. */
  nodeIp?: string;
}

/**
 * What cilium-agent does to a pod's CiliumEndpoint: creates it (same name and namespace as the pod,
 * owner reference to the pod) once the pod has an IP, and rewrites its status from the agent's own
 * endpoint model whenever that model changes — here: on a pod IP change, or when the test says so.
 * The rewrite replaces status.networking.addressing with the pod's own IPs only, as the real agent
 * does, which drops anything an operator patched in.
 */
export class SimulatedCiliumAgent {
  private unsub: (() => void) | undefined;
  private generation = 0;
  /** Number of status rewrites done. */
  rewrites = 0;

  constructor(
    private readonly api: FakeKubeApiServer,
    private readonly opts: SimulatedCiliumAgentOptions,
  ) {}

  start(): void {
    this.unsub = this.api.onWrite((resource, type, obj) => {
      if (resource !== 'pods' || obj.metadata.name !== this.opts.podName) return;
      if (obj.metadata.namespace !== this.opts.namespace) return;
      if (type === 'DELETED') {
        if (this.api.get('ciliumendpoints', this.opts.namespace, this.opts.podName)) {
          this.api.delete('ciliumendpoints', this.opts.namespace, this.opts.podName);
        }
        return;
      }
      // Deferred like the agent's controller: never inside the API server's write path.
      setImmediate(() => this.sync());
    });
    this.sync();
  }

  stop(): void {
    this.unsub?.();
  }

  private podIps(): string[] {
    const pod = this.api.get('pods', this.opts.namespace, this.opts.podName);
    const status = pod?.status;
    if (!isObj(status) || !Array.isArray(status.podIPs)) return [];
    return status.podIPs.flatMap((p: unknown) => (isObj(p) && typeof p.ip === 'string' ? [p.ip] : []));
  }

  /** The agent's model of the endpoint's addressing: one AddressPair with the pod's IPv4 and IPv6. */
  private modelAddressing(): Record<string, string>[] {
    const ips = this.podIps();
    const pair: Record<string, string> = {};
    const v4 = ips.find((ip) => !ip.includes(':'));
    const v6 = ips.find((ip) => ip.includes(':'));
    if (v4) pair.ipv4 = v4;
    if (v6) pair.ipv6 = v6;
    return Object.keys(pair).length > 0 ? [pair] : [];
  }

  private sync(): void {
    const addressing = this.modelAddressing();
    if (addressing.length === 0) return;
    const cep = this.api.get('ciliumendpoints', this.opts.namespace, this.opts.podName);
    if (!cep) {
      const pod = this.api.get('pods', this.opts.namespace, this.opts.podName);
      this.generation++;
      this.api.create('ciliumendpoints', {
        metadata: {
          name: this.opts.podName,
          namespace: this.opts.namespace,
          ownerReferences: [
            { apiVersion: 'v1', kind: 'Pod', name: this.opts.podName, uid: pod?.metadata.uid ?? '' },
          ],
          labels: { 'app.kubernetes.io/name': 'vpn' },
        },
        status: {
          id: 1000 + this.generation,
          identity: { id: 54321, labels: ['k8s:app.kubernetes.io/name=vpn'] },
          networking: { addressing, node: this.opts.nodeIp ?? '192.168.178.2' },
          state: 'ready',
          encryption: {},
        },
      });
      return;
    }
    const status = isObj(cep.status) ? cep.status : {};
    const networking = isObj(status.networking) ? status.networking : {};
    if (deepEqual(networking.addressing, addressing)) return;
    this.rewriteStatus();
  }

  /** The agent's endpoint model changed: it writes the whole status from its model. */
  rewriteStatus(): void {
    const addressing = this.modelAddressing();
    this.rewrites++;
    this.api.update('ciliumendpoints', this.opts.namespace, this.opts.podName, (o) => {
      const status = isObj(o.status) ? o.status : {};
      const networking = isObj(status.networking) ? status.networking : {};
      o.status = { ...status, networking: { ...networking, addressing }, state: 'ready' };
    });
  }
}
