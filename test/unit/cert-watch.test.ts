// The certificate watcher (src/daemon/cert-watch.ts) on a real file system: a Secret laid out as
// the kubelet projects it (a timestamped directory, `..data` -> it, tls.crt -> ..data/tls.crt),
// the kubelet's atomic swap of `..data`, the configuration loaded by the daemon's own loader with
// the files' content; the debounce with a manual timer; a certificate that does not match the key
// (kept out, one warning, tried again on the next change); the poll alone; the key never logged.
import { X509Certificate } from 'node:crypto';
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CertWatcher, recordCredentialFiles, type SetTimer, watchDirs } from '../../src/daemon/cert-watch.js';
import { type ConfigResult, loadConfig } from '../../src/daemon/config.js';
import type { EngineConfig } from '../../src/ike/config.js';
import { diffConnections } from '../../src/ike/reconfigure.js';
import { type Issued, opensslAvailable, Pki } from '../helpers/pki.js';
import { until } from '../interop/wait.js';

const ok = opensslAvailable();
let base: string;
let pki: Pki;
let gen1: Issued;
let gen2: Issued;
let other: Issued;

beforeAll(() => {
  if (!ok) return;
  base = mkdtempSync(join(tmpdir(), 'ikegw-certwatch-'));
  pki = new Pki(join(base, 'pki'));
  const subject = 'C=CH, O=ikegw test, CN=gw.example';
  // a renewal as cert-manager does it: same subject, new key, new serial
  gen1 = pki.issue({ name: 'gen1', keyType: 'p256', subject, san: ['DNS:gw.example'] });
  gen2 = pki.issue({ name: 'gen2', keyType: 'p256', subject, san: ['DNS:gw.example'] });
  other = pki.issue({ name: 'other', keyType: 'p256', subject, san: ['DNS:gw.example'] });
}, 60_000);
afterAll(() => {
  if (base) rmSync(base, { recursive: true, force: true });
});

