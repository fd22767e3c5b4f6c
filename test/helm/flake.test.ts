// flake.nix, checked offline: it parses, and it evaluates against a stub nixpkgs
// (test/helm/flake-stub.nix) to the outputs we expect. Needs nix-instantiate (Debian: nix-bin);
// a real `nix build .#default` / `.#image` needs network access to nixpkgs and the npm registry.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from './render.js';

const hasNix = spawnSync('nix-instantiate', ['--version'], { encoding: 'utf8' }).status === 0;
if (!hasNix) console.warn('test/helm/flake.test.ts skipped: no nix-instantiate (apt-get install -y nix-bin)');

interface LockEntry {
  version?: string;
  resolved?: string;
  integrity?: string;
  optional?: boolean;
}
interface FlakeSummary {
  description: string;
  nixpkgsUrl: string;
  systems: string[];
  packages: string[];
  devShellSystems: string[];
  checks: string[];
  package: {
    pname: string;
    version: string;
    nodejs: string;
    npmConfigHook: string;
    npmBuildScript: string;
    npm_config_build_from_source: string;
    nativeBuildInputs: string[];
    doCheck: boolean;
    mainProgram: string;
    srcFiles: string[];
    srcHasNodeModules: boolean;
  };
  npmDeps: { packageName: string; lockPackages: Record<string, LockEntry> };
  image: {
    name: string;
    tag: string;
    Entrypoint: string[];
    User: string;
    ExposedPorts: Record<string, object>;
    contents: string[];
    extraCommands: string;
  };
  devShell: string[];
}

function nix(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('nix-instantiate', args, { cwd: repoRoot, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** Tarball URLs in the local npm cache (a record of what `npm ci` really fetched), if any. */
function npmCachedUrls(): Set<string> {
  const urls = new Set<string>();
  const index = join(homedir(), '.npm/_cacache/index-v5');
  if (!existsSync(index)) return urls;
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else {
        for (const m of readFileSync(p, 'utf8').matchAll(
          /"key":"make-fetch-happen:request-cache:([^"]+\.tgz)"/g,
        )) {
          urls.add(m[1]!);
        }
      }
    }
  };
  walk(index);
  return urls;
}

describe.skipIf(!hasNix)('flake.nix', () => {
  it('parses', () => {
    const r = nix(['--parse', 'flake.nix']);
    expect(r.status, r.stderr).toBe(0);
  });

  it('evaluates against a stub nixpkgs to the expected outputs', () => {
    const r = nix([
      '--eval',
      '--strict',
      '--json',
      'test/helm/flake-stub.nix',
      '--arg',
      'flakePath',
      './flake.nix',
    ]);
    expect(r.status, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout) as FlakeSummary;
    const pkgJson = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as {
      name: string;
      version: string;
    };

    expect(s.nixpkgsUrl).toMatch(/^github:NixOS\/nixpkgs\//);
    expect(s.systems).toEqual(['aarch64-linux', 'x86_64-linux']);
    expect(s.packages).toEqual(['default', 'ikegw', 'image']);
    expect(s.devShellSystems).toEqual(['aarch64-linux', 'x86_64-linux']);
    expect(s.checks).toEqual(['ikegw']);

    expect(s.package).toMatchObject({
      pname: 'ikegw',
      version: pkgJson.version,
      nodejs: 'nodejs-20',
      npmConfigHook: 'npm-config-hook', // importNpmLock's hook: no npmDepsHash
      npmBuildScript: 'build',
      npm_config_build_from_source: 'true',
      doCheck: false,
      mainProgram: 'ikegw',
      srcHasNodeModules: false,
    });
    expect(s.package.nativeBuildInputs).toEqual(expect.arrayContaining(['python3', 'gnumake']));
    expect(s.package.srcFiles).toEqual([
      'package.json',
      'package-lock.json',
      'tsconfig.json',
      'tsconfig.build.json',
      'src',
      'native',
    ]);
    for (const f of s.package.srcFiles) expect(existsSync(join(repoRoot, f)), f).toBe(true);

    expect(s.image.name).toBe('ikegw');
    expect(s.image.tag).toBe(pkgJson.version);
    expect(s.image.Entrypoint).toEqual([
      `/nix/store/00000000000000000000000000000000-ikegw-${pkgJson.version}/bin/ikegw`,
    ]);
    expect(s.image.User).toBe('65532:65532');
    expect(Object.keys(s.image.ExposedPorts).sort()).toEqual(['4500/udp', '500/udp', '9500/tcp']);
    expect(s.image.contents.join('')).toContain('nonroot:x:65532:65532:');
    // the routes sidecar needs nsenter to reach the node's network namespace
    expect(s.image.contents).toContain('util-linux');
    expect(s.image.extraCommands).toContain('chmod 1777 tmp');

    for (const tool of ['nodejs-20', 'strongswan', 'iproute2', 'nftables', 'tcpdump']) {
      expect(s.devShell).toContain(tool);
    }
  });

  it('gives every package-lock entry a registry URL that importNpmLock can fetch', () => {
    const r = nix([
      '--eval',
      '--strict',
      '--json',
      'test/helm/flake-stub.nix',
      '--arg',
      'flakePath',
      './flake.nix',
    ]);
    expect(r.status, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout) as FlakeSummary;
    const lock = JSON.parse(readFileSync(join(repoRoot, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, LockEntry>;
    };
    expect(s.npmDeps.packageName).toBe('ikegw');
    const out = s.npmDeps.lockPackages;
    expect(Object.keys(out).sort()).toEqual(Object.keys(lock.packages).sort());
    for (const [path, entry] of Object.entries(lock.packages)) {
      if (path === '') continue;
      const got = out[path]!;
      expect(got.integrity, path).toBe(entry.integrity); // still pinned by the lock's hash
      const name = path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length);
      const base = name.startsWith('@') ? name.slice(name.indexOf('/') + 1) : name;
      expect(got.resolved, path).toBe(
        entry.resolved ?? `https://registry.npmjs.org/${name}/-/${base}-${entry.version}.tgz`,
      );
    }
    expect(out['node_modules/netlink/node_modules/@types/node']?.resolved).toMatch(
      /^https:\/\/registry\.npmjs\.org\/@types\/node\/-\/node-12\.[0-9.]+\.tgz$/,
    );

    // Where npm's cache shows what `npm ci` fetched here, the URLs must be those.
    const cached = npmCachedUrls();
    const installed = Object.entries(lock.packages).filter(([p, e]) => p !== '' && !e.optional);
    const inCache = installed.filter(([p]) => cached.has(out[p]!.resolved!));
    if (cached.size > 0 && inCache.length > 0) {
      expect(
        installed.filter(([p]) => !cached.has(out[p]!.resolved!)).map(([p]) => p),
        'non-optional packages whose derived URL npm did not fetch',
      ).toEqual([]);
    }
  });
});
