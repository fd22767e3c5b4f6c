// Extensible Authentication payload (RFC 7296 §3.16); the body is one EAP message (RFC 3748 §4).
//
//  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Next Payload  |C|  RESERVED   |         Payload Length        |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// ~                       EAP Message                             ~
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// EAP message:
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |     Code      | Identifier    |           Length              |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |     Type      | Type_Data...
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-
//
// We do not do EAP; the message is kept whole (`data`) so the engine can reject it cleanly.
import { Reader, type Writer } from '../../../common/bytes.js';
import { DecodeError } from '../../../common/errors.js';
import { PayloadType } from '../constants.js';
import { takeRest } from '../header.js';
import type { EapPayload } from '../types.js';

const EAP_REQUEST = 1;
const EAP_RESPONSE = 2;

export function decodeEap(r: Reader, critical: boolean): EapPayload {
  const data = takeRest(r);
  checkEapMessage(data);
  return { type: PayloadType.EAP, critical, data };
}

function checkEapMessage(data: Uint8Array): void {
  const m = new Reader(data);
  const code = m.u8('EAP code');
  m.u8('EAP identifier');
  const length = m.u16('EAP length');
  if (length !== data.length)
    throw new DecodeError(`EAP: EAP length ${length} != payload body length ${data.length}`);
  if ((code === EAP_REQUEST || code === EAP_RESPONSE) && length < 5) {
    throw new DecodeError(`EAP: request/response of ${length} bytes has no type field`);
  }
}

export function encodedLengthEap(x: EapPayload): number {
  return x.data.length;
}

export function encodeEap(w: Writer, x: EapPayload): void {
  w.bytes(x.data);
}

/** For models built locally: the same checks decodeEap makes on receipt. */
export function verifyEap(x: EapPayload): void {
  checkEapMessage(x.data);
}
