// The routes sidecar's HA gate (src/routes/ha-gate.ts): routes only while the daemon's GET /ha says
// active; standby stops at once, a daemon that does not answer after two polls.
import { describe, expect, it } from 'vitest';
import { HaGate } from '../../../src/routes/ha-gate.js';

describe('routes HA gate', () => {
  it('starts on active, stops on standby at once and after two unanswered polls', async () => {
    const calls: string[] = [];
    let answer: (() => { status: number; body: unknown }) | undefined;
    const log = { info: () => undefined, warn: () => undefined };
    const gate = new HaGate({
      url: 'http://127.0.0.1:1/ha',
      intervalMs: 60_000,
      start: async () => {
        calls.push('start');
      },
      stop: async () => {
        calls.push('stop');
      },
      log,
      get: async () => {
        if (!answer) throw new Error('ECONNREFUSED');
        return answer();
      },
    });
    const poll = async (): Promise<void> => {
      await gate.poll();
    };
    answer = () => ({ status: 503, body: { role: 'standby', holder: 'other' } });
    await poll();
    expect(calls).toEqual([]);
    answer = () => ({ status: 200, body: { role: 'active' } });
    await poll();
    await poll();
    expect(calls).toEqual(['start']);
    expect(gate.isRouting).toBe(true);
    answer = () => ({ status: 503, body: { role: 'standby' } });
    await poll();
    expect(calls).toEqual(['start', 'stop']);
    answer = () => ({ status: 200, body: { role: 'active' } });
    await poll();
    answer = undefined; // the daemon stops answering: one miss is tolerated, two stop routing
    await poll();
    expect(calls).toEqual(['start', 'stop', 'start']);
    await poll();
    expect(calls).toEqual(['start', 'stop', 'start', 'stop']);
    // 200 without role "active" (e.g. another endpoint) is not active
    answer = () => ({ status: 200, body: {} });
    await poll();
    expect(gate.isRouting).toBe(false);
    await gate.close();
  });

  it('a failed start is retried at the next poll', async () => {
    let fail = true;
    const calls: string[] = [];
    const gate = new HaGate({
      url: 'x',
      intervalMs: 60_000,
      start: async () => {
        calls.push('start');
        if (fail) throw new Error('EPERM');
      },
      stop: async () => {
        calls.push('stop');
      },
      log: { info: () => undefined, warn: () => undefined },
      get: async () => ({ status: 200, body: { role: 'active' } }),
    });
    await gate.poll();
    expect(gate.isRouting).toBe(false);
    fail = false;
    await gate.poll();
    expect(gate.isRouting).toBe(true);
    expect(calls).toEqual(['start', 'start']);
    await gate.close();
  });
});
