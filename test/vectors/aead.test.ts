// Known answers for the AEAD ciphers of the SK payload: AES-GCM with a 16-byte ICV (RFC 5282) and
// ChaCha20-Poly1305 (RFC 7634), driven through our salt | IV nonce construction.
import { describe, expect, it } from 'vitest';
import { concat, fromHex, hex } from '../../src/common/bytes.js';
import { IntegrityError } from '../../src/common/errors.js';
import { aeadDecrypt, aeadEncrypt, createSkCipher } from '../../src/ike/crypto/sk.js';
import { Encr, Integ } from '../../src/ike/wire/constants.js';

const h = fromHex;
const GCM = Encr.AES_GCM_16;
const CHACHA = Encr.CHACHA20_POLY1305;

// McGrew & Viega, "The Galois/Counter Mode of Operation (GCM)" (rev. 2005), Appendix B. The
// 96-bit IV cafebabe facedbaddecaf888 splits into RFC 5282's 4-byte salt (last bytes of KEYMAT)
// and 8-byte explicit IV.
const mvPlain64 =
  'd9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525' +
  'b16aedf5aa0de657ba637b391aafd255';
const mvPlain60 = mvPlain64.slice(0, 120);
const mvAad = 'feedfacedeadbeeffeedfacedeadbeefabaddad2';
const mvKey128 = 'feffe9928665731c6d6a8f9467308308';
const mvKey192 = 'feffe9928665731c6d6a8f9467308308feffe9928665731c';
const mvKey256 = 'feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308';
const gcmCases: Array<{
  name: string;
  keyBits: number;
  key: string;
  aad: string;
  p: string;
  c: string;
  t: string;
}> = [
  {
    name: 'McGrew-Viega Test Case 3 (AES-128)',
    keyBits: 128,
    key: mvKey128,
    aad: '',
    p: mvPlain64,
    c:
      '42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa05' +
      '1ba30b396a0aac973d58e091473f5985',
    t: '4d5c2af327cd64a62cf35abd2ba6fab4',
  },
  {
    name: 'McGrew-Viega Test Case 4 (AES-128, AAD)',
    keyBits: 128,
    key: mvKey128,
    aad: mvAad,
    p: mvPlain60,
    c:
      '42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa05' +
      '1ba30b396a0aac973d58e091',
    t: '5bc94fbc3221a5db94fae95ae7121a47',
  },
  {
    name: 'McGrew-Viega Test Case 9 (AES-192)',
    keyBits: 192,
    key: mvKey192,
    aad: '',
    p: mvPlain64,
    c:
      '3980ca0b3c00e841eb06fac4872a2757859e1ceaa6efd984628593b40ca1e19c7d773d00c144c525ac619d18c84a3f47' +
      '18e2448b2fe324d9ccda2710acade256',
    t: '9924a7c8587336bfb118024db8674a14',
  },
  {
    name: 'McGrew-Viega Test Case 15 (AES-256)',
    keyBits: 256,
    key: mvKey256,
    aad: '',
    p: mvPlain64,
    c:
      '522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838' +
      'c5f61e6393ba7a0abcc9f662898015ad',
    t: 'b094dac5d93471bdec1a502270e3cc6c',
  },
  {
    name: 'McGrew-Viega Test Case 16 (AES-256, AAD)',
    keyBits: 256,
    key: mvKey256,
    aad: mvAad,
    p: mvPlain60,
    c:
      '522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838' +
      'c5f61e6393ba7a0abcc9f662',
    t: '76fc6ece0f4e1768cddf8853bb2d551b',
  },
];

describe('AES_GCM_16 (RFC 5282 nonce = salt | IV): McGrew-Viega GCM test cases', () => {
  for (const v of gcmCases) {
    it(v.name, () => {
      const keymat = h(`${v.key}cafebabe`);
      const iv = h('facedbaddecaf888');
      const alg = { id: GCM, keyBits: v.keyBits };
      const sealed = aeadEncrypt(alg, keymat, iv, h(v.aad), h(v.p));
      expect(hex(sealed)).toBe(v.c + v.t);
      expect(hex(aeadDecrypt(alg, keymat, iv, h(v.aad), sealed))).toBe(v.p);
      const bad = sealed.slice();
      bad[bad.length - 1]! ^= 1;
      expect(() => aeadDecrypt(alg, keymat, iv, h(v.aad), bad)).toThrow(IntegrityError);
    });
  }
});

