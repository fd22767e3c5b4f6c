// The Lease as the election reads and writes it, through @kubernetes/client-node's
// CoordinationV1Api. This module loads the Kubernetes client (~100 MB RSS): src/ha/runner.ts imports
// it with import() only when `ha:` is configured.
//
// Credentials: in a pod, KubeConfig.loadFromCluster() (service account token + CA, the way the
// operator does it); IKEGW_KUBECONFIG=<file> points at a kubeconfig instead (tests, the fake API
// server; also a way to run the daemon outside a cluster).
import {
  ApiException,
  CoordinationV1Api,
  KubeConfig,
  type V1Lease,
  V1MicroTime,
} from '@kubernetes/client-node';
import type { LeaseRecord } from './election.js';

export type LeaseRead = { record: LeaseRecord; resourceVersion: string } | 'absent';

export class LeaseWriteError extends Error {
  constructor(
    message: string,
    /** 409: a stale resourceVersion, or the Lease to create exists. */
    readonly conflict: boolean,
    /** 404: the Lease to replace does not exist. */
    readonly absent: boolean,
  ) {
    super(message);
    this.name = 'LeaseWriteError';
  }
}

/** What the runner needs: one Lease, read and written with optimistic concurrency. */
export interface LeaseStore {
  readonly where: string;
  read(timeoutMs: number): Promise<LeaseRead>;
  /** resourceVersion undefined: create. Resolves with the stored version. */
  write(
    record: LeaseRecord,
    resourceVersion: string | undefined,
    timeoutMs: number,
  ): Promise<{ resourceVersion: string }>;
}

type Env = Record<string, string | undefined>;

/** In-cluster credentials, or the kubeconfig file named by IKEGW_KUBECONFIG. */
export function loadKubeConfig(env: Env): KubeConfig {
  const kc = new KubeConfig();
  if (env.IKEGW_KUBECONFIG) {
    kc.loadFromFile(env.IKEGW_KUBECONFIG);
    return kc;
  }
  kc.loadFromCluster();
  if (!kc.getCurrentCluster()?.server || !process.env.KUBERNETES_SERVICE_HOST)
    throw new Error(
      'no in-cluster credentials (KUBERNETES_SERVICE_HOST unset); run in a pod or set IKEGW_KUBECONFIG',
    );
  return kc;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** The Status message of a failed call, or the network error, in one line. */
export function describeError(e: unknown): string {
  if (e instanceof ApiException) {
    let msg = '';
    const body = e.body as unknown;
    if (typeof body === 'string') {
      try {
        msg = (JSON.parse(body) as { message?: string }).message ?? '';
      } catch {
        msg = body.slice(0, 200);
      }
    } else if (body && typeof body === 'object') msg = String((body as { message?: unknown }).message ?? '');
    return `HTTP ${e.code}${msg ? `: ${msg}` : ''}`;
  }
  const err = e as { code?: unknown; message?: unknown; cause?: { code?: unknown; message?: unknown } };
  const code = err?.cause?.code ?? err?.code;
  const text = String(err?.message ?? e);
  return typeof code === 'string' && !text.includes(code) ? `${code}: ${text}` : text;
}

const micro = (t: string | undefined): V1MicroTime | undefined => (t ? new V1MicroTime(t) : undefined);

function text(v: unknown): string | undefined {
  if (v instanceof Date) return v.toISOString();
  return typeof v === 'string' ? v : undefined;
}

function toRecord(lease: V1Lease): LeaseRecord {
  const s = lease.spec ?? {};
  const r: LeaseRecord = {
    holderIdentity: s.holderIdentity ?? '',
    leaseDurationSeconds: s.leaseDurationSeconds ?? 0,
    leaseTransitions: s.leaseTransitions ?? 0,
  };
  const a = text(s.acquireTime as unknown);
  const n = text(s.renewTime as unknown);
  if (a) r.acquireTime = a;
  if (n) r.renewTime = n;
  return r;
}

export function kubeLeaseStore(kc: KubeConfig, lease: { name: string; namespace: string }): LeaseStore {
  const api = kc.makeApiClient(CoordinationV1Api);
  const { name, namespace } = lease;
  const where = `Lease ${namespace}/${name}`;
  const body = (record: LeaseRecord, resourceVersion: string | undefined): V1Lease => ({
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name, namespace, ...(resourceVersion !== undefined ? { resourceVersion } : {}) },
    spec: {
      holderIdentity: record.holderIdentity,
      leaseDurationSeconds: record.leaseDurationSeconds,
      leaseTransitions: record.leaseTransitions,
      ...(record.acquireTime ? { acquireTime: micro(record.acquireTime) } : {}),
      ...(record.renewTime ? { renewTime: micro(record.renewTime) } : {}),
    },
  });
  return {
    where,
    async read(timeoutMs) {
      try {
        const l = await withTimeout(api.readNamespacedLease({ name, namespace }), timeoutMs, `GET ${where}`);
        return { record: toRecord(l), resourceVersion: l.metadata?.resourceVersion ?? '' };
      } catch (e) {
        if (e instanceof ApiException && e.code === 404) return 'absent';
        throw new Error(`GET ${where}: ${describeError(e)}`);
      }
    },
    async write(record, resourceVersion, timeoutMs) {
      const verb = resourceVersion === undefined ? 'POST' : 'PUT';
      try {
        const l =
          resourceVersion === undefined
            ? await withTimeout(
                api.createNamespacedLease({ namespace, body: body(record, undefined) }),
                timeoutMs,
                `${verb} ${where}`,
              )
            : await withTimeout(
                api.replaceNamespacedLease({ name, namespace, body: body(record, resourceVersion) }),
                timeoutMs,
                `${verb} ${where}`,
              );
        return { resourceVersion: l.metadata?.resourceVersion ?? '' };
      } catch (e) {
        const code = e instanceof ApiException ? e.code : undefined;
        let msg = `${verb} ${where}: ${describeError(e)}`;
        if (code === 403 && verb === 'POST')
          msg +=
            ' (the Lease does not exist and RBAC does not allow creating it: create it, e.g. with the chart, or grant create on leases)';
        throw new LeaseWriteError(msg, code === 409, code === 404);
      }
    },
  };
}
