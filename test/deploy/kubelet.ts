// A small kubelet for test/deploy: runs the pods of a rendered chart with podman, on a simulated
// node built in network namespaces the way Cilium wires one. Everything a container gets comes from
// the rendered objects — image, args, env (values, fieldRefs, Secret/ConfigMap refs), volumes
// (Secret/projected contents as files, emptyDirs, hostPaths mapped onto the simulated node),
// securityContext (user, capabilities, read-only root, no-new-privileges, privileged, hostPID),
// the ServiceAccount token as Kubernetes mounts it, the grace period and the probes.
//
// Node wiring (Cilium-like): the pod's eth0 holds its IP as a /32 with a default route via the
// node's `cilium_host` address; the node end of the veth is `lxc<hash>` with a /32 route to the
// pod. The pod's network namespace is made first (the "pause" sandbox) and every container of the
// pod joins it (`--network ns:`), as the kubelet's CRI does.
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { K8sObject } from '../helm/render.js';
import { repoRoot } from '../helm/render.js';
import type { Lab } from '../interop/lab.js';
import { run } from '../interop/lab.js';

/** scripts/podman.sh: podman with this host's quirks (runc, rlimits), kept in one place. */
export const PODMAN = join(repoRoot, 'scripts/podman.sh');

export function podman(args: readonly string[], opts: { check?: boolean; timeoutMs?: number } = {}) {
  return run(PODMAN, args, { timeoutMs: opts.timeoutMs ?? 60_000, check: opts.check ?? true });
}

// --- the parts of the Kubernetes API the kubelet reads (only what the chart uses) -------------

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: {
    fieldRef?: { fieldPath: string };
    secretKeyRef?: { name: string; key: string; optional?: boolean };
    configMapKeyRef?: { name: string; key: string; optional?: boolean };
  };
}
interface HttpProbe {
  httpGet?: { path: string; port: number | string };
}
interface SecurityContext {
  runAsUser?: number;
  runAsGroup?: number;
  runAsNonRoot?: boolean;
  privileged?: boolean;
  allowPrivilegeEscalation?: boolean;
  readOnlyRootFilesystem?: boolean;
  capabilities?: { add?: string[]; drop?: string[] };
}
export interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env?: EnvVar[];
  ports?: { name?: string; containerPort: number; protocol?: string }[];
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean; subPath?: string }[];
  securityContext?: SecurityContext;
  readinessProbe?: HttpProbe;
  livenessProbe?: HttpProbe;
  startupProbe?: HttpProbe;
}
interface KeyToPath {
  key: string;
  path: string;
  mode?: number;
}
interface Volume {
  name: string;
  emptyDir?: { medium?: string; sizeLimit?: string };
  hostPath?: { path: string; type?: string };
  secret?: { secretName: string; items?: KeyToPath[]; defaultMode?: number };
  configMap?: { name: string; items?: KeyToPath[]; defaultMode?: number };
  projected?: {
    defaultMode?: number;
    sources: {
      secret?: { name: string; items?: KeyToPath[] };
      configMap?: { name: string; items?: KeyToPath[] };
      serviceAccountToken?: { path: string; expirationSeconds?: number; audience?: string };
      downwardAPI?: { items: { path: string; fieldRef?: { fieldPath: string } }[] };
    }[];
  };
}
export interface PodSpec {
  containers: Container[];
  volumes?: Volume[];
  hostPID?: boolean;
  serviceAccountName?: string;
  automountServiceAccountToken?: boolean;
  terminationGracePeriodSeconds?: number;
  securityContext?: { runAsUser?: number; runAsGroup?: number; runAsNonRoot?: boolean };
}

/** The pod template of a rendered StatefulSet or Deployment. */
export function podTemplate(obj: K8sObject): { labels: Record<string, string>; spec: PodSpec } {
  const spec = obj.spec as { template: { metadata: { labels: Record<string, string> }; spec: PodSpec } };
  return { labels: spec.template.metadata.labels, spec: spec.template.spec };
}

export function find(objects: readonly K8sObject[], kind: string, name?: string): K8sObject {
  const o = objects.find((x) => x.kind === kind && (name === undefined || x.metadata.name === name));
  if (!o) throw new Error(`the rendered chart has no ${kind}${name ? ` ${name}` : ''}`);
  return o;
}

