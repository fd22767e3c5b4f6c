// Kernel data path end to end: ikegw (XFRM installer) on one gateway, strongSwan 5.9.8 (kernel-
// netlink, real kernel ESP) on the other, hosts behind both; the tunnel comes up from traffic alone
// (start_action = trap -> ACQUIRE -> IKE), pings both ways, `ip -s xfrm state` counters grow; plain
// ESP, then forced UDP encapsulation (encap: yes, ESP-in-UDP on 4500 through UDP_ENCAP); SIGTERM
// leaves nothing of ikegw's in the kernel.
//
//   pod 10.10.1.10 --- cluster (ikegw) 198.51.100.2 === 198.51.100.1 onprem (charon) --- onhost 192.168.100.10
//   (test/interop/lab.ts topology, direct link)
//
// Where this runs:
//  - inside the kernel VM (VMRUN_GUEST=1) or on a host whose kernel has ESP: the scenario itself;
//  - on a host without ESP (this machine): the host part compiles the daemon driver, boots the VM
//    once (../shared/tools/kernel-vm/vm-run.sh) and runs this file *and* the full SaInstaller contract
//    (test/contract/xfrm-installer.test.ts, in a scratch namespace) there with vitest, then asserts
//    on vitest's JSON report (~2 min here); skipped with the reason when qemu is not installed, or
//    on request with IKEGW_SKIP_KVM=1.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import {
  createXfrmInstaller,
  DEFAULT_REQID_RANGE,
  probeKernelEspDetail,
  type XfrmInstaller,
} from '../../src/esp/xfrm/installer.js';
import type { AddSaSpec, KernelEvent } from '../../src/ike/ports.js';
import { idOf, sampleSa } from '../contract/sa-installer.contract.js';
import { IkegwProcess } from '../interop/ikegw-daemon.js';
import { type Charon, createLab, LAB_PSK, type Lab, labAvailable } from '../interop/lab.js';
import { buildDriver, DRIVER, REPO } from './build-driver.js';
import { ip, ipQuiet, netnsSkipReason, parsePolicies, parseStates, scratchNetns } from './xfrm-judge.js';

const inGuest = process.env.VMRUN_GUEST === '1';
const VM_RUN = process.env.KERNEL_VM_RUN ?? join(REPO, '../shared/tools/kernel-vm/vm-run.sh');
const REQID_BASE = 0x4900_0000;

function hasQemu(): boolean {
  return ['/usr/bin/qemu-system-x86_64', '/usr/local/bin/qemu-system-x86_64'].some(existsSync);
}

const nsSkip = netnsSkipReason();
const lab = labAvailable();
const esp = nsSkip || inGuest ? { ok: inGuest, detail: nsSkip } : await probeKernelEspDetail();
const runHere = inGuest || esp.ok;
const hostSkip = runHere
  ? ''
  : process.env.IKEGW_SKIP_KVM === '1'
    ? 'IKEGW_SKIP_KVM=1'
    : nsSkip
      ? nsSkip
      : !existsSync(VM_RUN)
        ? `this kernel has no ESP and ${VM_RUN} is missing`
        : !hasQemu()
          ? 'this kernel has no ESP and qemu is not installed (apt-get install --no-install-recommends qemu-system-x86)'
          : '';

// ---- the scenario (VM guest or ESP host) -------------------------------------------------------

const CLUSTER_TS = '10.10.0.0/16';

function swanctlConf(remote: string, onpremLan: string): string {
  return `connections {
  cluster {
    remote_addrs = ${remote}
    proposals = aes128gcm16-prfsha256-x25519
    local {
      auth = psk
    }
    remote {
      auth = psk
    }
    children {
      net {
        local_ts = ${onpremLan}
        remote_ts = ${CLUSTER_TS}
        esp_proposals = aes128gcm16
      }
    }
  }
}
secrets {
  ike-lab {
    secret = "${LAB_PSK}"
  }
}
`;
}

