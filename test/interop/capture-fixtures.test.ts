// Regenerates test/fixtures/strongswan/<proposal>/ from a real strongSwan 5.9.8 <-> strongSwan
// exchange through the lab NAT. Opt-in: runs only with IKEGW_CAPTURE=1 (and as root):
//
//   IKEGW_CAPTURE=1 npx vitest run test/interop/capture-fixtures.test.ts
//   (IKEGW_CAPTURE_OUT=<dir> to write elsewhere)
//
// Per proposal the initiator (cluster, behind the NAT) runs:
//   IKE_SA_INIT, IKE_AUTH (first CHILD_SA), a few pings through the tunnel (ESP-in-UDP),
//   a DPD (empty INFORMATIONAL, dpd_delay = 1s), `swanctl --rekey --child` (CREATE_CHILD_SA
//   + INFORMATIONAL deleting the old CHILD_SA), `swanctl --terminate --ike` (INFORMATIONAL DELETE).
// Keys come from the initiator's `ike = 4` / `chd = 4` log. Every SK payload and ESP packet is
// decrypted here with node:crypto (independently of src/) before anything is written, so the
// committed keys are known to be right.

import { createDecipheriv, createHmac } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, test } from 'vitest';
import {
  type CapturedIkeMessage,
  type Charon,
  createLab,
  espInUdp,
  ikeMessages,
  LAB_PSK,
  type Lab,
  labAvailable,
  logHexDumps,
  type ParsedSa,
  run,
} from './lab.js';

// IKEGW_CAPTURE_OUT=<dir> writes somewhere else (to try the capture without touching the fixtures)
const FIXTURES =
  process.env.IKEGW_CAPTURE_OUT ??
  join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'strongswan');

interface ProposalCase {
  dir: string;
  ike?: string;
  esp?: string;
}

const CASES: ProposalCase[] = [
  { dir: 'default' },
  { dir: 'aes256gcm16-prfsha384-ecp384', ike: 'aes256gcm16-prfsha384-ecp384', esp: 'aes256gcm16' },
  { dir: 'aes128-sha256-modp2048', ike: 'aes128-sha256-modp2048', esp: 'aes128-sha256' },
  {
    dir: 'chacha20poly1305-prfsha256-x25519',
    ike: 'chacha20poly1305-prfsha256-x25519',
    esp: 'chacha20poly1305',
  },
  { dir: 'aes256-sha512-ecp521', ike: 'aes256-sha512-ecp521', esp: 'aes256-sha512' },
];

// ------------------------------------------------------------------------------------------
// independent decryption (verification only)

interface CipherSpec {
  kind: 'cbc' | 'aead';
  /** node cipher name */
  cipher: string;
  keyLen: number;
  saltLen: number;
  ivLen: number;
  icvLen: number;
  /** HMAC hash and truncation for CBC */
  hmac?: string;
}

function cipherSpec(encr: string, keysize: number | undefined, integ: string | undefined): CipherSpec {
  const macs: Record<string, [string, number]> = {
    HMAC_SHA1_96: ['sha1', 12],
    HMAC_SHA2_256_128: ['sha256', 16],
    HMAC_SHA2_384_192: ['sha384', 24],
    HMAC_SHA2_512_256: ['sha512', 32],
  };
  if (encr === 'AES_CBC') {
    const mac = macs[integ ?? ''];
    if (!mac) throw new Error(`unsupported integrity ${integ}`);
    const bits = keysize ?? 128;
    return {
      kind: 'cbc',
      cipher: `aes-${bits}-cbc`,
      keyLen: bits / 8,
      saltLen: 0,
      ivLen: 16,
      icvLen: mac[1],
      hmac: mac[0],
    };
  }
  if (encr === 'AES_GCM_16') {
    const bits = keysize ?? 128;
    return { kind: 'aead', cipher: `aes-${bits}-gcm`, keyLen: bits / 8, saltLen: 4, ivLen: 8, icvLen: 16 };
  }
  if (encr === 'CHACHA20_POLY1305') {
    return { kind: 'aead', cipher: 'chacha20-poly1305', keyLen: 32, saltLen: 4, ivLen: 8, icvLen: 16 };
  }
  throw new Error(`unsupported encryption ${encr}`);
}

