// Shared helpers of the operations tests.
import { type LoadedConfig, loadConfig } from '../../../src/daemon/config.js';
import type { IkeSaInfo } from '../../../src/ike/engine.js';
import type { SaRef } from '../../../src/ike/events.js';

export const TEST_PSK = 'ops-test-psk-6d1f0c9a7e3b';

export function config(yaml: string, env: Record<string, string> = {}): LoadedConfig {
  const r = loadConfig(yaml, { IKEGW_PSK: TEST_PSK, ...env });
  if (!r.ok) throw new Error(r.errors.map((e) => e.message).join('\n'));
  return r.value;
}

export const ONE_CONN = `connections:
  onprem:
    remote_addrs: [198.51.100.1]
    psk: { env: IKEGW_PSK }
    rekey_time: 4h
    children:
      cluster:
        local_ts: [10.10.0.0/16, 10.96.0.0/12]
        remote_ts: [192.168.100.0/24]
        rekey_time: 1h
        start_action: trap
`;

export function saRef(uid: number, conn = 'onprem'): SaRef {
  return {
    conn,
    uid,
    spiI: `${uid.toString(16).padStart(4, '0')}aabbccddeeff`,
    spiR: `${uid.toString(16).padStart(4, '0')}112233445566`,
    local: { address: '172.30.0.2', port: 4500 },
    remote: { address: '198.51.100.1', port: 4500 },
  };
}

export function saInfo(uid: number, over: Partial<IkeSaInfo> = {}): IkeSaInfo {
  const r = saRef(uid);
  return {
    uid,
    conn: r.conn,
    state: 'ESTABLISHED',
    initiator: true,
    spiI: r.spiI,
    spiR: r.spiR,
    local: r.local,
    remote: r.remote,
    localId: '172.30.0.2',
    remoteId: '198.51.100.1',
    algorithms: 'AES_GCM_16_256/PRF_HMAC_SHA2_384/ECP_384',
    natLocal: true,
    natRemote: false,
    establishedAtMs: 1000,
    children: [
      {
        uid: 1,
        name: 'cluster',
        state: 'INSTALLED',
        spiIn: 0xc1000001,
        spiOut: 0xc2000001,
        reqid: 1,
        algorithms: 'AES_GCM_16_256',
        encap: true,
        localTs: ['10.10.0.0/16', '10.96.0.0/12'],
        remoteTs: ['192.168.100.0/24'],
        installedAtMs: 1010,
      },
    ],
    ...over,
  };
}
