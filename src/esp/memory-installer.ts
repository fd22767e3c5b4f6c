// An SaInstaller that keeps SAs and policies in Maps: the data path for exchange tests and for the
// daemon until the XFRM / userspace installers land (strongSwan's mock_ipsec.c plays this role).
//
// It behaves like the kernel where the core can observe it:
//  - SAs are keyed by (dst, spi, protocol) like XFRM; adding one twice fails with EEXIST (17),
//    touching an unknown one with ENOENT (2); malformed specs (SPI 0, mixed address families, a key
//    of the wrong length for the algorithm) fail with EINVAL (22).
//  - Policies are keyed by (direction, src selector, dst selector) and reference-counted: during a
//    rekey the old and the new CHILD_SA install the same policies, and deleting the old one must not
//    remove what the new one still uses (strongSwan kernel_ipsec.h, add_policy/del_policy; the
//    "used_by" list of kernel_netlink_ipsec.c). The installed entry is the highest-priority one
//    (lowest value; trap policies rank below regular ones, as strongSwan's POLICY_PRIORITY_ROUTED),
//    the most recent among equals.
import { KernelError } from '../common/errors.js';
import type {
  AddSaSpec,
  KernelEvent,
  PolicySpec,
  SaCounters,
  SaId,
  SaInstaller,
  SaOp,
  TsRange,
} from '../ike/ports.js';

export const Errno = { ENOENT: 2, ESRCH: 3, EEXIST: 17, EINVAL: 22 } as const;
type ErrnoName = keyof typeof Errno;

function kerr(op: string, name: ErrnoName, detail: string): KernelError {
  return new KernelError(op, Errno[name], name, `${op} failed: ${name} (${Errno[name]}): ${detail}`);
}

function saKey(dst: string, spi: number): string {
  return `${dst}|${(spi >>> 0).toString(16).padStart(8, '0')}|esp`;
}

function tsKey(t: TsRange): string {
  return `${t.family}:${t.protocol}:${t.startAddr}-${t.endAddr}:${t.startPort}-${t.endPort}`;
}

export function policyKey(p: Pick<PolicySpec, 'direction' | 'src' | 'dst'>): string {
  return `${p.direction}|${tsKey(p.src)}|${tsKey(p.dst)}`;
}

function family(addr: string): 4 | 6 | undefined {
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(addr)) return 4;
  if (addr.includes(':')) return 6;
  return undefined;
}

const INTEG_KEY_BYTES: Record<string, number> = {
  'hmac-sha1-96': 20,
  'hmac-sha2-256-128': 32,
  'hmac-sha2-384-192': 48,
  'hmac-sha2-512-256': 64,
};

/** Why a spec would be rejected (EINVAL), or undefined if it is acceptable. */
function invalidSpec(s: AddSaSpec): string | undefined {
  if (!Number.isInteger(s.spi) || s.spi <= 0 || s.spi > 0xffffffff) return `SPI ${s.spi} out of range`;
  const fs = family(s.src);
  if (!fs || fs !== family(s.dst)) return `addresses ${s.src} -> ${s.dst} are not one IP family`;
  if (s.replayWindow < 0) return 'negative replay window';
  const a = s.alg;
  if (a.kind === 'aead') {
    // KEYMAT for AEAD = key || 4-byte salt (RFC 4106 §8.1, RFC 7634 §4).
    const want = a.name === 'chacha20-poly1305' ? 36 : a.keyBits / 8 + 4;
    if (a.name === 'aes-gcm-16' && ![128, 192, 256].includes(a.keyBits))
      return `AES-GCM key size ${a.keyBits}`;
    if (s.encKey.length !== want)
      return `${a.name} needs a ${want}-byte key (with salt), got ${s.encKey.length}`;
    if (s.integKey.length !== 0) return 'an AEAD SA takes no integrity key';
    return undefined;
  }
  const encWant = a.cipher === 'null' ? 0 : a.keyBits / 8;
  if (a.cipher === 'aes-cbc' && ![128, 192, 256].includes(a.keyBits)) return `AES-CBC key size ${a.keyBits}`;
  if (s.encKey.length !== encWant)
    return `${a.cipher}/${a.keyBits} needs a ${encWant}-byte key, got ${s.encKey.length}`;
  const integWant = INTEG_KEY_BYTES[a.integ];
  if (s.integKey.length !== integWant)
    return `${a.integ} needs a ${integWant}-byte key, got ${s.integKey.length}`;
  return undefined;
}

interface SaEntry {
  spec: AddSaSpec;
  counters: SaCounters;
}

interface PolicyEntry {
  /** Every add that is still referenced, oldest first. */
  refs: PolicySpec[];
}

function effPriority(p: PolicySpec): number {
  return p.priority ?? (p.trap ? 2 : 1);
}

function installedOf(e: PolicyEntry): PolicySpec {
  let best = e.refs[0]!;
  for (const p of e.refs) if (effPriority(p) <= effPriority(best)) best = p;
  return best;
}

function sameUse(a: PolicySpec, b: PolicySpec): boolean {
  return (
    a.reqid === b.reqid && a.tunnelSrc === b.tunnelSrc && a.tunnelDst === b.tunnelDst && a.trap === b.trap
  );
}

type OpName = SaOp['op'] | 'querySa' | 'flush';

export interface MemorySnapshot {
  sas: Array<{ spec: AddSaSpec; counters: SaCounters }>;
  policies: Array<{ installed: PolicySpec; refs: number }>;
}

