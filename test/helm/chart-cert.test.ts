// The chart with certificate authentication (ipsec.auth: cert): the kubernetes.io/tls Secret
// projected into the daemon container, the daemon config that points at those files — loaded by
// the daemon's own config loader with real certificates (test/helpers/pki.ts) at the projected
// paths —, the optional cert-manager Certificate, mixed PSK/certificate directions, NOTES.txt and
// the values.schema.json rejections. The PSK case is covered by chart.test.ts; here only that
// `auth: psk` written out renders exactly what the reference values do.
import { createPrivateKey } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { type IStatefulSet, StatefulSet } from 'kubernetes-models/apps/v1';
import {
  ConfigMap,
  type IConfigMap,
  type IContainer,
  type IPodSpec,
  type ISecret,
  Secret,
} from 'kubernetes-models/v1';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { formatIdentity, loadConfig } from '../../src/daemon/config.js';
import { type Issued, opensslAvailable, Pki } from '../helpers/pki.js';
import {
  chartDir,
  cleanupScratch,
  detectRenderer,
  ensureRenderer,
  type K8sObject,
  type Rendered,
  render,
} from './render.js';

const renderer = detectRenderer();
const haveOpenssl = opensslAvailable();
const skipReason = renderer.kind === 'none' ? renderer.reason : haveOpenssl ? '' : 'openssl is not installed';
if (skipReason) console.warn(`test/helm/chart-cert.test.ts skipped: ${skipReason}`);

const PSK = 'cert-test-psk-0123456789-abcdefghijklmnop';

const BASE = {
  podCIDR: '10.10.0.0/16',
  serviceCIDR: '10.96.0.0/12',
  peerCIDRs: ['192.168.0.0/16'],
  mtu: 1300,
  ipsec: { psk: PSK, peer: '203.0.113.7' },
};
const REFERENCE_CONFIG = `
podCIDR: "10.10.0.0/16"
serviceCIDR: "10.96.0.0/12"
peerCIDRs:
  - 192.168.0.0/16
mtu: 1300
ipsec:
  psk: "${PSK}"
  peer: "203.0.113.7"
`;

/** BASE with ipsec.* overridden (no PSK unless given). */
const values = (ipsec: Record<string, unknown>, keepPsk = false) => ({
  ...BASE,
  ipsec: { ...BASE.ipsec, psk: keepPsk ? PSK : '', ...ipsec },
});

// --- helpers -------------------------------------------------------------------------------

function find<T>(r: Rendered, kind: string, name?: string): T {
  const hits = r.docs.filter(
    ({ obj }) => obj.kind === kind && (name === undefined || obj.metadata.name === name),
  );
  expect(hits.length, `${kind} ${name ?? ''}: ${hits.map((h) => h.obj.metadata.name).join(', ')}`).toBe(1);
  return hits[0]!.obj as unknown as T;
}
const none = (r: Rendered, kind: string): void =>
  expect(r.docs.filter(({ obj }) => obj.kind === kind).map(({ obj }) => obj.metadata.name)).toEqual([]);

function ok(r: Rendered): Rendered {
  expect(r.ok, r.stderr).toBe(true);
  return r;
}

/** kubernetes-models for the built-in kinds; the Certificate is checked by certificateShape. */
function validateBuiltins(r: Rendered): void {
  for (const { obj } of r.docs) {
    if (obj.kind === 'Secret') new Secret(obj as unknown as ISecret).validate();
    if (obj.kind === 'StatefulSet') new StatefulSet(obj as unknown as IStatefulSet).validate();
    if (obj.kind === 'ConfigMap') new ConfigMap(obj as unknown as IConfigMap).validate();
  }
}

const b64 = (s: string): string => Buffer.from(s, 'base64').toString('utf8');

interface Side {
  auth?: string;
  certs?: string[];
  key?: string;
  cacerts?: string[];
  id?: string;
}
interface Conn {
  psk?: { file: string };
  local?: Side;
  remote?: Side;
  send_cert?: string;
}

function configText(r: Rendered): string {
  return b64(find<ISecret>(r, 'Secret', 'vpn-config').data!['config.yaml']!);
}
function conn(r: Rendered): Conn {
  return (parseYaml(configText(r)) as { connections: { onprem: Conn } }).connections.onprem;
}

