// The XFRM netlink structures and attributes (NETLINK_XFRM = 6), as a declarative table.
//
// Pinned to <linux/xfrm.h> of Linux 6.1 (Debian linux-libc-dev 6.1.187-1,
// /usr/include/linux/xfrm.h, md5 ac63ae9cdfed33842f0c74810aeee869; the same layouts as
// torvalds/linux include/uapi/linux/xfrm.h — these structs "may not change size as they are passed
// into the kernel from userspace via netlink sockets", as the header says). Every struct below lists
// the header's fields in the header's order with the header's names; offsets, padding and sizes
// follow from the C layout rules (each field aligned to its own alignment, the struct padded to its
// largest one) and are checked against the sizes gcc computes for the header (test/netns/
// xfrm-codec.test.ts, "layouts") when the table is built — a wrong table throws at import.
//
// Byte order: netlink structs use host order (all of Linux's 64-bit targets that matter here are
// little-endian, but we ask the OS), except the fields the header declares __be16/__be32 (SPIs,
// ports) and the addresses (xfrm_address_t, network order).
//
// Decoding never trusts lengths: a short buffer or attribute throws DecodeError, which the client
// turns into a KernelError — a malformed reply is an error, not a crash.
import { endianness } from 'node:os';
import { addrToBytes, bytesToAddr, ipFamily } from '../../common/addr.js';
import { DecodeError } from '../../common/errors.js';

/** Netlink structs are in host byte order. */
export const HOST_LE = endianness() === 'LE';
const LE = HOST_LE;

// ---- the codec building blocks ------------------------------------------------------------------

export interface Codec<T> {
  readonly size: number;
  readonly align: number;
  read(v: DataView, off: number): T;
  write(v: DataView, off: number, x: T): void;
  zero(): T;
}

function need(v: DataView, off: number, n: number, what: string): void {
  if (off < 0 || off + n > v.byteLength)
    throw new DecodeError(`${what}: needs ${n} bytes at offset ${off}, have ${v.byteLength - off}`);
}

function prim<T>(
  name: string,
  size: number,
  read: (v: DataView, off: number) => T,
  write: (v: DataView, off: number, x: T) => void,
  zero: T,
): Codec<T> {
  return {
    size,
    align: size,
    read(v, off) {
      need(v, off, size, name);
      return read(v, off);
    },
    write(v, off, x) {
      write(v, off, x);
    },
    zero: () => zero,
  };
}

export const u8 = prim<number>(
  'u8',
  1,
  (v, o) => v.getUint8(o),
  (v, o, x) => v.setUint8(o, x),
  0,
);
export const u16 = prim<number>(
  'u16',
  2,
  (v, o) => v.getUint16(o, LE),
  (v, o, x) => v.setUint16(o, x, LE),
  0,
);
export const u32 = prim<number>(
  'u32',
  4,
  (v, o) => v.getUint32(o, LE),
  (v, o, x) => v.setUint32(o, x >>> 0, LE),
  0,
);
export const s32 = prim<number>(
  's32',
  4,
  (v, o) => v.getInt32(o, LE),
  (v, o, x) => v.setInt32(o, x, LE),
  0,
);
export const u64 = prim<bigint>(
  'u64',
  8,
  (v, o) => v.getBigUint64(o, LE),
  (v, o, x) => v.setBigUint64(o, x, LE),
  0n,
);
/** __be16 (ports). */
export const be16 = prim<number>(
  'be16',
  2,
  (v, o) => v.getUint16(o, false),
  (v, o, x) => v.setUint16(o, x, false),
  0,
);
/** __be32 (SPIs). */
export const be32 = prim<number>(
  'be32',
  4,
  (v, o) => v.getUint32(o, false),
  (v, o, x) => v.setUint32(o, x >>> 0, false),
  0,
);

/** Raw bytes (fixed length), alignment 1 unless given. */
export function bytes(n: number, align = 1, name = `u8[${n}]`): Codec<Uint8Array> {
  return {
    size: n,
    align,
    read(v, off) {
      need(v, off, n, name);
      return new Uint8Array(v.buffer.slice(v.byteOffset + off, v.byteOffset + off + n));
    },
    write(v, off, x) {
      if (x.length > n) throw new RangeError(`${name}: ${x.length} bytes do not fit`);
      new Uint8Array(v.buffer, v.byteOffset + off, n).set(x);
    },
    zero: () => new Uint8Array(n),
  };
}

