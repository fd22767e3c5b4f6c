// Prometheus metrics in the text exposition format (version 0.0.4): counters, gauges and
// histograms with labels, a registry that renders them, and the process metrics.
//
// Why not prom-client: it costs ~8.6 MiB of RSS at rest (with @opentelemetry/api, which it loads
// for exemplars) on top of the daemon's other modules, and its label handling (sorting and hashing
// the label object on every inc) was ~5 % of the responder's busy time under the load generator;
// here a series is found by its label values joined in the declared order. docs/benchmarks.md
// has the measurements. What is kept from prom-client: the constructor options, inc/set/observe
// with a label object, reset, collect callbacks run at scrape time, and its output (HELP/TYPE,
// `le` first on buckets, a 0 series for metrics without labels).

export type LabelValues<L extends string> = Partial<Record<L, string | number>>;

export const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

interface MetricOptions<L extends string> {
  name: string;
  help: string;
  labelNames?: readonly L[];
  registers?: Registry[];
  /** Runs before each scrape (may set values, may be async). */
  collect?: () => void | Promise<void>;
}

const SEP = '\u0001';
const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function escapeLabel(v: string): string {
  return v.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`));
}

function fmt(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Number.POSITIVE_INFINITY) return '+Inf';
  if (v === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(v);
}

abstract class Metric<L extends string, S> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly L[];
  readonly collect: (() => void | Promise<void>) | undefined;
  protected series = new Map<string, { text: string; s: S }>();
  abstract readonly type: 'counter' | 'gauge' | 'histogram';

  constructor(o: MetricOptions<L>) {
    if (!NAME.test(o.name)) throw new Error(`metric name ${JSON.stringify(o.name)} is not valid`);
    for (const l of o.labelNames ?? [])
      if (!LABEL.test(l) || l === 'le') throw new Error(`label name ${JSON.stringify(l)} is not valid`);
    this.name = o.name;
    this.help = o.help;
    this.labelNames = o.labelNames ?? [];
    this.collect = o.collect;
    for (const r of o.registers ?? []) r.register(this);
  }

  protected abstract fresh(): S;

  /** The series for these labels, created on first use. */
  protected at(labels: LabelValues<L> | undefined): S {
    const names = this.labelNames;
    let key = '';
    if (labels !== undefined)
      for (let i = 0; i < names.length; i++) {
        const v = labels[names[i]!];
        key += i === 0 ? (v === undefined ? '' : v) : SEP + (v === undefined ? '' : v);
      }
    const hit = this.series.get(key);
    if (hit) return hit.s;
    for (const k of Object.keys(labels ?? {}))
      if (!(names as readonly string[]).includes(k))
        throw new Error(`${this.name}: label "${k}" is not one of ${names.join(', ') || '(none)'}`);
    const text = names
      .filter((n) => labels?.[n] !== undefined)
      .map((n) => `${n}="${escapeLabel(String(labels![n]))}"`)
      .join(',');
    const s = this.fresh();
    this.series.set(key, { text, s });
    return s;
  }

  /** Removes every series (metrics without labels go back to a single 0). */
  reset(): void {
    this.series.clear();
    if (this.labelNames.length === 0) this.at(undefined);
  }

  abstract lines(out: string[]): void;

  render(out: string[]): void {
    out.push(`# HELP ${this.name} ${this.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`);
    out.push(`# TYPE ${this.name} ${this.type}`);
    this.lines(out);
  }
}

function split<L extends string>(
  a: LabelValues<L> | number | undefined,
  b: number | undefined,
  dflt: number,
): [LabelValues<L> | undefined, number] {
  if (typeof a === 'number') return [undefined, a];
  const v = b ?? dflt;
  if (typeof v !== 'number' || Number.isNaN(v)) throw new Error(`value ${String(v)} is not a number`);
  return [a, v];
}

