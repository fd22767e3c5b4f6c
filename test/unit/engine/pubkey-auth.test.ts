// IKE_AUTH with certificates between two engines in memory: RFC 7427 with each key type, PSK and
// pubkey mixed per direction, send_cert, intermediates in CERT, and each refusal with its cause on the verifying side.
import { createPrivateKey } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Metrics } from '../../../src/daemon/metrics.js';
import { MemoryInstaller } from '../../../src/esp/memory-installer.js';
import type { ConnectionConfig, IdConfig } from '../../../src/ike/config.js';
import { certParts } from '../../../src/ike/crypto/der.js';
import { IdType, Notify } from '../../../src/ike/wire/constants.js';
import { childConfig, connection, EnginePair, engineConfig } from '../../helpers/engine-pair.js';
import { type Issued, type KeyType, opensslAvailable, Pki } from '../../helpers/pki.js';

const ok = opensslAvailable();
const A = '198.51.100.2';
const B = '198.51.100.1';
let dir: string;
let pki: Pki;
const certs: Record<string, Issued> = {};
/** The root's CRL (DER), listing certs.revoked. */
let rootCrl: Uint8Array;

beforeAll(() => {
  if (!ok) return;
  dir = mkdtempSync(join(tmpdir(), 'ikegw-engine-pki-'));
  pki = new Pki(dir);
  const mk = (name: string, keyType: KeyType, issuer = pki.root) =>
    (certs[name] = pki.issue({
      name,
      keyType,
      subject: `C=CH, O=ikegw test, CN=${name}.example`,
      san: [`DNS:${name}.example`],
      issuer,
    }));
  mk('rsa', 'rsa2048');
  mk('p256', 'p256', pki.intermediate);
  mk('p384', 'p384');
  mk('ed', 'ed25519');
  certs.uris = pki.issue({
    name: 'uris',
    keyType: 'p256',
    subject: 'C=CH, O=ikegw test, CN=uris.example',
    ext: [
      'crlDistributionPoints=URI:http://crl.example/root.crl',
      'authorityInfoAccess=OCSP;URI:http://ocsp.example/',
    ],
  });
  mk('revoked', 'p256');
  pki.revoke(certs.revoked!);
  const pem = readFileSync(pki.crl(), 'latin1');
  rootCrl = new Uint8Array(Buffer.from(pem.split('-----')[2]!.replace(/\s+/g, ''), 'base64'));
}, 60_000);
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const pkcs8 = (i: Issued) =>
  new Uint8Array(createPrivateKey(readFileSync(i.key)).export({ format: 'der', type: 'pkcs8' }));
const dn = (i: Issued): IdConfig => ({ type: IdType.DER_ASN1_DN, data: certParts(i.der).subject });

function side(
  me: Issued | 'psk',
  peer: 'pubkey' | 'psk',
  over: Partial<ConnectionConfig> = {},
): Partial<ConnectionConfig> {
  const out: Partial<ConnectionConfig> = { ...over };
  if (me !== 'psk') {
    out.localAuth = 'pubkey';
    out.localCerts = me === certs.p256 ? [me.der, pki.intermediate.der] : [me.der];
    out.localKey = pkcs8(me);
    out.localId ??= dn(me);
  }
  if (peer === 'pubkey') {
    out.remoteAuth = 'pubkey';
    out.remoteCaCerts ??= [pki.root.der];
  }
  return out;
}

function pair(a: Partial<ConnectionConfig>, b: Partial<ConnectionConfig>) {
  const ca = connection({
    name: 'onprem',
    localAddrs: [A],
    remoteAddrs: [B],
    sendCert: 'ifasked',
    ...a,
    children: [childConfig({ name: 'cluster', localTs: ['10.10.0.0/16'], remoteTs: ['192.168.100.0/24'] })],
  });
  const cb = connection({
    name: 'cluster',
    localAddrs: [B],
    remoteAddrs: ['%any'],
    ...b,
    children: [childConfig({ name: 'net', localTs: ['192.168.100.0/24'], remoteTs: ['10.10.0.0/16'] })],
  });
  const p = new EnginePair(
    engineConfig([ca]),
    engineConfig([cb]),
    { a: A, b: B },
    { a: new MemoryInstaller(), b: new MemoryInstaller() },
  );
  p.clock.advance(Date.now()); // certificates are checked against the engine's time
  return p;
}

