// The operator (`ikegw operator`): makes the whole cluster route the on-prem CIDRs to the VPN
// frontend pod, and keeps ip-masq-agent from masquerading traffic to them.
//
//  1. CiliumEndpoint <ns>/<pod> (cilium.io/v2, same name as the pod): status.networking.addressing
//     := the pod's own IPs + one {"ipv4": cidr} / {"ipv6": cidr} entry per on-prem CIDR. Every
//     Cilium agent puts the CEP's addresses into its ipcache, so the CIDRs are routed to this pod's
//     node and endpoint. The CRD has no status subresource, so the object itself is JSON-patched,
//     with an RFC 6902 `test` of the value read first: a concurrent rewrite by the Cilium agent makes
//     the patch fail (422) instead of being lost; then it re-reads and retries.
//     The agent rewrites the status whenever its endpoint model changes; the watch on the CEP sees
//     that and the patch is re-applied within the debounce delay.
//  2. ConfigMap kube-system/ip-masq-agent, if it exists: the CIDRs in nonMasqueradeCIDRs of its
//     `config` key (see ip-masq.ts), other keys and fields untouched. CIDRs the operator added are
//     recorded in the annotation ikegw.io/non-masquerade-cidrs so that they, and only they, are
//     removed again when the CIDR list shrinks.
//
// High availability (ha.enabled, `haLease`): the frontend pod is not fixed but the holder of the
// Lease the frontend replicas are elected on (spec.holderIdentity = the active pod's name). The
// operator watches that Lease and the namespace's pods and CiliumEndpoints, patches the holder's
// CEP, and takes the on-prem CIDRs out of any other CEP it finds them in (the previous holder's),
// so that only the active replica's endpoint claims them in Cilium's ipcache. With no holder (the
// Lease released, nobody elected yet) no CEP claims them.
//
// Level-triggered: three list+watch reflectors (the pod, its CEP, the ConfigMap, each by
// metadata.name field selector) feed one cache; any change, a periodic resync or a failure retry
// schedules one reconcile pass that compares the cached state with the desired state.
import { isIPv4, isIPv6 } from 'node:net';
import type { KubeConfig } from '@kubernetes/client-node';
import { ConfigError } from '../common/errors.js';
import { PassLoop } from '../common/pass-loop.js';
import { canonicalCidr, editNonMasqueradeCidrs, MasqConfigError } from './ip-masq.js';
import {
  isRecord,
  type JsonPatchOp,
  KubeApiError,
  KubeClient,
  type KubeObject,
  type Log,
  pointerToken,
  Reflector,
  silentLog,
} from './k8s.js';

export const MANAGED_CIDRS_ANNOTATION = 'ikegw.io/non-masquerade-cidrs';

export interface IpMasqAgentTarget {
  namespace: string;
  name: string;
  key: string;
}

export interface OperatorOptions {
  /** In a pod: `const kc = new KubeConfig(); kc.loadFromCluster()`. */
  kubeConfig: KubeConfig;
  /** Namespace of the frontend pod (the release namespace). */
  namespace: string;
  /** The frontend pod (VPN_FRONTEND_POD, `<fullname>-frontend-0`); its CiliumEndpoint has the same name. */
  podName: string;
  /**
   * HA (VPN_HA_LEASE): the coordination.k8s.io/v1 Lease in `namespace` whose holderIdentity is the
   * frontend pod to address; podName is then not used.
   */
  haLease?: string;
  /** On-prem CIDRs (VPN_PEER_CIDRS). */
  peerCidrs: string[];
  /** The ip-masq-agent ConfigMap; default kube-system/ip-masq-agent key "config"; false = leave it alone. */
  ipMasqAgent?: Partial<IpMasqAgentTarget> | false;
  /** Reconcile even without events this often. Default 60 s. */
  resyncIntervalMs?: number;
  /** Coalescing delay after watch events. Default 50 ms. */
  debounceMs?: number;
  /** Server-side watch timeout (then the watch resumes from the last resourceVersion). */
  watchTimeoutSeconds?: number;
  log?: Log;
  signal?: AbortSignal;
}

