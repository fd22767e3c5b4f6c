// Delete payload (RFC 7296 §3.11).
//
//  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Next Payload  |C|  RESERVED   |         Payload Length        |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Protocol ID   |   SPI Size    |          Num of SPIs          |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// ~               Security Parameter Index(es) (SPI)              ~
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
import type { Reader, Writer } from '../../../common/bytes.js';
import { DecodeError } from '../../../common/errors.js';
import { PayloadType, ProtocolId } from '../constants.js';
import { putFixed, putU8, putU16 } from '../header.js';
import type { DeletePayload } from '../types.js';

export function decodeDelete(r: Reader, critical: boolean): DeletePayload {
  const protocolId = r.u8('Delete protocol ID');
  const spiSize = r.u8('Delete SPI size');
  const count = r.u16('Delete SPI count');
  if (spiSize * count !== r.remaining) {
    throw new DecodeError(
      `Delete: ${count} SPIs of ${spiSize} bytes need ${spiSize * count} bytes, payload has ${r.remaining}`,
    );
  }
  if (spiSize === 0 && count !== 0) throw new DecodeError(`Delete: SPI size 0 with SPI count ${count}`);
  const spis: Uint8Array[] = [];
  for (let i = 0; i < count; i++) spis.push(new Uint8Array(r.bytes(spiSize, `Delete SPI #${i + 1}`)));
  return { type: PayloadType.DELETE, critical, protocolId, spiSize, spis };
}

export function encodedLengthDelete(x: DeletePayload): number {
  return 4 + x.spiSize * x.spis.length;
}

export function encodeDelete(w: Writer, x: DeletePayload): void {
  putU8(w, x.protocolId, 'Delete protocol ID');
  putU8(w, x.spiSize, 'Delete SPI size');
  putU16(w, x.spis.length, 'Delete SPI count');
  x.spis.forEach((spi, i) => {
    putFixed(w, spi, x.spiSize, `Delete SPI #${i + 1}`);
  });
}

/** RFC 7296 §3.11: IKE SA deletes carry no SPI (size 0, count 0); AH/ESP SPIs are 4 bytes. */
export function verifyDelete(x: DeletePayload): void {
  if (x.protocolId === ProtocolId.IKE) {
    if (x.spiSize !== 0 || x.spis.length !== 0) {
      throw new DecodeError(`Delete IKE: SPI size ${x.spiSize} and count ${x.spis.length}, expected 0 and 0`);
    }
  } else if (x.protocolId === ProtocolId.ESP || x.protocolId === ProtocolId.AH) {
    if (x.spiSize !== 4) throw new DecodeError(`Delete: SPI size ${x.spiSize} for AH/ESP, expected 4`);
  } else {
    throw new DecodeError(`Delete: unknown protocol ID ${x.protocolId}`);
  }
}
