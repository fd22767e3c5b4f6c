// Resident memory at rest (issue: efficiency): the daemon (one PSK connection, nothing up) with
// `datapath: memory` and `datapath: userspace`, the routes agent (`ikegw routes --no-cilium`, its
// routes in place), the operator (retrying against a closed API server address: the fake API
// server runs only inside the tests' process), each after a settle, and `ikegw version` (wall time
// and peak RSS of the whole process). Run with the node flags of the executable's first line, as the
// image runs them. `BENCH_ONLY=idle npm run bench`; BENCH_IDLE_SETTLE_MS (5000).
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { CLI, findDescendant, Lab, rss, sleep, tailOf } from './lab.js';
import { shebangNodeFlags } from './loadtester.js';

const POD = '10.244.1.5';
const NODE = '10.244.1.1';
const PEER_CIDR = '192.168.240.0/24';

const load = (): string =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');

function daemonYaml(datapath: 'memory' | 'userspace', pskFile: string, socket: string): string {
  return `connections:
  onprem:
    remote_addrs: ['192.0.2.99']
    local_addrs: ['${POD}']
    psk: { file: '${pskFile}' }
    children:
      net:
        local_ts: [10.96.0.0/12]
        remote_ts: [${PEER_CIDR}]
        start_action: none
datapath: ${datapath}
listen: { address: '${POD}', port: 500, nat_port: 4500 }
control: { socket: '${socket}' }
log: { level: warn, format: json }
`;
}

export async function runIdleBench(): Promise<string[]> {
  if (process.getuid?.() !== 0) return ['idle: skipped (needs root for network namespaces)'];
  const settle = Number(process.env.BENCH_IDLE_SETTLE_MS ?? 5000);
  const flags = shebangNodeFlags();
  const lines: string[] = [];
  const out = (l: string) => {
    lines.push(l);
    console.log(l);
  };
  out(`resident memory at rest (settled ${settle / 1000} s; node ${flags.join(' ')}):`);
  const lab = await Lab.create({
    prefix: `ikid${process.pid % 10000}`,
    tmpPrefix: 'ikegw-bench-idle-',
    nodes: { pod: { addrs: [`${POD}/24 dev eth0`] }, node: { addrs: [`${NODE}/24 dev vpod0`] } },
    links: [['pod', 'eth0', 'node', 'vpod0']],
  });
  try {
    for (const datapath of ['memory', 'userspace'] as const) {
      const socket = `${lab.dir}/${datapath}.sock`;
      const ik = lab.ikegw(
        'pod',
        `daemon-${datapath}`,
        daemonYaml(datapath, lab.pskFile('idle-bench-psk-8f3a'), socket),
        {
          nodeArgs: flags,
        },
      );
      let pid: number | undefined;
      for (let i = 0; i < 200 && !pid; i++) {
        pid = findDescendant(ik.proc.pid!, 'node');
        if (!pid) await sleep(50);
      }
      // ready: its control socket answers
      let ready = false;
      for (let i = 0; i < 200 && !ready; i++) {
        try {
          execFileSync(process.execPath, [CLI, 'stats', '--socket', socket], { stdio: 'pipe' });
          ready = true;
        } catch {
          await sleep(50);
        }
      }
      if (!pid || !ready) throw new Error(`daemon (${datapath}) did not start:\n${tailOf(ik.log ?? '')}`);
      await sleep(settle);
      out(
        `  daemon, datapath: ${datapath.padEnd(9)} RSS ${(rss(pid) / 1048576).toFixed(1)} MiB  [load ${load()}]`,
      );
      await lab.stop(ik.proc);
    }

    const routes = lab.spawn('pod', process.execPath, [...flags, CLI, 'routes', '--no-cilium'], {
      log: 'routes.log',
      env: {
        VPN_PEER_CIDRS: PEER_CIDR,
        VPN_MTU: '1400',
        POD_IP: POD,
        IKEGW_NODE_NETNS: `/var/run/netns/${lab.ns.node}`,
      },
    });
    let rpid: number | undefined;
    for (let i = 0; i < 200 && !rpid; i++) {
      rpid = findDescendant(routes.pid!, 'node');
      if (!rpid) await sleep(50);
    }
    // ready: its route to the on-prem range is on the node
    let routed = false;
    for (let i = 0; i < 200 && !routed; i++) {
      routed = (await lab.exec('node', 'ip', ['route', 'show', PEER_CIDR])).includes(PEER_CIDR);
      if (!routed) await sleep(50);
    }
    if (!rpid || !routed)
      throw new Error(`routes agent did not set its route:\n${tailOf(`${lab.dir}/routes.log`)}`);
    await sleep(settle);
    out(`  routes agent (--no-cilium)        RSS ${(rss(rpid) / 1048576).toFixed(1)} MiB  [load ${load()}]`);
    await lab.stop(routes);

    // the operator: in-cluster credentials from a private /run (a mount namespace of its own), the
    // API server address closed, so it sits retrying its list/watch — its Kubernetes client loaded
    writeFileSync(`${lab.dir}/token`, 'bench-token');
    writeFileSync(`${lab.dir}/namespace`, 'vpn');
    const sa = '/run/secrets/kubernetes.io/serviceaccount';
    const operator = lab.spawn(
      'pod',
      'unshare',
      [
        '-m',
        '--propagation',
        'private',
        'sh',
        '-c',
        `mount -t tmpfs tmpfs /run && mkdir -p ${sa} && cp "$1/token" "$1/namespace" ${sa}/ && cp /etc/ssl/certs/ca-certificates.crt ${sa}/ca.crt && shift && exec "$@"`,
        'sh',
        lab.dir,
        process.execPath,
        ...flags,
        CLI,
        'operator',
      ],
      {
        log: 'operator.log',
        env: {
          KUBERNETES_SERVICE_HOST: '127.0.0.1',
          KUBERNETES_SERVICE_PORT: '1',
          VPN_FRONTEND_POD: 'vpn-frontend-0',
          POD_NAMESPACE: 'vpn',
          VPN_PEER_CIDRS: PEER_CIDR,
        },
      },
    );
    let opid: number | undefined;
    let running = false;
    for (let i = 0; i < 200 && !running; i++) {
      opid ??= findDescendant(operator.pid!, 'node');
      running =
        existsSync(`${lab.dir}/operator.log`) &&
        readFileSync(`${lab.dir}/operator.log`, 'utf8').includes('operator running');
      if (!running) await sleep(50);
    }
    if (!opid || !running) throw new Error(`operator did not start:\n${tailOf(`${lab.dir}/operator.log`)}`);
    await sleep(settle);
    out(`  operator (API server unreachable) RSS ${(rss(opid) / 1048576).toFixed(1)} MiB  [load ${load()}]`);
    await lab.stop(operator);

    // ikegw version: the whole process, as a user runs it (peak RSS from GNU time)
    const times: number[] = [];
    let peak = 0;
    const timeFile = `${lab.dir}/time.txt`;
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      execFileSync(
        '/usr/bin/time',
        ['-f', '%M', '-o', timeFile, process.execPath, ...flags, CLI, 'version'],
        { stdio: 'ignore' },
      );
      times.push(performance.now() - t0);
      peak = Math.max(peak, Number(tailOf(timeFile, 1)) * 1024);
    }
    times.sort((a, b) => a - b);
    out(
      `  ikegw version                     ${times[2]!.toFixed(0)} ms (median of 5, wall), peak RSS ${(peak / 1048576).toFixed(1)} MiB  [load ${load()}]`,
    );
  } finally {
    await lab.stopAll();
    await lab.destroy();
  }
  return lines;
}
