// Certificate authentication's building blocks against certificates openssl makes: DER reading
// (subject, SPKI, SAN, keyUsage), DN text <-> DER, RFC 7427 and classic signatures for every key
// type, chain validation with each refusal's cause, identities against certificates.
import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  certParts,
  dnMatches,
  encodeDn,
  formatDn,
  KeyUsage,
  parseDn,
  parseDnString,
} from '../../../src/ike/crypto/der.js';
import {
  OUR_SIG_HASHES,
  SigHash,
  SignatureError,
  signAuth,
  verifyAuth,
} from '../../../src/ike/crypto/signature.js';
import { CertError, certHasId, certreqData, parseCert, verifyChain } from '../../../src/ike/crypto/x509.js';
import { AuthMethod, IdType } from '../../../src/ike/wire/constants.js';
import { type Issued, opensslAvailable, Pki } from '../../helpers/pki.js';

const ok = opensslAvailable();
let dir: string;
let pki: Pki;
const ee: Record<string, Issued> = {};

beforeAll(() => {
  if (!ok) return;
  dir = mkdtempSync(join(tmpdir(), 'ikegw-pki-'));
  pki = new Pki(dir);
  ee.rsa = pki.issue({
    name: 'rsa',
    keyType: 'rsa3072',
    subject: 'C=CH, O=ikegw test, CN=rsa.example',
    san: ['DNS:rsa.example', 'IP:192.0.2.1', 'email:vpn@rsa.example', 'IP:2001:db8::1'],
  });
  ee.p256 = pki.issue({
    name: 'p256',
    keyType: 'p256',
    subject: 'C=CH, O=ikegw test, CN=p256.example',
    san: ['DNS:p256.example'],
  });
  ee.p384 = pki.issue({
    name: 'p384',
    keyType: 'p384',
    subject: 'C=CH, O=ikegw test, CN=p384.example',
    issuer: pki.intermediate,
  });
  ee.ed = pki.issue({ name: 'ed', keyType: 'ed25519', subject: 'C=CH, O=ikegw test, CN=ed.example' });
}, 60_000);
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const key = (i: Issued) => createPrivateKey(readFileSync(i.key));
const octets = new TextEncoder().encode('RealMessage1 | NonceRData | MACedIDForI');

describe.skipIf(!ok)('DER', () => {
  it('reads subject, SPKI, SANs and keyUsage as X509Certificate sees them', () => {
    const parts = certParts(ee.rsa!.der);
    const x = new X509Certificate(ee.rsa!.der);
    expect(formatDn(parts.subject)).toBe('C=CH, O=ikegw test, CN=rsa.example');
    expect(formatDn(parts.issuer)).toBe('C=CH, O=ikegw test, CN=ikegw Root CA');
    expect(Buffer.from(parts.spki)).toEqual(x.publicKey.export({ type: 'spki', format: 'der' }));
    expect(parts.san.dns).toEqual(['rsa.example']);
    expect(parts.san.email).toEqual(['vpn@rsa.example']);
    expect(parts.san.ip.map((b) => b.length)).toEqual([4, 16]);
    expect(parts.keyUsage).toBe(KeyUsage.digitalSignature);
    expect(certParts(pki.root.der).keyUsage! & KeyUsage.keyCertSign).toBeTruthy();
  });

  it('DN text -> DER -> text, and matching ignores string type and case; "*" matches any value', () => {
    const rdns = parseDnString('C=CH, O=ikegw test, CN=gw\\, one');
    expect(rdns.map((r) => r.oid)).toEqual(['2.5.4.6', '2.5.4.10', '2.5.4.3']);
    expect(formatDn(encodeDn(rdns))).toBe('C=CH, O=ikegw test, CN=gw\\, one');
    expect(parseDnString('/C=CH/O=x/CN=y')).toEqual(parseDnString('C=CH, O=x, CN=y'));
    // openssl writes UTF8String, we PrintableString: still the same name
    const fromCert = parseDn(certParts(ee.p256!.der).subject);
    expect(dnMatches(parseDnString('c=ch, o=IKEGW TEST, cn=p256.example'), fromCert)).toBe(true);
    expect(dnMatches(parseDnString('C=CH, O=ikegw test, CN=*'), fromCert)).toBe(true);
    expect(dnMatches(parseDnString('C=CH, CN=p256.example'), fromCert)).toBe(false);
    expect(() => parseDnString('C=CH, XX=1')).toThrow(/unknown DN attribute "XX"/);
    expect(() => parseDnString('C=CH, junk')).toThrow(/not an attribute=value/);
  });

  it('CERTREQ data is SHA-1 of each CA SubjectPublicKeyInfo', () => {
    const root = parseCert(pki.root.der);
    const spki = root.x509.publicKey.export({ type: 'spki', format: 'der' });
    expect(Buffer.from(certreqData([root]))).toEqual(createHash('sha1').update(spki).digest());
    expect(certreqData([root, parseCert(pki.intermediate.der)]).length).toBe(40);
  });
});

