// Plain ESP (IP protocol 50, no UDP encapsulation) between two userspace data paths in network
// namespaces: each side is a UserspaceInstaller (built dist/) with a TUN device and the native
// raw ESP socket, SAs and policies installed by hand (no IKE), and a ping crosses the tunnel.
//
//   ns A: 10.1.0.1 (lo) -- ikegw0 -- 192.0.2.1 ==== veth ==== 192.0.2.2 -- ikegw0 -- 10.2.0.1 (lo) :ns B
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

const DIST = resolve(import.meta.dirname, '../../dist/esp/userspace/installer.js');
const NATIVE = resolve(import.meta.dirname, '../../native/build/Release/ikegw_native.node');
const root = process.getuid?.() === 0;
const ready = root && existsSync(DIST) && existsSync(NATIVE);
const P = `ikgwu${process.pid % 10000}-raw`;
const NS = { a: `${P}-a`, b: `${P}-b` };

const ip = (...args: string[]): string => execFileSync('ip', args, { encoding: 'utf8', timeout: 10_000 });

const SIDE = `
import { UserspaceInstaller } from ${JSON.stringify(DIST)};
const cfg = JSON.parse(process.argv[1]);
const inst = UserspaceInstaller.open({ name: 'ikegw0', mtu: 1400 }, {});
const hex = (s) => Buffer.from(s, 'hex');
for (const sa of cfg.sas) await inst.addSa({ ...sa, encKey: hex(sa.encKey), integKey: hex(sa.integKey), lifetime: {} });
for (const p of cfg.policies) await inst.addPolicy(p);
console.log('READY');
const report = () => console.log('STATUS ' + JSON.stringify(inst.status()));
process.on('SIGUSR2', report);
process.on('SIGTERM', () => { inst.close(); process.exit(0); });
setInterval(() => {}, 1000);
`;

const ts = (net: string) => ({
  family: 4,
  protocol: 0,
  startPort: 0,
  endPort: 65535,
  startAddr: `${net}.0`,
  endAddr: `${net}.255`,
});

function sideConfig(me: 'a' | 'b') {
  const [lo, peer, mine, theirs] =
    me === 'a'
      ? ['192.0.2.1', '192.0.2.2', '10.1.0', '10.2.0']
      : ['192.0.2.2', '192.0.2.1', '10.2.0', '10.1.0'];
  const keyAB = `${'11'.repeat(16)}a0a1a2a3`;
  const keyBA = `${'22'.repeat(16)}b0b1b2b3`;
  const common = {
    reqid: 1,
    protocol: 'esp',
    mode: 'tunnel',
    alg: { kind: 'aead', name: 'aes-gcm-16', keyBits: 128 },
    integKey: '',
    esn: false,
    replayWindow: 64,
    name: `raw/${me}`,
  };
  return {
    sas: [
      {
        ...common,
        src: lo,
        dst: peer,
        spi: me === 'a' ? 0x1001 : 0x2001,
        encKey: me === 'a' ? keyAB : keyBA,
        inbound: false,
        srcTs: [ts(mine)],
        dstTs: [ts(theirs)],
      },
      {
        ...common,
        src: peer,
        dst: lo,
        spi: me === 'a' ? 0x2001 : 0x1001,
        encKey: me === 'a' ? keyBA : keyAB,
        inbound: true,
        srcTs: [ts(theirs)],
        dstTs: [ts(mine)],
      },
    ],
    policies: [
      {
        reqid: 1,
        direction: 'out',
        src: ts(mine),
        dst: ts(theirs),
        tunnelSrc: lo,
        tunnelDst: peer,
        trap: false,
      },
    ],
  };
}

