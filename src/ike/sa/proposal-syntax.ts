// strongSwan proposal syntax ("aes256gcm16-prfsha384-ecp384") <-> ProposalConfig.
//
// Keywords follow strongSwan's proposal_keywords_static.txt for the algorithms ikegw implements;
// keywords strongSwan knows but ikegw does not implement are rejected with the reason (an RFC 8247 /
// RFC 8221 "MUST NOT"/"SHOULD NOT", or "not implemented"), so a migrated swanctl.conf fails loudly
// instead of silently negotiating something else.
//
// Rules (strongSwan proposal.c check_proposal, made stricter where strongSwan silently fixes up):
//  - IKE: at least one encryption algorithm and one key exchange method. A PRF is required; when no
//    prfXXX keyword is given it is derived from the integrity algorithms (sha256 -> prfsha256), as
//    strongSwan does. AEAD algorithms need an explicit prfXXX.
//  - AEAD (aesNNNgcm16, chacha20poly1305) and an integrity algorithm in one proposal is invalid
//    (RFC 7296 §3.3: combined-mode ciphers carry no separate integrity transform), and AEAD and
//    non-AEAD encryption cannot be mixed in one proposal (write two proposals).
//  - Non-AEAD encryption needs an integrity algorithm (IKE and ESP; RFC 8221 §4: encryption without
//    authentication MUST NOT be used).
//  - ESP: no PRF; key exchange methods mean PFS, and "modpnone" beside them makes PFS optional
//    (RFC 7296 §3.3.2: NONE listed with real groups); esn/noesn select extended sequence numbers
//    (default: noesn, as strongSwan).
//
// `default` expands to two proposals (AEAD first, then AES-CBC/HMAC), each within the RFC 8247
// (IKE) / RFC 8221 (ESP) MUST/SHOULD set, and each contained in strongSwan 5.9.8's own default
// proposals so that a peer without a `proposals` setting accepts them:
//   IKE: aes256gcm16-aes128gcm16-prfsha256-prfsha384-x25519-ecp256-ecp384-modp3072
//        aes256-aes128-sha256-sha384-x25519-ecp256-ecp384-modp3072
//   ESP: aes256gcm16-aes128gcm16-modpnone-x25519-ecp256-ecp384-modp2048-modp3072-modp4096
//        aes256-aes128-sha256-sha384-modpnone-x25519-ecp256-ecp384-modp2048-modp3072-modp4096
//        (PFS optional: accepted when the peer's rekey has a KE, used when the peer requires it)
// AEAD comes first because it is one primitive (faster, fewer keys) and RFC 8247 §2.1 / RFC 8221
// recommend AES-GCM. The first key exchange method of the first proposal (x25519) is the group the
// initiator's KE payload uses; a responder wanting another group answers INVALID_KE_PAYLOAD and the
// initiator retries with it (RFC 7296 §1.2), so the order costs at most one round trip.

import { IkegwError } from '../../common/errors.js';
import type { ProposalConfig } from '../config.js';
import { DhGroup, Encr, Esn, Integ, Prf } from '../wire/constants.js';
import { AEAD_ENCR } from './proposal.js';

export type ProposalProtocol = 'ike' | 'esp';

/** A proposal string could not be parsed; `keyword` is the offending word, if any. */
export class ProposalSyntaxError extends IkegwError {
  constructor(
    message: string,
    readonly keyword?: string,
  ) {
    super('ERR_PROPOSAL_SYNTAX', message);
  }
}

type Kw =
  | { t: 'encr'; id: number; keyBits: number }
  | { t: 'prf'; id: number }
  | { t: 'integ'; id: number }
  | { t: 'dh'; id: number }
  | { t: 'esn'; id: number };

const KEYWORDS = new Map<string, Kw>();
function kw(names: string[], v: Kw): void {
  for (const n of names) KEYWORDS.set(n, v);
}

