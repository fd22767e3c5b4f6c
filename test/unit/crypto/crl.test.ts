// CRLs (RFC 5280 §5): the DER reader (der.ts crlParts) on CRLs made by `openssl ca -gencrl` and on
// CRLs built here (GeneralizedTime, a nextUpdate in the past), the issuer's signature over
// tbsCertList (ECDSA, RSA, Ed25519), revocation in verifyChain (end entity, intermediate, stale
// CRL, a CRL that is not its CA's), malformed input (a clear error, never a crash), the CRL
// distribution point / OCSP URIs of a certificate, and remote.crls in the configuration.
import { createPrivateKey, sign } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DecodeError } from '../../../src/common/errors.js';
import { type ConfigResult, loadConfig } from '../../../src/daemon/config.js';
import { algorithmIdentifier, certParts, crlParts, formatDn, Tag, tlv } from '../../../src/ike/crypto/der.js';
import {
  CertError,
  crlSignatureProblem,
  parseCert,
  parseCrl,
  verifyChain,
} from '../../../src/ike/crypto/x509.js';
import { type Issued, opensslAvailable, Pki } from '../../helpers/pki.js';

const ok = opensslAvailable();
let dir: string;
let pki: Pki;
const ee: Record<string, Issued> = {};
const crlFile: Record<string, string> = {};

const pemDer = (file: string, label = 'X509 CRL'): Uint8Array => {
  const pem = readFileSync(file, 'latin1');
  const b64 = pem.split(`-----BEGIN ${label}-----`)[1]!.split('-----END')[0]!.replace(/\s+/g, '');
  return new Uint8Array(Buffer.from(b64, 'base64'));
};
const crlDer = (name: string) => pemDer(crlFile[name]!);
const cert = (i: Issued) => parseCert(i.der);

beforeAll(() => {
  if (!ok) return;
  dir = mkdtempSync(join(tmpdir(), 'ikegw-crl-'));
  pki = new Pki(dir);
  const mk = (name: string, o: Partial<Parameters<Pki['issue']>[0]> = {}) =>
    (ee[name] = pki.issue({ name, keyType: 'p256', subject: `C=CH, O=ikegw test, CN=${name}`, ...o }));
  mk('good');
  mk('bad');
  mk('sub-good', { issuer: pki.intermediate });
  mk('sub-bad', { issuer: pki.intermediate });
  mk('ca2', { ca: true });
  mk('under-ca2', { issuer: ee.ca2 });
  mk('rsa-ca', { ca: true, keyType: 'rsa2048' });
  mk('ed-ca', { ca: true, keyType: 'ed25519' });
  mk('uris', {
    ext: [
      'crlDistributionPoints=URI:http://crl.example/root.crl,URI:ldap://ldap.example/cn=root',
      'authorityInfoAccess=OCSP;URI:http://ocsp.example/,caIssuers;URI:http://ca.example/root.der',
    ],
  });
  pki.revoke(ee.bad!, 'keyCompromise');
  pki.revoke(ee.ca2!, 'cACompromise');
  pki.revoke(ee['sub-bad']!, 'superseded', pki.intermediate);
  crlFile.root = pki.crl();
  crlFile.intermediate = pki.crl(pki.intermediate);
  crlFile.rsa = pki.crl(ee['rsa-ca']);
  crlFile.ed = pki.crl(ee['ed-ca']);
}, 120_000);
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/**
 * A CRL built here (not by openssl): GeneralizedTime dates, any nextUpdate, signed with `key`
 * (ECDSA with SHA-256) as `issuer`.
 */
