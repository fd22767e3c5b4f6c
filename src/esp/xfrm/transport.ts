// How XFRM netlink datagrams reach a network namespace.
//
// A netlink socket talks to the namespace it was created in. The `netlink` package (0.3.0) creates
// its sockets in the calling thread's namespace and Node has no setns(2), so:
//  - this process's own namespace (the daemon in the gateway pod): RawNetlinkSocket in-process;
//  - another namespace (tests on a scratch netns, a sidecar managing the node's namespace): a small
//    helper `nsenter --net=<path> -- node -e <relay>` that owns the socket there and relays raw
//    datagrams as hex lines over stdin/stdout. All encoding, parsing, sequence numbers and error
//    handling stay in this process (client.ts); the helper exits when its stdin closes;
//  - a fresh, empty namespace that dies with the helper (`unshare --net`): probeKernelEsp() uses it
//    to try an ESP state without touching any real namespace.
// Both shapes are a DatagramChannel: send bytes, receive datagrams, join multicast groups.
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';
import { RawNetlinkSocket } from 'netlink';
import { NETLINK_XFRM } from './structs.js';

export interface DatagramChannel {
  readonly label: string;
  send(datagram: Uint8Array): Promise<void>;
  onDatagram(cb: (d: Uint8Array) => void): void;
  /** NETLINK_ADD_MEMBERSHIP (group numbers, e.g. XFRMNLGRP_ACQUIRE = 1). */
  join(group: number): Promise<void>;
  /** The channel broke (helper exited, socket error): pending requests fail, events stop. */
  onLost(cb: (reason: string) => void): void;
  /** Keep the event loop alive while true (pending requests); a listener stays unreferenced. */
  setRef(ref: boolean): void;
  close(): void;
}

/** A send/join failure with the errno of the system call. */
export class ChannelError extends Error {
  constructor(
    readonly errno: number,
    readonly errnoName: string,
    message: string,
  ) {
    super(message);
  }
}

/** SO_RCVBUF for sockets that receive events or large dumps (capped by net.core.rmem_max). */
const RECV_BUFFER = 1 << 20;

interface ErrnoLike {
  errno?: number;
  code?: string;
  message?: string;
}

function asChannelError(e: unknown, what: string): ChannelError {
  const x = (e ?? {}) as ErrnoLike;
  const errno = typeof x.errno === 'number' ? Math.abs(x.errno) : 5;
  const name = typeof x.code === 'string' ? x.code : 'EIO';
  return new ChannelError(errno, name, `${what}: ${x.message ?? String(e)}`);
}

export class InProcessChannel implements DatagramChannel {
  readonly label = 'this network namespace';
  private readonly sock: RawNetlinkSocket;
  private lost: ((reason: string) => void) | undefined;
  private closed = false;

  constructor() {
    this.sock = new RawNetlinkSocket(NETLINK_XFRM, {
      recvBufferSize: RECV_BUFFER,
      sendBufferSize: 1 << 16,
    });
    this.sock.unref();
    this.sock.on('error', (e) => this.lost?.(`netlink socket error: ${e.message}`));
  }

  send(d: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => {
      try {
        this.sock.send(d, { port: 0 }, (err) => (err ? reject(asChannelError(err, 'sendmsg')) : resolve()));
      } catch (e) {
        reject(asChannelError(e, 'sendmsg'));
      }
    });
  }

  onDatagram(cb: (d: Uint8Array) => void): void {
    this.sock.on('message', (msg) => cb(new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength)));
  }

  async join(group: number): Promise<void> {
    try {
      this.sock.addMembership(group);
    } catch (e) {
      throw asChannelError(e, `join group ${group}`);
    }
  }

  onLost(cb: (reason: string) => void): void {
    this.lost = cb;
  }

  setRef(ref: boolean): void {
    if (this.closed) return;
    if (ref) this.sock.ref();
    else this.sock.unref();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.sock.close();
    } catch {
      // already closed
    }
  }
}

// The helper's source. Protocol, one line each way:
//   in:  "S <id> <hex>"  send a datagram         out: "s <id>" | "e <id> <errno> <code>"
//        "J <id> <group>" join a multicast group       "s <id>" | "e <id> <errno> <code>"
//   out: "R <hex>" a received datagram; "READY" once the socket exists.
const RELAY_SOURCE = `
const { RawNetlinkSocket } = require(process.argv[1]);
const sock = new RawNetlinkSocket(${NETLINK_XFRM}, { recvBufferSize: ${RECV_BUFFER}, sendBufferSize: 65536 });
const out = (s) => process.stdout.write(s + '\\n');
const fail = (id, e) => out('e ' + id + ' ' + Math.abs(Number(e && e.errno) || 5) + ' ' + ((e && e.code) || 'EIO'));
sock.on('message', (m) => out('R ' + m.toString('hex')));
sock.on('error', (e) => { process.stderr.write('netlink socket error: ' + e.message + '\\n'); process.exit(3); });
require('readline').createInterface({ input: process.stdin }).on('line', (l) => {
  const [op, id, arg] = l.split(' ');
  try {
    if (op === 'S') sock.send(Buffer.from(arg, 'hex'), { port: 0 }, (err) => err ? fail(id, err) : out('s ' + id));
    else if (op === 'J') { sock.addMembership(Number(arg)); out('s ' + id); }
  } catch (e) { fail(id, e); }
}).on('close', () => process.exit(0));
out('READY');
`;

