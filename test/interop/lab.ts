// Interop lab: network namespaces with strongSwan's charon as a real IKEv2 peer, a masquerading
// NAT in between, tcpdump captures and a pcap reader that yields the raw IKE messages.
//
//   onhost ---- onprem (strongSwan) ---- nat ---- cluster (ikegw or strongSwan) ---- pod
//   192.168.100.10  .1 | 198.51.100.1  .254|172.30.0.1  172.30.0.2 | 10.10.1.1   10.10.1.10
//                                                                  10.96.0.1/32
// Without NAT, cluster (198.51.100.2) and onprem (198.51.100.1) share one link.
//
// Namespaces are named `ikgw<pid%10000><letter>-<role>` so that parallel runs never collide;
// every process this module starts is recorded by PID and killed on teardown() and at process
// exit, and the namespaces are deleted. Test traffic stays inside these namespaces.
//
// strongSwan mechanics (Debian 5.9.8, no kernel ESP on the test machines):
// - one charon per namespace, in a private mount namespace (`ip netns exec` makes one) with its
//   own directory bind-mounted on /run, because the pid file path /var/run/charon.pid is compiled
//   in; STRONGSWAN_CONF selects its strongswan.conf, charon.plugins.vici.socket its socket;
// - Debian's modular plugin config plus `kernel-libipsec { load = yes }` (userspace ESP over a
//   TUN device); kernel-libipsec needs a local address inside every local_ts, always uses UDP
//   encapsulation (it fakes NAT detection) and never turns a trap into an acquire, so tests
//   initiate explicitly;
// - swanctl gets its own small strongswan.conf so it does not try to load every plugin.
//
// Another strongSwan from a chroot (`startCharon(ns, { root })`, e.g. strongSwan 6.0.1 from the
// Debian 13 tree scripts/strongswan6-chroot.sh builds): charon and swanctl are the chroot's, run
// with `chroot ROOT` inside the same kind of private mount namespace, into which /proc, /dev, /sys
// (the namespace's), the charon's run dir (on ROOT/run) and the charon's lab directory (at its own
// path, on a tmpfs over ROOT/tmp) are bound — so every path in strongswan.conf, the log and the vici
// socket are the same inside and outside, and nothing is left behind in ROOT. (6.0.1's
// kernel-libipsec does turn a trap into an acquire, and with raw_esp = yes sends plain ESP when no
// NAT is detected; docs/interop.md lists what else differs.)

import { type ChildProcess, spawn as cpSpawn, execFileSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const CHARON = '/usr/lib/ipsec/charon';
export const SWANCTL = '/usr/sbin/swanctl';
const LIBIPSEC_PLUGIN = '/usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so';
const TCPDUMP = '/usr/bin/tcpdump';
/** Where scripts/strongswan6-chroot.sh puts its Debian 13 (strongSwan 6.0.1) tree by default. */
export const STRONGSWAN6_ROOT = '/var/tmp/ikegw-strongswan6';
/** The script that builds such a tree (`scripts/strongswan6-chroot.sh [DIR]`). */
export const STRONGSWAN6_SCRIPT = join(import.meta.dirname, '../../scripts/strongswan6-chroot.sh');
/** Written by the script into a complete tree. */
const STRONGSWAN6_STAMP = '.ikegw-strongswan6';

/** Fixed pre-shared key for lab peers (test-only). */
export const LAB_PSK = 'ikegw-lab-psk-0b7e6f3a91c2';

// ------------------------------------------------------------------------------------------
// errors, small process helpers

export class LabError extends Error {
  constructor(
    message: string,
    readonly detail?: string,
  ) {
    super(detail ? `${message}\n${detail}` : message);
    this.name = 'LabError';
  }
}

export interface ExecResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  /** Kill the command (SIGKILL) after this many ms; default 15 000. */
  timeoutMs?: number;
  /** Throw a LabError when the exit code is not 0 (default true). */
  check?: boolean;
  /** Written to stdin. */
  input?: string;
  env?: NodeJS.ProcessEnv;
}

