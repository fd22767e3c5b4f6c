// The interfaces between the protocol core and its adapters (STYLE.md §2).
// The core never performs I/O: it returns Effects; adapters execute them and feed results back
// as IkeEvents. Data-path installers (memory, XFRM, userspace ESP) implement SaInstaller, modelled
// on strongSwan's kernel_ipsec_t.

/** An IP address (textual, canonical: "192.0.2.1" or "2001:db8::1") and UDP port. */
export interface Endpoint {
  address: string;
  port: number;
}

export type IpFamily = 4 | 6;

/** A traffic selector range as the data path sees it (RFC 7296 §3.13.1). */
export interface TsRange {
  family: IpFamily;
  /** 0 = any. */
  protocol: number;
  startPort: number;
  endPort: number;
  /** Inclusive address range, canonical text. */
  startAddr: string;
  endAddr: string;
}

export type EspAlgorithm =
  | { kind: 'aead'; name: 'aes-gcm-16' | 'chacha20-poly1305'; keyBits: number }
  | {
      kind: 'cipher+integ';
      cipher: 'aes-cbc' | 'null';
      keyBits: number;
      integ: 'hmac-sha1-96' | 'hmac-sha2-256-128' | 'hmac-sha2-384-192' | 'hmac-sha2-512-256';
    };

/** One direction of a CHILD_SA (one SPI). */
export interface AddSaSpec {
  reqid: number;
  /** Outer addresses of the ESP packets this SA carries. */
  src: string;
  dst: string;
  spi: number;
  protocol: 'esp';
  mode: 'tunnel';
  alg: EspAlgorithm;
  /** Encryption key (for AEAD: key || salt, as KEYMAT yields it, RFC 4106 §8.1 / RFC 7634 §4). */
  encKey: Uint8Array;
  /** Integrity key; empty for AEAD. */
  integKey: Uint8Array;
  /** UDP encapsulation (RFC 3948) ports, when NAT-T is in use. */
  encap?: { sport: number; dport: number };
  esn: boolean;
  replayWindow: number;
  inbound: boolean;
  /** Selectors: src/dst of the inner packets on this SA. */
  srcTs: TsRange[];
  dstTs: TsRange[];
  lifetime: { softBytes?: bigint; hardBytes?: bigint; softPackets?: bigint; hardPackets?: bigint };
  /** Connection/child name for logs and counters. */
  name: string;
}

export interface SaId {
  src: string;
  dst: string;
  spi: number;
  protocol: 'esp';
}

export interface PolicySpec {
  reqid: number;
  direction: 'out' | 'in' | 'fwd';
  src: TsRange;
  dst: TsRange;
  /** Tunnel endpoints; for out policies the template's src/dst. */
  tunnelSrc: string;
  tunnelDst: string;
  /** A trap policy has no SA yet: matching traffic raises an acquire. */
  trap: boolean;
  priority?: number;
}

export interface SaCounters {
  bytes: bigint;
  packets: bigint;
  /** ms timestamp (adapter clock) of last use, if known. */
  lastUseMs?: number;
}

/** strongSwan kernel_ipsec_t, reduced to what the core needs. */
export interface SaInstaller {
  readonly kind: 'memory' | 'xfrm' | 'userspace';
  // SPIs are chosen by the core from its injected Random (unique among its own SAs); the kernel
  // rejects a clash with EEXIST, which fails the CHILD_SA cleanly. No ALLOCSPI round trip needed.
  addSa(spec: AddSaSpec): Promise<void>;
  updateSa(id: SaId, newSrc: string, newDst: string, encap?: { sport: number; dport: number }): Promise<void>;
  querySa(id: SaId): Promise<SaCounters>;
  delSa(id: SaId): Promise<void>;
  addPolicy(p: PolicySpec): Promise<void>;
  delPolicy(p: PolicySpec): Promise<void>;
  /** Remove everything this installer owns (shutdown, or leftovers of a previous run). */
  flush(): Promise<void>;
}

/** Kernel operations the core requests through an Effect; the adapter answers with 'kernel-done'. */
export type SaOp =
  | { op: 'addSa'; spec: AddSaSpec }
  | { op: 'delSa'; id: SaId }
  | { op: 'updateSa'; id: SaId; newSrc: string; newDst: string; encap?: { sport: number; dport: number } }
  | { op: 'addPolicy'; policy: PolicySpec }
  | { op: 'delPolicy'; policy: PolicySpec };

/** Events from the data path (strongSwan kernel_listener_t). */
export type KernelEvent =
  | { kind: 'acquire'; reqid: number; src?: string; dst?: string }
  | { kind: 'expire'; spi: number; dst: string; hard: boolean }
  | { kind: 'mapping'; spi: number; dst: string; newRemote: Endpoint };

/** Execute one kernel operation the core requested on an installer (the daemon and tests share it). */
export function applySaOp(inst: SaInstaller, op: SaOp): Promise<void> {
  switch (op.op) {
    case 'addSa':
      return inst.addSa(op.spec);
    case 'delSa':
      return inst.delSa(op.id);
    case 'updateSa':
      return inst.updateSa(op.id, op.newSrc, op.newDst, op.encap);
    case 'addPolicy':
      return inst.addPolicy(op.policy);
    case 'delPolicy':
      return inst.delPolicy(op.policy);
  }
}