export type RelayTarget = { kind: 'netns'; path: string } | { kind: 'fresh' };

export class RelayChannel implements DatagramChannel {
  private readonly waiting = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private readonly datagramCbs: Array<(d: Uint8Array) => void> = [];
  private lostCb: ((reason: string) => void) | undefined;
  private dead: string | undefined;
  private stderrTail = '';

  private constructor(
    private readonly child: ChildProcessWithoutNullStreams,
    readonly label: string,
  ) {}

  /** Starts the helper; resolves once its socket exists. */
  static start(target: RelayTarget, timeoutMs = 15_000): Promise<RelayChannel> {
    const netlinkPath = createRequire(import.meta.url).resolve('netlink');
    const [cmd, args, label] =
      target.kind === 'netns'
        ? ['nsenter', [`--net=${target.path}`, '--'], target.path]
        : ['unshare', ['--net', '--'], 'a fresh network namespace'];
    const child = spawn(cmd, [...args, process.execPath, '-e', RELAY_SOURCE, netlinkPath], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const ch = new RelayChannel(child, label);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new ChannelError(110, 'ETIMEDOUT', `netlink helper in ${label} did not start`));
      }, timeoutMs);
      let ready = false;
      child.on('error', (e) => {
        clearTimeout(timer);
        reject(asChannelError(e, `starting ${cmd}`));
      });
      child.stderr.on('data', (b: Buffer) => {
        ch.stderrTail = (ch.stderrTail + b.toString('utf8')).slice(-2000);
      });
      child.on('exit', (code, sig) => {
        clearTimeout(timer);
        const why = `netlink helper in ${label} exited (${sig ?? code})${ch.stderrTail ? `: ${ch.stderrTail.trim()}` : ''}`;
        ch.fail(why);
        if (!ready) reject(new ChannelError(code === 1 ? 1 : 5, code === 1 ? 'EPERM' : 'EIO', why));
      });
      createInterface({ input: child.stdout }).on('line', (line) => {
        if (line === 'READY') {
          ready = true;
          clearTimeout(timer);
          ch.setRef(false);
          resolve(ch);
          return;
        }
        ch.line(line);
      });
    });
  }

  private line(line: string): void {
    const sp = line.indexOf(' ');
    const op = line.slice(0, sp);
    const rest = line.slice(sp + 1);
    if (op === 'R') {
      const d = new Uint8Array(Buffer.from(rest, 'hex'));
      for (const cb of this.datagramCbs) cb(d);
      return;
    }
    const [id, errno, code] = rest.split(' ');
    const w = this.waiting.get(Number(id));
    if (!w) return;
    this.waiting.delete(Number(id));
    if (op === 's') w.resolve();
    else w.reject(new ChannelError(Number(errno), code ?? 'EIO', `netlink helper: ${code}`));
  }

  private fail(reason: string): void {
    if (this.dead) return;
    this.dead = reason;
    for (const w of this.waiting.values()) w.reject(new ChannelError(5, 'EIO', reason));
    this.waiting.clear();
    this.lostCb?.(reason);
  }

  private call(op: 'S' | 'J', arg: string): Promise<void> {
    if (this.dead) return Promise.reject(new ChannelError(5, 'EIO', this.dead));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.child.stdin.write(`${op} ${id} ${arg}\n`);
    });
  }

  send(d: Uint8Array): Promise<void> {
    return this.call('S', Buffer.from(d).toString('hex'));
  }

  onDatagram(cb: (d: Uint8Array) => void): void {
    this.datagramCbs.push(cb);
  }

  join(group: number): Promise<void> {
    return this.call('J', String(group));
  }

  onLost(cb: (reason: string) => void): void {
    this.lostCb = cb;
  }

  setRef(ref: boolean): void {
    // The pipes are net.Sockets underneath (ref/unref), which the stream types do not show.
    type Refable = { ref?: () => unknown; unref?: () => unknown };
    const handles = [
      this.child,
      this.child.stdout,
      this.child.stderr,
      this.child.stdin,
    ] as unknown[] as Refable[];
    for (const h of handles) {
      if (ref) h.ref?.();
      else h.unref?.();
    }
  }

  close(): void {
    if (!this.dead) this.dead = 'closed';
    this.child.stdin.end();
    const t = setTimeout(() => this.child.kill('SIGKILL'), 2000);
    t.unref();
    this.child.once('exit', () => clearTimeout(t));
  }
}
