// The behaviour every SaInstaller (memory, XFRM, userspace) must show, as one reusable suite
// (the libp2p "compliance tests" pattern, STYLE.md §7). Run it from a *.test.ts file:
//
//   describeSaInstaller('xfrm', async () => new XfrmInstaller(...), { teardown: (i) => i.flush() });
//
// Error convention: failures are KernelError with the errno; "does not exist" is ENOENT (2) — an
// XFRM installer may also pass the kernel's ESRCH (3) for SAs through — "exists" is EEXIST (17), a
// malformed request EINVAL (22).
import { afterEach, describe, expect, it } from 'vitest';
import { KernelError } from '../../src/common/errors.js';
import type { AddSaSpec, PolicySpec, SaId, SaInstaller, TsRange } from '../../src/ike/ports.js';

export interface ContractOptions {
  teardown?: (installer: SaInstaller) => Promise<void> | void;
}

const ts = (cidrStart: string, cidrEnd: string): TsRange => ({
  family: 4,
  protocol: 0,
  startPort: 0,
  endPort: 65535,
  startAddr: cidrStart,
  endAddr: cidrEnd,
});

export const LOCAL_TS = ts('10.10.0.0', '10.10.255.255');
export const REMOTE_TS = ts('192.168.100.0', '192.168.100.255');

/** An inbound AES-GCM-16/128 tunnel-mode SA between documentation addresses. */
export function sampleSa(over: Partial<AddSaSpec> = {}): AddSaSpec {
  return {
    reqid: 1,
    src: '192.0.2.2',
    dst: '192.0.2.1',
    spi: 0xc0de0001,
    protocol: 'esp',
    mode: 'tunnel',
    alg: { kind: 'aead', name: 'aes-gcm-16', keyBits: 128 },
    encKey: new Uint8Array(20).fill(0x11),
    integKey: new Uint8Array(0),
    esn: false,
    replayWindow: 32,
    inbound: true,
    srcTs: [REMOTE_TS],
    dstTs: [LOCAL_TS],
    lifetime: {},
    name: 'contract/net',
    ...over,
  };
}

export function idOf(s: AddSaSpec): SaId {
  return { src: s.src, dst: s.dst, spi: s.spi, protocol: 'esp' };
}

export function samplePolicy(over: Partial<PolicySpec> = {}): PolicySpec {
  return {
    reqid: 1,
    direction: 'out',
    src: LOCAL_TS,
    dst: REMOTE_TS,
    tunnelSrc: '192.0.2.1',
    tunnelDst: '192.0.2.2',
    trap: false,
    ...over,
  };
}

async function expectErrno(p: Promise<unknown>, errnos: number[]): Promise<KernelError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e, 'expected the operation to fail').toBeInstanceOf(KernelError);
  const ke = e as KernelError;
  expect(errnos).toContain(ke.errno);
  expect(ke.code).toBe('ERR_KERNEL');
  return ke;
}

const NOT_FOUND = [2, 3];
const EXISTS = [17];
const INVALID = [22];