for (const bits of [128, 192, 256]) {
  kw([`aes${bits}`], { t: 'encr', id: Encr.AES_CBC, keyBits: bits });
  kw([`aes${bits}gcm16`, `aes${bits}gcm128`, `aes${bits}gcm`], {
    t: 'encr',
    id: Encr.AES_GCM_16,
    keyBits: bits,
  });
}
kw(['aes'], { t: 'encr', id: Encr.AES_CBC, keyBits: 128 });
kw(['chacha20poly1305'], { t: 'encr', id: Encr.CHACHA20_POLY1305, keyBits: 0 });

kw(['prfsha1'], { t: 'prf', id: Prf.HMAC_SHA1 });
kw(['prfsha256'], { t: 'prf', id: Prf.HMAC_SHA2_256 });
kw(['prfsha384'], { t: 'prf', id: Prf.HMAC_SHA2_384 });
kw(['prfsha512'], { t: 'prf', id: Prf.HMAC_SHA2_512 });

kw(['sha1', 'sha'], { t: 'integ', id: Integ.HMAC_SHA1_96 });
kw(['sha256', 'sha2_256'], { t: 'integ', id: Integ.HMAC_SHA2_256_128 });
kw(['sha384', 'sha2_384'], { t: 'integ', id: Integ.HMAC_SHA2_384_192 });
kw(['sha512', 'sha2_512'], { t: 'integ', id: Integ.HMAC_SHA2_512_256 });

kw(['modp2048'], { t: 'dh', id: DhGroup.MODP_2048 });
kw(['modp3072'], { t: 'dh', id: DhGroup.MODP_3072 });
kw(['modp4096'], { t: 'dh', id: DhGroup.MODP_4096 });
kw(['ecp256'], { t: 'dh', id: DhGroup.ECP_256 });
kw(['ecp384'], { t: 'dh', id: DhGroup.ECP_384 });
kw(['ecp521'], { t: 'dh', id: DhGroup.ECP_521 });
kw(['x25519', 'curve25519'], { t: 'dh', id: DhGroup.CURVE25519 });
kw(['x448', 'curve448'], { t: 'dh', id: DhGroup.CURVE448 });
// "no key exchange" (strongSwan's keyword): in an ESP proposal beside groups it makes PFS optional.
kw(['modpnone'], { t: 'dh', id: DhGroup.NONE });

kw(['esn'], { t: 'esn', id: Esn.YES });
kw(['noesn'], { t: 'esn', id: Esn.NO });

