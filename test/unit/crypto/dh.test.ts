// Key exchange: agreement, determinism and peer-value validation for every supported group.
// MODP groups 14-16 have no published vectors (RFC 5114's are for group 24), so they are checked
// here for agreement, encoding and validation; ECP/X25519/X448 KATs are in test/vectors.
import { getDiffieHellman } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { hex } from '../../../src/common/bytes.js';
import { IkeProtocolError } from '../../../src/common/errors.js';
import { type Random, SeededRandom } from '../../../src/common/random.js';
import {
  createKeyExchange,
  isSupportedGroup,
  MODP_EXPONENT_BYTES,
  publicKeyLength,
  supportedGroups,
} from '../../../src/ike/crypto/dh.js';
import { CryptoSuiteError } from '../../../src/ike/crypto/suites.js';
import { DhGroup } from '../../../src/ike/wire/constants.js';

const LENGTHS: Record<number, [pub: number, secret: number]> = {
  [DhGroup.MODP_2048]: [256, 256],
  [DhGroup.MODP_3072]: [384, 384],
  [DhGroup.MODP_4096]: [512, 512],
  [DhGroup.ECP_256]: [64, 32],
  [DhGroup.ECP_384]: [96, 48],
  [DhGroup.ECP_521]: [132, 66],
  [DhGroup.CURVE25519]: [32, 32],
  [DhGroup.CURVE448]: [56, 56],
};

function expectInvalid(f: () => unknown): void {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(IkeProtocolError);
    expect((e as IkeProtocolError).notify).toBe('INVALID_SYNTAX');
    return;
  }
  throw new Error('expected IkeProtocolError(INVALID_SYNTAX)');
}

function bigToBytes(v: bigint, len: number): Uint8Array {
  return Uint8Array.from(Buffer.from(v.toString(16).padStart(2 * len, '0'), 'hex'));
}

describe('supported groups', () => {
  it('lists 31, 32, 19, 20, 21, 14, 15, 16', () => {
    expect([...supportedGroups].sort((a, b) => a - b)).toEqual([14, 15, 16, 19, 20, 21, 31, 32]);
    for (const g of supportedGroups) expect(isSupportedGroup(g)).toBe(true);
    for (const g of [DhGroup.MODP_1024, DhGroup.MODP_1536, DhGroup.ECP_224, DhGroup.BRAINPOOL_256, 0, 99]) {
      expect(isSupportedGroup(g)).toBe(false);
      expect(() => createKeyExchange(g, new SeededRandom(1))).toThrow(CryptoSuiteError);
      expect(() => publicKeyLength(g)).toThrow(CryptoSuiteError);
    }
  });
});

describe.each(supportedGroups.map((g) => [g]))('group %i', (group) => {
  const [pubLen, secretLen] = LENGTHS[group]!;

  it('both sides agree; encodings have the RFC lengths', () => {
    const a = createKeyExchange(group, new SeededRandom(1));
    const b = createKeyExchange(group, new SeededRandom(2));
    expect(publicKeyLength(group)).toBe(pubLen);
    expect(a.group).toBe(group);
    expect(a.publicKey).toHaveLength(pubLen);
    expect(b.publicKey).toHaveLength(pubLen);
    const s1 = a.computeSecret(b.publicKey);
    const s2 = b.computeSecret(a.publicKey);
    expect(s1).toHaveLength(secretLen);
    expect(hex(s1)).toBe(hex(s2));
    expect(hex(a.publicKey)).not.toBe(hex(b.publicKey));
  });

  it('the private value comes from the injected Random (same seed, same public value)', () => {
    const a = createKeyExchange(group, new SeededRandom(5));
    const b = createKeyExchange(group, new SeededRandom(5));
    expect(hex(a.publicKey)).toBe(hex(b.publicKey));
  });

  it('rejects peer values of the wrong length', () => {
    const a = createKeyExchange(group, new SeededRandom(3));
    const peer = createKeyExchange(group, new SeededRandom(4)).publicKey;
    expectInvalid(() => a.computeSecret(peer.subarray(1)));
    expectInvalid(() => a.computeSecret(new Uint8Array(pubLen + 1)));
    expectInvalid(() => a.computeSecret(new Uint8Array(0)));
  });
});

