// What the daemon and the `ikegw` CLI share: default paths and the control socket's protocol.
// The server is src/daemon/control.ts, the client src/cli/control-client.ts; this module has no
// dependencies, so the CLI can speak the protocol without loading the daemon.
//
// A unix stream socket (config `control.socket`, default /run/ikegw/ikegw.sock) speaking
// line-delimited JSON. The client sends one request per line:
//   {"cmd":"sas"} | {"cmd":"initiate","conn":"onprem","child":"net","timeoutMs":10000}
//   {"cmd":"terminate","conn":"onprem"} | {"cmd":"reload"}
//   {"cmd":"log-level","subsys":"ike","level":"debug"} | {"cmd":"stats"} | {"cmd":"version"}
// and reads zero or more progress lines {"progress":"IKE_SA onprem[1] CONNECTING ..."} followed by
// one final line {"ok":true,"result":...} or {"ok":false,"code":"...","error":"..."}.
export const DEFAULT_CONFIG_PATH = '/etc/ikegw/ikegw.yaml';
export const DEFAULT_CONTROL_SOCKET = '/run/ikegw/ikegw.sock';

/** Longest request line the daemon reads. */
export const MAX_LINE = 64 * 1024;

export type ControlRequest =
  | { cmd: 'sas' }
  | { cmd: 'initiate'; conn: string; child?: string; timeoutMs?: number }
  | { cmd: 'terminate'; conn: string; timeoutMs?: number }
  | { cmd: 'reload' }
  | { cmd: 'log-level'; subsys?: string; level?: string }
  | { cmd: 'stats' }
  | { cmd: 'version' };

export type ControlResponse =
  | { ok: true; result: unknown }
  | { ok: false; code: ControlErrorCode; error: string };

/** Stable error codes (the CLI maps them to exit codes). */
export type ControlErrorCode =
  | 'bad-request'
  | 'unknown-connection'
  | 'not-found'
  | 'failed'
  | 'timeout'
  | 'invalid-config'
  | 'restart-needed'
  | 'internal';

/** What a reload did to one connection (src/ike/reconfigure.ts's ConnChange as it is sent). */
export type ConnChangeReport =
  | { conn: string; action: 'added' | 'removed' | 'unchanged' }
  | { conn: string; action: 'updated' | 're-established'; fields: string[] };

/** The result of `reload`. */
export interface ReloadOutcome {
  /** What was applied live ("log levels", ...). */
  applied: string[];
  /** What the reload did to each connection (added, removed, updated, re-established, unchanged). */
  connections: ConnChangeReport[];
  /** Changes found but not applied: they take effect at the next start of the daemon. */
  pending: string[];
  warnings: string[];
}

// ---- the result of `sas` ------------------------------------------------------------------------------

export interface ChildStatus {
  uid: number;
  name: string;
  state: string;
  reqid: number;
  spiIn: string;
  spiOut: string;
  algorithms: string;
  encap: boolean;
  localTs: string[];
  remoteTs: string[];
  installedSecondsAgo?: number;
  rekeyInSeconds?: number;
  expiresInSeconds?: number;
  bytesIn?: number;
  packetsIn?: number;
  bytesOut?: number;
  packetsOut?: number;
}

export interface SaStatus {
  uid: number;
  conn: string;
  state: string;
  role: 'initiator' | 'responder';
  spiI: string;
  spiR: string;
  local: string;
  remote: string;
  localId: string;
  remoteId: string;
  algorithms: string;
  natLocal: boolean;
  natRemote: boolean;
  establishedSecondsAgo?: number;
  rekeyInSeconds?: number;
  children: ChildStatus[];
}
