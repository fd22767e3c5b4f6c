// Libreswan 4.10 (RHEL's IPsec stack, Debian's libreswan .deb unpacked beside strongSwan) as a
// regular on-prem peer of ikegw with `datapath: xfrm` and real kernel ESP: both roles at both sides'
// defaults, forced NAT-T, two non-default algorithm sets, CHILD_SA and IKE_SA rekeys started by each
// side under 10 pings/s, a wrong PSK, an ikegw restart (INITIAL_CONTACT), SIGTERM, and the Helm
// chart's values (pod + service range) behind a LoadBalancer NAT.
//
// One kernel-VM boot for the whole matrix: test/kvm/libreswan-driver.ts runs every case inside the
// VM (one Node process; one pluto; one ikegw, restarted once) and writes what it saw to a shared
// directory; the tests below assert on that. Where this kernel does ESP the driver runs here
// directly. Skipped, with the reason, only where neither is possible (no qemu / no kernel VM) or on
// request (IKEGW_SKIP_KVM=1).
//
// Libreswan itself: ../shared/tools/libreswan/prepare-host.sh (LAB=DIR, root) unpacks the .deb into
// IKEGW_LIBRESWAN_LAB (default /var/tmp/ikegw-libreswan) and installs its runtime libraries; the
// suite runs it when the tree is missing (`apt-get install libreswan` would remove strongSwan).
// IKEGW_LIBRESWAN_KEEP=1 keeps the results and both daemons' logs (the path is printed).
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { probeKernelEspDetail } from '../../src/esp/xfrm/installer.js';
import { BUILD_DIR, buildDriver, DRIVER, REPO } from './build-driver.js';
import type { CaseResult, PingCount, PingRun, Results, Snapshot } from './libreswan-driver.js';
import { netnsSkipReason, parseStates } from './xfrm-judge.js';

const LSW_LAB = process.env.IKEGW_LIBRESWAN_LAB ?? '/var/tmp/ikegw-libreswan';
const LSW_ROOT = join(LSW_LAB, 'root');
const PREPARE =
  process.env.IKEGW_LIBRESWAN_PREPARE ?? join(REPO, '../shared/tools/libreswan/prepare-host.sh');
const VM_RUN = process.env.KERNEL_VM_RUN ?? join(REPO, '../shared/tools/kernel-vm/vm-run.sh');
const DRIVER_TS = join(REPO, 'test/kvm/libreswan-driver.ts');
/** The driver's own time budget (it stops starting cases after it) and the VM's, in seconds. */
const BUDGET_S = Number(process.env.IKEGW_LIBRESWAN_BUDGET ?? 1200);
const VM_TIMEOUT_S = BUDGET_S + 180;
/** The pinned Node 24 (npm scripts put it first on PATH; a bare `vitest` may run on another). */
const NODE = existsSync(join(REPO, 'node_modules/.bin/node'))
  ? join(REPO, 'node_modules/.bin/node')
  : process.execPath;

function hasQemu(): boolean {
  return ['/usr/bin/qemu-system-x86_64', '/usr/local/bin/qemu-system-x86_64'].some(existsSync);
}

const nsSkip = netnsSkipReason();
const esp = nsSkip ? { ok: false, detail: nsSkip } : await probeKernelEspDetail();
const native = esp.ok;
const skip =
  process.env.IKEGW_SKIP_KVM === '1'
    ? 'IKEGW_SKIP_KVM=1'
    : nsSkip
      ? nsSkip
      : native
        ? ''
        : !existsSync(VM_RUN)
          ? `this kernel has no ESP and ${VM_RUN} is missing`
          : !hasQemu()
            ? 'this kernel has no ESP and qemu is not installed (apt-get install --no-install-recommends qemu-system-x86)'
            : '';
if (skip) console.log(`test/kvm/libreswan.test.ts skipped: ${skip}`);