describe('CHACHA20_POLY1305 (RFC 7634: nonce = salt | IV)', () => {
  const key = '808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f';

  it('RFC 8439 §2.8.2 AEAD_CHACHA20_POLY1305 test vector (salt 07000000, IV 4041424344454647)', () => {
    const plain = new TextEncoder().encode(
      "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
    );
    const sealed = aeadEncrypt(
      { id: CHACHA, keyBits: 256 },
      h(`${key}07000000`),
      h('4041424344454647'),
      h('50515253c0c1c2c3c4c5c6c7'),
      plain,
    );
    expect(hex(sealed)).toBe(
      'd31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b' +
        '1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc' +
        '3ff4def08e4b7a9de576d26586cec64b6116' +
        '1ae10b594f09e26a7e902ecbd0600691',
    );
  });

  it('RFC 7634 Appendix A (ESP example): SPI | seq as AAD', () => {
    const plain = h(
      '45000054a6f200004001e778c6336405c0000205' +
        '08005b7a3a080000553bec100007362708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f' +
        '202122232425262728292a2b2c2d2e2f303132333435363701020204',
    );
    const sealed = aeadEncrypt(
      { id: CHACHA, keyBits: 0 }, // no Key Length attribute on the wire (RFC 7634 §2)
      h(`${key}a0a1a2a3`),
      h('1011121314151617'),
      h('0102030400000005'),
      plain,
    );
    expect(hex(sealed)).toBe(
      '24039428b97f417e3c13753a4f05087b67c352e6a7fab1b982d466ef407ae5c614ee8099d52844eb61aa95dfab4c02f7' +
        '2aa71e7c4c4f64c9befe2facc638e8f3cbec163fac469b502773f6fb94e664da9165b82829f641e0' +
        '76aaa8266b7fb0f7b11b369907e1ad43',
    );
  });

  // RFC 7634 Appendix B: an INFORMATIONAL request with one SET_WINDOW_SIZE notify (12 bytes) and
  // no padding (Pad Length 0). The AAD is the IKE header and the SK payload header.
  const ikeHeader = 'c0c1c2c3c4c5c6c7d0d1d2d3d4d5d6d7' + '2e202500' + '00000009' + '00000045' + '29000029';
  const notify = '0000000c000040010000000a';
  const sealedB = '610394701f8d017f7c12924889' + '6b71bfe25236efd7cdc67066906315b2';

  it('RFC 7634 Appendix B (IKEv2 example) through SkCipher.seal/open', () => {
    const sk = createSkCipher(
      { id: CHACHA, keyBits: 256 },
      Integ.NONE,
      h(`${key}a0a1a2a3`),
      new Uint8Array(0),
    );
    expect([sk.ivLen, sk.icvLen, sk.blockLen]).toEqual([8, 16, 1]);
    // SK payload length 0x29 = 4 + body; IKE message length 0x45 = 28 + 0x29.
    expect(4 + sk.bodyLength(12)).toBe(0x29);
    const prefix = h(ikeHeader);
    const body = sk.seal(prefix, h(notify), h('1011121314151617'));
    expect(hex(body)).toBe(`1011121314151617${sealedB}`);
    expect(hex(sk.open(prefix, body))).toBe(notify);
    // The same through the raw AEAD: plaintext = notify | Pad Length (0).
    const raw = aeadEncrypt(
      { id: CHACHA, keyBits: 256 },
      h(`${key}a0a1a2a3`),
      h('1011121314151617'),
      prefix,
      h(`${notify}00`),
    );
    expect(hex(raw)).toBe(sealedB);
  });

  it('RFC 7634 Appendix B: any change to the AAD (IKE header) fails', () => {
    const sk = createSkCipher(
      { id: CHACHA, keyBits: 256 },
      Integ.NONE,
      h(`${key}a0a1a2a3`),
      new Uint8Array(0),
    );
    const prefix = h(ikeHeader);
    prefix[19]! ^= 0x01; // message ID
    expect(() => sk.open(prefix, concat(h('1011121314151617'), h(sealedB)))).toThrow(IntegrityError);
  });
});
