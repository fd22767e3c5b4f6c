import { describe, expect, it } from 'vitest';
import type { ProposalConfig } from '../../src/ike/config.js';
import {
  defaultProposals,
  describeProposal,
  formatProposal,
  isAead,
  ProposalSyntaxError,
  parseProposal,
  parseProposals,
} from '../../src/ike/sa/proposal-syntax.js';
import { DhGroup, Encr, Esn, Integ, Prf } from '../../src/ike/wire/constants.js';

const one = (s: string, proto: 'ike' | 'esp'): ProposalConfig => {
  const r = parseProposal(s, proto);
  expect(r).toHaveLength(1);
  return r[0]!;
};

function errorOf(s: string, proto: 'ike' | 'esp'): ProposalSyntaxError {
  try {
    parseProposal(s, proto);
  } catch (e) {
    expect(e).toBeInstanceOf(ProposalSyntaxError);
    return e as ProposalSyntaxError;
  }
  throw new Error(`"${s}" parsed but should not`);
}

describe('IKE proposals', () => {
  it('aes256gcm16-prfsha384-ecp384', () => {
    expect(one('aes256gcm16-prfsha384-ecp384', 'ike')).toEqual({
      encr: [{ id: Encr.AES_GCM_16, keyBits: 256 }],
      prf: [Prf.HMAC_SHA2_384],
      integ: [],
      dh: [DhGroup.ECP_384],
      esn: [],
    });
  });

  it('aes128-sha256-x25519 derives the PRF from the integrity algorithm', () => {
    expect(one('aes128-sha256-x25519', 'ike')).toEqual({
      encr: [{ id: Encr.AES_CBC, keyBits: 128 }],
      prf: [Prf.HMAC_SHA2_256],
      integ: [Integ.HMAC_SHA2_256_128],
      dh: [DhGroup.CURVE25519],
      esn: [],
    });
  });

  it.each([
    [
      'aes128-sha256-modp2048',
      Encr.AES_CBC,
      128,
      Integ.HMAC_SHA2_256_128,
      Prf.HMAC_SHA2_256,
      DhGroup.MODP_2048,
    ],
    ['aes256-sha512-ecp521', Encr.AES_CBC, 256, Integ.HMAC_SHA2_512_256, Prf.HMAC_SHA2_512, DhGroup.ECP_521],
    ['aes192-sha384-ecp384', Encr.AES_CBC, 192, Integ.HMAC_SHA2_384_192, Prf.HMAC_SHA2_384, DhGroup.ECP_384],
    ['aes128-sha1-modp3072', Encr.AES_CBC, 128, Integ.HMAC_SHA1_96, Prf.HMAC_SHA1, DhGroup.MODP_3072],
  ])('%s', (s, encr, bits, integ, prf, dh) => {
    expect(one(s, 'ike')).toEqual({
      encr: [{ id: encr, keyBits: bits }],
      prf: [prf],
      integ: [integ],
      dh: [dh],
      esn: [],
    });
  });

  it('chacha20poly1305-prfsha256-x25519 (fixed key size = keyBits 0)', () => {
    expect(one('chacha20poly1305-prfsha256-x25519', 'ike')).toEqual({
      encr: [{ id: Encr.CHACHA20_POLY1305, keyBits: 0 }],
      prf: [Prf.HMAC_SHA2_256],
      integ: [],
      dh: [DhGroup.CURVE25519],
      esn: [],
    });
  });

  it('aes256gcm16-prfsha256-curve448 and the aliases gcm128 / gcm / x448', () => {
    const a = one('aes256gcm16-prfsha256-curve448', 'ike');
    expect(a.dh).toEqual([DhGroup.CURVE448]);
    expect(one('aes256gcm128-prfsha256-x448', 'ike')).toEqual(a);
    expect(one('aes256gcm-prfsha256-x448', 'ike')).toEqual(a);
  });

  it('several algorithms of one kind keep their order', () => {
    expect(one('aes128-aes256-sha256-sha384-x25519-ecp256', 'ike')).toEqual({
      encr: [
        { id: Encr.AES_CBC, keyBits: 128 },
        { id: Encr.AES_CBC, keyBits: 256 },
      ],
      prf: [Prf.HMAC_SHA2_256, Prf.HMAC_SHA2_384],
      integ: [Integ.HMAC_SHA2_256_128, Integ.HMAC_SHA2_384_192],
      dh: [DhGroup.CURVE25519, DhGroup.ECP_256],
      esn: [],
    });
  });

  it('an explicit prf wins over the derived one; case and whitespace are ignored', () => {
    expect(one(' AES128-SHA256-prfsha512-X25519 ', 'ike').prf).toEqual([Prf.HMAC_SHA2_512]);
  });

  it('default = AEAD proposal first, then AES-CBC/HMAC; x25519 is the first KE group', () => {
    const d = parseProposal('default', 'ike');
    expect(d.map((p) => formatProposal(p))).toEqual([
      'aes256gcm16-aes128gcm16-prfsha256-prfsha384-x25519-ecp256-ecp384-modp3072',
      'aes256-aes128-sha256-sha384-x25519-ecp256-ecp384-modp3072',
    ]);
    expect(d[0]!.dh[0]).toBe(DhGroup.CURVE25519);
    expect(d[1]!.prf).toEqual([Prf.HMAC_SHA2_256, Prf.HMAC_SHA2_384]);
    expect(parseProposals([], 'ike')).toEqual(d);
    expect(defaultProposals('ike')).toEqual(d);
  });

  it.each([
    ['aes128-sha256', /key exchange method .* is required/],
    ['sha256-x25519', /encryption algorithm is required/],
    ['aes128gcm16-x25519', /need an explicit PRF/],
    ['aes128-x25519', /needs an integrity algorithm/],
    ['aes128gcm16-sha256-prfsha256-x25519', /AEAD .* takes no integrity algorithm/],
    ['aes128gcm16-aes128-sha256-x25519', /cannot be mixed/],
    ['aes128-sha256-x25519-esn', /only apply to ESP/],
    ['aes128--sha256-x25519', /empty keyword/],
    ['aes128-sha256-x25519-default', /must stand alone/],
    ['', /empty IKE proposal/],
  ])('rejects %j', (s, re) => {
    expect(errorOf(s, 'ike').message).toMatch(re);
  });

  it.each([
    ['3des-sha256-modp2048', '3des', /SHOULD NOT/],
    ['des-sha256-modp2048', 'des', /MUST NOT/],
    ['aes128-md5-modp2048', 'md5', /MUST NOT/],
    ['aes128-sha256-prfmd5-modp2048', 'prfmd5', /MUST NOT/],
    ['aes128-sha256-modp1024', 'modp1024', /RFC 8247 §2.4: SHOULD NOT/],
    ['aes128-sha256-modp768', 'modp768', /MUST NOT/],
    ['camellia128-sha256-modp2048', 'camellia128', /not implemented/],
    ['aes128ccm16-prfsha256-ecp256', 'aes128ccm16', /not implemented/],
    ['aes128gcm8-prfsha256-ecp256', 'aes128gcm8', /not implemented; use aesNNNgcm16/],
    ['aes128-aesxcbc-ecp256', 'aesxcbc', /not implemented/],
    ['aes128-sha256-ecp256bp', 'ecp256bp', /Brainpool/],
    ['aes128-sha256-frobnicate', 'frobnicate', /not a known IKE algorithm keyword/],
  ])('%s names the keyword %s and why', (s, word, re) => {
    const e = errorOf(s, 'ike');
    expect(e.keyword).toBe(word);
    expect(e.message).toContain(`"${word}"`);
    expect(e.message).toMatch(re);
    expect(e.code).toBe('ERR_PROPOSAL_SYNTAX');
  });
});

