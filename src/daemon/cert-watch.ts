// Certificate rotation without a restart, as cert-manager and the kubelet do it: the certificate,
// key and CA files the configuration names (local.certs, local.key, remote.cacerts — every file
// certs.ts reads, so CRL files too) are watched, and when their content changes the daemon reloads
// through the `ikegw reload` path (src/daemon/control.ts Operations.reload → the engine's
// `reconfigure`): a new certificate or key of ours is an in-place update that the next IKE_AUTH
// uses (new IKE_SAs, the peer's reauthentication); established SAs are not touched.
//
// How a change is noticed. The kubelet updates a mounted Secret by writing a new timestamped
// directory (`..2026_12_07_00_12_34.123456789/`) and renaming a `..data_tmp` symlink over `..data`;
// `tls.crt` is a symlink to `..data/tls.crt` that never changes itself, so watching the file does
// not work (inotify follows the old inode, which is deleted with its directory). Two triggers:
//   - inotify (fs.watch) on the directory that holds each configured path — it sees the `..data`
//     rename — and on the directory its target resolves to (a file edited in place);
//   - a poll every POLL_MS that reads the files and compares their SHA-256 with what the running
//     configuration was loaded from: the net under what inotify misses (network and FUSE file
//     systems, a directory replaced by a bind mount). A few files of a few kB: ~0.1 ms per poll.
// A trigger is debounced (DEBOUNCE_MS of quiet, at most MAX_WAIT_MS): a writer that replaces the
// certificate and then the key in two steps is seen once, when both are there. If it is seen
// between the two anyway, the pair does not match, the load fails, the running configuration stays
// and one warning says why; the same content is not tried again, the next change is.
//
// What is logged: one info line per applied rotation naming the files and the new certificate's
// subject, serial and not-after; one warning per rejected content. Never the files' content (the
// hashes stay in this object).
import { createHash } from 'node:crypto';
import { type FSWatcher, lstatSync, readFileSync, realpathSync, watch } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { ConnectionConfig, EngineConfig } from '../ike/config.js';
import { parseCert } from '../ike/crypto/x509.js';
import type { LoadOptions } from './config.js';

/** Quiet time after the last file event before the files are read. */
export const DEBOUNCE_MS = 500;
/** A stream of events does not postpone the check longer than this. */
export const MAX_WAIT_MS = 3_000;
/** The poll under inotify. */
export const POLL_MS = 5_000;

export interface CredentialRead {
  /** The path as the configuration names it. */
  file: string;
  /** The field that named it (`connections.gw.local.certs[0]`). */
  field: string;
  /** SHA-256 of the content that was loaded. */
  hash: string;
}