/** char[n], NUL-terminated. */
export function cstr(n: number): Codec<string> {
  return {
    size: n,
    align: 1,
    read(v, off) {
      need(v, off, n, `char[${n}]`);
      const b = new Uint8Array(v.buffer, v.byteOffset + off, n);
      const end = b.indexOf(0);
      return Buffer.from(b.subarray(0, end < 0 ? n : end)).toString('latin1');
    },
    write(v, off, x) {
      const b = Buffer.from(x, 'latin1');
      if (b.length >= n) throw new RangeError(`char[${n}]: "${x}" is too long`);
      const dst = new Uint8Array(v.buffer, v.byteOffset + off, n);
      dst.fill(0);
      dst.set(b);
    },
    zero: () => '',
  };
}

/** xfrm_address_t: union { __be32 a4; __be32 a6[4]; struct in6_addr in6; } — 16 bytes, align 4. */
export const xfrmAddress = bytes(16, 4, 'xfrm_address_t');

type ValueOf<C> = C extends Codec<infer T> ? T : never;

export interface StructCodec<T> extends Codec<T> {
  readonly name: string;
  readonly offsets: Readonly<Record<keyof T & string, number>>;
  /** Decodes a whole buffer that starts with this struct. */
  decode(b: Uint8Array, offset?: number): T;
  encode(x: T): Uint8Array;
}

/**
 * A C struct from its fields, in header order. `size` is sizeof() as the header yields it on
 * x86-64/arm64 Linux; the computed layout must agree or this throws (the table is wrong).
 */
export function defineStruct<F extends Record<string, Codec<unknown>>>(
  name: string,
  size: number,
  fields: F,
): StructCodec<{ [K in keyof F]: ValueOf<F[K]> }> {
  type T = { [K in keyof F]: ValueOf<F[K]> };
  const layout: Array<{ key: keyof F & string; off: number; codec: Codec<unknown> }> = [];
  let off = 0;
  let align = 1;
  const offsets: Record<string, number> = {};
  for (const key of Object.keys(fields) as Array<keyof F & string>) {
    const codec = fields[key] as Codec<unknown>;
    off = Math.ceil(off / codec.align) * codec.align;
    layout.push({ key, off, codec });
    offsets[key] = off;
    off += codec.size;
    align = Math.max(align, codec.align);
  }
  const computed = Math.ceil(off / align) * align;
  if (computed !== size) throw new Error(`struct ${name}: computed size ${computed}, header says ${size}`);
  const codec: StructCodec<T> = {
    name,
    size,
    align,
    offsets: offsets as Record<keyof T & string, number>,
    read(v, base) {
      need(v, base, size, `struct ${name}`);
      const out: Record<string, unknown> = {};
      for (const f of layout) out[f.key] = f.codec.read(v, base + f.off);
      return out as T;
    },
    write(v, base, x) {
      for (const f of layout) f.codec.write(v, base + f.off, (x as Record<string, unknown>)[f.key]);
    },
    zero() {
      const out: Record<string, unknown> = {};
      for (const f of layout) out[f.key] = f.codec.zero();
      return out as T;
    },
    decode(b, offset = 0) {
      return codec.read(new DataView(b.buffer, b.byteOffset, b.byteLength), offset);
    },
    encode(x) {
      const b = new Uint8Array(size);
      codec.write(new DataView(b.buffer), 0, x);
      return b;
    },
  };
  return codec;
}

// ---- constants (<linux/xfrm.h>, <linux/netlink.h>, <linux/in.h>, <linux/udp.h>) -----------------

export const NETLINK_XFRM = 6;