export interface OperatorStatus {
  /** Both objects are as desired (or the ConfigMap does not exist). */
  converged: boolean;
  podIps: string[];
  endpoint:
    | 'waiting-for-leader'
    | 'waiting-for-pod'
    | 'waiting-for-endpoint'
    | 'waiting-for-status'
    | 'in-sync'
    | 'error';
  /** The frontend pod whose CiliumEndpoint carries the CIDRs (with HA: the Lease holder, if any). */
  target?: string;
  /** HA: CiliumEndpoints of former holders the CIDRs were taken out of. */
  endpointReleases: number;
  ipMasqAgent: 'disabled' | 'absent' | 'in-sync' | 'error';
  /** Patches sent (successful). */
  endpointPatches: number;
  configMapPatches: number;
  /** Patches rejected by a failed `test` (422) or a conflict (409) and retried. */
  retries: number;
  passes: number;
  lastError?: string;
  /** The last list/watch failure of each watched object kind, while it lasts (e.g. 401, 403). */
  apiErrors: string[];
}

export interface Operator {
  reconcileNow(): Promise<OperatorStatus>;
  setPeerCidrs(cidrs: string[]): void;
  status(): OperatorStatus;
  stop(): Promise<void>;
}

function validateCidrs(cidrs: string[]): string[] {
  const out: string[] = [];
  cidrs.forEach((c, i) => {
    const field = `peerCidrs[${i}]`;
    const m = /^\s*([0-9a-fA-F.:]+)\/(\d{1,3})\s*$/.exec(c);
    if (!m || (!isIPv4(m[1]!) && !isIPv6(m[1]!)))
      throw new ConfigError(field, `not a CIDR: ${JSON.stringify(c)}`);
    if (Number(m[2]) > (isIPv4(m[1]!) ? 32 : 128)) throw new ConfigError(field, `bad prefix length in ${c}`);
    const canon = canonicalCidr(c);
    if (canon !== canonicalCidr(`${m[1]}/${isIPv4(m[1]!) ? 32 : 128}`).replace(/\/\d+$/, `/${m[2]}`)) {
      throw new ConfigError(field, `${c} has host bits set; the network is ${canon}`);
    }
    if (!out.includes(canon)) out.push(canon);
  });
  return out;
}

/** status.podIPs[].ip, falling back to status.podIP. */
export function podIpsOf(pod: KubeObject | undefined): string[] {
  const st = pod?.status;
  if (!isRecord(st)) return [];
  const ips: string[] = [];
  if (Array.isArray(st.podIPs)) {
    for (const p of st.podIPs) if (isRecord(p) && typeof p.ip === 'string' && p.ip) ips.push(p.ip);
  }
  if (ips.length === 0 && typeof st.podIP === 'string' && st.podIP) ips.push(st.podIP);
  return ips;
}

/**
 * The addressing list: first one AddressPair with the pod's (first) IPv4 and IPv6, the way the
 * Cilium agent writes it itself, then any further pod IPs, then one entry per CIDR.
 */
export function desiredAddressing(podIps: string[], cidrs: string[]): Record<string, string>[] {
  const out: Record<string, string>[] = [];
  const v4 = podIps.filter((ip) => !ip.includes(':'));
  const v6 = podIps.filter((ip) => ip.includes(':'));
  const first: Record<string, string> = {};
  if (v4[0]) first.ipv4 = v4[0];
  if (v6[0]) first.ipv6 = v6[0];
  if (Object.keys(first).length > 0) out.push(first);
  for (const ip of v4.slice(1)) out.push({ ipv4: ip });
  for (const ip of v6.slice(1)) out.push({ ipv6: ip });
  for (const c of cidrs) out.push(c.includes(':') ? { ipv6: c } : { ipv4: c });
  return out;
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a))
    return Array.isArray(b) && a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  if (isRecord(a) && isRecord(b)) {
    const ka = Object.keys(a);
    return (
      ka.length === Object.keys(b).length && ka.every((k) => Object.hasOwn(b, k) && deepEqual(a[k], b[k]))
    );
  }
  return false;
}

