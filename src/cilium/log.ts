// What the Cilium agent client and the operator share without the Kubernetes client: the logger
// subset they use and a record check. (src/cilium/k8s.ts loads @kubernetes/client-node, ~116 MB;
// the routes sidecar, which talks only to the Cilium agent, must not load it.)

/** The subset of pino's logger used here. */
export interface Log {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export const silentLog: Log = { debug() {}, info() {}, warn() {}, error() {} };

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
