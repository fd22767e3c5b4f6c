// Editing the ip-masq-agent configuration (ConfigMap kube-system/ip-masq-agent, key `config`).
//
// Who reads it, and how (so the edit means the same thing to them afterwards):
//  - kubernetes-sigs/ip-masq-agent and Cilium's BPF ip-masq-agent (pkg/ipmasq/ipmasq.go) both
//    read the key as YAML *or* JSON (YAML is converted to JSON, then encoding/json decodes it, so
//    field names match case-insensitively: `NonMasqueradeCIDRs` works as well as
//    `nonMasqueradeCIDRs`). Other fields (masqLinkLocal, masqLinkLocalIPv6, resyncInterval, …)
//    must survive untouched.
//  - With an empty or missing config, Cilium uses its default non-masquerade list (the same RFC
//    ranges as kubernetes-sigs/ip-masq-agent, below). Writing a list with only the VPN CIDRs would
//    silently start masquerading traffic to those ranges, so for an empty/missing config the
//    defaults are written first. A config that exists but has no list is left to mean what it
//    means to Cilium (no extra ranges) and only gains the VPN CIDRs.
// The text keeps its format: JSON stays JSON (indented if it was), YAML is edited in place with
// the `yaml` package's document model, so comments, key order and flow/block style are kept.
import { isIPv4, isIPv6 } from 'node:net';
import { Address4, Address6 } from 'ip-address';
import { isMap, isScalar, isSeq, parseDocument, type YAMLMap, type YAMLSeq } from 'yaml';

/** Cilium pkg/ipmasq defaultNonMasqCIDRs (the ranges kubernetes-sigs/ip-masq-agent uses). */
export const DEFAULT_NON_MASQ_CIDRS = [
  '10.0.0.0/8',
  '172.16.0.0/12',
  '192.168.0.0/16',
  '100.64.0.0/10',
  '192.0.0.0/24',
  '192.0.2.0/24',
  '192.88.99.0/24',
  '198.18.0.0/15',
  '198.51.100.0/24',
  '203.0.113.0/24',
  '240.0.0.0/4',
];

const FIELD = 'nonMasqueradeCIDRs';

/** Canonical network text for comparisons; unparsable entries compare as trimmed text. */
export function canonicalCidr(s: string): string {
  const t = s.trim();
  const [ip, len] = t.split('/');
  try {
    if (ip && isIPv4(ip)) {
      const a = new Address4(len === undefined ? `${ip}/32` : t);
      return `${a.startAddress().correctForm()}/${a.subnetMask}`;
    }
    if (ip && isIPv6(ip)) {
      const a = new Address6(len === undefined ? `${ip}/128` : t);
      return `${a.startAddress().correctForm()}/${a.subnetMask}`;
    }
  } catch {
    /* fall through */
  }
  return t;
}

export interface MasqEdit {
  /** The new text of the `config` key. */
  text: string;
  changed: boolean;
  /** CIDRs present now only because this program added them (to be removed again when unwanted). */
  managed: string[];
  added: string[];
  removed: string[];
}

export class MasqConfigError extends Error {}

/**
 * Makes `want` appear exactly once each in nonMasqueradeCIDRs; removes entries this program added
 * earlier (`previouslyManaged`) that are no longer wanted; leaves everything else as it was.
 */
