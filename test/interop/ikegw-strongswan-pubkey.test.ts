// Certificate authentication, ikegw against Debian's strongSwan 5.9.8 in network namespaces, both
// roles: each key type (RSA-3072, ECDSA P-256/P-384/P-521, Ed25519), DN and subjectAltName
// identities (FQDN, IP address, email), an intermediate CA sent in CERT (each side trusts only the
// root), RFC 7427 and the classic methods (strongSwan with signature_authentication = no),
// RSASSA-PSS, PSK and certificates mixed per direction; refusals with their cause in ikegw's log
// and in ikegw_failures_total{cause} (scraped from /metrics): unknown CA, expired, revoked by a CRL
// (remote.crls, made with `openssl ca -revoke` / `-gencrl`), an ID the certificate does not hold,
// no CERT from a peer we hold no copy of (strongSwan send_cert = never); a key that does not
// belong to the certificate is refused by the configuration loader. A signature made with the
// wrong key cannot be produced by a real strongSwan (it picks the private key by the
// certificate's public key and refuses to authenticate without one): that case is the engine
// test test/unit/engine/pubkey-auth.test.ts ("bad-signature"), where one ikegw engine signs with
// another certificate's key. The certificates are made by openssl in the test (test/helpers/pki.ts).
import { createPrivateKey } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, onTestFailed, test } from 'vitest';
import { type Issued, opensslAvailable, Pki } from '../helpers/pki.js';
import { CLI, type IkegwProcess, startIkegw } from './ikegw-daemon.js';
import { type Charon, createLab, LAB_PSK, type Lab, labAvailable } from './lab.js';
import { oneTunnel, waitForSas } from './wait.js';

const avail = labAvailable();
const ok = avail.ok && opensslAvailable();
const CLUSTER_TS = ['10.10.0.0/16', '10.96.0.0/12'];

let pkiDir: string;
let pki: Pki;
let rootCrl: string;
/** The root's CRL before and after swan-later was revoked. */
let crlBefore: string;
let crlAfter: string;
const c: Record<string, Issued> = {};
/** IP identities in certificates: addresses that are not the peers' own (any IP ID will do). */
const ALT_IP: Record<string, string> = { 'ikegw-alt': '192.0.2.61', 'swan-alt': '192.0.2.62' };

beforeAll(() => {
  if (!ok) return;
  pkiDir = mkdtempSync(join(tmpdir(), 'ikegw-interop-pki-'));
  pki = new Pki(pkiDir);
  const mk = (name: string, keyType: Parameters<Pki['issue']>[0]['keyType'], issuer = pki.root) =>
    (c[name] = pki.issue({
      name,
      keyType,
      subject: `C=CH, O=ikegw test, CN=${name}.example`,
      san: [`DNS:${name}.example`],
      issuer,
    }));
  mk('ikegw-rsa', 'rsa3072');
  mk('ikegw-p256', 'p256');
  mk('ikegw-p384', 'p384', pki.intermediate);
  mk('ikegw-ed', 'ed25519');
  mk('swan-rsa', 'rsa3072');
  mk('swan-p256', 'p256', pki.intermediate);
  mk('swan-p384', 'p384');
  mk('swan-ed', 'ed25519');
  mk('swan-other', 'p256', pki.otherRoot);
  mk('ikegw-p521', 'p521');
  mk('swan-p521', 'p521');
  mk('swan-revoked', 'p256');
  pki.revoke(c['swan-revoked']!, 'keyCompromise');
  mk('ikegw-revoked', 'p256');
  pki.revoke(c['ikegw-revoked']!, 'superseded');
  rootCrl = pki.crl();
  mk('swan-later', 'p256');
  crlBefore = pki.crl(pki.root, { file: join(pkiDir, 'root-before.crl.pem') });
  pki.revoke(c['swan-later']!, 'keyCompromise');
  crlAfter = pki.crl(pki.root, { file: join(pkiDir, 'root-after.crl.pem') });
  // IP address and email identities (subjectAltName iPAddress / rfc822Name)
  for (const name of ['ikegw-alt', 'swan-alt']) {
    c[name] = pki.issue({
      name,
      keyType: name === 'ikegw-alt' ? 'p384' : 'rsa3072',
      subject: `C=CH, O=ikegw test, CN=${name}.example`,
      san: [`IP:${ALT_IP[name]}`, `email:vpn@${name}.example`, `DNS:${name}.example`],
    });
  }
  c['swan-expired'] = pki.issue({
    name: 'swan-expired',
    keyType: 'p256',
    subject: 'C=CH, O=ikegw test, CN=swan-expired.example',
    notBefore: new Date('2020-01-01T00:00:00Z'),
    notAfter: new Date('2021-01-01T00:00:00Z'),
  });
}, 120_000);
afterAll(() => {
  if (pkiDir) rmSync(pkiDir, { recursive: true, force: true });
});

