import { describe, expect, it } from 'vitest';
import { DecodeError } from '../../../src/common/errors.js';
import { ExchangeType, Notify } from '../../../src/ike/wire/constants.js';
import { checkPayloadRules, findUnsupportedCritical, rulesFor } from '../../../src/ike/wire/rules.js';
import type { Payload } from '../../../src/ike/wire/types.js';

const e0 = new Uint8Array(0);
const SA: Payload = { type: 33, critical: false, proposals: [] };
const KE: Payload = { type: 34, critical: false, group: 31, data: new Uint8Array(32) };
const No: Payload = { type: 40, critical: false, data: new Uint8Array(32) };
const IDi: Payload = { type: 35, critical: false, idType: 1, data: new Uint8Array(4) };
const IDr: Payload = { type: 36, critical: false, idType: 1, data: new Uint8Array(4) };
const AUTH: Payload = { type: 39, critical: false, method: 2, data: new Uint8Array(32) };
const TSi: Payload = { type: 44, critical: false, selectors: [] };
const TSr: Payload = { type: 45, critical: false, selectors: [] };
const CERTREQ: Payload = { type: 38, critical: false, encoding: 4, data: e0 };
const D: Payload = { type: 42, critical: false, protocolId: 3, spiSize: 4, spis: [] };
const V: Payload = { type: 43, critical: false, data: new Uint8Array(4) };
const CP: Payload = { type: 47, critical: false, cfgType: 1, attributes: [] };
const EAP: Payload = { type: 48, critical: false, data: new Uint8Array([1, 1, 0, 5, 1]) };
const SK: Payload = { type: 46, critical: false, innerType: 35, data: new Uint8Array(32) };
const SKF: Payload = {
  type: 53,
  critical: false,
  innerType: 35,
  fragmentNumber: 1,
  totalFragments: 2,
  data: e0,
};
const U: Payload = { type: 222, critical: false, unknown: true, body: e0 };
const Ucrit: Payload = { type: 223, critical: true, unknown: true, body: e0 };
const N = (t: number): Payload => ({
  type: 41,
  critical: false,
  protocolId: 0,
  spi: e0,
  notifyType: t,
  data: e0,
});

const { IKE_SA_INIT, IKE_AUTH, CREATE_CHILD_SA, INFORMATIONAL } = ExchangeType;

function ok(ex: number, resp: boolean, outer: Payload[], inner?: Payload[]): void {
  expect(() => checkPayloadRules(ex, resp, outer, inner)).not.toThrow();
}
function bad(ex: number, resp: boolean, outer: Payload[], inner: Payload[] | undefined, msg: RegExp): void {
  const f = () => checkPayloadRules(ex, resp, outer, inner);
  expect(f).toThrow(DecodeError);
  expect(f).toThrow(msg);
}

describe('payload rules: IKE_SA_INIT', () => {
  it('accepts normal requests and responses', () => {
    ok(IKE_SA_INIT, false, [
      SA,
      KE,
      No,
      N(Notify.NAT_DETECTION_SOURCE_IP),
      N(Notify.NAT_DETECTION_DESTINATION_IP),
      V,
    ]);
    ok(IKE_SA_INIT, false, [N(Notify.COOKIE), SA, KE, No]);
    ok(IKE_SA_INIT, true, [SA, KE, No, CERTREQ, N(Notify.IKEV2_FRAGMENTATION_SUPPORTED), U]);
  });
  it('accepts bare error / COOKIE / REDIRECT responses', () => {
    ok(IKE_SA_INIT, true, [N(Notify.INVALID_KE_PAYLOAD)]);
    ok(IKE_SA_INIT, true, [N(Notify.COOKIE)]);
    ok(IKE_SA_INIT, true, [N(Notify.NO_PROPOSAL_CHOSEN)]);
    ok(IKE_SA_INIT, true, [N(Notify.REDIRECT)]);
  });
  it('rejects missing, repeated, misplaced and encrypted payloads', () => {
    bad(IKE_SA_INIT, false, [SA, No], undefined, /IKE_SA_INIT request: KE payload missing/);
    bad(IKE_SA_INIT, false, [N(Notify.INVALID_KE_PAYLOAD)], undefined, /SA payload missing/); // relief only for responses
    bad(IKE_SA_INIT, true, [N(Notify.NAT_DETECTION_SOURCE_IP)], undefined, /SA payload missing/);
    bad(IKE_SA_INIT, false, [SA, KE, No, No], undefined, /2 No payloads, at most 1/);
    bad(IKE_SA_INIT, true, [N(Notify.COOKIE), SA, SA], undefined, /2 SA payloads/); // max still applies
    bad(IKE_SA_INIT, false, [SA, KE, No, IDi], undefined, /IDi payload not allowed/);
    bad(IKE_SA_INIT, false, [SA, KE, No, CERTREQ], undefined, /CERTREQ payload not allowed/);
    bad(IKE_SA_INIT, false, [SA, KE, No, SK], undefined, /SK payload not allowed/);
    bad(IKE_SA_INIT, false, [SA, KE, No], [], /has no encrypted payloads/);
  });
});

