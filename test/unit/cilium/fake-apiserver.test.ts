// The fake API server is the only cluster the operator tests see: check that it answers like a real
// one where the operator could tell the difference.
import { request } from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyJsonPatch } from '../../fakes/json-patch.js';
import { FakeKubeApiServer } from '../../fakes/kube-apiserver.js';

interface Res {
  status: number;
  body: unknown;
  text: string;
}

function call(
  api: FakeKubeApiServer,
  method: string,
  path: string,
  body?: unknown,
  contentType = 'application/json',
  token = api.token,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    const u = new URL(api.url + path);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = request(
      {
        host: u.hostname,
        port: u.port,
        path: u.pathname + u.search,
        method,
        ca: api.caPem,
        headers: { Authorization: `Bearer ${token}`, ...(payload ? { 'Content-Type': contentType } : {}) },
      },
      (res) => {
        let text = '';
        res.on('data', (c) => {
          text += c;
          if (u.searchParams.get('watch') === 'true' && text.includes('\n')) req.destroy();
        });
        const done = () => {
          let parsed: unknown;
          try {
            parsed = JSON.parse(text.split('\n')[0] ?? '');
          } catch {
            parsed = undefined;
          }
          resolve({ status: res.statusCode ?? 0, body: parsed, text });
        };
        res.on('end', done);
        res.on('close', done);
      },
    );
    req.on('error', (e) => (u.searchParams.get('watch') === 'true' ? undefined : reject(e)));
    if (payload) req.write(payload);
    req.end();
  });
}

describe('RFC 6902 (appendix A examples)', () => {
  it('applies and rejects like the RFC says', () => {
    expect(applyJsonPatch({ foo: 'bar' }, [{ op: 'add', path: '/baz', value: 'qux' }])).toEqual({
      foo: 'bar',
      baz: 'qux',
    });
    expect(applyJsonPatch({ foo: ['bar', 'baz'] }, [{ op: 'add', path: '/foo/1', value: 'qux' }])).toEqual({
      foo: ['bar', 'qux', 'baz'],
    });
    expect(applyJsonPatch({ foo: ['bar'] }, [{ op: 'add', path: '/foo/-', value: 'x' }])).toEqual({
      foo: ['bar', 'x'],
    });
    expect(applyJsonPatch({ baz: 'qux', foo: 'bar' }, [{ op: 'remove', path: '/baz' }])).toEqual({
      foo: 'bar',
    });
    expect(
      applyJsonPatch({ foo: { bar: 'baz', waldo: 'fred' }, qux: { corge: 'grault' } }, [
        { op: 'move', from: '/foo/waldo', path: '/qux/thud' },
      ]),
    ).toEqual({ foo: { bar: 'baz' }, qux: { corge: 'grault', thud: 'fred' } });
    const doc = { baz: 'qux', foo: ['a', 2, 'c'] };
    expect(
      applyJsonPatch(doc, [
        { op: 'test', path: '/baz', value: 'qux' },
        { op: 'test', path: '/foo/1', value: 2 },
      ]),
    ).toEqual(doc);
    expect(() => applyJsonPatch({ baz: 'qux' }, [{ op: 'test', path: '/baz', value: 'bar' }])).toThrow(
      /test failed/,
    );
    expect(() => applyJsonPatch({ foo: 'bar' }, [{ op: 'add', path: '/baz/bat', value: 'qux' }])).toThrow(
      /missing/,
    );
    expect(
      applyJsonPatch({ 'a/b': 1, 'm~n': 2 }, [
        { op: 'replace', path: '/a~1b', value: 3 },
        { op: 'remove', path: '/m~0n' },
      ]),
    ).toEqual({ 'a/b': 3 });
    // All or nothing.
    const orig = { a: 1 };
    expect(() =>
      applyJsonPatch(orig, [
        { op: 'replace', path: '/a', value: 2 },
        { op: 'test', path: '/a', value: 1 },
      ]),
    ).toThrow();
    expect(orig).toEqual({ a: 1 });
  });
});