export function editNonMasqueradeCidrs(
  configText: string | undefined,
  want: string[],
  previouslyManaged: string[],
): MasqEdit {
  const wantC = [...new Set(want.map(canonicalCidr))];
  const prevC = new Set(previouslyManaged.map(canonicalCidr));
  const empty = configText === undefined || configText.trim() === '';
  const trimmed = (configText ?? '').trim();

  const edit = (
    existing: string[],
  ): { next: string[]; added: string[]; removed: string[]; managed: string[] } => {
    const next: string[] = [];
    const seen = new Set<string>();
    const removed: string[] = [];
    for (const e of existing) {
      const c = canonicalCidr(e);
      const wanted = wantC.includes(c);
      if (!wanted && prevC.has(c)) {
        removed.push(e);
        continue;
      }
      if (wanted && seen.has(c)) {
        removed.push(e); // duplicate of a VPN CIDR
        continue;
      }
      seen.add(c);
      next.push(e);
    }
    const present = new Set(existing.map(canonicalCidr));
    const added: string[] = [];
    for (const w of wantC) {
      if (!seen.has(w)) {
        next.push(w);
        added.push(w);
      }
    }
    // Ours: what we add now, plus what we added before and is still wanted.
    const managed = wantC.filter((w) => !present.has(w) || prevC.has(w));
    return { next, added, removed, managed };
  };

  if (empty || trimmed.startsWith('{')) {
    let obj: Record<string, unknown> = {};
    if (!empty) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(trimmed);
      } catch (e) {
        throw new MasqConfigError(`config is neither valid JSON nor YAML: ${String(e)}`);
      }
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
        throw new MasqConfigError('config is not an object');
      }
      obj = parsed as Record<string, unknown>;
    }
    const key = Object.keys(obj).find((k) => k.toLowerCase() === FIELD.toLowerCase()) ?? FIELD;
    const cur = obj[key];
    if (cur !== undefined && cur !== null && !Array.isArray(cur))
      throw new MasqConfigError(`${key} is not a list`);
    const existing = empty ? [...DEFAULT_NON_MASQ_CIDRS] : ((cur as unknown[] | undefined) ?? []).map(String);
    const r = edit(existing);
    // An empty config means Cilium's defaults; rewrite it only if a VPN CIDR is not among them.
    const changed = r.added.length > 0 || r.removed.length > 0;
    const out = { ...obj, [key]: r.next };
    const pretty = (configText ?? '').includes('\n');
    const text = changed
      ? JSON.stringify(out, null, pretty ? 2 : undefined) + (pretty ? '\n' : '')
      : (configText ?? '');
    return { text, changed, managed: r.managed, added: r.added, removed: r.removed };
  }

  const doc = parseDocument(configText ?? '');
  if (doc.errors.length > 0) {
    throw new MasqConfigError(
      `config is neither valid JSON nor YAML: ${doc.errors[0]?.message ?? 'parse error'}`,
    );
  }
  if (!isMap(doc.contents)) throw new MasqConfigError('config is not a mapping');
  const pair = doc.contents.items.find((p) => {
    const k = isScalar(p.key) ? p.key.value : p.key;
    return typeof k === 'string' && k.toLowerCase() === FIELD.toLowerCase();
  });
  let seq: YAMLSeq | undefined;
  if (pair) {
    if (isSeq(pair.value)) seq = pair.value;
    else if (pair.value !== null && !(isScalar(pair.value) && pair.value.value === null)) {
      throw new MasqConfigError(`${FIELD} is not a list`);
    }
  }
  const existing = seq ? seq.items.map((i) => String(isScalar(i) ? i.value : i)) : [];
  const r = edit(existing);
  const changed = r.added.length > 0 || r.removed.length > 0;
  if (!changed) return { text: configText ?? '', changed, managed: r.managed, added: [], removed: [] };
  if (seq) {
    // Remove from the end so indexes stay valid, then append.
    const drop = new Set<number>();
    const keep = [...r.next];
    seq.items.forEach((item, i) => {
      const v = String(isScalar(item) ? item.value : item);
      const at = keep.indexOf(v);
      if (at >= 0) keep.splice(at, 1);
      else drop.add(i);
    });
    for (const i of [...drop].sort((a, b) => b - a)) seq.delete(i);
    for (const a of r.added) seq.add(doc.createNode(a));
  } else {
    const node = doc.createNode(r.next);
    if (pair) (doc.contents as YAMLMap<unknown, unknown>).set(pair.key, node);
    else doc.set(FIELD, node);
  }
  return { text: String(doc), changed, managed: r.managed, added: r.added, removed: r.removed };
}
