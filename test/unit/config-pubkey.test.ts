// local.auth/remote.auth pubkey in the configuration: certificates and keys from files, the checks
// `ikegw config check` shows (key vs certificate, chain, expiry within 14 days), identities, mixed
// PSK/pubkey, and that the private key never shows in the config object or in messages.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ConfigResult, formatIdentity, loadConfig } from '../../src/daemon/config.js';
import { formatDn } from '../../src/ike/crypto/der.js';
import { IdType } from '../../src/ike/wire/constants.js';
import { type Issued, opensslAvailable, Pki } from '../helpers/pki.js';

const ok = opensslAvailable();
let dir: string;
let pki: Pki;
let gw: Issued;
let rsa: Issued;
let soon: Issued;
let chainFile: string;

beforeAll(() => {
  if (!ok) return;
  dir = mkdtempSync(join(tmpdir(), 'ikegw-cfg-pki-'));
  pki = new Pki(dir);
  gw = pki.issue({
    name: 'gw',
    keyType: 'p256',
    subject: 'C=CH, O=ikegw test, CN=gw.example',
    san: ['DNS:gw.example', 'IP:198.51.100.2'],
    issuer: pki.intermediate,
  });
  rsa = pki.issue({ name: 'rsa', keyType: 'rsa2048', subject: 'C=CH, O=ikegw test, CN=rsa.example' });
  soon = pki.issue({
    name: 'soon',
    keyType: 'p256',
    subject: 'C=CH, O=ikegw test, CN=soon.example',
    notAfter: new Date(Date.now() + 3 * 86400_000),
  });
  chainFile = join(dir, 'gw-chain.pem');
  writeFileSync(chainFile, readFileSync(gw.cert, 'latin1') + readFileSync(pki.intermediate.cert, 'latin1'));
}, 60_000);
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function yaml(local: string, remote: string, extra = ''): string {
  return `
connections:
  onprem:
    remote_addrs: [198.51.100.1]
    local: ${local}
    remote: ${remote}
${extra}
    children:
      net:
        local_ts: [10.10.0.0/16]
        remote_ts: [192.168.100.0/24]
`;
}
const load = (t: string): ConfigResult => loadConfig(t, {});
const errs = (r: ConfigResult): string[] => (r.ok ? [] : r.errors.map((e) => e.message));

