// Vendor ID payload (RFC 7296 §3.12).
//
//  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Next Payload  |C|  RESERVED   |         Payload Length        |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// ~                        Vendor ID (VID)                        ~
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
import type { Reader, Writer } from '../../../common/bytes.js';
import { PayloadType } from '../constants.js';
import { takeRest } from '../header.js';
import type { VendorIdPayload } from '../types.js';

export function decodeVendor(r: Reader, critical: boolean): VendorIdPayload {
  return { type: PayloadType.VENDOR_ID, critical, data: takeRest(r) };
}

export function encodedLengthVendor(x: VendorIdPayload): number {
  return x.data.length;
}

export function encodeVendor(w: Writer, x: VendorIdPayload): void {
  w.bytes(x.data);
}

/** No semantic limits: a Vendor ID is opaque and unrecognised ones are ignored (RFC 7296 §3.12). */
export function verifyVendor(_x: VendorIdPayload): void {}
