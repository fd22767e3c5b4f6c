// Seed material: the strongSwan 5.9.8 captures in test/fixtures/strongswan (IKE messages, their
// decrypted SK contents, ESP packets and the keys that open them). Found relative to this module,
// which is src/fuzz/ (vitest) or dist/fuzz/ (the CLI): the repository root is two levels up.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export function repoRoot(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
}

export const CRASH_DIR = (): string => join(repoRoot(), 'test', 'fixtures', 'fuzz-crashes');

export interface CapturedMessage {
  suite: string;
  file: string;
  bytes: Uint8Array;
  /** Decrypted SK content (inner payload chain), when the message is protected. */
  inner?: Uint8Array;
  /** Type of the first inner payload. */
  innerType?: number;
}

export interface CapturedEsp {
  suite: string;
  file: string;
  spi: number;
  seq: number;
  bytes: Uint8Array;
  /** The decrypted inner IP packet (without ESP trailer). */
  inner: Uint8Array;
  /** "ESP:AES_GCM_16_128/NO_EXT_SEQ" etc. */
  proposal: string;
  encKey: Uint8Array;
  integKey: Uint8Array;
  /** Sent by the cluster (initiator) to on-prem, or the other way. */
  fromCluster: boolean;
}

interface KeysJson {
  children: Array<{
    generation: number;
    proposal: string;
    encr_i: string;
    encr_r: string;
    integ_i?: string;
    integ_r?: string;
  }>;
  messages: Array<{ file: string; sk?: { first_inner_payload: number } }>;
  esp: Array<{ file: string; inner_file: string; spi: string; seq: number; keys: string }>;
}

const fromHex = (s: string | undefined): Uint8Array => new Uint8Array(Buffer.from(s ?? '', 'hex'));

function suites(): Array<{ suite: string; dir: string; keys: KeysJson }> {
  const root = join(repoRoot(), 'test', 'fixtures', 'strongswan');
  if (!existsSync(root)) return [];
  const out: Array<{ suite: string; dir: string; keys: KeysJson }> = [];
  for (const d of readdirSync(root, { withFileTypes: true })) {
    if (!d.isDirectory()) continue;
    const dir = join(root, d.name);
    const keysPath = join(dir, 'keys.json');
    if (!existsSync(keysPath)) continue;
    out.push({ suite: d.name, dir, keys: JSON.parse(readFileSync(keysPath, 'utf8')) as KeysJson });
  }
  return out.sort((a, b) => a.suite.localeCompare(b.suite));
}

let messagesCache: CapturedMessage[] | undefined;
let espCache: CapturedEsp[] | undefined;

/** Every captured IKE message (sorted by suite and file: a stable order for seeded choices). */
export function capturedMessages(): CapturedMessage[] {
  if (messagesCache) return messagesCache;
  const out: CapturedMessage[] = [];
  for (const s of suites()) {
    for (const m of s.keys.messages) {
      const bytes = new Uint8Array(readFileSync(join(s.dir, m.file)));
      const innerPath = join(s.dir, m.file.replace(/\.bin$/, '.inner.bin'));
      const msg: CapturedMessage = { suite: s.suite, file: m.file, bytes };
      if (m.sk && existsSync(innerPath)) {
        msg.inner = new Uint8Array(readFileSync(innerPath));
        msg.innerType = m.sk.first_inner_payload;
      }
      out.push(msg);
    }
  }
  messagesCache = out;
  return out;
}

/** Every captured ESP packet with its keys. */
export function capturedEsp(): CapturedEsp[] {
  if (espCache) return espCache;
  const out: CapturedEsp[] = [];
  for (const s of suites()) {
    const child = s.keys.children.find((c) => c.generation === 1);
    if (!child) continue;
    for (const e of s.keys.esp) {
      const initiator = e.keys.includes('encr_i');
      out.push({
        suite: s.suite,
        file: e.file,
        spi: Number.parseInt(e.spi, 16) >>> 0,
        seq: e.seq,
        bytes: new Uint8Array(readFileSync(join(s.dir, e.file))),
        inner: new Uint8Array(readFileSync(join(s.dir, e.inner_file))),
        proposal: child.proposal,
        encKey: fromHex(initiator ? child.encr_i : child.encr_r),
        integKey: fromHex(initiator ? child.integ_i : child.integ_r),
        fromCluster: initiator,
      });
    }
  }
  espCache = out;
  return out;
}
