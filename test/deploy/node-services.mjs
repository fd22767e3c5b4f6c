// Runs inside the simulated node's network namespace (test/deploy) and stands in for two things a
// node has that the test process, outside the namespace, cannot be:
//  - the `kubernetes` Service: TCP on HOST:PORT relayed to the fake API server's unix socket;
//  - the kubelet's prober: GET /probe?url=http://POD_IP:PORT/PATH on a unix socket makes that
//    request from the node, as the kubelet does, and answers {status, body} or {error}.
// usage: node node-services.mjs API_SOCKET HOST PORT PROBE_SOCKET
import { get } from 'node:http';
import { connect, createServer } from 'node:net';
import { createServer as createHttpServer } from 'node:http';

const [apiSocket, host, port, probeSocket] = process.argv.slice(2);

const relay = createServer((c) => {
  const u = connect(apiSocket);
  const close = () => {
    c.destroy();
    u.destroy();
  };
  c.on('error', close);
  u.on('error', close);
  c.pipe(u).pipe(c);
});

const prober = createHttpServer((req, res) => {
  const target = new URL(req.url ?? '/', 'http://prober').searchParams.get('url');
  if (!target) {
    res.writeHead(400).end();
    return;
  }
  const answer = (o) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(o));
  };
  const r = get(target, { timeout: 3000 }, (resp) => {
    let body = '';
    resp.setEncoding('utf8');
    resp.on('data', (d) => {
      body += d;
    });
    resp.on('end', () => answer({ status: resp.statusCode, body }));
    resp.on('error', (e) => answer({ error: e.code ?? String(e) }));
  });
  r.on('timeout', () => r.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
  r.on('error', (e) => answer({ error: e.code ?? String(e) }));
});

let up = 0;
const ready = () => {
  if (++up === 2) console.log('node-services ready');
};
relay.listen(Number(port), host, ready);
prober.listen(probeSocket, ready);
for (const s of ['SIGTERM', 'SIGINT']) process.on(s, () => process.exit(0));
