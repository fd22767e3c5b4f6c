// Real strongSwan 5.9.8 messages (test/fixtures/strongswan, see its README): every IKE message
// decodes, re-encodes byte for byte and passes the payload rules; decrypted SK contents
// (`*.inner.bin`) decode with the SK's innerType; summaries match strongSwan's own log lines.
import { describe, expect, it } from 'vitest';
import { hex } from '../../../src/common/bytes.js';
import { HeaderFlag } from '../../../src/ike/wire/constants.js';
import {
  decodeMessage,
  decodePayloadChain,
  encodeMessage,
  encodePayloadChain,
  summarize,
} from '../../../src/ike/wire/message.js';
import { checkPayloadRules, findUnsupportedCritical } from '../../../src/ike/wire/rules.js';
import type { Payload } from '../../../src/ike/wire/types.js';
import { strongswanFixtures } from '../../helpers/roundtrip.js';

const fixtures = strongswanFixtures();

describe('strongSwan 5.9.8 fixtures', () => {
  it.skipIf(fixtures.length > 0)('no fixture .bin files present (skipped)', () => {});

  it.skipIf(fixtures.length === 0)(`found fixture messages (${fixtures.length})`, () => {
    expect(fixtures.length).toBeGreaterThan(0);
  });

  for (const fx of fixtures) {
    it(`${fx.name}: decodes, re-encodes byte-exactly, passes the payload rules`, () => {
      const m = decodeMessage(fx.bytes);
      expect(hex(encodeMessage(m))).toBe(hex(fx.bytes));
      expect(findUnsupportedCritical(m.payloads)).toBeUndefined();
      const isResponse = (m.header.flags & HeaderFlag.RESPONSE) !== 0;

      let inner: Payload[] | undefined;
      const last = m.payloads[m.payloads.length - 1];
      if (fx.inner !== undefined) {
        expect(last?.type).toBe(46);
        const innerType = last !== undefined && 'innerType' in last ? last.innerType : -1;
        inner = decodePayloadChain(innerType, fx.inner);
        expect(hex(encodePayloadChain(inner))).toBe(hex(fx.inner));
        expect(findUnsupportedCritical(inner)).toBeUndefined();
      }
      checkPayloadRules(m.header.exchange, isResponse, m.payloads, inner);
      if (fx.summary !== undefined) expect(summarize(inner ?? m.payloads)).toBe(fx.summary);
    });
  }
});
