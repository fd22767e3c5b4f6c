// `ikegw operator`: keeps the frontend's CiliumEndpoint and ip-masq-agent patched (src/daemon/agents.ts
// runOperatorCommand; the only command that loads the Kubernetes client).
import { defineCommand } from '../command.js';

export const command = defineCommand({
  name: 'operator',
  synopsis: 'operator',
  summary: `keep the frontend's CiliumEndpoint and ip-masq-agent patched
(in-cluster; env: VPN_FRONTEND_POD, POD_NAMESPACE, VPN_PEER_CIDRS)`,
  options: {},
  async run(_args, io) {
    const { runOperatorCommand } = await import('../../daemon/agents.js');
    return runOperatorCommand({ stderr: io.stderr, env: io.env, ...(io.stop ? { stop: io.stop } : {}) });
  },
});
