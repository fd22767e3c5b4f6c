// Whole IKEv2 messages (RFC 7296 §3.1, §3.2): the header plus the chain of payloads linked by
// their Next Payload fields. SK (§3.14) and SKF (RFC 7383 §2.5) end the chain: their Next Payload
// names the first payload inside the encrypted data (`innerType`), and they must come last.
//
// decodeMessage/decodePayloadChain check structure and then run each payload's verifyX()
// (semantic limits such as the nonce size), the way strongSwan's parser calls payload verify().
// Which payloads may appear in which exchange is checked separately by rules.ts.
import { Reader, Writer } from '../../common/bytes.js';
import { DecodeError } from '../../common/errors.js';
import { CfgType, Notify, PayloadType, payloadShortName } from './constants.js';
import {
  decodeGenericHeader,
  decodeHeader,
  EncodeError,
  encodeGenericHeader,
  encodeHeader,
  expectEnd,
  GENERIC_HEADER_LENGTH,
  IKE_HEADER_LENGTH,
  UnsupportedVersionError,
} from './header.js';
import { decodeAuth, encodeAuth, encodedLengthAuth, verifyAuth } from './payload/auth.js';
import { decodeCert, encodeCert, encodedLengthCert, verifyCert } from './payload/cert.js';
import { decodeCp, encodeCp, encodedLengthCp, verifyCp } from './payload/cp.js';
import { decodeDelete, encodeDelete, encodedLengthDelete, verifyDelete } from './payload/delete.js';
import { decodeEap, encodedLengthEap, encodeEap, verifyEap } from './payload/eap.js';
import { decodeId, encodedLengthId, encodeId, verifyId } from './payload/id.js';
import { decodeKe, encodedLengthKe, encodeKe, verifyKe } from './payload/ke.js';
import { decodeNonce, encodedLengthNonce, encodeNonce, verifyNonce } from './payload/nonce.js';
import { decodeNotify, encodedLengthNotify, encodeNotify, verifyNotify } from './payload/notify.js';
import { decodeSa, encodedLengthSa, encodeSa, verifySa } from './payload/sa.js';
import {
  decodeSk,
  decodeSkf,
  encodedLengthSk,
  encodedLengthSkf,
  encodeSk,
  encodeSkf,
  verifySk,
  verifySkf,
} from './payload/sk.js';
import { decodeTs, encodedLengthTs, encodeTs, verifyTs } from './payload/ts.js';
import { decodeVendor, encodedLengthVendor, encodeVendor, verifyVendor } from './payload/vendor.js';
import {
  type IkeHeader,
  type IkeMessage,
  isUnknown,
  type KnownPayload,
  type Payload,
  type SkfPayload,
  type SkPayload,
  type UnknownPayload,
} from './types.js';

export { UnsupportedVersionError } from './header.js';

/** The only major version we speak (RFC 7296 §3.1). */
export const IKE_MAJOR_VERSION = 2;

export interface DecodeOptions {
  /** Run verifyX() on every known payload (default true). Tools that dump captures may turn it off. */
  verify?: boolean;
}

/** Wire bodies of decoded payloads, for AUTH over IDi/IDr as received (RFC 7296 §2.15). */
const rawBodies = new WeakMap<Payload, Uint8Array>();

/**
 * The payload body exactly as it was on the wire (after the generic header), for payloads returned
 * by decodeMessage/decodePayloadChain; undefined for payloads built locally. It is a view into the
 * buffer that was decoded, not a copy.
 */
export function rawBody(p: Payload): Uint8Array | undefined {
  return rawBodies.get(p);
}

export function isEncrypted(p: Payload): p is SkPayload | SkfPayload {
  return !isUnknown(p) && (p.type === PayloadType.SK || p.type === PayloadType.SKF);
}

/** Short payload name as in strongSwan's logs (SA, KE, No, N, D, V, ...; U<n> for unknown types). */
export function payloadName(t: number): string {
  return t === PayloadType.NOTIFY ? 'N' : payloadShortName(t);
}

function isKnownType(t: number): boolean {
  return (t >= PayloadType.SA && t <= PayloadType.EAP) || t === PayloadType.SKF;
}

/**
 * Decodes one datagram (UDP payload, after the non-ESP marker if on port 4500). Throws
 * UnsupportedVersionError for a major version other than 2 (answer INVALID_MAJOR_VERSION) and
 * DecodeError for anything malformed (answer INVALID_SYNTAX where RFC 7296 §2.21 says to).
 */
