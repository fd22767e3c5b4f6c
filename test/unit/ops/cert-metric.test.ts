// ikegw_certificate_not_after_seconds: one series per certificate of the running configuration
// (ours, intermediates, trusted CAs), read at scrape time, replaced when a reload brings a new one.
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Metrics } from '../../../src/daemon/metrics.js';
import type { EngineConfig } from '../../../src/ike/config.js';
import { type Issued, opensslAvailable, Pki } from '../../helpers/pki.js';
import { config, ONE_CONN } from './helpers.js';

const ok = opensslAvailable();
let dir: string;
let pki: Pki;
let gw1: Issued;
let gw2: Issued;

beforeAll(() => {
  if (!ok) return;
  dir = mkdtempSync(join(tmpdir(), 'ikegw-certmetric-'));
  pki = new Pki(dir);
  gw1 = pki.issue({
    name: 'gw1',
    keyType: 'p256',
    subject: 'C=CH, O=ikegw test, CN=gw.example',
    issuer: pki.intermediate,
  });
  gw2 = pki.issue({ name: 'gw2', keyType: 'p256', subject: 'C=CH, O=ikegw test, CN=gw.example' });
}, 60_000);
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const x = (g: Issued) => new X509Certificate(g.der);
const row = (which: string, g: Issued) =>
  `ikegw_certificate_not_after_seconds{conn="onprem",which="${which}",subject="${g.subject}",serial="${x(g).serialNumber}"} ${
    x(g).validToDate.getTime() / 1000
  }`;

function withCerts(local: Issued[], cas: Issued[]): EngineConfig {
  const engine = structuredClone(config(ONE_CONN).engine);
  const conn = engine.connections[0]!;
  conn.name = 'onprem';
  conn.localCerts = local.map((g) => g.der);
  conn.remoteCaCerts = cas.map((g) => g.der);
  return engine;
}

describe.skipIf(!ok)('ikegw_certificate_not_after_seconds', () => {
  it('one series per configured certificate; a new configuration replaces them', async () => {
    const m = new Metrics({ config: withCerts([gw1, pki.intermediate], [pki.root]), processMetrics: false });
    const lines = async () =>
      (await m.render()).split('\n').filter((l) => l.startsWith('ikegw_certificate_not_after_seconds{'));
    expect((await lines()).sort()).toEqual(
      [row('local', gw1), row('intermediate', pki.intermediate), row('cacert', pki.root)].sort(),
    );
    // rotated: gw2 (no intermediate); the old series are gone at the next scrape
    m.setConfig(withCerts([gw2], [pki.root]));
    expect((await lines()).sort()).toEqual([row('local', gw2), row('cacert', pki.root)].sort());
    // a PSK-only configuration has none
    m.setConfig(config(ONE_CONN).engine);
    expect(await lines()).toEqual([]);
  });
});