/** enum { XFRM_MSG_BASE = 0x10, ... } */
export const XfrmMsg = {
  NEWSA: 0x10,
  DELSA: 0x11,
  GETSA: 0x12,
  NEWPOLICY: 0x13,
  DELPOLICY: 0x14,
  GETPOLICY: 0x15,
  ALLOCSPI: 0x16,
  ACQUIRE: 0x17,
  EXPIRE: 0x18,
  UPDPOLICY: 0x19,
  UPDSA: 0x1a,
  POLEXPIRE: 0x1b,
  FLUSHSA: 0x1c,
  FLUSHPOLICY: 0x1d,
  NEWAE: 0x1e,
  GETAE: 0x1f,
  REPORT: 0x20,
  MIGRATE: 0x21,
  NEWSADINFO: 0x22,
  GETSADINFO: 0x23,
  NEWSPDINFO: 0x24,
  GETSPDINFO: 0x25,
  MAPPING: 0x26,
} as const;
export type XfrmMsgName = keyof typeof XfrmMsg;

export function xfrmMsgName(type: number): string {
  for (const [k, v] of Object.entries(XfrmMsg)) if (v === type) return `XFRM_MSG_${k}`;
  if (type === NlMsg.ERROR) return 'NLMSG_ERROR';
  if (type === NlMsg.DONE) return 'NLMSG_DONE';
  return `type ${type}`;
}

/** enum xfrm_attr_type_t */
export const Xfrma = {
  UNSPEC: 0,
  ALG_AUTH: 1,
  ALG_CRYPT: 2,
  ALG_COMP: 3,
  ENCAP: 4,
  TMPL: 5,
  SA: 6,
  POLICY: 7,
  SEC_CTX: 8,
  LTIME_VAL: 9,
  REPLAY_VAL: 10,
  REPLAY_THRESH: 11,
  ETIMER_THRESH: 12,
  SRCADDR: 13,
  COADDR: 14,
  LASTUSED: 15,
  POLICY_TYPE: 16,
  MIGRATE: 17,
  ALG_AEAD: 18,
  KMADDRESS: 19,
  ALG_AUTH_TRUNC: 20,
  MARK: 21,
  TFCPAD: 22,
  REPLAY_ESN_VAL: 23,
  SA_EXTRA_FLAGS: 24,
  PROTO: 25,
  ADDRESS_FILTER: 26,
  PAD: 27,
  OFFLOAD_DEV: 28,
  SET_MARK: 29,
  SET_MARK_MASK: 30,
  IF_ID: 31,
  MTIMER_THRESH: 32,
} as const;

/** enum xfrm_nlgroups (group numbers for NETLINK_ADD_MEMBERSHIP). */
export const XfrmNlGrp = {
  ACQUIRE: 1,
  EXPIRE: 2,
  SA: 3,
  POLICY: 4,
  AEVENTS: 5,
  REPORT: 6,
  MIGRATE: 7,
  MAPPING: 8,
} as const;

export const XfrmPolicyDir = { in: 0, out: 1, fwd: 2 } as const;
export const XFRM_POLICY_ALLOW = 0;
export const XFRM_POLICY_BLOCK = 1;
export const XFRM_POLICY_TYPE_MAIN = 0;
export const XFRM_MODE_TRANSPORT = 0;
export const XFRM_MODE_TUNNEL = 1;
export const XFRM_SHARE_ANY = 0;
/** XFRM_INF = ~(__u64)0: "no limit" in xfrm_lifetime_cfg. */
export const XFRM_INF = 0xffff_ffff_ffff_ffffn;
export const XFRMA_REPLAY_ESN_MAX = 4096;

/** xfrm_usersa_info.flags */
export const XfrmStateFlag = {
  NOECN: 1,
  DECAP_DSCP: 2,
  NOPMTUDISC: 4,
  WILDRECV: 8,
  ICMP: 16,
  AF_UNSPEC: 32,
  ALIGN4: 64,
  ESN: 128,
} as const;
export const XFRM_SA_XFLAG_DONT_ENCAP_DSCP = 1;

/** enum xfrm_ae_ftype_t */
export const XfrmAe = { RTHR: 1, RVAL: 2, LVAL: 4, ETHR: 8, CR: 16, CE: 32, CU: 64 } as const;

