// Kubernetes access for the operator, on @kubernetes/client-node 1.4.0 (2.x does not load on
// Node 20). The KubeConfig is injected: in a pod, `kc.loadFromCluster()` (service account token +
// CA); in tests, one pointing at the fake API server.
//
// Reflector is a list+watch loop in the manner of client-go's reflector and client-node's ListWatch
// (cache.ts): LIST to get the objects and a resourceVersion, WATCH from that resourceVersion, keep
// the resourceVersion from every event and bookmark, resume the watch from it when the stream ends,
// and relist on 410 Gone (in-stream ERROR event or HTTP status). Unlike ListWatch, which stops for
// good on any other error, it retries with backoff (and relists after repeated failures).
import {
  ApiException,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  Watch,
} from '@kubernetes/client-node';
import { IkegwError } from '../common/errors.js';
import { isRecord, type Log, silentLog } from './log.js';

export { isRecord, type Log, silentLog };

export type ResourceKind = 'pods' | 'configmaps' | 'ciliumendpoints' | 'leases';

interface ResourcePath {
  group: string;
  version: string;
  plural: string;
}

const RESOURCES: Record<ResourceKind, ResourcePath> = {
  pods: { group: '', version: 'v1', plural: 'pods' },
  configmaps: { group: '', version: 'v1', plural: 'configmaps' },
  // CiliumEndpoint CRD (cilium.io/v2). It has no status subresource: status is patched on the object.
  ciliumendpoints: { group: 'cilium.io', version: 'v2', plural: 'ciliumendpoints' },
  // The frontend replicas' election (ha.enabled): read only.
  leases: { group: 'coordination.k8s.io', version: 'v1', plural: 'leases' },
};

export interface ObjectMeta {
  name: string;
  namespace?: string;
  resourceVersion?: string;
  uid?: string;
  annotations?: Record<string, string>;
  labels?: Record<string, string>;
  [k: string]: unknown;
}

/** A Kubernetes object as plain JSON; fields beyond metadata are read by narrowing. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  [k: string]: unknown;
}

/** RFC 6902 operations the operator sends. */
export type JsonPatchOp =
  | { op: 'test'; path: string; value: unknown }
  | { op: 'add'; path: string; value: unknown }
  | { op: 'replace'; path: string; value: unknown }
  | { op: 'remove'; path: string };

