// Security Association payload (RFC 7296 §3.3) with its Proposal (§3.3.1), Transform (§3.3.2)
// and Transform Attribute (§3.3.5) substructures.
//
// SA payload body (after the generic header): one or more proposals.
//
//  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Next Payload  |C|  RESERVED   |         Payload Length        |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// ~                          <Proposals>                          ~
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Proposal substructure (Last Substruc: 0 = last, 2 = more follow):
//
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Last Substruc |   RESERVED    |         Proposal Length       |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Proposal Num  |  Protocol ID  |    SPI Size   |Num  Transforms|
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// ~                        SPI (variable)                         ~
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// ~                        <Transforms>                           ~
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Transform substructure (Last Substruc: 0 = last, 3 = more follow):
//
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Last Substruc |   RESERVED    |        Transform Length       |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |Transform Type |   RESERVED    |          Transform ID         |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// ~                      Transform Attributes                     ~
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Transform attribute (AF = 1: TV, 16-bit value inline; AF = 0: TLV):
//
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |A|       Attribute Type        |    AF=0  Attribute Length     |
// |F|                             |    AF=1  Attribute Value      |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |                   AF=0  Attribute Value                       |
// |                   AF=1  Not Transmitted                       |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
import type { Reader, Writer } from '../../../common/bytes.js';
import { DecodeError } from '../../../common/errors.js';
import { PayloadType, ProtocolId } from '../constants.js';
import { EncodeError, expectEnd, putU8, putU16, putZeros, skipReserved, takeBytes } from '../header.js';
import type { Proposal, SaPayload, Transform, TransformAttribute } from '../types.js';

const LAST = 0;
const MORE_PROPOSALS = 2;
const MORE_TRANSFORMS = 3;
const PROPOSAL_HEADER = 8;
const TRANSFORM_HEADER = 8;
const ATTR_TV = 0x8000;

export function decodeSa(r: Reader, critical: boolean): SaPayload {
  const proposals: Proposal[] = [];
  if (r.remaining === 0) throw new DecodeError('SA: no proposals');
  while (r.remaining > 0) {
    const i = proposals.length + 1;
    const what = `SA proposal #${i}`;
    const last = r.u8(`${what} last-substructure`);
    if (last !== LAST && last !== MORE_PROPOSALS) {
      throw new DecodeError(`${what}: last-substructure value ${last}, expected 0 or 2`);
    }
    skipReserved(r, 1, what);
    const length = r.u16(`${what} length`);
    if (length < PROPOSAL_HEADER)
      throw new DecodeError(`${what}: proposal length ${length} < ${PROPOSAL_HEADER}`);
    const pr = r.sub(length - 4, what);
    proposals.push(decodeProposal(pr, what));
    if (last === LAST && r.remaining > 0) {
      throw new DecodeError(`${what}: marked last but ${r.remaining} bytes follow`);
    }
    if (last === MORE_PROPOSALS && r.remaining === 0) {
      throw new DecodeError(`${what}: marked 'more' but no proposal follows`);
    }
  }
  return { type: PayloadType.SA, critical, proposals };
}

function decodeProposal(r: Reader, what: string): Proposal {
  const num = r.u8(`${what} number`);
  const protocolId = r.u8(`${what} protocol ID`);
  const spiSize = r.u8(`${what} SPI size`);
  const numTransforms = r.u8(`${what} transform count`);
  if (spiSize > r.remaining) {
    throw new DecodeError(
      `${what}: SPI size ${spiSize} exceeds the ${r.remaining} bytes left in the proposal`,
    );
  }
  const spi = takeBytes(r, spiSize, `${what} SPI`);
  const transforms: Transform[] = [];
  for (let t = 0; t < numTransforms; t++) {
    const tw = `${what} transform #${t + 1}`;
    if (r.remaining === 0) {
      throw new DecodeError(`${what}: transform count ${numTransforms} but only ${t} transforms present`);
    }
    const last = r.u8(`${tw} last-substructure`);
    const expected = t === numTransforms - 1 ? LAST : MORE_TRANSFORMS;
    if (last !== expected)
      throw new DecodeError(`${tw}: last-substructure value ${last}, expected ${expected}`);
    skipReserved(r, 1, tw);
    const length = r.u16(`${tw} length`);
    if (length < TRANSFORM_HEADER)
      throw new DecodeError(`${tw}: transform length ${length} < ${TRANSFORM_HEADER}`);
    transforms.push(decodeTransform(r.sub(length - 4, tw), tw));
  }
  if (r.remaining > 0) {
    throw new DecodeError(
      `${what}: ${r.remaining} bytes left after ${numTransforms} transforms (length mismatch)`,
    );
  }
  return { num, protocolId, spi, transforms };
}

