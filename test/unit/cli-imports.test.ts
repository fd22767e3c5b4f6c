// The CLI's commands that only talk to the daemon (or read a file) must start fast: none of them
// may load, through static imports, the Kubernetes client (~116 MB, 0.5 s), pino, the metrics or
// the daemon. This follows every static import (`import ... from`, `export ... from`,
// `import 'x'`; not `import type`, not `import()`) from each command's module through src/.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');

/** Static, value-level import specifiers of a TypeScript module. */
function staticImports(source: string): string[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const out: string[] = [];
  const from =
    /^\s*(?:import|export)\s+(?!type\b)((?:[\w$]+\s*,\s*)?(?:\{[^}]*\}|\*(?:\s+as\s+[\w$]+)?|[\w$]+))\s+from\s+['"]([^'"]+)['"]/gm;
  for (const m of code.matchAll(from)) {
    const names = m[1]!;
    // `import { type A, type B } from` is erased like `import type`
    const braces = /\{([^}]*)\}/.exec(names);
    const onlyTypes =
      braces !== null &&
      !names.replace(braces[0], '').replace(/[\s,]/g, '') &&
      braces[1]!
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
        .every((s) => s.startsWith('type '));
    if (!onlyTypes) out.push(m[2]!);
  }
  for (const m of code.matchAll(/^\s*import\s+['"]([^'"]+)['"]/gm)) out.push(m[1]!);
  return out;
}

/** Every module reachable by static imports from `entry`: src files (relative to ROOT) and packages. */
function staticClosure(entry: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const todo = [resolve(ROOT, entry)];
  while (todo.length > 0) {
    const file = todo.pop()!;
    const rel = relative(ROOT, file);
    if (files.has(rel)) continue;
    files.add(rel);
    for (const spec of staticImports(readFileSync(file, 'utf8'))) {
      if (spec.startsWith('.')) {
        const ts = resolve(dirname(file), spec).replace(/\.js$/, '.ts');
        if (!existsSync(ts)) throw new Error(`${rel}: cannot resolve ${spec}`);
        todo.push(ts);
      } else if (!spec.startsWith('node:')) {
        packages.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!);
      }
    }
  }
  return { files, packages };
}

const HEAVY_PACKAGES = ['@kubernetes/client-node', 'pino', 'pino-pretty'];
const DAEMON_MODULES = [
  'src/daemon/main.ts',
  'src/daemon/control.ts',
  'src/daemon/metrics.ts',
  'src/daemon/prom.ts',
  'src/daemon/http.ts',
  'src/daemon/log.ts',
  'src/daemon/agents.ts',
];

describe('CLI import graph', () => {
  it('reads the import forms this code base uses', () => {
    expect(
      staticImports(`import { a } from './a.js';
import type { B } from './b.js';
import { type C } from './c.js';
import { type D, e } from './d.js';
import pino, { type Logger } from 'pino';
export { f } from './f.js';
export type { G } from './g.js';
import * as h from 'h';
import 'side-effect';
// import { x } from './commented.js';
const later = await import('./dynamic.js');
`),
    ).toEqual(['./a.js', './d.js', 'pino', './f.js', 'h', 'side-effect']);
  });

  // The bin entry and the dispatcher, and every command module: `ikegw --help` loads all of them.
  const entries = [
    'src/cli.ts',
    'src/cli/main.ts',
    ...[
      'version',
      'sas',
      'initiate',
      'terminate',
      'reload',
      'log-level',
      'stats',
      'config-check',
      'daemon',
      'import-swanctl',
      'routes',
      'operator',
    ].map((c) => `src/cli/commands/${c}.ts`),
  ];
  it.each(entries)('%s loads no Kubernetes client, pino, metrics or daemon module', (entry) => {
    const { files, packages } = staticClosure(entry);
    expect([...packages].filter((p) => HEAVY_PACKAGES.includes(p))).toEqual([]);
    expect([...files].filter((f) => DAEMON_MODULES.includes(f))).toEqual([]);
  });

  it('the commands that only talk to the daemon load no YAML parser or config loader either', () => {
    for (const c of ['version', 'sas', 'initiate', 'terminate', 'reload', 'log-level', 'stats']) {
      const { files, packages } = staticClosure(`src/cli/commands/${c}.ts`);
      expect([...packages], c).toEqual([]);
      expect(
        [...files].filter((f) => !f.startsWith('src/cli/') && !f.startsWith('src/common/')),
        c,
      ).toEqual([]);
    }
  });

  it('the daemon still reaches what it needs (the scan is not vacuous)', () => {
    const { files, packages } = staticClosure('src/daemon/main.ts');
    expect(packages).toContain('pino');
    expect(files).toContain('src/daemon/prom.ts');
    expect(files).toContain('src/daemon/control.ts');
    expect(staticClosure('src/cilium/endpoint-reconciler.ts').packages).toContain('@kubernetes/client-node');
  });

  it('the routes sidecar (daemon/agents.ts) loads the Kubernetes client only for the operator, lazily', () => {
    expect(staticClosure('src/daemon/agents.ts').packages).not.toContain('@kubernetes/client-node');
    expect(staticClosure('src/cilium/agent-client.ts').packages).not.toContain('@kubernetes/client-node');
  });

  it('every command module is registered with the dispatcher', () => {
    const main = readFileSync(join(ROOT, 'src/cli/main.ts'), 'utf8');
    for (const e of entries.slice(2))
      expect(main).toContain(`'./commands/${e.split('/').pop()!.replace('.ts', '.js')}'`);
  });
});
