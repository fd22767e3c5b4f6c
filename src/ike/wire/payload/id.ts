// Identification payloads IDi / IDr (RFC 7296 §3.5).
//
//  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Next Payload  |C|  RESERVED   |         Payload Length        |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |   ID Type     |                 RESERVED                      |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// ~                   Identification Data                         ~
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// AUTH (RFC 7296 §2.15) signs the body as received, RESERVED included; the model drops RESERVED,
// so use `rawBody()` from message.ts when computing AUTH over a received ID.
import type { Reader, Writer } from '../../../common/bytes.js';
import { DecodeError } from '../../../common/errors.js';
import { IdType } from '../constants.js';
import { putU8, putZeros, skipReserved, takeRest } from '../header.js';
import type { IdPayload } from '../types.js';

export function decodeId(r: Reader, critical: boolean, type: 35 | 36): IdPayload {
  const what = type === 35 ? 'IDi' : 'IDr';
  const idType = r.u8(`${what} ID type`);
  skipReserved(r, 3, what);
  return { type, critical, idType, data: takeRest(r) };
}

export function encodedLengthId(x: IdPayload): number {
  return 4 + x.data.length;
}

export function encodeId(w: Writer, x: IdPayload): void {
  putU8(w, x.idType, 'ID type');
  putZeros(w, 3);
  w.bytes(x.data);
}

export function verifyId(x: IdPayload): void {
  const what = x.type === 35 ? 'IDi' : 'IDr';
  if (x.idType === IdType.IPV4_ADDR && x.data.length !== 4) {
    throw new DecodeError(`${what}: ID_IPV4_ADDR data is ${x.data.length} bytes, expected 4`);
  }
  if (x.idType === IdType.IPV6_ADDR && x.data.length !== 16) {
    throw new DecodeError(`${what}: ID_IPV6_ADDR data is ${x.data.length} bytes, expected 16`);
  }
  if (x.data.length === 0) throw new DecodeError(`${what}: empty identification data`);
}