interface Case {
  lab: Lab;
  onprem: Charon;
  ikegw: IkegwProcess;
}
let current: Case | undefined;
afterEach(async () => {
  await current?.lab.teardown();
  current = undefined;
});

interface SideOpts {
  /** A certificate (pubkey) or 'psk'. */
  cert: Issued | 'psk';
  /** The identity to use (default: the certificate's subject DN, or the address with PSK). */
  id?: string;
  /** What this side expects of the peer. */
  peer: 'pubkey' | 'psk';
  peerId?: string;
  /** CA certificate(s) this side trusts (default the root). */
  cacerts?: Issued[];
  /** CRL files (ikegw remote.crls; strongSwan: copied into swanctl/x509crl). */
  crls?: string[];
}

function swanConf(remote: string, o: SideOpts, sendCert = 'ifasked'): string {
  const local =
    o.cert === 'psk'
      ? 'auth = psk'
      : `auth = pubkey
      certs = ${o.cert.cert}`;
  const remoteAuth =
    o.peer === 'psk'
      ? 'auth = psk'
      : `auth = pubkey
      cacerts = ${(o.cacerts ?? [pki.root]).map((x) => x.cert).join(',')}`;
  return `connections {
  cluster {
    remote_addrs = ${remote}
    send_cert = ${sendCert}
    local {
      ${local}
      ${o.id ? `id = "${o.id}"` : ''}
    }
    remote {
      ${remoteAuth}
      ${o.peerId ? `id = "${o.peerId}"` : ''}
    }
    children {
      net {
        local_ts = 192.168.100.0/24
        remote_ts = ${CLUSTER_TS.join(',')}
      }
    }
  }
}
${
  // strongSwan sends the intermediate of its own chain when it has it; otherwise it must not know
  // it (so that a successful test shows ikegw sent it)
  o.cert !== 'psk' && o.cert.name === 'swan-p256'
    ? `authorities {
  intermediate {
    cacert = ${pki.intermediate.cert}
  }
}
`
    : ''
}secrets {
  ike-lab {
    secret = "${LAB_PSK}"
  }
}
`;
}

function ikegwConf(local: string, remote: string, o: SideOpts, start: boolean, extra = ''): string {
  const loc =
    o.cert === 'psk'
      ? `{ auth: psk${o.id ? `, id: '${o.id}'` : ''} }`
      : `{ auth: ${o.cert.name === 'ikegw-rsa-pss' ? 'rsa/pss' : 'pubkey'}, certs: [${o.cert.name === 'ikegw-p384' ? `${o.cert.cert}, ${pki.intermediate.cert}` : o.cert.cert}], key: ${o.cert.key}${o.id ? `, id: '${o.id}'` : ''} }`;
  const rem =
    o.peer === 'psk'
      ? `{ auth: psk${o.peerId ? `, id: '${o.peerId}'` : ''} }`
      : `{ auth: pubkey, cacerts: [${(o.cacerts ?? [pki.root]).map((x) => x.cert).join(', ')}]${
          o.crls ? `, crls: [${o.crls.join(', ')}]` : ''
        }${o.peerId ? `, id: '${o.peerId}'` : ''} }`;
  const needPsk = o.cert === 'psk' || o.peer === 'psk';
  return `connections:
  onprem:
    remote_addrs: ['${remote}']
    local_addrs: ['${local}']
    local: ${loc}
    remote: ${rem}
${needPsk ? "    psk: { file: '@PSK_FILE@' }\n" : ''}${extra}    dpd_delay: 0
    children:
      cluster:
        local_ts: [${CLUSTER_TS.join(', ')}]
        remote_ts: [192.168.100.0/24]
        start_action: ${start ? 'start' : 'none'}
datapath: memory
listen: { address: '${local}', port: 500, nat_port: 4500 }
log: { level: debug, format: json }
metrics: { listen: '127.0.0.1:9090' }
control: { socket: '${join(pkiDir, 'ikegw.sock')}' }
`;
}