describe.skipIf(!ok)('signatures', () => {
  it.each([
    ['rsa', 'RFC 7427 sha256WithRSAEncryption'],
    ['p256', 'RFC 7427 ecdsa-with-sha256'],
    ['p384', 'RFC 7427 ecdsa-with-sha384'],
    ['ed', 'RFC 7427 Ed25519'],
  ])('RFC 7427 with %s signs and verifies (%s)', (name, scheme) => {
    const i = ee[name]!;
    const s = signAuth(key(i), octets, { peerHashes: OUR_SIG_HASHES });
    expect(s.method).toBe(AuthMethod.GENERIC_DIGITAL_SIGNATURE);
    expect(s.scheme).toBe(scheme);
    const pub = parseCert(i.der).x509.publicKey;
    expect(verifyAuth(pub, s.method, s.data, octets)).toBe(scheme);
    const tampered = Uint8Array.from(octets);
    tampered[0]! ^= 1;
    expect(() => verifyAuth(pub, s.method, s.data, tampered)).toThrow(/does not verify/);
  });

  it('RSASSA-PSS with explicit parameters, and hashes the peer did not announce', () => {
    const i = ee.rsa!;
    const pub = parseCert(i.der).x509.publicKey;
    const s = signAuth(key(i), octets, { peerHashes: [SigHash.SHA2_384], rsaPss: true });
    expect(s.scheme).toBe('RFC 7427 RSASSA-PSS sha384');
    expect(verifyAuth(pub, s.method, s.data, octets)).toBe('RFC 7427 RSASSA-PSS sha384');
    expect(() => verifyAuth(pub, s.method, s.data, octets, [SigHash.SHA2_256])).toThrow(/did not announce/);
    expect(() => signAuth(key(ee.ed!), octets, { peerHashes: [SigHash.SHA2_256] })).toThrow(/Identity/);
    expect(() => signAuth(key(i), octets, { peerHashes: [SigHash.SHA1] })).toThrow(
      /no common signature hash/,
    );
  });

  it.each([
    ['rsa', AuthMethod.RSA_SIG],
    ['p256', AuthMethod.ECDSA_256],
    ['p384', AuthMethod.ECDSA_384],
  ])('classic method for %s without RFC 7427 (%i)', (name, method) => {
    const i = ee[name]!;
    const s = signAuth(key(i), octets, { peerHashes: undefined });
    expect(s.method).toBe(method);
    expect(verifyAuth(parseCert(i.der).x509.publicKey, s.method, s.data, octets)).toMatch(/RSA_SIG|ECDSA_/);
  });

  it('Ed25519 needs RFC 7427; a signature by another key is bad-signature', () => {
    expect(() => signAuth(key(ee.ed!), octets, { peerHashes: undefined })).toThrow(/RFC 7427/);
    const s = signAuth(key(ee.p256!), octets, { peerHashes: OUR_SIG_HASHES });
    const other = parseCert(ee.p384!.der).x509.publicKey;
    try {
      verifyAuth(other, s.method, s.data, octets);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(SignatureError);
      expect((e as SignatureError).code).toBe('bad-signature');
    }
    // an RSA signature against an ECDSA certificate
    const r = signAuth(key(ee.rsa!), octets, { peerHashes: OUR_SIG_HASHES });
    expect(() => verifyAuth(other, r.method, r.data, octets)).toThrow(/certificate holds a ecdsa-384 key/);
  });
});

