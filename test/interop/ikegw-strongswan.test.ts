// ikegw against Debian's strongSwan 5.9.8 in network namespaces: the acceptance of the IKEv2
// engine. strongSwan's `swanctl --list-sas --raw` is the judge of state, algorithms, selectors and
// SPIs; ikegw's JSON log gives its side. strongSwan runs kernel-libipsec (no kernel ESP here),
// which always floats to UDP 4500; ikegw uses the in-memory data path in these tests.
import { afterEach, describe, expect, onTestFailed, test } from 'vitest';
import { type IkegwProcess, startIkegw } from './ikegw-daemon.js';
import { type Charon, createLab, LAB_PSK, type Lab, labAvailable, type ParsedSa } from './lab.js';
import { oneTunnel, waitForSas } from './wait.js';

const avail = labAvailable();
const CLUSTER_TS = ['10.10.0.0/16', '10.96.0.0/12'];

interface Case {
  lab: Lab;
  onprem: Charon;
  ikegw: IkegwProcess;
}

let current: Case | undefined;

afterEach(async () => {
  await current?.lab.teardown();
  current = undefined;
});

function swanConf(o: {
  remote: string;
  proposals?: string;
  esp?: string;
  localTs: string;
  remoteTs: string;
  psk?: string;
}): string {
  return `connections {
  cluster {
    remote_addrs = ${o.remote}
    ${o.proposals ? `proposals = ${o.proposals}` : ''}
    local {
      auth = psk
    }
    remote {
      auth = psk
    }
    children {
      net {
        local_ts = ${o.localTs}
        remote_ts = ${o.remoteTs}
        ${o.esp ? `esp_proposals = ${o.esp}` : ''}
      }
    }
  }
}
secrets {
  ike-lab {
    secret = "${o.psk ?? LAB_PSK}"
  }
}
`;
}

function ikegwConf(o: {
  local: string;
  remote: string;
  proposals?: string;
  esp?: string;
  remoteTs: string[];
  start: 'start' | 'none';
  fragmentSize?: number;
}): string {
  return `connections:
  onprem:
    remote_addrs: ['${o.remote}']
    local_addrs: ['${o.local}']
    psk: { file: '@PSK_FILE@' }
    proposals: [${o.proposals ?? 'default'}]
    dpd_delay: 0
    fragment_size: ${o.fragmentSize ?? 1280}
    children:
      cluster:
        local_ts: [${CLUSTER_TS.join(', ')}]
        remote_ts: [${o.remoteTs.join(', ')}]
        esp_proposals: [${o.esp ?? 'default'}]
        start_action: ${o.start}
datapath: memory
listen: { address: '${o.local}', port: 500, nat_port: 4500 }
log: { level: debug, format: json }
`;
}

async function setUp(o: {
  nat: boolean;
  ikegwInitiates: boolean;
  proposals?: string;
  ikegwProposals?: string;
  esp?: string;
  swanPsk?: string;
  ikegwRemoteTs?: string[];
  fragmentSize?: number;
}): Promise<Case> {
  const lab = await createLab({ nat: o.nat, endHosts: true });
  const onprem = await lab.startCharon('onprem', {
    swanctlConf: swanConf({
      remote: lab.addr.clusterPublic,
      proposals: o.proposals,
      esp: o.esp,
      localTs: lab.nets.onpremLan,
      remoteTs: CLUSTER_TS.join(','),
      psk: o.swanPsk,
    }),
    strongswanExtra: o.fragmentSize ? `fragment_size = ${o.fragmentSize - 100}` : undefined,
  });
  const ikegw = startIkegw(
    lab,
    'cluster',
    'ikegw',
    ikegwConf({
      local: lab.addr.clusterWan,
      remote: o.ikegwInitiates ? lab.addr.onpremWan : '%any',
      proposals: o.ikegwProposals ?? o.proposals,
      esp: o.esp,
      remoteTs: o.ikegwRemoteTs ?? [lab.nets.onpremLan],
      start: o.ikegwInitiates ? 'start' : 'none',
      fragmentSize: o.fragmentSize,
    }),
    LAB_PSK,
  );
  current = { lab, onprem, ikegw };
  // strongSwan-initiated cases must not race the daemon's start-up (the first IKE_SA_INIT would be lost).
  await ikegw.waitFor((l) => typeof l.msg === 'string' && l.msg.startsWith('ikegw started'));
  onTestFailed(() => {
    console.log(`--- ikegw log ---\n${ikegw.text().slice(-8000)}`);
    console.log(`--- strongSwan log ---\n${onprem.logTail(120)}`);
  });
  return current;
}