/** <linux/netlink.h> */
export const NlMsg = { NOOP: 1, ERROR: 2, DONE: 3, OVERRUN: 4 } as const;
export const NlFlag = {
  REQUEST: 0x1,
  MULTI: 0x2,
  ACK: 0x4,
  ECHO: 0x8,
  // GET requests
  ROOT: 0x100,
  MATCH: 0x200,
  DUMP: 0x300,
  // NEW requests
  REPLACE: 0x100,
  EXCL: 0x200,
  CREATE: 0x400,
} as const;
export const NLMSG_HDRLEN = 16;

export const AF_INET = 2;
export const AF_INET6 = 10;
export const IPPROTO_ESP = 50;
/** <linux/udp.h> UDP_ENCAP_ESPINUDP (RFC 3948). */
export const UDP_ENCAP_ESPINUDP = 2;

// ---- the structs (header order, header names) -----------------------------------------------------

/** struct xfrm_selector — selector on policies (SPD) and SAs. */
export const XfrmSelector = defineStruct('xfrm_selector', 56, {
  daddr: xfrmAddress,
  saddr: xfrmAddress,
  dport: be16,
  dport_mask: be16,
  sport: be16,
  sport_mask: be16,
  family: u16,
  prefixlen_d: u8,
  prefixlen_s: u8,
  proto: u8,
  ifindex: s32,
  user: u32, // __kernel_uid32_t
});
export type XfrmSelector = ReturnType<typeof XfrmSelector.zero>;

/** struct xfrm_id — (daddr, spi, proto) identifies an SA. */
export const XfrmId = defineStruct('xfrm_id', 24, {
  daddr: xfrmAddress,
  spi: be32,
  proto: u8,
});
export type XfrmId = ReturnType<typeof XfrmId.zero>;

/** struct xfrm_lifetime_cfg — limits; XFRM_INF = none for bytes/packets, 0 = none for seconds. */
export const XfrmLifetimeCfg = defineStruct('xfrm_lifetime_cfg', 64, {
  soft_byte_limit: u64,
  hard_byte_limit: u64,
  soft_packet_limit: u64,
  hard_packet_limit: u64,
  soft_add_expires_seconds: u64,
  hard_add_expires_seconds: u64,
  soft_use_expires_seconds: u64,
  hard_use_expires_seconds: u64,
});
export type XfrmLifetimeCfg = ReturnType<typeof XfrmLifetimeCfg.zero>;

/** struct xfrm_lifetime_cur — counters (add_time/use_time: seconds since the epoch). */
export const XfrmLifetimeCur = defineStruct('xfrm_lifetime_cur', 32, {
  bytes: u64,
  packets: u64,
  add_time: u64,
  use_time: u64,
});
export type XfrmLifetimeCur = ReturnType<typeof XfrmLifetimeCur.zero>;

/** struct xfrm_replay_state */
export const XfrmReplayState = defineStruct('xfrm_replay_state', 12, {
  oseq: u32,
  seq: u32,
  bitmap: u32,
});

/** struct xfrm_replay_state_esn (fixed part; __u32 bmp[bmp_len] follows). */
export const XfrmReplayStateEsn = defineStruct('xfrm_replay_state_esn', 24, {
  bmp_len: u32,
  oseq: u32,
  seq: u32,
  oseq_hi: u32,
  seq_hi: u32,
  replay_window: u32,
});

/** struct xfrm_algo (fixed part; char alg_key[] follows, alg_key_len is in bits). */
export const XfrmAlgo = defineStruct('xfrm_algo', 68, {
  alg_name: cstr(64),
  alg_key_len: u32,
});
/** struct xfrm_algo_auth (fixed part; alg_key[] follows). */
export const XfrmAlgoAuth = defineStruct('xfrm_algo_auth', 72, {
  alg_name: cstr(64),
  alg_key_len: u32,
  alg_trunc_len: u32,
});
/** struct xfrm_algo_aead (fixed part; alg_key[] follows). */
export const XfrmAlgoAead = defineStruct('xfrm_algo_aead', 72, {
  alg_name: cstr(64),
  alg_key_len: u32,
  alg_icv_len: u32,
});

/** struct xfrm_stats */
export const XfrmStats = defineStruct('xfrm_stats', 12, {
  replay_window: u32,
  replay: u32,
  integrity_failed: u32,
});