describe('ESP proposals', () => {
  it('aes128gcm16 (no PFS, noesn by default)', () => {
    expect(one('aes128gcm16', 'esp')).toEqual({
      encr: [{ id: Encr.AES_GCM_16, keyBits: 128 }],
      prf: [],
      integ: [],
      dh: [],
      esn: [Esn.NO],
    });
  });
  it('aes256gcm16-modp2048 requests PFS', () => {
    expect(one('aes256gcm16-modp2048', 'esp').dh).toEqual([DhGroup.MODP_2048]);
  });
  it('aes128-sha256', () => {
    expect(one('aes128-sha256', 'esp')).toEqual({
      encr: [{ id: Encr.AES_CBC, keyBits: 128 }],
      prf: [],
      integ: [Integ.HMAC_SHA2_256_128],
      dh: [],
      esn: [Esn.NO],
    });
  });
  it('chacha20poly1305', () => {
    expect(one('chacha20poly1305', 'esp').encr).toEqual([{ id: Encr.CHACHA20_POLY1305, keyBits: 0 }]);
  });
  it('aes256-sha256-ecp384-esn; esn-noesn offers both', () => {
    const p = one('aes256-sha256-ecp384-esn', 'esp');
    expect(p.esn).toEqual([Esn.YES]);
    expect(p.dh).toEqual([DhGroup.ECP_384]);
    expect(one('aes128gcm16-esn-noesn', 'esp').esn).toEqual([Esn.YES, Esn.NO]);
    expect(one('aes128gcm16-noesn', 'esp').esn).toEqual([Esn.NO]);
  });
  it('default = aes256gcm16-aes128gcm16 and aes256-aes128-sha256-sha384, PFS optional', () => {
    const d = parseProposal('default', 'esp');
    const pfs = 'modpnone-x25519-ecp256-ecp384-modp2048-modp3072-modp4096';
    expect(d.map((p) => formatProposal(p, 'esp'))).toEqual([
      `aes256gcm16-aes128gcm16-${pfs}`,
      `aes256-aes128-sha256-sha384-${pfs}`,
    ]);
    expect(d.every((p) => p.dh[0] === DhGroup.NONE && p.prf.length === 0 && p.esn[0] === Esn.NO)).toBe(true);
  });
  it('modpnone: beside groups PFS is optional, alone it is no PFS, in IKE it is refused', () => {
    expect(parseProposal('aes256gcm16-modp3072-modpnone', 'esp')[0]!.dh).toEqual([
      DhGroup.MODP_3072,
      DhGroup.NONE,
    ]);
    expect(parseProposal('aes256gcm16-modpnone', 'esp')[0]!.dh).toEqual([]);
    expect(formatProposal(parseProposal('aes256gcm16-modp3072-modpnone', 'esp')[0]!, 'esp')).toBe(
      'aes256gcm16-modp3072-modpnone',
    );
    expect(() => parseProposal('aes256gcm16-prfsha256-modpnone', 'ike')).toThrow(
      /always does a key exchange/,
    );
  });
  it.each([
    ['aes128-sha256-prfsha256', /only negotiated for IKE/],
    ['aes128', /needs an integrity algorithm/],
    ['aes128gcm16-sha256', /takes no integrity algorithm/],
    ['3des-sha1', /SHOULD NOT/],
  ])('rejects %s', (s, re) => {
    expect(errorOf(s, 'esp').message).toMatch(re);
  });
});

