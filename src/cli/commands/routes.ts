// `ikegw routes`: the frontend pod's sidecar (src/daemon/agents.ts runRoutesCommand).
import { defineCommand } from '../command.js';

export const command = defineCommand({
  name: 'routes',
  synopsis: 'routes [--node-netns PATH] [--no-cilium]',
  summary: `the frontend pod's sidecar: routes to the on-prem CIDRs on the node
(via the pod, with VPN_MTU) and in the pod, and Cilium's
SourceIPVerification off for the pod (env: VPN_PEER_CIDRS, VPN_MTU, POD_IP)`,
  options: { 'node-netns': { type: 'string' }, 'no-cilium': { type: 'boolean' } },
  async run({ values }, io) {
    const { runRoutesCommand } = await import('../../daemon/agents.js');
    const nodeNetns = values['node-netns'];
    return runRoutesCommand(
      { cilium: !values['no-cilium'], ...(nodeNetns ? { nodeNetns } : {}) },
      { stderr: io.stderr, env: io.env, ...(io.stop ? { stop: io.stop } : {}) },
    );
  },
});