function daemonPod(r: Rendered): { pod: IPodSpec; c: IContainer; annotations: Record<string, string> } {
  const tpl = find<IStatefulSet>(r, 'StatefulSet').spec!.template;
  const c = tpl.spec!.containers.find((x) => x.name === 'ikegw')!;
  return { pod: tpl.spec!, c, annotations: tpl.metadata!.annotations! };
}

interface Projected {
  /** Path in the daemon container. */
  path: string;
  kind: 'secret' | 'configMap';
  name: string;
  key: string;
  mode: number | undefined;
}

/** Every file the daemon container gets from projected volumes. */
function projectedFiles(pod: IPodSpec, c: IContainer): Projected[] {
  const out: Projected[] = [];
  for (const v of pod.volumes ?? []) {
    if (!v.projected) continue;
    const mount = c.volumeMounts?.find((m) => m.name === v.name);
    if (!mount) continue;
    for (const src of v.projected.sources ?? []) {
      for (const kind of ['secret', 'configMap'] as const) {
        const s = src[kind];
        if (!s) continue;
        for (const item of s.items ?? []) {
          out.push({
            path: `${mount.mountPath}/${item.path}`,
            kind,
            name: s.name!,
            key: item.key,
            mode: item.mode ?? v.projected.defaultMode,
          });
        }
      }
    }
  }
  return out;
}

/** Checks that the error output names the value (gojsonschema/helmlite or newer Helm). */
function expectNamesValue(res: Rendered, dotted: string): void {
  expect(res.ok, `render should fail for ${dotted}`).toBe(false);
  const parts = dotted.split('.');
  const forms = [
    `${dotted}:`,
    `'/${parts.join('/')}'`,
    `${parts.slice(0, -1).join('.')}: ${parts[parts.length - 1]} is required`,
  ];
  expect(
    forms.some((f) => res.stderr.includes(f)),
    `stderr should name ${dotted}:\n${res.stderr}`,
  ).toBe(true);
}

// cert-manager.io/v1 Certificate: the spec fields of cert-manager's API reference (Certificate,
// CertificateSpec, CertificatePrivateKey, ObjectReference of issuerRef).
const CERTIFICATE_SPEC_FIELDS = new Set([
  'additionalOutputFormats',
  'commonName',
  'dnsNames',
  'duration',
  'emailAddresses',
  'encodeUsagesInRequest',
  'ipAddresses',
  'isCA',
  'issuerRef',
  'keystores',
  'literalSubject',
  'nameConstraints',
  'otherNames',
  'privateKey',
  'renewBefore',
  'renewBeforePercentage',
  'revisionHistoryLimit',
  'secretName',
  'secretTemplate',
  'subject',
  'uris',
  'usages',
]);
const PRIVATE_KEY_FIELDS = new Set(['algorithm', 'encoding', 'rotationPolicy', 'size']);
const ISSUER_REF_FIELDS = new Set(['name', 'kind', 'group']);
const SUBJECT_FIELDS = new Set([
  'countries',
  'localities',
  'organizationalUnits',
  'organizations',
  'postalCodes',
  'provinces',
  'serialNumber',
  'streetAddresses',
]);
const GO_DURATION = /^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$/;

function goDurationMs(s: string): number {
  const unit: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1e3, m: 60e3, h: 3600e3 };
  let ms = 0;
  for (const m of s.matchAll(/([0-9.]+)(ns|us|µs|ms|s|m|h)/g)) ms += Number(m[1]) * unit[m[2]!]!;
  return ms;
}

interface CertificateSpec {
  secretName: string;
  issuerRef: { name: string; kind?: string; group?: string };
  commonName?: string;
  subject?: Record<string, unknown>;
  dnsNames?: string[];
  ipAddresses?: string[];
  duration?: string;
  renewBefore?: string;
  privateKey?: { algorithm?: string; size?: number; rotationPolicy?: string; encoding?: string };
  usages?: string[];
}