// --- the simulated node -----------------------------------------------------------------------

export interface SimNodeOptions {
  /** The lab namespace that plays the node (its WAN interface is the node's external one). */
  nodeNs: string;
  nodeName: string;
  /** The node's `cilium_host` address: every pod's default gateway. */
  gateway: string;
  /** hostPath on the node → path on this machine (a file, directory or device to bind). */
  hostPaths: Record<string, string>;
  /** Where pod directories (volumes, tokens) live. */
  dir: string;
  /** A label put on every container, to find and remove them all. */
  label: string;
  /** The in-cluster API endpoint the kubelet announces to pods (KUBERNETES_SERVICE_HOST/PORT). */
  apiServer: { host: string; port: number; caPem: string };
  /** The token of a ServiceAccount, as the API server issues it (namespace, name). */
  tokenFor(namespace: string, serviceAccount: string): string;
}

export interface PodSandbox {
  name: string;
  namespace: string;
  uid: string;
  /** The network namespace's name (ip netns) and its path. */
  netns: string;
  netnsPath: string;
  ip: string;
  /** The node end of the pod's veth (lxc…). */
  lxc: string;
  dir: string;
}

export interface RunningContainer {
  name: string;
  id: string;
  spec: Container;
}

export class RunningPod {
  constructor(
    readonly sandbox: PodSandbox,
    readonly spec: PodSpec,
    readonly containers: RunningContainer[],
  ) {}

  container(name: string): RunningContainer {
    const c = this.containers.find((x) => x.name === name);
    if (!c) throw new Error(`pod ${this.sandbox.name} has no container ${name}`);
    return c;
  }

  /** `kubectl exec POD -c CONTAINER -- ARGS` */
  exec(container: string, args: readonly string[], opts: { check?: boolean; timeoutMs?: number } = {}) {
    return podman(['exec', this.container(container).id, ...args], opts);
  }

  /** `kubectl logs POD -c CONTAINER` (stdout and stderr, as the kubelet keeps them). */
  async logs(container: string): Promise<string> {
    const r = await podman(['logs', this.container(container).id], { check: false });
    return r.stdout + r.stderr;
  }

  async state(container: string): Promise<{ running: boolean; exitCode: number }> {
    const r = await podman(
      ['inspect', this.container(container).id, '--format', '{{.State.Running}} {{.State.ExitCode}}'],
      { check: false },
    );
    const [running, code] = r.stdout.trim().split(' ');
    return { running: running === 'true', exitCode: Number(code) };
  }

  /**
   * Deletes the pod as the kubelet does: SIGTERM to every container, SIGKILL after the rendered
   * terminationGracePeriodSeconds. Resolves with each container's exit code.
   */
  async stop(): Promise<Record<string, number>> {
    const grace = this.spec.terminationGracePeriodSeconds ?? 30;
    await Promise.all(
      this.containers.map((c) =>
        podman(['stop', '-t', String(grace), c.id], { check: false, timeoutMs: (grace + 20) * 1000 }),
      ),
    );
    const codes: Record<string, number> = {};
    for (const c of this.containers) codes[c.name] = (await this.state(c.name)).exitCode;
    await Promise.all(this.containers.map((c) => podman(['rm', '-f', c.id], { check: false })));
    return codes;
  }
}

let podSeq = 0;

export class SimNode {
  constructor(
    private readonly lab: Lab,
    readonly opts: SimNodeOptions,
  ) {}

  /** One-time node set-up: the `cilium_host` address. */
  async init(): Promise<void> {
    const ns = this.opts.nodeNs;
    await run('ip', ['-n', ns, 'link', 'add', 'cilium_host', 'type', 'veth', 'peer', 'name', 'cilium_net']);
    await run('ip', ['-n', ns, 'link', 'set', 'cilium_host', 'up']);
    await run('ip', ['-n', ns, 'link', 'set', 'cilium_net', 'up']);
    await run('ip', ['-n', ns, 'addr', 'add', `${this.opts.gateway}/32`, 'dev', 'cilium_host']);
  }