async function established(c: Case): Promise<{ sa: ParsedSa; spiIn: string; spiOut: string }> {
  const child = await c.ikegw.waitFor((l) => l.state === 'INSTALLED');
  // strongSwan's table, not its log line, is the judge: wait until it shows the tunnel
  const sas = await waitForSas(c.onprem, 'one IKE_SA with its CHILD_SA installed', oneTunnel);
  return { sa: sas[0]!, spiIn: String(child.spiIn), spiOut: String(child.spiOut) };
}

function expectChart(sa: ParsedSa, spiIn: string, spiOut: string) {
  expect(sa.state).toBe('ESTABLISHED');
  const ch = sa.children[0]!;
  expect(ch.state).toBe('INSTALLED');
  expect(ch.mode).toBe('TUNNEL');
  expect(ch.protocol).toBe('ESP');
  expect(ch.localTs).toEqual(['192.168.100.0/24']);
  expect(ch.remoteTs).toEqual(CLUSTER_TS);
  // Crosswise SPIs: strongSwan's inbound SPI is ikegw's outbound, and vice versa.
  expect(ch.spiIn).toBe(spiOut);
  expect(ch.spiOut).toBe(spiIn);
}

describe.skipIf(!avail.ok)(`ikegw <-> strongSwan 5.9.8${avail.ok ? '' : ` (skipped: ${avail.why})`}`, () => {
  test('ikegw initiates through a masquerading NAT with strongSwan defaults (chart shape)', async () => {
    const c = await setUp({ nat: true, ikegwInitiates: true });
    const { sa, spiIn, spiOut } = await established(c);
    expectChart(sa, spiIn, spiOut);
    expect(sa.natRemote).toBe(true); // strongSwan sees ikegw behind the NAT
    expect(sa.remoteHost).toBe(c.lab.addr.clusterPublic);
    expect(sa.remotePort).not.toBe('500');
    const ike = await c.ikegw.waitFor((l) => l.state === 'ESTABLISHED');
    expect(ike.natLocal).toBe(true);
    expect(ike.spiI).toBe(sa.spiI);
    expect(ike.spiR).toBe(sa.spiR);
    expect(sa.children[0]!.encap).toBe(true);
  });

  test('ikegw responds to strongSwan on a direct link', async () => {
    const c = await setUp({ nat: false, ikegwInitiates: false });
    await c.onprem.initiate('net');
    const { sa, spiIn, spiOut } = await established(c);
    expectChart(sa, spiIn, spiOut);
    expect(sa.initiator).toBe(true);
    const ike = await c.ikegw.waitFor((l) => l.state === 'ESTABLISHED');
    expect(ike.role).toBe('responder');
    expect(ike.spiI).toBe(sa.spiI);
  });

  test.each([
    [
      'aes256gcm16-prfsha384-ecp384',
      'aes256gcm16',
      { encr: 'AES_GCM_16', keysize: '256', prf: 'PRF_HMAC_SHA2_384', dh: 'ECP_384' },
      true,
    ],
    [
      'aes128-sha256-modp2048',
      'aes128-sha256',
      { encr: 'AES_CBC', keysize: '128', prf: 'PRF_HMAC_SHA2_256', dh: 'MODP_2048' },
      false,
    ],
    [
      'chacha20poly1305-prfsha256-x25519',
      'chacha20poly1305',
      { encr: 'CHACHA20_POLY1305', keysize: '256', prf: 'PRF_HMAC_SHA2_256', dh: 'CURVE_25519' },
      true,
    ],
    [
      'aes256-sha512-ecp521',
      'aes256-sha512',
      { encr: 'AES_CBC', keysize: '256', prf: 'PRF_HMAC_SHA2_512', dh: 'ECP_521' },
      false,
    ],
  ])('proposal %s (ESP %s)', async (proposals, esp, want, ikegwInitiates) => {
    // A real NAT admits no unsolicited inbound IKE: strongSwan-initiated cases use the direct link.
    const c = await setUp({ nat: ikegwInitiates, ikegwInitiates, proposals, esp });
    if (!ikegwInitiates) await c.onprem.initiate('net');
    const { sa, spiIn, spiOut } = await established(c);
    expectChart(sa, spiIn, spiOut);
    expect(sa.encrAlg).toBe(want.encr);
    expect(String(sa.encrKeysize ?? 256)).toBe(want.keysize);
    expect(sa.prfAlg).toBe(want.prf);
    expect(sa.dhGroup).toBe(want.dh);
    expect(sa.children[0]!.encrAlg).toBe(want.encr);
  });

  test('IKE fragmentation (RFC 7383) both ways with small fragment sizes (ikegw 300, strongSwan 200)', async () => {
    const c = await setUp({ nat: true, ikegwInitiates: true, fragmentSize: 300 });
    const { sa, spiIn, spiOut } = await established(c);
    expectChart(sa, spiIn, spiOut);
    // strongSwan reassembled our fragmented IKE_AUTH and fragmented its own response
    await c.onprem.waitForLog(/received fragment #\d+ of \d+/);
    await c.onprem.waitForLog(/generating IKE_AUTH response 1 \[ EF\(1\/\d\) \]/);
    // ...and ikegw reassembled that fragmented response: the CHILD_SA above is installed on both ends.
  });

  test('wrong PSK: AUTHENTICATION_FAILED on both sides, ikegw says the PSK does not match', async () => {
    const c = await setUp({ nat: true, ikegwInitiates: true, swanPsk: 'not-the-same-key-at-all' });
    const f = await c.ikegw.waitFor(
      (l) => typeof l.msg === 'string' && l.msg.includes('AUTHENTICATION_FAILED'),
    );
    expect(f.msg).toMatch(/pre-shared key or IDs differ/);
    await c.onprem.waitForLog(/MAC mismatched|AUTHENTICATION_FAILED/);
    // strongSwan logs the failure before it destroys the half-open IKE_SA: wait for the state
    expect(await waitForSas(c.onprem, 'no IKE_SA', (sas) => sas.length === 0)).toEqual([]);
  });

  test('wrong PSK with ikegw responding: its log names the PSK', async () => {
    const c = await setUp({ nat: false, ikegwInitiates: false, swanPsk: 'not-the-same-key-at-all' });
    await c.onprem.initiate('net').catch(() => undefined);
    const f = await c.ikegw.waitFor(
      (l) => typeof l.msg === 'string' && l.msg.includes('AUTHENTICATION_FAILED'),
    );
    expect(f.msg).toMatch(/PSK/);
    await c.onprem.waitForLog(/received AUTHENTICATION_FAILED/);
  });

  test('proposal mismatch: NO_PROPOSAL_CHOSEN, ikegw lists both sides', async () => {
    const c = await setUp({
      nat: false,
      ikegwInitiates: false,
      proposals: 'aes256-sha512-ecp521',
      ikegwProposals: 'aes128gcm16-prfsha256-x25519',
    });
    await c.onprem.initiate('net').catch(() => undefined);
    const f = await c.ikegw.waitFor((l) => typeof l.msg === 'string' && l.msg.includes('NO_PROPOSAL_CHOSEN'));
    expect(f.msg).toMatch(/ours \[aes128gcm16-prfsha256-x25519\], theirs .*AES_CBC_256.*HMAC_SHA2_512_256/);
    await c.onprem.waitForLog(/received NO_PROPOSAL_CHOSEN/);
  });

  test('no overlapping selectors: TS_UNACCEPTABLE', async () => {
    const c = await setUp({ nat: true, ikegwInitiates: true, ikegwRemoteTs: ['172.16.0.0/12'] });
    const f = await c.ikegw.waitFor((l) => typeof l.msg === 'string' && l.msg.includes('TS_UNACCEPTABLE'));
    expect(f.msg).toMatch(/10\.10\.0\.0\/16,10\.96\.0\.0\/12 === 172\.16\.0\.0\/12/);
    await c.onprem.waitForLog(/traffic selectors .* unacceptable/);
  });
});
