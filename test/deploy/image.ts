// The image under test: built from this checkout with scripts/build-image.sh (offline: a
// debootstrap'd Debian 12 base, then the Containerfile), tagged by a hash of everything the build
// reads, so an unchanged tree reuses the image and a changed one is rebuilt.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { repoRoot } from '../helm/render.js';

/** What the Containerfile copies (kept in step with .containerignore). */
const CONTEXT = [
  'Containerfile',
  'package.json',
  'package-lock.json',
  'scripts/fetch-from-lock.py',
  'scripts/build-image.sh',
  'native/binding.gyp',
  'native/ikegw_native.c',
  'native/build.mjs',
  'tsconfig.json',
  'tsconfig.build.json',
  'src',
];

function files(path: string): string[] {
  const abs = join(repoRoot, path);
  if (!statSync(abs).isDirectory()) return [path];
  return readdirSync(abs)
    .sort()
    .flatMap((n) => files(relative(repoRoot, join(abs, n))));
}

export function imageTag(): string {
  const h = createHash('sha256');
  for (const f of CONTEXT.flatMap(files)) {
    h.update(`${f}\0`);
    h.update(readFileSync(join(repoRoot, f)));
  }
  return `localhost/ikegw:test-${h.digest('hex').slice(0, 12)}`;
}

/** Why the deploy tests cannot run here, or undefined. Only a missing podman/debootstrap is a reason. */
export function deploySkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces, podman)';
  for (const tool of ['podman', 'debootstrap', 'runc']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) {
      return `${tool} is not installed (apt-get install podman buildah runc debootstrap; .ci/run does)`;
    }
  }
  return undefined;
}

/** Builds the image unless it exists; removes older test images. Returns the tag. */
export function ensureImage(): { tag: string; built: boolean; seconds: number } {
  const tag = imageTag();
  const t0 = Date.now();
  const exists = spawnSync('podman', ['image', 'exists', tag]).status === 0;
  if (!exists) {
    const r = spawnSync('bash', [join(repoRoot, 'scripts/build-image.sh'), tag], {
      cwd: repoRoot,
      encoding: 'utf8',
      timeout: 15 * 60_000,
    });
    if (r.status !== 0)
      throw new Error(`building ${tag} failed:\n${r.stdout.slice(-4000)}\n${r.stderr.slice(-4000)}`);
    const old = spawnSync('podman', ['images', '--format', '{{.Repository}}:{{.Tag}}', 'localhost/ikegw'], {
      encoding: 'utf8',
    });
    for (const t of old.stdout.split('\n')) {
      if (t.includes(':test-') && t !== tag) spawnSync('podman', ['rmi', '-f', t]);
    }
  }
  return { tag, built: !exists, seconds: (Date.now() - t0) / 1000 };
}
