// How rtnetlink requests reach a network namespace.
//
// A netlink socket talks to the namespace it was created in, and the `netlink` package (0.3.0)
// creates its sockets in the calling thread's namespace with no option to choose another one
// (RawNetlinkSocketOptions has only localPort/groups/buffer sizes). Node has no setns(2), and opening
// /proc/<pid>/ns/net only yields an fd that nothing in Node can enter. So:
//
//  - for this process's own namespace: an in-process socket (InProcessTransport);
//  - for any other namespace (the node's, from a sidecar in the pod): a small helper process started
//    as `nsenter --net=<path> -- node -e <relay>` (NetnsRelayTransport). The helper opens the netlink
//    socket inside the target namespace and relays raw netlink messages as JSON lines over
//    stdin/stdout; all encoding and parsing stays in this process. It exits when its stdin closes,
//    so it cannot outlive the agent. The path can be anything setns(2) accepts: /proc/1/ns/net
//    (hostPID), /proc/<pid>/ns/net, or /run/netns/<name> (tests).
//
// `ip netns exec` was not chosen because it needs a *named* namespace under /run/netns, which the
// node's root namespace is not; nsenter takes any path.
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';
import { createNetlink, MessageType, type NetlinkMessage, type NetlinkSocket, parseError } from 'netlink';
import { RouteError } from './route-table.js';

/** NETLINK_ROUTE in <linux/netlink.h>. */
const NETLINK_ROUTE = 0;

export interface RawMessage {
  type: number;
  flags: number;
  data: Buffer;
}

export interface NetlinkTransport {
  readonly label: string;
  /** Sends one request (REQUEST|ACK are added) and resolves with the reply messages; rejects with RouteError. */
  request(op: string, type: number, flags: number, data: Buffer): Promise<RawMessage[]>;
  /** Joins rtnetlink multicast groups (RTNLGRP_* numbers). */
  join(groups: number[]): Promise<void>;
  onNotification(cb: (msgs: RawMessage[]) => void): void;
  onLost(cb: (reason: string) => void): void;
  close(): Promise<void>;
}

const REQUEST_TIMEOUT_MS = 10_000;
/** SO_RCVBUF for sockets that receive notifications (capped by net.core.rmem_max). */
const RECV_BUFFER = 1 << 20;
const SEND_BUFFER = 1 << 16;

function errnoName(errno: number): string {
  // The kernel sends -errno in nlmsgerr.
  const n = Math.abs(errno);
  const names: Record<number, string> = {
    1: 'EPERM',
    2: 'ENOENT',
    3: 'ESRCH',
    13: 'EACCES',
    16: 'EBUSY',
    17: 'EEXIST',
    19: 'ENODEV',
    22: 'EINVAL',
    95: 'EOPNOTSUPP',
    100: 'ENETDOWN',
    101: 'ENETUNREACH',
    105: 'ENOBUFS',
    113: 'EHOSTUNREACH',
  };
  return names[n] ?? `E${n}`;
}

/** Turns an ERROR reply into a RouteError; returns the messages otherwise (an ACK becomes []). */
function checkReply(op: string, msgs: RawMessage[]): RawMessage[] {
  const first = msgs[0];
  if (first && first.type === MessageType.ERROR) {
    const { errno } = parseError(first.data, first.flags);
    if (errno !== 0)
      throw new RouteError(op, errnoName(errno), `kernel rejected the request (${errnoName(errno)})`);
    return [];
  }
  return msgs;
}

function toRaw(m: NetlinkMessage): RawMessage {
  return { type: m.type, flags: m.flags, data: m.data };
}

export class InProcessTransport implements NetlinkTransport {
  readonly label = 'self';
  private readonly sock: NetlinkSocket;
  private lostCbs: ((reason: string) => void)[] = [];
  private closed = false;

  constructor() {
    this.sock = createNetlink(NETLINK_ROUTE, {
      ref: false,
      recvBufferSize: RECV_BUFFER,
      sendBufferSize: SEND_BUFFER,
    });
    this.sock.on('error', (e) => {
      // ENOBUFS: the receive buffer overflowed and notifications were lost; the caller resyncs.
      for (const cb of this.lostCbs) cb(`netlink socket error: ${e.code ?? e.message}`);
    });
  }

