// Loader and typing of the project's native addon (native/ikegw_native.c, built by the package's
// install script with node-gyp). Everything that needs it degrades to a clear error (TUN; UDP_ENCAP
// for the XFRM data path), to node:crypto (AEAD) or to one send per packet (sendmmsg) when it is
// missing.
import { createRequire } from 'node:module';
import { KernelError } from './errors.js';

/** The functions of native/ikegw_native.node. */
export interface NativeAddon {
  tunOpen(name: string, mtu: number, txqlen?: number): { fd: number; name: string; ifindex: number };
  rawEspOpen4(): number;
  readerStart(
    fd: number,
    buffer: ArrayBuffer,
    slotSize: number,
    slots: number,
    lens: Int32Array,
    cb: (count: number, negErrno: number) => void,
  ): object;
  readerStop(handle: object): void;
  write(fd: number, bytes: Uint8Array, offset: number, length: number): number;
  sendTo4(fd: number, bytes: Uint8Array, offset: number, length: number, address: string): number;
  close(fd: number): void;
  udpSendBatch(
    fd: number,
    buf: Uint8Array,
    offs: Int32Array,
    lens: Int32Array,
    addrs: Uint32Array,
    ports: Int32Array,
    count: number,
  ): number;
  /**
   * A non-blocking UDP socket bound to address:port (IPV6_V6ONLY and SO_REUSEADDR as a dgram
   * bind with ipv6Only: false leaves them), for dgram to adopt
   * with socket.bind({ fd }). Throws with the errno name as `code` (EADDRINUSE, ...).
   */
  udpBind(family: 4 | 6, address: string, port: number): number;
  /** setsockopt(fd, level, name, &int); throws with the errno name as `code`. */
  setsockoptInt(fd: number, level: number, name: number, value: number): void;
  /** getsockopt(fd, level, name) of an int option; throws with the errno name as `code`. */
  getsockoptInt(fd: number, level: number, name: number): number;
  /** kind 0 = AES-GCM (16/24/32-byte key), 1 = ChaCha20-Poly1305; salt = the 4 KEYMAT bytes after the key. */
  aeadNew(kind: 0 | 1, key: Uint8Array, salt: Uint8Array, encrypt: boolean): object;
  aeadSeal(
    h: object,
    aad: Uint8Array,
    buf: Uint8Array,
    ivOff: number,
    off: number,
    len: number,
    tagOff: number,
  ): boolean;
  aeadOpen(
    h: object,
    aad: Uint8Array,
    buf: Uint8Array,
    ivOff: number,
    off: number,
    len: number,
    tagOff: number,
  ): boolean;
}

let addon: NativeAddon | undefined;
let addonError: string | undefined;

/**
 * Loads native/build/Release/ikegw_native.node (built by the package's install script). The path
 * is the same relative to src/common (vitest) and dist/common (the build).
 */
export function loadNative(): NativeAddon {
  if (addon) return addon;
  if (addonError) throw new KernelError('native', 38, 'ENOSYS', addonError);
  const require = createRequire(import.meta.url);
  const path = new URL('../../native/build/Release/ikegw_native.node', import.meta.url).pathname;
  try {
    addon = require(path) as NativeAddon;
    return addon;
  } catch (e) {
    addonError = `the native addon (${path}) is not available: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}; build it with \`npm rebuild ikegw\` or \`node native/build.mjs\` (needs python3, make, a C compiler)`;
    throw new KernelError('native', 38, 'ENOSYS', addonError);
  }
}

/** Whether the addon loads (does not open anything). */
export function nativeAvailable(): { ok: true } | { ok: false; why: string } {
  try {
    loadNative();
    return { ok: true };
  } catch (e) {
    return { ok: false, why: e instanceof Error ? e.message : String(e) };
  }
}

/** The addon if it loads, else undefined (for optional fast paths). */
export function tryNative(): NativeAddon | undefined {
  try {
    return loadNative();
  } catch {
    return undefined;
  }
}