/** RFC 6901: "~" -> "~0", "/" -> "~1". */
export function pointerToken(s: string): string {
  return s.replace(/~/g, '~0').replace(/\//g, '~1');
}

/** A failed API call; `status` is the HTTP code (0 when there was no HTTP answer). */
export class KubeApiError extends IkegwError {
  constructor(
    readonly op: string,
    readonly status: number,
    /** The Status object's reason ("NotFound", "Conflict", "Invalid", "Expired", …) when there was one. */
    readonly reason: string | undefined,
    message: string,
  ) {
    super(`ERR_KUBE_${status || 'NETWORK'}`, `${op}: ${message}`);
  }
}

function parseStatusBody(body: unknown): { reason?: string; message?: string } {
  let v = body;
  if (typeof body === 'string') {
    try {
      v = JSON.parse(body);
    } catch {
      return { message: body.slice(0, 300) };
    }
  }
  if (!isRecord(v)) return {};
  const out: { reason?: string; message?: string } = {};
  if (typeof v.reason === 'string') out.reason = v.reason;
  if (typeof v.message === 'string') out.message = v.message;
  return out;
}

export function toKubeError(op: string, e: unknown): KubeApiError {
  if (e instanceof KubeApiError) return e;
  if (e instanceof ApiException) {
    const s = parseStatusBody(e.body);
    return new KubeApiError(op, e.code, s.reason, s.message ?? e.message);
  }
  if (isRecord(e) && typeof e.statusCode === 'number') {
    return new KubeApiError(op, e.statusCode, undefined, String(e.message ?? `HTTP ${e.statusCode}`));
  }
  return new KubeApiError(op, 0, undefined, e instanceof Error ? e.message : String(e));
}

/** Typed API results are class instances (dates as Date); reduce them to plain JSON. */
function plain(v: unknown, op: string): KubeObject {
  const o: unknown = JSON.parse(JSON.stringify(v));
  if (!isRecord(o) || !isRecord(o.metadata) || typeof o.metadata.name !== 'string') {
    throw new KubeApiError(op, 0, undefined, 'response is not an object with metadata.name');
  }
  return o as KubeObject;
}

function plainList(v: unknown, op: string): { items: KubeObject[]; resourceVersion: string } {
  const o: unknown = JSON.parse(JSON.stringify(v));
  if (!isRecord(o) || !Array.isArray(o.items))
    throw new KubeApiError(op, 0, undefined, 'response is not a list');
  const md = isRecord(o.metadata) ? o.metadata : {};
  return {
    items: o.items.map((i) => plain(i, op)),
    resourceVersion: typeof md.resourceVersion === 'string' ? md.resourceVersion : '',
  };
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

export interface WatchParams {
  fieldSelector?: string;
  resourceVersion: string;
  timeoutSeconds?: number;
  allowWatchBookmarks?: boolean;
}

/** The calls the operator makes, on the generated clients of @kubernetes/client-node. */
export class KubeClient {
  private readonly core: CoreV1Api;
  private readonly custom: CustomObjectsApi;
  private readonly coordination: CoordinationV1Api;
  private readonly watcher: Watch;

  constructor(readonly kc: KubeConfig) {
    this.core = kc.makeApiClient(CoreV1Api);
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.coordination = kc.makeApiClient(CoordinationV1Api);
    this.watcher = new Watch(kc);
  }

  /** The object, or undefined on 404. */
  async get(kind: ResourceKind, namespace: string, name: string): Promise<KubeObject | undefined> {
    const op = `get ${kind} ${namespace}/${name}`;
    try {
      switch (kind) {
        case 'pods':
          return plain(await this.core.readNamespacedPod({ name, namespace }), op);
        case 'configmaps':
          return plain(await this.core.readNamespacedConfigMap({ name, namespace }), op);
        case 'leases':
          return plain(await this.coordination.readNamespacedLease({ name, namespace }), op);
        case 'ciliumendpoints': {
          const r = RESOURCES.ciliumendpoints;
          return plain(
            await this.custom.getNamespacedCustomObject({
              group: r.group,
              version: r.version,
              namespace,
              plural: r.plural,
              name,
            }),
            op,
          );
        }
      }
    } catch (e) {
      const err = toKubeError(op, e);
      if (err.status === 404) return undefined;
      throw err;
    }
  }

  async list(
    kind: ResourceKind,
    namespace: string,
    fieldSelector?: string,
  ): Promise<{ items: KubeObject[]; resourceVersion: string }> {
    const op = `list ${kind} in ${namespace}`;
    const sel = fieldSelector !== undefined ? { fieldSelector } : {};
    try {
      switch (kind) {
        case 'pods':
          return plainList(await this.core.listNamespacedPod({ namespace, ...sel }), op);
        case 'configmaps':
          return plainList(await this.core.listNamespacedConfigMap({ namespace, ...sel }), op);
        case 'leases':
          return plainList(await this.coordination.listNamespacedLease({ namespace, ...sel }), op);
        case 'ciliumendpoints': {
          const r = RESOURCES.ciliumendpoints;
          return plainList(
            await this.custom.listNamespacedCustomObject({
              group: r.group,
              version: r.version,
              namespace,
              plural: r.plural,
              ...sel,
            }),
            op,
          );
        }
      }
    } catch (e) {
      throw toKubeError(op, e);
    }
  }

  /** Sends an RFC 6902 patch (Content-Type application/json-patch+json) and returns the result. */
  async jsonPatch(
    kind: ResourceKind,
    namespace: string,
    name: string,
    ops: JsonPatchOp[],
  ): Promise<KubeObject> {
    const op = `patch ${kind} ${namespace}/${name}`;
    try {
      switch (kind) {
        case 'pods':
          return plain(await this.core.patchNamespacedPod({ name, namespace, body: ops }), op);
        case 'configmaps':
          return plain(await this.core.patchNamespacedConfigMap({ name, namespace, body: ops }), op);
        case 'leases':
          throw new KubeApiError(op, 0, undefined, 'the operator does not write Leases');
        case 'ciliumendpoints': {
          const r = RESOURCES.ciliumendpoints;
          return plain(
            await this.custom.patchNamespacedCustomObject({
              group: r.group,
              version: r.version,
              namespace,
              plural: r.plural,
              name,
              body: ops,
            }),
            op,
          );
        }
      }
    } catch (e) {
      throw toKubeError(op, e);
    }
  }

  /** URL path of a namespaced collection, for watches. */
  collectionPath(kind: ResourceKind, namespace: string): string {
    const r = RESOURCES[kind];
    const prefix = r.group === '' ? `/api/${r.version}` : `/apis/${r.group}/${r.version}`;
    return `${prefix}/namespaces/${encodeURIComponent(namespace)}/${r.plural}`;
  }

  /**
   * Opens a watch. `onEvent` gets each event; `onDone` is called once when the stream ends
   * (null: closed normally; otherwise the error, with `statusCode` for HTTP failures).
   */
  async watch(
    kind: ResourceKind,
    namespace: string,
    params: WatchParams,
    onEvent: (type: WatchEventType, obj: unknown) => void,
    onDone: (err: unknown) => void,
  ): Promise<AbortController> {
    const q: Record<string, string | number | boolean | undefined> = {
      resourceVersion: params.resourceVersion,
      fieldSelector: params.fieldSelector,
      timeoutSeconds: params.timeoutSeconds,
      allowWatchBookmarks: params.allowWatchBookmarks,
    };
    return this.watcher.watch(
      this.collectionPath(kind, namespace),
      q,
      (phase: string, obj: unknown) => onEvent(phase as WatchEventType, obj),
      onDone,
    );
  }
}

export interface ReflectorOptions {
  client: KubeClient;
  kind: ResourceKind;
  namespace: string;
  /** e.g. "metadata.name=vpn-frontend-0" */
  fieldSelector?: string;
  /** Called after every change of the cached set (after a list and after each event). */
  onChange: (why: string) => void;
  /** Server-side watch timeout; the watch is then resumed from the last resourceVersion. Default 240–300 s. */
  watchTimeoutSeconds?: number;
  log?: Log;
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        resolve();
      },
      { once: true },
    );
  });