describe('FakeKubeApiServer', () => {
  let api: FakeKubeApiServer;
  beforeAll(async () => {
    api = await FakeKubeApiServer.start();
    api.create('pods', { metadata: { name: 'p', namespace: 'ns' }, spec: {}, status: { podIP: '10.0.0.1' } });
    api.create('ciliumendpoints', {
      metadata: { name: 'p', namespace: 'ns' },
      status: { networking: { addressing: [{ ipv4: '10.0.0.1' }] } },
    });
  });
  afterAll(async () => {
    await api.stop();
  });

  it('401 without the bearer token, as a Status', async () => {
    const r = await call(api, 'GET', '/api/v1/namespaces/ns/pods/p', undefined, undefined, 'nope');
    expect(r.status).toBe(401);
    expect(r.body).toMatchObject({
      kind: 'Status',
      apiVersion: 'v1',
      status: 'Failure',
      reason: 'Unauthorized',
      code: 401,
    });
  });

  it('404 Status bodies name the resource like the real server', async () => {
    expect((await call(api, 'GET', '/api/v1/namespaces/ns/pods/x')).body).toMatchObject({
      reason: 'NotFound',
      message: 'pods "x" not found',
      code: 404,
      details: { name: 'x', kind: 'pods' },
    });
    expect((await call(api, 'GET', '/apis/cilium.io/v2/namespaces/ns/ciliumendpoints/x')).body).toMatchObject(
      {
        message: 'ciliumendpoints.cilium.io "x" not found',
        details: { group: 'cilium.io' },
      },
    );
  });

  it('LIST carries the store resourceVersion; writes bump it; a no-op patch does not', async () => {
    const l1 = await call(
      api,
      'GET',
      '/apis/cilium.io/v2/namespaces/ns/ciliumendpoints?fieldSelector=metadata.name%3Dp',
    );
    const rv1 = Number((l1.body as { metadata: { resourceVersion: string } }).metadata.resourceVersion);
    expect((l1.body as { items: unknown[] }).items).toHaveLength(1);
    const noop = await call(
      api,
      'PATCH',
      '/apis/cilium.io/v2/namespaces/ns/ciliumendpoints/p',
      [{ op: 'test', path: '/metadata/name', value: 'p' }],
      'application/json-patch+json',
    );
    expect(noop.status).toBe(200);
    expect(api.resourceVersion).toBe(rv1);
    const w = await call(
      api,
      'PATCH',
      '/apis/cilium.io/v2/namespaces/ns/ciliumendpoints/p',
      [{ op: 'add', path: '/metadata/labels', value: { a: 'b' } }],
      'application/json-patch+json',
    );
    expect(Number((w.body as { metadata: { resourceVersion: string } }).metadata.resourceVersion)).toBe(
      rv1 + 1,
    );
  });

  it('a failed test op is 422 Invalid with the cause', async () => {
    const r = await call(
      api,
      'PATCH',
      '/apis/cilium.io/v2/namespaces/ns/ciliumendpoints/p',
      [
        { op: 'test', path: '/status/networking/addressing', value: [] },
        { op: 'replace', path: '/status/networking/addressing', value: [] },
      ],
      'application/json-patch+json',
    );
    expect(r.status).toBe(422);
    expect(r.body).toMatchObject({
      reason: 'Invalid',
      code: 422,
      details: { causes: [{ message: expect.stringMatching(/test failed/) }] },
    });
  });

  it('no status subresource on CiliumEndpoint; pods have one; SMP is 415 for the CRD', async () => {
    expect(
      (
        await call(
          api,
          'PATCH',
          '/apis/cilium.io/v2/namespaces/ns/ciliumendpoints/p/status',
          {},
          'application/merge-patch+json',
        )
      ).status,
    ).toBe(404);
    expect(
      (
        await call(
          api,
          'PATCH',
          '/apis/cilium.io/v2/namespaces/ns/ciliumendpoints/p',
          {},
          'application/strategic-merge-patch+json',
        )
      ).status,
    ).toBe(415);
    await call(
      api,
      'PATCH',
      '/api/v1/namespaces/ns/pods/p',
      { status: { podIP: '9.9.9.9' } },
      'application/merge-patch+json',
    );
    expect(api.get('pods', 'ns', 'p')?.status).toEqual({ podIP: '10.0.0.1' });
    await call(
      api,
      'PATCH',
      '/api/v1/namespaces/ns/pods/p/status',
      { status: { podIP: '9.9.9.9' } },
      'application/merge-patch+json',
    );
    expect(api.get('pods', 'ns', 'p')?.status).toEqual({ podIP: '9.9.9.9' });
  });

  it('a stale resourceVersion in a patch is 409 Conflict', async () => {
    const r = await call(
      api,
      'PATCH',
      '/api/v1/namespaces/ns/pods/p',
      { metadata: { resourceVersion: '1' } },
      'application/merge-patch+json',
    );
    expect(r.status).toBe(409);
    expect(r.body).toMatchObject({
      reason: 'Conflict',
      message: expect.stringMatching(/the object has been modified/),
    });
  });

  it('watch from a compacted resourceVersion: 200 and an ERROR event with a 410 Expired Status', async () => {
    const old = api.resourceVersion;
    api.update('pods', 'ns', 'p', (o) => {
      o.metadata.labels = { x: String(Date.now()) };
    });
    const replay = await call(api, 'GET', `/api/v1/namespaces/ns/pods?watch=true&resourceVersion=${old}`);
    expect(replay.body).toMatchObject({ type: 'MODIFIED', object: { metadata: { name: 'p' } } });
    api.compact();
    const r = await call(api, 'GET', `/api/v1/namespaces/ns/pods?watch=true&resourceVersion=${old}`);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired' } });
  });
});