const MAX_ATTEMPTS = 6;

class EndpointOperator implements Operator {
  private readonly client: KubeClient;
  private readonly log: Log;
  private cidrs: string[];
  private readonly masq: IpMasqAgentTarget | undefined;
  private readonly pods: Reflector;
  private readonly ceps: Reflector;
  private readonly cms: Reflector | undefined;
  private readonly leases: Reflector | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private readonly loop: PassLoop;
  private st: OperatorStatus;

  constructor(private readonly opts: OperatorOptions) {
    this.client = new KubeClient(opts.kubeConfig);
    this.log = opts.log ?? silentLog;
    this.loop = new PassLoop({
      pass: async () => {
        try {
          await this.pass();
        } finally {
          this.st.passes++;
        }
      },
      debounceMs: opts.debounceMs ?? 50,
      backoff: { baseMs: 200, maxExp: 8, maxMs: 30_000 },
      onScheduled: (why) => this.log.debug({ why }, 'operator: pass scheduled'),
      onSuccess: () => {
        delete this.st.lastError;
      },
      onError: (e, retryInMs) => {
        const msg = e instanceof Error ? e.message : String(e);
        this.st.lastError = msg;
        this.st.converged = false;
        this.log.warn({ err: msg, retryInMs }, 'operator: pass failed');
      },
    });
    this.cidrs = validateCidrs(opts.peerCidrs);
    this.masq =
      opts.ipMasqAgent === false
        ? undefined
        : {
            namespace: opts.ipMasqAgent?.namespace ?? 'kube-system',
            name: opts.ipMasqAgent?.name ?? 'ip-masq-agent',
            key: opts.ipMasqAgent?.key ?? 'config',
          };
    const common = {
      client: this.client,
      log: this.log,
      onChange: (why: string) => this.kick(why),
      ...(opts.watchTimeoutSeconds !== undefined ? { watchTimeoutSeconds: opts.watchTimeoutSeconds } : {}),
    };
    // With HA the pod changes: watch the namespace's pods and CEPs (the Role allows list/watch there).
    const byName = opts.haLease ? {} : { fieldSelector: `metadata.name=${opts.podName}` };
    this.pods = new Reflector({ ...common, kind: 'pods', namespace: opts.namespace, ...byName });
    this.ceps = new Reflector({ ...common, kind: 'ciliumendpoints', namespace: opts.namespace, ...byName });
    this.leases = opts.haLease
      ? new Reflector({
          ...common,
          kind: 'leases',
          namespace: opts.namespace,
          fieldSelector: `metadata.name=${opts.haLease}`,
        })
      : undefined;
    this.cms = this.masq
      ? new Reflector({
          ...common,
          kind: 'configmaps',
          namespace: this.masq.namespace,
          fieldSelector: `metadata.name=${this.masq.name}`,
        })
      : undefined;
    this.st = {
      converged: false,
      podIps: [],
      endpoint: 'waiting-for-pod',
      ipMasqAgent: this.masq ? 'absent' : 'disabled',
      endpointPatches: 0,
      endpointReleases: 0,
      configMapPatches: 0,
      retries: 0,
      passes: 0,
      apiErrors: [],
    };
  }

  status(): OperatorStatus {
    const apiErrors = [this.pods, this.ceps, this.cms, this.leases].flatMap((r) =>
      r?.lastError ? [r.lastError.message] : [],
    );
    return { ...structuredClone(this.st), apiErrors };
  }