  /** The pod sandbox: its network namespace, the lxc veth, the pod's /32 and routes. */
  async createSandbox(name: string, namespace: string, ip: string): Promise<PodSandbox> {
    const seq = podSeq++;
    const uid = createHash('sha256').update(`${this.opts.label}/${namespace}/${name}/${seq}`).digest('hex');
    const netns = await this.lab.addNamespace(`p${seq}`);
    const lxc = `lxc${uid.slice(0, 11)}`;
    const node = this.opts.nodeNs;
    await run('ip', ['-n', node, 'link', 'add', lxc, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns]);
    await run('ip', ['-n', node, 'link', 'set', lxc, 'up']);
    await run('ip', ['-n', netns, 'link', 'set', 'eth0', 'up']);
    await run('ip', ['-n', netns, 'addr', 'add', `${ip}/32`, 'dev', 'eth0']);
    await run('ip', ['-n', netns, 'route', 'add', this.opts.gateway, 'dev', 'eth0', 'scope', 'link']);
    await run('ip', ['-n', netns, 'route', 'add', 'default', 'via', this.opts.gateway, 'dev', 'eth0']);
    await run('ip', ['-n', node, 'route', 'add', `${ip}/32`, 'dev', lxc]);
    const dir = join(this.opts.dir, `${name}-${seq}`);
    mkdirSync(dir, { recursive: true });
    return { name, namespace, uid, netns, netnsPath: `/run/netns/${netns}`, ip, lxc, dir };
  }

  /** Removes the sandbox: the namespace (and with it the veth and the node's route to the pod). */
  async deleteSandbox(sb: PodSandbox): Promise<void> {
    await run('ip', ['netns', 'del', sb.netns], { check: false });
    await run('ip', ['-n', this.opts.nodeNs, 'route', 'del', `${sb.ip}/32`], { check: false });
    rmSync(sb.dir, { recursive: true, force: true });
  }

  /** Starts every container of `spec` in the sandbox, in order, detached. */
  async runPod(sb: PodSandbox, spec: PodSpec, objects: readonly K8sObject[]): Promise<RunningPod> {
    const volumeArgs = this.volumes(sb, spec, objects);
    const containers: RunningContainer[] = [];
    try {
      for (const c of spec.containers) {
        const args = ['run', '-d', '--name', `${this.opts.label}-${sb.name}-${c.name}-${sb.uid.slice(0, 6)}`];
        args.push('--label', `ikegw-deploy-test=${this.opts.label}`);
        args.push('--network', `ns:${sb.netnsPath}`, '--hostname', sb.name);
        if (spec.hostPID) args.push('--pid', 'host');
        args.push(...this.securityArgs(spec, c));
        for (const [k, v] of this.env(sb, spec, c, objects)) args.push('--env', `${k}=${v}`);
        for (const m of c.volumeMounts ?? []) {
          const v = volumeArgs.get(m.name);
          if (!v) throw new Error(`container ${c.name}: volumeMount ${m.name} has no volume`);
          if (v.device) args.push('--device', `${v.device}:${m.mountPath}`);
          else
            args.push('--volume', `${v.hostPath}:${m.mountPath}:${m.readOnly || v.readOnly ? 'ro' : 'rw'}`);
        }
        if (spec.automountServiceAccountToken !== false) {
          args.push(
            '--volume',
            `${this.serviceAccountDir(sb, spec)}:/var/run/secrets/kubernetes.io/serviceaccount:ro`,
          );
        }
        if (c.command) args.push('--entrypoint', JSON.stringify(c.command));
        args.push(c.image, ...(c.args ?? []));
        const r = await podman(args);
        containers.push({ name: c.name, id: r.stdout.trim(), spec: c });
      }
    } catch (e) {
      await Promise.all(containers.map((c) => podman(['rm', '-f', c.id], { check: false })));
      throw e;
    }
    return new RunningPod(sb, spec, containers);
  }

  /** Removes every container this node started (also after a failed test). */
  async removeAll(): Promise<void> {
    const r = await podman(['ps', '-aq', '--filter', `label=ikegw-deploy-test=${this.opts.label}`], {
      check: false,
    });
    const ids = r.stdout.split('\n').filter((s) => s.trim());
    if (ids.length > 0) await podman(['rm', '-f', '-t', '0', ...ids], { check: false });
  }

