#!/usr/bin/env node
// Builds native/ikegw_native.node with node-gyp (the package's `install` script runs this).
// Offline-safe: points node-gyp at the running Node's own headers (<prefix>/include/node) when they
// are there, so nothing is downloaded. A failed build leaves the daemon usable with the XFRM or
// memory data path; the userspace data path then reports that the addon is missing, and the XFRM
// one cannot set UDP_ENCAP on the NAT-T socket (inbound ESP-in-UDP, i.e. behind a NAT, fails).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

const here = dirname(new URL(import.meta.url).pathname);
const prefix = dirname(dirname(process.execPath));
const args = ['rebuild', '--directory', here];
if (!process.env.npm_config_nodedir && existsSync(join(prefix, 'include/node/node_api.h')))
  args.push(`--nodedir=${prefix}`);

const candidates = [
  process.env.npm_config_node_gyp,
  join(prefix, 'lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js'),
].filter((p) => p && existsSync(p));
const gyp = candidates[0];
const r = gyp
  ? spawnSync(process.execPath, [gyp, ...args], { stdio: 'inherit' })
  : spawnSync('node-gyp', args, { stdio: 'inherit' });
if (r.status !== 0) {
  console.error(
    'ikegw: building the native addon (native/) failed: the userspace ESP data path (TUN) is unavailable, ' +
      'and the xfrm data path cannot receive ESP-in-UDP (UDP_ENCAP on the NAT-T socket); plain ESP with xfrm ' +
      'and the memory data path still work. Needs python3, make and a C compiler.',
  );
  process.exit(process.env.IKEGW_NATIVE_REQUIRED === '1' ? 1 : 0);
}
