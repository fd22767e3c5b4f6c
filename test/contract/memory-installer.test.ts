import { describe, expect, it } from 'vitest';
import { KernelError } from '../../src/common/errors.js';
import { MemoryInstaller } from '../../src/esp/memory-installer.js';
import type { KernelEvent } from '../../src/ike/ports.js';
import {
  describeSaInstaller,
  idOf,
  LOCAL_TS,
  REMOTE_TS,
  samplePolicy,
  sampleSa,
} from './sa-installer.contract.js';

describeSaInstaller('memory', () => new MemoryInstaller());

describe('MemoryInstaller specifics', () => {
  it('snapshot shows SAs with counters and policies with their reference count', async () => {
    const m = new MemoryInstaller();
    await m.addSa(sampleSa());
    m.account(idOf(sampleSa()), 1400, 1, 5000);
    m.account(idOf(sampleSa()), 600);
    await m.addPolicy(samplePolicy());
    await m.addPolicy(samplePolicy());
    const snap = m.snapshot();
    expect(snap.sas).toHaveLength(1);
    expect(snap.sas[0]!.spec.spi).toBe(0xc0de0001);
    expect(snap.sas[0]!.counters).toEqual({ bytes: 2000n, packets: 2n, lastUseMs: 5000 });
    expect(snap.policies).toEqual([{ installed: samplePolicy(), refs: 2 }]);
    expect(await m.querySa(idOf(sampleSa()))).toEqual({ bytes: 2000n, packets: 2n, lastUseMs: 5000 });
    // a copy: mutating it changes nothing
    snap.sas[0]!.spec.spi = 1;
    expect(m.hasSa(idOf(sampleSa()))).toBe(true);
  });

  it('the installed policy is the regular one over a trap, the newest among equals', async () => {
    const m = new MemoryInstaller();
    const trap = samplePolicy({ trap: true });
    await m.addPolicy(trap);
    expect(m.policy(trap)?.installed.trap).toBe(true);
    await m.addPolicy(samplePolicy({ tunnelDst: '192.0.2.7' }));
    await m.addPolicy(samplePolicy({ tunnelDst: '192.0.2.8' }));
    expect(m.policy(trap)).toMatchObject({ refs: 3, installed: { trap: false, tunnelDst: '192.0.2.8' } });
    await m.delPolicy(samplePolicy({ tunnelDst: '192.0.2.8' }));
    expect(m.policy(trap)).toMatchObject({ refs: 2, installed: { tunnelDst: '192.0.2.7' } });
    await m.delPolicy(samplePolicy({ tunnelDst: '192.0.2.7' }));
    expect(m.policy(trap)).toMatchObject({ refs: 1, installed: { trap: true } });
  });

  it('delPolicy by a user that does not hold a reference fails', async () => {
    const m = new MemoryInstaller();
    await m.addPolicy(samplePolicy({ reqid: 1 }));
    await expect(m.delPolicy(samplePolicy({ reqid: 2 }))).rejects.toMatchObject({
      errno: 2,
      errnoName: 'ENOENT',
    });
    expect(m.policy(samplePolicy())?.refs).toBe(1);
  });

  it('rejects malformed SAs with EINVAL', async () => {
    const m = new MemoryInstaller();
    const bad = [
      sampleSa({ spi: 0 }),
      sampleSa({ dst: '2001:db8::1' }),
      sampleSa({ encKey: new Uint8Array(16) }), // GCM without salt
      sampleSa({ integKey: new Uint8Array(32) }), // AEAD with integ key
      sampleSa({
        alg: { kind: 'aead', name: 'chacha20-poly1305', keyBits: 256 },
        encKey: new Uint8Array(32),
      }),
      sampleSa({
        alg: { kind: 'cipher+integ', cipher: 'aes-cbc', keyBits: 128, integ: 'hmac-sha2-512-256' },
        encKey: new Uint8Array(16),
        integKey: new Uint8Array(32),
      }),
    ];
    for (const s of bad)
      await expect(m.addSa(s)).rejects.toMatchObject({ errno: 22, errnoName: 'EINVAL', op: 'addSa' });
    await m.addSa(
      sampleSa({
        alg: { kind: 'aead', name: 'chacha20-poly1305', keyBits: 256 },
        encKey: new Uint8Array(36),
      }),
    );
  });

  it('failNext injects an error for one call and counts calls', async () => {
    const m = new MemoryInstaller();
    m.failNext('addSa', 'EEXIST');
    const e = await m.addSa(sampleSa()).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(KernelError);
    expect((e as KernelError).message).toBe('addSa failed: EEXIST (17): injected failure');
    await m.addSa(sampleSa());
    expect(m.calls.addSa).toBe(2);
  });

  it('raise() delivers kernel events to the listener', () => {
    const m = new MemoryInstaller();
    const got: KernelEvent[] = [];
    m.setListener((ev) => got.push(ev));
    m.raise({ kind: 'acquire', reqid: 1, src: '10.10.0.5', dst: '192.168.100.7' });
    expect(got).toEqual([{ kind: 'acquire', reqid: 1, src: '10.10.0.5', dst: '192.168.100.7' }]);
  });

  it('policies with different selectors are different entries', async () => {
    const m = new MemoryInstaller();
    await m.addPolicy(samplePolicy());
    await m.addPolicy(samplePolicy({ src: { ...LOCAL_TS, protocol: 6 } }));
    await m.addPolicy(samplePolicy({ direction: 'in', src: REMOTE_TS, dst: LOCAL_TS }));
    expect(m.snapshot().policies.map((p) => p.refs)).toEqual([1, 1, 1]);
  });
});
