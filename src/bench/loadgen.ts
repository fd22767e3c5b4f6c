// IKE load generator: ikegw's own initiator in bulk mode. Creates `count` IKE_SAs (each with one
// CHILD_SA) against one responder, at most `concurrency` in flight, over one UDP socket, and prints
// a JSON result line. The same generator drives ikegw and strongSwan responders in `npm run bench`.
//
//   node dist/bench/loadgen.js --local 192.0.2.1 --target 192.0.2.2 --count 2000 \
//        --concurrency 64 --proposal aes128-sha256-x25519 --psk-file FILE
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { systemRandom } from '../common/random.js';
import { type ConnectionConfig, defaultRetransmit, type EngineConfig } from '../ike/config.js';
import { IkeEngine } from '../ike/engine.js';
import type { Effect, IkeEvent } from '../ike/events.js';
import type { TsRange } from '../ike/ports.js';
import { parseProposals } from '../ike/sa/proposal-syntax.js';

const { values: o } = parseArgs({
  options: {
    local: { type: 'string' },
    target: { type: 'string' },
    port: { type: 'string', default: '500' },
    count: { type: 'string', default: '1000' },
    concurrency: { type: 'string', default: '64' },
    proposal: { type: 'string', default: 'aes128-sha256-x25519' },
    esp: { type: 'string', default: 'aes128gcm16' },
    'psk-file': { type: 'string' },
    'max-seconds': { type: 'string', default: '60' },
  },
});
if (!o.local || !o.target || !o['psk-file']) {
  console.error(
    'usage: loadgen --local IP --target IP --psk-file FILE [--count N --concurrency C --proposal P]',
  );
  process.exit(2);
}
const count = Number(o.count);
const concurrency = Number(o.concurrency);
const port = Number(o.port);
const psk = new Uint8Array(readFileSync(o['psk-file']));

const range = (a: string, b: string): TsRange => ({
  family: 4,
  protocol: 0,
  startPort: 0,
  endPort: 65535,
  startAddr: a,
  endAddr: b,
});
const ike = parseProposals([o.proposal], 'ike');
const esp = parseProposals([o.esp], 'esp');
const connections: ConnectionConfig[] = [];
for (let i = 0; i < count; i++) {
  connections.push({
    name: `lt-${i}`,
    localAddrs: [o.local],
    remoteAddrs: [o.target],
    remotePort: 500,
    psk,
    ikeProposals: ike,
    encap: false,
    fragmentation: false,
    fragmentSize: 1280,
    dpdDelay: 0,
    dpdAction: 'clear',
    dpdTimeout: 0,
    rekeyTime: 0,
    overTime: 0,
    // Every SA uses the same IDi: INITIAL_CONTACT would make the responder delete the others.
    initialContact: false,
    children: [
      {
        name: 'lt',
        localTs: [range('10.201.0.0', '10.201.255.255')],
        remoteTs: [range('10.202.0.0', '10.202.255.255')],
        espProposals: esp,
        startAction: 'none',
        closeAction: 'none',
        rekeyTime: 0,
        lifeTime: 0,
        rekeyBytes: 0n,
        lifeBytes: 0n,
        rekeyPackets: 0n,
        lifePackets: 0n,
        replayWindow: 64,
        reqid: i + 1,
      },
    ],
  });
}
const cfg: EngineConfig = {
  connections,
  retransmit: { ...defaultRetransmit, timeoutMs: 2000 },
  cookieThreshold: -1,
  halfOpenPerIp: 0,
  halfOpenTimeoutMs: 30_000,
  keepalive: 0,
};
const engine = new IkeEngine(cfg, { random: systemRandom, ikePort: port, nattPort: 4500 });
const sock = createSocket('udp4');
const timers = new Map<string, NodeJS.Timeout>();
let next = 0;
let inflight = 0;
let established = 0;
let failed = 0;
const reasons = new Map<string, number>();
let t0 = 0;
let tLast = 0;
const setupMs: number[] = [];

function feed(ev: IkeEvent): void {
  run(engine.handle(ev, performance.now()));
}

function run(effects: Effect[]): void {
  for (const e of effects) {
    switch (e.kind) {
      case 'send':
        sock.send(e.bytes, e.remote.port, e.remote.address);
        break;
      case 'arm': {
        const k = `${e.key.sa}/${e.key.what}`;
        clearTimeout(timers.get(k));
        timers.set(
          k,
          setTimeout(() => feed({ kind: 'timer', key: e.key }), Math.max(0, e.atMs - performance.now())),
        );
        break;
      }
      case 'cancel':
        clearTimeout(timers.get(`${e.key.sa}/${e.key.what}`));
        timers.delete(`${e.key.sa}/${e.key.what}`);
        break;
      case 'kernel':
        // No data path in the generator: every kernel operation succeeds at once.
        queueMicrotask(() => feed({ kind: 'kernel-done', opId: e.opId }));
        break;
      case 'emit': {
        const ev = e.ev;
        if (ev.ev === 'child-state' && ev.state === 'INSTALLED') {
          established++;
          tLast = performance.now();
          inflight--;
          pump();
        } else if (ev.ev === 'failure') {
          failed++;
          reasons.set(ev.reason, (reasons.get(ev.reason) ?? 0) + 1);
          inflight--;
          pump();
        } else if (ev.ev === 'ike-established') {
          setupMs.push(ev.setupMs);
        }
        break;
      }
    }
  }
  maybeDone();
}

function pump(): void {
  while (inflight < concurrency && next < count) {
    inflight++;
    feed({ kind: 'command', cmd: { cmd: 'initiate', conn: `lt-${next++}` } });
  }
}

let finished = false;
function maybeDone(): void {
  if (finished || established + failed < count) return;
  finished = true;
  const secs = (tLast - t0) / 1000;
  setupMs.sort((a, b) => a - b);
  const pct = (p: number) => setupMs[Math.min(setupMs.length - 1, Math.floor(p * setupMs.length))] ?? 0;
  console.log(
    JSON.stringify({
      count,
      established,
      failed,
      reasons: Object.fromEntries(reasons),
      seconds: secs,
      rate: established / secs,
      setupMsP50: pct(0.5),
      setupMsP99: pct(0.99),
    }),
  );
  sock.close();
  for (const t of timers.values()) clearTimeout(t);
  process.exit(0);
}

sock.on('message', (bytes, rinfo) => {
  feed({
    kind: 'datagram',
    local: { address: o.local!, port },
    remote: { address: rinfo.address, port: rinfo.port },
    bytes: new Uint8Array(bytes),
  });
});
sock.bind(port, o.local, () => {
  t0 = performance.now();
  pump();
});
setTimeout(() => {
  console.log(
    JSON.stringify({
      count,
      established,
      failed,
      reasons: Object.fromEntries(reasons),
      timeout: true,
      seconds: (performance.now() - t0) / 1000,
      rate: established / ((tLast - t0) / 1000),
    }),
  );
  process.exit(1);
}, Number(o['max-seconds']) * 1000).unref();