function ikegwConf(
  local: string,
  remote: string,
  remoteTs: string,
  encap: boolean,
  pskFile: string,
  rekeyPackets: number,
): string {
  return `connections:
  onprem:
    remote_addrs: ['${remote}']
    local_addrs: ['${local}']
    psk: { file: '${pskFile}' }
    proposals: [aes128gcm16-prfsha256-x25519]
    encap: ${encap ? 'yes' : 'no'}
    dpd_delay: 0
    children:
      cluster:
        local_ts: [${CLUSTER_TS}]
        remote_ts: [${remoteTs}]
        esp_proposals: [aes128gcm16]
        start_action: trap
${rekeyPackets ? `        rekey_packets: ${rekeyPackets}\n        life_packets: 1000000\n` : ''}datapath: xfrm
listen: { address: '${local}', port: 500, nat_port: 4500 }
control: { socket: '${pskFile.replace(/\.psk$/, '.sock')}' }
log: { level: debug, format: json }
`;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

if (runHere && !lab.ok) {
  describe.skip(`kernel XFRM end to end (skipped: ${lab.why})`, () => {
    it('needs the interop lab (strongSwan, iproute2, root)', () => {});
  });
}

if (runHere && lab.ok)
  describe(`kernel XFRM end to end: ikegw <-> strongSwan (${inGuest ? 'kernel VM' : 'native ESP'})`, () => {
    let L: Lab;
    let onprem: Charon;
    let ikegw: IkegwProcess | undefined;

    beforeAll(async () => {
      if (!inGuest) await buildDriver();
      if (!existsSync(DRIVER))
        throw new Error(`${DRIVER} is missing: the host part builds it before starting the VM`);
      L = await createLab({ nat: false, endHosts: true });
      // ikegw installs no routes (the routes agent does, in the chart); charon installs its own.
      await L.exec('cluster', 'ip', ['route', 'add', L.nets.onpremLan, 'via', L.addr.onpremWan]);
      onprem = await L.startCharon('onprem', {
        swanctlConf: swanctlConf(L.addr.clusterWan, L.nets.onpremLan),
        // real kernel ESP: the Debian plugin set with kernel-netlink, without kernel-libipsec
        strongswanExtra: '  plugins {\n    kernel-libipsec {\n      load = no\n    }\n  }\n',
        logLevels: { knl: 2 },
      });
    }, 120_000);

    afterAll(async () => {
      await L?.teardown();
    });

    async function startIkegw(name: string, encap: boolean, rekeyPackets: number): Promise<IkegwProcess> {
      const pskFile = join(L.dir, `${name}.psk`);
      writeFileSync(pskFile, LAB_PSK, { mode: 0o600 });
      const cfg = join(L.dir, `${name}.yaml`);
      writeFileSync(
        cfg,
        ikegwConf(L.addr.clusterWan, L.addr.onpremWan, L.nets.onpremLan, encap, pskFile, rekeyPackets),
      );
      const logFile = join(L.dir, `${name}.log`);
      const proc = L.spawn('cluster', process.execPath, [DRIVER, 'daemon', '-c', cfg], { logFile });
      const p = new IkegwProcess(proc, logFile);
      ikegw = p;
      onTestFailed(() => {
        console.log(`--- ikegw log (${name}) ---\n${p.text().slice(-8000)}`);
        console.log(`--- strongSwan log ---\n${onprem.logTail(80)}`);
      });
      return p;
    }

    const xfrm = async (what: 'state' | 'policy', stats = false): Promise<string> =>
      (await L.exec('cluster', 'ip', [...(stats ? ['-s'] : []), 'xfrm', what])).stdout;

    async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const v = await fn();
        if (v !== undefined) return v;
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
        await sleep(200);
      }
    }

    /** rekeyPackets > 0: the child's soft packet limit, to be hit by traffic after the first checks. */
    async function scenario(name: string, encap: boolean, rekeyPackets = 0): Promise<void> {
      const p = await startIkegw(name, encap, rekeyPackets);
      // trap policy first: nothing negotiated yet
      const trap = await waitFor(
        'the trap policy',
        async () => parsePolicies(await xfrm('policy')).find((x) => x.dir === 'out' && x.src === CLUSTER_TS),
        60_000,
      );
      expect(trap.tmpl).toMatchObject({
        src: L.addr.clusterWan,
        dst: L.addr.onpremWan,
        proto: 'esp',
        mode: 'tunnel',
      });
      expect(trap.tmpl!.reqid - REQID_BASE).toBeGreaterThan(0);
      expect(parseStates(await xfrm('state')).filter((s) => s.spi !== 0)).toEqual([]);
      expect(await onprem.listSas()).toEqual([]);

      // pod -> onhost: the first packet hits the trap, the kernel raises ACQUIRE, ikegw initiates
      await waitFor(
        'pod -> onhost through the tunnel',
        async () => ((await L.ping('pod', L.addr.onhost, { count: 1, waitS: 1 })) === 1 ? true : undefined),
        60_000,
      );
      await p.waitFor((l) => /acquire/i.test(l.msg), 1000);
      expect(await L.ping('pod', L.addr.onhost, { count: 5, intervalS: 0.2, waitS: 2 })).toBe(5);
      expect(await L.ping('onhost', L.addr.pod, { count: 5, intervalS: 0.2, waitS: 2 })).toBe(5);

      // the kernel's view of what ikegw installed, and its counters
      const states = parseStates(await xfrm('state', true));
      expect(states).toHaveLength(2);
      const out = states.find((s) => s.dst === L.addr.onpremWan)!;
      const inb = states.find((s) => s.dst === L.addr.clusterWan)!;
      for (const s of [out, inb]) {
        expect(s.mode).toBe('tunnel');
        expect(s.reqid).toBe(trap.tmpl!.reqid);
        expect(s.aead).toMatchObject({ name: 'rfc4106(gcm(aes))', icvBits: 128 });
        expect(s.aead!.keyHex).toHaveLength(40);
        expect(s.flags).toContain('af-unspec');
        if (encap) expect(s.encap).toEqual({ type: 'espinudp', sport: 4500, dport: 4500 });
        else expect(s.encap).toBeUndefined();
        expect(s.packets ?? 0n).toBeGreaterThanOrEqual(10n);
        expect(s.bytes ?? 0n).toBeGreaterThan(0n);
      }
      expect(inb.replayWindow).toBe(32);
      const pols = parsePolicies(await xfrm('policy'));
      expect(pols.map((x) => `${x.dir} ${x.src} ${x.dst} ${x.tmpl?.reqid}`).sort()).toEqual(
        [
          `fwd ${L.nets.onpremLan} ${CLUSTER_TS} ${trap.tmpl!.reqid}`,
          `in ${L.nets.onpremLan} ${CLUSTER_TS} ${trap.tmpl!.reqid}`,
          `out ${CLUSTER_TS} ${L.nets.onpremLan} ${trap.tmpl!.reqid}`,
        ].sort(),
      );

      // strongSwan agrees: one CHILD_SA with our SPIs, UDP-encapsulated iff forced
      const sas = await onprem.listSas();
      expect(sas).toHaveLength(1);
      const child = sas[0]!.children[0]!;
      expect(child.state).toBe('INSTALLED');
      expect(child.spiIn).toBe(out.spi.toString(16).padStart(8, '0'));
      expect(child.spiOut).toBe(inb.spi.toString(16).padStart(8, '0'));
      expect(child.encap).toBe(encap);
      expect(child.packetsIn).toBeGreaterThanOrEqual(10);

      if (rekeyPackets > 0) {
        // traffic past the soft packet limit: the kernel sends XFRM_MSG_EXPIRE (soft), the listener
        // hands it to the engine, ikegw rekeys the CHILD_SA (CREATE_CHILD_SA, make-before-break);
        // the policies are shared by old and new CHILD_SA (refcount) and never leave the kernel.
        const old = new Set([out.spi, inb.spi]);
        await L.ping('pod', L.addr.onhost, { count: rekeyPackets, intervalS: 0.1, waitS: 2 });
        const fresh = await waitFor(
          'the rekeyed CHILD_SA on the strongSwan side',
          async () =>
            (await onprem.listSas())[0]?.children.find(
              (c) => c.state === 'INSTALLED' && !old.has(Number.parseInt(c.spiIn, 16)),
            ),
          60_000,
        );
        await p.waitFor((l) => /expire|rekey/i.test(l.msg), 1000);
        expect(await L.ping('pod', L.addr.onhost, { count: 3, intervalS: 0.2, waitS: 2 })).toBe(3);
        expect(await L.ping('onhost', L.addr.pod, { count: 3, intervalS: 0.2, waitS: 2 })).toBe(3);
        const now = parseStates(await xfrm('state', true));
        const newOut = now.find((s) => s.spi === Number.parseInt(fresh.spiIn, 16));
        const newIn = now.find((s) => s.spi === Number.parseInt(fresh.spiOut, 16));
        expect(newOut?.dst).toBe(L.addr.onpremWan);
        expect(newIn?.dst).toBe(L.addr.clusterWan);
        expect(newOut!.packets ?? 0n).toBeGreaterThanOrEqual(3n);
        expect(now.find((s) => s.spi === out.spi)).toBeUndefined(); // the old outbound SA is gone
        expect(
          parsePolicies(await xfrm('policy'))
            .map((x) => `${x.dir} ${x.tmpl?.reqid}`)
            .sort(),
        ).toEqual(['fwd', 'in', 'out'].map((d) => `${d} ${trap.tmpl!.reqid}`));
      }

      // SIGTERM: IKE DELETE to the peer, then flush: nothing of ikegw's is left in the kernel
      p.proc.kill('SIGTERM');
      await p.proc.exited;
      expect(parseStates(await xfrm('state'))).toEqual([]);
      expect(parsePolicies(await xfrm('policy'))).toEqual([]);
      await waitFor(
        'strongSwan to drop the IKE_SA',
        async () => ((await onprem.listSas()).length === 0 ? true : undefined),
        15_000,
      );
      ikegw = undefined;
    }

    it('plain ESP: trap -> ACQUIRE -> IKE; ping both ways; counters; soft EXPIRE -> rekey; clean shutdown', async () => {
      await scenario('plain', false, 40);
    }, 180_000);

    it('forced UDP encapsulation (encap: yes): ESP-in-UDP 4500 decapsulated by the kernel', async () => {
      await scenario('natt', true);
    }, 180_000);

    afterEach(async () => {
      // a failed case must not leak into the next one
      if (!ikegw) return;
      ikegw.proc.kill('SIGKILL');
      await ikegw.proc.exited;
      ikegw = undefined;
      await L.exec('cluster', 'ip', ['xfrm', 'state', 'flush']);
      await L.exec('cluster', 'ip', ['xfrm', 'policy', 'flush']);
      await onprem.swanctl(['--terminate', '--ike', 'cluster', '--force', '--timeout', '5'], {
        check: false,
      });
    });
  });