/**
 * Authenticates and decrypts `ct` (IV || ciphertext || ICV) with `aad` (everything before the IV).
 * Returns the plaintext including the padding/trailer, or throws.
 */
function openSealed(
  spec: CipherSpec,
  encKey: Buffer,
  integKey: Buffer | undefined,
  aad: Buffer,
  body: Buffer,
): Buffer {
  const iv = body.subarray(0, spec.ivLen);
  const ct = body.subarray(spec.ivLen, body.length - spec.icvLen);
  const icv = body.subarray(body.length - spec.icvLen);
  if (spec.kind === 'cbc') {
    if (!integKey || !spec.hmac) throw new Error('CBC needs an integrity key');
    const mac = createHmac(spec.hmac, integKey)
      .update(Buffer.concat([aad, iv, ct]))
      .digest()
      .subarray(0, spec.icvLen);
    if (!mac.equals(icv)) throw new Error('ICV mismatch');
    const d = createDecipheriv(spec.cipher, encKey, iv);
    d.setAutoPadding(false);
    return Buffer.concat([d.update(ct), d.final()]);
  }
  const key = encKey.subarray(0, spec.keyLen);
  const salt = encKey.subarray(spec.keyLen);
  const nonce = Buffer.concat([salt, iv]);
  const d =
    spec.cipher === 'chacha20-poly1305'
      ? createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 })
      : createDecipheriv(spec.cipher as 'aes-128-gcm', key, nonce, { authTagLength: 16 });
  d.setAAD(aad, { plaintextLength: ct.length });
  d.setAuthTag(icv);
  return Buffer.concat([d.update(ct), d.final()]);
}

interface OpenedSk {
  /** Next Payload field of the SK payload header (first inner payload type). */
  firstInner: number;
  /** Inner payloads without padding and the pad length byte. */
  inner: Buffer;
  padLength: number;
}

function openSk(msg: Buffer, spec: CipherSpec, encKey: Buffer, integKey: Buffer | undefined): OpenedSk {
  let next = msg[16] ?? 0;
  let off = 28;
  while (next !== 46) {
    if (next === 0 || off + 4 > msg.length) throw new Error('no SK payload');
    next = msg[off] ?? 0;
    off += msg.readUInt16BE(off + 2);
  }
  const firstInner = msg[off] ?? 0;
  const len = msg.readUInt16BE(off + 2);
  const aad = msg.subarray(0, off + 4);
  const body = msg.subarray(off + 4, off + len);
  const pt = openSealed(spec, encKey, integKey, aad, body);
  const padLength = pt[pt.length - 1] ?? 0;
  return { firstInner, inner: pt.subarray(0, pt.length - 1 - padLength), padLength };
}

function openEsp(
  pkt: Buffer,
  spec: CipherSpec,
  encKey: Buffer,
  integKey: Buffer | undefined,
): { nextHeader: number; inner: Buffer; seq: number } {
  const aad = pkt.subarray(0, 8); // SPI || sequence number (no ESN)
  const pt = openSealed(spec, encKey, integKey, aad, pkt.subarray(8));
  const nextHeader = pt[pt.length - 1] ?? 0;
  const padLength = pt[pt.length - 2] ?? 0;
  return { nextHeader, inner: pt.subarray(0, pt.length - 2 - padLength), seq: pkt.readUInt32BE(4) };
}

// ------------------------------------------------------------------------------------------

const hex = (b: Buffer) => b.toString('hex');
const unhex = (s: string) => Buffer.from(s, 'hex');

function first(map: Map<string, string[]>, label: string): string | undefined {
  return map.get(label)?.[0];
}

