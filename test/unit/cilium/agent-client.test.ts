// The Cilium agent client against the fake agent on a unix socket.
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  CiliumAgentClient,
  CiliumAgentError,
  type CiliumSetup,
  parseRetryAfter,
  runCiliumSetup,
} from '../../../src/cilium/agent-client.js';
import { FakeCiliumAgent } from '../../fakes/cilium-agent.js';
import { waitFor } from '../../fakes/wait.js';

describe('CiliumAgentClient', () => {
  let agent: FakeCiliumAgent;
  let waits: number[];
  let client: CiliumAgentClient;

  beforeEach(async () => {
    agent = await FakeCiliumAgent.start();
    waits = [];
    client = new CiliumAgentClient({
      socketPath: agent.socketPath,
      sleep: async (ms) => {
        waits.push(ms);
      },
    });
  });
  afterEach(async () => {
    await agent.stop();
  });

  it('finds the endpoint by IPv4, disables SourceIPVerification once, then leaves it', async () => {
    const id = agent.addEndpoint({ ipv4: '10.0.1.5' });
    agent.addEndpoint({ ipv4: '10.0.1.6' });
    expect(await client.ensureSourceIpVerificationDisabled('10.0.1.5')).toEqual({
      outcome: 'disabled',
      endpointId: id,
      previous: 'Enabled',
    });
    expect(agent.option(id, 'SourceIPVerification')).toBe('Disabled');
    expect(agent.option(id, 'Conntrack')).toBe('Enabled'); // other options untouched
    expect(agent.requests.map((r) => `${r.method} ${r.path} ${r.status}`)).toEqual([
      'GET /v1/endpoint/ipv4:10.0.1.5 200',
      `GET /v1/endpoint/${id}/config 200`,
      `PATCH /v1/endpoint/${id}/config 200`,
    ]);
    expect(agent.requests[2]?.body).toEqual({ options: { SourceIPVerification: 'Disabled' } });

    expect(await client.ensureSourceIpVerificationDisabled('10.0.1.5')).toEqual({
      outcome: 'already-disabled',
      endpointId: id,
    });
    expect(agent.requests.filter((r) => r.method === 'PATCH')).toHaveLength(1);
    expect(agent.option(agent.endpointIdFor('10.0.1.6')!, 'SourceIPVerification')).toBe('Enabled');
  });

  it('finds an IPv6-only endpoint with the ipv6: prefix', async () => {
    const id = agent.addEndpoint({ ipv6: 'fd00:10::5' });
    expect((await client.ensureSourceIpVerificationDisabled('fd00:10::5')).outcome).toBe('disabled');
    expect(agent.requests[0]?.path).toBe('/v1/endpoint/ipv6:fd00:10::5');
    expect(agent.option(id, 'SourceIPVerification')).toBe('Disabled');
  });

  it('404: the endpoint is not there yet', async () => {
    expect(await client.ensureSourceIpVerificationDisabled('10.0.1.5')).toEqual({
      outcome: 'endpoint-not-found',
    });
    expect(await client.getEndpointConfig(4242)).toBeUndefined();
    expect(await client.patchEndpointConfig(4242, { options: { SourceIPVerification: 'Disabled' } })).toBe(
      false,
    );
  });

  it('429 with Retry-After: waits as told, then succeeds', async () => {
    agent.addEndpoint({ ipv4: '10.0.1.5' });
    agent.rateLimitNext(2, '2');
    expect((await client.ensureSourceIpVerificationDisabled('10.0.1.5')).outcome).toBe('disabled');
    expect(waits).toEqual([2000, 2000]);
    expect(agent.requests.map((r) => r.status)).toEqual([429, 429, 200, 200, 200]);
  });

  it('429 with an HTTP-date Retry-After, and without one (backoff)', async () => {
    expect(parseRetryAfter(new Date(Date.now() + 3000).toUTCString())).toBeGreaterThan(1000);
    expect(parseRetryAfter('garbage')).toBeUndefined();
    agent.addEndpoint({ ipv4: '10.0.1.5' });
    agent.rateLimitNext(3);
    await client.ensureSourceIpVerificationDisabled('10.0.1.5');
    expect(waits).toHaveLength(3);
    expect(waits[1]!).toBeGreaterThan(waits[0]!);
  });

  it('429 for too long: gives up with a rate-limited error', async () => {
    agent.addEndpoint({ ipv4: '10.0.1.5' });
    agent.rateLimitNext(100, '1');
    const err = await client.ensureSourceIpVerificationDisabled('10.0.1.5').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CiliumAgentError);
    expect((err as CiliumAgentError).kind).toBe('rate-limited');
    expect((err as CiliumAgentError).retryAfterMs).toBe(1000);
  });

  it('403: reports forbidden at once, without retrying, and changes nothing', async () => {
    const id = agent.addEndpoint({ ipv4: '10.0.1.5' });
    agent.forbidNext(1, 'PATCH');
    const err = await client.ensureSourceIpVerificationDisabled('10.0.1.5').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CiliumAgentError);
    expect((err as CiliumAgentError).kind).toBe('forbidden');
    expect((err as CiliumAgentError).status).toBe(403);
    expect(agent.option(id, 'SourceIPVerification')).toBe('Enabled');
    expect(waits).toEqual([]);
  });

  it('agent down (socket gone): retries with backoff, then reports unavailable', async () => {
    const missing = new CiliumAgentClient({
      socketPath: join(agent.dir, 'nope.sock'),
      attempts: 3,
      sleep: async (ms) => {
        waits.push(ms);
      },
    });
    const err = await missing.getEndpointByIp('10.0.1.5').catch((e: unknown) => e);
    expect((err as CiliumAgentError).kind).toBe('unavailable');
    expect((err as CiliumAgentError).status).toBe(0);
    expect(waits).toHaveLength(2);
  });

  it('bad endpoint ID prefix is a 400 from the agent', async () => {
    const err = await client.getEndpoint('bogus:1').catch((e: unknown) => e);
    expect((err as CiliumAgentError).kind).toBe('bad-request');
  });
});

