// import-swanctl with auth = pubkey: a swanctl directory as `swanctl --load-creds` reads it
// (x509/, x509ca/, private/, ecdsa/, rsa/), made with openssl (test/helpers/pki.ts). The converter
// must write what charon would use — our certificate and its intermediates, the private key that
// matches it, the CAs — as explicit files, and the result must load in ikegw's config loader.
import { execFileSync } from 'node:child_process';
import { createPrivateKey } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { convertSwanctl, type ImportResult, parseSwanctlConf } from '../../../src/cli/import-swanctl.js';
import { cliMain } from '../../../src/cli/main.js';
import { formatIdentity, loadConfig } from '../../../src/daemon/config.js';
import { type Issued, opensslAvailable, Pki } from '../../helpers/pki.js';

const haveOpenssl = opensslAvailable();

let root: string;
let pki: Pki;
let moon: Issued;
let rsaGw: Issued;
let other: Issued;

/** A fresh swanctl directory: x509/moonCert.pem, x509ca/{strongswanCert,intermediate}.pem, keys. */
function swanctlDir(name: string, keys: Record<string, string | Buffer>): string {
  const d = join(root, name);
  for (const sub of ['x509', 'x509ca', 'private', 'ecdsa', 'rsa', 'pkcs8'])
    mkdirSync(join(d, sub), { recursive: true });
  copyFileSync(moon.cert, join(d, 'x509', 'moonCert.pem'));
  copyFileSync(pki.root.cert, join(d, 'x509ca', 'strongswanCert.pem'));
  copyFileSync(pki.intermediate.cert, join(d, 'x509ca', 'intermediate.pem'));
  for (const [f, content] of Object.entries(keys)) writeFileSync(join(d, f), content, { mode: 0o600 });
  return d;
}

function convert(dir: string, text: string): ImportResult {
  const file = join(dir, 'swanctl.conf');
  writeFileSync(file, text);
  return convertSwanctl(parseSwanctlConf(text, { file }), {
    psk: { mode: 'inline' },
    source: 'swanctl.conf',
    swanctlDir: dir,
  });
}

const problems = (r: ImportResult) => r.errors.map((e) => `${e.where} ${e.path}: ${e.message}`);
const notes = (r: ImportResult) => r.warnings.map((e) => `${e.path}: ${e.message}`);

const CONN = (local: string, remote: string, extra = '') => `
connections {
  gw {
    remote_addrs = 192.0.2.1
${extra}
    local {
${local}
    }
    remote {
${remote}
    }
    children {
      net {
        local_ts = 10.1.0.0/16
        remote_ts = 10.2.0.0/16
      }
    }
  }
}
`;

