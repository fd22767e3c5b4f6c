// The `ha:` section of the daemon's configuration (src/daemon/config.ts calls parseHaSection):
//
//   ha:
//     lease: { name: ikegw-leader, namespace: vpn }  # namespace default: the service account's
//                                                    # namespace file, else $POD_NAMESPACE
//     identity: <default $POD_NAME, else the host name>
//     lease_duration: 15s    # > renew_deadline + 2 s (clock-rate skew and step-down margin)
//     renew_deadline: 10s    # > retry_period
//     retry_period: 2s
//
// Absent = no election: the daemon is active from the start, as it always was.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { parseDuration } from '../common/duration.js';

export interface HaSettings {
  lease: { name: string; namespace: string };
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
}

export const HA_DEFAULTS = { leaseDurationS: 15, renewDeadlineS: 10, retryPeriodS: 2 } as const;
/** Lease duration must exceed renew deadline by at least this much (clock-rate skew, step-down). */
export const HA_SKEW_MARGIN_S = 2;
export const SERVICE_ACCOUNT_NAMESPACE_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

type Env = Record<string, string | undefined>;

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const KEYS = ['lease', 'identity', 'lease_duration', 'renew_deadline', 'retry_period'];

const show = (v: unknown): string => (typeof v === 'string' ? JSON.stringify(v) : String(v));
const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

export interface HaParseOptions {
  /** Reads the service account's namespace file (default fs; undefined when missing). */
  readNamespaceFile?: () => string | undefined;
  hostname?: () => string;
}

function defaultNamespaceFile(): string | undefined {
  try {
    return readFileSync(SERVICE_ACCOUNT_NAMESPACE_FILE, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/**
 * Validates `ha:`; every problem is reported through err(field, message) with the field's path.
 * Returns undefined when there were errors.
 */
export function parseHaSection(
  v: unknown,
  env: Env,
  err: (field: string, message: string) => void,
  o: HaParseOptions = {},
): HaSettings | undefined {
  let ok = true;
  const fail = (field: string, message: string): undefined => {
    ok = false;
    err(field, message);
    return undefined;
  };
  if (!isObj(v))
    return fail('ha', `must be a mapping (lease, identity, lease_duration, ...), got ${show(v)}`);
  for (const k of Object.keys(v))
    if (!KEYS.includes(k)) fail(`ha.${k}`, `unknown key (expected one of ${KEYS.join(', ')})`);

  let name: string | undefined;
  let namespace: string | undefined;
  if (!isObj(v.lease)) fail('ha.lease', `must be a mapping with name (and namespace), got ${show(v.lease)}`);
  else {
    for (const k of Object.keys(v.lease))
      if (k !== 'name' && k !== 'namespace') fail(`ha.lease.${k}`, 'unknown key (expected name, namespace)');
    const n = v.lease.name;
    if (typeof n !== 'string' || n === '')
      fail('ha.lease.name', 'is required (the Lease object the replicas share)');
    else if (n.length > 253 || !DNS_SUBDOMAIN.test(n))
      fail('ha.lease.name', `${show(n)} is not a valid object name (lower-case DNS subdomain)`);
    else name = n;
    const ns = v.lease.namespace ?? (o.readNamespaceFile ?? defaultNamespaceFile)() ?? env.POD_NAMESPACE;
    if (ns === undefined || ns === '')
      fail(
        'ha.lease.namespace',
        `is required here: no ${SERVICE_ACCOUNT_NAMESPACE_FILE} and POD_NAMESPACE is not set`,
      );
    else if (typeof ns !== 'string' || ns.length > 63 || !DNS_LABEL.test(ns))
      fail('ha.lease.namespace', `${show(ns)} is not a valid namespace name`);
    else namespace = ns;
  }

  let identity: string | undefined;
  const id = v.identity ?? (env.POD_NAME || undefined) ?? (o.hostname ?? hostname)();
  if (typeof id !== 'string' || id.trim() === '' || id.length > 253)
    fail('ha.identity', `must be a non-empty name (default: $POD_NAME, else the host name), got ${show(id)}`);
  else identity = id.trim();

  const dur = (key: string, def: number): number | undefined => {
    const raw = v[key];
    if (raw === undefined) return def;
    const d = parseDuration(raw);
    if (d === undefined)
      return fail(`ha.${key}`, `must be a duration like 15s (plain number = seconds), got ${show(raw)}`);
    return d;
  };
  const lease = dur('lease_duration', HA_DEFAULTS.leaseDurationS);
  const renew = dur('renew_deadline', HA_DEFAULTS.renewDeadlineS);
  const retry = dur('retry_period', HA_DEFAULTS.retryPeriodS);
  if (retry !== undefined && retry < 0.1) fail('ha.retry_period', `must be at least 100ms, got ${retry}s`);
  if (lease !== undefined && !Number.isInteger(lease))
    fail('ha.lease_duration', `must be whole seconds (the Lease stores leaseDurationSeconds), got ${lease}s`);
  if (renew !== undefined && retry !== undefined && !(renew > retry))
    fail('ha.renew_deadline', `must be greater than ha.retry_period (${retry}s), got ${renew}s`);
  if (lease !== undefined && renew !== undefined && !(lease > renew + HA_SKEW_MARGIN_S))
    fail(
      'ha.lease_duration',
      `must be greater than ha.renew_deadline + ${HA_SKEW_MARGIN_S}s clock-skew margin (${renew + HA_SKEW_MARGIN_S}s), got ${lease}s: otherwise a replica that cannot renew might still be active when the other takes over`,
    );
  if (
    !ok ||
    !name ||
    !namespace ||
    !identity ||
    lease === undefined ||
    renew === undefined ||
    retry === undefined
  )
    return undefined;
  return {
    lease: { name, namespace },
    identity,
    leaseDurationMs: Math.round(lease * 1000),
    renewDeadlineMs: Math.round(renew * 1000),
    retryPeriodMs: Math.round(retry * 1000),
  };
}