/** Libreswan's binaries load, certutil is there: otherwise prepare-host.sh (once, under a lock). */
function libreswanReady(): boolean {
  try {
    const v = execFileSync(join(LSW_ROOT, 'usr/libexec/ipsec/pluto'), ['--version'], { encoding: 'utf8' });
    execFileSync('certutil', ['-H'], { stdio: 'ignore' });
    return v.includes('Libreswan') && existsSync(join(LSW_ROOT, 'usr/libexec/ipsec/whack'));
  } catch (e) {
    // certutil -H exits 1 after printing its help: it ran, so it is installed
    return (e as { status?: number }).status === 1 && existsSync(join(LSW_ROOT, 'usr/libexec/ipsec/whack'));
  }
}

function prepareLibreswan(): Promise<string> {
  return new Promise((resolve, reject) => {
    if (!existsSync(PREPARE)) {
      reject(new Error(`Libreswan is not unpacked in ${LSW_ROOT} and ${PREPARE} is missing`));
      return;
    }
    mkdirSync(LSW_LAB, { recursive: true });
    execFile(
      'flock',
      [
        `${LSW_LAB}.lock`,
        'sh',
        '-c',
        // another run may have prepared it while this one waited for the lock
        `'${LSW_ROOT}/usr/libexec/ipsec/pluto' --version >/dev/null 2>&1 && command -v certutil >/dev/null || '${PREPARE}'`,
      ],
      { env: { ...process.env, LAB: LSW_LAB }, timeout: 600_000, maxBuffer: 16 << 20 },
      (err, stdout, stderr) =>
        err
          ? reject(new Error(`${PREPARE} failed: ${err.message}\n${stdout}\n${stderr}`.slice(-6000)))
          : resolve(stdout),
    );
  });
}

function runDriver(out: string): Promise<{ code: number; output: string; timing: string }> {
  const cacheDir = join(BUILD_DIR, 'compile-cache');
  const args = ['--out', out, '--lsw', LSW_ROOT, '--cli', DRIVER, '--budget', String(BUDGET_S)];
  const env = { ...process.env, NODE_COMPILE_CACHE: cacheDir };
  // Node compiles ~1300 modules at each ikegw start; in the emulated VM a bytecode cache made here
  // (same node binary) saves a good part of that.
  execFileSync(NODE, [DRIVER, 'version'], { env, stdio: 'ignore' });
  return new Promise((resolve) => {
    const done = (err: (Error & { code?: unknown }) | null, stdout: string, stderr: string) =>
      resolve({
        code: err ? (typeof err.code === 'number' ? err.code : 1) : 0,
        output: `${stdout}\n${stderr}`.trim(),
        timing: stderr.split('\n').find((l) => l.startsWith('vm-run: accel=')) ?? '',
      });
    const opts = { timeout: (VM_TIMEOUT_S + 60) * 1000, maxBuffer: 32 << 20 };
    if (native) {
      execFile(NODE, [DRIVER_TS, ...args], { ...opts, env }, done);
      return;
    }
    const script = [
      'modprobe -a veth esp4 xfrm_user 2>/dev/null',
      `cd '${REPO}'`,
      `export NODE_COMPILE_CACHE='${cacheDir}'`,
      `exec '${NODE}' '${DRIVER_TS}' ${args.map((a) => `'${a}'`).join(' ')}`,
    ].join('\n');
    execFile(
      VM_RUN,
      [script],
      { ...opts, env: { ...process.env, VM_RW_DIRS: out, VM_TIMING: '1', VM_TIMEOUT: String(VM_TIMEOUT_S) } },
      done,
    );
  });
}

const pings = (p: PingCount | undefined): string => (p ? `${p.rx}/${p.tx}` : '-');