/** strongSwan keywords ikegw rejects, with the reason shown to the user. */
const REJECTED: Array<[RegExp, string]> = [
  [/^(des|desiv64|desiv32)$/, 'DES is forbidden (RFC 8247 §2.1 and RFC 8221 §5: MUST NOT)'],
  [
    /^3des$/,
    '3DES is a 64-bit block cipher (Sweet32) and deprecated (RFC 8221 §5: SHOULD NOT); not supported',
  ],
  [/^(md5|md5_128)$/, 'HMAC-MD5 integrity is forbidden (RFC 8247 §2.3 and RFC 8221 §6: MUST NOT)'],
  [/^prfmd5$/, 'PRF_HMAC_MD5 is forbidden (RFC 8247 §2.2: MUST NOT)'],
  [/^modp768$/, 'MODP group 1 (768 bit) is forbidden (RFC 8247 §2.4: MUST NOT)'],
  [/^modp1024$/, 'MODP group 2 (1024 bit) is too weak (RFC 8247 §2.4: SHOULD NOT; Logjam); not supported'],
  [/^modp1536$/, 'MODP group 5 (1536 bit) is too weak (RFC 8247 §2.4: SHOULD NOT); not supported'],
  [
    /^modp(1024s160|2048s224|2048s256)$/,
    'RFC 5114 MODP groups 22-24 are not recommended (RFC 8247 §2.4: SHOULD NOT); not supported',
  ],
  [/^(null|aes\d*null|null_aes_gmac)$/, 'ESP/IKE without encryption is not supported'],
  [
    /^aes(128|192|256)?gcm(8|64|12|96)$/,
    'AES-GCM with an 8- or 12-byte ICV is not implemented; use aesNNNgcm16',
  ],
  [/^aes(128|192|256)?ccm\d*$/, 'AES-CCM is not implemented; use aesNNNgcm16'],
  [/^aes(128|192|256)?ctr$/, 'AES-CTR is not implemented; use aesNNN (CBC) or aesNNNgcm16'],
  [/^aes(128|192|256)?gmac$/, 'AES-GMAC (integrity only) is not implemented'],
  [/^camellia\w*$/, 'Camellia is not implemented'],
  [/^(blowfish|cast128|serpent|twofish|idea|rc5|3idea)\w*$/, 'this cipher is not implemented'],
  [
    /^(aesxcbc|aescmac|camelxcbc|prfaesxcbc|prfaescmac|prfcamelxcbc)$/,
    'XCBC/CMAC MACs and PRFs are not implemented',
  ],
  [
    /^(sha256_96|sha2_256_96)$/,
    'truncated 96-bit HMAC-SHA-256 is a non-standard Linux variant; not supported',
  ],
  [/^(modp6144|modp8192)$/, 'this MODP group is not implemented (use modp3072/modp4096 or an ECP group)'],
  [/^(ecp192|ecp224)$/, 'this ECP group is not implemented (use ecp256/ecp384/ecp521)'],
  [/^ecp\d+bp$/, 'Brainpool curves are not implemented (use ecp256/ecp384/ecp521)'],
  [
    /^(ntru|newhope|mlkem|ke\d)\w*$/,
    'post-quantum / additional key exchanges (RFC 9370) are not implemented',
  ],
];

// The PRF strongSwan derives from an integrity algorithm when no prfXXX is given.
const PRF_FOR_INTEG = new Map<number, number>([
  [Integ.HMAC_SHA1_96, Prf.HMAC_SHA1],
  [Integ.HMAC_SHA2_256_128, Prf.HMAC_SHA2_256],
  [Integ.HMAC_SHA2_384_192, Prf.HMAC_SHA2_384],
  [Integ.HMAC_SHA2_512_256, Prf.HMAC_SHA2_512],
]);

/** True for combined-mode (AEAD) encryption algorithms. */
export function isAead(encrId: number): boolean {
  return AEAD_ENCR.has(encrId);
}

/**
 * PFS in the default ESP proposals: optional. Without PFS first, so a rekey we start carries no KE
 * unless the CHILD_SA being rekeyed has PFS (strongSwan's default); any of these groups is
 * accepted when the peer's rekey carries a KE (Libreswan's default, pfs=yes), and a rekey the peer
 * refuses without PFS is retried with it (src/ike/task/create-child.ts).
 */
const OPTIONAL_PFS = 'modpnone-x25519-ecp256-ecp384-modp2048-modp3072-modp4096';

const DEFAULTS: Record<ProposalProtocol, string[]> = {
  ike: [
    'aes256gcm16-aes128gcm16-prfsha256-prfsha384-x25519-ecp256-ecp384-modp3072',
    'aes256-aes128-sha256-sha384-x25519-ecp256-ecp384-modp3072',
  ],
  esp: [`aes256gcm16-aes128gcm16-${OPTIONAL_PFS}`, `aes256-aes128-sha256-sha384-${OPTIONAL_PFS}`],
};

/** The proposals `default` stands for. */
export function defaultProposals(proto: ProposalProtocol): ProposalConfig[] {
  return DEFAULTS[proto].map((s) => parseOne(s, proto));
}

/**
 * Parses one entry of a `proposals` / `esp_proposals` list. Returns an array because `default`
 * expands to more than one proposal. Throws ProposalSyntaxError.
 */
export function parseProposal(text: string, proto: ProposalProtocol): ProposalConfig[] {
  const s = text.trim().toLowerCase();
  if (s === 'default') return defaultProposals(proto);
  return [parseOne(s, proto)];
}

