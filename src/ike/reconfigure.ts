// Live reconfiguration (`ikegw reload`, SIGHUP), as `swanctl --load-conns` does it: compare the
// running connections with the new file, connection by connection. Pure functions: the engine acts
// on the result (src/ike/engine.ts), the daemon reports it.
//
//   added           trap policies installed, start_action start initiated
//   removed         its IKE_SAs deleted (DELETE sent), its trap policies removed
//   updated         only settings that apply from the next event on changed (DPD, rekey and life
//                   times, limits, actions): established SAs stay, their timers and new CHILD_SAs
//                   take the new values at the next rekey
//   re-established  something the established SAs were negotiated with changed (addresses,
//                   identities, PSK, authentication methods or trusted CAs, proposals, selectors,
//                   children): its SAs are deleted and set up again per start_action
//   (our own certificate and key count as an update: the next IKE_SA or IKE_SA rekey uses them;
//   so do CRLs: the next authentication checks the new ones, established SAs stay, as strongSwan)
import type { ChildConfig, ConnectionConfig, EngineConfig } from './config.js';

export type ConnChange =
  | { conn: string; action: 'added' | 'removed' | 'unchanged' }
  | { conn: string; action: 'updated' | 're-established'; fields: string[] };

/** Connection fields the established SAs were negotiated with (changing one re-establishes). */
const NEGOTIATED_CONN: readonly (keyof ConnectionConfig)[] = [
  'localAddrs',
  'remoteAddrs',
  'remotePort',
  'localId',
  'remoteId',
  'psk',
  // how each side authenticates and what we trust; a rotated certificate or key of ours is only
  // used from the next IKE_SA or IKE_SA rekey on (an update), as cert-manager rotations expect
  'localAuth',
  'remoteAuth',
  'rsaPss',
  'remoteCaCerts',
  'ikeProposals',
  'encap',
];
/** Child fields the CHILD_SAs were negotiated or installed with. */
const NEGOTIATED_CHILD: readonly (keyof ChildConfig)[] = ['localTs', 'remoteTs', 'espProposals', 'reqid'];

function same(a: unknown, b: unknown): boolean {
  if (a instanceof Uint8Array && b instanceof Uint8Array)
    return a.length === b.length && a.every((x, i) => x === b[i]);
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return a === b;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a as object).filter((k) => (a as Record<string, unknown>)[k] !== undefined);
  const kb = Object.keys(b as object).filter((k) => (b as Record<string, unknown>)[k] !== undefined);
  if (ka.length !== kb.length) return false;
  return ka.every((k) => same((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

/**
 * Reqids the daemon allocated keep their values across a reload for children that exist in both
 * configurations (same connection and child name): allocation follows file order, so adding a
 * connection must not renumber — and so re-establish — the others. New children whose allocated
 * reqid is taken (by any child running now) get the next free ones. Mutates `next`.
 */
export function carryReqids(cur: EngineConfig, next: EngineConfig): void {
  const old = new Map<string, number>();
  for (const c of cur.connections) for (const ch of c.children) old.set(`${c.name}/${ch.name}`, ch.reqid);
  // every reqid in use now stays taken: a removed connection's SAs go only after their DELETE
  const used = new Set<number>(old.values());
  const fresh: ChildConfig[] = [];
  for (const c of next.connections)
    for (const ch of c.children) {
      const r = old.get(`${c.name}/${ch.name}`);
      if (r !== undefined) ch.reqid = r;
      else fresh.push(ch);
    }
  for (const ch of fresh) {
    if (!used.has(ch.reqid)) {
      used.add(ch.reqid);
      continue;
    }
    let r = 1;
    while (used.has(r)) r++;
    ch.reqid = r;
    used.add(r);
  }
}

/** The configuration file's name of a field (swanctl.conf style). */
function fileName(k: string): string {
  const special: Record<string, string> = {
    ikeProposals: 'proposals',
    localId: 'local.id',
    remoteId: 'remote.id',
    localAuth: 'local.auth',
    remoteAuth: 'remote.auth',
    rsaPss: 'local.auth',
    remoteCaCerts: 'remote.cacerts',
    remoteCrls: 'remote.crls',
    localCerts: 'local.certs',
    localKey: 'local.key',
    fragmentSize: 'fragment_size',
  };
  return special[k] ?? k.replace(/[A-Z]/g, (m) => `_${m.toLowerCase()}`);
}

/** What a reload does to each connection (in the new file's order, removed ones last). */
export function diffConnections(cur: EngineConfig, next: EngineConfig): ConnChange[] {
  const out: ConnChange[] = [];
  const before = new Map(cur.connections.map((c) => [c.name, c]));
  for (const n of next.connections) {
    const o = before.get(n.name);
    if (!o) {
      out.push({ conn: n.name, action: 'added' });
      continue;
    }
    const hard: string[] = NEGOTIATED_CONN.filter((k) => !same(o[k], n[k])).map(fileName);
    const soft: string[] = (Object.keys(n) as (keyof ConnectionConfig)[])
      .filter((k) => k !== 'children' && !NEGOTIATED_CONN.includes(k) && !same(o[k], n[k]))
      .map(fileName);
    const names = (c: ConnectionConfig) => c.children.map((x) => x.name).join(',');
    if (names(o) !== names(n)) hard.push('children');
    else
      for (const nc of n.children) {
        const oc = o.children.find((x) => x.name === nc.name)!;
        for (const k of Object.keys(nc) as (keyof ChildConfig)[]) {
          if (same(oc[k], nc[k])) continue;
          (NEGOTIATED_CHILD.includes(k) ? hard : soft).push(`children.${nc.name}.${fileName(k)}`);
        }
      }
    if (hard.length) out.push({ conn: n.name, action: 're-established', fields: hard });
    else if (soft.length) out.push({ conn: n.name, action: 'updated', fields: soft });
    else out.push({ conn: n.name, action: 'unchanged' });
  }
  const after = new Set(next.connections.map((c) => c.name));
  for (const c of cur.connections) if (!after.has(c.name)) out.push({ conn: c.name, action: 'removed' });
  return out;
}