interface LogSink {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

/** A one-shot timer; returns its cancel function (tests pass a manual one). */
export type SetTimer = (fn: () => void, ms: number) => () => void;

const realTimer: SetTimer = (fn, ms) => {
  const t = setTimeout(fn, ms);
  t.unref();
  return () => clearTimeout(t);
};

export interface CertWatchOptions {
  /**
   * Applies the files as they are now: Operations.reload({ quiet: true }). Resolves with what it
   * did to the connections (for the log line) after `applied()` was called with the new load;
   * rejects with the reason when the configuration with the new files is invalid.
   */
  apply(): Promise<{
    connections: { conn: string; action: string; fields?: string[] }[];
    pending?: string[];
  }>;
  log: LogSink;
  debounceMs?: number;
  maxWaitMs?: number;
  /** 0: no poll. */
  pollMs?: number;
  /** false: no inotify (the poll alone). */
  inotify?: boolean;
  setTimer?: SetTimer;
  now?: () => number;
}

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

function contentHash(file: string): string {
  try {
    return sha256(readFileSync(file));
  } catch (e) {
    return `unreadable:${(e as NodeJS.ErrnoException).code ?? 'error'}`;
  }
}

/** "subject" serial S, not after ISO — of one DER certificate (never throws). */
export function describeCert(der: Uint8Array): string {
  try {
    const c = parseCert(der);
    return `"${c.subject}" serial ${c.x509.serialNumber}, not after ${c.x509.validToDate.toISOString()}`;
  } catch {
    return '(a certificate that does not parse)';
  }
}

/**
 * The directories whose entries decide what `file` reads: the one holding it, the one it resolves
 * to, and the parent of every symlinked directory on its way — an item under a subdirectory of a
 * projected volume (`certs/tls.crt`, `certs` -> `..data/certs`) changes when `..data` is renamed
 * in the volume's top directory.
 */
export function watchDirs(file: string): string[] {
  const abs = resolve(file);
  const out = new Set([dirname(abs)]);
  try {
    out.add(dirname(realpathSync(abs)));
  } catch {
    // gone right now: the directories above are watched, the poll does the rest
  }
  for (let d = dirname(abs); d !== dirname(d); d = dirname(d)) {
    try {
      if (lstatSync(d).isSymbolicLink()) out.add(dirname(d));
    } catch {
      // as above
    }
  }
  return [...out];
}

const sameBytes = (a: Uint8Array | undefined, b: Uint8Array | undefined): boolean =>
  a === b || (a !== undefined && b !== undefined && Buffer.from(a).equals(Buffer.from(b)));

/** The certificates a rotation brought in, per connection: our end entity and new CAs. */
export function newCertificates(before: EngineConfig | undefined, after: EngineConfig): string[] {
  const out: string[] = [];
  const old = new Map<string, ConnectionConfig>((before?.connections ?? []).map((c) => [c.name, c]));
  for (const c of after.connections) {
    const o = old.get(c.name);
    const ee = c.localCerts?.[0];
    if (ee && !sameBytes(ee, o?.localCerts?.[0])) out.push(`${c.name} local ${describeCert(ee)}`);
    for (const ca of c.remoteCaCerts ?? []) {
      if (!(o?.remoteCaCerts ?? []).some((x) => sameBytes(x, ca)))
        out.push(`${c.name} cacert ${describeCert(ca)}`);
    }
  }
  return out;
}

const readsOf = new WeakMap<object, CredentialRead[]>();

/**
 * Runs a configuration load with a hook that records the credential files it reads (with a hash of
 * what it read); `CertWatcher.applied()` with the same result makes them the watched set. Every
 * load of the daemon (start, reload) goes through this.
 */
export function recordCredentialFiles<T>(fn: (opts: LoadOptions) => T): T {
  const reads: CredentialRead[] = [];
  const r = fn({
    onCredentialFile: (file, field, bytes) => reads.push({ file, field, hash: sha256(bytes) }),
  });
  if (typeof r === 'object' && r !== null) readsOf.set(r, reads);
  return r;
}

export class CertWatcher {
  /** What the running configuration was loaded from: file → content hash. */
  private loaded = new Map<string, string>();
  private fields = new Map<string, string[]>();
  private engine: EngineConfig | undefined;
  /** The content last refused (file → hash), so that a poll does not try it again. */
  private rejected: Map<string, string> | undefined;
  private readonly watchers = new Map<string, FSWatcher>();
  private cancelDebounce: (() => void) | undefined;
  private firstKick = 0;
  private poll: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private closed = false;
  private readonly setTimer: SetTimer;
  private readonly now: () => number;
  /** For tests and the log: what happened so far. */
  readonly stats = { events: 0, checks: 0, applied: 0, rejected: 0 };

  constructor(private readonly o: CertWatchOptions) {
    this.setTimer = o.setTimer ?? realTimer;
    this.now = o.now ?? Date.now;
  }

  /** The configuration of `result` (a recordCredentialFiles result) is now running: watch its files. */
  applied(result: object, engine: EngineConfig): void {
    const reads = readsOf.get(result) ?? [];
    this.loaded = new Map(reads.map((r) => [r.file, r.hash]));
    this.fields = new Map();
    for (const r of reads) this.fields.set(r.file, [...(this.fields.get(r.file) ?? []), r.field]);
    this.engine = engine;
    this.rejected = undefined;
    if (!this.closed) this.rewatch();
  }

  /** The configuration fields that named these files (`connections.gw.local.key`). */
  private fieldsOf(files: string[]): string[] {
    return [...new Set(files.flatMap((f) => this.fields.get(f) ?? []))];
  }

  /** The files watched now. */
  files(): string[] {
    return [...this.loaded.keys()];
  }

  start(): void {
    this.rewatch();
    const every = this.o.pollMs ?? POLL_MS;
    if (every > 0) {
      this.poll = setInterval(() => void this.check(), every);
      this.poll.unref();
    }
  }

  close(): void {
    this.closed = true;
    this.cancelDebounce?.();
    if (this.poll) clearInterval(this.poll);
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
  }