function certificateShape(o: K8sObject): CertificateSpec {
  expect(o.apiVersion).toBe('cert-manager.io/v1');
  expect(o.metadata.name).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
  for (const v of Object.values(o.metadata.labels ?? {})) expect(typeof v).toBe('string');
  const spec = o.spec as CertificateSpec;
  const unknown = (obj: object | undefined, known: Set<string>) =>
    Object.keys(obj ?? {}).filter((k) => !known.has(k));
  expect(unknown(spec, CERTIFICATE_SPEC_FIELDS), 'Certificate spec fields').toEqual([]);
  expect(unknown(spec.privateKey, PRIVATE_KEY_FIELDS), 'privateKey fields').toEqual([]);
  expect(unknown(spec.issuerRef, ISSUER_REF_FIELDS), 'issuerRef fields').toEqual([]);
  expect(unknown(spec.subject, SUBJECT_FIELDS), 'subject fields').toEqual([]);
  expect(typeof spec.secretName).toBe('string');
  expect(spec.issuerRef.name).toBeTruthy();
  // cert-manager refuses a Certificate without any name in it.
  expect(
    Boolean(spec.commonName) || (spec.dnsNames?.length ?? 0) > 0 || (spec.ipAddresses?.length ?? 0) > 0,
  ).toBe(true);
  if (spec.commonName) expect(spec.commonName.length).toBeLessThanOrEqual(64);
  for (const d of [spec.duration, spec.renewBefore]) if (d !== undefined) expect(d).toMatch(GO_DURATION);
  if (spec.duration && spec.renewBefore)
    expect(goDurationMs(spec.renewBefore)).toBeLessThan(goDurationMs(spec.duration));
  const pk = spec.privateKey ?? {};
  if (pk.algorithm !== undefined) expect(['RSA', 'ECDSA', 'Ed25519']).toContain(pk.algorithm);
  if (pk.algorithm === 'ECDSA' && pk.size !== undefined) expect([256, 384, 521]).toContain(pk.size);
  if (pk.algorithm === 'Ed25519') expect(pk.size).toBeUndefined();
  if (pk.rotationPolicy !== undefined) expect(['Always', 'Never']).toContain(pk.rotationPolicy);
  for (const ip of spec.ipAddresses ?? []) expect(ip).toMatch(/^[0-9a-f.:]+$/i);
  return spec;
}

// --- test PKI ------------------------------------------------------------------------------

let pkiDir: string;
let pki: Pki;
/** Ours, issued by the intermediate (what a cert-manager CA issuer with a sub-CA gives). */
let ours: Issued;

/**
 * The Secret contents the kubelet would project: a kubernetes.io/tls Secret as cert-manager
 * writes it (tls.crt = ours + intermediate, tls.key = SEC1 "EC PRIVATE KEY", cert-manager's
 * default PKCS1 encoding for ECDSA; ca.crt = the root) and a ConfigMap with the on-prem CA.
 */
function objectData(): Record<string, Record<string, string>> {
  const pem = (f: string) => readFileSync(f, 'latin1');
  const sec1 = createPrivateKey(readFileSync(ours.key)).export({ format: 'pem', type: 'sec1' }).toString();
  return {
    'secret/ikegw-tls': {
      'tls.crt': pem(ours.cert) + pem(pki.intermediate.cert),
      'tls.key': sec1,
      'ca.crt': pem(pki.root.cert),
    },
    'secret/vpn-ipsec-tls': {
      'tls.crt': pem(ours.cert) + pem(pki.intermediate.cert),
      'tls.key': sec1,
      'ca.crt': pem(pki.root.cert),
    },
    'configMap/onprem-ca': { 'ca.crt': pem(pki.otherRoot.cert), 'bundle.pem': pem(pki.otherRoot.cert) },
    'secret/vpn-config': { psk: PSK },
    'secret/my-psk': { psk: PSK },
  };
}

/**
 * Writes every projected file of the daemon container under a temp root (as the kubelet would
 * in the container) and loads the rendered config.yaml with the daemon's loader, reading files
 * from there.
 */