export class MemoryInstaller implements SaInstaller {
  readonly kind = 'memory' as const;
  private readonly sas = new Map<string, SaEntry>();
  private readonly policies = new Map<string, PolicyEntry>();
  private readonly failures: Array<{ op: OpName; errno: ErrnoName }> = [];
  private listener: ((ev: KernelEvent) => void) | undefined;
  /** How often each operation was called (successful or not). */
  readonly calls: Record<OpName, number> = {
    addSa: 0,
    updateSa: 0,
    querySa: 0,
    delSa: 0,
    addPolicy: 0,
    delPolicy: 0,
    flush: 0,
  };

  async addSa(spec: AddSaSpec): Promise<void> {
    this.begin('addSa');
    const bad = invalidSpec(spec);
    if (bad) throw kerr('addSa', 'EINVAL', bad);
    const k = saKey(spec.dst, spec.spi);
    if (this.sas.has(k)) throw kerr('addSa', 'EEXIST', `SA ${k} exists`);
    this.sas.set(k, { spec: { ...spec }, counters: { bytes: 0n, packets: 0n } });
  }

  async updateSa(
    id: SaId,
    newSrc: string,
    newDst: string,
    encap?: { sport: number; dport: number },
  ): Promise<void> {
    this.begin('updateSa');
    const k = saKey(id.dst, id.spi);
    const e = this.sas.get(k);
    if (!e) throw kerr('updateSa', 'ENOENT', `no SA ${k}`);
    const nk = saKey(newDst, id.spi);
    if (nk !== k && this.sas.has(nk)) throw kerr('updateSa', 'EEXIST', `SA ${nk} exists`);
    const spec: AddSaSpec = { ...e.spec, src: newSrc, dst: newDst };
    if (encap) spec.encap = encap;
    else delete spec.encap;
    const bad = invalidSpec(spec);
    if (bad) throw kerr('updateSa', 'EINVAL', bad);
    this.sas.delete(k);
    this.sas.set(nk, { spec, counters: e.counters });
  }

  async querySa(id: SaId): Promise<SaCounters> {
    this.begin('querySa');
    const e = this.sas.get(saKey(id.dst, id.spi));
    if (!e) throw kerr('querySa', 'ENOENT', `no SA ${saKey(id.dst, id.spi)}`);
    return { ...e.counters };
  }

  async delSa(id: SaId): Promise<void> {
    this.begin('delSa');
    const k = saKey(id.dst, id.spi);
    if (!this.sas.delete(k)) throw kerr('delSa', 'ENOENT', `no SA ${k}`);
  }

  async addPolicy(p: PolicySpec): Promise<void> {
    this.begin('addPolicy');
    if (p.src.family !== p.dst.family)
      throw kerr('addPolicy', 'EINVAL', 'selectors of different IP families');
    const k = policyKey(p);
    const e = this.policies.get(k);
    if (e) e.refs.push({ ...p });
    else this.policies.set(k, { refs: [{ ...p }] });
  }

  async delPolicy(p: PolicySpec): Promise<void> {
    this.begin('delPolicy');
    const k = policyKey(p);
    const e = this.policies.get(k);
    if (!e) throw kerr('delPolicy', 'ENOENT', `no policy ${k}`);
    // Remove the newest reference of this user (same reqid, tunnel and trap flag).
    let i = e.refs.length - 1;
    while (i >= 0 && !sameUse(e.refs[i]!, p)) i--;
    if (i < 0) throw kerr('delPolicy', 'ENOENT', `policy ${k} is not used by reqid ${p.reqid}`);
    e.refs.splice(i, 1);
    if (e.refs.length === 0) this.policies.delete(k);
  }

  async flush(): Promise<void> {
    this.begin('flush');
    this.sas.clear();
    this.policies.clear();
  }

  // ---- test and simulation helpers (not part of SaInstaller) ----------------------------------

  /** The next call of `op` fails with the given errno (after the usual bookkeeping). */
  failNext(op: OpName, errno: ErrnoName): void {
    this.failures.push({ op, errno });
  }

  /** Counts traffic on an SA, as the data path would. */
  account(id: SaId, bytes: number, packets = 1, nowMs?: number): void {
    const e = this.sas.get(saKey(id.dst, id.spi));
    if (!e) throw kerr('account', 'ENOENT', `no SA ${saKey(id.dst, id.spi)}`);
    e.counters.bytes += BigInt(bytes);
    e.counters.packets += BigInt(packets);
    if (nowMs !== undefined) e.counters.lastUseMs = nowMs;
  }

  /** Receives acquire/expire/mapping events (the kernel_listener_t seam; see raise()). */
  setListener(fn: ((ev: KernelEvent) => void) | undefined): void {
    this.listener = fn;
  }

  /** Simulates a data-path event (e.g. an acquire on a trap policy). */
  raise(ev: KernelEvent): void {
    this.listener?.(ev);
  }

  hasSa(id: Pick<SaId, 'dst' | 'spi'>): boolean {
    return this.sas.has(saKey(id.dst, id.spi));
  }

  /** Installed policy and its reference count for a selector pair, if any. */
  policy(
    p: Pick<PolicySpec, 'direction' | 'src' | 'dst'>,
  ): { installed: PolicySpec; refs: number } | undefined {
    const e = this.policies.get(policyKey(p));
    return e ? { installed: installedOf(e), refs: e.refs.length } : undefined;
  }

  /** A deep copy of the state, for assertions. Contains keys: tests only, never log it. */
  snapshot(): MemorySnapshot {
    return structuredClone({
      sas: [...this.sas.values()].map((e) => ({ spec: e.spec, counters: e.counters })),
      policies: [...this.policies.values()].map((e) => ({ installed: installedOf(e), refs: e.refs.length })),
    });
  }

  private begin(op: OpName): void {
    this.calls[op]++;
    const i = this.failures.findIndex((f) => f.op === op);
    if (i >= 0) {
      const f = this.failures.splice(i, 1)[0]!;
      throw kerr(op, f.errno, 'injected failure');
    }
  }
}