  /** Settles when no check is running. */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  /** A file event: check after DEBOUNCE_MS of quiet (at most MAX_WAIT_MS after the first). */
  kick(): void {
    if (this.closed) return;
    this.stats.events++;
    const now = this.now();
    if (!this.cancelDebounce) this.firstKick = now;
    this.cancelDebounce?.();
    const left = this.firstKick + (this.o.maxWaitMs ?? MAX_WAIT_MS) - now;
    this.cancelDebounce = this.setTimer(
      () => {
        this.cancelDebounce = undefined;
        void this.check();
      },
      Math.max(0, Math.min(this.o.debounceMs ?? DEBOUNCE_MS, left)),
    );
  }

  private rewatch(): void {
    if (this.o.inotify === false) return;
    const want = new Set<string>();
    for (const f of this.loaded.keys()) for (const d of watchDirs(f)) want.add(d);
    for (const [dir, w] of this.watchers) {
      if (!want.has(dir)) {
        w.close();
        this.watchers.delete(dir);
      }
    }
    for (const dir of want) {
      if (this.watchers.has(dir)) continue;
      try {
        const w = watch(dir, { persistent: false }, () => this.kick());
        w.on('error', () => {
          // e.g. the kubelet removed the old timestamped directory: forget it, look again
          w.close();
          if (this.watchers.get(dir) === w) this.watchers.delete(dir);
          this.kick();
        });
        this.watchers.set(dir, w);
      } catch (e) {
        this.o.log.debug({ dir }, `cannot watch ${dir} (${(e as NodeJS.ErrnoException).code}); polling it`);
      }
    }
  }

  /** Reads the watched files; applies them when their content differs from what runs. */
  check(): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      try {
        do {
          this.again = false;
          await this.checkOnce();
        } while (this.again && !this.closed);
      } finally {
        this.running = undefined;
      }
    })();
    return this.running;
  }

  private async checkOnce(): Promise<void> {
    this.stats.checks++;
    const now = new Map([...this.loaded.keys()].map((f) => [f, contentHash(f)]));
    const differ = (m: Map<string, string> | undefined) => !m || [...now].some(([f, h]) => m.get(f) !== h);
    // whatever the outcome, the directories may have changed (a new timestamped one)
    this.rewatch();
    if (!differ(this.loaded) || !differ(this.rejected)) return;
    const changed = [...now].filter(([f, h]) => this.loaded.get(f) !== h).map(([f]) => f);
    const before = { loaded: this.loaded, engine: this.engine };
    const t0 = this.now();
    let outcome: Awaited<ReturnType<CertWatchOptions['apply']>>;
    try {
      outcome = await this.o.apply();
    } catch (e) {
      this.rejected = now;
      this.stats.rejected++;
      this.o.log.warn(
        { files: changed, fields: this.fieldsOf(changed), rotation: 'rejected' },
        `certificate files changed (${changed.join(', ')}) but were not applied, the running certificates and keys stay: ${
          (e as Error).message
        } — will try again when the files change`,
      );
      return;
    }
    this.stats.applied++;
    // applied() has run: this.loaded is what the new configuration was read from
    const files = [...new Set([...this.loaded.keys(), ...before.loaded.keys()])].filter(
      (f) => this.loaded.get(f) !== before.loaded.get(f),
    );
    const certs = this.engine ? newCertificates(before.engine, this.engine) : [];
    const conns = outcome.connections
      .filter((c) => c.action !== 'unchanged')
      .map((c) => `${c.conn} ${c.action}${c.fields?.length ? ` (${c.fields.join(', ')})` : ''}`);
    this.o.log.info(
      {
        files: files.length ? files : changed,
        fields: this.fieldsOf(files.length ? files : changed),
        certificates: certs,
        connections: conns,
        rotation: 'applied',
      },
      `certificate files changed (${(files.length ? files : changed).join(', ')}), applied in ${
        this.now() - t0
      } ms: ${certs.length ? certs.join('; ') : 'no new certificate'}${
        conns.length ? `; connection ${conns.join(', ')}` : ''
      }${outcome.pending?.length ? `; the configuration file also changed, needs a restart: ${outcome.pending.join('; ')}` : ''}${
        outcome.connections.some((c) => c.action === 're-established')
          ? ''
          : ' — new IKE_SAs and reauthentications use it, established SAs are kept'
      }`,
    );
  }
}