  async request(op: string, type: number, flags: number, data: Buffer): Promise<RawMessage[]> {
    if (this.closed) throw new RouteError(op, 'ENETNS', 'transport closed');
    try {
      const [msgs] = await this.sock.request(type, [data], {
        flags,
        checkError: false,
        timeout: REQUEST_TIMEOUT_MS,
      });
      return checkReply(op, msgs.map(toRaw));
    } catch (e) {
      if (e instanceof RouteError) throw e;
      throw new RouteError(op, 'EIO', e instanceof Error ? e.message : String(e));
    }
  }

  async join(groups: number[]): Promise<void> {
    for (const g of groups) this.sock.addMembership(g);
    this.sock.ref(true);
  }

  onNotification(cb: (msgs: RawMessage[]) => void): void {
    this.sock.on('message', (msgs) => cb(msgs.map(toRaw)));
  }

  onLost(cb: (reason: string) => void): void {
    this.lostCbs.push(cb);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.sock.close();
  }
}

// The helper's source. Plain CommonJS run with `node -e`, so it needs no build step and no file on
// disk; it loads the same `netlink` package the agent uses (absolute path passed in the environment).
const RELAY_SOURCE = `'use strict';
const nl = require(process.env.IKEGW_NETLINK_MODULE);
const sock = nl.createNetlink(0, { ref: true, recvBufferSize: ${RECV_BUFFER}, sendBufferSize: ${SEND_BUFFER} });
const out = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
const enc = (msgs) => msgs.map((m) => ({ t: m.type, f: m.flags, d: m.data.toString('base64') }));
sock.on('message', (msgs) => out({ ev: 'msg', msgs: enc(msgs) }));
sock.on('error', (e) => out({ ev: 'error', error: String((e && (e.code || e.message)) || e) }));
const rl = require('readline').createInterface({ input: process.stdin });
rl.on('line', (line) => {
  let q;
  try { q = JSON.parse(line); } catch { return; }
  if (q.op === 'join') {
    try { for (const g of q.groups) sock.addMembership(g); out({ id: q.id, ok: true, msgs: [] }); }
    catch (e) { out({ id: q.id, ok: false, error: String(e && e.message || e) }); }
    return;
  }
  sock.request(q.type, [Buffer.from(q.data, 'base64')], { flags: q.flags, checkError: false, timeout: ${REQUEST_TIMEOUT_MS} })
    .then(([msgs]) => out({ id: q.id, ok: true, msgs: enc(msgs) }), (e) => out({ id: q.id, ok: false, error: String(e && e.message || e) }));
});
rl.on('close', () => process.exit(0));
out({ ev: 'ready', pid: process.pid });
`;

interface Pending {
  op: string;
  resolve: (m: RawMessage[]) => void;
  reject: (e: Error) => void;
}

export interface NetnsRelayOptions {
  /** Path of the namespace file: /proc/1/ns/net, /run/netns/<name>, … */
  netnsPath: string;
  /** nsenter binary (util-linux). */
  nsenter?: string;
  /** How long to wait for the helper to come up. */
  startTimeoutMs?: number;
  onStderr?: (line: string) => void;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function decodeMsgs(v: unknown): RawMessage[] {
  if (!Array.isArray(v)) return [];
  const out: RawMessage[] = [];
  for (const m of v) {
    if (isObject(m) && typeof m.t === 'number' && typeof m.f === 'number' && typeof m.d === 'string') {
      out.push({ type: m.t, flags: m.f, data: Buffer.from(m.d, 'base64') });
    }
  }
  return out;
}

export class NetnsRelayTransport implements NetlinkTransport {
  readonly label: string;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private notifyCbs: ((msgs: RawMessage[]) => void)[] = [];
  private lostCbs: ((reason: string) => void)[] = [];
  private dead: string | undefined;
  private stderrTail: string[] = [];

  private constructor(
    private readonly child: ChildProcessWithoutNullStreams,
    netnsPath: string,
  ) {
    this.label = netnsPath;
  }

