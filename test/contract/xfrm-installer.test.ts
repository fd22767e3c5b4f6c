// The shared SaInstaller contract on XfrmInstaller, against a real kernel.
//
// Where: a scratch network namespace (ikgwx<pid>-contract*) reached through the installer's netns
// helper; or, with IKEGW_XFRM_INPROCESS=1, the namespace this process already runs in (the kernel VM
// run of test/kvm/xfrm-e2e.test.ts starts vitest inside a scratch namespace).
//
// What: everything when the kernel has ESP. This machine's kernel has XFRM netlink but no ESP, so
// here the policy half of the contract runs against the kernel, and each SA case is skipped at its
// first addSa with the reason (the kernel answered ENOSYS / EPROTONOSUPPORT); the same file runs
// in full inside the kernel VM.
import { afterAll, describe, it, TestRunner } from 'vitest';
import { KernelError } from '../../src/common/errors.js';
import {
  createXfrmInstaller,
  probeKernelEspDetail,
  type XfrmInstaller,
} from '../../src/esp/xfrm/installer.js';
import type { AddSaSpec, PolicySpec, SaCounters, SaId, SaInstaller } from '../../src/ike/ports.js';
import { ipQuiet, netnsSkipReason, scratchNetns } from '../kvm/xfrm-judge.js';
import { describeSaInstaller } from './sa-installer.contract.js';

const inProcess = process.env.IKEGW_XFRM_INPROCESS === '1';
const skip = inProcess ? '' : netnsSkipReason();
const probe = skip ? { ok: false, detail: skip } : await probeKernelEspDetail();
const NO_ESP = `this kernel has no ESP (${probe.detail}); the SA cases run in the kernel VM (test/kvm/xfrm-e2e.test.ts)`;

/** Without kernel ESP, an SA case is skipped (with the reason) when its addSa is refused for that. */
class PoliciesOnly implements SaInstaller {
  readonly kind = 'xfrm' as const;
  constructor(readonly inner: XfrmInstaller) {}
  async addSa(spec: AddSaSpec): Promise<void> {
    try {
      await this.inner.addSa(spec);
    } catch (e) {
      if (e instanceof KernelError && (e.errnoName === 'ENOSYS' || e.errnoName === 'EPROTONOSUPPORT'))
        TestRunner.getCurrentTest()?.context.skip(NO_ESP);
      throw e;
    }
  }
  updateSa(id: SaId, s: string, d: string, encap?: { sport: number; dport: number }): Promise<void> {
    return this.inner.updateSa(id, s, d, encap);
  }
  querySa(id: SaId): Promise<SaCounters> {
    return this.inner.querySa(id);
  }
  delSa(id: SaId): Promise<void> {
    return this.inner.delSa(id);
  }
  addPolicy(p: PolicySpec): Promise<void> {
    return this.inner.addPolicy(p);
  }
  delPolicy(p: PolicySpec): Promise<void> {
    return this.inner.delPolicy(p);
  }
  flush(): Promise<void> {
    return this.inner.flush();
  }
}

function innerOf(i: SaInstaller): XfrmInstaller {
  return i instanceof PoliciesOnly ? i.inner : (i as XfrmInstaller);
}

let ns: { name: string; path: string } | undefined;

if (skip) {
  describe.skip(`SaInstaller contract: xfrm (skipped: ${skip})`, () => {
    it('needs network namespaces', () => {});
  });
} else {
  describeSaInstaller(
    probe.ok
      ? 'xfrm (kernel with ESP: full contract)'
      : 'xfrm (policies against this kernel; SA cases need ESP)',
    async () => {
      if (!inProcess) ns ??= scratchNetns('contract');
      const inst = await createXfrmInstaller({
        ...(ns ? { netns: { kind: 'netns', path: ns.path } } : {}),
        listen: false,
      });
      return probe.ok ? inst : new PoliciesOnly(inst);
    },
    {
      teardown: async (i) => {
        try {
          await i.flush();
        } finally {
          innerOf(i).close();
        }
      },
    },
  );
}

afterAll(() => {
  if (ns) ipQuiet('netns', 'del', ns.name);
});
