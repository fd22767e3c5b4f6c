// Certificate rotation without a restart, against strongSwan 5.9.8 in network namespaces, with
// traffic through ikegw's userspace ESP data path:
//
//   pod 10.10.1.10 -- cluster (ikegw) -- onprem (charon, kernel-libipsec) -- onhost 192.168.100.10
//
// ikegw's certificate and key live in a directory laid out as the kubelet projects a
// cert-manager Secret (`..2026_.../tls.crt`, `..data` -> it, `tls.crt` -> `..data/tls.crt`). With the
// tunnel up and the pod pinging the on-prem host every 50 ms, the test swaps `..data` as the
// kubelet does to a renewed certificate (same subject, new key, new serial). ikegw logs one line
// and its metric shows the new expiry; the established SAs stay. An IKE_SA rekey carries no
// certificate (RFC 7296 §1.3.2: CREATE_CHILD_SA has no AUTH), so the peer sees the new certificate
// at the next IKE_AUTH: strongSwan reauthenticates (make-before-break) and its log shows the new
// certificate and the successful authentication with it; the plain IKE_SA rekey before that is
// shown to go on as before. Not one ping is lost. Then a swap to a certificate that does not belong
// to the key: refused with one warning, the running pair stays (the next reauthentication again
// uses the renewed certificate), no ping lost.
import { X509Certificate } from 'node:crypto';
import {
  copyFileSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { nativeAvailable } from '../../src/common/native.js';
import { type Issued, opensslAvailable, Pki } from '../helpers/pki.js';
import { CLI, IkegwProcess, NODE_FLAGS } from './ikegw-daemon.js';
import { type Charon, createLab, type Lab, type LabProcess, labAvailable } from './lab.js';
import { pingLosses, until, waitForSas } from './wait.js';

const lab0 = labAvailable();
const native = nativeAvailable();
const avail = !lab0.ok
  ? lab0
  : !opensslAvailable()
    ? { ok: false, why: 'no openssl' }
    : native.ok || process.env.CI
      ? { ok: true }
      : { ok: false, why: native.why };

const SUBJECT = 'C=CH, O=ikegw test, CN=gw.cluster.example';
const METRICS_PORT = 9464;

/** A kubelet-projected Secret volume (pkg/volume/util/atomic_writer.go's layout and swap). */
class ProjectedSecret {
  private current = '';
  private n = 0;
  constructor(
    readonly dir: string,
    files: Record<string, string>,
  ) {
    mkdirSync(dir, { recursive: true });
    this.current = this.write(files);
    symlinkSync(this.current, join(dir, '..data'));
    for (const f of Object.keys(files)) symlinkSync(join('..data', f), join(dir, f));
  }
  private write(files: Record<string, string>): string {
    const ts = `..2026_12_07_00_0${this.n++}_00.123456789`;
    mkdirSync(join(this.dir, ts));
    for (const [name, src] of Object.entries(files)) copyFileSync(src, join(this.dir, ts, name));
    return ts;
  }
  swap(files: Record<string, string>): void {
    const next = this.write(files);
    symlinkSync(next, join(this.dir, '..data_tmp'));
    renameSync(join(this.dir, '..data_tmp'), join(this.dir, '..data'));
    rmSync(join(this.dir, this.current), { recursive: true });
    this.current = next;
  }
  path(f: string): string {
    return join(this.dir, f);
  }
}

describe.skipIf(!avail.ok)(
  `certificate rotation: ikegw <-> strongSwan 5.9.8, userspace ESP${avail.ok ? '' : ` (skipped: ${avail.why})`}`,
  () => {
    let lab: Lab;
    let charon: Charon;
    let ikegw: IkegwProcess;
    let ping: LabProcess;
    let pki: Pki;
    let secret: ProjectedSecret;
    const c: Record<string, Issued> = {};
    const serial = (g: Issued) => new X509Certificate(g.der).serialNumber;
    const notAfter = (g: Issued) => new X509Certificate(g.der).validToDate.getTime() / 1000;
    const files = (g: Issued, key = g.key) => ({
      'tls.crt': g.cert,
      'tls.key': key,
      'ca.crt': pki.root.cert,
    });

    const swanConf = (remote: string) => `connections {
  cluster {
    remote_addrs = ${remote}
    send_cert = always
    local {
      auth = pubkey
      certs = ${c.swan!.cert}
    }
    remote {
      auth = pubkey
      id = "${SUBJECT}"
      cacerts = ${pki.root.cert}
    }
    children {
      net {
        local_ts = 192.168.100.0/24
        remote_ts = 10.10.0.0/16
        esp_proposals = aes128gcm16
      }
    }
  }
}
`;

    const ikegwConf = () => `connections:
  onprem:
    remote_addrs: ['${lab.addr.onpremWan}']
    local_addrs: ['${lab.addr.clusterWan}']
    local: { auth: pubkey, certs: ['${secret.path('tls.crt')}'], key: '${secret.path('tls.key')}' }
    remote: { auth: pubkey, id: 'C=CH, O=ikegw test, CN=swan.example', cacerts: ['${secret.path('ca.crt')}'] }
    dpd_delay: 0
    children:
      net:
        local_ts: [10.10.0.0/16]
        remote_ts: [192.168.100.0/24]
        esp_proposals: [aes128gcm16]
        start_action: none
datapath: userspace
listen: { address: '${lab.addr.clusterWan}', port: 500, nat_port: 4500 }
metrics: { listen: '127.0.0.1:${METRICS_PORT}' }
control: { socket: '${join(lab.dir, 'ikegw.sock')}' }
log: { level: info, format: json }
`;

    /** ikegw_certificate_not_after_seconds rows, scraped inside the cluster namespace. */
    async function certMetric(): Promise<Map<string, number>> {
      const script = `fetch('http://127.0.0.1:${METRICS_PORT}/metrics').then(r=>r.text()).then(t=>process.stdout.write(t))`;
      const r = await lab.exec('cluster', process.execPath, ['-e', script], { timeoutMs: 10_000 });
      const out = new Map<string, number>();
      for (const m of r.stdout.matchAll(/^ikegw_certificate_not_after_seconds\{([^}]*)\} (\S+)$/gm))
        out.set(m[1]!, Number(m[2]));
      return out;
    }
    const localRow = async () => [...(await certMetric())].find(([k]) => k.includes('which="local"'));

    const replies = () => (readFileSync(join(lab.dir, 'ping.log'), 'utf8').match(/bytes from/g) ?? []).length;
    const rotationLines = (kind: 'applied' | 'rejected') => ikegw.lines().filter((l) => l.rotation === kind);

    /** A serial as strongSwan prints it (lower case, bytes separated by colons). */
    const swanSerial = (g: Issued) => serial(g).toLowerCase().match(/../g)!.join(':');
    /** Serials of ikegw's certificates in strongSwan's certificate list (its cache of verified ones). */
    async function peerSerials(): Promise<string[]> {
      const out = (await charon.swanctl(['--list-certs'])).stdout;
      return [...out.matchAll(/subject: +"([^"]*)"[\s\S]*?serial: +(\S+)/g)]
        .filter((m) => m[1] === SUBJECT)
        .map((m) => m[2]!)
        .sort();
    }

    /** strongSwan reauthenticates (make-before-break); resolves with the new IKE_SA's SPI. */
    async function reauth(): Promise<string> {
      const before = (await charon.listSas())[0]!;
      const authsBefore = (charon.log().match(/authentication of '[^']*' with [^\n]* successful/g) ?? [])
        .length;
      await charon.swanctl(['--rekey', '--ike', 'cluster', '--reauth']);
      const sas = await waitForSas(
        charon,
        'one new IKE_SA with its CHILD_SA after the reauthentication',
        (l) =>
          l.length === 1 &&
          l[0]!.spiI !== before.spiI &&
          l[0]!.state === 'ESTABLISHED' &&
          l[0]!.children.some((ch) => ch.state === 'INSTALLED'),
        20_000,
      );
      // strongSwan checked the certificate ikegw authenticated with in this IKE_AUTH
      await charon.waitForLog(/authentication of '[^']*' with [^\n]* successful/, { count: authsBefore + 1 });
      return sas[0]!.spiI;
    }

    beforeAll(async () => {
      lab = await createLab({ nat: false, endHosts: true });
      pki = new Pki(join(lab.dir, 'pki'));
      // a renewal as cert-manager does it: same subject and names, a new key and serial
      for (const g of ['gen1', 'gen2'])
        c[g] = pki.issue({ name: g, keyType: 'p256', subject: SUBJECT, san: ['DNS:gw.cluster.example'] });
      c.stray = pki.issue({
        name: 'stray',
        keyType: 'p256',
        subject: SUBJECT,
        san: ['DNS:gw.cluster.example'],
      });
      c.swan = pki.issue({ name: 'swan', keyType: 'p256', subject: 'C=CH, O=ikegw test, CN=swan.example' });
      secret = new ProjectedSecret(join(lab.dir, 'secret'), files(c.gen1!));

      charon = await lab.startCharon('onprem', {
        swanctlConf: swanConf(lab.addr.clusterPublic),
        // reauthentication builds the new IKE_SA before the old one goes (5.9's default is no)
        strongswanExtra: '  make_before_break = yes',
        logLevels: { cfg: 2, esp: 2 },
      });
      copyFileSync(c.swan!.key, join(charon.dir, 'swanctl', 'private', basename(c.swan!.key)));
      await charon.swanctl(['--load-creds', '--noprompt']);
      const cfg = join(lab.dir, 'ikegw.yaml');
      writeFileSync(cfg, ikegwConf());
      const logFile = join(lab.dir, 'ikegw.log');
      ikegw = new IkegwProcess(
        lab.spawn('cluster', process.execPath, [...NODE_FLAGS, CLI, 'daemon', '-c', cfg], { logFile }),
        logFile,
      );
      await ikegw.waitFor((l) => typeof l.msg === 'string' && l.msg.startsWith('ikegw started'), 20_000);
      await charon.initiate('net');
      await ikegw.waitFor((l) => l.state === 'INSTALLED', 20_000);
      ping = lab.spawn('pod', 'ping', ['-n', '-D', '-O', '-i', '0.05', '-W', '1', lab.addr.onhost], {
        logFile: join(lab.dir, 'ping.log'),
      });
      await until('the first replies', () => (replies() > 0 ? true : undefined), { timeoutMs: 10_000 });
    }, 90_000);

    afterAll(async () => {
      await ping?.stop('SIGINT');
      await ikegw?.proc.stop('SIGTERM', 10_000);
      await lab?.teardown();
    });

    const dump = () =>
      onTestFailed(() => {
        console.log(`--- ikegw log ---\n${ikegw.text().slice(-8000)}`);
        console.log(`--- strongSwan log ---\n${charon.logTail(120)}`);
      });

    it('a kubelet swap to a renewed certificate: applied live, used by the next IKE_AUTH, no ping lost', async () => {
      dump();
      // the first IKE_AUTH: strongSwan got gen1
      await charon.waitForLog(new RegExp(`received end entity cert "${SUBJECT}"`));
      expect((await localRow())?.[1]).toBe(notAfter(c.gen1!));
      expect((await localRow())?.[0]).toContain(`serial="${serial(c.gen1!)}"`);
      const sa0 = (await charon.listSas())[0]!;

      /* the kubelet swaps ..data: gen2, with its own key */
      const t0 = Date.now();
      secret.swap(files(c.gen2!));
      const line = await ikegw.waitFor((l) => l.rotation === 'applied', 15_000);
      const swapToApplied = Date.parse(String(line.time)) - t0;
      expect(line.level).toBe('info');
      expect(line.msg).toContain(secret.path('tls.crt'));
      expect(line.msg).toContain(secret.path('tls.key'));
      expect(line.msg).toContain(`onprem local "${SUBJECT}" serial ${serial(c.gen2!)}, not after`);
      expect(line.msg).toContain('onprem updated (local.certs, local.key)');
      expect(rotationLines('applied')).toHaveLength(1);
      // the only info line of the rotation: no engine "reload:" line, no reload summary
      expect(
        ikegw.lines().filter((l) => (l.level as unknown) === 'info' && /^reload/.test(String(l.msg))),
      ).toEqual([]);
      // the metric follows at the next scrape
      const row = await localRow();
      expect(row?.[1]).toBe(notAfter(c.gen2!));
      expect(row?.[0]).toContain(`serial="${serial(c.gen2!)}"`);
      expect(row?.[0]).toContain('conn="onprem"');
      // nothing was torn down: the same IKE_SA at strongSwan
      expect((await charon.listSas())[0]!.spiI).toBe(sa0.spiI);

      /* an IKE_SA rekey (CREATE_CHILD_SA, no AUTH): the new IKE_SA, no certificate exchanged */
      const certsSeen = () => (charon.log().match(/received end entity cert/g) ?? []).length;
      const seen = certsSeen();
      await charon.swanctl(['--rekey', '--ike', 'cluster']);
      await waitForSas(
        charon,
        'the rekeyed IKE_SA',
        (l) => l.length === 1 && l[0]!.spiI !== sa0.spiI,
        15_000,
      );
      expect(certsSeen()).toBe(seen);

      const serialsAtStrongSwan = await peerSerials();
      /* strongSwan reauthenticates: IKE_AUTH with ikegw's new certificate */
      const mark = charon.log().length;
      await reauth();
      const after = charon.log().slice(mark);
      expect(after).toMatch(new RegExp(`received end entity cert "${SUBJECT}"`));
      expect(after).toMatch(new RegExp(`authentication of '${SUBJECT}' with ECDSA[^\\n]* successful`));
      // which certificate: strongSwan caches the certificates it verified; the renewed one (by its
      // serial) is there only since the reauthentication
      expect(serialsAtStrongSwan).toEqual([swanSerial(c.gen1!)]);
      expect(await peerSerials()).toEqual([swanSerial(c.gen1!), swanSerial(c.gen2!)].sort());

      /* no ping lost across swap, rekey and reauthentication */
      const n = replies();
      await until(
        '10 more replies after the reauthentication',
        () => (replies() >= n + 10 ? true : undefined),
        {
          timeoutMs: 15_000,
        },
      );
      console.log(`rotation: swap -> applied ${swapToApplied} ms (inotify + debounce)`);
    }, 120_000);

    it('a swap to a certificate that does not belong to the key: refused, one warning, the running pair stays', async () => {
      dump();
      secret.swap(files(c.stray!, c.gen2!.key));
      const warn = await ikegw.waitFor((l) => l.rotation === 'rejected', 15_000);
      expect(warn.level).toBe('warn');
      expect(warn.msg).toMatch(/does not belong to certificate/);
      expect(warn.msg).toMatch(/the running certificates and keys stay/);
      // no key material in the log, not a line of either key's PEM
      for (const g of [c.gen1!, c.gen2!, c.stray!])
        for (const l of readFileSync(g.key, 'latin1').split('\n'))
          if (l && !l.startsWith('-----')) expect(ikegw.text()).not.toContain(l.slice(0, 30));
      expect((await localRow())?.[0]).toContain(`serial="${serial(c.gen2!)}"`);
      /* the next reauthentication still authenticates with the running (gen2) certificate */
      await reauth();
      expect(await peerSerials()).toEqual([swanSerial(c.gen1!), swanSerial(c.gen2!)].sort());
      expect(rotationLines('rejected')).toHaveLength(1);
      expect(rotationLines('applied')).toHaveLength(1);

      const n = replies();
      await until('10 more replies', () => (replies() >= n + 10 ? true : undefined), { timeoutMs: 15_000 });
      await ping.stop('SIGINT');
      // every request up to the last one answered must have been answered (the requests still in
      // flight when SIGINT stops ping are not losses: under load a reply can take 100+ ms)
      const { last, lost } = pingLosses(readFileSync(join(lab.dir, 'ping.log'), 'utf8'));
      console.log(
        `rotation: ${last} pings every 50 ms across two swaps, an IKE rekey and two reauthentications, ${lost.length} lost${lost.length ? ` (icmp_seq ${lost.join(', ')})` : ''}`,
      );
      expect(last).toBeGreaterThanOrEqual(20);
      expect(lost).toEqual([]);
      // and strongSwan never got ESP on an SA it had not installed yet (ikegw, answering the
      // reauthentication, kept sending on the old CHILD_SA until the peer deleted it)
      expect(charon.log()).not.toContain('inbound ESP packet does not belong to an installed SA');
    }, 120_000);
  },
);