/** Runs a command (no shell) with a hard time limit. */
export function run(cmd: string, args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const timeoutMs = opts.timeoutMs ?? 15_000;
  return new Promise((resolve, reject) => {
    const child = cpSpawn(cmd, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: opts.env ?? process.env,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new LabError(`${cmd} ${args.join(' ')}: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const res: ExecResult = {
        code,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      };
      if (timedOut) {
        reject(new LabError(`timed out after ${timeoutMs} ms: ${cmd} ${args.join(' ')}`, fmtOutput(res)));
      } else if ((opts.check ?? true) && code !== 0) {
        reject(new LabError(`exit ${code ?? signal}: ${cmd} ${args.join(' ')}`, fmtOutput(res)));
      } else {
        resolve(res);
      }
    });
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}

function fmtOutput(r: ExecResult): string {
  const parts: string[] = [];
  if (r.stdout.trim()) parts.push(`stdout:\n${r.stdout.trimEnd()}`);
  if (r.stderr.trim()) parts.push(`stderr:\n${r.stderr.trimEnd()}`);
  return parts.join('\n');
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The last `lines` lines of a file ('' when it does not exist). */
export function tail(path: string, lines = 60): string {
  if (!existsSync(path)) return '';
  const all = readFileSync(path, 'utf8').trimEnd().split('\n');
  return all.slice(-lines).join('\n');
}

// ------------------------------------------------------------------------------------------
// availability

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

export interface LabAvailability {
  ok: boolean;
  why?: string;
}

/**
 * Whether the interop lab can run here: root, `ip netns` usable, strongSwan's charon, swanctl and
 * the kernel-libipsec plugin installed (and tcpdump when `capture` is asked for). Synchronous so
 * suites can `describe.skipIf(!labAvailable().ok)`.
 */
export function labAvailable(opts: { capture?: boolean } = {}): LabAvailability {
  if (process.platform !== 'linux') return { ok: false, why: 'interop lab needs Linux' };
  if (!isRoot()) return { ok: false, why: 'interop lab needs root (network namespaces, charon)' };
  try {
    execFileSync('ip', ['netns', 'list'], { stdio: 'pipe', timeout: 5000 });
  } catch (e) {
    return { ok: false, why: `\`ip netns list\` failed: ${(e as Error).message}` };
  }
  const need: Array<[string, string]> = [
    [CHARON, 'strongswan-charon'],
    [SWANCTL, 'strongswan-swanctl'],
    [LIBIPSEC_PLUGIN, 'libcharon-extra-plugins (kernel-libipsec)'],
  ];
  if (opts.capture) need.push([TCPDUMP, 'tcpdump']);
  const missing = need.filter(([p]) => !existsSync(p));
  if (missing.length > 0) {
    return {
      ok: false,
      why: `missing ${missing.map(([p, pkg]) => `${p} (apt-get install ${pkg.split(' ')[0]})`).join(', ')}`,
    };
  }
  return { ok: true };
}

function onPath(cmd: string): boolean {
  return (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin')
    .split(':')
    .some((d) => d.length > 0 && existsSync(join(d, cmd)));
}

/** Whether `root` holds a complete tree made by scripts/strongswan6-chroot.sh. */
export function strongswanRootReady(root: string): boolean {
  return (
    existsSync(join(root, STRONGSWAN6_STAMP)) &&
    existsSync(join(root, CHARON)) &&
    existsSync(join(root, SWANCTL)) &&
    existsSync(join(root, LIBIPSEC_PLUGIN))
  );
}

/**
 * Whether the lab can run a charon from the chroot `root` (strongSwan 6.0.1 by default): root,
 * `ip netns`, `unshare` and `chroot`, and either a complete tree at `root` or debootstrap to build
 * one (ensureStrongswanRoot). The host's own strongSwan is not needed. Synchronous for skipIf.
 */
export function chrootLabAvailable(root: string = STRONGSWAN6_ROOT): LabAvailability {
  if (process.platform !== 'linux') return { ok: false, why: 'interop lab needs Linux' };
  if (!isRoot()) return { ok: false, why: 'interop lab needs root (network namespaces, chroot)' };
  try {
    execFileSync('ip', ['netns', 'list'], { stdio: 'pipe', timeout: 5000 });
  } catch (e) {
    return { ok: false, why: `\`ip netns list\` failed: ${(e as Error).message}` };
  }
  for (const cmd of ['unshare', 'chroot', 'mount']) {
    if (!onPath(cmd)) return { ok: false, why: `${cmd} not found (apt-get install util-linux coreutils)` };
  }
  if (!strongswanRootReady(root) && !onPath('debootstrap')) {
    return {
      ok: false,
      why: `no strongSwan chroot at ${root} and debootstrap is not installed to build one (apt-get install debootstrap; then scripts/strongswan6-chroot.sh ${root})`,
    };
  }
  return { ok: true };
}

/**
 * Makes sure `root` holds the chroot of scripts/strongswan6-chroot.sh, running the script when
 * it does not (debootstrap of Debian 13 plus strongSwan's packages: ~1-2 min the first time,
 * needs Debian's mirror). Resolves with the script's output (package and charon versions).
 */
export async function ensureStrongswanRoot(
  root: string = STRONGSWAN6_ROOT,
  opts: { timeoutMs?: number } = {},
): Promise<string> {
  const r = await run('bash', [STRONGSWAN6_SCRIPT, root], { timeoutMs: opts.timeoutMs ?? 600_000 });
  if (!strongswanRootReady(root)) {
    throw new LabError(`${STRONGSWAN6_SCRIPT} ${root} finished but the tree is incomplete`, fmtOutput(r));
  }
  return r.stdout;
}

// ------------------------------------------------------------------------------------------
// process registry: everything we start, killed at teardown and at process exit

export interface LabProcess {
  readonly pid: number;
  readonly ns: string;
  readonly logFile: string;
  readonly child: ChildProcess;
  /** Resolves with the exit code (or null when killed by a signal). */
  readonly exited: Promise<number | null>;
  readonly running: boolean;
  kill(signal?: NodeJS.Signals): void;
  /** SIGTERM (or `signal`), then SIGKILL after `timeoutMs` (default 5000). */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<void>;
}

class Proc implements LabProcess {
  readonly pid: number;
  readonly exited: Promise<number | null>;
  private done = false;

  constructor(
    readonly ns: string,
    readonly logFile: string,
    readonly child: ChildProcess,
  ) {
    if (child.pid === undefined) throw new LabError(`could not start process in ${ns}`);
    this.pid = child.pid;
    this.exited = new Promise((resolve) => {
      child.on('exit', (code) => {
        this.done = true;
        resolve(code);
      });
      child.on('error', () => {
        this.done = true;
        resolve(null);
      });
    });
  }

  get running(): boolean {
    return !this.done;
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    if (this.done) return;
    try {
      process.kill(this.pid, signal);
    } catch {
      // already gone
    }
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 5000): Promise<void> {
    if (this.done) return;
    this.kill(signal);
    const t = await Promise.race([this.exited.then(() => true), sleep(timeoutMs).then(() => false)]);
    if (!t && !this.done) {
      this.kill('SIGKILL');
      await Promise.race([this.exited, sleep(2000)]);
    }
  }
}

interface LiveLab {
  namespaces: string[];
  procs: Proc[];
  dir: string;
  keep: boolean;
}
const liveLabs = new Set<LiveLab>();
let exitHookInstalled = false;
const SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;

function onSignal(sig: NodeJS.Signals): void {
  for (const lab of liveLabs) cleanupSync(lab);
  // Vitest ends its fork workers with SIGTERM: clean up, then die of the signal as if we had
  // not been listening (unless someone else handles it).
  if (process.listenerCount(sig) === 1) {
    process.removeListener(sig, onSignal);
    process.kill(process.pid, sig);
  }
}

function onExit(): void {
  for (const lab of liveLabs) cleanupSync(lab);
}

/** Cleans up live labs at process exit and on SIGTERM/SIGINT/SIGHUP, while any lab is live. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', onExit);
  for (const s of SIGNALS) process.on(s, onSignal);
}

function removeExitHookIfIdle(): void {
  if (!exitHookInstalled || liveLabs.size > 0) return;
  exitHookInstalled = false;
  process.removeListener('exit', onExit);
  for (const s of SIGNALS) process.removeListener(s, onSignal);
}

function cleanupSync(lab: LiveLab): void {
  for (const p of lab.procs) {
    if (p.running && isAlive(p.pid)) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
  for (const ns of lab.namespaces) {
    try {
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore', timeout: 5000 });
    } catch {
      // not there
    }
  }
  if (!lab.keep) rmSync(lab.dir, { recursive: true, force: true });
  liveLabs.delete(lab);
}

// ------------------------------------------------------------------------------------------
// topology

export type Role = 'cluster' | 'nat' | 'onprem' | 'pod' | 'onhost';

export interface LabOptions {
  /** Put a masquerading NAT (random source ports, like a cloud NAT) in front of one side. */
  nat: boolean;
  /**
   * Which side sits behind the NAT (default 'cluster'). 'onprem': the on-prem gateway is behind it
   * with UDP 500/4500 forwarded to it (a publicly reachable on-prem endpoint, as the reference
   * chart requires); the cluster side is directly on the outside segment at 198.51.100.2, and
   * `addr.onpremPublic` (198.51.100.254) is the address the cluster connects to.
   */
  natSide?: 'cluster' | 'onprem';
  /** IPv6 topologies are not implemented yet. */
  ipv6?: false;
  /** Create the end hosts `pod` (10.10.1.10) and `onhost` (192.168.100.10); default false. */
  endHosts?: boolean;
  /** Keep the lab directory (configs, logs, pcaps) after teardown; default: env IKEGW_LAB_KEEP=1. */
  keep?: boolean;
}

export interface LabAddresses {
  /** cluster gateway WAN: 172.30.0.2 behind the NAT, 198.51.100.2 without. */
  clusterWan: string;
  clusterLan: string;
  /** 10.96.0.1/32 on the cluster LAN interface (a local address inside a service-range TS). */
  clusterSvc: string;
  /** What onprem sees as the cluster's address: the NAT's outside address, or clusterWan. */
  clusterPublic: string;
  natInside?: string;
  natOutside?: string;
  onpremWan: string;
  /** What the cluster sees as the on-prem gateway's address: the NAT's outside address with natSide 'onprem', else onpremWan. */
  onpremPublic: string;
  onpremLan: string;
  pod: string;
  onhost: string;
}

export interface LabNets {
  clusterLan: string;
  clusterPods: string;
  clusterServices: string;
  onpremLan: string;
}

export interface LabIfaces {
  clusterWan: string;
  clusterLan: string;
  natInside: string;
  natOutside: string;
  onpremWan: string;
  onpremLan: string;
  pod: string;
  onhost: string;
}

export interface SpawnOptions {
  /** stdout+stderr go here; default `<lab dir>/<ns>-<cmd>-<n>.log`. */
  logFile?: string;
  env?: Record<string, string>;
}

export interface Lab {
  readonly prefix: string;
  readonly nat: boolean;
  /** Namespace names by role (`nat`, `pod`, `onhost` only when created). */
  readonly ns: { cluster: string; onprem: string; nat?: string; pod?: string; onhost?: string } & Record<
    string,
    string | undefined
  >;
  readonly addr: LabAddresses;
  readonly nets: LabNets;
  readonly iface: LabIfaces;
  /** Working directory of this lab (configs, logs, pcaps). */
  readonly dir: string;
  /**
   * Adds a namespace `<prefix>-<role>` (lo up, IPv6 off) that the lab owns from then on: exec,
   * spawn and ping accept its role, teardown deletes it. Returns its name.
   */
  addNamespace(role: string): Promise<string>;
  /** Runs `cmd args` in a namespace (role name or namespace name). Throws on exit != 0 unless check=false. */
  exec(ns: string, cmd: string, args: readonly string[], opts?: ExecOptions): Promise<ExecResult>;
  /** Starts a long-running process in a namespace; its PID is recorded and it is killed on teardown. */
  spawn(ns: string, cmd: string, args: readonly string[], opts?: SpawnOptions): LabProcess;
  startCharon(ns: string, opts: CharonOptions): Promise<Charon>;
  capture(ns: string, iface: string, filter?: string): Promise<Capture>;
  /** Pings `dst` from namespace `ns`; resolves with the number of replies (never throws on loss). */
  ping(
    ns: string,
    dst: string,
    opts?: { count?: number; intervalS?: number; waitS?: number },
  ): Promise<number>;
  /** Stops every recorded process, deletes the namespaces and (unless kept) the lab directory. */
  teardown(): Promise<void>;
}

const ADDR = {
  natWanCluster: '172.30.0.2',
  natInside: '172.30.0.1',
  natOutside: '198.51.100.254',
  directCluster: '198.51.100.2',
  clusterLan: '10.10.1.1',
  clusterSvc: '10.96.0.1',
  onpremWan: '198.51.100.1',
  onpremLan: '192.168.100.1',
  pod: '10.10.1.10',
  onhost: '192.168.100.10',
} as const;

let labCounter = 0;

function existingNamespaces(): Set<string> {
  try {
    const out = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8', timeout: 5000 });
    return new Set(
      out
        .split('\n')
        .map((l) => l.split(' ')[0] ?? '')
        .filter((s) => s.length > 0),
    );
  } catch {
    return new Set();
  }
}

function pickPrefix(): string {
  const have = existingNamespaces();
  const base = `ikgw${process.pid % 10000}`;
  for (let i = 0; i < 26 * 26; i++) {
    const n = labCounter++;
    const letters =
      n < 26
        ? String.fromCharCode(97 + n)
        : `${String.fromCharCode(97 + Math.floor(n / 26) - 1)}${String.fromCharCode(97 + (n % 26))}`;
    const prefix = `${base}${letters}`;
    if (![...have].some((ns) => ns.startsWith(`${prefix}-`))) return prefix;
  }
  throw new LabError('no free namespace prefix');
}

/** Creates the namespaces, links, addresses, routes and (with `nat`) the nftables masquerade. */
export async function createLab(opts: LabOptions): Promise<Lab> {
  const lab = new LabImpl(opts);
  try {
    await lab.setup();
  } catch (e) {
    await lab.teardown();
    throw e;
  }
  return lab;
}

class LabImpl implements Lab {
  readonly prefix: string;
  readonly nat: boolean;
  readonly ns: Lab['ns'];
  readonly natSide: 'cluster' | 'onprem';
  readonly addr: LabAddresses;
  readonly nets: LabNets = {
    clusterLan: '10.10.1.0/24',
    clusterPods: '10.10.0.0/16',
    clusterServices: '10.96.0.0/12',
    onpremLan: '192.168.100.0/24',
  };
  readonly iface: LabIfaces = {
    clusterWan: 'wan0',
    clusterLan: 'lan0',
    natInside: 'in0',
    natOutside: 'out0',
    onpremWan: 'wan0',
    onpremLan: 'lan0',
    pod: 'eth0',
    onhost: 'eth0',
  };
  readonly dir: string;
  private readonly live: LiveLab;
  private readonly endHosts: boolean;
  private spawnCount = 0;
  private torn = false;
  private charons: CharonImpl[] = [];

  constructor(opts: LabOptions) {
    if (opts.ipv6) throw new LabError('IPv6 lab topologies are not implemented');
    installExitHook();
    this.prefix = pickPrefix();
    this.nat = opts.nat;
    this.natSide = opts.natSide ?? 'cluster';
    this.endHosts = opts.endHosts ?? false;
    const p = this.prefix;
    this.ns = {
      cluster: `${p}-cluster`,
      onprem: `${p}-onprem`,
      ...(opts.nat ? { nat: `${p}-nat` } : {}),
      ...(this.endHosts ? { pod: `${p}-pod`, onhost: `${p}-onhost` } : {}),
    };
    const clusterNatted = opts.nat && this.natSide === 'cluster';
    const onpremNatted = opts.nat && this.natSide === 'onprem';
    const clusterWan = clusterNatted ? ADDR.natWanCluster : ADDR.directCluster;
    const onpremWan = onpremNatted ? ADDR.natWanCluster : ADDR.onpremWan;
    this.addr = {
      clusterWan,
      clusterLan: ADDR.clusterLan,
      clusterSvc: ADDR.clusterSvc,
      clusterPublic: clusterNatted ? ADDR.natOutside : clusterWan,
      ...(opts.nat ? { natInside: ADDR.natInside, natOutside: ADDR.natOutside } : {}),
      onpremWan,
      onpremPublic: onpremNatted ? ADDR.natOutside : onpremWan,
      onpremLan: ADDR.onpremLan,
      pod: ADDR.pod,
      onhost: ADDR.onhost,
    };
    this.dir = mkdtempSync(join(tmpdir(), `${p}-`));
    this.live = {
      namespaces: [],
      procs: [],
      dir: this.dir,
      keep: opts.keep ?? process.env.IKEGW_LAB_KEEP === '1',
    };
    liveLabs.add(this.live);
  }

  private async ip(args: string[]): Promise<void> {
    await run('ip', args, { timeoutMs: 10_000 });
  }

  private async addNs(name: string): Promise<void> {
    this.live.namespaces.push(name);
    await this.ip(['netns', 'add', name]);
    await this.ip(['-n', name, 'link', 'set', 'lo', 'up']);
    // IPv4-only lab: without this, IPv6 link-local addresses finishing DAD ~1 s after the links
    // come up make charon send MOBIKE address-list updates at random points of a test.
    await this.exec(name, 'sysctl', [
      '-qw',
      'net.ipv6.conf.all.disable_ipv6=1',
      'net.ipv6.conf.default.disable_ipv6=1',
    ]);
  }

  private async veth(nsA: string, ifA: string, nsB: string, ifB: string): Promise<void> {
    await this.ip(['-n', nsA, 'link', 'add', ifA, 'type', 'veth', 'peer', 'name', ifB, 'netns', nsB]);
    await this.ip(['-n', nsA, 'link', 'set', ifA, 'up']);
    await this.ip(['-n', nsB, 'link', 'set', ifB, 'up']);
  }

  /** A LAN interface without a host behind it (no `dummy` module here: a veth whose peer stays in `ns`). */
  private async stubLink(ns: string, ifName: string): Promise<void> {
    const peer = `${ifName}p`;
    await this.ip(['-n', ns, 'link', 'add', ifName, 'type', 'veth', 'peer', 'name', peer]);
    await this.ip(['-n', ns, 'link', 'set', ifName, 'up']);
    await this.ip(['-n', ns, 'link', 'set', peer, 'up']);
  }

  private async router(ns: string): Promise<void> {
    await this.exec(ns, 'sysctl', [
      '-qw',
      'net.ipv4.ip_forward=1',
      'net.ipv4.conf.all.rp_filter=0',
      'net.ipv4.conf.default.rp_filter=0',
    ]);
  }

  async setup(): Promise<void> {
    const { ns, iface: i, addr: a } = this;
    for (const n of Object.values(ns)) if (n) await this.addNs(n);
    if (ns.nat && this.natSide === 'onprem') {
      await this.veth(ns.cluster, i.clusterWan, ns.nat, i.natOutside);
      await this.veth(ns.nat, i.natInside, ns.onprem, i.onpremWan);
      await this.ip(['-n', ns.nat, 'addr', 'add', `${ADDR.natOutside}/24`, 'dev', i.natOutside]);
      await this.ip(['-n', ns.nat, 'addr', 'add', `${ADDR.natInside}/24`, 'dev', i.natInside]);
      await this.ip(['-n', ns.cluster, 'addr', 'add', `${a.clusterWan}/24`, 'dev', i.clusterWan]);
      await this.router(ns.nat);
      await this.exec(ns.nat, 'nft', ['-f', '-'], {
        input: natRuleset(i.natInside, i.natOutside, a.onpremWan),
      });
    } else if (ns.nat) {
      await this.veth(ns.onprem, i.onpremWan, ns.nat, i.natOutside);
      await this.veth(ns.nat, i.natInside, ns.cluster, i.clusterWan);
      await this.ip(['-n', ns.nat, 'addr', 'add', `${ADDR.natOutside}/24`, 'dev', i.natOutside]);
      await this.ip(['-n', ns.nat, 'addr', 'add', `${ADDR.natInside}/24`, 'dev', i.natInside]);
      await this.ip(['-n', ns.cluster, 'addr', 'add', `${a.clusterWan}/24`, 'dev', i.clusterWan]);
      await this.ip(['-n', ns.cluster, 'route', 'add', 'default', 'via', ADDR.natInside]);
      await this.router(ns.nat);
      await this.exec(ns.nat, 'nft', ['-f', '-'], { input: natRuleset(i.natInside, i.natOutside) });
    } else {
      await this.veth(ns.onprem, i.onpremWan, ns.cluster, i.clusterWan);
      await this.ip(['-n', ns.cluster, 'addr', 'add', `${a.clusterWan}/24`, 'dev', i.clusterWan]);
    }
    await this.ip(['-n', ns.onprem, 'addr', 'add', `${a.onpremWan}/24`, 'dev', i.onpremWan]);
    if (ns.nat && this.natSide === 'onprem') {
      await this.ip(['-n', ns.onprem, 'route', 'add', 'default', 'via', ADDR.natInside]);
    }
    // The cluster LAN interface exists even without end hosts: kernel-libipsec needs a local
    // address inside every local_ts.
    if (ns.pod) {
      await this.veth(ns.cluster, i.clusterLan, ns.pod, i.pod);
      await this.ip(['-n', ns.pod, 'addr', 'add', `${a.pod}/24`, 'dev', i.pod]);
      await this.ip(['-n', ns.pod, 'route', 'add', 'default', 'via', a.clusterLan]);
    } else {
      await this.stubLink(ns.cluster, i.clusterLan);
    }
    await this.ip(['-n', ns.cluster, 'addr', 'add', `${a.clusterLan}/24`, 'dev', i.clusterLan]);
    await this.ip(['-n', ns.cluster, 'addr', 'add', `${a.clusterSvc}/32`, 'dev', i.clusterLan]);
    if (ns.onhost) {
      await this.veth(ns.onprem, i.onpremLan, ns.onhost, i.onhost);
      await this.ip(['-n', ns.onhost, 'addr', 'add', `${a.onhost}/24`, 'dev', i.onhost]);
      await this.ip(['-n', ns.onhost, 'route', 'add', 'default', 'via', a.onpremLan]);
    } else {
      await this.stubLink(ns.onprem, i.onpremLan);
    }
    await this.ip(['-n', ns.onprem, 'addr', 'add', `${a.onpremLan}/24`, 'dev', i.onpremLan]);
    await this.router(ns.cluster);
    await this.router(ns.onprem);
  }

  async addNamespace(role: string): Promise<string> {
    if (this.ns[role]) throw new LabError(`lab ${this.prefix} has a namespace ${role} already`);
    const name = `${this.prefix}-${role}`;
    this.ns[role] = name;
    await this.addNs(name);
    return name;
  }

  resolveNs(ns: string): string {
    const byRole = this.ns[ns];
    if (byRole) return byRole;
    if (Object.values(this.ns).includes(ns)) return ns;
    throw new LabError(`${ns} is not a namespace of lab ${this.prefix}`);
  }

  exec(ns: string, cmd: string, args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    return run('ip', ['netns', 'exec', this.resolveNs(ns), cmd, ...args], opts);
  }

  spawn(ns: string, cmd: string, args: readonly string[], opts: SpawnOptions = {}): LabProcess {
    if (this.torn) throw new LabError('lab already torn down');
    const name = this.resolveNs(ns);
    const n = this.spawnCount++;
    const base = cmd.split('/').pop() ?? 'proc';
    const logFile = opts.logFile ?? join(this.dir, `${name}-${base}-${n}.log`);
    const fd = openSync(logFile, 'a');
    let child: ChildProcess;
    try {
      child = cpSpawn('ip', ['netns', 'exec', name, cmd, ...args], {
        detached: true, // own session / process group, not hit by signals meant for vitest
        stdio: ['ignore', fd, fd],
        env: { ...process.env, ...opts.env },
      });
    } finally {
      closeSync(fd);
    }
    const proc = new Proc(name, logFile, child);
    child.unref();
    this.live.procs.push(proc);
    return proc;
  }

  async ping(
    ns: string,
    dst: string,
    opts: { count?: number; intervalS?: number; waitS?: number } = {},
  ): Promise<number> {
    const count = opts.count ?? 3;
    const interval = opts.intervalS ?? 0.2;
    const wait = opts.waitS ?? 1;
    // -w: wait for the replies up to a deadline after the last request (with -c alone ping quits
    // 2 RTTs after its last request, and a reply a loaded machine delays a little counts as lost)
    const deadline = Math.ceil(count * interval + wait);
    const r = await this.exec(
      ns,
      'ping',
      [
        '-n',
        '-q',
        '-c',
        String(count),
        '-i',
        String(interval),
        '-W',
        String(wait),
        '-w',
        String(deadline),
        dst,
      ],
      { check: false, timeoutMs: (deadline + 5) * 1000 },
    );
    const m = /(\d+) (?:packets )?received/.exec(r.stdout);
    return m ? Number(m[1]) : 0;
  }

  async startCharon(ns: string, opts: CharonOptions): Promise<Charon> {
    const name = this.resolveNs(ns);
    const role = Object.entries(this.ns).find(([, v]) => v === name)?.[0] ?? name;
    const dir = join(this.dir, `charon-${role}-${this.charons.length}`);
    if (opts.root) {
      // one charon per namespace: its UDP ports, TUN device and routes are the namespace's
      const other = this.charons.find((x) => x.ns === name && x.started && x.proc.running);
      if (other) throw new LabError(`a charon (pid ${other.pid}) is still running in ${name}; stop it first`);
    }
    const c = new CharonImpl(this, name, dir, opts);
    this.charons.push(c);
    await c.start();
    return c;
  }

  async capture(ns: string, iface: string, filter = 'udp port 500 or udp port 4500'): Promise<Capture> {
    const name = this.resolveNs(ns);
    const n = this.spawnCount;
    const file = join(this.dir, `${name}-${iface}-${n}.pcap`);
    const logFile = join(this.dir, `${name}-${iface}-${n}.tcpdump.log`);
    // -Z root: Debian's tcpdump would drop to user tcpdump and then fail to write the file.
    const args = ['-i', iface, '-n', '-U', '--immediate-mode', '-s', '0', '-Z', 'root', '-w', file];
    if (filter) args.push(filter);
    const proc = this.spawn(name, TCPDUMP, args, { logFile });
    const deadline = Date.now() + 5000;
    for (;;) {
      const log = existsSync(logFile) ? readFileSync(logFile, 'utf8') : '';
      if (/listening on/.test(log)) break;
      if (!proc.running) throw new LabError(`tcpdump on ${name}:${iface} exited`, log);
      if (Date.now() > deadline) {
        await proc.stop();
        throw new LabError(`tcpdump on ${name}:${iface} did not start within 5 s`, log);
      }
      await sleep(20);
    }
    return {
      file,
      proc,
      async stop(): Promise<string> {
        // give in-flight packets a moment to be written (-U flushes per packet)
        await sleep(100);
        await proc.stop('SIGINT');
        return file;
      },
    };
  }

  async teardown(): Promise<void> {
    if (this.torn) return;
    this.torn = true;
    await Promise.all(this.live.procs.map((p) => p.stop('SIGTERM', 5000)));
    for (const ns of [...this.live.namespaces].reverse()) {
      await run('ip', ['netns', 'del', ns], { check: false, timeoutMs: 10_000 });
    }
    this.live.namespaces = [];
    if (!this.live.keep) rmSync(this.dir, { recursive: true, force: true });
    liveLabs.delete(this.live);
    removeExitHookIfIdle();
  }
}

/** With `forwardTo`, UDP 500/4500 arriving at the outside address are forwarded to that host. */
function natRuleset(inside: string, outside: string, forwardTo?: string): string {
  const dnat = forwardTo
    ? `  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    iifname "${outside}" udp dport { 500, 4500 } dnat to ${forwardTo}
  }
`
    : '';
  const fwd = forwardTo
    ? `    iifname "${outside}" ip daddr ${forwardTo} udp dport { 500, 4500 } ct status dnat accept\n`
    : '';
  return `flush ruleset
table ip ikgw_nat {
${dnat}  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    # SNAT to the outside address with random source ports, like a cloud NAT gateway:
    # IKE from 172.30.0.2:500 arrives at onprem as 198.51.100.254:<random>.
    iifname "${inside}" oifname "${outside}" masquerade random
  }
}
table inet ikgw_filter {
  chain forward {
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    # only the inside may open new flows (and the forwarded IKE ports, if any)
    iifname "${inside}" oifname "${outside}" accept
${fwd}    counter comment "dropped unsolicited outside->inside"
  }
}
`;
}

// ------------------------------------------------------------------------------------------
// strongSwan

export interface CharonOptions {
  /** swanctl.conf text: `connections { ... } secrets { ... }` (and pools/authorities if needed). */
  swanctlConf: string;
  /** Extra settings placed inside the `charon { }` section of strongswan.conf. */
  strongswanExtra?: string;
  /** Level of the `ike` and `chd` log groups (default 2; 4 logs key material). */
  logLevel?: number;
  /** Level of every other log group (default 1). */
  defaultLogLevel?: number;
  /** Per-group levels, e.g. { knl: 2, net: 2, enc: 2 }. */
  logLevels?: Record<string, number>;
  /** Bound for the vici socket to appear (default 10 000 ms). */
  startTimeoutMs?: number;
  /**
   * Run charon and swanctl from this chroot (e.g. STRONGSWAN6_ROOT, built by
   * scripts/strongswan6-chroot.sh) instead of the host's strongSwan. Only one charon per namespace
   * may run at a time (the lab refuses a second while the first is running).
   */
  root?: string;
}

export interface Charon {
  readonly ns: string;
  /** The chroot it runs from (CharonOptions.root), undefined for the host's strongSwan. */
  readonly root?: string;
  readonly pid: number;
  readonly dir: string;
  readonly socket: string;
  readonly logFile: string;
  readonly proc: LabProcess;
  /** Runs swanctl against this daemon; throws (with the log tail) on exit != 0 unless check=false. */
  swanctl(args: readonly string[], opts?: ExecOptions): Promise<ExecResult>;
  listSas(ike?: string): Promise<ParsedSa[]>;
  /** `swanctl --initiate --child <child> --timeout <timeoutS>`; throws with the log tail on failure. */
  initiate(child: string, timeoutS?: number): Promise<void>;
  /** `swanctl --terminate --ike <ike> --timeout <timeoutS>`. */
  terminate(ike: string, timeoutS?: number): Promise<void>;
  /** The charon filelog so far. */
  log(): string;
  /** The last lines of the log (for error messages). */
  logTail(lines?: number): string;
  /** Waits until `re` matches the log at least `count` times (default 1); throws after timeoutMs. */
  waitForLog(re: RegExp, opts?: { count?: number; timeoutMs?: number }): Promise<RegExpMatchArray[]>;
  kill(signal?: NodeJS.Signals): void;
  stop(): Promise<void>;
}

const SWANCTL_CLIENT_CONF = `# strongswan.conf for the swanctl client only, so it does not load every plugin
swanctl {
  load = random nonce pem pkcs1 pkcs8 x509 pubkey openssl
}
`;

// Runs "$@" chrooted into $1 with the lab directory $2 visible at its own path; with $3, also
// /proc, /dev, /sys and $3 bound on ROOT/run (charon). Meant for a private mount namespace (`ip
// netns exec` or `unshare -m`): the mounts vanish with it. A lab directory under /tmp gets its
// mount point on a tmpfs over ROOT/tmp, so nothing is created in the tree itself (elsewhere, e.g.
// with TMPDIR set, the empty mount point directories stay in ROOT).
const CHROOT_WRAPPER = `set -e
root=$1 dir=$2 run=$3
shift 3
case "$dir" in /tmp/*) mount -t tmpfs -o mode=1777 ikegw-lab "$root/tmp" ;; esac
mkdir -p "$root$dir"
mount --bind "$dir" "$root$dir"
mount --bind /dev "$root/dev"
if [ -n "$run" ]; then
  mount -t proc proc "$root/proc"
  mount --bind /sys "$root/sys"
  mount --bind "$run" "$root/run"
fi
exec chroot "$root" "$@"
`;

const CRED_DIRS = [
  'x509',
  'x509ca',
  'x509ocsp',
  'x509aa',
  'x509ac',
  'x509crl',
  'pubkey',
  'private',
  'rsa',
  'ecdsa',
  'bliss',
  'pkcs8',
  'pkcs12',
];

class CharonImpl implements Charon {
  readonly socket: string;
  readonly logFile: string;
  private readonly runDir: string;
  private readonly conf: string;
  private readonly clientConf: string;
  private readonly swanctlDir: string;
  readonly root: string | undefined;
  private p: LabProcess | undefined;

  constructor(
    private readonly lab: LabImpl,
    readonly ns: string,
    readonly dir: string,
    private readonly opts: CharonOptions,
  ) {
    this.runDir = join(dir, 'run');
    this.socket = join(this.runDir, 'charon.vici');
    this.logFile = join(dir, 'charon.log');
    this.conf = join(dir, 'strongswan.conf');
    this.clientConf = join(dir, 'swanctl-client.conf');
    this.swanctlDir = join(dir, 'swanctl');
    this.root = opts.root;
  }

  get proc(): LabProcess {
    if (!this.p) throw new LabError('charon not started');
    return this.p;
  }

  get started(): boolean {
    return this.p !== undefined;
  }

  get pid(): number {
    return this.proc.pid;
  }

  private strongswanConf(): string {
    const o = this.opts;
    const level = o.logLevel ?? 2;
    const groups = { ike: level, chd: level, ...o.logLevels };
    const groupLines = Object.entries(groups)
      .map(([g, l]) => `        ${g} = ${l}`)
      .join('\n');
    return `# strongswan.conf of the lab charon in ${this.ns} (generated by test/interop/lab.ts)
charon {
  # Debian's modular plugin config plus kernel-libipsec (userspace ESP over TUN; this kernel has
  # no ESP). kernel-libipsec registers before kernel-netlink in the compiled-in order.
  load_modular = yes
  plugins {
    include /etc/strongswan.d/charon/*.conf
    kernel-libipsec {
      load = yes
    }
    vici {
      socket = unix://${this.socket}
    }
  }
  filelog {
    main {
      path = ${this.logFile}
      time_format = %H:%M:%S
      time_add_ms = yes
      ike_name = yes
      append = no
      flush_line = yes
      default = ${o.defaultLogLevel ?? 1}
${groupLines}
    }
  }
  syslog {
    identifier = charon-${this.ns}
    daemon {
      default = -1
    }
  }
${o.strongswanExtra ?? ''}
}
`;
  }

  async start(): Promise<void> {
    mkdirSync(this.runDir, { recursive: true });
    for (const d of CRED_DIRS) mkdirSync(join(this.swanctlDir, d), { recursive: true });
    writeFileSync(this.conf, this.strongswanConf());
    writeFileSync(this.clientConf, SWANCTL_CLIENT_CONF);
    writeFileSync(join(this.swanctlDir, 'swanctl.conf'), this.opts.swanctlConf);
    // charon's pid file (/var/run/charon.pid) and plugin sockets are compiled-in paths under /run:
    // bind our run dir over /run in the private mount namespace `ip netns exec` creates.
    this.p = this.root
      ? this.lab.spawn(
          this.ns,
          'env',
          [
            `STRONGSWAN_CONF=${this.conf}`,
            'sh',
            '-c',
            CHROOT_WRAPPER,
            'charon-chroot',
            this.root,
            this.dir,
            this.runDir,
            CHARON,
          ],
          { logFile: join(this.dir, 'charon.stdout') },
        )
      : this.lab.spawn(
          this.ns,
          'env',
          [
            `STRONGSWAN_CONF=${this.conf}`,
            'sh',
            '-c',
            'mount --bind "$1" /run && shift && exec "$@"',
            'charon-wrap',
            this.runDir,
            CHARON,
          ],
          { logFile: join(this.dir, 'charon.stdout') },
        );
    const limit = this.opts.startTimeoutMs ?? 10_000;
    const deadline = Date.now() + limit;
    while (!existsSync(this.socket)) {
      if (!this.p.running) {
        throw new LabError(
          `charon in ${this.ns} exited during start-up`,
          `${tail(join(this.dir, 'charon.stdout'), 20)}\n${this.logTail()}`,
        );
      }
      if (Date.now() > deadline) {
        await this.p.stop();
        throw new LabError(`charon in ${this.ns}: no vici socket after ${limit} ms`, this.logTail());
      }
      await sleep(20);
    }
    // the vici socket file exists from bind() on, before charon listens on it: until then swanctl
    // gets "Connection refused" (seen about once in 30 starts on a loaded machine)
    for (;;) {
      try {
        await this.swanctl(['--load-all', '--file', join(this.swanctlDir, 'swanctl.conf')]);
        return;
      } catch (e) {
        if (!/Connection refused/.test((e as Error).message) || Date.now() > deadline) throw e;
        await sleep(20);
      }
    }
  }

  async swanctl(args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const full = [...args, '--uri', `unix://${this.socket}`];
    const [cmd, argv] = this.root
      ? [
          'unshare',
          [
            '-m',
            '--propagation',
            'private',
            'sh',
            '-c',
            CHROOT_WRAPPER,
            'swanctl-chroot',
            this.root,
            this.dir,
            '',
            SWANCTL,
            ...full,
          ],
        ]
      : [SWANCTL, full];
    try {
      return await run(cmd, argv, {
        timeoutMs: 20_000,
        ...opts,
        env: {
          ...process.env,
          STRONGSWAN_CONF: this.clientConf,
          SWANCTL_DIR: this.swanctlDir,
          ...opts.env,
        },
      });
    } catch (e) {
      throw new LabError(`${(e as Error).message}\n--- charon log (${this.ns}) ---`, this.logTail());
    }
  }

  async listSas(ike?: string): Promise<ParsedSa[]> {
    const args = ['--list-sas', '--raw'];
    if (ike) args.push('--ike', ike);
    const r = await this.swanctl(args);
    return parseListSas(r.stdout);
  }

  async initiate(child: string, timeoutS = 10): Promise<void> {
    await this.swanctl(['--initiate', '--child', child, '--timeout', String(timeoutS)], {
      timeoutMs: (timeoutS + 5) * 1000,
    });
  }

  async terminate(ike: string, timeoutS = 10): Promise<void> {
    await this.swanctl(['--terminate', '--ike', ike, '--timeout', String(timeoutS)], {
      timeoutMs: (timeoutS + 5) * 1000,
    });
  }

  log(): string {
    return existsSync(this.logFile) ? readFileSync(this.logFile, 'utf8') : '';
  }

  logTail(lines = 60): string {
    return tail(this.logFile, lines);
  }

  async waitForLog(
    re: RegExp,
    opts: { count?: number; timeoutMs?: number } = {},
  ): Promise<RegExpMatchArray[]> {
    const count = opts.count ?? 1;
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const g = new RegExp(re.source, re.flags.includes('g') ? re.flags : `${re.flags}g`);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = [...this.log().matchAll(g)];
      if (m.length >= count) return m;
      if (Date.now() > deadline) {
        throw new LabError(
          `charon in ${this.ns}: ${re} seen ${m.length}/${count} times after ${timeoutMs} ms`,
          this.logTail(),
        );
      }
      await sleep(25);
    }
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    this.proc.kill(signal);
  }

  async stop(): Promise<void> {
    await this.p?.stop('SIGTERM', 5000);
  }
}

// ------------------------------------------------------------------------------------------
// swanctl --list-sas --raw

/** A vici message section: values are strings, lists are string arrays, sections nest. */
export interface ViciSection {
  [key: string]: string | string[] | ViciSection;
}

/**
 * Parses swanctl's `--raw` output (vici messages printed as `key=value`, `key=[a b]`,
 * `key {...}`), e.g. `list-sa event {onprem {uniqueid=1 ...}}`. Returns one section per message,
 * keyed by the message line's label (`list-sa event`).
 * Values are not quoted by swanctl; a value ends where the next lower-case `key=`, `key {`,
 * `key [` or a closing `}` starts (DN values such as `C=CH, O=x` keep their spaces).
 */
export function parseViciRaw(text: string): Array<{ label: string; body: ViciSection }> {
  const out: Array<{ label: string; body: ViciSection }> = [];
  let i = 0;
  const s = text;
  const ws = () => {
    while (i < s.length && /\s/.test(s[i] ?? '')) i++;
  };
  // "(unnamed)" is what strongSwan calls an IKE_SA whose config is not known yet (half-open responder).
  const keyRe = /\(unnamed\)|[a-zA-Z0-9_.-]+/y;
  const readKey = (): string => {
    keyRe.lastIndex = i;
    const m = keyRe.exec(s);
    if (!m) throw new LabError(`vici raw: key expected at ${i}: ${s.slice(i, i + 40)}`);
    i += m[0].length;
    return m[0];
  };
  const valueEnd = /\s+(?=[a-z0-9][a-z0-9_.-]*(?:=|\s[{[])|\})|(?=\})/g;
  const parseList = (): string[] => {
    const items: string[] = [];
    for (;;) {
      ws();
      if (s[i] === ']') {
        i++;
        return items;
      }
      if (i >= s.length) throw new LabError('vici raw: unterminated list');
      const st = i;
      while (i < s.length && !/[\s\]]/.test(s[i] ?? '')) i++;
      items.push(s.slice(st, i));
    }
  };
  const parseSection = (): ViciSection => {
    const sec: ViciSection = {};
    for (;;) {
      ws();
      if (i >= s.length) throw new LabError('vici raw: unterminated section');
      if (s[i] === '}') {
        i++;
        return sec;
      }
      const key = readKey();
      if (s[i] === '=' && s[i + 1] === '[') {
        i += 2;
        sec[key] = parseList();
      } else if (s[i] === '=') {
        i++;
        valueEnd.lastIndex = i;
        const m = valueEnd.exec(s);
        const end = m ? m.index : s.length;
        sec[key] = s.slice(i, end);
        i = end;
      } else {
        ws();
        if (s[i] === '{') {
          i++;
          sec[key] = parseSection();
        } else if (s[i] === '[') {
          i++;
          sec[key] = parseList();
        } else {
          throw new LabError(`vici raw: unexpected ${JSON.stringify(s.slice(i, i + 20))} after ${key}`);
        }
      }
    }
  };
  for (;;) {
    ws();
    if (i >= s.length) break;
    const brace = s.indexOf('{', i);
    const nl = s.indexOf('\n', i);
    if (brace < 0 || (nl >= 0 && nl < brace)) {
      // a non-message line (e.g. a plugin warning): skip it
      i = nl < 0 ? s.length : nl + 1;
      continue;
    }
    const label = s.slice(i, brace).trim();
    i = brace + 1;
    out.push({ label, body: parseSection() });
  }
  return out;
}