/** struct xfrm_user_tmpl — one transform of a policy. */
export const XfrmUserTmpl = defineStruct('xfrm_user_tmpl', 64, {
  id: XfrmId,
  family: u16,
  saddr: xfrmAddress,
  reqid: u32,
  mode: u8,
  share: u8,
  optional: u8,
  aalgos: u32,
  ealgos: u32,
  calgos: u32,
});
export type XfrmUserTmpl = ReturnType<typeof XfrmUserTmpl.zero>;

/** struct xfrm_encap_tmpl — ESP-in-UDP (RFC 3948) ports. */
export const XfrmEncapTmpl = defineStruct('xfrm_encap_tmpl', 24, {
  encap_type: u16,
  encap_sport: be16,
  encap_dport: be16,
  encap_oa: xfrmAddress,
});
export type XfrmEncapTmpl = ReturnType<typeof XfrmEncapTmpl.zero>;

/** struct xfrm_userpolicy_type */
export const XfrmUserpolicyType = defineStruct('xfrm_userpolicy_type', 6, {
  type: u8,
  reserved1: u16,
  reserved2: u8,
});

/** struct xfrm_mark */
export const XfrmMark = defineStruct('xfrm_mark', 8, {
  v: u32,
  m: u32,
});

/** struct xfrm_usersa_info — NEWSA/UPDSA body, GETSA/dump reply, inside EXPIRE. */
export const XfrmUsersaInfo = defineStruct('xfrm_usersa_info', 224, {
  sel: XfrmSelector,
  id: XfrmId,
  saddr: xfrmAddress,
  lft: XfrmLifetimeCfg,
  curlft: XfrmLifetimeCur,
  stats: XfrmStats,
  seq: u32,
  reqid: u32,
  family: u16,
  mode: u8,
  replay_window: u8,
  flags: u8,
});
export type XfrmUsersaInfo = ReturnType<typeof XfrmUsersaInfo.zero>;

/** struct xfrm_usersa_id — DELSA/GETSA body. */
export const XfrmUsersaId = defineStruct('xfrm_usersa_id', 24, {
  daddr: xfrmAddress,
  spi: be32,
  family: u16,
  proto: u8,
});
export type XfrmUsersaId = ReturnType<typeof XfrmUsersaId.zero>;

/** struct xfrm_aevent_id — GETAE/NEWAE body. */
export const XfrmAeventId = defineStruct('xfrm_aevent_id', 48, {
  sa_id: XfrmUsersaId,
  saddr: xfrmAddress,
  flags: u32,
  reqid: u32,
});
export type XfrmAeventId = ReturnType<typeof XfrmAeventId.zero>;

/** struct xfrm_userspi_info — ALLOCSPI body. */
export const XfrmUserspiInfo = defineStruct('xfrm_userspi_info', 232, {
  info: XfrmUsersaInfo,
  min: u32,
  max: u32,
});
export type XfrmUserspiInfo = ReturnType<typeof XfrmUserspiInfo.zero>;

/** struct xfrm_userpolicy_info — NEWPOLICY/UPDPOLICY body, GETPOLICY/dump reply. */
export const XfrmUserpolicyInfo = defineStruct('xfrm_userpolicy_info', 168, {
  sel: XfrmSelector,
  lft: XfrmLifetimeCfg,
  curlft: XfrmLifetimeCur,
  priority: u32,
  index: u32,
  dir: u8,
  action: u8,
  flags: u8,
  share: u8,
});
export type XfrmUserpolicyInfo = ReturnType<typeof XfrmUserpolicyInfo.zero>;

/** struct xfrm_userpolicy_id — DELPOLICY/GETPOLICY body. */
export const XfrmUserpolicyId = defineStruct('xfrm_userpolicy_id', 64, {
  sel: XfrmSelector,
  index: u32,
  dir: u8,
});
export type XfrmUserpolicyId = ReturnType<typeof XfrmUserpolicyId.zero>;

/** struct xfrm_user_acquire — ACQUIRE (XFRMNLGRP_ACQUIRE). */
export const XfrmUserAcquire = defineStruct('xfrm_user_acquire', 280, {
  id: XfrmId,
  saddr: xfrmAddress,
  sel: XfrmSelector,
  policy: XfrmUserpolicyInfo,
  aalgos: u32,
  ealgos: u32,
  calgos: u32,
  seq: u32,
});
export type XfrmUserAcquire = ReturnType<typeof XfrmUserAcquire.zero>;

