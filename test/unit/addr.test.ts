import { isIPv4 } from 'node:net';
import { describe, expect, it } from 'vitest';
import { addrToBytes, ipv4Bytes, ipv4ToUint32 } from '../../src/common/addr.js';
import { ipToBytes } from '../../src/ike/crypto/keymat.js';

describe('ipv4ToUint32: dotted quads without allocation', () => {
  it('agrees with node:net isIPv4 on edge cases and on 20,000 random strings', () => {
    const edge = [
      '0.0.0.0',
      '255.255.255.255',
      '10.0.0.1',
      '192.168.1.10',
      '256.1.1.1',
      '1.2.3',
      '1.2.3.4.5',
      '01.2.3.4',
      '1.2.3.04',
      '0.0.0.00',
      '1..2.3',
      '.1.2.3',
      '1.2.3.',
      '1.2.3.4 ',
      '',
      '1.2.3.a',
      '1234.1.1.1',
      '::ffff:1.2.3.4',
    ];
    let seed = 7;
    const rnd = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    const alphabet = '0123456789.0123456789.a ';
    const random = Array.from({ length: 20_000 }, () => {
      const n = 1 + (rnd() % 16);
      let s = '';
      for (let i = 0; i < n; i++) s += alphabet[rnd() % alphabet.length];
      return s;
    });
    for (const s of [...edge, ...random]) {
      const v = ipv4ToUint32(s);
      expect(v >= 0, JSON.stringify(s)).toBe(isIPv4(s));
      if (v >= 0) expect(v).toBe(s.split('.').reduce((a, o) => a * 256 + Number(o), 0));
    }
  });

  it('bytes in network order, the same from every converter', () => {
    expect([...ipv4Bytes('192.0.2.254')!]).toEqual([192, 0, 2, 254]);
    expect(ipv4Bytes('2001:db8::1')).toBeUndefined();
    expect(addrToBytes('198.51.100.7')).toEqual(ipToBytes('198.51.100.7'));
    expect(addrToBytes('2001:db8::1')).toEqual(ipToBytes('2001:db8::1'));
    expect(() => ipToBytes('01.2.3.4')).toThrow(/not an IP address/);
    expect(() => addrToBytes('1.2.3')).toThrow(/not an IP address/);
  });
});
