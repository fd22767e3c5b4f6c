// The daemon without `ha:` must not load the Kubernetes client (~25 MB RSS bundled, ~50 MB as a
// package); with `ha:` it does, when the election starts. Runs `ikegw daemon` (dist/bin/ikegw.js,
// memory data path, loopback, port 0) with a module resolve hook that reports every resolution of
// the client: its chunk in the bundle (scripts/bundle.mjs names it kubernetes-client-*.js), or the
// package where it is not bundled.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI, NODE_FLAGS } from './ikegw-daemon.js';

const dir = mkdtempSync(join(tmpdir(), 'ikegw-ha-lazy-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const HOOK = `import { registerHooks } from 'node:module';
registerHooks({
  resolve(specifier, context, next) {
    if (specifier.startsWith('@kubernetes/client-node') || /\\/kubernetes-client-[\\w-]+\\.js$/.test(specifier))
      process.stderr.write('LOADED @kubernetes/client-node\\n');
    return next(specifier, context);
  },
});
`;

function config(name: string, ha: boolean): string {
  return `connections:
  onprem:
    remote_addrs: [127.0.0.1]
    remote_port: 9
    psk: { value: "lazy-import-test-psk-0123456789" }
    children:
      net:
        local_ts: [10.10.0.0/16]
        remote_ts: [192.168.100.0/24]
datapath: memory
listen: { address: 127.0.0.1, port: 0, nat_port: 0 }
control: { socket: ${join(dir, `${name}.sock`)} }
log: { format: json }
${ha ? 'ha:\n  lease: { name: ikegw-leader, namespace: vpn }\n' : ''}`;
}

/** Starts the daemon, waits for `until` in its output, SIGTERMs it; returns stdout + stderr. */
function runDaemon(
  name: string,
  ha: boolean,
  until: RegExp,
  env: Record<string, string> = {},
): Promise<string> {
  const hook = join(dir, 'hook.mjs');
  writeFileSync(hook, HOOK);
  const cfg = join(dir, `${name}.yaml`);
  writeFileSync(cfg, config(name, ha), { mode: 0o600 });
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [...NODE_FLAGS, '--import', hook, CLI, 'daemon', '-c', cfg], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    const timer = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`no ${until} within 20 s:\n${out}`));
    }, 20_000);
    const on = (d: Buffer): void => {
      out += d.toString();
      if (until.test(out)) p.kill('SIGTERM');
    };
    p.stdout.on('data', on);
    p.stderr.on('data', on);
    p.on('exit', () => {
      clearTimeout(timer);
      resolve(out);
    });
  });
}

describe.skipIf(!existsSync(CLI))('the Kubernetes client is loaded only with ha:', () => {
  it('without ha: the daemon runs and never resolves @kubernetes/client-node', async () => {
    const out = await runDaemon('plain', false, /ikegw started/);
    expect(out).toMatch(/ikegw started/);
    expect(out).not.toMatch(/LOADED @kubernetes\/client-node/);
  }, 30_000);

  it('with ha: it is loaded when the election starts', async () => {
    // no API server behind this kubeconfig: the daemon stays standby, which is all this test needs
    const kc = join(dir, 'kubeconfig');
    writeFileSync(
      kc,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [
          { name: 'x', cluster: { server: 'https://127.0.0.1:9', 'insecure-skip-tls-verify': true } },
        ],
        users: [{ name: 'x', user: { token: 't' } }],
        contexts: [{ name: 'x', context: { cluster: 'x', user: 'x' } }],
        'current-context': 'x',
      }),
    );
    const out = await runDaemon('ha', true, /ha: standby \(candidate/, {
      IKEGW_KUBECONFIG: kc,
      POD_NAME: 'p-0',
    });
    expect(out).toMatch(/LOADED @kubernetes\/client-node/);
    expect(out).not.toMatch(/ikegw started/);
  }, 30_000);
});