  // --- what the kubelet derives from the spec -----------------------------------------------------

  private securityArgs(spec: PodSpec, c: Container): string[] {
    const sc = c.securityContext ?? {};
    const pod = spec.securityContext ?? {};
    const args: string[] = [];
    if (sc.privileged) {
      args.push('--privileged');
    } else {
      for (const cap of sc.capabilities?.drop ?? []) args.push('--cap-drop', cap);
      for (const cap of sc.capabilities?.add ?? []) args.push('--cap-add', cap);
      if (sc.allowPrivilegeEscalation === false) args.push('--security-opt', 'no-new-privileges');
    }
    // Kubernetes mounts nothing writable over a read-only root (podman would add tmpfs on /tmp, /run).
    if (sc.readOnlyRootFilesystem) args.push('--read-only', '--read-only-tmpfs=false');
    const uid = sc.runAsUser ?? pod.runAsUser;
    const gid = sc.runAsGroup ?? pod.runAsGroup;
    if (uid !== undefined) args.push('--user', gid !== undefined ? `${uid}:${gid}` : String(uid));
    if ((sc.runAsNonRoot ?? pod.runAsNonRoot) && uid === 0) {
      throw new Error(`container ${c.name}: runAsNonRoot with runAsUser 0 (the kubelet refuses to start it)`);
    }
    return args;
  }

  private env(
    sb: PodSandbox,
    spec: PodSpec,
    c: Container,
    objects: readonly K8sObject[],
  ): [string, string][] {
    const out: [string, string][] = [
      // every pod gets these, whatever enableServiceLinks says
      ['KUBERNETES_SERVICE_HOST', this.opts.apiServer.host],
      ['KUBERNETES_SERVICE_PORT', String(this.opts.apiServer.port)],
    ];
    for (const e of c.env ?? []) {
      if (e.value !== undefined) {
        out.push([e.name, e.value]);
        continue;
      }
      const f = e.valueFrom;
      if (f?.fieldRef) {
        const v = this.fieldValue(sb, spec, f.fieldRef.fieldPath);
        if (v === undefined) throw new Error(`env ${e.name}: fieldRef ${f.fieldRef.fieldPath} not simulated`);
        out.push([e.name, v]);
      } else if (f?.secretKeyRef || f?.configMapKeyRef) {
        const ref = (f.secretKeyRef ?? f.configMapKeyRef)!;
        const v = keyOf(objects, f.secretKeyRef ? 'Secret' : 'ConfigMap', ref.name, ref.key);
        if (v !== undefined) out.push([e.name, v.toString('utf8')]);
        else if (!ref.optional) throw new Error(`env ${e.name}: ${ref.name}/${ref.key} not found`);
      } else {
        out.push([e.name, '']);
      }
    }
    return out;
  }

  private fieldValue(sb: PodSandbox, spec: PodSpec, fieldPath: string): string | undefined {
    const fields: Record<string, string> = {
      'metadata.name': sb.name,
      'metadata.namespace': sb.namespace,
      'metadata.uid': sb.uid,
      'status.podIP': sb.ip,
      'spec.nodeName': this.opts.nodeName,
      'spec.serviceAccountName': spec.serviceAccountName ?? 'default',
    };
    return fields[fieldPath];
  }

  private serviceAccountDir(sb: PodSandbox, spec: PodSpec): string {
    const dir = join(sb.dir, 'serviceaccount');
    mkdirSync(dir, { recursive: true });
    const sa = spec.serviceAccountName ?? 'default';
    writeFileSync(join(dir, 'token'), this.opts.tokenFor(sb.namespace, sa), { mode: 0o644 });
    writeFileSync(join(dir, 'ca.crt'), this.opts.apiServer.caPem, { mode: 0o644 });
    writeFileSync(join(dir, 'namespace'), sb.namespace, { mode: 0o644 });
    return dir;
  }

