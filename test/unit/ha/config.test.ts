// The `ha:` section: defaults, where the namespace and identity come from, and the checks that keep
// the timings safe — each error names its field.
import { describe, expect, it } from 'vitest';
import { type ConfigResult, loadConfig } from '../../../src/daemon/config.js';
import { parseHaSection } from '../../../src/ha/config.js';

const readFile = (): Uint8Array => new TextEncoder().encode('psk-psk-psk-psk-psk-psk\n');
const BASE = `
connections:
  onprem:
    remote_addrs: [198.51.100.1]
    psk: { file: /etc/ikegw/psk }
    children:
      net:
        local_ts: [10.10.0.0/16]
        remote_ts: [192.168.100.0/24]
`;
const load = (ha: string, env: Record<string, string> = {}): ConfigResult =>
  loadConfig(`${BASE}${ha}`, env, { readFile });
const errs = (r: ConfigResult): string[] => (r.ok ? [] : r.errors.map((e) => e.message));

describe('config: ha', () => {
  it('absent: no election (the behaviour without HA)', () => {
    const r = load('');
    expect(r.ok && r.value.daemon.ha).toBeUndefined();
  });

  it('defaults: 15 s / 10 s / 2 s, identity from POD_NAME, namespace from POD_NAMESPACE', () => {
    const r = load('ha:\n  lease: { name: vpn-ikegw-leader }\n', {
      POD_NAME: 'vpn-frontend-1',
      POD_NAMESPACE: 'vpn',
    });
    expect(errs(r)).toEqual([]);
    expect(r.ok && r.value.daemon.ha).toEqual({
      lease: { name: 'vpn-ikegw-leader', namespace: 'vpn' },
      identity: 'vpn-frontend-1',
      leaseDurationMs: 15_000,
      renewDeadlineMs: 10_000,
      retryPeriodMs: 2_000,
    });
  });

  it('the service account namespace file wins over POD_NAMESPACE; the host name is the last identity', () => {
    const got: string[] = [];
    const ha = parseHaSection(
      { lease: { name: 'l' } },
      { POD_NAMESPACE: 'env-ns' },
      (f, m) => got.push(`${f}: ${m}`),
      {
        readNamespaceFile: () => 'sa-ns',
        hostname: () => 'node-a',
      },
    );
    expect(got).toEqual([]);
    expect(ha).toMatchObject({ lease: { namespace: 'sa-ns' }, identity: 'node-a' });
  });

  it('lease_duration must exceed renew_deadline + 2 s; renew_deadline must exceed retry_period', () => {
    const e = errs(
      load('ha:\n  lease: { name: l, namespace: vpn }\n  lease_duration: 12s\n  renew_deadline: 10s\n'),
    );
    expect(e).toHaveLength(1);
    expect(e[0]).toMatch(
      /^ha\.lease_duration: must be greater than ha\.renew_deadline \+ 2s clock-skew margin \(12s\), got 12s/,
    );
    expect(
      errs(load('ha:\n  lease: { name: l, namespace: vpn }\n  renew_deadline: 2s\n  retry_period: 2s\n')),
    ).toEqual(['ha.renew_deadline: must be greater than ha.retry_period (2s), got 2s']);
    expect(errs(load('ha:\n  lease: { name: l, namespace: vpn }\n  lease_duration: 15.5s\n'))[0]).toMatch(
      /^ha\.lease_duration: must be whole seconds/,
    );
  });

  it('names the field of every other mistake', () => {
    const e = errs(
      load('ha:\n  lease: { name: Not_A_Name }\n  identity: ""\n  retry_period: soon\n  leader: x\n', {}),
    );
    expect(e.some((m) => m.startsWith('ha.leader: unknown key'))).toBe(true);
    expect(e.some((m) => m.startsWith('ha.lease.name: "Not_A_Name" is not a valid object name'))).toBe(true);
    expect(e.some((m) => m.startsWith('ha.retry_period: must be a duration'))).toBe(true);
    expect(e.some((m) => m.startsWith('ha.identity: must be a non-empty name'))).toBe(true);
    expect(errs(load('ha: yes\n'))[0]).toMatch(/^ha: must be a mapping/);
    expect(errs(load('ha:\n  identity: a\n'))[0]).toMatch(/^ha\.lease: must be a mapping/);
  });
});
