// Our EspAlgorithm -> the Linux crypto API names XFRM wants, with key and ICV/truncation lengths.
// The only place in ikegw that knows these names (STYLE.md §5; strongSwan keeps the same table in
// kernel_netlink_ipsec.c `encryption_algs[]` / `integrity_algs[]`).
//
//   IKEv2 transform (IANA)           kernel name                         key (bytes)     ICV / trunc
//   ENCR_AES_GCM_16 (20)             rfc4106(gcm(aes))     XFRMA_ALG_AEAD  16/24/32 + 4 salt  128 bits
//   ENCR_CHACHA20_POLY1305 (28)      rfc7539esp(chacha20,poly1305)  AEAD  32 + 4 salt        128 bits
//   ENCR_AES_CBC (12)                cbc(aes)              XFRMA_ALG_CRYPT 16/24/32
//   ENCR_NULL (11)                   ecb(cipher_null)      XFRMA_ALG_CRYPT 0
//   AUTH_HMAC_SHA1_96 (2)            hmac(sha1)            XFRMA_ALG_AUTH_TRUNC 20         96 bits
//   AUTH_HMAC_SHA2_256_128 (12)      hmac(sha256)          XFRMA_ALG_AUTH_TRUNC 32        128 bits
//   AUTH_HMAC_SHA2_384_192 (13)      hmac(sha384)          XFRMA_ALG_AUTH_TRUNC 48        192 bits
//   AUTH_HMAC_SHA2_512_256 (14)      hmac(sha512)          XFRMA_ALG_AUTH_TRUNC 64        256 bits
//
// AUTH_TRUNC is used for every integrity algorithm because the kernel's default truncation for
// hmac(sha256) is the pre-RFC-4868 96 bits (strongSwan's comment in add_sa says the same).
// RFC 4106 §8.1 / RFC 7634 §4: the AEAD KEYMAT is key || 4-byte salt and the kernel takes both as the
// "key" (alg_key_len counts the salt).
import type { EspAlgorithm } from '../../ike/ports.js';

export type XfrmAlgAttrs =
  | { kind: 'aead'; name: string; keyBytes: number; icvBits: number }
  | {
      kind: 'crypt+auth';
      crypt: { name: string; keyBytes: number };
      auth: { name: string; keyBytes: number; truncBits: number };
    };

const INTEG: Record<
  Extract<EspAlgorithm, { kind: 'cipher+integ' }>['integ'],
  { name: string; keyBytes: number; truncBits: number }
> = {
  'hmac-sha1-96': { name: 'hmac(sha1)', keyBytes: 20, truncBits: 96 },
  'hmac-sha2-256-128': { name: 'hmac(sha256)', keyBytes: 32, truncBits: 128 },
  'hmac-sha2-384-192': { name: 'hmac(sha384)', keyBytes: 48, truncBits: 192 },
  'hmac-sha2-512-256': { name: 'hmac(sha512)', keyBytes: 64, truncBits: 256 },
};

const AES_BITS = [128, 192, 256];

/** The kernel's view of an algorithm, or a reason why it cannot be expressed. */
export function xfrmAlgorithm(a: EspAlgorithm): XfrmAlgAttrs | string {
  if (a.kind === 'aead') {
    if (a.name === 'aes-gcm-16') {
      if (!AES_BITS.includes(a.keyBits)) return `AES-GCM key size ${a.keyBits}`;
      return { kind: 'aead', name: 'rfc4106(gcm(aes))', keyBytes: a.keyBits / 8 + 4, icvBits: 128 };
    }
    if (a.keyBits !== 256) return `ChaCha20-Poly1305 key size ${a.keyBits}`;
    return { kind: 'aead', name: 'rfc7539esp(chacha20,poly1305)', keyBytes: 36, icvBits: 128 };
  }
  const auth = INTEG[a.integ];
  if (a.cipher === 'null')
    return { kind: 'crypt+auth', crypt: { name: 'ecb(cipher_null)', keyBytes: 0 }, auth };
  if (!AES_BITS.includes(a.keyBits)) return `AES-CBC key size ${a.keyBits}`;
  return { kind: 'crypt+auth', crypt: { name: 'cbc(aes)', keyBytes: a.keyBits / 8 }, auth };
}

/** Why these keys do not fit the algorithm (EINVAL before the kernel sees them), or undefined. */
export function keyProblem(x: XfrmAlgAttrs, encKey: Uint8Array, integKey: Uint8Array): string | undefined {
  if (x.kind === 'aead') {
    if (encKey.length !== x.keyBytes)
      return `${x.name} needs a ${x.keyBytes}-byte key (with salt), got ${encKey.length}`;
    if (integKey.length !== 0) return 'an AEAD SA takes no integrity key';
    return undefined;
  }
  if (encKey.length !== x.crypt.keyBytes)
    return `${x.crypt.name} needs a ${x.crypt.keyBytes}-byte key, got ${encKey.length}`;
  if (integKey.length !== x.auth.keyBytes)
    return `${x.auth.name} needs a ${x.auth.keyBytes}-byte key, got ${integKey.length}`;
  return undefined;
}