/** `ikegw <args>` against the test's daemon (its control socket), in the cluster namespace. */
async function cli(k: Case, args: string[]): Promise<string> {
  const r = await k.lab.exec(
    'cluster',
    process.execPath,
    [CLI, ...args, ...(args[0] === 'config' ? [] : ['--socket', join(pkiDir, 'ikegw.sock')])],
    { timeoutMs: 20_000 },
  );
  return `${r.stdout}${r.stderr}`;
}

async function setUp(o: {
  ikegw: SideOpts;
  swan: SideOpts;
  ikegwInitiates: boolean;
  swanExtra?: string;
  swanSendCert?: string;
  ikegwExtra?: string;
}): Promise<Case> {
  const lab = await createLab({ nat: false, endHosts: false });
  const onprem = await lab.startCharon('onprem', {
    swanctlConf: swanConf(lab.addr.clusterPublic, o.swan, o.swanSendCert),
    strongswanExtra: o.swanExtra,
    logLevels: { cfg: 2, ike: 2 },
  });
  if (o.swan.cert !== 'psk') {
    // charon's private key: from the swanctl/private directory (swanctl loads no key by path)
    copyFileSync(o.swan.cert.key, join(onprem.dir, 'swanctl', 'private', basename(o.swan.cert.key)));
    for (const f of o.swan.crls ?? []) copyFileSync(f, join(onprem.dir, 'swanctl', 'x509crl', basename(f)));
    await onprem.swanctl(['--load-creds', '--noprompt']);
  }
  const ikegw = startIkegw(
    lab,
    'cluster',
    'ikegw',
    ikegwConf(
      lab.addr.clusterWan,
      o.ikegwInitiates ? lab.addr.onpremWan : '%any',
      o.ikegw,
      o.ikegwInitiates,
      o.ikegwExtra ?? '',
    ),
    LAB_PSK,
  );
  current = { lab, onprem, ikegw };
  onTestFailed(() => {
    console.log(`--- ikegw log ---\n${ikegw.text().slice(-10000)}`);
    console.log(`--- strongSwan log ---\n${onprem.logTail(150)}`);
  });
  await ikegw.waitFor((l) => typeof l.msg === 'string' && l.msg.startsWith('ikegw started'));
  if (!o.ikegwInitiates) await onprem.initiate('net').catch(() => undefined);
  return current;
}

const msgs = (p: IkegwProcess): string[] => p.lines().map((l) => String(l.msg));

async function up(k: Case): Promise<{ auth: string }> {
  await k.ikegw.waitFor((l) => l.state === 'INSTALLED', 20_000);
  await waitForSas(k.onprem, 'one IKE_SA with its CHILD_SA installed', oneTunnel);
  return { auth: msgs(k.ikegw).find((m) => m.startsWith('peer authenticated')) ?? '(PSK)' };
}

/** The ikegw failure line (JSON) with a cause. */
const failure = (k: Case) =>
  k.ikegw.waitFor((l) => typeof l.cause === 'string' && l.reason === 'AUTHENTICATION_FAILED', 20_000);

/** ikegw's /metrics (metrics.listen in the cluster namespace). */
async function scrape(k: Case): Promise<string> {
  const r = await k.lab.exec(
    'cluster',
    process.execPath,
    ['-e', "fetch('http://127.0.0.1:9090/metrics').then(r=>r.text()).then(t=>process.stdout.write(t))"],
    { timeoutMs: 10_000 },
  );
  return r.stdout;
}

/**
 * The failure counter line of `cause` (the log line came first; the counter is incremented with
 * it). An initiating ikegw retries (start_action start), so the count can be above 1.
 */
