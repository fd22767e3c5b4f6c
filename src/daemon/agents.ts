// The Kubernetes helpers as processes: `ikegw routes` (the frontend pod's sidecar: routes on the
// node and in the pod, plus Cilium's SourceIPVerification off for the pod's endpoint) and
// `ikegw operator` (the Deployment that keeps the CiliumEndpoint and ip-masq-agent patched).
// Both are configured from the environment the chart passes (VPN_*, POD_*, IKEGW_*), run until
// SIGTERM/SIGINT, and clean up what they own on the way out.
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { DEFAULT_CILIUM_SOCKET, runCiliumSetup } from '../cilium/agent-client.js';
import { ciliumSetupOptionsFromEnv, operatorOptionsFromEnv } from '../cilium/env.js';
import { parseDuration } from '../common/duration.js';
import { IkegwError } from '../common/errors.js';
import { routesOptionsFromEnv } from '../routes/env.js';
import { HaGate } from '../routes/ha-gate.js';
import { runRoutesAgent } from '../routes/reconciler.js';

type Env = Record<string, string | undefined>;

function logger(component: string, env: Env) {
  return pino({ level: env.IKEGW_LOG_LEVEL ?? 'info', base: { subsys: 'k8s', component } });
}

function untilSignal(): Promise<string> {
  return new Promise((resolve) => {
    for (const s of ['SIGTERM', 'SIGINT'] as const) process.once(s, () => resolve(s));
  });
}

function explain(e: unknown): string {
  return e instanceof IkegwError ? e.message : e instanceof Error ? e.message : String(e);
}

export interface AgentIo {
  stderr: (s: string) => void;
  env: Env;
  /** Resolves when the agent should stop (tests); default: SIGTERM/SIGINT. */
  stop?: Promise<unknown>;
}

/** `ikegw routes [--node-netns PATH] [--no-cilium]`. */
export async function runRoutesCommand(
  opts: { nodeNetns?: string; cilium: boolean },
  io: AgentIo,
): Promise<number> {
  const log = logger('routes', io.env);
  let routesOpts: ReturnType<typeof routesOptionsFromEnv>;
  try {
    routesOpts = routesOptionsFromEnv(io.env);
  } catch (e) {
    io.stderr(`ikegw routes: ${explain(e)}\n`);
    return 2;
  }
  if (opts.nodeNetns) routesOpts.nodeNetns = opts.nodeNetns;
  // Cilium drops decapsulated packets whose source is an on-prem address unless the endpoint's
  // SourceIPVerification is off; the setting is lost when the endpoint is recreated, so keep at it.
  const socket = io.env.IKEGW_CILIUM_SOCKET ?? DEFAULT_CILIUM_SOCKET;
  let agent: { stop(): Promise<void> } | undefined;
  let cilium: { stop(): Promise<void> | void } | undefined;
  const begin = async (): Promise<void> => {
    agent = await runRoutesAgent({ ...routesOpts, log });
    if (opts.cilium && io.env.POD_IP && existsSync(dirname(socket))) {
      try {
        cilium = await runCiliumSetup({ ...ciliumSetupOptionsFromEnv(io.env), log });
      } catch (e) {
        log.error({ err: explain(e) }, 'Cilium agent client did not start');
      }
    } else if (opts.cilium) {
      log.warn(
        { socket },
        'not touching Cilium: POD_IP unset or no Cilium agent socket directory (--no-cilium silences this)',
      );
    }
  };
  const end = async (): Promise<void> => {
    const [c, a] = [cilium, agent];
    cilium = undefined;
    agent = undefined;
    await c?.stop();
    await a?.stop();
  };
  // HA (the chart's ha.enabled): routes only while this pod's daemon is the active replica.
  let gate: HaGate | undefined;
  if (io.env.IKEGW_HA_STATUS_URL) {
    let intervalMs = 1000;
    if (io.env.IKEGW_HA_POLL_INTERVAL) {
      const d = parseDuration(io.env.IKEGW_HA_POLL_INTERVAL);
      if (d === undefined || d < 0.1) {
        io.stderr(
          `ikegw routes: IKEGW_HA_POLL_INTERVAL: not a duration of at least 100ms: ${JSON.stringify(io.env.IKEGW_HA_POLL_INTERVAL)}\n`,
        );
        return 2;
      }
      intervalMs = Math.round(d * 1000);
    }
    gate = new HaGate({ url: io.env.IKEGW_HA_STATUS_URL, intervalMs, start: begin, stop: end, log });
    gate.start();
  } else await begin();
  log.info({ peerCidrs: routesOpts.peerCidrs, nodeNetns: routesOpts.nodeNetns }, 'routes agent running');
  const why = await (io.stop ?? untilSignal());
  log.info({ why: String(why) }, 'routes agent stopping: removing its routes');
  await gate?.close();
  await end();
  return 0;
}

/** `ikegw operator`: in-cluster credentials, options from the chart's environment. */
export async function runOperatorCommand(io: AgentIo, kubeConfig?: KubeConfig): Promise<number> {
  const log = logger('operator', io.env);
  // The Kubernetes client (~116 MB) is loaded here, by the operator only: not by the routes
  // sidecar, which shares this module.
  const { KubeConfig } = await import('@kubernetes/client-node');
  const { runOperator } = await import('../cilium/endpoint-reconciler.js');
  let kc = kubeConfig;
  if (!kc) {
    kc = new KubeConfig();
    try {
      kc.loadFromCluster();
    } catch (e) {
      io.stderr(
        `ikegw operator: no in-cluster credentials (${explain(e)}); run it as the chart's Deployment\n`,
      );
      return 2;
    }
  }
  let opts: ReturnType<typeof operatorOptionsFromEnv>;
  try {
    opts = operatorOptionsFromEnv(io.env, kc);
  } catch (e) {
    io.stderr(`ikegw operator: ${explain(e)}\n`);
    return 2;
  }
  const op = await runOperator({ ...opts, log });
  log.info({ pod: opts.podName, namespace: opts.namespace, peerCidrs: opts.peerCidrs }, 'operator running');
  await (io.stop ?? untilSignal());
  await op.stop();
  return 0;
}
