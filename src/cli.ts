#!/usr/bin/env -S node --max-semi-space-size=2
// The `ikegw` executable: tsc emits dist/cli.js, scripts/bundle.mjs bundles it into dist/bin/ikegw.js
// (package.json bin, the image). The command line is src/cli/main.ts, one module per command in
// src/cli/commands/.
// --max-semi-space-size=2 (MiB): under a burst of IKE_SA set-ups V8 let the young generation grow to
// its default maximum and the heap never gave the memory back — ~90 KiB of RSS per IKE_SA at 2000
// SAs instead of ~35-40 (strongSwan's load-tester, src/bench/loadtester.ts). 2 rather than 4: idle
// RSS 73 vs 77 MiB, and CPU per IKE_SA 0.80-0.82 vs 0.83-0.87 ms (x25519, three runs each; 1 saved
// more memory but no CPU). Where node is started directly (the image: `node dist/bin/ikegw.js`), pass the
// same flag.
import { cliMain } from './cli/main.js';

const code = await cliMain(process.argv.slice(2), {
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
  env: process.env,
});
process.exitCode = code;
// Everything is closed after a clean stop; this only guards against a stray handle keeping us up.
setTimeout(() => process.exit(code), 3000).unref();