describe.skipIf(!haveOpenssl)('import-swanctl: auth = pubkey', () => {
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'ikegw-import-certs-'));
    pki = new Pki(join(root, 'pki'));
    moon = pki.issue({
      name: 'moon',
      keyType: 'p256',
      subject: 'C=CH, O=ikegw test, CN=moon.example',
      san: ['DNS:moon.example'],
      issuer: pki.intermediate,
    });
    rsaGw = pki.issue({ name: 'rsagw', keyType: 'rsa2048', subject: 'C=CH, O=ikegw test, CN=rsa.example' });
    // a key that belongs to no certificate of the directory (searched first: "aaa")
    other = pki.issue({ name: 'other', keyType: 'p256', subject: 'C=CH, O=ikegw test, CN=other.example' });
  }, 60_000);
  afterAll(() => {
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('writes our certificate with its intermediate, the key that matches it, the CAs, IDs and send_cert', () => {
    const dir = swanctlDir('full', {
      'private/aaa-other.pem': readFileSync(other.key),
      'private/moonKey.pem': readFileSync(moon.key),
    });
    const r = convert(
      dir,
      CONN(
        '      auth = pubkey\n      certs = moonCert.pem\n      id = moon.example',
        '      auth = ecdsa-sha384\n      id = "C=CH, O=ikegw test, CN=sun.example"\n      cacerts = strongswanCert.pem',
        '    send_cert = always\n    send_certreq = no',
      ),
    );
    expect(problems(r)).toEqual([]);
    const conn = (parseYaml(r.yaml!) as { connections: { gw: Record<string, unknown> } }).connections.gw;
    expect(conn.local).toEqual({
      id: 'moon.example',
      auth: 'pubkey',
      certs: [join(dir, 'x509/moonCert.pem'), join(dir, 'x509ca/intermediate.pem')],
      key: join(dir, 'private/moonKey.pem'),
    });
    expect(conn.remote).toEqual({
      id: 'C=CH, O=ikegw test, CN=sun.example',
      auth: 'pubkey',
      cacerts: [join(dir, 'x509ca/strongswanCert.pem')],
    });
    expect(conn.send_cert).toBe('always');
    expect(conn.psk).toBeUndefined();
    expect(notes(r)).toEqual([
      'connections.gw.send_certreq: ignored: ikegw sends CERTREQ whenever remote.auth is pubkey',
      'connections.gw.remote.auth: "ecdsa-sha384" written as pubkey: ikegw accepts any signature the peer\'s certificate key makes, with the hash negotiated by RFC 7427 (no key type or hash constraint)',
    ]);
    // what could not be expressed is in the file too
    expect(r.yaml).toContain('# note: connections.gw.remote.auth: "ecdsa-sha384" written as pubkey');
    expect(r.certNotes).toEqual([
      `connections.gw.local.key: ${join(dir, 'private/moonKey.pem')} (the key of moonCert.pem)`,
      'connections.gw.local.certs: intermediate(s) from the CA directory after ours: intermediate.pem',
    ]);
    // the key itself is never in the YAML
    expect(r.yaml).not.toContain('PRIVATE KEY');
    const loaded = loadConfig(r.yaml!, {});
    expect(loaded.ok ? [] : loaded.errors.map((e) => e.message)).toEqual([]);
    if (loaded.ok) {
      const c = loaded.value.engine.connections[0]!;
      expect(c.localAuth).toBe('pubkey');
      expect(c.remoteAuth).toBe('pubkey');
      expect(c.localCerts).toHaveLength(2);
      expect(formatIdentity(c.localId)).toBe('moon.example');
    }
  });

  it('finds the key in ecdsa/ as SEC1 PEM, a cert-<name> { file } section, and mixed PSK/pubkey with every CA', () => {
    const sec1 = createPrivateKey(readFileSync(moon.key)).export({ format: 'pem', type: 'sec1' });
    const dir = swanctlDir('mixed', { 'ecdsa/moon.pem': sec1 });
    const r = convert(
      dir,
      `${CONN('      auth = psk', '      auth = pubkey')}
secrets {
  ike-1 { secret = a-long-enough-shared-secret-42 }
  private-moon { file = moon.pem
                 secret = "passphrase" }
}`,
    );
    expect(problems(r)).toEqual([]);
    expect(notes(r)).toContain(
      'secrets.private-moon: ignored: ikegw takes no key passphrases or tokens; local.key must be an unencrypted key file (protected by its mode)',
    );
    expect(r.yaml).not.toContain('passphrase"');
    const conn = (parseYaml(r.yaml!) as { connections: { gw: Record<string, unknown> } }).connections.gw;
    expect(conn.local).toBeUndefined();
    expect(conn.remote).toEqual({
      auth: 'pubkey',
      cacerts: [join(dir, 'x509ca/intermediate.pem'), join(dir, 'x509ca/strongswanCert.pem')],
    });
    expect(conn.psk).toEqual({ value: 'a-long-enough-shared-secret-42' });
    expect(notes(r)).toContain(
      `connections.gw.remote.cacerts: not set: strongSwan trusts every CA in ${dir}/x509ca/; all 2 written out (keep only the peer's CA)`,
    );
    expect(loadConfig(r.yaml!, {}).ok).toBe(true);

    const section = convert(
      dir,
      `${CONN('      auth = pubkey\n      cert-moon {\n        file = moonCert.pem\n      }', '      auth = psk')}
secrets { ike-1 { secret = a-long-enough-shared-secret-42 } }`,
    );
    expect(problems(section)).toEqual([]);
    const s = (parseYaml(section.yaml!) as { connections: { gw: { local: Record<string, unknown> } } })
      .connections.gw;
    expect(s.local.key).toBe(join(dir, 'ecdsa/moon.pem'));
    expect(loadConfig(section.yaml!, {}).ok).toBe(true);

    // certs not set: the only end-entity certificate of x509/ (charon would pick it by ID)
    const implicit = convert(dir, CONN('      auth = pubkey', '      auth = pubkey'));
    expect(problems(implicit)).toEqual([]);
    expect(notes(implicit)).toContain(
      `connections.gw.local.certs: not set: the only certificate in ${dir}/x509/, ${join(dir, 'x509/moonCert.pem')}, is used`,
    );
  });

  it('refuses what it cannot convert, naming the setting and the files', () => {
    const enc = join(root, 'moon-enc.pem');
    execFileSync('openssl', ['pkey', '-in', moon.key, '-aes256', '-passout', 'pass:secret', '-out', enc]);
    const encDir = swanctlDir('encrypted', {
      'private/moon-enc.pem': readFileSync(enc),
      'private/other.pem': readFileSync(other.key),
    });
    const r = convert(encDir, CONN('      auth = pubkey\n      certs = moonCert.pem', '      auth = pubkey'));
    expect(problems(r)).toEqual([
      `swanctl.conf:8 connections.gw.local.key: no unencrypted private key in private/, rsa/, ecdsa/, pkcs8/ of ${encDir} matches moonCert.pem; encrypted keys (ikegw needs the key unencrypted, protected by file mode): ${join(encDir, 'private/moon-enc.pem')} — decrypt the right one with \`openssl pkey -in FILE -out FILE.plain\` (mode 600) and rerun`,
    ]);

    const noKey = swanctlDir('nokey', { 'private/other.pem': readFileSync(other.key) });
    expect(
      problems(
        convert(noKey, CONN('      auth = pubkey\n      certs = moonCert.pem', '      auth = pubkey')),
      ),
    ).toEqual([
      `swanctl.conf:8 connections.gw.local.key: no private key in private/, rsa/, ecdsa/, pkcs8/ of ${noKey} matches moonCert.pem; set local.key in the YAML by hand (or pass --swanctl-dir)`,
    ]);

    // an RSA key in DER PKCS#1 (what `pki --gen` writes to rsa/): found, but ikegw cannot read it
    const der = createPrivateKey(readFileSync(rsaGw.key)).export({ format: 'der', type: 'pkcs1' });
    const derDir = swanctlDir('der', { 'rsa/rsagw.der': der });
    copyFileSync(rsaGw.cert, join(derDir, 'x509', 'rsaCert.pem'));
    const d = convert(derDir, CONN('      auth = pubkey\n      certs = rsaCert.pem', '      auth = pubkey'));
    expect(problems(d)).toEqual([
      `swanctl.conf:8 connections.gw.local.key: the private key of rsaCert.pem is ${join(derDir, 'rsa/rsagw.der')}, a DER rsa key ikegw cannot read (it takes PEM or PKCS#8 DER): convert it with \`openssl pkey -in ${join(derDir, 'rsa/rsagw.der')} -out ${join(derDir, 'rsa/rsagw.der')}.pem\` and rerun`,
    ]);

    const dir = swanctlDir('refusals', { 'private/moonKey.pem': readFileSync(moon.key) });
    const bad = convert(
      dir,
      CONN(
        '      auth = pubkey\n      certs = missing.pem\n      cert_policy = 1.3.6.1.5.5.7.3.1',
        '      auth = pubkey\n      certs = sunCert.pem\n      pubkeys = sun.pub\n      cacerts = /nowhere/ca.pem',
        '    send_cert = sometimes',
      ),
    );
    expect(problems(bad)).toEqual([
      'swanctl.conf:5 connections.gw.send_cert: "sometimes" is not one of always, ifasked, never',
      'swanctl.conf:9 connections.gw.local.cert_policy: cert_policy constraints are not supported (ikegw checks the chain to remote.cacerts and remote.id only)',
      `swanctl.conf:8 connections.gw.local.certs: ${join(dir, 'x509/missing.pem')} is missing or holds no certificate`,
      "swanctl.conf:13 connections.gw.remote.certs: pinning the peer's certificate is not supported: give the CA in remote.cacerts and the peer's identity in remote.id",
      'swanctl.conf:14 connections.gw.remote.pubkeys: raw public keys are not supported (certificates only)',
      'swanctl.conf:15 connections.gw.remote.cacerts: /nowhere/ca.pem is missing or holds no certificate',
    ]);
    expect(bad.yaml).toBeUndefined();
  });

  it('ikegw import-swanctl: --swanctl-dir defaults to the directory of the file; config check accepts the result', async () => {
    const dir = swanctlDir('cli', { 'private/moonKey.pem': readFileSync(moon.key) });
    const conf = join(dir, 'swanctl.conf');
    writeFileSync(
      conf,
      CONN(
        '      auth = pubkey\n      certs = moonCert.pem',
        '      auth = pubkey\n      cacerts = strongswanCert.pem',
      ),
    );
    const out = join(root, 'cli.yaml');
    const run = async (args: string[]) => {
      const o: string[] = [];
      const e: string[] = [];
      const code = await cliMain(args, { stdout: (s) => o.push(s), stderr: (s) => e.push(s), env: {} });
      return { code, out: o.join(''), err: e.join('') };
    };
    const r = await run(['import-swanctl', conf, '-o', out]);
    expect(r.err).toContain(
      `note: connections.gw.local.key: ${join(dir, 'private/moonKey.pem')} (the key of moonCert.pem)`,
    );
    expect(r.code).toBe(0);
    const keyBody = readFileSync(moon.key, 'latin1').split('\n')[1]!;
    for (const text of [r.out, r.err, readFileSync(out, 'utf8')]) {
      expect(text).not.toContain(keyBody);
      expect(text).not.toContain('PRIVATE KEY');
    }
    const check = await run(['config', 'check', out]);
    expect(check.err).toBe('');
    expect(check.code).toBe(0);

    // the same file copied elsewhere finds nothing relative to itself; --swanctl-dir points back
    const elsewhere = join(root, 'elsewhere.conf');
    writeFileSync(elsewhere, readFileSync(conf));
    const lost = await run(['import-swanctl', elsewhere]);
    expect(lost.code).toBe(2);
    expect(lost.err).toContain(`${join(root, 'x509/moonCert.pem')} is missing or holds no certificate`);
    const found = await run(['import-swanctl', elsewhere, '--swanctl-dir', dir]);
    expect(found.err).not.toContain('error');
    expect(found.code).toBe(0);
    expect(found.out).toContain(`key: ${join(dir, 'private/moonKey.pem')}`);
  });
});