function decodeTransform(r: Reader, what: string): Transform {
  const type = r.u8(`${what} type`);
  skipReserved(r, 1, what);
  const id = r.u16(`${what} ID`);
  const attributes: TransformAttribute[] = [];
  while (r.remaining > 0) {
    const aw = `${what} attribute #${attributes.length + 1}`;
    const word = r.u16(`${aw} type`);
    const attrType = word & 0x7fff;
    if (word & ATTR_TV) {
      attributes.push({ type: attrType, value: r.u16(`${aw} value`) });
    } else {
      const len = r.u16(`${aw} length`);
      attributes.push({ type: attrType, value: takeBytes(r, len, `${aw} value`) });
    }
  }
  expectEnd(r, what);
  return { type, id, attributes };
}

export function encodedLengthSa(x: SaPayload): number {
  let n = 0;
  for (const p of x.proposals) n += encodedLengthProposal(p);
  return n;
}

function encodedLengthProposal(p: Proposal): number {
  let n = PROPOSAL_HEADER + p.spi.length;
  for (const t of p.transforms) n += encodedLengthTransform(t);
  return n;
}

function encodedLengthTransform(t: Transform): number {
  let n = TRANSFORM_HEADER;
  for (const a of t.attributes) n += typeof a.value === 'number' ? 4 : 4 + a.value.length;
  return n;
}

export function encodeSa(w: Writer, x: SaPayload): void {
  x.proposals.forEach((p, i) => {
    const what = `SA proposal #${i + 1}`;
    w.u8(i === x.proposals.length - 1 ? LAST : MORE_PROPOSALS);
    w.u8(0);
    putU16(w, encodedLengthProposal(p), `${what} length`);
    putU8(w, p.num, `${what} number`);
    putU8(w, p.protocolId, `${what} protocol ID`);
    putU8(w, p.spi.length, `${what} SPI size`);
    putU8(w, p.transforms.length, `${what} transform count`);
    w.bytes(p.spi);
    p.transforms.forEach((t, j) => {
      const tw = `${what} transform #${j + 1}`;
      w.u8(j === p.transforms.length - 1 ? LAST : MORE_TRANSFORMS);
      w.u8(0);
      putU16(w, encodedLengthTransform(t), `${tw} length`);
      putU8(w, t.type, `${tw} type`);
      putZeros(w, 1);
      putU16(w, t.id, `${tw} ID`);
      for (const a of t.attributes) {
        if (!Number.isInteger(a.type) || a.type < 0 || a.type > 0x7fff) {
          throw new EncodeError(`${tw}: attribute type ${a.type} out of range 0..32767`);
        }
        if (typeof a.value === 'number') {
          w.u16(ATTR_TV | a.type);
          putU16(w, a.value, `${tw} attribute ${a.type} value`);
        } else {
          w.u16(a.type);
          putU16(w, a.value.length, `${tw} attribute ${a.type} length`);
          w.bytes(a.value);
        }
      }
    });
  });
}

/**
 * Semantic checks (RFC 7296 §3.3.1): SPI size must match the protocol (IKE: 0 in IKE_SA_INIT or
 * 8 when rekeying; AH/ESP: 4). Proposals with other protocol IDs are left for proposal selection
 * to skip. Proposal numbering and transform contents are also left to selection.
 */
export function verifySa(x: SaPayload): void {
  if (x.proposals.length === 0) throw new DecodeError('SA: no proposals');
  x.proposals.forEach((p, i) => {
    const what = `SA proposal #${i + 1}`;
    if (p.protocolId === ProtocolId.IKE && p.spi.length !== 0 && p.spi.length !== 8) {
      throw new DecodeError(`${what}: IKE SPI size ${p.spi.length}, expected 0 or 8`);
    }
    if ((p.protocolId === ProtocolId.ESP || p.protocolId === ProtocolId.AH) && p.spi.length !== 4) {
      throw new DecodeError(
        `${what}: ${p.protocolId === ProtocolId.ESP ? 'ESP' : 'AH'} SPI size ${p.spi.length}, expected 4`,
      );
    }
  });
}
