// Which payloads may appear in each exchange, how often, and whether inside SK (RFC 7296 §1.2-§1.4,
// §2.6, §2.21). The same idea as strongSwan's per-exchange payload rules in message.c and
// libreswan's per-transition payload lists, written out for the four IKEv2 exchanges we speak.
//
// How to read the table:
// - IKE_SA_INIT is sent in the clear: the rules apply to the outer payloads and SK/SKF is not
//   allowed. The other three exchanges carry everything inside one SK (or SKF fragments): outside
//   it only that single SK/SKF may appear, and the rules apply to the decrypted inner payloads.
// - Payloads of unknown type are allowed anywhere and are not counted (RFC 7296 §2.5); the engine
//   asks findUnsupportedCritical() separately.
// - `min` counts are waived for a response that carries an error Notify (types 1..16383), or, in
//   IKE_SA_INIT, COOKIE (§2.6) or REDIRECT (RFC 5685 §3): such responses are legitimately bare, e.g.
//   `HDR, N(INVALID_KE_PAYLOAD)`, `HDR, N(COOKIE)`, `SK{ N(AUTHENTICATION_FAILED) }`.
// - `max` counts always apply. The caps on repeatable payloads (N, V, CERT, CERTREQ, D) are
//   generous bounds on work, not protocol limits.
// - `together` groups: if one member is present, all must be (SA with TSi/TSr in IKE_AUTH; TSi with
//   TSr in CREATE_CHILD_SA, where SA is required anyway). Waived along with the minimums.
import { DecodeError } from '../../common/errors.js';
import { ExchangeType, exchangeName, isErrorNotify, Notify, PayloadType } from './constants.js';
import { payloadName } from './message.js';
import { isUnknown, type Payload } from './types.js';

export interface PayloadRule {
  type: number;
  min: number;
  max: number;
}

export interface MessageRules {
  /** true: all rule payloads are inside SK/SKF; false: in the clear, SK/SKF not allowed. */
  encrypted: boolean;
  payloads: readonly PayloadRule[];
  /** Each group: all members present or none. */
  together: readonly (readonly number[])[];
  /** Status notifies that, like error notifies, make a bare response acceptable. */
  bareResponseNotifies: readonly number[];
}

const MAX_N = 64;
const MAX_V = 32;
const MAX_CERT = 16;
const MAX_CERTREQ = 16;
const MAX_D = 32;

const { SA, KE, IDi, IDr, CERT, CERTREQ, AUTH, NONCE, NOTIFY, DELETE, VENDOR_ID, TSi, TSr, CP, EAP } =
  PayloadType;

const rule = (type: number, min: number, max: number): PayloadRule => ({ type, min, max });

const ikeSaInitRequest: MessageRules = {
  encrypted: false,
  payloads: [
    rule(SA, 1, 1),
    rule(KE, 1, 1),
    rule(NONCE, 1, 1),
    rule(NOTIFY, 0, MAX_N),
    rule(VENDOR_ID, 0, MAX_V),
  ],
  together: [],
  bareResponseNotifies: [],
};

const ikeSaInitResponse: MessageRules = {
  encrypted: false,
  payloads: [
    rule(SA, 1, 1),
    rule(KE, 1, 1),
    rule(NONCE, 1, 1),
    rule(CERTREQ, 0, MAX_CERTREQ),
    rule(NOTIFY, 0, MAX_N),
    rule(VENDOR_ID, 0, MAX_V),
  ],
  together: [],
  bareResponseNotifies: [Notify.COOKIE, Notify.REDIRECT],
};

// IKE_AUTH minimums are all 0: EAP rounds carry only EAP (or AUTH) and childless IKE_AUTH
// (RFC 6023) has no SA/TS; the auth task checks what each round needs.
const ikeAuthRequest: MessageRules = {
  encrypted: true,
  payloads: [
    rule(IDi, 0, 1),
    rule(CERT, 0, MAX_CERT),
    rule(CERTREQ, 0, MAX_CERTREQ),
    rule(IDr, 0, 1),
    rule(AUTH, 0, 1),
    rule(EAP, 0, 1),
    rule(CP, 0, 1),
    rule(SA, 0, 1),
    rule(TSi, 0, 1),
    rule(TSr, 0, 1),
    rule(NOTIFY, 0, MAX_N),
    rule(VENDOR_ID, 0, MAX_V),
  ],
  together: [[SA, TSi, TSr]],
  bareResponseNotifies: [],
};

const ikeAuthResponse: MessageRules = {
  encrypted: true,
  payloads: [
    rule(IDr, 0, 1),
    rule(CERT, 0, MAX_CERT),
    rule(AUTH, 0, 1),
    rule(EAP, 0, 1),
    rule(CP, 0, 1),
    rule(SA, 0, 1),
    rule(TSi, 0, 1),
    rule(TSr, 0, 1),
    rule(NOTIFY, 0, MAX_N),
    rule(VENDOR_ID, 0, MAX_V),
  ],
  together: [[SA, TSi, TSr]],
  bareResponseNotifies: [],
};

