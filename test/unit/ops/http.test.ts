// /healthz and /readyz: readiness follows config, sockets and start-up (trap policies), not the
// tunnel; it drops when start-up kernel work failed and while shutting down.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type OperatedDaemon, Operations } from '../../../src/daemon/control.js';
import { OpsServer, Readiness } from '../../../src/daemon/http.js';
import { createLogs } from '../../../src/daemon/log.js';
import type { BusEvent } from '../../../src/ike/events.js';
import { config, ONE_CONN } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'ikegw-http-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function fakeDaemon(kernelErrorsDuringStart: number) {
  const stats = {
    events: 0,
    eventErrors: 0,
    effectErrors: 0,
    kernelOps: 0,
    kernelErrors: 0,
    transportErrors: 0,
  };
  const d: OperatedDaemon = {
    stats,
    status: () => [],
    command: () => undefined,
    onBus: (_fn: (ev: BusEvent) => void) => () => undefined,
    idle: async () => {
      stats.kernelErrors += kernelErrorsDuringStart;
    },
  };
  return d;
}

async function ops(name: string) {
  const cfg = config(
    `${ONE_CONN}metrics: { listen: '127.0.0.1:0' }\ncontrol: { socket: ${join(dir, name, 'ikegw.sock')} }\n`,
  );
  const lines: string[] = [];
  const logs = createLogs({ format: 'json', destination: { write: (s: string) => lines.push(s) } });
  const o = await Operations.start({
    config: cfg,
    logs,
    version: 'test',
    load: () => ({ ok: false, fatal: 'x' }),
    processMetrics: false,
  });
  const url = /"listen":"([^"]+)"/.exec(lines.join(''))?.[1];
  return { o, base: `http://${url}` };
}

const ready = async (base: string) => {
  const r = await fetch(`${base}/readyz`);
  return {
    status: r.status,
    body: (await r.json()) as {
      ready: boolean;
      checks: Array<{ name: string; ok: boolean; detail: string }>;
    },
  };
};

describe('/readyz', () => {
  it('is not ready before the sockets are bound and start-up ran; ready after, without any tunnel', async () => {
    const { o, base } = await ops('a');
    try {
      let r = await ready(base);
      expect(r.status).toBe(503);
      expect(r.body.checks.map((c) => [c.name, c.ok])).toEqual([
        ['config', true],
        ['sockets', false],
        ['startup', false],
      ]);
      o.socketsBound({ port: 500, natPort: 4500 });
      o.attach(fakeDaemon(0), { querySa: () => Promise.reject(new Error('none')) });
      await o.startupDone();
      r = await ready(base);
      expect(r.status).toBe(200);
      expect(r.body.checks.find((c) => c.name === 'startup')?.detail).toBe(
        'trap policies installed for onprem/cluster',
      );
      expect(await (await fetch(`${base}/metrics`)).text()).toContain('ikegw_ready 1');
      // SIGTERM: out of the load balancer while the DELETEs go out
      o.shuttingDown();
      r = await ready(base);
      expect(r.status).toBe(503);
      expect(r.body.checks.at(-1)).toEqual({ name: 'shutdown', ok: false, detail: 'shutting down' });
    } finally {
      await o.close();
    }
  });

  it('stays unready when the trap policies could not be installed', async () => {
    const { o, base } = await ops('b');
    try {
      o.socketsBound({ port: 500, natPort: 4500 });
      o.attach(fakeDaemon(2), { querySa: () => Promise.reject(new Error('none')) });
      await o.startupDone();
      const r = await ready(base);
      expect(r.status).toBe(503);
      expect(r.body.checks.find((c) => c.name === 'startup')?.detail).toMatch(
        /^2 data-path operation\(s\) failed at start-up, so trap policies \(onprem\/cluster\) may be missing/,
      );
    } finally {
      await o.close();
    }
  });
});

describe('/healthz and the rest', () => {
  it('answers health, 404 and 405', async () => {
    const s = new OpsServer({ host: '127.0.0.1', port: 0, readiness: new Readiness() });
    const a = await s.start();
    const base = `http://127.0.0.1:${a.port}`;
    try {
      const h = await fetch(`${base}/healthz`);
      expect(h.status).toBe(200);
      expect(await h.json()).toMatchObject({ status: 'ok' });
      expect((await fetch(`${base}/metrics`)).status).toBe(404); // no metrics registry given
      expect((await fetch(`${base}/other`)).status).toBe(404);
      expect((await fetch(`${base}/healthz`, { method: 'POST' })).status).toBe(405);
    } finally {
      await s.close();
    }
  });

  it('refuses to start when the port is taken (the daemon then exits 1)', async () => {
    const a = new OpsServer({ host: '127.0.0.1', port: 0, readiness: new Readiness() });
    const { port } = await a.start();
    const b = new OpsServer({ host: '127.0.0.1', port, readiness: new Readiness() });
    await expect(b.start()).rejects.toThrow(/EADDRINUSE/);
    await a.close();
  });
});
