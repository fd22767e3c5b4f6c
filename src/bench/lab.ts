// The benchmarks' lab: network namespaces wired with veth pairs, strongSwan's charon and ikegw
// daemons started in them, and the process measurements (CPU time, RSS) the benches report. One
// implementation for setup-rate.ts, rekey-latency.ts, userspace-esp.ts and kernel-path.ts.
//
//   const lab = await Lab.create({
//     prefix: 'ikgwb1234-', tmpPrefix: 'ikegw-bench-',
//     nodes: { init: { addrs: ['192.0.2.1/24 dev lt0'] }, resp: { addrs: ['192.0.2.2/24 dev lt0'] } },
//     links: [['init', 'lt0', 'resp', 'lt0']],
//   });
//   const charon = await lab.charon('resp', { name: 'resp', strongswanConf, swanctlConf });
//   const ikegw = lab.ikegw('init', 'ikegw', yaml);
//   ...
//   await lab.destroy();
//
// Namespaces are named <prefix><node>; everything else lives in one temporary directory. Every
// process runs in its own process group (stopped as a group) and destroy() removes what the lab
// created; BENCH_KEEP=1 keeps the directory (logs, configurations) and prints where it is.
import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
/** The ikegw executable next to the bench: the bundle the package and the image ship. */
export const CLI = resolve(HERE, '../bin/ikegw.js');
export const CHARON = '/usr/lib/ipsec/charon';
export const SWANCTL = '/usr/sbin/swanctl';
export const LIBIPSEC = '/usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---- commands ------------------------------------------------------------------------------------------

/** Runs a command to completion; throws with its output when it fails. */
export function sh(cmd: string, args: string[], o: { input?: string; timeoutMs?: number } = {}): string {
  return execFileSync(cmd, args, {
    encoding: 'utf8',
    stdio: ['pipe', 'pipe', 'pipe'],
    timeout: o.timeoutMs ?? 20_000,
    ...(o.input !== undefined ? { input: o.input } : {}),
  });
}

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command without blocking the event loop; never throws (see `code`). */
export function run(cmd: string, args: string[], timeoutMs = 30_000, input?: string): Promise<Run> {
  return new Promise((res) => {
    const child = execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      res({ code, stdout, stderr });
    });
    child.stdin?.on('error', () => {}); // a command that exits without reading its input
    if (input !== undefined) child.stdin?.end(input);
    else child.stdin?.end();
  });
}

/** `run`, throwing when the command fails. */
export async function must(cmd: string, args: string[], timeoutMs?: number, input?: string): Promise<string> {
  const r = await run(cmd, args, timeoutMs, input);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.code}\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

export async function waitFor(pred: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** The last lines of a file ('' when there is none). */
export function tailOf(f: string, n = 40): string {
  return existsSync(f) ? readFileSync(f, 'utf8').trimEnd().split('\n').slice(-n).join('\n') : '';
}

// ---- measurements ------------------------------------------------------------------------------------

/** User + system CPU time of a process, all its threads, in seconds (/proc/<pid>/stat, USER_HZ 100). */
export function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[11]) + Number(rest[12])) / 100;
}

