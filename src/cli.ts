#!/usr/bin/env node
// The `ikegw` executable (package.json bin -> dist/cli.js). The command line is src/cli/main.ts, one
// module per command in src/cli/commands/.
import { cliMain } from './cli/main.js';

const code = await cliMain(process.argv.slice(2), {
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
  env: process.env,
});
process.exitCode = code;
// Everything is closed after a clean stop; this only guards against a stray handle keeping us up.
setTimeout(() => process.exit(code), 3000).unref();
