// The client side of the control socket (protocol: src/common/control-protocol.ts): one request,
// its progress lines, one result — and what every control command (sas, initiate, terminate,
// reload, log-level, stats) does with it: the socket to use, exit codes, --json.
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import {
  type ControlErrorCode,
  type ControlRequest,
  type ControlResponse,
  DEFAULT_CONTROL_SOCKET,
} from '../common/control-protocol.js';
import { parseDuration } from '../common/duration.js';
import type { Env } from './command.js';

export class ControlUnreachable extends Error {
  constructor(
    message: string,
    readonly errno?: string,
  ) {
    super(message);
    this.name = 'ControlUnreachable';
  }
}

/** Sends one request; calls onProgress for progress lines; resolves with the final response. */
export function controlRequest(
  path: string,
  req: ControlRequest,
  onProgress: (text: string) => void = () => undefined,
  timeoutMs = 660_000,
): Promise<ControlResponse> {
  return new Promise((resolve, reject) => {
    const sock = connect(path);
    sock.setEncoding('utf8');
    let buf = '';
    let settled = false;
    const timer = setTimeout(() => {
      settled = true;
      sock.destroy();
      reject(new ControlUnreachable(`no answer from the daemon on ${path} within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    const settle = (f: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      f();
    };
    sock.on('connect', () => sock.write(`${JSON.stringify(req)}\n`));
    sock.on('data', (chunk: string) => {
      buf += chunk;
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let msg: Record<string, unknown>;
        try {
          msg = JSON.parse(line) as Record<string, unknown>;
        } catch {
          settle(() =>
            reject(new ControlUnreachable(`the daemon on ${path} sent something that is not JSON`)),
          );
          return;
        }
        if (typeof msg.progress === 'string') onProgress(msg.progress);
        else if (typeof msg.ok === 'boolean') settle(() => resolve(msg as ControlResponse));
      }
    });
    sock.on('error', (e: NodeJS.ErrnoException) => {
      const why =
        e.code === 'ENOENT'
          ? `no control socket at ${path}: is the ikegw daemon running (and is control.socket / --socket the same)?`
          : e.code === 'EACCES' || e.code === 'EPERM'
            ? `permission denied on ${path}: the control socket is only for the daemon's user (run as root / with sudo)`
            : e.code === 'ECONNREFUSED'
              ? `${path} exists but no daemon answers (left over from a daemon that was killed?)`
              : `cannot talk to the daemon on ${path}: ${e.message}`;
      settle(() => reject(new ControlUnreachable(why, e.code)));
    });
    sock.on('close', () =>
      settle(() => reject(new ControlUnreachable(`the daemon closed ${path} without an answer`))),
    );
  });
}

// ---- what the control commands share --------------------------------------------------------------

/** Options of every control command. */
export const CONTROL_OPTIONS = {
  socket: { type: 'string' },
  config: { type: 'string', short: 'c' },
  json: { type: 'boolean' },
} as const;

/** Exit codes of the control commands (also in docs/operations.md). */
export const EXIT = { ok: 0, failed: 1, usage: 2, unreachable: 3 } as const;

function exitFor(code: ControlErrorCode): number {
  switch (code) {
    case 'bad-request':
    case 'invalid-config':
      return EXIT.usage;
    default:
      return EXIT.failed;
  }
}

/** The control socket the CLI talks to: --socket, $IKEGW_SOCKET, control.socket of -c FILE, default. */
export async function controlSocket(values: { socket?: string; config?: string }, env: Env): Promise<string> {
  if (values.socket) return values.socket;
  if (env.IKEGW_SOCKET) return env.IKEGW_SOCKET;
  if (values.config) {
    try {
      const text = readFileSync(values.config, 'utf8');
      const { parse } = await import('yaml');
      const doc = parse(text) as { control?: { socket?: unknown } } | null;
      if (typeof doc?.control?.socket === 'string') return doc.control.socket;
    } catch {
      // unreadable or invalid: the default, and the error shows when connecting
    }
  }
  return DEFAULT_CONTROL_SOCKET;
}

/** `--timeout S` of initiate/terminate in ms; a string is the error to print. */
export function parseTimeout(cmd: string, s: string | undefined): number | undefined | { error: string } {
  if (s === undefined) return undefined;
  const t = parseDuration(/^\d+(\.\d+)?$/.test(s) ? Number(s) : s);
  if (t === undefined || t <= 0 || t > 600)
    return { error: `ikegw ${cmd}: --timeout takes seconds (or 30s, 2m), at most 10m\n` };
  return t * 1000;
}

export interface ControlCliIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

export interface ControlOutput {
  json?: boolean;
  /** Prints a successful result (default: the result as JSON); returns the exit code. */
  print?: (result: unknown, io: ControlCliIo) => number;
  /** The exit code of a successful result under --json (default 0). */
  status?: (result: unknown) => number;
}

/**
 * Runs one control command against the daemon and prints the outcome. Returns the exit code:
 * 0 done, 1 the daemon ran it and it failed (or a reload left changes pending), 2 bad usage or an
 * invalid configuration, 3 the daemon cannot be reached. Progress lines are printed as they come
 * (not with --json).
 */
export async function runControlCommand(
  socket: string,
  req: ControlRequest,
  io: ControlCliIo,
  out: ControlOutput = {},
): Promise<number> {
  let res: ControlResponse;
  try {
    res = await controlRequest(socket, req, (text) => {
      if (!out.json) io.stdout(`${text}\n`);
    });
  } catch (e) {
    io.stderr(`ikegw: ${e instanceof Error ? e.message : String(e)}\n`);
    return EXIT.unreachable;
  }
  if (!res.ok) {
    if (out.json) io.stdout(`${JSON.stringify(res)}\n`);
    io.stderr(`ikegw ${req.cmd}: ${res.error}\n`);
    return exitFor(res.code);
  }
  if (out.json) {
    io.stdout(`${JSON.stringify(res.result, null, 2)}\n`);
    return out.status?.(res.result) ?? EXIT.ok;
  }
  if (out.print) return out.print(res.result, io);
  io.stdout(`${JSON.stringify(res.result, null, 2)}\n`);
  return EXIT.ok;
}