export function decodeMessage(bytes: Uint8Array, opts: DecodeOptions = {}): IkeMessage {
  const r = new Reader(bytes);
  const header = decodeHeader(r);
  if (header.version >>> 4 !== IKE_MAJOR_VERSION) throw new UnsupportedVersionError(header.version, header);
  if (header.length !== bytes.length) {
    throw new DecodeError(`IKE header: length field ${header.length} != datagram length ${bytes.length}`);
  }
  const payloads = decodePayloadChain(header.nextPayload, bytes, IKE_HEADER_LENGTH, bytes.length, opts);
  return { header, payloads };
}

/**
 * Decodes payloads from bytes[start, end), starting with a payload of type `firstType` and
 * following Next Payload fields until 0 or until an SK/SKF payload. Used for the message body and,
 * by the engine, for the decrypted content of SK (firstType = sk.innerType, padding removed).
 * All of [start, end) must be used.
 */
export function decodePayloadChain(
  firstType: number,
  bytes: Uint8Array,
  start = 0,
  end: number = bytes.length,
  opts: DecodeOptions = {},
): Payload[] {
  const verify = opts.verify ?? true;
  const r = new Reader(bytes, start, end);
  const out: Payload[] = [];
  let type = firstType;
  while (type !== PayloadType.NONE) {
    const what = `payload #${out.length + 1} (${payloadName(type)})`;
    if (r.remaining === 0)
      throw new DecodeError(`${what}: announced by a next-payload field, but no bytes are left`);
    const gh = decodeGenericHeader(r, what);
    const bodyLength = gh.length - GENERIC_HEADER_LENGTH;
    if (bodyLength > r.remaining) {
      throw new DecodeError(`${what}: payload length ${gh.length} exceeds the ${r.remaining + 4} bytes left`);
    }
    const bodyStart = r.offset;
    const body = r.sub(bodyLength, `${what} body`);
    const p = decodeBody(type, body, gh.critical, gh.nextPayload);
    expectEnd(body, what);
    if (verify) verifyPayload(p);
    rawBodies.set(p, bytes.subarray(bodyStart, bodyStart + bodyLength));
    out.push(p);
    if (isEncrypted(p)) {
      if (r.remaining !== 0) {
        throw new DecodeError(`${what}: must be the last payload, but ${r.remaining} bytes follow it`);
      }
      return out;
    }
    type = gh.nextPayload;
  }
  if (r.remaining !== 0) throw new DecodeError(`payload chain: ${r.remaining} bytes after the last payload`);
  return out;
}

function decodeBody(type: number, r: Reader, critical: boolean, next: number): Payload {
  if (!isKnownType(type)) {
    const unknown: UnknownPayload = { type, critical, unknown: true, body: new Uint8Array(r.rest()) };
    return unknown;
  }
  switch (type) {
    case PayloadType.SA:
      return decodeSa(r, critical);
    case PayloadType.KE:
      return decodeKe(r, critical);
    case PayloadType.IDi:
    case PayloadType.IDr:
      return decodeId(r, critical, type);
    case PayloadType.CERT:
    case PayloadType.CERTREQ:
      return decodeCert(r, critical, type);
    case PayloadType.AUTH:
      return decodeAuth(r, critical);
    case PayloadType.NONCE:
      return decodeNonce(r, critical);
    case PayloadType.NOTIFY:
      return decodeNotify(r, critical);
    case PayloadType.DELETE:
      return decodeDelete(r, critical);
    case PayloadType.VENDOR_ID:
      return decodeVendor(r, critical);
    case PayloadType.TSi:
    case PayloadType.TSr:
      return decodeTs(r, critical, type);
    case PayloadType.SK:
      return decodeSk(r, critical, next);
    case PayloadType.CP:
      return decodeCp(r, critical);
    case PayloadType.EAP:
      return decodeEap(r, critical);
    case PayloadType.SKF:
      return decodeSkf(r, critical, next);
    default:
      throw new DecodeError(`payload type ${type}: no decoder`);
  }
}

/** Runs the payload's semantic checks (verifyX); unknown payloads have none. */
export function verifyPayload(p: Payload): void {
  if (isUnknown(p)) return;
  switch (p.type) {
    case 33:
      verifySa(p);
      break;
    case 34:
      verifyKe(p);
      break;
    case 35:
    case 36:
      verifyId(p);
      break;
    case 37:
    case 38:
      verifyCert(p);
      break;
    case 39:
      verifyAuth(p);
      break;
    case 40:
      verifyNonce(p);
      break;
    case 41:
      verifyNotify(p);
      break;
    case 42:
      verifyDelete(p);
      break;
    case 43:
      verifyVendor(p);
      break;
    case 44:
    case 45:
      verifyTs(p);
      break;
    case 46:
      verifySk(p);
      break;
    case 47:
      verifyCp(p);
      break;
    case 48:
      verifyEap(p);
      break;
    case 53:
      verifySkf(p);
      break;
  }
}