let seq = 0;
/** A kubelet-projected Secret: the files in a timestamped directory behind `..data`. */
class ProjectedSecret {
  private current: string;
  constructor(
    readonly dir: string,
    files: Record<string, string>,
  ) {
    mkdirSync(dir, { recursive: true });
    this.current = this.write(files);
    symlinkSync(this.current, join(dir, '..data'));
    // the kubelet links each top-level entry (a file, or the first directory of a nested path)
    const top = new Set(Object.keys(files).map((f) => f.split('/')[0]!));
    for (const t of top) symlinkSync(join('..data', t), join(dir, t));
  }
  private write(files: Record<string, string>): string {
    const ts = `..2026_12_07_00_00_${String(seq++).padStart(2, '0')}.123456789`;
    mkdirSync(join(this.dir, ts));
    for (const [name, src] of Object.entries(files)) {
      mkdirSync(dirname(join(this.dir, ts, name)), { recursive: true });
      copyFileSync(src, join(this.dir, ts, name));
    }
    return ts;
  }
  /** The kubelet's AtomicWriter: new directory, `..data_tmp` renamed over `..data`, old one removed. */
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

interface Line {
  level: 'info' | 'warn' | 'debug';
  obj: object;
  msg: string;
}

/** The daemon's reload path in small: the real loader, applied() on success, the reload diff. */
function harness(secret: ProjectedSecret, opts: Partial<ConstructorParameters<typeof CertWatcher>[0]> = {}) {
  const yaml = `
connections:
  onprem:
    remote_addrs: [198.51.100.1]
    local: { auth: pubkey, certs: ['${secret.path('tls.crt')}'], key: '${secret.path('tls.key')}' }
    remote: { auth: pubkey, cacerts: ['${secret.path('ca.crt')}'] }
    children:
      net: { local_ts: [10.10.0.0/16], remote_ts: [192.168.100.0/24] }
`;
  const lines: Line[] = [];
  const log = {
    info: (obj: object, msg: string) => lines.push({ level: 'info', obj, msg }),
    warn: (obj: object, msg: string) => lines.push({ level: 'warn', obj, msg }),
    debug: (obj: object, msg: string) => lines.push({ level: 'debug', obj, msg }),
  };
  const load = (): ConfigResult => recordCredentialFiles((o) => loadConfig(yaml, {}, o));
  const first = load();
  if (!first.ok) throw new Error(first.errors.map((e) => e.message).join('\n'));
  const state: { engine: EngineConfig } = { engine: first.value.engine };
  const w: CertWatcher = new CertWatcher({
    log,
    debounceMs: 50,
    pollMs: 0,
    ...opts,
    apply: async () => {
      const r = load();
      if (!r.ok) throw new Error(r.errors.map((e) => e.message).join('; '));
      const connections = diffConnections(state.engine, r.value.engine);
      state.engine = r.value.engine;
      w.applied(r, r.value.engine);
      return { connections };
    },
  });
  w.applied(first, first.value.engine);
  w.start();
  watchers.push(w);
  return { w, lines, state };
}

const watchers: CertWatcher[] = [];
afterEach(() => {
  for (const w of watchers.splice(0)) w.close();
});

const pair = (g: Issued, key = g.key) => ({ 'tls.crt': g.cert, 'tls.key': key, 'ca.crt': pki.root.cert });
const serialOf = (g: Issued) => new X509Certificate(g.der).serialNumber;

/** No line of the PEM body of any key appears in the log. */
function expectNoKey(lines: Line[]): void {
  const text = lines.map((l) => `${l.msg} ${JSON.stringify(l.obj)}`).join('\n');
  for (const g of [gen1, gen2, other])
    for (const l of readFileSync(g.key, 'latin1').split('\n'))
      if (l && !l.startsWith('-----')) expect(text).not.toContain(l.slice(0, 30));
}

describe.skipIf(!ok)('certificate watcher: rotation of a kubelet-projected Secret', () => {
  it('watches the files the configuration read, through their symlinks', () => {
    const s = new ProjectedSecret(join(base, 'files'), pair(gen1));
    const { w } = harness(s);
    expect(w.files().sort()).toEqual([s.path('ca.crt'), s.path('tls.crt'), s.path('tls.key')].sort());
  });

  it('a swap of ..data (new key and certificate) is applied once, with one info line', async () => {
    const s = new ProjectedSecret(join(base, 'swap'), pair(gen1));
    const { w, lines, state } = harness(s);
    s.swap(pair(gen2));
    await until('the rotation applied', () => (w.stats.applied === 1 ? true : undefined), {
      timeoutMs: 5000,
    });
    await w.idle();
    expect(Buffer.from(state.engine.connections[0]!.localCerts![0]!)).toEqual(Buffer.from(gen2.der));
    const info = lines.filter((l) => l.level === 'info');
    expect(info).toHaveLength(1);
    const msg = info[0]!.msg;
    // the files that changed (not ca.crt: same content), the new certificate's subject/serial/expiry
    expect(msg).toContain(s.path('tls.crt'));
    expect(msg).toContain(s.path('tls.key'));
    expect(msg).not.toContain('ca.crt');
    expect(msg).toContain(`onprem local "${gen2.subject}" serial ${serialOf(gen2)}, not after 20`);
    expect(msg).toContain('onprem updated (local.certs, local.key)');
    expect(msg).toContain('established SAs are kept');
    expect((info[0]!.obj as { fields: string[] }).fields.sort()).toEqual([
      'connections.onprem.local.certs[0]',
      'connections.onprem.local.key',
    ]);
    expect(lines.filter((l) => l.level === 'warn')).toEqual([]);
    expectNoKey(lines);
    // the new timestamped directory is watched: a second swap is seen as well
    s.swap(pair(gen1));
    await until('the second rotation', () => (w.stats.applied === 2 ? true : undefined), { timeoutMs: 5000 });
    expect(Buffer.from(state.engine.connections[0]!.localCerts![0]!)).toEqual(Buffer.from(gen1.der));
  });

  it('a certificate that does not match the key is not applied: old pair kept, one warning, retried on the next change', async () => {
    const s = new ProjectedSecret(join(base, 'mismatch'), pair(gen1));
    const { w, lines, state } = harness(s);
    s.swap(pair(gen2, other.key));
    await until('the rejection', () => (w.stats.rejected === 1 ? true : undefined), { timeoutMs: 5000 });
    await w.idle();
    expect(Buffer.from(state.engine.connections[0]!.localCerts![0]!)).toEqual(Buffer.from(gen1.der));
    const warn = lines.filter((l) => l.level === 'warn');
    expect(warn).toHaveLength(1);
    expect(warn[0]!.msg).toMatch(/does not belong to certificate/);
    expect(warn[0]!.msg).toMatch(/running certificates and keys stay/);
    // the same content again (a poll, a touch): not tried again, no second warning
    await w.check();
    expect(w.stats.rejected).toBe(1);
    expect(lines.filter((l) => l.level === 'warn')).toHaveLength(1);
    // the matching pair arrives: applied
    s.swap(pair(gen2));
    await until('the good pair applied', () => (w.stats.applied === 1 ? true : undefined), {
      timeoutMs: 5000,
    });
    expect(Buffer.from(state.engine.connections[0]!.localCerts![0]!)).toEqual(Buffer.from(gen2.der));
    expectNoKey(lines);
  });

  it('files replaced in place one after the other: the half-written pair is refused, the whole one applied', async () => {
    // plain files (no kubelet): the certificate first, the key a moment later
    const dir = join(base, 'inplace');
    mkdirSync(dir);
    for (const [n, src] of Object.entries(pair(gen1))) copyFileSync(src, join(dir, n));
    const s = { path: (f: string) => join(dir, f) } as ProjectedSecret;
    const { w, lines, state } = harness(s);
    writeFileSync(join(dir, 'tls.crt'), readFileSync(gen2.cert));
    await until('the half pair refused', () => (w.stats.rejected === 1 ? true : undefined), {
      timeoutMs: 5000,
    });
    writeFileSync(join(dir, 'tls.key'), readFileSync(gen2.key));
    await until('the whole pair applied', () => (w.stats.applied === 1 ? true : undefined), {
      timeoutMs: 5000,
    });
    expect(Buffer.from(state.engine.connections[0]!.localCerts![0]!)).toEqual(Buffer.from(gen2.der));
    expect(lines.filter((l) => l.level === 'warn')).toHaveLength(1);
    expect(lines.filter((l) => l.level === 'info')).toHaveLength(1);
  });

  it('items in a subdirectory of the volume (certs/tls.crt, certs -> ..data/certs): inotify sees the swap', async () => {
    const s = new ProjectedSecret(join(base, 'nested'), {
      'certs/tls.crt': gen1.cert,
      'certs/tls.key': gen1.key,
      'certs/ca.crt': pki.root.cert,
    });
    const { w, state } = harness({ path: (f: string) => s.path(`certs/${f}`) } as ProjectedSecret);
    expect(watchDirs(s.path('certs/tls.crt'))).toContain(s.dir);
    s.swap({ 'certs/tls.crt': gen2.cert, 'certs/tls.key': gen2.key, 'certs/ca.crt': pki.root.cert });
    await until('the rotation applied', () => (w.stats.applied === 1 ? true : undefined), {
      timeoutMs: 5000,
    });
    expect(Buffer.from(state.engine.connections[0]!.localCerts![0]!)).toEqual(Buffer.from(gen2.der));
  });

  it('the poll alone (no inotify) notices a swap', async () => {
    const s = new ProjectedSecret(join(base, 'poll'), pair(gen1));
    const { w, state } = harness(s, { inotify: false, pollMs: 50 });
    s.swap(pair(gen2));
    await until('the rotation applied by the poll', () => (w.stats.applied === 1 ? true : undefined), {
      timeoutMs: 5000,
    });
    expect(w.stats.events).toBe(0);
    expect(Buffer.from(state.engine.connections[0]!.localCerts![0]!)).toEqual(Buffer.from(gen2.der));
  });

  it('a swap to identical content applies nothing', async () => {
    const s = new ProjectedSecret(join(base, 'same'), pair(gen1));
    const { w, lines } = harness(s);
    s.swap(pair(gen1));
    await until('the check after the swap', () => (w.stats.checks >= 1 ? true : undefined), {
      timeoutMs: 5000,
    });
    await w.idle();
    expect(w.stats.applied + w.stats.rejected).toBe(0);
    expect(lines.filter((l) => l.level !== 'debug')).toEqual([]);
  });

  it('debounce: a burst of events is one check after the quiet time, at most MAX_WAIT after the first', async () => {
    const s = new ProjectedSecret(join(base, 'debounce'), pair(gen1));
    const timers: { fn: () => void; at: number; cancelled: boolean }[] = [];
    let now = 1000;
    const setTimer: SetTimer = (fn, ms) => {
      const t = { fn, at: now + ms, cancelled: false };
      timers.push(t);
      return () => {
        t.cancelled = true;
      };
    };
    const pending = () => timers.filter((t) => !t.cancelled).sort((a, b) => a.at - b.at);
    /** Moves the clock, firing the timers that come due on the way. */
    const advance = (ms: number) => {
      const end = now + ms;
      for (let t = pending()[0]; t && t.at <= end; t = pending()[0]) {
        now = t.at;
        t.cancelled = true;
        t.fn();
      }
      now = end;
    };
    const { w } = harness(s, { inotify: false, setTimer, now: () => now, debounceMs: 500, maxWaitMs: 2000 });
    // five events 100 ms apart: one check, 500 ms after the last
    for (let i = 0; i < 5; i++) {
      w.kick();
      advance(100);
    }
    expect(pending()).toHaveLength(1);
    advance(399);
    expect(w.stats.checks).toBe(0);
    advance(1);
    expect(w.stats.checks).toBe(1);
    await w.idle();
    // an event every 300 ms for 5 s: never quiet for 500 ms, yet checked every 2 s
    const first = now;
    const at: number[] = [];
    for (let i = 0; i < 17; i++) {
      const before = w.stats.checks;
      w.kick();
      advance(300);
      if (w.stats.checks > before) at.push(now - first);
      await w.idle();
    }
    expect(at).toEqual([2100, 4200]); // the first timer due at 2000 fires in the 300 ms step ending at 2100
    expect(w.stats.events).toBe(5 + 17);
  });
});
