// An in-memory RouteTable with the kernel's semantics that matter to the reconciler:
// routes are keyed by (table, family, dst, metric); REPLACE overwrites the route at the key;
// deleting a link removes the routes whose oif is that link; every change emits an event.
import type {
  AddressInfo,
  Family,
  LinkInfo,
  NetEvent,
  RouteEntry,
  RouteFilter,
  RouteSpec,
  RouteTable,
} from './route-table.js';
import { RouteError, routeKey } from './route-table.js';

export class MemoryRouteTable implements RouteTable {
  private readonly links = new Map<number, LinkInfo>();
  private readonly addrs: AddressInfo[] = [];
  private readonly routes = new Map<string, RouteEntry>();
  private readonly listeners = new Set<(ev: NetEvent) => void>();
  /** Every successful replace/delete, for assertions ("no churn"). */
  readonly ops: { op: 'replace' | 'delete'; dst: string }[] = [];

  constructor(readonly name = 'memory') {}

  private emit(ev: NetEvent): void {
    for (const l of this.listeners) l(ev);
  }

  // --- test controls -------------------------------------------------------------------------
  addLink(l: LinkInfo): void {
    this.links.set(l.index, { ...l });
    this.emit({ kind: 'link', change: 'new', link: { ...l } });
  }
  deleteLink(index: number): void {
    const l = this.links.get(index);
    if (!l) return;
    this.links.delete(index);
    for (const [k, r] of this.routes) {
      if (r.oif === index) {
        this.routes.delete(k);
        this.emit({ kind: 'route', change: 'del', route: r });
      }
    }
    this.emit({ kind: 'link', change: 'del', link: l });
  }
  addAddress(a: AddressInfo): void {
    this.addrs.push({ ...a });
    this.emit({ kind: 'address', change: 'new', address: { ...a } });
  }
  /** Installs a route as some other program would (any protocol). */
  inject(r: RouteEntry): void {
    this.routes.set(routeKey(r), { ...r });
    this.emit({ kind: 'route', change: 'new', route: { ...r } });
  }
  remove(r: { family: Family; table: number; dst: string; metric: number }): void {
    const k = routeKey(r);
    const old = this.routes.get(k);
    if (!old) return;
    this.routes.delete(k);
    this.emit({ kind: 'route', change: 'del', route: old });
  }
  loseConnection(reason = 'test'): void {
    this.emit({ kind: 'lost', reason });
  }

  // --- RouteTable ----------------------------------------------------------------------------
  async listLinks(): Promise<LinkInfo[]> {
    return [...this.links.values()].map((l) => ({ ...l }));
  }
  async listAddresses(family?: Family): Promise<AddressInfo[]> {
    return this.addrs.filter((a) => !family || a.family === family).map((a) => ({ ...a }));
  }
  async listRoutes(f: RouteFilter = {}): Promise<RouteEntry[]> {
    return [...this.routes.values()]
      .filter(
        (r) =>
          (f.family === undefined || r.family === f.family) &&
          (f.table === undefined || r.table === f.table) &&
          (f.protocol === undefined || r.protocol === f.protocol) &&
          (f.dst === undefined || r.dst === f.dst),
      )
      .map((r) => ({ ...r }));
  }
  async replaceRoute(r: RouteSpec): Promise<void> {
    const link = this.links.get(r.oif);
    if (!link) throw new RouteError(`replace ${r.dst}`, 'ENODEV', 'no such device');
    if (!link.up && r.onlink)
      throw new RouteError(`replace ${r.dst}`, 'ENETDOWN', 'nexthop device is not up');
    const entry: RouteEntry = { ...r };
    this.routes.set(routeKey(r), entry);
    this.ops.push({ op: 'replace', dst: r.dst });
    this.emit({ kind: 'route', change: 'new', route: { ...entry } });
  }
  async deleteRoute(r: RouteEntry | RouteSpec): Promise<void> {
    const k = routeKey(r);
    const old = this.routes.get(k);
    if (!old || old.protocol !== r.protocol || (r.oif !== undefined && old.oif !== r.oif)) {
      throw new RouteError(`delete ${r.dst}`, 'ESRCH', 'no such process');
    }
    this.routes.delete(k);
    this.ops.push({ op: 'delete', dst: r.dst });
    this.emit({ kind: 'route', change: 'del', route: old });
  }
  watch(listener: (ev: NetEvent) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }
  async close(): Promise<void> {
    this.listeners.clear();
  }
}