/** struct xfrm_user_expire — EXPIRE (XFRMNLGRP_EXPIRE). */
export const XfrmUserExpire = defineStruct('xfrm_user_expire', 232, {
  state: XfrmUsersaInfo,
  hard: u8,
});
export type XfrmUserExpire = ReturnType<typeof XfrmUserExpire.zero>;

/** struct xfrm_user_polexpire */
export const XfrmUserPolexpire = defineStruct('xfrm_user_polexpire', 176, {
  pol: XfrmUserpolicyInfo,
  hard: u8,
});

/** struct xfrm_user_mapping — MAPPING (XFRMNLGRP_MAPPING): the peer's NAT mapping changed. */
export const XfrmUserMapping = defineStruct('xfrm_user_mapping', 64, {
  id: XfrmUsersaId,
  reqid: u32,
  old_saddr: xfrmAddress,
  new_saddr: xfrmAddress,
  old_sport: be16,
  new_sport: be16,
});
export type XfrmUserMapping = ReturnType<typeof XfrmUserMapping.zero>;

/** struct xfrm_usersa_flush — FLUSHSA body. */
export const XfrmUsersaFlush = defineStruct('xfrm_usersa_flush', 1, {
  proto: u8,
});

/** Every struct of the table, for the layout test. */
export const ALL_STRUCTS = [
  XfrmSelector,
  XfrmId,
  XfrmLifetimeCfg,
  XfrmLifetimeCur,
  XfrmReplayState,
  XfrmReplayStateEsn,
  XfrmAlgo,
  XfrmAlgoAuth,
  XfrmAlgoAead,
  XfrmStats,
  XfrmUserTmpl,
  XfrmEncapTmpl,
  XfrmUserpolicyType,
  XfrmMark,
  XfrmUsersaInfo,
  XfrmUsersaId,
  XfrmAeventId,
  XfrmUserspiInfo,
  XfrmUserpolicyInfo,
  XfrmUserpolicyId,
  XfrmUserAcquire,
  XfrmUserExpire,
  XfrmUserPolexpire,
  XfrmUserMapping,
  XfrmUsersaFlush,
] as const;

/** The fixed header struct of each message type (the attributes follow it, NLMSG_ALIGNed). */
export const MSG_BODY: Readonly<Record<number, { size: number; name: string }>> = {
  [XfrmMsg.NEWSA]: XfrmUsersaInfo,
  [XfrmMsg.UPDSA]: XfrmUsersaInfo,
  [XfrmMsg.DELSA]: XfrmUsersaId,
  [XfrmMsg.GETSA]: XfrmUsersaId,
  [XfrmMsg.ALLOCSPI]: XfrmUserspiInfo,
  [XfrmMsg.NEWPOLICY]: XfrmUserpolicyInfo,
  [XfrmMsg.UPDPOLICY]: XfrmUserpolicyInfo,
  [XfrmMsg.DELPOLICY]: XfrmUserpolicyId,
  [XfrmMsg.GETPOLICY]: XfrmUserpolicyId,
  [XfrmMsg.ACQUIRE]: XfrmUserAcquire,
  [XfrmMsg.EXPIRE]: XfrmUserExpire,
  [XfrmMsg.POLEXPIRE]: XfrmUserPolexpire,
  [XfrmMsg.MAPPING]: XfrmUserMapping,
  [XfrmMsg.FLUSHSA]: XfrmUsersaFlush,
  [XfrmMsg.FLUSHPOLICY]: { size: 0, name: '(none)' },
  [XfrmMsg.NEWAE]: XfrmAeventId,
  [XfrmMsg.GETAE]: XfrmAeventId,
};

// ---- netlink attributes (struct nlattr: __u16 nla_len, __u16 nla_type, payload, pad to 4) ----------

export interface NlAttr {
  type: number;
  data: Uint8Array;
}

export const nlAlign = (n: number): number => (n + 3) & ~3;

