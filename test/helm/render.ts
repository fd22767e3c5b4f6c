// Renders the chart in helm/ for the tests: with a real `helm` where one is on PATH, else with
// helmlite (../shared/tools/helmlite, an offline Helm-v3-like renderer built from Debian's Go
// packages), built once into a cache directory outside the repository.
//
// Environment:
//   IKEGW_HELM=<path>|helmlite   use this helm binary, or force helmlite
//   IKEGW_HELMLITE_SRC=<dir>     helmlite sources (default: <repo>/../shared/tools/helmlite)
//   IKEGW_HELMLITE_CACHE=<dir>   where the binary is cached (default: /var/tmp/ikegw-helmlite)
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  accessSync,
  constants,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const chartDir = join(repoRoot, 'helm');

/** Debian packages helmlite's build.sh needs (it would apt-get them; tests never do). */
export const HELMLITE_PACKAGES = [
  'golang-go',
  'golang-github-masterminds-sprig-dev',
  'golang-k8s-sigs-yaml-dev',
  'golang-github-xeipuuv-gojsonschema-dev',
];

export type Renderer =
  | { kind: 'helm'; bin: string }
  | { kind: 'helmlite'; bin: string; buildScript: string }
  | { kind: 'none'; reason: string };

function onPath(cmd: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, cmd);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

function debInstalled(pkg: string): boolean {
  const r = spawnSync('dpkg-query', ['-W', `-f=\${Status}`, pkg], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.includes('install ok installed');
}

/** Decides how to render, without building anything (cheap; runs at collection time). */
export function detectRenderer(): Renderer {
  const forced = process.env.IKEGW_HELM;
  if (forced && forced !== 'helmlite') return { kind: 'helm', bin: forced };
  if (!forced) {
    const helm = onPath('helm');
    if (helm) return { kind: 'helm', bin: helm };
  }
  const src = process.env.IKEGW_HELMLITE_SRC ?? resolve(repoRoot, '../shared/tools/helmlite');
  const buildScript = join(src, 'build.sh');
  if (!existsSync(buildScript)) {
    return { kind: 'none', reason: `no helm on PATH and no helmlite sources at ${src}` };
  }
  // Cache key: the sources, so a changed helmlite is rebuilt.
  const h = createHash('sha256');
  for (const f of ['build.sh', 'go.mod.in', 'main.go']) {
    const p = join(src, f);
    if (existsSync(p)) h.update(readFileSync(p));
  }
  const cache = process.env.IKEGW_HELMLITE_CACHE ?? '/var/tmp/ikegw-helmlite';
  const bin = join(cache, `helmlite-${h.digest('hex').slice(0, 12)}`);
  if (existsSync(bin)) return { kind: 'helmlite', bin, buildScript };
  const missing = HELMLITE_PACKAGES.filter((p) => !debInstalled(p));
  if (missing.length > 0) {
    return {
      kind: 'none',
      reason: `no helm on PATH; building helmlite needs Go: apt-get install -y ${missing.join(' ')}`,
    };
  }
  return { kind: 'helmlite', bin, buildScript };
}

/** Builds helmlite if it is not cached yet (about a minute the first time). */
export function ensureRenderer(r: Renderer, timeoutMs: number): void {
  if (r.kind !== 'helmlite' || existsSync(r.bin)) return;
  mkdirSync(dirname(r.bin), { recursive: true });
  const tmp = `${r.bin}.build-${process.pid}`;
  const res = spawnSync('bash', [r.buildScript, tmp], { encoding: 'utf8', timeout: timeoutMs });
  if (res.status !== 0 || !existsSync(tmp)) {
    throw new Error(`building helmlite failed (${res.status ?? res.signal}):\n${res.stdout}\n${res.stderr}`);
  }
  renameSync(tmp, r.bin);
}

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  [key: string]: unknown;
}

export interface Rendered {
  ok: boolean;
  stdout: string;
  stderr: string;
  /** Each document as YAML text (for "does this text occur" checks) and parsed. */
  docs: Array<{ text: string; obj: K8sObject }>;
}

export interface RenderOptions {
  release?: string;
  namespace?: string;
  chart?: string;
  /** Extra --set expressions (dotted keys only; helmlite supports no more). */
  sets?: string[];
}

let scratch: string | undefined;
function scratchDir(): string {
  scratch ??= mkdtempSync(join(tmpdir(), 'ikegw-helm-test-'));
  return scratch;
}
export function cleanupScratch(): void {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
  scratch = undefined;
}

let counter = 0;
/**
 * Renders the chart with the given values (an object, or YAML text as a user would write in
 * config.yaml). A null values argument renders with no -f file.
 */
export function render(r: Renderer, values: unknown, opts: RenderOptions = {}): Rendered {
  if (r.kind === 'none') throw new Error(r.reason);
  const release = opts.release ?? 'vpn';
  const namespace = opts.namespace ?? 'vpn';
  const chart = opts.chart ?? chartDir;
  const args: string[] = [];
  if (values !== null) {
    const file = join(scratchDir(), `values-${counter++}.yaml`);
    writeFileSync(file, typeof values === 'string' ? values : JSON.stringify(values));
    args.push('-f', file);
  }
  for (const s of opts.sets ?? []) args.push('--set', s);
  const argv =
    r.kind === 'helm'
      ? ['template', release, chart, '--namespace', namespace, ...args]
      : ['--name', release, '--namespace', namespace, ...args, chart];
  const res = spawnSync(r.bin, argv, { encoding: 'utf8', timeout: 60_000 });
  const out: Rendered = {
    ok: res.status === 0,
    stdout: res.stdout ?? '',
    stderr: res.stderr ?? '',
    docs: [],
  };
  if (!out.ok) return out;
  for (const doc of parseAllDocuments(out.stdout)) {
    if (doc.errors.length > 0) throw new Error(`rendered YAML does not parse: ${doc.errors[0]?.message}`);
    const obj: unknown = doc.toJS();
    if (obj === null || obj === undefined) continue;
    out.docs.push({ text: doc.toString(), obj: obj as K8sObject });
  }
  return out;
}
