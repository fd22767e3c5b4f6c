// IKE header (RFC 7296 §3.1), generic payload header (§3.2) and the small helpers every payload
// codec shares: checked field writers for encoders and copying reads for decoders.
//
//                      1                   2                   3
//  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |                       IKE SA Initiator's SPI                  |
// |                                                               |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |                       IKE SA Responder's SPI                  |
// |                                                               |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |  Next Payload | MjVer | MnVer | Exchange Type |     Flags     |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |                          Message ID                           |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |                            Length                             |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Generic payload header (RFC 7296 §3.2), in front of every payload body:
//
//  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Next Payload  |C|  RESERVED   |         Payload Length        |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
import type { Reader, Writer } from '../../common/bytes.js';
import { DecodeError, IkegwError } from '../../common/errors.js';
import type { IkeHeader } from './types.js';

export const IKE_HEADER_LENGTH = 28;
export const GENERIC_HEADER_LENGTH = 4;
/** The C bit in the second octet of the generic payload header (RFC 7296 §2.5). */
export const CRITICAL_BIT = 0x80;
/** Payload Length is a 16-bit field that includes the 4-byte generic header. */
export const MAX_PAYLOAD_BODY = 0xffff - GENERIC_HEADER_LENGTH;

/**
 * The message has a major version other than 2 (RFC 7296 §1.5, §2.5). The responder answers
 * INVALID_MAJOR_VERSION (not INVALID_SYNTAX, whatever the inherited `notify` says), so this is a
 * separate class; `header` holds what was read so the answer can reuse SPIs and message ID.
 */
export class UnsupportedVersionError extends DecodeError {
  constructor(
    /** The raw version octet seen (major in the high nibble). */
    readonly version: number,
    readonly header: IkeHeader,
  ) {
    super(`IKE header: unsupported major version ${version >>> 4} (version octet 0x${version.toString(16)})`);
  }
}

/** The model handed to an encoder does not fit the wire format (a field out of range). */
export class EncodeError extends IkegwError {
  constructor(message: string) {
    super('ERR_ENCODE', message);
  }
}

export function decodeHeader(r: Reader): IkeHeader {
  r.need(IKE_HEADER_LENGTH, 'IKE header');
  const spiI = r.u64('IKE header initiator SPI');
  const spiR = r.u64('IKE header responder SPI');
  const nextPayload = r.u8('IKE header next payload');
  const version = r.u8('IKE header version');
  const exchange = r.u8('IKE header exchange type');
  const flags = r.u8('IKE header flags');
  const msgId = r.u32('IKE header message ID');
  const length = r.u32('IKE header length');
  return { spiI, spiR, nextPayload, version, exchange, flags, msgId, length };
}

/** Writes the 28-byte header as given; `encodeMessage` fills in nextPayload and length first. */
export function encodeHeader(w: Writer, h: IkeHeader): void {
  putU64(w, h.spiI, 'IKE header initiator SPI');
  putU64(w, h.spiR, 'IKE header responder SPI');
  putU8(w, h.nextPayload, 'IKE header next payload');
  putU8(w, h.version, 'IKE header version');
  putU8(w, h.exchange, 'IKE header exchange type');
  putU8(w, h.flags, 'IKE header flags');
  putU32(w, h.msgId, 'IKE header message ID');
  putU32(w, h.length, 'IKE header length');
}

export interface GenericHeader {
  nextPayload: number;
  critical: boolean;
  /** Payload Length as on the wire, including these 4 bytes. */
  length: number;
}

/** Reads a generic payload header; the 7 RESERVED bits are ignored on receipt (RFC 7296 §3.2). */
export function decodeGenericHeader(r: Reader, what: string): GenericHeader {
  const nextPayload = r.u8(`${what} next payload`);
  const critical = (r.u8(`${what} flags`) & CRITICAL_BIT) !== 0;
  const length = r.u16(`${what} payload length`);
  if (length < GENERIC_HEADER_LENGTH) {
    throw new DecodeError(`${what}: payload length ${length} is smaller than the generic header`);
  }
  return { nextPayload, critical, length };
}

export function encodeGenericHeader(
  w: Writer,
  nextPayload: number,
  critical: boolean,
  bodyLength: number,
): void {
  putU8(w, nextPayload, 'next payload');
  w.u8(critical ? CRITICAL_BIT : 0);
  if (bodyLength > MAX_PAYLOAD_BODY) {
    throw new EncodeError(`payload body of ${bodyLength} bytes does not fit the 16-bit payload length`);
  }
  w.u16(bodyLength + GENERIC_HEADER_LENGTH);
}

// ---- helpers shared by the payload codecs ----

/** Reads n bytes and returns a copy, so decoded models never alias the datagram buffer. */
export function takeBytes(r: Reader, n: number, what: string): Uint8Array {
  return new Uint8Array(r.bytes(n, what));
}

/** Copies whatever is left in the reader. */
export function takeRest(r: Reader): Uint8Array {
  return new Uint8Array(r.rest());
}

/** Skips n reserved octets (sent as zero, ignored on receipt). */
export function skipReserved(r: Reader, n: number, what: string): void {
  r.bytes(n, `${what} RESERVED`);
}

export function expectEnd(r: Reader, what: string): void {
  if (r.remaining !== 0) throw new DecodeError(`${what}: ${r.remaining} unexpected trailing bytes`);
}

function checkRange(v: number, max: number, what: string): void {
  if (!Number.isInteger(v) || v < 0 || v > max)
    throw new EncodeError(`${what}: value ${v} out of range 0..${max}`);
}

export function putU8(w: Writer, v: number, what: string): void {
  checkRange(v, 0xff, what);
  w.u8(v);
}

export function putU16(w: Writer, v: number, what: string): void {
  checkRange(v, 0xffff, what);
  w.u16(v);
}

export function putU32(w: Writer, v: number, what: string): void {
  checkRange(v, 0xffffffff, what);
  w.u32(v);
}

export function putU64(w: Writer, v: bigint, what: string): void {
  if (v < 0n || v > 0xffffffffffffffffn) throw new EncodeError(`${what}: value ${v} out of 64-bit range`);
  w.u64(v);
}

/** Writes `b` and checks that its length is exactly `len` (for fixed-size fields such as addresses). */
export function putFixed(w: Writer, b: Uint8Array, len: number, what: string): void {
  if (b.length !== len) throw new EncodeError(`${what}: expected ${len} bytes, got ${b.length}`);
  w.bytes(b);
}

export function putZeros(w: Writer, n: number): void {
  for (let i = 0; i < n; i++) w.u8(0);
}