class Scalar<L extends string> extends Metric<L, { v: number }> {
  readonly type: 'counter' | 'gauge';
  constructor(type: 'counter' | 'gauge', o: MetricOptions<L>) {
    super(o);
    this.type = type;
    if (this.labelNames.length === 0) this.at(undefined);
  }
  protected fresh(): { v: number } {
    return { v: 0 };
  }
  lines(out: string[]): void {
    for (const { text, s } of this.series.values())
      out.push(`${this.name}${text === '' ? '' : `{${text}}`} ${fmt(s.v)}`);
  }
}

export class Counter<L extends string = string> extends Scalar<L> {
  constructor(o: MetricOptions<L>) {
    super('counter', o);
  }
  inc(labels?: LabelValues<L> | number, value?: number): void {
    const [l, v] = split(labels, value, 1);
    if (v < 0) throw new Error(`${this.name}: a counter cannot go down (inc by ${v})`);
    this.at(l).v += v;
  }
}

export class Gauge<L extends string = string> extends Scalar<L> {
  constructor(o: MetricOptions<L>) {
    super('gauge', o);
  }
  set(labels: LabelValues<L> | number, value?: number): void {
    const [l, v] = split(labels, value, Number.NaN);
    this.at(l).v = v;
  }
  inc(labels?: LabelValues<L> | number, value?: number): void {
    const [l, v] = split(labels, value, 1);
    this.at(l).v += v;
  }
  dec(labels?: LabelValues<L> | number, value?: number): void {
    const [l, v] = split(labels, value, 1);
    this.at(l).v -= v;
  }
}

interface HistogramSeries {
  counts: number[];
  sum: number;
  count: number;
}

export class Histogram<L extends string = string> extends Metric<L, HistogramSeries> {
  readonly type = 'histogram' as const;
  private readonly buckets: readonly number[];
  constructor(o: MetricOptions<L> & { buckets: readonly number[] }) {
    super(o);
    this.buckets = [...o.buckets].sort((a, b) => a - b);
    if (this.labelNames.length === 0) this.at(undefined);
  }
  protected fresh(): HistogramSeries {
    return { counts: this.buckets.map(() => 0), sum: 0, count: 0 };
  }
  observe(labels: LabelValues<L> | number, value?: number): void {
    const [l, v] = split(labels, value, Number.NaN);
    const s = this.at(l);
    const b = this.buckets;
    for (let i = 0; i < b.length; i++) if (v <= b[i]!) s.counts[i]!++;
    s.sum += v;
    s.count++;
  }
  lines(out: string[]): void {
    for (const { text, s } of this.series.values()) {
      const rest = text === '' ? '' : `,${text}`;
      for (let i = 0; i < this.buckets.length; i++)
        out.push(`${this.name}_bucket{le="${fmt(this.buckets[i]!)}"${rest}} ${s.counts[i]}`);
      out.push(`${this.name}_bucket{le="+Inf"${rest}} ${s.count}`);
      const l = text === '' ? '' : `{${text}}`;
      out.push(`${this.name}_sum${l} ${fmt(s.sum)}`);
      out.push(`${this.name}_count${l} ${s.count}`);
    }
  }
}

type AnyMetric = Counter | Gauge | Histogram;

export class Registry {
  readonly contentType = CONTENT_TYPE;
  private readonly metrics_ = new Map<string, Metric<string, unknown>>();

  register(m: Metric<string, unknown>): void {
    if (this.metrics_.has(m.name)) throw new Error(`metric ${m.name} is registered already`);
    this.metrics_.set(m.name, m);
  }

  get(name: string): AnyMetric | undefined {
    return this.metrics_.get(name) as AnyMetric | undefined;
  }

  /** Runs the collect callbacks, then renders every metric. */
  async metrics(): Promise<string> {
    const out: string[] = [];
    for (const m of this.metrics_.values()) {
      if (m.collect) await m.collect();
      m.render(out);
    }
    return `${out.join('\n')}\n`;
  }
}
