// Proves the interop harness: strongSwan <-> strongSwan (both with kernel-libipsec) through the
// lab's masquerading NAT, the cluster side initiating, then traffic pod <-> onprem host through
// the tunnel. Needs root and Debian's strongSwan; skipped with the reason otherwise.

import { afterAll, beforeAll, describe, expect, onTestFailed, test } from 'vitest';
import {
  type Charon,
  createLab,
  LAB_PSK,
  type Lab,
  labAvailable,
  type ParsedSa,
  parseListSas,
} from './lab.js';

const avail = labAvailable();

function conf(opts: { name: string; remote: string; localTs: string; remoteTs: string }): string {
  return `connections {
  ${opts.name} {
    remote_addrs = ${opts.remote}
    local {
      auth = psk
    }
    remote {
      auth = psk
    }
    children {
      net {
        local_ts = ${opts.localTs}
        remote_ts = ${opts.remoteTs}
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

function only(sas: ParsedSa[]): ParsedSa {
  expect(sas).toHaveLength(1);
  return sas[0]!;
}

describe.skipIf(!avail.ok)(
  `lab smoke: strongSwan <-> strongSwan through the NAT${avail.ok ? '' : ` (skipped: ${avail.why})`}`,
  () => {
    let lab: Lab;
    let cluster: Charon;
    let onprem: Charon;

    beforeAll(async () => {
      lab = await createLab({ nat: true, endHosts: true });
      const clusterTs = `${lab.nets.clusterPods},${lab.nets.clusterServices}`;
      onprem = await lab.startCharon('onprem', {
        swanctlConf: conf({
          name: 'cluster',
          remote: lab.addr.clusterPublic,
          localTs: lab.nets.onpremLan,
          remoteTs: clusterTs,
        }),
      });
      cluster = await lab.startCharon('cluster', {
        swanctlConf: conf({
          name: 'onprem',
          remote: lab.addr.onpremWan,
          localTs: clusterTs,
          remoteTs: lab.nets.onpremLan,
        }),
      });
    });

    afterAll(async () => {
      await lab?.teardown();
    });

    test('IKE_SA + CHILD_SA up (cluster initiates), SPIs match crosswise, NAT seen, ping through', async () => {
      onTestFailed(() => {
        console.error(`--- cluster charon log ---\n${cluster?.logTail(80)}`);
        console.error(`--- onprem charon log ---\n${onprem?.logTail(80)}`);
      });
      await cluster.initiate('net', 10);

      const c = only(await cluster.listSas());
      const o = only(await onprem.listSas());
      expect(c).toMatchObject({ name: 'onprem', state: 'ESTABLISHED', initiator: true, version: 2 });
      expect(o).toMatchObject({ name: 'cluster', state: 'ESTABLISHED', initiator: false });
      expect(c.localHost).toBe(lab.addr.clusterWan);
      expect(o.remoteHost).toBe(lab.addr.clusterPublic);
      expect(c.remotePort).toBe(4500);
      expect(c.spiI).toMatch(/^[0-9a-f]{16}$/);
      expect([c.spiI, c.spiR]).toEqual([o.spiI, o.spiR]);
      // the cluster is really behind the NAT; onprem sees its peer behind one
      expect(c.natLocal).toBe(true);
      expect(o.natRemote).toBe(true);
      expect(c.dhGroup).toBe(o.dhGroup);

      const cc = c.children[0]!;
      const oc = o.children[0]!;
      expect(c.children).toHaveLength(1);
      expect(cc).toMatchObject({
        name: 'net',
        state: 'INSTALLED',
        protocol: 'ESP',
        encap: true,
        mode: 'TUNNEL',
      });
      expect(oc).toMatchObject({ name: 'net', state: 'INSTALLED', protocol: 'ESP', encap: true });
      expect(cc.spiIn).toMatch(/^[0-9a-f]{8}$/);
      expect(cc.spiIn).toBe(oc.spiOut);
      expect(cc.spiOut).toBe(oc.spiIn);
      expect(cc.localTs).toEqual([lab.nets.clusterPods, lab.nets.clusterServices]);
      expect(cc.remoteTs).toEqual([lab.nets.onpremLan]);
      expect(oc.localTs).toEqual(cc.remoteTs);
      expect(oc.remoteTs).toEqual(cc.localTs);

      // end hosts through the tunnel, both directions
      expect(await lab.ping('pod', lab.addr.onhost, { count: 3, intervalS: 0.1 })).toBe(3);
      expect(await lab.ping('onhost', lab.addr.pod, { count: 3, intervalS: 0.1 })).toBe(3);

      const c2 = only(await cluster.listSas()).children[0]!;
      const o2 = only(await onprem.listSas()).children[0]!;
      expect(c2.packetsIn).toBeGreaterThanOrEqual(6);
      expect(o2.packetsIn).toBeGreaterThanOrEqual(6);
      expect(c2.packetsOut).toBeGreaterThanOrEqual(6);
      expect(c2.bytesIn).toBeGreaterThan(0);
    });
  },
);

describe.skipIf(!avail.ok)(
  `lab smoke: strongSwan <-> strongSwan on one link, no NAT${avail.ok ? '' : ` (skipped: ${avail.why})`}`,
  () => {
    let lab: Lab;
    let cluster: Charon;
    let onprem: Charon;

    beforeAll(async () => {
      lab = await createLab({ nat: false, endHosts: true });
      onprem = await lab.startCharon('onprem', {
        swanctlConf: conf({
          name: 'cluster',
          remote: lab.addr.clusterWan,
          localTs: lab.nets.onpremLan,
          remoteTs: lab.nets.clusterPods,
        }),
      });
      cluster = await lab.startCharon('cluster', {
        swanctlConf: conf({
          name: 'onprem',
          remote: lab.addr.onpremWan,
          localTs: lab.nets.clusterPods,
          remoteTs: lab.nets.onpremLan,
        }),
      });
    });

    afterAll(async () => {
      await lab?.teardown();
    });

    test('tunnel up without NAT; kernel-libipsec still fakes NAT-D, so both float to 4500', async () => {
      onTestFailed(() => {
        console.error(`--- cluster charon log ---\n${cluster?.logTail(80)}`);
        console.error(`--- onprem charon log ---\n${onprem?.logTail(80)}`);
      });
      await cluster.initiate('net', 10);
      const c = only(await cluster.listSas());
      const o = only(await onprem.listSas());
      expect(c.state).toBe('ESTABLISHED');
      expect(c.remoteHost).toBe(lab.addr.onpremWan);
      expect(o.remoteHost).toBe(lab.addr.clusterWan);
      expect([c.spiI, c.spiR]).toEqual([o.spiI, o.spiR]);
      // no real NAT: nobody detects one locally, but each sees the peer's faked source hash
      expect([c.natLocal, o.natLocal]).toEqual([false, false]);
      expect([c.natRemote, o.natRemote]).toEqual([true, true]);
      expect([c.localPort, c.remotePort]).toEqual([4500, 4500]);
      expect(c.children[0]).toMatchObject({ state: 'INSTALLED', encap: true });
      expect(await lab.ping('pod', lab.addr.onhost, { count: 3, intervalS: 0.1 })).toBe(3);
    });
  },
);

// Parser check that needs neither root nor strongSwan (output of swanctl 5.9.8 --list-sas --raw).
test('parseListSas reads swanctl --list-sas --raw', () => {
  const raw =
    'list-sa event {onprem {uniqueid=1 version=2 state=ESTABLISHED local-host=172.30.0.2 local-port=4500 ' +
    'local-id=172.30.0.2 remote-host=198.51.100.1 remote-port=4500 remote-id=C=CH, O=strongSwan, CN=moon ' +
    'initiator=yes initiator-spi=be379ab4325f39bb responder-spi=8b28b56b7dc8567e nat-local=yes nat-remote=yes ' +
    'nat-any=yes encr-alg=AES_CBC encr-keysize=128 integ-alg=HMAC_SHA2_256_128 prf-alg=PRF_HMAC_SHA2_256 ' +
    'dh-group=CURVE_25519 established=0 rekey-time=14105 child-sas {net-1 {name=net uniqueid=1 reqid=1 ' +
    'state=INSTALLED mode=TUNNEL protocol=ESP encap=yes spi-in=ba494a8c spi-out=330b02f0 encr-alg=AES_GCM_16 ' +
    'encr-keysize=128 bytes-in=168 packets-in=2 bytes-out=0 packets-out=0 rekey-time=3275 life-time=3960 ' +
    'install-time=0 local-ts=[10.10.0.0/16 10.96.0.0/12] remote-ts=[192.168.100.0/24]}}}}\n' +
    'list-sas reply {}\n';
  const [sa, ...rest] = parseListSas(raw);
  expect(rest).toEqual([]);
  expect(sa).toMatchObject({
    name: 'onprem',
    state: 'ESTABLISHED',
    localHost: '172.30.0.2',
    localPort: 4500,
    remoteId: 'C=CH, O=strongSwan, CN=moon',
    spiI: 'be379ab4325f39bb',
    spiR: '8b28b56b7dc8567e',
    natLocal: true,
    natRemote: true,
    natFake: false,
    encrAlg: 'AES_CBC',
    encrKeysize: 128,
    integAlg: 'HMAC_SHA2_256_128',
    prfAlg: 'PRF_HMAC_SHA2_256',
    dhGroup: 'CURVE_25519',
  });
  expect(sa?.children).toHaveLength(1);
  expect(sa?.children[0]).toMatchObject({
    key: 'net-1',
    name: 'net',
    state: 'INSTALLED',
    protocol: 'ESP',
    encap: true,
    spiIn: 'ba494a8c',
    spiOut: '330b02f0',
    encrAlg: 'AES_GCM_16',
    encrKeysize: 128,
    bytesIn: 168,
    packetsIn: 2,
    localTs: ['10.10.0.0/16', '10.96.0.0/12'],
    remoteTs: ['192.168.100.0/24'],
  });
});
