// The README's `sudo ./dev demo` (npm run demo = dist/cli/demo.js): it brings the tunnel up by
// traffic, pings both ways, cleans up after itself, and refuses to run over a leftover namespace.
import { execFileSync, spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, test } from 'vitest';
import { labAvailable } from './lab.js';

const DEMO = resolve(import.meta.dirname, '../../dist/cli/demo.js');
const avail = labAvailable();

const demoNamespaces = (): string[] =>
  execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n.startsWith('ikegw-demo-'));

describe.skipIf(!avail.ok)(`npm run demo${avail.ok ? '' : ` (skipped: ${avail.why})`}`, () => {
  test('runs end to end against strongSwan and leaves nothing behind', () => {
    expect(demoNamespaces()).toEqual([]);
    const r = spawnSync(process.execPath, [DEMO], { encoding: 'utf8', timeout: 60_000 });
    const out = `${r.stdout}${r.stderr}`;
    expect(r.status, out).toBe(0);
    expect(out).toContain('on-prem gateway: strongSwan');
    expect(out).toMatch(/ping pod -> on-prem host: 3\/3 replies/);
    expect(out).toMatch(/ping on-prem host -> pod: 3\/3 replies/);
    expect(out).toMatch(/^ {6}onprem: #\d+, ESTABLISHED, IKEv2/m);
    expect(out).toContain('ikegw_tunnel_up{conn="onprem",child="cluster"} 1');
    expect(out).toMatch(/AUTHENTICATION_FAILED: the peer rejected our AUTH/);
    expect(out).toMatch(/cleaning up: stopped 2 processes, deleted 5 namespaces, removed /);
    expect(demoNamespaces()).toEqual([]);
  }, 90_000);

  test('refuses to run when one of its namespaces exists', () => {
    execFileSync('ip', ['netns', 'add', 'ikegw-demo-nat']);
    try {
      const r = spawnSync(process.execPath, [DEMO], { encoding: 'utf8', timeout: 30_000 });
      expect(r.status).toBe(2);
      expect(r.stderr).toContain('namespaces from another demo exist: ikegw-demo-nat');
      expect(demoNamespaces()).toEqual(['ikegw-demo-nat']);
    } finally {
      execFileSync('ip', ['netns', 'del', 'ikegw-demo-nat']);
    }
  });
});
