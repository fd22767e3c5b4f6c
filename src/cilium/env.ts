// The environment contract of `ikegw operator` and `ikegw cilium-setup`, with the reference chart's
// variable names (VPN_FRONTEND_POD, VPN_PEER_CIDRS space-separated) plus downward-API ones.
import type { KubeConfig } from '@kubernetes/client-node';
import { ConfigError } from '../common/errors.js';
import type { CiliumSetupOptions } from './agent-client.js';
import type { OperatorOptions } from './endpoint-reconciler.js';

export type Env = Record<string, string | undefined>;

function list(v: string | undefined): string[] {
  return (v ?? '')
    .split(/[\s,]+/)
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

function required(env: Env, name: string): string {
  const v = env[name]?.trim();
  if (!v) throw new ConfigError(name, 'is required');
  return v;
}

/**
 * VPN_FRONTEND_POD  the frontend pod (<fullname>-frontend-0)            (required)
 * POD_NAMESPACE     its namespace (downward API metadata.namespace)      (required)
 * VPN_PEER_CIDRS    on-prem CIDRs                                        (required)
 * IKEGW_IP_MASQ_AGENT  "<namespace>/<name>[:<key>]" (default kube-system/ip-masq-agent:config) or "none"
 * VPN_HA_LEASE      with ha.enabled: the Lease (in POD_NAMESPACE) whose holder is the frontend pod
 */
export function operatorOptionsFromEnv(env: Env, kubeConfig: KubeConfig): OperatorOptions {
  const peerCidrs = list(env.VPN_PEER_CIDRS);
  if (peerCidrs.length === 0)
    throw new ConfigError('VPN_PEER_CIDRS', 'at least one on-prem CIDR is required');
  const opts: OperatorOptions = {
    kubeConfig,
    podName: required(env, 'VPN_FRONTEND_POD'),
    namespace: required(env, 'POD_NAMESPACE'),
    peerCidrs,
  };
  const lease = env.VPN_HA_LEASE?.trim();
  if (lease) opts.haLease = lease;
  const m = env.IKEGW_IP_MASQ_AGENT?.trim();
  if (m === 'none') opts.ipMasqAgent = false;
  else if (m) {
    const r = /^([^/\s]+)\/([^:\s]+)(?::(\S+))?$/.exec(m);
    if (!r) throw new ConfigError('IKEGW_IP_MASQ_AGENT', 'expected <namespace>/<name>[:<key>] or none');
    opts.ipMasqAgent = { namespace: r[1]!, name: r[2]!, key: r[3] ?? 'config' };
  }
  return opts;
}

/**
 * POD_IP                 the frontend pod's IP (downward API status.podIP)   (required)
 * IKEGW_CILIUM_SOCKET    default /var/run/cilium/cilium.sock
 */
export function ciliumSetupOptionsFromEnv(env: Env): CiliumSetupOptions {
  const opts: CiliumSetupOptions = { podIp: required(env, 'POD_IP') };
  if (env.IKEGW_CILIUM_SOCKET) opts.socketPath = env.IKEGW_CILIUM_SOCKET;
  return opts;
}