describe.skipIf(!ready)(
  `plain ESP (IP protocol 50) between two userspace data paths${ready ? '' : ' (skipped: needs root, npm run build and the native addon)'}`,
  () => {
    const procs: ChildProcess[] = [];
    const out: { a: string; b: string } = { a: '', b: '' };

    beforeAll(async () => {
      for (const ns of Object.values(NS)) {
        ip('netns', 'add', ns);
        ip('-n', ns, 'link', 'set', 'lo', 'up');
        execFileSync('ip', [
          'netns',
          'exec',
          ns,
          'sysctl',
          '-qw',
          'net.ipv4.conf.all.rp_filter=0',
          'net.ipv4.conf.default.rp_filter=0',
          'net.ipv6.conf.all.disable_ipv6=1',
        ]);
      }
      ip('-n', NS.a, 'link', 'add', 'w0', 'type', 'veth', 'peer', 'name', 'w0', 'netns', NS.b);
      ip('-n', NS.a, 'addr', 'add', '192.0.2.1/24', 'dev', 'w0');
      ip('-n', NS.b, 'addr', 'add', '192.0.2.2/24', 'dev', 'w0');
      ip('-n', NS.a, 'link', 'set', 'w0', 'up');
      ip('-n', NS.b, 'link', 'set', 'w0', 'up');
      ip('-n', NS.a, 'addr', 'add', '10.1.0.1/32', 'dev', 'lo');
      ip('-n', NS.b, 'addr', 'add', '10.2.0.1/32', 'dev', 'lo');
      for (const side of ['a', 'b'] as const) {
        const p = spawn(
          'ip',
          [
            'netns',
            'exec',
            NS[side],
            process.execPath,
            '--input-type=module',
            '-e',
            SIDE,
            JSON.stringify(sideConfig(side)),
          ],
          {
            stdio: ['ignore', 'pipe', 'pipe'],
          },
        );
        p.stdout.on('data', (d: Buffer) => (out[side] += d.toString()));
        p.stderr.on('data', (d: Buffer) => (out[side] += d.toString()));
        procs.push(p);
      }
      const end = Date.now() + 10_000;
      while (!(out.a.includes('READY') && out.b.includes('READY'))) {
        if (Date.now() > end) throw new Error(`sides not ready:\nA: ${out.a}\nB: ${out.b}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }, 30_000);

    afterAll(async () => {
      // SIGTERM, then SIGKILL for whichever side has not exited within 2 s
      const exited = procs.map((p) =>
        p.exitCode !== null || p.signalCode !== null
          ? Promise.resolve()
          : new Promise<void>((r) => p.once('exit', () => r())),
      );
      for (const p of procs) p.kill('SIGTERM');
      await Promise.race([Promise.all(exited), new Promise((r) => setTimeout(r, 2000))]);
      for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
      for (const ns of Object.values(NS)) {
        try {
          ip('netns', 'del', ns);
        } catch {
          /* gone */
        }
      }
    });

    test('ping crosses the tunnel as raw ESP, both ways counted per SA', async () => {
      const r = execFileSync(
        'ip',
        [
          'netns',
          'exec',
          NS.a,
          'ping',
          '-n',
          '-q',
          '-c',
          '3',
          '-i',
          '0.2',
          '-W',
          '2',
          '-I',
          '10.1.0.1',
          '10.2.0.1',
        ],
        {
          encoding: 'utf8',
          timeout: 15_000,
        },
      );
      expect(r).toMatch(/3 received/);
      procs[0]!.kill('SIGUSR2');
      const end = Date.now() + 3000;
      while (!out.a.includes('STATUS ') && Date.now() < end) await new Promise((res) => setTimeout(res, 50));
      const st = JSON.parse(out.a.slice(out.a.lastIndexOf('STATUS ') + 7).split('\n')[0]!) as {
        sas: Array<{ dir: string; packets: number; drops: object }>;
      };
      expect(st.sas.find((s) => s.dir === 'out')).toMatchObject({ packets: 3, drops: {} });
      expect(st.sas.find((s) => s.dir === 'in')).toMatchObject({ packets: 3, drops: {} });
    });
  },
);
