// Small constructors and finders for payload objects used by the exchanges.

import { PayloadType } from '../wire/constants.js';
import type {
  AuthPayload,
  DeletePayload,
  IdPayload,
  KePayload,
  KnownPayload,
  NoncePayload,
  NotifyPayload,
  Payload,
  Proposal,
  SaPayload,
  TrafficSelector,
  TsPayload,
} from '../wire/types.js';

const empty = new Uint8Array(0);

export function notify(
  notifyType: number,
  data: Uint8Array = empty,
  protocolId = 0,
  spi: Uint8Array = empty,
): NotifyPayload {
  return { type: PayloadType.NOTIFY, critical: false, protocolId, spi, notifyType, data };
}
export function sa(proposals: Proposal[]): SaPayload {
  return { type: PayloadType.SA, critical: false, proposals };
}
export function ke(group: number, data: Uint8Array): KePayload {
  return { type: PayloadType.KE, critical: false, group, data };
}
export function nonce(data: Uint8Array): NoncePayload {
  return { type: PayloadType.NONCE, critical: false, data };
}
export function id(type: 35 | 36, idType: number, data: Uint8Array): IdPayload {
  return { type, critical: false, idType, data };
}
export function auth(method: number, data: Uint8Array): AuthPayload {
  return { type: PayloadType.AUTH, critical: false, method, data };
}
export function ts(type: 44 | 45, selectors: TrafficSelector[]): TsPayload {
  return { type, critical: false, selectors };
}
export function del(protocolId: number, spiSize: number, spis: Uint8Array[]): DeletePayload {
  return { type: PayloadType.DELETE, critical: false, protocolId, spiSize, spis };
}

/** The known payload variant whose `type` admits T (IdPayload for 35 and for 36). */
type ByType<T extends number> = KnownPayload extends infer P
  ? P extends { type: infer U }
    ? T extends U
      ? P
      : never
    : never
  : never;

export function find<T extends number>(ps: Payload[], type: T): ByType<T> | undefined {
  return ps.find((p) => p.type === type && !('unknown' in p)) as ByType<T> | undefined;
}
export function findAll<T extends number>(ps: Payload[], type: T): ByType<T>[] {
  return ps.filter((p) => p.type === type && !('unknown' in p)) as ByType<T>[];
}
export function notifies(ps: Payload[]): NotifyPayload[] {
  return findAll(ps, PayloadType.NOTIFY as 41);
}
export function findNotify(ps: Payload[], t: number): NotifyPayload | undefined {
  return notifies(ps).find((n) => n.notifyType === t);
}
/** First error notify (type < 16384), if any. */
export function errorNotify(ps: Payload[]): NotifyPayload | undefined {
  return notifies(ps).find((n) => n.notifyType > 0 && n.notifyType < 16384);
}

export function u32(v: number): Uint8Array {
  return new Uint8Array([(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff]);
}
export function readU32(b: Uint8Array): number {
  return ((b[0]! << 24) >>> 0) + ((b[1]! << 16) | (b[2]! << 8) | b[3]!);
}
export function u16(v: number): Uint8Array {
  return new Uint8Array([(v >>> 8) & 0xff, v & 0xff]);
}
