// The decoded form of IKEv2 messages (RFC 7296 §3). Codecs in payload/*.ts turn bytes into these
// objects and back. Anything 64-bit is a bigint; variable data is a Uint8Array.

export interface IkeHeader {
  spiI: bigint;
  spiR: bigint;
  /** Type of the first payload. Filled in by the encoder from the payload list. */
  nextPayload: number;
  /** Major/minor version byte; 0x20 for IKEv2. */
  version: number;
  exchange: number;
  /** Raw flag bits (HeaderFlag.*). */
  flags: number;
  msgId: number;
  /** Total message length as found on the wire (encoders recompute it). */
  length: number;
}

export interface TransformAttribute {
  type: number;
  /** TV format (AF bit set): 16-bit value. TLV format: bytes. */
  value: number | Uint8Array;
}

export interface Transform {
  type: number;
  id: number;
  attributes: TransformAttribute[];
}

export interface Proposal {
  num: number;
  protocolId: number;
  /** Empty for IKE in IKE_SA_INIT, 8 bytes for IKE rekey, 4 bytes for ESP/AH. */
  spi: Uint8Array;
  transforms: Transform[];
}

export interface TrafficSelector {
  tsType: number; // TsType.*
  ipProtocol: number; // 0 = any
  startPort: number;
  endPort: number;
  /** 4 bytes (IPv4) or 16 bytes (IPv6). */
  startAddr: Uint8Array;
  endAddr: Uint8Array;
}

export interface CfgAttribute {
  type: number;
  value: Uint8Array;
}

interface Base {
  critical: boolean;
}

export interface SaPayload extends Base {
  type: 33;
  proposals: Proposal[];
}
export interface KePayload extends Base {
  type: 34;
  group: number;
  data: Uint8Array;
}
export interface IdPayload extends Base {
  type: 35 | 36;
  idType: number;
  data: Uint8Array;
}
export interface CertPayload extends Base {
  type: 37 | 38;
  encoding: number;
  data: Uint8Array;
}
export interface AuthPayload extends Base {
  type: 39;
  method: number;
  data: Uint8Array;
}
export interface NoncePayload extends Base {
  type: 40;
  data: Uint8Array;
}
export interface NotifyPayload extends Base {
  type: 41;
  protocolId: number;
  spi: Uint8Array;
  notifyType: number;
  data: Uint8Array;
}
export interface DeletePayload extends Base {
  type: 42;
  protocolId: number;
  spiSize: number;
  spis: Uint8Array[];
}
export interface VendorIdPayload extends Base {
  type: 43;
  data: Uint8Array;
}
export interface TsPayload extends Base {
  type: 44 | 45;
  selectors: TrafficSelector[];
}
/** Encrypted and authenticated payload, still encrypted: `data` is IV | ciphertext | ICV. */
export interface SkPayload extends Base {
  type: 46;
  /** Type of the first payload inside the encrypted data. */
  innerType: number;
  data: Uint8Array;
}
export interface CpPayload extends Base {
  type: 47;
  cfgType: number;
  attributes: CfgAttribute[];
}
export interface EapPayload extends Base {
  type: 48;
  /** The EAP message as is (code, identifier, length, type, data). Parsed only to reject it. */
  data: Uint8Array;
}
/** RFC 7383 encrypted fragment. */
export interface SkfPayload extends Base {
  type: 53;
  innerType: number;
  fragmentNumber: number;
  totalFragments: number;
  data: Uint8Array;
}
/** A payload type we do not know: kept as is (RFC 7296 §2.5). */
export interface UnknownPayload extends Base {
  type: number & { readonly __unknown?: true };
  unknown: true;
  body: Uint8Array;
}

export type KnownPayload =
  | SaPayload
  | KePayload
  | IdPayload
  | CertPayload
  | AuthPayload
  | NoncePayload
  | NotifyPayload
  | DeletePayload
  | VendorIdPayload
  | TsPayload
  | SkPayload
  | CpPayload
  | EapPayload
  | SkfPayload;

export type Payload = KnownPayload | UnknownPayload;

export interface IkeMessage {
  header: IkeHeader;
  payloads: Payload[];
}

export function isUnknown(p: Payload): p is UnknownPayload {
  return 'unknown' in p && p.unknown === true;
}