export interface ParsedChildSa {
  /** Section key in the vici message (`<name>-<uniqueid>`). */
  key: string;
  name: string;
  uniqueId: string;
  reqid?: string;
  state: string;
  mode?: string;
  protocol: string;
  encap: boolean;
  spiIn: string;
  spiOut: string;
  encrAlg?: string;
  encrKeysize?: number;
  integAlg?: string;
  integKeysize?: number;
  dhGroup?: string;
  esn: boolean;
  bytesIn: number;
  bytesOut: number;
  packetsIn: number;
  packetsOut: number;
  localTs: string[];
  remoteTs: string[];
  raw: ViciSection;
}

export interface ParsedSa {
  name: string;
  uniqueId: string;
  version: number;
  state: string;
  localHost: string;
  localPort: number;
  localId?: string;
  remoteHost: string;
  remotePort: number;
  remoteId?: string;
  initiator: boolean;
  /** IKE SPIs as 16 hex digits. */
  spiI: string;
  spiR: string;
  natLocal: boolean;
  natRemote: boolean;
  natFake: boolean;
  natAny: boolean;
  encrAlg?: string;
  encrKeysize?: number;
  integAlg?: string;
  integKeysize?: number;
  prfAlg?: string;
  dhGroup?: string;
  children: ParsedChildSa[];
  raw: ViciSection;
}