  start(): void {
    this.pods.start();
    this.ceps.start();
    this.cms?.start();
    this.leases?.start();
    this.resyncTimer = setInterval(() => this.kick('resync'), this.opts.resyncIntervalMs ?? 60_000);
    this.opts.signal?.addEventListener('abort', () => void this.stop(), { once: true });
  }

  setPeerCidrs(cidrs: string[]): void {
    this.cidrs = validateCidrs(cidrs);
    this.kick('peer CIDRs changed');
  }

  reconcileNow(): Promise<OperatorStatus> {
    return this.loop.run().then(() => this.status());
  }

  private kick(why: string): void {
    this.loop.kick(why);
  }

  private async pass(): Promise<void> {
    const errors: string[] = [];
    try {
      await this.reconcileEndpoint();
    } catch (e) {
      this.st.endpoint = 'error';
      errors.push(e instanceof Error ? e.message : String(e));
    }
    try {
      await this.reconcileMasq();
    } catch (e) {
      this.st.ipMasqAgent = 'error';
      errors.push(e instanceof Error ? e.message : String(e));
    }
    this.st.converged =
      this.st.endpoint === 'in-sync' &&
      (this.st.ipMasqAgent === 'in-sync' ||
        this.st.ipMasqAgent === 'absent' ||
        this.st.ipMasqAgent === 'disabled');
    if (errors.length > 0) throw new Error(errors.join('; '));
  }

  // --- CiliumEndpoint ---------------------------------------------------------------------------

  /** The pod to address: the fixed one, or with HA the Lease holder (undefined: none, or not known yet). */
  private target(): string | undefined {
    if (!this.leases) return this.opts.podName;
    const lease = this.leases.get(this.opts.haLease ?? '');
    const spec = lease?.spec;
    const holder = isRecord(spec) && typeof spec.holderIdentity === 'string' ? spec.holderIdentity : '';
    return holder || undefined;
  }

  private async reconcileEndpoint(): Promise<void> {
    if (!this.pods.hasSynced || !this.ceps.hasSynced) return;
    if (this.leases && !this.leases.hasSynced) return;
    const target = this.target();
    if (target !== this.st.target) {
      this.log.info(
        { from: this.st.target ?? null, to: target ?? null, lease: this.opts.haLease },
        'operator: frontend pod to address changed (Lease holder)',
      );
      if (target === undefined) delete this.st.target;
      else this.st.target = target;
    }
    if (target === undefined) {
      this.st.endpoint = 'waiting-for-leader';
      this.st.podIps = [];
    } else {
      await this.reconcileTarget(target);
    }
    if (this.leases) await this.releaseOthers(target);
  }

  /** HA: the CIDRs out of every other CEP that has them (a former holder's), the pod's own IPs kept. */
  private async releaseOthers(target: string | undefined): Promise<void> {
    const isOurs = (e: unknown) =>
      isRecord(e) &&
      Object.keys(e).length === 1 &&
      ((typeof e.ipv4 === 'string' && this.cidrs.includes(e.ipv4)) ||
        (typeof e.ipv6 === 'string' && this.cidrs.includes(e.ipv6)));
    for (const listed of this.ceps.list()) {
      const name = listed.metadata.name;
      if (name === target) continue;
      let cep: KubeObject | undefined = listed;
      for (let attempt = 1; cep; attempt++) {
        const networking = isRecord(cep.status) ? cep.status.networking : undefined;
        const current = isRecord(networking) ? networking.addressing : undefined;
        if (!Array.isArray(current) || !current.some(isOurs)) break;
        const want = current.filter((e) => !isOurs(e));
        try {
          const updated = await this.client.jsonPatch('ciliumendpoints', this.opts.namespace, name, [
            { op: 'test', path: '/status/networking/addressing', value: current },
            { op: 'replace', path: '/status/networking/addressing', value: want },
          ]);
          this.ceps.observe(updated);
          this.st.endpointReleases++;
          this.log.info(
            { endpoint: `${this.opts.namespace}/${name}`, addressing: want },
            'operator: on-prem CIDRs taken out of a former frontend CiliumEndpoint',
          );
          break;
        } catch (e) {
          if (!(e instanceof KubeApiError)) throw e;
          if (e.status === 404) break;
          if ((e.status === 422 || e.status === 409) && attempt < MAX_ATTEMPTS) {
            this.st.retries++;
            cep = await this.client.get('ciliumendpoints', this.opts.namespace, name);
            if (cep) this.ceps.observe(cep);
            continue;
          }
          throw e;
        }
      }
    }
  }

