// Configuration payload (RFC 7296 §3.15) and its attributes (§3.15.1).
//
//  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Next Payload  |C| RESERVED    |         Payload Length        |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |   CFG Type    |                    RESERVED                   |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// ~                   Configuration Attributes                    ~
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Configuration attribute (R is a reserved bit, ignored on receipt):
//
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |R|         Attribute Type      |            Length             |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// ~                             Value                             ~
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
import type { Reader, Writer } from '../../../common/bytes.js';
import { DecodeError } from '../../../common/errors.js';
import { CfgType, PayloadType } from '../constants.js';
import { EncodeError, putU8, putU16, putZeros, skipReserved, takeBytes } from '../header.js';
import type { CfgAttribute, CpPayload } from '../types.js';

export function decodeCp(r: Reader, critical: boolean): CpPayload {
  const cfgType = r.u8('CP CFG type');
  skipReserved(r, 3, 'CP');
  const attributes: CfgAttribute[] = [];
  while (r.remaining > 0) {
    const aw = `CP attribute #${attributes.length + 1}`;
    const type = r.u16(`${aw} type`) & 0x7fff;
    const len = r.u16(`${aw} length`);
    attributes.push({ type, value: takeBytes(r, len, `${aw} value`) });
  }
  return { type: PayloadType.CP, critical, cfgType, attributes };
}

export function encodedLengthCp(x: CpPayload): number {
  let n = 4;
  for (const a of x.attributes) n += 4 + a.value.length;
  return n;
}

export function encodeCp(w: Writer, x: CpPayload): void {
  putU8(w, x.cfgType, 'CP CFG type');
  putZeros(w, 3);
  x.attributes.forEach((a, i) => {
    if (!Number.isInteger(a.type) || a.type < 0 || a.type > 0x7fff) {
      throw new EncodeError(`CP attribute #${i + 1}: type ${a.type} out of range 0..32767`);
    }
    w.u16(a.type);
    putU16(w, a.value.length, `CP attribute #${i + 1} length`);
    w.bytes(a.value);
  });
}

/** CFG Type is one of CFG_REQUEST, CFG_REPLY, CFG_SET, CFG_ACK (RFC 7296 §3.15). */
export function verifyCp(x: CpPayload): void {
  if (x.cfgType < CfgType.CFG_REQUEST || x.cfgType > CfgType.CFG_ACK) {
    throw new DecodeError(`CP: unknown CFG type ${x.cfgType}`);
  }
}