  static async open(opts: NetnsRelayOptions): Promise<NetnsRelayTransport> {
    const netlinkModule = createRequire(import.meta.url).resolve('netlink');
    const child = spawn(
      opts.nsenter ?? 'nsenter',
      [`--net=${opts.netnsPath}`, '--', process.execPath, '-e', RELAY_SOURCE],
      { env: { ...process.env, IKEGW_NETLINK_MODULE: netlinkModule }, stdio: ['pipe', 'pipe', 'pipe'] },
    );
    const t = new NetnsRelayTransport(child, opts.netnsPath);
    const ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new RouteError('open', 'ENETNS', `helper for ${opts.netnsPath} did not start`)),
        opts.startTimeoutMs ?? 10_000,
      );
      t.onReady = () => {
        clearTimeout(timer);
        resolve();
      };
      t.onEarlyExit = (reason) => {
        clearTimeout(timer);
        reject(new RouteError('open', 'ENETNS', reason));
      };
    });
    createInterface({ input: child.stdout }).on('line', (line) => t.onLine(line));
    createInterface({ input: child.stderr }).on('line', (line) => {
      t.stderrTail.push(line);
      if (t.stderrTail.length > 20) t.stderrTail.shift();
      opts.onStderr?.(line);
    });
    child.on('error', (e) => t.fail(`cannot start nsenter: ${e.message}`));
    child.on('exit', (code, sig) => {
      const tail = t.stderrTail.join(' | ');
      t.fail(`helper in ${opts.netnsPath} exited (${sig ?? code})${tail ? `: ${tail}` : ''}`);
    });
    child.stdin.on('error', () => {
      /* EPIPE after the child died; 'exit' reports it */
    });
    try {
      await ready;
    } catch (e) {
      child.kill('SIGKILL');
      throw e;
    }
    return t;
  }

  private onReady: () => void = () => {};
  private onEarlyExit: (reason: string) => void = () => {};

  private onLine(line: string): void {
    let m: unknown;
    try {
      m = JSON.parse(line);
    } catch {
      return;
    }
    if (!isObject(m)) return;
    if (m.ev === 'ready') {
      this.onReady();
      return;
    }
    if (m.ev === 'msg') {
      const msgs = decodeMsgs(m.msgs);
      for (const cb of this.notifyCbs) cb(msgs);
      return;
    }
    if (m.ev === 'error') {
      for (const cb of this.lostCbs) cb(`netlink socket error in helper: ${String(m.error)}`);
      return;
    }
    if (typeof m.id === 'number') {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.ok === true) {
        try {
          p.resolve(checkReply(p.op, decodeMsgs(m.msgs)));
        } catch (e) {
          p.reject(e instanceof Error ? e : new Error(String(e)));
        }
      } else {
        p.reject(new RouteError(p.op, 'EIO', String(m.error)));
      }
    }
  }

  private fail(reason: string): void {
    if (this.dead !== undefined) return;
    this.dead = reason;
    this.onEarlyExit(reason);
    for (const p of this.pending.values()) p.reject(new RouteError(p.op, 'ENETNS', reason));
    this.pending.clear();
    for (const cb of this.lostCbs) cb(reason);
  }

  private send(op: string, body: Record<string, unknown>): Promise<RawMessage[]> {
    if (this.dead !== undefined) return Promise.reject(new RouteError(op, 'ENETNS', this.dead));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { op, resolve, reject });
      this.child.stdin.write(`${JSON.stringify({ id, ...body })}\n`);
    });
  }

  request(op: string, type: number, flags: number, data: Buffer): Promise<RawMessage[]> {
    return this.send(op, { op: 'req', type, flags, data: data.toString('base64') });
  }

  async join(groups: number[]): Promise<void> {
    await this.send('join', { op: 'join', groups });
  }

  onNotification(cb: (msgs: RawMessage[]) => void): void {
    this.notifyCbs.push(cb);
  }

  onLost(cb: (reason: string) => void): void {
    this.lostCbs.push(cb);
  }

  async close(): Promise<void> {
    if (this.dead !== undefined) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.lostCbs = [];
    this.child.stdin.end();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 2000);
    await exited;
    clearTimeout(timer);
  }
}
