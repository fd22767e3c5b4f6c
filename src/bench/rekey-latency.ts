// Rekey latency against strongSwan in the same run: CHILD_SA rekeys started by ikegw (request ->
// new CHILD_SA installed, from ikegw's log) and started by strongSwan (REKEYING -> new CHILD_SA
// established, from charon's log), over ~20 s, each end rekeying one of two CHILD_SAs every ~3 s. Direct link, two
// namespaces, strongSwan with kernel-libipsec, ikegw with the memory data path.
import { existsSync, readFileSync } from 'node:fs';
import { CHARON, Lab, sleep } from './lab.js';

const PSK = 'bench-rekey-psk-0a1b2c3d4e5f';
const I = '192.0.2.1';
const R = '192.0.2.2';

function stats(ms: number[]): string {
  if (!ms.length) return 'none observed';
  const s = [...ms].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
  return `n=${s.length} median ${q(0.5).toFixed(1)} ms, p90 ${q(0.9).toFixed(1)} ms`;
}

export async function runRekeyLatency(seconds = 20): Promise<string[]> {
  if (process.getuid?.() !== 0 || !existsSync(CHARON))
    return ['rekey latency: skipped (needs root and strongSwan)'];
  const lab = await Lab.create({
    prefix: `ikgwk${process.pid % 10000}-`,
    tmpPrefix: 'ikegw-rekey-',
    nodes: {
      i: { addrs: [`${I}/24 dev k0`] },
      r: { addrs: [`${R}/24 dev k0`, '10.202.1.1/32 dev lo', '10.202.2.1/32 dev lo'] },
    },
    links: [['i', 'k0', 'r', 'k0']],
  });
  try {
    const psk = lab.pskFile(PSK);
    // strongSwan responder
    const charon = await lab.charon('r', {
      name: 'r',
      strongswanConf: ({ vici, log }) =>
        `charon {\n load_modular = yes\n plugins {\n  include /etc/strongswan.d/charon/*.conf\n  kernel-libipsec { load = yes }\n  vici { socket = unix://${vici} }\n }\n filelog { main { path = ${log}\n  time_format = %s\n  time_add_ms = yes\n  default = 1\n } }\n syslog { daemon { default = -1 } }\n}\n`,
      // Two CHILD_SAs: strongSwan rekeys "sw" every ~3 s, ikegw rekeys "ik" every ~3 s; the other end's
      // timer for each is long, so each end starts its own rekeys.
      swanctlConf:
        `connections { lt { local_addrs = ${R}\n remote_addrs = ${I}\n local { auth = psk }\n remote { auth = psk }\n children {\n` +
        ` ik { local_ts = 10.202.1.0/24\n remote_ts = 10.201.1.0/24\n rekey_time = 60s\n life_time = 90s }\n` +
        ` sw { local_ts = 10.202.2.0/24\n remote_ts = 10.201.2.0/24\n rekey_time = 3s\n rand_time = 0s\n life_time = 30s } } } }\n` +
        `secrets { ike { secret = "${PSK}" } }\n`,
    });
    // ikegw initiator
    const ikegw = lab.ikegw(
      'i',
      'ikegw',
      `connections:\n  lt:\n    remote_addrs: ['${R}']\n    local_addrs: ['${I}']\n    psk: { file: '${psk}' }\n    children:\n` +
        `      ik:\n        local_ts: [10.201.1.0/24]\n        remote_ts: [10.202.1.0/24]\n        start_action: start\n        rekey_time: 3s\n        life_time: 30s\n` +
        `      sw:\n        local_ts: [10.201.2.0/24]\n        remote_ts: [10.202.2.0/24]\n        start_action: start\n        rekey_time: 60s\n        life_time: 90s\n` +
        `datapath: memory\nlisten: { address: '${I}', port: 500, nat_port: 4500 }\nlog: { level: info, format: json }\n`,
    );
    await sleep(seconds * 1000);
    // ikegw-initiated: REKEYING of a CHILD_SA -> the next INSTALLED
    const ours: number[] = [];
    let t0: number | undefined;
    for (const l of readFileSync(ikegw.log!, 'utf8').split('\n')) {
      if (!l.startsWith('{')) continue;
      const j = JSON.parse(l) as { time: string; state?: string; child?: string };
      if (j.child !== 'ik') continue;
      const t = Date.parse(j.time);
      if (j.state === 'REKEYING') t0 = t;
      else if (j.state === 'INSTALLED' && t0 !== undefined) {
        ours.push(t - t0);
        t0 = undefined;
      }
    }
    // strongSwan-initiated: "INSTALLED => REKEYING" -> the next "CHILD_SA ... established"
    const theirs: number[] = [];
    let s0: number | undefined;
    for (const l of charon.log().split('\n')) {
      const t = Number.parseFloat(l) * 1000;
      if (/generating CREATE_CHILD_SA request \d+ \[ N\(REKEY_SA\)/.test(l)) s0 = t;
      else if (/inbound CHILD_SA sw\{\d+\} established/.test(l) && s0 !== undefined) {
        theirs.push(t - s0);
        s0 = undefined;
      }
    }
    return [
      `CHILD_SA rekey latency (request -> new CHILD_SA installed), ${seconds} s, each end rekeying its own CHILD_SA every ~3 s, same run:`,
      `  started by ikegw      ${stats(ours)}  (timestamps ms-resolution from ikegw's log)`,
      `  started by strongSwan ${stats(theirs)}  (from charon's log, ms resolution)`,
    ];
  } finally {
    await lab.stopAll();
    await lab.destroy();
  }
}