  private async reconcileTarget(podName: string): Promise<void> {
    const pod = this.pods.get(podName);
    const podIps = podIpsOf(pod);
    this.st.podIps = podIps;
    if (podIps.length === 0) {
      this.st.endpoint = 'waiting-for-pod';
      return;
    }
    const want = desiredAddressing(podIps, this.cidrs);
    let cep = this.ceps.get(podName);
    for (let attempt = 1; ; attempt++) {
      if (!cep) {
        this.st.endpoint = 'waiting-for-endpoint';
        return;
      }
      const status = cep.status;
      const networking = isRecord(status) ? status.networking : undefined;
      if (!isRecord(networking)) {
        // The agent has not filled in the endpoint yet; its write will come through the watch.
        this.st.endpoint = 'waiting-for-status';
        return;
      }
      const current = networking.addressing;
      if (deepEqual(current, want)) {
        this.st.endpoint = 'in-sync';
        return;
      }
      const ops: JsonPatchOp[] =
        current === undefined
          ? [
              { op: 'test', path: '/status/networking', value: networking },
              { op: 'add', path: '/status/networking/addressing', value: want },
            ]
          : [
              { op: 'test', path: '/status/networking/addressing', value: current },
              { op: 'replace', path: '/status/networking/addressing', value: want },
            ];
      try {
        const updated = await this.client.jsonPatch('ciliumendpoints', this.opts.namespace, podName, ops);
        this.ceps.observe(updated);
        this.st.endpointPatches++;
        this.st.endpoint = 'in-sync';
        this.log.info(
          {
            endpoint: `${this.opts.namespace}/${podName}`,
            addressing: want,
            resourceVersion: updated.metadata.resourceVersion,
          },
          'operator: CiliumEndpoint addressing patched',
        );
        return;
      } catch (e) {
        if (!(e instanceof KubeApiError)) throw e;
        if (e.status === 404) {
          this.st.endpoint = 'waiting-for-endpoint';
          return;
        }
        if ((e.status === 422 || e.status === 409) && attempt < MAX_ATTEMPTS) {
          // Someone (the Cilium agent) wrote in between: read the current object and try again.
          this.st.retries++;
          this.log.debug(
            { status: e.status, attempt },
            'operator: CiliumEndpoint changed under us; re-reading',
          );
          cep = await this.client.get('ciliumendpoints', this.opts.namespace, podName);
          if (cep) this.ceps.observe(cep);
          continue;
        }
        throw e;
      }
    }
  }

  // --- ip-masq-agent ----------------------------------------------------------------------------