/** Length of the payload body (without the 4-byte generic header). */
export function encodedLengthBody(p: Payload): number {
  if (isUnknown(p)) return p.body.length;
  return knownBody(p).length;
}

/** Length of the payload on the wire, generic header included. */
export function encodedLengthPayload(p: Payload): number {
  return GENERIC_HEADER_LENGTH + encodedLengthBody(p);
}

function knownBody(p: KnownPayload): { length: number; encode: (w: Writer) => void } {
  switch (p.type) {
    case 33:
      return { length: encodedLengthSa(p), encode: (w) => encodeSa(w, p) };
    case 34:
      return { length: encodedLengthKe(p), encode: (w) => encodeKe(w, p) };
    case 35:
    case 36:
      return { length: encodedLengthId(p), encode: (w) => encodeId(w, p) };
    case 37:
    case 38:
      return { length: encodedLengthCert(p), encode: (w) => encodeCert(w, p) };
    case 39:
      return { length: encodedLengthAuth(p), encode: (w) => encodeAuth(w, p) };
    case 40:
      return { length: encodedLengthNonce(p), encode: (w) => encodeNonce(w, p) };
    case 41:
      return { length: encodedLengthNotify(p), encode: (w) => encodeNotify(w, p) };
    case 42:
      return { length: encodedLengthDelete(p), encode: (w) => encodeDelete(w, p) };
    case 43:
      return { length: encodedLengthVendor(p), encode: (w) => encodeVendor(w, p) };
    case 44:
    case 45:
      return { length: encodedLengthTs(p), encode: (w) => encodeTs(w, p) };
    case 46:
      return { length: encodedLengthSk(p), encode: (w) => encodeSk(w, p) };
    case 47:
      return { length: encodedLengthCp(p), encode: (w) => encodeCp(w, p) };
    case 48:
      return { length: encodedLengthEap(p), encode: (w) => encodeEap(w, p) };
    case 53:
      return { length: encodedLengthSkf(p), encode: (w) => encodeSkf(w, p) };
  }
}

function encodeChainInto(w: Writer, payloads: readonly Payload[]): void {
  payloads.forEach((p, i) => {
    const next = payloads[i + 1];
    let nextType: number;
    if (isEncrypted(p)) {
      if (next !== undefined) throw new EncodeError(`${payloadName(p.type)} must be the last payload`);
      nextType = p.innerType;
    } else {
      nextType = next?.type ?? PayloadType.NONE;
    }
    if (nextType === PayloadType.NONE && next !== undefined) {
      throw new EncodeError(`payload #${i + 2}: type 0 cannot be encoded`);
    }
    if (isUnknown(p)) {
      encodeGenericHeader(w, nextType, p.critical, p.body.length);
      w.bytes(p.body);
      return;
    }
    const body = knownBody(p);
    encodeGenericHeader(w, nextType, p.critical, body.length);
    const before = w.length;
    body.encode(w);
    if (w.length - before !== body.length) {
      throw new EncodeError(
        `${payloadName(p.type)}: wrote ${w.length - before} bytes, expected ${body.length}`,
      );
    }
  });
}

/**
 * Encodes payloads with their generic headers, setting each Next Payload field from the following
 * payload (0 after the last; innerType for SK/SKF, which must be last). The engine uses this for
 * the plaintext that goes inside SK, with the first payload's type as the SK's innerType.
 */
export function encodePayloadChain(payloads: readonly Payload[]): Uint8Array {
  const w = new Writer(512);
  encodeChainInto(w, payloads);
  return w.finish();
}

export function encodedLengthMessage(msg: IkeMessage): number {
  let n = IKE_HEADER_LENGTH;
  for (const p of msg.payloads) n += encodedLengthPayload(p);
  return n;
}

/**
 * Encodes a message; header.nextPayload and header.length are recomputed from the payloads (the
 * model's values are ignored). For SK the ICV is the last bytes of the result, so the crypto layer
 * can encode with a zero ICV, compute the checksum over the rest and write it in place.
 */
export function encodeMessage(msg: IkeMessage): Uint8Array {
  const header: IkeHeader = {
    ...msg.header,
    nextPayload: msg.payloads[0]?.type ?? PayloadType.NONE,
    length: encodedLengthMessage(msg),
  };
  const w = new Writer(header.length);
  encodeHeader(w, header);
  encodeChainInto(w, msg.payloads);
  if (w.length !== header.length)
    throw new EncodeError(`message: wrote ${w.length} bytes, expected ${header.length}`);
  return w.finish();
}