describe('formatting', () => {
  it.each([
    ['aes256gcm16-prfsha384-ecp384', 'ike'],
    ['aes128-sha256-x25519', 'ike'],
    ['aes128-sha256-modp2048', 'ike'],
    ['chacha20poly1305-prfsha256-x25519', 'ike'],
    ['aes256-sha512-ecp521', 'ike'],
    ['aes192-sha384-ecp384', 'ike'],
    ['aes128-aes256-sha256-sha384-x25519-ecp256', 'ike'],
    ['aes128-sha256-prfsha512-x25519', 'ike'],
    ['aes128gcm16', 'esp'],
    ['aes256gcm16-modp2048', 'esp'],
    ['aes256-sha256-ecp384-esn', 'esp'],
    ['chacha20poly1305', 'esp'],
  ] as const)('%s round-trips', (s, proto) => {
    const p = one(s, proto);
    expect(formatProposal(p, proto)).toBe(s);
    expect(formatProposal(p)).toBe(s);
    expect(one(formatProposal(p), proto)).toEqual(p);
  });

  it('prints algorithms without a keyword (from a peer) by number', () => {
    const peer: ProposalConfig = {
      encr: [
        { id: Encr['3DES'], keyBits: 0 },
        { id: 1024, keyBits: 0 },
      ],
      prf: [Prf.HMAC_MD5],
      integ: [Integ.HMAC_MD5_96],
      dh: [DhGroup.MODP_1024, 99],
      esn: [],
    };
    expect(formatProposal(peer, 'ike')).toBe('3des-encr1024-md5-prfmd5-modp1024-ke99');
  });

  it('describeProposal prints strongSwan log names', () => {
    expect(describeProposal(one('aes256gcm16-prfsha384-ecp384', 'ike'), 'ike')).toBe(
      'IKE:AES_GCM_16_256/PRF_HMAC_SHA2_384/ECP_384',
    );
    expect(describeProposal(one('aes128-sha256-x25519', 'ike'), 'ike')).toBe(
      'IKE:AES_CBC_128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/CURVE_25519',
    );
    expect(describeProposal(one('aes128gcm16', 'esp'), 'esp')).toBe('ESP:AES_GCM_16_128/NO_EXT_SEQ');
    expect(describeProposal(one('chacha20poly1305-esn', 'esp'), 'esp')).toBe('ESP:CHACHA20_POLY1305/EXT_SEQ');
  });

  it('isAead', () => {
    expect(isAead(Encr.AES_GCM_16)).toBe(true);
    expect(isAead(Encr.CHACHA20_POLY1305)).toBe(true);
    expect(isAead(Encr.AES_CBC)).toBe(false);
  });
});