/** Resident memory of a process in bytes. */
export function rss(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/**
 * The process running the executable `name` (charon, node) at or below `pid`: the benches start
 * it under `ip netns exec`, taskset, env and a shell. Matched by the executable, not the thread
 * name (Node 24 names its main thread "MainThread").
 */
export function findDescendant(pid: number, name: string): number | undefined {
  const q = [pid];
  while (q.length) {
    const p = q.shift()!;
    try {
      if (basename(readlinkSync(`/proc/${p}/exe`)) === name) return p;
      for (const t of readFileSync(`/proc/${p}/task/${p}/children`, 'utf8').trim().split(/\s+/))
        if (t) q.push(Number(t));
    } catch {
      /* gone */
    }
  }
  return undefined;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

// ---- the lab ---------------------------------------------------------------------------------------------

export interface NodeSpec {
  /** `ip addr add` arguments: '192.0.2.1/24 dev lt0'. */
  addrs?: string[];
  /** `ip route add` arguments: 'default via 10.10.1.1'. */
  routes?: string[];
  /** Written before the links are created, so that the new interfaces inherit `default` values. */
  sysctlsFirst?: string[];
  /** Written once the node is wired ('net.ipv4.ip_forward=1'). */
  sysctls?: string[];
}

export interface LabSpec<K extends string> {
  /** Namespace names are prefix + node name. */
  prefix: string;
  /** mkdtemp prefix of the lab's directory. */
  tmpPrefix: string;
  nodes: Record<K, NodeSpec>;
  /** veth pairs: [node, interface, node, interface]; both ends up. */
  links: Array<[K, string, K, string]>;
}

/** sysctl key=value -> a shell command writing /proc/sys (no procps needed, e.g. in the kernel VM). */
function sysctlCommand(kv: string): string {
  const eq = kv.indexOf('=');
  return `echo ${kv.slice(eq + 1)} > /proc/sys/${kv.slice(0, eq).replaceAll('.', '/')}`;
}

export interface SpawnOptions {
  /** stdout and stderr go to this file in the lab directory (default: discarded). */
  log?: string;
  /** stderr to ours (when there is no log file). */
  inheritStderr?: boolean;
  /** taskset -c CPU. */
  cpu?: string;
  env?: Record<string, string>;
}

export interface CharonOptions {
  /** Names its directory (charon-<name>) in the lab directory. */
  name: string;
  /** strongswan.conf, given the vici socket and the log file to put into it. */
  strongswanConf: (p: { vici: string; log: string }) => string;
  swanctlConf: string;
  cpu?: string;
}

export class Lab<K extends string> {
  readonly ns: Record<K, string>;
  readonly dir: string;
  readonly procs: ChildProcess[] = [];

  private constructor(private readonly spec: LabSpec<K>) {
    this.ns = Object.fromEntries(Object.keys(spec.nodes).map((k) => [k, `${spec.prefix}${k}`])) as Record<
      K,
      string
    >;
    this.dir = mkdtempSync(join(tmpdir(), spec.tmpPrefix));
  }

  /** Creates the namespaces, the links, addresses, routes and sysctls (removed again if that fails). */
  static async create<K extends string>(spec: LabSpec<K>): Promise<Lab<K>> {
    const lab = new Lab(spec);
    try {
      await lab.build();
    } catch (e) {
      await lab.destroy();
      throw e;
    }
    return lab;
  }

  private nodes(): K[] {
    return Object.keys(this.spec.nodes) as K[];
  }

  private async build(): Promise<void> {
    // Few process starts (each costs ~60 ms and more in the kernel VM): one `ip -batch` for the
    // namespaces, one for the links, one per namespace for addresses and routes.
    await must(
      'ip',
      ['-b', '-'],
      undefined,
      this.nodes()
        .map((n) => `netns add ${this.ns[n]}`)
        .join('\n'),
    );
    for (const n of this.nodes()) {
      const first = this.spec.nodes[n].sysctlsFirst ?? [];
      if (first.length) await this.exec(n, 'sh', ['-c', first.map(sysctlCommand).join(' && ')]);
    }
    if (this.spec.links.length)
      await must(
        'ip',
        ['-b', '-'],
        undefined,
        this.spec.links
          .map(
            ([a, ia, b, ib]) =>
              `link add ${ia} netns ${this.ns[a]} type veth peer name ${ib} netns ${this.ns[b]}`,
          )
          .join('\n'),
      );
    for (const n of this.nodes()) {
      const s = this.spec.nodes[n];
      const ifs = this.spec.links.flatMap(([a, ia, b, ib]) => [
        ...(a === n ? [ia] : []),
        ...(b === n ? [ib] : []),
      ]);
      const lines = [
        'link set lo up',
        ...ifs.map((i) => `link set ${i} up`),
        ...(s.addrs ?? []).map((a) => `addr add ${a}`),
        ...(s.routes ?? []).map((r) => `route add ${r}`),
      ];
      const pre = (s.sysctls ?? []).map((kv) => `${sysctlCommand(kv)} && `).join('');
      await must(
        'ip',
        ['netns', 'exec', this.ns[n], 'sh', '-c', `${pre}exec ip -b -`],
        undefined,
        lines.join('\n'),
      );
    }
  }

  /** Runs a command in a node's namespace; throws when it fails. */
  exec(node: K, cmd: string, args: string[], input?: string, timeoutMs?: number): Promise<string> {
    return must('ip', ['netns', 'exec', this.ns[node], cmd, ...args], timeoutMs, input);
  }

  /** Starts a long-running process in a node's namespace, in its own process group. */
  spawn(node: K, cmd: string, args: string[], o: SpawnOptions = {}): ChildProcess {
    const pre = o.cpu ? ['taskset', '-c', o.cpu] : [];
    const env = o.env ? ['env', ...Object.entries(o.env).map(([k, v]) => `${k}=${v}`)] : [];
    const fd = o.log ? openSync(join(this.dir, o.log), 'a') : undefined;
    try {
      const p = spawn('ip', ['netns', 'exec', this.ns[node], ...env, ...pre, cmd, ...args], {
        stdio: ['ignore', fd ?? 'ignore', fd ?? (o.inheritStderr ? 'inherit' : 'ignore')],
        detached: true,
      });
      this.procs.push(p);
      return p;
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }

  /**
   * `ikegw daemon -c <name>.yaml` in a node's namespace (this checkout's dist/bin/ikegw.js, this Node),
   * its output in <name>.log unless `log` says otherwise.
   */
  ikegw(
    node: K,
    name: string,
    yaml: string,
    o: { cpu?: string; nodeArgs?: string[]; log?: string | false; inheritStderr?: boolean } = {},
  ): { proc: ChildProcess; config: string; log: string | undefined } {
    const config = join(this.dir, `${name}.yaml`);
    writeFileSync(config, yaml);
    const log = o.log === false ? undefined : (o.log ?? `${name}.log`);
    const proc = this.spawn(node, process.execPath, [...(o.nodeArgs ?? []), CLI, 'daemon', '-c', config], {
      ...(log ? { log } : {}),
      ...(o.cpu ? { cpu: o.cpu } : {}),
      ...(o.inheritStderr ? { inheritStderr: true } : {}),
    });
    return { proc, config, log: log ? join(this.dir, log) : undefined };
  }

  /** strongSwan's charon in a node's namespace with a private /run, its swanctl.conf loaded. */
  async charon(node: K, o: CharonOptions): Promise<Charon> {
    const c = new Charon(this, node, o);
    await c.start();
    return c;
  }

  /** A pre-shared key file in the lab directory (0600). */
  pskFile(psk: string, name = 'psk'): string {
    const f = join(this.dir, name);
    writeFileSync(f, psk, { mode: 0o600 });
    return f;
  }

  /** SIGTERM to a process group, SIGKILL after timeoutMs. */
  async stop(p: ChildProcess, timeoutMs = 3000): Promise<void> {
    if (p.exitCode !== null || p.signalCode !== null || p.pid === undefined) return;
    const exited = new Promise((r) => p.once('exit', r));
    signalGroup(p, 'SIGTERM');
    await Promise.race([exited, sleep(timeoutMs)]);
    if (p.exitCode === null && p.signalCode === null) signalGroup(p, 'SIGKILL');
  }

  /** Stops every process the lab started, the last started first (a daemon before its peer). */
  async stopAll(timeoutMs = 3000): Promise<void> {
    for (const p of this.procs.splice(0).reverse()) await this.stop(p, timeoutMs);
  }

  /** Kills what still runs, deletes the namespaces and the directory (BENCH_KEEP=1 keeps it). */
  async destroy(): Promise<void> {
    for (const p of this.procs.splice(0))
      if (p.exitCode === null && p.signalCode === null) signalGroup(p, 'SIGKILL');
    for (const n of this.nodes()) await run('ip', ['netns', 'del', this.ns[n]]);
    if (process.env.BENCH_KEEP) console.log(`kept ${this.dir}`);
    else rmSync(this.dir, { recursive: true, force: true });
  }
}

function signalGroup(p: ChildProcess, sig: NodeJS.Signals): void {
  try {
    if (p.pid !== undefined) process.kill(-p.pid, sig);
  } catch {
    /* gone */
  }
}

/** A charon started by Lab.charon(). */
export class Charon {
  readonly dir: string;
  readonly vici: string;
  /** charon's filelog (the strongswan.conf given puts it there). */
  readonly logFile: string;
  proc: ChildProcess | undefined;

  constructor(
    private readonly lab: Lab<string>,
    private readonly node: string,
    private readonly o: CharonOptions,
  ) {
    this.dir = join(lab.dir, `charon-${o.name}`);
    this.vici = join(this.dir, 'run', 'charon.vici');
    this.logFile = join(this.dir, 'charon.log');
  }

  async start(): Promise<void> {
    const runDir = join(this.dir, 'run');
    mkdirSync(runDir, { recursive: true });
    for (const d of ['x509', 'x509ca', 'private', 'rsa', 'ecdsa', 'pkcs8', 'pubkey'])
      mkdirSync(join(this.dir, 'swanctl', d), { recursive: true });
    const conf = join(this.dir, 'strongswan.conf');
    writeFileSync(conf, this.o.strongswanConf({ vici: this.vici, log: this.logFile }));
    writeFileSync(join(this.dir, 'swanctl', 'swanctl.conf'), this.o.swanctlConf);
    writeFileSync(
      join(this.dir, 'client.conf'),
      'swanctl { load = random nonce pem pkcs1 pkcs8 x509 pubkey openssl }\n',
    );
    // charon writes its pid file and the default vici socket under /run: a private one per charon
    this.proc = this.lab.spawn(
      this.node,
      'sh',
      ['-c', 'mount --bind "$1" /run && shift && exec "$@"', 'wrap', runDir, CHARON],
      {
        log: join(`charon-${this.o.name}`, 'charon.out'),
        env: { STRONGSWAN_CONF: conf },
        ...(this.o.cpu ? { cpu: this.o.cpu } : {}),
      },
    );
    for (let i = 0; !existsSync(this.vici); i++) {
      if (i > 300 || this.proc.exitCode !== null)
        throw new Error(`charon (${this.o.name}) did not start:\n${tailOf(join(this.dir, 'charon.out'))}`);
      await sleep(50);
    }
    await this.swanctl(['--load-all', '--file', join(this.dir, 'swanctl', 'swanctl.conf')]);
  }

  /** swanctl against this charon. */
  swanctl(args: string[], timeoutMs = 60_000): Promise<string> {
    return must(
      'env',
      [
        `STRONGSWAN_CONF=${join(this.dir, 'client.conf')}`,
        `SWANCTL_DIR=${join(this.dir, 'swanctl')}`,
        SWANCTL,
        ...args,
        '--uri',
        `unix://${this.vici}`,
      ],
      timeoutMs,
    );
  }

  log(): string {
    try {
      return readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
  }

  pid(): number | undefined {
    return this.proc?.pid === undefined ? undefined : findDescendant(this.proc.pid, 'charon');
  }
}