export function describeSaInstaller(
  name: string,
  factory: () => SaInstaller | Promise<SaInstaller>,
  opts: ContractOptions = {},
): void {
  describe(`SaInstaller contract: ${name}`, () => {
    let current: SaInstaller | undefined;
    const make = async (): Promise<SaInstaller> => {
      current = await factory();
      return current;
    };
    afterEach(async () => {
      if (current) await (opts.teardown ? opts.teardown(current) : current.flush());
      current = undefined;
    });

    it('adds an SA; querySa reports zero counters', async () => {
      const inst = await make();
      await inst.addSa(sampleSa());
      const c = await inst.querySa(idOf(sampleSa()));
      expect(c.bytes).toBe(0n);
      expect(c.packets).toBe(0n);
    });

    it('adds a CBC/HMAC SA and an SA with UDP encapsulation', async () => {
      const inst = await make();
      await inst.addSa(
        sampleSa({
          spi: 0xc0de0002,
          alg: { kind: 'cipher+integ', cipher: 'aes-cbc', keyBits: 256, integ: 'hmac-sha2-256-128' },
          encKey: new Uint8Array(32).fill(1),
          integKey: new Uint8Array(32).fill(2),
        }),
      );
      await inst.addSa(sampleSa({ spi: 0xc0de0003, encap: { sport: 4500, dport: 4500 } }));
    });

    it('a duplicate SA (same dst and SPI) fails with EEXIST', async () => {
      const inst = await make();
      await inst.addSa(sampleSa());
      const e = await expectErrno(inst.addSa(sampleSa()), EXISTS);
      expect(e.op).toBe('addSa');
    });

    it('the same SPI towards another destination is another SA', async () => {
      const inst = await make();
      await inst.addSa(sampleSa());
      await inst.addSa(sampleSa({ dst: '192.0.2.3', inbound: false }));
    });

    it('a key of the wrong length fails with EINVAL', async () => {
      const inst = await make();
      await expectErrno(
        inst.addSa(
          sampleSa({
            alg: { kind: 'cipher+integ', cipher: 'aes-cbc', keyBits: 128, integ: 'hmac-sha2-256-128' },
            encKey: new Uint8Array(15),
            integKey: new Uint8Array(32),
          }),
        ),
        INVALID,
      );
    });

    it('deleting, querying or updating an unknown SA fails with ENOENT', async () => {
      const inst = await make();
      const id = idOf(sampleSa());
      await expectErrno(inst.delSa(id), NOT_FOUND);
      await expectErrno(inst.querySa(id), NOT_FOUND);
      await expectErrno(inst.updateSa(id, '192.0.2.2', '192.0.2.1'), NOT_FOUND);
    });

    it('delSa removes the SA (a second delete fails)', async () => {
      const inst = await make();
      await inst.addSa(sampleSa());
      await inst.delSa(idOf(sampleSa()));
      await expectErrno(inst.querySa(idOf(sampleSa())), NOT_FOUND);
      await expectErrno(inst.delSa(idOf(sampleSa())), NOT_FOUND);
    });

    it('updateSa moves an SA to new addresses (NAT mapping change)', async () => {
      const inst = await make();
      const s = sampleSa({
        inbound: false,
        src: '192.0.2.1',
        dst: '192.0.2.2',
        encap: { sport: 4500, dport: 4500 },
      });
      await inst.addSa(s);
      await inst.updateSa(idOf(s), '192.0.2.1', '192.0.2.9', { sport: 4500, dport: 31337 });
      await expectErrno(inst.querySa(idOf(s)), NOT_FOUND);
      expect((await inst.querySa({ ...idOf(s), dst: '192.0.2.9' })).packets).toBe(0n);
    });

    it('policies are reference-counted: two adds need two deletes', async () => {
      const inst = await make();
      const p = samplePolicy();
      await inst.addPolicy(p); // CHILD_SA #1
      await inst.addPolicy(p); // its rekeyed successor, same selectors
      await inst.delPolicy(p); // old CHILD_SA goes away: the policy must stay for the new one
      await inst.delPolicy(p);
      await expectErrno(inst.delPolicy(p), NOT_FOUND);
    });

    it('in, out and fwd policies of one selector pair are independent', async () => {
      const inst = await make();
      const out = samplePolicy();
      const inP = samplePolicy({
        direction: 'in',
        src: REMOTE_TS,
        dst: LOCAL_TS,
        tunnelSrc: '192.0.2.2',
        tunnelDst: '192.0.2.1',
      });
      const fwd = { ...inP, direction: 'fwd' as const };
      await inst.addPolicy(out);
      await inst.addPolicy(inP);
      await inst.addPolicy(fwd);
      await inst.delPolicy(inP);
      await expectErrno(inst.delPolicy(inP), NOT_FOUND);
      await inst.delPolicy(fwd);
      await inst.delPolicy(out);
    });

    it('deleting a policy that was never added fails with ENOENT', async () => {
      const inst = await make();
      await expectErrno(inst.delPolicy(samplePolicy()), NOT_FOUND);
    });

    it('trap policies can be installed and removed', async () => {
      const inst = await make();
      const trap = samplePolicy({ trap: true });
      await inst.addPolicy(trap);
      await inst.addPolicy(samplePolicy()); // the CHILD_SA's own policy on top
      await inst.delPolicy(samplePolicy());
      await inst.delPolicy(trap);
      await expectErrno(inst.delPolicy(trap), NOT_FOUND);
    });

    it('flush removes every SA and policy', async () => {
      const inst = await make();
      await inst.addSa(sampleSa());
      await inst.addSa(sampleSa({ spi: 0xc0de0009, inbound: false, src: '192.0.2.1', dst: '192.0.2.2' }));
      await inst.addPolicy(samplePolicy());
      await inst.addPolicy(samplePolicy());
      await inst.flush();
      await expectErrno(inst.querySa(idOf(sampleSa())), NOT_FOUND);
      await expectErrno(inst.delPolicy(samplePolicy()), NOT_FOUND);
      await inst.addSa(sampleSa()); // the slot is free again
      await inst.flush();
      await inst.flush(); // idempotent
    });
  });
}