describe.skipIf(!ok)('pubkey configuration', () => {
  it('loads certificates, key, CAs; the default local ID is the subject DN', () => {
    const r = load(
      yaml(
        `{ auth: pubkey, certs: [${chainFile}], key: ${gw.key} }`,
        `{ auth: pubkey, cacerts: [${pki.root.cert}], id: 'C=CH, O=ikegw test, CN=*' }`,
        '    send_cert: always',
      ),
    );
    expect(errs(r)).toEqual([]);
    if (!r.ok) return;
    const c = r.value.engine.connections[0]!;
    expect(c.localAuth).toBe('pubkey');
    expect(c.remoteAuth).toBe('pubkey');
    expect(c.sendCert).toBe('always');
    expect(c.localCerts).toHaveLength(2);
    expect(c.remoteCaCerts).toHaveLength(1);
    expect(c.localId?.type).toBe(IdType.DER_ASN1_DN);
    expect(formatDn(c.localId!.data)).toBe('C=CH, O=ikegw test, CN=gw.example');
    expect(formatIdentity(c.remoteId)).toBe('C=CH, O=ikegw test, CN=*');
    expect(c.psk.length).toBe(0);
    // the private key never shows
    const keyB64 = readFileSync(gw.key, 'latin1').split('\n').slice(1, 2).join('');
    const der = Buffer.from(c.localKey!).toString('base64');
    for (const shown of [
      inspect(r.value, { depth: 10 }),
      JSON.stringify(r.value, (_k, v) => (typeof v === 'bigint' ? `${v}` : v)),
    ]) {
      expect(shown).not.toContain(keyB64);
      expect(shown).not.toContain(der.slice(20, 60));
    }
  });

  it('local.id must be in the certificate: a SAN is used as given, anything else is refused', () => {
    const good = load(
      yaml(
        `{ auth: pubkey, certs: [${chainFile}], key: ${gw.key}, id: gw.example }`,
        `{ auth: psk }`,
        '    psk: { value: "a-long-enough-pre-shared-key" }',
      ),
    );
    expect(errs(good)).toEqual([]);
    if (good.ok) expect(formatIdentity(good.value.engine.connections[0]!.localId)).toBe('gw.example');
    const bad = load(
      yaml(
        `{ auth: pubkey, certs: [${chainFile}], key: ${gw.key}, id: other.example }`,
        `{ auth: psk }`,
        '    psk: { value: "a-long-enough-pre-shared-key" }',
      ),
    );
    expect(errs(bad)).toEqual([
      'connections.onprem.local.id: is not in our certificate (it has "C=CH, O=ikegw test, CN=gw.example", subjectAltName gw.example, 198.51.100.2); use the subject DN or a subjectAltName',
    ]);
  });

  it('mixed: our side pubkey, the peer PSK; the PSK is then required', () => {
    const r = load(yaml(`{ auth: pubkey, certs: [${gw.cert}], key: ${gw.key} }`, '{ auth: psk }'));
    expect(errs(r)).toEqual([
      'connections.onprem.psk: is required: { file: /path } or { env: VAR } or { value: ... }',
    ]);
  });

  it('config check: key not matching the certificate, stray certificates, expiry within 14 days', () => {
    const wrong = load(
      yaml(
        `{ auth: pubkey, certs: [${gw.cert}], key: ${rsa.key} }`,
        `{ auth: pubkey, cacerts: [${pki.root.cert}] }`,
      ),
    );
    expect(errs(wrong)).toEqual([
      'connections.onprem.local.key: the private key (RSA-2048) does not belong to certificate "C=CH, O=ikegw test, CN=gw.example" (ECDSA P-256)',
    ]);
    const stray = load(
      yaml(
        `{ auth: pubkey, certs: [${gw.cert}, ${rsa.cert}], key: ${gw.key} }`,
        `{ auth: pubkey, cacerts: [${pki.root.cert}] }`,
      ),
    );
    expect(errs(stray)[0]).toMatch(
      /local\.certs: certificate\(s\) "C=CH, O=ikegw test, CN=rsa.example" are not issuers in the chain of "C=CH, O=ikegw test, CN=gw.example".*the chain does not build/,
    );
    const s = load(
      yaml(
        `{ auth: pubkey, certs: [${soon.cert}], key: ${soon.key} }`,
        `{ auth: pubkey, cacerts: [${pki.root.cert}, ${gw.cert}] }`,
      ),
    );
    expect(s.ok).toBe(true);
    expect(s.warnings).toContainEqual(
      expect.stringMatching(
        /^connections\.onprem\.local\.certs: certificate "C=CH, O=ikegw test, CN=soon.example" expires on \d{4}-\d\d-\d\d \(in 3 days\)$/,
      ),
    );
    expect(s.warnings).toContain(
      'connections.onprem.remote.cacerts: "C=CH, O=ikegw test, CN=gw.example" is not a CA certificate',
    );
  });

  it('the key is a file, never inline; unreadable files name the field', () => {
    const inline = load(
      yaml(
        `{ auth: pubkey, certs: [${gw.cert}], key: "-----BEGIN PRIVATE KEY-----" }`,
        `{ auth: pubkey, cacerts: [${pki.root.cert}] }`,
      ),
    );
    expect(errs(inline)).toEqual([
      'connections.onprem.local.key: must be the path of the private key file (the key is never written in the configuration)',
    ]);
    const missing = load(
      yaml(
        `{ auth: pubkey, certs: [/nonexistent.pem], key: ${gw.key} }`,
        `{ auth: pubkey, cacerts: [${pki.root.cert}] }`,
      ),
    );
    expect(errs(missing)).toEqual([
      'connections.onprem.local.certs[0]: cannot read "/nonexistent.pem": ENOENT',
    ]);
    const notKey = load(
      yaml(
        `{ auth: pubkey, certs: [${gw.cert}], key: ${gw.cert} }`,
        `{ auth: pubkey, cacerts: [${pki.root.cert}] }`,
      ),
    );
    expect(errs(notKey)[0]).toMatch(/local\.key: ".*gw\.pem" does not hold a private key/);
  });
});
