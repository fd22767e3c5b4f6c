// Crypto micro-benchmarks: key exchange cost per group (keygen + derive, one side of a handshake),
// tweetnacl vs node:crypto for Curve25519, and SK payload seal+open throughput on 1400-byte
// messages. Bounded to a few seconds. Run: `node dist/bench/crypto-bench.js`; the main bench
// runner calls runCryptoBench() and prints the lines it returns.
import { pathToFileURL } from 'node:url';
import { systemRandom } from '../common/random.js';
import { createKeyExchange } from '../ike/crypto/dh.js';
import { createSkCipher } from '../ike/crypto/sk.js';
import { dhName, type EncrAlg, encrSuite, integSuite, keymatLen } from '../ike/crypto/suites.js';
import { DhGroup, Encr, Integ } from '../ike/wire/constants.js';

/** Runs `op` repeatedly for about `budgetMs` (at least `minOps` times); returns µs per op. */
function timeOp(op: () => void, budgetMs: number, minOps = 5): { usPerOp: number; ops: number } {
  op(); // warm-up
  let ops = 0;
  const start = performance.now();
  let now = start;
  while (ops < minOps || now - start < budgetMs) {
    op();
    ops++;
    now = performance.now();
  }
  return { usPerOp: ((now - start) * 1000) / ops, ops };
}

const fmtUs = (us: number): string => (us >= 100 ? us.toFixed(0) : us.toFixed(1)).padStart(8);

function keyExchangeLines(budgetMs: number): string[] {
  const lines = ['key exchange, one side (keygen + derive), node:crypto:'];
  const groups = [
    DhGroup.CURVE25519,
    DhGroup.CURVE448,
    DhGroup.ECP_256,
    DhGroup.ECP_384,
    DhGroup.ECP_521,
    DhGroup.MODP_2048,
    DhGroup.MODP_3072,
    DhGroup.MODP_4096,
  ];
  for (const g of groups) {
    const peer = createKeyExchange(g, systemRandom).publicKey;
    const r = timeOp(() => {
      createKeyExchange(g, systemRandom).computeSecret(peer);
    }, budgetMs);
    lines.push(`  ${dhName(g).padEnd(12)} ${fmtUs(r.usPerOp)} µs/op  (${r.ops} ops)`);
  }
  return lines;
}

async function curve25519Lines(budgetMs: number): Promise<string[]> {
  const peer = createKeyExchange(DhGroup.CURVE25519, systemRandom).publicKey;
  const node = timeOp(() => {
    createKeyExchange(DhGroup.CURVE25519, systemRandom).computeSecret(peer);
  }, budgetMs);
  let naclLine: string;
  try {
    // tweetnacl is a devDependency: load it only here, so the bench module itself has no hard dependency.
    const nacl = (await import('tweetnacl')).default;
    const t = timeOp(() => {
      const sk = systemRandom.bytes(32);
      nacl.scalarMult.base(sk);
      nacl.scalarMult(sk, peer);
    }, budgetMs);
    naclLine = `  tweetnacl    ${fmtUs(t.usPerOp)} µs/op  (${t.ops} ops)  = ${(t.usPerOp / node.usPerOp).toFixed(1)}x node:crypto`;
  } catch (e) {
    naclLine = `  tweetnacl    not available (${(e as Error).message})`;
  }
  return [
    'Curve25519, one side (keygen + derive):',
    `  node:crypto  ${fmtUs(node.usPerOp)} µs/op  (${node.ops} ops)`,
    naclLine,
  ];
}

function skLines(budgetMs: number): string[] {
  const size = 1400;
  const suites: Array<{ encr: EncrAlg; integ: number }> = [
    { encr: { id: Encr.AES_GCM_16, keyBits: 128 }, integ: Integ.NONE },
    { encr: { id: Encr.AES_GCM_16, keyBits: 256 }, integ: Integ.NONE },
    { encr: { id: Encr.CHACHA20_POLY1305, keyBits: 256 }, integ: Integ.NONE },
    { encr: { id: Encr.AES_CBC, keyBits: 128 }, integ: Integ.HMAC_SHA2_256_128 },
  ];
  const lines = [`SK payload seal+open, ${size}-byte messages (MB/s of inner payload, both operations):`];
  for (const s of suites) {
    const integKey = systemRandom.bytes(s.integ === Integ.NONE ? 0 : integSuite(s.integ).keyLen);
    const sk = createSkCipher(s.encr, s.integ, systemRandom.bytes(keymatLen(s.encr)), integKey);
    const prefix = systemRandom.bytes(32);
    const plain = systemRandom.bytes(size);
    const iv = systemRandom.bytes(sk.ivLen);
    const r = timeOp(
      () => {
        sk.open(prefix, sk.seal(prefix, plain, iv));
      },
      budgetMs,
      100,
    );
    const mbps = size / r.usPerOp; // bytes per µs = MB/s
    const name =
      s.integ === Integ.NONE
        ? encrSuite(s.encr).name
        : `${encrSuite(s.encr).name}/${integSuite(s.integ).name}`;
    lines.push(
      `  ${name.padEnd(32)} ${mbps.toFixed(1).padStart(7)} MB/s  (${fmtUs(r.usPerOp).trim()} µs per seal+open)`,
    );
  }
  return lines;
}

/** About 5 s in total. Returns printable lines. */
export async function runCryptoBench(): Promise<string[]> {
  return [
    `crypto bench (node ${process.version}, OpenSSL ${process.versions.openssl})`,
    ...keyExchangeLines(300),
    ...(await curve25519Lines(500)),
    ...skLines(400),
  ];
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  for (const line of await runCryptoBench()) console.log(line);
}