function buildCrl(o: {
  issuer: Issued;
  key?: string;
  thisUpdate: Date;
  nextUpdate?: Date;
  serials?: number[];
}): Uint8Array {
  const gt = (d: Date) =>
    tlv(Tag.GENERALIZED_TIME, Buffer.from(`${d.toISOString().replace(/[-:T]/g, '').slice(0, 14)}Z`));
  const alg = algorithmIdentifier('1.2.840.10045.4.3.2');
  const entries = (o.serials ?? []).map((s) =>
    tlv(Tag.SEQUENCE, tlv(Tag.INTEGER, Uint8Array.of(s)), gt(o.thisUpdate)),
  );
  const tbs = tlv(
    Tag.SEQUENCE,
    tlv(Tag.INTEGER, Uint8Array.of(1)),
    alg,
    certParts(o.issuer.der).subject,
    gt(o.thisUpdate),
    ...(o.nextUpdate ? [gt(o.nextUpdate)] : []),
    ...(entries.length ? [tlv(Tag.SEQUENCE, ...entries)] : []),
  );
  const sig = sign('sha256', tbs, createPrivateKey(readFileSync(o.key ?? o.issuer.key)));
  return tlv(Tag.SEQUENCE, tbs, alg, tlv(Tag.BIT_STRING, Uint8Array.of(0), sig));
}

const serialOf = (i: Issued) => certParts(i.der).serial;

describe.skipIf(!ok)('CRL reader', () => {
  it('reads an openssl CRL: issuer, this/next update, revoked serials with date and reason, CRL number', () => {
    const p = crlParts(crlDer('root'));
    expect(formatDn(p.issuer)).toBe('C=CH, O=ikegw test, CN=ikegw Root CA');
    expect(p.nextUpdate! - p.thisUpdate).toBe(24 * 3600_000);
    expect(Math.abs(p.thisUpdate - Date.now())).toBeLessThan(600_000);
    expect(p.revoked.map((r) => [r.serial, r.reason])).toEqual([
      [serialOf(ee.bad!), 1], // keyCompromise
      [serialOf(ee.ca2!), 2], // cACompromise
    ]);
    expect(Math.abs(p.revoked[0]!.date - Date.now())).toBeLessThan(600_000);
    expect(p.crlNumber).toMatch(/^[0-9a-f]+$/);
    expect(p.unknownCritical).toEqual([]);
    // each CA's CRL lists only what it issued
    expect(crlParts(crlDer('intermediate')).revoked.map((r) => r.serial)).toEqual([serialOf(ee['sub-bad']!)]);
    expect(crlParts(crlDer('rsa')).revoked).toEqual([]);
  });

  it('serial numbers compare as the certificate has them (X509Certificate agrees)', () => {
    const c = cert(ee.bad!);
    expect(c.parts.serial).toBe(c.x509.serialNumber.toLowerCase().replace(/^(00)+(?=.)/, ''));
  });

  it("verifies the issuer's signature: ECDSA, RSA, Ed25519; another key or a changed byte does not", () => {
    expect(crlSignatureProblem(parseCrl(crlDer('root')), cert(pki.root))).toBeUndefined();
    expect(crlSignatureProblem(parseCrl(crlDer('intermediate')), cert(pki.intermediate))).toBeUndefined();
    expect(crlSignatureProblem(parseCrl(crlDer('rsa')), cert(ee['rsa-ca']!))).toBeUndefined();
    expect(crlSignatureProblem(parseCrl(crlDer('ed')), cert(ee['ed-ca']!))).toBeUndefined();
    expect(crlSignatureProblem(parseCrl(crlDer('root')), cert(pki.otherRoot))).toMatch(
      /its issuer "C=CH, O=ikegw test, CN=ikegw Root CA" is not "C=CH, O=somebody else, CN=Other Root CA"/,
    );
    // the root's name, the intermediate's key
    const forged = buildCrl({ issuer: pki.root, key: pki.intermediate.key, thisUpdate: new Date() });
    expect(crlSignatureProblem(parseCrl(forged), cert(pki.root))).toMatch(
      /^the CRL ecdsa-with-sha256 signature does not verify with the public key of "C=CH, O=ikegw test, CN=ikegw Root CA"$/,
    );
    const flipped = new Uint8Array(crlDer('root'));
    flipped[flipped.length - 5]! ^= 1;
    expect(crlSignatureProblem(parseCrl(flipped), cert(pki.root))).toMatch(/does not verify/);
  });

  it('reads the CRL distribution point and OCSP URIs of a certificate (to log, not to fetch)', () => {
    const p = certParts(ee.uris!.der);
    expect(p.crlUris).toEqual(['http://crl.example/root.crl', 'ldap://ldap.example/cn=root']);
    expect(p.ocspUris).toEqual(['http://ocsp.example/']);
    expect(certParts(ee.good!.der).crlUris).toEqual([]);
  });

  it('malformed input is a DecodeError that says what is wrong, never another exception', () => {
    const good = crlDer('root');
    const cases: Array<[string, Uint8Array, RegExp]> = [
      ['empty', new Uint8Array(), /CertificateList expected/],
      ['a lone SEQUENCE tag', Uint8Array.of(0x30), /truncated header/],
      ['a certificate', ee.good!.der, /CertificateList has more than three elements|expected/],
      ['truncated', good.subarray(0, good.length - 10), /runs past its container/],
      ['a trailing byte', Uint8Array.from([...good, 0]), /trailing bytes after CertificateList/],
      ['text', new TextEncoder().encode('not a CRL at all'), /CertificateList expected/],
    ];
    // thisUpdate "yymmddhhmmssZ" with a letter in it
    const badTime = new Uint8Array(good);
    const at = Buffer.from(badTime).indexOf(Buffer.from([Tag.UTC_TIME, 13]));
    badTime[at + 4] = 0x78;
    cases.push(['a bad thisUpdate', badTime, /thisUpdate "\d\dx\d+Z" is not a valid time/]);
    for (const [what, der, re] of cases) {
      let err: unknown;
      try {
        crlParts(der);
      } catch (e) {
        err = e;
      }
      expect(err, what).toBeInstanceOf(DecodeError);
      expect((err as Error).message, what).toMatch(re);
      expect(() => parseCrl(der), what).toThrow(/^the CRL does not parse: DER: /);
    }
  });

  it('5000 seeded mutations of a CRL: each parses or is a DecodeError', () => {
    const good = crlDer('intermediate');
    let seed = 11;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    let refused = 0;
    for (let i = 0; i < 5000; i++) {
      const m = new Uint8Array(good);
      for (let k = 1 + rand(3); k > 0; k--) m[rand(m.length)] = rand(256);
      const cut = rand(4) === 0 ? m.subarray(0, rand(m.length)) : m;
      try {
        const c = parseCrl(cut);
        crlSignatureProblem(c, cert(pki.intermediate));
      } catch (e) {
        expect(e).toBeInstanceOf(Error);
        expect((e as Error).message).toMatch(/^the CRL does not parse: DER: /);
        refused++;
      }
    }
    expect(refused).toBeGreaterThan(1000);
  });
});