  private volumes(
    sb: PodSandbox,
    spec: PodSpec,
    objects: readonly K8sObject[],
  ): Map<string, { hostPath?: string; device?: string; readOnly?: boolean }> {
    const out = new Map<string, { hostPath?: string; device?: string; readOnly?: boolean }>();
    for (const v of spec.volumes ?? []) {
      const dir = join(sb.dir, 'volumes', v.name);
      if (v.emptyDir) {
        mkdirSync(dir, { recursive: true });
        chmodSync(dir, 0o777);
        out.set(v.name, { hostPath: dir });
      } else if (v.hostPath) {
        const local = this.opts.hostPaths[v.hostPath.path];
        if (!local)
          throw new Error(`volume ${v.name}: hostPath ${v.hostPath.path} is not simulated on this node`);
        out.set(v.name, v.hostPath.type === 'CharDevice' ? { device: local } : { hostPath: local });
      } else if (v.secret || v.configMap || v.projected) {
        mkdirSync(dir, { recursive: true });
        const sources = v.projected
          ? v.projected.sources
          : v.secret
            ? [{ secret: { name: v.secret.secretName, items: v.secret.items } }]
            : [{ configMap: { name: v.configMap!.name, items: v.configMap!.items } }];
        const mode = v.projected?.defaultMode ?? v.secret?.defaultMode ?? v.configMap?.defaultMode ?? 0o644;
        for (const s of sources) {
          const write = (path: string, value: string | Buffer) => {
            const file = join(dir, path);
            mkdirSync(join(file, '..'), { recursive: true });
            writeFileSync(file, value, { mode });
          };
          // What the kubelet projects for a bound ServiceAccount token (the chart's kube-api-access).
          if (s.serviceAccountToken) {
            write(
              s.serviceAccountToken.path,
              this.opts.tokenFor(sb.namespace, spec.serviceAccountName ?? 'default'),
            );
            continue;
          }
          if (s.downwardAPI) {
            for (const it of s.downwardAPI.items) {
              const field = it.fieldRef?.fieldPath;
              const value = field ? this.fieldValue(sb, spec, field) : undefined;
              if (value === undefined)
                throw new Error(`volume ${v.name}: downwardAPI ${field} not simulated`);
              write(it.path, value);
            }
            continue;
          }
          const kind = s.secret ? 'Secret' : 'ConfigMap';
          const src = (s.secret ?? s.configMap)!;
          // Every namespace has the ConfigMap kube-root-ca.crt (the cluster CA), published by
          // kube-controller-manager; the rendered chart does not contain it.
          const obj =
            kind === 'ConfigMap' && src.name === 'kube-root-ca.crt'
              ? ({
                  apiVersion: 'v1',
                  kind: 'ConfigMap',
                  metadata: { name: 'kube-root-ca.crt' },
                  data: { 'ca.crt': this.opts.apiServer.caPem },
                } as K8sObject)
              : find(objects, kind, src.name);
          const data = dataOf(obj);
          const items: KeyToPath[] = src.items ?? Object.keys(data).map((k) => ({ key: k, path: k }));
          for (const it of items) {
            const value = data[it.key];
            if (value === undefined)
              throw new Error(`volume ${v.name}: ${kind} ${src.name} has no key ${it.key}`);
            const file = join(dir, it.path);
            mkdirSync(join(file, '..'), { recursive: true });
            writeFileSync(file, value, { mode: it.mode ?? mode });
          }
        }
        out.set(v.name, { hostPath: dir, readOnly: true });
      } else {
        throw new Error(`volume ${v.name}: kind not simulated`);
      }
    }
    return out;
  }
}

function dataOf(obj: K8sObject): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  const data = (obj.data ?? {}) as Record<string, string>;
  const stringData = (obj.stringData ?? {}) as Record<string, string>;
  for (const [k, v] of Object.entries(data)) {
    out[k] = obj.kind === 'Secret' ? Buffer.from(v, 'base64') : Buffer.from(v, 'utf8');
  }
  for (const [k, v] of Object.entries(stringData)) out[k] = Buffer.from(v, 'utf8');
  return out;
}

function keyOf(objects: readonly K8sObject[], kind: string, name: string, key: string): Buffer | undefined {
  const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
  return o ? dataOf(o)[key] : undefined;
}