// ---- log summaries ----

/** strongSwan's short notify names (notify_type_short_names), as seen in its log lines. */
const notifyShort: ReadonlyMap<number, string> = new Map([
  [Notify.UNSUPPORTED_CRITICAL_PAYLOAD, 'CRIT'],
  [Notify.INVALID_IKE_SPI, 'INVAL_IKE_SPI'],
  [Notify.INVALID_MAJOR_VERSION, 'INVAL_MAJOR'],
  [Notify.INVALID_SYNTAX, 'INVAL_SYN'],
  [Notify.INVALID_MESSAGE_ID, 'INVAL_MID'],
  [Notify.INVALID_SPI, 'INVAL_SPI'],
  [Notify.NO_PROPOSAL_CHOSEN, 'NO_PROP'],
  [Notify.INVALID_KE_PAYLOAD, 'INVAL_KE'],
  [Notify.AUTHENTICATION_FAILED, 'AUTH_FAILED'],
  [Notify.SINGLE_PAIR_REQUIRED, 'SINGLE_PAIR'],
  [Notify.NO_ADDITIONAL_SAS, 'NO_ADD_SAS'],
  [Notify.INTERNAL_ADDRESS_FAILURE, 'INT_ADDR_FAIL'],
  [Notify.FAILED_CP_REQUIRED, 'FAIL_CP_REQ'],
  [Notify.TS_UNACCEPTABLE, 'TS_UNACCEPT'],
  [Notify.INVALID_SELECTORS, 'INVAL_SEL'],
  [Notify.TEMPORARY_FAILURE, 'TEMP_FAIL'],
  [Notify.CHILD_SA_NOT_FOUND, 'NO_CHILD_SA'],
  [Notify.INITIAL_CONTACT, 'INIT_CONTACT'],
  [Notify.SET_WINDOW_SIZE, 'SET_WINSIZE'],
  [Notify.ADDITIONAL_TS_POSSIBLE, 'ADD_TS_POSS'],
  [Notify.IPCOMP_SUPPORTED, 'IPCOMP_SUP'],
  [Notify.NAT_DETECTION_SOURCE_IP, 'NATD_S_IP'],
  [Notify.NAT_DETECTION_DESTINATION_IP, 'NATD_D_IP'],
  [Notify.COOKIE, 'COOKIE'],
  [Notify.USE_TRANSPORT_MODE, 'USE_TRANSP'],
  [Notify.HTTP_CERT_LOOKUP_SUPPORTED, 'HTTP_CERT_LOOK'],
  [Notify.REKEY_SA, 'REKEY_SA'],
  [Notify.ESP_TFC_PADDING_NOT_SUPPORTED, 'ESP_TFC_PAD_N'],
  [Notify.NON_FIRST_FRAGMENTS_ALSO, 'NON_FIRST_FRAG'],
  [Notify.MOBIKE_SUPPORTED, 'MOBIKE_SUP'],
  [Notify.ADDITIONAL_IP4_ADDRESS, 'ADD_4_ADDR'],
  [Notify.ADDITIONAL_IP6_ADDRESS, 'ADD_6_ADDR'],
  [Notify.NO_ADDITIONAL_ADDRESSES, 'NO_ADD_ADDR'],
  [Notify.UPDATE_SA_ADDRESSES, 'UPD_SA_ADDR'],
  [Notify.COOKIE2, 'COOKIE2'],
  [Notify.NO_NATS_ALLOWED, 'NO_NATS'],
  [Notify.AUTH_LIFETIME, 'AUTH_LFT'],
  [Notify.MULTIPLE_AUTH_SUPPORTED, 'MULT_AUTH'],
  [Notify.ANOTHER_AUTH_FOLLOWS, 'AUTH_FOLLOWS'],
  [Notify.REDIRECT_SUPPORTED, 'REDIR_SUP'],
  [Notify.REDIRECT, 'REDIR'],
  [Notify.REDIRECTED_FROM, 'REDIR_FROM'],
  [Notify.TICKET_LT_OPAQUE, 'TKT_LT_OPAK'],
  [Notify.TICKET_REQUEST, 'TKT_REQ'],
  [Notify.TICKET_ACK, 'TKT_ACK'],
  [Notify.TICKET_NACK, 'TKT_NACK'],
  [Notify.TICKET_OPAQUE, 'TKT_OPAK'],
  [Notify.LINK_ID, 'LINK_ID'],
  [Notify.USE_WESP_MODE, 'WESP_MODE'],
  [Notify.ROHC_SUPPORTED, 'ROHC_SUP'],
  [Notify.EAP_ONLY_AUTHENTICATION, 'EAP_ONLY'],
  [Notify.CHILDLESS_IKEV2_SUPPORTED, 'CHDLESS_SUP'],
  [Notify.QUICK_CRASH_DETECTION, 'CRASH_DET'],
  [Notify.IKEV2_MESSAGE_ID_SYNC_SUPPORTED, 'MSG_ID_SYN_SUP'],
  [Notify.IPSEC_REPLAY_COUNTER_SYNC_SUPPORTED, 'RPL_CTR_SYN_SUP'],
  [Notify.IKEV2_MESSAGE_ID_SYNC, 'MSG_ID_SYN'],
  [Notify.IPSEC_REPLAY_COUNTER_SYNC, 'RPL_CTR_SYN'],
  [Notify.SECURE_PASSWORD_METHODS, 'SEC_PASSWD'],
  [Notify.PSK_PERSIST, 'PSK_PST'],
  [Notify.PSK_CONFIRM, 'PSK_CFM'],
  [Notify.ERX_SUPPORTED, 'ERX_SUP'],
  [Notify.IFOM_CAPABILITY, 'IFOM_CAP'],
  [Notify.SENDER_REQUEST_ID, 'SENDER_REQ_ID'],
  [Notify.IKEV2_FRAGMENTATION_SUPPORTED, 'FRAG_SUP'],
  [Notify.SIGNATURE_HASH_ALGORITHMS, 'HASH_ALG'],
  [Notify.USE_PPK, 'USE_PPK'],
  [Notify.PPK_IDENTITY, 'PPK_ID'],
  [Notify.NO_PPK_AUTH, 'NO_PPK'],
  [Notify.INTERMEDIATE_EXCHANGE_SUPPORTED, 'IKE_INT_SUP'],
]);