describe.skipIf(!ok)('revocation in verifyChain', () => {
  const now = () => Date.now();
  const crls = (...names: string[]) => names.map((n) => parseCrl(crlDer(n)));
  const refusal = (f: () => unknown): CertError => {
    try {
      f();
    } catch (e) {
      if (e instanceof CertError) return e;
      throw e;
    }
    throw new Error('no CertError');
  };

  it('a revoked end entity is refused (revoked), naming serial, CA, date and reason; others pass', () => {
    const e = refusal(() => verifyChain(cert(ee.bad!), [], [cert(pki.root)], now(), crls('root')));
    expect(e.code).toBe('revoked');
    expect(e.message).toMatch(
      new RegExp(
        `^the peer certificate "C=CH, O=ikegw test, CN=bad" \\(serial ${serialOf(ee.bad!)}\\) is revoked by the CRL of "C=CH, O=ikegw test, CN=ikegw Root CA" since \\d{4}-\\d\\d-\\d\\dT[\\d:]+Z \\(keyCompromise\\)$`,
      ),
    );
    expect(verifyChain(cert(ee.good!), [], [cert(pki.root)], now(), crls('root'))).toHaveLength(2);
    // without the CRL nothing is known: accepted
    expect(verifyChain(cert(ee.bad!), [], [cert(pki.root)], now())).toHaveLength(2);
  });

  it("an intermediate's CRL covers what it issued; a revoked intermediate is refused", () => {
    const im = cert(pki.intermediate);
    const all = crls('root', 'intermediate');
    const notes: string[] = [];
    expect(
      verifyChain(cert(ee['sub-good']!), [im], [cert(pki.root)], now(), all, (_l, m) => notes.push(m)),
    ).toHaveLength(3);
    expect(notes).toEqual([]);
    const e = refusal(() => verifyChain(cert(ee['sub-bad']!), [im], [cert(pki.root)], now(), all));
    expect(e.message).toMatch(/^the peer certificate "C=CH, O=ikegw test, CN=sub-bad" .* \(superseded\)$/);
    const e2 = refusal(() =>
      verifyChain(cert(ee['under-ca2']!), [cert(ee.ca2!)], [cert(pki.root)], now(), all),
    );
    expect(e2.code).toBe('revoked');
    expect(e2.message).toMatch(
      /^the intermediate CA certificate "C=CH, O=ikegw test, CN=ca2" .* \(cACompromise\)$/,
    );
  });

  it('a stale CRL (past nextUpdate) still applies, with a warning; no CRL for an issuer is a debug note', () => {
    const past = new Date(Date.now() - 48 * 3600_000);
    const stale = parseCrl(
      buildCrl({
        issuer: pki.root,
        thisUpdate: past,
        nextUpdate: new Date(Date.now() - 24 * 3600_000),
        serials: [Number.parseInt(serialOf(ee.bad!), 16)],
      }),
    );
    expect(stale.parts.revoked.map((r) => r.serial)).toEqual([serialOf(ee.bad!)]);
    expect(stale.parts.thisUpdate).toBe(Math.floor(past.getTime() / 1000) * 1000);
    const notes: Array<[string, string]> = [];
    const note = (l: string, m: string) => notes.push([l, m]);
    expect(refusal(() => verifyChain(cert(ee.bad!), [], [cert(pki.root)], now(), [stale], note)).code).toBe(
      'revoked',
    );
    expect(notes).toEqual([
      [
        'warn',
        expect.stringMatching(/^CRL of "C=CH, O=ikegw test, CN=ikegw Root CA" is stale \(nextUpdate /),
      ],
    ]);
    notes.length = 0;
    verifyChain(cert(ee['sub-good']!), [cert(pki.intermediate)], [cert(pki.root)], now(), [stale], note);
    expect(notes.map((n) => n[0])).toEqual(['debug', 'warn']);
    expect(notes[0]![1]).toBe(
      'no CRL of "C=CH, O=ikegw test, CN=ikegw Intermediate CA" for "C=CH, O=ikegw test, CN=sub-good": not checked',
    );
  });

  it("a CRL that does not verify with the issuer's key is ignored, with a warning", () => {
    const forged = parseCrl(
      buildCrl({
        issuer: pki.root,
        key: pki.otherRoot.key,
        thisUpdate: new Date(),
        serials: [Number.parseInt(serialOf(ee.good!), 16)],
      }),
    );
    const notes: string[] = [];
    expect(
      verifyChain(cert(ee.good!), [], [cert(pki.root)], now(), [forged], (_l, m) => notes.push(m)),
    ).toHaveLength(2);
    expect(notes[0]).toMatch(
      /^CRL of "C=CH, O=ikegw test, CN=ikegw Root CA" ignored for "C=CH, O=ikegw test, CN=good": the CRL ecdsa-with-sha256 signature does not verify/,
    );
  });
});

describe.skipIf(!ok)('remote.crls in the configuration', () => {
  const yaml = (remote: string) => `
connections:
  onprem:
    remote_addrs: [198.51.100.1]
    local: { auth: psk }
    psk: { value: "0123456789abcdef0123" }
    remote: ${remote}
    children:
      net:
        local_ts: [10.10.0.0/16]
        remote_ts: [192.168.100.0/24]
`;
  const load = (remote: string): ConfigResult => loadConfig(yaml(remote), {});
  const errs = (r: ConfigResult): string[] => (r.ok ? [] : r.errors.map((e) => e.message));
  const file = (name: string, data: string | Uint8Array) => {
    const f = join(dir, name);
    writeFileSync(f, data);
    return f;
  };

  it('loads CRL files (PEM, DER) and CRL blocks in a cacerts file', () => {
    const der = file('root.crl.der', crlDer('root'));
    const r = load(`{ auth: pubkey, cacerts: [${pki.root.cert}], crls: [${crlFile.root}, ${der}] }`);
    expect(errs(r)).toEqual([]);
    if (!r.ok) return;
    expect(r.value.engine.connections[0]!.remoteCrls).toHaveLength(2);
    expect(r.warnings).toEqual([]);
    const bundle = file(
      'bundle.pem',
      readFileSync(pki.root.cert, 'latin1') + readFileSync(crlFile.root!, 'latin1'),
    );
    const r2 = load(`{ auth: pubkey, cacerts: [${bundle}] }`);
    expect(errs(r2)).toEqual([]);
    if (r2.ok) expect(r2.value.engine.connections[0]!.remoteCrls).toHaveLength(1);
  });

  it('names the field and the file on errors', () => {
    const junk = file('junk.crl', 'no CRL here');
    const pemNoCrl = pki.root.cert;
    const bad = file('bad.crl', crlDer('root').subarray(0, 40));
    const forged = file(
      'forged.crl',
      buildCrl({ issuer: pki.root, key: pki.otherRoot.key, thisUpdate: new Date() }),
    );
    const r = load(
      `{ auth: pubkey, cacerts: [${pki.root.cert}], crls: [${junk}, ${pemNoCrl}, ${bad}, ${forged}, /nonexistent.crl] }`,
    );
    expect(errs(r)).toEqual([
      `connections.onprem.remote.crls[0]: "${junk}": the CRL does not parse (DER: CertificateList expected (tag 0x30))`,
      `connections.onprem.remote.crls[1]: "${pemNoCrl}" holds no PEM X509 CRL block`,
      `connections.onprem.remote.crls[2]: "${bad}": the CRL does not parse (DER: element runs past its container)`,
      expect.stringMatching(
        /^connections\.onprem\.remote\.crls\[3\]: the CRL of "C=CH, O=ikegw test, CN=ikegw Root CA": the CRL ecdsa-with-sha256 signature does not verify with the public key of "C=CH, O=ikegw test, CN=ikegw Root CA"$/,
      ),
      'connections.onprem.remote.crls[4]: cannot read "/nonexistent.crl": ENOENT',
    ]);
    expect(errs(load(`{ auth: psk, crls: [${crlFile.root}] }`))).toEqual([
      'connections.onprem.remote.crls: needs connections.onprem.remote.auth: pubkey',
    ]);
  });

  it("warns about a stale CRL and about one whose CA is not in remote.cacerts (an intermediate's)", () => {
    const stale = file(
      'stale.crl',
      buildCrl({
        issuer: pki.root,
        thisUpdate: new Date(Date.now() - 3600_000),
        nextUpdate: new Date(Date.now() - 60_000),
      }),
    );
    const r = load(
      `{ auth: pubkey, cacerts: [${pki.root.cert}], crls: [${stale}, ${crlFile.intermediate}] }`,
    );
    expect(errs(r)).toEqual([]);
    expect(r.ok && r.warnings).toEqual([
      expect.stringMatching(
        /^connections\.onprem\.remote\.crls\[0\]: the CRL of "C=CH, O=ikegw test, CN=ikegw Root CA" is stale \(nextUpdate .*\); it is applied anyway/,
      ),
      'connections.onprem.remote.crls[1]: the CRL of "C=CH, O=ikegw test, CN=ikegw Intermediate CA" names no CA in remote.cacerts; it applies when the peer sends that CA as an intermediate',
    ]);
  });
});