describe('runCiliumSetup', () => {
  let agent: FakeCiliumAgent;
  let setup: CiliumSetup | undefined;

  beforeEach(async () => {
    agent = await FakeCiliumAgent.start();
  });
  afterEach(async () => {
    await setup?.stop();
    setup = undefined;
    await agent.stop();
  });

  it('waits for the endpoint, disables the option, and disables it again after an agent restart', async () => {
    setup = await runCiliumSetup({
      podIp: '10.0.1.5',
      socketPath: agent.socketPath,
      intervalMs: 150,
      retryMs: 30,
    });
    expect(setup.status().lastOutcome).toBe('endpoint-not-found');

    const first = agent.addEndpoint({ ipv4: '10.0.1.5' });
    await waitFor(() => agent.option(first, 'SourceIPVerification'), {
      ok: (v) => v === 'Disabled',
      what: 'disabled',
    });
    expect(setup.status().endpointId).toBe(first);

    // Restart: the socket goes away for a while, the endpoint comes back with a new ID, option re-enabled.
    await agent.restart(200);
    const second = agent.endpointIdFor('10.0.1.5')!;
    expect(second).not.toBe(first);
    await waitFor(() => agent.option(second, 'SourceIPVerification'), {
      ok: (v) => v === 'Disabled',
      what: 'disabled again on the recreated endpoint',
      timeoutMs: 5000,
    });
    const st = await waitFor(() => setup?.status(), { ok: (s) => s?.endpointId === second });
    expect(st?.disabledCount).toBe(2);
    expect(st?.lastError).toBeUndefined();
  });

  it('keeps going after 403 and reports it', async () => {
    agent.addEndpoint({ ipv4: '10.0.1.5' });
    agent.forbidNext(1000);
    setup = await runCiliumSetup({
      podIp: '10.0.1.5',
      socketPath: agent.socketPath,
      intervalMs: 100,
      retryMs: 20,
    });
    expect(setup.status().lastErrorKind).toBe('forbidden');
    agent.forbidNext(0);
    await waitFor(() => setup?.status().lastOutcome, {
      ok: (o) => o === 'disabled' || o === 'already-disabled',
    });
    expect(setup.status().lastError).toBeUndefined();
  });
});