/** Short notify name for logs, e.g. NATD_S_IP; the number when we have no name. */
export function notifyShortName(t: number): string {
  return notifyShort.get(t) ?? String(t);
}

/** Configuration attribute short names as strongSwan logs them (RFC 7296 §3.15.1 numbers). */
const cfgAttrShort: ReadonlyMap<number, string> = new Map([
  [1, 'ADDR'],
  [2, 'MASK'],
  [3, 'DNS'],
  [4, 'NBNS'],
  [6, 'DHCP'],
  [7, 'VER'],
  [8, 'ADDR6'],
  [10, 'DNS6'],
  [12, 'DHCP6'],
  [13, 'SUBNET'],
  [14, 'SUP'],
  [15, 'SUBNET6'],
]);
const cfgTypeShort: ReadonlyMap<number, string> = new Map([
  [CfgType.CFG_REQUEST, 'CPRQ'],
  [CfgType.CFG_REPLY, 'CPRP'],
  [CfgType.CFG_SET, 'CPS'],
  [CfgType.CFG_ACK, 'CPA'],
]);
const eapCodeShort = ['', 'REQ', 'RES', 'SUCC', 'FAIL'];

function summarizeOne(p: Payload): string {
  if (isUnknown(p)) return payloadName(p.type);
  switch (p.type) {
    case PayloadType.NOTIFY:
      return `N(${notifyShortName(p.notifyType)})`;
    case PayloadType.SKF:
      return `EF(${p.fragmentNumber}/${p.totalFragments})`;
    case PayloadType.CP: {
      const attrs = p.attributes.map((a) => cfgAttrShort.get(a.type) ?? String(a.type)).join(' ');
      return `${cfgTypeShort.get(p.cfgType) ?? `CP${p.cfgType}`}(${attrs})`;
    }
    case PayloadType.EAP: {
      const code = p.data[0] ?? 0;
      const kind = p.data[4];
      const name = `EAP/${eapCodeShort[code] ?? String(code)}`;
      if ((code === 1 || code === 2) && kind !== undefined)
        return `${name}/${kind === 1 ? 'ID' : String(kind)}`;
      return name;
    }
    default:
      return payloadName(p.type);
  }
}

/** strongSwan-style payload list for log lines, e.g. `[ SA KE No N(NATD_S_IP) N(NATD_D_IP) ]`. */
export function summarize(payloads: readonly Payload[]): string {
  if (payloads.length === 0) return '[ ]';
  return `[ ${payloads.map(summarizeOne).join(' ')} ]`;
}