function swanctlConf(side: 'cluster' | 'onprem', lab: Lab, c: ProposalCase): string {
  const ike = c.ike ? `    proposals = ${c.ike}\n` : '';
  const esp = c.esp ? `        esp_proposals = ${c.esp}\n` : '';
  const cluster = side === 'cluster';
  return `connections {
  ${cluster ? 'onprem' : 'cluster'} {
    remote_addrs = ${cluster ? lab.addr.onpremWan : lab.addr.clusterPublic}
${ike}${cluster ? '    dpd_delay = 1s\n' : ''}    local {
      auth = psk
    }
    remote {
      auth = psk
    }
    children {
      net {
        local_ts = ${cluster ? `${lab.nets.clusterPods},${lab.nets.clusterServices}` : lab.nets.onpremLan}
        remote_ts = ${cluster ? lab.nets.onpremLan : `${lab.nets.clusterPods},${lab.nets.clusterServices}`}
${esp}      }
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

interface ChildKeys {
  name: string;
  generation: number;
  /** SPI the cluster (initiator) receives on / sends with, as logged: `<in>_i <out>_o`. */
  spi_in: string;
  spi_out: string;
  proposal: string;
  /** Keys for traffic sent by the CHILD_SA exchange initiator (the cluster), SPI = spi_out. */
  encr_i: string;
  encr_r: string;
  integ_i?: string;
  integ_r?: string;
}

function childKeysFromLog(log: string): ChildKeys[] {
  const out: ChildKeys[] = [];
  // Split the log at "CHILD_SA x{n} established with SPIs" lines; each block before one holds
  // the key dumps of that CHILD_SA.
  const lines = log.split('\n');
  let block: string[] = [];
  let proposal = '';
  for (const l of lines) {
    block.push(l);
    const p = /selected proposal: (ESP:\S+)/.exec(l);
    if (p) proposal = p[1] ?? '';
    // 5.9.8 logs a rekeyed CHILD_SA twice ("inbound ... established", "outbound ... established")
    const m =
      /\] (?:<[^>]*> )?(?:inbound )?CHILD_SA (\S+)\{(\d+)\} established with SPIs ([0-9a-f]+)_i ([0-9a-f]+)_o/.exec(
        l,
      );
    if (!m) continue;
    const dumps = logHexDumps(block.join('\n'));
    const encrI = dumps.get('encryption initiator key')?.at(-1);
    const encrR = dumps.get('encryption responder key')?.at(-1);
    if (!encrI || !encrR) throw new Error(`no ESP keys logged before ${l}`);
    const integI = dumps.get('integrity initiator key')?.at(-1);
    const integR = dumps.get('integrity responder key')?.at(-1);
    out.push({
      name: m[1] ?? '',
      generation: Number(m[2]),
      spi_in: m[3] ?? '',
      spi_out: m[4] ?? '',
      proposal,
      encr_i: encrI,
      encr_r: encrR,
      ...(integI ? { integ_i: integI } : {}),
      ...(integR ? { integ_r: integR } : {}),
    });
    block = [];
  }
  return out;
}

/** Waits for the response to the first `exchange` request the cluster sends after `after` matched. */
async function waitForResponse(c: Charon, after: RegExp, exchange: string, payloads = ''): Promise<void> {
  const log = c.log();
  const at = log.search(after);
  const rest = log.slice(at);
  const esc = payloads.replace(/[[\]()]/g, '\\$&');
  const m = new RegExp(`generating ${exchange} request (\\d+) ${esc}`).exec(rest);
  if (!m) throw new Error(`no ${exchange} request ${payloads} after ${after}\n${c.logTail()}`);
  await c.waitForLog(new RegExp(`parsed ${exchange} response ${m[1]} `), { timeoutMs: 8000 });
}

interface Label {
  summary: string;
  purpose: string;
}

/**
 * Names every captured message from the initiator's log: charon logs each message it generates
 * or parses as `<EXCHANGE> <request|response> <id> [ <payloads> ]`, and the preceding lines say
 * why it was sent (DPD, MOBIKE update, rekey, delete).
 */
function labelMessages(log: string, msgs: CapturedIkeMessage[]): Label[] {
  const lines = log.split('\n');
  const byKey = new Map<string, Label>();
  let context = '';
  const lastReq = lines.reduce(
    (acc, l, k) => (/generating INFORMATIONAL request \d+ \[ D \]/.test(l) ? k : acc),
    -1,
  );
  lines.forEach((l, k) => {
    if (/sending DPD request/.test(l)) context = 'DPD';
    else if (/sending address list update using MOBIKE/.test(l)) context = 'MOBIKE';
    const m = /(generating|parsed) (\S+) (request|response) (\d+) (\[.*\])/.exec(l);
    if (!m) return;
    const [, verb, exchange, kind, id, payloads] = m as unknown as [
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    const byCluster = verb === 'generating';
    // cluster = original initiator: its requests and its responses carry the I flag
    const key = `${byCluster ? 'I' : '-'}|${exchange}|${kind}|${id}`;
    let purpose: string;
    if (exchange === 'IKE_SA_INIT') purpose = 'IKE_SA_INIT';
    else if (exchange === 'IKE_AUTH') purpose = 'IKE_AUTH with the first CHILD_SA (PSK)';
    else if (exchange === 'CREATE_CHILD_SA')
      purpose = /REKEY_SA/.test(payloads) || kind === 'response' ? 'CHILD_SA rekey' : 'CREATE_CHILD_SA';
    else if (/N\(NATD_S_IP\)/.test(payloads) && context === 'DPD')
      purpose = 'DPD (MOBIKE active and NAT detected: liveness check carries NAT-D notifies)';
    else if (/ADD_4_ADDR/.test(payloads)) purpose = 'MOBIKE address list update';
    else if (kind === 'request' && payloads === '[ D ]')
      purpose = k === lastReq ? 'DELETE of the IKE_SA' : 'DELETE of the old CHILD_SA (after rekey)';
    else purpose = 'INFORMATIONAL';
    if (kind === 'response') {
      const req = byKey.get(`${byCluster ? '-' : 'I'}|${exchange}|request|${id}`);
      if (req) purpose = req.purpose;
    }
    if (!byKey.has(key)) byKey.set(key, { summary: `${exchange} ${kind} ${id} ${payloads}`, purpose });
  });
  return msgs.map((m) => {
    const key = `${m.initiator ? 'I' : '-'}|${m.exchange}|${m.response ? 'response' : 'request'}|${m.messageId}`;
    const label = byKey.get(key);
    if (!label) throw new Error(`captured message ${key} not in the charon log`);
    return label;
  });
}

async function captureOne(c: ProposalCase): Promise<string[]> {
  const lab = await createLab({ nat: true });
  labs.push(lab);
  const notes: string[] = [];
  const capC = await lab.capture('cluster', lab.iface.clusterWan);
  const capO = await lab.capture('onprem', lab.iface.onpremWan);
  const onprem = await lab.startCharon('onprem', { swanctlConf: swanctlConf('onprem', lab, c) });
  const cluster = await lab.startCharon('cluster', {
    swanctlConf: swanctlConf('cluster', lab, c),
    logLevel: 4, // logs SK_* and the ESP keys
  });
  await cluster.initiate('net', 10);
  const sas: ParsedSa[] = await cluster.listSas();
  const sa = sas[0];
  if (!sa) throw new Error('no IKE_SA');
  // ESP: pings from the cluster to onprem's LAN address through the tunnel (kernel-libipsec's
  // route in table 220 picks a source inside local_ts, 10.10.1.1)
  const replies = await lab.ping('cluster', lab.addr.onpremLan, { count: 2, intervalS: 0.1 });
  expect(replies, 'pings through the tunnel').toBe(2);
  // DPD: sent after dpd_delay (1 s) without inbound IKE traffic
  await cluster.waitForLog(/sending DPD request/, { timeoutMs: 8000 });
  await waitForResponse(cluster, /sending DPD request/, 'INFORMATIONAL');
  await cluster.swanctl(['--rekey', '--child', 'net']);
  await cluster.waitForLog(/CHILD_SA net\{2\} established/, { timeoutMs: 8000 });
  await waitForResponse(cluster, /CHILD_SA net\{2\} established/, 'INFORMATIONAL', '[ D ]');
  await cluster.terminate('onprem', 10);
  const pcapC = await capC.stop();
  const pcapO = await capO.stop();
  const log = cluster.log();
  await cluster.stop();
  await onprem.stop();

  const msgsC = ikeMessages(pcapC);
  const msgsO = ikeMessages(pcapO);
  expect(
    msgsO.map((m) => hex(m.ike)),
    'same bytes on both sides of the NAT',
  ).toEqual(msgsC.map((m) => hex(m.ike)));
  const labels = labelMessages(log, msgsC);
  const seq = msgsC.map((m) => `${m.exchange}${m.response ? ' response' : ''}`);
  expect(seq.slice(0, 4)).toEqual(['IKE_SA_INIT', 'IKE_SA_INIT response', 'IKE_AUTH', 'IKE_AUTH response']);
  expect(seq).toContain('CREATE_CHILD_SA');
  expect(labels.at(-2)?.purpose).toBe('DELETE of the IKE_SA');

  // keys from the level-4 log of the initiator
  const dumps = logHexDumps(log);
  const ikeKeys: Record<string, string> = {};
  for (const [label, name] of [
    ['shared Diffie Hellman secret', 'shared_secret'],
    ['SKEYSEED', 'skeyseed'],
    ['Sk_d secret', 'sk_d'],
    ['Sk_ai secret', 'sk_ai'],
    ['Sk_ar secret', 'sk_ar'],
    ['Sk_ei secret', 'sk_ei'],
    ['Sk_er secret', 'sk_er'],
    ['Sk_pi secret', 'sk_pi'],
    ['Sk_pr secret', 'sk_pr'],
  ] as const) {
    const v = first(dumps, label);
    if (v !== undefined) ikeKeys[name] = v;
  }
  const selected = /selected proposal: IKE:(\S+)/.exec(log)?.[1] ?? '';
  const spec = cipherSpec(sa.encrAlg ?? '', sa.encrKeysize, sa.integAlg);
  const children = childKeysFromLog(log);
  expect(children.length, 'CHILD_SA generations in the log').toBe(2);

  const dir = join(FIXTURES, c.dir);
  mkdirSync(dir, { recursive: true });
  for (const f of readdirSync(dir)) {
    if (f.endsWith('.bin') || f === 'keys.json') rmSync(join(dir, f));
  }
  const natPort = msgsO[0]?.sport;
  const messages = msgsC.map((m: CapturedIkeMessage, k) => {
    const o = msgsO[k];
    const kind = m.response ? 'resp' : 'req';
    const file = `${String(k + 1).padStart(2, '0')}-${m.exchange.toLowerCase()}-${kind}.bin`;
    writeFileSync(join(dir, file), m.ike);
    const entry: Record<string, unknown> = {
      file,
      exchange: m.exchange,
      message_id: m.messageId,
      flags: { initiator: m.initiator, response: m.response },
      sender: m.initiator ? 'cluster (original initiator)' : 'onprem (original responder)',
      purpose: labels[k]?.purpose,
      strongswan_log: labels[k]?.summary,
      length: m.ike.length,
      udp_cluster_side: `${m.src}:${m.sport} -> ${m.dst}:${m.dport}`,
      udp_onprem_side: o ? `${o.src}:${o.sport} -> ${o.dst}:${o.dport}` : undefined,
      non_esp_marker_stripped: m.nonEspMarker,
    };
    if (m.exchangeType !== 34) {
      const fromI = m.initiator;
      const ek = unhex(ikeKeys[fromI ? 'sk_ei' : 'sk_er'] ?? '');
      const ak = spec.kind === 'cbc' ? unhex(ikeKeys[fromI ? 'sk_ai' : 'sk_ar'] ?? '') : undefined;
      const opened = openSk(m.ike, spec, ek, ak);
      const innerFile = file.replace(/\.bin$/, '.inner.bin');
      writeFileSync(join(dir, innerFile), opened.inner);
      entry.sk = {
        keys: fromI
          ? spec.kind === 'cbc'
            ? 'sk_ei + sk_ai'
            : 'sk_ei'
          : spec.kind === 'cbc'
            ? 'sk_er + sk_ar'
            : 'sk_er',
        first_inner_payload: opened.firstInner,
        pad_length: opened.padLength,
        inner_file: innerFile,
      };
    }
    return entry;
  });

  // ESP packets of the first CHILD_SA (the pings), decrypted with the first generation's keys
  const child1 = children[0]!;
  const espSpec = (() => {
    const m = /^ESP:([A-Z0-9_]+?)(?:_(\d+))?(?:\/([A-Z0-9_]+?))?\/(?:NO_)?EXT_SEQ$/.exec(child1.proposal);
    const enc = m?.[1] ?? '';
    if (enc.startsWith('AES_GCM_16')) return cipherSpec('AES_GCM_16', Number(m?.[2] ?? 128), undefined);
    if (enc === 'CHACHA20_POLY1305') return cipherSpec('CHACHA20_POLY1305', 256, undefined);
    if (enc === 'AES_CBC') return cipherSpec('AES_CBC', Number(m?.[2] ?? 128), m?.[3]);
    throw new Error(`ESP proposal ${child1.proposal} not handled`);
  })();
  const esp = espInUdp(pcapC).slice(0, 4);
  expect(esp.length, 'ESP packets captured').toBeGreaterThanOrEqual(4);
  const espEntries = esp.map((u, k) => {
    const spi = u.payload.subarray(0, 4).toString('hex');
    const out = spi === child1.spi_out;
    const ek = unhex(out ? child1.encr_i : child1.encr_r);
    const ik = out ? child1.integ_i : child1.integ_r;
    const opened = openEsp(u.payload, espSpec, ek, ik ? unhex(ik) : undefined);
    const file = `esp-${String(k + 1).padStart(2, '0')}-${out ? 'cluster-to-onprem' : 'onprem-to-cluster'}.bin`;
    writeFileSync(join(dir, file), u.payload);
    const innerFile = file.replace(/\.bin$/, '.inner.bin');
    writeFileSync(join(dir, innerFile), opened.inner);
    return {
      file,
      inner_file: innerFile,
      spi,
      seq: opened.seq,
      keys: out ? 'child[0].encr_i/integ_i' : 'child[0].encr_r/integ_r',
      next_header: opened.nextHeader,
      udp_cluster_side: `${u.src}:${u.sport} -> ${u.dst}:${u.dport}`,
    };
  });

  const version = (await run('/usr/sbin/swanctl', ['--version'], { check: false, env: { ...process.env } }))
    .stdout;
  const keys = {
    generated_by: 'test/interop/capture-fixtures.test.ts (IKEGW_CAPTURE=1)',
    strongswan: /strongSwan (\S+)/.exec(version)?.[1] ?? '5.9.8',
    configured: {
      ike_proposals: c.ike ?? '(strongSwan default)',
      esp_proposals: c.esp ?? '(strongSwan default)',
    },
    selected_ike_proposal: selected,
    algorithms: {
      encr: sa.encrAlg,
      encr_keysize: sa.encrKeysize,
      integ: sa.integAlg ?? null,
      prf: sa.prfAlg,
      dh: sa.dhGroup,
    },
    spi_i: sa.spiI,
    spi_r: sa.spiR,
    psk: LAB_PSK,
    initiator: {
      role: 'cluster',
      address: lab.addr.clusterWan,
      behind_nat: lab.addr.clusterPublic,
      nat_source_port_of_ike_sa_init: natPort,
      id: sa.localId,
    },
    responder: { role: 'onprem', address: lab.addr.onpremWan, id: sa.remoteId },
    key_notes:
      'sk_* as logged by charon (keymat_v2, level 4). For AEAD (GCM, ChaCha20-Poly1305) sk_ei/sk_er are ' +
      'key || 4-byte salt and there are no sk_ai/sk_ar. Messages from the original initiator use sk_ei/sk_ai.',
    keys: ikeKeys,
    children,
    messages,
    esp: espEntries,
  };
  writeFileSync(join(dir, 'keys.json'), `${JSON.stringify(keys, null, 2)}\n`);
  notes.push(`${c.dir}: ${selected}, ${messages.length} IKE messages, ${espEntries.length} ESP packets`);
  await lab.teardown();
  return notes;
}

const labs: Lab[] = [];
const avail = labAvailable({ capture: true });
const enabled = process.env.IKEGW_CAPTURE === '1';

describe.skipIf(!enabled || !avail.ok)(
  `capture strongSwan fixtures (IKEGW_CAPTURE=1${avail.ok ? '' : `; ${avail.why}`})`,
  () => {
    afterAll(async () => {
      for (const l of labs) await l.teardown();
    });
    for (const c of CASES) {
      test(c.dir, { timeout: 30_000 }, async () => {
        const notes = await captureOne(c);
        console.log(notes.join('\n'));
      });
    }
  },
);