async function run(p: EnginePair) {
  p.feed(p.a, { kind: 'command', cmd: { cmd: 'initiate', conn: 'onprem' } });
  await p.settle();
  const summaries = (s: typeof p.a) =>
    p
      .of(s, 'message')
      .filter((m) => m.dir === 'out')
      .map((m) => `${m.exchange} ${m.summary}`);
  return { a: summaries(p.a), b: summaries(p.b) };
}

const established = (p: EnginePair) => {
  expect(p.a.engine.list()[0]?.state).toBe('ESTABLISHED');
  expect(p.b.engine.list()[0]?.state).toBe('ESTABLISHED');
  expect(p.a.engine.list()[0]?.children[0]?.state).toBe('INSTALLED');
};

describe.skipIf(!ok)('certificate authentication in memory', () => {
  it.each([
    ['p256', 'ed'],
    ['rsa', 'p384'],
    ['ed', 'rsa'],
  ])('RFC 7427 both ways: %s initiator, %s responder; DN identities; intermediate sent', async (ka, kb) => {
    const p = pair(side(certs[ka]!, 'pubkey'), side(certs[kb]!, 'pubkey'));
    const m = await run(p);
    established(p);
    expect(m.a[0]).toMatch(/IKE_SA_INIT .*N\(HASH_ALG\)/);
    expect(m.b[0]).toMatch(/IKE_SA_INIT .*CERTREQ.*N\(HASH_ALG\)/);
    // CERT only because the peer asked (CERTREQ); the intermediate goes with the p256 certificate
    const certCount = (s: string) => s.split('CERT ').length - 1;
    expect(m.a[1]).toMatch(/IKE_AUTH \[ IDi CERT/);
    expect(certCount(m.a[1]!)).toBe(ka === 'p256' ? 2 : 1);
    expect(m.a[1]).toContain('CERTREQ');
    expect(certCount(m.b[1]!)).toBe(kb === 'p256' ? 2 : 1);
    expect(p.a.engine.list()[0]?.remoteId).toBe(`"C=CH, O=ikegw test, CN=${kb}.example"`);
  });

  // Classic methods (no SIGNATURE_HASH_ALGORITHMS from the peer) are covered against strongSwan
  // with signature_authentication = no (test/interop) and in test/unit/crypto/pubkey.test.ts.
  it('mixed: PSK initiator, certificate responder (ECDSA P-384)', async () => {
    const p = pair(side('psk', 'pubkey'), side(certs.p384!, 'psk'));
    const m = await run(p);
    established(p);
    expect(m.a[0]).toContain('N(HASH_ALG)');
    expect(m.a[1]).not.toContain('CERT ');
    expect(m.b[1]).toMatch(/IDr CERT AUTH/);
  });

  it('mixed PSK/pubkey the other way round', async () => {
    const p = pair(side(certs.rsa!, 'psk'), side('psk', 'pubkey'));
    await run(p);
    established(p);
  });

  it('send_cert never: the peer cannot verify (no-cert); always: CERT without CERTREQ', async () => {
    const p = pair(side(certs.p384!, 'pubkey', { sendCert: 'never' }), side(certs.rsa!, 'pubkey'));
    await run(p);
    const f = p.of(p.b, 'failure')[0]!;
    expect(f.cause).toBe('no-cert');
    expect(p.of(p.a, 'failure')[0]?.cause).toBe('peer-rejected');
  });

  it.each([
    [
      'untrusted-ca',
      () =>
        pair(side(certs.p384!, 'pubkey'), side(certs.rsa!, 'pubkey', { remoteCaCerts: [pki.otherRoot.der] })),
    ],
    [
      'untrusted-ca (intermediate not sent, only the root trusted)',
      () => {
        const a = side(certs.p256!, 'pubkey');
        a.localCerts = [certs.p256!.der];
        return pair(a, side(certs.rsa!, 'pubkey'));
      },
    ],
    [
      'id-mismatch (remote.id)',
      () => pair(side(certs.p384!, 'pubkey'), side(certs.rsa!, 'pubkey', { remoteId: dn(certs.ed!) })),
    ],
    [
      'id-mismatch (ID not in the certificate)',
      () =>
        pair(
          side(certs.p384!, 'pubkey', {
            localId: { type: IdType.FQDN, data: new TextEncoder().encode('other.example') },
          }),
          side(certs.rsa!, 'pubkey'),
        ),
    ],
    [
      'bad-signature (key of another certificate)',
      () => {
        const a = side(certs.p384!, 'pubkey');
        a.localKey = pkcs8(certs.p256!);
        return pair(a, side(certs.rsa!, 'pubkey'));
      },
    ],
    [
      'revoked (its serial in the CRL of remote.crls)',
      () => pair(side(certs.revoked!, 'pubkey'), side(certs.rsa!, 'pubkey', { remoteCrls: [rootCrl] })),
    ],
    [
      'auth-method (PSK where a certificate is required)',
      () => pair(side('psk', 'psk'), side(certs.rsa!, 'pubkey')),
    ],
  ])('responder refuses: %s', async (what, mk) => {
    const p = mk();
    await run(p);
    const f = p.of(p.b, 'failure')[0]!;
    const cause = what.split(' ')[0]!;
    expect(f.reason).toBe('AUTHENTICATION_FAILED');
    expect(f.cause).toBe(cause);
    expect(f.detail).toContain(`AUTHENTICATION_FAILED (${cause}): `);
    expect(p.b.engine.list()).toEqual([]);
    expect(p.a.engine.list()).toEqual([]);
    // the responder's events as the daemon counts them: the cause is the metric's label
    const m = new Metrics({ config: engineConfig([]), processMetrics: false });
    for (const e of p.b.events) m.handle(e);
    expect((await m.render()).split('\n').filter((l) => l.startsWith('ikegw_failures_total{'))).toEqual([
      `ikegw_failures_total{conn="cluster",reason="AUTHENTICATION_FAILED",cause="${cause}"} 1`,
    ]);
  });

  it("the peer certificate's CRL distribution point and OCSP URIs are logged at debug, not fetched", async () => {
    const p = pair(side(certs.uris!, 'pubkey'), side(certs.rsa!, 'pubkey', { remoteCrls: [rootCrl] }));
    await run(p);
    established(p);
    const logs = p.of(p.b, 'log').filter((l) => l.msg.includes('not fetched'));
    expect(logs.map((l) => [l.level, l.msg])).toEqual([
      [
        'debug',
        'certificate "C=CH, O=ikegw test, CN=uris.example" names CRL distribution point(s) http://crl.example/root.crl; OCSP responder(s) http://ocsp.example/ — not fetched (ikegw checks the CRL files in remote.crls only)',
      ],
    ]);
  });

  it('a CRL added by reload: the established IKE_SA stays, the next authentication is refused (revoked)', async () => {
    const p = pair(side(certs.revoked!, 'pubkey'), side(certs.rsa!, 'pubkey'));
    await run(p);
    established(p);
    const cfg = p.b.engine.cfg;
    const next = { ...cfg, connections: cfg.connections.map((c) => ({ ...c, remoteCrls: [rootCrl] })) };
    p.feed(p.b, { kind: 'command', cmd: { cmd: 'reconfigure', config: next } });
    await p.settle();
    expect(p.of(p.b, 'log').map((l) => l.msg)).toContain('reload: connection cluster updated (remote.crls)');
    expect(p.b.engine.list()[0]?.state).toBe('ESTABLISHED');
    expect(p.of(p.b, 'failure')).toEqual([]);
    /* --> INFORMATIONAL { D } ; then a new IKE_SA_INIT + IKE_AUTH from A */
    p.feed(p.a, { kind: 'command', cmd: { cmd: 'terminate', conn: 'onprem' } });
    await p.settle();
    expect(p.b.engine.list()).toEqual([]);
    await run(p);
    const f = p.of(p.b, 'failure')[0]!;
    expect(f.cause).toBe('revoked');
    expect(f.detail).toMatch(
      /^AUTHENTICATION_FAILED \(revoked\): the peer certificate "C=CH, O=ikegw test, CN=revoked.example"/,
    );
    expect(p.b.engine.list()).toEqual([]);
  });

  it('initiator refuses the responder: expired certificate', async () => {
    const old = pki.issue({
      name: 'old',
      keyType: 'p256',
      subject: 'C=CH, O=ikegw test, CN=old.example',
      notBefore: new Date('2020-01-01T00:00:00Z'),
      notAfter: new Date('2021-01-01T00:00:00Z'),
    });
    const p = pair(side(certs.rsa!, 'pubkey'), side(old, 'pubkey'));
    await run(p);
    const f = p.of(p.a, 'failure')[0]!;
    expect(f.cause).toBe('expired');
    expect(f.detail).toContain('expired on 2021-01-01T00:00:00Z');
    expect(f.hint).toMatch(/renew/);
    expect(Notify.AUTHENTICATION_FAILED).toBe(24);
  });
});
