// Known answers for whole ESP packets (RFC 4303 tunnel mode) built and opened by the userspace
// data path (src/esp/userspace/esp-packet.ts).
//
// Sources:
//  - RFC 7634 Appendix A ("ESP Example"): ChaCha20-Poly1305, SPI 0x01020304, seq 5, IV
//    1011121314151617, an IPv4 ICMP echo request as payload with padding 01 02, Pad Length 2,
//    Next Header 4. The RFC gives the AEAD output; the ESP packet is SPI | seq | IV | output.
//  - strongSwan 5.9.8 captures (test/fixtures/strongswan/*/esp-*.bin, made by this project with
//    test/interop/capture-fixtures.test.ts, keys from charon's level-4 log; see its README): one
//    packet per direction for AES-GCM-16/128, AES-GCM-16/256, ChaCha20-Poly1305,
//    AES-CBC-128 + HMAC-SHA2-256-128 and AES-CBC-256 + HMAC-SHA2-512-256. strongSwan's IVs are
//    random, so sealing uses the captured IV; everything else (padding, trailer, ICV) must match
//    byte for byte.
//  - AES-GCM itself is covered by the McGrew–Viega cases in test/vectors/aead.test.ts (same
//    node:crypto primitive); RFC 3602 §4 cases #5–#8 (ESP with AES-CBC but no ICV) are not used:
//    the strongSwan CBC+HMAC captures check the same construction with integrity.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fromHex, hex } from '../../src/common/bytes.js';
import { nativeAvailable } from '../../src/common/native.js';
import {
  checkTrailer,
  createEspCrypto,
  type EspCryptoImpl,
  espOpen,
  espSeal,
  espSeq,
  espSpi,
  NH_IPV4,
  trailerNextHeader,
} from '../../src/esp/userspace/esp-packet.js';
import type { EspAlgorithm } from '../../src/ike/ports.js';

const h = fromHex;

// Every vector runs through node:crypto and, where the addon is built, the native AEAD path.
// CI builds the addon (npm ci runs native/build.mjs); locally without it the native runs are skipped.
const IMPLS: EspCryptoImpl[] = nativeAvailable().ok ? ['node', 'native'] : ['node'];

for (const impl of IMPLS)
  describe(`RFC 7634 Appendix A: ChaCha20-Poly1305 ESP example (${impl})`, () => {
    const keymat = h('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f' + 'a0a1a2a3');
    const payload = h(
      '45000054a6f200004001e778c6336405c0000205' +
        '08005b7a3a080000553bec100007362708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f' +
        '202122232425262728292a2b2c2d2e2f3031323334353637',
    );
    const packet =
      '01020304' +
      '00000005' +
      '1011121314151617' +
      '24039428b97f417e3c13753a4f05087b67c352e6a7fab1b982d466ef407ae5c614ee8099d52844eb61aa95dfab4c02f7' +
      '2aa71e7c4c4f64c9befe2facc638e8f3cbec163fac469b502773f6fb94e664da9165b82829f641e0' +
      '76aaa8266b7fb0f7b11b369907e1ad43';
    const alg: EspAlgorithm = { kind: 'aead', name: 'chacha20-poly1305', keyBits: 256 };

    it('seal reproduces the packet (padding 01 02, Pad Length 2, Next Header 4)', () => {
      const c = createEspCrypto(alg, keymat, new Uint8Array(0), false, impl);
      expect(c.impl).toBe(impl);
      const out = espSeal(c, 0x01020304, 5, 0, payload, NH_IPV4, h('1011121314151617'));
      expect(hex(out)).toBe(packet);
      expect(c.packetLength(payload.length)).toBe(out.length);
    });

    it('open recovers the payload and the trailer checks pass', () => {
      const c = createEspCrypto(alg, keymat, new Uint8Array(0), false, impl);
      const pkt = h(packet);
      expect(espSpi(pkt)).toBe(0x01020304);
      expect(espSeq(pkt)).toBe(5);
      const pt = espOpen(c, pkt, 0);
      expect(pt).not.toBeNull();
      const n = checkTrailer(pt!);
      expect(n).toBe(payload.length);
      expect(trailerNextHeader(pt!)).toBe(4);
      expect(hex(pt!.subarray(0, n))).toBe(hex(payload));
    });

    it('a flipped bit anywhere (header, IV, ciphertext, ICV) fails the ICV', () => {
      const c = createEspCrypto(alg, keymat, new Uint8Array(0), false, impl);
      const pkt = h(packet);
      for (const at of [0, 5, 9, 40, pkt.length - 1]) {
        const bad = pkt.slice();
        bad[at]! ^= 0x10;
        expect(espOpen(c, bad, 0), `bit flip at ${at}`).toBeNull();
      }
      // with ESN the high bits enter the AAD: the same bytes with seqHi 1 do not verify
      const esn = createEspCrypto(alg, keymat, new Uint8Array(0), true, impl);
      expect(espOpen(esn, pkt, 1)).toBeNull();
    });
  });