function isGone(err: unknown): boolean {
  return isRecord(err) && (err.statusCode === 410 || err.code === 410 || err.status === 410);
}

/** List+watch cache of the objects matching one selector in one namespace. */
export class Reflector {
  private readonly objects = new Map<string, KubeObject>();
  private resourceVersion = '';
  private readonly stopCtl = new AbortController();
  private watchCtl: AbortController | undefined;
  private loop: Promise<void> | undefined;
  private synced = false;
  private failures = 0;
  private readonly log: Log;
  /** Counters for tests and metrics. */
  readonly stats = { lists: 0, watches: 0, gone: 0, errors: 0 };
  lastError: KubeApiError | undefined;

  constructor(private readonly o: ReflectorOptions) {
    this.log = o.log ?? silentLog;
  }

  get hasSynced(): boolean {
    return this.synced;
  }

  get(name: string): KubeObject | undefined {
    return this.objects.get(name);
  }

  list(): KubeObject[] {
    return [...this.objects.values()];
  }

  /** Records an object we just wrote (a patch response), so reconcile does not act on stale data. */
  observe(obj: KubeObject): void {
    const cur = this.objects.get(obj.metadata.name);
    if (cur && Number(cur.metadata.resourceVersion) > Number(obj.metadata.resourceVersion)) return;
    this.objects.set(obj.metadata.name, obj);
  }

  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.stopCtl.abort();
    this.watchCtl?.abort();
    await this.loop;
  }

  private get what(): string {
    return `${this.o.kind} ${this.o.namespace}${this.o.fieldSelector ? ` (${this.o.fieldSelector})` : ''}`;
  }

  private async relist(): Promise<void> {
    this.stats.lists++;
    const { items, resourceVersion } = await this.o.client.list(
      this.o.kind,
      this.o.namespace,
      this.o.fieldSelector,
    );
    this.objects.clear();
    for (const i of items) this.objects.set(i.metadata.name, i);
    this.resourceVersion = resourceVersion;
    this.synced = true;
    this.o.onChange('list');
  }

  private async run(): Promise<void> {
    const signal = this.stopCtl.signal;
    while (!signal.aborted) {
      try {
        if (this.resourceVersion === '') await this.relist();
        if (signal.aborted) break;
        const gone = await this.watchOnce();
        if (gone) {
          this.stats.gone++;
          this.log.info({ resource: this.what }, 'k8s: resourceVersion too old (410 Gone); relisting');
          this.resourceVersion = '';
        }
        this.failures = 0;
        this.lastError = undefined;
      } catch (e) {
        if (signal.aborted) break;
        if (isGone(e)) {
          this.stats.gone++;
          this.log.info({ resource: this.what }, 'k8s: 410 Gone; relisting');
          this.resourceVersion = '';
          continue;
        }
        this.stats.errors++;
        this.failures++;
        const err = toKubeError(`list/watch ${this.what}`, e);
        this.lastError = err;
        // After repeated failures, start over with a fresh list: level-triggered, nothing is lost.
        if (this.failures >= 3) this.resourceVersion = '';
        const delay = Math.min(30_000, 200 * 2 ** Math.min(this.failures, 8)) * (0.8 + Math.random() * 0.4);
        this.log.warn(
          { resource: this.what, err: err.message, status: err.status, retryInMs: Math.round(delay) },
          'k8s: list/watch failed',
        );
        await sleep(delay, signal);
      }
    }
  }

  /** One watch stream; resolves true if it ended with 410 Gone, false on a normal end. */
  private watchOnce(): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      let gone = false;
      let settled = false;
      const timeoutSeconds = this.o.watchTimeoutSeconds ?? Math.floor(240 + Math.random() * 60);
      // If the connection goes silent (half-open TCP), abort it: bookmarks arrive well within this.
      let watchdog: NodeJS.Timeout | undefined;
      const arm = () => {
        clearTimeout(watchdog);
        watchdog = setTimeout(() => this.watchCtl?.abort(), (timeoutSeconds + 30) * 1000);
      };
      const finish = (err: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(watchdog);
        this.watchCtl = undefined;
        if (err && !this.stopCtl.signal.aborted) reject(err);
        else resolve(gone);
      };
      this.stats.watches++;
      arm();
      this.o.client
        .watch(
          this.o.kind,
          this.o.namespace,
          {
            resourceVersion: this.resourceVersion,
            timeoutSeconds,
            allowWatchBookmarks: true,
            ...(this.o.fieldSelector !== undefined ? { fieldSelector: this.o.fieldSelector } : {}),
          },
          (type, obj) => {
            arm();
            if (type === 'ERROR') {
              if (isRecord(obj) && obj.code === 410) gone = true;
              else this.log.warn({ resource: this.what, status: obj }, 'k8s: watch error event');
              return;
            }
            if (!isRecord(obj) || !isRecord(obj.metadata)) return;
            const rv = obj.metadata.resourceVersion;
            if (typeof rv === 'string' && rv !== '') this.resourceVersion = rv;
            if (type === 'BOOKMARK') return;
            const o = obj as KubeObject;
            if (typeof o.metadata.name !== 'string') return;
            if (type === 'DELETED') this.objects.delete(o.metadata.name);
            else this.objects.set(o.metadata.name, o);
            this.o.onChange(type);
          },
          (err) => finish(err),
        )
        .then(
          (ctl) => {
            if (settled) return;
            this.watchCtl = ctl;
            if (this.stopCtl.signal.aborted) ctl.abort();
          },
          (err: unknown) => finish(err ?? new Error('watch failed')),
        );
    });
  }
}