/** Parses a whole list; an empty list means `default`. */
export function parseProposals(list: readonly string[], proto: ProposalProtocol): ProposalConfig[] {
  if (list.length === 0) return defaultProposals(proto);
  return list.flatMap((t) => parseProposal(t, proto));
}

function pushUnique<T>(arr: T[], v: T, same: (a: T, b: T) => boolean): void {
  if (!arr.some((x) => same(x, v))) arr.push(v);
}

function parseOne(s: string, proto: ProposalProtocol): ProposalConfig {
  const P = proto.toUpperCase();
  if (s === '') throw new ProposalSyntaxError(`empty ${P} proposal`);
  const p: ProposalConfig = { encr: [], prf: [], integ: [], dh: [], esn: [] };
  for (const word of s.split('-')) {
    if (word === '') throw new ProposalSyntaxError(`"${s}": empty keyword (doubled or trailing "-")`);
    const k = KEYWORDS.get(word);
    if (!k) {
      const rej = REJECTED.find(([re]) => re.test(word));
      if (rej) throw new ProposalSyntaxError(`"${word}": ${rej[1]}`, word);
      if (word === 'default') {
        throw new ProposalSyntaxError('"default" must stand alone, not inside a proposal', word);
      }
      throw new ProposalSyntaxError(`"${word}" is not a known ${P} algorithm keyword`, word);
    }
    switch (k.t) {
      case 'encr':
        pushUnique(
          p.encr,
          { id: k.id, keyBits: k.keyBits },
          (a, b) => a.id === b.id && a.keyBits === b.keyBits,
        );
        break;
      case 'prf':
        if (proto === 'esp') {
          throw new ProposalSyntaxError(
            `"${word}": a PRF is only negotiated for IKE, not in ESP proposals`,
            word,
          );
        }
        pushUnique(p.prf, k.id, (a, b) => a === b);
        break;
      case 'integ':
        pushUnique(p.integ, k.id, (a, b) => a === b);
        break;
      case 'dh':
        if (proto === 'ike' && k.id === DhGroup.NONE) {
          throw new ProposalSyntaxError(
            `"${word}": IKE_SA_INIT always does a key exchange; "modpnone" only makes PFS optional in ESP proposals`,
            word,
          );
        }
        pushUnique(p.dh, k.id, (a, b) => a === b);
        break;
      case 'esn':
        if (proto === 'ike') {
          throw new ProposalSyntaxError(
            `"${word}": extended sequence numbers only apply to ESP proposals`,
            word,
          );
        }
        pushUnique(p.esn, k.id, (a, b) => a === b);
        break;
    }
  }

  if (p.encr.length === 0)
    throw new ProposalSyntaxError(`"${s}": an encryption algorithm is required in ${P} proposals`);
  const aead = p.encr.filter((e) => isAead(e.id));
  if (aead.length > 0 && aead.length < p.encr.length) {
    throw new ProposalSyntaxError(
      `"${s}": AEAD and non-AEAD encryption algorithms cannot be mixed in one proposal; write two proposals`,
    );
  }
  const isAeadProposal = aead.length > 0;
  if (isAeadProposal && p.integ.length > 0) {
    throw new ProposalSyntaxError(
      `"${s}": an AEAD algorithm (${p.encr.map(encrKeyword).join(', ')}) takes no integrity algorithm ` +
        `(${p.integ.map(integKeyword).join(', ')}); RFC 7296 §3.3 — use prfXXX for the IKE PRF instead`,
    );
  }
  if (!isAeadProposal && p.integ.length === 0) {
    throw new ProposalSyntaxError(
      `"${s}": ${p.encr.map(encrKeyword).join(', ')} needs an integrity algorithm (e.g. sha256); ` +
        'encryption without authentication MUST NOT be used (RFC 8221 §4)',
    );
  }
  if (proto === 'ike') {
    if (p.dh.length === 0) {
      throw new ProposalSyntaxError(
        `"${s}": a key exchange method (e.g. x25519, ecp256, modp3072) is required in IKE proposals`,
      );
    }
    if (p.prf.length === 0) {
      if (isAeadProposal) {
        throw new ProposalSyntaxError(`"${s}": AEAD IKE proposals need an explicit PRF (e.g. prfsha256)`);
      }
      p.prf = derivedPrfs(p.integ);
    }
  } else {
    if (p.esn.length === 0) p.esn = [Esn.NO];
    // "modpnone" alone is the same as no group: no PFS
    if (p.dh.length === 1 && p.dh[0] === DhGroup.NONE) p.dh = [];
  }
  return p;
}