describe.skipIf(!ok)('chains and identities', () => {
  const now = () => Date.now();
  const cause = (f: () => unknown): string => {
    try {
      f();
    } catch (e) {
      if (e instanceof CertError) return `${e.code}: ${e.message}`;
      throw e;
    }
    return 'ok';
  };

  it('end entity -> intermediate -> root; the intermediate must be sent', () => {
    const c = parseCert(ee.p384!.der);
    const im = parseCert(pki.intermediate.der);
    const root = parseCert(pki.root.der);
    expect(verifyChain(c, [im], [root], now()).map((x) => x.subject)).toEqual([
      'C=CH, O=ikegw test, CN=p384.example',
      'C=CH, O=ikegw test, CN=ikegw Intermediate CA',
      'C=CH, O=ikegw test, CN=ikegw Root CA',
    ]);
    expect(cause(() => verifyChain(c, [], [root], now()))).toMatch(/^untrusted-ca: no trusted CA for/);
    // trusting the intermediate alone is enough
    expect(verifyChain(c, [], [im], now())).toHaveLength(2);
  });

  it('a peer certificate in a new array each IKE_AUTH is parsed and its chain checked once; a look-alike signed by another key is still refused', () => {
    const root = parseCert(pki.root.der);
    const fresh = (d: Uint8Array) => new Uint8Array(d); // as a CERT payload delivers it
    const verify = vi.spyOn(X509Certificate.prototype, 'verify');
    try {
      const first = parseCert(fresh(ee.p384!.der));
      expect(parseCert(fresh(ee.p384!.der))).toBe(first);
      verifyChain(first, [parseCert(fresh(pki.intermediate.der))], [root], now());
      const calls = verify.mock.calls.length;
      for (let i = 0; i < 3; i++)
        verifyChain(parseCert(fresh(ee.p384!.der)), [parseCert(fresh(pki.intermediate.der))], [root], now());
      expect(verify.mock.calls.length).toBe(calls);
    } finally {
      verify.mockRestore();
    }
    // another PKI with the same CA names and other keys: names match, signatures do not
    const dir2 = mkdtempSync(join(tmpdir(), 'ikegw-pki2-'));
    try {
      const other = new Pki(dir2);
      const lookAlike = other.issue({
        name: 'p384',
        keyType: 'p384',
        subject: 'C=CH, O=ikegw test, CN=p384.example',
      });
      expect(cause(() => verifyChain(parseCert(lookAlike.der), [], [root], now()))).toMatch(
        /^untrusted-ca: .*is not signed by the key of "C=CH, O=ikegw test, CN=ikegw Root CA"/,
      );
    } finally {
      rmSync(dir2, { recursive: true, force: true });
    }
  });

  it('refusals name their cause: untrusted-ca, expired, not-yet-valid, not-a-ca, key-usage', () => {
    const root = parseCert(pki.root.der);
    expect(
      cause(() => verifyChain(parseCert(ee.p256!.der), [], [parseCert(pki.otherRoot.der)], now())),
    ).toMatch(/^untrusted-ca: .*trusted: "C=CH, O=somebody else, CN=Other Root CA"/);
    const expired = pki.issue({
      name: 'expired',
      keyType: 'p256',
      subject: 'C=CH, O=ikegw test, CN=expired.example',
      notBefore: new Date('2020-01-01T00:00:00Z'),
      notAfter: new Date('2021-01-01T00:00:00Z'),
    });
    expect(cause(() => verifyChain(parseCert(expired.der), [], [root], now()))).toBe(
      'expired: the peer certificate "C=CH, O=ikegw test, CN=expired.example" expired on 2021-01-01T00:00:00Z',
    );
    const future = pki.issue({
      name: 'future',
      keyType: 'p256',
      subject: 'C=CH, O=ikegw test, CN=future.example',
      notBefore: new Date(now() + 86400_000 * 10),
    });
    expect(cause(() => verifyChain(parseCert(future.der), [], [root], now()))).toMatch(/^not-yet-valid:/);
    // an end entity that issues another certificate is no CA
    const fakeCa = pki.issue({
      name: 'fake-ca',
      keyType: 'p256',
      subject: 'C=CH, O=ikegw test, CN=fake CA',
      keyUsage: 'digitalSignature,keyCertSign',
    });
    const under = pki.issue({
      name: 'under',
      keyType: 'p256',
      subject: 'C=CH, O=ikegw test, CN=under',
      issuer: fakeCa,
    });
    expect(cause(() => verifyChain(parseCert(under.der), [parseCert(fakeCa.der)], [root], now()))).toMatch(
      /^not-a-ca:/,
    );
    const noSig = pki.issue({
      name: 'nosig',
      keyType: 'p256',
      subject: 'C=CH, O=ikegw test, CN=nosig',
      keyUsage: 'keyEncipherment',
    });
    expect(cause(() => verifyChain(parseCert(noSig.der), [], [root], now()))).toMatch(
      /^key-usage: .*digitalSignature/,
    );
  });

  it('identities: subject DN and subjectAltNames (FQDN, IPv4, IPv6, email), never the CN as FQDN', () => {
    const c = parseCert(ee.rsa!.der);
    const t = (s: string) => new TextEncoder().encode(s);
    expect(
      certHasId(c, IdType.DER_ASN1_DN, encodeDn(parseDnString('C=CH, O=ikegw test, CN=rsa.example'))),
    ).toBe(true);
    expect(certHasId(c, IdType.DER_ASN1_DN, encodeDn(parseDnString('C=CH, O=ikegw test, CN=other')))).toBe(
      false,
    );
    expect(certHasId(c, IdType.FQDN, t('RSA.example'))).toBe(true);
    expect(certHasId(c, IdType.FQDN, t('other.example'))).toBe(false);
    expect(certHasId(c, IdType.IPV4_ADDR, Uint8Array.of(192, 0, 2, 1))).toBe(true);
    expect(certHasId(c, IdType.IPV4_ADDR, Uint8Array.of(192, 0, 2, 2))).toBe(false);
    const v6 = new Uint8Array(16);
    v6.set([0x20, 0x01, 0x0d, 0xb8]);
    v6[15] = 1;
    expect(certHasId(c, IdType.IPV6_ADDR, v6)).toBe(true);
    expect(certHasId(c, IdType.RFC822_ADDR, t('vpn@rsa.example'))).toBe(true);
    expect(certHasId(parseCert(ee.ed!.der), IdType.FQDN, t('ed.example'))).toBe(false);
  });
});
