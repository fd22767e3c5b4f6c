// The userspace SPD's reference counting: which of several users' specs of one policy is installed
// (the best priority, the newest among equals), as users come and go in any order.
import { describe, expect, it } from 'vitest';
import { policyKey, SaTable } from '../../../src/esp/userspace/sa-table.js';
import type { PolicySpec } from '../../../src/ike/ports.js';
import { CLUSTER, GW_A, GW_B, ONPREM } from './helpers.js';

function spec(reqid: number, o: Partial<PolicySpec> = {}): PolicySpec {
  return {
    reqid,
    direction: 'out',
    src: CLUSTER,
    dst: ONPREM,
    tunnelSrc: GW_A,
    tunnelDst: GW_B,
    trap: false,
    ...o,
  };
}

const installed = (t: SaTable) => t.policies.get(policyKey(spec(0)))?.installed.reqid;

describe('userspace SPD: the installed spec of a shared policy', () => {
  it('follows removals of the installed spec, newest best first, then the worse priority', () => {
    const t = new SaTable();
    t.addPolicy(spec(1)); // priority 1
    t.addPolicy(spec(2, { trap: true })); // trap: priority 2
    t.addPolicy(spec(3)); // priority 1, newest
    t.addPolicy(spec(4, { priority: 5 }));
    expect(installed(t)).toBe(3);
    expect(t.delPolicy(spec(3))).toBe('ok');
    expect(installed(t)).toBe(1);
    expect(t.delPolicy(spec(1))).toBe('ok');
    expect(installed(t)).toBe(2);
    expect(t.delPolicy(spec(2, { trap: true }))).toBe('ok');
    expect(installed(t)).toBe(4);
    expect(t.outPolicies.map((e) => e.installed.reqid)).toEqual([4]);
    expect(t.delPolicy(spec(4, { priority: 5 }))).toBe('ok');
    expect(installed(t)).toBeUndefined();
    expect(t.outPolicies).toEqual([]);
  });

  it('removing a spec that is not installed leaves the installed one', () => {
    const t = new SaTable();
    for (let r = 1; r <= 3; r++) t.addPolicy(spec(r));
    expect(t.delPolicy(spec(1))).toBe('ok');
    expect(installed(t)).toBe(3);
    expect(t.delPolicy(spec(9))).toBe('not-user');
  });

  it('10,000 users of one policy leave newest first (a shutdown): each next one is installed', () => {
    const t = new SaTable();
    const n = 10_000;
    for (let r = 1; r <= n; r++) t.addPolicy(spec(r));
    for (let r = n; r >= 2; r--) {
      t.delPolicy(spec(r));
      if (r % 1000 === 0) expect(installed(t)).toBe(r - 1);
    }
    expect(installed(t)).toBe(1);
  });
});