function derivedPrfs(integ: number[]): number[] {
  const out: number[] = [];
  for (const i of integ) {
    const prf = PRF_FOR_INTEG.get(i);
    if (prf !== undefined && !out.includes(prf)) out.push(prf);
  }
  return out;
}

// ---- formatting -------------------------------------------------------------------------------

const ENCR_KW = new Map<number, string>([
  [Encr.AES_CBC, 'aes'],
  [Encr.AES_GCM_16, 'gcm16'],
  [Encr.AES_GCM_12, 'gcm12'],
  [Encr.AES_GCM_8, 'gcm8'],
  [Encr.AES_CCM_16, 'ccm16'],
  [Encr.AES_CCM_12, 'ccm12'],
  [Encr.AES_CCM_8, 'ccm8'],
  [Encr.AES_CTR, 'ctr'],
  [Encr.CHACHA20_POLY1305, 'chacha20poly1305'],
  [Encr['3DES'], '3des'],
  [Encr.DES, 'des'],
  [Encr.NULL, 'null'],
  [Encr.CAMELLIA_CBC, 'camellia'],
]);

function encrKeyword(e: { id: number; keyBits: number }): string {
  const base = ENCR_KW.get(e.id);
  if (base === undefined) return `encr${e.id}${e.keyBits ? `_${e.keyBits}` : ''}`;
  if (e.id === Encr.AES_CBC || e.id === Encr.CAMELLIA_CBC) return `${base}${e.keyBits || ''}`;
  if (base.startsWith('gcm') || base.startsWith('ccm') || base === 'ctr')
    return `aes${e.keyBits || ''}${base}`;
  return base;
}

const PRF_KW = new Map<number, string>([
  [Prf.HMAC_SHA1, 'prfsha1'],
  [Prf.HMAC_SHA2_256, 'prfsha256'],
  [Prf.HMAC_SHA2_384, 'prfsha384'],
  [Prf.HMAC_SHA2_512, 'prfsha512'],
  [Prf.HMAC_MD5, 'prfmd5'],
  [Prf.AES128_XCBC, 'prfaesxcbc'],
  [Prf.AES128_CMAC, 'prfaescmac'],
]);
const INTEG_KW = new Map<number, string>([
  [Integ.HMAC_SHA1_96, 'sha1'],
  [Integ.HMAC_SHA2_256_128, 'sha256'],
  [Integ.HMAC_SHA2_384_192, 'sha384'],
  [Integ.HMAC_SHA2_512_256, 'sha512'],
  [Integ.HMAC_MD5_96, 'md5'],
  [Integ.AES_XCBC_96, 'aesxcbc'],
  [Integ.AES_CMAC_96, 'aescmac'],
]);
const DH_KW = new Map<number, string>([
  [DhGroup.NONE, 'modpnone'],
  [DhGroup.MODP_768, 'modp768'],
  [DhGroup.MODP_1024, 'modp1024'],
  [DhGroup.MODP_1536, 'modp1536'],
  [DhGroup.MODP_2048, 'modp2048'],
  [DhGroup.MODP_3072, 'modp3072'],
  [DhGroup.MODP_4096, 'modp4096'],
  [DhGroup.MODP_6144, 'modp6144'],
  [DhGroup.MODP_8192, 'modp8192'],
  [DhGroup.ECP_256, 'ecp256'],
  [DhGroup.ECP_384, 'ecp384'],
  [DhGroup.ECP_521, 'ecp521'],
  [DhGroup.ECP_224, 'ecp224'],
  [DhGroup.BRAINPOOL_224, 'ecp224bp'],
  [DhGroup.BRAINPOOL_256, 'ecp256bp'],
  [DhGroup.BRAINPOOL_384, 'ecp384bp'],
  [DhGroup.BRAINPOOL_512, 'ecp512bp'],
  [DhGroup.CURVE25519, 'x25519'],
  [DhGroup.CURVE448, 'x448'],
]);