// ---- XfrmInstaller states against a kernel with ESP (VM guest or ESP host) ----------------------

const inProcess = process.env.IKEGW_XFRM_INPROCESS === '1';

if (runHere)
  describe('XfrmInstaller states against a kernel with ESP (iproute2 as the judge)', () => {
    let nsx: { name: string; path: string } | undefined;
    let inst: XfrmInstaller;
    const events: KernelEvent[] = [];
    // in the VM the file runs inside a scratch namespace already; elsewhere it makes one
    const ipx = (...args: string[]): string => (nsx ? ip('-n', nsx.name, ...args) : ip(...args));

    beforeAll(async () => {
      if (!inProcess) nsx = scratchNetns('sa');
      inst = await createXfrmInstaller(nsx ? { netns: { kind: 'netns', path: nsx.path } } : {});
      inst.setListener((e) => events.push(e));
    }, 60_000);
    afterAll(async () => {
      await inst?.flush();
      inst?.close();
      ipx('xfrm', 'state', 'flush');
      if (nsx) ipQuiet('netns', 'del', nsx.name);
    });

    const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
    const key = (n: number, seed: number): Uint8Array =>
      new Uint8Array(n).map((_, i) => (i * 7 + seed) & 0xff);
    /** One `ip xfrm state` block with the SPI masked. */
    const block = (spi: number): string => {
      const st = parseStates(ipx('xfrm', 'state')).find((x) => x.spi === spi);
      if (!st) throw new Error(`no state ${spi.toString(16)} in\n${ipx('xfrm', 'state')}`);
      return st.text.replace(/spi 0x[0-9a-f]+/, 'spi *').trimEnd();
    };

    interface Case {
      name: string;
      spec: Partial<AddSaSpec>;
      ipArgs: string[];
    }
    const K = DEFAULT_REQID_RANGE.base + 7;
    const cases: Case[] = [
      {
        name: 'AES-GCM-16/128 inbound, window 32',
        spec: { alg: { kind: 'aead', name: 'aes-gcm-16', keyBits: 128 }, encKey: key(20, 1) },
        ipArgs: ['replay-window', '32', 'aead', 'rfc4106(gcm(aes))', `0x${hex(key(20, 1))}`, '128'],
      },
      {
        name: 'AES-GCM-16/256 outbound with ESP-in-UDP',
        spec: {
          inbound: false,
          alg: { kind: 'aead', name: 'aes-gcm-16', keyBits: 256 },
          encKey: key(36, 2),
          encap: { sport: 4500, dport: 31337 },
        },
        ipArgs: [
          'aead',
          'rfc4106(gcm(aes))',
          `0x${hex(key(36, 2))}`,
          '128',
          'encap',
          'espinudp',
          '4500',
          '31337',
          '0.0.0.0',
        ],
      },
      {
        name: 'ChaCha20-Poly1305',
        spec: { alg: { kind: 'aead', name: 'chacha20-poly1305', keyBits: 256 }, encKey: key(36, 3) },
        ipArgs: [
          'replay-window',
          '32',
          'aead',
          'rfc7539esp(chacha20,poly1305)',
          `0x${hex(key(36, 3))}`,
          '128',
        ],
      },
      ...(
        [
          ['hmac-sha1-96', 'hmac(sha1)', 20, 96],
          ['hmac-sha2-256-128', 'hmac(sha256)', 32, 128],
          ['hmac-sha2-384-192', 'hmac(sha384)', 48, 192],
          ['hmac-sha2-512-256', 'hmac(sha512)', 64, 256],
        ] as const
      ).map(
        ([integ, kname, klen, trunc], i): Case => ({
          name: `AES-CBC-256 + ${integ}`,
          spec: {
            alg: { kind: 'cipher+integ', cipher: 'aes-cbc', keyBits: 256, integ },
            encKey: key(32, 10 + i),
            integKey: key(klen, 20 + i),
          },
          ipArgs: [
            'replay-window',
            '32',
            'enc',
            'cbc(aes)',
            `0x${hex(key(32, 10 + i))}`,
            'auth-trunc',
            kname,
            `0x${hex(key(klen, 20 + i))}`,
            String(trunc),
          ],
        }),
      ),
      {
        name: 'ESN with a 128-packet window (XFRMA_REPLAY_ESN_VAL)',
        spec: { esn: true, replayWindow: 128, encKey: key(20, 4) },
        ipArgs: [
          'flag',
          'esn',
          'replay-window',
          '128',
          'aead',
          'rfc4106(gcm(aes))',
          `0x${hex(key(20, 4))}`,
          '128',
        ],
      },
      {
        name: 'byte and packet limits',
        spec: {
          encKey: key(20, 5),
          lifetime: { softBytes: 1000n, hardBytes: 2000n, softPackets: 10n, hardPackets: 20n },
        },
        ipArgs: [
          'replay-window',
          '32',
          'aead',
          'rfc4106(gcm(aes))',
          `0x${hex(key(20, 5))}`,
          '128',
          'limit',
          'byte-soft',
          '1000',
          'limit',
          'byte-hard',
          '2000',
          'limit',
          'packet-soft',
          '10',
          'limit',
          'packet-hard',
          '20',
        ],
      },
    ];

    it.each(cases.map((c, i) => ({ ...c, i })))(
      '$name: same state as `ip xfrm state add`',
      async ({ spec, ipArgs, i }) => {
        const ours = sampleSa({ reqid: 7, spi: 0xa0000000 + i, ...spec });
        await inst.addSa(ours);
        const theirs = 0xb0000000 + i;
        ipx(
          'xfrm',
          'state',
          'add',
          'src',
          ours.src,
          'dst',
          ours.dst,
          'proto',
          'esp',
          'spi',
          `0x${theirs.toString(16)}`,
          'reqid',
          String(K),
          'mode',
          'tunnel',
          'flag',
          'af-unspec',
          ...ipArgs,
        );
        const a = block(ours.spi);
        const b = block(theirs);
        expect(a).toBe(b);
        // and with -s (lifetime limits, counters) too, apart from the add time
        const s = (spi: number) =>
          parseStates(ipx('-s', 'xfrm', 'state'))
            .find((x) => x.spi === spi)!
            .text.replace(/spi 0x[0-9a-f]+\(\d+\)/, 'spi *')
            .replace(/add \d{4}-\d\d-\d\d \d\d:\d\d:\d\d/, 'add *')
            .trimEnd();
        expect(s(ours.spi)).toBe(s(theirs));
        await inst.delSa(idOf(ours));
        ipx(
          'xfrm',
          'state',
          'delete',
          'src',
          ours.src,
          'dst',
          ours.dst,
          'proto',
          'esp',
          'spi',
          `0x${theirs.toString(16)}`,
        );
      },
    );

    it('updateSa: encap ports in place (UPDSA), a new source (re-created), keys and counters kept', async () => {
      const s = sampleSa({
        reqid: 7,
        spi: 0xa1000001,
        inbound: false,
        src: '192.0.2.1',
        dst: '192.0.2.2',
        encap: { sport: 4500, dport: 4500 },
      });
      await inst.addSa(s);
      const keyBefore = parseStates(ipx('xfrm', 'state')).find((x) => x.spi === s.spi)!.aead!.keyHex;
      await inst.updateSa(idOf(s), '192.0.2.1', '192.0.2.2', { sport: 4500, dport: 40000 });
      let st = parseStates(ipx('xfrm', 'state')).find((x) => x.spi === s.spi)!;
      expect(st.encap).toEqual({ type: 'espinudp', sport: 4500, dport: 40000 });
      await inst.updateSa(idOf(s), '192.0.2.7', '192.0.2.2', { sport: 4500, dport: 40000 });
      st = parseStates(ipx('xfrm', 'state')).find((x) => x.spi === s.spi)!;
      expect({ src: st.src, dst: st.dst, key: st.aead!.keyHex, reqid: st.reqid }).toEqual({
        src: '192.0.2.7',
        dst: '192.0.2.2',
        key: keyBefore,
        reqid: K,
      });
      await inst.updateSa({ ...idOf(s), src: '192.0.2.7' }, '192.0.2.7', '192.0.2.2'); // NAT gone: no encap
      st = parseStates(ipx('xfrm', 'state')).find((x) => x.spi === s.spi)!;
      expect(st.encap).toBeUndefined();
      expect(parseStates(ipx('xfrm', 'state')).filter((x) => x.spi === s.spi)).toHaveLength(1);
      await inst.delSa({ ...idOf(s), src: '192.0.2.7' });
    });

    it('kernel EXPIRE events (soft, then hard) reach the listener for our reqids only', async () => {
      events.length = 0;
      for (const [spi, reqid] of [
        [0xa2000001, K],
        [0xa2000002, 5],
      ] as const)
        ipx(
          'xfrm',
          'state',
          'add',
          'src',
          '192.0.2.2',
          'dst',
          '192.0.2.1',
          'proto',
          'esp',
          'spi',
          `0x${spi.toString(16)}`,
          'reqid',
          String(reqid),
          'mode',
          'tunnel',
          'aead',
          'rfc4106(gcm(aes))',
          `0x${'11'.repeat(20)}`,
          '128',
          'limit',
          'time-soft',
          '1',
          'limit',
          'time-hard',
          '2',
        );
      const end = Date.now() + 15_000;
      while (events.filter((e) => e.kind === 'expire').length < 2 && Date.now() < end) await sleep(100);
      expect(events).toEqual([
        { kind: 'expire', spi: 0xa2000001, dst: '192.0.2.1', hard: false },
        { kind: 'expire', spi: 0xa2000001, dst: '192.0.2.1', hard: true },
      ]);
    }, 30_000);
  });

