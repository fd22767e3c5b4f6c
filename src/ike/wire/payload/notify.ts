// Notify payload (RFC 7296 §3.10).
//
//  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Next Payload  |C|  RESERVED   |         Payload Length        |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |  Protocol ID  |   SPI Size    |      Notify Message Type      |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// ~                Security Parameter Index (SPI)                 ~
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// ~                       Notification Data                       ~
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
import type { Reader, Writer } from '../../../common/bytes.js';
import { DecodeError } from '../../../common/errors.js';
import { Notify, notifyName, PayloadType } from '../constants.js';
import { putU8, putU16, takeBytes, takeRest } from '../header.js';
import type { NotifyPayload } from '../types.js';

export function decodeNotify(r: Reader, critical: boolean): NotifyPayload {
  const protocolId = r.u8('Notify protocol ID');
  const spiSize = r.u8('Notify SPI size');
  const notifyType = r.u16('Notify message type');
  if (spiSize > r.remaining) {
    throw new DecodeError(`Notify: SPI size ${spiSize} exceeds the ${r.remaining} bytes left in the payload`);
  }
  const spi = takeBytes(r, spiSize, 'Notify SPI');
  return { type: PayloadType.NOTIFY, critical, protocolId, spi, notifyType, data: takeRest(r) };
}

export function encodedLengthNotify(x: NotifyPayload): number {
  return 4 + x.spi.length + x.data.length;
}

export function encodeNotify(w: Writer, x: NotifyPayload): void {
  putU8(w, x.protocolId, 'Notify protocol ID');
  putU8(w, x.spi.length, 'Notify SPI size');
  putU16(w, x.notifyType, 'Notify message type');
  w.bytes(x.spi);
  w.bytes(x.data);
}

/** Fixed notification data sizes the RFCs give (as strongSwan's notify_payload verify() checks). */
const DATA_LENGTH: ReadonlyMap<number, number> = new Map([
  [Notify.INVALID_KE_PAYLOAD, 2], // RFC 7296 §3.10.1: the accepted DH group
  [Notify.NAT_DETECTION_SOURCE_IP, 20], // RFC 7296 §2.23: SHA-1 digest
  [Notify.NAT_DETECTION_DESTINATION_IP, 20],
  [Notify.ADDITIONAL_IP4_ADDRESS, 4], // RFC 4555 §3.6
  [Notify.ADDITIONAL_IP6_ADDRESS, 16],
  [Notify.AUTH_LIFETIME, 4], // RFC 4478
  [Notify.IPCOMP_SUPPORTED, 3], // RFC 7296 §2.22: CPI (2) + transform ID (1)
]);

export function verifyNotify(x: NotifyPayload): void {
  const what = `Notify ${notifyName(x.notifyType)}`;
  if (x.spi.length !== 0 && x.spi.length !== 4 && x.spi.length !== 8) {
    throw new DecodeError(`${what}: SPI size ${x.spi.length}, expected 0, 4 or 8`);
  }
  // Protocol ID is ignored when there is no SPI (RFC 7296 §3.10); otherwise it must be IKE/AH/ESP.
  if (x.spi.length !== 0 && (x.protocolId < 1 || x.protocolId > 3)) {
    throw new DecodeError(`${what}: protocol ID ${x.protocolId} with an SPI`);
  }
  const fixed = DATA_LENGTH.get(x.notifyType);
  if (fixed !== undefined && x.data.length !== fixed) {
    throw new DecodeError(`${what}: data length ${x.data.length}, expected ${fixed}`);
  }
  // RFC 7296 §2.6: a cookie is 1..64 octets.
  if (x.notifyType === Notify.COOKIE && (x.data.length < 1 || x.data.length > 64)) {
    throw new DecodeError(`${what}: cookie length ${x.data.length} outside 1..64`);
  }
  // RFC 7427 §4: a list of 16-bit hash algorithm identifiers.
  if (x.notifyType === Notify.SIGNATURE_HASH_ALGORITHMS && x.data.length % 2 !== 0) {
    throw new DecodeError(`${what}: data length ${x.data.length} is odd`);
  }
}