// CREATE_CHILD_SA creates or rekeys a CHILD_SA (SA, Ni, [KEi], TSi, TSr) or rekeys the IKE SA
// (SA, Ni, KEi, no TS) (RFC 7296 §1.3).
const createChildSa = (bare: readonly number[]): MessageRules => ({
  encrypted: true,
  payloads: [
    rule(SA, 1, 1),
    rule(NONCE, 1, 1),
    rule(KE, 0, 1),
    rule(TSi, 0, 1),
    rule(TSr, 0, 1),
    rule(CP, 0, 1),
    rule(NOTIFY, 0, MAX_N),
    rule(VENDOR_ID, 0, MAX_V),
  ],
  together: [[TSi, TSr]],
  bareResponseNotifies: bare,
});

const informational: MessageRules = {
  encrypted: true,
  payloads: [rule(NOTIFY, 0, MAX_N), rule(DELETE, 0, MAX_D), rule(CP, 0, 1), rule(VENDOR_ID, 0, MAX_V)],
  together: [],
  bareResponseNotifies: [],
};

const table: ReadonlyMap<number, readonly [request: MessageRules, response: MessageRules]> = new Map([
  [ExchangeType.IKE_SA_INIT, [ikeSaInitRequest, ikeSaInitResponse]],
  [ExchangeType.IKE_AUTH, [ikeAuthRequest, ikeAuthResponse]],
  [ExchangeType.CREATE_CHILD_SA, [createChildSa([]), createChildSa([])]],
  [ExchangeType.INFORMATIONAL, [informational, informational]],
]);

/** The rules for one direction of an exchange, or undefined for exchanges we do not handle. */
export function rulesFor(exchange: number, isResponse: boolean): MessageRules | undefined {
  return table.get(exchange)?.[isResponse ? 1 : 0];
}

function isEncryptedType(t: number): boolean {
  return t === PayloadType.SK || t === PayloadType.SKF;
}

const name = payloadName;

/**
 * Checks payload presence and counts for a message of `exchange` (RFC 7296 §1.2-1.5). `outer` are
 * the payloads of the message; `inner` the decrypted SK content, or undefined when not decrypted
 * yet (then only the outer layout is checked; call again with `inner` after decryption).
 * Throws DecodeError (INVALID_SYNTAX) naming the rule that failed.
 */
export function checkPayloadRules(
  exchange: number,
  isResponse: boolean,
  outer: readonly Payload[],
  inner: readonly Payload[] | undefined,
): void {
  const rules = rulesFor(exchange, isResponse);
  const where = `${exchangeName(exchange)} ${isResponse ? 'response' : 'request'}`;
  if (rules === undefined) throw new DecodeError(`${where}: no payload rules for exchange type ${exchange}`);

  let body: readonly Payload[];
  if (rules.encrypted) {
    const enc = outer.filter((p) => !isUnknown(p) && isEncryptedType(p.type));
    if (enc.length !== 1)
      throw new DecodeError(`${where}: expected one SK or SKF payload, found ${enc.length}`);
    const clear = outer.find((p) => !isUnknown(p) && !isEncryptedType(p.type));
    if (clear !== undefined) throw new DecodeError(`${where}: ${name(clear.type)} payload must be inside SK`);
    if (inner === undefined) return;
    body = inner;
  } else {
    if (inner !== undefined) throw new DecodeError(`${where}: has no encrypted payloads`);
    body = outer;
  }

  const counts = new Map<number, number>();
  for (const p of body) {
    if (isUnknown(p)) continue;
    counts.set(p.type, (counts.get(p.type) ?? 0) + 1);
  }
  for (const t of counts.keys()) {
    if (!rules.payloads.some((r) => r.type === t)) {
      const place = rules.encrypted ? 'inside SK in' : 'in';
      throw new DecodeError(`${where}: ${name(t)} payload not allowed ${place} this message`);
    }
  }
  for (const r of rules.payloads) {
    const n = counts.get(r.type) ?? 0;
    if (n > r.max) throw new DecodeError(`${where}: ${n} ${name(r.type)} payloads, at most ${r.max} allowed`);
  }

  const bare =
    isResponse &&
    body.some(
      (p) =>
        !isUnknown(p) &&
        p.type === PayloadType.NOTIFY &&
        (isErrorNotify(p.notifyType) || rules.bareResponseNotifies.includes(p.notifyType)),
    );
  if (bare) return;

  for (const r of rules.payloads) {
    const n = counts.get(r.type) ?? 0;
    if (n < r.min) throw new DecodeError(`${where}: ${name(r.type)} payload missing`);
  }
  for (const group of rules.together) {
    const present = group.filter((t) => counts.has(t));
    if (present.length !== 0 && present.length !== group.length) {
      const missing = group.filter((t) => !counts.has(t)).map(name);
      throw new DecodeError(`${where}: ${present.map(name).join('/')} without ${missing.join('/')}`);
    }
  }
}

/**
 * The type of the first payload we do not understand that has the critical bit set, if any. The
 * engine rejects such a message with UNSUPPORTED_CRITICAL_PAYLOAD carrying this type (RFC 7296
 * §2.5, §3.2). Check both the outer payloads and the decrypted inner ones.
 */
export function findUnsupportedCritical(payloads: readonly Payload[]): number | undefined {
  for (const p of payloads) {
    if (isUnknown(p) && p.critical) return p.type;
  }
  return undefined;
}