// ---- the host part: one VM boot for this file and the full contract ---------------------------------

interface VitestJson {
  numTotalTests: number;
  numPassedTests: number;
  numFailedTests: number;
  numPendingTests: number;
  testResults: Array<{
    name: string;
    assertionResults: Array<{
      fullName: string;
      status: string;
      duration?: number;
      failureMessages: string[];
    }>;
  }>;
}

if (!runHere)
  describe(`kernel XFRM in the kernel VM${hostSkip ? ` (skipped: ${hostSkip})` : ''} (this kernel: ${esp.detail || 'no ESP'})`, () => {
    const out = mkdtempSync(join(tmpdir(), `ikgwx${process.pid % 10000}-kvm-`));
    afterAll(() => rmSync(out, { recursive: true, force: true }));

    it.skipIf(hostSkip !== '')(
      'ikegw <-> strongSwan end to end and the full SaInstaller contract pass under a kernel with ESP',
      async () => {
        const t0 = Date.now();
        const b = await buildDriver();
        const tBuild = Date.now() - t0;
        const report = join(out, 'report.json');
        const ns = `ikgwx${process.pid % 10000}-vmc`;
        const script = [
          'modprobe -a veth esp4 xfrm_user 2>/dev/null',
          `ip netns add ${ns}`,
          `ip netns exec ${ns} ip link set lo up`,
          `cd ${REPO}`,
          `ip netns exec ${ns} env IKEGW_XFRM_INPROCESS=1 node node_modules/vitest/vitest.mjs run ` +
            `test/kvm/xfrm-e2e.test.ts test/contract/xfrm-installer.test.ts ` +
            `--reporter=default --reporter=json --outputFile.json=${report}`,
        ].join('\n');
        const r = await new Promise<{ code: number; stdout: string; stderr: string }>((res) => {
          execFile(
            VM_RUN,
            [script],
            {
              env: { ...process.env, VM_RW_DIRS: out, VM_TIMING: '1', VM_TIMEOUT: '420' },
              timeout: 450_000,
              maxBuffer: 32 << 20,
            },
            (err, stdout, stderr) =>
              res({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
          );
        });
        const wall = ((Date.now() - t0) / 1000).toFixed(0);
        const timing = r.stderr.split('\n').find((l) => l.startsWith('vm-run: accel=')) ?? '';
        const log = `${r.stdout}\n${r.stderr}`.trim().split('\n').slice(-80).join('\n');
        if (r.code === 125) throw new Error(`the kernel VM could not boot (vm-run exit 125):\n${log}`);
        expect(existsSync(report), `no vitest report from the VM (exit ${r.code}):\n${log}`).toBe(true);
        const j = JSON.parse(readFileSync(report, 'utf8')) as VitestJson;
        const lines = j.testResults.flatMap((f) =>
          f.assertionResults.map(
            (a) => `${a.status.padEnd(7)} ${a.fullName} (${((a.duration ?? 0) / 1000).toFixed(1)} s)`,
          ),
        );
        console.log(
          `kernel VM: ${j.numPassedTests}/${j.numTotalTests} passed, ${wall} s (driver build ${(tBuild / 1000).toFixed(0)} s${b.tscNote ? `; ${b.tscNote}` : ''})\n${timing}\n${lines.join('\n')}`,
        );
        const failed = j.testResults.flatMap((f) => f.assertionResults.filter((a) => a.status === 'failed'));
        expect(
          failed.map((a) => `${a.fullName}\n${a.failureMessages.join('\n').slice(0, 3000)}`),
          log,
        ).toEqual([]);
        expect(j.numPendingTests, 'nothing may be skipped inside the VM').toBe(0);
        expect(j.numPassedTests).toBeGreaterThanOrEqual(26);
        expect(r.code).toBe(0);
      },
      480_000,
    );
  });