describe('MODP (RFC 3526 groups 14-16)', () => {
  const groups: Array<[number, 'modp14' | 'modp15' | 'modp16']> = [
    [DhGroup.MODP_2048, 'modp14'],
    [DhGroup.MODP_3072, 'modp15'],
    [DhGroup.MODP_4096, 'modp16'],
  ];

  it('uses the RFC 3526 primes: pi-based, with 64 one bits at each end', () => {
    for (const [, name] of groups) {
      const p = hex(getDiffieHellman(name).getPrime());
      expect(p.startsWith('ffffffffffffffffc90fdaa22168c234c4c6628b80dc1cd1')).toBe(true);
      expect(p.endsWith('ffffffffffffffff')).toBe(true);
    }
  });

  it.each(groups)('group %i: rejects 0, 1, p-1, p and values above p; accepts 2 and p-2', (group, name) => {
    const len = publicKeyLength(group);
    const p = BigInt(`0x${hex(getDiffieHellman(name).getPrime())}`);
    const a = createKeyExchange(group, new SeededRandom(9));
    for (const y of [0n, 1n, p - 1n, p, p + 1n, (1n << BigInt(8 * len)) - 1n]) {
      expectInvalid(() => a.computeSecret(bigToBytes(y, len)));
    }
    expect(a.computeSecret(bigToBytes(2n, len))).toHaveLength(len);
    expect(a.computeSecret(bigToBytes(p - 2n, len))).toHaveLength(len);
  });

  it('public values are zero-padded to the prime length and the secret too', () => {
    // A degenerate Random giving exponent x = 2: the public value g^2 = 4 is 255 zero bytes and a 4.
    const one: Random = {
      bytes: (n) => {
        const b = new Uint8Array(n);
        b[n - 1] = 2;
        return b;
      },
      float: () => 0,
    };
    const a = createKeyExchange(DhGroup.MODP_2048, one);
    expect(a.publicKey).toHaveLength(256);
    expect(a.publicKey[255]).toBe(4);
    expect(a.publicKey.subarray(0, 255).every((b) => b === 0)).toBe(true);
    // Secret = y^2 for y = 2: 4, padded to 256 bytes.
    const s = a.computeSecret(bigToBytes(2n, 256));
    expect(s).toHaveLength(256);
    expect(s[255]).toBe(4);
  });

  it(`draws a ${MODP_EXPONENT_BYTES * 8}-bit private exponent and refuses x < 2`, () => {
    const sizes: number[] = [];
    let calls = 0;
    const r: Random = {
      bytes: (n) => {
        sizes.push(n);
        calls++;
        const b = new Uint8Array(n);
        if (calls > 1) b[0] = 0x80; // the first draw is 0: rejected
        return b;
      },
      float: () => 0,
    };
    createKeyExchange(DhGroup.MODP_3072, r);
    expect(sizes).toEqual([MODP_EXPONENT_BYTES, MODP_EXPONENT_BYTES]);
  });
});

describe('ECP (RFC 5903)', () => {
  it.each([[DhGroup.ECP_256], [DhGroup.ECP_384], [DhGroup.ECP_521]])(
    'group %i rejects points not on the curve',
    (group) => {
      const a = createKeyExchange(group, new SeededRandom(21));
      const peer = createKeyExchange(group, new SeededRandom(22)).publicKey.slice();
      peer[peer.length - 1]! ^= 1; // y changed: off the curve
      expectInvalid(() => a.computeSecret(peer));
      expectInvalid(() => a.computeSecret(new Uint8Array(publicKeyLength(group)))); // (0, 0)
      expectInvalid(() => a.computeSecret(new Uint8Array(publicKeyLength(group)).fill(0xff))); // coordinates >= p
    },
  );

  it('redraws a private value of 0 or >= n (rejection sampling into [1, n-1])', () => {
    const draws: Uint8Array[] = [
      new Uint8Array(32),
      new Uint8Array(32).fill(0xff),
      new Uint8Array(32).fill(0x11),
    ];
    const r: Random = { bytes: () => draws.shift()!, float: () => 0 };
    const a = createKeyExchange(DhGroup.ECP_256, r);
    expect(draws).toHaveLength(0);
    const b = createKeyExchange(DhGroup.ECP_256, {
      bytes: () => new Uint8Array(32).fill(0x11),
      float: () => 0,
    });
    expect(hex(a.publicKey)).toBe(hex(b.publicKey));
  });

  it('gives up on a Random that only returns invalid scalars', () => {
    const zero: Random = { bytes: (n) => new Uint8Array(n), float: () => 0 };
    expect(() => createKeyExchange(DhGroup.ECP_384, zero)).toThrow(CryptoSuiteError);
  });
});

describe('Curve25519 / Curve448 (RFC 8031)', () => {
  it('rejects small-order peer values that give an all-zero secret (RFC 7748 §6)', () => {
    const x25519 = createKeyExchange(DhGroup.CURVE25519, new SeededRandom(31));
    const u1 = new Uint8Array(32);
    u1[0] = 1;
    expectInvalid(() => x25519.computeSecret(new Uint8Array(32))); // u = 0
    expectInvalid(() => x25519.computeSecret(u1)); // u = 1
    const x448 = createKeyExchange(DhGroup.CURVE448, new SeededRandom(32));
    const v1 = new Uint8Array(56);
    v1[0] = 1;
    expectInvalid(() => x448.computeSecret(new Uint8Array(56)));
    expectInvalid(() => x448.computeSecret(v1));
  });
});