interface KeysJson {
  children: Array<{
    proposal: string;
    encr_i: string;
    encr_r: string;
    integ_i?: string;
    integ_r?: string;
  }>;
  esp: Array<{
    file: string;
    inner_file: string;
    spi: string;
    seq: number;
    keys: string;
    next_header: number;
  }>;
}

const FIX = join(import.meta.dirname, '../fixtures/strongswan');

function algOf(proposal: string): EspAlgorithm {
  const gcm = /AES_GCM_16_(\d+)/.exec(proposal);
  if (gcm) return { kind: 'aead', name: 'aes-gcm-16', keyBits: Number(gcm[1]) };
  if (proposal.includes('CHACHA20_POLY1305'))
    return { kind: 'aead', name: 'chacha20-poly1305', keyBits: 256 };
  const cbc = /AES_CBC_(\d+)\/HMAC_SHA2_(256|384|512)/.exec(proposal);
  if (cbc) {
    const integ = {
      '256': 'hmac-sha2-256-128',
      '384': 'hmac-sha2-384-192',
      '512': 'hmac-sha2-512-256',
    } as const;
    return {
      kind: 'cipher+integ',
      cipher: 'aes-cbc',
      keyBits: Number(cbc[1]),
      integ: integ[cbc[2] as '256' | '384' | '512'],
    };
  }
  throw new Error(`no mapping for ${proposal}`);
}

for (const impl of IMPLS)
  describe(`strongSwan 5.9.8 (kernel-libipsec) captured ESP packets (${impl})`, () => {
    for (const dir of [
      'default',
      'aes256gcm16-prfsha384-ecp384',
      'chacha20poly1305-prfsha256-x25519',
      'aes128-sha256-modp2048',
      'aes256-sha512-ecp521',
    ]) {
      const keys = JSON.parse(readFileSync(join(FIX, dir, 'keys.json'), 'utf8')) as KeysJson;
      const child = keys.children[0]!;
      const alg = algOf(child.proposal);
      for (const e of keys.esp) {
        it(`${dir}: ${e.file} (${child.proposal})`, () => {
          const pkt = new Uint8Array(readFileSync(join(FIX, dir, e.file)));
          const inner = new Uint8Array(readFileSync(join(FIX, dir, e.inner_file)));
          const initiator = e.keys.includes('encr_i');
          const enc = h(initiator ? child.encr_i : child.encr_r);
          const integ = h((initiator ? child.integ_i : child.integ_r) ?? '');
          const c = createEspCrypto(alg, enc, integ, false, alg.kind === 'aead' ? impl : 'node');
          expect(hex(pkt.subarray(0, 4))).toBe(e.spi);
          expect(espSeq(pkt)).toBe(e.seq);
          const pt = espOpen(c, pkt, 0);
          expect(pt, 'ICV verifies').not.toBeNull();
          const n = checkTrailer(pt!);
          expect(n).toBe(inner.length);
          expect(trailerNextHeader(pt!)).toBe(e.next_header);
          expect(hex(pt!.subarray(0, n))).toBe(hex(inner));
          // Sealing with strongSwan's IV reproduces its packet exactly (same padding 1,2,3..., ICV).
          const iv = pkt.subarray(8, 8 + c.ivLen);
          const again = espSeal(c, espSpi(pkt), e.seq, 0, inner, NH_IPV4, iv);
          expect(hex(again)).toBe(hex(pkt));
        });
      }
    }
  });
