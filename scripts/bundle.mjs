// `npm run build`'s second step: bundles tsc's dist/cli.js, with pino, yaml and ip-address, into
// dist/bin/ikegw.js plus one chunk per lazily imported command (`ikegw daemon`, `ikegw routes`, ...)
// — the `ikegw` the package, the image and the tests run.
//
// Why (issue: efficiency): started from ~170 module files, Node's ESM loader resolves a path per
// import, so hot that V8 optimizes its path functions with TurboFan at start-up, which alone maps
// ~5 MiB of the node binary's compiler code; each module also keeps its own source, records and
// scope. `ikegw daemon` at rest: 75 MiB RSS unbundled, 67 MiB bundled (docs/benchmarks.md).
// Comments are dropped and non-ASCII characters escaped (`charset: 'ascii'`): V8 stores a script
// that has one character above U+00FF, such as an em dash in a message, at two bytes per character.
// Identifiers and layout are kept, so stack traces in logs stay readable.
//
// External: node built-ins; `netlink` (a native addon found by its package path); and
// `@kubernetes/client-node`, which only `ikegw operator` and the HA election import, lazily, and
// which stays a package of its own in node_modules.
//
// rolldown is the bundler vite (hence vitest) already installs; package.json names it at that
// version, so it adds no package.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'rolldown';

const root = join(import.meta.dirname, '..');
const outDir = join(root, 'dist/bin');
rmSync(outDir, { recursive: true, force: true });
await build({
  input: join(root, 'dist/cli.js'),
  platform: 'node',
  external: [/^node:/, 'netlink', '@kubernetes/client-node'],
  logLevel: 'warn',
  output: {
    dir: outDir,
    format: 'esm',
    entryFileNames: 'ikegw.js',
    chunkFileNames: '[name]-[hash].js',
    charset: 'ascii',
    comments: false,
  },
});
