// Leases in the fake API server, through the client the daemon's election uses
// (@kubernetes/client-node's CoordinationV1Api): the semantics a leader election relies on
// (resourceVersion, 409 on a stale update, MicroTime) and the fault injection the HA tests use.
import {
  ApiException,
  CoordinationV1Api,
  PatchStrategy,
  setHeaderOptions,
  type V1Lease,
  Watch,
} from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FakeKubeApiServer, parseMicroTime } from '../../fakes/kube-apiserver.js';

const NS = 'vpn';

function status(e: unknown): { code: number; body: Record<string, unknown> } {
  if (!(e instanceof ApiException)) throw e;
  const body: unknown = typeof e.body === 'string' ? JSON.parse(e.body) : e.body;
  return { code: e.code, body: body as Record<string, unknown> };
}

async function failure(p: Promise<unknown>): Promise<{ code: number; body: Record<string, unknown> }> {
  try {
    await p;
  } catch (e) {
    return status(e);
  }
  throw new Error('the request succeeded');
}

/** A MicroTime as the daemon must send it: six fraction digits. */
function micro(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

function lease(name: string, holder: string, now = new Date()): V1Lease {
  return {
    metadata: { name, namespace: NS },
    spec: {
      holderIdentity: holder,
      leaseDurationSeconds: 15,
      acquireTime: micro(now) as unknown as Date,
      renewTime: micro(now) as unknown as Date,
      leaseTransitions: 0,
    },
  };
}

describe('FakeKubeApiServer leases (coordination.k8s.io/v1)', () => {
  let api: FakeKubeApiServer;
  let a: CoordinationV1Api;
  let b: CoordinationV1Api;
  beforeAll(async () => {
    api = await FakeKubeApiServer.start();
    a = api.kubeConfig().makeApiClient(CoordinationV1Api);
    b = api.kubeConfig(api.addToken('replica-b')).makeApiClient(CoordinationV1Api);
  });
  afterAll(async () => {
    await api.stop();
  });

  it('create, get, 409 AlreadyExists, delete, 404', async () => {
    const created = await a.createNamespacedLease({ namespace: NS, body: lease('l1', 'pod-0') });
    expect(created.kind).toBe('Lease');
    expect(created.apiVersion).toBe('coordination.k8s.io/v1');
    expect(created.metadata?.resourceVersion).toMatch(/^\d+$/);
    const got = await b.readNamespacedLease({ name: 'l1', namespace: NS });
    expect(got.spec?.holderIdentity).toBe('pod-0');
    expect(got.spec?.leaseDurationSeconds).toBe(15);
    const dup = await failure(b.createNamespacedLease({ namespace: NS, body: lease('l1', 'pod-1') }));
    expect(dup.code).toBe(409);
    expect(dup.body).toMatchObject({
      kind: 'Status',
      status: 'Failure',
      reason: 'AlreadyExists',
      message: 'leases.coordination.k8s.io "l1" already exists',
      details: { name: 'l1', group: 'coordination.k8s.io', kind: 'leases' },
      code: 409,
    });
    await a.deleteNamespacedLease({ name: 'l1', namespace: NS });
    const gone = await failure(a.readNamespacedLease({ name: 'l1', namespace: NS }));
    expect(gone.code).toBe(404);
    expect(gone.body).toMatchObject({
      reason: 'NotFound',
      message: 'leases.coordination.k8s.io "l1" not found',
    });
    // The core group has no leases; the path must name the group.
    expect(api.requests.every((r) => r.path.startsWith('/apis/coordination.k8s.io/v1/'))).toBe(true);
  });

  it('MicroTime: six fraction digits or 400; stored and returned in UTC; null clears', async () => {
    expect(parseMicroTime('2026-12-06T23:42:50.123456+01:00')).toBe('2026-12-06T22:42:50.123456Z');
    expect(parseMicroTime('2026-12-06T23:42:50.123Z')).toBeUndefined();
    expect(parseMicroTime('2026-12-06T23:42:50Z')).toBeUndefined();
    // A Date serializes as toISOString(): milliseconds, which the apiserver's MicroTime rejects.
    const withDate: V1Lease = { metadata: { name: 'l2' }, spec: { renewTime: new Date() } };
    const bad = await failure(a.createNamespacedLease({ namespace: NS, body: withDate }));
    expect(bad.code).toBe(400);
    expect(bad.body).toMatchObject({
      reason: 'BadRequest',
      message: expect.stringMatching(
        /^Lease in version "v1" cannot be handled as a Lease: parsing time ".*" as "2006-01-02T15:04:05.000000Z07:00"/,
      ),
    });
    const body = lease('l2', 'pod-0');
    (body.spec as Record<string, unknown>).renewTime = '2026-12-06T23:42:50.123456+01:00';
    const created = await a.createNamespacedLease({ namespace: NS, body });
    // The client leaves MicroTime as the string the server sent.
    expect(created.spec?.renewTime).toBe('2026-12-06T22:42:50.123456Z');
    const cleared = await a.patchNamespacedLease(
      { name: 'l2', namespace: NS, body: { spec: { renewTime: null, holderIdentity: null } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    expect(cleared.spec?.renewTime).toBeUndefined();
    expect(cleared.spec?.holderIdentity).toBeUndefined();
    const patchBad = await failure(
      a.patchNamespacedLease(
        { name: 'l2', namespace: NS, body: { spec: { renewTime: new Date().toISOString() } } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      ),
    );
    expect(patchBad.code).toBe(422);
    const zero = await failure(
      a.patchNamespacedLease(
        { name: 'l2', namespace: NS, body: { spec: { leaseDurationSeconds: 0 } } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      ),
    );
    expect(zero.code).toBe(422);
    expect(zero.body).toMatchObject({
      reason: 'Invalid',
      message:
        'Lease.coordination.k8s.io "l2" is invalid: spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0',
      details: { causes: [{ field: 'spec.leaseDurationSeconds', reason: 'FieldValueInvalid' }] },
    });
  });

  it('update: the current resourceVersion wins, a stale one is 409 Conflict, none is 422', async () => {
    await a.createNamespacedLease({ namespace: NS, body: lease('l3', '') });
    // Both replicas read the same version and try to take it: exactly one succeeds.
    const [ra, rb] = await Promise.all([
      a.readNamespacedLease({ name: 'l3', namespace: NS }),
      b.readNamespacedLease({ name: 'l3', namespace: NS }),
    ]);
    expect(ra.metadata?.resourceVersion).toBe(rb.metadata?.resourceVersion);
    const take = (api2: CoordinationV1Api, l: V1Lease, who: string) => {
      const next = structuredClone(l);
      if (next.spec) next.spec.holderIdentity = who;
      return api2.replaceNamespacedLease({ name: 'l3', namespace: NS, body: next });
    };
    const results = await Promise.allSettled([take(a, ra, 'pod-0'), take(b, rb, 'pod-1')]);
    const won = results.filter((r) => r.status === 'fulfilled');
    const lost = results.filter((r) => r.status === 'rejected');
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(1);
    const conflict = status((lost[0] as PromiseRejectedResult).reason);
    expect(conflict.code).toBe(409);
    expect(conflict.body).toEqual({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message:
        'Operation cannot be fulfilled on leases.coordination.k8s.io "l3": the object has been modified; please apply your changes to the latest version and try again',
      reason: 'Conflict',
      details: { name: 'l3', group: 'coordination.k8s.io', kind: 'leases' },
      code: 409,
    });
    const winner = (won[0] as PromiseFulfilledResult<V1Lease>).value;
    expect(Number(winner.metadata?.resourceVersion)).toBeGreaterThan(Number(ra.metadata?.resourceVersion));
    expect(api.get('leases', NS, 'l3')?.spec).toMatchObject({ holderIdentity: winner.spec?.holderIdentity });
    // Lease's strategy allows no unconditional update.
    const noRv = structuredClone(winner);
    delete noRv.metadata?.resourceVersion;
    const unconditional = await failure(a.replaceNamespacedLease({ name: 'l3', namespace: NS, body: noRv }));
    expect(unconditional.code).toBe(422);
    expect(unconditional.body).toMatchObject({
      reason: 'Invalid',
      message:
        'leases.coordination.k8s.io "l3" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update',
    });
    // A merge patch naming a stale resourceVersion is a conflict too; without one it applies.
    const stalePatch = await failure(
      a.patchNamespacedLease(
        { name: 'l3', namespace: NS, body: { metadata: { resourceVersion: ra.metadata?.resourceVersion } } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      ),
    );
    expect(stalePatch.code).toBe(409);
    // Replacing a lease that does not exist is 404 (no create on update).
    const missing = await failure(
      a.replaceNamespacedLease({
        name: 'nope',
        namespace: NS,
        body: { ...winner, metadata: { name: 'nope', resourceVersion: '1' } },
      }),
    );
    expect(missing.code).toBe(404);
  });

  it('a watch on one lease sees the holder change', async () => {
    await a.createNamespacedLease({ namespace: NS, body: lease('l4', 'pod-0') });
    const seen: string[] = [];
    const w = new Watch(api.kubeConfig());
    const ctl = await w.watch(
      `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases`,
      { fieldSelector: 'metadata.name=l4' },
      (type, obj: V1Lease) => seen.push(`${type} ${obj.spec?.holderIdentity}`),
      () => undefined,
    );
    try {
      await waitUntil(() => seen.length === 1);
      api.update('leases', NS, 'l4', (o) => {
        (o.spec as Record<string, unknown>).holderIdentity = 'pod-1';
      });
      await waitUntil(() => seen.length === 2);
      expect(seen).toEqual(['ADDED pod-0', 'MODIFIED pod-1']);
    } finally {
      ctl.abort();
    }
  });
});

async function waitUntil(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Settles within ms? 'pending' if not. */
async function within<T>(p: Promise<T>, ms: number): Promise<'pending' | PromiseSettledResult<T>> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'pending'>((r) => {
    timer = setTimeout(() => r('pending'), ms);
  });
  const settled = Promise.allSettled([p]).then((r) => r[0] as PromiseSettledResult<T>);
  try {
    return await Promise.race([settled, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function errorText(r: 'pending' | PromiseSettledResult<unknown>): string {
  if (r === 'pending' || r.status === 'fulfilled') return String(r === 'pending' ? r : 'fulfilled');
  const e = r.reason as { code?: string; message?: string; cause?: { code?: string } };
  return `${e.code ?? e.cause?.code ?? ''} ${e.message ?? ''}`;
}

describe('FakeKubeApiServer fault injection', () => {
  let api: FakeKubeApiServer;
  let a: CoordinationV1Api;
  let b: CoordinationV1Api;
  beforeAll(async () => {
    api = await FakeKubeApiServer.start();
    // Two replicas with the same ServiceAccount token on two nodes: told apart by the listener.
    a = api.kubeConfig(api.token, await api.listen('node-a')).makeApiClient(CoordinationV1Api);
    b = api.kubeConfig(api.token, await api.listen('node-b')).makeApiClient(CoordinationV1Api);
    api.create('leases', { metadata: { name: 'l', namespace: NS }, spec: { holderIdentity: 'x' } });
  });
  afterEach(async () => {
    await api.heal();
    api.setFailureRatio(0);
  });
  afterAll(async () => {
    await api.stop();
  });

  const read = (c: CoordinationV1Api) => c.readNamespacedLease({ name: 'l', namespace: NS });

  it("'hang': the client's requests are never answered while the other's are; healing resets them", async () => {
    const heal = await api.cut('node-a', 'hang');
    const pending = read(a);
    expect(await within(pending, 300)).toBe('pending');
    expect((await read(b)).spec?.holderIdentity).toBe('x');
    expect(api.requestsOf('node-a').at(-1)).toMatchObject({ fault: 'hung', status: 0 });
    await heal();
    const after = await within(pending, 2000);
    expect(after).not.toBe('pending');
    expect(after).toMatchObject({ status: 'rejected' });
    expect((await read(a)).spec?.holderIdentity).toBe('x');
  });

  it("'hang' freezes the client's open watch; other clients' watches go on", async () => {
    const events = { a: 0, b: 0 };
    const watch = (kcUrl: string, k: 'a' | 'b') =>
      new Watch(api.kubeConfig(api.token, kcUrl)).watch(
        `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases`,
        {},
        () => {
          events[k]++;
        },
        () => undefined,
      );
    const wa = await watch(api.listenerUrl('node-a'), 'a');
    const wb = await watch(api.listenerUrl('node-b'), 'b');
    try {
      await waitUntil(() => events.a === 1 && events.b === 1);
      await api.cut('node-a', 'hang');
      api.update('leases', NS, 'l', (o) => {
        (o.spec as Record<string, unknown>).holderIdentity = 'y';
      });
      await waitUntil(() => events.b === 2);
      expect(events.a).toBe(1);
    } finally {
      wa.abort();
      wb.abort();
    }
  });

  it("'refuse': the client's listener refuses connections until healed", async () => {
    const heal = await api.cut('node-b', 'refuse');
    const r = await within(read(b), 5000);
    expect(errorText(r)).toMatch(/ECONNREFUSED/);
    expect((await read(a)).spec?.holderIdentity).toBeDefined();
    await heal();
    expect((await read(b)).spec?.holderIdentity).toBeDefined();
  });

  it("'reset' by predicate: only matching requests' connections are reset", async () => {
    await api.cut((r) => r.client === 'node-a' && r.method === 'PUT', 'reset');
    const cur = await read(a);
    const r = await within(a.replaceNamespacedLease({ name: 'l', namespace: NS, body: cur }), 5000);
    expect(errorText(r)).toMatch(/ECONNRESET|socket hang up|other side closed|terminated/i);
    expect(api.requestsOf('node-a').at(-1)).toMatchObject({ method: 'PUT', fault: 'reset' });
    expect(await b.replaceNamespacedLease({ name: 'l', namespace: NS, body: cur })).toBeDefined();
  });

  it('a failure ratio of 30%: about 30% of requests fail (500 or reset), the rest are answered', async () => {
    let seed = 42;
    const random = () => {
      // mulberry32
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    api.setFailureRatio(0.3, { match: 'node-a', random });
    const before = api.requests.length;
    let ok = 0;
    let http500 = 0;
    let reset = 0;
    for (let i = 0; i < 200; i++) {
      try {
        await read(a);
        ok++;
      } catch (e) {
        if (e instanceof ApiException) {
          expect(e.code).toBe(500);
          http500++;
        } else reset++;
      }
    }
    const faults = api.requests.slice(before).filter((r) => r.fault);
    expect(faults.length).toBe(http500 + reset);
    expect(http500 + reset).toBeGreaterThan(40);
    expect(http500 + reset).toBeLessThan(80);
    expect(http500).toBeGreaterThan(10);
    expect(reset).toBeGreaterThan(10);
    expect(ok).toBe(200 - http500 - reset);
    // Only node-a's requests.
    for (let i = 0; i < 20; i++) await read(b);
    api.setFailureRatio(0);
    for (let i = 0; i < 20; i++) await read(a);
  });
});
