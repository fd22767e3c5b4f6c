// `npm run build`'s second step: bundles tsc's dist/cli.js, with its npm dependencies, into
// dist/bin/ikegw.js plus one chunk per lazily imported command (`ikegw daemon`, `ikegw routes`, ...)
// — the `ikegw` the package, the image and the tests run.
//
// Why (issue: efficiency): started from ~170 module files, Node's ESM loader resolves a path per
// import, so hot that V8 optimizes its path functions with TurboFan at start-up, which alone maps
// ~5 MiB of the node binary's compiler code; each module also keeps its own source, records and
// scope. `ikegw daemon` at rest (BENCH_ONLY=idle): 73.4 MiB RSS unbundled, 65.6 MiB bundled.
// Comments are dropped and non-ASCII characters escaped (`charset: 'ascii'`): V8 stores a script
// that has one character above U+00FF, such as an em dash in a message, at two bytes per character.
// Identifiers and layout are kept, so stack traces in logs stay readable.
//
// External: node built-ins and `netlink` (a native addon found by its package path).
// `@kubernetes/client-node`, which only `ikegw operator` and the HA election import (lazily), is
// bundled too, into its own chunk kubernetes-client-*.js: the operator at rest 116.8 -> 86.6 MiB.
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
  external: [/^node:/, 'netlink'],
  logLevel: 'warn',
  // the entry exports nothing; lets the group below leave the client's dependencies out
  preserveEntrySignatures: 'allow-extension',
  output: {
    dir: outDir,
    format: 'esm',
    entryFileNames: 'ikegw.js',
    chunkFileNames: '[name]-[hash].js',
    charset: 'ascii',
    comments: false,
    codeSplitting: {
      groups: [
        {
          debugName: 'kubernetes-client',
          name: (id) => (id.includes('/node_modules/@kubernetes/client-node/') ? 'kubernetes-client' : null),
          // its dependencies where rolldown puts them: ip-address, which the daemon uses too, in
          // the chunk with the client would load all of it
          includeDependenciesRecursively: false,
        },
      ],
    },
  },
});