function str(sec: ViciSection, key: string): string | undefined {
  const v = sec[key];
  return typeof v === 'string' ? v : undefined;
}
function num(sec: ViciSection, key: string): number | undefined {
  const v = str(sec, key);
  return v === undefined ? undefined : Number(v);
}
function list(sec: ViciSection, key: string): string[] {
  const v = sec[key];
  return Array.isArray(v) ? v : [];
}
function sub(sec: ViciSection, key: string): ViciSection {
  const v = sec[key];
  return v && typeof v === 'object' && !Array.isArray(v) ? v : {};
}
function opt<T>(k: string, v: T | undefined): Record<string, T> {
  return v === undefined ? {} : { [k]: v };
}

function parseChild(key: string, c: ViciSection): ParsedChildSa {
  return {
    key,
    name: str(c, 'name') ?? key,
    uniqueId: str(c, 'uniqueid') ?? '',
    ...opt('reqid', str(c, 'reqid')),
    state: str(c, 'state') ?? '',
    ...opt('mode', str(c, 'mode')),
    protocol: str(c, 'protocol') ?? '',
    encap: str(c, 'encap') === 'yes',
    spiIn: str(c, 'spi-in') ?? '',
    spiOut: str(c, 'spi-out') ?? '',
    ...opt('encrAlg', str(c, 'encr-alg')),
    ...opt('encrKeysize', num(c, 'encr-keysize')),
    ...opt('integAlg', str(c, 'integ-alg')),
    ...opt('integKeysize', num(c, 'integ-keysize')),
    ...opt('dhGroup', str(c, 'dh-group')),
    esn: str(c, 'esn') === '1' || str(c, 'esn') === 'yes',
    bytesIn: num(c, 'bytes-in') ?? 0,
    bytesOut: num(c, 'bytes-out') ?? 0,
    packetsIn: num(c, 'packets-in') ?? 0,
    packetsOut: num(c, 'packets-out') ?? 0,
    localTs: list(c, 'local-ts'),
    remoteTs: list(c, 'remote-ts'),
    raw: c,
  } as ParsedChildSa;
}

