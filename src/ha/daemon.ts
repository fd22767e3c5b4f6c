// `ha:` in the daemon: runDaemon (src/daemon/main.ts) imports this module with import() only when
// the configuration has an `ha:` section, so the daemon without HA never loads the Kubernetes client.
//
// Standby: /healthz 200, /readyz 503 (check "ha": standby), /ha 503, UDP 500/4500 not bound, no data
// path (no TUN, no XFRM state), no IKE_SAs. Active: the daemon as without HA (the unit runDaemon
// starts), /readyz 200 once started, /ha 200. Stepping down: unready at once, then DELETEs (≤ 1 s),
// SAs and policies removed, sockets closed.
import type { Operations } from '../daemon/control.js';
import type { Logs } from '../daemon/log.js';
import type { HaSettings } from './config.js';
import { kubeLeaseStore, type LeaseStore, loadKubeConfig } from './lease-client.js';
import { HaMetrics, HaRunner } from './runner.js';

export interface StartHaOptions {
  settings: HaSettings;
  env: Record<string, string | undefined>;
  logs: Logs;
  ops: Operations;
  /** Starts the active side; resolves when it runs (rejects when it cannot start). */
  activate(): Promise<void>;
  /** Stops the active side (bounded). */
  deactivate(): Promise<void>;
  /** A Lease store other than the Kubernetes API (tests). */
  store?: LeaseStore;
}

/** How long SIGTERM may take: step down (≤ 1 s of DELETEs) and release the Lease. */
export const HA_SHUTDOWN_TIMEOUT_MS = 5000;

export async function startHa(o: StartHaOptions): Promise<{ shutdown(): Promise<void>; runner: HaRunner }> {
  const log = o.logs.get('k8s');
  const store = o.store ?? kubeLeaseStore(loadKubeConfig(o.env), o.settings.lease);
  const { ops } = o;
  ops.standby(`waiting for ${store.where}`);
  const runner: HaRunner = new HaRunner({
    settings: o.settings,
    store,
    log,
    metrics: new HaMetrics(ops.metrics.registry),
    hooks: {
      onRole: (role) => {
        // unready at once when stepping down; ready only once the active side runs (activate)
        if (role === 'standby') {
          ops.readiness.set('ha', false, `standby: stepping down from ${store.where}`);
          ops.metrics.setReady(false);
        }
      },
      activate: async () => {
        await o.activate();
        ops.readiness.set('ha', true, `active: ${o.settings.identity} holds ${store.where}`);
        ops.metrics.setReady(ops.readiness.ready);
      },
      deactivate: async () => {
        try {
          await o.deactivate();
        } finally {
          const holder = runner.status().holder;
          ops.standby(`${store.where} is held by ${holder || 'nobody'}`);
        }
      },
    },
  });
  ops.haStatus = () => ({ ...runner.status() });
  runner.start();
  return {
    runner,
    shutdown: () => runner.shutdown(HA_SHUTDOWN_TIMEOUT_MS),
  };
}
