// Environment contracts of the three processes (reference chart variable names).
import { KubeConfig } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { ciliumSetupOptionsFromEnv, operatorOptionsFromEnv } from '../../../src/cilium/env.js';
import { routesOptionsFromEnv } from '../../../src/routes/env.js';

describe('env contracts', () => {
  it('routes: reference variables, empty MTU = none', () => {
    const o = routesOptionsFromEnv({ VPN_PEER_CIDRS: '192.168.0.0/16 172.20.0.0/24', VPN_MTU: '' });
    expect(o.peerCidrs).toEqual(['192.168.0.0/16', '172.20.0.0/24']);
    expect(o.mtu).toBeUndefined();
    expect(o.podRoutes).toEqual({ kind: 'none' });
    const p = routesOptionsFromEnv({
      VPN_PEER_CIDRS: '10.0.0.0/8',
      VPN_MTU: '1300',
      IKEGW_POD_ROUTES: 'dev:ikegw0',
      IKEGW_NODE_NETNS: '/host/proc/1/ns/net',
      POD_IP: '10.10.1.5',
      IKEGW_FOREIGN_ROUTES: 'replace',
    });
    expect(p).toMatchObject({
      mtu: 1300,
      podRoutes: { kind: 'dev', ifname: 'ikegw0' },
      nodeNetns: '/host/proc/1/ns/net',
      podIps: ['10.10.1.5'],
      foreignRoutes: 'replace',
    });
    expect(() => routesOptionsFromEnv({ VPN_PEER_CIDRS: '' })).toThrow(/VPN_PEER_CIDRS/);
    expect(() => routesOptionsFromEnv({ VPN_PEER_CIDRS: '10.0.0.0/8', VPN_MTU: 'big' })).toThrow(/VPN_MTU/);
    expect(() => routesOptionsFromEnv({ VPN_PEER_CIDRS: '10.0.0.0/8', IKEGW_POD_ROUTES: 'tun' })).toThrow(
      /IKEGW_POD_ROUTES/,
    );
  });

  it('operator and cilium-setup', () => {
    const kc = new KubeConfig();
    const o = operatorOptionsFromEnv(
      { VPN_FRONTEND_POD: 'vpn-frontend-0', POD_NAMESPACE: 'vpn', VPN_PEER_CIDRS: '192.168.0.0/16' },
      kc,
    );
    expect(o).toMatchObject({ podName: 'vpn-frontend-0', namespace: 'vpn', peerCidrs: ['192.168.0.0/16'] });
    expect(o.ipMasqAgent).toBeUndefined();
    expect(
      operatorOptionsFromEnv(
        {
          VPN_FRONTEND_POD: 'p',
          POD_NAMESPACE: 'n',
          VPN_PEER_CIDRS: '1.0.0.0/8',
          IKEGW_IP_MASQ_AGENT: 'none',
        },
        kc,
      ).ipMasqAgent,
    ).toBe(false);
    expect(() => operatorOptionsFromEnv({ VPN_PEER_CIDRS: '1.0.0.0/8', POD_NAMESPACE: 'n' }, kc)).toThrow(
      /VPN_FRONTEND_POD/,
    );
    expect(ciliumSetupOptionsFromEnv({ POD_IP: '10.0.1.5' })).toEqual({ podIp: '10.0.1.5' });
    expect(() => ciliumSetupOptionsFromEnv({})).toThrow(/POD_IP/);
  });
});
