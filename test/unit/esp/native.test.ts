// The native addon (native/ikegw_native.c) that the userspace data path needs for TUN, raw ESP,
// sendmmsg and the AEAD fast path, and both data paths for the NAT-T socket's descriptor. `npm ci` builds it (package.json "install": native/build.mjs);
// in CI its absence is a failure, elsewhere the dependent tests skip with the reason.
import { describe, expect, it } from 'vitest';
import { loadNative, nativeAvailable } from '../../../src/common/native.js';
import { createEspCrypto } from '../../../src/esp/userspace/esp-packet.js';

const avail = nativeAvailable();

describe('native addon', () => {
  it.skipIf(!process.env.CI && !avail.ok)('is built and exports every function the data path uses', () => {
    expect(avail).toEqual({ ok: true });
    const n = loadNative();
    for (const f of [
      'tunOpen',
      'rawEspOpen4',
      'readerStart',
      'readerStop',
      'write',
      'sendTo4',
      'close',
      'udpSendBatch',
      'udpBind',
      'setsockoptInt',
      'getsockoptInt',
      'aeadNew',
      'aeadSeal',
      'aeadOpen',
    ])
      expect(typeof (n as unknown as Record<string, unknown>)[f], f).toBe('function');
  });

  it.skipIf(!avail.ok)('rejects bad arguments with exceptions, not crashes', () => {
    const n = loadNative();
    expect(() => n.aeadNew(0, new Uint8Array(15), new Uint8Array(4), true)).toThrow(/unsupported/);
    const h = n.aeadNew(0, new Uint8Array(16), new Uint8Array(4), true);
    const buf = new Uint8Array(64);
    expect(() => n.aeadSeal(h, new Uint8Array(8), buf, 60, 16, 8, 40)).toThrow(); // IV beyond the buffer
    expect(() => n.aeadSeal(h, new Uint8Array(8), buf, 8, 16, 100, 40)).toThrow(); // data beyond
    expect(() =>
      n.udpSendBatch(
        -1,
        buf,
        new Int32Array([0]),
        new Int32Array([100]),
        new Uint32Array(1),
        new Int32Array(1),
        1,
      ),
    ).toThrow();
    expect(n.write(-1, buf, 0, 1)).toBe(-9); // EBADF as a value
  });

  it.skipIf(!avail.ok)('an AEAD context used the wrong way round fails cleanly', () => {
    const c = createEspCrypto(
      { kind: 'aead', name: 'aes-gcm-16', keyBits: 128 },
      new Uint8Array(20),
      new Uint8Array(0),
      false,
      'native',
    );
    expect(c.impl).toBe('native');
    const pkt = new Uint8Array(c.packetLength(20));
    expect(c.openInPlace(pkt, 0)).toBe(-1); // all-zero packet: tag mismatch
  });
});