  private async reconcileMasq(): Promise<void> {
    const target = this.masq;
    if (!target || !this.cms) return;
    if (!this.cms.hasSynced) return;
    let cm = this.cms.get(target.name);
    for (let attempt = 1; ; attempt++) {
      if (!cm) {
        // "We don't know enough to create an ip-masq-agent" (the reference's words): only edit one that exists.
        this.st.ipMasqAgent = 'absent';
        return;
      }
      const data = isRecord(cm.data) ? cm.data : undefined;
      const text = data && typeof data[target.key] === 'string' ? (data[target.key] as string) : undefined;
      const annotations = cm.metadata.annotations;
      const prevRaw = annotations?.[MANAGED_CIDRS_ANNOTATION];
      let prev: string[] = [];
      if (prevRaw) {
        try {
          const p: unknown = JSON.parse(prevRaw);
          if (Array.isArray(p)) prev = p.filter((x): x is string => typeof x === 'string');
        } catch {
          /* a mangled annotation: treat as nothing managed */
        }
      }
      let edit: ReturnType<typeof editNonMasqueradeCidrs>;
      try {
        edit = editNonMasqueradeCidrs(text, this.cidrs, prev);
      } catch (e) {
        if (e instanceof MasqConfigError) {
          throw new Error(
            `ConfigMap ${target.namespace}/${target.name} key ${target.key}: ${e.message}; not touching it`,
          );
        }
        throw e;
      }
      const annotationValue = JSON.stringify(edit.managed);
      const annotationOk =
        edit.managed.length === 0 ? prevRaw === undefined || prevRaw === '[]' : prevRaw === annotationValue;
      if (!edit.changed && annotationOk) {
        this.st.ipMasqAgent = 'in-sync';
        return;
      }
      const ops: JsonPatchOp[] = [];
      const keyPath = `/data/${pointerToken(target.key)}`;
      if (edit.changed) {
        if (data === undefined) {
          ops.push({ op: 'test', path: '/metadata/resourceVersion', value: cm.metadata.resourceVersion });
          ops.push({ op: 'add', path: '/data', value: { [target.key]: edit.text } });
        } else if (text === undefined) {
          ops.push({ op: 'test', path: '/data', value: data });
          ops.push({ op: 'add', path: keyPath, value: edit.text });
        } else {
          ops.push({ op: 'test', path: keyPath, value: text });
          ops.push({ op: 'replace', path: keyPath, value: edit.text });
        }
      } else {
        ops.push({ op: 'test', path: '/metadata/resourceVersion', value: cm.metadata.resourceVersion });
      }
      if (annotations === undefined) {
        ops.push({ op: 'test', path: '/metadata/annotations', value: null });
        ops.push({
          op: 'add',
          path: '/metadata/annotations',
          value: { [MANAGED_CIDRS_ANNOTATION]: annotationValue },
        });
      } else {
        ops.push({
          op: 'add',
          path: `/metadata/annotations/${pointerToken(MANAGED_CIDRS_ANNOTATION)}`,
          value: annotationValue,
        });
      }
      try {
        const updated = await this.client.jsonPatch('configmaps', target.namespace, target.name, ops);
        this.cms.observe(updated);
        this.st.configMapPatches++;
        this.st.ipMasqAgent = 'in-sync';
        this.log.info(
          { configMap: `${target.namespace}/${target.name}`, added: edit.added, removed: edit.removed },
          'operator: ip-masq-agent nonMasqueradeCIDRs updated',
        );
        return;
      } catch (e) {
        if (!(e instanceof KubeApiError)) throw e;
        if (e.status === 404) {
          this.st.ipMasqAgent = 'absent';
          return;
        }
        if ((e.status === 422 || e.status === 409) && attempt < MAX_ATTEMPTS) {
          this.st.retries++;
          cm = await this.client.get('configmaps', target.namespace, target.name);
          if (cm) this.cms.observe(cm);
          continue;
        }
        throw e;
      }
    }
  }

  async stop(): Promise<void> {
    if (this.loop.isStopped) return;
    clearInterval(this.resyncTimer);
    const passes = this.loop.stop();
    await Promise.all([this.pods.stop(), this.ceps.stop(), this.cms?.stop(), this.leases?.stop()]);
    await passes;
  }
}

/**
 * Starts the operator (`ikegw operator`). Returns at once; progress is in status() and the log.
 * It does not undo its patches on stop: the CEP belongs to the pod (and is rewritten by Cilium),
 * and the ip-masq-agent entries must outlive operator restarts.
 */
export async function runOperator(opts: OperatorOptions): Promise<Operator> {
  const op = new EndpointOperator(opts);
  op.start();
  return op;
}