/** Parses `swanctl --list-sas --raw` into one object per IKE_SA. */
export function parseListSas(text: string): ParsedSa[] {
  const sas: ParsedSa[] = [];
  for (const msg of parseViciRaw(text)) {
    if (msg.label !== 'list-sa event') continue;
    for (const [name, v] of Object.entries(msg.body)) {
      if (typeof v !== 'object' || Array.isArray(v)) continue;
      const children = Object.entries(sub(v, 'child-sas'))
        .filter((e): e is [string, ViciSection] => typeof e[1] === 'object' && !Array.isArray(e[1]))
        .map(([k, c]) => parseChild(k, c));
      sas.push({
        name,
        uniqueId: str(v, 'uniqueid') ?? '',
        version: num(v, 'version') ?? 0,
        state: str(v, 'state') ?? '',
        localHost: str(v, 'local-host') ?? '',
        localPort: num(v, 'local-port') ?? 0,
        ...opt('localId', str(v, 'local-id')),
        remoteHost: str(v, 'remote-host') ?? '',
        remotePort: num(v, 'remote-port') ?? 0,
        ...opt('remoteId', str(v, 'remote-id')),
        initiator: str(v, 'initiator') === 'yes',
        spiI: str(v, 'initiator-spi') ?? '',
        spiR: str(v, 'responder-spi') ?? '',
        natLocal: str(v, 'nat-local') === 'yes',
        natRemote: str(v, 'nat-remote') === 'yes',
        natFake: str(v, 'nat-fake') === 'yes',
        natAny: str(v, 'nat-any') === 'yes',
        ...opt('encrAlg', str(v, 'encr-alg')),
        ...opt('encrKeysize', num(v, 'encr-keysize')),
        ...opt('integAlg', str(v, 'integ-alg')),
        ...opt('integKeysize', num(v, 'integ-keysize')),
        ...opt('prfAlg', str(v, 'prf-alg')),
        ...opt('dhGroup', str(v, 'dh-group')),
        children,
        raw: v,
      } as ParsedSa);
    }
  }
  return sas;
}

