// Traffic Selector payloads TSi / TSr (RFC 7296 §3.13) and the selectors in them (§3.13.1).
//
//  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Next Payload  |C|  RESERVED   |         Payload Length        |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Number of TSs |                 RESERVED                      |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// ~                       <Traffic Selectors>                     ~
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Traffic selector (Selector Length: 16 for TS_IPV4_ADDR_RANGE, 40 for TS_IPV6_ADDR_RANGE):
//
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |   TS Type     |IP Protocol ID*|       Selector Length         |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |           Start Port*         |           End Port*           |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// ~                         Starting Address*                     ~
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// ~                         Ending Address*                       ~
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Other TS types (e.g. RFC 4595 FC ranges) do not fit the model, so they are a DecodeError.
import type { Reader, Writer } from '../../../common/bytes.js';
import { DecodeError } from '../../../common/errors.js';
import { TsType } from '../constants.js';
import { EncodeError, putFixed, putU8, putU16, putZeros, skipReserved, takeBytes } from '../header.js';
import type { TrafficSelector, TsPayload } from '../types.js';

/** Address size for each supported TS type; selector length is 8 + 2 * address size. */
function addrLength(tsType: number): number | undefined {
  if (tsType === TsType.IPV4_ADDR_RANGE) return 4;
  if (tsType === TsType.IPV6_ADDR_RANGE) return 16;
  return undefined;
}

export function decodeTs(r: Reader, critical: boolean, type: 44 | 45): TsPayload {
  const what = type === 44 ? 'TSi' : 'TSr';
  const count = r.u8(`${what} number of TSs`);
  skipReserved(r, 3, what);
  const selectors: TrafficSelector[] = [];
  for (let i = 0; i < count; i++) {
    const sw = `${what} selector #${i + 1}`;
    if (r.remaining === 0) throw new DecodeError(`${what}: number of TSs is ${count} but only ${i} present`);
    const tsType = r.u8(`${sw} TS type`);
    const ipProtocol = r.u8(`${sw} IP protocol`);
    const length = r.u16(`${sw} selector length`);
    const alen = addrLength(tsType);
    if (alen === undefined) throw new DecodeError(`${sw}: unsupported TS type ${tsType}`);
    if (length !== 8 + 2 * alen) {
      throw new DecodeError(
        `${sw}: selector length ${length}, expected ${8 + 2 * alen} for TS type ${tsType}`,
      );
    }
    const s = r.sub(length - 4, sw);
    const startPort = s.u16(`${sw} start port`);
    const endPort = s.u16(`${sw} end port`);
    const startAddr = takeBytes(s, alen, `${sw} starting address`);
    const endAddr = takeBytes(s, alen, `${sw} ending address`);
    selectors.push({ tsType, ipProtocol, startPort, endPort, startAddr, endAddr });
  }
  if (r.remaining !== 0) throw new DecodeError(`${what}: ${r.remaining} bytes after ${count} selectors`);
  return { type, critical, selectors };
}

export function encodedLengthTs(x: TsPayload): number {
  let n = 4;
  for (const s of x.selectors) n += 8 + 2 * (addrLength(s.tsType) ?? s.startAddr.length);
  return n;
}

export function encodeTs(w: Writer, x: TsPayload): void {
  putU8(w, x.selectors.length, 'TS number of TSs');
  putZeros(w, 3);
  x.selectors.forEach((s, i) => {
    const sw = `TS selector #${i + 1}`;
    const alen = addrLength(s.tsType);
    if (alen === undefined) throw new EncodeError(`${sw}: unsupported TS type ${s.tsType}`);
    w.u8(s.tsType);
    putU8(w, s.ipProtocol, `${sw} IP protocol`);
    w.u16(8 + 2 * alen);
    putU16(w, s.startPort, `${sw} start port`);
    putU16(w, s.endPort, `${sw} end port`);
    putFixed(w, s.startAddr, alen, `${sw} starting address`);
    putFixed(w, s.endAddr, alen, `${sw} ending address`);
  });
}

/**
 * A TS payload lists one or more selectors (RFC 7296 §3.13). Start port > end port is legal
 * (OPAQUE ports, §3.13.1), and so is start address > end address (an empty range), so neither is
 * checked here; narrowing treats them.
 */
export function verifyTs(x: TsPayload): void {
  if (x.selectors.length === 0)
    throw new DecodeError(`${x.type === 44 ? 'TSi' : 'TSr'}: no traffic selectors`);
}
