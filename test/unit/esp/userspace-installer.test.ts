// UserspaceInstaller: the shared SaInstaller contract (with a fake TUN device) and its own
// behaviour: routes for out policies, errors, flush.
import { describe, expect, it } from 'vitest';
import { UserspaceInstaller } from '../../../src/esp/userspace/installer.js';
import { rangeToCidrs } from '../../../src/esp/userspace/tun.js';
import { describeSaInstaller, samplePolicy, sampleSa } from '../../contract/sa-installer.contract.js';
import { FakeTun, ts4 } from './helpers.js';

describeSaInstaller(
  'userspace',
  () => new UserspaceInstaller({ tun: new FakeTun(), rawEsp: false, tickMs: 0 }),
);

describe('UserspaceInstaller specifics', () => {
  it('routes each out policy destination into the TUN device, reference-counted', async () => {
    const tun = new FakeTun();
    const inst = new UserspaceInstaller({ tun, rawEsp: false, tickMs: 0 });
    const trap = samplePolicy({ trap: true });
    await inst.addPolicy(trap);
    await inst.addPolicy(samplePolicy());
    await inst.addPolicy(samplePolicy({ direction: 'in', src: trap.dst, dst: trap.src }));
    expect(tun.routes).toEqual(['192.168.100.0/24']);
    await inst.delPolicy(samplePolicy());
    expect(tun.routes).toEqual(['192.168.100.0/24']);
    await inst.delPolicy(trap);
    expect(tun.routes).toEqual([]);
  });

  it('never routes a selector that contains the peer itself', async () => {
    const tun = new FakeTun();
    const inst = new UserspaceInstaller({ tun, rawEsp: false, tickMs: 0 });
    await inst.addPolicy(samplePolicy({ dst: ts4('192.0.2.0', '192.0.2.255'), tunnelDst: '192.0.2.2' }));
    expect(tun.routes).toEqual([]);
  });

  it('flush removes SAs, policies and routes but keeps the device', async () => {
    const tun = new FakeTun();
    const inst = new UserspaceInstaller({ tun, rawEsp: false, tickMs: 0 });
    await inst.addSa(sampleSa());
    await inst.addPolicy(samplePolicy());
    await inst.flush();
    expect(tun.routes).toEqual([]);
    expect(inst.status().sas).toEqual([]);
    expect(tun.closed).toBe(false);
    inst.close();
    expect(tun.closed).toBe(true);
  });

  it('an SA without UDP encapsulation and no raw socket: accepted, its packets dropped as send errors', async () => {
    const tun = new FakeTun();
    const inst = new UserspaceInstaller({ tun, rawEsp: false, tickMs: 0 });
    await inst.addSa(
      sampleSa({
        inbound: false,
        src: '192.0.2.1',
        dst: '192.0.2.2',
        srcTs: [sampleSa().dstTs[0]!],
        dstTs: [sampleSa().srcTs[0]!],
      }),
    );
    await inst.addPolicy(samplePolicy());
    const p = new Uint8Array(28);
    p.set([0x45, 0, 0, 28, 0, 0, 0, 0, 64, 1, 0, 0, 10, 10, 0, 5, 192, 168, 100, 7]);
    tun.inject(p);
    expect(inst.status().sas[0]!.drops).toEqual({ send: 1 });
  });

  it('opening a TUN device lazily: the factory runs on the first SA or policy', async () => {
    let opened = 0;
    const inst = new UserspaceInstaller({
      tun: () => {
        opened++;
        return new FakeTun();
      },
      rawEsp: false,
      tickMs: 0,
    });
    expect(opened).toBe(0);
    await inst.addPolicy(samplePolicy());
    await inst.addSa(sampleSa());
    expect(opened).toBe(1);
  });
});

describe('rangeToCidrs', () => {
  it('covers arbitrary ranges with the fewest prefixes', () => {
    expect(rangeToCidrs(ts4('10.10.0.0', '10.10.255.255'))).toEqual(['10.10.0.0/16']);
    expect(rangeToCidrs(ts4('0.0.0.0', '255.255.255.255'))).toEqual(['0.0.0.0/0']);
    expect(rangeToCidrs(ts4('10.0.0.1', '10.0.0.6'))).toEqual([
      '10.0.0.1/32',
      '10.0.0.2/31',
      '10.0.0.4/31',
      '10.0.0.6/32',
    ]);
    expect(rangeToCidrs(ts4('10.96.0.10', '10.96.0.10'))).toEqual(['10.96.0.10/32']);
    expect(
      rangeToCidrs({
        family: 6,
        protocol: 0,
        startPort: 0,
        endPort: 65535,
        startAddr: '::',
        endAddr: 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
      }),
    ).toEqual(['0:0:0:0:0:0:0:0/0']);
  });
});