function loadAsPod(r: Rendered) {
  const { pod, c } = daemonPod(r);
  const root = mkdtempSync(join(tmpdir(), 'ikegw-chart-pod-'));
  const data = objectData();
  data['secret/vpn-config'] = { ...data['secret/vpn-config'], 'config.yaml': configText(r) };
  try {
    const files = projectedFiles(pod, c);
    for (const f of files) {
      const content = data[`${f.kind}/${f.name}`]?.[f.key];
      if (content === undefined) throw new Error(`test has no ${f.kind} ${f.name} key ${f.key}`);
      mkdirSync(dirname(join(root, f.path)), { recursive: true });
      writeFileSync(join(root, f.path), content);
    }
    const text = readFileSync(join(root, '/etc/ikegw/config.yaml'), 'utf8');
    const loaded = loadConfig(text, {}, { readFile: (p) => new Uint8Array(readFileSync(join(root, p))) });
    return { loaded, files };
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

// --- tests ---------------------------------------------------------------------------------

describe.skipIf(skipReason !== '')(`helm chart with certificates (${renderer.kind})`, () => {
  const dirs: string[] = [];

  beforeAll(() => {
    ensureRenderer(renderer, 170_000);
    pkiDir = mkdtempSync(join(tmpdir(), 'ikegw-chart-pki-'));
    pki = new Pki(pkiDir);
    ours = pki.issue({
      name: 'cluster',
      keyType: 'p256',
      subject: 'O=ikegw test, CN=vpn.vpn',
      san: ['DNS:vpn.example.com'],
      issuer: pki.intermediate,
    });
  }, 180_000);
  afterAll(() => {
    if (pkiDir) rmSync(pkiDir, { recursive: true, force: true });
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
    cleanupScratch();
  });

  it('renders the reference values exactly as before when ipsec.auth: psk is written out', () => {
    const ref = ok(render(renderer, REFERENCE_CONFIG));
    const psk = ok(render(renderer, REFERENCE_CONFIG, { sets: ['ipsec.auth=psk'] }));
    expect(psk.stdout).toBe(ref.stdout);
    none(ref, 'Certificate');
    const files = projectedFiles(daemonPod(ref).pod, daemonPod(ref).c).map((f) => f.path);
    expect(files).toEqual(['/etc/ikegw/config.yaml', '/etc/ikegw/secrets/psk']);
    const c = conn(ref);
    expect(c.local).toBeUndefined();
    expect(c.remote).toBeUndefined();
    expect(c.send_cert).toBeUndefined();
  });

  describe('ipsec.auth: cert with ipsec.certSecret', () => {
    let r: Rendered;
    beforeAll(() => {
      r = ok(render(renderer, values({ auth: 'cert', certSecret: 'ikegw-tls' })));
    });

    it('projects tls.crt, tls.key and ca.crt read-only (0400) where config.yaml points', () => {
      validateBuiltins(r);
      none(r, 'Certificate');
      const { pod, c } = daemonPod(r);
      const files = projectedFiles(pod, c);
      expect(files.map((f) => [f.path, f.kind, f.name, f.key])).toEqual([
        ['/etc/ikegw/config.yaml', 'secret', 'vpn-config', 'config.yaml'],
        ['/etc/ikegw/tls.crt', 'secret', 'ikegw-tls', 'tls.crt'],
        ['/etc/ikegw/tls.key', 'secret', 'ikegw-tls', 'tls.key'],
        ['/etc/ikegw/peer-ca.crt', 'secret', 'ikegw-tls', 'ca.crt'],
      ]);
      for (const f of files) expect(f.mode, f.path).toBe(0o400);
      // top-level entries of the volume: the kubelet's ..data swap happens in /etc/ikegw itself,
      // the directory the daemon watches for each file (src/daemon/cert-watch.ts)
      for (const f of files.filter((x) => x.name === 'ikegw-tls'))
        expect(f.path).toMatch(/^\/etc\/ikegw\/[^/]+$/);
      expect(c.volumeMounts!.find((m) => m.mountPath === '/etc/ikegw')!.readOnly).toBe(true);
      // no subPath: the kubelet updates the files in place when the Secret changes
      for (const m of c.volumeMounts ?? []) expect(m.subPath, m.mountPath).toBeUndefined();
      expect(conn(r)).toEqual({
        ...conn(r),
        local: { auth: 'pubkey', certs: ['/etc/ikegw/tls.crt'], key: '/etc/ikegw/tls.key' },
        remote: { auth: 'pubkey', cacerts: ['/etc/ikegw/peer-ca.crt'] },
        send_cert: 'always',
      });
    });

    it('has no PSK anywhere: no psk key in the Secret, no psk in config.yaml, no checksum/psk', () => {
      const s = find<ISecret>(r, 'Secret', 'vpn-config');
      expect(Object.keys(s.data!)).toEqual(['config.yaml']);
      expect(conn(r).psk).toBeUndefined();
      expect(r.stdout).not.toContain(PSK);
      expect(r.stdout).not.toContain(Buffer.from(PSK).toString('base64'));
    });

    it('does not restart the pod when the certificate Secret changes (no checksum over it)', () => {
      const { annotations } = daemonPod(r);
      expect(Object.keys(annotations).filter((k) => k.startsWith('checksum/'))).toEqual(['checksum/config']);
      // The certificate Secret is not rendered by the chart, so nothing in the pod template can
      // follow its content; another Secret name changes only the volume source.
      const other = ok(render(renderer, values({ auth: 'cert', certSecret: 'ikegw-tls-2' })));
      expect(daemonPod(other).annotations).toEqual(annotations);
    });

    it('gives a config.yaml the daemon loads with real certificate files at the projected paths', () => {
      const { loaded } = loadAsPod(r);
      expect(loaded.ok ? [] : loaded.errors).toEqual([]);
      if (!loaded.ok) return;
      const c = loaded.value.engine.connections[0]!;
      expect(c.localAuth).toBe('pubkey');
      expect(c.remoteAuth).toBe('pubkey');
      expect(c.sendCert).toBe('always');
      // tls.crt as cert-manager writes it: ours, then the intermediate; ca.crt = the root
      expect(c.localCerts!.map((d) => Buffer.from(d).toString('hex'))).toEqual(
        [ours.der, pki.intermediate.der].map((d) => Buffer.from(d).toString('hex')),
      );
      expect(c.remoteCaCerts!.map((d) => Buffer.from(d).toString('hex'))).toEqual([
        Buffer.from(pki.root.der).toString('hex'),
      ]);
      // default ID: the subject DN of tls.crt
      expect(formatIdentity(c.localId)).toContain('CN=vpn.vpn');
      expect(c.remoteId).toBeUndefined();
    });
  });

  it('writes ipsec.localId and ipsec.remoteId, and the daemon checks localId against the certificate', () => {
    const r = ok(
      render(
        renderer,
        values({
          auth: 'cert',
          certSecret: 'ikegw-tls',
          localId: 'vpn.example.com',
          remoteId: 'O=somebody else, CN=gw.onprem.example',
          peerCa: { configMap: 'onprem-ca', key: 'bundle.pem' },
        }),
      ),
    );
    const c = conn(r);
    expect(c.local!.id).toBe('vpn.example.com');
    expect(c.remote!.id).toBe('O=somebody else, CN=gw.onprem.example');
    const { loaded, files } = loadAsPod(r);
    expect(loaded.ok ? [] : loaded.errors).toEqual([]);
    // the on-prem CA from the ConfigMap, not ca.crt of the TLS Secret
    expect(files.find((f) => f.path === '/etc/ikegw/peer-ca.crt')).toMatchObject({
      kind: 'configMap',
      name: 'onprem-ca',
      key: 'bundle.pem',
    });
    expect(files.filter((f) => f.name === 'ikegw-tls').map((f) => f.key)).toEqual(['tls.crt', 'tls.key']);
    if (loaded.ok) {
      const cc = loaded.value.engine.connections[0]!;
      // the on-prem root is the trust anchor, the cluster's root is not
      expect(cc.remoteCaCerts!.map((d) => Buffer.from(d).toString('hex'))).toEqual([
        Buffer.from(pki.otherRoot.der).toString('hex'),
      ]);
      expect(formatIdentity(cc.localId)).toBe('vpn.example.com');
      expect(formatIdentity(cc.remoteId)).toContain('CN=gw.onprem.example');
    }

    // A local ID that is not in our certificate: the daemon refuses the config and says why.
    const bad = ok(
      render(renderer, values({ auth: 'cert', certSecret: 'ikegw-tls', localId: 'other.example' })),
    );
    const refused = loadAsPod(bad).loaded;
    expect(refused.ok).toBe(false);
    if (!refused.ok) {
      expect(refused.errors.map((e) => e.message).join('\n')).toMatch(
        /connections\.onprem\.local\.id: is not in our certificate/,
      );
    }
  });

  it.each([
    [
      'local cert, remote psk',
      { auth: 'cert', remoteAuth: 'psk', certSecret: 'ikegw-tls' },
      ['config.yaml', 'psk', 'tls.crt', 'tls.key'],
      { local: 'pubkey', remote: undefined, psk: true },
    ],
    [
      'local psk, remote cert (CA from a ConfigMap)',
      { auth: 'psk', remoteAuth: 'cert', peerCa: { configMap: 'onprem-ca' } },
      ['config.yaml', 'psk', 'ca.crt'],
      { local: undefined, remote: 'pubkey', psk: true },
    ],
  ])('mixes PSK and certificates per direction: %s', (_what, ipsec, keys, want) => {
    const r = ok(render(renderer, values(ipsec, true)));
    validateBuiltins(r);
    const { pod, c } = daemonPod(r);
    expect(projectedFiles(pod, c).map((f) => f.key)).toEqual(keys);
    const cc = conn(r);
    expect(cc.local?.auth).toBe(want.local);
    expect(cc.remote?.auth).toBe(want.remote);
    expect(cc.psk !== undefined).toBe(want.psk);
    expect(cc.send_cert).toBe(want.local ? 'always' : undefined);
    expect(Object.keys(find<ISecret>(r, 'Secret', 'vpn-config').data!).sort()).toEqual([
      'config.yaml',
      'psk',
    ]);
    expect(daemonPod(r).annotations['checksum/psk']).toMatch(/^[0-9a-f]{64}$/);
    const { loaded } = loadAsPod(r);
    expect(loaded.ok ? [] : loaded.errors).toEqual([]);
  });

  it('gives a PSK connection a fixed local ID with ipsec.localId (printed for the on-prem side)', () => {
    const r = ok(render(renderer, values({ localId: 'vpn.example.com', remoteId: '203.0.113.7' }, true)));
    const c = conn(r);
    expect(c.local).toEqual({ id: 'vpn.example.com' });
    expect(c.remote).toEqual({ id: '203.0.113.7' });
    expect(c.psk).toEqual({ file: '/etc/ikegw/secrets/psk' });
    const { loaded } = loadAsPod(r);
    expect(loaded.ok ? [] : loaded.errors).toEqual([]);
    if (loaded.ok)
      expect(formatIdentity(loaded.value.engine.connections[0]!.localId)).toBe('vpn.example.com');
  });

  describe('ipsec.certManager.issuerRef', () => {
    it('renders a cert-manager Certificate writing the Secret the pod mounts', () => {
      const r = ok(
        render(
          renderer,
          values({
            auth: 'cert',
            certManager: {
              issuerRef: { name: 'ipsec-ca', kind: 'ClusterIssuer' },
              dnsNames: ['vpn.example.com'],
              ipAddresses: ['203.0.113.50'],
              subject: { organizations: ['Example'] },
              duration: '720h',
              renewBefore: '240h',
            },
          }),
        ),
      );
      validateBuiltins(r);
      const cert = find<K8sObject>(r, 'Certificate');
      expect(cert.metadata.name).toBe('vpn-ipsec');
      const spec = certificateShape(cert);
      expect(spec).toEqual({
        secretName: 'vpn-ipsec-tls',
        issuerRef: { name: 'ipsec-ca', kind: 'ClusterIssuer', group: 'cert-manager.io' },
        commonName: 'vpn.vpn',
        subject: { organizations: ['Example'] },
        dnsNames: ['vpn.example.com'],
        ipAddresses: ['203.0.113.50'],
        duration: '720h',
        renewBefore: '240h',
        privateKey: { algorithm: 'ECDSA', size: 256, rotationPolicy: 'Always' },
      });
      const { pod, c } = daemonPod(r);
      const files = projectedFiles(pod, c);
      for (const key of ['tls.crt', 'tls.key', 'ca.crt']) {
        expect(files.find((f) => f.key === key)?.name, key).toBe(spec.secretName);
      }
      const { loaded } = loadAsPod(r);
      expect(loaded.ok ? [] : loaded.errors).toEqual([]);
    });

    it('writes into ipsec.certSecret when set, with defaults and other key algorithms', () => {
      const defaults = ok(
        render(
          renderer,
          values({ auth: 'cert', certSecret: 'ikegw-tls', certManager: { issuerRef: { name: 'ca' } } }),
        ),
      );
      const spec = certificateShape(find<K8sObject>(defaults, 'Certificate'));
      expect(spec.secretName).toBe('ikegw-tls');
      expect(spec.issuerRef).toEqual({ name: 'ca', kind: 'Issuer', group: 'cert-manager.io' });
      expect(spec.duration).toBe('2160h');
      expect(spec.renewBefore).toBe('360h');
      expect(spec.privateKey).toEqual({ algorithm: 'ECDSA', size: 256, rotationPolicy: 'Always' });
      expect(spec.dnsNames).toBeUndefined();
      expect(spec.usages).toBeUndefined();

      for (const [privateKey, want] of [
        [
          { algorithm: 'RSA', size: 4096 },
          { algorithm: 'RSA', size: 4096, rotationPolicy: 'Always' },
        ],
        [
          { algorithm: 'RSA', size: null },
          { algorithm: 'RSA', rotationPolicy: 'Always' },
        ],
        [
          { algorithm: 'Ed25519', size: null },
          { algorithm: 'Ed25519', rotationPolicy: 'Always' },
        ],
        [
          { algorithm: 'ECDSA', size: 384 },
          { algorithm: 'ECDSA', size: 384, rotationPolicy: 'Always' },
        ],
      ] as const) {
        const r = ok(
          render(
            renderer,
            values({
              auth: 'cert',
              certManager: { issuerRef: { name: 'ca' }, privateKey, usages: ['digital signature'] },
            }),
          ),
        );
        const s = certificateShape(find<K8sObject>(r, 'Certificate'));
        expect(s.privateKey, JSON.stringify(privateKey)).toEqual(want);
        expect(s.usages).toEqual(['digital signature']);
      }
    });

    it('renders no Certificate with auth psk (the values are ignored) or without issuerRef.name', () => {
      none(ok(render(renderer, REFERENCE_CONFIG)), 'Certificate');
      none(ok(render(renderer, values({ auth: 'cert', certSecret: 'ikegw-tls' }))), 'Certificate');
    });
  });

  it('prints the on-prem side for certificates in NOTES.txt', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ikegw-chart-notes-'));
    dirs.push(dir);
    cpSync(chartDir, dir, { recursive: true });
    writeFileSync(
      join(dir, 'templates', 'zz-notes-under-test.yaml'),
      'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes-under-test\ndata:\n' +
        '  notes: {{ include "ikegw-vpn/templates/NOTES.txt" . | toJson }}\n',
    );
    const notesOf = (v: unknown) =>
      find<IConfigMap>(ok(render(renderer, v, { chart: dir })), 'ConfigMap', 'notes-under-test').data!.notes!;
    const cert = notesOf(
      values({ auth: 'cert', certManager: { issuerRef: { name: 'ca' } }, remoteId: 'CN=gw.onprem.example' }),
    );
    expect(cert).toContain('2. Certificates (no pre-shared key)');
    expect(cert).toContain("get secret vpn-ipsec-tls -o jsonpath='{.data.ca\\.crt}'");
    expect(cert).toContain('cacerts = ikegw-ca.pem');
    expect(cert).toContain('certs = onprem.pem');
    expect(cert).toContain('id = "CN=gw.onprem.example"');
    expect(cert).not.toContain('auth = psk');
    expect(cert).not.toContain('secrets {');
    expect(cert).not.toContain('WARNING');
    const anyPeer = notesOf(values({ auth: 'cert', certSecret: 'ikegw-tls' }));
    expect(anyPeer).toContain('WARNING: ipsec.remoteId is empty');
    const pskId = notesOf(values({ localId: 'vpn.example.com' }, true));
    expect(pskId).toMatch(/remote \{\n\s+id = "vpn.example.com"\n\s+auth = psk/);
    expect(pskId).not.toContain('Certificates');
    const mixed = notesOf(values({ auth: 'cert', remoteAuth: 'psk', certSecret: 'ikegw-tls' }, true));
    expect(mixed).toContain('2. The pre-shared key');
    expect(mixed).toContain('and certificates:');
    expect(mixed).toContain('secrets {');
    expect(mixed).toMatch(/remote \{\n\s+auth = pubkey\n\s+cacerts = ikegw-ca.pem/);
    expect(mixed).toMatch(/local \{\n\s+auth = psk/);
  });

  describe('values.schema.json', () => {
    const bad: Array<[string, Record<string, unknown>, boolean, string]> = [
      [
        'auth cert with neither certSecret nor certManager.issuerRef',
        { auth: 'cert' },
        false,
        'ipsec.certSecret',
      ],
      ['an unknown auth', { auth: 'x509', certSecret: 'ikegw-tls' }, true, 'ipsec.auth'],
      ['an unknown remoteAuth', { remoteAuth: 'eap' }, true, 'ipsec.remoteAuth'],
      ['remoteAuth cert without any CA', { remoteAuth: 'cert' }, true, 'ipsec.peerCa.secret'],
      [
        'auth cert, remoteAuth psk without a PSK',
        { auth: 'cert', remoteAuth: 'psk', certSecret: 'ikegw-tls' },
        false,
        'ipsec.psk',
      ],
      [
        'both peerCa.secret and peerCa.configMap',
        { auth: 'cert', certSecret: 'ikegw-tls', peerCa: { secret: 'a', configMap: 'b' } },
        false,
        'ipsec.peerCa',
      ],
      [
        'a certSecret that is no object name',
        { auth: 'cert', certSecret: 'My_Secret' },
        false,
        'ipsec.certSecret',
      ],
      [
        'a bad sendCert',
        { auth: 'cert', certSecret: 'ikegw-tls', sendCert: 'sometimes' },
        false,
        'ipsec.sendCert',
      ],
      [
        'an ECDSA key of 2048 bits',
        { auth: 'cert', certManager: { issuerRef: { name: 'ca' }, privateKey: { size: 2048 } } },
        false,
        'ipsec.certManager.privateKey.size',
      ],
      [
        'an unknown key algorithm',
        { auth: 'cert', certManager: { issuerRef: { name: 'ca' }, privateKey: { algorithm: 'DSA' } } },
        false,
        'ipsec.certManager.privateKey.algorithm',
      ],
      [
        'a duration that is not a Go duration',
        { auth: 'cert', certManager: { issuerRef: { name: 'ca' }, duration: '90d' } },
        false,
        'ipsec.certManager.duration',
      ],
    ];
    it.each(bad)('rejects %s', (_what, ipsec, keepPsk, value) => {
      expectNamesValue(render(renderer, values(ipsec, keepPsk)), value);
    });

    it('accepts certificates without a PSK, and a PSK with auth cert (unused)', () => {
      ok(render(renderer, values({ auth: 'cert', certSecret: 'ikegw-tls' })));
      ok(render(renderer, values({ auth: 'cert', certManager: { issuerRef: { name: 'ca' } } })));
      ok(render(renderer, values({ auth: 'cert', certSecret: 'ikegw-tls' }, true)));
      ok(render(renderer, values({ remoteAuth: 'cert', peerCa: { secret: 'onprem-ca' } }, true)));
    });

    it('fails with a named value in the templates too when the schema is skipped', () => {
      const dir = mkdtempSync(join(tmpdir(), 'ikegw-chart-noschema-'));
      dirs.push(dir);
      cpSync(chartDir, dir, { recursive: true });
      rmSync(join(dir, 'values.schema.json'));
      const msg = (ipsec: Record<string, unknown>, keepPsk = false) => {
        const res = render(renderer, values(ipsec, keepPsk), { chart: dir });
        expect(res.ok).toBe(false);
        return res.stderr;
      };
      expect(msg({ auth: 'cert' })).toContain('ipsec.certSecret: ipsec.auth cert needs');
      expect(msg({ auth: 'x509' }, true)).toContain('ipsec.auth: must be psk or cert, not "x509"');
      expect(msg({ remoteAuth: 'eap' }, true)).toContain('ipsec.remoteAuth: must be psk or cert');
      expect(msg({ remoteAuth: 'cert' }, true)).toContain('ipsec.peerCa: ipsec.remoteAuth cert needs');
      expect(msg({ auth: 'cert', remoteAuth: 'psk', certSecret: 'x' })).toContain(
        'ipsec.psk: a pre-shared key is required',
      );
      expect(msg({ auth: 'cert', certSecret: 'x', peerCa: { secret: 'a', configMap: 'b' } })).toContain(
        'ipsec.peerCa: set secret or configMap, not both',
      );
    });
  });
});