function integKeyword(id: number): string {
  return INTEG_KW.get(id) ?? `integ${id}`;
}

/**
 * The proposal in strongSwan's keyword syntax, e.g. "aes128-sha256-x25519" (parseable again by
 * parseProposal). For IKE, PRFs that strongSwan would derive from the integrity algorithms are
 * left out, as a user would write them. Algorithms without a keyword (e.g. from a peer's proposal)
 * print as encr<id>, integ<id>, prf<id>, ke<id>. `proto` is inferred when omitted (a PRF means IKE).
 */
export function formatProposal(p: ProposalConfig, proto?: ProposalProtocol): string {
  const isIke = proto ? proto === 'ike' : p.prf.length > 0 || p.esn.length === 0;
  const parts: string[] = p.encr.map(encrKeyword);
  parts.push(...p.integ.map(integKeyword));
  if (isIke) {
    const derived = derivedPrfs(p.integ);
    const implicit = derived.length === p.prf.length && derived.every((v, i) => v === p.prf[i]);
    if (!implicit) parts.push(...p.prf.map((id) => PRF_KW.get(id) ?? `prf${id}`));
  }
  parts.push(...p.dh.map((id) => DH_KW.get(id) ?? `ke${id}`));
  if (!isIke && !(p.esn.length === 1 && p.esn[0] === Esn.NO)) {
    parts.push(...p.esn.map((id) => (id === Esn.YES ? 'esn' : id === Esn.NO ? 'noesn' : `esn${id}`)));
  }
  return parts.join('-');
}

const ENCR_NAME = new Map<number, string>(Object.entries(Encr).map(([k, v]) => [v, k]));
const PRF_NAME = new Map<number, string>(Object.entries(Prf).map(([k, v]) => [v, `PRF_${k}`]));
const INTEG_NAME = new Map<number, string>(Object.entries(Integ).map(([k, v]) => [v, k]));
const DH_NAME = new Map<number, string>([
  ...Object.entries(DhGroup).map(([k, v]): [number, string] => [v, k]),
  [DhGroup.CURVE25519, 'CURVE_25519'],
  [DhGroup.CURVE448, 'CURVE_448'],
]);

/**
 * The proposal as strongSwan prints it in its logs ("IKE:AES_GCM_16_256/PRF_HMAC_SHA2_384/ECP_384",
 * "ESP:AES_CBC_128/HMAC_SHA2_256_128/NO_EXT_SEQ"), for NO_PROPOSAL_CHOSEN messages that a strongSwan
 * user compares against the peer's log.
 */
export function describeProposal(p: ProposalConfig, proto: ProposalProtocol): string {
  const parts: string[] = [];
  for (const e of p.encr) {
    const n = ENCR_NAME.get(e.id) ?? `ENCR_${e.id}`;
    parts.push(e.keyBits ? `${n}_${e.keyBits}` : n);
  }
  for (const i of p.integ) parts.push(INTEG_NAME.get(i) ?? `INTEG_${i}`);
  if (proto === 'ike') for (const f of p.prf) parts.push(PRF_NAME.get(f) ?? `PRF_${f}`);
  for (const d of p.dh) parts.push(DH_NAME.get(d) ?? `KE_${d}`);
  if (proto === 'esp') {
    for (const e of p.esn) parts.push(e === Esn.YES ? 'EXT_SEQ' : e === Esn.NO ? 'NO_EXT_SEQ' : `ESN_${e}`);
  }
  return `${proto.toUpperCase()}:${parts.join('/')}`;
}