export function encodeAttrs(attrs: readonly NlAttr[]): Uint8Array {
  let len = 0;
  for (const a of attrs) len += nlAlign(4 + a.data.length);
  const out = new Uint8Array(len);
  const v = new DataView(out.buffer);
  let off = 0;
  for (const a of attrs) {
    v.setUint16(off, 4 + a.data.length, LE);
    v.setUint16(off + 2, a.type, LE);
    out.set(a.data, off + 4);
    off += nlAlign(4 + a.data.length);
  }
  return out;
}

/** Parses attributes; throws DecodeError on a length that does not fit. Flags bits are stripped. */
export function decodeAttrs(b: Uint8Array): NlAttr[] {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const out: NlAttr[] = [];
  let off = 0;
  while (off + 4 <= b.length) {
    const len = v.getUint16(off, LE);
    const type = v.getUint16(off + 2, LE) & 0x3fff; // NLA_F_NESTED / NLA_F_NET_BYTEORDER
    if (len < 4 || off + len > b.length)
      throw new DecodeError(`netlink attribute ${type} at ${off}: length ${len} exceeds ${b.length - off}`);
    out.push({ type, data: b.slice(off + 4, off + len) });
    off += nlAlign(len);
  }
  return out;
}

export function findAttr(attrs: readonly NlAttr[], type: number): Uint8Array | undefined {
  return attrs.find((a) => a.type === type)?.data;
}

// ---- attribute payloads -----------------------------------------------------------------------------

export interface AlgoValue {
  name: string;
  key: Uint8Array;
}

export function encodeAlgo(a: AlgoValue): Uint8Array {
  const head = XfrmAlgo.encode({ alg_name: a.name, alg_key_len: a.key.length * 8 });
  return concat([head, a.key]);
}

export function encodeAlgoAuth(a: AlgoValue & { truncBits: number }): Uint8Array {
  const head = XfrmAlgoAuth.encode({
    alg_name: a.name,
    alg_key_len: a.key.length * 8,
    alg_trunc_len: a.truncBits,
  });
  return concat([head, a.key]);
}

export function encodeAlgoAead(a: AlgoValue & { icvBits: number }): Uint8Array {
  const head = XfrmAlgoAead.encode({
    alg_name: a.name,
    alg_key_len: a.key.length * 8,
    alg_icv_len: a.icvBits,
  });
  return concat([head, a.key]);
}

function keyAfter(b: Uint8Array, headLen: number, keyBits: number, what: string): Uint8Array {
  const n = Math.ceil(keyBits / 8);
  if (b.length < headLen + n) throw new DecodeError(`${what}: key of ${keyBits} bits exceeds the attribute`);
  return b.slice(headLen, headLen + n);
}

export function decodeAlgo(b: Uint8Array): AlgoValue {
  const h = XfrmAlgo.decode(b);
  return { name: h.alg_name, key: keyAfter(b, XfrmAlgo.size, h.alg_key_len, 'xfrm_algo') };
}

export function decodeAlgoAuth(b: Uint8Array): AlgoValue & { truncBits: number } {
  const h = XfrmAlgoAuth.decode(b);
  return {
    name: h.alg_name,
    key: keyAfter(b, XfrmAlgoAuth.size, h.alg_key_len, 'xfrm_algo_auth'),
    truncBits: h.alg_trunc_len,
  };
}

export function decodeAlgoAead(b: Uint8Array): AlgoValue & { icvBits: number } {
  const h = XfrmAlgoAead.decode(b);
  return {
    name: h.alg_name,
    key: keyAfter(b, XfrmAlgoAead.size, h.alg_key_len, 'xfrm_algo_aead'),
    icvBits: h.alg_icv_len,
  };
}

export interface ReplayEsnValue {
  oseq: number;
  seq: number;
  oseq_hi: number;
  seq_hi: number;
  replay_window: number;
  /** bmp_len = bmp.length (in __u32 words). */
  bmp: Uint32Array;
}

/** A fresh replay state for a window of `window` packets (bitmap rounded up to 32-bit words). */
export function replayEsnFor(window: number): ReplayEsnValue {
  const words = Math.ceil(window / 32);
  return { oseq: 0, seq: 0, oseq_hi: 0, seq_hi: 0, replay_window: window, bmp: new Uint32Array(words) };
}