async function failureMetric(k: Case, cause: string): Promise<string> {
  const re = new RegExp(
    `^ikegw_failures_total\\{conn="onprem",reason="AUTHENTICATION_FAILED",cause="${cause}"\\} (\\d+)$`,
    'm',
  );
  const text = await scrape(k);
  return (
    re.exec(text)?.[0] ??
    text
      .split('\n')
      .filter((l) => l.startsWith('ikegw_failures_total'))
      .join('\n')
  );
}

describe.skipIf(!ok)(
  `certificates: ikegw <-> strongSwan 5.9.8${ok ? '' : ` (skipped: ${avail.ok ? 'no openssl' : avail.why})`}`,
  { timeout: 90_000 },
  () => {
    test.each([
      // [ikegw key, strongSwan key, ikegw initiates]
      ['ikegw-p256', 'swan-rsa', true, /ECDSA P-256|RSA-3072/],
      ['ikegw-rsa', 'swan-ed', false, /Ed25519/],
      ['ikegw-ed', 'swan-p384', true, /ECDSA P-384/],
      ['ikegw-p384', 'swan-p256', false, /ECDSA P-256/],
      ['ikegw-p521', 'swan-p521', true, /ECDSA P-521/],
      ['ikegw-p521', 'swan-p521', false, /ECDSA P-521/],
    ])(
      'RFC 7427: ikegw %s, strongSwan %s (ikegw initiates: %s); DN identities',
      async (mine, theirs, ikegwInitiates, keyRe) => {
        const k = await setUp({
          ikegwInitiates,
          ikegw: { cert: c[mine]!, peer: 'pubkey' },
          swan: { cert: c[theirs]!, peer: 'pubkey' },
        });
        const { auth } = await up(k);
        expect(auth).toMatch(keyRe);
        expect(auth).toMatch(/RFC 7427/);
        expect(auth).toContain(`"C=CH, O=ikegw test, CN=${theirs}.example"`);
        const sa = (await k.onprem.listSas())[0]!;
        expect(sa.state).toBe('ESTABLISHED');
        // the private key never reaches the log (debug level), not even a line of its PEM
        const pem = readFileSync(c[mine]!.key, 'latin1')
          .split('\n')
          .filter((l) => l && !l.startsWith('-----'));
        for (const line of pem) expect(k.ikegw.text()).not.toContain(line.slice(0, 40));
        // nor the metrics or any CLI output: neither its PEM nor its private scalar in any encoding
        const d = Buffer.from(
          createPrivateKey(readFileSync(c[mine]!.key)).export({ format: 'jwk' }).d as string,
          'base64url',
        );
        const shown = [
          await scrape(k),
          await cli(k, ['sas']),
          await cli(k, ['sas', '--json']),
          await cli(k, ['stats']),
          await cli(k, ['config', 'check', '-c', join(k.lab.dir, 'ikegw.yaml')]),
        ].join('\n');
        // the scrape, the daemon (sas) and config check did answer
        expect(shown).toContain('ikegw_');
        expect(shown).toContain('ESTABLISHED');
        expect(shown).toMatch(/ikegw\.yaml: OK/);
        for (const line of pem) expect(shown).not.toContain(line.slice(0, 40));
        for (const enc of ['hex', 'base64', 'base64url'] as const)
          expect(shown.toLowerCase()).not.toContain(d.toString(enc).slice(0, 24).toLowerCase());
        // strongSwan verified our signature and sees our subject DN as our identity
        await k.onprem.waitForLog(
          new RegExp(`authentication of 'C=CH, O=ikegw test, CN=${mine}.example' with .* successful`),
        );
        if (mine === 'ikegw-p521') {
          // RFC 7427 with ECDSA P-521 signs with SHA-512 (ours and strongSwan's)
          expect(auth).toContain('RFC 7427 ecdsa-with-sha512');
          await k.onprem.waitForLog(/with ECDSA_WITH_SHA512_DER successful/);
        }
        if (theirs === 'swan-p256') {
          // strongSwan sent its intermediate; ikegw trusts only the root
          expect(auth).toContain(
            '<- "C=CH, O=ikegw test, CN=ikegw Intermediate CA" <- "C=CH, O=ikegw test, CN=ikegw Root CA"',
          );
        }
      },
    );

    test('ikegw sends its intermediate in CERT; strongSwan trusts only the root (ikegw P-384 under the intermediate)', async () => {
      const k = await setUp({
        ikegwInitiates: true,
        ikegw: { cert: c['ikegw-p384']!, peer: 'pubkey' },
        swan: { cert: c['swan-rsa']!, peer: 'pubkey' },
      });
      await up(k);
      expect(msgs(k.ikegw).some((m) => /sending 2 CERT payload/.test(m))).toBe(true);
      await k.onprem.waitForLog(/received issuer cert "C=CH, O=ikegw test, CN=ikegw Intermediate CA"/);
    });

    test('subjectAltName identities (FQDN) both ways', async () => {
      const k = await setUp({
        ikegwInitiates: false,
        ikegw: {
          cert: c['ikegw-p256']!,
          id: 'ikegw-p256.example',
          peer: 'pubkey',
          peerId: 'swan-p384.example',
        },
        swan: {
          cert: c['swan-p384']!,
          id: 'swan-p384.example',
          peer: 'pubkey',
          peerId: 'ikegw-p256.example',
        },
      });
      await up(k);
      const sa = (await k.onprem.listSas())[0]!;
      expect(sa.remoteId).toBe('ikegw-p256.example');
      expect(sa.localId).toBe('swan-p384.example');
    });

    test.each([
      // [ikegw's ID kind, strongSwan's ID kind, ikegw initiates]
      ['email', 'IP address', true],
      ['IP address', 'email', false],
    ])(
      'subjectAltName identities: ikegw %s, strongSwan %s (ikegw initiates: %s)',
      async (mineKind, theirKind, ikegwInitiates) => {
        const id = (name: string, kind: string) => (kind === 'email' ? `vpn@${name}.example` : ALT_IP[name]!);
        const mine = id('ikegw-alt', mineKind);
        const theirs = id('swan-alt', theirKind);
        const k = await setUp({
          ikegwInitiates,
          ikegw: { cert: c['ikegw-alt']!, id: mine, peer: 'pubkey', peerId: theirs },
          swan: { cert: c['swan-alt']!, id: theirs, peer: 'pubkey', peerId: mine },
        });
        const { auth } = await up(k);
        expect(auth).toContain('"C=CH, O=ikegw test, CN=swan-alt.example"');
        const sa = (await k.onprem.listSas())[0]!;
        expect(sa.remoteId).toBe(mine);
        expect(sa.localId).toBe(theirs);
        // ikegw's view: its ID and the peer's, as ID_RFC822_ADDR / ID_IPV4_ADDR (printed as text)
        const est = await k.ikegw.waitFor((l) => l.state === 'ESTABLISHED');
        expect([est.localId, est.remoteId]).toEqual([mine, theirs]);
        await k.onprem.waitForLog(
          new RegExp(`authentication of '${mine.replace(/\./g, '\\.')}' with .* successful`),
        );
      },
    );

    test.each([
      [
        'ikegw-rsa',
        'swan-p384',
        true,
        'ECDSA_384 (RFC 4754)',
        /with ECDSA-384 signature successful|with RSA signature successful/,
      ],
      [
        'ikegw-p256',
        'swan-rsa',
        false,
        'RSA_SIG (PKCS#1 v1.5, SHA-1)',
        /with (ECDSA-256|RSA) signature successful/,
      ],
      ['ikegw-p521', 'swan-p521', true, 'ECDSA_521 (RFC 4754)', /with ECDSA-521 signature successful/],
    ])(
      'classic methods without RFC 7427 (strongSwan signature_authentication = no): ikegw %s, strongSwan %s',
      async (mine, theirs, ikegwInitiates, scheme, swanRe) => {
        const k = await setUp({
          ikegwInitiates,
          ikegw: { cert: c[mine]!, peer: 'pubkey' },
          swan: { cert: c[theirs]!, peer: 'pubkey' },
          swanExtra: 'signature_authentication = no',
        });
        const { auth } = await up(k);
        expect(auth).toContain(scheme);
        expect(auth).toContain('no RFC 7427');
        await k.onprem.waitForLog(swanRe);
      },
    );

    test('RSASSA-PSS both ways (ikegw local.auth rsa/pss, strongSwan rsa_pss = yes)', async () => {
      const pss = { ...c['ikegw-rsa']!, name: 'ikegw-rsa-pss' };
      const k = await setUp({
        ikegwInitiates: true,
        ikegw: { cert: pss, peer: 'pubkey' },
        swan: { cert: c['swan-rsa']!, peer: 'pubkey' },
        swanExtra: 'rsa_pss = yes',
      });
      const { auth } = await up(k);
      expect(auth).toMatch(/RSASSA-PSS/);
      await k.onprem.waitForLog(/with RSA_EMSA_PSS.* successful/);
    });

    test.each([
      ['ikegw certificate, strongSwan PSK', true],
      ['ikegw PSK, strongSwan certificate', false],
    ])('mixed: %s', async (_what, ikegwCert) => {
      const k = await setUp({
        ikegwInitiates: ikegwCert,
        ikegw: ikegwCert ? { cert: c['ikegw-ed']!, peer: 'psk' } : { cert: 'psk', peer: 'pubkey' },
        swan: ikegwCert ? { cert: 'psk', peer: 'pubkey' } : { cert: c['swan-p256']!, peer: 'psk' },
      });
      await up(k);
    });

    test.each([
      {
        cause: 'untrusted-ca',
        ikegwInitiates: false,
        theirs: 'swan-other',
        detail: /no trusted CA for "C=CH, O=ikegw test, CN=swan-other.example"/,
      },
      {
        cause: 'expired',
        ikegwInitiates: false,
        theirs: 'swan-expired',
        detail: /expired on 2021-01-01T00:00:00Z/,
      },
      {
        cause: 'id-mismatch',
        ikegwInitiates: false,
        theirs: 'swan-p384',
        peerId: 'C=CH, O=ikegw test, CN=somebody else',
        detail: /remote\.id is "C=CH, O=ikegw test, CN=somebody else"/,
      },
      {
        cause: 'revoked',
        ikegwInitiates: false,
        theirs: 'swan-revoked',
        crls: true,
        detail:
          /^AUTHENTICATION_FAILED \(revoked\): the peer certificate "C=CH, O=ikegw test, CN=swan-revoked.example" \(serial [0-9a-f]+\) is revoked by the CRL of "C=CH, O=ikegw test, CN=ikegw Root CA" since \S+ \(keyCompromise\)$/,
      },
      {
        cause: 'revoked',
        theirs: 'swan-revoked',
        crls: true,
        ikegwInitiates: true,
        detail: /is revoked by the CRL of "C=CH, O=ikegw test, CN=ikegw Root CA"/,
      },
      {
        cause: 'no-cert',
        ikegwInitiates: false,
        theirs: 'swan-p384',
        sendCert: 'never',
        detail: /the peer sent no X\.509 certificate \(CERT payload\)/,
      },
    ])(
      'ikegw refuses strongSwan: $cause (ikegw initiates: $ikegwInitiates), the cause in its log and metric',
      async ({ cause, theirs, peerId, detail, crls, sendCert, ikegwInitiates }) => {
        const k = await setUp({
          ikegwInitiates,
          ikegw: {
            cert: c['ikegw-p256']!,
            peer: 'pubkey',
            ...(peerId ? { peerId } : {}),
            ...(crls ? { crls: [rootCrl] } : {}),
          },
          swan: { cert: c[theirs]!, peer: 'pubkey' },
          swanSendCert: sendCert ?? 'always',
        });
        const f = await failure(k);
        expect(f.cause).toBe(cause);
        expect(String(f.msg)).toMatch(new RegExp(`^AUTHENTICATION_FAILED \\(${cause}\\): `));
        expect(String(f.msg)).toMatch(detail);
        expect(await failureMetric(k, cause)).toMatch(/ [1-9]\d*$/);
        if (!ikegwInitiates) await k.onprem.waitForLog(/received AUTHENTICATION_FAILED/);
        // send_cert = never: strongSwan's IKE_AUTH carried no CERT (its log lists the payloads)
        if (sendCert === 'never')
          expect(k.onprem.log()).toMatch(/generating IKE_AUTH request 1 \[ IDi (?!CERT )/);
      },
    );

    test('a new CRL file is picked up while running (as cert-manager/kubelet replace files): the next authentication is refused', async () => {
      const live = join(pkiDir, 'live.crl.pem');
      copyFileSync(crlBefore, live);
      const k = await setUp({
        ikegwInitiates: false,
        ikegw: { cert: c['ikegw-p256']!, peer: 'pubkey', crls: [live] },
        swan: { cert: c['swan-later']!, peer: 'pubkey' },
        swanSendCert: 'always',
      });
      await up(k);
      // replaced by rename, as the kubelet swaps a Secret's files
      copyFileSync(crlAfter, `${live}.tmp`);
      renameSync(`${live}.tmp`, live);
      const applied = await k.ikegw.waitFor((l) => l.rotation === 'applied', 20_000);
      expect(String(applied.msg)).toContain('onprem updated (remote.crls)');
      // the established IKE_SA stays (as strongSwan: a CRL is checked when authenticating)
      expect((await k.onprem.listSas())[0]?.state).toBe('ESTABLISHED');
      await k.onprem.terminate('cluster');
      await k.onprem.initiate('net').catch(() => undefined);
      const f = await failure(k);
      expect(f.cause).toBe('revoked');
      expect(String(f.msg)).toContain('"C=CH, O=ikegw test, CN=swan-later.example"');
      expect(await failureMetric(k, 'revoked')).toMatch(/ 1$/);
    });

    test('strongSwan refuses ikegw: a certificate from a CA it does not trust; ikegw names it', async () => {
      const k = await setUp({
        ikegwInitiates: true,
        ikegw: { cert: c['ikegw-p256']!, peer: 'pubkey' },
        swan: { cert: c['swan-rsa']!, peer: 'pubkey', cacerts: [pki.otherRoot] },
        ikegwExtra: '    send_cert: always\n',
      });
      const f = await failure(k);
      expect(f.cause).toBe('peer-rejected');
      expect(String(f.msg)).toMatch(/the peer rejected our AUTH — it does not trust our certificate/);
      expect(await failureMetric(k, 'peer-rejected')).toMatch(/ [1-9]\d*$/);
      await k.onprem.waitForLog(
        /no trusted RSA public key found|no issuer certificate found|constraint check failed|no trusted .* public key found/,
      );
    });

    test("strongSwan refuses ikegw's revoked certificate (the same CRL in its x509crl directory)", async () => {
      const k = await setUp({
        ikegwInitiates: true,
        ikegw: { cert: c['ikegw-revoked']!, peer: 'pubkey' },
        swan: { cert: c['swan-rsa']!, peer: 'pubkey', crls: [rootCrl] },
        ikegwExtra: '    send_cert: always\n',
      });
      const f = await failure(k);
      expect(f.cause).toBe('peer-rejected');
      expect(await failureMetric(k, 'peer-rejected')).toMatch(/ [1-9]\d*$/);
      await k.onprem.waitForLog(/certificate was revoked on .*, reason: superseded/);
    });
  },
);

describe.skipIf(!opensslAvailable())('wrong key', () => {
  test('a key that does not belong to the certificate: the daemon does not start and says why (never the key)', async () => {
    const { loadConfig } = await import('../../src/daemon/config.js');
    const dir = mkdtempSync(join(tmpdir(), 'ikegw-wrongkey-'));
    try {
      const p = new Pki(dir);
      const a = p.issue({ name: 'a', keyType: 'p256', subject: 'C=CH, O=ikegw test, CN=a' });
      const b = p.issue({ name: 'b', keyType: 'ed25519', subject: 'C=CH, O=ikegw test, CN=b' });
      const r = loadConfig(
        ikegwConf(
          '10.0.0.1',
          '10.0.0.2',
          { cert: { ...a, key: b.key }, peer: 'pubkey', cacerts: [p.root] },
          false,
        ),
        {},
      );
      expect(r.ok).toBe(false);
      const text = r.ok ? '' : r.errors.map((e) => e.message).join('\n');
      expect(text).toBe(
        'connections.onprem.local.key: the private key (Ed25519) does not belong to certificate "C=CH, O=ikegw test, CN=a" (ECDSA P-256)',
      );
      expect(text).not.toContain(readFileSync(b.key, 'latin1').split('\n')[1]!);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