describe.skipIf(skip !== '')(
  `Libreswan 4.10 <-> ikegw (datapath: xfrm, ${native ? 'native ESP' : 'kernel VM'})`,
  () => {
    let out = '';
    let R: Results | undefined;
    let runError = '';

    beforeAll(
      async () => {
        const t0 = Date.now();
        out = mkdtempSync(join(tmpdir(), `ikgwl${process.pid % 10000}-`));
        if (!libreswanReady()) {
          const log = await prepareLibreswan();
          if (!libreswanReady()) throw new Error(`prepare-host.sh ran but Libreswan does not load:\n${log}`);
        }
        const b = await buildDriver();
        const tBuild = Date.now() - t0;
        const r = await runDriver(out);
        const file = join(out, 'results.json');
        if (existsSync(file)) R = JSON.parse(readFileSync(file, 'utf8')) as Results;
        if (!R || r.code !== 0)
          runError = `driver exit ${r.code}:\n${r.output.split('\n').slice(-60).join('\n')}`;
        const m = R?.meta;
        console.log(
          [
            `Libreswan matrix: ${((Date.now() - t0) / 1000).toFixed(0)} s wall (build ${(tBuild / 1000).toFixed(0)} s${b.tscNote ? `, ${b.tscNote}` : ''}; driver ${((m?.wallMs ?? 0) / 1000).toFixed(0)} s)`,
            r.timing,
            m &&
              `${m.libreswan.split(' ').slice(0, 2).join(' ')}, kernel ${m.kernel}, node ${m.node}; ` +
                `process starts in the run: ${m.processStarts} (Node: ${m.nodeStarts}: the driver and ${m.nodeStarts - 1} ikegw); ` +
                `ikegw start ${m.ikegwStartMs.map((x) => `${(x / 1000).toFixed(1)} s`).join(', ')}; topology ${((m.topologyMs ?? 0) / 1000).toFixed(1)} s, pluto ${((m.plutoStartMs ?? 0) / 1000).toFixed(1)} s`,
            ...Object.entries(R?.cases ?? {}).map(
              ([id, c]) =>
                `${c.ok ? 'ok  ' : 'FAIL'} ${id} (${(c.ms / 1000).toFixed(1)} s)${lostNote(c)}${c.ok ? '' : `: ${c.error?.split('\n')[0]}`}`,
            ),
            runError,
          ]
            .filter(Boolean)
            .join('\n'),
        );
      },
      (VM_TIMEOUT_S + 400) * 1000,
    );

    afterAll(() => {
      if (!out) return;
      if (process.env.IKEGW_LIBRESWAN_KEEP === '1') console.log(`results and logs kept in ${out}`);
      else rmSync(out, { recursive: true, force: true });
    });

    const logTail = (f: string, n: number, filter?: RegExp): string => {
      const p = join(out, f);
      if (!existsSync(p)) return `(${f} missing)`;
      const l = readFileSync(p, 'utf8').split('\n');
      return (filter ? l.filter((x) => filter.test(x)) : l).slice(-n).join('\n');
    };

    /** The case's observations; fails with the driver's error (and the logs) when it did not pass. */
    function kase(id: string, o: { dumpOnFailure?: boolean } = {}): Record<string, unknown> {
      onTestFailed(() => {
        if (o.dumpOnFailure === false) return;
        console.log(
          `--- ${id}: observations ---\n${JSON.stringify(R?.cases[id]?.obs, null, 1)?.slice(0, 12_000)}`,
        );
        for (const f of ['ikegw-1.log', 'ikegw-2.log'])
          console.log(
            `--- ${f} (last 60 lines at info and above) ---\n${logTail(f, 60, /"level":"(info|warn|error)"/)}`,
          );
        console.log(`--- pluto.log (last 80) ---\n${logTail('pluto.log', 80)}`);
      });
      if (!R) throw new Error(`the driver wrote no results: ${runError}`);
      const c = R.cases[id];
      if (!c)
        throw new Error(
          `the driver did not reach ${id}${R.meta.fatal ? `: ${R.meta.fatal}` : ''}\n${runError}`,
        );
      if (!c.ok) throw new Error(`${id} failed in the driver: ${c.error}`);
      return c.obs;
    }

    /** One IKE_SA + one CHILD_SA each side, two kernel SAs each side (what settled() waited for). */
    function onePair(s: Snapshot, children = 1): void {
      expect(s.ikegw).toHaveLength(1);
      expect(s.ikegw[0]!.state).toBe('ESTABLISHED');
      expect(s.ikegw[0]!.children.map((c) => c.state)).toEqual(Array(children).fill('INSTALLED'));
      expect(s.lsw.filter((x) => x.kind === 'ike')).toHaveLength(1);
      expect(s.lsw.filter((x) => x.kind === 'child')).toHaveLength(children);
      expect(parseStates(s.clXfrm)).toHaveLength(2 * children);
      expect(parseStates(s.opXfrm)).toHaveLength(2 * children);
    }

    function flows(t: unknown, n: number): void {
      const x = t as { out: PingCount; in: PingCount };
      expect({ out: pings(x.out), in: pings(x.in) }).toEqual({ out: `${n}/${n}`, in: `${n}/${n}` });
    }

    it('both at their defaults, ikegw initiates (the first packet hits its trap)', () => {
      const o = kase('defaults-ikegw-initiator');
      const s = o.s as Snapshot;
      onePair(s);
      expect(s.ikegw[0]!.role).toBe('initiator');
      const st = parseStates(s.clXfrm);
      expect(st.every((x) => x.aead?.name === 'rfc4106(gcm(aes))' && !x.encap)).toBe(true);
      flows(o.traffic, 5);
    });

    it('both at their defaults, Libreswan initiates (whack --initiate)', () => {
      const o = kase('defaults-libreswan-initiator');
      const s = o.s as Snapshot;
      onePair(s);
      expect(s.ikegw[0]!.role).toBe('responder');
      flows(o.traffic, 5);
    });

    for (const [id, what] of [
      ['libreswan-rekeys-child', 'CHILD_SA rekey started by Libreswan (PFS, its default)'],
      ['libreswan-rekeys-ike', 'IKE_SA rekey started by Libreswan'],
      ['ikegw-rekeys-child', 'CHILD_SA rekey started by ikegw (default proposals against pfs=yes)'],
      ['ikegw-rekeys-ike', 'IKE_SA rekey started by ikegw'],
    ] as const)
      it(`${what}, pings every 100 ms: traffic flows after it, exactly one SA pair remains`, () => {
        const o = kase(id);
        onePair(o.after as Snapshot);
        flows(o.traffic, 3);
        const p = o.ping as PingRun;
        console.log(
          `${id}: ${p.lost} of ${p.tx} pings lost during the rekey${p.lostAt.length ? ` (sent at ${p.lostAt.join(', ')})` : ''}`,
        );
        expect(p.tx).toBeGreaterThan(20);
      });

    it('forced NAT-T, encap: yes on ikegw: ESP-in-UDP 4500 both ways', () => {
      const o = kase('natt-forced-by-ikegw');
      const s = o.s as Snapshot;
      onePair(s);
      expect(s.ikegw[0]!.children[0]!.encap).toBe(true);
      expect(parseStates(s.clXfrm).map((x) => x.encap)).toEqual([
        { type: 'espinudp', sport: 4500, dport: 4500 },
        { type: 'espinudp', sport: 4500, dport: 4500 },
      ]);
      expect(s.lsw.map((x) => x.port)).toEqual([4500, 4500]);
      flows(o.traffic, 5);
    });

    it('forced NAT-T, encapsulation=yes on Libreswan: ESP-in-UDP 4500 both ways', () => {
      const o = kase('natt-forced-by-libreswan');
      const s = o.s as Snapshot;
      onePair(s);
      expect(s.ikegw[0]!.children[0]!.encap).toBe(true);
      expect(parseStates(s.clXfrm).every((x) => x.encap?.type === 'espinudp')).toBe(true);
      flows(o.traffic, 5);
    });

    it('ike=aes256-sha2_512;dh20 esp=aes256-sha2_256: negotiated as configured, PFS rekey with ECP_384', () => {
      const o = kase('algorithms-aes-cbc-sha2-ecp384');
      const s = o.s as Snapshot;
      onePair(s);
      expect(s.ikegw[0]!.algorithms).toMatch(/AES_CBC_256.*SHA2_512.*ECP_384/);
      const st = parseStates(s.clXfrm);
      expect(st.map((x) => [x.enc?.name, x.enc?.keyHex.length, x.auth?.name, x.auth?.truncBits])).toEqual([
        ['cbc(aes)', 64, 'hmac(sha256)', 128],
        ['cbc(aes)', 64, 'hmac(sha256)', 128],
      ]);
      const after = o.after as Snapshot;
      onePair(after);
      expect(after.ikegw[0]!.children[0]!.algorithms).toMatch(/ECP_384/);
      flows(o.traffic, 5);
    });

    it('ike=chacha20_poly1305-sha2_512;dh31 esp=chacha20_poly1305: negotiated as configured, PFS rekey with Curve25519', () => {
      const o = kase('algorithms-chacha20-curve25519');
      const s = o.s as Snapshot;
      onePair(s);
      expect(s.ikegw[0]!.algorithms).toMatch(/CHACHA20_POLY1305.*CURVE_25519/);
      expect(parseStates(s.clXfrm).map((x) => x.aead?.name)).toEqual([
        'rfc7539esp(chacha20,poly1305)',
        'rfc7539esp(chacha20,poly1305)',
      ]);
      const after = o.after as Snapshot;
      onePair(after);
      expect(after.ikegw[0]!.children[0]!.algorithms).toMatch(/CURVE_25519/);
      flows(o.traffic, 5);
    });

    it("a wrong PSK: AUTHENTICATION_FAILED named in ikegw's log, either side initiating", () => {
      const o = kase('wrong-psk');
      const init = o.ikegwInitiate as { ok: boolean; error?: string };
      expect(init.ok).toBe(false);
      expect(init.error).toMatch(/AUTHENTICATION_FAILED/);
      expect((o.ikegwInitiatorLog as string[]).join('\n')).toMatch(
        /AUTHENTICATION_FAILED.*(pre-shared key|PSK)/i,
      );
      expect((o.ikegwResponderLog as string[]).join('\n')).toMatch(/AUTHENTICATION_FAILED \(psk-mismatch\)/);
      expect(o.sas).toEqual([]);
      expect(o.clStates).toBe(0);
    });

    it("the chart's values behind the LB's NAT (Libreswan: right=%any, rightsubnets=): the pod range both ways", () => {
      const o = kase('chart-pod-cidr');
      const s = o.s as Snapshot;
      expect(s.ikegw).toHaveLength(1);
      expect(s.ikegw[0]!.natLocal).toBe(true);
      expect(s.ikegw[0]!.localId).toBe('172.30.0.2');
      expect(s.ikegw[0]!.children.map((c) => [c.state, c.encap, c.localTs])).toEqual([
        ['INSTALLED', true, ['10.10.0.0/16']],
      ]);
      flows(o.traffic, 5);
    });

    // Known defect (ikegw): Libreswan 4 puts one subnet pair in each CHILD_SA (rightsubnets= makes one
    // connection per subnet), so it narrows the chart's child (local_ts: pod + service range) to the
    // pod range, and ikegw never asks for a CHILD_SA for the rest: service-range packets hit the trap
    // policy, whose reqid is the child's, and the kernel sends them through the pod range's SA, which
    // Libreswan drops. (Were a second CHILD_SA negotiated, it would get the same reqid and the kernel
    // would send both ranges through the newest SA.) When this passes, make it an `it`.
    it.fails("the chart's values: the service range as well, both ways, with the pod range still working", () => {
      const o = kase('chart-service-cidr', { dumpOnFailure: false });
      const last = (o.tries as Array<Record<string, PingCount>>).at(-1)!;
      expect(Object.fromEntries(Object.entries(last).map(([k, v]) => [k, pings(v)]))).toEqual({
        svcOut: '3/3',
        svcIn: '3/3',
        podOut: '3/3',
        podIn: '3/3',
      });
    });

    it('ikegw killed and started again: its INITIAL_CONTACT makes Libreswan replace the old SAs, traffic is back', () => {
      const o = kase('ikegw-restart');
      const s = o.s as Snapshot;
      // pluto deletes the old IPsec SAs on INITIAL_CONTACT but keeps listing the old IKE SA
      expect(s.ikegw).toHaveLength(1);
      expect(s.ikegw[0]!.children.map((c) => c.state)).toEqual(['INSTALLED']);
      expect(s.lsw.filter((x) => x.kind === 'child')).toHaveLength(1);
      expect(parseStates(s.clXfrm)).toHaveLength(2);
      expect(parseStates(s.opXfrm)).toHaveLength(2);
      flows(o.traffic, 5);
      const p = o.ping as { tx: number; lost: number; longestGap: number };
      console.log(
        `ikegw-restart: ${p.lost} of ${p.tx} pings lost (longest gap ${(p.longestGap / 10).toFixed(1)} s); ` +
          `new ikegw answering after ${((o.startMs as number) / 1000).toFixed(1)} s, tunnel back after ${((o.backMs as number) / 1000).toFixed(1)} s; ` +
          `Libreswan lists ${o.lswIkeSas} IKE SA(s) of the connection (the old one stays), ${s.opStates / 2} IPsec SA pair`,
      );
    });

    it('SIGTERM: ikegw deletes its SAs at Libreswan and leaves nothing in the kernel', () => {
      const o = kase('ikegw-sigterm');
      expect(o.exitCode).toBe(0);
      // the IKE SA and CHILD_SA ikegw had are gone at Libreswan; an older IKE SA that pluto kept after
      // the restart's INITIAL_CONTACT may still be listed (pluto even tries to revive the connection
      // on it: Libreswan brought it up with whack --initiate, and that stays its policy)
      const before = o.lswBefore as Snapshot['lsw'];
      const left = o.lswLeft as Snapshot['lsw'];
      const newest = Math.max(...before.filter((x) => x.kind === 'ike').map((x) => x.serial));
      expect(left.map((x) => x.serial)).not.toContain(newest);
      expect(left.filter((x) => x.kind === 'child' && x.state.includes('ESTABLISHED'))).toEqual([]);
      // and so are its IPsec SAs in Libreswan's kernel (a revival attempt may have added a larval one)
      const spis = (x: string) => parseStates(x).map((st) => st.spi);
      const gone = spis((o.before as Snapshot).opXfrm);
      expect(gone).toHaveLength(2);
      expect(spis(o.opXfrm as string).filter((x) => gone.includes(x))).toEqual([]);
      expect(o.clStates).toBe('');
      expect(o.clPolicies).toBe('');
      // pluto deleted it on the peer's DELETE (it sends no notification of its own then)
      expect((o.plutoLog as string[]).join('\n')).toContain(
        `"dflt" #${newest}: deleting state (STATE_V2_ESTABLISHED_IKE_SA)`,
      );
      expect((o.plutoLog as string[]).find((l) => l.startsWith(`"dflt" #${newest}: deleting state`))).toMatch(
        /NOT sending notification/,
      );
    });
  },
);

function lostNote(c: CaseResult): string {
  const p = c.obs.ping as { tx: number; lost: number } | undefined;
  return p ? `, ${p.lost}/${p.tx} pings lost` : '';
}