// ------------------------------------------------------------------------------------------
// key material from a level-4 charon log

/**
 * Extracts `<label> => N bytes` hex dumps from a charon log written at level 4 (e.g.
 * `Sk_ei secret`, `Sk_d secret`, `shared Diffie Hellman secret`). Returns every occurrence of
 * each label, in log order, as lower-case hex.
 */
export function logHexDumps(log: string): Map<string, string[]> {
  const lines = log.split('\n');
  const found = new Map<string, string[]>();
  for (let i = 0; i < lines.length; i++) {
    const m = /\] (?:<[^>]*> )?(.+?) => (\d+) bytes @ 0x[0-9a-f]+\s*$/.exec(lines[i] ?? '');
    if (!m) continue;
    const label = m[1] ?? '';
    const n = Number(m[2]);
    let hex = '';
    let j = i + 1;
    while (hex.length < 2 * n && j < lines.length) {
      const d = /\] (?:<[^>]*> )?\s*\d+: ((?:[0-9A-F]{2} ){1,16})/.exec(lines[j] ?? '');
      if (!d) break;
      hex += (d[1] ?? '').replace(/ /g, '');
      j++;
    }
    const arr = found.get(label) ?? [];
    arr.push(hex.slice(0, 2 * n).toLowerCase());
    found.set(label, arr);
  }
  return found;
}