export function encodeReplayEsn(r: ReplayEsnValue): Uint8Array {
  const out = new Uint8Array(XfrmReplayStateEsn.size + r.bmp.length * 4);
  const v = new DataView(out.buffer);
  XfrmReplayStateEsn.write(v, 0, {
    bmp_len: r.bmp.length,
    oseq: r.oseq,
    seq: r.seq,
    oseq_hi: r.oseq_hi,
    seq_hi: r.seq_hi,
    replay_window: r.replay_window,
  });
  for (const [i, w] of r.bmp.entries()) v.setUint32(XfrmReplayStateEsn.size + i * 4, w, LE);
  return out;
}

export function decodeReplayEsn(b: Uint8Array): ReplayEsnValue {
  const h = XfrmReplayStateEsn.decode(b);
  if (h.bmp_len > XFRMA_REPLAY_ESN_MAX / 32 || b.length < XfrmReplayStateEsn.size + h.bmp_len * 4)
    throw new DecodeError(`xfrm_replay_state_esn: bmp_len ${h.bmp_len} does not fit ${b.length} bytes`);
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const bmp = new Uint32Array(h.bmp_len);
  for (let i = 0; i < h.bmp_len; i++) bmp[i] = v.getUint32(XfrmReplayStateEsn.size + i * 4, LE);
  return {
    oseq: h.oseq,
    seq: h.seq,
    oseq_hi: h.oseq_hi,
    seq_hi: h.seq_hi,
    replay_window: h.replay_window,
    bmp,
  };
}

export function encodeU32(x: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, x >>> 0, LE);
  return b;
}
export function decodeU32(b: Uint8Array): number {
  if (b.length < 4) throw new DecodeError(`u32 attribute of ${b.length} bytes`);
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(0, LE);
}

/** XFRMA_TMPL carries one or more xfrm_user_tmpl back to back. */
export function decodeTmpls(b: Uint8Array): XfrmUserTmpl[] {
  if (b.length % XfrmUserTmpl.size !== 0)
    throw new DecodeError(`XFRMA_TMPL of ${b.length} bytes is not a multiple of ${XfrmUserTmpl.size}`);
  const out: XfrmUserTmpl[] = [];
  for (let off = 0; off < b.length; off += XfrmUserTmpl.size) out.push(XfrmUserTmpl.decode(b, off));
  return out;
}

// ---- messages (fixed body + attributes) ----------------------------------------------------------

export function encodeBody<T>(codec: StructCodec<T>, body: T, attrs: readonly NlAttr[] = []): Uint8Array {
  // The body sizes here are all multiples of 4 except xfrm_usersa_flush (1): NLMSG_ALIGN it.
  const head = codec.encode(body);
  const padded = new Uint8Array(nlAlign(head.length));
  padded.set(head);
  return attrs.length ? concat([padded, encodeAttrs(attrs)]) : padded;
}

/** Splits a message payload into its fixed struct and attributes. */
export function decodeBody<T>(codec: StructCodec<T>, payload: Uint8Array): { body: T; attrs: NlAttr[] } {
  if (payload.length < codec.size)
    throw new DecodeError(`${codec.name}: message payload of ${payload.length} bytes, needs ${codec.size}`);
  const body = codec.decode(payload);
  const attrs = decodeAttrs(payload.subarray(Math.min(payload.length, nlAlign(codec.size))));
  return { body, attrs };
}

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

// ---- addresses ------------------------------------------------------------------------------------

/** Canonical text -> (family, 16-byte xfrm_address_t). Throws RangeError on anything else. */
export function addrToXfrm(text: string): { family: number; bytes: Uint8Array } {
  let fam: 4 | 6;
  try {
    fam = ipFamily(text);
  } catch {
    throw new RangeError(`not an IP address: ${JSON.stringify(text)}`);
  }
  const out = new Uint8Array(16);
  out.set(addrToBytes(text));
  return { family: fam === 4 ? AF_INET : AF_INET6, bytes: out };
}

export function xfrmToAddr(family: number, b: Uint8Array): string {
  if (family === AF_INET) return bytesToAddr(b.subarray(0, 4));
  if (family === AF_INET6) return bytesToAddr(b.subarray(0, 16));
  throw new DecodeError(`address family ${family}`);
}
