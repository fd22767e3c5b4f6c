// Proposal selection against transform types ikegw does not implement (RFC 7296 §3.3.6) and the
// optional additional key exchanges of RFC 9370 (strongSwan 6's keN_ / keN_none).
import { describe, expect, it } from 'vitest';
import { selectEsp, selectIke } from '../../src/ike/sa/proposal.js';
import { parseProposals } from '../../src/ike/sa/proposal-syntax.js';
import {
  DhGroup,
  Encr,
  Esn,
  Integ,
  Prf,
  ProtocolId,
  TransformAttr,
  TransformType,
} from '../../src/ike/wire/constants.js';
import type { Proposal, Transform } from '../../src/ike/wire/types.js';

const t = (type: number, id: number, keyBits?: number): Transform => ({
  type,
  id,
  attributes: keyBits ? [{ type: TransformAttr.KEY_LENGTH, value: keyBits }] : [],
});
const ADDKE1 = 6;

function ike(extra: Transform[]): Proposal[] {
  return [
    {
      num: 1,
      protocolId: ProtocolId.IKE,
      spi: new Uint8Array(0),
      transforms: [
        t(TransformType.ENCR, Encr.AES_CBC, 256),
        t(TransformType.PRF, Prf.HMAC_SHA2_256),
        t(TransformType.INTEG, Integ.HMAC_SHA2_256_128),
        t(TransformType.DH, DhGroup.ECP_256),
        ...extra,
      ],
    },
  ];
}

describe('transform types ikegw does not implement', () => {
  const ours = parseProposals(['aes256-sha256-ecp256'], 'ike');

  it('a proposal requiring an additional key exchange (ke1_ecp384) is rejected, not accepted without it', () => {
    expect(selectIke(ike([t(ADDKE1, DhGroup.ECP_384)]), ours)).toBeUndefined();
  });

  it('an optional additional key exchange (ke1_ecp384-ke1_none) is accepted, with none chosen', () => {
    const sel = selectIke(ike([t(ADDKE1, DhGroup.ECP_384), t(ADDKE1, 0)]), ours);
    expect(sel?.suite).toMatchObject({ dh: DhGroup.ECP_256, prf: Prf.HMAC_SHA2_256 });
  });

  it('an unknown transform type is rejected even with id 0', () => {
    expect(selectIke(ike([t(13, 0)]), ours)).toBeUndefined();
    expect(selectIke(ike([]), ours)).toBeDefined();
  });

  it('the same for ESP proposals', () => {
    const esp: Proposal[] = [
      {
        num: 1,
        protocolId: ProtocolId.ESP,
        spi: new Uint8Array([1, 2, 3, 4]),
        transforms: [
          t(TransformType.ENCR, Encr.AES_GCM_16, 128),
          t(TransformType.ESN, Esn.NO),
          t(ADDKE1, DhGroup.ECP_384),
        ],
      },
    ];
    const cfg = parseProposals(['aes128gcm16'], 'esp');
    expect(selectEsp(esp, cfg)).toBeUndefined();
    esp[0]!.transforms.push(t(ADDKE1, 0));
    expect(selectEsp(esp, cfg)).toBeDefined();
  });
});