// ------------------------------------------------------------------------------------------
// captures and pcap

export interface Capture {
  readonly file: string;
  readonly proc: LabProcess;
  /** Stops tcpdump; resolves with the pcap path. */
  stop(): Promise<string>;
}

export interface PcapPacket {
  /** Seconds since the epoch (microsecond or nanosecond resolution). */
  ts: number;
  data: Buffer;
  linkType: number;
}

/** Reads a classic pcap file (micro- or nanosecond, either byte order). pcapng is not supported. */
export function readPcap(file: string | Buffer): PcapPacket[] {
  const b = typeof file === 'string' ? readFileSync(file) : file;
  if (b.length < 24) throw new LabError('pcap: file too short');
  const magicLe = b.readUInt32LE(0);
  let le: boolean;
  let nano: boolean;
  if (magicLe === 0xa1b2c3d4 || magicLe === 0xa1b23c4d) {
    le = true;
    nano = magicLe === 0xa1b23c4d;
  } else {
    const magicBe = b.readUInt32BE(0);
    if (magicBe !== 0xa1b2c3d4 && magicBe !== 0xa1b23c4d) {
      throw new LabError(`pcap: bad magic 0x${magicLe.toString(16)} (pcapng is not supported)`);
    }
    le = false;
    nano = magicBe === 0xa1b23c4d;
  }
  const u32 = (o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const linkType = u32(20) & 0x0fffffff;
  const pkts: PcapPacket[] = [];
  let o = 24;
  while (o + 16 <= b.length) {
    const sec = u32(o);
    const frac = u32(o + 4);
    const incl = u32(o + 8);
    o += 16;
    if (o + incl > b.length) break; // truncated last record (capture killed mid-write)
    pkts.push({ ts: sec + frac / (nano ? 1e9 : 1e6), data: b.subarray(o, o + incl), linkType });
    o += incl;
  }
  return pkts;
}

export interface UdpDatagram {
  ts: number;
  src: string;
  dst: string;
  sport: number;
  dport: number;
  payload: Buffer;
}

function ipv6Str(b: Buffer): string {
  const parts: string[] = [];
  for (let k = 0; k < 16; k += 2) parts.push(b.readUInt16BE(k).toString(16));
  return parts.join(':').replace(/(^|:)0(:0)+(:|$)/, '::');
}

/** UDP datagrams in a capture (Ethernet, Linux cooked v1/v2 or raw IP link types; IP fragments are skipped). */
export function udpDatagrams(packets: readonly PcapPacket[]): UdpDatagram[] {
  const out: UdpDatagram[] = [];
  for (const p of packets) {
    const d = p.data;
    let off: number;
    let etype: number;
    if (p.linkType === 1) {
      if (d.length < 14) continue;
      etype = d.readUInt16BE(12);
      off = 14;
      while (etype === 0x8100 && d.length >= off + 4) {
        etype = d.readUInt16BE(off + 2);
        off += 4;
      }
    } else if (p.linkType === 113) {
      if (d.length < 16) continue;
      etype = d.readUInt16BE(14);
      off = 16;
    } else if (p.linkType === 276) {
      if (d.length < 20) continue;
      etype = d.readUInt16BE(0);
      off = 20;
    } else if (p.linkType === 101 || p.linkType === 12) {
      const v = (d[0] ?? 0) >> 4;
      etype = v === 6 ? 0x86dd : 0x0800;
      off = 0;
    } else {
      continue;
    }
    let src: string;
    let dst: string;
    let udp: number;
    let end: number;
    if (etype === 0x0800) {
      if (d.length < off + 20) continue;
      const ihl = ((d[off] ?? 0) & 0x0f) * 4;
      if (d[off + 9] !== 17) continue;
      const frag = d.readUInt16BE(off + 6);
      if ((frag & 0x3fff) !== 0) continue; // MF set or offset != 0
      src = [...d.subarray(off + 12, off + 16)].join('.');
      dst = [...d.subarray(off + 16, off + 20)].join('.');
      end = Math.min(d.length, off + d.readUInt16BE(off + 2));
      udp = off + ihl;
    } else if (etype === 0x86dd) {
      if (d.length < off + 40) continue;
      if (d[off + 6] !== 17) continue; // no extension headers expected here
      src = ipv6Str(d.subarray(off + 8, off + 24));
      dst = ipv6Str(d.subarray(off + 24, off + 40));
      end = Math.min(d.length, off + 40 + d.readUInt16BE(off + 4));
      udp = off + 40;
    } else {
      continue;
    }
    if (end < udp + 8) continue;
    const ulen = d.readUInt16BE(udp + 4);
    out.push({
      ts: p.ts,
      src,
      dst,
      sport: d.readUInt16BE(udp),
      dport: d.readUInt16BE(udp + 2),
      payload: Buffer.from(d.subarray(udp + 8, Math.min(end, udp + ulen))),
    });
  }
  return out;
}

export const EXCHANGE_NAMES: Record<number, string> = {
  34: 'IKE_SA_INIT',
  35: 'IKE_AUTH',
  36: 'CREATE_CHILD_SA',
  37: 'INFORMATIONAL',
  43: 'IKE_INTERMEDIATE',
  44: 'IKE_FOLLOWUP_KE',
};

export interface CapturedIkeMessage extends UdpDatagram {
  /** The IKE message: header and payloads, without the non-ESP marker. */
  ike: Buffer;
  /** Whether a 4-byte non-ESP marker was stripped (port 4500). */
  nonEspMarker: boolean;
  spiI: string;
  spiR: string;
  exchangeType: number;
  exchange: string;
  messageId: number;
  initiator: boolean;
  response: boolean;
}

/**
 * The IKE messages of a capture, in capture order: UDP port 500 payloads as they are, port 4500
 * payloads with the 4-byte non-ESP marker stripped; ESP (non-zero first word) and NAT-T
 * keepalives (a single 0xff) are skipped.
 */
export function ikeMessages(pcap: string | Buffer | readonly PcapPacket[]): CapturedIkeMessage[] {
  const packets = typeof pcap === 'string' || Buffer.isBuffer(pcap) ? readPcap(pcap) : pcap;
  const out: CapturedIkeMessage[] = [];
  for (const u of udpDatagrams(packets)) {
    let ike: Buffer;
    let marker = false;
    if (u.sport === 4500 || u.dport === 4500) {
      if (u.payload.length === 1 && u.payload[0] === 0xff) continue; // keepalive
      if (u.payload.length < 4 || u.payload.readUInt32BE(0) !== 0) continue; // ESP
      ike = u.payload.subarray(4);
      marker = true;
    } else if (u.sport === 500 || u.dport === 500) {
      ike = u.payload;
    } else {
      continue;
    }
    if (ike.length < 28) continue;
    const flags = ike[19] ?? 0;
    const et = ike[18] ?? 0;
    out.push({
      ...u,
      ike: Buffer.from(ike),
      nonEspMarker: marker,
      spiI: ike.subarray(0, 8).toString('hex'),
      spiR: ike.subarray(8, 16).toString('hex'),
      exchangeType: et,
      exchange: EXCHANGE_NAMES[et] ?? `EXCHANGE_${et}`,
      messageId: ike.readUInt32BE(20),
      initiator: (flags & 0x08) !== 0,
      response: (flags & 0x20) !== 0,
    });
  }
  return out;
}

/** The raw payloads of UDP datagrams that carry ESP-in-UDP (port 4500, non-zero SPI). */
export function espInUdp(pcap: string | Buffer | readonly PcapPacket[]): UdpDatagram[] {
  const packets = typeof pcap === 'string' || Buffer.isBuffer(pcap) ? readPcap(pcap) : pcap;
  return udpDatagrams(packets).filter(
    (u) => (u.sport === 4500 || u.dport === 4500) && u.payload.length >= 8 && u.payload.readUInt32BE(0) !== 0,
  );
}