describe('payload rules: IKE_AUTH', () => {
  it('checks the outer layout alone before decryption', () => {
    ok(IKE_AUTH, false, [SK], undefined);
    ok(IKE_AUTH, false, [SKF], undefined);
    ok(IKE_AUTH, false, [U, SK], undefined);
    bad(IKE_AUTH, false, [], undefined, /expected one SK or SKF payload, found 0/);
    bad(IKE_AUTH, false, [N(Notify.INITIAL_CONTACT), SK], undefined, /N payload must be inside SK/);
    bad(IKE_AUTH, false, [IDi], [IDi], /found 0/);
  });
  it('accepts PSK, childless, EAP-round and bare error messages', () => {
    ok(
      IKE_AUTH,
      false,
      [SK],
      [IDi, AUTH, SA, TSi, TSr, N(Notify.INITIAL_CONTACT), N(Notify.MOBIKE_SUPPORTED), CP],
    );
    ok(IKE_AUTH, false, [SK], [IDi, IDr, CERTREQ, AUTH]);
    ok(IKE_AUTH, false, [SK], [EAP]);
    ok(IKE_AUTH, true, [SK], [IDr, AUTH, SA, TSi, TSr, N(Notify.MOBIKE_SUPPORTED)]);
    ok(IKE_AUTH, true, [SK], [N(Notify.AUTHENTICATION_FAILED)]);
    ok(IKE_AUTH, true, [SK], [IDr, AUTH, N(Notify.TS_UNACCEPTABLE)]);
    ok(IKE_AUTH, true, [SK], [U, Ucrit]);
  });
  it('rejects payloads of the wrong direction, duplicates and split SA/TS', () => {
    bad(IKE_AUTH, true, [SK], [IDi, AUTH], /IKE_AUTH response: IDi payload not allowed inside SK/);
    bad(IKE_AUTH, true, [SK], [IDr, AUTH, CERTREQ], /CERTREQ payload not allowed/);
    bad(IKE_AUTH, false, [SK], [IDi, IDi, AUTH], /2 IDi payloads/);
    bad(IKE_AUTH, false, [SK], [IDi, AUTH, SA, TSi], /SA\/TSi without TSr/);
    bad(IKE_AUTH, false, [SK], [IDi, AUTH, TSi, TSr], /TSi\/TSr without SA/);
    bad(IKE_AUTH, false, [SK], [IDi, AUTH, D], /D payload not allowed/);
    bad(IKE_AUTH, false, [SK], [IDi, AUTH, SK], /SK payload not allowed inside SK/);
  });
});

describe('payload rules: CREATE_CHILD_SA', () => {
  it('accepts CHILD_SA create/rekey and IKE rekey, and bare errors in responses', () => {
    ok(CREATE_CHILD_SA, false, [SK], [N(Notify.REKEY_SA), SA, No, TSi, TSr]);
    ok(CREATE_CHILD_SA, false, [SK], [SA, No, KE, TSi, TSr]);
    ok(CREATE_CHILD_SA, false, [SK], [SA, No, KE]);
    ok(CREATE_CHILD_SA, true, [SK], [SA, No, TSi, TSr, N(Notify.ADDITIONAL_TS_POSSIBLE)]);
    ok(CREATE_CHILD_SA, true, [SK], [N(Notify.NO_ADDITIONAL_SAS)]);
    ok(CREATE_CHILD_SA, true, [SK], [N(Notify.TEMPORARY_FAILURE)]);
  });
  it('rejects missing SA or nonce and lone TS', () => {
    bad(CREATE_CHILD_SA, false, [SK], [No, TSi, TSr], /SA payload missing/);
    bad(CREATE_CHILD_SA, true, [SK], [SA, TSi, TSr], /No payload missing/);
    bad(CREATE_CHILD_SA, false, [SK], [SA, No, TSi], /TSi without TSr/);
    bad(CREATE_CHILD_SA, false, [SK], [SA, No, KE, KE], /2 KE payloads/);
    bad(CREATE_CHILD_SA, false, [SK], [SA, No, AUTH], /AUTH payload not allowed/);
  });
});

describe('payload rules: INFORMATIONAL', () => {
  it('accepts empty (DPD), deletes, notifies and CP', () => {
    ok(INFORMATIONAL, false, [SK], []);
    ok(INFORMATIONAL, true, [SK], []);
    ok(INFORMATIONAL, false, [SK], [D, D, N(Notify.UPDATE_SA_ADDRESSES), CP, V]);
    ok(INFORMATIONAL, true, [SK], [N(Notify.INVALID_SYNTAX)]);
  });
  it('rejects SA/KE and over-large counts', () => {
    bad(INFORMATIONAL, false, [SK], [SA], /SA payload not allowed/);
    bad(
      INFORMATIONAL,
      false,
      [SK],
      Array.from({ length: 65 }, () => N(Notify.ADDITIONAL_IP4_ADDRESS)),
      /65 N payloads, at most 64/,
    );
    bad(INFORMATIONAL, false, [SK], [CP, CP], /2 CP payloads/);
  });
});

describe('payload rules: other exchanges and critical payloads', () => {
  it('throws for exchanges without rules', () => {
    expect(rulesFor(43, false)).toBeUndefined();
    bad(43, false, [SK], [], /no payload rules for exchange type 43/);
  });
  it('findUnsupportedCritical returns the first unknown critical type', () => {
    expect(findUnsupportedCritical([SA, U, KE])).toBeUndefined();
    expect(findUnsupportedCritical([SA, U, Ucrit, { ...Ucrit, type: 250 }])).toBe(223);
    expect(findUnsupportedCritical([{ ...No, critical: true }])).toBeUndefined(); // known payloads: bit ignored
  });
});
