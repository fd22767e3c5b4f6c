#!/usr/bin/env node
// The `ikegw` executable (package.json bin -> dist/cli.js). All logic lives in daemon/main.ts.
import { cliMain } from './daemon/main.js';

const code = await cliMain(process.argv.slice(2), {
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
  env: process.env,
});
process.exitCode = code;
// Everything is closed after a clean stop; this only guards against a stray handle keeping us up.
setTimeout(() => process.exit(code), 3000).unref();
